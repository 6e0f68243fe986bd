//! Runs of one workspace started together: each waits its turn for the audit log (one writer at a
//! time, each appending after the last entry of the one before), so every run succeeds and every
//! run's entries are in the one log, which verifies; and a run that waits past `--lock-wait`
//! refuses to start (exit 70), saying whom it waited for.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Stdio},
    sync::{mpsc, Arc},
    thread::JoinHandle,
    time::Duration,
};

use serde_json::Value;
use symbiont_audit::{keys::FileSigner, Log, LogOptions};

use super::sandbox::{sandbox_ready, Ws};

const AGENT: &str = "import os\nprint('hello from', os.environ['SYMBIONT_RUN_ID'], flush=True)\n";

fn quick_agent(ws: &Ws) {
    ws.write("quick.py", AGENT);
    ws.write("quick.sym", "agent quick {\n    implementation = [\"quick.py\"]\n    security = { tier: Tier1, timeout: 60s }\n}\n");
}

/// Opens the workspace's audit log as its writer, as a run of it would.
fn hold_log(ws: &Ws) -> Log {
    std::fs::create_dir_all(ws.path(".symbiont")).unwrap();
    Log::open(&ws.path(".symbiont/audit"), Arc::new(FileSigner::generate().unwrap()), LogOptions::default()).unwrap().0
}

fn spawn(ws: &Ws, args: &[&str]) -> Child {
    ws.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("symbiont starts")
}

#[test]
fn three_runs_started_together_all_succeed_into_one_log() {
    if !sandbox_ready("three_runs_started_together_all_succeed_into_one_log") {
        return;
    }
    let ws = Ws::new();
    quick_agent(&ws);
    // The test holds the log until all three wait for it, so that they contend for it together.
    // (A bound well above the default: each waits for up to two runs on a loaded machine.)
    let holder = hold_log(&ws);
    let (said, waiting) = mpsc::channel();
    let runs: Vec<(Child, JoinHandle<String>)> = (0..3)
        .map(|_| {
            let mut child = spawn(&ws, &["run", "quick.sym", "--summary", "json", "--lock-wait", "5m"]);
            let stderr = BufReader::new(child.stderr.take().unwrap());
            let said = said.clone();
            let lines = std::thread::spawn(move || {
                let mut text = String::new();
                for line in stderr.lines().map_while(Result::ok) {
                    if line.starts_with("symbiont: waiting for another run of this workspace") {
                        let _ = said.send(());
                    }
                    text.push_str(&line);
                    text.push('\n');
                }
                text
            });
            (child, lines)
        })
        .collect();
    for _ in 0..3 {
        if waiting.recv_timeout(Duration::from_secs(60)).is_err() {
            // What each run said instead (one that failed before the lock says why).
            let said: Vec<String> = runs
                .into_iter()
                .map(|(mut child, stderr)| {
                    let _ = child.kill();
                    let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                    format!("{status}:\n{}", stderr.join().unwrap_or_default())
                })
                .collect();
            panic!("each run says it waits for the log; within 60 s not all did:\n{}", said.join("\n"));
        }
    }
    holder.close().unwrap();
    let mut summaries = Vec::new();
    for (child, stderr) in runs {
        let out = child.wait_with_output().unwrap();
        let stderr = stderr.join().unwrap();
        assert_eq!(out.status.code(), Some(0), "every run succeeds:\n{stderr}");
        let summary: Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
        let run_id = summary["run_id"].as_str().unwrap().to_string();
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("hello from {run_id}\n"));
        summaries.push((run_id, summary["audit_seqs"].clone()));
    }
    ws.assert_clean_dir();
    let entries = ws.audit();
    for (run_id, seqs) in &summaries {
        let (first, last) = (seqs[0].as_u64().unwrap(), seqs[1].as_u64().unwrap());
        let states: Vec<&str> = entries
            .iter()
            .filter(|e| e["operation"] == "lifecycle" && e["details"]["run_id"] == run_id.as_str())
            .map(|e| e["decision"].as_str().unwrap())
            .collect();
        assert_eq!(states.last(), Some(&"completed"), "run {run_id}: {states:?}");
        // The summary's entries are this run's: its risk assessment first, its final entry last.
        assert_eq!(entries[first as usize]["operation"], "risk_assessment");
        assert_eq!(entries[last as usize]["details"]["run_id"], run_id.as_str());
        assert_eq!(entries[last as usize]["decision"], "completed");
    }
    assert_eq!(entries.iter().filter(|e| e["operation"] == "risk_assessment").count(), 3);
}

#[test]
fn a_run_waits_at_most_its_lock_wait_then_refuses() {
    // No sandbox needed: the run stops before it makes anything.
    let ws = Ws::new();
    quick_agent(&ws);
    std::fs::create_dir_all(ws.path(".symbiont")).unwrap();
    let (holder, _) =
        Log::open(&ws.path(".symbiont/audit"), std::sync::Arc::new(FileSigner::generate().unwrap()), LogOptions::default()).unwrap();
    let out = ws.run(&["run", "quick.sym", "--lock-wait", "200ms"]);
    assert_eq!(out.code, 70, "{}", out.stderr);
    let log = ws.path(".symbiont/audit");
    let pid = std::process::id();
    assert_eq!(
        out.stderr,
        format!(
            "symbiont: waiting for another run of this workspace (pid {pid}) to release the audit log {log} (at most 0.2 s; --lock-wait)\n\
             error: {log}: cannot open the audit log: {log}: another process is writing this log (its lock is held); waited 0.2 s (--lock-wait)\n",
            log = log.display()
        )
    );
    // The run that gave up wrote nothing.
    holder.close().unwrap();
    let written: u64 = symbiont_audit::store::segments(&log).unwrap().iter().map(|(_, path)| std::fs::metadata(path).unwrap().len()).sum();
    assert_eq!(written, 0, "the refused run wrote nothing");
}
