//! Geography (issue 18) on a real sandbox: an agent whose merged `geographic_restriction` names a
//! region reaches the test's HTTP server on the host's loopback only when that region holds it
//! (`cidrs = ["127.0.0.0/8"]`); restricted to a region that does not, the same allowed request is
//! denied before any connection, audited with the `conditions` rule as the deciding rule (its
//! file:line); restricted to an undeclared region, the run is refused before anything starts.

use std::sync::atomic::Ordering;

use super::sandbox::{entries_of, http_server, sandbox_ready, Ws};

const AGENT: &str = r#"
import symbiont
port = symbiont.input()["port"]
try:
    r = symbiont.net.get(f"http://127.0.0.1:{port}/data")
    print("http", r.status_code, r.text)
except symbiont.PolicyDenied as e:
    print("http denied", e.code)
"#;

const REGIONS: &str = "[regions.lo]\ncidrs = [\"127.0.0.0/8\"]\n\n[regions.far]\nhosts = [\"*.far.example\"]\ncidrs = [\"10.0.0.0/8\"]\n";

/// The `.sym` of an agent allowed every HTTP request, restricted to `region`; the condition is
/// written at agent.sym:6:9.
fn agent_sym(region: &str) -> String {
    format!(
        "agent fetcher {{\n    capabilities = [\"http_request\"]\n    implementation = [\"agent.py\"]\n    security = {{ tier: Tier1, memory: 256MB, timeout: 60s }}\n    policy regional {{\n        conditions: {{ geographic_restriction: {region} }}\n        allow: http_request\n    }}\n}}\n"
    )
}

fn workspace(region: &str) -> Ws {
    let ws = Ws::new();
    ws.write("symbiont.toml", REGIONS);
    ws.write("agent.py", AGENT);
    ws.write("agent.sym", &agent_sym(region));
    ws
}

#[test]
fn a_request_outside_the_agents_regions_is_denied_by_the_condition() {
    let test = "a_request_outside_the_agents_regions_is_denied_by_the_condition";
    if !sandbox_ready(test) {
        return;
    }
    let (port, hits) = http_server();
    let input = format!(r#"{{"port": {port}}}"#);

    // Inside: the region's cidrs hold 127.0.0.1 (the canonical host and the address connected to).
    let ws = workspace("[\"far\", \"lo\"]");
    let run = ws.run(&["run", "agent.sym", "--input", &input]);
    assert_eq!(run.code, 0, "{test}\nstdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.contains("http 200 hello"), "{test}: {}", run.stdout);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let entries = ws.audit();
    let http = entries_of(&entries, "http_request");
    assert_eq!((http.len(), http[0]["decision"].as_str()), (1, Some("allow")), "{entries:#?}");
    ws.assert_clean(&run);

    // Outside: the policy allows the request, the restriction denies it; nothing connects.
    let ws = workspace("\"far\"");
    let run = ws.run(&["run", "agent.sym", "--input", &input]);
    assert_eq!(run.code, 0, "{test}\nstdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.contains("http denied denied"), "{test}: {}", run.stdout);
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the denied request never reached the server");
    let entries = ws.audit();
    let http = entries_of(&entries, "http_request");
    assert_eq!(http.len(), 1, "{entries:#?}");
    let details = &http[0]["details"];
    assert_eq!(http[0]["decision"], "deny");
    assert_eq!(details["reason"], "OutsideRegion");
    assert_eq!(details["request"]["url"], format!("http://127.0.0.1:{port}/data"));
    assert_eq!(details["rules"], serde_json::json!([{ "rule": "conditions: { geographic_restriction: \"far\" }", "at": "agent.sym:6:9" }]));
    let why = details["refused"].as_str().unwrap_or_default();
    assert!(why.contains("127.0.0.1 (127.0.0.1) is in none of the regions this agent may reach (geographic_restriction: far)"), "{why}");
    ws.assert_clean(&run);

    // Undeclared: `check`'s error, and the run refused before anything starts.
    let ws = workspace("\"mars\"");
    let check = ws.run(&["check"]);
    assert_ne!(check.code, 0, "{}", check.stdout);
    let said = format!("{}{}", check.stdout, check.stderr);
    assert!(said.contains("SYM0211") && said.contains("names region `mars`"), "{said}");
    let run = ws.run(&["run", "agent.sym", "--input", &input]);
    assert_eq!(run.code, 2, "{test}\nstdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stderr.contains("error[SYM0211]") && run.stderr.contains("nothing was started"), "{}", run.stderr);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    ws.assert_clean_dir();
}
