//! The policy engine's meaning, as fixtures: `policy/*.sym` with requests and expected decisions.

use symbiont_policy::{config::Config, Effect, Engine, Reason, Value};

fn engine(file: &str, agent: &str) -> Engine {
    let path = format!("{}/it/policy/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let universe = symbiont_policy::load([(path.as_str(), text.as_str())], Config::default());
    Engine::compile(universe.effective(Some(agent)).unwrap())
}

fn env(json: &str) -> Value {
    Value::from(serde_json::from_str::<serde_json::Value>(json).unwrap())
}

const GOOD_ENV: &str = r#"{"user_clearance": "maintainer", "audit_trail": true, "code_review": "mandatory"}"#;

#[test]
fn secure_development_allows_read_when_the_requirements_hold() {
    let engine = engine("secure_development.sym", "reviewer");
    let decision = engine.decide("read", &Value::Null, &env(GOOD_ENV));
    assert_eq!((decision.effect, decision.reason), (Effect::Allow, Reason::Allowed));
    let keys: Vec<&str> = decision.conditions.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["data_classification", "geographic_restriction", "retention_period"]);
}

#[test]
fn secure_development_denies_read_when_clearance_is_too_low() {
    let engine = engine("secure_development.sym", "reviewer");
    for clearance in ["public", "nobody"] {
        let e = env(&GOOD_ENV.replace("maintainer", clearance));
        let decision = engine.decide("read", &Value::Null, &e);
        assert_eq!((decision.effect, decision.reason), (Effect::Deny, Reason::RequirementFailed), "{clearance}");
    }
    // A missing attribute fails closed too.
    let decision = engine.decide("read", &Value::Null, &env(r#"{"audit_trail": true, "code_review": "mandatory"}"#));
    assert_eq!(decision.effect, Effect::Deny);
}

#[test]
fn secure_development_denies_network_writes_and_unnamed_operations() {
    let engine = engine("secure_development.sym", "reviewer");
    for op in ["network_access", "https_request", "file_system_write", "file_delete"] {
        let decision = engine.decide(op, &Value::Null, &env(GOOD_ENV));
        assert_eq!((decision.effect, decision.reason), (Effect::Deny, Reason::Denied), "{op}");
    }
    for op in ["spawn_process", "no_such_operation"] {
        let decision = engine.decide(op, &Value::Null, &env(GOOD_ENV));
        assert_eq!((decision.effect, decision.reason), (Effect::Deny, Reason::NotAllowed), "{op}");
    }
}

#[test]
fn deciding_does_not_allocate_in_the_common_case() {
    let engine = engine("secure_development.sym", "reviewer");
    let env = env(GOOD_ENV);
    assert!(crate::alloc::count(|| vec![0u8; 16]).1 > 0, "the allocation counter counts");
    let requests = ["read", "network_access", "spawn_process", "analyze", "no_such_operation"];
    let (effects, allocations) = crate::alloc::count(|| {
        let mut allowed = 0;
        for _ in 0..1000 {
            for op in requests {
                allowed += usize::from(engine.decide(op, &Value::Null, &env).effect == Effect::Allow);
            }
        }
        allowed
    });
    assert_eq!(effects, 2000, "read and analyze are allowed");
    assert_eq!(allocations, 0, "decide allocated on the hot path");
}
