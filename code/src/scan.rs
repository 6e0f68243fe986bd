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
        // Findings are sorted by start: a chain's calls are neighbours.
        let chained: Vec<bool> = findings
            .iter()
            .map(|f| {
                let same_start = findings.partition_point(|g| g.start < f.start);
                findings[same_start..].iter().take_while(|g| g.start == f.start).any(|g| {
                    g.rule == f.rule
                        && g.end < f.end
                        && !g.qualified.is_empty()
                        && f.qualified.strip_prefix(g.qualified.as_str()).is_some_and(|rest| rest.starts_with("()"))
                })
            })
            .collect();
        let mut chained = chained.into_iter();
        findings.retain(|_| !chained.next().unwrap_or(false));
        // Each line's comments are read once: a minified file is one long line with thousands of
        // findings.
        let lines: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        let mut comments = HashMap::new();
        for f in &mut findings {
            f.suppression = suppression(lang, text, &lines, &mut comments, f.start, &f.operation);
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
    /// The last text [`parse`] parsed on this thread, and its tree: the fixes of a file's findings
    /// (`fix.rs`) parse the text that the scan of the file has just parsed, once per finding.
    static LAST_PARSE: RefCell<Option<(Lang, Box<str>, tree_sitter::Tree)>> = const { RefCell::new(None) };
}

/// Files over 16 MiB are not parsed.
const MAX_PARSE_BYTES: usize = 16 << 20;

/// Parses with a parser reused per thread and language. Files over 16 MiB are not parsed.
/// Parsing the same text again on the same thread returns (a cheap copy of) the same tree.
pub fn parse(lang: Lang, text: &str) -> Option<tree_sitter::Tree> {
    if text.len() > MAX_PARSE_BYTES {
        return None;
    }
    let cached = LAST_PARSE.with(|last| {
        let last = last.borrow();
        last.as_ref().filter(|(l, t, _)| *l == lang && **t == *text).map(|(_, _, tree)| tree.clone())
    });
    if cached.is_some() {
        return cached;
    }
    let tree = parse_with(lang, text, None)?;
    LAST_PARSE.with(|last| *last.borrow_mut() = Some((lang, text.into(), tree.clone())));
    Some(tree)
}

/// Parses `after`, an edit of `before` whose tree is `old` (from [`parse`]), reusing the parts of
/// `old` the edit left intact: tree-sitter's incremental parsing, which gives the tree a fresh
/// parse of `after` gives. The edit is taken as one replacement, from the first byte where the
/// texts differ to the last.
pub fn reparse(lang: Lang, old: &tree_sitter::Tree, before: &str, after: &str) -> Option<tree_sitter::Tree> {
    if after.len() > MAX_PARSE_BYTES {
        return None;
    }
    // The longest common suffix first: an inserted line then starts at the newline that ends the
    // line before (`…\n` + `# comment\n` + `code` is `…` + `\n# comment` + `\ncode`), which
    // lets tree-sitter reuse far more of Python's tree than an edit inside the indentation.
    let (b, a) = (before.as_bytes(), after.as_bytes());
    let suffix = b.iter().rev().zip(a.iter().rev()).take_while(|(x, y)| x == y).count();
    let max_prefix = b.len().min(a.len()) - suffix;
    let prefix = b.iter().zip(a).take(max_prefix).take_while(|(x, y)| x == y).count();
    let (old_end, new_end) = (b.len() - suffix, a.len() - suffix);
    let point = |text: &[u8], at: usize| {
        let row = text[..at].iter().filter(|c| **c == b'\n').count();
        let line_start = text[..at].iter().rposition(|c| *c == b'\n').map_or(0, |i| i + 1);
        tree_sitter::Point { row, column: at - line_start }
    };
    let mut tree = old.clone();
    tree.edit(&tree_sitter::InputEdit {
        start_byte: prefix,
        old_end_byte: old_end,
        new_end_byte: new_end,
        start_position: point(b, prefix),
        old_end_position: point(b, old_end),
        new_end_position: point(a, new_end),
    });
    parse_with(lang, after, Some(&tree))
}

fn parse_with(lang: Lang, text: &str, old: Option<&tree_sitter::Tree>) -> Option<tree_sitter::Tree> {
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
        parser.parse(text, old)
    })
}

/// The marker of a suppression comment.
pub const SUPPRESSION_MARKER: &str = "symbiont: allow";

/// A `symbiont: allow OP -- reason` comment: where it starts, the operations it names, its reason.
struct SuppressionComment {
    start: usize,
    operations: Vec<String>,
    reason: String,
}

/// The suppression comments of the line `start..end`.
fn suppression_comments(lang: Lang, text: &str, start: usize, end: usize) -> Vec<SuppressionComment> {
    let line = &text[start..end];
    // JSX children take no line comments: there a suppression is a `{/* … */}` block comment.
    let openers: &[&str] = match lang.family() {
        crate::lang::Family::Js => &["//", "/*"],
        _ => &[lang.line_comment()],
    };
    // Every opener on the line, in order: the first may be inside a string
    // (`fetch("https://…") // symbiont: allow …`).
    let mut openings: Vec<(usize, &str)> = openers.iter().flat_map(|o| line.match_indices(*o)).collect();
    openings.sort();
    let mut out = Vec::new();
    for (comment, opener) in openings {
        let body = line[comment + opener.len()..].trim_start();
        let Some(rest) = body.strip_prefix(SUPPRESSION_MARKER) else { continue };
        let (ops, reason) = match rest.split_once("--") {
            Some((ops, reason)) => (ops, reason.trim()),
            None => (rest, ""),
        };
        let reason = if opener == "/*" { reason.trim_end_matches('}').trim_end().trim_end_matches("*/").trim() } else { reason };
        out.push(SuppressionComment {
            start: start + comment,
            operations: ops.split([',', ' ']).map(str::trim).filter(|o| !o.is_empty()).map(str::to_string).collect(),
            reason: reason.to_string(),
        });
    }
    out
}

/// A `symbiont: allow OP -- reason` comment on the finding's line or the line above. `lines` are
/// the offsets where lines start; `cache` keeps each line's comments, by line.
fn suppression(
    lang: Lang,
    text: &str,
    lines: &[usize],
    cache: &mut HashMap<usize, Vec<SuppressionComment>>,
    at: usize,
    operation: &str,
) -> Option<Suppression> {
    let line = lines.partition_point(|&start| start <= at).saturating_sub(1);
    for line in [Some(line), line.checked_sub(1)].into_iter().flatten() {
        let start = lines[line];
        let end = lines.get(line + 1).map_or(text.len(), |next| next - 1);
        let comments = cache.entry(line).or_insert_with(|| suppression_comments(lang, text, start, end));
        if let Some(c) = comments.iter().find(|c| c.operations.iter().any(|o| o == operation || o == "all")) {
            return Some(Suppression { reason: c.reason.clone(), start: c.start, end });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_rule(language: &str, query: &str) -> CustomRule {
        CustomRule {
            id: "r".into(),
            language: language.into(),
            operation: "network_access".into(),
            message: "m".into(),
            pattern: Vec::new(),
            query: Some(query.into()),
        }
    }

    /// tree-sitter's Rust binding evaluates `#eq?` (and `#match?`) while matching: a query rule
    /// reports only the calls whose callee has the text the predicates name.
    #[test]
    fn query_predicates_are_evaluated() {
        let python = r#"((call function: (attribute object: (identifier) @o attribute: (identifier) @a)) @match
                         (#eq? @o "requests") (#match? @a "^(get|post)$"))"#;
        let rules = RuleSet::new(false, vec![query_rule("python", python)]).unwrap();
        let text = "import requests\nrequests.get(u)\nrequests.put(u)\nsession.get(u)\nrequests.post(u)\n";
        let found: Vec<&str> = rules.scan(Lang::Python, text).findings.iter().map(|f| &text[f.start..f.end]).collect();
        assert_eq!(found, ["requests.get(u)", "requests.post(u)"]);

        // Several top-level patterns in one query, each with its own predicates.
        let rust = r#"((call_expression function: (scoped_identifier path: (identifier) @p name: (identifier) @n)) @match
                       (#eq? @p "fs") (#eq? @n "write"))
                      ((call_expression function: (scoped_identifier path: (identifier) @p name: (identifier) @n)) @match
                       (#eq? @p "File") (#eq? @n "create"))"#;
        let rules = RuleSet::new(false, vec![query_rule("rust", rust)]).unwrap();
        let text = "fn f() { fs::write(a, b); File::create(p); File::write(x); fs::create(y); std::fs::write(c, d); }";
        let found: Vec<&str> = rules.scan(Lang::Rust, text).findings.iter().map(|f| &text[f.start..f.end]).collect();
        assert_eq!(found, ["fs::write(a, b)", "File::create(p)"]);
    }

    #[test]
    fn parsing_the_same_text_again_gives_the_same_tree() {
        let text = "def f():\n    return requests.get(u)\n";
        let first = parse(Lang::Python, text).unwrap();
        let copy = String::from(text);
        let again = parse(Lang::Python, &copy).unwrap();
        assert_eq!(first.root_node().to_sexp(), again.root_node().to_sexp());
        assert!(LAST_PARSE.with(|last| last.borrow().as_ref().is_some_and(|(l, t, _)| *l == Lang::Python && &**t == text)));
        // Another language, or another text, is parsed anew.
        let js = parse(Lang::JavaScript, text).unwrap();
        assert_ne!(js.root_node().to_sexp(), first.root_node().to_sexp());
        let other = parse(Lang::Python, "x = 1\n").unwrap();
        assert_eq!(other.root_node().to_sexp(), "(module (expression_statement (assignment left: (identifier) right: (integer))))");
    }

    /// The incremental reparse that verifies fixes gives the tree a fresh parse gives, errors
    /// included, for insertions, replacements and deletions anywhere.
    #[test]
    fn reparse_matches_a_fresh_parse() {
        let cases: &[(Lang, &str)] = &[
            (Lang::Python, "import requests\n\nclass T:\n    def f(self):\n        x = 1 + \\\n            requests.get(u)\n        return \"\"\"a\nb\"\"\"\n"),
            (Lang::JavaScript, "const a = 1\n(function () {\n  return fetch(`x\n${a}`);\n})();\nconst el = <ul>\n  <li>{fetch(u)}</li>\n</ul>;\n"),
            (Lang::Rust, "fn main() {\n    let s = \"a\nb\";\n    std::fs::write(p, s).unwrap();\n    /* c */ File::create(q);\n}\n"),
            (Lang::Tsx, "function f<T>(x: T) {\n  return <div>\n    {fetch(x as any)}\n  </div>;\n}\n"),
        ];
        let inserts = ["# symbiont: allow x -- R\n", "// symbiont: allow x -- R\n", "{/* c */}\n", "(", "\"", "\n    ", ""];
        for (lang, before) in cases {
            let old = parse(*lang, before).unwrap();
            let line_starts = std::iter::once(0).chain(before.match_indices('\n').map(|(i, _)| i + 1));
            for at in line_starts.chain([before.len() / 2, before.len()]).filter(|at| before.is_char_boundary(*at)) {
                for insert in inserts {
                    for removed in [0, 1, 4] {
                        let end = (at + removed).min(before.len());
                        if !before.is_char_boundary(end) {
                            continue;
                        }
                        let after = format!("{}{insert}{}", &before[..at], &before[end..]);
                        let fresh = parse_with(*lang, &after, None).unwrap();
                        let incremental = reparse(*lang, &old, before, &after).unwrap();
                        assert_eq!(
                            incremental.root_node().to_sexp(),
                            fresh.root_node().to_sexp(),
                            "{lang:?}: {insert:?} at {at} replacing {removed} bytes of {before:?}"
                        );
                        assert_eq!(incremental.root_node().has_error(), fresh.root_node().has_error());
                    }
                }
            }
            // The cached tree of `before` is left as it was.
            assert_eq!(parse(*lang, before).unwrap().root_node().to_sexp(), parse_with(*lang, before, None).unwrap().root_node().to_sexp());
        }
    }
}
