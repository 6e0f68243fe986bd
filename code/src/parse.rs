//! Parsing with tree-sitter: a parser per thread and language, the last parse kept for the fixes
//! that parse the same text again, incremental re-parsing after an edit, and where a tree's first
//! syntax error is.

use std::{cell::RefCell, collections::HashMap};

use crate::lang::Lang;

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

/// Lets go of this thread's last parse when it is of `text`: once a scan has found nothing, no fix
/// will parse its file again, and the tree (several times the text's size) and the copy of the
/// text would otherwise stay resident until the thread's next parse.
pub(crate) fn forget(text: &str) {
    LAST_PARSE.with(|last| {
        let mut last = last.borrow_mut();
        if last.as_ref().is_some_and(|(_, t, _)| **t == *text) {
            *last = None;
        }
    });
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
pub(crate) struct Difference {
    pub start: usize,
    pub old_end: usize,
    pub new_end: usize,
}

/// [`reparse`], also returning `old` as edited (what `Tree::changed_ranges` compares the new tree
/// with) and the edit.
fn reparse_edit(
    lang: Lang,
    old: &tree_sitter::Tree,
    before: &str,
    after: &str,
) -> Option<(tree_sitter::Tree, tree_sitter::Tree, Difference)> {
    let (tree, edit) = edit_tree(old, before, after)?;
    let new = parse_with(lang, after, Some(&tree))?;
    Some((tree, new, edit))
}

/// A copy of `old`, the tree of `before`, edited (`Tree::edit`) to match `after`, and the edit.
/// `None` when `after` is too large to parse.
pub(crate) fn edit_tree(old: &tree_sitter::Tree, before: &str, after: &str) -> Option<(tree_sitter::Tree, Difference)> {
    if after.len() > MAX_PARSE_BYTES {
        return None;
    }
    // The longest common suffix first: an inserted line then starts at the newline that ends the
    // line before (`…\n` + `# comment\n` + `code` is `…` + `\n# comment` + `\ncode`), which
    // lets tree-sitter reuse far more of Python's tree than an edit inside the indentation.
    let (b, a) = (before.as_bytes(), after.as_bytes());
    let suffix = common_suffix(b, a);
    let max_prefix = b.len().min(a.len()) - suffix;
    let prefix = common_prefix(&b[..max_prefix], &a[..max_prefix]);
    let (old_end, new_end) = (b.len() - suffix, a.len() - suffix);
    // The texts agree up to `prefix`: its lines are counted once, and only the edited bytes after.
    let start_position = point(b, 0, tree_sitter::Point { row: 0, column: 0 }, prefix);
    let mut tree = old.clone();
    tree.edit(&tree_sitter::InputEdit {
        start_byte: prefix,
        old_end_byte: old_end,
        new_end_byte: new_end,
        start_position,
        old_end_position: point(b, prefix, start_position, old_end),
        new_end_position: point(a, prefix, start_position, new_end),
    });
    Some((tree, Difference { start: prefix, old_end, new_end }))
}

/// The row and column of byte `at` of `text`, counting from byte `from`, whose position is `at_from`.
fn point(text: &[u8], from: usize, at_from: tree_sitter::Point, at: usize) -> tree_sitter::Point {
    let span = &text[from..at];
    let rows = span.iter().filter(|c| **c == b'\n').count();
    match span.iter().rposition(|c| *c == b'\n') {
        Some(i) => tree_sitter::Point { row: at_from.row + rows, column: span.len() - i - 1 },
        None => tree_sitter::Point { row: at_from.row, column: at_from.column + span.len() },
    }
}

/// Compared a block at a time (one `memcmp` each), then byte by byte in the block that differs:
/// the two ends of a 200 KB file after a one-line edit are found in microseconds.
const BLOCK: usize = 64;

/// How many bytes `a` and `b` have in common at their start.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + BLOCK <= n && a[i..i + BLOCK] == b[i..i + BLOCK] {
        i += BLOCK;
    }
    i + a[i..n].iter().zip(&b[i..n]).take_while(|(x, y)| x == y).count()
}

/// How many bytes `a` and `b` have in common at their end.
fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + BLOCK <= n && a[a.len() - i - BLOCK..a.len() - i] == b[b.len() - i - BLOCK..b.len() - i] {
        i += BLOCK;
    }
    i + a[..a.len() - i].iter().rev().zip(b[..b.len() - i].iter().rev()).take_while(|(x, y)| x == y).count()
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

/// The first syntax error of a tree in text order: an `ERROR` node or a missing token.
/// Iterative: it descends only into children that contain an error.
pub(crate) fn first_error(tree: &tree_sitter::Tree) -> Option<(usize, usize)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The ends of the difference and their rows and columns, found a block at a time, are what a
    /// byte-by-byte count finds: edits at either end, inside a block and across blocks' edges,
    /// with and without line breaks.
    #[test]
    fn differences_are_found_as_byte_by_byte() {
        let naive = |b: &[u8], a: &[u8]| {
            let suffix = b.iter().rev().zip(a.iter().rev()).take_while(|(x, y)| x == y).count();
            let max_prefix = b.len().min(a.len()) - suffix;
            let prefix = b.iter().zip(a).take(max_prefix).take_while(|(x, y)| x == y).count();
            let point = |text: &[u8], at: usize| {
                let row = text[..at].iter().filter(|c| **c == b'\n').count();
                let line_start = text[..at].iter().rposition(|c| *c == b'\n').map_or(0, |i| i + 1);
                (row, at - line_start)
            };
            let (old_end, new_end) = (b.len() - suffix, a.len() - suffix);
            (prefix, old_end, new_end, point(b, prefix), point(b, old_end), point(a, new_end))
        };
        let base: String = (0..400).map(|i| if i % 37 == 36 { '\n' } else { char::from(b'a' + (i % 26) as u8) }).collect();
        let mut rng = symbiont_tests::XorShift::new(7);
        let tree = parse_with(Lang::Python, &base, None).unwrap();
        for _ in 0..2000 {
            let at = rng.below(base.len() + 1);
            let end = (at + rng.below(80)).min(base.len());
            let insert = ["", "x", "\n", "ab\ncd\n", &base[..rng.below(130)]][rng.below(5)];
            let after = format!("{}{insert}{}", &base[..at], &base[end..]);
            let (_, found) = edit_tree(&tree, &base, &after).unwrap();
            let (prefix, old_end, new_end, start, old_end_at, new_end_at) = naive(base.as_bytes(), after.as_bytes());
            assert_eq!((found.start, found.old_end, found.new_end), (prefix, old_end, new_end), "{at} {end} {insert:?}");
            let zero = tree_sitter::Point { row: 0, column: 0 };
            let start_point = point(base.as_bytes(), 0, zero, prefix);
            assert_eq!((start_point.row, start_point.column), start);
            let old_point = point(base.as_bytes(), prefix, start_point, old_end);
            assert_eq!((old_point.row, old_point.column), old_end_at);
            let new_point = point(after.as_bytes(), prefix, start_point, new_end);
            assert_eq!((new_point.row, new_point.column), new_end_at);
        }
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

    #[test]
    fn forgetting_the_last_parse_lets_go_of_its_tree_only_for_that_text() {
        let text = "x = 1\n";
        parse(Lang::Python, text).unwrap();
        forget("y = 2\n");
        assert!(LAST_PARSE.with(|last| last.borrow().is_some()));
        forget(text);
        assert!(LAST_PARSE.with(|last| last.borrow().is_none()));
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
