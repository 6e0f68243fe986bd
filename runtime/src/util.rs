//! Small helpers shared by the runtime's modules.

use std::future::Future;

use serde_json::{json, Value};
use std::pin::Pin;
use symbiont_policy::{Effect, Engine};

/// A boxed future: the sandbox traits return these so that backends are object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A random identifier of `bytes` random bytes, in hex.
pub fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).expect("the operating system's random source failed");
    symbiont_audit::entry::hex(&buf)
}

/// A decision with its reason and deciding rules as JSON, for the audit entry.
pub fn decide(engine: &Engine, operation: &str, args: &symbiont_policy::Value, env: &symbiont_policy::Value) -> (Effect, String, Value) {
    let decision = engine.decide(operation, args, env);
    let rules = decision
        .deciding
        .as_slice()
        .iter()
        .map(|&id| {
            let rule = engine.rule(id);
            json!({ "rule": rule.text, "at": rule.loc.to_string() })
        })
        .collect();
    (decision.effect, format!("{:?}", decision.reason), Value::Array(rules))
}

/// ` by `RULE`` naming the first deciding rule of [`decide`]'s list, for a denial's message.
pub fn denied_by(rules: &Value) -> String {
    rules.get(0).and_then(|r| r["rule"].as_str()).map(|r| format!(" by `{r}`")).unwrap_or_default()
}
