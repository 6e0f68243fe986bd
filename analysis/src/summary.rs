//! The per-file summary, derived per top-level item so that an edit re-derives only the item it is
//! in: [`file_layout`] parses a `.sym` file and names each top-level node an [`Item`];
//! [`item_summary`] derives everything one item says (its definitions and references, its
//! one-file checks relative to the item's start; its policy model where the item was when it was
//! derived); and the narrow file queries (`file_items`, `file_symbols`, `local_diagnostics`,
//! `file_policy_model`) assemble the items' summaries, moved to where the items are (the policy
//! model shared, not copied, where the item has not moved). An item whose text is unchanged keeps
//! its summary wherever it moves. It builds on the pure per-item passes (`items::collect_item` and
//! `items::use_at`, `checks::check_node`, the policy engine's lowering); the workspace-wide modules read these
//! queries, and none of them is imported here.

use std::{
    ops::Range,
    sync::{Arc, Mutex},
};

use rowan::{GreenNode, GreenNodeData, Language, NodeOrToken};
use symbiont_policy::model::{FileModel, Guard, PolicyDef, Rule, SourceLoc};
use symbiont_syntax::{ast, ast::AstNode, LineCol, LineIndex, SyntaxError, SyntaxKind, SyntaxNode, TextSize};

use crate::{
    checks::{check_node, may_find, CHECKED_KINDS},
    diagnostics::{self as rules, Diagnostic},
    inputs::{parse_file, Db, SourceFile},
    items::{collect_item, use_at, FileItems, FileSymbols, RefContext, Reference, Use, USE_KINDS},
};

/// One top-level node of a `.sym` file (an item, or what a syntax error left at the top level),
/// known by its kind and name (salsa tells apart two of the same, in order): the same item
/// before and after an edit elsewhere, whatever moved.
#[salsa::tracked(debug)]
pub struct Item<'db> {
    #[returns(copy)]
    pub file: SourceFile,
    #[returns(copy)]
    pub kind: SyntaxKind,
    #[returns(ref)]
    pub name: Option<String>,
    /// Its text; what [`item_summary`] depends on.
    #[tracked]
    #[returns(ref)]
    pub source: ItemSource,
}

/// A top-level node's text, and its tree for [`item_summary`]. Two are equal when their texts are:
/// the same text at the top level is the same item, and everything derived from it is relative
/// to its start. The text is a range of the file's text, shared rather than copied (a copy per
/// item was as large as the file). The tree is not kept once the item's summary is derived (trees
/// are several times their text), except in the language server, whose trees are kept anyway.
pub struct ItemSource {
    /// The file's text, the item's byte range in it, and where the item starts in this revision.
    text: Mutex<(Arc<str>, Range<usize>, Placement)>,
    tree: Mutex<Option<GreenNode>>,
}

impl ItemSource {
    fn new(file_text: &Arc<str>, range: Range<usize>, line_col: LineCol, tree: GreenNode) -> ItemSource {
        let placement = Placement { start: TextSize::from(range.start as u32), line_col };
        ItemSource { text: Mutex::new((file_text.clone(), range, placement)), tree: Mutex::new(Some(tree)) }
    }

    /// The file's text and the item's range in it (`&file_text[range]` is the item's text).
    fn text(&self) -> (Arc<str>, Range<usize>) {
        let text = self.text.lock().unwrap_or_else(|e| e.into_inner());
        (text.0.clone(), text.1.clone())
    }

    /// Where the item starts in the latest revision that made it. Not part of what salsa
    /// compares: what is derived from it says where it was derived ([`ItemSummary::model_at`]).
    fn placement(&self) -> Placement {
        self.text.lock().unwrap_or_else(|e| e.into_inner()).2
    }

    fn tree(&self) -> Option<GreenNode> {
        self.tree.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn drop_tree(&self) {
        self.tree.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

impl PartialEq for ItemSource {
    /// salsa compares the old value with the new one (`old == new`) and keeps the old when they
    /// are equal: the old then takes the new tree, so that a summary that must be derived again
    /// (its derivation was cancelled) finds the tree of this revision, and the new file text and
    /// placement, so that the items an edit left alone do not keep the file's earlier texts alive.
    fn eq(&self, new: &Self) -> bool {
        let (new_file, new_range) = new.text();
        let new_placement = new.placement();
        let mut text = self.text.lock().unwrap_or_else(|e| e.into_inner());
        if text.0[text.1.clone()] != new_file[new_range.clone()] {
            return false;
        }
        *text = (new_file, new_range, new_placement);
        if let Some(tree) = new.tree.lock().unwrap_or_else(|e| e.into_inner()).take() {
            *self.tree.lock().unwrap_or_else(|e| e.into_inner()) = Some(tree);
        }
        true
    }
}

impl std::fmt::Debug for ItemSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemSource").field("len", &self.text().1.len()).finish()
    }
}

/// Where one item is: its first byte, and that byte's 0-based line and column (in chars).
#[derive(Debug, Clone, Copy, PartialEq, Eq, salsa::SalsaValue)]
pub struct Placement {
    pub start: TextSize,
    pub line_col: LineCol,
}

/// A file's top-level items in order, each with where it is now, and its syntax errors.
#[derive(Debug, Clone, PartialEq, salsa::SalsaValue)]
pub struct FileLayout<'db> {
    pub items: Vec<(Item<'db>, Placement)>,
    pub syntax_errors: Vec<SyntaxError>,
}

/// Parses a file and names its top-level nodes. Runs on every edit of the file; what it does is
/// linear in the text and cheap beside the parse.
#[salsa::tracked(returns(ref))]
pub fn file_layout(db: &dyn Db, file: SourceFile) -> FileLayout<'_> {
    let text = file.text(db);
    if text.len() > db.parse_by_items_above() {
        return layout_by_pieces(db, file, text);
    }
    let parse = parse_file(db, file);
    let index = LineIndex::new(text);
    let items = parse
        .syntax()
        .children()
        .map(|node| {
            let range = node.text_range();
            let name = ast::Item::cast(node.clone()).and_then(|item| item.name()).map(|name| name.text());
            let placement = Placement { start: range.start(), line_col: index.line_col(text, range.start()) };
            let source = ItemSource::new(text, range.into(), placement.line_col, node.green().into_owned());
            (Item::new(db, file, node.kind(), name, source), placement)
        })
        .collect();
    FileLayout { items, syntax_errors: parse.errors().to_vec() }
}

/// A large file's layout, piece by piece ([`symbiont_syntax::pieces`]): the same items and
/// errors as a parse of the whole text, without ever holding the whole text's tree.
fn layout_by_pieces<'db>(db: &'db dyn Db, file: SourceFile, text: &str) -> FileLayout<'db> {
    let starts = symbiont_syntax::pieces::item_starts(text);
    let mut layout = FileLayout { items: Vec::new(), syntax_errors: Vec::new() };
    let (mut from, mut line_col) = (0usize, LineCol { line: 0, col: 0 });
    loop {
        let next = starts.partition_point(|&s| s <= from);
        let piece = Piece::new(db, file, from, line_col, starts.get(next).copied(), starts.get(next + 1).copied());
        let part = piece_layout(db, piece);
        layout.items.extend(part.items.iter().copied());
        layout.syntax_errors.extend(part.syntax_errors.iter().cloned());
        if part.end >= text.len() {
            return layout;
        }
        line_col = line_col_after(line_col, &text[from..part.end]);
        from = part.end;
    }
}

/// The line and column (in chars) after `text`, which starts at `at`.
fn line_col_after(at: LineCol, text: &str) -> LineCol {
    match text.rfind('\n') {
        Some(i) => {
            LineCol { line: at.line + text.bytes().filter(|&b| b == b'\n').count() as u32, col: text[i + 1..].chars().count() as u32 }
        }
        None => LineCol { line: at.line, col: at.col + text.chars().count() as u32 },
    }
}

/// One piece of a large file: where it starts (byte, line and column) and the item starts after
/// it that [`symbiont_syntax::pieces::parse_piece`] may need.
#[salsa::interned(debug)]
struct Piece<'db> {
    #[returns(copy)]
    file: SourceFile,
    #[returns(copy)]
    start: usize,
    #[returns(copy)]
    line_col: LineCol,
    #[returns(copy)]
    end: Option<usize>,
    #[returns(copy)]
    after: Option<usize>,
}

/// A piece's items (each summarised, its tree let go) and syntax errors, placed in the file, and
/// where the piece ends.
#[derive(Debug, Clone, PartialEq, salsa::SalsaValue)]
struct PieceLayout<'db> {
    items: Vec<(Item<'db>, Placement)>,
    syntax_errors: Vec<SyntaxError>,
    end: usize,
}

/// Parses one piece and summarises its items as it names them, so that only this piece's tree is
/// ever held. A query of its own: what a cancelled layout of the file had done is kept.
#[salsa::tracked(returns(ref))]
fn piece_layout<'db>(db: &'db dyn Db, piece: Piece<'db>) -> PieceLayout<'db> {
    let (file, from, origin) = (piece.file(db), piece.start(db), piece.line_col(db));
    let text = file.text(db);
    let next: Vec<usize> = piece.end(db).into_iter().chain(piece.after(db)).collect();
    let (parse, end) = symbiont_syntax::pieces::parse_piece(text, from, &next);
    let (piece_text, by) = (&text[from..end], TextSize::from(from as u32));
    let index = LineIndex::new(piece_text);
    let mut items = Vec::new();
    for node in parse.syntax().children() {
        let range = node.text_range();
        let name = ast::Item::cast(node.clone()).and_then(|item| item.name()).map(|name| name.text());
        let at = index.line_col(piece_text, range.start());
        let line_col = if at.line == 0 {
            LineCol { line: origin.line, col: origin.col + at.col }
        } else {
            LineCol { line: origin.line + at.line, ..at }
        };
        let source = ItemSource::new(text, Range::<usize>::from(range + by), line_col, node.green().into_owned());
        let item = Item::new(db, file, node.kind(), name, source);
        // Summarised now, and its tree let go even when the summary was kept from before.
        item_summary(db, item);
        item.source(db).drop_tree();
        items.push((item, Placement { start: range.start() + by, line_col }));
    }
    let syntax_errors = parse.errors().iter().map(|e| SyntaxError::new(e.message.clone(), e.range + by)).collect();
    PieceLayout { items, syntax_errors, end }
}

/// Everything one item says: relative to its start (ranges from 0, lines from 1), but for its
/// policy model, which is in the file, where the item was when it was derived (`model_at`): the
/// file's model then holds it as it is while the item stays there, with no copy, and moves a copy
/// only of what an edit moved.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemSummary {
    /// Its definitions, and the references its structure makes (`extends`, `policies`, `agent:`).
    pub items: FileItems,
    /// The type names and calls it uses.
    pub uses: Vec<Use>,
    /// The checks that need this item only ([`check_node`] of each of its nodes).
    pub diagnostics: Vec<Diagnostic>,
    /// What it says about policies, in the engine's model, at `model_at` in the file; `None`
    /// when it says nothing (a type, a function: no room held for an empty model).
    pub model: Option<Box<FileModel>>,
    pub model_at: Placement,
}

/// The summary of one item: re-derived only when its text changes.
#[salsa::tracked(returns(ref))]
pub fn item_summary<'db>(db: &'db dyn Db, item: Item<'db>) -> ItemSummary {
    let file = item.file(db);
    let source = item.source(db);
    let (file_text, range) = source.text();
    let text = &file_text[range];
    let green = source.tree().unwrap_or_else(|| item_tree(db, file, item.kind(db), text));
    let path = file.path(db);
    let (mut diagnostics, mut uses) = (Vec::new(), Vec::new());
    for_each_node(&green, |node, at| {
        let kind = symbiont_syntax::SymLanguage::kind_from_raw(node.kind());
        if CHECKED_KINDS.contains(&kind) {
            if !may_find(node) {
                return;
            }
            let (node, first) = (SyntaxNode::new_root(node.to_owned()), diagnostics.len());
            check_node(path, &node, &mut diagnostics);
            for diagnostic in &mut diagnostics[first..] {
                move_diagnostic(diagnostic, at);
            }
        } else if USE_KINDS.contains(&kind) {
            uses.extend(use_at(&SyntaxNode::new_root(node.to_owned())).map(|mut found| {
                found.range += at;
                found
            }));
        }
    });
    let mut items = collect_item(&SyntaxNode::new_root(green.clone()));
    // Untracked, as the tree is: the summary says where it was lowered, and is re-derived only
    // when the item's text changes (`file_policy_model` moves it when the item has moved).
    let model_at = source.placement();
    let model = match ast::Item::cast(SyntaxNode::new_root(green)) {
        Some(item) => symbiont_policy::lower::lower_item_at(&path.to_string_lossy(), text, item, model_at.start, model_at.line_col),
        None => FileModel::default(),
    };
    source.drop_tree();
    // Held for as long as the item is: a huge file has hundreds of thousands of them.
    uses.shrink_to_fit();
    items.references.shrink_to_fit();
    items.defs.shrink_to_fit();
    diagnostics.shrink_to_fit();
    let says_nothing = model.policies.is_empty() && model.agents.is_empty() && model.issues.is_empty() && model.level_literals.is_empty();
    let model = (!says_nothing).then(|| Box::new(model));
    ItemSummary { items, uses, diagnostics, model, model_at }
}

/// Calls `visit` with every node of `root` in the order of a walk of the tree, each with its
/// offset in `root`. A walk of the green tree: a cursor (`SyntaxNode`) is made only for the nodes
/// the checks look at, not for every node as `descendants` makes. An explicit stack, as a tree
/// may be deep (`1 + 1 + … + 1` nests to the left).
fn for_each_node(root: &GreenNodeData, mut visit: impl FnMut(&GreenNodeData, TextSize)) {
    let mut stack: Vec<(&GreenNodeData, TextSize)> = vec![(root, TextSize::from(0))];
    while let Some((node, at)) = stack.pop() {
        visit(node, at);
        let (first, mut offset) = (stack.len(), at);
        for child in node.children() {
            if let NodeOrToken::Node(child) = child {
                stack.push((child, offset));
            }
            offset += child.text_len();
        }
        stack[first..].reverse();
    }
}

/// An item's tree when its source no longer holds it (its summary was being derived when that was
/// cancelled): the node of this text in a parse of the whole file.
fn item_tree(db: &dyn Db, file: SourceFile, kind: SyntaxKind, text: &str) -> GreenNode {
    let parse = parse_file(db, file);
    let found = parse.syntax().children().find(|node| node.kind() == kind && node.text() == text);
    found.map(|node| node.green().into_owned()).unwrap_or_else(|| {
        // Not reached: the item is of this revision, so its text is in the file.
        let parse = symbiont_syntax::parse(text);
        parse.syntax().first_child().map_or_else(|| parse.green().clone(), |node| node.green().into_owned())
    })
}

/// What a file defines and the references its structure makes, with ranges (they move on every
/// edit). The names it uses (types, calls) are in [`file_uses`]: only the editor's navigation
/// reads them, and a huge file's are many.
#[salsa::tracked(returns(ref))]
pub fn file_items(db: &dyn Db, file: SourceFile) -> FileItems {
    let layout = file_layout(db, file);
    let summaries: Vec<(&ItemSummary, Placement)> = layout.items.iter().map(|&(item, at)| (item_summary(db, item), at)).collect();
    // Sized at once: a huge file's lists would otherwise end up to twice as large as they are.
    let defs = summaries.iter().map(|(summary, _)| summary.items.defs.len()).sum();
    let references = summaries.iter().map(|(summary, _)| summary.items.references.len()).sum();
    let mut items = FileItems { defs: Vec::with_capacity(defs), references: Vec::with_capacity(references) };
    for (summary, at) in &summaries {
        items.defs.extend(summary.items.defs.iter().map(|def| {
            let mut def = def.clone();
            def.name_range += at.start;
            def.range += at.start;
            def
        }));
        items.references.extend(summary.items.references.iter().map(|r| moved_reference(r, at.start)));
    }
    items
}

/// The type names and calls a file uses, with ranges, in order.
#[salsa::tracked(returns(ref))]
pub fn file_uses(db: &dyn Db, file: SourceFile) -> Vec<Reference> {
    let layout = file_layout(db, file);
    layout.items.iter().flat_map(|&(item, at)| item_summary(db, item).uses.iter().map(move |found| found.reference(at.start))).collect()
}

fn moved_reference(reference: &Reference, by: TextSize) -> Reference {
    let mut reference = reference.clone();
    reference.range += by;
    reference
}

/// [`file_items`] without ranges, so that the workspace-wide index built from it is not
/// invalidated by edits that change no name.
#[salsa::tracked(returns(ref))]
pub fn file_symbols(db: &dyn Db, file: SourceFile) -> FileSymbols {
    let items = file_items(db, file);
    FileSymbols {
        defs: items.defs.iter().map(|d| (d.kind, d.name.clone())).collect(),
        extends: items
            .references
            .iter()
            .filter_map(|r| match &r.context {
                RefContext::Extends { child } => Some((child.clone(), r.name.clone())),
                _ => None,
            })
            .collect(),
    }
}

/// The checks that need this file only: its syntax errors, and each item's.
#[salsa::tracked(returns(ref))]
pub fn local_diagnostics(db: &dyn Db, file: SourceFile) -> Vec<Diagnostic> {
    let layout = file_layout(db, file);
    let mut diagnostics: Vec<Diagnostic> =
        layout.syntax_errors.iter().map(|error| Diagnostic::new(&rules::SYNTAX_ERROR, error.range, error.message.clone())).collect();
    for &(item, at) in &layout.items {
        diagnostics.extend(item_summary(db, item).diagnostics.iter().map(|d| {
            let mut d = d.clone();
            move_diagnostic(&mut d, at.start);
            d
        }));
    }
    diagnostics
}

/// Moves a diagnostic of a part of a file by `by`: every range it holds is in that file.
fn move_diagnostic(diagnostic: &mut Diagnostic, by: TextSize) {
    diagnostic.range += by;
    for related in &mut diagnostic.related {
        related.range += by;
    }
    for fix in diagnostic.fix.iter_mut().chain(diagnostic.alternatives.iter_mut()) {
        for edit in &mut fix.edits {
            edit.edit.start += usize::from(by);
            edit.edit.end += usize::from(by);
        }
    }
}

/// What one file says about policies, in the engine's model: each item's, shared as it is where
/// the item has not moved since it was derived, a moved copy where it has.
#[salsa::tracked(returns(ref))]
pub fn file_policy_model(db: &dyn Db, file: SourceFile) -> FileModel {
    let layout = file_layout(db, file);
    let mut model = FileModel::default();
    for &(item, at) in &layout.items {
        let summary = item_summary(db, item);
        let Some(part) = summary.model.as_deref() else { continue };
        let from = summary.model_at;
        if from == at {
            model.policies.extend(part.policies.iter().cloned());
            model.agents.extend(part.agents.iter().cloned());
            model.issues.extend(part.issues.iter().cloned());
            model.level_literals.extend(part.level_literals.iter().cloned());
            continue;
        }
        let mv = |loc: &SourceLoc| moved_loc(loc, from, at);
        model.policies.extend(part.policies.iter().map(|p| Arc::new(moved_policy(p, &mv))));
        model.agents.extend(part.agents.iter().map(|agent| {
            let mut agent = (**agent).clone();
            for (_, loc) in agent.capabilities.iter_mut().chain(&mut agent.applied).chain(&mut agent.implementation) {
                *loc = mv(loc);
            }
            agent.inline = agent.inline.iter().map(|p| Arc::new(moved_policy(p, &mv))).collect();
            agent.loc = mv(&agent.loc);
            Arc::new(agent)
        }));
        model.issues.extend(part.issues.iter().map(|issue| {
            let mut issue = issue.clone();
            issue.loc = mv(&issue.loc);
            issue
        }));
        model.level_literals.extend(part.level_literals.iter().map(|literal| {
            let mut literal = literal.clone();
            literal.loc = mv(&literal.loc);
            literal
        }));
    }
    model
}

/// A location of an item that was at `from`, now that it is at `to`: lines and bytes shift with
/// it, and columns on its first line.
fn moved_loc(loc: &SourceLoc, from: Placement, to: Placement) -> SourceLoc {
    let first_line = loc.line == from.line_col.line + 1;
    let col = if first_line { loc.col - from.line_col.col + to.line_col.col } else { loc.col };
    let line = loc.line - from.line_col.line + to.line_col.line;
    let range = loc.range - from.start + to.start;
    SourceLoc { file: loc.file.clone(), line, col, range }
}

fn moved_policy(policy: &PolicyDef, mv: &impl Fn(&SourceLoc) -> SourceLoc) -> PolicyDef {
    let moved_guard = |guard: &Guard| Guard { expr: guard.expr.clone(), text: guard.text.clone(), loc: mv(&guard.loc) };
    let rules = policy
        .rules
        .iter()
        .map(|rule| {
            let mut ops = rule.ops.clone();
            for op in &mut ops {
                op.loc = mv(&op.loc);
            }
            Arc::new(Rule {
                kind: rule.kind,
                ops,
                guard: rule.guard.as_deref().map(moved_guard).map(Box::new),
                preconditions: rule.preconditions.iter().map(moved_guard).collect(),
                obligations: rule.obligations.clone(),
                text: rule.text.clone(),
                loc: mv(&rule.loc),
            })
        })
        .collect();
    PolicyDef {
        name: policy.name.clone(),
        extends: policy.extends.iter().map(|(name, loc)| (name.clone(), mv(loc))).collect(),
        rules,
        loc: mv(&policy.loc),
        owner: policy.owner.clone(),
    }
}
