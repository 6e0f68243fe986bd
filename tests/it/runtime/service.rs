//! `symbiont up`, the workspace's service, against real dockerd: a run handed to it is the run
//! without it (output, exit status, audit entries); `ps`, `logs --follow` and `stop` see and stop
//! its runs; SIGTERM drains; after `kill -9`, the next start removes what it left and audits the
//! lost run; a workspace with error diagnostics is refused; only the user who started it is served.

use std::{
    io::{BufRead, BufReader},
    os::unix::{fs::PermissionsExt, process::CommandExt},
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::Duration,
};

use serde_json::Value;

use super::sandbox::{assert_no_container, containers_labelled, entries_of, sandbox_ready, Ws};

/// A running `symbiont up`, its standard error collected; killed (and waited for) when dropped.
pub(crate) struct Up {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Up {
    pub(crate) fn start(ws: &Ws) -> Up {
        Up::start_with(ws, &["up"])
    }

    pub(crate) fn start_with(ws: &Ws, args: &[&str]) -> Up {
        let mut child = ws.command(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("symbiont up starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (serving, up) = mpsc::channel();
        let lines = BufReader::new(child.stderr.take().unwrap());
        let collected = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                if line.starts_with("symbiont up: serving") {
                    let _ = serving.send(());
                }
                let mut text = collected.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        let started = up.recv_timeout(Duration::from_secs(60));
        let up = Up { child, stderr };
        assert!(started.is_ok(), "the service says it serves:\n{}", up.said());
        up
    }

    pub(crate) fn said(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Sends SIGTERM and waits for the service to exit, returning its status.
    pub(crate) fn terminate(mut self) -> (i32, String) {
        self.signal("TERM");
        let status = self.child.wait().unwrap();
        // The reader thread has the last lines once the pipe closes.
        std::thread::sleep(Duration::from_millis(100));
        (status.code().unwrap_or(-1), self.said())
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An agent whose output, status and audit entries the comparisons read: it writes to both
/// streams, reads its input and a file, and exits 3.
fn echo_agent(ws: &Ws) {
    ws.write(
        "echo.py",
        "import sys, symbiont\nprint('input', symbiont.input(), flush=True)\nprint('to stderr', file=sys.stderr, flush=True)\n\
         try:\n    symbiont.fs.read('missing.txt')\nexcept Exception as e:\n    print('read refused', type(e).__name__, flush=True)\nsys.exit(3)\n",
    );
    ws.write("echo.sym", "agent echo {\n    implementation = [\"echo.py\"]\n    security = { tier: Tier1, timeout: 60s }\n}\n");
}

/// An agent that prints a line every 0.2 s for a minute.
fn ticking_agent(ws: &Ws) {
    ws.write("tick.py", "import time\nfor i in range(300):\n    print('tick', i, flush=True)\n    time.sleep(0.2)\n");
    ws.write("tick.sym", "agent tick {\n    implementation = [\"tick.py\"]\n    security = { tier: Tier1, timeout: 120s }\n}\n");
}

/// The `(operation, decision)` of each of a run's entries, from its JSON summary's `audit_seqs`,
/// keeping only those of its own agent (a service's log interleaves runs): its lifecycle in
/// order, then what it did in order. (The agent's first request can be audited before the
/// runtime's `running` entry: the agent runs from the moment it is started.)
fn run_entries(entries: &[Value], summary: &Value) -> Vec<(String, String)> {
    let (first, last) = (summary["audit_seqs"][0].as_u64().unwrap(), summary["audit_seqs"][1].as_u64().unwrap());
    let (mut lifecycle, mut acts): (Vec<_>, Vec<_>) = entries
        .iter()
        .filter(|e| (first..=last).contains(&e["seq"].as_u64().unwrap()) && e["agent"] == summary["agent"])
        .map(|e| (e["operation"].as_str().unwrap().to_string(), e["decision"].as_str().unwrap().to_string()))
        .partition(|(operation, _)| operation == "lifecycle" || operation == "risk_assessment");
    lifecycle.append(&mut acts);
    lifecycle
}

fn json_summary(stderr: &str) -> Value {
    serde_json::from_str(stderr.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("a JSON summary ({e}):\n{stderr}"))
}

#[test]
fn a_run_handed_to_the_service_is_the_run_without_it() {
    if !sandbox_ready("a_run_handed_to_the_service_is_the_run_without_it") {
        return;
    }
    let ws = Ws::new();
    echo_agent(&ws);
    let args = ["run", "echo.sym", "--input", "{\"n\": 7}", "--summary", "json"];
    let alone = ws.run(&args);
    let up = Up::start(&ws);
    let served = ws.run(&args);
    assert!(up.said().contains("started"), "the service ran it:\n{}", up.said());

    assert_eq!((alone.code, served.code), (3, 3), "the agent's status both ways:\n{}\n{}", alone.stderr, served.stderr);
    assert_eq!(served.stdout, alone.stdout, "the same standard output");
    assert!(alone.stdout.contains("input {'n': 7}") && alone.stdout.contains("read refused"), "{}", alone.stdout);
    let agent_stderr = |text: &str| text.lines().filter(|l| !l.starts_with('{')).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(agent_stderr(&served.stderr), agent_stderr(&alone.stderr), "the same standard error");
    let (alone_summary, served_summary) = (json_summary(&alone.stderr), json_summary(&served.stderr));
    for key in ["agent", "state", "exit_code", "tier", "audit_log"] {
        assert_eq!(served_summary[key], alone_summary[key], "summary key {key}");
    }

    // `ps` lists it, `logs` gives its output again.
    let listed = ps(&ws);
    let run_id = served_summary["run_id"].as_str().unwrap();
    let run = listed["runs"].as_array().unwrap().iter().find(|r| r["run"] == run_id).expect("ps lists the run");
    assert_eq!((run["state"].as_str(), run["status"].as_u64()), (Some("failed"), Some(3)));
    let logs = ws.run(&["logs", run_id]);
    assert_eq!((logs.code, logs.stdout.as_str()), (0, alone.stdout.as_str()), "{}", logs.stderr);

    let (status, said) = up.terminate();
    assert_eq!(status, 0, "SIGTERM stops the service cleanly:\n{said}");
    assert!(!ws.path(".symbiont/service.sock").exists(), "the socket is removed");
    let entries = ws.audit();
    assert_eq!(run_entries(&entries, &served_summary), run_entries(&entries, &alone_summary), "the same audit entries");
    assert_no_container(run_id);
    ws.assert_clean_dir();
}

/// Starts `symbiont run tick.sym` and returns it once the agent has printed its first line.
fn start_ticking_run(ws: &Ws) -> (Child, mpsc::Receiver<String>) {
    let mut child = ws.command(&["run", "tick.sym", "--summary", "json"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (lines, received) = mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let first = received.recv_timeout(Duration::from_secs(60)).expect("the agent prints");
    assert_eq!(first, "tick 0");
    (child, received)
}

fn stderr_of(child: Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).to_string())
}

fn containers_of_this_log(ws: &Ws) -> String {
    let log = ws.path(".symbiont/audit").canonicalize().unwrap();
    containers_labelled(&format!("dev.symbiont.audit={}", log.display()))
}

/// `symbiont ps --format json` of the workspace's service.
fn ps(ws: &Ws) -> Value {
    serde_json::from_str(&ws.run(&["ps", "--format", "json"]).stdout).unwrap()
}

#[test]
fn sigterm_drains_and_a_killed_service_is_cleaned_up_at_its_next_start() {
    if !sandbox_ready("sigterm_drains_and_a_killed_service_is_cleaned_up_at_its_next_start") {
        return;
    }
    let ws = Ws::new();
    ticking_agent(&ws);

    // SIGTERM: the running agent is stopped (`killed` audited), its caller told, nothing left.
    let up = Up::start(&ws);
    let (run, _) = start_ticking_run(&ws);
    let (status, said) = up.terminate();
    assert_eq!(status, 0, "{said}");
    assert!(said.contains("1 run(s) stopped"), "{said}");
    let (code, stderr) = stderr_of(run);
    assert_eq!(code, 137, "the handed-over run ends as a stopped run does:\n{stderr}");
    let summary = json_summary(&stderr);
    assert_eq!(summary["state"], "killed");
    let entries = ws.audit();
    let lifecycle = entries_of(&entries, "lifecycle");
    assert_eq!(lifecycle.last().unwrap()["decision"], "killed", "the drained run's final entry");
    assert_eq!(containers_of_this_log(&ws), "", "no container left after the drain");

    // kill -9: the run's container goes on; the next start removes it and audits the lost run.
    let up = Up::start(&ws);
    let (run, _) = start_ticking_run(&ws);
    let mut up = up;
    up.signal("KILL");
    up.child.wait().unwrap();
    let (code, stderr) = stderr_of(run);
    assert_eq!(code, 70, "the caller hears the service is gone:\n{stderr}");
    assert!(stderr.contains("the workspace's service stopped answering"), "{stderr}");
    assert_ne!(containers_of_this_log(&ws), "", "a killed service cannot clean up");
    drop(up);

    let up = Up::start(&ws);
    assert!(up.said().contains("was left by a killed runtime"), "the restart says what it cleaned up:\n{}", up.said());
    assert_eq!(containers_of_this_log(&ws), "", "the restart removed the container");
    let (status, said) = up.terminate();
    assert_eq!(status, 0, "{said}");
    let entries = ws.audit();
    let lost = entries_of(&entries, "lifecycle").last().copied().unwrap().clone();
    assert_eq!(lost["decision"], "failed", "the lost run is audited as failed: {lost}");
    assert!(lost["details"]["reason"].as_str().unwrap().contains("killed"), "{lost}");
    ws.assert_clean_dir();
}

#[test]
fn logs_follow_a_run_and_stop_ends_it() {
    if !sandbox_ready("logs_follow_a_run_and_stop_ends_it") {
        return;
    }
    let ws = Ws::new();
    ticking_agent(&ws);
    let up = Up::start(&ws);
    let (run, ticks) = start_ticking_run(&ws);
    let ps = ps(&ws);
    let listed = &ps["runs"][0];
    assert_eq!((listed["agent"].as_str(), listed["state"].as_str()), (Some("tick"), Some("running")), "{ps}");
    let run_id = listed["run"].as_str().unwrap().to_string();

    let follower = ws.command(&["logs", &run_id, "--follow"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let _ = ticks.recv_timeout(Duration::from_secs(10));
    let stop = ws.run(&["stop", &run_id]);
    assert_eq!(stop.code, 0, "{}", stop.stderr);
    assert!(stop.stderr.contains("\"state\":\"killed\""), "stop prints the run's end:\n{}", stop.stderr);

    let followed = follower.wait_with_output().unwrap();
    assert!(followed.status.success(), "logs --follow ends with the run");
    let followed = String::from_utf8_lossy(&followed.stdout);
    assert!(followed.starts_with("tick 0\ntick 1\n"), "logs gives the output from the start:\n{followed}");
    let (code, _) = stderr_of(run);
    assert_eq!(code, 137);
    assert_eq!(ws.run(&["stop", "0000000000000000"]).code, 2, "an unknown run is a usage error");
    let (status, said) = up.terminate();
    assert_eq!(status, 0, "{said}");
    assert_no_container(&run_id);
}

#[test]
fn a_workspace_with_errors_is_refused_with_its_diagnostics() {
    let ws = Ws::new();
    echo_agent(&ws);
    ws.write("broken.sym", "agent broken {\n    capabilities = [\n}\n");
    for args in [&["up"][..], &["run", "echo.sym"][..]] {
        let out = ws.run(args);
        assert_eq!(out.code, 2, "{args:?} is refused:\n{}", out.stderr);
        assert!(out.stderr.contains("nothing was started") && out.stderr.contains("broken.sym:"), "{args:?}:\n{}", out.stderr);
        assert!(out.stderr.contains("error[SYM"), "the diagnostics, with their codes:\n{}", out.stderr);
    }
    assert!(!ws.path(".symbiont/audit").exists(), "nothing was audited, as nothing started");
}

#[test]
fn only_the_user_who_started_the_service_is_served() {
    if !sandbox_ready("only_the_user_who_started_the_service_is_served") {
        return;
    }
    let ws = Ws::new();
    echo_agent(&ws);
    let up = Up::start(&ws);
    let socket = ws.path(".symbiont/service.sock");
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o600, "the socket is the user's alone");
    let is_root = std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if is_root {
        // Opened up as a careless umask or a chmod would: the peer check still refuses others.
        for dir in [ws.dir.path().to_path_buf(), ws.path(".symbiont")] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
        let mut other = ws.command(&["ps", "--workspace", ws.dir.path().to_str().unwrap()]);
        other.uid(65534).gid(65534);
        let out = ws.output(other);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(out.stderr.contains("serves only the user who started it"), "{}", out.stderr);
    }
    let (status, said) = up.terminate();
    assert_eq!(status, 0, "{said}");
}

/// The containers (any state) whose owner label is `pid`.
fn containers_of_owner(pid: u32) -> String {
    containers_labelled(&format!("dev.symbiont.owner.pid={pid}"))
}

#[test]
fn a_killed_service_with_a_warm_pool_leaves_nothing_at_its_next_start() {
    if !sandbox_ready("a_killed_service_with_a_warm_pool_leaves_nothing_at_its_next_start") {
        return;
    }
    let ws = Ws::new();
    ticking_agent(&ws);
    let mut up = Up::start_with(&ws, &["up", "--warm", "1"]);
    let pid = up.child.id();
    let pool_filter = format!("label=dev.symbiont.owner.pid={pid}");
    let warm = || {
        let ps = Command::new("docker").args(["ps", "-q", "--filter", "label=dev.symbiont.pool", "--filter", &pool_filter]).output();
        !String::from_utf8_lossy(&ps.unwrap().stdout).trim().is_empty()
    };
    for _ in 0..600 {
        if warm() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(warm(), "the service keeps a warm container, labelled as its own:\n{}", up.said());
    // The run takes the warm container; the pool makes another at its end only.
    let (run, _) = start_ticking_run(&ws);
    up.signal("KILL");
    up.child.wait().unwrap();
    let (code, _) = stderr_of(run);
    assert_eq!(code, 70);
    assert_ne!(containers_of_owner(pid), "", "a killed service cannot clean up");
    drop(up);

    let up = Up::start(&ws);
    assert_eq!(containers_of_owner(pid), "", "the restart removed the warm containers and the pooled run's:\n{}", up.said());
    let (status, said) = up.terminate();
    assert_eq!(status, 0, "{said}");
    let entries = ws.audit();
    let lifecycle = entries_of(&entries, "lifecycle");
    let lost = lifecycle.last().unwrap();
    assert_eq!(lost["decision"], "failed", "the pooled run lost with the service is audited as failed: {lost}");
    assert!(lost["details"]["reason"].as_str().unwrap().contains("killed"), "{lost}");
    let pooled = lifecycle.iter().any(|e| e["decision"] == "starting" && e["details"]["pooled"] == true);
    assert!(pooled, "the lost run ran in the warm container");
}

/// An agent blocked in `receive` holds its inbox; stopping it must not wait for that receive to
/// time out (it did: the broker's connections outlived the run, and the bus's clean-up waited up
/// to the receive's 30 s). The bound checked is far above a stop's usual second and far below 30 s.
#[test]
fn an_agent_blocked_in_receive_stops_at_once() {
    if !sandbox_ready("an_agent_blocked_in_receive_stops_at_once") {
        return;
    }
    let ws = Ws::new();
    ws.write("waiter.py", "import symbiont\nprint('tick 0', flush=True)\nsymbiont.receive(timeout_ms=120000)\n");
    ws.write(
        "tick.sym",
        "agent waiter {\n    implementation = [\"waiter.py\"]\n    capabilities = [receive_message]\n    security = { tier: Tier1, timeout: 120s }\n}\n",
    );
    let up = Up::start(&ws);
    let (run, _) = start_ticking_run(&ws);
    let ps = ps(&ws);
    let run_id = ps["runs"][0]["run"].as_str().unwrap().to_string();
    let asked = std::time::Instant::now();
    let stop = ws.run(&["stop", &run_id]);
    let took = asked.elapsed();
    assert_eq!(stop.code, 0, "{}", stop.stderr);
    assert!(took < Duration::from_secs(15), "stopping took {took:?}:\n{}", up.said());
    assert_eq!(stderr_of(run).0, 137);
    let (status, said) = up.terminate();
    assert_eq!(status, 0, "{said}");
}

/// The output the service keeps of a run is forgotten once its agent's retention has passed, as
/// `symbiont gc` deletes its files.
#[test]
fn a_runs_kept_output_is_forgotten_after_its_agents_retention() {
    if !sandbox_ready("a_runs_kept_output_is_forgotten_after_its_agents_retention") {
        return;
    }
    let ws = Ws::new();
    ws.write("brief.py", "print('kept for a while', flush=True)\n");
    ws.write(
        "brief.sym",
        "agent brief {\n    implementation = [\"brief.py\"]\n    security = { tier: Tier1, timeout: 60s }\n    policy rules {\n        \
         conditions: { retention_period: 3.seconds }\n    }\n}\n",
    );
    let up = Up::start(&ws);
    let run = ws.run(&["run", "brief.sym", "--summary", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run_id = json_summary(&run.stderr)["run_id"].as_str().unwrap().to_string();
    let logs = ws.run(&["logs", &run_id]);
    assert_eq!((logs.code, logs.stdout.as_str()), (0, "kept for a while\n"), "kept at first: {}", logs.stderr);
    std::thread::sleep(Duration::from_secs(5));
    let logs = ws.run(&["logs", &run_id]);
    assert_eq!(logs.code, 2, "forgotten after 3 s: {}", logs.stdout);
    assert!(logs.stderr.contains("no run"), "{}", logs.stderr);
    let (status, said) = up.terminate();
    assert_eq!(status, 0, "{said}");
}
