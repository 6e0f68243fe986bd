//! What an agent can make its broker hold or write, and where its HTTP requests may go, attacked at
//! Tier 1 and Tier 2 (issue 13, findings 8, 9 and 12):
//!
//! - 3,000 connections held open, and connections each holding a 16 MiB unfinished line: the broker
//!   refuses those over its bounds (`limited`), audits a handful of entries for thousands of
//!   refusals, still serves the agent, and the run ends with its final entry and a log that
//!   verifies;
//! - `log` requests with 16 MiB levels and messages, and thousands of them: bounded fields are
//!   refused, messages are cut in the audit entry and on the host's output, the run's log budget
//!   runs out, and the audit log stays small;
//! - a guard that denies `127.0.0.1` and `localhost` is not passed by another spelling of either
//!   (`2130706433`, `0x7f000001`, `127.1`, `0177.0.0.1`, `[::ffff:127.0.0.1]`, `LOCALHOST.`), nor by
//!   `0.0.0.0`, which Linux connects to the host itself.
//!
//! The tests skip, saying why, when no sandbox is set up, unless `SYMBIONT_REQUIRE_SANDBOX` is
//! set: then they fail.

use std::{sync::atomic::Ordering, time::Duration};

use serde_json::{json, Value};
use symbiont_runtime::{
    broker::{limits, protocol},
    Limits, State, Tier,
};

use super::sandbox::{assert_no_container, entries_of, http_server, run_direct, sandbox_ready, RunOutput, Ws};

const CONNECTIONS: usize = 3000;
/// Connections that each send an unfinished line of [`PARTIAL_LINE`] bytes.
const PARTIAL_CONNECTIONS: usize = 12;
const PARTIAL_LINE: usize = 16 << 20;

/// Floods the broker with connections, then with unfinished lines; prints one JSON object.
const FLOODS: &str = r#"
import json, os, select, socket, threading, time
import symbiont

inp = symbiont.input()
PATH = os.environ.get("SYMBIONT_BROKER", "/run/symbiont/broker.sock")
out = {}

def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(PATH)
    return s

def reply_of(s):
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(1 << 16)
        if not chunk:
            return None
        data += chunk
    return json.loads(data)

def answered(socks, wanted):
    """The sockets the broker answered and closed, with the error it gave: waits until `wanted` of
    them are (at most 30 s); the others the broker holds open."""
    by_fd = {s.fileno(): s for s in socks}
    poller = select.poll()
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    errors = {}
    deadline = time.monotonic() + 30
    while len(errors) < wanted and time.monotonic() < deadline:
        for fd, _ in poller.poll(100):
            poller.unregister(fd)
            try:
                r = reply_of(by_fd[fd])
                errors[fd] = r["error"] if r else {"code": "closed"}
            except OSError as e:
                errors[fd] = {"code": "reset", "message": str(e)}
    return errors

def until_served():
    """Bounded: the broker frees a closed connection's place soon after it sees it closed."""
    for _ in range(400):
        try:
            return symbiont.fs.read("flood.txt")
        except symbiont.BrokerError as e:
            if e.code != "limited":
                raise
            time.sleep(0.05)
    return "never served"

def request(s, **req):
    s.sendall(json.dumps(req).encode() + b"\n")
    return reply_of(s)

# 1. Thousands of connections, held open.
socks = [connect() for _ in range(inp["connections"])]
errors = answered(socks, len(socks) - inp["max_connections"])
held = [s for s in socks if s.fileno() not in errors]
flood = out["flood"] = {
    "refused": len(errors), "held": len(held),
    "codes": sorted({e["code"] for e in errors.values()}),
    "message": next(iter(errors.values()), {}).get("message", ""),
}
try:
    symbiont.log("one connection more")
    flood["sdk"] = "ok"
except symbiont.BrokerError as e:
    flood["sdk"] = e.code
# Normal requests on one held connection.
flood["answers"] = [
    request(held[0], id=1, op="file_write", path="flood.txt", content="still served"),
    request(held[0], id=2, op="file_read", path="flood.txt"),
] if held else []
for s in socks:
    s.close()
flood["after"] = until_served()

# 2. Connections that each send an unfinished line of 16 MiB.
line = b'{"op":"log","message":"' + b"x" * inp["partial_line"]
socks = [connect() for _ in range(inp["partial_connections"])]
def send(s):
    try:
        s.sendall(line)
    except OSError:
        pass  # refused and closed by the broker
threads = [threading.Thread(target=send, args=(s,)) for s in socks]
for t in threads:
    t.start()
for t in threads:
    t.join()
errors = answered(socks, len(socks) - inp["max_partial_held"])
out["partial"] = {
    "refused": len(errors), "held": len(socks) - len(errors),
    "codes": sorted({e["code"] for e in errors.values()}),
    "messages": sorted({e.get("message", "")[:120] for e in errors.values()}),
}
for s in socks:
    s.close()
out["partial"]["after"] = until_served()
print(json.dumps(out))
"#;

fn floods(tier: Tier) {
    let test = format!("connection and buffer floods at {tier}");
    if !sandbox_ready(&test) {
        return;
    }
    let ws = Ws::new();
    ws.write("floods.py", FLOODS);
    ws.write("agent.sym", "agent flooder {\n    policy rules {\n        allow: [\"file_read\", \"file_system_write\"]\n    }\n}\n");
    // Every partial line held takes at least PARTIAL_LINE bytes of the budget.
    let max_partial_held = limits::MAX_BUFFERED / PARTIAL_LINE;
    let input = json!({
        "connections": CONNECTIONS, "max_connections": limits::MAX_CONNECTIONS, "partial_connections": PARTIAL_CONNECTIONS,
        "partial_line": PARTIAL_LINE, "max_partial_held": max_partial_held,
    });
    let run_limits = Limits { timeout: Duration::from_secs(120), ..Limits::default() };
    let (report, stdout) = run_direct(&ws, "flooder", tier, run_limits, "floods.py", input);
    assert_eq!((report.state, report.exit_code), (State::Completed, Some(0)), "{test}: {report:?}\n{stdout}");
    let out: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{test}: {e}: {stdout}"));

    // The connections over the cap were refused with one error line, the others served.
    let flood = &out["flood"];
    assert_eq!(flood["refused"], CONNECTIONS - limits::MAX_CONNECTIONS, "{test}: {flood}");
    assert_eq!(flood["held"], limits::MAX_CONNECTIONS, "{test}: {flood}");
    assert_eq!(flood["codes"], json!(["limited"]), "{test}: {flood}");
    assert!(flood["message"].as_str().unwrap().contains("connections open to its broker"), "{test}: {flood}");
    assert_eq!(flood["sdk"], "limited", "{test}: the SDK's own connection is over the cap too: {flood}");
    assert_eq!(flood["answers"][0]["result"], json!({"written": 12}), "{test}: {flood}");
    assert_eq!(flood["answers"][1]["result"], json!({"content": "still served"}), "{test}: {flood}");
    assert_eq!(flood["after"], "still served", "{test}: closed connections give their places back: {flood}");

    // Unfinished lines took the buffer budget; the lines beyond it were refused, then the budget
    // came back.
    let partial = &out["partial"];
    assert!(partial["refused"].as_u64().unwrap() as usize >= PARTIAL_CONNECTIONS - max_partial_held, "{test}: {partial}");
    assert_eq!(partial["codes"], json!(["limited"]), "{test}: {partial}");
    let messages = partial["messages"].to_string();
    assert!(messages.contains("unfinished requests"), "{test}: a refusal for the buffer budget: {partial}");
    assert_eq!(partial["after"], "still served", "{test}: {partial}");

    // A handful of audit entries for thousands of refusals; the run's final entry; a log that
    // verifies (`audit()` checks it).
    let entries = ws.audit();
    let refused_connections: Vec<&Value> =
        entries_of(&entries, "broker_connect").into_iter().filter(|e| e["details"]["reason"] == "TooManyConnections").collect();
    assert!((1..=16).contains(&refused_connections.len()), "{test}: {} entries", refused_connections.len());
    let most = refused_connections.iter().filter_map(|e| e["details"]["count"].as_u64()).max().unwrap();
    assert!(most >= 2048, "{test}: the entries count the refusals: {most}");
    let squeezed = entries_of(&entries, "broker_request").into_iter().filter(|e| e["details"]["reason"] == "BufferBudget").count();
    assert!((1..=4).contains(&squeezed), "{test}: {squeezed} entries for refused lines");
    let states: Vec<&str> = entries_of(&entries, "lifecycle").iter().map(|e| e["decision"].as_str().unwrap()).collect();
    assert_eq!(states.last(), Some(&"completed"), "{test}: {states:?}");
    assert_no_container(&report.run_id);
    ws.assert_clean_dir();
}

#[test]
fn connection_and_buffer_floods_are_bounded_tier1() {
    floods(Tier::Docker);
}

#[test]
fn connection_and_buffer_floods_are_bounded_tier2() {
    floods(Tier::GVisor);
}

/// Logs with huge fields, then thousands of times; prints one JSON object.
const LOGS: &str = r#"
import json
import symbiont

huge = "x" * (16 << 20)
out = {"levels": [], "messages": [], "flood": {}}
for _ in range(3):
    try:
        symbiont.log("a message", level=huge)
        out["levels"].append("ok")
    except symbiont.BrokerError as e:
        out["levels"].append(e.code)
for _ in range(3):
    try:
        symbiont.log("\x1b[2J\nforged line " + huge)
        out["messages"].append("ok")
    except symbiont.BrokerError as e:
        out["messages"].append(e.code)
# Each is 6 KiB in the audit entry: 1,024 control characters, escaped.
noisy = "\x01" * 1024
for _ in range(3000):
    try:
        symbiont.log(noisy)
        code = "ok"
    except symbiont.BrokerError as e:
        code = e.code
    out["flood"][code] = out["flood"].get(code, 0) + 1
symbiont.fs.write("after.txt", "still served")
out["after"] = symbiont.fs.read("after.txt")
print(json.dumps(out))
"#;

/// Bytes of every file of the workspace's audit log.
fn log_size(ws: &Ws) -> u64 {
    fn walk(dir: &std::path::Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| if e.path().is_dir() { walk(&e.path()) } else { e.metadata().unwrap().len() })
            .sum()
    }
    walk(&ws.path(".symbiont/audit"))
}

fn logs(tier: u8) {
    let test = format!("log floods at Tier{tier}");
    if !sandbox_ready(&test) {
        return;
    }
    let ws = Ws::new();
    ws.write("logs.py", LOGS);
    ws.write(
        "agent.sym",
        &format!(
            "agent logger {{\n    implementation = [\"logs.py\"]\n    security = {{ tier: Tier{tier}, memory: 256MB, timeout: 120s }}\n    \
             policy rules {{\n        allow: [\"file_read\", \"file_system_write\"]\n    }}\n}}\n"
        ),
    );
    let run = ws.run(&["run", "agent.sym"]);
    assert_eq!(run.code, 0, "{test}\nstdout: {}\nstderr: {}", run.stdout, excerpt(&run.stderr));
    assert!(run.stderr.contains(&format!("at Tier{tier}")), "{test}: {}", excerpt(&run.stderr));
    let out = last_json(&run, &test);
    assert_eq!(out["levels"], json!(vec!["bad_request"; 3]), "{test}: a level is at most 16 letters: {out}");
    assert_eq!(out["messages"], json!(vec!["ok"; 3]), "{test}: {out}");
    let (ok, limited) = (out["flood"]["ok"].as_u64().unwrap_or(0), out["flood"]["limited"].as_u64().unwrap_or(0));
    assert!(ok > 0 && limited > 0 && ok + limited == 3000, "{test}: the log budget runs out: {out}");
    assert_eq!(out["after"], "still served", "{test}: {out}");

    // The host's output: each message cut, on one line, without the agent's terminal escapes.
    assert!(run.stderr.len() < 4 << 20, "{test}: the host's output holds {} bytes", run.stderr.len());
    assert!(!run.stderr.contains('\x1b') && !run.stderr.contains("\nforged line"), "{test}: {}", excerpt(&run.stderr));
    assert!(run.stderr.contains("[logger info] \\u{1b}[2J\\nforged line xxx"), "{test}: {}", excerpt(&run.stderr));

    // The audit log: within the budget's bound (2 MiB of level and message, and a few hundred
    // bytes an entry), and it says when the budget ran out, once.
    let size = log_size(&ws);
    assert!(size < (limits::MAX_LOG_BYTES + (1 << 20)) as u64, "{test}: the audit log holds {size} bytes");
    let entries = ws.audit();
    let logs = entries_of(&entries, "log");
    assert_eq!(logs.len() as u64, 3 + ok + 1, "{test}");
    let spent: Vec<_> = logs.iter().filter(|e| e["decision"] == "deny").collect();
    assert_eq!(spent.len(), 1, "{test}");
    assert_eq!(spent[0]["details"]["reason"], "LogBudgetSpent");
    let kept = logs.iter().find(|e| e["details"]["request"]["message"].as_str().is_some_and(|m| m.contains("forged"))).unwrap();
    let message = kept["details"]["request"]["message"].as_str().unwrap();
    let whole = "\x1b[2J\nforged line ".len() + (16 << 20);
    assert!(message.len() < protocol::AUDIT_MESSAGE_BYTES + 32 && message.ends_with(&format!("({whole} bytes)")), "{test}: {message}");
    let refused = entries_of(&entries, "broker_request");
    assert_eq!(refused.len(), 3, "{test}: each refused level is audited");
    for entry in refused {
        assert_eq!(entry["details"]["reason"], "BadRequest");
        assert!(entry["details"]["request"]["level"].as_str().unwrap().ends_with("… (16777216 bytes)"), "{test}");
        assert!(entry.to_string().len() < 4096, "{test}: a refused request's entry is cut short");
    }
    ws.assert_clean(&run);
}

#[test]
fn log_requests_are_bounded_tier1() {
    logs(1);
}

#[test]
fn log_requests_are_bounded_tier2() {
    logs(2);
}

/// Requests each spelling of the host's loopback, then one allowed path; prints one JSON object.
const FETCH: &str = r#"
import json
import symbiont

port = symbiont.input()["port"]
out = {}
for host in symbiont.input()["hosts"]:
    try:
        out[host] = "ok %d" % symbiont.net.get("http://%s:%d/data" % (host, port)).status_code
    except symbiont.BrokerError as e:
        out[host] = e.code
try:
    symbiont.net.get("http://no-such-host.invalid/")
    out["unresolved"] = "ok"
except symbiont.BrokerError as e:
    out["unresolved"] = e.code
out["allowed"] = symbiont.net.get("http://2130706433:%d/open" % port).text
print(json.dumps(out))
"#;

/// Spellings of `127.0.0.1` and `localhost`, and `0.0.0.0`, which Linux connects to the host.
const LOOPBACK: [&str; 11] = [
    "2130706433",
    "0x7f000001",
    "127.1",
    "0177.0.0.1",
    "[::ffff:127.0.0.1]",
    "0.0.0.0",
    "localhost",
    "LOCALHOST.",
    "127.0.0.1",
    "%31%32%37.0.0.1",
    "evil.example@127.0.0.1",
];

fn canonical_hosts(tier: u8) {
    let test = format!("canonical hosts at Tier{tier}");
    if !sandbox_ready(&test) {
        return;
    }
    let ws = Ws::new();
    ws.write("fetch.py", FETCH);
    ws.write(
        "agent.sym",
        &format!(
            r#"agent fetcher {{
    capabilities = ["http_request"]
    implementation = ["fetch.py"]
    security = {{ tier: Tier{tier}, memory: 256MB, timeout: 60s }}
    policy rules {{
        allow: ["http_request"]
        deny: http_request(host, path) if (host == "127.0.0.1" || host == "localhost") && path != "/open"
    }}
}}
"#
        ),
    );
    let (port, hits) = http_server();
    let input = json!({ "port": port, "hosts": LOOPBACK }).to_string();
    let run = ws.run(&["run", "agent.sym", "--input", &input]);
    assert_eq!(run.code, 0, "{test}\nstdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stderr.contains(&format!("at Tier{tier}")), "{test}: {}", run.stderr);
    let out = last_json(&run, &test);
    for host in LOOPBACK {
        // 0.0.0.0 is refused before any guard reads it: it is no destination.
        let expected = if host == "0.0.0.0" { "bad_request" } else { "denied" };
        assert_eq!(out[host], expected, "{test}: {host}: {out}");
    }
    assert_eq!(out["unresolved"], "failed", "{test}: {out}");
    assert_eq!(out["allowed"], "hello", "{test}: the one allowed request reaches the server: {out}");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "{test}: no denied spelling reached the server");

    // Each decision is on the canonical host and the address connected to.
    let entries = ws.audit();
    let http = entries_of(&entries, "http_request");
    assert_eq!(http.len(), LOOPBACK.len() + 2, "{test}: {http:#?}");
    for entry in &http {
        let request = &entry["details"]["request"];
        assert_eq!(entry["decision"], if request["url"].as_str().unwrap().ends_with("/open") { "allow" } else { "deny" }, "{test}");
        if request["host"] == "no-such-host.invalid" {
            assert_eq!((&entry["details"]["reason"], &request["address"]), (&json!("Unresolved"), &Value::Null), "{test}");
        } else if request["host"] == "0.0.0.0" {
            assert_eq!(entry["details"]["reason"], "NoDestination", "{test}");
        } else {
            assert!(request["host"] == "127.0.0.1" || request["host"] == "localhost", "{test}: {request}");
            assert!(request["address"] == "127.0.0.1" || request["address"] == "::1", "{test}: {request}");
        }
    }
    let allowed = http.iter().find(|e| e["decision"] == "allow").unwrap();
    assert_eq!(allowed["details"]["request"]["url"], format!("http://127.0.0.1:{port}/open"));
    ws.assert_clean(&run);
}

#[test]
fn http_guards_see_the_canonical_host_tier1() {
    canonical_hosts(1);
}

#[test]
fn http_guards_see_the_canonical_host_tier2() {
    canonical_hosts(2);
}

fn last_json(run: &RunOutput, test: &str) -> Value {
    let last = run.stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{test}: {e}: {}\n{}", run.stdout, excerpt(&run.stderr)))
}

/// The start of a long output, for a failure message.
fn excerpt(text: &str) -> String {
    protocol::excerpt(text, 4096)
}
