//! Audit keys in an HSM, for real: a SoftHSM2 token made in a temporary directory, keys generated
//! in it through `symbiont-audit`, logs signed by the token and verified with the exported public
//! key, a rotation from a key file to the token, and the PIN never shown. One token serves the
//! whole test process (SoftHSM2 reads `SOFTHSM2_CONF` once, at `C_Initialize`), so each test uses
//! its own key labels. Without SoftHSM2 these tests print `SKIPPED: …` and pass, except when
//! `SYMBIONT_REQUIRE_HSM` or `CI` is set (as `scripts/test`, which installs SoftHSM2, does): then
//! they fail.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, OnceLock},
};

use cryptoki::{
    context::{CInitializeArgs, CInitializeFlags, Pkcs11},
    object::{Attribute, AttributeType, ObjectClass},
};
use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::json;
use symbiont_audit::{
    entry::Record,
    keys::{self, FileSigner, PublicKey, Signer},
    pkcs11::{Pkcs11Signer, PIN_ENV},
    verify::{verify_log, VerifyOptions, VerifyReport},
    Log, LogOptions,
};

use crate::cli::Workspace;

const PIN: &str = "1234";
const SO_PIN: &str = "5678";
const TOKEN: &str = "audit";

/// The token every test here uses.
struct SoftHsm {
    module: PathBuf,
}

impl SoftHsm {
    /// A URI for key `object` in the test token, with the PIN given inline.
    fn uri(&self, object: &str, pin: &str) -> String {
        format!("pkcs11:token={TOKEN};object={object}?module-path={}&pin-value={pin}", self.module.display())
    }
}

/// Whether a missing SoftHSM2 fails the tests rather than skipping them.
fn required() -> bool {
    std::env::var_os("SYMBIONT_REQUIRE_HSM").is_some() || std::env::var_os("CI").is_some()
}

/// Where SoftHSM2's module is installed: `SOFTHSM2_MODULE`; else the places distributions put
/// it; else where the Debian packages say they put it (`dpkg -L`); else any `libsofthsm2.so`
/// a few levels under the usual library directories.
fn find_module() -> Option<PathBuf> {
    const NAME: &str = "libsofthsm2.so";
    if let Some(path) = std::env::var_os("SOFTHSM2_MODULE") {
        return Some(PathBuf::from(path));
    }
    let known = [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib64/softhsm/libsofthsm2.so",
        "/usr/lib64/pkcs11/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/pkcs11/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
        "/opt/homebrew/lib/softhsm/libsofthsm2.so",
    ];
    if let Some(path) = known.iter().map(PathBuf::from).find(|p| p.is_file()) {
        return Some(path);
    }
    let listed = Command::new("dpkg").args(["-L", "libsofthsm2", "softhsm2"]).output().map(|o| o.stdout).unwrap_or_default();
    if let Some(path) = String::from_utf8_lossy(&listed).lines().map(PathBuf::from).find(|p| p.ends_with(NAME) && p.is_file()) {
        return Some(path);
    }
    fn search(dir: &Path, depth: usize) -> Option<PathBuf> {
        let entries: Vec<PathBuf> = std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).collect();
        if let Some(found) = entries.iter().find(|p| p.ends_with(NAME) && p.is_file()) {
            return Some(found.clone());
        }
        if depth == 0 {
            return None;
        }
        // Not through links: a library directory's links lead back into it.
        entries.iter().filter(|p| p.symlink_metadata().is_ok_and(|m| m.is_dir())).find_map(|p| search(p, depth - 1))
    }
    ["/usr/lib", "/usr/lib64", "/usr/local/lib"].iter().find_map(|dir| search(Path::new(dir), 2))
}

/// Makes the token once per test process, in `<target>/tmp/softhsm-<pid>` (directories left by
/// test processes that are gone are removed). `None` (after printing why) only when SoftHSM2 is
/// not installed and not [`required`]: an installed SoftHSM2 that does not work fails the tests,
/// so a broken module loader cannot pass as a skip.
fn softhsm() -> Option<&'static SoftHsm> {
    static HSM: OnceLock<Result<SoftHsm, String>> = OnceLock::new();
    let hsm = HSM.get_or_init(|| {
        let module = find_module().ok_or("SoftHSM2 is not installed (no libsofthsm2.so; apt-get install softhsm2)")?;
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
        for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("softhsm-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = root.join(format!("softhsm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tokens")).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let conf = dir.join("softhsm2.conf");
        let text = format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", dir.join("tokens").display());
        std::fs::write(&conf, text).unwrap_or_else(|e| panic!("{}: {e}", conf.display()));
        let init = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", SO_PIN])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .map_err(|e| format!("SoftHSM2 is not installed (softhsm2-util: {e}; apt-get install softhsm2)"))?;
        assert!(init.status.success(), "softhsm2-util --init-token failed: {}", String::from_utf8_lossy(&init.stderr));
        // Set once, before anything loads the module: SoftHSM2 reads it in C_Initialize, and the
        // `symbiont` processes the CLI test starts inherit it.
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let hsm = SoftHsm { module };
        // Load and initialize the module now, while no test runs yet.
        let probe = Pkcs11Signer::open(&hsm.uri("no-such-key", PIN)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(probe.contains("no such private key"), "the SoftHSM2 token does not work: {probe}");
        Ok(hsm)
    });
    match hsm {
        Ok(hsm) => Some(hsm),
        Err(reason) => {
            assert!(!required(), "SoftHSM2 is required here (SYMBIONT_REQUIRE_HSM or CI is set) but {reason}");
            println!("SKIPPED: {reason}");
            None
        }
    }
}

fn record(i: usize) -> Record {
    Record::from_json(
        json!({ "agent": format!("agent{}", i % 3), "operation": "file_read", "decision": "allow", "path": format!("/data/{i}") }),
    )
    .unwrap()
}

fn verify(dir: &Path, keys: &[PublicKey]) -> VerifyReport {
    verify_log(dir, &VerifyOptions { trusted_keys: keys.to_vec(), saved_checkpoint: None, ..VerifyOptions::default() }).unwrap()
}

#[test]
fn an_hsm_key_signs_a_log_that_verifies_with_its_exported_public_key() {
    let Some(hsm) = softhsm() else { return };
    let signer = Arc::new(Pkcs11Signer::generate(&hsm.uri("log-key", PIN)).unwrap());
    assert_eq!(signer.token_label(), TOKEN);
    assert_eq!(signer.key_id(), keys::key_id(&signer.public_key()));

    // The private key is a token object that cannot leave the token.
    let context = Pkcs11::new(&hsm.module).unwrap();
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("{e}"),
    }
    let slot =
        context.get_slots_with_initialized_token().unwrap().into_iter().find(|s| context.get_token_info(*s).unwrap().label() == TOKEN);
    let session = context.open_ro_session(slot.unwrap()).unwrap();
    // The signer keeps the application logged in, so private objects are visible here.
    let private = session.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY), Attribute::Label(b"log-key".to_vec())]).unwrap();
    assert_eq!(private.len(), 1);
    let wanted = [
        AttributeType::Token,
        AttributeType::Sensitive,
        AttributeType::Extractable,
        AttributeType::Sign,
        AttributeType::NeverExtractable,
        AttributeType::AlwaysSensitive,
    ];
    let attributes = session.get_attributes(private[0], &wanted).unwrap();
    for attribute in &attributes {
        match attribute {
            Attribute::Token(v)
            | Attribute::Sensitive(v)
            | Attribute::Sign(v)
            | Attribute::NeverExtractable(v)
            | Attribute::AlwaysSensitive(v) => {
                assert!(v, "{attribute:?}")
            }
            Attribute::Extractable(v) => assert!(!v, "the private key is extractable"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(attributes.len(), wanted.len());
    let value = session.get_attributes(private[0], &[AttributeType::Value]);
    assert!(!matches!(value.as_deref(), Ok([Attribute::Value(_), ..])), "the private key's value could be read: {value:?}");
    drop(session);

    // A raw signature from the token is a plain Ed25519 signature.
    let message = b"signed inside the token";
    let signature = signer.sign(message).unwrap();
    VerifyingKey::from_bytes(&signer.public_key()).unwrap().verify_strict(message, &Signature::from_bytes(&signature)).unwrap();

    // A log signed from several threads at once (the session pool) verifies with the public key
    // file written for it.
    let dir = tempfile::tempdir().unwrap();
    let public_file = dir.path().join("hsm.pub");
    keys::write_public_key(&public_file, &signer.public_key()).unwrap();
    let log_dir = dir.path().join("log");
    let (log, report) = Log::open(&log_dir, signer.clone(), LogOptions { checkpoint_every: 7, ..LogOptions::default() }).unwrap();
    assert!(report.created);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let log = &log;
            scope.spawn(move || {
                let tickets: Vec<_> = (0..10).map(|i| log.submit(record(t * 10 + i)).unwrap()).collect();
                for ticket in tickets {
                    ticket.wait().unwrap();
                }
            });
        }
    });
    log.close().unwrap();
    let trusted = PublicKey::load(&public_file).unwrap();
    let report = verify(&log_dir, &[trusted]);
    assert!(report.is_valid(), "{:?}", report.finding);
    assert_eq!(report.entries, 40);
    assert!(report.checkpoints >= 1);

    // The same key, opened again by its URI through the loader the CLI uses, signs on.
    let again = symbiont_audit::load_signer(&hsm.uri("log-key", PIN)).unwrap();
    assert_eq!(again.public_key(), signer.public_key());
    let (log, _) = Log::open(&log_dir, again, LogOptions::default()).unwrap();
    log.append(record(40)).unwrap();
    log.close().unwrap();
    let report = verify(&log_dir, &[PublicKey::load(&public_file).unwrap()]);
    assert!(report.is_valid() && report.entries == 41, "{:?}", report.finding);
}

#[test]
fn a_log_rotates_from_a_key_file_to_an_hsm_key() {
    let Some(hsm) = softhsm() else { return };
    let file = Arc::new(FileSigner::generate().unwrap());
    let file_public = PublicKey::from_bytes(&file.public_key()).unwrap();
    let hsm_key = Arc::new(Pkcs11Signer::generate(&hsm.uri("rotated-key", PIN)).unwrap());
    let hsm_public = PublicKey::from_bytes(&hsm_key.public_key()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path(), file.clone(), LogOptions::default()).unwrap();
    for i in 0..3 {
        log.append(record(i)).unwrap();
    }
    assert_eq!(log.rotate(hsm_key.clone()).unwrap(), 3);
    for i in 4..7 {
        log.append(record(i)).unwrap();
    }
    log.close().unwrap();

    // Trusting the old key is enough: the rotation is countersigned by the token.
    let report = verify(dir.path(), &[file_public]);
    assert!(report.is_valid(), "{:?}", report.finding);
    assert_eq!(report.entries, 7);
    // The token's key alone does not vouch for what the file key signed before the hand-over.
    let report = verify(dir.path(), &[hsm_public]);
    assert_eq!(report.finding.map(|f| f.seq), Some(Some(0)));

    // After the rotation the log is written with the HSM key only.
    let (log, _) = Log::open(dir.path(), hsm_key, LogOptions::default()).unwrap();
    log.append(record(7)).unwrap();
    log.close().unwrap();
    let report = verify(dir.path(), &[PublicKey::from_bytes(&file.public_key()).unwrap()]);
    assert!(report.is_valid() && report.entries == 8, "{:?}", report.finding);
}

#[test]
fn a_wrong_or_missing_pin_is_a_clear_error_that_never_shows_the_pin() {
    let Some(hsm) = softhsm() else { return };
    let right = Pkcs11Signer::generate(&hsm.uri("pin-key", PIN)).unwrap();
    let wrong = "97531";
    let error = symbiont_audit::load_signer(&hsm.uri("pin-key", wrong)).err().expect("a wrong PIN is refused").to_string();
    assert!(error.contains("PIN is incorrect") && error.contains("pin-key") && error.contains(TOKEN), "{error}");
    assert!(!error.contains(wrong), "the error shows the PIN: {error}");

    // From a file, too.
    let dir = tempfile::tempdir().unwrap();
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, format!("{wrong}\n")).unwrap();
    let uri = format!("pkcs11:token={TOKEN};object=pin-key?module-path={}&pin-source={}", hsm.module.display(), pin_file.display());
    let error = symbiont_audit::load_signer(&uri).err().expect("a wrong PIN is refused").to_string();
    assert!(error.contains("PIN is incorrect") && !error.contains(wrong), "{error}");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    symbiont_audit::load_signer(&uri).unwrap();

    // No PIN at all says where to give one; then the environment variable gives it.
    let uri = format!("pkcs11:token={TOKEN};object=pin-key?module-path={}", hsm.module.display());
    let error = symbiont_audit::load_signer(&uri).err().expect("no PIN is refused").to_string();
    assert!(error.contains("pin-source=FILE") && error.contains(PIN_ENV), "{error}");
    std::env::set_var(PIN_ENV, PIN);
    let from_env = symbiont_audit::load_signer(&uri);
    std::env::remove_var(PIN_ENV);
    assert_eq!(from_env.unwrap().public_key(), right.public_key());
}

#[test]
fn keygen_never_replaces_a_key_and_lookups_name_what_is_missing() {
    let Some(hsm) = softhsm() else { return };
    Pkcs11Signer::generate(&hsm.uri("unique-key", PIN)).unwrap();
    let error = Pkcs11Signer::generate(&hsm.uri("unique-key", PIN)).err().unwrap().to_string();
    assert!(error.contains("already has an object with this label"), "{error}");
    let error = symbiont_audit::load_signer(&hsm.uri("absent-key", PIN)).err().unwrap().to_string();
    assert!(error.contains("`absent-key`") && error.contains("no such private key"), "{error}");
    let uri = format!("pkcs11:token=nope;object=k?module-path={}&pin-value={PIN}", hsm.module.display());
    let error = symbiont_audit::load_signer(&uri).err().unwrap().to_string();
    assert!(error.contains("no such token") && error.contains("`audit`"), "{error}");
}

/// The `symbiont` binary end to end: keygen in the token, append, verify with the public key
/// file; a wrong PIN; a rotation from a key file to the token.
#[test]
fn the_cli_keeps_a_log_with_an_hsm_key() {
    let Some(hsm) = softhsm() else { return };
    let ws = Workspace::new();
    ws.write("pin", format!("{PIN}\n"));
    // Relative paths resolve against the directory `symbiont` runs in, the workspace.
    let uri = |object: &str| format!("pkcs11:token={TOKEN};object={object}?module-path={}&pin-source=pin", hsm.module.display());

    let keygen = ws.run(&["audit", "keygen", "--key", &uri("cli-key"), "--pub", "hsm.pub"]);
    assert_eq!(keygen.code, 0, "{}", keygen.stderr);
    assert!(keygen.stdout.contains("in token `audit`") && keygen.stdout.contains("hsm.pub"), "{}", keygen.stdout);
    let again = ws.run(&["audit", "keygen", "--key", &uri("cli-key"), "--pub", "other.pub"]);
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("already has an object with this label"), "{}", again.stderr);
    // Without --pub the public key is printed.
    let printed = ws.run(&["audit", "keygen", "--key", &uri("cli-printed-key")]);
    assert_eq!(printed.code, 0, "{}", printed.stderr);
    assert!(printed.stdout.lines().any(|l| l.starts_with("symbiont-ed25519 ")), "{}", printed.stdout);

    let record = r#"{"agent":"a","operation":"file_read","decision":"allow"}"#;
    for expected in ["0\n", "1\n"] {
        let append = ws.run(&["audit", "append", "log", "--key", &uri("cli-key"), "--json", record]);
        assert_eq!((append.code, append.stdout.as_str()), (0, expected), "{}", append.stderr);
    }
    let verified = ws.run(&["audit", "verify", "log", "--key", "hsm.pub"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    assert!(verified.stdout.starts_with("valid: 2 entries"), "{}", verified.stdout);

    // A fresh process logs in for real: the token itself refuses the wrong PIN.
    let wrong = "86420";
    let bad = ws.run(&["audit", "append", "log", "--key", &hsm.uri("cli-key", wrong), "--json", record]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("PIN is incorrect"), "{}", bad.stderr);
    assert!(!bad.stderr.contains(wrong) && !bad.stdout.contains(wrong), "the PIN is shown: {}", bad.stderr);

    // From a key file to the token.
    assert_eq!(ws.run(&["audit", "keygen", "--key", "file.key"]).code, 0);
    assert_eq!(ws.run(&["audit", "append", "log2", "--key", "file.key", "--json", record]).code, 0);
    assert_eq!(ws.run(&["audit", "keygen", "--key", &uri("cli-rotated"), "--pub", "rotated.pub"]).code, 0);
    let rotate = ws.run(&["audit", "rotate", "log2", "--key", "file.key", "--new-key", &uri("cli-rotated")]);
    assert_eq!(rotate.code, 0, "{}", rotate.stderr);
    assert_eq!(ws.run(&["audit", "append", "log2", "--key", &uri("cli-rotated"), "--json", record]).stdout, "2\n");
    let verified = ws.run(&["audit", "verify", "log2", "--key", "file.key.pub"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    assert!(verified.stdout.starts_with("valid: 3 entries"), "{}", verified.stdout);
    let untrusted = ws.run(&["audit", "verify", "log2", "--key", "rotated.pub"]);
    assert_eq!(untrusted.code, 1, "{}", untrusted.stdout);
}
