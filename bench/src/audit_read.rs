//! `bench/run audit-read`: reading an audit log with the `symbiont` binary, as a user does, at two
//! lengths: `symbiont audit verify LOG` and `symbiont audit show LOG --format json` (output to
//! /dev/null), entries/s and the child's peak resident memory (`ru_maxrss` from `wait4`). Reading
//! streams when the peak does not grow with the log: the goal is a peak at 4× the entries within
//! 1.25× the peak at 1×, with verification's entries/s at 4× no lower than 0.9× at 1×. The baseline
//! measured in the same run is `verify_strict` on one core (what verification must do per entry).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::Instant,
};

use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::json;
use symbiont_audit::{
    entry::{pae, ENTRY_TYPE},
    keys::{FileSigner, Signer},
    Log, LogOptions, Record,
};

pub const ARGS: &str = "[--entries N] [--runs N] [--symbiont PATH] [--dir DIR]";

struct Options {
    /// Entries of the smaller log; the larger has 4 times as many.
    entries: u64,
    runs: usize,
    /// The `symbiont` binary (default: the release build beside this one).
    symbiont: Option<PathBuf>,
    dir: Option<PathBuf>,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut o = Options { entries: 100_000, runs: 3, symbiont: None, dir: None };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("`{arg}` needs a value"));
        match arg.as_str() {
            "--entries" => o.entries = value()?.parse().ok().filter(|n| *n > 0).ok_or("`--entries` needs a positive number")?,
            "--runs" => o.runs = value()?.parse().ok().filter(|n| *n > 0).ok_or("`--runs` needs a positive number")?,
            "--symbiont" => o.symbiont = Some(PathBuf::from(value()?)),
            "--dir" => o.dir = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument `{other}` for `audit-read`")),
        }
    }
    Ok(o)
}

/// The record of entry `i`: what an agent runtime records for a tool call (as `bench/run audit`).
fn record(i: u64) -> Record {
    let operation = ["file_read", "https_request", "shell_exec", "file_write"][(i % 4) as usize];
    Record::from_json(json!({
        "agent": format!("agent-{}", i % 16),
        "operation": operation,
        "decision": if i.is_multiple_of(10) { "deny" } else { "allow" },
        "path": format!("/srv/data/project-{}/reports/file-{i:08}.json", i % 100),
        "bytes": (i * 37) % 65_536,
        "run_id": format!("run-{}", i / 1000),
    }))
    .expect("a valid record")
}

/// A log of `entries` entries, written by 2 threads with group commit.
fn build(dir: &Path, signer: &Arc<FileSigner>, entries: u64) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    let (log, _) = Log::open(dir, signer.clone(), LogOptions::default()).map_err(|e| e.to_string())?;
    std::thread::scope(|s| {
        let log = &log;
        let handles: Vec<_> = (0..2u64)
            .map(|t| {
                s.spawn(move || -> Result<(), String> {
                    let mut window = std::collections::VecDeque::new();
                    for i in (t..entries).step_by(2) {
                        if window.len() == 1024 {
                            let ticket: symbiont_audit::Ticket = window.pop_front().expect("a full window");
                            ticket.wait().map_err(|e| e.to_string())?;
                        }
                        window.push_back(log.submit(record(i)).map_err(|e| e.to_string())?);
                    }
                    window.into_iter().try_for_each(|t| t.wait().map(drop).map_err(|e| e.to_string()))
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().map_err(|_| "an appending thread panicked".to_string())?)
    })?;
    log.close().map(drop).map_err(|e| e.to_string())
}

/// One run of `symbiont ARGS` with its output to /dev/null: seconds, peak RSS in MB (10^6 bytes).
pub(crate) fn run_once(symbiont: &Path, args: &[&str]) -> Result<(f64, f64), String> {
    let start = Instant::now();
    let child = Command::new(symbiont)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", symbiont.display()))?;
    let (status, usage) = crate::peer_check::wait4(child.id()).map_err(|e| format!("cannot wait for symbiont: {e}"))?;
    let seconds = start.elapsed().as_secs_f64();
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(format!("symbiont {args:?} failed (wait status {status:#x})"));
    }
    // Linux gives ru_maxrss in KiB.
    Ok((seconds, usage.ru_maxrss as f64 * 1024.0 / 1e6))
}

/// Median entries/s and median peak RSS of `--runs` runs, after a warm-up (the files in the page
/// cache).
fn measure(o: &Options, symbiont: &Path, args: &[&str], entries: u64) -> Result<(f64, f64), String> {
    run_once(symbiont, args)?;
    let mut rates = Vec::new();
    let mut peaks = Vec::new();
    for _ in 0..o.runs {
        let (seconds, peak) = run_once(symbiont, args)?;
        rates.push(entries as f64 / seconds);
        peaks.push(peak);
    }
    Ok((crate::audit::median(&mut rates), crate::audit::median(&mut peaks)))
}

/// `verify_strict`/s on one thread over an entry's signed message, median of 3 runs of 500 ms.
fn raw_verify(signer: &FileSigner) -> Result<f64, String> {
    let body = json!({"agent": "agent-1", "operation": "https_request", "details": record(1).details, "seq": 1, "ts": "2026-12-07T15:00:00.000000Z"});
    let message = pae(ENTRY_TYPE, body.to_string().as_bytes());
    let signature = Signature::from_bytes(&signer.sign(&message).map_err(|e| e.to_string())?);
    let key = VerifyingKey::from_bytes(&signer.public_key()).map_err(|e| e.to_string())?;
    let verify = |_: usize| key.verify_strict(std::hint::black_box(&message), &signature).expect("a valid signature");
    Ok(crate::audit::median(&mut (0..3).map(|_| crate::audit::rate(1, 500, &verify)).collect::<Vec<_>>()))
}

pub fn run(args: &[String]) -> Result<(), String> {
    let o = options(args)?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the bench binary: {e}"))?;
    let release = exe.parent().ok_or("the bench binary is not in <target>/<profile>/")?;
    let symbiont = o.symbiont.clone().unwrap_or_else(|| release.join("symbiont"));
    let base = o.dir.clone().unwrap_or_else(|| release.parent().unwrap_or(release).join("tmp"));
    let root = base.join(format!("audit-read-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let result = run_in(&o, &symbiont, &root);
    let _ = std::fs::remove_dir_all(&root);
    result
}

fn run_in(o: &Options, symbiont: &Path, root: &Path) -> Result<(), String> {
    let signer = Arc::new(FileSigner::from_seed([7; 32]));
    let sizes = [("small", o.entries), ("large", 4 * o.entries)];
    println!("audit-read: {} in {}; logs of {} and {} entries", symbiont.display(), root.display(), sizes[0].1, sizes[1].1);
    let raw = raw_verify(&signer)?;
    println!("baseline: verify_strict on one core {raw:.0}/s\n");
    println!("{:<8} {:>9} {:>9} {:>16} {:>14}", "command", "log", "entries", "entries/s", "peak RSS MB");
    let mut keys = Vec::new();
    let mut results = Vec::new();
    for (label, entries) in sizes {
        let dir = root.join(label);
        build(&dir, &signer, entries)?;
        let bytes: u64 = symbiont_audit::store::segments(&dir)
            .map_err(|e| e.to_string())?
            .iter()
            .map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum();
        let log = dir.to_str().ok_or("a log path that is not UTF-8")?;
        for (command, args) in [("verify", vec!["audit", "verify", log]), ("show", vec!["audit", "show", log, "--format", "json"])] {
            let (rate, peak) = measure(o, symbiont, &args, entries)?;
            println!("{command:<8} {label:>9} {entries:>9} {rate:>16.0} {peak:>14.1}   ({:.0} MB of segments)", bytes as f64 / 1e6);
            keys.push(format!("{command}_entries_per_s_{label}={rate:.0} {command}_peak_rss_mb_{label}={peak:.1}"));
            results.push((command, label, rate, peak));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    let get =
        |command: &str, label: &str| results.iter().find(|r| r.0 == command && r.1 == label).map_or((f64::NAN, f64::NAN), |r| (r.2, r.3));
    let mut ratios = Vec::new();
    for command in ["verify", "show"] {
        let ((rate_s, peak_s), (rate_l, peak_l)) = (get(command, "small"), get(command, "large"));
        let (growth, speed) = (peak_l / peak_s, rate_l / rate_s);
        println!(
            "{command}: peak RSS at 4x the entries {growth:.2}x (goal <= 1.25: {}), entries/s {speed:.2}x (goal >= 0.9: {}), {:.2}x raw verify_strict",
            if growth <= 1.25 { "met" } else { "MISSED" },
            if speed >= 0.9 { "met" } else { "MISSED" },
            rate_l / raw
        );
        ratios
            .push(format!("{command}_rss_growth={growth:.3} {command}_speed_ratio={speed:.3} {command}_vs_raw_verify={:.3}", rate_l / raw));
    }
    println!("RESULT audit-read {} {} raw_verify_per_s={raw:.0} entries_small={}", keys.join(" "), ratios.join(" "), o.entries);
    Ok(())
}
