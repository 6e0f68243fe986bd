//! `symbiont-syntax`: the `.sym` language's lexer, parser, lossless rowan tree, typed AST and
//! formatter.
//!
//! Parsing never fails: [`parse`] returns a tree whose text equals the input byte for byte,
//! together with every syntax error found. This crate never panics on any input, never does I/O,
//! and knows nothing of salsa, LSP or the runtime.

pub mod ast;
pub mod format;
mod grammar;
pub mod lexer;
mod line_index;
mod parser;
pub mod pieces;
pub mod quantity;
mod reparse;
pub mod suggest;
mod syntax_kind;

use std::sync::Arc;

pub use rowan::{TextRange, TextSize};
pub use syntax_kind::{SymLanguage, SyntaxElement, SyntaxKind, SyntaxNode, SyntaxToken};

pub use grammar::RULE_KINDS;
pub use line_index::{LineCol, LineIndex};
pub use parser::MAX_DEPTH;
pub use reparse::reparse;

/// A syntax error: where, and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SyntaxError {
    pub message: String,
    pub range: TextRange,
}

impl SyntaxError {
    pub fn new(message: String, range: TextRange) -> Self {
        SyntaxError { message, range }
    }
}

/// The result of parsing: a green tree (cheap to clone and share) and the errors found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parse {
    green: rowan::GreenNode,
    errors: Arc<[SyntaxError]>,
}

impl Parse {
    pub fn syntax(&self) -> SyntaxNode {
        SyntaxNode::new_root(self.green.clone())
    }

    pub fn tree(&self) -> ast::SourceFile {
        ast::SourceFile { syntax: self.syntax() }
    }

    pub fn green(&self) -> &rowan::GreenNode {
        &self.green
    }

    pub fn errors(&self) -> &[SyntaxError] {
        &self.errors
    }

    /// The tree as an indented list of kinds, ranges and token texts (for snapshot tests).
    pub fn debug_tree(&self) -> String {
        let mut out = String::new();
        let mut indent = 0usize;
        for event in self.syntax().preorder_with_tokens() {
            match event {
                rowan::WalkEvent::Enter(element) => {
                    out.push_str(&"  ".repeat(indent));
                    match &element {
                        rowan::NodeOrToken::Node(node) => {
                            out.push_str(&format!("{:?}@{:?}\n", node.kind(), node.text_range()));
                            indent += 1;
                        }
                        rowan::NodeOrToken::Token(token) => {
                            out.push_str(&format!("{:?}@{:?} {:?}\n", token.kind(), token.text_range(), token.text()));
                        }
                    }
                }
                rowan::WalkEvent::Leave(rowan::NodeOrToken::Node(_)) => indent -= 1,
                rowan::WalkEvent::Leave(_) => {}
            }
        }
        out
    }
}

/// Calls `f` with the kind and text of every token of `node`, in order. It walks the green tree,
/// making no cursor per node as `SyntaxText` and `descendants_with_tokens` do: for the texts of
/// whole nodes read for every file (a rule's text, for every rule).
pub fn for_each_token(node: &SyntaxNode, mut f: impl FnMut(SyntaxKind, &str)) {
    use rowan::Language;
    let green = node.green();
    let mut stack: Vec<rowan::Children<'_>> = vec![green.children()];
    while let Some(children) = stack.last_mut() {
        match children.next() {
            None => {
                stack.pop();
            }
            Some(rowan::NodeOrToken::Node(child)) => stack.push(child.children()),
            Some(rowan::NodeOrToken::Token(token)) => f(SymLanguage::kind_from_raw(token.kind()), token.text()),
        }
    }
}

/// Parses `.sym` text. Never fails and never panics; the tree's text is always `text`.
pub fn parse(text: &str) -> Parse {
    let (green, errors) = grammar::parse_text(text);
    Parse { green, errors: errors.into() }
}
