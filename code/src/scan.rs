//! Scanning a file: one tree-sitter parse, every site resolved once, then every rule (built-in and
//! custom) matched against the sites; suppression comments honoured and reported.

use std::{cell::RefCell, collections::HashMap};

use streaming_iterator::StreamingIterator;

use crate::{
    lang::Lang,
    rules::{self, glob},
    sites::{self, Site, SiteKind},
};

/// A rule written in `symbiont.toml`: a qualified-name pattern (resolved through imports like
/// the built-in rules) or a tree-sitter query (purely syntactic; the `@match` capture, or the
/// whole match, is reported).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRule {
    pub id: String,
    pub language: String,
    pub operation: String,
    pub message: String,
    #[serde(default)]
    pub pattern: Vec<String>,
    pub query: Option<String>,
}

/// Why a rule set cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub rule: String,
    pub message: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "code rule `{}`: {}", self.rule, self.message)
    }
}

struct CompiledCustom {
    rule: CustomRule,
    lang: Lang,
    query: Option<(tree_sitter::Query, Option<u32>)>,
}

/// The rules a scan applies, compiled once.
pub struct RuleSet {
    builtin: bool,
    custom: Vec<CompiledCustom>,
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet { builtin: true, custom: Vec::new() }
    }
}

/// One place where code performs an operation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The rule's code (`SYM0301`) or, for custom rules, its id.
    pub rule: String,
    pub operation: String,
    pub message: String,
    pub start: usize,
    pub end: usize,
    pub callee_start: usize,
    pub callee_end: usize,
    /// What the callee resolved to (`requests.get`); empty for query rules.
    pub qualified: String,
    /// A `symbiont: allow OP -- reason` comment on the line or the line above.
    pub suppression: Option<Suppression>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Suppression {
    /// The justification after `--`; empty when missing (which `check` reports).
    pub reason: String,
    pub start: usize,
    pub end: usize,
}

/// A file's parse and findings.
pub struct Scan {
    pub findings: Vec<Finding>,
    /// Syntax errors the grammar reported (the scan still ran on what parsed).
    pub syntax_errors: usize,
}

impl RuleSet {
    pub fn new(builtin: bool, custom: Vec<CustomRule>) -> Result<RuleSet, RuleError> {
        let mut compiled = Vec::new();
        for rule in custom {
            let err = |message: String| RuleError { rule: rule.id.clone(), message };
            let lang = Lang::from_name(&rule.language).ok_or_else(|| err(format!("unknown language `{}`", rule.language)))?;
            if rule.pattern.is_empty() == rule.query.is_none() {
                return Err(err("give exactly one of `pattern` (qualified names) or `query` (a tree-sitter query)".into()));
            }
            let query = match &rule.query {
                None => None,
                Some(source) => {
                    let query = tree_sitter::Query::new(&lang.grammar(), source).map_err(|e| err(format!("invalid query: {e}")))?;
                    let capture = query.capture_index_for_name("match");
                    Some((query, capture))
                }
            };
            compiled.push(CompiledCustom { rule, lang, query });
        }
        Ok(RuleSet { builtin, custom: compiled })
    }

    /// Scans `text` as `lang`. Never panics; a file that does not parse is scanned as far as it
    /// parses, and a file the parser gives up on yields no findings.
    pub fn scan(&self, lang: Lang, text: &str) -> Scan {
        let Some(tree) = parse(lang, text) else { return Scan { findings: Vec::new(), syntax_errors: 1 } };
        let syntax_errors = usize::from(tree.root_node().has_error());
        let mut findings = Vec::new();
        let needs_sites = self.builtin || self.custom.iter().any(|c| c.query.is_none() && c.lang.family() == lang.family());
        let sites = if needs_sites { sites::sites(lang, &tree, text) } else { Vec::new() };
        if self.builtin {
            for site in &sites {
                for rule in rules::RULES.iter().filter(|r| r.family == lang.family()) {
                    if rule.matches(site) {
                        findings.push(finding(rule.code, rule.operation, &format!("{} ({})", rule.summary_short(), site.qualified), site));
                        break;
                    }
                }
            }
        }
        for custom in self.custom.iter().filter(|c| c.lang.family() == lang.family()) {
            match &custom.query {
                None => {
                    for site in
                        sites.iter().filter(|s| s.kind == SiteKind::Call && custom.rule.pattern.iter().any(|p| glob(p, &s.qualified)))
                    {
                        findings.push(finding(&custom.rule.id, &custom.rule.operation, &custom.rule.message, site));
                    }
                }
                Some((query, capture)) => {
                    // A query written for TypeScript runs on TypeScript files only, and so on.
                    if custom.lang != lang && !(custom.lang == Lang::JavaScript && lang.family() == custom.lang.family()) {
                        continue;
                    }
                    let mut cursor = tree_sitter::QueryCursor::new();
                    let mut matches = cursor.matches(query, tree.root_node(), text.as_bytes());
                    while let Some(m) = matches.next() {
                        let node = match capture {
                            Some(index) => m.captures().iter().find(|c| c.index == *index).map(|c| c.node),
                            None => m.captures().first().map(|c| c.node),
                        };
                        let Some(node) = node else { continue };
                        findings.push(Finding {
                            rule: custom.rule.id.clone(),
                            operation: custom.rule.operation.clone(),
                            message: custom.rule.message.clone(),
                            start: node.start_byte(),
                            end: node.end_byte(),
                            callee_start: node.start_byte(),
                            callee_end: node.end_byte(),
                            qualified: String::new(),
                            suppression: None,
                        });
                    }
                }
            }
        }
        findings.sort_by_key(|f| (f.start, f.end));
        findings.dedup_by(|a, b| a.start == b.start && a.end == b.end && a.rule == b.rule);
        // A method chain on a flagged call performs the operation once: `superagent.get(u).end()`
        // matches `superagent.*` twice, `OpenOptions::new().create(true).write(true)` both
        // `new()*.create` and `new()*.write`. Only the chain's innermost flagged call is reported.
        let chained: Vec<bool> = findings
            .iter()
            .map(|f| {
                findings.iter().any(|g| {
                    g.rule == f.rule
                        && g.start == f.start
                        && g.end < f.end
                        && !g.qualified.is_empty()
                        && f.qualified.strip_prefix(g.qualified.as_str()).is_some_and(|rest| rest.starts_with("()"))
                })
            })
            .collect();
        let mut chained = chained.into_iter();
        findings.retain(|_| !chained.next().unwrap_or(false));
        for f in &mut findings {
            f.suppression = suppression(lang, text, f.start, &f.operation);
        }
        Scan { findings, syntax_errors }
    }
}

fn finding(rule: &str, operation: &str, message: &str, site: &Site) -> Finding {
    Finding {
        rule: rule.to_string(),
        operation: operation.to_string(),
        message: message.to_string(),
        start: site.start,
        end: site.end,
        callee_start: site.callee_start,
        callee_end: site.callee_end,
        qualified: site.qualified.clone(),
        suppression: None,
    }
}

impl rules::Rule {
    /// The summary up to its colon: `Network access from Python`.
    pub fn summary_short(&self) -> &'static str {
        self.summary.split(':').next().unwrap_or(self.summary).trim_end_matches('.')
    }
}

thread_local! {
    static PARSERS: RefCell<HashMap<Lang, tree_sitter::Parser>> = RefCell::new(HashMap::new());
}

/// Parses with a parser reused per thread and language. Files over 16 MiB are not parsed.
pub fn parse(lang: Lang, text: &str) -> Option<tree_sitter::Tree> {
    if text.len() > 16 << 20 {
        return None;
    }
    PARSERS.with(|parsers| {
        let mut parsers = parsers.borrow_mut();
        let parser = match parsers.entry(lang) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let mut parser = tree_sitter::Parser::new();
                parser.set_language(&lang.grammar()).ok()?;
                v.insert(parser)
            }
        };
        parser.parse(text, None)
    })
}

/// The marker of a suppression comment.
pub const SUPPRESSION_MARKER: &str = "symbiont: allow";

/// A `symbiont: allow OP -- reason` comment on the finding's line or the line above.
fn suppression(lang: Lang, text: &str, at: usize, operation: &str) -> Option<Suppression> {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let prev_start = if line_start == 0 { None } else { Some(text[..line_start - 1].rfind('\n').map_or(0, |i| i + 1)) };
    let candidates = [Some((line_start, line_end)), prev_start.map(|s| (s, line_start - 1))];
    // JSX children take no line comments: there a suppression is a `{/* … */}` block comment.
    let openers: &[&str] = match lang.family() {
        crate::lang::Family::Js => &["//", "/*"],
        _ => &[lang.line_comment()],
    };
    for (start, end) in candidates.into_iter().flatten() {
        let line = &text[start..end];
        // Every opener on the line, in order: the first may be inside a string
        // (`fetch("https://…") // symbiont: allow …`).
        let mut comments: Vec<(usize, &str)> = openers.iter().flat_map(|o| line.match_indices(*o)).collect();
        comments.sort();
        for (comment, opener) in comments {
            let body = line[comment + opener.len()..].trim_start();
            let Some(rest) = body.strip_prefix(SUPPRESSION_MARKER) else { continue };
            let (ops, reason) = match rest.split_once("--") {
                Some((ops, reason)) => (ops, reason.trim()),
                None => (rest, ""),
            };
            let reason = if opener == "/*" { reason.trim_end_matches('}').trim_end().trim_end_matches("*/").trim() } else { reason };
            if ops.split([',', ' ']).map(str::trim).any(|o| o == operation || o == "all") {
                return Some(Suppression { reason: reason.to_string(), start: start + comment, end });
            }
        }
    }
    None
}
