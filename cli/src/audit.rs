//! `symbiont audit …`: keys, appends, verification, inspection and proofs of audit logs, through
//! `symbiont-audit` alone (no runtime).

use std::{
    io::{BufRead, Write},
    path::{Path, PathBuf},
    sync::{mpsc, Arc},
};

use lexopt::{Arg, Parser, ValueExt};
use serde_json::json;
use symbiont_audit::{
    entry::{self, Checkpoint, Record},
    keys::{self, FileSigner, Signer},
    merkle,
    pkcs11::{self, Pkcs11Signer},
    verify::{self, VerifyOptions},
    Log, LogOptions,
};

use crate::{
    audit_report::{load_checkpoint, load_keys, out, render_report},
    usage::{Parsed, UsageError},
    Exit,
};

pub const AUDIT_HELP: &str = "\
Signed, tamper-evident audit logs

Usage: symbiont audit <COMMAND> [OPTIONS]

Commands:
  keygen --key FILE                       Write a new Ed25519 key to FILE (0600) and FILE.pub
  keygen --key PKCS11-URI [--pub FILE]    Generate an Ed25519 key inside an HSM token (it never
                                          leaves it); write its public key to FILE, or print it
  append LOG --key KEY [--json JSON]      Append one entry, or one per JSON line on stdin;
                                          prints each entry's seq once it is durable
  verify LOG [--key FILE.pub]... [--checkpoint FILE] [--follow] [--format human|json]
                                          Check signatures, chain, sequence, Merkle checkpoints;
                                          exit 0 valid, 1 invalid (naming the first bad entry)
  verify s3://BUCKET/PREFIX [--endpoint URL] [--key FILE.pub]... [--checkpoint FILE] [--format F]
                                          The same checks on a backup (see `backup`)
  backup LOG --to s3://BUCKET/PREFIX [--endpoint URL] [--retain DURATION] [--include-active]
                                          Upload what is new (sealed segments, checkpoints) to a
                                          bucket with Object Lock, locked in COMPLIANCE mode for
                                          DURATION (7y, 90d, 36h; default 7y). S3 credentials:
                                          AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION;
                                          the endpoint may also come from AWS_ENDPOINT_URL
  show LOG [--agent NAME] [--run ID] [--since TIME] [--tail N] [--follow] [--format human|json]
                                          Print the valid entries, verifying them as they are read
                                          (a warning names the first bad one); the filters combine:
                                          --agent NAME  entries of that agent (none: nothing shown)
                                          --run ID      entries of that run (`run_id` in details)
                                          --since TIME  entries at or after TIME: an RFC 3339 time
                                                        (2026-12-07T09:30:00Z, or with an offset
                                                        such as +01:00) or a duration ago: 90s,
                                                        15m, 2h, 7d, 2w
                                          --tail N      the last N entries that pass the filters,
                                                        read from the end of the log (what follows
                                                        the first of them is verified, not what
                                                        precedes it: `verify` checks everything)
                                          --follow      then keep printing entries as they are
                                                        appended, until Ctrl-C (exit 0); a bad
                                                        entry stops it (exit 1)
  checkpoint LOG                          Print the latest checkpoint (save it for --checkpoint)
  prove LOG --seq N                       Print an inclusion proof of entry N (JSON)
  verify-proof [--proof FILE] [--key FILE.pub]...
                                          Check a proof (from FILE or stdin)
  rotate LOG --key OLD --new-key NEW      Hand signing over to a new key, signed by both (OLD and
                                          NEW are KEYs)

A KEY is a key file from keygen, or an RFC 7512 PKCS#11 URI naming a key in an HSM:
  pkcs11:token=LABEL;object=KEY-LABEL?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=FILE
The user PIN comes from pin-source=FILE (its first line), pin-value=PIN, or the environment
variable SYMBIONT_PKCS11_PIN; it is never printed. Quote the URI in a shell (it has ; ? &).

A JSON record has `agent`, `operation` and `decision`; other fields go into the details.
Exit status: 0 success (a valid log); 1 an invalid log or proof; 2 a usage or I/O error.
";

#[derive(Debug)]
pub enum AuditCommand {
    Keygen { key: PathBuf, public: Option<PathBuf> },
    Append { log: PathBuf, key: PathBuf, json: Option<String> },
    Verify { log: PathBuf, keys: Vec<PathBuf>, checkpoint: Option<PathBuf>, follow: bool, json: bool },
    Show(crate::audit_show::Show),
    Checkpoint { log: PathBuf },
    Prove { log: PathBuf, seq: u64 },
    VerifyProof { proof: Option<PathBuf>, keys: Vec<PathBuf> },
    Rotate { log: PathBuf, key: PathBuf, new_key: PathBuf },
    Backup(crate::audit_backup::Backup),
    VerifyRemote(crate::audit_backup::VerifyRemote),
}

pub fn parse(parser: &mut Parser) -> Result<Parsed<AuditCommand>, UsageError> {
    let err = |e: lexopt::Error| UsageError::new(e.to_string(), Some("audit"));
    let usage = |m: String| UsageError::new(m, Some("audit"));
    let sub = match parser.next().map_err(err)? {
        None | Some(Arg::Short('h') | Arg::Long("help")) => return Ok(Parsed::Help(AUDIT_HELP)),
        Some(Arg::Value(v)) => v.string().map_err(err)?,
        Some(arg) => return Err(err(arg.unexpected())),
    };
    let (mut positional, mut keys, mut key, mut new_key, mut json_arg, mut checkpoint, mut proof) =
        (Vec::new(), Vec::new(), None, None, None, None, None);
    let (mut follow, mut json, mut agent, mut since, mut seq) = (false, false, None, None, None);
    let (mut run, mut tail) = (None, None);
    let mut public = None;
    let (mut to, mut endpoint, mut retain, mut include_active) = (None, None, None, false);
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Parsed::Help(AUDIT_HELP)),
            Arg::Long("key") => {
                let path: PathBuf = parser.value().map_err(err)?.into();
                key = Some(path.clone());
                keys.push(path);
            }
            Arg::Long("pub") => public = Some(PathBuf::from(parser.value().map_err(err)?)),
            Arg::Long("new-key") => new_key = Some(PathBuf::from(parser.value().map_err(err)?)),
            Arg::Long("json") => json_arg = Some(parser.value().map_err(err)?.string().map_err(err)?),
            Arg::Long("checkpoint") => checkpoint = Some(PathBuf::from(parser.value().map_err(err)?)),
            Arg::Long("proof") => proof = Some(PathBuf::from(parser.value().map_err(err)?)),
            Arg::Long("follow") => follow = true,
            Arg::Long("to") => to = Some(parser.value().map_err(err)?.string().map_err(err)?),
            Arg::Long("endpoint") => endpoint = Some(parser.value().map_err(err)?.string().map_err(err)?),
            Arg::Long("retain") => retain = Some(parser.value().map_err(err)?.string().map_err(err)?),
            Arg::Long("include-active") => include_active = true,
            Arg::Long("agent") => agent = Some(parser.value().map_err(err)?.string().map_err(err)?),
            Arg::Long("since") => {
                since = Some(crate::audit_show::parse_since(&parser.value().map_err(err)?.string().map_err(err)?).map_err(usage)?)
            }
            Arg::Long("run") => run = Some(parser.value().map_err(err)?.string().map_err(err)?),
            Arg::Long("tail") => {
                tail = Some(crate::audit_show::parse_tail(&parser.value().map_err(err)?.string().map_err(err)?).map_err(usage)?)
            }
            Arg::Long("seq") => seq = Some(parser.value().map_err(err)?.parse::<u64>().map_err(err)?),
            Arg::Long("format") => {
                json = match parser.value().map_err(err)?.string().map_err(err)?.as_str() {
                    "json" => true,
                    "human" => false,
                    other => return Err(usage(format!("invalid value '{other}' for '--format' (expected human or json)"))),
                }
            }
            Arg::Value(v) => positional.push(PathBuf::from(v)),
            arg => return Err(err(arg.unexpected())),
        }
    }
    let mut positional = positional.into_iter();
    let mut log = || positional.next().ok_or_else(|| usage(format!("'audit {sub}' needs the log directory")));
    let need = |v: Option<PathBuf>, flag: &str| v.ok_or_else(|| usage(format!("'audit {sub}' needs '{flag}'")));
    let command = match sub.as_str() {
        "keygen" => AuditCommand::Keygen { key: need(key, "--key FILE")?, public },
        "append" => AuditCommand::Append { log: log()?, key: need(key, "--key FILE")?, json: json_arg },
        "verify" => match log()? {
            log if log.to_str().is_some_and(|l| l.starts_with("s3://")) => {
                if follow {
                    return Err(usage("'--follow' is for a local log, not a backup".into()));
                }
                let target = log.to_string_lossy().into_owned();
                AuditCommand::VerifyRemote(crate::audit_backup::VerifyRemote { target, endpoint, keys, checkpoint, json })
            }
            log => AuditCommand::Verify { log, keys, checkpoint, follow, json },
        },
        "backup" => {
            let retain = retain.unwrap_or_else(|| symbiont_audit::backup::DEFAULT_RETAIN.into());
            let retain = symbiont_audit::backup::parse_duration(&retain).ok_or_else(|| {
                usage(format!("invalid value '{retain}' for '--retain' (expected a count and a unit: 7y, 90d, 36h, 30m)"))
            })?;
            let to = to.ok_or_else(|| usage("'audit backup' needs '--to s3://BUCKET/PREFIX'".into()))?;
            AuditCommand::Backup(crate::audit_backup::Backup { log: log()?, to, endpoint, retain, include_active, json })
        }
        "show" => {
            let filter = crate::audit_show::Filter { agent, run, since };
            AuditCommand::Show(crate::audit_show::Show { log: log()?, filter, tail, follow, json })
        }
        "checkpoint" => AuditCommand::Checkpoint { log: log()? },
        "prove" => AuditCommand::Prove { log: log()?, seq: seq.ok_or_else(|| usage("'audit prove' needs '--seq N'".into()))? },
        "verify-proof" => AuditCommand::VerifyProof { proof, keys },
        "rotate" => AuditCommand::Rotate { log: log()?, key: need(key, "--key OLD")?, new_key: need(new_key, "--new-key NEW")? },
        other => return Err(usage(format!("unknown audit command '{other}'"))),
    };
    Ok(Parsed::Options(command))
}

pub fn run(command: &AuditCommand) -> Exit {
    match command {
        AuditCommand::Keygen { key, public } => keygen(key, public.as_deref()),
        AuditCommand::Append { log, key, json } => append(log, key, json.as_deref()),
        AuditCommand::Verify { log, keys, checkpoint, follow, json } => verify_cmd(log, keys, checkpoint.as_deref(), *follow, *json),
        AuditCommand::Backup(backup) => crate::audit_backup::backup(backup),
        AuditCommand::VerifyRemote(verify) => crate::audit_backup::verify_remote(verify),
        AuditCommand::Show(options) => crate::audit_show::show(options),
        AuditCommand::Checkpoint { log } => match verify::verify_log(log, &VerifyOptions::default()) {
            Ok(report) => match report.latest_checkpoint {
                Some(cp) => out(&format!("{}\n", serde_json::to_string(&cp).unwrap_or_default())),
                None => Exit::failure(format!("{}: the log has no checkpoint yet", log.display())),
            },
            Err(e) => Exit::failure(e),
        },
        AuditCommand::Prove { log, seq } => prove(log, *seq),
        AuditCommand::VerifyProof { proof, keys } => verify_proof(proof.as_deref(), keys),
        AuditCommand::Rotate { log, key, new_key } => {
            let result = (|| {
                let old = signer(key)?;
                let new = signer(new_key)?;
                let (log, _) = Log::open(log, old, LogOptions::default())?;
                let seq = log.rotate(new)?;
                log.close()?;
                Ok::<u64, symbiont_audit::Error>(seq)
            })();
            match result {
                Ok(seq) => out(&format!("key rotation recorded as entry {seq}\n")),
                Err(e) => Exit::failure(e),
            }
        }
    }
}

/// The signing key `--key` names: a `pkcs11:` URI (a key in an HSM) or a key file.
fn signer(key: &Path) -> Result<Arc<dyn Signer>, symbiont_audit::Error> {
    match key.to_str() {
        Some(spec) => symbiont_audit::load_signer(spec),
        None => Ok(Arc::new(FileSigner::load(key)?)),
    }
}

/// A key file (and FILE.pub), or with a `pkcs11:` URI a key generated inside the token: its public
/// key goes to `--pub FILE`, or alone to stdout (so `> FILE` saves it) with the note on stderr.
fn keygen(key: &Path, public: Option<&Path>) -> Exit {
    let Some(uri) = key.to_str().filter(|k| pkcs11::is_uri(k)) else {
        if public.is_some() {
            return Exit::failure("--pub is for a key generated in an HSM (--key pkcs11:…); a key file's public key goes to FILE.pub");
        }
        return match FileSigner::generate().and_then(|s| s.write(key).map(|p| (s, p))) {
            Ok((signer, public)) => {
                out(&format!("key {} written to {} (0600), public key to {}\n", signer.key_id(), key.display(), public.display()))
            }
            Err(e) => Exit::failure(e),
        };
    };
    // Refuse before generating: a key made in the token but not exported would be left behind.
    if let Some(path) = public.filter(|p| p.exists()) {
        return Exit::failure(format!("{}: already exists (keygen never overwrites a key file)", path.display()));
    }
    let signer = match Pkcs11Signer::generate(uri) {
        Ok(signer) => signer,
        Err(e) => return Exit::failure(e),
    };
    let what = format!(
        "key {} generated in token `{}` as `{}` (it cannot leave the token)",
        signer.key_id(),
        signer.token_label(),
        signer.label()
    );
    match public {
        Some(path) => match keys::write_public_key(path, &signer.public_key()) {
            Ok(()) => out(&format!("{what}, public key to {}\n", path.display())),
            Err(e) => Exit::failure(format!("{what}, but its public key was not written: {e}")),
        },
        None => {
            eprintln!("{what}; its public key follows");
            out(&keys::public_key_line(&signer.public_key()))
        }
    }
}

fn parse_record(text: &str) -> Result<Record, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    Record::from_json(value).map_err(|e| e.to_string())
}

/// Appends records; each seq is printed (and flushed) once its entry is durable, in order.
fn append(dir: &Path, key: &Path, json: Option<&str>) -> Exit {
    // A bad record is a usage error: report it before touching the log.
    let record = match json.map(parse_record).transpose() {
        Ok(record) => record,
        Err(e) => return Exit::failure(format!("--json: {e}")),
    };
    let signer = match signer(key) {
        Ok(s) => s,
        Err(e) => return Exit::failure(e),
    };
    let (log, report) = match Log::open(dir, signer, LogOptions::default()) {
        Ok(opened) => opened,
        Err(e) => return Exit::failure(e),
    };
    if let Some(torn) = &report.truncated {
        eprintln!("warning: cut an unfinished last entry at {}, byte {} (it was never acknowledged)", torn.path.display(), torn.offset);
    }
    if let Some(record) = record {
        return match log.append(record).and_then(|seq| log.close().map(|_| seq)) {
            Ok(seq) => out(&format!("{seq}\n")),
            Err(e) => Exit::failure(e),
        };
    }
    // Stdin: submit as lines arrive (group commit batches them); acknowledge in order.
    let (sender, receiver) = mpsc::channel::<symbiont_audit::Ticket>();
    let printer = std::thread::spawn(move || -> Result<(), String> {
        let stdout = std::io::stdout();
        for ticket in receiver {
            let seq = ticket.wait().map_err(|e| e.to_string())?;
            let mut lock = stdout.lock();
            writeln!(lock, "{seq}").and_then(|_| lock.flush()).map_err(|e| format!("cannot write the output: {e}"))?;
        }
        Ok(())
    });
    let mut failure = None;
    for (number, line) in std::io::stdin().lock().lines().enumerate() {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                failure = Some(format!("cannot read standard input: {e}"));
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match parse_record(&line).map_err(|e| format!("line {}: {e}", number + 1)).and_then(|r| log.submit(r).map_err(|e| e.to_string())) {
            Ok(ticket) => {
                if sender.send(ticket).is_err() {
                    break;
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(sender);
    let printed = printer.join().unwrap_or_else(|_| Err("the acknowledgement thread panicked".into()));
    let closed = log.close().map_err(|e| e.to_string());
    match failure.or(printed.err()).or(closed.err()) {
        Some(message) => Exit::failure(message),
        None => Exit::Clean,
    }
}

fn verify_cmd(dir: &Path, key_paths: &[PathBuf], checkpoint: Option<&Path>, follow: bool, json: bool) -> Exit {
    let trusted_keys = match load_keys(key_paths) {
        Ok(keys) => keys,
        Err(e) => return Exit::failure(e),
    };
    let saved_checkpoint = match checkpoint.map(load_checkpoint).transpose() {
        Ok(cp) => cp,
        Err(e) => return Exit::failure(e),
    };
    let options = VerifyOptions { trusted_keys, saved_checkpoint, ..VerifyOptions::default() };
    let mut reported = 0u64;
    loop {
        let report = match verify::verify_log(dir, &options) {
            Ok(r) => r,
            Err(e) => return Exit::failure(e),
        };
        if follow && report.is_valid() {
            if report.entries > reported || reported == 0 {
                eprintln!("verified {} entries, root {}", report.entries, entry::b64(&report.root));
                reported = report.entries.max(1);
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
            continue;
        }
        let text = render_report(&report, json);
        let exit = out(&text);
        if exit != Exit::Clean {
            return exit;
        }
        return if report.is_valid() { Exit::Clean } else { Exit::Problems };
    }
}

fn prove(dir: &Path, seq: u64) -> Exit {
    let proof = match verify::prove_inclusion(dir, seq, &VerifyOptions::default()) {
        Ok(proof) => proof,
        Err(e) => return Exit::failure(e),
    };
    let proof = json!({
        "index": proof.seq,
        "entry": String::from_utf8_lossy(&proof.line),
        "path": proof.path.iter().map(|h| entry::b64(h)).collect::<Vec<_>>(),
        "checkpoint": proof.checkpoint,
    });
    out(&format!("{}\n", serde_json::to_string_pretty(&proof).unwrap_or_default()))
}

fn verify_proof(proof: Option<&Path>, key_paths: &[PathBuf]) -> Exit {
    let text = match proof {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display())),
        None => std::io::read_to_string(std::io::stdin()).map_err(|e| format!("cannot read standard input: {e}")),
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => return Exit::failure(e),
    };
    let keys = match load_keys(key_paths) {
        Ok(k) => k,
        Err(e) => return Exit::failure(e),
    };
    let result = (|| -> Result<u64, String> {
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("not a proof: {e}"))?;
        let checkpoint: Checkpoint =
            serde_json::from_value(value["checkpoint"].clone()).map_err(|e| format!("the proof's checkpoint: {e}"))?;
        let index = value["index"].as_u64().ok_or("the proof has no `index`")?;
        let line = value["entry"].as_str().ok_or("the proof has no `entry`")?;
        let path: Vec<merkle::Hash> = value["path"]
            .as_array()
            .ok_or("the proof has no `path`")?
            .iter()
            .map(|h| h.as_str().and_then(entry::unb64::<32>).ok_or("a path hash is not 32 base64 bytes"))
            .collect::<Result<_, _>>()?;
        if !keys.is_empty() {
            let map = keys.into_iter().map(|k| (k.id, k.key)).collect();
            verify::checkpoint_signature_ok(&checkpoint, &map)?;
        }
        let entry: symbiont_audit::Entry = serde_json::from_str(line).map_err(|e| format!("the proof's entry: {e}"))?;
        if entry.seq != index || entry.log != checkpoint.origin {
            return Err("the entry does not match the proof's index or log".into());
        }
        let root = checkpoint.root_hash().ok_or("the checkpoint root is not 32 base64 bytes")?;
        if !merkle::verify_inclusion(index, checkpoint.size, &merkle::leaf_hash(line.as_bytes()), &path, &root) {
            return Err("the entry is not included in the checkpoint's tree (the proof does not verify)".into());
        }
        Ok(index)
    })();
    match result {
        Ok(index) => {
            let note = if key_paths.is_empty() { " (checkpoint signature not checked: no --key given)" } else { "" };
            out(&format!("valid: entry {index} is included in the checkpoint{note}\n"))
        }
        Err(reason) => {
            let _ = out(&format!("INVALID: {reason}\n"));
            Exit::Problems
        }
    }
}
