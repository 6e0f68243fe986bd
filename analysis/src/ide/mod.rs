//! Editor features over the analysis: navigation, references, rename, hover, completion, symbols,
//! semantic tokens, folding, formatting, code actions and lenses. Everything is computed on an
//! [`Analysis`] snapshot, which a writer cancels by changing the inputs: every method returns
//! [`Cancellable`], so a language server can answer "content modified" instead of stale data.
//!
//! Positions here are byte offsets; converting to and from the protocol's UTF-16 positions is the
//! language server's job.

use std::path::{Path, PathBuf};

use symbiont_syntax::{
    ast::{self, AstNode},
    SyntaxKind, SyntaxNode, SyntaxToken, TextRange, TextSize,
};

use crate::{
    db::{self, RootDatabase, SourceFile, Workspace},
    diagnostics::{Diagnostic, Fix, TextEdit},
    items::{DefKind, ItemDef},
    resolve::workspace_index,
    summary::file_items,
};

pub type Cancellable<T> = Result<T, salsa::Cancelled>;

/// A read-only view of the analysis at one revision, safe to move to another thread.
pub struct Analysis {
    pub(crate) db: RootDatabase,
    pub(crate) workspace: Workspace,
    pub(crate) files: std::collections::BTreeMap<PathBuf, SourceFile>,
}

/// A place to jump to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NavTarget {
    pub path: PathBuf,
    pub name: String,
    pub kind: DefKind,
    /// The whole definition.
    pub full_range: TextRange,
    /// The name in it.
    pub focus_range: TextRange,
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionKind {
    Keyword,
    Operation,
    Agent,
    Policy,
    Type,
    Attribute,
    Value,
    /// A template of a whole construct, with placeholders.
    Snippet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub label: String,
    pub kind: CompletionKind,
    pub detail: String,
    /// What to insert instead of the label, in the protocol's snippet syntax (`${1:name}`).
    pub snippet: Option<String>,
    /// The range to replace (the word typed so far, or empty at the cursor) and the text to write
    /// there, when the label alone would not fit: a name in a list, quoted and separated from its
    /// neighbours.
    pub edit: Option<(TextRange, String)>,
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

/// A code action: a fix of a diagnostic, or a refactoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub fix: Fix,
    /// The diagnostic it fixes, if any.
    pub diagnostic: Option<Diagnostic>,
    pub refactor: bool,
    /// Files the action creates (path, content), which must not exist yet; before its edits.
    pub create: Vec<(PathBuf, String)>,
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
    fn file(&self, path: &Path) -> Option<SourceFile> {
        self.files.get(path).copied()
    }

    /// The file when it is in the language: agent code has diagnostics, hover and fixes, but no
    /// tree of the language to navigate, fold, highlight or format.
    pub(crate) fn sym_file(&self, path: &Path) -> Option<SourceFile> {
        if crate::code::is_code_path(path) {
            return None;
        }
        self.file(path)
    }

    fn catch<T>(&self, f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Cancellable<T> {
        salsa::Cancelled::catch(f)
    }

    /// `Err` once a change to the inputs has cancelled this snapshot (what every query of it
    /// then answers).
    pub fn cancelled(&self) -> Cancellable<()> {
        use salsa::Database;
        self.catch(std::panic::AssertUnwindSafe(|| self.db.unwind_if_revision_cancelled()))
    }

    /// The text of a file, or of `symbiont.toml` when given its path.
    pub fn file_text(&self, path: &Path) -> Option<std::sync::Arc<str>> {
        if let Some(file) = self.file(path) {
            return Some(file.text(&self.db).clone());
        }
        match self.workspace.config_file(&self.db) {
            Some((config_path, text)) if config_path == path => Some(text.clone()),
            _ => None,
        }
    }

    /// Every file of the workspace (the language's and agent code), in path order.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.keys().map(PathBuf::as_path)
    }

    /// The path of `symbiont.toml`, if the workspace has one.
    pub fn config_path(&self) -> Option<PathBuf> {
        self.workspace.config_file(&self.db).as_ref().map(|(path, _)| path.clone())
    }

    /// [`Analysis::diagnostics`] without agent code's fixes (each costs a parse of the file):
    /// what an editor shows while the code is typed. Fixes come with [`Analysis::code_actions`].
    pub fn diagnostics_unfixed(&self, path: &Path) -> Cancellable<Vec<Diagnostic>> {
        if !crate::code::is_code_path(path) {
            return self.diagnostics(path);
        }
        self.catch(std::panic::AssertUnwindSafe(|| match self.file(path) {
            Some(file) => db::file_diagnostics_unfixed_in(&self.db, self.workspace, path, file),
            None => Vec::new(),
        }))
    }

    /// Diagnostics of one file, or of `symbiont.toml` when given its path.
    pub fn diagnostics(&self, path: &Path) -> Cancellable<Vec<Diagnostic>> {
        self.catch(std::panic::AssertUnwindSafe(|| match self.file(path) {
            Some(file) => db::file_diagnostics_in(&self.db, self.workspace, path, file),
            None => match self.workspace.config_file(&self.db) {
                Some((config_path, _)) if config_path == path => crate::resolve::config_diagnostics(&self.db, self.workspace).clone(),
                _ => Vec::new(),
            },
        }))
    }

    fn tree(&self, file: SourceFile) -> SyntaxNode {
        db::parse(&self.db, file).syntax()
    }

    /// The workspace symbol a position names: a definition's name or a reference to one.
    fn symbol_at(&self, path: &Path, offset: TextSize) -> Option<(DefKind, String, TextRange)> {
        let file = self.sym_file(path)?;
        let items = file_items(&self.db, file);
        if let Some(def) = items.defs.iter().find(|d| d.name_range.contains_inclusive(offset)) {
            return Some((def.kind, def.name.clone(), def.name_range));
        }
        if let Some(r) = items.references.iter().find(|r| r.range.contains_inclusive(offset)) {
            return Some((r.namespace, r.name.clone(), r.range));
        }
        None
    }

    fn nav(&self, file: SourceFile, def: &ItemDef) -> NavTarget {
        NavTarget {
            path: file.path(&self.db).clone(),
            name: def.name.clone(),
            kind: def.kind,
            full_range: def.range,
            focus_range: def.name_range,
        }
    }

    fn definitions(&self, kind: DefKind, name: &str) -> Vec<NavTarget> {
        let index = workspace_index(&self.db, self.workspace);
        index
            .lookup(kind, name)
            .iter()
            .flat_map(|&f| file_items(&self.db, f).defs.iter().filter(|d| d.kind == kind && d.name == name).map(move |d| self.nav(f, d)))
            .collect()
    }

    pub fn goto_definition(&self, path: &Path, offset: TextSize) -> Cancellable<Vec<NavTarget>> {
        self.catch(std::panic::AssertUnwindSafe(|| match self.symbol_at(path, offset) {
            Some((kind, name, _)) => self.definitions(kind, &name),
            None => Vec::new(),
        }))
    }

    /// Every definition of and reference to the symbol at the position, across the workspace.
    pub fn find_references(&self, path: &Path, offset: TextSize, include_declaration: bool) -> Cancellable<Vec<(PathBuf, TextRange)>> {
        self.catch(std::panic::AssertUnwindSafe(|| {
            let Some((kind, name, _)) = self.symbol_at(path, offset) else { return Vec::new() };
            self.occurrences(kind, &name, include_declaration)
        }))
    }

    fn occurrences(&self, kind: DefKind, name: &str, include_declaration: bool) -> Vec<(PathBuf, TextRange)> {
        let mut out = Vec::new();
        for &file in self.workspace.files(&self.db) {
            let items = file_items(&self.db, file);
            let path = file.path(&self.db);
            if include_declaration {
                out.extend(items.defs.iter().filter(|d| d.kind == kind && d.name == name).map(|d| (path.clone(), d.name_range)));
            }
            out.extend(items.references.iter().filter(|r| r.namespace == kind && r.name == name).map(|r| (path.clone(), r.range)));
        }
        out.sort_by(|a, b| (&a.0, a.1.start()).cmp(&(&b.0, b.1.start())));
        out
    }

    /// The range a rename at the position would change, when the position names a symbol.
    pub fn prepare_rename(&self, path: &Path, offset: TextSize) -> Cancellable<Option<TextRange>> {
        self.catch(std::panic::AssertUnwindSafe(|| {
            let (_, name, range) = self.symbol_at(path, offset)?;
            let text = self.file_text(path)?;
            // A quoted reference (`agent: "reviewer"`) renames inside its quotes.
            let written = &text[range];
            Some(if written.starts_with('"') {
                TextRange::at(range.start() + TextSize::from(1), TextSize::of(name.as_str()))
            } else {
                range
            })
        }))
    }

    pub fn rename(&self, path: &Path, offset: TextSize, new_name: &str) -> Cancellable<Result<Vec<TextEdit>, String>> {
        self.catch(std::panic::AssertUnwindSafe(|| {
            let valid = new_name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && new_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && SyntaxKind::keyword(new_name).is_none();
            if !valid {
                return Err(format!("`{new_name}` is not a valid name"));
            }
            let Some((kind, name, _)) = self.symbol_at(path, offset) else { return Err("nothing to rename here".into()) };
            if !self.definitions(kind, new_name).is_empty() {
                return Err(format!("a {} named `{new_name}` already exists", kind.as_str()));
            }
            let mut edits = Vec::new();
            for (file_path, range) in self.occurrences(kind, &name, true) {
                let Some(text) = self.file_text(&file_path) else { continue };
                let written = &text[range];
                let (range, new_text) = if written.starts_with('"') {
                    (TextRange::at(range.start() + TextSize::from(1), TextSize::of(name.as_str())), new_name.to_string())
                } else {
                    (range, new_name.to_string())
                };
                edits.push(TextEdit { path: file_path, range, new_text });
            }
            Ok(edits)
        }))
    }

    pub fn hover(&self, path: &Path, offset: TextSize) -> Cancellable<Option<(TextRange, String)>> {
        self.catch(std::panic::AssertUnwindSafe(|| crate::ide_hover::hover(self, path, offset)))
    }

    pub fn completions(&self, path: &Path, offset: TextSize) -> Cancellable<Vec<Completion>> {
        self.catch(std::panic::AssertUnwindSafe(|| crate::ide_hover::completions(self, path, offset)))
    }

    pub fn document_symbols(&self, path: &Path) -> Cancellable<Vec<DocumentSymbol>> {
        self.catch(std::panic::AssertUnwindSafe(|| {
            let Some(file) = self.sym_file(path) else { return Vec::new() };
            let tree = ast::SourceFile::cast(self.tree(file)).expect("the root is a source file");
            tree.items().filter_map(|item| symbol_of(item.syntax())).collect()
        }))
    }

    /// Definitions whose name contains `query` (case-insensitive).
    pub fn workspace_symbols(&self, query: &str) -> Cancellable<Vec<NavTarget>> {
        self.catch(std::panic::AssertUnwindSafe(|| {
            let query = query.to_ascii_lowercase();
            let mut out = Vec::new();
            for &file in self.workspace.files(&self.db) {
                for def in &file_items(&self.db, file).defs {
                    if def.name.to_ascii_lowercase().contains(&query) {
                        out.push(self.nav(file, def));
                    }
                }
            }
            out
        }))
    }

    pub fn semantic_tokens(&self, path: &Path, within: Option<TextRange>) -> Cancellable<Vec<SemanticToken>> {
        self.catch(std::panic::AssertUnwindSafe(|| {
            let Some(file) = self.sym_file(path) else { return Vec::new() };
            let root = self.tree(file);
            let operations = operation_starts(crate::summary::file_policy_model(&self.db, file));
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
            let diagnostics = if crate::code::is_code_path(path) {
                crate::code::judge(&self.db, self.workspace, file, crate::code::Fixes::Touching(range))
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
            if crate::inputs::is_source_path(path) {
                actions.extend(crate::ide_refactor::refactors(self, path, file, range));
            }
            actions
        }))
    }

    /// Every safe fix of a file's diagnostics at once, as `symbiont check --fix` applies them
    /// ([`crate::diagnostics::safe_fixes`]): the editor's fix-all, for fix on save. The edits may
    /// touch other files than `path`; none when nothing is safe to fix.
    pub fn fix_all(&self, path: &Path) -> Cancellable<crate::diagnostics::SafeFixes> {
        self.catch(std::panic::AssertUnwindSafe(|| match self.file(path) {
            Some(file) => crate::diagnostics::safe_fixes(&db::file_diagnostics_in(&self.db, self.workspace, path, file)),
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
            (crate::ide_hover::one_line(node), first.text_range())
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
