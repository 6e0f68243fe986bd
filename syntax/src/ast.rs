//! Typed views over the untyped tree. Every accessor returns `Option` (or an iterator): a tree
//! built from broken input may lack any part.

use crate::{SyntaxKind, SyntaxKind::*, SyntaxNode, SyntaxToken};

pub trait AstNode: Sized {
    fn can_cast(kind: SyntaxKind) -> bool;
    fn cast(node: SyntaxNode) -> Option<Self>;
    fn syntax(&self) -> &SyntaxNode;
}

fn child<N: AstNode>(parent: &SyntaxNode) -> Option<N> {
    parent.children().find_map(N::cast)
}

fn children<N: AstNode>(parent: &SyntaxNode) -> impl Iterator<Item = N> {
    parent.children().filter_map(N::cast)
}

fn token(parent: &SyntaxNode, kind: SyntaxKind) -> Option<SyntaxToken> {
    parent.children_with_tokens().filter_map(|e| e.into_token()).find(|t| t.kind() == kind)
}

macro_rules! ast_node {
    ($($(#[$meta:meta])* $name:ident = $kind:ident;)*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name {
            pub(crate) syntax: SyntaxNode,
        }

        impl AstNode for $name {
            fn can_cast(kind: SyntaxKind) -> bool {
                kind == $kind
            }
            fn cast(node: SyntaxNode) -> Option<Self> {
                (node.kind() == $kind).then(|| $name { syntax: node })
            }
            fn syntax(&self) -> &SyntaxNode {
                &self.syntax
            }
        }
    )*};
}

macro_rules! ast_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant($variant),)*
        }

        impl AstNode for $name {
            fn can_cast(kind: SyntaxKind) -> bool {
                false $(|| $variant::can_cast(kind))*
            }
            fn cast(node: SyntaxNode) -> Option<Self> {
                $(if $variant::can_cast(node.kind()) {
                    return Some($name::$variant($variant { syntax: node }));
                })*
                None
            }
            fn syntax(&self) -> &SyntaxNode {
                match self {
                    $($name::$variant(it) => &it.syntax,)*
                }
            }
        }
    };
}

ast_node! {
    SourceFile = SOURCE_FILE;
    Name = NAME;
    NameRef = NAME_REF;
    Metadata = METADATA;
    Agent = AGENT;
    Policy = POLICY;
    TypeDef = TYPE_DEF;
    Function = FUNCTION;
    Schedule = SCHEDULE;
    Channel = CHANNEL;
    Memory = MEMORY;
    Webhook = WEBHOOK;
    ParamList = PARAM_LIST;
    Param = PARAM;
    RetType = RET_TYPE;
    AgentBody = AGENT_BODY;
    AgentField = AGENT_FIELD;
    WithBlock = WITH_BLOCK;
    WithAttr = WITH_ATTR;
    ExtendsClause = EXTENDS_CLAUSE;
    PolicyBody = POLICY_BODY;
    Rule = RULE;
    Phrase = PHRASE;
    Qualifier = QUALIFIER;
    Guard = GUARD;
    EntryBlock = ENTRY_BLOCK;
    Entry = ENTRY;
    PathType = PATH_TYPE;
    GenericArgs = GENERIC_ARGS;
    RecordType = RECORD_TYPE;
    FieldDef = FIELD_DEF;
    ArrayType = ARRAY_TYPE;
    OptionalType = OPTIONAL_TYPE;
    Block = BLOCK;
    LetStmt = LET_STMT;
    ExprStmt = EXPR_STMT;
    Literal = LITERAL;
    PathExpr = PATH_EXPR;
    ParenExpr = PAREN_EXPR;
    ArrayExpr = ARRAY_EXPR;
    RecordExpr = RECORD_EXPR;
    RecordField = RECORD_FIELD;
    StructExpr = STRUCT_EXPR;
    CallExpr = CALL_EXPR;
    ArgList = ARG_LIST;
    NamedArg = NAMED_ARG;
    FieldExpr = FIELD_EXPR;
    IndexExpr = INDEX_EXPR;
    PrefixExpr = PREFIX_EXPR;
    BinExpr = BIN_EXPR;
    LambdaExpr = LAMBDA_EXPR;
    IfExpr = IF_EXPR;
    ForExpr = FOR_EXPR;
    WhileExpr = WHILE_EXPR;
    MatchExpr = MATCH_EXPR;
    MatchArm = MATCH_ARM;
    TryExpr = TRY_EXPR;
    CatchClause = CATCH_CLAUSE;
    ReturnExpr = RETURN_EXPR;
    BreakExpr = BREAK_EXPR;
    ContinueExpr = CONTINUE_EXPR;
    BlockExpr = BLOCK_EXPR;
}

ast_enum! {
    /// A top-level form.
    Item { Metadata, Agent, Policy, TypeDef, Function, Schedule, Channel, Memory, Webhook }
}

ast_enum! {
    TypeRef { PathType, RecordType, ArrayType, OptionalType }
}

ast_enum! {
    Expr {
        Literal, PathExpr, ParenExpr, ArrayExpr, RecordExpr, StructExpr, CallExpr, FieldExpr,
        IndexExpr, PrefixExpr, BinExpr, LambdaExpr, IfExpr, ForExpr, WhileExpr, MatchExpr,
        TryExpr, ReturnExpr, BreakExpr, ContinueExpr, BlockExpr, Phrase,
    }
}

ast_enum! {
    /// An item-like block whose body is `{ entry … }`.
    EntryItem { Schedule, Channel, Memory, Webhook }
}

impl SourceFile {
    pub fn items(&self) -> impl Iterator<Item = Item> {
        children(&self.syntax)
    }
}

/// A node's text. A name is one token: its text is read as it is, where `SyntaxText` would walk
/// the node's tokens (names are read for every item after every edit).
fn node_text(node: &SyntaxNode) -> String {
    match node.first_token() {
        Some(token) if token.text_range() == node.text_range() => token.text().to_string(),
        _ => node.text().to_string(),
    }
}

impl Name {
    /// The name's text; a quoted key (`"content": …`) is returned without its quotes.
    pub fn text(&self) -> String {
        let text = node_text(&self.syntax);
        text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).map(str::to_string).unwrap_or(text)
    }
}

impl NameRef {
    pub fn text(&self) -> String {
        node_text(&self.syntax)
    }
}

impl Item {
    pub fn name(&self) -> Option<Name> {
        child(self.syntax())
    }
}

impl Metadata {
    pub fn entries(&self) -> impl Iterator<Item = Entry> {
        self.body().into_iter().flat_map(|b| b.entries().collect::<Vec<_>>())
    }
    pub fn body(&self) -> Option<EntryBlock> {
        child(&self.syntax)
    }
}

impl EntryItem {
    pub fn name(&self) -> Option<Name> {
        child(self.syntax())
    }
    pub fn body(&self) -> Option<EntryBlock> {
        child(self.syntax())
    }
    /// The keyword that opened the item (`schedule`, `channel`, …).
    pub fn keyword(&self) -> &'static str {
        match self {
            EntryItem::Schedule(_) => "schedule",
            EntryItem::Channel(_) => "channel",
            EntryItem::Memory(_) => "memory",
            EntryItem::Webhook(_) => "webhook",
        }
    }
}

impl EntryBlock {
    pub fn entries(&self) -> impl Iterator<Item = Entry> {
        children(&self.syntax)
    }
    pub fn policies(&self) -> impl Iterator<Item = Policy> {
        children(&self.syntax)
    }
}

impl Entry {
    pub fn key(&self) -> Option<Name> {
        child(&self.syntax)
    }
    pub fn value(&self) -> Option<Expr> {
        child(&self.syntax)
    }
    pub fn block(&self) -> Option<EntryBlock> {
        child(&self.syntax)
    }
}

impl Agent {
    pub fn name(&self) -> Option<Name> {
        child(&self.syntax)
    }
    pub fn param_list(&self) -> Option<ParamList> {
        child(&self.syntax)
    }
    pub fn ret_type(&self) -> Option<RetType> {
        child(&self.syntax)
    }
    pub fn body(&self) -> Option<AgentBody> {
        child(&self.syntax)
    }
    pub fn fields(&self) -> impl Iterator<Item = AgentField> {
        self.body().into_iter().flat_map(|b| children::<AgentField>(&b.syntax).collect::<Vec<_>>())
    }
    pub fn field(&self, name: &str) -> Option<AgentField> {
        self.fields().find(|f| f.name().is_some_and(|n| n.text() == name))
    }
    pub fn policies(&self) -> impl Iterator<Item = Policy> {
        self.body().into_iter().flat_map(|b| children::<Policy>(&b.syntax).collect::<Vec<_>>())
    }
    pub fn functions(&self) -> impl Iterator<Item = Function> {
        self.body().into_iter().flat_map(|b| children::<Function>(&b.syntax).collect::<Vec<_>>())
    }
    pub fn with_blocks(&self) -> impl Iterator<Item = WithBlock> {
        self.body().into_iter().flat_map(|b| children::<WithBlock>(&b.syntax).collect::<Vec<_>>())
    }
}

impl ParamList {
    pub fn params(&self) -> impl Iterator<Item = Param> {
        children(&self.syntax)
    }
}

impl Param {
    pub fn name(&self) -> Option<Name> {
        child(&self.syntax)
    }
    pub fn ty(&self) -> Option<TypeRef> {
        child(&self.syntax)
    }
}

impl RetType {
    pub fn ty(&self) -> Option<TypeRef> {
        child(&self.syntax)
    }
}

impl AgentField {
    pub fn name(&self) -> Option<Name> {
        child(&self.syntax)
    }
    pub fn value(&self) -> Option<Expr> {
        child(&self.syntax)
    }
}

impl WithBlock {
    pub fn attrs(&self) -> impl Iterator<Item = WithAttr> {
        self.syntax.children().filter(|n| n.kind() == WITH_ATTR_LIST).flat_map(|l| children::<WithAttr>(&l).collect::<Vec<_>>())
    }
    pub fn body(&self) -> Option<Block> {
        child(&self.syntax)
    }
}

impl WithAttr {
    pub fn name(&self) -> Option<Name> {
        child(&self.syntax)
    }
    pub fn value(&self) -> Option<Expr> {
        child(&self.syntax)
    }
}

impl Policy {
    pub fn name(&self) -> Option<Name> {
        child(&self.syntax)
    }
    pub fn extends(&self) -> impl Iterator<Item = NameRef> {
        child::<ExtendsClause>(&self.syntax).into_iter().flat_map(|c| children::<NameRef>(&c.syntax).collect::<Vec<_>>())
    }
    pub fn body(&self) -> Option<PolicyBody> {
        child(&self.syntax)
    }
    pub fn rules(&self) -> impl Iterator<Item = Rule> {
        self.body().into_iter().flat_map(|b| children::<Rule>(&b.syntax).collect::<Vec<_>>())
    }
}

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    Allow,
    Deny,
    Require,
    Audit,
    Conditions,
}

impl RuleKind {
    /// The keyword that writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Allow => "allow",
            RuleKind::Deny => "deny",
            RuleKind::Require => "require",
            RuleKind::Audit => "audit",
            RuleKind::Conditions => "conditions",
        }
    }
}

impl Rule {
    /// `None` for a rule whose kind word is unknown (a syntax error was reported).
    pub fn kind(&self) -> Option<RuleKind> {
        let first = self.syntax.first_token()?;
        Some(match first.kind() {
            ALLOW_KW => RuleKind::Allow,
            DENY_KW => RuleKind::Deny,
            REQUIRE_KW => RuleKind::Require,
            AUDIT_KW => RuleKind::Audit,
            CONDITIONS_KW => RuleKind::Conditions,
            _ => return None,
        })
    }
    pub fn kind_token(&self) -> Option<SyntaxToken> {
        self.syntax.first_token()
    }
    pub fn body(&self) -> Option<Expr> {
        child(&self.syntax)
    }
    pub fn guard(&self) -> Option<Guard> {
        child(&self.syntax)
    }
}

impl Phrase {
    /// The operation the phrase is about (`legal_authorization` in `legal_authorization for x`).
    pub fn subject(&self) -> Option<Expr> {
        child(&self.syntax)
    }
    pub fn qualifiers(&self) -> impl Iterator<Item = Qualifier> {
        children(&self.syntax)
    }
}

impl Qualifier {
    pub fn word(&self) -> Option<SyntaxToken> {
        self.syntax.first_token()
    }
    pub fn value(&self) -> Option<Expr> {
        child(&self.syntax)
    }
}

impl Guard {
    pub fn condition(&self) -> Option<Expr> {
        child(&self.syntax)
    }
}

impl TypeDef {
    pub fn name(&self) -> Option<Name> {
        child(&self.syntax)
    }
    pub fn ty(&self) -> Option<TypeRef> {
        child(&self.syntax)
    }
}

impl Function {
    pub fn name(&self) -> Option<Name> {
        child(&self.syntax)
    }
    pub fn param_list(&self) -> Option<ParamList> {
        child(&self.syntax)
    }
    pub fn ret_type(&self) -> Option<RetType> {
        child(&self.syntax)
    }
    pub fn body(&self) -> Option<Block> {
        child(&self.syntax)
    }
}

impl PathType {
    pub fn segments(&self) -> impl Iterator<Item = NameRef> {
        children(&self.syntax)
    }
    pub fn generic_args(&self) -> impl Iterator<Item = TypeRef> {
        child::<GenericArgs>(&self.syntax).into_iter().flat_map(|g| children::<TypeRef>(&g.syntax).collect::<Vec<_>>())
    }
}

impl RecordType {
    pub fn fields(&self) -> impl Iterator<Item = FieldDef> {
        children(&self.syntax)
    }
}

impl FieldDef {
    pub fn name(&self) -> Option<Name> {
        child(&self.syntax)
    }
    pub fn ty(&self) -> Option<TypeRef> {
        child(&self.syntax)
    }
}

impl ArrayType {
    pub fn element(&self) -> Option<TypeRef> {
        child(&self.syntax)
    }
}

impl OptionalType {
    pub fn inner(&self) -> Option<TypeRef> {
        child(&self.syntax)
    }
}

/// The kind of value a literal token writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LiteralKind {
    Int,
    Float,
    Quantity,
    String,
    SecretRef,
    Bool,
    Null,
}

impl Literal {
    pub fn token(&self) -> Option<SyntaxToken> {
        self.syntax.first_token()
    }
    pub fn kind(&self) -> Option<LiteralKind> {
        Some(match self.token()?.kind() {
            INT => LiteralKind::Int,
            FLOAT => LiteralKind::Float,
            QUANTITY => LiteralKind::Quantity,
            STRING => LiteralKind::String,
            SECRET_REF => LiteralKind::SecretRef,
            TRUE_KW | FALSE_KW => LiteralKind::Bool,
            NULL_KW => LiteralKind::Null,
            _ => return None,
        })
    }
    /// The value of a string literal with escapes resolved; `None` for other literals.
    pub fn string_value(&self) -> Option<String> {
        let token = self.token()?;
        (token.kind() == STRING).then(|| unescape(token.text()))
    }
}

/// Resolves the escapes of a string token's text (quotes included or not).
pub fn unescape(quoted: &str) -> String {
    let inner = quoted.strip_prefix('"').unwrap_or(quoted);
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some(c @ ('"' | '\\' | '/')) => out.push(c),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

impl PathExpr {
    pub fn segments(&self) -> impl Iterator<Item = NameRef> {
        children(&self.syntax)
    }
    /// The path as written, `a::b`.
    pub fn text(&self) -> String {
        self.segments().map(|s| s.text()).collect::<Vec<_>>().join("::")
    }
}

impl ParenExpr {
    pub fn expr(&self) -> Option<Expr> {
        child(&self.syntax)
    }
}

impl ArrayExpr {
    pub fn elements(&self) -> impl Iterator<Item = Expr> {
        children(&self.syntax)
    }
}

impl RecordExpr {
    pub fn fields(&self) -> impl Iterator<Item = RecordField> {
        children(&self.syntax)
    }
}

impl StructExpr {
    pub fn path(&self) -> Option<PathExpr> {
        child(&self.syntax)
    }
    pub fn fields(&self) -> impl Iterator<Item = RecordField> {
        children(&self.syntax)
    }
}

impl RecordField {
    pub fn name(&self) -> Option<Name> {
        child(&self.syntax)
    }
    pub fn value(&self) -> Option<Expr> {
        child(&self.syntax)
    }
}

impl CallExpr {
    pub fn callee(&self) -> Option<Expr> {
        child(&self.syntax)
    }
    pub fn arg_list(&self) -> Option<ArgList> {
        child(&self.syntax)
    }
}

impl ArgList {
    pub fn args(&self) -> impl Iterator<Item = Expr> {
        children(&self.syntax)
    }
    pub fn named_args(&self) -> impl Iterator<Item = NamedArg> {
        children(&self.syntax)
    }
}

impl NamedArg {
    pub fn name(&self) -> Option<Name> {
        child(&self.syntax)
    }
    pub fn value(&self) -> Option<Expr> {
        child(&self.syntax)
    }
}

impl FieldExpr {
    pub fn receiver(&self) -> Option<Expr> {
        child(&self.syntax)
    }
    pub fn field(&self) -> Option<NameRef> {
        child(&self.syntax)
    }
}

impl IndexExpr {
    pub fn base(&self) -> Option<Expr> {
        child(&self.syntax)
    }
    pub fn index(&self) -> Option<Expr> {
        children(&self.syntax).nth(1)
    }
}

impl PrefixExpr {
    pub fn op(&self) -> Option<SyntaxToken> {
        self.syntax.first_token()
    }
    pub fn operand(&self) -> Option<Expr> {
        child(&self.syntax)
    }
}

impl BinExpr {
    pub fn lhs(&self) -> Option<Expr> {
        child(&self.syntax)
    }
    pub fn rhs(&self) -> Option<Expr> {
        children(&self.syntax).nth(1)
    }
    pub fn op(&self) -> Option<SyntaxToken> {
        self.syntax.children_with_tokens().filter_map(|e| e.into_token()).find(|t| !t.kind().is_trivia())
    }
}

impl LambdaExpr {
    pub fn body(&self) -> Option<Expr> {
        child(&self.syntax)
    }
}

impl IfExpr {
    pub fn condition(&self) -> Option<Expr> {
        child(&self.syntax)
    }
    pub fn then_branch(&self) -> Option<Block> {
        child(&self.syntax)
    }
}

impl ReturnExpr {
    pub fn expr(&self) -> Option<Expr> {
        child(&self.syntax)
    }
}

impl Block {
    pub fn statements(&self) -> impl Iterator<Item = SyntaxNode> {
        self.syntax.children()
    }
}

impl LetStmt {
    pub fn initializer(&self) -> Option<Expr> {
        child(&self.syntax)
    }
}

impl ExprStmt {
    pub fn expr(&self) -> Option<Expr> {
        child(&self.syntax)
    }
}

/// The first token of `kind` directly inside `node`.
pub fn direct_token(node: &SyntaxNode, kind: SyntaxKind) -> Option<SyntaxToken> {
    token(node, kind)
}
