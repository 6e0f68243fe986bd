//! Editor features over the analysis: navigation, references, rename, hover, completion, symbols,
//! semantic tokens, folding, formatting, code actions and lenses. Everything is computed on an
//! [`Analysis`] snapshot, which a writer cancels by changing the inputs: every method returns
//! [`Cancellable`], so a language server can answer "content modified" instead of stale data.
//!
//! Positions here are byte offsets; converting to and from the protocol's UTF-16 positions is the
//! language server's job.
//!
//! The snapshot and what every feature shares are in `snapshot`; each feature that needs more than
//! a screen has its module (`navigation`, `hover`, `completion`, `refactor`), which takes the
//! snapshot and is called from here. None of them imports this module.

mod completion;
mod hover;
mod navigation;
mod refactor;
mod snapshot;

use std::path::Path;

use symbiont_syntax::{
    ast::{self, AstNode},
    SyntaxKind, SyntaxNode, SyntaxToken, TextRange, TextSize,
};

pub use self::{
    completion::{Completion, CompletionKind},
    navigation::NavTarget,
    refactor::Action,
    snapshot::{Analysis, Cancellable},
};
use crate::{
    code::{self, is_code_path},
    db,
    diagnostics::{self, SafeFixes},
    inputs::is_source_path,
    items::DefKind,
    summary::{file_items, file_policy_model},
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentSymbol {
    pub name: String,
    pub kind: SymbolKind,
    pub range: TextRange,
    pub selection: TextRange,
    pub children: Vec<DocumentSymbol>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolKind {
    Def(DefKind),
    Metadata,
    Rule,
    Field,
    Function,
}

/// Semantic token types, in the legend's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Keyword,
    Type,
    Function,
    Variable,
    Property,
    String,
    Number,
    Comment,
    Operator,
    /// Agent, policy and other definitions' names.
    Class,
    /// An operation an agent declares or a rule is about (`"file_read"`, `invoke_tool(…)`): not a
    /// standard type, so an editor that does not know it themes it as it likes (`docs/editors.md`).
    Operation,
}

impl TokenType {
    pub const LEGEND: &'static [&'static str] =
        &["keyword", "type", "function", "variable", "property", "string", "number", "comment", "operator", "class", "operation"];

    pub fn index(self) -> u32 {
        self as u32
    }
}

/// Semantic token modifiers, a set of bits in the legend's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenModifiers(u32);

impl TokenModifiers {
    pub const LEGEND: &'static [&'static str] = &["declaration", "definition"];
    pub const NONE: TokenModifiers = TokenModifiers(0);
    /// The name where an agent, policy, type, function or other item is defined: both declared
    /// and defined there (the language has no separate declarations).
    pub const DEFINITION: TokenModifiers = TokenModifiers(0b11);

    pub fn bits(self) -> u32 {
        self.0
    }
}

/// A highlighted token: its range, type and modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemanticToken {
    pub range: TextRange,
    pub kind: TokenType,
    pub modifiers: TokenModifiers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoldKind {
    Block,
    Comment,
}

fn namespace_of(kind: SyntaxKind) -> Option<DefKind> {
    Some(match kind {
        SyntaxKind::AGENT => DefKind::Agent,
        SyntaxKind::POLICY => DefKind::Policy,
        SyntaxKind::TYPE_DEF => DefKind::Type,
        SyntaxKind::FUNCTION => DefKind::Function,
        SyntaxKind::SCHEDULE => DefKind::Schedule,
        SyntaxKind::CHANNEL => DefKind::Channel,
        SyntaxKind::MEMORY => DefKind::Memory,
        SyntaxKind::WEBHOOK => DefKind::Webhook,
        _ => return None,
    })
}

impl Analysis {
    pub fn hover(&self, path: &Path, offset: TextSize) -> Cancellable<Option<(TextRange, String)>> {
        self.catch(std::panic::AssertUnwindSafe(|| hover::hover(self, path, offset)))
    }

    pub fn completions(&self, path: &Path, offset: TextSize) -> Cancellable<Vec<Completion>> {
        self.catch(std::panic::AssertUnwindSafe(|| completion::completions(self, path, offset)))
    }

    pub fn document_symbols(&self, path: &Path) -> Cancellable<Vec<DocumentSymbol>> {
        self.catch(std::panic::AssertUnwindSafe(|| {
            let Some(file) = self.sym_file(path) else { return Vec::new() };
            let tree = ast::SourceFile::cast(self.tree(file)).expect("the root is a source file");
            tree.items().filter_map(|item| symbol_of(item.syntax())).collect()
        }))
    }

    pub fn semantic_tokens(&self, path: &Path, within: Option<TextRange>) -> Cancellable<Vec<SemanticToken>> {
        self.catch(std::panic::AssertUnwindSafe(|| {
            let Some(file) = self.sym_file(path) else { return Vec::new() };
            let root = self.tree(file);
            let operations = operation_starts(file_policy_model(&self.db, file));
            let mut out = Vec::new();
            for token in root.descendants_with_tokens().filter_map(|e| e.into_token()) {
                if within.is_some_and(|w| w.intersect(token.text_range()).is_none()) {
                    continue;
                }
                let range = token.text_range();
                let highlight = if matches!(token.kind(), SyntaxKind::STRING | SyntaxKind::IDENT) && operations.contains(&range.start()) {
                    Some((TokenType::Operation, TokenModifiers::NONE))
                } else {
                    token_type(&token)
                };
                if let Some((kind, modifiers)) = highlight {
                    out.push(SemanticToken { range, kind, modifiers });
                }
            }
            out
        }))
    }

    pub fn folding_ranges(&self, path: &Path) -> Cancellable<Vec<(TextRange, FoldKind)>> {
        self.catch(std::panic::AssertUnwindSafe(|| {
            let Some(file) = self.sym_file(path) else { return Vec::new() };
            let text = file.text(&self.db);
            let root = self.tree(file);
            let multi_line = |r: TextRange| text[r].contains('\n');
            let mut out = Vec::new();
            for node in root.descendants() {
                if matches!(
                    node.kind(),
                    SyntaxKind::AGENT_BODY
                        | SyntaxKind::POLICY_BODY
                        | SyntaxKind::BLOCK
                        | SyntaxKind::ENTRY_BLOCK
                        | SyntaxKind::RECORD_EXPR
                        | SyntaxKind::ARRAY_EXPR
                        | SyntaxKind::MATCH_ARM_LIST
                        | SyntaxKind::ARG_LIST
                ) && multi_line(node.text_range())
                {
                    out.push((node.text_range(), FoldKind::Block));
                }
            }
            for token in root.descendants_with_tokens().filter_map(|e| e.into_token()) {
                if token.kind() == SyntaxKind::BLOCK_COMMENT && multi_line(token.text_range()) {
                    out.push((token.text_range(), FoldKind::Comment));
                }
            }
            out.sort_by_key(|(r, _)| r.start());
            out
        }))
    }

    /// The formatted text of a file, or `None` when it has syntax errors.
    pub fn format(&self, path: &Path) -> Cancellable<Option<String>> {
        self.catch(std::panic::AssertUnwindSafe(|| {
            let file = self.sym_file(path)?;
            symbiont_syntax::format::format_tree(db::parse(&self.db, file), &Default::default()).ok()
        }))
    }

    /// Code actions for a range: the fixes of the diagnostics it touches, and the refactorings
    /// available there. Agent code's fixes are computed for those diagnostics only.
    pub fn code_actions(&self, path: &Path, range: TextRange) -> Cancellable<Vec<Action>> {
        self.catch(std::panic::AssertUnwindSafe(|| {
            let mut actions = Vec::new();
            let Some(file) = self.file(path) else { return actions };
            let diagnostics = if is_code_path(path) {
                code::judge(&self.db, self.workspace, file, code::Fixes::Touching(range))
            } else {
                db::file_diagnostics_in(&self.db, self.workspace, path, file)
            };
            for d in diagnostics {
                if d.range.intersect(range).is_none() && !d.range.contains_range(range) {
                    continue;
                }
                for fix in d.fix.iter().chain(&d.alternatives) {
                    actions.push(Action { fix: fix.clone(), diagnostic: Some(d.clone()), refactor: false, create: Vec::new() });
                }
            }
            if is_source_path(path) {
                actions.extend(refactor::refactors(self, path, file, range));
            }
            actions
        }))
    }

    /// Every safe fix of a file's diagnostics at once, as `symbiont check --fix` applies them
    /// ([`crate::diagnostics::safe_fixes`]): the editor's fix-all, for fix on save. The edits may
    /// touch other files than `path`; none when nothing is safe to fix.
    pub fn fix_all(&self, path: &Path) -> Cancellable<SafeFixes> {
        self.catch(std::panic::AssertUnwindSafe(|| match self.file(path) {
            Some(file) => diagnostics::safe_fixes(&db::file_diagnostics_in(&self.db, self.workspace, path, file)),
            None => Default::default(),
        }))
    }

    /// A "Run agent" lens above each agent: its name range and the agent's name.
    pub fn agent_lenses(&self, path: &Path) -> Cancellable<Vec<(TextRange, String)>> {
        self.catch(std::panic::AssertUnwindSafe(|| {
            let Some(file) = self.sym_file(path) else { return Vec::new() };
            file_items(&self.db, file).defs.iter().filter(|d| d.kind == DefKind::Agent).map(|d| (d.name_range, d.name.clone())).collect()
        }))
    }
}

/// A node's text on one line (whitespace runs collapsed), for labels.
fn one_line(node: &SyntaxNode) -> String {
    node.text().to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

fn symbol_of(node: &SyntaxNode) -> Option<DocumentSymbol> {
    let kind = match node.kind() {
        SyntaxKind::METADATA => SymbolKind::Metadata,
        SyntaxKind::RULE => SymbolKind::Rule,
        SyntaxKind::AGENT_FIELD => SymbolKind::Field,
        SyntaxKind::FUNCTION => SymbolKind::Function,
        k => SymbolKind::Def(namespace_of(k)?),
    };
    let (name, selection) = match kind {
        SymbolKind::Metadata => ("metadata".to_string(), node.first_token()?.text_range()),
        SymbolKind::Rule => {
            let first = node.first_token()?;
            (one_line(node), first.text_range())
        }
        _ => {
            let name = node.children().find(|c| c.kind() == SyntaxKind::NAME)?;
            (name.text().to_string(), name.text_range())
        }
    };
    let mut children = Vec::new();
    for child in node.descendants().skip(1) {
        // Direct members only: agents' fields, policies and functions; policies' rules.
        let parent_item = child.ancestors().skip(1).find(|a| namespace_of(a.kind()).is_some() || a.kind() == SyntaxKind::METADATA);
        if parent_item.as_ref() != Some(node) {
            continue;
        }
        if matches!(child.kind(), SyntaxKind::RULE | SyntaxKind::AGENT_FIELD | SyntaxKind::POLICY | SyntaxKind::FUNCTION) {
            children.extend(symbol_of(&child));
        }
    }
    Some(DocumentSymbol { name, kind, range: node.text_range(), selection, children })
}

/// Where the operations of a file are written, as the policy engine reads them: each declared
/// capability and each operation a rule is about (a string, a name, or a call's callee) starts at
/// one of these offsets.
fn operation_starts(model: &symbiont_policy::model::FileModel) -> std::collections::HashSet<TextSize> {
    let policies = model.policies.iter().chain(model.agents.iter().flat_map(|a| a.inline.iter()));
    let rules = policies.flat_map(|p| p.rules.iter()).flat_map(|r| r.ops.iter().map(|o| o.loc.range.start()));
    let capabilities = model.agents.iter().flat_map(|a| a.capabilities.iter().map(|(_, loc)| loc.range.start()));
    rules.chain(capabilities).collect()
}

fn token_type(token: &SyntaxToken) -> Option<(TokenType, TokenModifiers)> {
    let parent = token.parent()?;
    let plain = |kind| Some((kind, TokenModifiers::NONE));
    if token.kind() == SyntaxKind::IDENT && parent.kind() == SyntaxKind::NAME {
        let kind = match parent.parent().map(|p| p.kind()) {
            Some(SyntaxKind::TYPE_DEF) => TokenType::Type,
            Some(SyntaxKind::FUNCTION) => TokenType::Function,
            Some(k) if namespace_of(k).is_some() => TokenType::Class,
            _ => return plain(name_type(&parent)),
        };
        return Some((kind, TokenModifiers::DEFINITION));
    }
    plain(match token.kind() {
        k if k.is_keyword() => TokenType::Keyword,
        SyntaxKind::LINE_COMMENT | SyntaxKind::BLOCK_COMMENT => TokenType::Comment,
        SyntaxKind::STRING | SyntaxKind::SECRET_REF => TokenType::String,
        SyntaxKind::INT | SyntaxKind::FLOAT | SyntaxKind::QUANTITY => TokenType::Number,
        SyntaxKind::IDENT => match (parent.kind(), parent.parent().map(|p| p.kind())) {
            (SyntaxKind::NAME_REF, Some(SyntaxKind::PATH_TYPE | SyntaxKind::EXTENDS_CLAUSE)) => TokenType::Type,
            (SyntaxKind::NAME_REF, Some(SyntaxKind::FIELD_EXPR)) => TokenType::Property,
            (SyntaxKind::NAME_REF, Some(SyntaxKind::PATH_EXPR)) => {
                if parent.parent().and_then(|p| p.parent()).is_some_and(|g| g.kind() == SyntaxKind::CALL_EXPR) {
                    TokenType::Function
                } else {
                    TokenType::Variable
                }
            }
            (SyntaxKind::QUALIFIER, _) => TokenType::Operator,
            _ => TokenType::Variable,
        },
        SyntaxKind::EQ2 | SyntaxKind::NEQ | SyntaxKind::AMP2 | SyntaxKind::PIPE2 | SyntaxKind::FAT_ARROW | SyntaxKind::THIN_ARROW => {
            TokenType::Operator
        }
        _ => return None,
    })
}

/// A name that defines no item: a field or attribute name is a property, any other a variable.
fn name_type(name: &SyntaxNode) -> TokenType {
    match name.parent().map(|p| p.kind()) {
        Some(SyntaxKind::AGENT_FIELD | SyntaxKind::WITH_ATTR | SyntaxKind::ENTRY | SyntaxKind::RECORD_FIELD) => TokenType::Property,
        _ => TokenType::Variable,
    }
}
