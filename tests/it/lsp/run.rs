//! "Run agent" from the editor: the code lens's command runs the agent through the runtime
//! (`symbiont run`), with `$/progress`, its output streamed as log messages, and a result that
//! says where its audit entries are; `symbiont.verifyAudit` then verifies the log.

use serde_json::{json, Value};

use super::client::{file_uri, Server};

#[test]
fn run_agent_reports_progress_output_and_result() {
    if !crate::runtime::sandbox::sandbox_ready("run_agent_reports_progress_output_and_result") {
        return;
    }
    // The server hands runs to the `symbiont` binary beside it.
    crate::cli::binary();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("symbiont.toml"), "[policy]\n").unwrap();
    std::fs::write(
        root.join("greeter.py"),
        "import symbiont\nprint('hello from the sandbox')\nsymbiont.log('via the broker')\nprint('bye')\n",
    )
    .unwrap();
    let sym = "agent greeter {\n    implementation = [\"greeter.py\"]\n    security = { tier: Tier1, timeout: 30s }\n}\n";
    std::fs::write(root.join("greeter.sym"), sym).unwrap();
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
    assert_eq!(verified["report"]["entries"].as_u64(), Some(last + 1));
    assert_eq!(server.stop(), 0);
}
