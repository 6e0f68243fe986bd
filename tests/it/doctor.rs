//! `symbiont doctor` on this machine: dockerd, runsc and the images present (CI sets them up with
//! `scripts/sandbox-setup`; without them these tests skip, or fail under CI as the sandbox tests
//! do), Tier 3 unavailable with its reason, the JSON report's schema, the exit status from the
//! tiers the workspace's agents need, and an audit log directory others can write to.

use std::{os::unix::fs::PermissionsExt, path::Path, process::Command};

use serde_json::Value;

use crate::{cli::binary, runtime::sandbox::sandbox_ready};

struct Report {
    code: i32,
    checks: Vec<Value>,
}

impl Report {
    fn get(&self, name: &str) -> &Value {
        self.checks.iter().find(|c| c["check"] == name).unwrap_or_else(|| panic!("no check `{name}` in {:#?}", self.checks))
    }

    fn status(&self, name: &str) -> &str {
        self.get(name)["status"].as_str().unwrap()
    }

    fn detail(&self, name: &str) -> &str {
        self.get(name)["detail"].as_str().unwrap()
    }

    fn assert_status(&self, name: &str, status: &str) {
        assert_eq!(self.status(name), status, "{name}: {:#}", self.get(name));
    }
}

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command.arg("doctor").args(args).current_dir(dir);
    command
}

/// `symbiont doctor --format json` in `dir`, its report's schema checked: an array of objects
/// with exactly `check`, `status` (ok, missing or warning), `detail`, and `fix` (a command, null
/// exactly when the check is ok).
fn doctor_json(mut command: Command) -> Report {
    let out = command.args(["--format", "json"]).output().expect("symbiont runs");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    let checks: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let checks = checks.as_array().expect("an array").clone();
    for check in &checks {
        let object = check.as_object().expect("each check is an object");
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["check", "detail", "fix", "status"], "{check:#}");
        assert!(object["check"].as_str().is_some_and(|c| !c.is_empty()), "{check:#}");
        assert!(object["detail"].as_str().is_some_and(|d| !d.is_empty()), "{check:#}");
        match object["status"].as_str() {
            Some("ok") => assert!(object["fix"].is_null(), "an ok check has nothing to fix: {check:#}"),
            Some("missing" | "warning") => assert!(object["fix"].as_str().is_some_and(|f| !f.is_empty()), "{check:#}"),
            other => panic!("status {other:?}: {check:#}"),
        }
    }
    Report { code: out.status.code().expect("exits"), checks }
}

/// A workspace with one agent, `security` as given.
fn workspace_with_agent(security: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("symbiont.toml"), "[policy]\n").unwrap();
    std::fs::write(dir.path().join("agent.py"), "print('hello')\n").unwrap();
    let sym = format!(
        "agent worker {{\n    implementation = [\"agent.py\"]\n    security = {{ {security} }}\n    policy rules {{\n        allow: [\"read\"]\n    }}\n}}\n"
    );
    std::fs::write(dir.path().join("agent.sym"), sym).unwrap();
    dir
}

/// Whether the Firecracker backend would find a `firecracker` binary here.
fn firecracker_installed() -> bool {
    std::env::var_os("SYMBIONT_FIRECRACKER").is_some()
        || std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).any(|dir| dir.join("firecracker").is_file())
}

#[test]
fn on_this_machine_tier_3_is_unavailable_with_its_reason_and_the_rest_is_there() {
    if !sandbox_ready("doctor on this machine") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("symbiont.toml"), "[policy]\n").unwrap();
    let report = doctor_json(command(dir.path(), &[]));
    for name in ["dockerd", "runsc", "image python", "image node", "image minimal", "audit log directory", "audit key", "tier 1", "tier 2"]
    {
        report.assert_status(name, "ok");
    }
    assert!(report.detail("runsc").contains("--host-uds=open"), "{}", report.detail("runsc"));
    assert!(report.detail("image python").contains("holds symbiont-sdk "), "{}", report.detail("image python"));
    assert!(report.detail("agents").contains("Tier 1 is what the workspace needs"), "{}", report.detail("agents"));
    let require_hsm = std::env::var_os("SYMBIONT_REQUIRE_HSM").is_some() || std::env::var_os("CI").is_some();
    match report.status("hsm module") {
        "ok" => assert!(report.detail("hsm module").contains("loads and initializes")),
        "warning" if !require_hsm => assert!(report.detail("hsm module").contains("no PKCS#11 module found")),
        other => panic!("hsm module {other}: {:#}", report.get("hsm module")),
    }

    // Tier 3: this machine has no Firecracker guest (and, unless installed, no firecracker).
    let tier3 = report.detail("tier 3");
    assert!(tier3.contains("is unavailable: "), "{tier3}");
    assert!(tier3.ends_with("no agent of this workspace needs it"), "{tier3}");
    report.assert_status("tier 3", "warning");
    if firecracker_installed() {
        report.assert_status("firecracker", "ok");
    } else {
        report.assert_status("firecracker", "missing");
        assert!(tier3.contains("firecracker (not found: no `firecracker` on PATH"), "{tier3}");
    }
    if report.status("tier 3 artifacts") == "missing" {
        assert!(tier3.contains("tier 3 artifacts ("), "{tier3}");
    }
    assert_eq!(report.code, 0, "nothing a Tier 1 workspace needs is missing: {:#?}", report.checks);

    // The human report: one line per check, its status first, the fix at its end.
    let human = command(dir.path(), &[]).output().unwrap();
    let text = String::from_utf8(human.stdout).unwrap();
    assert_eq!(text.lines().count(), report.checks.len(), "{text}");
    for (line, check) in text.lines().zip(&report.checks) {
        let (status, name) = (check["status"].as_str().unwrap(), check["check"].as_str().unwrap());
        assert!(line.starts_with(&format!("{status:<8} {name}: ")), "{line}");
        if let Some(fix) = check["fix"].as_str() {
            assert!(line.ends_with(&format!(" (fix: {fix})")), "{line}");
        }
    }
}

#[test]
fn an_agent_that_needs_tier_3_fails_here_and_a_tier_1_agent_does_not() {
    if !sandbox_ready("doctor's exit status") {
        return;
    }
    // No Tier 3 artifacts where the backend looks: a directory with no manifest.
    let empty = tempfile::tempdir().unwrap();
    let vm = workspace_with_agent("tier: Tier3");
    let mut cmd = command(vm.path(), &[]);
    cmd.env("SYMBIONT_TIER3_DIR", empty.path()).env_remove("SYMBIONT_FC_KERNEL").env_remove("SYMBIONT_FC_ROOTFS");
    let report = doctor_json(cmd);
    assert_eq!(report.code, 1, "{:#?}", report.checks);
    assert!(report.detail("agents").contains("`worker` at Tier 3"), "{}", report.detail("agents"));
    report.assert_status("tier 3 artifacts", "missing");
    assert!(report.detail("tier 3 artifacts").starts_with("not built"), "{}", report.detail("tier 3 artifacts"));
    assert_eq!(report.get("tier 3 artifacts")["fix"], "symbiont image build --tier 3");
    report.assert_status("tier 3", "missing");
    assert!(report.detail("tier 3").ends_with("needed by worker"), "{}", report.detail("tier 3"));

    let docker = workspace_with_agent("tier: Tier1");
    let mut cmd = command(docker.path(), &[]);
    cmd.env("SYMBIONT_TIER3_DIR", empty.path()).env_remove("SYMBIONT_FC_KERNEL").env_remove("SYMBIONT_FC_ROOTFS");
    let report = doctor_json(cmd);
    assert!(report.detail("agents").contains("`worker` at Tier 1 (python image)"), "{}", report.detail("agents"));
    report.assert_status("tier 3", "warning");
    report.assert_status("tier 1", "ok");
    assert_eq!(report.code, 0, "{:#?}", report.checks);
}

#[test]
fn an_audit_log_others_can_write_to_is_reported_with_its_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("symbiont.toml"), "[policy]\n").unwrap();
    let audit = dir.path().join(".symbiont/audit");
    std::fs::create_dir_all(&audit).unwrap();
    std::fs::set_permissions(&audit, std::fs::Permissions::from_mode(0o777)).unwrap();
    let key = dir.path().join(".symbiont/audit.key");
    let keygen = Command::new(binary()).args(["audit", "keygen", "--key"]).arg(&key).output().unwrap();
    assert!(keygen.status.success(), "{}", String::from_utf8_lossy(&keygen.stderr));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();

    let report = doctor_json(command(dir.path(), &[]));
    report.assert_status("audit log directory", "missing");
    let detail = report.detail("audit log directory");
    assert!(detail.contains("group- or world-writable (mode 0777)"), "{detail}");
    let shown = audit.canonicalize().unwrap();
    assert_eq!(report.get("audit log directory")["fix"], format!("chmod go-w {}", shown.display()));
    report.assert_status("audit key", "missing");
    assert!(report.detail("audit key").contains("mode 0600"), "{}", report.detail("audit key"));
    assert_eq!(report.get("audit key")["fix"], format!("chmod 600 {}", shown.parent().unwrap().join("audit.key").display()));
    assert_eq!(report.code, 1, "every run needs its audit log: {:#?}", report.checks);

    // Fixed as told, both are ok.
    std::fs::set_permissions(&audit, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let report = doctor_json(command(dir.path(), &[]));
    report.assert_status("audit log directory", "ok");
    report.assert_status("audit key", "ok");
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["--format", "xml"][..], &["a", "b"], &["--bogus"], &["no-such-directory"]] {
        let out = command(dir.path(), args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "doctor {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "), "{args:?}");
    }
}

/// A Tier 3 directory as `symbiont image build --tier 3` leaves it: small stand-in files under
/// RECIPE/, each recorded with its SHA-256 in manifest.json (by the runtime's own hashing).
fn tier3_dir(recipe: &str) -> tempfile::TempDir {
    use symbiont_runtime::image::tier3::{hash_file, Artifact, Manifest, MANIFEST};
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(recipe)).unwrap();
    let artifact = |name: &str| {
        let path = format!("{recipe}/{name}");
        std::fs::write(dir.path().join(&path), format!("the {name} of this test\n")).unwrap();
        let (sha256, bytes) = hash_file(&dir.path().join(&path)).unwrap();
        Artifact { path, sha256, bytes }
    };
    let manifest = Manifest {
        recipe: recipe.to_string(),
        suite: "bookworm".into(),
        mirror: "http://deb.debian.org/debian".into(),
        kernel_package: "linux-image-6.1.0-50-cloud-amd64".into(),
        kernel_version: "6.1.176-1".into(),
        kernel_release: "6.1.0-50-cloud-amd64".into(),
        kernel: artifact("vmlinux"),
        config: artifact("config"),
        initrd: artifact("initrd.cpio"),
        rootfs: artifact("rootfs.ext4"),
        options: Default::default(),
        modules: Vec::new(),
        sdk: Vec::new(),
    };
    std::fs::write(dir.path().join(MANIFEST), serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    dir
}

#[test]
fn tier_3_artifacts_are_verified_against_their_manifest() {
    use symbiont_runtime::image::tier3::recipe;
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("symbiont.toml"), "[policy]\n").unwrap();
    let doctor = |tier3: &Path| {
        let mut cmd = command(ws.path(), &[]);
        cmd.env("SYMBIONT_TIER3_DIR", tier3).env_remove("SYMBIONT_FC_KERNEL").env_remove("SYMBIONT_FC_ROOTFS");
        doctor_json(cmd)
    };

    let built = tier3_dir(&recipe());
    let report = doctor(built.path());
    report.assert_status("tier 3 artifacts", "ok");
    assert!(report.detail("tier 3 artifacts").contains("kernel 6.1.0-50-cloud-amd64"), "{}", report.detail("tier 3 artifacts"));
    assert!(report.detail("tier 3 artifacts").ends_with("(SHA-256 verified)"), "{}", report.detail("tier 3 artifacts"));

    // A file changed after the build: refused, as the run refuses to boot it.
    let rootfs = built.path().join(recipe()).join("rootfs.ext4");
    std::fs::write(&rootfs, "changed\n").unwrap();
    let report = doctor(built.path());
    report.assert_status("tier 3 artifacts", "missing");
    let detail = report.detail("tier 3 artifacts");
    assert!(detail.contains(&format!("the Tier 3 root filesystem {} does not match", rootfs.display())), "{detail}");
    assert_eq!(report.get("tier 3 artifacts")["fix"], "symbiont image build --tier 3");

    // Built by another recipe (an older SDK, say): it boots, but a build would make it anew.
    let older = tier3_dir("0123456789abcdef");
    let report = doctor(older.path());
    report.assert_status("tier 3 artifacts", "warning");
    assert!(
        report.detail("tier 3 artifacts").contains("was built by another recipe (0123456789abcdef;"),
        "{}",
        report.detail("tier 3 artifacts")
    );

    // A manifest that is not one.
    let broken = tempfile::tempdir().unwrap();
    std::fs::write(broken.path().join("manifest.json"), "{").unwrap();
    let report = doctor(broken.path());
    report.assert_status("tier 3 artifacts", "missing");
    assert!(report.detail("tier 3 artifacts").contains("is not a Tier 3 manifest"), "{}", report.detail("tier 3 artifacts"));
}

#[test]
fn a_key_in_an_hsm_needs_its_module_to_load() {
    let ws = tempfile::tempdir().unwrap();
    std::fs::write(ws.path().join("symbiont.toml"), "[policy]\n").unwrap();
    let absent = ws.path().join("no-such-module.so");
    let uri = format!("pkcs11:token=audit;object=signing-key?module-path={}", absent.display());
    let report = doctor_json(command(ws.path(), &["--key", &uri]));
    report.assert_status("hsm module", "missing");
    assert!(report.detail("hsm module").contains("no-such-module.so"), "{}", report.detail("hsm module"));
    assert_eq!(report.code, 1, "every run given that key needs its module: {:#?}", report.checks);
    assert!(report.checks.iter().all(|c| c["check"] != "audit key"), "the key is in the HSM, not a file");

    let report = doctor_json(command(ws.path(), &["--key", "pkcs11:token=audit;object=signing-key"]));
    report.assert_status("hsm module", "missing");
    assert!(report.detail("hsm module").contains("names no module"), "{}", report.detail("hsm module"));
}
