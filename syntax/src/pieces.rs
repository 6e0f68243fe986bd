//! Parsing a text top-level item by item, for texts too large to hold as one tree (a tree is about
//! 27 times its text): [`item_starts`] finds where items may start with the lexer alone, and
//! [`parse_piece`] parses the text from one of them to a later one. The pieces' top-level
//! elements and errors, each moved to where its piece starts, are exactly those of a [`crate::parse`]
//! of the whole text ([`parse_by_items`] puts them together; tests compare).
//!
//! Why that holds: the parser's top level has no state but its position, and the tree builder
//! leaves the comments and whitespace between items at the top level, so a parse that starts
//! where an item starts goes on as the whole text's would. A piece that parses alone without
//! errors is taken as it is (the assumption [`crate::reparse`] makes of an edited item: that an
//! item which ends without error at the end of its text would end there before the next item's
//! first word too). A piece with errors may end differently in context (an unclosed `{` takes
//! everything after it), so it is parsed together with the next piece, and kept when the next
//! piece's part of that parse is its own error-free parse (all errors are then the first
//! piece's, found with the real text after it in view); else the rest of the text is parsed as
//! one piece, as it is one node of the whole text's tree.

use rowan::{GreenNode, NodeOrToken};

use crate::{grammar::ITEM_WORDS, lexer, Parse, SyntaxKind};

/// Where top-level items may start, after 0: the item words (`agent`, `policy`, …) first on their
/// line and outside any brackets, in order. Only a guess (brackets may be unbalanced, a word may
/// be a name): [`parse_piece`] checks.
pub fn item_starts(text: &str) -> Vec<usize> {
    let (tokens, _) = lexer::tokenize(text);
    let (mut starts, mut offset, mut depth, mut line_start) = (Vec::new(), 0usize, 0usize, true);
    for token in &tokens {
        let end = offset + token.len as usize;
        match token.kind {
            SyntaxKind::L_BRACE | SyntaxKind::L_BRACK | SyntaxKind::L_PAREN => depth += 1,
            SyntaxKind::R_BRACE | SyntaxKind::R_BRACK | SyntaxKind::R_PAREN => depth = depth.saturating_sub(1),
            SyntaxKind::IDENT if depth == 0 && line_start && offset > 0 && ITEM_WORDS.contains(&&text[offset..end]) => starts.push(offset),
            _ => {}
        }
        if token.kind.is_trivia() {
            line_start |= text[offset..end].contains('\n');
        } else {
            line_start = false;
        }
        offset = end;
    }
    starts
}

/// Parses the piece of `text` that starts at `from` (0 or one of [`item_starts`]), given the
/// starts after it (`next`, in order; an empty slice means the piece runs to the end). Returns
/// the piece's parse (ranges from `from`) and where it ends: `next[0]` when the text up to there
/// parses without errors, `next[1]` when it was parsed with the piece after it, else the end of
/// the text.
pub fn parse_piece(text: &str, from: usize, next: &[usize]) -> (Parse, usize) {
    let end = next.first().copied().unwrap_or(text.len());
    let alone = crate::parse(&text[from..end]);
    if alone.errors().is_empty() || end == text.len() {
        return (alone, end);
    }
    drop(alone);
    let after = next.get(1).copied().unwrap_or(text.len());
    let second = crate::parse(&text[end..after]);
    if second.errors().is_empty() {
        let pair = crate::parse(&text[from..after]);
        if ends_with(pair.green(), second.green(), end - from) {
            return (pair, after);
        }
    }
    (crate::parse(&text[from..]), text.len())
}

/// Whether `whole`'s top-level elements from offset `at` on are exactly `tail`'s.
fn ends_with(whole: &GreenNode, tail: &GreenNode, at: usize) -> bool {
    let mut offset = 0usize;
    let mut rest = whole.children().skip_while(|child| {
        let before = offset < at;
        offset += usize::from(child.text_len());
        before
    });
    // The element found must start at `at`, not merely span it.
    let starts_at =
        whole.children().try_fold(0usize, |start, child| if start >= at { Err(start) } else { Ok(start + usize::from(child.text_len())) });
    if starts_at.map_or_else(|start| start != at, |end| end != at) {
        return false;
    }
    rest.by_ref().eq(tail.children())
}

/// Parses `text` piece by piece, calling `each(start, parse)` for each piece in order; the
/// pieces' trees side by side are the text's tree. What a caller that cannot hold the whole tree
/// does, with each piece's tree let go after `each`.
pub fn parse_by_items(text: &str, mut each: impl FnMut(usize, Parse)) {
    let starts = item_starts(text);
    let mut from = 0usize;
    loop {
        let next = &starts[starts.partition_point(|&s| s <= from)..];
        let (parse, end) = parse_piece(text, from, next);
        each(from, parse);
        if end >= text.len() {
            return;
        }
        from = end;
    }
}

/// The whole text's parse, put together from its pieces (for tests: it must equal [`crate::parse`]).
pub fn parse_joined(text: &str) -> Parse {
    let (mut children, mut errors) = (Vec::new(), Vec::new());
    parse_by_items(text, |start, parse| {
        let by = rowan::TextSize::from(start as u32);
        errors.extend(parse.errors().iter().map(|e| crate::SyntaxError::new(e.message.clone(), e.range + by)));
        children.extend(parse.green().children().map(|c| match c {
            NodeOrToken::Node(n) => NodeOrToken::Node(n.to_owned()),
            NodeOrToken::Token(t) => NodeOrToken::Token(t.to_owned()),
        }));
    });
    Parse { green: GreenNode::new(SyntaxKind::SOURCE_FILE.into(), children), errors: errors.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(text: &str) {
        let (whole, joined) = (crate::parse(text), parse_joined(text));
        assert_eq!(joined.errors(), whole.errors(), "{text:?}");
        assert_eq!(joined.debug_tree(), whole.debug_tree(), "{text:?}");
    }

    const TEXT: &str = "// A file.\npolicy p extends baseline {\n    allow: [\"read\"]\n    deny: [\"spawn_process\"]\n}\n\n/* between */\ntype R = { id: String, notes: List<String> }\n\nagent a(t: String) -> R {\n    capabilities = [\"read\"]\n    policies = [p]\n    with memory = \"ephemeral\" {\n        let d = read(t);\n        return d;\n    }\n}\n\nschedule s {\n    cron: \"0 2 * * 1-5\"\n    agent: \"a\"\n}\n";

    #[test]
    fn pieces_start_at_item_words_first_on_their_line_outside_brackets() {
        let starts: Vec<&str> = item_starts(TEXT).into_iter().map(|s| &TEXT[s..s + 4]).collect();
        assert_eq!(starts, ["poli", "type", "agen", "sche"]);
    }

    #[test]
    fn pieces_put_together_are_the_whole_parse() {
        for text in [TEXT, "", "agent", "}\nagent a {\n", "agent a {\n}\n}\npolicy p {}\n", "type T =\nagent a() {}\n"] {
            same(text);
        }
        // Random edits, many of which leave errors.
        let inserts = ["}", "{", "agent", "policy q { allow: [\"x\"] }\n", "\n", "\"", "/*", "*/", "type", "\nmemory ", "(", ")"];
        let mut rng = symbiont_tests::XorShift::new(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let mut text = TEXT.repeat(1 + rng.below(3));
            for _ in 0..1 + rng.below(3) {
                let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
                let at = boundaries[rng.below(boundaries.len())];
                text.insert_str(at, inserts[rng.below(inserts.len())]);
            }
            same(&text);
        }
    }
}
