//! The compiled decision structure. An agent's effective policy is compiled once into per-operation
//! rule lists; [`Engine::decide`] then answers a request without allocating in the common case
//! (guards that only read the request and compare values).
//!
//! The decision procedure (`docs/policy-semantics.md`, "Decisions"):
//! 1. a deny whose guard holds, or cannot be evaluated, denies;
//! 2. otherwise an allow whose guard holds is needed (default deny);
//! 3. then every applicable `require` must hold, or the request is denied;
//! 4. the allow comes with obligations: matching `audit` rules and the merged conditions.
//!
//! Each step reads a set of rules, never their order, so the result is independent of rule order.

use std::collections::HashMap;

use crate::{
    effective::{EffectivePolicy, MergedCondition},
    expr::{EvalError, Scope},
    model::{OpPattern, Rule, RuleKind},
    Levels, Value,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

/// Why the decision came out as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A deny rule matched (its guard held or could not be evaluated).
    Denied,
    /// No allow rule matched: default deny.
    NotAllowed,
    /// An allow matched but a `require` precondition did not hold.
    RequirementFailed,
    /// An allow matched and every requirement held.
    Allowed,
}

/// Up to [`RuleIds::CAPACITY`] rule indices, inline; more are counted but not listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleIds {
    ids: [u32; RuleIds::CAPACITY],
    len: u8,
    total: u32,
}

impl RuleIds {
    pub const CAPACITY: usize = 8;

    const EMPTY: RuleIds = RuleIds { ids: [0; RuleIds::CAPACITY], len: 0, total: 0 };

    fn push(&mut self, id: u32) {
        if (self.len as usize) < Self::CAPACITY {
            self.ids[self.len as usize] = id;
            self.len += 1;
        }
        self.total += 1;
    }

    pub fn as_slice(&self) -> &[u32] {
        &self.ids[..self.len as usize]
    }

    /// How many rules there were, listed or not.
    pub fn total(&self) -> u32 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Decision<'e> {
    pub effect: Effect,
    pub reason: Reason,
    /// The rules that decided: the matching denies, the failed requirement, or the matching allows.
    pub deciding: RuleIds,
    /// `audit` rules whose obligations apply (allowed requests only).
    pub audits: RuleIds,
    /// Merged conditions in force (allowed requests only).
    pub conditions: &'e [MergedCondition],
}

/// What happened to one rule while deciding, for explanations.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Matched,
    GuardFalse,
    GuardError(EvalError),
    /// A `require` precondition that did not hold (index into its preconditions).
    PreconditionFailed {
        index: usize,
        error: Option<EvalError>,
    },
}

#[derive(Debug, Default, Clone)]
struct OpRules {
    allow: Vec<u32>,
    deny: Vec<u32>,
    require: Vec<u32>,
    audit: Vec<u32>,
}

/// One effective policy, compiled for decisions.
#[derive(Debug, Clone)]
pub struct Engine {
    effective: EffectivePolicy,
    by_op: HashMap<Box<str>, OpRules>,
    /// `require` and `audit` rules scoped to no operation: they apply to every request.
    unscoped: OpRules,
    levels: Levels,
}

impl Engine {
    pub fn compile(effective: EffectivePolicy) -> Engine {
        let mut by_op: HashMap<Box<str>, OpRules> = HashMap::new();
        let mut unscoped = OpRules::default();
        // Every operation a rule could govern: the catalogue, the project's, and those named.
        let mut names: Vec<String> = effective.operations.names().map(str::to_string).collect();
        names.extend(effective.rules.iter().flat_map(|r| r.rule.ops.iter().map(|o| o.name.clone())));
        names.sort();
        names.dedup();
        for name in &names {
            let covering: Vec<&str> = effective.operations.ancestors(name).collect();
            let mut rules = OpRules::default();
            for (id, r) in effective.rules.iter().enumerate() {
                if r.rule.ops.iter().any(|o| covering.contains(&o.name.as_str())) {
                    list_for(&mut rules, r.rule.kind).push(id as u32);
                }
            }
            by_op.insert(name.as_str().into(), rules);
        }
        for (id, r) in effective.rules.iter().enumerate() {
            if r.rule.ops.is_empty() && matches!(r.rule.kind, RuleKind::Require | RuleKind::Audit) {
                list_for(&mut unscoped, r.rule.kind).push(id as u32);
            }
        }
        let levels = effective.levels.clone();
        Engine { effective, by_op, unscoped, levels }
    }

    pub fn effective(&self) -> &EffectivePolicy {
        &self.effective
    }

    pub fn rule(&self, id: u32) -> &Rule {
        &self.effective.rules[id as usize].rule
    }

    /// Decides a request: `operation` with its `args` (an array bound to the rule's parameters by
    /// position, or an object bound by name) in environment `env` (an object whose keys are the
    /// names guards refer to).
    pub fn decide(&self, operation: &str, args: &Value, env: &Value) -> Decision<'_> {
        self.decide_traced(operation, args, env, &mut |_, _| {})
    }

    /// [`Engine::decide`], reporting what happened to each rule it looked at.
    pub fn decide_traced(&self, operation: &str, args: &Value, env: &Value, trace: &mut dyn FnMut(u32, Outcome)) -> Decision<'_> {
        static NONE: OpRules = OpRules { allow: Vec::new(), deny: Vec::new(), require: Vec::new(), audit: Vec::new() };
        let rules = self.by_op.get(operation).unwrap_or(&NONE);
        let scope = Scope { args, env, levels: &self.levels };
        let deny = |reason, deciding| Decision { effect: Effect::Deny, reason, deciding, audits: RuleIds::EMPTY, conditions: &[] };

        let mut denies = RuleIds::EMPTY;
        for &id in &rules.deny {
            // Fail closed: a deny whose guard cannot be evaluated denies.
            match self.guard(id, &scope) {
                Ok(true) => {
                    trace(id, Outcome::Matched);
                    denies.push(id);
                }
                Ok(false) => trace(id, Outcome::GuardFalse),
                Err(e) => {
                    trace(id, Outcome::GuardError(e));
                    denies.push(id);
                }
            }
        }
        if !denies.is_empty() {
            return deny(Reason::Denied, denies);
        }

        let mut allows = RuleIds::EMPTY;
        for &id in &rules.allow {
            // Fail closed: an allow whose guard cannot be evaluated does not allow.
            match self.guard(id, &scope) {
                Ok(true) => {
                    trace(id, Outcome::Matched);
                    allows.push(id);
                }
                Ok(false) => trace(id, Outcome::GuardFalse),
                Err(e) => trace(id, Outcome::GuardError(e)),
            }
        }
        if allows.is_empty() {
            return deny(Reason::NotAllowed, RuleIds::EMPTY);
        }

        for &id in rules.require.iter().chain(&self.unscoped.require) {
            // A requirement with a guard applies when the guard holds or cannot be evaluated.
            if let Ok(false) = self.guard(id, &scope) {
                continue;
            }
            for (index, pre) in self.rule(id).preconditions.iter().enumerate() {
                let failed = match pre.expr.test(&scope) {
                    Ok(true) => continue,
                    Ok(false) => None,
                    Err(e) => Some(e),
                };
                trace(id, Outcome::PreconditionFailed { index, error: failed });
                let mut deciding = RuleIds::EMPTY;
                deciding.push(id);
                return deny(Reason::RequirementFailed, deciding);
            }
            trace(id, Outcome::Matched);
        }

        let mut audits = RuleIds::EMPTY;
        for &id in rules.audit.iter().chain(&self.unscoped.audit) {
            // More auditing is the safe side: an audit whose guard cannot be evaluated applies.
            if !matches!(self.guard(id, &scope), Ok(false)) {
                audits.push(id);
            }
        }
        Decision { effect: Effect::Allow, reason: Reason::Allowed, deciding: allows, audits, conditions: &self.effective.conditions }
    }

    fn guard(&self, id: u32, scope: &Scope<'_>) -> Result<bool, EvalError> {
        let rule = self.rule(id);
        match &rule.guard {
            None => Ok(true),
            Some(guard) => guard.expr.test(scope),
        }
    }
}

fn list_for(rules: &mut OpRules, kind: RuleKind) -> &mut Vec<u32> {
    match kind {
        RuleKind::Allow => &mut rules.allow,
        RuleKind::Deny => &mut rules.deny,
        RuleKind::Require => &mut rules.require,
        RuleKind::Audit | RuleKind::Conditions => &mut rules.audit,
    }
}

/// Whether an operation pattern's parameters bind anything (`read(file)`) or match all (`read`,
/// `read(any)`).
pub fn binds_params(op: &OpPattern) -> bool {
    op.params.iter().any(|p| p != "any")
}
