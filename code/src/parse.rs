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
    Some((tree, Difference { start: prefix, old_end, new_end }))
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
