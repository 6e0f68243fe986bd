//! `symbiont policy eval` and `symbiont policy explain`: the policy engine's decision for one
//! request, and an agent's effective policy, from the same `symbiont-policy` the runtime uses.

use std::{fmt::Write as _, io::Write, path::PathBuf};

use serde_json::json;
use symbiont_policy::{
    effective::{EffectivePolicy, Via},
    engine::Outcome,
    model::{Rule, SourceLoc},
    Effect, Engine, Reason, Universe, Value,
};

use crate::{
    args::{PolicyEvalOptions, PolicyExplainOptions, PolicyFormat},
    workspace, Exit,
};

/// Loads the workspace's policies, refusing one that does not parse: deciding from a partly read
/// policy would be deciding from a policy nobody wrote.
pub(crate) fn load(paths: &[PathBuf]) -> Result<Universe, String> {
    let cwd = std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    let sources = workspace::read(paths, &cwd)?;
    if let Some((path, error)) = sources.unreadable.first() {
        return Err(format!("{}: {error}", path.display()));
    }
    let config = workspace::config(&sources)?;
    // Agent code lives beside the definitions; only `.sym`/`.symbi` files hold policies.
    let definitions: Vec<&(PathBuf, String)> = sources.files.iter().filter(|(path, _)| symbiont_analysis::is_source_path(path)).collect();
    // Each file is parsed once: the tree checked for syntax errors is the tree lowered (what
    // `symbiont_policy::load` does, without its second parse).
    let mut models = Vec::with_capacity(definitions.len());
    for (path, text) in definitions.iter().copied() {
        let parse = symbiont_syntax::parse(text);
        if let Some(error) = parse.errors().first() {
            let index = symbiont_syntax::LineIndex::new(text);
            let pos = index.line_col(text, error.range.start());
            return Err(format!(
                "{}:{}:{}: {} (fix the syntax errors first: `symbiont check` lists them)",
                path.display(),
                pos.line + 1,
                pos.col + 1,
                error.message
            ));
        }
        models.push(symbiont_policy::lower::lower_file(&path.display().to_string(), text, &parse.tree()));
    }
    Ok(Universe::new(&models, config))
}

fn effective(universe: &Universe, agent: &str) -> Result<EffectivePolicy, String> {
    universe.effective(Some(agent)).map_err(|e| e.to_string())
}

fn write_stdout(text: &str) -> Exit {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Exit::failure(format!("cannot write the output: {e}")),
        _ => Exit::Clean,
    }
}

fn loc_json(loc: &SourceLoc) -> serde_json::Value {
    json!({ "path": &*loc.file, "line": loc.line, "column": loc.col })
}

fn rule_json(engine: &Engine, id: u32) -> serde_json::Value {
    let rule = engine.rule(id);
    let effective = engine.effective();
    let policy = &effective.policies[effective.rules[id as usize].policy].name;
    json!({ "kind": rule.kind.as_str(), "text": &*rule.text, "policy": policy, "location": loc_json(&rule.loc) })
}

fn reason_text(reason: Reason) -> &'static str {
    match reason {
        Reason::Denied => "denied by a deny rule",
        Reason::NotAllowed => "no rule allows it (default deny)",
        Reason::RequirementFailed => "a requirement does not hold",
        Reason::Allowed => "allowed",
    }
}

fn reason_key(reason: Reason) -> &'static str {
    match reason {
        Reason::Denied => "denied",
        Reason::NotAllowed => "not_allowed",
        Reason::RequirementFailed => "requirement_failed",
        Reason::Allowed => "allowed",
    }
}

/// A `secret_access` request's `name` in the one form the broker decides on (lowercase), so that
/// `policy eval` answers what a run would: `DB_PASSWORD` meets `name == "db_password"` here too.
fn canonical_secret_name(operation: &str, args: &mut serde_json::Value) -> Result<(), String> {
    if operation != "secret_access" {
        return Ok(());
    }
    if let Some(serde_json::Value::String(name)) = args.get_mut("name") {
        *name = symbiont_policy::names::secret_name(name).map_err(|e| format!("--args: {e}"))?;
    }
    Ok(())
}

pub fn eval(options: &PolicyEvalOptions) -> Exit {
    let universe = match load(&options.paths) {
        Ok(u) => u,
        Err(message) => return Exit::failure(message),
    };
    let context = match &options.context {
        None => Value::object([]),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(json @ serde_json::Value::Object(_)) => Value::from(json),
            Ok(other) => return Exit::failure(format!("--context must be a JSON object, found {}", Value::from(other).kind())),
            Err(e) => return Exit::failure(format!("--context is not valid JSON: {e}")),
        },
    };
    let args = match &options.args {
        None => Value::Array(Vec::new()),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(mut json @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => {
                if let Err(message) = canonical_secret_name(&options.operation, &mut json) {
                    return Exit::failure(message);
                }
                Value::from(json)
            }
            Ok(_) => return Exit::failure("--args must be a JSON array or object"),
            Err(e) => return Exit::failure(format!("--args is not valid JSON: {e}")),
        },
    };
    let effective = match effective(&universe, &options.agent) {
        Ok(e) => e,
        Err(message) => return Exit::failure(message),
    };
    let mut warnings = Vec::new();
    if !effective.operations.is_known(&options.operation) {
        let mut warning = format!("`{}` is not a known operation: no rule names it, so it is denied", options.operation);
        if let Some(best) = symbiont_syntax::suggest::closest(&options.operation, effective.operations.names()) {
            let _ = write!(warning, " (did you mean `{best}`?)");
        }
        warnings.push(warning);
    }
    for (name, via) in &effective.missing {
        warnings.push(format!("policy `{name}` ({via}) is not defined; it contributes nothing"));
    }
    let engine = Engine::compile(effective);
    let mut trace: Vec<(u32, Outcome)> = Vec::new();
    let decision = engine.decide_traced(&options.operation, &args, &context, &mut |id, outcome| trace.push((id, outcome)));

    let output = match options.format {
        PolicyFormat::Json => {
            let conditions: serde_json::Map<String, serde_json::Value> =
                decision.conditions.iter().map(|c| (c.key.clone(), serde_json::Value::from(&c.value))).collect();
            let evaluated: Vec<serde_json::Value> = trace
                .iter()
                .map(|(id, outcome)| {
                    let mut rule = rule_json(&engine, *id);
                    rule["outcome"] = outcome_json(engine.rule(*id), outcome);
                    rule
                })
                .collect();
            let value = json!({
                "decision": decision.effect.as_str(),
                "reason": reason_key(decision.reason),
                "agent": options.agent,
                "operation": options.operation,
                "rules": decision.deciding.as_slice().iter().map(|&id| rule_json(&engine, id)).collect::<Vec<_>>(),
                "evaluated": evaluated,
                "obligations": {
                    "audit": decision.audits.as_slice().iter().map(|&id| {
                        let mut rule = rule_json(&engine, id);
                        rule["fields"] = serde_json::Value::Object(engine.rule(id).obligations.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v))).collect());
                        rule
                    }).collect::<Vec<_>>(),
                    "conditions": conditions,
                },
                "warnings": warnings,
            });
            let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
            text.push('\n');
            text
        }
        _ => {
            let mut out = String::new();
            let _ = writeln!(out, "decision: {}", decision.effect.as_str());
            let _ = writeln!(out, "  agent `{}`, operation `{}`: {}", options.agent, options.operation, reason_text(decision.reason));
            let effective = engine.effective();
            for &id in decision.deciding.as_slice() {
                let rule = engine.rule(id);
                let policy = &effective.policies[effective.rules[id as usize].policy].name;
                let _ = writeln!(out, "  {}: {}  (policy `{policy}`)", rule.loc, rule.text);
                for (traced, outcome) in trace.iter().filter(|(t, _)| *t == id) {
                    if let Some(note) = outcome_note(engine.rule(*traced), outcome) {
                        let _ = writeln!(out, "      {note}");
                    }
                }
            }
            if decision.effect == Effect::Allow {
                for &id in decision.audits.as_slice() {
                    let rule = engine.rule(id);
                    let _ = writeln!(out, "  obligation (audit) {}: {}", rule.loc, rule.text);
                }
                for condition in decision.conditions {
                    let _ = writeln!(out, "  obligation (condition) {} = {}", condition.key, condition.value);
                }
            }
            for warning in &warnings {
                let _ = writeln!(out, "warning: {warning}");
            }
            out
        }
    };
    write_stdout(&output)
}

fn outcome_note(rule: &Rule, outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Matched | Outcome::GuardFalse => None,
        Outcome::GuardError(e) => Some(format!("guard could not be evaluated ({e}): fails closed")),
        Outcome::PreconditionFailed { index, error } => {
            let text = rule.preconditions.get(*index).map_or("", |p| &*p.text);
            Some(match error {
                Some(e) => format!("requirement `{text}` could not be evaluated: {e}"),
                None => format!("requirement `{text}` does not hold"),
            })
        }
    }
}

fn outcome_json(rule: &Rule, outcome: &Outcome) -> serde_json::Value {
    match outcome {
        Outcome::Matched => json!("matched"),
        Outcome::GuardFalse => json!("guard_false"),
        _ => json!({ "failed": outcome_note(rule, outcome) }),
    }
}

pub fn explain(options: &PolicyExplainOptions) -> Exit {
    let universe = match load(&options.paths) {
        Ok(u) => u,
        Err(message) => return Exit::failure(message),
    };
    let effective = match effective(&universe, &options.agent) {
        Ok(e) => e,
        Err(message) => return Exit::failure(message),
    };
    let text = match options.format {
        PolicyFormat::Dot => explain_dot(&options.agent, &effective),
        PolicyFormat::Json => explain_json(&options.agent, &effective),
        PolicyFormat::Human => explain_human(&options.agent, &effective),
    };
    write_stdout(&text)
}

fn explain_human(agent: &str, effective: &EffectivePolicy) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "effective policy of agent `{agent}`");
    let _ = writeln!(out, "\npolicies, in the order they are reached (each once):");
    for p in &effective.policies {
        let _ = writeln!(out, "  {}{}  ({}) {}", "  ".repeat(p.depth), p.name, p.via, p.loc);
    }
    for (name, via) in &effective.missing {
        let _ = writeln!(out, "  {name}  ({via}) NOT DEFINED: contributes nothing");
    }
    let _ = writeln!(out, "\nrules:");
    for (i, r) in effective.rules.iter().enumerate() {
        let overridden = effective.shadowed.iter().filter(|s| s.allow == i).map(|s| {
            let deny = &effective.rules[s.deny];
            format!("overridden for `{}` by the deny at {} (policy `{}`)", s.operation, deny.rule.loc, effective.policies[deny.policy].name)
        });
        let _ = writeln!(out, "  [{}] {}  {}", effective.policies[r.policy].name, r.rule.text, r.rule.loc);
        for note in overridden {
            let _ = writeln!(out, "      {note}");
        }
    }
    if !effective.conditions.is_empty() {
        let _ = writeln!(out, "\nconditions (merged to the most restrictive):");
        for c in &effective.conditions {
            let _ = writeln!(out, "  {} = {}", c.key, c.value);
        }
        for conflict in &effective.condition_conflicts {
            let _ = writeln!(
                out,
                "  `{}`: {} ({}) overrides {} ({})",
                conflict.key, conflict.kept.0, conflict.kept.1, conflict.other.0, conflict.other.1
            );
        }
    }
    let _ = writeln!(out, "\nanything no rule allows is denied.");
    out
}

fn explain_json(agent: &str, effective: &EffectivePolicy) -> String {
    let value = json!({
        "agent": agent,
        "policies": effective.policies.iter().map(|p| json!({ "name": p.name, "via": p.via.to_string(), "depth": p.depth, "location": loc_json(&p.loc) })).collect::<Vec<_>>(),
        "missing": effective.missing.iter().map(|(n, via)| json!({ "name": n, "via": via.to_string() })).collect::<Vec<_>>(),
        "rules": effective.rules.iter().enumerate().map(|(i, r)| json!({
            "policy": effective.policies[r.policy].name,
            "kind": r.rule.kind.as_str(),
            "text": &*r.rule.text,
            "location": loc_json(&r.rule.loc),
            "overridden_by": effective.shadowed.iter().filter(|s| s.allow == i).map(|s| loc_json(&effective.rules[s.deny].rule.loc)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "conditions": effective.conditions.iter().map(|c| (c.key.clone(), serde_json::Value::from(&c.value))).collect::<serde_json::Map<_, _>>(),
    });
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

/// Graphviz: the agent, the policies reaching it (solid: applied or inline; dashed: base;
/// `extends` edges point from child to parent), and each overridden allow, in red, pointing at
/// the deny that overrides it.
fn explain_dot(agent: &str, effective: &EffectivePolicy) -> String {
    // Labels keep `\n` escapes (line breaks in Graphviz); other backslashes and quotes are escaped.
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace("\\\\n", "\\n").replace('"', "\\\""));
    let mut out = String::new();
    let _ = writeln!(out, "digraph effective_policy {{");
    let _ = writeln!(out, "  rankdir=LR;\n  node [fontname=\"Helvetica\"];");
    let agent_node = quote(&format!("agent {agent}"));
    let _ = writeln!(out, "  {agent_node} [shape=box, style=bold];");
    let node = |i: usize| quote(&format!("policy {}", effective.policies[i].name));
    for (i, p) in effective.policies.iter().enumerate() {
        let _ = writeln!(out, "  {} [shape=ellipse, label={}];", node(i), quote(&format!("{}\\n{}", p.name, p.loc)));
        match &p.via {
            Via::Base => {
                let _ = writeln!(out, "  {agent_node} -> {} [style=dashed, label=\"base\"];", node(i));
            }
            Via::Applied => {
                let _ = writeln!(out, "  {agent_node} -> {} [label=\"applies\"];", node(i));
            }
            Via::Inline => {
                let _ = writeln!(out, "  {agent_node} -> {} [label=\"inline\"];", node(i));
            }
            Via::Extends(_) => {}
        }
        for parent in &p.extends {
            if let Some(j) = effective.policies.iter().position(|q| &q.name == parent) {
                let _ = writeln!(out, "  {} -> {} [label=\"extends\"];", node(i), node(j));
            }
        }
    }
    for (n, s) in effective.shadowed.iter().enumerate() {
        let allow = &effective.rules[s.allow];
        let deny = &effective.rules[s.deny];
        let rule_node = quote(&format!("overridden {n}"));
        let _ =
            writeln!(out, "  {rule_node} [shape=note, color=red, label={}];", quote(&format!("{}\\n{}", allow.rule.text, allow.rule.loc)));
        let _ = writeln!(out, "  {} -> {rule_node} [color=red, arrowhead=none];", node(allow.policy));
        let _ = writeln!(
            out,
            "  {rule_node} -> {} [color=red, style=dotted, label={}];",
            node(deny.policy),
            quote(&format!("denied: {}", s.operation))
        );
    }
    let _ = writeln!(out, "}}");
    out
}
