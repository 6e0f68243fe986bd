//! The effective policy of an agent: every rule that applies to it, found by walking the
//! hierarchy, with where each came from; merged conditions; and the conflicts worth reporting.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use symbiont_syntax::quantity::{self, Quantity};

use crate::{
    catalogue::Operations,
    config::Config,
    model::{AgentDef, FileModel, PolicyDef, Rule, RuleKind, SourceLoc},
    LevelKind, Value,
};

/// Every policy and agent of a workspace, with its configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Universe {
    policies: HashMap<String, Arc<PolicyDef>>,
    agents: BTreeMap<String, Arc<AgentDef>>,
    config: Config,
}

/// How a policy reached an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// The workspace base policy (`symbiont.toml`).
    Base,
    /// `policies = [...]` in the agent.
    Applied,
    /// An inline `policy NAME { … }` of the agent.
    Inline,
    /// `extends` from the named child policy.
    Extends(String),
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Via::Base => f.write_str("workspace base policy"),
            Via::Applied => f.write_str("applied by the agent"),
            Via::Inline => f.write_str("inline in the agent"),
            Via::Extends(child) => write!(f, "extended by `{child}`"),
        }
    }
}

/// A policy in an effective policy, in the order it was reached.
#[derive(Debug, Clone)]
pub struct ReachedPolicy {
    pub name: String,
    pub via: Via,
    /// How many `extends` steps from where it entered (0 = base, applied or inline itself).
    pub depth: usize,
    pub loc: SourceLoc,
    /// The parents its definition names, reached or not.
    pub extends: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct EffectiveRule {
    pub rule: Arc<Rule>,
    /// Index into [`EffectivePolicy::policies`].
    pub policy: usize,
}

/// A condition after merging: the value in force and the rules it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedCondition {
    pub key: String,
    pub value: Value,
    pub sources: Vec<SourceLoc>,
}

/// The condition keys the runtime enforces, and how (`docs/policy-semantics.md`, "Conditions the
/// runtime enforces"); any other key is merged and reported but advisory (SYM0212 in `check`).
pub const ENFORCED_CONDITIONS: &[(&str, &str)] = &[
    ("data_classification", "raises the risk score, so the tier"),
    (crate::geography::KEY, "limits HTTP requests and audit backups to the named regions"),
    (RETENTION_KEY, "how long a run's outputs are kept before `symbiont gc` deletes them"),
];

/// Two levels state a condition differently; the most restrictive value was kept.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionConflict {
    pub key: String,
    pub kept: (Value, SourceLoc),
    pub other: (Value, SourceLoc),
}

/// An allow that never takes effect because a deny covers the same operation unconditionally.
#[derive(Debug, Clone, PartialEq)]
pub struct Shadowed {
    pub operation: String,
    /// Rule indices into [`EffectivePolicy::rules`].
    pub allow: usize,
    pub deny: usize,
    /// The deny sits in the same policy as the allow (rather than an inherited one).
    pub same_policy: bool,
}

#[derive(Debug, Clone)]
pub struct EffectivePolicy {
    pub agent: Option<String>,
    pub policies: Vec<ReachedPolicy>,
    pub rules: Vec<EffectiveRule>,
    pub conditions: Vec<MergedCondition>,
    pub condition_conflicts: Vec<ConditionConflict>,
    pub shadowed: Vec<Shadowed>,
    /// Policy names that were referenced but are not defined (the static checks report these).
    pub missing: Vec<(String, Via)>,
    pub operations: Operations,
    pub levels: crate::Levels,
    /// The workspace's declared regions (`symbiont.toml` `[regions]`), for [`EffectivePolicy::geography`].
    pub regions: BTreeMap<String, crate::geography::Region>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAgent {
    pub name: String,
    pub suggestion: Option<String>,
}

impl std::fmt::Display for UnknownAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no agent named `{}` in the workspace", self.name)?;
        if let Some(s) = &self.suggestion {
            write!(f, " (did you mean `{s}`?)")?;
        }
        Ok(())
    }
}

impl Universe {
    /// Builds the universe; the first definition of a name wins (duplicates are reported by the
    /// static checks).
    pub fn new<'a>(files: impl IntoIterator<Item = &'a FileModel>, config: Config) -> Self {
        let mut universe = Universe { config, ..Universe::default() };
        for file in files {
            for policy in &file.policies {
                universe.policies.entry(policy.name.clone()).or_insert_with(|| policy.clone());
            }
            for agent in &file.agents {
                universe.agents.entry(agent.name.clone()).or_insert_with(|| agent.clone());
            }
        }
        universe
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn agents(&self) -> impl Iterator<Item = &AgentDef> {
        self.agents.values().map(|a| &**a)
    }

    pub fn agent(&self, name: &str) -> Option<&AgentDef> {
        self.agents.get(name).map(|a| &**a)
    }

    pub fn policy(&self, name: &str) -> Option<&PolicyDef> {
        self.policies.get(name).map(|p| &**p)
    }

    /// The names of the workspace's top-level policies, in no particular order.
    pub fn policy_names(&self) -> impl Iterator<Item = &str> {
        self.policies.keys().map(String::as_str)
    }

    /// The effective policy of an agent, or of code bound to no agent (`None`: the base policy).
    pub fn effective(&self, agent: Option<&str>) -> Result<EffectivePolicy, UnknownAgent> {
        let agent = match agent {
            None => None,
            Some(name) => Some(self.agents.get(name).ok_or_else(|| UnknownAgent {
                name: name.to_string(),
                suggestion: symbiont_syntax::suggest::closest(name, self.agents.keys().map(String::as_str)).map(str::to_string),
            })?),
        };
        let mut collector = Collector { universe: self, effective: self.empty(agent.map(|a| a.name.clone())), seen: HashSet::new() };
        if let Some((base, _)) = &self.config.base_policy {
            collector.enter_named(base, Via::Base);
        }
        if let Some(agent) = agent {
            for (name, _) in &agent.applied {
                collector.enter_named(name, Via::Applied);
            }
            for inline in &agent.inline {
                collector.enter(inline, Via::Inline, 0);
            }
        }
        let mut effective = collector.effective;
        effective.finish();
        Ok(effective)
    }

    /// The effective policy of one top-level policy on its own: itself and its ancestors.
    pub fn effective_of_policy(&self, name: &str) -> Option<EffectivePolicy> {
        let policy = self.policies.get(name)?;
        let mut collector = Collector { universe: self, effective: self.empty(None), seen: HashSet::new() };
        collector.enter(policy, Via::Applied, 0);
        let mut effective = collector.effective;
        effective.finish();
        Some(effective)
    }

    fn empty(&self, agent: Option<String>) -> EffectivePolicy {
        EffectivePolicy {
            agent,
            policies: Vec::new(),
            rules: Vec::new(),
            conditions: Vec::new(),
            condition_conflicts: Vec::new(),
            shadowed: Vec::new(),
            missing: Vec::new(),
            operations: Operations::new(&self.config.operations),
            levels: self.config.levels.clone(),
            regions: self.config.regions.clone(),
        }
    }
}

struct Collector<'u> {
    universe: &'u Universe,
    effective: EffectivePolicy,
    /// Each policy is taken once, however many paths lead to it (diamonds, cycles): its name and
    /// owner, borrowed from the universe (one scope's collection allocates no key).
    seen: HashSet<(&'u str, Option<&'u str>)>,
}

impl<'u> Collector<'u> {
    fn enter_named(&mut self, name: &str, via: Via) {
        match self.universe.policies.get(name) {
            Some(policy) => self.enter(policy, via, 0),
            None => self.effective.missing.push((name.to_string(), via)),
        }
    }

    fn enter(&mut self, policy: &'u Arc<PolicyDef>, via: Via, depth: usize) {
        // Depth-first with an explicit stack, so a long `extends` chain cannot overflow.
        let mut stack = vec![(policy, via, depth)];
        while let Some((policy, via, depth)) = stack.pop() {
            if !self.seen.insert((policy.name.as_str(), policy.owner.as_deref())) {
                continue;
            }
            let index = self.effective.policies.len();
            let extends = policy.extends.iter().map(|(name, _)| name.clone()).collect();
            self.effective.policies.push(ReachedPolicy { name: policy.name.clone(), via, depth, loc: policy.loc.clone(), extends });
            for rule in &policy.rules {
                self.effective.rules.push(EffectiveRule { rule: rule.clone(), policy: index });
            }
            for (parent, _) in policy.extends.iter().rev() {
                match self.universe.policies.get(parent) {
                    Some(p) => stack.push((p, Via::Extends(policy.name.clone()), depth + 1)),
                    None => self.effective.missing.push((parent.clone(), Via::Extends(policy.name.clone()))),
                }
            }
        }
    }
}

/// What a policy says of an operation before any request is seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaticVerdict {
    /// An unconditional deny covers it (the rule's index).
    DeniedBy(usize),
    /// No allow rule covers it: default deny.
    NeverAllowed,
    /// Allowed by some rule, but a guard or a deny's guard decides at run time.
    Conditional,
    /// An unconditional allow covers it and no deny does.
    Allowed,
}

/// The condition whose merged value the runtime enforces as how long an agent's outputs are
/// kept (`docs/runtime.md`, "Retention").
pub const RETENTION_KEY: &str = "retention_period";

/// A `retention_period` value as a duration (a quantity, a string like `"30d"`, or a number of
/// days), or why it is not one.
pub fn retention_value(value: &Value) -> Result<std::time::Duration, String> {
    duration(value)
        .ok_or_else(|| format!("the condition {RETENTION_KEY} is {value}, which is not a duration (write it like 90.days or \"30d\")"))
}

impl EffectivePolicy {
    /// How long this agent's outputs are kept: the merged `retention_period` (the shortest
    /// stated), `None` when no policy states one. A value that is not a duration is an error, so
    /// that the runtime refuses to write rather than keep data for a period nobody chose.
    pub fn retention(&self) -> Result<Option<std::time::Duration>, String> {
        let Some(condition) = self.conditions.iter().find(|c| c.key == RETENTION_KEY) else { return Ok(None) };
        retention_value(&condition.value).map(Some)
    }

    /// The merged `geographic_restriction`, with the `conditions` rules that state it, resolved
    /// against the declared regions; `None` when no policy restricts the agent.
    pub fn geography(&self) -> Option<crate::geography::Restriction> {
        let condition = self.conditions.iter().find(|c| c.key == crate::geography::KEY)?;
        let rules = self
            .rules
            .iter()
            .filter(|r| r.rule.kind == RuleKind::Conditions && r.rule.obligations.iter().any(|(k, _)| k == crate::geography::KEY))
            .map(|r| (r.rule.text.to_string(), r.rule.loc.clone()))
            .collect();
        Some(crate::geography::Restriction::new(&condition.value, rules, &self.regions))
    }

    /// The verdict on `operation` independent of the request: what the static checks report.
    pub fn static_verdict(&self, operation: &str) -> StaticVerdict {
        let covering: Vec<&str> = self.operations.ancestors(operation).collect();
        let covers = |r: &EffectiveRule| r.rule.ops.iter().any(|o| covering.contains(&o.name.as_str()));
        let unconditional = |r: &EffectiveRule| r.rule.is_unconditional() && r.rule.ops.iter().all(|o| o.params.iter().all(|p| p == "any"));
        if let Some(i) = self.rules.iter().position(|r| r.rule.kind == RuleKind::Deny && covers(r) && unconditional(r)) {
            return StaticVerdict::DeniedBy(i);
        }
        let allows: Vec<&EffectiveRule> = self.rules.iter().filter(|r| r.rule.kind == RuleKind::Allow && covers(r)).collect();
        if allows.is_empty() {
            return StaticVerdict::NeverAllowed;
        }
        let denied_sometimes = self.rules.iter().any(|r| r.rule.kind == RuleKind::Deny && covers(r));
        let required = self.rules.iter().any(|r| r.rule.kind == RuleKind::Require);
        if allows.iter().any(|r| unconditional(r)) && !denied_sometimes && !required {
            StaticVerdict::Allowed
        } else {
            StaticVerdict::Conditional
        }
    }

    fn finish(&mut self) {
        self.find_shadowed();
        self.merge_conditions();
    }

    /// Allows that an unconditional deny of the same operation (or a broader one) overrides.
    fn find_shadowed(&mut self) {
        for (ai, allow) in self.rules.iter().enumerate().filter(|(_, r)| r.rule.kind == RuleKind::Allow) {
            for op in &allow.rule.ops {
                let covering: Vec<&str> = self.operations.ancestors(&op.name).collect();
                for (di, deny) in self.rules.iter().enumerate().filter(|(_, r)| r.rule.kind == RuleKind::Deny && r.rule.is_unconditional())
                {
                    if deny.rule.ops.iter().any(|d| d.params.iter().all(|p| p == "any") && covering.contains(&d.name.as_str())) {
                        self.shadowed.push(Shadowed {
                            operation: op.name.clone(),
                            allow: ai,
                            deny: di,
                            same_policy: allow.policy == deny.policy,
                        });
                    }
                }
            }
        }
    }

    /// Merges `conditions` to the most restrictive value per key.
    fn merge_conditions(&mut self) {
        let mut merged: Vec<MergedCondition> = Vec::new();
        let mut locs: Vec<SourceLoc> = Vec::new();
        for rule in self.rules.iter().filter(|r| r.rule.kind == RuleKind::Conditions) {
            for (key, value) in &rule.rule.obligations {
                match merged.iter().position(|m| &m.key == key) {
                    None => {
                        merged.push(MergedCondition { key: key.clone(), value: value.clone(), sources: vec![rule.rule.loc.clone()] });
                        locs.push(rule.rule.loc.clone());
                    }
                    Some(i) => {
                        let existing = &mut merged[i];
                        existing.sources.push(rule.rule.loc.clone());
                        if &existing.value == value {
                            continue;
                        }
                        let kept = most_restrictive(key, &existing.value, value, &self.levels);
                        let (kept_value, kept_loc, other_value, other_loc) = if kept == existing.value {
                            (kept, locs[i].clone(), value.clone(), rule.rule.loc.clone())
                        } else {
                            (kept, rule.rule.loc.clone(), existing.value.clone(), locs[i].clone())
                        };
                        existing.value = kept_value.clone();
                        locs[i] = kept_loc.clone();
                        self.condition_conflicts.push(ConditionConflict {
                            key: key.clone(),
                            kept: (kept_value, kept_loc),
                            other: (other_value, other_loc),
                        });
                    }
                }
            }
        }
        self.conditions = merged;
    }
}

/// The more restrictive of two values of one condition (`docs/policy-semantics.md`,
/// "Conditions"). Commutative and associative, so the merged value never depends on rule order.
pub fn most_restrictive(key: &str, a: &Value, b: &Value, levels: &crate::Levels) -> Value {
    let key = key.to_ascii_lowercase();
    if key.contains("classification") {
        if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
            let (rx, ry) = (levels.rank(LevelKind::Classification, x), levels.rank(LevelKind::Classification, y));
            if rx != ry {
                return if ry > rx { b.clone() } else { a.clone() };
            }
        }
    }
    if key.contains("retention") || key.contains("expir") || key.contains("ttl") {
        if let (Some(x), Some(y)) = (duration(a), duration(b)) {
            if x != y {
                return if y < x { b.clone() } else { a.clone() };
            }
        }
    }
    if key.contains("geograph") || key.contains("region") || key.contains("location") {
        if let (Some(x), Some(y)) = (places(a), places(b)) {
            let mut both: Vec<String> = x.intersection(&y).cloned().collect();
            return match both.len() {
                1 => Value::String(both.remove(0)),
                _ => Value::Array(both.into_iter().map(Value::String).collect()),
            };
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => Value::Bool(*x || *y),
        (Value::Number(x), Value::Number(y)) if key.starts_with("min") => Value::Number(x.max(*y)),
        (Value::Number(x), Value::Number(y)) => Value::Number(x.min(*y)),
        // No order is known: a fixed choice (the smaller rendering), reported as a conflict.
        _ => {
            if b.to_string() < a.to_string() {
                b.clone()
            } else {
                a.clone()
            }
        }
    }
}

fn places(value: &Value) -> Option<std::collections::BTreeSet<String>> {
    match value {
        Value::String(s) => Some(std::iter::once(s.clone()).collect()),
        Value::Array(items) => items.iter().map(|i| i.as_str().map(str::to_string)).collect(),
        _ => None,
    }
}

fn duration(value: &Value) -> Option<std::time::Duration> {
    match value {
        Value::String(text) => match quantity::parse(text) {
            Ok(Quantity::Duration(d)) => Some(d),
            _ => None,
        },
        // A bare number of a retention is days.
        Value::Number(days) if *days >= 0.0 => Some(std::time::Duration::from_secs_f64(days * 86_400.0)),
        _ => None,
    }
}

#[cfg(test)]
mod retention_tests {
    use std::time::Duration;

    fn retention(policies: &str) -> Result<Option<Duration>, String> {
        let source = format!("{policies}\nagent a {{ policies = [p, q] }}\n");
        let universe = crate::load([("a.sym", source.as_str())], crate::config::Config::default());
        universe.effective(Some("a")).unwrap().retention()
    }

    /// The shortest stated period is the one in force, in any unit; a bare number is days; none
    /// stated is none; a value that is no duration is an error naming it.
    #[test]
    fn the_shortest_retention_is_in_force() {
        let two = "policy p { conditions: { retention_period: 90.days } }\npolicy q { conditions: { retention_period: 2.seconds } }";
        assert_eq!(retention(two), Ok(Some(Duration::from_secs(2))));
        let days = "policy p { conditions: { retention_period: 3 } }\npolicy q { conditions: { retention_period: \"4d\" } }";
        assert_eq!(retention(days), Ok(Some(Duration::from_secs(3 * 86_400))));
        assert_eq!(retention("policy p { allow: file_read }\npolicy q { allow: file_read }"), Ok(None));
        let error = retention("policy p { conditions: { retention_period: \"forever\" } }\npolicy q { allow: file_read }").unwrap_err();
        assert!(error.contains("\"forever\"") && error.contains("not a duration"), "{error}");
    }
}
