//! Static checks of policies: the policy engine's own model (`symbiont-policy`), lowered once per
//! file and resolved per agent, so the editor reports exactly what the runtime will enforce.

use std::{collections::HashSet, path::PathBuf};

use symbiont_policy::{
    effective::{EffectivePolicy, StaticVerdict},
    model::{AgentDef, FileModel, IssueKind, LowerIssue, SourceLoc},
    Universe,
};

use crate::{
    diagnostics::{self as rules, Diagnostic, FileEdit},
    inputs::{config, Db, SourceFile, Workspace},
    summary::file_policy_model,
};

/// Every policy and agent of the workspace, with `symbiont.toml`.
#[salsa::tracked(returns(ref))]
pub fn policy_universe(db: &dyn Db, ws: Workspace) -> Universe {
    let models: Vec<&FileModel> = ws.files(db).iter().map(|&f| file_policy_model(db, f)).collect();
    Universe::new(models, config(db, ws).0.clone())
}

/// An operation name, interned so that suggestions are computed once per distinct name.
#[salsa::interned]
pub struct OperationName<'db> {
    #[returns(ref)]
    pub text: String,
}

/// The known operation closest to an unknown one.
#[salsa::tracked(returns(ref))]
pub fn operation_suggestion<'db>(db: &'db dyn Db, ws: Workspace, name: OperationName<'db>) -> Option<String> {
    let operations = symbiont_policy::catalogue::Operations::new(&config(db, ws).0.operations);
    symbiont_syntax::suggest::closest(name.text(db), operations.names()).map(str::to_string)
}

fn related_path(loc: &SourceLoc) -> PathBuf {
    PathBuf::from(&*loc.file)
}

#[salsa::tracked(returns(ref))]
pub fn policy_diagnostics(db: &dyn Db, ws: Workspace, file: SourceFile) -> Vec<Diagnostic> {
    let model = file_policy_model(db, file);
    let universe = policy_universe(db, ws);
    let here = file.path(db).to_string_lossy().into_owned();
    let mut out: Vec<Diagnostic> = model.issues.iter().map(issue_diagnostic).collect();
    level_checks(model, universe, &mut out);
    operation_checks(db, ws, file, &mut out);
    conditions_checks(model, universe, &mut out);
    // Conflicts, from every scope this file defines: each top-level policy, each agent.
    let mut seen = Seen::new();
    for (agent, effective) in defined_scopes(model, universe) {
        // The scope's agent is this file's definition of it (`defined_scopes` keeps no other).
        let def = agent.and_then(|i| model.agents.get(i));
        shadow_checks(&here, def.map(|a| &**a), &effective, &mut seen, &mut out);
        condition_conflict_checks(&here, &effective, &mut seen, &mut out);
        if let Some(def) = def {
            capability_checks(def, &effective, &mut out);
        }
    }
    out.shrink_to_fit();
    out
}

/// The (rule, rule, operation or key) conflicts reported already: a conflict between two files'
/// policies is seen from each scope that has both.
type Seen = HashSet<(SourceLoc, SourceLoc, String)>;

/// What the lowering could give no meaning to.
fn issue_diagnostic(issue: &LowerIssue) -> Diagnostic {
    let rule = match issue.kind {
        IssueKind::UnevaluableGuard => &rules::UNEVALUABLE_GUARD,
        IssueKind::NotAnOperation => &rules::NOT_AN_OPERATION,
        IssueKind::NonCanonicalSecretName => &rules::SECRET_NAME_NOT_CANONICAL,
        IssueKind::NonCanonicalHost => &rules::HOST_NOT_CANONICAL,
    };
    Diagnostic::new(rule, issue.loc.range, issue.message.clone())
}

/// Level names in ordered comparisons, against the workspace's levels.
fn level_checks(model: &FileModel, universe: &Universe, out: &mut Vec<Diagnostic>) {
    let levels = &universe.config().levels;
    for literal in &model.level_literals {
        let message = match literal.kind.or_else(|| levels.kind_of_name(&literal.name)) {
            Some(kind) if levels.rank(kind, &literal.name).is_some() => continue,
            Some(kind) => {
                format!("`{}` is not a {} level (levels, lowest first: {})", literal.name, kind.as_str(), levels.list(kind).join(", "))
            }
            None => format!("`{}` is neither a clearance nor a classification level, and strings have no order", literal.name),
        };
        out.push(Diagnostic::new(&rules::UNKNOWN_LEVEL, literal.loc.range, message));
    }
}

/// Unknown operation names, in rules and capabilities, with the closest known one as a fix.
fn operation_checks(db: &dyn Db, ws: Workspace, file: SourceFile, out: &mut Vec<Diagnostic>) {
    let (model, universe, path) = (file_policy_model(db, file), policy_universe(db, ws), file.path(db));
    let operations = symbiont_policy::catalogue::Operations::new(&universe.config().operations);
    let policies = model.policies.iter().chain(model.agents.iter().flat_map(|a| a.inline.iter()));
    let named_ops = policies.flat_map(|p| p.rules.iter()).flat_map(|r| r.ops.iter().map(|o| (&o.name, &o.loc)));
    let capabilities = model.agents.iter().flat_map(|a| a.capabilities.iter().map(|(name, loc)| (name, loc)));
    for (name, loc) in named_ops.chain(capabilities) {
        if operations.is_known(name) {
            continue;
        }
        let mut d = Diagnostic::new(
            &rules::UNKNOWN_OPERATION,
            loc.range,
            format!("`{name}` is not a catalogue operation (docs/operations.md) nor declared in `symbiont.toml` [operations]"),
        );
        if let Some(best) = operation_suggestion(db, ws, OperationName::new(db, name.clone())) {
            let quoted =
                file.text(db).get(usize::from(loc.range.start())..usize::from(loc.range.end())).is_some_and(|t| t.starts_with('"'));
            let new_text = if quoted { format!("\"{best}\"") } else { best.to_string() };
            let range = if quoted { loc.range } else { symbiont_syntax::TextRange::at(loc.range.start(), (name.len() as u32).into()) };
            d.message.push_str(&format!("; did you mean `{best}`?"));
            d = d.with_fix(format!("Replace with `{best}`"), vec![FileEdit::new(path.clone(), range, new_text)]);
        }
        out.push(d);
    }
}

/// The scopes this file defines, each with its effective policy: its top-level policies, and its
/// agents (with their position in `model.agents`); each only when it is the definition the
/// workspace's universe holds under its name.
fn defined_scopes<'a>(model: &'a FileModel, universe: &'a Universe) -> impl Iterator<Item = (Option<usize>, EffectivePolicy)> + 'a {
    // One scope at a time: a file of many agents never holds all their effective policies at once.
    let policies = model.policies.iter().filter_map(|policy| {
        let defined_here = universe.policy(&policy.name).is_some_and(|p| p.loc == policy.loc);
        defined_here.then(|| universe.effective_of_policy(&policy.name)).flatten().map(|effective| (None, effective))
    });
    let agents = model.agents.iter().enumerate().filter_map(|(position, agent)| {
        let defined_here = universe.agent(&agent.name).is_some_and(|a| a.loc == agent.loc);
        defined_here.then(|| universe.effective(Some(&agent.name)).ok()).flatten().map(|effective| (Some(position), effective))
    });
    policies.chain(agents)
}

/// Allows a deny overrides: in one policy, across an `extends`, or only in an agent's combination.
fn shadow_checks(here: &str, agent: Option<&AgentDef>, effective: &EffectivePolicy, seen: &mut Seen, out: &mut Vec<Diagnostic>) {
    for shadow in &effective.shadowed {
        let allow = &effective.rules[shadow.allow];
        let deny = &effective.rules[shadow.deny];
        if !seen.insert((allow.rule.loc.clone(), deny.rule.loc.clone(), shadow.operation.clone())) {
            continue;
        }
        let deny_policy = &effective.policies[deny.policy].name;
        let allow_policy = &effective.policies[allow.policy].name;
        let (rule, range, message) = if shadow.same_policy {
            (
                &rules::ALLOW_DENY_CONFLICT,
                allow.rule.loc.range,
                format!("`{}` is both allowed and denied in policy `{allow_policy}`: the deny wins", shadow.operation),
            )
        } else if *allow.rule.loc.file == *here {
            (
                &rules::UNREACHABLE_ALLOW,
                allow.rule.loc.range,
                format!(
                    "this allow of `{}` never takes effect: policy `{deny_policy}` denies it, and a deny cannot be weakened",
                    shadow.operation
                ),
            )
        } else if let Some(def) = agent {
            (
                &rules::UNREACHABLE_ALLOW,
                def.loc.range,
                format!(
                    "in agent `{}`, the allow of `{}` in policy `{allow_policy}` ({}) never takes effect: policy `{deny_policy}` denies it",
                    def.name, shadow.operation, allow.rule.loc
                ),
            )
        } else {
            continue;
        };
        if *allow.rule.loc.file != *here && agent.is_none() {
            continue;
        }
        out.push(Diagnostic::new(rule, range, message).with_related(
            related_path(&deny.rule.loc),
            deny.rule.loc.range,
            format!("denied here by `{deny_policy}`"),
        ));
    }
}

/// Conditions two policies of a scope state differently, reported in the file of either.
fn condition_conflict_checks(here: &str, effective: &EffectivePolicy, seen: &mut Seen, out: &mut Vec<Diagnostic>) {
    for conflict in &effective.condition_conflicts {
        let (kept, other) = (&conflict.kept, &conflict.other);
        if !seen.insert((kept.1.clone(), other.1.clone(), conflict.key.clone())) {
            continue;
        }
        let (primary, secondary) = if *other.1.file == *here { (other, kept) } else { (kept, other) };
        if *primary.1.file != *here {
            continue;
        }
        out.push(
            Diagnostic::new(
                &rules::CONDITION_CONFLICT,
                primary.1.range,
                format!(
                    "condition `{}` is stated as {} here and {} elsewhere; the most restrictive, {}, applies",
                    conflict.key, primary.0, secondary.0, kept.0
                ),
            )
            .with_related(related_path(&secondary.1), secondary.1.range, format!("`{}` is {} here", conflict.key, secondary.0)),
        );
    }
}

/// Each `conditions` key of this file's policies: one the runtime does not enforce (a warning that
/// says so), and a `geographic_restriction` naming a region `symbiont.toml` does not declare (an
/// error: `symbiont run` refuses it rather than run an agent whose restriction means nothing), and
/// a `retention_period` that is no duration (an error: the broker marks each write with it).
fn conditions_checks(model: &FileModel, universe: &Universe, out: &mut Vec<Diagnostic>) {
    use symbiont_policy::{
        effective::{retention_value, ENFORCED_CONDITIONS, RETENTION_KEY},
        geography,
    };
    let policies = model.policies.iter().chain(model.agents.iter().flat_map(|a| a.inline.iter()));
    let conditions = policies.flat_map(|p| p.rules.iter()).filter(|r| r.kind == symbiont_policy::model::RuleKind::Conditions);
    let regions = &universe.config().regions;
    for rule in conditions {
        for (key, value) in &rule.obligations {
            if !ENFORCED_CONDITIONS.iter().any(|(enforced, _)| enforced == key) {
                let enforced: Vec<&str> = ENFORCED_CONDITIONS.iter().map(|(k, _)| *k).collect();
                out.push(Diagnostic::new(
                    &rules::UNENFORCED_CONDITION,
                    rule.loc.range,
                    format!(
                        "condition `{key}` is not enforced by the runtime: it is merged and shown by `symbiont policy explain`, but nothing makes it true (the runtime enforces {}; docs/policy-semantics.md)",
                        enforced.join(", ")
                    ),
                ));
                continue;
            }
            if key == RETENTION_KEY {
                if let Err(why) = retention_value(value) {
                    out.push(Diagnostic::new(
                        &rules::WRONG_VALUE_KIND,
                        rule.loc.range,
                        format!("{why}; the broker refuses the agent's writes"),
                    ));
                }
                continue;
            }
            if key != geography::KEY {
                continue;
            }
            let names = match geography::region_names(value) {
                Ok(names) => names,
                Err(why) => {
                    out.push(Diagnostic::new(&rules::WRONG_VALUE_KIND, rule.loc.range, why));
                    continue;
                }
            };
            for name in names.iter().filter(|n| !regions.contains_key(*n)) {
                let mut message = format!(
                    "`{key}` names region `{name}`, which `symbiont.toml` does not declare ([regions.{name}] with its hosts, cidrs and s3_endpoints); `symbiont run` refuses an agent restricted to it"
                );
                if let Some(close) = symbiont_syntax::suggest::closest(name, regions.keys().map(String::as_str)) {
                    message.push_str(&format!("; did you mean `{close}`?"));
                }
                out.push(Diagnostic::new(&rules::UNDECLARED_REGION, rule.loc.range, message));
            }
        }
    }
}

/// A declared capability the effective policy denies, or that no rule allows.
fn capability_checks(agent: &symbiont_policy::model::AgentDef, effective: &EffectivePolicy, out: &mut Vec<Diagnostic>) {
    for (capability, loc) in &agent.capabilities {
        match effective.static_verdict(capability) {
            StaticVerdict::DeniedBy(i) => {
                let deny = &effective.rules[i];
                let policy = &effective.policies[deny.policy].name;
                out.push(
                    Diagnostic::new(
                        &rules::DENIED_CAPABILITY,
                        loc.range,
                        format!("agent `{}` declares capability `{capability}`, but policy `{policy}` denies it", agent.name),
                    )
                    .with_related(related_path(&deny.rule.loc), deny.rule.loc.range, "denied here"),
                );
            }
            StaticVerdict::NeverAllowed => out.push(Diagnostic::new(
                &rules::DENIED_CAPABILITY,
                loc.range,
                format!("agent `{}` declares capability `{capability}`, but no rule of its policies allows it (default deny)", agent.name),
            )),
            StaticVerdict::Conditional | StaticVerdict::Allowed => {}
        }
    }
}
