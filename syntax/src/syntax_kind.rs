//! Every kind of token and node in a `.sym` tree.

/// Token and node kinds. Tokens come first; `ERROR` and everything after it are nodes.
///
/// Keywords are contextual: the lexer produces `IDENT` for every word and the parser remaps a
/// word to its `*_KW` kind only where it acts as a keyword, so that `memory`, `type` or `agent`
/// stay usable as names and record keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u16)]
#[allow(non_camel_case_types)]
pub enum SyntaxKind {
    // Trivia
    WHITESPACE = 0,
    LINE_COMMENT,
    BLOCK_COMMENT,

    // Literals and names
    IDENT,
    INT,
    FLOAT,
    /// A number with a unit: `30s`, `6months`, `90.days`, `512MB`. The unit is checked by analysis.
    QUANTITY,
    STRING,
    /// `vault://path/to/secret`
    SECRET_REF,

    // Punctuation
    L_BRACE,
    R_BRACE,
    L_PAREN,
    R_PAREN,
    L_BRACK,
    R_BRACK,
    COMMA,
    SEMI,
    COLON,
    COLON2,
    DOT,
    QUESTION,
    AT,
    DOLLAR,
    EQ,
    EQ2,
    NEQ,
    LT,
    GT,
    LTEQ,
    GTEQ,
    PLUS,
    MINUS,
    STAR,
    SLASH,
    PERCENT,
    BANG,
    AMP2,
    PIPE2,
    PIPE,
    AMP,
    FAT_ARROW,
    THIN_ARROW,
    PLUS_EQ,
    MINUS_EQ,
    STAR_EQ,
    SLASH_EQ,
    PERCENT_EQ,
    /// A character that starts no token.
    UNKNOWN,

    // Contextual keywords (remapped from IDENT by the parser)
    METADATA_KW,
    AGENT_KW,
    POLICY_KW,
    TYPE_KW,
    FUNCTION_KW,
    SCHEDULE_KW,
    CHANNEL_KW,
    MEMORY_KW,
    WEBHOOK_KW,
    WITH_KW,
    EXTENDS_KW,
    LET_KW,
    IF_KW,
    ELSE_KW,
    FOR_KW,
    WHILE_KW,
    IN_KW,
    MATCH_KW,
    TRY_KW,
    CATCH_KW,
    RETURN_KW,
    BREAK_KW,
    CONTINUE_KW,
    TRUE_KW,
    FALSE_KW,
    NULL_KW,
    NOT_KW,
    ALLOW_KW,
    DENY_KW,
    REQUIRE_KW,
    AUDIT_KW,
    CONDITIONS_KW,

    EOF,

    // Nodes
    ERROR,
    SOURCE_FILE,
    NAME,
    NAME_REF,

    // Items
    METADATA,
    AGENT,
    POLICY,
    TYPE_DEF,
    FUNCTION,
    SCHEDULE,
    CHANNEL,
    MEMORY,
    WEBHOOK,

    PARAM_LIST,
    PARAM,
    RET_TYPE,
    AGENT_BODY,
    /// `name = value` inside an agent body: `capabilities`, `policies`, `implementation`, `security`, …
    AGENT_FIELD,
    WITH_BLOCK,
    WITH_ATTR_LIST,
    WITH_ATTR,

    EXTENDS_CLAUSE,
    POLICY_BODY,
    RULE,
    /// `op qualifier expr qualifier expr …` in a rule: `legal_authorization for active_reconnaissance`.
    PHRASE,
    QUALIFIER,
    GUARD,

    /// `{ … }` of `metadata`, `schedule`, `channel`, `memory`, `webhook` and their nested blocks.
    ENTRY_BLOCK,
    /// `key = value`, `key: value`, `key value` or `key { … }` inside an entry block.
    ENTRY,

    // Types
    PATH_TYPE,
    GENERIC_ARGS,
    RECORD_TYPE,
    FIELD_DEF,
    ARRAY_TYPE,
    OPTIONAL_TYPE,

    // Statements
    BLOCK,
    LET_STMT,
    EXPR_STMT,

    // Expressions
    LITERAL,
    PATH_EXPR,
    PAREN_EXPR,
    ARRAY_EXPR,
    RECORD_EXPR,
    RECORD_FIELD,
    STRUCT_EXPR,
    CALL_EXPR,
    ARG_LIST,
    NAMED_ARG,
    FIELD_EXPR,
    INDEX_EXPR,
    PREFIX_EXPR,
    BIN_EXPR,
    LAMBDA_EXPR,
    LAMBDA_PARAMS,
    IF_EXPR,
    LET_CONDITION,
    FOR_EXPR,
    WHILE_EXPR,
    MATCH_EXPR,
    MATCH_ARM_LIST,
    MATCH_ARM,
    TRY_EXPR,
    CATCH_CLAUSE,
    RETURN_EXPR,
    BREAK_EXPR,
    CONTINUE_EXPR,
    BLOCK_EXPR,

    // Patterns
    WILDCARD_PAT,
    IDENT_PAT,
    LITERAL_PAT,
    TUPLE_STRUCT_PAT,

    #[doc(hidden)]
    __LAST,
}

use SyntaxKind::*;

impl SyntaxKind {
    pub fn is_trivia(self) -> bool {
        matches!(self, WHITESPACE | LINE_COMMENT | BLOCK_COMMENT)
    }

    pub fn is_keyword(self) -> bool {
        (METADATA_KW as u16..=CONDITIONS_KW as u16).contains(&(self as u16))
    }

    pub fn is_token(self) -> bool {
        (self as u16) < (ERROR as u16)
    }

    /// Every kind, tokens first, in declaration order.
    pub fn all() -> impl Iterator<Item = SyntaxKind> {
        (0..__LAST as u16).map(|raw| <SymLanguage as rowan::Language>::kind_from_raw(rowan::SyntaxKind(raw)))
    }

    /// Every kind of node the grammar builds, `SOURCE_FILE` through the last pattern kind (`ERROR`
    /// excluded). `docs/dsl-reference.md` has a production for each (a test checks it).
    pub fn all_node_kinds() -> impl Iterator<Item = SyntaxKind> {
        Self::all().filter(|kind| (*kind as u16) > ERROR as u16)
    }

    /// The contextual keyword a word stands for, if any.
    pub fn keyword(word: &str) -> Option<SyntaxKind> {
        Some(match word {
            "metadata" => METADATA_KW,
            "agent" => AGENT_KW,
            "policy" => POLICY_KW,
            "type" => TYPE_KW,
            "function" => FUNCTION_KW,
            "schedule" => SCHEDULE_KW,
            "channel" => CHANNEL_KW,
            "memory" => MEMORY_KW,
            "webhook" => WEBHOOK_KW,
            "with" => WITH_KW,
            "extends" => EXTENDS_KW,
            "let" => LET_KW,
            "if" => IF_KW,
            "else" => ELSE_KW,
            "for" => FOR_KW,
            "while" => WHILE_KW,
            "in" => IN_KW,
            "match" => MATCH_KW,
            "try" => TRY_KW,
            "catch" => CATCH_KW,
            "return" => RETURN_KW,
            "break" => BREAK_KW,
            "continue" => CONTINUE_KW,
            "true" => TRUE_KW,
            "false" => FALSE_KW,
            "null" => NULL_KW,
            "not" => NOT_KW,
            "allow" => ALLOW_KW,
            "deny" => DENY_KW,
            "require" => REQUIRE_KW,
            "audit" => AUDIT_KW,
            "conditions" => CONDITIONS_KW,
            _ => return None,
        })
    }

    /// How a token of this kind is written in messages ("expected `{`").
    pub fn describe(self) -> &'static str {
        match self {
            IDENT => "a name",
            INT => "an integer",
            FLOAT => "a decimal",
            QUANTITY => "a duration or size",
            STRING => "a string",
            SECRET_REF => "a secret reference",
            L_BRACE => "`{`",
            R_BRACE => "`}`",
            L_PAREN => "`(`",
            R_PAREN => "`)`",
            L_BRACK => "`[`",
            R_BRACK => "`]`",
            COMMA => "`,`",
            SEMI => "`;`",
            COLON => "`:`",
            COLON2 => "`::`",
            DOT => "`.`",
            EQ => "`=`",
            FAT_ARROW => "`=>`",
            THIN_ARROW => "`->`",
            GT => "`>`",
            LT => "`<`",
            IN_KW => "`in`",
            EOF => "end of file",
            _ => "a token",
        }
    }
}

impl From<SyntaxKind> for rowan::SyntaxKind {
    fn from(kind: SyntaxKind) -> Self {
        rowan::SyntaxKind(kind as u16)
    }
}

/// The rowan language tag for `.sym` trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SymLanguage {}

impl rowan::Language for SymLanguage {
    type Kind = SyntaxKind;

    fn kind_from_raw(raw: rowan::SyntaxKind) -> SyntaxKind {
        assert!(raw.0 < __LAST as u16);
        // SAFETY: `SyntaxKind` is `repr(u16)` with contiguous discriminants starting at 0, and the
        // assertion above checks that `raw.0` is below the last discriminant, so `raw.0` names a
        // variant.
        unsafe { std::mem::transmute::<u16, SyntaxKind>(raw.0) }
    }

    fn kind_to_raw(kind: SyntaxKind) -> rowan::SyntaxKind {
        kind.into()
    }
}

pub type SyntaxNode = rowan::SyntaxNode<SymLanguage>;
pub type SyntaxToken = rowan::SyntaxToken<SymLanguage>;
pub type SyntaxElement = rowan::SyntaxElement<SymLanguage>;
