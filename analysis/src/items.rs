//! Per-file item index: what a file defines and which workspace names it refers to, collected
//! from each top-level item's tree ([`collect_item`], [`use_at`]). The queries over it are
//! `summary::file_items` (with ranges) and `summary::file_symbols` (names only).

use symbiont_syntax::{
    ast::{self, AstNode, EntryItem, Expr, Item},
    SyntaxKind, SyntaxNode, TextRange, TextSize,
};

/// The namespaces of workspace-level definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DefKind {
    Agent,
    Policy,
    Type,
    Function,
    Schedule,
    Channel,
    Memory,
    Webhook,
}

impl DefKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DefKind::Agent => "agent",
            DefKind::Policy => "policy",
            DefKind::Type => "type",
            DefKind::Function => "function",
            DefKind::Schedule => "schedule",
            DefKind::Channel => "channel",
            DefKind::Memory => "memory",
            DefKind::Webhook => "webhook",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItemDef {
    pub kind: DefKind,
    pub name: String,
    pub name_range: TextRange,
    pub range: TextRange,
}

/// Why a name is referred to; decides the message when it does not resolve.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RefContext {
    /// `policy child extends NAME`
    Extends { child: String },
    /// `policies = [NAME]` in an agent.
    AppliedPolicy { agent: String },
    /// `agent: NAME` in a schedule, channel or webhook.
    AgentTarget { owner: &'static str },
    /// A type name in a signature or type definition; an undefined one is a host type.
    TypeUse,
    /// A call of a plain name; an undefined one is a host function.
    Call,
}

impl RefContext {
    /// Whether a reference that resolves to nothing is an error.
    pub fn must_resolve(&self) -> bool {
        !matches!(self, RefContext::TypeUse | RefContext::Call)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub namespace: DefKind,
    pub name: String,
    /// The written name, quotes included when it was a string.
    pub range: TextRange,
    /// Whether the name was written as a string (`"reviewer"`), so fixes keep the quotes.
    pub quoted: bool,
    pub context: RefContext,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileItems {
    pub defs: Vec<ItemDef>,
    pub references: Vec<Reference>,
}

/// Names only: `(kind, name)` of each definition and `(child, parent)` of each `extends` edge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSymbols {
    pub defs: Vec<(DefKind, String)>,
    pub extends: Vec<(String, String)>,
}

/// What a top-level node defines, and the references its structure makes (`extends`,
/// `policies = [...]`, `agent:`); nothing for what a syntax error left at the top level.
pub fn collect_item(root: &SyntaxNode) -> FileItems {
    let mut items = FileItems::default();
    if let Some(item) = Item::cast(root.clone()) {
        collect_definition(&item, &mut items);
    }
    items
}

/// The kinds of node [`use_at`] finds a use in.
pub const USE_KINDS: &[SyntaxKind] = &[SyntaxKind::PATH_TYPE, SyntaxKind::CALL_EXPR];

/// A use of a workspace type or function, as an item's summary holds it: a huge file has
/// millions, so it is a third of a [`Reference`]'s size; [`Use::reference`] makes the reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    pub name: Box<str>,
    pub range: TextRange,
    /// A call (of a function), else a type name.
    pub call: bool,
}

impl Use {
    /// The reference this use is, moved by `by`.
    pub fn reference(&self, by: TextSize) -> Reference {
        let (namespace, context) = if self.call { (DefKind::Function, RefContext::Call) } else { (DefKind::Type, RefContext::TypeUse) };
        Reference { namespace, name: self.name.to_string(), range: self.range + by, quoted: false, context }
    }
}

/// The use of a workspace type or function a node is, for navigation: `-> Review`,
/// `classify(text)`. It looks at the node and its children only.
pub fn use_at(node: &SyntaxNode) -> Option<Use> {
    let (call, segments): (bool, Vec<ast::NameRef>) = match node.kind() {
        SyntaxKind::PATH_TYPE => (false, node.children().filter_map(ast::NameRef::cast).collect()),
        SyntaxKind::CALL_EXPR => {
            let Some(Expr::PathExpr(path)) = ast::CallExpr::cast(node.clone()).and_then(|c| c.callee()) else { return None };
            (true, path.segments().collect())
        }
        _ => return None,
    };
    let [only] = segments.as_slice() else { return None };
    Some(Use { name: only.text().into_boxed_str(), range: only.syntax().text_range(), call })
}

fn def_kind(item: &Item) -> DefKind {
    match item {
        Item::Metadata(_) => unreachable!("metadata has no name"),
        Item::Agent(_) => DefKind::Agent,
        Item::Policy(_) => DefKind::Policy,
        Item::TypeDef(_) => DefKind::Type,
        Item::Function(_) => DefKind::Function,
        Item::Schedule(_) => DefKind::Schedule,
        Item::Channel(_) => DefKind::Channel,
        Item::Memory(_) => DefKind::Memory,
        Item::Webhook(_) => DefKind::Webhook,
    }
}

fn collect_definition(item: &Item, items: &mut FileItems) {
    if matches!(item, Item::Metadata(_)) {
        return;
    }
    let Some(name) = item.name() else { return };
    let name_text = name.text();
    items.defs.push(ItemDef {
        kind: def_kind(item),
        name: name_text.clone(),
        name_range: name.syntax().text_range(),
        range: item.syntax().text_range(),
    });
    match item {
        Item::Policy(policy) => {
            for parent in policy.extends() {
                items.references.push(Reference {
                    namespace: DefKind::Policy,
                    name: parent.text(),
                    range: parent.syntax().text_range(),
                    quoted: false,
                    context: RefContext::Extends { child: name_text.clone() },
                });
            }
        }
        Item::Agent(agent) => {
            if let Some(Expr::ArrayExpr(list)) = agent.field("policies").and_then(|f| f.value()) {
                for element in list.elements() {
                    if let Some((applied, range, quoted)) = name_like(&element) {
                        items.references.push(Reference {
                            namespace: DefKind::Policy,
                            name: applied,
                            range,
                            quoted,
                            context: RefContext::AppliedPolicy { agent: name_text.clone() },
                        });
                    }
                }
            }
        }
        Item::Schedule(_) | Item::Channel(_) | Item::Webhook(_) => {
            let Some(entry_item) = EntryItem::cast(item.syntax().clone()) else { return };
            let owner = entry_item.keyword();
            for entry in entry_item.body().into_iter().flat_map(|b| b.entries().collect::<Vec<_>>()) {
                if entry.key().is_some_and(|k| k.text() == "agent") {
                    if let Some((target, range, quoted)) = entry.value().as_ref().and_then(name_like) {
                        items.references.push(Reference {
                            namespace: DefKind::Agent,
                            name: target,
                            range,
                            quoted,
                            context: RefContext::AgentTarget { owner },
                        });
                    }
                }
            }
        }
        _ => {}
    }
}

/// A name written as a path (`reviewer`) or a string (`"reviewer"`).
pub fn name_like(expr: &Expr) -> Option<(String, TextRange, bool)> {
    match expr {
        Expr::PathExpr(path) => Some((path.text(), path.syntax().text_range(), false)),
        Expr::Literal(lit) if lit.token()?.kind() == SyntaxKind::STRING => Some((lit.string_value()?, lit.syntax().text_range(), true)),
        _ => None,
    }
}

/// Definitions an agent makes for itself (inline policies, functions), for duplicate checks.
pub fn agent_local_defs(agent: &ast::Agent) -> Vec<(DefKind, ast::Name)> {
    let mut defs = Vec::new();
    defs.extend(agent.policies().filter_map(|p| p.name()).map(|n| (DefKind::Policy, n)));
    defs.extend(agent.functions().filter_map(|f| f.name()).map(|n| (DefKind::Function, n)));
    defs
}
