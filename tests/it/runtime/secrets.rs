//! What an agent can read of its environment and of secrets, and what the audit log keeps of them,
//! at Tier 1 and Tier 2 (issue 13, findings 5, 6 and 10):
//!
//! - `env_get` reads only what `symbiont.toml` declares (`[runtime.env]`, `pass_env`), never the
//!   `symbiont` process's environment, which holds the runtime's secrets (`SYMBIONT_SECRET_*`) and
//!   the host's (`AWS_SECRET_ACCESS_KEY`, `HOME`);
//! - a secret's name is canonical before the policy decides: `deny: secret_access(name) if name ==
//!   "db_password"` stops `DB_PASSWORD` and `Db_Password` too, and the lookup reads exactly the
//!   secret decided on;
//! - the audit log redacts by field: an agent's own path that looks like a secret reference
//!   (`vault://hidden.txt`, `Bearer notes.txt`) is kept, a URL's userinfo and header values never
//!   are, nor any secret's value.

use serde_json::Value;

use super::sandbox::{entries_of, http_server, sandbox_ready, RunOutput, Ws};

/// Values the `symbiont` process has in its environment; none may reach an agent that is not
/// given it, nor the audit log.
const DB_PASSWORD: &str = "db-pw-5f1c9e";
const AWS_KEY: &str = "aws-secret-8d2b7a";
const HOST_HOME: &str = "/home/host-only-73a1";
/// A secret the agent may read: in its output, never in the log.
const API_KEY: &str = "api-key-c41e06";
/// Credentials the agent puts in a request: never in the log.
const URL_PASSWORD: &str = "url-pw-9b3f";
const HEADER_TOKEN: &str = "header-token-2e7d";

/// Runs `agent` of `agent.sym` with the host's secrets in the `symbiont` process's environment.
fn run(ws: &Ws, agent: &str, input: &str) -> RunOutput {
    let mut command = ws.command(&["run", "agent.sym", "--agent", agent, "--input", input]);
    command
        .env("SYMBIONT_SECRET_DB_PASSWORD", DB_PASSWORD)
        .env("SYMBIONT_SECRET_API_KEY", API_KEY)
        .env("AWS_SECRET_ACCESS_KEY", AWS_KEY)
        .env("HOME", HOST_HOME)
        .env("TZ", "Europe/Lisbon")
        .env_remove("UNSET_PASSED");
    ws.output(command)
}

/// Every byte of the workspace's audit log (segments, checkpoints, keys).
fn raw_log(ws: &Ws) -> String {
    fn walk(dir: &std::path::Path, out: &mut Vec<u8>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.extend(std::fs::read(&path).unwrap());
            }
        }
    }
    let mut bytes = Vec::new();
    walk(&ws.path(".symbiont/audit"), &mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The agent's last line of output, a JSON object.
fn report(run: &RunOutput, test: &str) -> Value {
    let line = run.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{test}: {e}\nstdout: {}\nstderr: {}", run.stdout, run.stderr))
}

/// Reads every variable it can think of, a secret it is denied, and makes a request with
/// credentials in its URL and headers.
const SNOOP: &str = r#"
import json, symbiont
port = symbiont.input()["port"]
seen = {}
for name in ["SYMBIONT_SECRET_DB_PASSWORD", "SYMBIONT_SECRET_API_KEY", "AWS_SECRET_ACCESS_KEY", "HOME", "PATH",
             "symbiont_secret_db_password", "GREETING", "TZ", "UNSET_PASSED"]:
    seen[name] = symbiont.env.get(name)
try:
    seen["secret"] = symbiont.secrets.get("db_password")
except symbiont.PolicyDenied:
    seen["secret"] = "denied"
try:
    r = symbiont.net.get(f"http://agent:URL_PASSWORD@127.0.0.1:{port}/data",
                         headers={"Authorization": "Bearer HEADER_TOKEN", "X-Api-Key": "HEADER_TOKEN"})
    seen["http"] = r.status_code
except symbiont.BrokerError as e:
    seen["http"] = e.code
print(json.dumps(seen, sort_keys=True))
"#;

/// Asks for one secret under several spellings, and writes files whose names look like secrets.
const KEEPER: &str = r#"
import json, symbiont
seen = {}
for name in ["DB_PASSWORD", "Db_Password", "db_password", "api_key", "API_KEY", "db-password"]:
    try:
        seen[name] = ["value", symbiont.secrets.get(name)]
    except symbiont.BrokerError as e:
        seen[name] = [e.code]
for path in ["vault://hidden.txt", "Bearer notes.txt"]:
    try:
        symbiont.fs.write(path, "mine")
        seen[path] = "written"
    except symbiont.BrokerError as e:
        seen[path] = e.code
print(json.dumps(seen, sort_keys=True))
"#;

fn environment_and_secrets(tier: u8) {
    let test = format!("environment_and_secrets tier {tier}");
    if !sandbox_ready(&test) {
        return;
    }
    let ws = Ws::new();
    ws.write("symbiont.toml", "[runtime]\npass_env = [\"TZ\", \"UNSET_PASSED\"]\n\n[runtime.env]\nGREETING = \"from symbiont.toml\"\n");
    ws.write("snoop.py", &SNOOP.replace("URL_PASSWORD", URL_PASSWORD).replace("HEADER_TOKEN", HEADER_TOKEN));
    ws.write("keeper.py", KEEPER);
    // Each agent's risk stays below Tier 2's (`deny: ["file_delete"]` takes the deletes that an
    // allowed write implies out of the score), so that the Tier 1 runs are at Tier 1.
    ws.write(
        "agent.sym",
        &format!(
            r#"agent snoop {{
    implementation = ["snoop.py"]
    security = {{ tier: Tier{tier}, timeout: 60s }}
    policy p {{
        allow: ["env_access"]
        allow: http_request(host) if host == "127.0.0.1"
        deny: ["secret_access"]
    }}
}}

agent keeper {{
    implementation = ["keeper.py"]
    security = {{ tier: Tier{tier}, timeout: 60s }}
    policy p {{
        allow: ["secret_access", "file_system_write"]
        deny: secret_access(name) if name == "db_password"
        deny: ["file_delete"]
    }}
}}
"#
        ),
    );
    let (port, hits) = http_server();

    // Finding 5: the agent's environment is what symbiont.toml declares, nothing of the host's.
    let snoop = run(&ws, "snoop", &format!(r#"{{"port": {port}}}"#));
    assert_eq!(snoop.code, 0, "{test}\nstdout: {}\nstderr: {}", snoop.stdout, snoop.stderr);
    assert!(snoop.stderr.contains(&format!("at Tier{tier}")), "{test}: {}", snoop.stderr);
    let seen = report(&snoop, &test);
    let expected = serde_json::json!({
        "SYMBIONT_SECRET_DB_PASSWORD": null, "SYMBIONT_SECRET_API_KEY": null, "AWS_SECRET_ACCESS_KEY": null,
        "HOME": null, "PATH": null, "symbiont_secret_db_password": null, "UNSET_PASSED": null,
        "GREETING": "from symbiont.toml", "TZ": "Europe/Lisbon", "secret": "denied", "http": 200,
    });
    assert_eq!(seen, expected, "{test}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1, "{test}: the request was made");

    // Finding 6: one canonical name for the guard and the lookup.
    let keeper = run(&ws, "keeper", "null");
    assert_eq!(keeper.code, 0, "{test}\nstdout: {}\nstderr: {}", keeper.stdout, keeper.stderr);
    assert!(keeper.stderr.contains(&format!("at Tier{tier}")), "{test}: {}", keeper.stderr);
    let seen = report(&keeper, &test);
    for spelling in ["DB_PASSWORD", "Db_Password", "db_password"] {
        assert_eq!(seen[spelling], serde_json::json!(["denied"]), "{test}: {spelling}");
    }
    for spelling in ["api_key", "API_KEY"] {
        assert_eq!(seen[spelling], serde_json::json!(["value", API_KEY]), "{test}: {spelling}");
    }
    assert_eq!(seen["db-password"], serde_json::json!(["bad_request"]), "{test}: a name outside the alphabet is refused");
    assert_eq!(seen["Bearer notes.txt"], "written", "{test}");
    assert_eq!(std::fs::read_to_string(ws.path(".symbiont/workspaces/keeper/Bearer notes.txt")).unwrap(), "mine");

    let entries = ws.audit();
    let secrets: Vec<(&str, &str)> = entries_of(&entries, "secret_access")
        .iter()
        .map(|e| (e["details"]["request"]["name"].as_str().unwrap(), e["decision"].as_str().unwrap()))
        .collect();
    let denied = ("db_password", "deny");
    let allowed = ("api_key", "allow");
    assert_eq!(
        secrets,
        [denied, denied, denied, denied, allowed, allowed],
        "{test}: the snoop's denied secret, then the keeper's requests, each under the canonical name"
    );

    // Finding 10: paths are kept as written; credentials and secret values never are.
    let writes = entries_of(&entries, "file_system_write");
    let paths: Vec<&str> = writes.iter().map(|e| e["details"]["request"]["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["vault://hidden.txt", "Bearer notes.txt"], "{test}: {writes:#?}");
    let http = entries_of(&entries, "http_request");
    assert_eq!(http.len(), 1, "{test}: {http:#?}");
    assert_eq!(http[0]["details"]["request"]["url"], format!("http://[REDACTED]@127.0.0.1:{port}/data"), "{test}");
    let log = raw_log(&ws);
    for (what, value) in [
        ("the denied secret", DB_PASSWORD),
        ("the allowed secret", API_KEY),
        ("the host's AWS key", AWS_KEY),
        ("the host's HOME", HOST_HOME),
        ("the URL's password", URL_PASSWORD),
        ("the header's token", HEADER_TOKEN),
    ] {
        assert!(!log.contains(value), "{test}: {what} is in the audit log");
        let output = [&snoop.stdout, &snoop.stderr, &keeper.stdout, &keeper.stderr];
        let shown = output.iter().filter(|o| o.contains(value)).count();
        assert_eq!(shown, usize::from(value == API_KEY), "{test}: {what} is in the runs' output (only the allowed secret may be)");
    }
    ws.assert_clean(&snoop);
    ws.assert_clean(&keeper);
}

#[test]
fn environment_and_secrets_tier1() {
    environment_and_secrets(1);
}

#[test]
fn environment_and_secrets_tier2() {
    environment_and_secrets(2);
}

/// `symbiont check` reports a `[runtime]` table that would hand an agent a secret, and `symbiont
/// run` refuses it; no sandbox needed.
#[test]
fn a_secret_passed_through_is_a_config_error() {
    let ws = Ws::new();
    ws.write("symbiont.toml", "[runtime]\npass_env = [\"TZ\", \"AWS_SECRET_ACCESS_KEY\"]\n");
    ws.write("agent.sym", "agent a {\n    implementation = [\"a.py\"]\n}\n");
    ws.write("a.py", "print('never runs')\n");
    let check = ws.run(&["check", "--format", "json", "."]);
    assert_eq!(check.code, 1, "{}", check.stdout);
    let report: Value = serde_json::from_str(&check.stdout).unwrap();
    let diagnostic = &report["diagnostics"][0];
    assert_eq!((diagnostic["code"].as_str(), diagnostic["path"].as_str()), (Some("SYM0003"), Some("symbiont.toml")), "{report:#}");
    assert!(diagnostic["message"].as_str().unwrap().contains("`AWS_SECRET_ACCESS_KEY` looks like a secret"), "{report:#}");
    let run = ws.run(&["run", "agent.sym"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("looks like a secret"), "{}", run.stderr);
    assert!(!run.stdout.contains("never runs"));
}
