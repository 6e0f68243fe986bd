//! Sandboxed agents talk: in one runtime (one bus), a JavaScript agent and a Python agent, each in
//! its own sandbox at Tier 1 and at Tier 2 and started together, exchange messages through their
//! SDKs' `send`/`receive`, each decision made by the sender's or the recipient's policy and audited
//! on its side; and a send the sender's policy denies never arrives, is audited `deny`, and
//! reaches the agent as its SDK's `PolicyDenied`. The same exchange goes through `symbiont up`,
//! with the two agents run by two `symbiont run`s.

use std::time::Duration;

use serde_json::{json, Value};
use symbiont_policy::Engine;
use symbiont_runtime::{local::LocalAgent, AgentConfig, AgentRuntime, Limits, RunReport, State, Tier};

use super::sandbox::{agent_config, assert_no_container, collect_output, sandbox_ready, tokio_runtime, universe_of, workspace_runtime, Ws};
use super::service::Up;

/// Sends a question to the agent its input names (retrying while that agent is not running yet:
/// a run started apart from it, as by another `symbiont run`, may come first), then prints the
/// reply; or prints the rule of the denial and stops.
const ASKER: &str = r#"const symbiont = require("symbiont");
async function sendSoon(to, payload) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await symbiont.send(to, payload);
    } catch (e) {
      if (!(e instanceof symbiont.Failed) || attempt >= 100) throw e;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
(async () => {
  try {
    console.log("sent", await sendSoon(symbiont.input().to, { question: 6, by: "javascript" }));
  } catch (e) {
    if (!(e instanceof symbiont.PolicyDenied)) throw e;
    console.log("denied by", e.rule);
    return;
  }
  const m = await symbiont.receive(30000);
  if (m === null) throw new Error("no reply came");
  console.log("reply", m.from, JSON.stringify(m.payload));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
"#;

/// Answers the first message that comes, whoever sent it.
const ANSWERER: &str = r#"import json, sys
import symbiont
m = symbiont.receive(30000)
if m is None:
    sys.exit("no message came")
print("got", m.from_, json.dumps(m.payload, sort_keys=True))
print("replied", symbiont.send(m.from_, {"answer": m.payload["question"] * 7, "by": "python"}))
"#;

const MUZZLE: &str = r#"deny: send_message(to) if to == "answerer""#;

/// The agents: `asker` and `answerer` as `symbiont run` runs them too (their code, Tier 1), the
/// lightweight `referee`, and `muzzled`, which runs the asker's code under a policy that denies
/// its sends to `answerer`.
fn workspace() -> Ws {
    let ws = Ws::new();
    ws.write("asker.js", ASKER);
    ws.write("answerer.py", ANSWERER);
    let talks = r#"policy p { allow: ["send_message", "receive_message"] }"#;
    let run = |file: &str| format!("implementation = [\"{file}\"]\n    security = {{ tier: Tier1, timeout: 60s }}\n    {talks}");
    let muzzled = format!("policy p {{\n        allow: [\"send_message\", \"receive_message\"]\n        {MUZZLE}\n    }}");
    let agents = [("asker", run("asker.js")), ("answerer", run("answerer.py")), ("referee", talks.to_string()), ("muzzled", muzzled)];
    ws.write("agent.sym", &agents.map(|(name, body)| format!("agent {name} {{\n    {body}\n}}\n")).concat());
    ws
}

/// The runs of the JavaScript agent `asker` (as `sender`, writing to `answerer`) and the Python
/// agent `answerer` at `tier`.
fn configs(ws: &Ws, sender: &str, tier: Tier) -> (AgentConfig, AgentConfig) {
    let universe = universe_of(ws);
    let limits = Limits { timeout: Duration::from_secs(90), ..Limits::default() };
    let asker = agent_config(ws, &universe, sender, tier, limits, "asker.js", json!({ "to": "answerer" }));
    let answerer = agent_config(ws, &universe, "answerer", tier, limits, "answerer.py", Value::Null);
    (asker, answerer)
}

/// One run to its end; its report, and its standard output once the runtime is gone.
async fn run(agents: &AgentRuntime, config: AgentConfig) -> (RunReport, tokio::task::JoinHandle<String>) {
    let (sender, stdout) = collect_output();
    (agents.run(config, sender, std::future::pending()).await.expect("the run starts"), stdout)
}

/// Each entry of `operation`s as (agent, operation, decision, peer), in the log's order.
fn decisions(ws: &Ws) -> Vec<(String, String, String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    ws.audit()
        .iter()
        .filter(|e| e["operation"] == "send_message" || e["operation"] == "receive_message")
        .map(|e| {
            let peer = if e["operation"] == "send_message" { &e["details"]["to"] } else { &e["details"]["from"] };
            (text(&e["agent"]), text(&e["operation"]), text(&e["decision"]), text(peer))
        })
        .collect()
}

fn owned(expected: &[(&str, &str, &str, &str)]) -> Vec<(String, String, String, String)> {
    expected.iter().map(|(a, o, d, p)| (a.to_string(), o.to_string(), d.to_string(), p.to_string())).collect()
}

fn assert_completed(test: &str, report: &RunReport, stdout: &str) {
    assert_eq!((report.state, report.exit_code), (State::Completed, Some(0)), "{test}: {report:?}\n{stdout}");
    assert_no_container(&report.run_id);
}

/// The two agents started together in one runtime: the question crosses from the JavaScript
/// sandbox to the Python one and the answer back.
fn agents_talk(tier: Tier) {
    let test = format!("agents_talk {tier:?}");
    if !sandbox_ready(&test) {
        return;
    }
    let ws = workspace();
    let (asker, answerer) = configs(&ws, "asker", tier);
    let ((asker, asker_out), (answerer, answerer_out)) = tokio_runtime().block_on(async {
        let agents = workspace_runtime(&ws).await;
        let (asked, answered) = tokio::join!(run(&agents, asker), run(&agents, answerer));
        drop(agents);
        let out = |(report, stdout): (RunReport, tokio::task::JoinHandle<String>)| async { (report, stdout.await.unwrap()) };
        (out(asked).await, out(answered).await)
    });
    assert_completed(&test, &asker, &asker_out);
    assert_completed(&test, &answerer, &answerer_out);
    assert_eq!(answerer_out, "got asker {\"by\": \"javascript\", \"question\": 6}\nreplied 1\n", "{test}");
    assert_eq!(asker_out, "sent 1\nreply answerer {\"answer\":42,\"by\":\"python\"}\n", "{test}");
    // One send entry for the question: the answerer was on the bus from its run's creation, so
    // the asker's first attempt found it however long its sandbox took to start.
    let expected = [
        ("asker", "send_message", "allow", "answerer"),
        ("answerer", "receive_message", "allow", "asker"),
        ("answerer", "send_message", "allow", "asker"),
        ("asker", "receive_message", "allow", "answerer"),
    ];
    assert_eq!(decisions(&ws), owned(&expected), "{test}");
    ws.assert_clean_dir();
}

/// `muzzled` (the JavaScript agent under a policy that denies its sends to `answerer`) runs beside
/// the Python agent; once it has ended, the lightweight agent `referee` writes to the Python
/// agent too. The Python agent answers the first message in its inbox: the referee's, as the
/// denied one never got there.
fn denied_send_never_arrives(tier: Tier) {
    let test = format!("denied_send_never_arrives {tier:?}");
    if !sandbox_ready(&test) {
        return;
    }
    let ws = workspace();
    let (muzzled, answerer) = configs(&ws, "muzzled", tier);
    let referee = LocalAgent {
        name: "referee".into(),
        policy: std::sync::Arc::new(Engine::compile(universe_of(&ws).effective(Some("referee")).unwrap())),
        priority: Default::default(),
        timeout: Duration::from_secs(90),
        context: Default::default(),
    };
    let ((muzzled, muzzled_out), (answerer, answerer_out), refereed) = tokio_runtime().block_on(async {
        let agents = workspace_runtime(&ws).await;
        let muzzled_then_referee = async {
            let muzzled = run(&agents, muzzled).await;
            let referee = agents.spawn_local(referee, |cx| async move {
                cx.send("answerer", &json!({ "question": 1, "by": "referee" })).await.map_err(|e| e.to_string())?;
                let reply = cx.receive(Duration::from_secs(60)).await.map_err(|e| e.to_string())?.ok_or("no reply came")?;
                match reply.payload == json!({ "answer": 7, "by": "python" }) {
                    true => Ok(()),
                    false => Err(format!("unexpected reply {} from {}", reply.payload, reply.from)),
                }
            });
            (muzzled, referee.wait().await)
        };
        let ((muzzled, refereed), answered) = tokio::join!(muzzled_then_referee, run(&agents, answerer));
        drop(agents);
        let out = |(report, stdout): (RunReport, tokio::task::JoinHandle<String>)| async { (report, stdout.await.unwrap()) };
        (out(muzzled).await, out(answered).await, refereed)
    });
    assert_completed(&test, &muzzled, &muzzled_out);
    assert_completed(&test, &answerer, &answerer_out);
    assert_eq!(refereed.state, State::Completed, "{test}: {refereed:?}");
    assert_eq!(muzzled_out, format!("denied by {MUZZLE}\n"), "{test}: the SDK raised PolicyDenied naming the rule");
    assert_eq!(answerer_out, "got referee {\"by\": \"referee\", \"question\": 1}\nreplied 1\n", "{test}");
    let expected = [
        ("muzzled", "send_message", "deny", "answerer"),
        ("referee", "send_message", "allow", "answerer"),
        ("answerer", "receive_message", "allow", "referee"),
        ("answerer", "send_message", "allow", "referee"),
        ("referee", "receive_message", "allow", "answerer"),
    ];
    assert_eq!(decisions(&ws), owned(&expected), "{test}");
    let denial = ws.audit().into_iter().find(|e| e["operation"] == "send_message").unwrap();
    assert_eq!(denial["details"]["rules"][0]["rule"], MUZZLE, "{test}: the audited denial names the rule: {denial:#}");
    ws.assert_clean_dir();
}

#[test]
fn agents_talk_tier1() {
    agents_talk(Tier::Docker);
}

#[test]
fn agents_talk_tier2() {
    agents_talk(Tier::GVisor);
}

#[test]
fn denied_send_never_arrives_tier1() {
    denied_send_never_arrives(Tier::Docker);
}

#[test]
fn denied_send_never_arrives_tier2() {
    denied_send_never_arrives(Tier::GVisor);
}

/// The same exchange through `symbiont up`: two `symbiont run`s started together hand their runs
/// to the workspace's service, whose one runtime puts both agents on its bus. Each run's output
/// and status are the agent's; the service's log has both sides' decisions and verifies.
#[test]
fn agents_talk_through_the_service() {
    let test = "agents_talk_through_the_service";
    if !sandbox_ready(test) {
        return;
    }
    let ws = workspace();
    let up = Up::start(&ws);
    let (asker, answerer) = std::thread::scope(|s| {
        let asker = s.spawn(|| ws.run(&["run", "agent.sym", "--agent", "asker", "--input", r#"{"to": "answerer"}"#]));
        let answerer = s.spawn(|| ws.run(&["run", "agent.sym", "--agent", "answerer"]));
        (asker.join().unwrap(), answerer.join().unwrap())
    });
    let said = up.said();
    for (agent, run) in [("asker", &asker), ("answerer", &answerer)] {
        assert_eq!(run.code, 0, "{test}: {agent}:\n{}\n{}", run.stderr, said);
        assert!(said.contains(&format!("run {} of agent `{agent}` started", run.run_id)), "{test}: the service ran {agent}:\n{said}");
    }
    assert_eq!(answerer.stdout, "got asker {\"by\": \"javascript\", \"question\": 6}\nreplied 1\n", "{test}");
    assert_eq!(asker.stdout, "sent 1\nreply answerer {\"answer\":42,\"by\":\"python\"}\n", "{test}");
    let (status, said) = up.terminate();
    assert_eq!(status, 0, "{test}: {said}");

    // Each `symbiont run` reaches the service on its own, so the asker may have tried before the
    // answerer's run existed: each such try is an allowed send whose entry says it went nowhere,
    // and the asker tried again.
    let sends: Vec<Value> = ws.audit().into_iter().filter(|e| e["agent"] == "asker" && e["operation"] == "send_message").collect();
    let (sent, tried) = sends.split_last().expect("the asker sent");
    assert_eq!(sent["details"].get("undelivered"), None, "{test}: {sent:#}");
    let nowhere = "no running agent `answerer`: the message was not delivered";
    assert!(tried.iter().all(|e| e["details"]["undelivered"] == nowhere), "{test}: {tried:#?}");
    let mut decided = decisions(&ws);
    let expected = owned(&[
        ("asker", "send_message", "allow", "answerer"),
        ("answerer", "receive_message", "allow", "asker"),
        ("answerer", "send_message", "allow", "asker"),
        ("asker", "receive_message", "allow", "answerer"),
    ]);
    let tries = decided.iter().take_while(|d| **d == expected[0]).count();
    decided.drain(..tries.saturating_sub(1));
    assert_eq!(decided, expected, "{test}");
    ws.assert_clean(&asker);
    ws.assert_clean(&answerer);
}
