//! The rules of a scan, compiled once: the built-in table or not, and the custom rules of
//! `symbiont.toml` (qualified-name patterns, or tree-sitter queries run only where their words
//! are, `query_words.rs`).

use std::sync::OnceLock;

use streaming_iterator::StreamingIterator;

use crate::{
    finding::{finding, Finding},
    lang::Lang,
    query_words::{self, Needs},
    rules::glob,
    sites::{Site, SiteKind},
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

pub(crate) struct CompiledCustom {
    pub rule: CustomRule,
    pub lang: Lang,
    pub query: Option<QueryRule>,
    /// For a query, what a file must contain for it to match (`query_words.rs`).
    pub required: Option<Vec<Needs>>,
    /// Whether every pattern of the query starts at a node of a known kind that contains the
    /// pattern's words: the query then runs only at such nodes.
    pub targeted: bool,
}

/// A query compiled for one grammar, with its `@match` capture.
pub(crate) struct CompiledQuery {
    query: tree_sitter::Query,
    capture: Option<u32>,
}

impl CompiledQuery {
    fn new(lang: Lang, source: &str) -> Result<CompiledQuery, tree_sitter::QueryError> {
        let query = tree_sitter::Query::new(&lang.grammar(), source)?;
        let capture = query.capture_index_for_name("match");
        Ok(CompiledQuery { query, capture })
    }
}

/// A query rule's query. A JavaScript query runs on TypeScript and TSX too, whose node kinds have
/// other ids: it is compiled for them the first time a file of theirs needs it (compiling a query
/// costs milliseconds), and runs on JavaScript only where it does not compile.
pub(crate) struct QueryRule {
    source: String,
    own: CompiledQuery,
    typescript: OnceLock<Option<CompiledQuery>>,
    tsx: OnceLock<Option<CompiledQuery>>,
}

impl QueryRule {
    fn runs_on(&self, own: Lang, lang: Lang) -> bool {
        lang == own || own == Lang::JavaScript && matches!(lang, Lang::TypeScript | Lang::Tsx)
    }

    fn for_lang(&self, own: Lang, lang: Lang) -> Option<&CompiledQuery> {
        match lang {
            _ if lang == own => Some(&self.own),
            Lang::TypeScript if own == Lang::JavaScript => {
                self.typescript.get_or_init(|| CompiledQuery::new(lang, &self.source).ok()).as_ref()
            }
            Lang::Tsx if own == Lang::JavaScript => self.tsx.get_or_init(|| CompiledQuery::new(lang, &self.source).ok()).as_ref(),
            _ => None,
        }
    }
}

/// The rules a scan applies, compiled once.
pub struct RuleSet {
    pub(crate) builtin: bool,
    pub(crate) custom: Vec<CompiledCustom>,
    /// Unique per rule set: a [`ScanState`](crate::ScanState) is used only by the rules that made it.
    pub(crate) id: u64,
}

fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet { builtin: true, custom: Vec::new(), id: next_id() }
    }
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
            let (query, required) = match &rule.query {
                None => (None, None),
                Some(source) => {
                    let own = CompiledQuery::new(lang, source).map_err(|e| err(format!("invalid query: {e}")))?;
                    let query = QueryRule { source: source.clone(), own, typescript: OnceLock::new(), tsx: OnceLock::new() };
                    (Some(query), query_words::required_words(source))
                }
            };
            // The kind a pattern starts at must be a plain named node of every grammar it runs on.
            let grammars: &[Lang] = if lang == Lang::JavaScript { &[Lang::JavaScript, Lang::TypeScript, Lang::Tsx] } else { &[lang] };
            let targeted = required.as_ref().is_some_and(|needs| {
                needs.iter().all(|n| {
                    n.root.as_ref().is_some_and(|root| {
                        grammars.iter().all(|l| {
                            let grammar = l.grammar();
                            let id = grammar.id_for_node_kind(root, true);
                            id != 0 && !grammar.node_kind_is_supertype(id)
                        })
                    })
                })
            });
            compiled.push(CompiledCustom { rule, lang, query, required, targeted });
        }
        Ok(RuleSet { builtin, custom: compiled, id: next_id() })
    }

    /// Whether a scan of a `lang` file needs its sites: for the built-in rules, or for custom
    /// rules that match them.
    pub(crate) fn needs_sites(&self, lang: Lang) -> bool {
        self.builtin || self.matches_sites(lang)
    }

    /// Whether custom rules match the sites of a `lang` file (then the scan keeps them all).
    pub(crate) fn matches_sites(&self, lang: Lang) -> bool {
        self.custom.iter().any(|c| c.query.is_none() && c.lang.family() == lang.family())
    }

    /// For each custom rule, whether it is a query to run on `text`, a `lang` file: a query
    /// written for TypeScript runs on TypeScript files only, and so on; and only on files that
    /// contain the words it compares captures with.
    pub(crate) fn queries_to_run(&self, lang: Lang, text: &str) -> Vec<bool> {
        self.custom
            .iter()
            .map(|c| {
                c.query.as_ref().is_some_and(|q| q.runs_on(c.lang, lang))
                    && c.required.as_ref().is_none_or(|words| query_words::may_match(words, text))
            })
            .collect()
    }
}

impl CompiledCustom {
    /// Adds this rule's findings in `text`, a `lang` file, to `findings`: the `sites` a pattern
    /// matches, or (when `run`, from [`RuleSet::queries_to_run`]) the matches of a query in `tree`.
    pub(crate) fn find(&self, lang: Lang, run: bool, sites: &[Site], tree: &tree_sitter::Tree, text: &str, findings: &mut Vec<Finding>) {
        let rule = &self.rule;
        match &self.query {
            None if self.lang.family() == lang.family() => {
                for site in sites.iter().filter(|s| s.kind == SiteKind::Call && rule.pattern.iter().any(|p| glob(p, &s.qualified))) {
                    findings.push(finding(&rule.id, &rule.operation, &rule.message, site));
                }
            }
            Some(query) if run => {
                let Some(CompiledQuery { query, capture }) = query.for_lang(self.lang, lang) else { return };
                let mut push = |node: tree_sitter::Node<'_>| {
                    findings.push(Finding {
                        rule: rule.id.clone(),
                        operation: rule.operation.clone(),
                        message: rule.message.clone(),
                        start: node.start_byte(),
                        end: node.end_byte(),
                        callee_start: node.start_byte(),
                        callee_end: node.end_byte(),
                        qualified: String::new(),
                        suppression: None,
                    })
                };
                match (&self.required, self.targeted) {
                    (Some(needs), true) => run_targeted(query, *capture, needs, tree, text, &mut push),
                    _ => run_query(query, *capture, tree.root_node(), None, text, &mut push),
                }
            }
            _ => {}
        }
    }
}

/// Runs `query` from `node` (only at `node` itself with `max_start_depth` 0), reporting each
/// match's `@match` capture (or its first).
fn run_query<'t>(
    query: &tree_sitter::Query,
    capture: Option<u32>,
    node: tree_sitter::Node<'t>,
    max_start_depth: Option<u32>,
    text: &str,
    push: &mut dyn FnMut(tree_sitter::Node<'t>),
) {
    let mut cursor = tree_sitter::QueryCursor::new();
    cursor.set_max_start_depth(max_start_depth);
    let mut matches = cursor.matches(query, node, text.as_bytes());
    while let Some(m) = matches.next() {
        let node = match capture {
            Some(index) => m.captures().iter().find(|c| c.index == index).map(|c| c.node),
            None => m.captures().first().map(|c| c.node),
        };
        if let Some(node) = node {
            push(node);
        }
    }
}

/// Runs a query whose every pattern starts at a node of a known kind containing the pattern's
/// words ([`Needs`]) only at such nodes: a walk of the tree that enters only the nodes containing
/// them. It finds what running the query over the whole tree finds, without matching the
/// query against every node.
fn run_targeted<'t>(
    query: &tree_sitter::Query,
    capture: Option<u32>,
    needs: &[Needs],
    tree: &'t tree_sitter::Tree,
    text: &str,
    push: &mut dyn FnMut(tree_sitter::Node<'t>),
) {
    // Where each word occurs, sorted.
    let mut words: Vec<(&str, Vec<usize>)> = Vec::new();
    for word in needs.iter().flat_map(|n| &n.words) {
        if !words.iter().any(|(w, _)| *w == word.as_str()) {
            words.push((word, text.match_indices(word.as_str()).map(|(i, _)| i).collect()));
        }
    }
    let occurs_within = |word: &str, start: usize, end: usize| {
        let Some((_, at)) = words.iter().find(|(w, _)| *w == word) else { return false };
        at.get(at.partition_point(|&i| i < start)).is_some_and(|&i| i + word.len() <= end)
    };
    let contains = |n: &Needs, node: tree_sitter::Node<'_>| n.words.iter().all(|w| occurs_within(w, node.start_byte(), node.end_byte()));
    let mut cursor = tree.walk();
    'walk: loop {
        let node = cursor.node();
        let mut inside = false;
        let mut root = false;
        for n in needs {
            if contains(n, node) {
                inside = true;
                root |= node.is_named() && n.root.as_deref() == Some(node.kind());
            }
        }
        if root {
            run_query(query, capture, node, Some(0), text, push);
        }
        if inside && cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                continue 'walk;
            }
            if !cursor.goto_parent() {
                break 'walk;
            }
        }
    }
}
