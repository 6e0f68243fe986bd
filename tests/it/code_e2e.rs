//! Agent code checked end to end by the real `symbiont check`: a temporary workspace with a base
//! policy, an agent whose policy denies the network and allows reading files, one implementation
//! file per language (a denied network call, an allowed but undeclared operation, a suppression
//! with a reason and one without), and a file no agent's `implementation` names, which answers to
//! the base policy. Then `check --fix` applies the SDK rewrites.

use serde_json::Value;

use crate::cli::Workspace;

const CONFIG: &str = "[policy]\nbase = \"org_base\"\n";

/// The base policy lets any code read files and the environment, and forbids processes; the
/// network it neither allows nor denies.
const POLICIES: &str = r#"policy org_base {
    allow: ["file_read", "env_access"]
    deny: ["spawn_process"]
}
"#;

/// Reads files (declared); the network is denied; the environment is allowed by the base policy
/// but not declared.
const AGENT: &str = r#"agent fetcher(url: String) -> String {
    capabilities = ["file_read"]
    implementation = ["src/**/*"]

    policy fetcher_rules {
        allow: ["file_read"]
        deny: ["network_access"]
    }
}
"#;

const PY: &str = r#"import os
import socket
import requests

with open("config.json") as f:
    config = f.read()
body = requests.get("https://example.com").text
requests.post("https://example.com/report", data=body)
session = requests.Session()
requests.get("https://example.com/search", params={"q": "x"})
requests.head("https://example.com/ping")
conn = socket.create_connection(("example.com", 443))
token = os.environ["TOKEN"]
# symbiont: allow network_access -- the health check of our own status page, reviewed in SEC-142
requests.head("https://status.example.com")
# symbiont: allow network_access
requests.put("https://example.com/state")
"#;

const JS: &str = r#"const fs = require("fs");
const axios = require("axios");

const config = fs.readFileSync("config.json", "utf8");
axios.get("https://example.com").then((r) => console.log(r.data));
fetch("https://example.com/report", { method: "POST" });
const token = process.env.TOKEN;
fetch("https://status.example.com"); // symbiont: allow network_access -- the health check, reviewed in SEC-142
// symbiont: allow network_access
fetch("https://example.com/state");
"#;

const TS: &str = r#"import { readFile } from "node:fs/promises";
import axios from "axios";

export async function run(url: string): Promise<string> {
  const config = await readFile("config.json", "utf8");
  const res = await axios.get<string>(url);
  const token: string | undefined = process.env.TOKEN;
  // symbiont: allow network_access -- the health check, reviewed in SEC-142
  await fetch("https://status.example.com");
  // symbiont: allow network_access
  await fetch("https://example.com/state");
  return config + res.data + token;
}
"#;

const RS: &str = r#"use std::env;
use std::fs;

pub async fn run(url: &str) -> Result<String, Box<dyn std::error::Error>> {
    let config = fs::read_to_string("config.json")?;
    let body = reqwest::get(url).await?.text().await?;
    let token = env::var("TOKEN")?;
    // symbiont: allow network_access -- the health check, reviewed in SEC-142
    reqwest::get("https://status.example.com").await?;
    // symbiont: allow network_access
    reqwest::get("https://example.com/state").await?;
    Ok(config + &body + &token)
}
"#;

/// Bound to no agent: judged against the base policy alone.
const UNBOUND: &str = r#"import os
import subprocess

import requests

subprocess.run(["make", "clean"], cwd=os.environ["HOME"])
requests.get("https://example.com")
"#;

fn workspace() -> Workspace {
    let ws = Workspace::new();
    ws.write("symbiont.toml", CONFIG)
        .write("policies.sym", POLICIES)
        .write("fetcher.sym", AGENT)
        .write("src/agent.py", PY)
        .write("src/agent.js", JS)
        .write("src/agent.ts", TS)
        .write("src/agent.rs", RS)
        .write("tools/cleanup.py", UNBOUND);
    ws
}

fn position(v: &Value) -> String {
    format!("{}:{}", v["start"]["line"], v["start"]["column"])
}

/// `path:line:col CODE severity: message`, with `  related path:line:col: message` under it.
fn render(report: &Value) -> String {
    let mut out = String::new();
    for d in report["diagnostics"].as_array().expect("diagnostics") {
        out.push_str(&format!(
            "{}:{} {} {}: {}\n",
            d["path"].as_str().unwrap(),
            position(&d["range"]),
            d["code"].as_str().unwrap(),
            d["severity"].as_str().unwrap(),
            d["message"].as_str().unwrap()
        ));
        for r in d["related"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  related {}:{}: {}\n",
                r["path"].as_str().unwrap(),
                position(&r["range"]),
                r["message"].as_str().unwrap()
            ));
        }
        if let Some(fix) = d["fix"].as_object() {
            out.push_str(&format!("  fix: {}\n", fix["title"].as_str().unwrap()));
        }
    }
    out
}

fn check(ws: &Workspace, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec!["check", "--format", "json"];
    args.extend_from_slice(extra);
    args.push(".");
    let run = ws.run(&args);
    let report: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    (run.code, report, run.stderr)
}

/// The line (1-based) of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> u64 {
    text.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("no `{needle}`")) as u64 + 1
}

#[test]
fn check_judges_each_language_against_the_agent_policy() {
    let ws = workspace();
    let (code, report, stderr) = check(&ws, &[]);
    assert_eq!(code, 1, "denied operations and unjustified suppressions fail the check: {stderr}");
    let rendered = render(&report);
    crate::code_rules::snapshot("e2e-check", rendered.clone());

    let diagnostics = report["diagnostics"].as_array().unwrap();
    let find = |path: &str, line: u64, code: &str| {
        diagnostics
            .iter()
            .find(|d| d["path"] == path && d["range"]["start"]["line"] == line && d["code"] == code)
            .unwrap_or_else(|| panic!("no {code} at {path}:{line}:\n{rendered}"))
    };
    let deny_line = line_of(AGENT, "deny: [\"network_access\"]");
    // The SDK fix is offered only for a callee the SDK has a call for with the same arguments
    // (`rules::Rule::sdk`): `axios.get` resolves to `{ data }`, `reqwest::get` is async.
    for (path, text, network, denied, sdk_fix, suppressed) in [
        ("src/agent.py", PY, "SYM0301", "requests.get(", true, "status.example.com"),
        ("src/agent.js", JS, "SYM0311", "fetch(\"https://example.com/report\"", true, "status.example.com"),
        ("src/agent.js", JS, "SYM0311", "axios.get(", false, "status.example.com"),
        ("src/agent.ts", TS, "SYM0311", "axios.get<", false, "status.example.com"),
        ("src/agent.rs", RS, "SYM0321", "reqwest::get(url)", false, "status.example.com"),
    ] {
        // The denied network call: an error, pointing at the agent's deny rule, with the SDK fix
        // where the SDK has the call.
        let at = line_of(text, denied);
        let d = find(path, at, network);
        assert_eq!(d["severity"], "error");
        assert!(d["message"].as_str().unwrap().contains("agent `fetcher`"), "{d}");
        let related = &d["related"][0];
        assert_eq!(related["path"], "fetcher.sym", "{d}");
        assert_eq!(related["range"]["start"]["line"], deny_line, "{d}");
        assert_eq!(d["fix"]["title"].as_str().unwrap().contains("Symbiont SDK"), sdk_fix, "{d}");
        // Allowed (by the base policy) but not declared: a warning.
        let env_line = text.lines().position(|l| l.contains("TOKEN")).unwrap() as u64 + 1;
        assert_eq!(find(path, env_line, "SYM0402")["severity"], "warning");
        // Suppressed with a reason: reported, as information.
        let s = find(path, line_of(text, suppressed), network);
        assert_eq!(s["severity"], "info");
        assert!(s["message"].as_str().unwrap().contains("SEC-142"), "{s}");
        // Without a reason: SYM0403 on the comment.
        let unjustified = format!("{} symbiont: allow network_access\n", if path.ends_with(".py") { "#" } else { "//" });
        let comment_line = text[..text.find(&unjustified).unwrap()].matches('\n').count() as u64 + 1;
        assert_eq!(find(path, comment_line, "SYM0403")["severity"], "error");
        // Reading files is allowed and declared: nothing to say.
        let read_line = line_of(text, "config.json");
        assert!(
            !diagnostics.iter().any(|d| d["path"] == path && d["range"]["start"]["line"] == read_line),
            "{path}:{read_line}: a declared, allowed read is reported:\n{rendered}"
        );
    }

    // Unbound code: the base policy denies processes (related: its deny rule), allows the
    // environment (no capabilities to declare it in, so nothing to say), and allows no network
    // (default deny: no rule to point at).
    let d = find("tools/cleanup.py", line_of(UNBOUND, "subprocess.run"), "SYM0304");
    assert_eq!(d["severity"], "error");
    assert!(d["message"].as_str().unwrap().contains("bound to no agent"), "{d}");
    assert_eq!(d["related"][0]["path"], "policies.sym");
    assert_eq!(d["related"][0]["range"]["start"]["line"], line_of(POLICIES, "deny: [\"spawn_process\"]"));
    let d = find("tools/cleanup.py", line_of(UNBOUND, "requests.get"), "SYM0301");
    assert_eq!(d["severity"], "error");
    assert!(d["message"].as_str().unwrap().contains("default deny"), "{d}");
    assert_eq!(d["related"].as_array().map(Vec::len), Some(0), "{d}");
    let unbound: Vec<&Value> = diagnostics.iter().filter(|d| d["path"] == "tools/cleanup.py").collect();
    assert_eq!(unbound.len(), 2, "{rendered}");
    // And the workspace's own `.sym` files are clean.
    assert!(!diagnostics.iter().any(|d| d["path"].as_str().unwrap().ends_with(".sym")), "{rendered}");
}

#[test]
fn check_fix_routes_denied_calls_through_the_sdk() {
    let ws = workspace();
    let (code, report, stderr) = check(&ws, &["--fix"]);
    assert!(stderr.contains("applied"), "{stderr}");
    // The unjustified suppressions (and the unbound process) still fail the check.
    assert_eq!(code, 1, "{stderr}");
    let read = |path: &str| std::fs::read_to_string(ws.path(path)).unwrap();
    let mut fixed = String::new();
    for path in ["src/agent.py", "src/agent.js", "src/agent.ts", "src/agent.rs", "tools/cleanup.py"] {
        fixed.push_str(&format!("//- {path}\n{}", read(path)));
    }
    crate::code_rules::snapshot("e2e-fixed", fixed);

    let (py, js, ts, rs) = (read("src/agent.py"), read("src/agent.js"), read("src/agent.ts"), read("src/agent.rs"));
    assert!(py.contains("symbiont.net.get(\"https://example.com\")") && py.contains("symbiont.net.post("), "{py}");
    assert!(js.contains("symbiont.net.fetch(\"https://example.com/report\""), "{js}");
    // No SDK call takes these callees' arguments and returns what the code uses: no rewrite, and
    // the finding stays (a fix must never turn a finding into code that does not run).
    assert!(js.contains("axios.get(\"https://example.com\")") && !js.contains("symbiont.net.get"), "{js}");
    assert!(ts.contains("await axios.get<string>(url)") && !ts.contains("symbiont.net") && !ts.contains("from \"symbiont\""), "{ts}");
    assert!(rs.contains("reqwest::get(url).await") && !rs.contains("symbiont::net"), "{rs}");
    for (callee, written) in [
        ("requests.Session()", "symbiont.net.Session"),
        // The SDK's `get` takes no `params`: the call is not rewritten.
        ("requests.get(\"https://example.com/search\", params=", "symbiont.net.get(\"https://example.com/search\""),
        ("requests.head(\"https://example.com/ping\")", "symbiont.net.head"),
        ("socket.create_connection(", "symbiont.net.create_connection"),
    ] {
        assert!(py.contains(callee) && !py.contains(written), "{callee}: {py}");
        let line = line_of(&py, callee);
        let still = report["diagnostics"].as_array().unwrap().iter().any(|d| {
            d["path"] == "src/agent.py" && d["range"]["start"]["line"] == line && d["code"] == "SYM0301" && d["severity"] == "error"
        });
        assert!(still, "{callee}: the finding must remain after --fix\n{}", render(&report));
    }
    // One import of the SDK however many calls were rewritten.
    assert_eq!(py.matches("import symbiont\n").count(), 1, "{py}");
    assert_eq!(js.matches("require(\"symbiont\")").count(), 1, "{js}");
    // Suppressed calls are left alone, with or without a reason.
    for text in [&py, &js, &ts, &rs] {
        assert!(text.contains("status.example.com") && text.contains("example.com/state"), "{text}");
        assert!(!text.contains("symbiont.net.head") && !text.contains("symbiont.net.put"), "{text}");
    }
    // Unbound code: no SDK for processes; its network call is routed through the SDK too.
    let unbound = read("tools/cleanup.py");
    assert!(unbound.contains("subprocess.run(") && unbound.contains("symbiont.net.get("), "{unbound}");

    // What remains: the denied calls the SDK has no call for (axios.get twice, the async
    // reqwest::get, requests.Session, requests.get with params, requests.head,
    // socket.create_connection), the unbound process; the warnings, the suppressed findings and the unjustified suppressions.
    let rendered = render(&report);
    crate::code_rules::snapshot("e2e-after-fix", rendered.clone());
    let codes = |code: &str| report["diagnostics"].as_array().unwrap().iter().filter(|d| d["code"] == code).count();
    assert_eq!(
        report["diagnostics"].as_array().unwrap().iter().filter(|d| d["severity"] == "error" && d["code"] != "SYM0403").count(),
        8,
        "only the calls without an SDK equivalent are still denied:\n{rendered}"
    );
    assert_eq!(codes("SYM0403"), 4, "{rendered}");
    assert_eq!(codes("SYM0402"), 4, "{rendered}");

    // A second run has nothing left to fix and changes nothing.
    let before: Vec<String> = ["src/agent.py", "src/agent.js", "src/agent.ts", "src/agent.rs"].iter().map(|p| read(p)).collect();
    let (_, again, stderr) = check(&ws, &["--fix"]);
    assert!(!stderr.contains("applied"), "{stderr}");
    let after: Vec<String> = ["src/agent.py", "src/agent.js", "src/agent.ts", "src/agent.rs"].iter().map(|p| read(p)).collect();
    assert_eq!(before, after);
    assert_eq!(render(&again), rendered);
}
