//! Scanning a file: one tree-sitter parse, every site resolved once, then every rule (built-in and
//! custom) matched against the sites; suppression comments honoured and reported.

use std::{
    cell::RefCell,
    collections::HashMap,
    sync::{Arc, OnceLock},
};

use streaming_iterator::StreamingIterator;

use crate::{
    lang::Lang,
    pieces::{Piece, Top},
    query_words::Needs,
    rules::{self, glob},
    sites::{self, Scope, Site, SiteKind},
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
    query: Option<QueryRule>,
    /// For a query, what a file must contain for it to match (`query_words.rs`).
    required: Option<Vec<Needs>>,
    /// Whether every pattern of the query starts at a node of a known kind that contains the
    /// pattern's words: the query then runs only at such nodes.
    targeted: bool,
}

/// A query compiled for one grammar, with its `@match` capture.
struct CompiledQuery {
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
struct QueryRule {
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
    builtin: bool,
    custom: Vec<CompiledCustom>,
    /// Unique per rule set: a [`ScanState`] is used only by the rules that made it.
    id: u64,
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
                    (Some(query), crate::query_words::required_words(source))
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

    fn scan_inner(&self, lang: Lang, text: &str, previous: Option<ScanState>, keep: bool) -> (Scan, Option<ScanState>) {
        let skipped = |why| Scan {
            findings: Vec::new(),
            syntax_errors: usize::from(why == Skipped::TooLarge),
            first_error: None,
            skipped: Some(why),
        };
        if text.len() > MAX_PARSE_BYTES {
            return (skipped(Skipped::TooLarge), None);
        }
        let needs_sites = self.builtin || self.custom.iter().any(|c| c.query.is_none() && c.lang.family() == lang.family());
        // A query written for TypeScript runs on TypeScript files only, and so on; and only on
        // files that contain the words it compares captures with.
        let queries: Vec<bool> = self
            .custom
            .iter()
            .map(|c| {
                c.query.as_ref().is_some_and(|q| q.runs_on(c.lang, lang))
                    && c.required.as_ref().is_none_or(|words| crate::query_words::may_match(words, text))
            })
            .collect();
        if !needs_sites && !queries.contains(&true) {
            return (skipped(Skipped::NothingToMatch), None);
        }
        // With the scan of an earlier version of the file (same rules, same language), the tree is
        // parsed incrementally from its tree, and the top-level nodes the edit left alone keep
        // their sites and findings. A Python file without custom queries to run is parsed in
        // pieces (`pieces.rs`): only the top-level statements an edit touched are parsed again.
        let by_pieces = lang == Lang::Python && !queries.contains(&true);
        let previous = previous.filter(|p| p.rules == self.id && p.lang == lang);
        let (syntax, reuse) = match previous {
            Some(previous) => {
                let Some((edited, edit)) = edit_tree(&previous.whole, &previous.text, text) else {
                    return (skipped(Skipped::TooLarge), None);
                };
                let pieces_before = match &previous.pieces {
                    Some(pieces) => Some(pieces.clone()),
                    None if !previous.whole.root_node().has_error() => {
                        Some(vec![Piece::whole(previous.whole.clone(), previous.text.clone(), 0)])
                    }
                    None => None,
                };
                let reparsed = pieces_before
                    .filter(|_| by_pieces)
                    .and_then(|pieces| crate::pieces::reparse(lang, &pieces, &previous.text, text, edit));
                match reparsed {
                    // Every top-level node outside the region is one the previous scan had.
                    Some(reparsed) => {
                        (Syntax { whole: edited, pieces: Some(reparsed.pieces) }, Some((previous, edit, vec![reparsed.region])))
                    }
                    None => {
                        let Some(tree) = parse_incremental(lang, text, &edited) else {
                            return (skipped(Skipped::TooLarge), None);
                        };
                        // What differs: the edited text (a byte wider on each side, so that the
                        // nodes next to a deletion count as touched) and what tree-sitter parsed
                        // differently.
                        let mut changed: Vec<(usize, usize)> = edited.changed_ranges(&tree).map(|r| (r.start_byte, r.end_byte)).collect();
                        changed.push((edit.start.saturating_sub(1), edit.new_end + 1));
                        drop_elsewhere(edited);
                        (Syntax { whole: tree, pieces: None }, Some((previous, edit, changed)))
                    }
                }
            }
            None => match parse(lang, text) {
                Some(tree) => (Syntax { whole: tree, pieces: None }, None),
                None => return (skipped(Skipped::TooLarge), None),
            },
        };
        // Every piece parsed without an error (`pieces.rs`), so the file did.
        let first_error = if syntax.pieces.is_some() { None } else { first_error(&syntax.whole) };
        let syntax_errors = usize::from(first_error.is_some());
        // The file's sites are only needed by custom rules that match them.
        let want_sites = self.custom.iter().any(|c| c.query.is_none() && c.lang.family() == lang.family());
        let (sites, mut findings, children, scope) = if needs_sites {
            let (tops, root) = match &syntax.pieces {
                Some(pieces) => {
                    let tops = crate::pieces::tops(pieces);
                    let root = tops.first().map_or((syntax.whole.root_node(), &[][..]), |t| (t.root, t.src));
                    (tops, root)
                }
                None => (crate::pieces::whole_tops(&syntax.whole, text.as_bytes()), (syntax.whole.root_node(), text.as_bytes())),
            };
            self.sites_and_findings(lang, &tops, root, reuse.as_ref(), keep, want_sites)
        } else {
            (Vec::new(), Vec::new(), Vec::new(), Scope::default())
        };
        // Queries run over the whole tree: a file with queries to run is never in pieces.
        debug_assert!(syntax.pieces.is_none() || !queries.contains(&true));
        let tree = &syntax.whole;
        for (custom, active) in self.custom.iter().zip(queries) {
            match &custom.query {
                None if custom.lang.family() == lang.family() => {
                    for site in
                        sites.iter().filter(|s| s.kind == SiteKind::Call && custom.rule.pattern.iter().any(|p| glob(p, &s.qualified)))
                    {
                        findings.push(finding(&custom.rule.id, &custom.rule.operation, &custom.rule.message, site));
                    }
                }
                Some(query) if active => {
                    let Some(CompiledQuery { query, capture }) = query.for_lang(custom.lang, lang) else { continue };
                    let mut push = |node: tree_sitter::Node<'_>| {
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
                        })
                    };
                    match (&custom.required, custom.targeted) {
                        (Some(needs), true) => run_targeted(query, *capture, needs, tree, text, &mut push),
                        _ => run_query(query, *capture, tree.root_node(), None, text, &mut push),
                    }
                }
                _ => {}
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
        // Only lines with the marker can hold a suppression: a file without any (the usual case)
        // reads no line's comments.
        let markers: Vec<usize> = text.match_indices(SUPPRESSION_MARKER).map(|(i, _)| i).collect();
        if !markers.is_empty() {
            let lines: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
            let mut comments = HashMap::new();
            for f in &mut findings {
                f.suppression = suppression(lang, text, &lines, &markers, &mut comments, f.start, &f.operation);
            }
        }
        let scan = Scan { findings, syntax_errors, first_error, skipped: None };
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
            drop_elsewhere(previous);
        }
        (scan, state)
    }

    /// The sites of a file (when `want_sites`: custom rules match them) and the built-in rules'
    /// findings, per top-level node: taken over from `reuse` (the previous scan, the edit, the
    /// changed ranges) for the nodes the edit left alone when what the file binds is unchanged,
    /// computed for the others. Also returns what the file binds.
    #[allow(clippy::too_many_arguments)]
    fn sites_and_findings(
        &self,
        lang: Lang,
        tops: &[Top<'_>],
        (root, root_src): (tree_sitter::Node<'_>, &[u8]),
        reuse: Option<&Reuse>,
        keep: bool,
        want_sites: bool,
    ) -> (Vec<Site>, Vec<Finding>, Vec<ChildState>, Scope) {
        // For each top-level node, the previous scan's node it is (unchanged, maybe moved): same
        // kind, no error, nothing changed in it.
        let old: Vec<Option<&ChildState>> = tops
            .iter()
            .map(|top| {
                let (previous, edit, changed) = reuse?;
                let (start, end) = (top.start(), top.end());
                if top.node.has_error() || changed.iter().any(|&(a, b)| start < b && a < end) {
                    return None;
                }
                let delta = if end <= edit.start {
                    0
                } else if start >= edit.new_end {
                    edit.new_end as isize - edit.old_end as isize
                } else {
                    return None;
                };
                let old_start = (start as isize - delta) as usize;
                let i = previous.children.partition_point(|c| c.start < old_start);
                let child = previous.children.get(i)?;
                (child.start == old_start
                    && child.end == (end as isize - delta) as usize
                    && child.kind == top.node.kind_id()
                    && !child.error)
                    .then_some(child)
            })
            .collect();
        let mut scope = sites::root_scope(lang.family(), root, root_src);
        let scopes: Vec<Arc<Scope>> = tops
            .iter()
            .zip(&old)
            .map(|(top, old)| match old {
                Some(child) => child.scope.clone(),
                None => Arc::new(sites::child_scope(lang.family(), top.node, top.src)),
            })
            .collect();
        for child in &scopes {
            scope.extend_from(child);
        }
        // Sites resolve names through the whole file's bindings: when they changed, nothing is
        // taken over.
        let same_scope = reuse.is_some_and(|(previous, _, _)| previous.has_sites && previous.scope == scope);
        let mut all_sites = Vec::new();
        let mut all_findings = Vec::new();
        let mut children = Vec::new();
        for ((top, old), child_scope) in tops.iter().zip(old).zip(scopes) {
            let start = top.start();
            // Kept relative to the node's start, so that a node that moved is taken over as it is.
            let (sites, findings): (Arc<[Site]>, Arc<[Finding]>) = match old {
                Some(child) if same_scope => (child.sites.clone(), child.findings.clone()),
                _ => {
                    let sites = sites::child_sites(lang, top.node, top.root, top.src, &scope);
                    let findings = if self.builtin { builtin_findings(lang, &sites) } else { Vec::new() };
                    let back = -(top.node.start_byte() as isize);
                    (sites.iter().map(|s| shift_site(s, back)).collect(), findings.iter().map(|f| shift_finding(f, back)).collect())
                }
            };
            let delta = start as isize;
            if want_sites {
                all_sites.extend(sites.iter().map(|s| shift_site(s, delta)));
            }
            all_findings.extend(findings.iter().map(|f| shift_finding(f, delta)));
            if keep {
                children.push(ChildState {
                    start,
                    end: top.end(),
                    kind: top.node.kind_id(),
                    error: top.node.has_error(),
                    scope: child_scope,
                    sites,
                    findings,
                });
            }
        }
        (all_sites, all_findings, children, scope)
    }
}

/// Frees `value` on a thread of its own. Freeing the previous scan's tree (the part of it the new
/// tree does not share: tree-sitter rebuilds the spine of a module after an edit) costs a tenth of
/// an incremental scan, which the caller need not wait for.
fn drop_elsewhere<T: Send + 'static>(value: T) {
    static DROPPER: OnceLock<Option<std::sync::mpsc::Sender<Box<dyn Send>>>> = OnceLock::new();
    let dropper = DROPPER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Box<dyn Send>>();
        let spawned = std::thread::Builder::new().name("symbiont-code-free".into()).spawn(move || rx.into_iter().for_each(drop));
        spawned.ok().map(|_| tx)
    });
    // Without the thread (or once it is gone), here.
    if let Some(dropper) = dropper {
        let _ = dropper.send(Box::new(value));
    }
}

/// The built-in rules' findings at `sites`: the first rule that matches each.
fn builtin_findings(lang: Lang, sites: &[Site]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for site in sites {
        for rule in rules::RULES.iter().filter(|r| r.family == lang.family()) {
            if rule.matches(site) {
                findings.push(finding(rule.code, rule.operation, &format!("{} ({})", rule.summary_short(), site.qualified), site));
                break;
            }
        }
    }
    findings
}

fn shift(at: usize, delta: isize) -> usize {
    (at as isize + delta) as usize
}

fn shift_site(site: &Site, delta: isize) -> Site {
    Site {
        start: shift(site.start, delta),
        end: shift(site.end, delta),
        callee_start: shift(site.callee_start, delta),
        callee_end: shift(site.callee_end, delta),
        ..site.clone()
    }
}

fn shift_finding(finding: &Finding, delta: isize) -> Finding {
    Finding {
        start: shift(finding.start, delta),
        end: shift(finding.end, delta),
        callee_start: shift(finding.callee_start, delta),
        callee_end: shift(finding.callee_end, delta),
        ..finding.clone()
    }
}

/// What a scan keeps of a file, so that the scan of an edited version redoes only what the edit
/// touched ([`RuleSet::scan_incremental`]): the text and tree (tree-sitter parses the new text
/// incrementally from the tree) and, per top-level node, what it binds, its sites and the
/// built-in rules' findings there.
pub struct ScanState {
    /// The [`RuleSet`] that made it.
    rules: u64,
    lang: Lang,
    text: Arc<str>,
    /// The whole text's tree: its parse, or (with `pieces`) an earlier parse edited
    /// (`Tree::edit`) to match it, from which the whole text is parsed when pieces will not do.
    whole: tree_sitter::Tree,
    /// The file's top-level nodes, in pieces that each parsed without an error (`pieces.rs`).
    pieces: Option<Vec<Piece>>,
    children: Vec<ChildState>,
    /// What the file binds (all the children's scopes, merged).
    scope: Scope,
    /// Whether `children` holds the sites (the scan needed them).
    has_sites: bool,
}

#[cfg(test)]
impl ScanState {
    /// Where each top-level node starts and its S-expression, when the file is in pieces.
    fn piece_tops(&self) -> Option<Vec<(usize, String)>> {
        let pieces = self.pieces.as_ref()?;
        Some(crate::pieces::tops(pieces).iter().map(|t| (t.start(), t.node.to_sexp())).collect())
    }
}

/// The syntax of a scanned file: its tree, or its pieces (`pieces.rs`).
struct Syntax {
    whole: tree_sitter::Tree,
    pieces: Option<Vec<Piece>>,
}

/// A top-level node of a scanned file. Its sites and findings are kept with offsets relative to
/// its start, shared: a node an edit only moved is taken over without copying them.
struct ChildState {
    start: usize,
    end: usize,
    kind: u16,
    error: bool,
    scope: Arc<Scope>,
    sites: Arc<[Site]>,
    findings: Arc<[Finding]>,
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

/// The first syntax error of a tree in text order: an `ERROR` node or a missing token.
/// Iterative: it descends only into children that contain an error.
fn first_error(tree: &tree_sitter::Tree) -> Option<(usize, usize)> {
    let mut node = tree.root_node();
    if !node.has_error() {
        return None;
    }
    let mut cursor = node.walk();
    loop {
        if node.is_error() || node.is_missing() {
            return Some((node.start_byte(), node.end_byte()));
        }
        let child = node.children(&mut cursor).find(|c| c.has_error());
        match child {
            Some(child) => node = child,
            None => return Some((node.start_byte(), node.end_byte())),
        }
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
pub const MAX_PARSE_BYTES: usize = 16 << 20;

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
    reparse_edit(lang, old, before, after).map(|(_, tree, _)| tree)
}

/// Where two texts differ: the first differing byte, and where the difference ends in the text
/// before and in the text after.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TextEdit {
    pub start: usize,
    pub old_end: usize,
    pub new_end: usize,
}

/// What an incremental scan takes over from the previous one: its state, the edit, and the
/// ranges that changed (in the new text).
type Reuse = (ScanState, TextEdit, Vec<(usize, usize)>);

/// [`reparse`], also returning `old` as edited (what `Tree::changed_ranges` compares the new tree
/// with) and the edit.
fn reparse_edit(
    lang: Lang,
    old: &tree_sitter::Tree,
    before: &str,
    after: &str,
) -> Option<(tree_sitter::Tree, tree_sitter::Tree, TextEdit)> {
    let (tree, edit) = edit_tree(old, before, after)?;
    let new = parse_with(lang, after, Some(&tree))?;
    Some((tree, new, edit))
}

/// A copy of `old`, the tree of `before`, edited (`Tree::edit`) to match `after`, and the edit.
/// `None` when `after` is too large to parse.
fn edit_tree(old: &tree_sitter::Tree, before: &str, after: &str) -> Option<(tree_sitter::Tree, TextEdit)> {
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
    Some((tree, TextEdit { start: prefix, old_end, new_end }))
}

/// Parses `text` reusing `old`, a tree of an earlier text already edited (`Tree::edit`) to match.
pub fn parse_incremental(lang: Lang, text: &str, old: &tree_sitter::Tree) -> Option<tree_sitter::Tree> {
    if text.len() > MAX_PARSE_BYTES {
        return None;
    }
    parse_with(lang, text, Some(old))
}

pub(crate) fn parse_with(lang: Lang, text: &str, old: Option<&tree_sitter::Tree>) -> Option<tree_sitter::Tree> {
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
    markers: &[usize],
    cache: &mut HashMap<usize, Vec<SuppressionComment>>,
    at: usize,
    operation: &str,
) -> Option<Suppression> {
    let line = lines.partition_point(|&start| start <= at).saturating_sub(1);
    for line in [Some(line), line.checked_sub(1)].into_iter().flatten() {
        let start = lines[line];
        let end = lines.get(line + 1).map_or(text.len(), |next| next - 1);
        // No marker starts on the line: no suppression comment there.
        if markers.get(markers.partition_point(|&m| m < start)).is_none_or(|&m| m >= end) {
            continue;
        }
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

    /// Incremental scans of random edits give what a fresh scan of the same text gives: edits
    /// inside and between top-level nodes, imports added and removed (the bindings change),
    /// syntax errors made and mended.
    #[test]
    fn incremental_scans_equal_fresh_scans() {
        let cases: &[(Lang, &str, &[&str])] = &[
            (
                Lang::Python,
                "import os\nimport requests as r\n\n\ndef a(u):\n    return r.get(u)\n\n\nclass B:\n    def open(self):\n        os.system('x')\n\n\n@app.route('/')\ndef c():\n    if u:\n        r.get(u)\n    else:\n        open('g')\n\n# note\n\nx = open('f', 'w'); y = r.post(u)\nprint(os.environ['K'])\ntry:\n    r.get(v)\nexcept E:\n    pass\n",
                &[
                    "# c\n",
                    "\n# after a blank line\n",
                    "import subprocess\n",
                    "from requests import get\n",
                    "def get(u):\n    pass\n",
                    "(",
                    ")",
                    "r.post(u)\n",
                    "    ",
                    "\"\"\"",
                    "@dec\n",
                    "else:\n    pass\n",
                    "if x:\n",
                    "x = \\\n",
                    "",
                ],
            ),
            (
                Lang::JavaScript,
                "const fs = require(\"fs\");\nimport axios from \"axios\";\n\nfunction f(u) {\n  return fetch(u);\n}\n\nfs.writeFileSync(\"a\", process.env.X);\naxios.get(u).then(g);\n",
                &["// c\n", "function fetch() {}\n", "const { get } = require(\"axios\");\n", "{", "`", "get(u);\n", ""],
            ),
            (
                Lang::Rust,
                "use std::fs;\nuse std::process::Command;\n\nfn main() {\n    fs::write(\"a\", b).unwrap();\n    println!(\"{}\", std::env::var(\"X\").unwrap());\n}\n\nfn g() { Command::new(\"ls\").spawn(); }\n",
                &["// c\n", "use reqwest as http;\n", "fn write() {}\n", "{", "http::get(u);\n", "\"", ""],
            ),
        ];
        let mut rng = symbiont_tests::XorShift::new(0x9e37_79b9_7f4a_7c15);
        let mut next = move |n: usize| rng.below(n);
        // The built-in rules alone, and with a custom rule matching sites (which needs every site).
        let pattern_rule = |language: &str, pattern: &str| CustomRule {
            id: "p".into(),
            language: language.into(),
            operation: "network_access".into(),
            message: "m".into(),
            pattern: vec![pattern.into()],
            query: None,
        };
        let custom = ["requests.*", "axios.*", "std::*"];
        for ((lang, start, inserts), pattern) in cases.iter().zip(custom) {
            for rules in [RuleSet::default(), RuleSet::new(true, vec![pattern_rule(lang.name(), pattern)]).unwrap()] {
                let mut text = start.to_string();
                let mut kept = None;
                let mut pieced = 0;
                // `SYMBIONT_SCAN_STEPS` runs longer sequences (the default keeps the suite quick).
                let steps: usize = std::env::var("SYMBIONT_SCAN_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
                for step in 0..steps {
                    // Insert a snippet, or delete a range, at a random char boundary (often a line start).
                    let boundaries: Vec<usize> = (0..=text.len()).filter(|i| text.is_char_boundary(*i)).collect();
                    let line_starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
                    let at = if next(2) == 0 { line_starts[next(line_starts.len())] } else { boundaries[next(boundaries.len())] };
                    if next(3) == 0 && text.len() > 40 {
                        let end = (at + 1 + next(12)).min(text.len());
                        if text.is_char_boundary(end) {
                            text.replace_range(at..end, "");
                        }
                    } else {
                        text.insert_str(at, inserts[next(inserts.len())]);
                    }
                    // Back to the start now and then: errors pile up, and the way out of them is tested too.
                    if text.len() > 4000 || (next(2) == 0 && rules.scan(*lang, &text).syntax_errors > 0) {
                        text = start.to_string();
                    }
                    let (incremental, state) = rules.scan_incremental(*lang, &text, kept.take());
                    let fresh = rules.scan(*lang, &text);
                    assert_eq!(incremental, fresh, "{lang:?}, step {step}: {text:?}");
                    // A file in pieces has the top-level nodes of a fresh parse, where they are.
                    if let Some(tops) = state.as_ref().and_then(ScanState::piece_tops) {
                        pieced += 1;
                        let tree = parse_with(*lang, &text, None).unwrap();
                        let mut cursor = tree.root_node().walk();
                        let expected: Vec<(usize, String)> =
                            tree.root_node().named_children(&mut cursor).map(|n| (n.start_byte(), n.to_sexp())).collect();
                        assert_eq!(tops, expected, "{lang:?}, step {step}: {text:?}");
                    }
                    kept = state;
                }
                assert!(*lang != Lang::Python || pieced > 60, "{lang:?}: only {pieced} steps in pieces");
            }
        }
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
