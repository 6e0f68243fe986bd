//! Scanning a file: one tree-sitter parse (`parse.rs`, incremental with `incremental.rs`), every
//! site resolved once, then every rule of the [`RuleSet`] (built-in and custom, `rule_set.rs`)
//! matched against the sites; suppression comments honoured and reported (`suppress.rs`).

use crate::{
    incremental,
    lang::Lang,
    parse::{self, first_error},
    suppress,
};
// The crate's scanning API, whichever module implements each part.
pub use crate::{
    finding::{Finding, Suppression},
    incremental::ScanState,
    parse::{parse, parse_incremental, reparse, MAX_PARSE_BYTES},
    rule_set::{CustomRule, RuleError, RuleSet},
    suppress::SUPPRESSION_MARKER,
};

/// A file's parse and findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub findings: Vec<Finding>,
    /// Syntax errors the grammar reported (the scan still ran on what parsed): 1 when there are
    /// any, or when the file was too large to parse; 0 otherwise.
    pub syntax_errors: usize,
    /// Where the first syntax error is (bytes; an empty range where something is missing),
    /// when the file was parsed and has one.
    pub first_error: Option<(usize, usize)>,
    /// Why the file was not parsed, when it was not.
    pub skipped: Option<Skipped>,
}

/// Why a scan did not parse a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// Over [`MAX_PARSE_BYTES`]: no finding is reported for it.
    TooLarge,
    /// No rule can match it (the custom queries need words the file does not contain, and no
    /// other rule applies), so there was nothing to parse it for.
    NothingToMatch,
}

impl Scan {
    fn skipped(why: Skipped) -> Scan {
        Scan { findings: Vec::new(), syntax_errors: usize::from(why == Skipped::TooLarge), first_error: None, skipped: Some(why) }
    }
}

impl RuleSet {
    /// Scans `text` as `lang`. Never panics; a file that does not parse is scanned as far as it
    /// parses, and a file the parser gives up on yields no findings.
    pub fn scan(&self, lang: Lang, text: &str) -> Scan {
        self.scan_inner(lang, text, None, false).0
    }

    /// [`RuleSet::scan`] of a new version of a file, given what the scan of an earlier version
    /// kept (`None` the first time): the same result, computed again only where the text changed.
    /// Returns what to give the next call.
    pub fn scan_incremental(&self, lang: Lang, text: &str, previous: Option<ScanState>) -> (Scan, Option<ScanState>) {
        self.scan_inner(lang, text, previous, true)
    }

    /// The scan, and (when `keep`) what to keep for the next: which rules apply, the parse, the
    /// sites and built-in findings, the custom rules, then each finding once and its suppression.
    fn scan_inner(&self, lang: Lang, text: &str, previous: Option<ScanState>, keep: bool) -> (Scan, Option<ScanState>) {
        if text.len() > MAX_PARSE_BYTES {
            return (Scan::skipped(Skipped::TooLarge), None);
        }
        let needs_sites = self.needs_sites(lang);
        let queries = self.queries_to_run(lang, text);
        if !needs_sites && !queries.contains(&true) {
            return (Scan::skipped(Skipped::NothingToMatch), None);
        }
        // With the scan of an earlier version of the file (same rules, same language), the tree is
        // parsed incrementally from its tree, and the top-level nodes the edit left alone keep
        // their sites and findings. A Python file without custom queries to run is parsed in
        // pieces (`pieces.rs`): only the top-level statements an edit touched are parsed again.
        let by_pieces = lang == Lang::Python && !queries.contains(&true);
        let previous = previous.filter(|p| p.rules == self.id && p.lang == lang);
        let Some((syntax, reuse)) = incremental::parse(lang, text, previous, by_pieces) else {
            return (Scan::skipped(Skipped::TooLarge), None);
        };
        // Every piece parsed without an error (`pieces.rs`), so the file did.
        let first_error = if syntax.pieces.is_some() { None } else { first_error(&syntax.whole) };
        // The file's sites are only kept for custom rules that match them.
        let (sites, mut findings, children, scope) = if needs_sites {
            incremental::sites_and_findings(lang, self.builtin, &syntax, text, reuse.as_ref(), keep, self.matches_sites(lang))
        } else {
            Default::default()
        };
        // Queries run over the whole tree: a file with queries to run is never in pieces.
        debug_assert!(syntax.pieces.is_none() || !queries.contains(&true));
        for (custom, run) in self.custom.iter().zip(queries) {
            custom.find(lang, run, &sites, &syntax.whole, text, &mut findings);
        }
        report_once(&mut findings);
        if findings.is_empty() {
            // No finding, no fix to verify: nothing will parse this text again.
            parse::forget(text);
        }
        suppress::attach(lang, text, &mut findings);
        let scan = Scan { findings, syntax_errors: usize::from(first_error.is_some()), first_error, skipped: None };
        let state = keep.then(|| ScanState {
            rules: self.id,
            lang,
            text: text.into(),
            whole: syntax.whole,
            pieces: syntax.pieces,
            children,
            scope,
            has_sites: needs_sites,
        });
        if let Some((previous, _, _)) = reuse {
            incremental::drop_elsewhere(previous);
        }
        (scan, state)
    }
}

/// Sorts `findings` and keeps one finding per rule and place, and per method chain.
fn report_once(findings: &mut Vec<Finding>) {
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

    /// A query run only at the nodes that contain its words finds what the query over the whole
    /// tree finds; a file without the words is not parsed.
    #[test]
    fn targeted_queries_find_what_whole_tree_queries_find() {
        let python = r#"((call function: (attribute object: (identifier) @o attribute: (identifier) @a)) @match
                         (#eq? @o "requests") (#eq? @a "get"))"#;
        let rust = r#"((call_expression function: (scoped_identifier path: (identifier) @p name: (identifier) @n)) @match
                       (#eq? @p "fs") (#eq? @n "write"))
                      ((call_expression function: (scoped_identifier path: (identifier) @p name: (identifier) @n)) @match
                       (#eq? @p "File") (#eq? @n "create"))"#;
        let js = r#"((call_expression function: (identifier) @f) @match (#eq? @f "fetch"))"#;
        let cases: &[(&str, Lang, &str)] = &[
            ("python", Lang::Python, "import requests\nx = requests.get(requests.get(u))\n@requests.get('d')\ndef f(requests):\n    return [requests.get(a) for a in b] or (lambda: requests.get(u))\n# requests.get(u)\ns = 'requests.get(u)'\nrequests . get (u)\nrequests.gets(u)\nrequest.get(u)\n"),
            ("python", Lang::Python, "def broken(:\n    requests.get(u)\nclass\nrequests.get(v)\n"),
            ("rust", Lang::Rust, "fn f() { fs::write(a, fs::write(b, c)); File::create(p).map(|f| fs::write(f, File::create(q))); let s = \"fs::write(x)\"; }\nmacro_rules! m { () => { fs::write(a, b) } }\n"),
            ("javascript", Lang::JavaScript, "fetch(fetch(u)); const f = () => fetch(u); class A { m() { return fetch } }\n"),
            ("javascript", Lang::Tsx, "const el = <div onClick={() => fetch(u)}>{fetch(v)}</div>;\n"),
        ];
        for (language, lang, text) in cases {
            let query = match *language {
                "python" => python,
                "rust" => rust,
                _ => js,
            };
            let rules = RuleSet::new(false, vec![query_rule(language, query)]).unwrap();
            assert!(rules.custom[0].targeted, "{language}");
            let targeted = rules.scan(*lang, text);
            let mut whole = RuleSet::new(false, vec![query_rule(language, query)]).unwrap();
            whole.custom[0].targeted = false;
            let expected = whole.scan(*lang, text);
            assert!(!expected.findings.is_empty(), "{text}");
            assert_eq!(targeted, expected, "{text}");
        }
        let rules = RuleSet::new(false, vec![query_rule("python", python)]).unwrap();
        let scan = rules.scan(Lang::Python, "import requests\nrequests.post(u)\n");
        assert_eq!((scan.findings.len(), scan.skipped), (0, Some(Skipped::NothingToMatch)));
        assert_eq!(rules.scan(Lang::Rust, "fn main() {}").skipped, Some(Skipped::NothingToMatch));
        assert_eq!(rules.scan(Lang::Python, "requests.get(\n").skipped, None);
    }

    #[test]
    fn the_first_syntax_error_is_located() {
        let rules = RuleSet::default();
        let text = "import os\nos.system('a')\ndef broken(:\n    pass\nclass\n";
        let scan = rules.scan(Lang::Python, text);
        let (start, _) = scan.first_error.unwrap();
        assert_eq!(text[..start].matches('\n').count(), 2, "{:?}", scan.first_error);
        assert_eq!(rules.scan(Lang::Python, "x = 1\n").first_error, None);
        // A missing token is an empty range where it should be.
        let scan = rules.scan(Lang::JavaScript, "let x = (1 + 2;\n");
        assert!(scan.first_error.is_some());
    }
}
