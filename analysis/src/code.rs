//! Agent code in the analysis: each code file is scanned once (`symbiont-code`), bound to the
//! agents whose `implementation` names it (or to the workspace base policy), and each finding is
//! judged against the binding's effective policy: denied → error, performed but not declared in
//! `capabilities` → warning, suppressed → reported as suppressed, never silently.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::Deserialize;
use symbiont_code::{fix, CustomRule, Finding, Lang, RuleSet};
use symbiont_policy::effective::{EffectivePolicy, StaticVerdict};
use symbiont_syntax::{TextRange, TextSize};

use crate::{
    db::{config, Db, SourceFile, Workspace},
    diagnostics::{self as rules, Diagnostic, Fix, TextEdit},
    policies::policy_universe,
};

/// Whether a path is agent code the analysis scans.
pub fn is_code_path(path: &Path) -> bool {
    Lang::from_path(path).is_some()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeConfig {
    #[serde(default = "yes")]
    builtin_rules: bool,
    #[serde(default)]
    rules: Vec<CustomRule>,
}

fn yes() -> bool {
    true
}

/// The compiled rules, or why `[code]` in `symbiont.toml` is invalid. Equal when built from the
/// same configuration text.
pub struct CodeRules {
    source: String,
    pub rules: Arc<RuleSet>,
    pub error: Option<String>,
}

impl PartialEq for CodeRules {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

#[salsa::tracked(returns(ref))]
pub fn code_rules(db: &dyn Db, ws: Workspace) -> CodeRules {
    let source = config(db, ws).0.code.clone();
    let built = toml::from_str::<CodeConfig>(&source)
        .map_err(|e| format!("invalid [code] table: {}", e.message()))
        .and_then(|c| RuleSet::new(c.builtin_rules, c.rules).map_err(|e| e.to_string()));
    match built {
        Ok(rules) => CodeRules { source, rules: Arc::new(rules), error: None },
        // Fail closed: with the configuration broken, the built-in rules still run.
        Err(error) => CodeRules { source, rules: Arc::new(RuleSet::default()), error: Some(error) },
    }
}

#[salsa::tracked(returns(ref))]
pub fn code_findings(db: &dyn Db, ws: Workspace, file: SourceFile) -> Vec<Finding> {
    let Some(lang) = Lang::from_path(file.path(db)) else { return Vec::new() };
    code_rules(db, ws).rules.scan(lang, file.text(db)).findings
}

/// Which agents each code file implements, by `implementation` globs relative to the directory
/// of the `.sym` file that declares the agent.
#[salsa::tracked(returns(ref))]
pub fn code_bindings(db: &dyn Db, ws: Workspace) -> BTreeMap<PathBuf, Vec<String>> {
    let universe = policy_universe(db, ws);
    let mut bindings: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for &file in ws.code_files(db) {
        let path = file.path(db);
        for agent in universe.agents() {
            let base = Path::new(&*agent.loc.file).parent().unwrap_or(Path::new(""));
            let Ok(relative) = path.strip_prefix(base) else { continue };
            let relative = relative.to_string_lossy().replace('\\', "/");
            if agent.implementation.iter().any(|(pattern, _)| symbiont_code::paths::matches(pattern, &relative)) {
                bindings.entry(path.clone()).or_default().push(agent.name.clone());
            }
        }
    }
    bindings
}

fn range(start: usize, end: usize) -> TextRange {
    TextRange::new(TextSize::from(start as u32), TextSize::from(end as u32))
}

fn code_rule_of(finding: &Finding) -> &'static rules::Rule {
    rules::code_rule(&finding.rule).unwrap_or(&rules::CUSTOM_CODE_RULE)
}

/// Which findings get their fixes computed: each fix is verified by re-parsing the edited file,
/// a parse per finding, so an editor asks for them only where the cursor is.
#[derive(Clone, Copy)]
pub enum Fixes {
    All,
    None,
    Touching(TextRange),
}

impl Fixes {
    fn wanted(self, at: TextRange) -> bool {
        match self {
            Fixes::All => true,
            Fixes::None => false,
            Fixes::Touching(range) => at.intersect(range).is_some() || at.contains_range(range),
        }
    }
}

#[salsa::tracked(returns(ref))]
pub fn code_diagnostics(db: &dyn Db, ws: Workspace, file: SourceFile) -> Vec<Diagnostic> {
    judge(db, ws, file, Fixes::All)
}

/// [`code_diagnostics`] without fixes: what an editor shows while the code is typed.
#[salsa::tracked(returns(ref))]
pub fn code_diagnostics_unfixed(db: &dyn Db, ws: Workspace, file: SourceFile) -> Vec<Diagnostic> {
    judge(db, ws, file, Fixes::None)
}

/// The findings of agent code judged by their agents' effective policies, with the fixes that
/// `with_fixes` asks for.
pub fn judge(db: &dyn Db, ws: Workspace, file: SourceFile, with_fixes: Fixes) -> Vec<Diagnostic> {
    let path = file.path(db).clone();
    let Some(lang) = Lang::from_path(&path) else { return Vec::new() };
    let text = file.text(db);
    let universe = policy_universe(db, ws);
    let agents = code_bindings(db, ws).get(&path).cloned().unwrap_or_default();
    // Code bound to no agent answers to the workspace base policy alone.
    let scopes: Vec<(Option<String>, EffectivePolicy)> = if agents.is_empty() {
        universe.effective(None).ok().map(|e| (None, e)).into_iter().collect()
    } else {
        agents.iter().filter_map(|a| universe.effective(Some(a)).ok().map(|e| (Some(a.clone()), e))).collect()
    };
    let mut out = Vec::new();
    for finding in code_findings(db, ws, file) {
        let at = range(finding.start, finding.end);
        let what = if finding.qualified.is_empty() { "this code".to_string() } else { format!("`{}`", finding.qualified) };
        if let Some(suppression) = &finding.suppression {
            let unjustified = suppression.reason.is_empty() || suppression.reason == fix::REASON_PLACEHOLDER;
            let d = if unjustified {
                Diagnostic::new(
                    &rules::UNJUSTIFIED_SUPPRESSION,
                    range(suppression.start, suppression.end),
                    format!("this suppression of `{}` has no justification: write one after `--`", finding.operation),
                )
            } else {
                let mut d = Diagnostic::new(
                    code_rule_of(finding),
                    at,
                    format!("suppressed: {what} performs `{}` ({})", finding.operation, suppression.reason),
                );
                d.severity = rules::Severity::Info;
                d
            };
            out.push(d);
            continue;
        }
        for (agent, effective) in &scopes {
            let who = match agent {
                Some(a) => format!("agent `{a}`"),
                None => "code bound to no agent (the workspace base policy)".to_string(),
            };
            let verdict = effective.static_verdict(&finding.operation);
            let mut d = match verdict {
                StaticVerdict::DeniedBy(i) => {
                    let deny = &effective.rules[i];
                    let policy = &effective.policies[deny.policy].name;
                    Diagnostic::new(
                        code_rule_of(finding),
                        at,
                        format!("{what} performs `{}`, which policy `{policy}` of {who} denies", finding.operation),
                    )
                    .with_related(
                        PathBuf::from(&*deny.rule.loc.file),
                        deny.rule.loc.range,
                        format!("`{}` denied here", finding.operation),
                    )
                }
                StaticVerdict::NeverAllowed => Diagnostic::new(
                    code_rule_of(finding),
                    at,
                    format!("{what} performs `{}`, which no rule of {who} allows (default deny)", finding.operation),
                ),
                StaticVerdict::Conditional | StaticVerdict::Allowed => {
                    let declared = agent
                        .as_deref()
                        .and_then(|a| universe.agent(a))
                        .map(|a| a.capabilities.iter().any(|(c, _)| effective.operations.ancestors(&finding.operation).any(|op| op == c)));
                    if declared == Some(false) {
                        out.push(Diagnostic::new(
                            &rules::UNDECLARED_OPERATION,
                            at,
                            format!("{what} performs `{}`, which {who} does not declare in `capabilities`", finding.operation),
                        ));
                    }
                    continue;
                }
            };
            d.severity = rules::Severity::Error;
            if !with_fixes.wanted(at) {
                out.push(d);
                continue;
            }
            let mut fixes = code_fixes(lang, text, finding, &path);
            if let Some(agent) = agent {
                fixes.extend(policy_fix(db, ws, agent, effective, verdict, &finding.operation));
            }
            // Preferred: the SDK rewrite (safe), then a policy edit, then a suppression to justify.
            fixes.sort_by_key(|f| (!f.safe, f.title.starts_with("Suppress")));
            let mut fixes = fixes.into_iter();
            d.fix = fixes.next();
            d.alternatives = fixes.collect();
            out.push(d);
        }
    }
    out
}

/// The code-side fixes of a denied finding: the SDK rewrite (the broker then performs the
/// operation under the policy) and a suppression comment to justify.
fn code_fixes(lang: Lang, text: &str, finding: &Finding, path: &Path) -> Vec<Fix> {
    let to_fix = |title: String, edits: Vec<fix::Edit>, safe: bool| Fix {
        title,
        edits: edits
            .into_iter()
            .map(|e| TextEdit { path: path.to_path_buf(), range: range(e.start, e.end), new_text: e.new_text })
            .collect(),
        safe,
    };
    let mut fixes = Vec::new();
    if let Some(sdk) = symbiont_code::rules::lookup(&finding.rule).and_then(|r| r.sdk) {
        if let Some(edits) = fix::sdk_rewrite(lang, text, finding, sdk) {
            fixes.push(to_fix(format!("Route through the Symbiont SDK ({sdk})"), edits, true));
        }
    }
    if let Some(edits) = fix::suppression(lang, text, finding) {
        fixes.push(to_fix(format!("Suppress with a justified `symbiont: allow {}` comment", finding.operation), edits, false));
    }
    fixes
}

/// The `.sym` side: allow the operation in the agent's own policy, or drop it from a deny list of
/// the agent's own inline policy. An inherited deny cannot be weakened (SYM0203), so none is offered
/// then. Never safe to apply unreviewed: it widens what the agent may do.
fn policy_fix(
    db: &dyn Db,
    ws: Workspace,
    agent: &str,
    effective: &EffectivePolicy,
    verdict: StaticVerdict,
    operation: &str,
) -> Option<Fix> {
    let fix = policy_fix_unchecked(db, ws, agent, effective, verdict, operation)?;
    // Like every fix, verified by re-parsing the result.
    let edit = fix.edits.first()?;
    let text = ws.files(db).iter().find(|f| *f.path(db) == edit.path)?.text(db);
    let (start, end) = (usize::from(edit.range.start()), usize::from(edit.range.end()));
    let edited = format!("{}{}{}", &text[..start], edit.new_text, &text[end..]);
    (symbiont_syntax::parse(&edited).errors().len() <= symbiont_syntax::parse(text).errors().len()).then_some(fix)
}

fn policy_fix_unchecked(
    db: &dyn Db,
    ws: Workspace,
    agent: &str,
    effective: &EffectivePolicy,
    verdict: StaticVerdict,
    operation: &str,
) -> Option<Fix> {
    use symbiont_syntax::ast::{self, AstNode};
    let universe = policy_universe(db, ws);
    let def = universe.agent(agent)?;
    let file = ws.files(db).iter().copied().find(|f| f.path(db).to_string_lossy() == *def.loc.file)?;
    let text = file.text(db);
    let tree = crate::db::parse(db, file).tree();
    let agent_node = tree.items().find_map(|i| match i {
        ast::Item::Agent(a) if a.name().is_some_and(|n| n.text() == agent) => Some(a),
        _ => None,
    })?;
    let path = file.path(db).clone();
    let edit = |range: TextRange, new_text: String| TextEdit { path: path.clone(), range, new_text };
    let quoted = format!("\"{operation}\"");
    match verdict {
        StaticVerdict::DeniedBy(i) => {
            let deny = &effective.rules[i];
            if effective.policies[deny.policy].via != symbiont_policy::effective::Via::Inline {
                return None;
            }
            // The deny's array element naming exactly this operation.
            let rule = agent_node
                .policies()
                .flat_map(|p| p.rules().collect::<Vec<_>>())
                .find(|r| r.syntax().text_range() == deny.rule.loc.range)?;
            let ast::Expr::ArrayExpr(list) = rule.body()? else { return None };
            let elements: Vec<ast::Expr> = list.elements().collect();
            let index = elements.iter().position(|e| e.syntax().text() == quoted.as_str())?;
            let element = elements[index].syntax().text_range();
            // Remove the element with the separator that joins it to a neighbour.
            let range = if let Some(next) = elements.get(index + 1) {
                TextRange::new(element.start(), next.syntax().text_range().start())
            } else if index > 0 {
                TextRange::new(elements[index - 1].syntax().text_range().end(), element.end())
            } else {
                element
            };
            Some(Fix {
                title: format!("Remove `{operation}` from the deny list of `{}`", effective.policies[deny.policy].name),
                edits: vec![edit(range, String::new())],
                safe: false,
            })
        }
        StaticVerdict::NeverAllowed => {
            // Add to the first allow list of the agent's own policies, else add an allow rule.
            for policy in agent_node.policies() {
                for rule in policy.rules() {
                    if let (Some(ast::RuleKind::Allow), None, Some(ast::Expr::ArrayExpr(list))) = (rule.kind(), rule.guard(), rule.body()) {
                        let close = list.syntax().last_token()?.text_range();
                        let sep = if list.elements().next().is_some() { ", " } else { "" };
                        return Some(Fix {
                            title: format!("Allow `{operation}` in policy `{}`", policy.name()?.text()),
                            edits: vec![edit(TextRange::empty(close.start()), format!("{sep}{quoted}"))],
                            safe: false,
                        });
                    }
                }
            }
            let body = agent_node.body()?;
            let close = body.syntax().last_token()?.text_range();
            let line_start = text[..usize::from(close.start())].rfind('\n').map_or(0, |i| i + 1);
            let at = TextSize::from(line_start as u32);
            Some(Fix {
                title: format!("Allow `{operation}` in a policy of agent `{agent}`"),
                edits: vec![edit(TextRange::empty(at), format!("    policy code_permissions {{\n        allow: [{quoted}]\n    }}\n"))],
                safe: false,
            })
        }
        StaticVerdict::Conditional | StaticVerdict::Allowed => None,
    }
}
