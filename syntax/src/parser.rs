//! The parser machinery: a cursor over significant tokens that records start/finish/token events,
//! and the builder that turns events plus trivia into a rowan green tree.
//!
//! The grammar itself lives in `grammar.rs`; this module knows nothing of the language.

use rowan::{GreenNode, GreenToken, NodeOrToken, TextRange, TextSize};

use crate::{
    lexer::Token,
    SyntaxError,
    SyntaxKind::{self, *},
};

/// Nesting deeper than this is reported and skipped flat, so that no input can exhaust the stack.
pub const MAX_DEPTH: u32 = 128;

#[derive(Debug)]
enum Event {
    Start { kind: SyntaxKind, forward_parent: Option<u32> },
    Finish,
    Token { kind: SyntaxKind },
}

const TOMBSTONE: SyntaxKind = SyntaxKind::__LAST;

pub(crate) struct Parser<'t> {
    text: &'t str,
    /// Significant (non-trivia) tokens: kind and byte range.
    tokens: Vec<(SyntaxKind, u32, u32)>,
    pos: usize,
    events: Vec<Event>,
    errors: Vec<SyntaxError>,
    pub(crate) depth: u32,
    /// Set once nesting overflowed, so the error is reported once per file.
    reported_depth: bool,
}

pub(crate) struct Marker {
    pos: u32,
}

#[derive(Clone, Copy)]
pub(crate) struct CompletedMarker {
    pos: u32,
    kind: SyntaxKind,
}

impl Marker {
    pub(crate) fn complete(self, p: &mut Parser<'_>, kind: SyntaxKind) -> CompletedMarker {
        match &mut p.events[self.pos as usize] {
            Event::Start { kind: slot, .. } => *slot = kind,
            _ => unreachable!("a marker always points at a start event"),
        }
        p.events.push(Event::Finish);
        CompletedMarker { pos: self.pos, kind }
    }

    pub(crate) fn abandon(self, p: &mut Parser<'_>) {
        if self.pos as usize == p.events.len() - 1 {
            p.events.pop();
        }
        // Otherwise the start event stays a tombstone, which the builder skips.
    }
}

impl CompletedMarker {
    /// Starts a node that will wrap this one (for left-recursive forms such as `a + b`).
    pub(crate) fn precede(self, p: &mut Parser<'_>) -> Marker {
        let new = p.start();
        match &mut p.events[self.pos as usize] {
            Event::Start { forward_parent, .. } => *forward_parent = Some(new.pos - self.pos),
            _ => unreachable!(),
        }
        new
    }

    pub(crate) fn kind(self) -> SyntaxKind {
        self.kind
    }
}

impl<'t> Parser<'t> {
    pub(crate) fn new(text: &'t str, raw: &[Token]) -> Self {
        let mut tokens = Vec::with_capacity(raw.len() / 2 + 1);
        let mut offset = 0u32;
        for token in raw {
            if !token.kind.is_trivia() {
                tokens.push((token.kind, offset, offset + token.len));
            }
            offset += token.len;
        }
        Parser { text, tokens, pos: 0, events: Vec::with_capacity(raw.len()), errors: Vec::new(), depth: 0, reported_depth: false }
    }

    pub(crate) fn start(&mut self) -> Marker {
        let pos = self.events.len() as u32;
        self.events.push(Event::Start { kind: TOMBSTONE, forward_parent: None });
        Marker { pos }
    }

    pub(crate) fn nth(&self, n: usize) -> SyntaxKind {
        self.tokens.get(self.pos + n).map_or(EOF, |t| t.0)
    }

    pub(crate) fn current(&self) -> SyntaxKind {
        self.nth(0)
    }

    pub(crate) fn at(&self, kind: SyntaxKind) -> bool {
        self.current() == kind
    }

    pub(crate) fn at_eof(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    pub(crate) fn nth_text(&self, n: usize) -> &'t str {
        match self.tokens.get(self.pos + n) {
            Some(&(_, start, end)) => &self.text[start as usize..end as usize],
            None => "",
        }
    }

    /// Whether the current token is the word `kw` (keywords are contextual: the lexer makes words).
    pub(crate) fn at_word(&self, kw: &str) -> bool {
        self.at(IDENT) && self.nth_text(0) == kw
    }

    /// Whether a line break separates the current token from the previous one.
    pub(crate) fn newline_before(&self) -> bool {
        if self.pos == 0 || self.pos >= self.tokens.len() {
            return true;
        }
        let prev_end = self.tokens[self.pos - 1].2 as usize;
        let start = self.tokens[self.pos].1 as usize;
        self.text.as_bytes()[prev_end..start].contains(&b'\n')
    }

    pub(crate) fn bump(&mut self) {
        let kind = self.current();
        self.bump_as(kind);
    }

    pub(crate) fn bump_as(&mut self, kind: SyntaxKind) {
        if self.at_eof() {
            return;
        }
        self.pos += 1;
        self.events.push(Event::Token { kind });
    }

    /// Consumes the current word as the keyword `kind`.
    pub(crate) fn bump_kw(&mut self, kind: SyntaxKind) {
        self.bump_as(kind);
    }

    pub(crate) fn eat(&mut self, kind: SyntaxKind) -> bool {
        if self.at(kind) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// Range to blame for a missing token: the current token, or the end of the previous one when
    /// the current token sits on a later line (a missing `}` is reported where it was due).
    fn blame_range(&self) -> TextRange {
        if self.pos > 0 && (self.at_eof() || self.newline_before()) {
            let end = TextSize::from(self.tokens[self.pos - 1].2);
            return TextRange::empty(end);
        }
        self.current_range()
    }

    pub(crate) fn current_range(&self) -> TextRange {
        match self.tokens.get(self.pos) {
            Some(&(_, start, end)) => TextRange::new(start.into(), end.into()),
            None => TextRange::empty(TextSize::of(self.text)),
        }
    }

    pub(crate) fn found(&self) -> String {
        match self.current() {
            EOF => "end of file".to_string(),
            STRING => "a string".to_string(),
            _ => {
                let text = self.nth_text(0);
                format!("`{}`", text.chars().take(40).collect::<String>())
            }
        }
    }

    pub(crate) fn error(&mut self, message: impl Into<String>) {
        let range = self.blame_range();
        self.errors.push(SyntaxError::new(message.into(), range));
    }

    pub(crate) fn error_at(&mut self, range: TextRange, message: impl Into<String>) {
        self.errors.push(SyntaxError::new(message.into(), range));
    }

    /// Expects `kind`; reports `expected {kind} {context}, found …` when absent.
    pub(crate) fn expect(&mut self, kind: SyntaxKind, context: &str) -> bool {
        if self.eat(kind) {
            return true;
        }
        let message = format!("expected {} {context}, found {}", kind.describe(), self.found());
        self.error(message);
        false
    }

    /// Wraps the current token in an `ERROR` node after reporting `message`.
    pub(crate) fn err_and_bump(&mut self, message: impl Into<String>) {
        let range = self.current_range();
        self.error_at(range, message);
        if !self.at_eof() {
            let m = self.start();
            self.bump_balanced();
            m.complete(self, ERROR);
        }
    }

    /// Reports `message` at the current token and wraps the rest of its line (bracketed groups
    /// whole) in one `ERROR` node: one error per broken line instead of one per token.
    pub(crate) fn err_recover_line(&mut self, message: impl Into<String>) {
        let range = self.current_range();
        self.error_at(range, message);
        let m = self.start();
        self.bump_balanced();
        while !self.at_eof() && !self.at(R_BRACE) && !self.newline_before() {
            self.bump_balanced();
        }
        m.complete(self, ERROR);
    }

    /// Consumes one token, or a whole bracketed group when at an opening bracket, flat.
    pub(crate) fn bump_balanced(&mut self) {
        let mut depth = 0usize;
        loop {
            match self.current() {
                L_BRACE | L_PAREN | L_BRACK => depth += 1,
                R_BRACE | R_PAREN | R_BRACK => depth = depth.saturating_sub(1),
                EOF => return,
                _ => {}
            }
            self.bump();
            if depth == 0 {
                return;
            }
        }
    }

    /// Enters one level of nesting, or reports the overflow, skips the group flat and returns false.
    pub(crate) fn enter(&mut self) -> bool {
        if self.depth < MAX_DEPTH {
            self.depth += 1;
            return true;
        }
        if !self.reported_depth {
            self.reported_depth = true;
            let range = self.current_range();
            self.error_at(range, format!("nesting is deeper than {MAX_DEPTH} levels; the rest of this group is not analysed"));
        }
        // Skip the rest of the enclosing group flat; the closer itself is left to the caller.
        let m = self.start();
        while !matches!(self.current(), R_BRACE | R_PAREN | R_BRACK | SEMI | EOF) {
            self.bump_balanced();
        }
        m.complete(self, ERROR);
        false
    }

    pub(crate) fn leave(&mut self) {
        self.depth -= 1;
    }

    pub(crate) fn finish(self, raw: &[Token]) -> (GreenNode, Vec<SyntaxError>) {
        let Parser { text, mut events, errors, .. } = self;
        let mut builder = TreeBuilder::default();
        let mut raw_pos = 0usize;
        let mut offset = 0usize;
        let mut open_nodes = 0usize;
        let mut forward_parents = Vec::new();

        let emit_trivia = |builder: &mut TreeBuilder, raw_pos: &mut usize, offset: &mut usize| {
            while let Some(token) = raw.get(*raw_pos) {
                if !token.kind.is_trivia() {
                    break;
                }
                let end = *offset + token.len as usize;
                builder.token(token.kind.into(), &text[*offset..end]);
                *offset = end;
                *raw_pos += 1;
            }
        };

        for i in 0..events.len() {
            match std::mem::replace(&mut events[i], Event::Start { kind: TOMBSTONE, forward_parent: None }) {
                Event::Start { kind, forward_parent } => {
                    if kind == TOMBSTONE && forward_parent.is_none() {
                        continue;
                    }
                    forward_parents.clear();
                    forward_parents.push(kind);
                    let mut idx = i;
                    let mut fp = forward_parent;
                    while let Some(delta) = fp {
                        idx += delta as usize;
                        fp = match std::mem::replace(&mut events[idx], Event::Start { kind: TOMBSTONE, forward_parent: None }) {
                            Event::Start { kind, forward_parent } => {
                                forward_parents.push(kind);
                                forward_parent
                            }
                            _ => unreachable!(),
                        };
                    }
                    for &kind in forward_parents.iter().rev() {
                        if kind == TOMBSTONE {
                            continue;
                        }
                        if open_nodes > 0 {
                            emit_trivia(&mut builder, &mut raw_pos, &mut offset);
                        }
                        builder.start_node(kind.into());
                        open_nodes += 1;
                    }
                }
                Event::Finish => {
                    if open_nodes == 1 {
                        emit_trivia(&mut builder, &mut raw_pos, &mut offset);
                        // Anything left (only possible after EOF handling) belongs to the root.
                        while let Some(token) = raw.get(raw_pos) {
                            let end = offset + token.len as usize;
                            builder.token(token.kind.into(), &text[offset..end]);
                            offset = end;
                            raw_pos += 1;
                        }
                    }
                    builder.finish_node();
                    open_nodes -= 1;
                }
                Event::Token { kind } => {
                    emit_trivia(&mut builder, &mut raw_pos, &mut offset);
                    let token = raw[raw_pos];
                    let end = offset + token.len as usize;
                    builder.token(kind.into(), &text[offset..end]);
                    offset = end;
                    raw_pos += 1;
                }
            }
        }
        (builder.finish(), errors)
    }
}

/// Builds green nodes directly. rowan's `GreenNodeBuilder` interns every token and small node in
/// a hash table to share identical subtrees; that hashing was a fifth of parse time, and the
/// sharing saves little now that the analysis drops trees after one use.
#[derive(Default)]
struct TreeBuilder {
    /// Open nodes: kind and where their children start in `children`.
    parents: Vec<(rowan::SyntaxKind, usize)>,
    children: Vec<NodeOrToken<GreenNode, GreenToken>>,
}

impl TreeBuilder {
    fn start_node(&mut self, kind: rowan::SyntaxKind) {
        self.parents.push((kind, self.children.len()));
    }

    fn token(&mut self, kind: rowan::SyntaxKind, text: &str) {
        self.children.push(NodeOrToken::Token(GreenToken::new(kind, text)));
    }

    fn finish_node(&mut self) {
        let (kind, first) = self.parents.pop().expect("finish_node matches a start_node");
        let node = GreenNode::new(kind, self.children.drain(first..));
        self.children.push(NodeOrToken::Node(node));
    }

    fn finish(mut self) -> GreenNode {
        match self.children.pop() {
            Some(NodeOrToken::Node(root)) if self.children.is_empty() && self.parents.is_empty() => root,
            _ => unreachable!("the events describe exactly one root node"),
        }
    }
}
