//! The audit log's durability promise under `kill -9`: an entry whose seq `symbiont audit append`
//! printed is on disk, whatever moment the writer dies at.
//!
//! Each trial runs the real binary on a log, feeds it records on stdin as fast as it takes them,
//! collects the seqs it acknowledges on stdout, and kills it with SIGKILL after a random delay
//! (seeded; sometimes before its first acknowledgement, even before it has opened the log). Then
//! `Log::open` must accept the log (cutting a torn tail, never refusing it as corrupt), `verify_log`
//! must find it valid, and every acknowledged seq must hold exactly the record sent for it. The
//! entries committed before the trial must be untouched (same Merkle root), and every entry after
//! them must be the record sent at that position: recovery only ever cuts an unfinished tail.
//!
//! Logs are reused across trials, so recovery after recovery is exercised, and replaced by a fresh
//! log every `TRIALS_PER_LOG` trials (the first trial on a log also covers creating it).
//!
//! `SYMBIONT_CRASH_TRIALS` sets the number of trials (200 by default; `tests/crash-1000` runs
//! 1,000), `SYMBIONT_CRASH_SEED` the seed.

use std::{
    fs::File,
    io::{BufRead, BufReader, BufWriter, Write},
    path::Path,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{json, Map, Value};
use symbiont_audit::{
    keys::FileSigner,
    merkle,
    verify::{verify_log_each, VerifyOptions},
    Log, LogOptions,
};

use crate::cli::binary;

const DEFAULT_TRIALS: usize = 200;
const DEFAULT_SEED: u64 = 0x5EED_A0D1_7C4A_54ED;
/// Trials on one log before a fresh one.
const TRIALS_PER_LOG: usize = 3;
/// Records sent to one writer at most: bounds a trial's entries (each trial verifies its whole log
/// three times), also when a loaded machine delays the kill.
const MAX_RECORDS: u64 = 1_000;
/// Trials run side by side, each lane on logs of its own.
const LANES: usize = 2;

/// SplitMix64: a small seeded generator, so that a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name} must be a number, found `{v}`")),
        Err(_) => default,
    }
}

/// Record `n` of trial `trial`, as sent on stdin.
fn record_json(trial: usize, n: u64) -> Value {
    json!({
        "agent": format!("agent-{}", n % 5),
        "operation": if n.is_multiple_of(3) { "file_write" } else { "https_request" },
        "decision": if n.is_multiple_of(7) { "deny" } else { "allow" },
        "trial": trial,
        "n": n,
        "path": format!("/srv/data/trial-{trial}/object-{n:08}.json"),
        "note": "crash test \u{2014} \"quoted\", tab\tand é",
    })
}

/// What the entry of record `n` of trial `trial` must hold: agent, operation, decision, details.
fn expected(trial: usize, n: u64) -> (String, String, String, Map<String, Value>) {
    let Value::Object(mut map) = record_json(trial, n) else { unreachable!() };
    let mut take = |k: &str| match map.remove(k) {
        Some(Value::String(s)) => s,
        other => panic!("{k}: {other:?}"),
    };
    let (agent, operation, decision) = (take("agent"), take("operation"), take("decision"));
    (agent, operation, decision, map)
}

/// When to kill the writer.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// This long after it started, whether or not it has acknowledged anything.
    AfterStart(Duration),
    /// This long after its first acknowledgement.
    AfterFirstAck(Duration),
}

/// One run of the writer: what it acknowledged before it was killed.
struct Run {
    acked: Vec<u64>,
    /// Whether it was still running when killed (it must be: it only stops when stdin ends).
    killed_running: bool,
    /// From its start to its first acknowledgement, when there was one before the kill.
    first_ack: Option<Duration>,
}

fn run_and_kill(log: &Path, key: &Path, stderr: &Path, trial: usize, rate: Option<u64>, kill: Kill) -> Run {
    let mut child = Command::new(binary())
        .args(["audit", "append"])
        .arg(log)
        .arg("--key")
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(File::create(stderr).expect("a stderr file"))
        .spawn()
        .expect("symbiont runs");
    let started = Instant::now();
    let stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    // Records at `rate` a second (or as fast as the writer takes them), until its stdin breaks (it
    // was killed), or `MAX_RECORDS` of them: then stdin stays open (the writer waits for more)
    // until the kill.
    let (killed, wait_for_kill) = std::sync::mpsc::channel::<()>();
    let feeder = std::thread::spawn(move || {
        let mut stdin = BufWriter::with_capacity(16 * 1024, stdin);
        for n in 0..MAX_RECORDS {
            if writeln!(stdin, "{}", record_json(trial, n)).is_err() {
                return;
            }
            if let Some(rate) = rate.filter(|_| n % 4 == 3) {
                if stdin.flush().is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_micros((n + 1) * 1_000_000 / rate).saturating_sub(started.elapsed()));
            }
        }
        if stdin.flush().is_ok() {
            let _ = wait_for_kill.recv();
        }
    });
    // Acknowledged seqs, until its stdout closes (it died; what it printed before is still read).
    let (first, first_ack) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if acked.is_empty() {
                let _ = first.send(started.elapsed());
            }
            acked.push(line.trim().parse::<u64>().unwrap_or_else(|_| panic!("not a seq: `{line}`")));
        }
        acked
    });
    let first_ack = match kill {
        Kill::AfterStart(delay) => {
            std::thread::sleep(delay.saturating_sub(started.elapsed()));
            first_ack.try_recv().ok()
        }
        Kill::AfterFirstAck(delay) => {
            // The writer opens (verifies) the log first; it stops only on an error.
            let at = first_ack.recv_timeout(Duration::from_secs(120)).ok();
            std::thread::sleep(delay);
            at
        }
    };
    let killed_running = child.try_wait().expect("the child's status").is_none();
    child.kill().expect("SIGKILL");
    child.wait().expect("the killed child is reaped");
    drop(killed);
    feeder.join().expect("the feeder");
    let acked = reader.join().expect("the reader");
    Run { acked, killed_running, first_ack }
}

/// What a lane of trials saw.
#[derive(Default)]
struct Tally {
    trials: usize,
    logs: usize,
    before_first_ack: usize,
    truncations: usize,
    acked: u64,
    max_acked: usize,
    longest: u64,
    writing: Duration,
    recovering: Duration,
}

/// Trials `lane`, `lane + LANES`, … of `trials`, on logs of its own under `dir`.
fn lane(lane: usize, trials: usize, seed: u64, dir: &Path, key: &Path) -> Tally {
    let signer = Arc::new(FileSigner::load(key).expect("the key"));
    let mut rng = Rng(seed ^ (lane as u64).wrapping_mul(0xA076_1D64_78BD_642F));
    let stderr = dir.join(format!("stderr-{lane}.txt"));
    let mut tally = Tally::default();
    let mut log = dir.join(format!("lane-{lane}-log-0"));
    // What the log held before this trial: its entries and their Merkle root.
    let (mut base, mut base_root) = (0u64, merkle::empty_root());
    // How long the writer took to its first acknowledgement last time: early kills fall in it.
    let mut startup = Duration::from_millis(20);
    for trial in (lane..trials).step_by(LANES) {
        if tally.trials > 0 && tally.trials.is_multiple_of(TRIALS_PER_LOG) {
            log = dir.join(format!("lane-{lane}-log-{}", tally.logs));
            (base, base_root) = (0, merkle::empty_root());
        }
        if base == 0 {
            tally.logs += 1;
        }
        tally.trials += 1;
        // One kill in eight at any moment before the writer's first acknowledgement (before it
        // has opened the log, while it recovers it, while it commits its first batch); the others
        // 2 to 100 ms after its first acknowledgement.
        let kill = if rng.below(8) == 0 {
            Kill::AfterStart(Duration::from_micros(rng.below(startup.as_micros().max(1) as u64)))
        } else {
            Kill::AfterFirstAck(Duration::from_micros(2_000 + rng.below(98_000)))
        };
        // Records as fast as the writer takes them (large batches), or at 8,000 or 2,000 a second
        // (small batches, down to one entry per fdatasync).
        let rate = [None, Some(8_000), Some(2_000)][rng.below(3) as usize];
        let context = format!("trial {trial} (seed {seed:#x}, lane {lane}, log {}, {kill:?}, rate {rate:?})", log.display());
        let started = Instant::now();
        let run = run_and_kill(&log, key, &stderr, trial, rate, kill);
        tally.writing += started.elapsed();
        let child_errors = std::fs::read_to_string(&stderr).unwrap_or_default();
        assert!(run.killed_running, "{context}: the writer stopped before it was killed:\n{child_errors}");
        if let Some(first_ack) = run.first_ack {
            startup = first_ack;
        }
        if run.acked.is_empty() {
            assert!(matches!(kill, Kill::AfterStart(_)), "{context}: no acknowledgement in 2 minutes:\n{child_errors}");
            tally.before_first_ack += 1;
        }
        // Acknowledgements come in order, one per record, from where the log was.
        let expected_acks: Vec<u64> = (base..base + run.acked.len() as u64).collect();
        assert_eq!(run.acked, expected_acks, "{context}: acknowledgements out of order or not from entry {base}");
        tally.acked += run.acked.len() as u64;
        tally.max_acked = tally.max_acked.max(run.acked.len());

        let started = Instant::now();
        // Recovery: the writer's open must accept the log, cutting at most an unfinished tail.
        let (writer, opened) = Log::open(&log, signer.clone(), LogOptions::default())
            .unwrap_or_else(|e| panic!("{context}: Log::open refuses the log after SIGKILL: {e}\n{child_errors}"));
        tally.truncations += usize::from(opened.truncated.is_some());
        writer.close().unwrap_or_else(|e| panic!("{context}: closing the recovered log: {e}"));

        let (mut kept, mut leaves) = (Vec::new(), Vec::new());
        let mut keep = |entry, line: symbiont_audit::store::RawLine| {
            leaves.push(merkle::leaf_hash(&line.bytes));
            kept.push(entry);
        };
        let report = verify_log_each(&log, &VerifyOptions::default(), &mut keep).expect("the log is readable");
        assert!(report.is_valid(), "{context}: the recovered log is invalid: {:?}", report.finding);
        assert!(report.torn_tail.is_none(), "{context}: a torn tail is left after recovery: {:?}", report.torn_tail);
        assert_eq!(report.entries, kept.len() as u64);
        let acked_end = base + run.acked.len() as u64;
        assert!(
            report.entries >= acked_end,
            "{context}: {} entries after recovery, but entries up to {} were acknowledged",
            report.entries,
            acked_end as i64 - 1
        );
        assert_eq!(merkle::root(&leaves[..base as usize]), base_root, "{context}: entries before the trial were changed");
        // Every entry the trial added, acknowledged or not, is the record sent at its position.
        for entry in &kept[base as usize..] {
            let (agent, operation, decision, details) = expected(trial, entry.seq - base);
            assert_eq!(
                (&entry.agent, &entry.operation, &entry.decision, &entry.details),
                (&agent, &operation, &decision, &details),
                "{context}: entry {} does not hold record {} of the trial",
                entry.seq,
                entry.seq - base
            );
        }
        (base, base_root) = (report.entries, report.root);
        tally.longest = tally.longest.max(report.entries);
        tally.recovering += started.elapsed();
    }
    tally
}

#[test]
fn every_acknowledged_entry_survives_sigkill() {
    let trials = env_number("SYMBIONT_CRASH_TRIALS", DEFAULT_TRIALS as u64) as usize;
    let seed = env_number("SYMBIONT_CRASH_SEED", DEFAULT_SEED);
    let temp = tempfile::tempdir().expect("a temporary directory");
    let key = temp.path().join("audit.key");
    FileSigner::generate().and_then(|s| s.write(&key)).expect("a key");
    let start = Instant::now();
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let lanes: Vec<_> = (0..LANES)
            .map(|l| {
                s.spawn({
                    let (dir, key) = (temp.path(), &key);
                    move || lane(l, trials, seed, dir, key)
                })
            })
            .collect();
        lanes.into_iter().map(|l| l.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    let sum = |f: fn(&Tally) -> usize| tallies.iter().map(f).sum::<usize>();
    let max = |f: fn(&Tally) -> u64| tallies.iter().map(f).max().unwrap_or(0);
    let seconds = |f: fn(&Tally) -> Duration| tallies.iter().map(f).sum::<Duration>().as_secs_f64();
    assert_eq!(sum(|t| t.trials), trials);
    println!(
        "audit crash test: {trials} trials (seed {seed:#x}, {LANES} lanes) on {} logs in {:.1} s \
         ({:.1} s running and killing writers, {:.1} s recovering and checking): \
         {} killed before the first acknowledgement, {} acknowledged entries (at most {} in one trial), all present; \
         {} torn tails cut; longest log {} entries",
        sum(|t| t.logs),
        start.elapsed().as_secs_f64(),
        seconds(|t| t.writing),
        seconds(|t| t.recovering),
        sum(|t| t.before_first_ack),
        sum(|t| t.acked as usize),
        max(|t| t.max_acked as u64),
        sum(|t| t.truncations),
        max(|t| t.longest),
    );
}
