//! Property tests of the policy engine against a deliberately simple reference interpreter written
//! from `docs/policy-semantics.md` (differential testing, as Cedar does against its model), plus
//! the laws the semantics promise: default deny, deny overrides, inheritance only narrows, order
//! independence.
//!
//! Policies are generated as data, rendered to `.sym` text and loaded through the real parser and
//! lowering, so the whole path from text to decision is under test.

use proptest::prelude::*;
use symbiont_policy::{config::Config, Effect, Engine, Reason, Value};

/// Operations the generator uses, with the parent the reference interpreter knows them by.
const OPS: &[(&str, Option<&str>)] = &[
    ("file_read", Some("file_access")),
    ("file_system_write", Some("file_access")),
    ("file_access", None),
    ("https_request", Some("network_access")),
    ("network_access", None),
    ("read", None),
    ("custom_op", None),
];
const LEVELS: &[&str] = &["public", "developer", "maintainer", "admin"];

#[derive(Debug, Clone)]
enum G {
    True,
    Gt(i64),
    Eq(i64),
    Flag,
    NotFlag,
    Clearance(usize),
    Missing,
    And(Box<G>, Box<G>),
    Or(Box<G>, Box<G>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Allow,
    Deny,
    Require,
}

#[derive(Debug, Clone)]
struct R {
    kind: Kind,
    ops: Vec<usize>,
    guard: Option<G>,
    preconditions: Vec<G>,
}

#[derive(Debug, Clone)]
struct P {
    rules: Vec<R>,
    /// Indices of earlier policies, so the hierarchy is acyclic.
    parents: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Set {
    policies: Vec<P>,
    applied: Vec<usize>,
    inline: Vec<R>,
}

#[derive(Debug, Clone)]
struct Env {
    a: Option<i64>,
    b: Option<bool>,
    clearance: Option<&'static str>,
}

fn guard() -> impl Strategy<Value = G> {
    let leaf = prop_oneof![
        3 => Just(G::True),
        2 => (0i64..4).prop_map(G::Gt),
        2 => (0i64..4).prop_map(G::Eq),
        2 => Just(G::Flag),
        1 => Just(G::NotFlag),
        2 => (0..LEVELS.len()).prop_map(G::Clearance),
        1 => Just(G::Missing),
    ];
    leaf.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| G::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| G::Or(Box::new(a), Box::new(b))),
        ]
    })
}

fn rule() -> impl Strategy<Value = R> {
    (
        prop_oneof![4 => Just(Kind::Allow), 3 => Just(Kind::Deny), 1 => Just(Kind::Require)],
        proptest::collection::vec(0..OPS.len(), 1..3),
        proptest::option::of(guard()),
        proptest::collection::vec(guard(), 1..3),
    )
        .prop_map(|(kind, ops, guard, preconditions)| R { kind, ops, guard, preconditions })
}

fn set() -> impl Strategy<Value = Set> {
    proptest::collection::vec(
        (proptest::collection::vec(rule(), 0..5), proptest::collection::vec(any::<prop::sample::Index>(), 0..3)),
        1..5,
    )
    .prop_flat_map(|raw| {
        let policies: Vec<P> = raw
            .into_iter()
            .enumerate()
            .map(|(i, (rules, parents))| {
                let mut parents: Vec<usize> = if i == 0 { Vec::new() } else { parents.iter().map(|p| p.index(i)).collect() };
                parents.sort();
                parents.dedup();
                P { rules, parents }
            })
            .collect();
        let n = policies.len();
        (Just(policies), proptest::collection::vec(0..n, 0..3), proptest::collection::vec(rule(), 0..3))
    })
    .prop_map(|(policies, mut applied, inline)| {
        applied.sort();
        applied.dedup();
        Set { policies, applied, inline }
    })
}

fn env() -> impl Strategy<Value = Env> {
    (
        proptest::option::weighted(0.9, 0i64..4),
        proptest::option::weighted(0.9, any::<bool>()),
        proptest::option::weighted(0.9, prop::sample::select(LEVELS)),
    )
        .prop_map(|(a, b, clearance)| Env { a, b, clearance })
}

// ---- rendering to .sym -------------------------------------------------------------------

fn render_guard(g: &G) -> String {
    match g {
        G::True => "true".into(),
        G::Gt(n) => format!("a > {n}"),
        G::Eq(n) => format!("a == {n}"),
        G::Flag => "b == true".into(),
        G::NotFlag => "not b".into(),
        G::Clearance(i) => format!("user_clearance >= \"{}\"", LEVELS[*i]),
        G::Missing => "missing_attribute == 1".into(),
        G::And(x, y) => format!("({}) && ({})", render_guard(x), render_guard(y)),
        G::Or(x, y) => format!("({}) || ({})", render_guard(x), render_guard(y)),
    }
}

fn render_rule(r: &R) -> String {
    let ops: Vec<String> = r.ops.iter().map(|&o| format!("\"{}\"", OPS[o].0)).collect();
    let body = match r.kind {
        Kind::Allow => format!("allow: [{}]", ops.join(", ")),
        Kind::Deny => format!("deny: [{}]", ops.join(", ")),
        Kind::Require => format!("require: [{}]", r.preconditions.iter().map(render_guard).collect::<Vec<_>>().join(", ")),
    };
    match &r.guard {
        Some(g) => format!("    {body} if {}\n", render_guard(g)),
        None => format!("    {body}\n"),
    }
}

fn render(set: &Set, reversed: bool) -> String {
    let order = |n: usize| -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        if reversed {
            v.reverse();
        }
        v
    };
    let mut out = String::new();
    for i in order(set.policies.len()) {
        let p = &set.policies[i];
        let extends = if p.parents.is_empty() {
            String::new()
        } else {
            format!(" extends {}", p.parents.iter().map(|q| format!("p{q}")).collect::<Vec<_>>().join(", "))
        };
        out.push_str(&format!("policy p{i}{extends} {{\n"));
        for j in order(p.rules.len()) {
            out.push_str(&render_rule(&p.rules[j]));
        }
        out.push_str("}\n");
    }
    let applied: Vec<String> = set.applied.iter().map(|p| format!("p{p}")).collect();
    out.push_str(&format!("agent subject() {{\n    policies = [{}]\n    policy own {{\n", applied.join(", ")));
    for j in order(set.inline.len()) {
        out.push_str(&render_rule(&set.inline[j]));
    }
    out.push_str("    }\n}\n");
    out
}

fn to_value(env: &Env) -> Value {
    let mut entries = Vec::new();
    if let Some(a) = env.a {
        entries.push(("a".to_string(), Value::Number(a as f64)));
    }
    if let Some(b) = env.b {
        entries.push(("b".to_string(), Value::Bool(b)));
    }
    if let Some(c) = env.clearance {
        entries.push(("user_clearance".to_string(), Value::String(c.to_string())));
    }
    Value::object(entries)
}

fn engine(source: &str) -> Engine {
    let universe = symbiont_policy::load([("generated.sym", source)], Config::default());
    Engine::compile(universe.effective(Some("subject")).expect("the generated agent exists"))
}

// ---- the reference interpreter -------------------------------------------------------------

fn eval(g: &G, env: &Env) -> Result<bool, ()> {
    Ok(match g {
        G::True => true,
        G::Gt(n) => env.a.ok_or(())? > *n,
        G::Eq(n) => env.a.ok_or(())? == *n,
        G::Flag => env.b.ok_or(())?,
        G::NotFlag => !env.b.ok_or(())?,
        G::Clearance(i) => LEVELS.iter().position(|l| Some(*l) == env.clearance).ok_or(())? >= *i,
        G::Missing => return Err(()),
        G::And(x, y) => eval(x, env)? && eval(y, env)?,
        G::Or(x, y) => eval(x, env)? || eval(y, env)?,
    })
}

fn covers(rule_op: usize, op: usize) -> bool {
    rule_op == op || OPS[op].1 == Some(OPS[rule_op].0)
}

/// Every rule governing the agent: applied policies and their ancestors (each once), and the
/// inline policy.
fn effective(set: &Set) -> Vec<R> {
    let mut seen = vec![false; set.policies.len()];
    let mut stack: Vec<usize> = set.applied.clone();
    let mut rules = set.inline.clone();
    while let Some(p) = stack.pop() {
        if std::mem::replace(&mut seen[p], true) {
            continue;
        }
        rules.extend(set.policies[p].rules.iter().cloned());
        stack.extend(&set.policies[p].parents);
    }
    rules
}

fn reference(set: &Set, op: usize, env: &Env) -> (Effect, Reason) {
    let rules = effective(set);
    let applies = |r: &R| r.ops.iter().any(|&o| covers(o, op));
    let guard = |r: &R| r.guard.as_ref().map_or(Ok(true), |g| eval(g, env));
    if rules.iter().any(|r| r.kind == Kind::Deny && applies(r) && guard(r) != Ok(false)) {
        return (Effect::Deny, Reason::Denied);
    }
    if !rules.iter().any(|r| r.kind == Kind::Allow && applies(r) && guard(r) == Ok(true)) {
        return (Effect::Deny, Reason::NotAllowed);
    }
    // Requirements here are scoped to no operation: they apply to every allow.
    for r in rules.iter().filter(|r| r.kind == Kind::Require && guard(r) != Ok(false)) {
        if r.preconditions.iter().any(|p| eval(p, env) != Ok(true)) {
            return (Effect::Deny, Reason::RequirementFailed);
        }
    }
    (Effect::Allow, Reason::Allowed)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, rng_seed: crate::properties::seed(), ..ProptestConfig::default() })]

    #[test]
    fn engine_agrees_with_the_reference_interpreter(set in set(), requests in proptest::collection::vec((0..OPS.len(), env()), 1..12)) {
        let source = render(&set, false);
        let engine = engine(&source);
        for (op, env) in &requests {
            let decision = engine.decide(OPS[*op].0, &Value::Null, &to_value(env));
            prop_assert_eq!((decision.effect, decision.reason), reference(&set, *op, env), "{} in {:?}\n{}", OPS[*op].0, env, source);
        }
    }

    #[test]
    fn decisions_do_not_depend_on_rule_or_policy_order(set in set(), requests in proptest::collection::vec((0..OPS.len(), env()), 1..12)) {
        let forward = engine(&render(&set, false));
        let backward = engine(&render(&set, true));
        for (op, env) in &requests {
            let env = to_value(env);
            let a = forward.decide(OPS[*op].0, &Value::Null, &env);
            let b = backward.decide(OPS[*op].0, &Value::Null, &env);
            prop_assert_eq!((a.effect, a.reason), (b.effect, b.reason));
        }
    }

    #[test]
    fn default_deny_and_deny_overrides(set in set(), op in 0..OPS.len(), env in env()) {
        let engine = engine(&render(&set, false));
        let decision = engine.decide(OPS[op].0, &Value::Null, &to_value(&env));
        let rules = effective(&set);
        if !rules.iter().any(|r| r.kind == Kind::Allow && r.ops.iter().any(|&o| covers(o, op))) {
            prop_assert_eq!(decision.effect, Effect::Deny, "nothing allows it");
        }
        if rules.iter().any(|r| r.kind == Kind::Deny && r.guard.is_none() && r.ops.iter().any(|&o| covers(o, op))) {
            prop_assert_eq!((decision.effect, decision.reason), (Effect::Deny, Reason::Denied), "an unconditional deny covers it");
        }
    }

    #[test]
    fn a_child_never_weakens_its_parents_denies(set in set(), child_rules in proptest::collection::vec(rule(), 0..5), requests in proptest::collection::vec((0..OPS.len(), env()), 1..8)) {
        // The agent applies every policy; a new child extending all of them is applied instead.
        let mut parent_set = set.clone();
        parent_set.applied = (0..set.policies.len()).collect();
        let mut child_set = parent_set.clone();
        child_set.policies.push(P { rules: child_rules, parents: (0..set.policies.len()).collect() });
        child_set.applied = vec![set.policies.len()];
        let parent = engine(&render(&parent_set, false));
        let child = engine(&render(&child_set, false));
        for (op, env) in &requests {
            let env = to_value(env);
            let before = parent.decide(OPS[*op].0, &Value::Null, &env);
            if before.reason == Reason::Denied {
                let after = child.decide(OPS[*op].0, &Value::Null, &env);
                prop_assert_eq!(after.effect, Effect::Deny, "the child re-allowed {}", OPS[*op].0);
            }
        }
    }
}

#[test]
fn unknown_agents_are_refused_with_a_suggestion() {
    let universe = symbiont_policy::load([("a.sym", "agent reviewer() {}")], Config::default());
    let err = universe.effective(Some("reviwer")).unwrap_err();
    assert_eq!(err.to_string(), "no agent named `reviwer` in the workspace (did you mean `reviewer`?)");
}
