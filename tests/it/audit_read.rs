//! Reading audit logs with the `symbiont` binary: `audit show`'s filters (`--agent`, `--run`,
//! `--since`, `--tail`) alone and combined, `--follow` seeing entries appended after it started
//! (across a segment rotation) and stopping cleanly on Ctrl-C, `audit prove` over segments, and
//! `verify`, `show` and `prove` reading in memory that does not grow with the log (peak RSS of the
//! child at N and 4N entries).

use std::{
    io::BufRead,
    path::Path,
    process::{Command, Stdio},
    sync::{mpsc, Arc},
    time::Duration,
};

use serde_json::{json, Value};
use symbiont_audit::{
    keys::{FileSigner, Signer},
    store, time, Log, LogOptions, Record,
};

use crate::cli::{binary, Workspace};

fn signer() -> Arc<FileSigner> {
    Arc::new(FileSigner::from_seed([42; 32]))
}

/// Entry `i` of the test logs: agents a0..a2 in turn, runs r0, r1, … of 10 entries each.
fn record(i: u64) -> Record {
    Record::from_json(json!({
        "agent": format!("a{}", i % 3),
        "operation": "file_read",
        "decision": "allow",
        "run_id": format!("r{}", i / 10),
        "n": i,
    }))
    .unwrap()
}

/// Appends entries `range` to the log in `dir` (made if missing), `segment_entries` per segment.
fn append(dir: &Path, range: std::ops::Range<u64>, segment_entries: u64) {
    let options = LogOptions { segment_entries, ..LogOptions::default() };
    let (log, _) = Log::open(dir, signer(), options).unwrap();
    // Submitted together, so that group commit makes a few large writes.
    let tickets: Vec<_> = range.map(|i| log.submit(record(i)).unwrap()).collect();
    for ticket in tickets {
        ticket.wait().unwrap();
    }
    log.close().unwrap();
}

/// `audit show LOG ARGS… --format json`: its exit status, the entries' `n` details, and stderr.
fn show(ws: &Workspace, args: &[&str]) -> (i32, Vec<u64>, String) {
    let mut all = vec!["audit", "show", "log", "--format", "json"];
    all.extend_from_slice(args);
    let run = ws.run(&all);
    let ns = run.stdout.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["details"]["n"].as_u64().unwrap()).collect();
    (run.code, ns, run.stderr)
}

fn ts_of(ws: &Workspace, seq: u64) -> String {
    let line = store::read_lines(&store::segments(&ws.path("log")).unwrap()[0].1).unwrap()[seq as usize].bytes.clone();
    serde_json::from_slice::<Value>(&line).unwrap()["ts"].as_str().unwrap().to_string()
}

#[test]
fn show_filters_by_agent_run_and_time_alone_and_combined() {
    let ws = Workspace::new();
    append(&ws.path("log"), 0..20, 65_536);
    // Entries 20.. are appended later, so that a time separates them from the first 20.
    std::thread::sleep(Duration::from_millis(20));
    append(&ws.path("log"), 20..30, 65_536);
    let since = ts_of(&ws, 20);
    let micros = time::parse_rfc3339(&since).unwrap();
    let plus_one_hour = time::format_micros(micros + 3_600_000_000).replace('Z', "+01:00");
    let range = |r: std::ops::Range<u64>, step: u64, from: u64| r.filter(|i| i % step == from).collect::<Vec<_>>();

    let cases: Vec<(Vec<&str>, Vec<u64>)> = vec![
        (vec![], (0..30).collect()),
        (vec!["--agent", "a1"], range(0..30, 3, 1)),
        (vec!["--run", "r1"], (10..20).collect()),
        (vec!["--since", &since], (20..30).collect()),
        (vec!["--since", &plus_one_hour], (20..30).collect()),
        (vec!["--since", "1h"], (0..30).collect()),
        (vec!["--since", "1h", "--agent", "a2", "--run", "r2"], range(20..30, 3, 2)),
        (vec!["--agent", "a0", "--run", "r0"], vec![0, 3, 6, 9]),
        (vec!["--tail", "4"], vec![26, 27, 28, 29]),
        (vec!["--tail", "3", "--agent", "a0"], vec![21, 24, 27]),
        (vec!["--tail", "2", "--run", "r0"], vec![8, 9]),
        (vec!["--tail", "100", "--since", &since], (20..30).collect()),
        (vec!["--tail", "100"], (0..30).collect()),
        (vec!["--tail", "0"], vec![]),
        (vec!["--agent", "nobody"], vec![]),
        (vec!["--tail", "5", "--agent", "nobody"], vec![]),
        (vec!["--run", "r9"], vec![]),
        (vec!["--since", "2999-01-01T00:00:00Z"], vec![]),
        (vec!["--tail", "5", "--since", "2999-01-01T00:00:00Z"], vec![]),
    ];
    for (args, want) in cases {
        let (code, got, stderr) = show(&ws, &args);
        assert_eq!((code, &got), (0, &want), "show {args:?}: {stderr}");
        assert!(!stderr.contains("warning: the log is invalid"), "show {args:?}: {stderr}");
    }
    // The human format: one line an entry, seq first.
    let human = ws.run(&["audit", "show", "log", "--tail", "1"]);
    assert!(human.stdout.starts_with("    29  ") && human.stdout.lines().count() == 1, "{}", human.stdout);
}

#[test]
fn show_refuses_bad_values_with_usage_errors() {
    let ws = Workspace::new();
    append(&ws.path("log"), 0..3, 65_536);
    for (args, message) in [
        (vec!["--since", "yesterday"], "invalid value 'yesterday' for '--since' (expected an RFC 3339 time"),
        (vec!["--since", "2026-13-01T00:00:00Z"], "invalid value '2026-13-01T00:00:00Z' for '--since'"),
        (vec!["--since", "2h ago"], "invalid value '2h ago' for '--since'"),
        (vec!["--since", "99999999999999999999d"], "for '--since'"),
        (vec!["--tail", "-3"], "invalid value '-3' for '--tail' (expected a number of entries"),
        (vec!["--tail", "ten"], "invalid value 'ten' for '--tail'"),
        (vec!["--tail"], "--tail"),
        (vec!["--run"], "--run"),
    ] {
        let mut all = vec!["audit", "show", "log"];
        all.extend_from_slice(&args);
        let run = ws.run(&all);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: nothing is printed: {}", run.stdout);
    }
    let run = ws.run(&["audit", "show", "nowhere", "--tail", "3"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("not an audit log"), "{}", run.stderr);
}

#[test]
fn show_tail_reads_a_multi_segment_log_from_its_end() {
    let ws = Workspace::new();
    let log = ws.path("log");
    append(&log, 0..35, 10);
    assert_eq!(store::segments(&log).unwrap().len(), 4);
    assert_eq!(show(&ws, &["--tail", "12"]).1, (23..35).collect::<Vec<_>>());
    assert_eq!(show(&ws, &["--tail", "4", "--agent", "a1"]).1, vec![25, 28, 31, 34]);
    assert_eq!(show(&ws, &["--tail", "3", "--run", "r1"]).1, vec![17, 18, 19]);
    assert_eq!(show(&ws, &["--tail", "40"]).1, (0..35).collect::<Vec<_>>());

    // An entry before the tail is changed: the tail does not read it (`verify` does).
    let first = store::segments(&log).unwrap()[0].1.clone();
    let text = std::fs::read_to_string(&first).unwrap().replace(r#""n":3,"#, r#""n":4,"#);
    std::fs::write(&first, text).unwrap();
    let (code, ns, stderr) = show(&ws, &["--tail", "12"]);
    assert_eq!((code, ns), (0, (23..35).collect::<Vec<_>>()), "{stderr}");
    assert!(!stderr.contains("invalid"), "{stderr}");
    let (_, ns, stderr) = show(&ws, &[]);
    assert_eq!(ns, vec![0, 1, 2], "the whole log stops at the changed entry");
    assert!(stderr.contains("warning: the log is invalid from entry 3"), "{stderr}");

    // One within the tail is named, and what follows it is not shown.
    let third = store::segments(&log).unwrap()[2].1.clone();
    let text = std::fs::read_to_string(&third).unwrap().replace(r#""n":27,"#, r#""n":28,"#);
    std::fs::write(&third, text).unwrap();
    let (code, ns, stderr) = show(&ws, &["--tail", "12"]);
    assert_eq!((code, ns), (0, vec![23, 24, 25, 26]), "{stderr}");
    assert!(stderr.contains("warning: the log is invalid from entry 27"), "{stderr}");
}

/// `audit show --follow`, its stdout read line by line on a thread.
struct Follower {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    fn start(log: &Path, args: &[&str]) -> Follower {
        let mut child = Command::new(binary())
            .args(["audit", "show"])
            .arg(log)
            .args(["--follow", "--format", "json"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || stdout.lines().map_while(Result::ok).try_for_each(|l| sender.send(l)));
        Follower { child, lines }
    }

    /// The `n` details of the next `count` entries printed (within a generous minute).
    fn next(&self, count: usize) -> Vec<u64> {
        (0..count)
            .map(|_| {
                let line = self.lines.recv_timeout(Duration::from_secs(60)).expect("an entry printed while following");
                serde_json::from_str::<Value>(&line).unwrap()["details"]["n"].as_u64().unwrap()
            })
            .collect()
    }

    /// Ctrl-C: the follower stops, exit status 0, with nothing more printed.
    fn interrupt(self) -> String {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
        let output = self.child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(0), "stopped by SIGINT: {stderr}");
        assert!(self.lines.recv_timeout(Duration::from_secs(5)).is_err(), "nothing after the entries appended");
        stderr
    }
}

#[test]
fn show_follow_prints_entries_appended_after_it_started_across_a_segment_rotation() {
    let ws = Workspace::new();
    let log = ws.path("log");
    append(&log, 0..8, 5);
    let follower = Follower::start(&log, &["--tail", "2"]);
    assert_eq!(follower.next(2), vec![6, 7], "the last two entries first");
    // Entries 8..14: the second segment fills (5..10), a third is started (10..15).
    append(&log, 8..14, 5);
    assert_eq!(follower.next(6), (8..14).collect::<Vec<_>>());
    assert_eq!(store::segments(&log).unwrap().len(), 3);
    // Through the CLI's own writer too.
    let run = ws.run(&["audit", "keygen", "--key", "k"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = ws.run(&["audit", "append", "log", "--key", "k", "--json", r#"{"agent":"b","operation":"o","decision":"allow","n":99}"#]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(follower.next(1), vec![99]);
    let stderr = follower.interrupt();
    assert!(!stderr.contains("error"), "{stderr}");

    // Filters apply to what is followed; `--tail 0` shows only what is new.
    let follower = Follower::start(&log, &["--tail", "1", "--agent", "a1"]);
    assert_eq!(follower.next(1), vec![13]);
    append(&log, 14..20, 5);
    assert_eq!(follower.next(2), vec![16, 19]);
    follower.interrupt();
}

/// The peak resident set of `symbiont ARGS`, in kB (the child's `ru_maxrss`, from python3's
/// `resource`: the wrapper has no other child).
/// `audit prove` streams the log: a proof of entries at the start, the end and a segment's
/// boundaries verifies with `audit verify-proof` against the log's key; a proof with a changed path
/// does not; an entry past the latest checkpoint and a tampered log get no proof.
#[test]
fn prove_streams_a_multi_segment_log_and_its_proofs_verify() {
    const N: u64 = 1_000;
    let ws = Workspace::new();
    append(&ws.path("log"), 0..N, 64);
    ws.write("key.pub", symbiont_audit::keys::public_key_line(&signer().public_key()));
    for seq in [0, 1, 63, 64, 500, N - 1] {
        let seq = seq.to_string();
        let proof = ws.run(&["audit", "prove", "log", "--seq", &seq]);
        assert_eq!(proof.code, 0, "{} {}", proof.stdout, proof.stderr);
        ws.write("proof.json", &proof.stdout);
        let checked = ws.run(&["audit", "verify-proof", "--proof", "proof.json", "--key", "key.pub"]);
        assert_eq!((checked.code, checked.stdout.trim()), (0, format!("valid: entry {seq} is included in the checkpoint").as_str()));
        let mut changed: Value = serde_json::from_str(&proof.stdout).unwrap();
        changed["path"].as_array_mut().unwrap().swap(0, 1);
        ws.write("changed.json", changed.to_string());
        let refused = ws.run(&["audit", "verify-proof", "--proof", "changed.json", "--key", "key.pub"]);
        assert!(refused.code != 0 && refused.stdout.starts_with("INVALID"), "{} {}", refused.stdout, refused.stderr);
    }
    let past = ws.run(&["audit", "prove", "log", "--seq", &N.to_string()]);
    assert!(
        past.code != 0 && past.stderr.contains(&format!("not covered by the latest checkpoint (size {N})")),
        "{} {}",
        past.stdout,
        past.stderr
    );

    // One byte of an entry's details changed in the middle segment: no proof, of it or any other.
    let (_, middle) = store::segments(&ws.path("log")).unwrap()[5].clone();
    let text = std::fs::read_to_string(&middle).unwrap().replacen("\"n\":330", "\"n\":331", 1);
    std::fs::write(&middle, text).unwrap();
    let tampered = ws.run(&["audit", "prove", "log", "--seq", "0"]);
    assert!(tampered.code != 0 && tampered.stderr.contains("the log is invalid"), "{} {}", tampered.stdout, tampered.stderr);
}

fn peak_rss_kb(args: &[&str]) -> u64 {
    const MEASURE: &str = "import resource, subprocess, sys\n\
        done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n\
        print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n";
    let output = Command::new("python3").args(["-c", MEASURE]).arg(binary()).args(args).output().expect("python3 runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let (code, kb) = text.trim().split_once(' ').unwrap_or_else(|| panic!("{text}{}", String::from_utf8_lossy(&output.stderr)));
    assert_eq!(code, "0", "symbiont {args:?}");
    kb.parse().unwrap()
}

/// `verify` and `show` hold the entries whose signatures are being checked, not the log: their
/// peak memory is the same for 15,000 and 60,000 entries, give or take what the allocator and the
/// checking threads' timing make of it (the version that kept every line grew by about 680 bytes
/// an entry in `verify`, 30 MB here, and 2.6 kB in `show`).
#[test]
fn verify_and_show_read_in_memory_that_does_not_grow_with_the_log() {
    const N: u64 = 15_000;
    let ws = Workspace::new();
    let (small, large) = (ws.path("small"), ws.path("large"));
    append(&small, 0..N, 65_536);
    append(&large, 0..4 * N, 8 * N);
    assert_eq!(store::segments(&large).unwrap().len(), 1);
    const MARGIN_KB: u64 = 12 * 1024;
    for args in [
        vec!["audit", "verify"],
        vec!["audit", "show"],
        vec!["audit", "show", "--format", "json", "--agent", "a1"],
        vec!["audit", "prove", "--seq", "7"],
    ] {
        let at = |log: &Path| {
            let mut all: Vec<&str> = args.clone();
            all.insert(2, log.to_str().unwrap());
            peak_rss_kb(&all)
        };
        let (at_n, at_4n) = (at(&small), at(&large));
        assert!(at_4n < at_n + MARGIN_KB, "{args:?}: peak RSS {at_n} kB at {N} entries, {at_4n} kB at {} entries", 4 * N);
    }
}
