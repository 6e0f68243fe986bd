//! Re-parsing after an edit, reusing the tree of the text before it (as rust-analyzer's
//! `reparsing.rs` does): an edit inside one top-level item re-parses that item's text alone, and
//! an edit inside the comments and whitespace between items re-lexes them alone; the rest of the
//! green tree is shared with the old one. The result is always the tree and the errors a fresh
//! [`crate::parse`] of the new text gives; whenever that cannot be guaranteed cheaply (the old
//! text had syntax errors, the edit crosses an item's boundary, the item no longer parses on its
//! own as one item of the same kind), the whole text is parsed again.

use rowan::{GreenNode, GreenToken, NodeOrToken, TextRange, TextSize};

use crate::{lexer, Parse, SyntaxNode};

/// Parses `new_text`, an edit of `old_text` whose parse is `old`.
pub fn reparse(old: &Parse, old_text: &str, new_text: &str) -> Parse {
    incremental(old, old_text, new_text).unwrap_or_else(|| crate::parse(new_text))
}

/// Where two texts differ: from the first differing byte to the last, in the old text
/// (`start..old_end`) and in the new one (`start..new_end`).
fn edit(old_text: &str, new_text: &str) -> (usize, usize, usize) {
    let (b, a) = (old_text.as_bytes(), new_text.as_bytes());
    let prefix = b.iter().zip(a).take_while(|(x, y)| x == y).count();
    let max_suffix = b.len().min(a.len()) - prefix;
    let suffix = b.iter().rev().zip(a.iter().rev()).take(max_suffix).take_while(|(x, y)| x == y).count();
    (prefix, b.len() - suffix, a.len() - suffix)
}

fn incremental(old: &Parse, old_text: &str, new_text: &str) -> Option<Parse> {
    if !old.errors().is_empty() || usize::from(old.syntax().text_range().end()) != old_text.len() {
        return None;
    }
    let (start, old_end, new_end) = edit(old_text, new_text);
    if start == old_end && start == new_end {
        return Some(old.clone());
    }
    let root = old.syntax();
    let children: Vec<_> = root.children_with_tokens().collect();
    let at = |i: usize| -> (usize, usize) {
        let range = children[i].text_range();
        (range.start().into(), range.end().into())
    };
    // The top-level element the edit starts in (or, at a boundary, the one it starts).
    let mut first = children.partition_point(|c| usize::from(c.text_range().end()) <= start).min(children.len().checked_sub(1)?);
    // At the boundary between comments or whitespace and an item, the edit belongs to the former.
    if first > 0 && at(first).0 == start && children[first - 1].as_token().is_some_and(|t| t.kind().is_trivia()) {
        first -= 1;
    }
    match &children[first] {
        NodeOrToken::Node(item) => {
            let (item_start, item_end) = at(first);
            // Strictly inside: the item's first and last characters are left alone.
            if !(item_start < start && old_end < item_end) {
                return None;
            }
            let text = new_text.get(item_start..item_end + new_end - old_end)?;
            let sub = crate::parse(text);
            if !sub.errors().is_empty() {
                return None;
            }
            let mut parts = sub.green().children();
            let (Some(NodeOrToken::Node(node)), None) = (parts.next(), parts.next()) else { return None };
            if SyntaxNode::new_root(node.to_owned()).kind() != item.kind() {
                return None;
            }
            let green = old.green().replace_child(first, NodeOrToken::Node(node.to_owned()));
            Some(Parse { green, errors: Vec::new().into() })
        }
        NodeOrToken::Token(_) => {
            // The run of comments and whitespace between two items holding the whole edit.
            let is_trivia = |i: usize| children[i].as_token().is_some_and(|t| t.kind().is_trivia());
            if !is_trivia(first) {
                return None;
            }
            let mut last = first;
            while last + 1 < children.len() && is_trivia(last + 1) && at(last).1 < old_end {
                last += 1;
            }
            if old_end > at(last).1 {
                return None;
            }
            // Lexed with the tokens on either side, which must come out unchanged: the new text
            // must not merge with them.
            let before = first.checked_sub(1).map(|i| last_token_range(&children[i]));
            let after = children.get(last + 1).map(first_token_range);
            let lex_start = before.map_or(at(first).0, |r| r.start().into());
            let lex_end = after.map_or(at(last).1, |r| r.end().into());
            let text = new_text.get(lex_start..lex_end + new_end - old_end)?;
            let (tokens, errors) = lexer::tokenize(text);
            if !errors.is_empty() {
                return None;
            }
            let mut tokens = &tokens[..];
            if let Some(range) = before {
                let (first_token, rest) = tokens.split_first()?;
                if TextSize::from(first_token.len) != range.len() {
                    return None;
                }
                tokens = rest;
            }
            if let Some(range) = after {
                let (last_token, rest) = tokens.split_last()?;
                if TextSize::from(last_token.len) != range.len() {
                    return None;
                }
                tokens = rest;
            }
            if tokens.is_empty() || !tokens.iter().all(|t| t.kind.is_trivia()) {
                return None;
            }
            let mut offset = at(first).0;
            let mut new_tokens = Vec::with_capacity(tokens.len());
            for token in tokens {
                let end = offset + token.len as usize;
                new_tokens.push(NodeOrToken::Token(GreenToken::new(token.kind.into(), new_text.get(offset..end)?)));
                offset = end;
            }
            let green: GreenNode = old.green().splice_children(first..=last, new_tokens);
            Some(Parse { green, errors: Vec::new().into() })
        }
    }
}

fn first_token_range(element: &rowan::NodeOrToken<SyntaxNode, crate::SyntaxToken>) -> TextRange {
    match element {
        NodeOrToken::Node(node) => node.first_token().map_or(node.text_range(), |t| t.text_range()),
        NodeOrToken::Token(token) => token.text_range(),
    }
}

fn last_token_range(element: &rowan::NodeOrToken<SyntaxNode, crate::SyntaxToken>) -> TextRange {
    match element {
        NodeOrToken::Node(node) => node.last_token().map_or(node.text_range(), |t| t.text_range()),
        NodeOrToken::Token(token) => token.text_range(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "// A file.\npolicy p extends baseline {\n    allow: [\"read\"]\n    deny: [\"spawn_process\"]\n}\n\n/* between */\ntype R = { id: String, notes: List<String> }\n\nagent a(t: String) -> R {\n    capabilities = [\"read\"]\n    policies = [p]\n    with memory = \"ephemeral\" {\n        let d = read(t);\n        return d;\n    }\n}\n\nschedule s {\n    cron: \"0 2 * * 1-5\"\n    agent: \"a\"\n}\n";

    /// Whether the edit was re-parsed incrementally.
    fn check(old_text: &str, new_text: &str) -> bool {
        let old = crate::parse(old_text);
        let fresh = crate::parse(new_text);
        let reused = incremental(&old, old_text, new_text);
        let took_over = reused.is_some();
        let incremental = reused.unwrap_or_else(|| crate::parse(new_text));
        assert_eq!(incremental.debug_tree(), fresh.debug_tree(), "{old_text:?} -> {new_text:?}");
        assert_eq!(incremental.errors(), fresh.errors(), "{old_text:?} -> {new_text:?}");
        assert_eq!(incremental, fresh);
        took_over
    }

    #[test]
    fn reparsing_gives_a_fresh_parse() {
        let inserts = [
            "// edited\n",
            "\n",
            " ",
            "/*",
            "*/",
            "\"",
            "}",
            "{",
            "agent",
            "policy q { allow: [\"x\"] }\n",
            "x",
            "#",
            "// c",
            "[",
            "1s",
            "é",
            "// 𝄞 漢\n",
            "\"è\"",
        ];
        let mut rng = symbiont_tests::XorShift::new(0x2545_f491_4f6c_dd1d);
        let mut next = move |n: usize| rng.below(n);
        let (mut edits, mut incremental) = (0, 0);
        for _ in 0..3000 {
            let mut text = TEXT.to_string();
            // One to three edits in a row, each checked against a fresh parse.
            for _ in 0..1 + next(3) {
                let before = text.clone();
                let line_starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
                let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
                let at = if next(2) == 0 { line_starts[next(line_starts.len())] } else { boundaries[next(boundaries.len())] };
                if next(3) == 0 && at < text.len() {
                    let end = boundaries[(boundaries.partition_point(|b| *b <= at) + next(8)).min(boundaries.len() - 1)];
                    text.replace_range(at..end, "");
                } else {
                    text.insert_str(at, inserts[next(inserts.len())]);
                }
                edits += 1;
                incremental += usize::from(check(&before, &text));
            }
        }
        // Many of these edits leave errors (then the edit after them is parsed afresh).
        assert!(incremental * 6 > edits, "{incremental} of {edits} edits re-parsed incrementally");
    }

    #[test]
    fn a_comment_line_anywhere_is_reparsed_incrementally() {
        for (at, _) in std::iter::once((0, "")).chain(TEXT.match_indices('\n').map(|(i, s)| (i + 1, s))) {
            let new_text = format!("{}// edited\n{}", &TEXT[..at], &TEXT[at..]);
            assert!(check(TEXT, &new_text), "at {at}: {new_text}");
            assert!(check(&new_text, TEXT), "deleting at {at}: {new_text}");
        }
    }

    #[test]
    fn an_edit_inside_an_item_shares_the_other_items() {
        let old = crate::parse(TEXT);
        let at = TEXT.find("let d").unwrap();
        let new_text = format!("{}// edited\n        {}", &TEXT[..at], &TEXT[at..]);
        let new = reparse(&old, TEXT, &new_text);
        assert_eq!(new, crate::parse(&new_text));
        let (old_root, new_root) = (old.green(), new.green());
        let shared = old_root.children().zip(new_root.children()).filter(|(a, b)| match (a, b) {
            (NodeOrToken::Node(a), NodeOrToken::Node(b)) => std::ptr::eq(*a, *b),
            _ => false,
        });
        // The policy, the type and the schedule are the old nodes themselves.
        assert_eq!(shared.count(), 3);
    }
}
