//! Agent code in the analysis: each code file is scanned once (`symbiont-code`), bound to the
//! agents whose `implementation` names it (or to the workspace base policy), and each finding is
//! judged against the binding's effective policy: denied → error, performed but not declared in
//! `capabilities` → warning, suppressed → reported as suppressed, never silently.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::Deserialize;
use symbiont_code::{fix, CustomRule, Finding, Lang, RuleSet, Scan, Skipped};
use symbiont_policy::{
    effective::{EffectivePolicy, StaticVerdict},
    Universe,
};
use symbiont_syntax::{TextRange, TextSize};

use crate::{
    diagnostics::{self as rules, Diagnostic, FileEdit, Fix},
    inputs::{config, Db, SourceFile, Workspace},
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

/// A code file's scan: its findings, its first syntax error, or why it was not parsed.
#[salsa::tracked(returns(ref))]
pub fn code_scan(db: &dyn Db, ws: Workspace, file: SourceFile) -> Scan {
    let Some(lang) = Lang::from_path(file.path(db)) else {
        return Scan { findings: Vec::new(), syntax_errors: 0, first_error: None, skipped: None };
    };
    let rules = &code_rules(db, ws).rules;
    let text = file.text(db);
    match db.code_states() {
        Some(states) => {
            let (scan, state) = rules.scan_incremental(lang, text, states.take(file));
            if let Some(state) = state {
                states.put(file, state);
            }
            scan
        }
        None => rules.scan(lang, text),
    }
}

pub fn code_findings(db: &dyn Db, ws: Workspace, file: SourceFile) -> &[Finding] {
    &code_scan(db, ws, file).findings
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
/// so an editor asks for them only where the cursor is.
#[derive(Clone, Copy)]
pub enum Fixes {
    /// Every fix of every finding: the preferred one and the alternatives.
    All,
    /// The preferred fix of every finding only, without alternatives: what `check` prints and
    /// `--fix` applies. The alternatives are neither built nor verified.
    Preferred,
    None,
    /// Every fix of the findings that touch the range.
    Touching(TextRange),
}

impl Fixes {
    fn wanted(self, at: TextRange) -> bool {
        match self {
            Fixes::All | Fixes::Preferred => true,
            Fixes::None => false,
            Fixes::Touching(range) => at.intersect(range).is_some() || at.contains_range(range),
        }
    }
}

/// The diagnostics of a code file with the preferred fix of each finding (what `check` reports).
#[salsa::tracked(returns(ref))]
pub fn code_diagnostics(db: &dyn Db, ws: Workspace, file: SourceFile) -> Vec<Diagnostic> {
    judge(db, ws, file, Fixes::Preferred)
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
    let scopes = scopes(universe, &agents);
    let judging = Judging { db, ws, lang, text, path: &path, universe };
    let scan = code_scan(db, ws, file);
    let mut out = file_notes(lang, text, scan);
    // Denied findings waiting for their suppression fix, which are verified together: the index
    // of the diagnostic in `out`, the finding, and the fixes found so far.
    let mut pending: Vec<(usize, &Finding, Vec<Fix>)> = Vec::new();
    // What a scope says of an operation is the same for each finding of it: worked out once.
    let mut judged: HashMap<(usize, &str), Judged> = HashMap::new();
    for (i, finding) in scan.findings.iter().enumerate() {
        // A file can have thousands of findings: an edit elsewhere should not wait for them all
        // (a language server judges them again after every edit).
        if i % 128 == 127 {
            db.unwind_if_revision_cancelled();
        }
        let at = range(finding.start, finding.end);
        let what = if finding.qualified.is_empty() { "this code".to_string() } else { format!("`{}`", finding.qualified) };
        if let Some(d) = suppressed(finding, at, &what) {
            out.push(d);
            continue;
        }
        for (index, scope) in scopes.iter().enumerate() {
            let judged = judged.entry((index, finding.operation.as_str())).or_insert_with(|| judging.operation(scope, &finding.operation));
            let verdict = judged.verdict;
            let mut d = match verdict {
                StaticVerdict::DeniedBy(_) | StaticVerdict::NeverAllowed => {
                    let d = Diagnostic::new(code_rule_of(finding), at, format!("{what}{}", judged.tail));
                    match &judged.related {
                        Some((path, range, message)) => d.with_related(path.clone(), *range, message.clone()),
                        None => d,
                    }
                }
                StaticVerdict::Conditional | StaticVerdict::Allowed => {
                    if judged.undeclared {
                        let mut d = Diagnostic::new(&rules::UNDECLARED_OPERATION, at, format!("{what}{}", judged.tail));
                        if let (Some(agent), true) = (&scope.agent, with_fixes.wanted(at)) {
                            d.fix = declare_fix(db, ws, agent, &finding.operation, false);
                        }
                        out.push(d);
                    }
                    continue;
                }
            };
            d.severity = rules::Severity::Error;
            if !with_fixes.wanted(at) {
                out.push(d);
                continue;
            }
            let preferred_only = matches!(with_fixes, Fixes::Preferred);
            let fixes = judging.denied_fixes(finding, scope, verdict, preferred_only);
            if preferred_only && !fixes.is_empty() {
                d.fix = fixes.into_iter().next();
                out.push(d);
                continue;
            }
            pending.push((out.len(), finding, fixes));
            out.push(d);
        }
    }
    judging.add_suppression_fixes(&mut out, pending);
    // In text order (the findings already are; this places the syntax error among them).
    out.sort_by_key(|d| d.range.start());
    out
}

/// A policy code answers to: an agent's it is bound to, or the workspace base policy.
struct Scope {
    agent: Option<String>,
    effective: EffectivePolicy,
    /// How messages name it.
    who: String,
}

/// The scopes of code bound to `agents`; code bound to no agent answers to the workspace base
/// policy alone.
fn scopes(universe: &Universe, agents: &[String]) -> Vec<Scope> {
    let effective: Vec<(Option<String>, EffectivePolicy)> = if agents.is_empty() {
        universe.effective(None).ok().map(|e| (None, e)).into_iter().collect()
    } else {
        agents.iter().filter_map(|a| universe.effective(Some(a)).ok().map(|e| (Some(a.clone()), e))).collect()
    };
    effective
        .into_iter()
        .map(|(agent, effective)| {
            let who = match &agent {
                Some(a) => format!("agent `{a}`"),
                None => "code bound to no agent (the workspace base policy)".to_string(),
            };
            Scope { agent, effective, who }
        })
        .collect()
}

/// What the file as a whole gets: not checked when too large, and where it first does not parse.
fn file_notes(lang: Lang, text: &str, scan: &Scan) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    match scan.skipped {
        Some(Skipped::TooLarge) => out.push(Diagnostic::new(
            &rules::CODE_NOT_CHECKED,
            range(0, 0),
            format!(
                "this file is {:.1} MiB, over the {} MiB the code analysis parses: it was not checked",
                text.len() as f64 / (1 << 20) as f64,
                symbiont_code::scan::MAX_PARSE_BYTES >> 20
            ),
        )),
        Some(Skipped::NothingToMatch) | None => {}
    }
    if let Some((start, end)) = scan.first_error {
        // The error's first line: an `ERROR` node can span the rest of the file.
        let end = text[start..end].find('\n').map_or(end, |i| start + i);
        out.push(Diagnostic::new(
            &rules::CODE_SYNTAX_ERROR,
            range(start, end),
            format!("this {} code does not parse here; what the broken part does may go unchecked", lang.name()),
        ));
    }
    out
}

/// A suppressed finding, reported as such; an error when its suppression gives no reason.
fn suppressed(finding: &Finding, at: TextRange, what: &str) -> Option<Diagnostic> {
    let suppression = finding.suppression.as_ref()?;
    let unjustified = suppression.reason.is_empty() || suppression.reason == fix::REASON_PLACEHOLDER;
    Some(if unjustified {
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
    })
}

/// What a scope says of an operation.
struct Judged {
    verdict: StaticVerdict,
    /// The diagnostic's message after what performs the operation.
    tail: String,
    related: Option<(PathBuf, TextRange, String)>,
    /// Allowed, but not in the agent's `capabilities`.
    undeclared: bool,
}

/// What judging one code file needs besides its findings.
struct Judging<'a> {
    db: &'a dyn Db,
    ws: Workspace,
    lang: Lang,
    text: &'a str,
    path: &'a Path,
    universe: &'a Universe,
}

impl Judging<'_> {
    fn operation(&self, scope: &Scope, operation: &str) -> Judged {
        let (effective, who) = (&scope.effective, &scope.who);
        let verdict = effective.static_verdict(operation);
        match verdict {
            StaticVerdict::DeniedBy(i) => {
                let deny = &effective.rules[i];
                let policy = &effective.policies[deny.policy].name;
                Judged {
                    verdict,
                    tail: format!(" performs `{operation}`, which policy `{policy}` of {who} denies"),
                    related: Some((PathBuf::from(&*deny.rule.loc.file), deny.rule.loc.range, format!("`{operation}` denied here"))),
                    undeclared: false,
                }
            }
            StaticVerdict::NeverAllowed => Judged {
                verdict,
                tail: format!(" performs `{operation}`, which no rule of {who} allows (default deny)"),
                related: None,
                undeclared: false,
            },
            StaticVerdict::Conditional | StaticVerdict::Allowed => Judged {
                verdict,
                tail: format!(" performs `{operation}`, which {who} does not declare in `capabilities`"),
                related: None,
                undeclared: scope.agent.as_deref().is_some_and(|a| self.declares(a, effective, operation) == Some(false)),
            },
        }
    }

    /// Whether the agent declares the operation (or one it is a case of) in `capabilities`;
    /// `None` for an agent the universe does not know.
    fn declares(&self, agent: &str, effective: &EffectivePolicy, operation: &str) -> Option<bool> {
        self.universe.agent(agent).map(|a| a.capabilities.iter().any(|(c, _)| effective.operations.ancestors(operation).any(|op| op == c)))
    }

    /// The fixes of a denied finding but its suppression comment, preferred first: the SDK rewrite
    /// (safe), then a policy edit, then declaring the operation. With `preferred_only` the first
    /// that exists ends the search.
    fn denied_fixes(&self, finding: &Finding, scope: &Scope, verdict: StaticVerdict, preferred_only: bool) -> Vec<Fix> {
        let mut fixes: Vec<Fix> = sdk_fix(self.lang, self.text, finding, self.path).into_iter().collect();
        if let (Some(agent), false) = (&scope.agent, preferred_only && !fixes.is_empty()) {
            fixes.extend(policy_fix(self.db, self.ws, agent, &scope.effective, verdict, &finding.operation));
            // For an editor: declare it too, as `symbiont add capability` does.
            if !preferred_only
                && verdict == StaticVerdict::NeverAllowed
                && self.declares(agent, &scope.effective, &finding.operation) != Some(true)
            {
                fixes.extend(declare_fix(self.db, self.ws, agent, &finding.operation, true));
            }
        }
        fixes
    }

    /// Adds each pending finding's suppression comment (built and verified for all of them at
    /// once) to its fixes, and sets them on its diagnostic.
    fn add_suppression_fixes(&self, out: &mut [Diagnostic], pending: Vec<(usize, &Finding, Vec<Fix>)>) {
        let wanted: Vec<&Finding> = pending.iter().map(|(_, f, _)| *f).collect();
        let suppressions = fix::suppressions(self.lang, self.text, &wanted);
        for ((index, finding, mut fixes), suppression) in pending.into_iter().zip(suppressions) {
            if let Some(edits) = suppression {
                fixes.push(to_fix(
                    self.path,
                    format!("Suppress with a justified `symbiont: allow {}` comment", finding.operation),
                    edits,
                    false,
                ));
            }
            let mut fixes = fixes.into_iter();
            out[index].fix = fixes.next();
            out[index].alternatives = fixes.collect();
        }
    }
}

/// A `.sym` edit of the generator's as the analysis's.
fn sym_text_edit(path: &Path, edit: fix::Edit) -> FileEdit {
    FileEdit { path: path.to_path_buf(), edit }
}

/// The `.sym` edit that declares `operation` in `agent`'s `capabilities` (the fix of an
/// undeclared operation), and allows it in the agent's own policy when `allow`: the same edits as
/// `symbiont add capability`'s. Verified by re-parsing, like every fix.
fn declare_fix(db: &dyn Db, ws: Workspace, agent: &str, operation: &str, allow: bool) -> Option<Fix> {
    use symbiont_codegen::sym_edit;
    let (file, agent_node) = agent_syntax(db, ws, agent)?;
    let text = file.text(db);
    let mut edits = vec![sym_edit::add_to_list(text, &agent_node, "capabilities", &format!("\"{operation}\""))?];
    let mut title = format!("Add `{operation}` to the capabilities of agent `{agent}`");
    if allow {
        let (edit, policy) = sym_edit::add_allow(text, &agent_node, operation)?;
        edits.push(edit);
        title.push_str(&format!(" and allow it in policy `{policy}`"));
    }
    if !symbiont_syntax::parse(&fix::apply(text, &edits)).errors().is_empty() {
        return None;
    }
    Some(Fix { title, edits: edits.into_iter().map(|e| sym_text_edit(file.path(db), e)).collect(), safe: false })
}

/// What the code bound to `agent` performs and the agent does not declare, each with the `.sym`
/// edit that declares it (and allows it, when nothing does): what is offered on the agent's
/// `capabilities` list. A denied operation is left out: no edit of the agent makes it legal.
pub fn undeclared_in_code(db: &dyn Db, ws: Workspace, agent: &str) -> Vec<Fix> {
    let universe = policy_universe(db, ws);
    let (Some(def), Ok(effective)) = (universe.agent(agent), universe.effective(Some(agent))) else { return Vec::new() };
    let bindings = code_bindings(db, ws);
    let mut operations = std::collections::BTreeSet::new();
    for &file in ws.code_files(db) {
        if bindings.get(file.path(db)).is_some_and(|agents| agents.iter().any(|a| a == agent)) {
            operations.extend(code_findings(db, ws, file).iter().filter(|f| f.suppression.is_none()).map(|f| f.operation.clone()));
        }
    }
    let declared = |op: &str| def.capabilities.iter().any(|(c, _)| effective.operations.ancestors(op).any(|a| a == c));
    operations
        .into_iter()
        .filter(|op| !declared(op))
        .filter_map(|op| match effective.static_verdict(&op) {
            StaticVerdict::DeniedBy(_) => None,
            StaticVerdict::NeverAllowed => declare_fix(db, ws, agent, &op, true),
            StaticVerdict::Allowed | StaticVerdict::Conditional => declare_fix(db, ws, agent, &op, false),
        })
        .collect()
}

/// The `.sym` file that defines `agent`, and the agent in its tree.
fn agent_syntax(db: &dyn Db, ws: Workspace, agent: &str) -> Option<(SourceFile, symbiont_syntax::ast::Agent)> {
    let def = policy_universe(db, ws).agent(agent)?;
    let file = ws.files(db).iter().copied().find(|f| f.path(db).to_string_lossy() == *def.loc.file)?;
    let node = symbiont_codegen::sym_edit::find_agent(&crate::inputs::parse(db, file).tree(), agent)?;
    Some((file, node))
}

fn to_fix(path: &Path, title: String, edits: Vec<fix::Edit>, safe: bool) -> Fix {
    Fix { title, edits: edits.into_iter().map(|edit| FileEdit { path: path.to_path_buf(), edit }).collect(), safe }
}

/// The SDK rewrite of a denied finding, when its rule has one: the broker then performs the
/// operation under the policy. (The other code-side fix, a suppression comment to justify, is
/// built for all of a file's findings at once.)
fn sdk_fix(lang: Lang, text: &str, finding: &Finding, path: &Path) -> Option<Fix> {
    let rule = symbiont_code::rules::lookup(&finding.rule)?;
    let row = rule.sdk.iter().find(|row| row.callee == finding.qualified)?;
    let edits = fix::sdk_rewrite(lang, text, finding, row)?;
    Some(to_fix(path, format!("Route through the Symbiont SDK ({})", row.sdk_call), edits, true))
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
    let edited = fix::apply(text, std::slice::from_ref(&edit.edit));
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
    let (file, agent_node) = agent_syntax(db, ws, agent)?;
    let text = file.text(db);
    let path = file.path(db).clone();
    let edit = |range: TextRange, new_text: String| FileEdit::new(path.clone(), range, new_text);
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
            let (allow, policy) = symbiont_codegen::sym_edit::add_allow(text, &agent_node, operation)?;
            Some(Fix { title: format!("Allow `{operation}` in policy `{policy}`"), edits: vec![sym_text_edit(&path, allow)], safe: false })
        }
        StaticVerdict::Conditional | StaticVerdict::Allowed => None,
    }
}
