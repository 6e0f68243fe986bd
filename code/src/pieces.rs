//! Python modules parsed in pieces: after an edit, only the run of top-level statements the edit
//! touched is parsed again, as a module of its own; every other top-level node stays the node of
//! whichever parse made it.
//!
//! Why: `tree-sitter-python` cannot reuse a module-level `function_definition` whole, so its
//! incremental re-parse of a module rebuilds the module's spine and re-lexes the start of every
//! later function (2–3 ms for a 5,000-line file), and when an edit leaves a statement after a
//! blank line between two functions its external scanner's state no longer matches at the next
//! reusable node and it parses everything after the edit afresh (16–20 ms). A piece is a few
//! statements: tens of microseconds.
//!
//! Why the pieces are the parse of the whole file: split a module at the start of a top-level
//! statement (column 0). When the part before the split parses without an error on its own, it
//! closes every bracket, string and block it opens and ends its last line, so at the split the
//! parser is where it is at the start of a file, and the parse of the whole is the parses of the
//! parts side by side. A part with an error may be continued by what follows (an open bracket
//! swallows the rest of the file), so a piece with an error is never kept: the caller parses the
//! whole file then. Every piece is free of errors, so the file is too.

use std::sync::Arc;

use tree_sitter::{Node, Tree};

use crate::{
    lang::Lang,
    parse::{parse_with, Difference},
};

/// A tree and the text it was parsed from.
pub(crate) struct Parsed {
    pub tree: Tree,
    pub text: Arc<str>,
}

/// `count` consecutive top-level nodes (named children of the root) of one parse, the first
/// starting at byte `from` of its text, which are `delta` bytes further in the file than in the
/// text they were parsed from.
#[derive(Clone)]
pub(crate) struct Piece {
    parsed: Arc<Parsed>,
    from: usize,
    count: usize,
    delta: isize,
}

impl Piece {
    /// All the top-level nodes of `tree`, parsed from `text`, `delta` bytes into the file.
    pub fn whole(tree: Tree, text: Arc<str>, delta: isize) -> Piece {
        let count = tree.root_node().named_child_count();
        Piece { parsed: Arc::new(Parsed { tree, text }), from: 0, count, delta }
    }
}

/// A top-level node of a file, with what reading it needs: its root, the text its offsets are
/// into, and how far the node is from there in the file.
#[derive(Clone, Copy)]
pub(crate) struct Top<'p> {
    pub node: Node<'p>,
    pub root: Node<'p>,
    pub src: &'p [u8],
    pub delta: isize,
}

impl Top<'_> {
    /// Where the node starts and ends in the file.
    pub fn start(&self) -> usize {
        (self.node.start_byte() as isize + self.delta) as usize
    }

    pub fn end(&self) -> usize {
        (self.node.end_byte() as isize + self.delta) as usize
    }
}

/// The top-level nodes of `tree`, the parse of a whole file's text `src`.
pub(crate) fn whole_tops<'t>(tree: &'t Tree, src: &'t [u8]) -> Vec<Top<'t>> {
    let root = tree.root_node();
    let mut cursor = root.walk();
    root.named_children(&mut cursor).map(|node| Top { node, root, src, delta: 0 }).collect()
}

/// The file's top-level nodes in order.
pub(crate) fn tops(pieces: &[Piece]) -> Vec<Top<'_>> {
    let mut tops = Vec::with_capacity(pieces.iter().map(|p| p.count).sum());
    for piece in pieces {
        let root = piece.parsed.tree.root_node();
        let src = piece.parsed.text.as_bytes();
        let mut cursor = root.walk();
        // A module's children hang from a balanced tree of hidden nodes: the cursor finds the
        // piece's first one in logarithmic time, where counting children from the first would
        // make a file split into many pieces of one parse quadratic.
        if piece.count == 0 || cursor.goto_first_child_for_byte(piece.from).is_none() {
            continue;
        }
        let mut left = piece.count;
        loop {
            let node = cursor.node();
            if node.is_named() && node.start_byte() >= piece.from {
                tops.push(Top { node, root, src, delta: piece.delta });
                left -= 1;
                if left == 0 {
                    break;
                }
            }
            if !cursor.goto_next_sibling() {
                break;
            }
        }
        debug_assert_eq!(left, 0, "a piece's nodes are all in its tree");
    }
    tops
}

/// Pieces of a file after an edit, and the part of the new text parsed again.
pub(crate) struct Reparsed {
    pub pieces: Vec<Piece>,
    pub region: (usize, usize),
}

/// Under this size a file's region is parsed as a piece however much of the file it is; over it,
/// a region of more than a quarter of the file is better left to an incremental parse of the
/// whole (a file that is one big class, say).
const SMALL_FILE: usize = 16 << 10;

/// The pieces of `after`, an `edit` of `before` whose pieces are `pieces`: the top-level nodes
/// the edit touched (with the ones beside an insertion between them) parsed again as one piece.
/// `None` when that piece has an error or is too big: then the whole file must be parsed.
pub(crate) fn reparse(lang: Lang, pieces: &[Piece], before: &str, after: &str, edit: Difference) -> Option<Reparsed> {
    let tops = tops(pieces);
    // The file split at the top-level statements that start a line: (where each part starts, the
    // index of its first top-level node). A statement after another on the same line (`import a;
    // import b`) stays with it, and so does a comment: a comment line says nothing of indentation
    // (`def f():` / `# c` / `    return 1`: the comment at column 0 is inside `f`). The first
    // part starts at the start of the file.
    let mut parts: Vec<(usize, usize)> = vec![(0, 0)];
    for (i, top) in tops.iter().enumerate().skip(1) {
        let start = top.start();
        if !top.node.is_extra() && start > parts[parts.len() - 1].0 && before.as_bytes().get(start - 1) == Some(&b'\n') {
            parts.push((start, i));
        }
    }
    let part_end = |i: usize| parts.get(i + 1).map_or(before.len(), |p| p.0);
    // The parts the edit touches, ends included: an insertion between two parts takes both.
    let first = (0..parts.len()).find(|&i| edit.start <= part_end(i))?;
    let last = (first..parts.len()).take_while(|&i| parts[i].0 <= edit.old_end).last()?;
    let (start, old_end) = (parts[first].0, part_end(last));
    let new_end = (old_end as isize + edit.new_end as isize - edit.old_end as isize) as usize;
    if after.len() > SMALL_FILE && (new_end - start) * 4 > after.len() {
        return None;
    }
    let text: Arc<str> = after.get(start..new_end)?.into();
    let tree = parse_with(lang, &text, None)?;
    if tree.root_node().has_error() {
        return None;
    }
    let (replaced_from, replaced_to) = (parts[first].1, parts.get(last + 1).map_or(tops.len(), |p| p.1));
    let shift = edit.new_end as isize - edit.old_end as isize;
    let mut new_pieces = Vec::with_capacity(pieces.len() + 2);
    let mut replacement = Some(Piece::whole(tree, text, start as isize));
    let mut index = 0;
    for piece in pieces {
        let (lo, hi) = (index, index + piece.count);
        index = hi;
        // The part of this piece before the re-parsed nodes, as it was.
        if lo < replaced_from {
            new_pieces.push(Piece { count: hi.min(replaced_from) - lo, ..piece.clone() });
        }
        if hi >= replaced_from {
            new_pieces.extend(replacement.take().filter(|p| p.count > 0));
        }
        // The part after them, moved by the edit.
        if hi > replaced_to {
            let first = replaced_to.max(lo);
            new_pieces.push(Piece { from: tops[first].node.start_byte(), count: hi - first, delta: piece.delta + shift, ..piece.clone() });
        }
    }
    new_pieces.extend(replacement.filter(|p| p.count > 0));
    Some(Reparsed { pieces: new_pieces, region: (start, new_end) })
}
