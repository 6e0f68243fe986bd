//! `symbiont-bench`: the project's benchmarks. Run them through `bench/run NAME [args]`, which
//! builds this binary in release mode first; `bench/README.md` says what each one measures.
//!
//! Every benchmark prints a table for people and ends with exactly one line
//! `RESULT <name> key=value …` for scripts.

mod audit;
mod audit_read;
mod bus;
mod lsp;
mod lsp_large;
mod peer_check;
mod sandbox;
mod scaling;
mod service;
mod workload;

/// The same allocator as the `symbiont` binary, so the numbers are the tool's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::{Command, ExitCode},
    sync::Arc,
    time::{Duration, Instant},
};

use symbiont_analysis::AnalysisHost;

use crate::workload::Workload;

/// Benchmarks: name, arguments, one-line description.
/// `policy` is not in this binary: it lives in `bench/policy-vs-cedar`, a crate outside the
/// workspace (it builds cedar-policy), which `bench/run policy` builds and runs.
const BENCHMARKS: &[(&str, &str, &str)] = &[
    (
        "parse",
        "[--mb N] [--iters N] [--file-kb N] [--agents N] [--peak-mb N | --no-peak]",
        "lex, parse and parse+analysis throughput on a ~10 MB workload built from the corpus, a byte-scan baseline, the time per agent of one file of N and of 4N agents, and peak RSS for 100 MB",
    ),
    (
        "audit",
        audit::ARGS,
        "Ed25519 signatures/s, then signed+chained+durable appends/s through the audit log (group commit) on 1 and 2 threads; raw verify/s, then verify_log entries/s",
    ),
    (
        "audit-read",
        audit_read::ARGS,
        "symbiont audit verify and audit show of logs of N and 4N entries: entries/s and the peak RSS of each (streaming: the peak must not grow with the log), against verify_strict/s on one core",
    ),
    (
        "bus",
        bus::ARGS,
        "1,000 agents on the inter-agent bus (encrypt, sign, decide, audit, deliver) against plain tokio mpsc channels: msgs/s flat out, send→receive latency when paced, its added p99 over the disk's own fdatasync p99 measured beside the log, RSS per idle lightweight agent",
    ),
    (
        "lsp",
        lsp::ARGS,
        "symbiont-lsp over its stdio: didChange → publishDiagnostics latency for 200 edits of a 5,000-line .sym file (against a fresh parse of the same texts) and of a 5,000-line Python file bound to an agent (against `ruff server` on the same edits); RSS after opening a 100,000-line workspace",
    ),
    (
        "lsp-large",
        lsp_large::ARGS,
        "one huge generated .sym file (default 50 MB) opened in symbiont-lsp: a small file's request that needs the workspace's names meanwhile, the time to the big file's diagnostics and the server's peak RSS growth, against symbiont check on the same file in the same run (time, peak RSS) and the input's size",
    ),
    (
        "peer-check",
        peer_check::ARGS,
        "symbiont check against ast-grep and Semgrep (PyPI, in a venv) on requests + express + ripgrep sources (`--corpus large`: + pip, pygments, webpack, eslint), same three rules: files, lines, findings, CPU s, peak RSS",
    ),
    (
        "sandbox",
        sandbox::ARGS,
        "a trivial Python agent (one broker message) through `symbiont run` and AgentRuntime::run at Tier 1 (runc) and Tier 2 (runsc), against raw bollard create/start/wait/remove of `python3 -c pass`; median, p90 and a per-step profile",
    ),
    (
        "service",
        service::ARGS,
        "one AgentRuntime holding sandboxed Tier 1 agents: message round trip sandbox → broker → bus → broker → sandbox (p50, p99) against two containers over a raw Unix socket; idle agents held at once and memory per agent (container, service); first output of `symbiont run` handed to `symbiont up --warm 1` against `docker run`",
    ),
    (
        "policy",
        "[--requests N] [--seed N] [--runs N] [--run-ms N] [--samples N]",
        "symbiont-policy decisions/s and latency on a 10-policy set with guards, against cedar-policy on the same rules (first build ~20 min)",
    ),
];

/// The hidden subcommand the `parse` benchmark re-executes itself with to measure peak memory in
/// a fresh process.
const PEAK_SUBCOMMAND: &str = "__peak-rss";

const MB: f64 = 1_000_000.0;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(name) = args.next() else {
        list();
        return ExitCode::SUCCESS;
    };
    let rest: Vec<String> = args.collect();
    let result = match name.as_str() {
        "parse" => parse_bench(&rest),
        "audit" => audit::run(&rest),
        "audit-read" => audit_read::run(&rest),
        "bus" => bus::run(&rest),
        "lsp" => lsp::run(&rest),
        "lsp-large" => lsp_large::run(&rest),
        "peer-check" => peer_check::run(&rest),
        "sandbox" => sandbox::run(&rest),
        "service" => service::run(&rest),
        PEAK_SUBCOMMAND => peak_child(&rest),
        "policy" => Err("`policy` is built separately (bench/policy-vs-cedar): run it with `bench/run policy`".to_string()),
        "list" | "-h" | "--help" | "help" => {
            list();
            Ok(())
        }
        other => Err(format!("unknown benchmark `{other}`; run `bench/run` with no arguments to list them")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn list() {
    println!("usage: bench/run NAME [args]\n\nbenchmarks:");
    for (name, args, description) in BENCHMARKS {
        println!("  {name} {args}\n      {description}");
    }
    println!("\nSee bench/README.md for how to read the output and its RESULT line.");
}

// -------------------------------------------------------------------------------------------------
// Options

struct ParseOptions {
    /// Size of the workload for the throughput measurements, in MB (10^6 bytes).
    mb: f64,
    /// Timed iterations per stage (after one warm-up).
    iters: usize,
    /// Target size of each workload file, in KB (10^3 bytes).
    file_kb: usize,
    /// Size of the peak-memory workload in MB, or `None` to skip that measurement.
    peak_mb: Option<f64>,
    /// Agents in the smaller file of the scaling case (the larger has four times as many).
    agents: usize,
}

fn parse_options(args: &[String]) -> Result<ParseOptions, String> {
    let mut options = ParseOptions { mb: 10.0, iters: 7, file_kb: 100, peak_mb: Some(100.0), agents: 5000 };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |what: &str| -> Result<f64, String> {
            let v = args.next().ok_or_else(|| format!("`{arg}` needs {what}"))?;
            v.parse::<f64>().ok().filter(|v| *v > 0.0).ok_or_else(|| format!("`{arg}` needs {what}, found `{v}`"))
        };
        match arg.as_str() {
            "--mb" => options.mb = value("a size in MB")?,
            "--iters" => options.iters = value("a number of iterations")? as usize,
            "--file-kb" => options.file_kb = value("a size in KB")? as usize,
            "--peak-mb" => options.peak_mb = Some(value("a size in MB")?),
            "--no-peak" => options.peak_mb = None,
            "--agents" => options.agents = value("a number of agents")? as usize,
            other => return Err(format!("unknown argument `{other}` for `parse`")),
        }
    }
    options.iters = options.iters.max(1);
    options.file_kb = options.file_kb.max(1);
    Ok(options)
}

// -------------------------------------------------------------------------------------------------
// Timing

/// Timings of one stage: every timed iteration, in order.
struct Stage {
    name: &'static str,
    times: Vec<Duration>,
}

impl Stage {
    fn best(&self) -> Duration {
        self.times.iter().copied().min().unwrap_or_default()
    }

    fn median(&self) -> Duration {
        let mut sorted = self.times.clone();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }
}

fn mb_per_s(bytes: usize, time: Duration) -> f64 {
    bytes as f64 / MB / time.as_secs_f64().max(1e-9)
}

/// Runs `run` once to warm up, then `iters` times, timing each run. `run` returns what must not
/// be dropped inside the timed region (the drop of large trees is not what is measured).
fn measure<T>(name: &'static str, iters: usize, mut run: impl FnMut() -> T) -> Stage {
    drop(std::hint::black_box(run()));
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = Instant::now();
        let out = std::hint::black_box(run());
        times.push(start.elapsed());
        drop(out);
    }
    Stage { name, times }
}

// -------------------------------------------------------------------------------------------------
// The stages

/// The baseline: one pass over every byte, counting newlines and braces. It does the least work
/// any parser must do, so dividing by it makes numbers comparable across machines.
fn byte_scan(files: &[(PathBuf, Arc<str>)]) -> (usize, usize) {
    let (mut lines, mut depth_changes) = (0usize, 0usize);
    for (_, text) in files {
        for &b in text.as_bytes() {
            lines += (b == b'\n') as usize;
            depth_changes += (b == b'{' || b == b'}') as usize;
        }
    }
    (lines, depth_changes)
}

fn lex_all(files: &[(PathBuf, Arc<str>)]) -> usize {
    files.iter().map(|(_, text)| symbiont_syntax::lexer::tokenize(text).0.len()).sum()
}

fn parse_all(files: &[(PathBuf, Arc<str>)]) -> Vec<symbiont_syntax::Parse> {
    files.iter().map(|(_, text)| symbiont_syntax::parse(text)).collect()
}

/// How many diagnostics of each code a fresh analysis of `files` reports.
fn diagnostic_counts(files: &[(PathBuf, Arc<str>)]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for diagnostic in analyse_all(files).1.iter().flat_map(|(_, d)| d) {
        *counts.entry(diagnostic.code().to_string()).or_default() += 1;
    }
    counts
}

/// Parse and full analysis from a fresh host: every file set, then every diagnostic computed.
/// Returns the host too, so that its drop happens outside the timed region.
fn analyse_all(files: &[(PathBuf, Arc<str>)]) -> (AnalysisHost, Vec<(PathBuf, Vec<symbiont_analysis::Diagnostic>)>) {
    let mut host = AnalysisHost::new();
    for (path, text) in files {
        host.set_file(path.clone(), text.clone());
    }
    let diagnostics = host.all_diagnostics();
    (host, diagnostics)
}

// -------------------------------------------------------------------------------------------------
// `parse`

fn parse_bench(args: &[String]) -> Result<(), String> {
    let options = parse_options(args)?;
    let corpus = workload::corpus_dir();
    let workload = Workload::from_corpus_dir(&corpus)?;
    let target_bytes = (options.mb * MB) as usize;
    let files = workload.build(target_bytes, options.file_kb * 1000);
    let bytes: usize = files.iter().map(|(_, t)| t.len()).sum();
    println!(
        "parse: {:.2} MB in {} files of ~{} KB ({} copies of {} corpus files from {})",
        bytes as f64 / MB,
        files.len(),
        options.file_kb,
        workload.copies_for(target_bytes),
        workload.file_count(),
        corpus.display()
    );

    // Sanity: the copies must not interact. Every copy must get exactly the diagnostics one copy
    // of the corpus gets on its own; a duplicate or a cross-copy reference would break that.
    let copies = workload.copies_for(target_bytes);
    let per_copy = diagnostic_counts(&workload.build(1, options.file_kb * 1000));
    let whole = diagnostic_counts(&files);
    let expected: BTreeMap<String, usize> = per_copy.iter().map(|(code, n)| (code.clone(), n * copies)).collect();
    let list = |counts: &BTreeMap<String, usize>| {
        if counts.is_empty() {
            "none".to_string()
        } else {
            counts.iter().map(|(code, n)| format!("{code}×{n}")).collect::<Vec<_>>().join(", ")
        }
    };
    if whole == expected {
        println!("workload check: the copies do not interact; diagnostics of one copy of the corpus: {}", list(&per_copy));
    } else {
        println!(
            "workload check: WARNING, the copies interact: expected {copies} × the diagnostics of one copy ({}), found {}",
            list(&per_copy),
            list(&whole)
        );
    }

    println!("timing: single thread, 1 warm-up + {} timed iterations per stage\n", options.iters);
    let stages = [
        measure("baseline (byte scan)", options.iters, || byte_scan(&files)),
        measure("lex", options.iters, || lex_all(&files)),
        measure("parse", options.iters, || parse_all(&files)),
        measure("parse + analysis", options.iters, || analyse_all(&files)),
    ];
    println!("{:<22} {:>10} {:>10} {:>11} {:>11}", "stage", "best ms", "median ms", "best MB/s", "median MB/s");
    for stage in &stages {
        println!(
            "{:<22} {:>10.2} {:>10.2} {:>11.1} {:>11.1}",
            stage.name,
            stage.best().as_secs_f64() * 1e3,
            stage.median().as_secs_f64() * 1e3,
            mb_per_s(bytes, stage.best()),
            mb_per_s(bytes, stage.median())
        );
    }
    let [baseline, lex, parse, analysis] = &stages;
    let analysis_best = mb_per_s(bytes, analysis.best());
    println!(
        "\nparse+analysis runs at 1/{:.0} of the byte-scan baseline (goal: >= 50 MB/s, now {:.1} MB/s)",
        mb_per_s(bytes, baseline.best()) / analysis_best,
        analysis_best
    );

    // What analysis adds to parsing: the share of parse + analysis that is not the parse.
    let analysis_share = 1.0 - parse.best().as_secs_f64() / analysis.best().as_secs_f64().max(1e-9);
    println!("analysis takes {:.0}% of parse + analysis", analysis_share * 100.0);

    let (small, large) = (scaling::measure(options.agents, options.iters), scaling::measure(options.agents * 4, options.iters));
    let agents_scaling = large.per_agent().as_secs_f64() / small.per_agent().as_secs_f64().max(1e-12);
    println!("\none file of N agents, parse + analysis from a fresh host (best of {}):", options.iters);
    for size in [&small, &large] {
        println!(
            "  {:>7} agents, {:>6.2} MB: {:>8.2} ms, {:>6.2} µs per agent",
            size.agents,
            size.bytes as f64 / MB,
            size.best.as_secs_f64() * 1e3,
            size.per_agent().as_secs_f64() * 1e6
        );
    }
    println!("time per agent at {} agents over that at {}: {agents_scaling:.2} (goal: <= 1.3; 1 is linear)", large.agents, small.agents);

    let mut peak_keys = String::new();
    if let Some(peak_mb) = options.peak_mb {
        let peak = run_peak_child(peak_mb, options.file_kb)?;
        let ratio = peak.vmhwm_bytes as f64 / peak.input_bytes as f64;
        println!(
            "\npeak memory, parse + analysis of {:.1} MB in a fresh process: VmHWM {:.1} MB = {:.2}× the input \
             (goal: < 10×; {:.1} MB of it held before analysis: workload text and generator) in {:.2} s",
            peak.input_bytes as f64 / MB,
            peak.vmhwm_bytes as f64 / MB,
            ratio,
            peak.before_bytes as f64 / MB,
            peak.seconds
        );
        // `peak_rss_mb_100mb` with the default `--peak-mb 100`.
        peak_keys = format!(" peak_rss_mb_{}mb={:.1} peak_rss_ratio={:.2}", peak_mb, peak.vmhwm_bytes as f64 / MB, ratio);
    }

    println!(
        "RESULT parse mb_per_s={:.2} parse_only_mb_per_s={:.2} analysis_share={:.2} lex_mb_per_s={:.2} baseline_mb_per_s={:.2} input_mb={:.2}{} median_mb_per_s={:.2} agents_scaling={:.2} agents={} iters={}",
        analysis_best,
        mb_per_s(bytes, parse.best()),
        analysis_share,
        mb_per_s(bytes, lex.best()),
        mb_per_s(bytes, baseline.best()),
        bytes as f64 / MB,
        peak_keys,
        mb_per_s(bytes, analysis.median()),
        agents_scaling,
        options.agents,
        options.iters,
    );
    Ok(())
}

// -------------------------------------------------------------------------------------------------
// Peak memory in a child process

struct Peak {
    input_bytes: usize,
    vmhwm_bytes: u64,
    before_bytes: u64,
    seconds: f64,
}

fn run_peak_child(mb: f64, file_kb: usize) -> Result<Peak, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the bench binary to re-run it: {e}"))?;
    let output = Command::new(&exe)
        .args([PEAK_SUBCOMMAND, &mb.to_string(), &file_kb.to_string()])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("the peak-memory child failed ({}):\n{stdout}{}", output.status, String::from_utf8_lossy(&output.stderr)));
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PEAK "))
        .ok_or_else(|| format!("the peak-memory child printed no PEAK line:\n{stdout}"))?;
    let get = |key: &str| -> Result<f64, String> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no `{key}` in the child's PEAK line `{line}`"))
    };
    Ok(Peak {
        input_bytes: get("input_bytes")? as usize,
        vmhwm_bytes: get("vmhwm_kb")? as u64 * 1024,
        before_bytes: get("before_kb")? as u64 * 1024,
        seconds: get("seconds")?,
    })
}

/// A kB field of `/proc/self/status` (`VmHWM`, `VmRSS`).
fn proc_status_kb(field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no `{field}` in /proc/self/status"))
}

/// The child: builds the workload, parses and analyses it from a fresh host, and prints
/// `PEAK input_bytes=… vmhwm_kb=… before_kb=… seconds=…`.
fn peak_child(args: &[String]) -> Result<(), String> {
    let mb: f64 = args.first().and_then(|v| v.parse().ok()).ok_or("usage: __peak-rss MB [FILE_KB]")?;
    let file_kb: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(100);
    let workload = Workload::from_corpus_dir(&workload::corpus_dir())?;
    let files = workload.build((mb * MB) as usize, file_kb * 1000);
    drop(workload);
    let input_bytes: usize = files.iter().map(|(_, t)| t.len()).sum();
    let before_kb = proc_status_kb("VmHWM")?;
    let start = Instant::now();
    let (host, diagnostics) = analyse_all(&files);
    let seconds = start.elapsed().as_secs_f64();
    let vmhwm_kb = proc_status_kb("VmHWM")?;
    std::hint::black_box(&diagnostics);
    // The process exits right after: no need to spend time dropping the database.
    std::mem::forget(host);
    std::mem::forget(diagnostics);
    println!("PEAK input_bytes={input_bytes} vmhwm_kb={vmhwm_kb} before_kb={before_kb} seconds={seconds:.3}");
    Ok(())
}
