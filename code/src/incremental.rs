//! Incremental scans: what the scan of a file keeps ([`ScanState`]) so that the scan of its next
//! version parses again only what the edit touched (incrementally, or in pieces: `pieces.rs`) and
//! redoes the rules only in the top-level nodes the edit touched, or everywhere when what the
//! file binds changed. The result is always what a fresh scan gives.

use std::sync::{Arc, OnceLock};

use crate::{
    finding::{finding, Finding},
    lang::Lang,
    parse::{self, Difference},
    pieces::{self, Piece, Top},
    rules,
    sites::{self, Scope, Site},
};

/// What a scan keeps of a file, so that the scan of an edited version redoes only what the edit
/// touched ([`RuleSet::scan_incremental`](crate::RuleSet::scan_incremental)): the text and tree (tree-sitter parses the new text
/// incrementally from the tree) and, per top-level node, what it binds, its sites and the
/// built-in rules' findings there.
pub struct ScanState {
    /// The [`RuleSet`](crate::RuleSet) that made it.
    pub(crate) rules: u64,
    pub(crate) lang: Lang,
    pub(crate) text: Arc<str>,
    /// The whole text's tree: its parse, or (with `pieces`) an earlier parse edited
    /// (`Tree::edit`) to match it, from which the whole text is parsed when pieces will not do.
    pub(crate) whole: tree_sitter::Tree,
    /// The file's top-level nodes, in pieces that each parsed without an error (`pieces.rs`).
    pub(crate) pieces: Option<Vec<Piece>>,
    pub(crate) children: Vec<ChildState>,
    /// What the file binds (all the children's scopes, merged).
    pub(crate) scope: Scope,
    /// Whether `children` holds the sites (the scan needed them).
    pub(crate) has_sites: bool,
}

#[cfg(test)]
impl ScanState {
    /// Where each top-level node starts and its S-expression, when the file is in pieces.
    pub(crate) fn piece_tops(&self) -> Option<Vec<(usize, String)>> {
        let pieces = self.pieces.as_ref()?;
        Some(pieces::tops(pieces).iter().map(|t| (t.start(), t.node.to_sexp())).collect())
    }
}

/// The syntax of a scanned file: its tree, or its pieces (`pieces.rs`).
pub(crate) struct Syntax {
    pub whole: tree_sitter::Tree,
    pub pieces: Option<Vec<Piece>>,
}

/// A top-level node of a scanned file. Its sites and findings are kept with offsets relative to
/// its start, shared: a node an edit only moved is taken over without copying them.
pub(crate) struct ChildState {
    start: usize,
    end: usize,
    kind: u16,
    error: bool,
    scope: Arc<Scope>,
    sites: Arc<[Site]>,
    findings: Arc<[Finding]>,
}

/// What an incremental scan takes over from the previous one: its state, the edit, and the
/// ranges that changed (in the new text).
pub(crate) type Reuse = (ScanState, Difference, Vec<(usize, usize)>);

/// The syntax of `text`: parsed incrementally from `previous` (the state of the scan of an
/// earlier version of the file, with the same rules and language) when there is one, in pieces
/// when `by_pieces` and they will do; and what the scan can take over from `previous`. `None`
/// when the text is too large to parse.
pub(crate) fn parse(lang: Lang, text: &str, previous: Option<ScanState>, by_pieces: bool) -> Option<(Syntax, Option<Reuse>)> {
    let Some(previous) = previous else {
        return Some((Syntax { whole: parse::parse(lang, text)?, pieces: None }, None));
    };
    let (edited, edit) = parse::edit_tree(&previous.whole, &previous.text, text)?;
    let pieces_before = match &previous.pieces {
        Some(pieces) => Some(pieces.clone()),
        None if !previous.whole.root_node().has_error() => Some(vec![Piece::whole(previous.whole.clone(), previous.text.clone(), 0)]),
        None => None,
    };
    let reparsed = pieces_before.filter(|_| by_pieces).and_then(|pieces| pieces::reparse(lang, &pieces, &previous.text, text, edit));
    if let Some(reparsed) = reparsed {
        // Every top-level node outside the region is one the previous scan had.
        return Some((Syntax { whole: edited, pieces: Some(reparsed.pieces) }, Some((previous, edit, vec![reparsed.region]))));
    }
    let tree = parse::parse_incremental(lang, text, &edited)?;
    // What differs: the edited text (a byte wider on each side, so that the nodes next to a
    // deletion count as touched) and what tree-sitter parsed differently.
    let mut changed: Vec<(usize, usize)> = edited.changed_ranges(&tree).map(|r| (r.start_byte, r.end_byte)).collect();
    changed.push((edit.start.saturating_sub(1), edit.new_end + 1));
    drop_elsewhere(edited);
    Some((Syntax { whole: tree, pieces: None }, Some((previous, edit, changed))))
}

/// The sites of a file (when `want_sites`: custom rules match them) and the findings of the
/// built-in rules (when `builtin`), per top-level node, the nodes the edit left alone taken over
/// from `reuse`. Also returns the state of each node (when `keep`) and what the file binds.
pub(crate) fn sites_and_findings(
    lang: Lang,
    builtin: bool,
    syntax: &Syntax,
    text: &str,
    reuse: Option<&Reuse>,
    keep: bool,
    want_sites: bool,
) -> (Vec<Site>, Vec<Finding>, Vec<ChildState>, Scope) {
    let (tops, root) = match &syntax.pieces {
        Some(pieces) => {
            let tops = pieces::tops(pieces);
            let root = tops.first().map_or((syntax.whole.root_node(), &[][..]), |t| (t.root, t.src));
            (tops, root)
        }
        None => (pieces::whole_tops(&syntax.whole, text.as_bytes()), (syntax.whole.root_node(), text.as_bytes())),
    };
    node_sites_and_findings(lang, builtin, &tops, root, reuse, keep, want_sites)
}

/// [`sites_and_findings`] of the file's top-level nodes `tops`, whose root is `root`: taken over
/// from `reuse` (the previous scan, the edit, the changed ranges) for the nodes the edit left
/// alone when what the file binds is unchanged, computed for the others.
fn node_sites_and_findings(
    lang: Lang,
    builtin: bool,
    tops: &[Top<'_>],
    (root, root_src): (tree_sitter::Node<'_>, &[u8]),
    reuse: Option<&Reuse>,
    keep: bool,
    want_sites: bool,
) -> (Vec<Site>, Vec<Finding>, Vec<ChildState>, Scope) {
    let old = unchanged(tops, reuse);
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
    // As many as last time, give or take the edit's.
    let mut all_findings = Vec::with_capacity(reuse.map_or(0, |(previous, _, _)| previous.children.iter().map(|c| c.findings.len()).sum()));
    let mut children = Vec::with_capacity(tops.len());
    for ((top, old), child_scope) in tops.iter().zip(old).zip(scopes) {
        let start = top.start();
        // Kept relative to the node's start, so that a node that moved is taken over as it is.
        let (sites, findings): (Arc<[Site]>, Arc<[Finding]>) = match old {
            Some(child) if same_scope => (child.sites.clone(), child.findings.clone()),
            _ => {
                let sites = sites::child_sites(lang, top.node, top.root, top.src, &scope);
                let findings = if builtin { builtin_findings(lang, &sites) } else { Vec::new() };
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

/// For each top-level node, the previous scan's node it is (unchanged, maybe moved): same kind,
/// no error, nothing changed in it.
fn unchanged<'r>(tops: &[Top<'_>], reuse: Option<&'r Reuse>) -> Vec<Option<&'r ChildState>> {
    tops.iter()
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
            (child.start == old_start && child.end == (end as isize - delta) as usize && child.kind == top.node.kind_id() && !child.error)
                .then_some(child)
        })
        .collect()
}

/// Frees `value` on a thread of its own. Freeing the previous scan's tree (the part of it the new
/// tree does not share: tree-sitter rebuilds the spine of a module after an edit) costs a tenth of
/// an incremental scan, which the caller need not wait for.
pub(crate) fn drop_elsewhere<T: Send + 'static>(value: T) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse::parse_with, CustomRule, RuleSet};

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
}
