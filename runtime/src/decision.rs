//! The runtime's central rule, written once: decide, make the audit entry durable, then act or
//! refuse. [`decide_and_record`] (and [`decide_and_submit`], for the bus's send, which overlaps
//! queueing with the write) is the only way the broker and the bus ask the policy: the
//! [`Decision`] it returns exists only once its entry is in the log.

use serde_json::{json, Map, Value};
use symbiont_audit::{Durable, Error};
use symbiont_policy::{Effect, Engine};

use crate::{auditor::Write, Auditor};

/// A rule that decided, as audit entries name it (`{"rule": text, "at": location}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecidingRule {
    /// The rule as written in the `.sym`.
    pub text: String,
    /// Where: `file:line:column`.
    pub location: String,
}

impl DecidingRule {
    pub(crate) fn to_json(&self) -> Value {
        json!({ "rule": self.text, "at": self.location })
    }
}

/// A condition the runtime itself enforces on an allowed request (a geographic restriction):
/// when unmet, the request is denied by the rules that state it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    /// The reason the entry gives (`OutsideRegion`).
    pub reason: &'static str,
    /// The rules that state the condition.
    pub rules: Vec<DecidingRule>,
    /// Why the request does not meet it (the entry's `refused`).
    pub why: String,
}

/// The policy's answer to one operation, with the runtime's own conditions applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub effect: Effect,
    /// The engine's reason (`Allowed`, `Denied`, `NotAllowed`, `RequirementFailed`), or the
    /// unmet condition's.
    pub reason: String,
    /// The rules that decided, first the one a denial names.
    pub rules: Vec<DecidingRule>,
    /// Why an unmet condition refused what the policy allowed.
    pub refused: Option<String>,
}

impl Decision {
    /// Asks `engine` about `operation` with `args` in `env`; an allowed request that fails `unmet`
    /// is denied by it. Not public: a decision is only handed out once audited.
    fn of(question: &Question<'_>) -> Decision {
        let decided = question.engine.decide(question.operation, question.args, question.env);
        let rules = decided
            .deciding
            .as_slice()
            .iter()
            .map(|&id| {
                let rule = question.engine.rule(id);
                DecidingRule { text: rule.text.to_string(), location: rule.loc.to_string() }
            })
            .collect();
        let decision = Decision { effect: decided.effect, reason: format!("{:?}", decided.reason), rules, refused: None };
        match (&question.unmet, decision.effect) {
            (Some(unmet), Effect::Allow) => Decision {
                effect: Effect::Deny,
                reason: unmet.reason.to_string(),
                rules: unmet.rules.clone(),
                refused: Some(unmet.why.clone()),
            },
            _ => decision,
        }
    }

    pub fn allowed(&self) -> bool {
        self.effect == Effect::Allow
    }

    /// What the audit entry says of the decision: `reason`, `rules`, and `refused` when an unmet
    /// condition denied it.
    pub fn details(&self) -> Map<String, Value> {
        let mut details = Map::from_iter([
            ("reason".to_string(), json!(self.reason)),
            ("rules".to_string(), Value::Array(self.rules.iter().map(DecidingRule::to_json).collect())),
        ]);
        if let Some(why) = &self.refused {
            details.insert("refused".into(), json!(why));
        }
        details
    }

    /// The message a denial answers with: `policy denies WHAT for agent AGENT by `RULE` (REASON)`,
    /// naming the first deciding rule, and the unmet condition's why after the reason.
    pub fn denial(&self, what: &str, agent: &str) -> String {
        let by = self.rules.first().map(|r| format!(" by `{}`", r.text)).unwrap_or_default();
        let why = self.refused.as_ref().map(|why| format!(": {why}")).unwrap_or_default();
        format!("policy denies {what} for agent {agent}{by} ({}{why})", self.reason)
    }
}

/// What the runtime asks the policy on an agent's behalf.
pub struct Question<'a> {
    pub engine: &'a Engine,
    /// The policy's `env` for the agent.
    pub env: &'a symbiont_policy::Value,
    pub agent: &'a str,
    pub operation: &'a str,
    pub args: &'a symbiont_policy::Value,
    /// A condition the runtime enforces that the request does not meet, if any.
    pub unmet: Option<Unmet>,
}

/// Decides `question`, appends the audit entry (the decision's details over those `details`
/// gives for it) and waits until it is durable. Only then may the caller act (allowed) or refuse
/// (denied); an entry that cannot be written is an error, and the caller does neither.
pub async fn decide_and_record(
    auditor: &Auditor,
    question: Question<'_>,
    details: impl FnOnce(&Decision) -> Map<String, Value>,
) -> Result<Decision, Error> {
    let (decision, durable) = decide_and_submit(auditor, question, Write::Now, details)?;
    durable.await?;
    Ok(decision)
}

/// [`decide_and_record`] without the wait: the entry is signed and queued, and the returned
/// [`Durable`] resolves once it is on disk. For work with no effect outside that can overlap the
/// write (the bus seals and queues a message meanwhile); the act, or the answer, awaits it first.
/// `write`: whether the entry may wait for one that follows it ([`Write::WithNext`]).
pub fn decide_and_submit(
    auditor: &Auditor,
    question: Question<'_>,
    write: Write,
    details: impl FnOnce(&Decision) -> Map<String, Value>,
) -> Result<(Decision, Durable), Error> {
    let decision = Decision::of(&question);
    let mut entry = details(&decision);
    entry.extend(decision.details());
    let durable = auditor.submit(question.agent, question.operation, decision.effect.as_str(), entry, write)?;
    Ok((decision, durable))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(refused: Option<&str>, rules: &[&str]) -> Decision {
        Decision {
            effect: Effect::Deny,
            reason: "Denied".into(),
            rules: rules.iter().map(|r| DecidingRule { text: r.to_string(), location: "a.sym:3:5".into() }).collect(),
            refused: refused.map(str::to_string),
        }
    }

    #[test]
    fn a_denial_names_its_first_rule_and_why() {
        let two = decision(None, &["deny: file_write", "deny: *"]);
        assert_eq!(two.denial("file_write", "a"), "policy denies file_write for agent a by `deny: file_write` (Denied)");
        assert_eq!(decision(None, &[]).denial("x", "a"), "policy denies x for agent a (Denied)");
        let unmet = decision(Some("far away"), &["conditions: {}"]);
        assert_eq!(unmet.denial("http_request", "a"), "policy denies http_request for agent a by `conditions: {}` (Denied: far away)");
    }

    #[test]
    fn details_carry_refused_only_when_a_condition_refused() {
        let plain = decision(None, &["deny: *"]).details();
        assert_eq!(Value::Object(plain), json!({ "reason": "Denied", "rules": [{ "rule": "deny: *", "at": "a.sym:3:5" }] }));
        assert_eq!(decision(Some("why"), &[]).details()["refused"], json!("why"));
    }
}
