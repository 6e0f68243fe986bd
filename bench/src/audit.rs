//! `bench/run audit`: what a signed, chained, durable audit append costs against the Ed25519
//! signature inside it, and what verifying a log costs against the signature check inside it.
//!
//! 1. raw Ed25519 signatures/s (one thread, then two) over the message an entry really signs;
//! 2. appends/s through `Log` (sign, chain, group commit, `fdatasync`) on 1 and 2 threads, each
//!    keeping a window of tickets in flight, on a real filesystem;
//! 3. raw `verify` and `verify_strict`/s on one core (and a 64-signature batch, for reference);
//! 4. `verify_log` entries/s over a log of `--verify-entries` entries.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use ed25519_dalek::{Signature, VerifyingKey};
use serde_json::json;
use symbiont_audit::{
    entry::{pae, ENTRY_TYPE},
    keys::{FileSigner, Signer},
    verify::{verify_log, VerifyOptions},
    Log, LogOptions, Record,
};

pub const ARGS: &str =
    "[--appends N] [--window N] [--runs N] [--verify-entries N] [--verify-runs N] [--raw-ms N] [--dir DIR] [--keep] [--only appends|verify]";

struct Options {
    /// Records each appending thread submits per run.
    appends: usize,
    /// Tickets each appending thread keeps in flight before waiting for the oldest.
    window: usize,
    /// Runs per appends measurement (fresh log each).
    runs: usize,
    /// Size of the log that `verify_log` is timed on.
    verify_entries: usize,
    verify_runs: usize,
    /// Length of each raw sign/verify run, in ms.
    raw_ms: u64,
    /// Where the logs are written; `<target>/tmp` by default.
    dir: Option<PathBuf>,
    keep: bool,
    /// Run only the appends or only the verification part (for profiling); no RESULT line.
    only: Option<String>,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        appends: 40_000,
        window: 1024,
        runs: 3,
        verify_entries: 100_000,
        verify_runs: 3,
        raw_ms: 500,
        dir: None,
        keep: false,
        only: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut number = || -> Result<usize, String> {
            let v = args.next().ok_or_else(|| format!("`{arg}` needs a number"))?;
            v.parse::<usize>().ok().filter(|v| *v > 0).ok_or_else(|| format!("`{arg}` needs a positive number, found `{v}`"))
        };
        match arg.as_str() {
            "--appends" => o.appends = number()?,
            "--window" => o.window = number()?,
            "--runs" => o.runs = number()?,
            "--verify-entries" => o.verify_entries = number()?,
            "--verify-runs" => o.verify_runs = number()?,
            "--raw-ms" => o.raw_ms = number()? as u64,
            "--dir" => o.dir = Some(PathBuf::from(args.next().ok_or("`--dir` needs a directory")?)),
            "--keep" => o.keep = true,
            "--only" => match args.next().map(String::as_str) {
                Some(part @ ("appends" | "verify")) => o.only = Some(part.to_string()),
                _ => return Err("`--only` needs `appends` or `verify`".into()),
            },
            other => return Err(format!("unknown argument `{other}` for `audit`")),
        }
    }
    Ok(o)
}

/// The record of entry `i`: what an agent runtime records for a tool call.
fn record(thread: usize, i: usize) -> Record {
    let operation = ["file_read", "https_request", "shell_exec", "file_write"][i % 4];
    Record::from_json(json!({
        "agent": format!("agent-{}", (thread * 7 + i) % 16),
        "operation": operation,
        "decision": if i.is_multiple_of(10) { "deny" } else { "allow" },
        "path": format!("/srv/data/project-{}/reports/file-{i:08}.json", i % 100),
        "bytes": (i * 37) % 65_536,
        "request_id": format!("req-{thread}-{i:010}"),
    }))
    .expect("a valid record")
}

pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Operations/s of `op` run on `threads` threads for about `ms` ms, after a short warm-up.
pub(crate) fn rate(threads: usize, ms: u64, op: &(impl Fn(usize) + Sync)) -> f64 {
    let run = |budget: Duration| -> (u64, Duration) {
        let start = Instant::now();
        let counts: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    s.spawn(move || {
                        let mut n = 0u64;
                        while start.elapsed() < budget {
                            for i in 0..64 {
                                op(t * 1_000_003 + i);
                            }
                            n += 64;
                        }
                        n
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a benchmark thread")).collect()
        });
        (counts.iter().sum(), start.elapsed())
    };
    run(Duration::from_millis(ms / 5 + 1));
    let (n, elapsed) = run(Duration::from_millis(ms));
    n as f64 / elapsed.as_secs_f64()
}

/// The filesystem `path` is on, from `/proc/mounts` (the longest mount point above it).
fn filesystem(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && path.starts_with(f[1])).then(|| (f[1].len(), format!("{} on {} ({})", f[2], f[1], f[0])))
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown filesystem".into(), |(_, fs)| fs)
}

struct AppendRun {
    appends_per_s: f64,
    batches: u64,
    syncs: u64,
    cpu: Cpu,
}

/// CPU time over an interval, in cores busy: this process, and the whole machine (which includes
/// the kernel's writeback and journal threads, and anything else running).
#[derive(Clone, Copy)]
struct Cpu {
    process: f64,
    machine: f64,
}

/// Clock ticks of CPU time so far: (this process, the whole machine busy, the whole machine).
fn cpu_ticks() -> (u64, u64, u64) {
    let own = std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| {
        // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
        let rest = s.rsplit_once(')')?.1;
        let f: Vec<u64> = rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse().ok()).collect();
        Some(f.iter().sum::<u64>())
    });
    let all = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        let f: Vec<u64> = s.lines().next()?.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
        let total: u64 = f.iter().take(8).sum();
        let idle = f.get(3)? + f.get(4)?;
        Some((total - idle, total))
    });
    let (busy, total) = all.unwrap_or((0, 0));
    (own.unwrap_or(0), busy, total)
}

impl Cpu {
    fn between(before: (u64, u64, u64), after: (u64, u64, u64), wall: Duration) -> Cpu {
        let ticks_per_s = 100.0; // USER_HZ on Linux
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let machine_total = (after.2 - before.2) as f64;
        Cpu {
            process: (after.0 - before.0) as f64 / ticks_per_s / wall.as_secs_f64().max(1e-9),
            machine: if machine_total > 0.0 { (after.1 - before.1) as f64 / machine_total * cores } else { f64::NAN },
        }
    }
}

/// One appends measurement: a fresh log, `threads` threads each submitting `per_thread` records
/// with at most `window` tickets in flight, timed until the last ticket is durable. `close` (the
/// final checkpoint) is not timed.
fn append_run(dir: &Path, signer: &Arc<FileSigner>, threads: usize, per_thread: usize, window: usize) -> Result<AppendRun, String> {
    let _ = std::fs::remove_dir_all(dir);
    let (log, _) = Log::open(dir, signer.clone(), LogOptions::default()).map_err(|e| e.to_string())?;
    let records: Vec<Vec<Record>> = (0..threads).map(|t| (0..per_thread).map(|i| record(t, i)).collect()).collect();
    let before = log.commit_stats();
    let ticks = cpu_ticks();
    let start = Instant::now();
    std::thread::scope(|s| -> Result<(), String> {
        let handles: Vec<_> = records
            .into_iter()
            .map(|records| {
                let log = &log;
                s.spawn(move || -> Result<(), String> {
                    let mut in_flight = VecDeque::with_capacity(window);
                    for record in records {
                        if in_flight.len() == window {
                            let ticket: symbiont_audit::Ticket = in_flight.pop_front().expect("a full window");
                            ticket.wait().map_err(|e| e.to_string())?;
                        }
                        in_flight.push_back(log.submit(record).map_err(|e| e.to_string())?);
                    }
                    in_flight.into_iter().try_for_each(|t| t.wait().map(drop).map_err(|e| e.to_string()))
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| h.join().map_err(|_| "an appending thread panicked".to_string())?)
    })?;
    let elapsed = start.elapsed();
    let cpu = Cpu::between(ticks, cpu_ticks(), elapsed);
    let after = log.commit_stats();
    log.close().map_err(|e| e.to_string())?;
    let total = (threads * per_thread) as u64;
    if after.entries - before.entries != total {
        return Err(format!("the log committed {} entries, expected {total}", after.entries - before.entries));
    }
    Ok(AppendRun {
        appends_per_s: total as f64 / elapsed.as_secs_f64(),
        batches: after.batches - before.batches,
        syncs: after.syncs - before.syncs,
        cpu,
    })
}

pub fn run(args: &[String]) -> Result<(), String> {
    let o = options(args)?;
    let base = match &o.dir {
        Some(dir) => dir.clone(),
        None => {
            // <target>/release/symbiont-bench → <target>/tmp
            let exe = std::env::current_exe().map_err(|e| format!("cannot find the bench binary: {e}"))?;
            exe.parent().and_then(Path::parent).ok_or("the bench binary is not in <target>/<profile>/")?.join("tmp")
        }
    };
    let root = base.join(format!("audit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let result = run_in(&o, &root);
    if !o.keep {
        let _ = std::fs::remove_dir_all(&root);
    }
    result
}

fn run_in(o: &Options, root: &Path) -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("audit: logs in {} ({}), {cores} cores", root.display(), filesystem(root));
    // Wall-clock rates on a shared machine: say how busy it was before we started.
    let (before, start) = (cpu_ticks(), Instant::now());
    std::thread::sleep(Duration::from_millis(500));
    let busy = Cpu::between(before, cpu_ticks(), start.elapsed()).machine;
    println!(
        "machine: {busy:.2} of {cores} cores busy before the benchmark{}",
        if busy > 0.2 { " (WARNING: something else is running; the rates below are lower than on an idle machine)" } else { "" }
    );

    // The message a typical entry signs, and a signature over it.
    let signer = Arc::new(FileSigner::from_seed([7; 32]));
    let sample_dir = root.join("sample");
    let (log, _) = Log::open(&sample_dir, signer.clone(), LogOptions::default()).map_err(|e| e.to_string())?;
    log.append(record(0, 1)).map_err(|e| e.to_string())?;
    log.close().map_err(|e| e.to_string())?;
    let mut first = None;
    let mut keep_first = |entry, line| {
        first.get_or_insert((entry, line));
    };
    symbiont_audit::verify::verify_log_each(&sample_dir, &VerifyOptions::default(), &mut keep_first).map_err(|e| e.to_string())?;
    let (entry, line): (symbiont_audit::Entry, symbiont_audit::store::RawLine) = first.ok_or("the sample log has no entry")?;
    let message = pae(ENTRY_TYPE, &entry.body().map_err(|e| e.to_string())?);
    println!("entry: {} bytes on disk, signed message {} bytes\n", line.bytes.len() + 1, message.len());

    match o.only.as_deref() {
        Some("appends") => {
            appends(o, root, &signer, None)?;
            return Ok(());
        }
        Some(_) => {
            log_verify(o, root, &signer, None)?;
            return Ok(());
        }
        None => {}
    }
    let (sign_1, sign_2) = raw_sign(o, &signer, &message);
    let [(appends_1, ratio_1), (appends_2, ratio_2)] = appends(o, root, &signer, Some(sign_1))?;
    let raw_verify = raw_verify(o, &signer, &message)?;
    let (verify_entries, verify_ratio) = log_verify(o, root, &signer, Some(raw_verify))?;
    println!(
        "RESULT audit appends_per_s={appends_2:.0} sign_per_s={sign_1:.0} verify_entries_per_s={verify_entries:.0} raw_verify_per_s={raw_verify:.0} \
         appends_1t_per_s={appends_1:.0} appends_ratio_1t={ratio_1:.3} appends_ratio_2t={ratio_2:.3} sign_2t_per_s={sign_2:.0} verify_ratio={verify_ratio:.3} cores={cores}"
    );
    Ok(())
}

/// Raw signatures/s over `message`, on one thread and on two.
fn raw_sign(o: &Options, signer: &FileSigner, message: &[u8]) -> (f64, f64) {
    let sign = |_: usize| {
        std::hint::black_box(signer.sign(std::hint::black_box(message)).expect("signing"));
    };
    let sign_1 = median(&mut (0..3).map(|_| rate(1, o.raw_ms, &sign)).collect::<Vec<_>>());
    let sign_2 = median(&mut (0..3).map(|_| rate(2, o.raw_ms, &sign)).collect::<Vec<_>>());
    println!("raw Ed25519 sign (ed25519-dalek, {}-byte message), median of 3 runs of {} ms:", message.len(), o.raw_ms);
    println!("  1 thread   {sign_1:>10.0} signatures/s");
    println!("  2 threads  {sign_2:>10.0} signatures/s ({:.2}x one thread)\n", sign_2 / sign_1);
    (sign_1, sign_2)
}

/// Appends/s on 1 and 2 threads (median run), and each as a fraction of `sign_1 × threads`.
fn appends(o: &Options, root: &Path, signer: &Arc<FileSigner>, sign_1: Option<f64>) -> Result<[(f64, f64); 2], String> {
    println!(
        "appends through Log (sign + chain + group commit + fdatasync), {} records per thread, {} tickets in flight per thread, median of {} runs:",
        o.appends, o.window, o.runs
    );
    println!(
        "  {:<8} {:>12} {:>12} {:>17} {:>9} {:>9} {:>14} {:>19}",
        "threads", "appends/s", "best", "vs sign x threads", "batches", "fsyncs", "entries/batch", "cores busy (us/all)"
    );
    let sign_1 = sign_1.unwrap_or(f64::NAN);
    let mut out = [(0.0, 0.0); 2];
    for (slot, threads) in out.iter_mut().zip([1usize, 2]) {
        let mut runs = Vec::new();
        for r in 0..o.runs {
            let dir = root.join(format!("appends-{threads}-{r}"));
            runs.push(append_run(&dir, signer, threads, o.appends, o.window)?);
            let _ = std::fs::remove_dir_all(&dir);
        }
        let mut rates: Vec<f64> = runs.iter().map(|r| r.appends_per_s).collect();
        let med = median(&mut rates);
        let best = rates.iter().copied().fold(0.0, f64::max);
        let mid = runs.iter().find(|r| r.appends_per_s == med).expect("the median run");
        let ratio = med / (sign_1 * threads as f64);
        println!(
            "  {:<8} {:>12.0} {:>12.0} {:>16.0}% {:>9} {:>9} {:>14.1} {:>19}",
            threads,
            med,
            best,
            ratio * 100.0,
            mid.batches,
            mid.syncs,
            (threads * o.appends) as f64 / mid.batches.max(1) as f64,
            format!("{:.2} / {:.2}", mid.cpu.process, mid.cpu.machine)
        );
        *slot = (med, ratio);
    }
    let verdict = |r: f64| if r >= 0.8 { "met" } else { "MISSED" };
    println!(
        "  goal: appends/s >= 80% of raw sign rate x threads: 1 thread {} ({:.0}%), 2 threads {} ({:.0}%)\n",
        verdict(out[0].1),
        out[0].1 * 100.0,
        verdict(out[1].1),
        out[1].1 * 100.0
    );
    Ok(out)
}

/// `verify_strict`/s on one thread (the baseline), with `verify` and a 64-signature batch for
/// reference.
fn raw_verify(o: &Options, signer: &FileSigner, message: &[u8]) -> Result<f64, String> {
    let signature = Signature::from_bytes(&signer.sign(message).map_err(|e| e.to_string())?);
    let key = VerifyingKey::from_bytes(&signer.public_key()).map_err(|e| e.to_string())?;
    let verify = |_: usize| {
        key.verify_strict(std::hint::black_box(message), &signature).expect("a valid signature");
    };
    let verify_loose = |_: usize| {
        ed25519_dalek::Verifier::verify(&key, std::hint::black_box(message), &signature).expect("a valid signature");
    };
    let messages: Vec<&[u8]> = vec![message; 64];
    let (signatures, keys) = (vec![signature; 64], vec![key; 64]);
    let batch = |_: usize| {
        ed25519_dalek::verify_batch(std::hint::black_box(&messages), &signatures, &keys).expect("a valid batch");
    };
    let raw_verify = median(&mut (0..3).map(|_| rate(1, o.raw_ms, &verify)).collect::<Vec<_>>());
    let raw_verify_loose = median(&mut (0..3).map(|_| rate(1, o.raw_ms, &verify_loose)).collect::<Vec<_>>());
    let batch_64 = median(&mut (0..3).map(|_| 64.0 * rate(1, o.raw_ms, &batch)).collect::<Vec<_>>());
    println!("raw Ed25519 verification, one thread, median of 3 runs of {} ms:", o.raw_ms);
    println!("  verify_strict        {raw_verify:>10.0} signatures/s   (the baseline: what verify_log must check per entry)");
    println!("  verify               {raw_verify_loose:>10.0} signatures/s");
    println!("  verify_batch of 64   {batch_64:>10.0} signatures/s   (cofactorless, probabilistic on torsion: not a substitute)\n");
    Ok(raw_verify)
}

/// Builds a log of `--verify-entries` entries and times `verify_log` over it: entries/s (median
/// run) and its ratio to `raw_verify`.
fn log_verify(o: &Options, root: &Path, signer: &Arc<FileSigner>, raw_verify: Option<f64>) -> Result<(f64, f64), String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let verify_dir = root.join("verify");
    let start = Instant::now();
    let threads = 2usize.min(cores);
    {
        let (log, _) = Log::open(&verify_dir, signer.clone(), LogOptions::default()).map_err(|e| e.to_string())?;
        let per_thread = o.verify_entries.div_ceil(threads);
        std::thread::scope(|s| {
            for t in 0..threads {
                let log = &log;
                let n = per_thread.min(o.verify_entries - t * per_thread);
                s.spawn(move || {
                    let mut in_flight = VecDeque::new();
                    for i in 0..n {
                        if in_flight.len() == o.window {
                            let ticket: symbiont_audit::Ticket = in_flight.pop_front().expect("a full window");
                            ticket.wait().expect("durable");
                        }
                        in_flight.push_back(log.submit(record(t, i)).expect("submit"));
                    }
                    in_flight.into_iter().for_each(|t| {
                        t.wait().expect("durable");
                    });
                });
            }
        });
        log.close().map_err(|e| e.to_string())?;
    }
    let bytes: u64 = std::fs::read_dir(verify_dir.join("segments"))
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "verify_log over a log of {} entries ({:.1} MB, written in {:.1} s), 1 warm-up + {} timed runs:",
        o.verify_entries,
        bytes as f64 / 1e6,
        start.elapsed().as_secs_f64(),
        o.verify_runs
    );
    let mut rates = Vec::new();
    for run in 0..=o.verify_runs {
        let start = Instant::now();
        let report = verify_log(&verify_dir, &VerifyOptions::default()).map_err(|e| e.to_string())?;
        let elapsed = start.elapsed();
        if !report.is_valid() || report.entries != o.verify_entries as u64 {
            return Err(format!(
                "verify_log: expected {} valid entries, found {} ({:?})",
                o.verify_entries, report.entries, report.finding
            ));
        }
        if run > 0 {
            rates.push(o.verify_entries as f64 / elapsed.as_secs_f64());
        }
    }
    let verify_entries = median(&mut rates);
    let raw_verify = raw_verify.unwrap_or(f64::NAN);
    let ratio = verify_entries / raw_verify;
    println!(
        "  {:.0} entries/s median ({:.3} s), best {:.0}; {:.2}x raw verify_strict on one core",
        verify_entries,
        o.verify_entries as f64 / verify_entries,
        rates.iter().copied().fold(0.0, f64::max),
        ratio
    );
    println!(
        "  goal: >= 2x raw verify_strict/s ({:.0}): {}; per core ({cores} cores): {:.2}x\n",
        2.0 * raw_verify,
        if ratio >= 2.0 { "met" } else { "MISSED" },
        ratio / cores as f64
    );
    Ok((verify_entries, ratio))
}
