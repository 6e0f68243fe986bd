//! The three SDKs end to end, each in a real sandbox at Tier 1 and Tier 2, through the runtime
//! library: an agent written against its language's SDK (Python, JavaScript, and Rust compiled for
//! the image) writes and reads back a file of its workspace, gets a denial as the SDK's typed error
//! naming the deciding rule, and talks over the bus with a lightweight agent of the same runtime,
//! which checks what it received; the audit log verifies and records each decision.

use std::{path::PathBuf, sync::Arc, time::Duration};

use serde_json::{json, Value};
use symbiont_policy::Engine;
use symbiont_runtime::{local::LocalAgent, Limits, State, Tier};

use super::sandbox::{assert_no_container, build_rust_agent, run_beside, sandbox_ready, Ws};

/// The rule that denies each agent's `env.get("HOME")`, as the `.sym` writes it: the typed error
/// must name exactly this.
const DENYING_RULE: &str = r#"deny: env_access(name) if name == "HOME""#;

const PYTHON_AGENT: &str = r#"import symbiont
print("written", symbiont.fs.write("note.txt", "hello"))
print("read", symbiont.fs.read("note.txt"))
try:
    symbiont.env.get("HOME")
    print("not denied")
except symbiont.PolicyDenied as e:
    print("denied by", e.rule)
print("sent", symbiont.send("echo", {"language": "python", "question": 6}))
m = symbiont.receive(20000)
print("reply", m["from"], m["payload"]["answer"])
"#;

const JS_AGENT: &str = r#"const symbiont = require("symbiont");
(async () => {
  console.log("written", await symbiont.fs.write("note.txt", "hello"));
  console.log("read", await symbiont.fs.read("note.txt"));
  try {
    await symbiont.env.get("HOME");
    console.log("not denied");
  } catch (e) {
    if (!(e instanceof symbiont.PolicyDenied)) throw e;
    console.log("denied by", e.rule);
  }
  console.log("sent", await symbiont.send("echo", { language: "javascript", question: 6 }));
  const m = await symbiont.receive(20000);
  console.log("reply", m.from, m.payload.answer);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
"#;

const RUST_AGENT: &str = r##"fn main() {
    println!("written {}", symbiont::fs::write("note.txt", "hello").unwrap());
    println!("read {}", symbiont::fs::read("note.txt").unwrap());
    match symbiont::env::get("HOME") {
        Err(symbiont::Error::Denied { rule, .. }) => println!("denied by {}", rule.unwrap_or_default()),
        other => println!("not denied: {other:?}"),
    }
    println!("sent {}", symbiont::send("echo", &serde_json::json!({"language": "rust", "question": 6})).unwrap());
    let m = symbiont::receive(std::time::Duration::from_secs(20)).unwrap().expect("a reply came");
    println!("reply {} {}", m.from, m.payload["answer"]);
}
"##;

/// Writes the agent `worker` in `language` into `ws` and returns its entry point's file name.
fn stage_agent(ws: &Ws, language: &str) -> &'static str {
    match language {
        "python" => {
            ws.write("agent.py", PYTHON_AGENT);
            "agent.py"
        }
        "javascript" => {
            ws.write("agent.js", JS_AGENT);
            "agent.js"
        }
        _ => {
            let binary: PathBuf = build_rust_agent(RUST_AGENT);
            std::fs::copy(binary, ws.path("agent")).unwrap();
            "agent"
        }
    }
}

/// One run of `language`'s agent at `tier`, beside the lightweight agent `echo`, checking every
/// part of the SDK's end-to-end contract.
fn sdk_end_to_end(language: &'static str, tier: Tier) {
    let test = format!("sdk_end_to_end {language} {tier:?}");
    if !sandbox_ready(&test) {
        return;
    }
    let ws = Ws::new();
    let file = stage_agent(&ws, language);
    ws.write(
        "agent.sym",
        &format!(
            "agent worker {{\n    policy p {{\n        allow: [\"file_read\", \"file_system_write\", \"send_message\", \"receive_message\"]\n        {DENYING_RULE}\n    }}\n}}\nagent echo {{\n    policy p {{ allow: [\"send_message\", \"receive_message\"] }}\n}}\n"
        ),
    );
    let limits = Limits { timeout: Duration::from_secs(60), ..Limits::default() };
    let (report, stdout, locals) = run_beside(&ws, "worker", tier, limits, file, Value::Null, |runtime, universe| {
        let echo = LocalAgent {
            name: "echo".into(),
            policy: Arc::new(Engine::compile(universe.effective(Some("echo")).unwrap())),
            priority: Default::default(),
            timeout: Duration::from_secs(60),
            context: Default::default(),
        };
        vec![runtime.spawn_local(echo, move |cx| async move {
            let message = cx.receive(Duration::from_secs(50)).await.map_err(|e| e.to_string())?.ok_or("no message came")?;
            let expected = json!({ "language": language, "question": 6 });
            if message.from != "worker" || message.payload != expected {
                return Err(format!("expected {expected} from worker, got {} from {}", message.payload, message.from));
            }
            cx.send(&message.from, &json!({ "answer": 42 })).await.map_err(|e| e.to_string())?;
            Ok(())
        })]
    });
    assert_eq!(report.state, State::Completed, "{test}: {report:?}\n{stdout}");
    assert_eq!(locals[0].state, State::Completed, "{test}: echo got the right message: {:?}", locals[0]);
    let expected = format!("written 5\nread hello\ndenied by {DENYING_RULE}\nsent 1\nreply echo 42\n");
    assert_eq!(stdout, expected, "{test}");
    assert_eq!(std::fs::read_to_string(ws.path(".symbiont/workspaces/worker/note.txt")).unwrap(), "hello", "{test}");
    let entries = ws.audit();
    let decided = ["file_system_write", "file_read", "env_access", "send_message", "receive_message"];
    let decisions: Vec<(&str, &str, &str)> = entries
        .iter()
        .filter(|e| decided.iter().any(|op| e["operation"] == *op))
        .map(|e| (e["agent"].as_str().unwrap(), e["operation"].as_str().unwrap(), e["decision"].as_str().unwrap()))
        .collect();
    let expected = [
        ("worker", "file_system_write", "allow"),
        ("worker", "file_read", "allow"),
        ("worker", "env_access", "deny"),
        ("worker", "send_message", "allow"),
        ("echo", "receive_message", "allow"),
        ("echo", "send_message", "allow"),
        ("worker", "receive_message", "allow"),
    ];
    assert_eq!(decisions, expected, "{test}");
    let denial = entries.iter().find(|e| e["operation"] == "env_access").unwrap();
    assert_eq!(denial["details"]["rules"][0]["rule"], DENYING_RULE, "{test}: the audited denial names the rule: {denial:#}");
    assert_no_container(&report.run_id);
    ws.assert_clean_dir();
}

#[test]
fn python_sdk_end_to_end_tier1() {
    sdk_end_to_end("python", Tier::Docker);
}

#[test]
fn python_sdk_end_to_end_tier2() {
    sdk_end_to_end("python", Tier::GVisor);
}

#[test]
fn javascript_sdk_end_to_end_tier1() {
    sdk_end_to_end("javascript", Tier::Docker);
}

#[test]
fn javascript_sdk_end_to_end_tier2() {
    sdk_end_to_end("javascript", Tier::GVisor);
}

#[test]
fn rust_sdk_end_to_end_tier1() {
    sdk_end_to_end("rust", Tier::Docker);
}

#[test]
fn rust_sdk_end_to_end_tier2() {
    sdk_end_to_end("rust", Tier::GVisor);
}
