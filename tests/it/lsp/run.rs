//! "Run agent" from the editor: the code lens's command runs the agent through the runtime
//! (`symbiont run`), with `$/progress`, its output streamed as log messages, and a result that
//! says where its audit entries are; `symbiont.verifyAudit` then verifies the log.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use super::client::{file_uri, Server};

/// Runs the greeter from its code lens in a fresh workspace `root` and checks what the client saw
/// (progress, output, the shown result, the audit log verified); returns the run's result.
fn run_greeter(root: &Path, before_run: impl FnOnce()) -> Value {
    // The server hands runs to the `symbiont` binary beside it.
    crate::cli::binary();
    std::fs::write(root.join("symbiont.toml"), "[policy]\n").unwrap();
    std::fs::write(
        root.join("greeter.py"),
        "import symbiont\nprint('hello from the sandbox')\nsymbiont.log('via the broker')\nprint('bye')\n",
    )
    .unwrap();
    let sym = "agent greeter {\n    implementation = [\"greeter.py\"]\n    security = { tier: Tier1, timeout: 30s }\n}\n";
    std::fs::write(root.join("greeter.sym"), sym).unwrap();
    before_run();
    let uri = file_uri(&root.join("greeter.sym"));
    let mut server = Server::start_with(Some(root), json!({ "window": { "workDoneProgress": true } }), Value::Null);
    server.open(&uri, "symbiont", sym);
    let lenses = server.request("textDocument/codeLens", json!({ "textDocument": { "uri": uri } })).unwrap();
    let command = &lenses[0]["command"];
    assert_eq!(command["command"], "symbiont.runAgent");

    let result =
        server.request("workspace/executeCommand", json!({ "command": command["command"], "arguments": command["arguments"] })).unwrap();
    assert_eq!(result["state"], "completed", "{result:#}");
    assert_eq!((result["exit_code"].as_i64(), result["tier"].as_u64()), (Some(0), Some(1)));
    let (first, last) = (result["audit_seqs"][0].as_u64().unwrap(), result["audit_seqs"][1].as_u64().unwrap());
    assert!(last > first, "{result:#}");
    assert!(result["audit_uri"].as_str().unwrap().ends_with("/.symbiont/audit"), "{result:#}");

    // What the client saw while it ran, in order.
    let progress: Vec<Value> = server.backlog_of("$/progress").into_iter().map(|m| m["params"]["value"].clone()).collect();
    assert_eq!(progress.first().map(|p| p["kind"].clone()), Some(json!("begin")), "{progress:#?}");
    assert_eq!(progress.last().map(|p| p["kind"].clone()), Some(json!("end")), "{progress:#?}");
    assert!(progress.iter().any(|p| p["message"] == "hello from the sandbox"), "{progress:#?}");
    let logs: Vec<String> =
        server.backlog_of("window/logMessage").iter().map(|m| m["params"]["message"].as_str().unwrap().to_string()).collect();
    assert!(logs.contains(&"[greeter] hello from the sandbox".to_string()), "{logs:#?}");
    assert!(logs.iter().any(|l| l.contains("via the broker")), "{logs:#?}");
    let shown = server.backlog_of("window/showMessage");
    let shown = shown.last().expect("the result is shown")["params"]["message"].as_str().unwrap().to_string();
    assert!(shown.starts_with("Agent greeter completed (exit 0) at Tier1"), "{shown}");
    assert!(shown.contains(&format!("audit entries {first}–{last}")), "{shown}");

    let verified = server.request("workspace/executeCommand", json!({ "command": "symbiont.verifyAudit", "arguments": [uri] })).unwrap();
    assert_eq!(verified["valid"], true, "{verified:#}");
    assert!(verified["report"]["entries"].as_u64().unwrap() > last);
    assert_eq!(server.stop(), 0);
    result
}

#[test]
fn run_agent_reports_progress_output_and_result() {
    if !crate::runtime::sandbox::sandbox_ready("run_agent_reports_progress_output_and_result") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let result = run_greeter(dir.path(), || {});
    assert_eq!(result["audit_seqs"][0], 0, "the first run of a new log: {result:#}");
}

/// With the workspace's service up, "Run agent" goes through it: the same progress, output and
/// result, and the run is the service's.
#[test]
fn run_agent_goes_through_the_workspace_service_when_one_is_up() {
    if !crate::runtime::sandbox::sandbox_ready("run_agent_goes_through_the_workspace_service_when_one_is_up") {
        return;
    }
    let ws = crate::runtime::sandbox::Ws::new();
    let mut up = None;
    let result = run_greeter(ws.dir.path(), || up = Some(crate::runtime::service::Up::start(&ws)));
    let up = up.unwrap();
    let ps: Value = serde_json::from_str(&ws.run(&["ps", "--format", "json"]).stdout).unwrap();
    let runs = ps["runs"].as_array().unwrap();
    assert!(runs.iter().any(|r| r["run"] == result["run_id"] && r["state"] == "completed"), "the service ran it: {ps:#}");
    let (status, said) = up.terminate();
    assert_eq!(status, 0, "{said}");
}

/// The README's example, from the editor: the bundled reviewer's policy requires the caller's
/// clearance, which the run gets from the context in the examples' `symbiont.toml` (`[run]`), and
/// the lens's command takes the run's input as its third argument.
#[test]
fn run_agent_runs_the_bundled_example_with_its_configured_context() {
    if !crate::runtime::sandbox::sandbox_ready("run_agent_runs_the_bundled_example_with_its_configured_context") {
        return;
    }
    crate::cli::binary();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let examples = symbiont_tests::repo_root().join("examples");
    for file in ["symbiont.toml", "policies.sym", "agents/reviewer.sym", "agents/reviewer.py", "agents/incidents.symbi"] {
        std::fs::create_dir_all(root.join(file).parent().unwrap()).unwrap();
        std::fs::copy(examples.join(file), root.join(file)).unwrap();
    }
    std::fs::create_dir_all(root.join(".symbiont/workspaces/reviewer")).unwrap();
    std::fs::write(root.join(".symbiont/workspaces/reviewer/review.diff"), "+ fn main() {}\n+ // TODO: handle errors\n").unwrap();
    let uri = file_uri(&root.join("agents/reviewer.sym"));
    let mut server = Server::start_with(Some(root), json!({}), Value::Null);
    server.open(&uri, "symbiont", &std::fs::read_to_string(root.join("agents/reviewer.sym")).unwrap());
    let lenses = server.request("textDocument/codeLens", json!({ "textDocument": { "uri": uri } })).unwrap();
    let mut arguments = lenses[0]["command"]["arguments"].as_array().unwrap().clone();
    arguments.push(json!({ "target": "review.diff" }));
    let result = server.request("workspace/executeCommand", json!({ "command": "symbiont.runAgent", "arguments": arguments })).unwrap();
    let logs: Vec<String> =
        server.backlog_of("window/logMessage").iter().map(|m| m["params"]["message"].as_str().unwrap().to_string()).collect();
    assert_eq!((result["state"].as_str(), result["exit_code"].as_i64()), (Some("completed"), Some(0)), "{result:#}\n{logs:#?}");
    assert_eq!(result["tier"], 2, "{result:#}");
    assert!(logs.contains(&"[reviewer]   \"verdict\": \"changes_requested\"".to_string()), "{logs:#?}");
    assert!(logs.iter().any(|l| l.contains("\"file\": \"review.diff\"")), "the input reached the agent: {logs:#?}");
    assert_eq!(server.stop(), 0);
}

/// The audit log of `root`, checked to verify, as JSON entries.
fn verified_audit(root: &Path) -> Vec<Value> {
    let log = root.join(".symbiont/audit");
    let verify = Command::new(crate::cli::binary()).args(["audit", "verify"]).arg(&log).output().unwrap();
    assert!(verify.status.success(), "the audit log must verify: {}", String::from_utf8_lossy(&verify.stdout));
    let show = Command::new(crate::cli::binary()).args(["audit", "show"]).arg(&log).args(["--format", "json"]).output();
    String::from_utf8_lossy(&show.unwrap().stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The last lifecycle entry of `run_id` in `root`'s audit log.
fn final_state(root: &Path, run_id: &str) -> Option<String> {
    let entries = verified_audit(root);
    let lifecycle = crate::runtime::sandbox::entries_of(&entries, "lifecycle");
    lifecycle.into_iter().rfind(|e| e["details"]["run_id"] == run_id).map(|e| e["decision"].as_str().unwrap().to_string())
}

fn container_left(run_id: &str) -> bool {
    let filter = format!("label=dev.symbiont.run={run_id}");
    let ps = Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output().unwrap();
    !String::from_utf8_lossy(&ps.stdout).trim().is_empty()
}

fn staging_left(run_id: &str) -> bool {
    std::env::temp_dir().join("symbiont-runs").join(run_id).exists()
}

/// Writes a workspace in `root` with an agent `name` that says it is ready (with its run id), then
/// sleeps; returns the URI of its `.sym` and its text.
fn sleeping_agent(root: &Path, name: &str) -> (String, String) {
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("symbiont.toml"), "[policy]\n").unwrap();
    let code = "import os, time\nprint('ready', os.environ['SYMBIONT_RUN_ID'], flush=True)\ntime.sleep(60)\n";
    std::fs::write(root.join(format!("{name}.py")), code).unwrap();
    let sym = format!("agent {name} {{\n    implementation = [\"{name}.py\"]\n    security = {{ tier: Tier1, timeout: 120s }}\n}}\n");
    std::fs::write(root.join(format!("{name}.sym")), &sym).unwrap();
    (file_uri(&root.join(format!("{name}.sym"))), sym)
}

/// Starts "Run agent" for the agent `name` of `uri` and waits for its ready line: the request's id
/// and the run's id.
fn start_sleeping_run(server: &mut Server, uri: &str, sym: &str, name: &str) -> (i64, String) {
    server.open(uri, "symbiont", sym);
    let lenses = server.request("textDocument/codeLens", json!({ "textDocument": { "uri": uri } })).unwrap();
    let command = &lenses[0]["command"];
    let id = server.send_request("workspace/executeCommand", json!({ "command": command["command"], "arguments": command["arguments"] }));
    let prefix = format!("[{name}] ready ");
    let ready =
        server.wait_for(|m| m["method"] == "window/logMessage" && m["params"]["message"].as_str().is_some_and(|l| l.starts_with(&prefix)));
    (id, ready["params"]["message"].as_str().unwrap()[prefix.len()..].to_string())
}

#[test]
fn run_agent_is_stopped_not_killed_on_cancel_and_shutdown() {
    if !crate::runtime::sandbox::sandbox_ready("run_agent_is_stopped_not_killed_on_cancel_and_shutdown") {
        return;
    }
    crate::cli::binary();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (uri, sym) = sleeping_agent(root, "sleeper");
    // A second workspace (its own audit log) for the run that the shutdown stops.
    let (uri_2, sym_2) = sleeping_agent(&root.join("second"), "sleeper2");
    let mut server = Server::start_with(Some(root), json!({}), Value::Null);

    // Cancelled by the client: the run is stopped with SIGINT and cleans up (in the background:
    // waited for here, boundedly).
    let (id, run_id) = start_sleeping_run(&mut server, &uri, &sym, "sleeper");
    server.notify("$/cancelRequest", json!({ "id": id }));
    assert!(server.response(id).is_err(), "a cancelled request answers with an error");
    let deadline = Instant::now() + Duration::from_secs(30);
    while final_state(root, &run_id).as_deref() != Some("killed") || container_left(&run_id) || staging_left(&run_id) {
        assert!(Instant::now() < deadline, "the cancelled run did not stop cleanly: {:?}", final_state(root, &run_id));
        std::thread::sleep(Duration::from_millis(50));
    }

    // Shut down while a run is going: `shutdown` answers once the run has stopped and cleaned up.
    let (id, run_id) = start_sleeping_run(&mut server, &uri_2, &sym_2, "sleeper2");
    let shutdown = server.send_request("shutdown", Value::Null);
    let (mut answer, mut shut_down) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while answer.is_none() || shut_down.is_none() {
        let message = server.next_message(deadline).expect("both answers within 60 s");
        if message["id"] == id && message.get("method").is_none() {
            answer = Some(message);
        } else if message["id"] == shutdown {
            shut_down = Some(message);
        }
    }
    let answer = answer.unwrap();
    assert!(answer["error"]["message"].as_str().is_some_and(|m| m.contains("shutting down")), "{answer:#}");
    assert!(shut_down.unwrap().get("error").is_none());
    assert!(!container_left(&run_id), "the run's container is left");
    assert!(!staging_left(&run_id), "the run's staging directory is left");
    assert_eq!(final_state(&root.join("second"), &run_id).as_deref(), Some("killed"));
    server.notify("exit", Value::Null);
    assert_eq!(server.wait_exit(), 0);
}
