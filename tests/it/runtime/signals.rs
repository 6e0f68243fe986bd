//! `symbiont run` stopped by a signal: SIGTERM and SIGHUP stop it exactly as SIGINT (Ctrl-C) does
//! (the agent killed, `killed` audited, the container and staging directory removed, exit 137,
//! the log closed with its checkpoint), at Tier 1 and Tier 2; and after a SIGKILL, which cannot be
//! handled, the next run cleans up: the container and staging directory of the killed run are
//! removed and the run is audited `failed` in its log, while a run whose owner is alive is never
//! touched and one of another audit log is only stopped, left for its own log's next run.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;
use symbiont_audit::{entry::Checkpoint, store};

use super::sandbox::{assert_no_container, entries_of, sandbox_ready, RunOutput, Ws};

/// A `symbiont run` of an agent that says it is ready (with its run id) and then sleeps.
struct Sleeper {
    child: Child,
    run_id: String,
    stderr: std::thread::JoinHandle<String>,
}

const SLEEPER: &str = "import os, time\nprint('ready', os.environ['SYMBIONT_RUN_ID'], flush=True)\ntime.sleep(60)\n";

/// Starts the sleeping agent at `tier` in `ws` and waits (at most 60 s) for its ready line.
fn start_sleeper(ws: &Ws, tier: u8) -> Sleeper {
    ws.write("sleeper.py", SLEEPER);
    let sym =
        format!("agent sleeper {{\n    implementation = [\"sleeper.py\"]\n    security = {{ tier: Tier{tier}, timeout: 120s }}\n}}\n");
    ws.write("sleeper.sym", &sym);
    let mut child = ws.command(&["run", "sleeper.sym"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("symbiont starts");
    let stdout = child.stdout.take().unwrap();
    let (lines, ready) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let Ok(line) = ready.recv_timeout(Duration::from_secs(60)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the agent never said it was ready: {}", stderr.join().unwrap());
    };
    let run_id = line.strip_prefix("ready ").unwrap_or_else(|| panic!("unexpected first line {line:?}")).to_string();
    Sleeper { child, run_id, stderr }
}

fn send(pid: u32, signal: &str) {
    let status = Command::new("kill").args(["-s", signal, &pid.to_string()]).status().expect("kill runs");
    assert!(status.success(), "kill -s {signal} {pid}");
}

impl Sleeper {
    /// Waits (at most 60 s) for `symbiont run` to exit: its status (None: ended by a signal) and
    /// standard error.
    fn finish(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("`symbiont run` did not exit within 60 s of its signal");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status.code(), self.stderr.join().unwrap())
    }
}

fn lifecycle_of<'a>(entries: &'a [Value], run_id: &str) -> Vec<&'a Value> {
    entries_of(entries, "lifecycle").into_iter().filter(|e| e["details"]["run_id"] == run_id).collect()
}

fn container_state(run_id: &str) -> String {
    let filter = format!("label=dev.symbiont.run={run_id}");
    let out = Command::new("docker").args(["ps", "-a", "--filter", &filter, "--format", "{{.State}}"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The log was closed: its last checkpoint covers every entry.
fn assert_closed(ws: &Ws, entries: usize) {
    let lines = store::read_lines(&ws.path(".symbiont/audit").join(store::CHECKPOINTS_FILE)).unwrap();
    let last: Checkpoint = serde_json::from_slice(&lines.last().expect("a checkpoint").bytes).unwrap();
    assert_eq!(last.size as usize, entries, "the closing checkpoint covers the whole log");
}

fn stop_signals(tier: u8) {
    for signal in ["TERM", "HUP", "INT"] {
        let ws = Ws::new();
        let sleeper = start_sleeper(&ws, tier);
        let run_id = sleeper.run_id.clone();
        send(sleeper.child.id(), signal);
        let (code, stderr) = sleeper.finish();
        assert_eq!(code, Some(137), "tier {tier}, SIG{signal}: exit 137 as for Ctrl-C:\n{stderr}");
        assert!(stderr.contains(&format!("SIG{signal}: stopping the agent and cleaning up")), "{stderr}");
        let entries = ws.audit();
        let lifecycle = lifecycle_of(&entries, &run_id);
        let last = lifecycle.last().expect("lifecycle entries");
        assert_eq!(last["decision"], "killed", "tier {tier}, SIG{signal}: {lifecycle:#?}");
        assert_eq!(last["details"]["reason"], "killed on request");
        assert_closed(&ws, entries.len());
        let run = RunOutput { code: 137, stdout: String::new(), stderr, run_id };
        ws.assert_clean(&run);
    }
}

#[test]
fn sigterm_and_sighup_stop_a_run_as_ctrl_c_does_tier1() {
    if sandbox_ready("sigterm_and_sighup_stop_a_run_as_ctrl_c_does_tier1") {
        stop_signals(1);
    }
}

#[test]
fn sigterm_and_sighup_stop_a_run_as_ctrl_c_does_tier2() {
    if sandbox_ready("sigterm_and_sighup_stop_a_run_as_ctrl_c_does_tier2") {
        stop_signals(2);
    }
}

#[test]
fn the_next_run_cleans_up_after_a_killed_one() {
    if !sandbox_ready("the_next_run_cleans_up_after_a_killed_one") {
        return;
    }
    let ws = Ws::new();
    // Another workspace (another audit log) whose runs share `ws`'s run root.
    let other = Ws::new();
    other.write("quick.py", "print('quick')\n");
    other.write("quick.sym", "agent quick {\n    implementation = [\"quick.py\"]\n    security = { tier: Tier1, timeout: 30s }\n}\n");
    let run_other = || {
        let out = other.command(&["run", "quick.sym"]).env("TMPDIR", ws.tmp.path()).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let staging = |run_id: &str| ws.tmp.path().join("symbiont-runs").join(run_id);

    // A run whose owner is alive is never touched by another run sharing its run root.
    let alive = start_sleeper(&ws, 1);
    run_other();
    assert_eq!(container_state(&alive.run_id), "running", "a live run's container was touched");
    assert!(staging(&alive.run_id).is_dir(), "a live run's staging directory was touched");

    // SIGKILL: nothing can clean up then; the container runs on.
    let killed = alive.run_id.clone();
    send(alive.child.id(), "KILL");
    let (code, _) = alive.finish();
    assert_eq!(code, None, "ended by SIGKILL");
    assert_eq!(container_state(&killed), "running");
    assert!(staging(&killed).join("owner.json").is_file());

    // A run of another audit log stops it and leaves it to its own log's next run.
    let said = run_other();
    assert!(said.contains(&format!("run {killed} of agent `sleeper`")) && said.contains("is stopped"), "{said}");
    assert_eq!(container_state(&killed), "exited", "the killed run's container must be stopped");
    assert!(staging(&killed).is_dir(), "left for its own audit log's next run");
    let other_entries = other.audit();
    assert!(lifecycle_of(&other_entries, &killed).is_empty(), "another log never gets the run's entries");

    // The next run of its own audit log removes it and audits the run as failed.
    ws.write("quick.py", "print('quick')\n");
    ws.write("quick.sym", "agent quick {\n    implementation = [\"quick.py\"]\n    security = { tier: Tier1, timeout: 30s }\n}\n");
    let mut next = ws.run(&["run", "quick.sym", "--summary", "json"]);
    assert_eq!(next.code, 0, "{}", next.stderr);
    let summary: Value = serde_json::from_str(next.stderr.lines().last().unwrap()).unwrap();
    next.run_id = summary["run_id"].as_str().unwrap().to_string();
    assert!(next.stderr.contains(&format!("run {killed} of agent `sleeper` was left by a killed runtime")), "{}", next.stderr);
    assert_no_container(&killed);
    ws.assert_clean(&next);
    let entries = ws.audit();
    let lifecycle = lifecycle_of(&entries, &killed);
    let last = lifecycle.last().unwrap();
    assert_eq!(last["decision"], "failed", "{lifecycle:#?}");
    assert_eq!(last["agent"], "sleeper");
    assert_eq!(last["details"]["from"], "running");
    let reason = last["details"]["reason"].as_str().unwrap();
    assert_eq!(reason, format!("the runtime that ran it was killed; cleaned up by run {}", next.run_id));
    // Audited before the next run started its own agent.
    let (reaped_at, next_start) = (
        last["seq"].as_u64().unwrap(),
        lifecycle_of(&entries, &next.run_id).iter().find(|e| e["decision"] == "starting").unwrap()["seq"].as_u64().unwrap(),
    );
    assert!(reaped_at < next_start);

    // And only once: a later run finds nothing left.
    let again = ws.run(&["run", "quick.sym"]);
    assert!(!again.stderr.contains("left by a killed runtime"), "{}", again.stderr);
    assert_eq!(lifecycle_of(&ws.audit(), &killed).len(), lifecycle.len());
}
