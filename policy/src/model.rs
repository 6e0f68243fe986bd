//! The policy model: what a `.sym` file says about permissions, lowered from the syntax tree once
//! and shared by the static checks and the run-time evaluator.

use std::sync::Arc;

use symbiont_syntax::TextRange;

use crate::{expr::Expr, Value};

/// Where something is written: file, 1-based line and column, and byte range.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceLoc {
    pub file: Arc<str>,
    pub line: u32,
    pub col: u32,
    pub range: TextRange,
}

impl std::fmt::Display for SourceLoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// What a rule does: the syntax's own kinds, one meaning each (`docs/policy-semantics.md`).
pub use symbiont_syntax::ast::RuleKind;

/// An operation a rule is about, with the names its parameters bind (`read(file)`).
#[derive(Debug, Clone, PartialEq)]
pub struct OpPattern {
    pub name: String,
    /// Parameter names; `any` matches without binding.
    pub params: Vec<String>,
    pub loc: SourceLoc,
}

/// A compiled boolean expression with its source text. The expression and the text are shared:
/// the analysis moves every rule of an item to where the item is in its file (a new location),
/// and a copy of each expression was a large part of its memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    pub expr: Arc<Expr>,
    pub text: Arc<str>,
    pub loc: SourceLoc,
}

impl Guard {
    /// Whether the guard is the literal `true` (the rule is unconditional).
    pub fn is_trivially_true(&self) -> bool {
        *self.expr == Expr::Lit(Value::Bool(true))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub kind: RuleKind,
    /// `allow`/`deny`: the operations. `require`/`audit`/`conditions`: the operations they are
    /// scoped to (`for …`), empty for all.
    pub ops: Vec<OpPattern>,
    /// The `if` guard (and `unless` qualifiers, negated).
    pub guard: Option<Box<Guard>>,
    /// `require`: what must hold for an allow to take effect.
    pub preconditions: Vec<Guard>,
    /// `audit` and `conditions`: the obligation's fields; qualifiers of phrases (`with x`).
    pub obligations: Vec<(String, Value)>,
    /// The rule's text as written (one line), for explanations; shared, as a guard's is.
    pub text: Arc<str>,
    pub loc: SourceLoc,
}

impl Rule {
    /// Unconditional: no guard, or the literal `if true`.
    pub fn is_unconditional(&self) -> bool {
        self.guard.as_deref().is_none_or(Guard::is_trivially_true)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDef {
    pub name: String,
    pub extends: Vec<(String, SourceLoc)>,
    /// Shared: the effective policies of every agent that reaches this one point at the same rules.
    pub rules: Vec<Arc<Rule>>,
    pub loc: SourceLoc,
    /// The agent an inline policy belongs to.
    pub owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentDef {
    pub name: String,
    pub capabilities: Vec<(String, SourceLoc)>,
    /// Named top-level policies applied with `policies = [...]`.
    pub applied: Vec<(String, SourceLoc)>,
    /// Inline `policy NAME { … }` blocks.
    pub inline: Vec<Arc<PolicyDef>>,
    /// `implementation = [...]`: source files or globs, relative to the `.sym` file's directory.
    pub implementation: Vec<(String, SourceLoc)>,
    /// The runtime settings written in `security = { … }` and `with` attributes.
    pub security: Security,
    pub loc: SourceLoc,
}

/// Isolation the runtime can provide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isolation {
    /// Chosen by the runtime's risk assessment.
    Auto,
    /// Docker.
    Tier1,
    /// gVisor.
    Tier2,
    /// A KVM microVM.
    Tier3,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Auto => "auto",
            Isolation::Tier1 => "Tier1",
            Isolation::Tier2 => "Tier2",
            Isolation::Tier3 => "Tier3",
        }
    }
}

/// Reads an isolation word: a tier (`Tier2`), a backend (`gvisor`) or `auto`, in any case.
pub fn parse_isolation(value: &str) -> Option<Isolation> {
    Some(match value.to_ascii_lowercase().as_str() {
        "tier1" | "docker" => Isolation::Tier1,
        "tier2" | "gvisor" => Isolation::Tier2,
        "tier3" | "firecracker" => Isolation::Tier3,
        "auto" | "automatic" => Isolation::Auto,
        _ => return None,
    })
}

/// An agent's runtime settings. Where the `security` record and `with` attributes both set one,
/// the most restrictive value holds: the higher tier, the smaller limit, the shorter timeout.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Security {
    /// The isolation word as written, when one is (`Err` keeps a word the runtime cannot honour,
    /// so that `run` refuses it instead of choosing weaker isolation).
    pub isolation: Option<Result<Isolation, String>>,
    pub memory_bytes: Option<u64>,
    pub cpus: Option<f64>,
    pub timeout: Option<std::time::Duration>,
}

impl Security {
    pub(crate) fn merge_isolation(&mut self, word: String) {
        let new = parse_isolation(&word).ok_or(word);
        self.isolation = Some(match (self.isolation.take(), new) {
            (Some(Err(bad)), _) | (_, Err(bad)) => Err(bad),
            (Some(Ok(a)), Ok(b)) => Ok(a.max(b)),
            (None, Ok(b)) => Ok(b),
        });
    }
    pub(crate) fn merge_memory(&mut self, bytes: u64) {
        self.memory_bytes = Some(self.memory_bytes.map_or(bytes, |m| m.min(bytes)));
    }
    pub(crate) fn merge_cpus(&mut self, cpus: f64) {
        self.cpus = Some(self.cpus.map_or(cpus, |c| c.min(cpus)));
    }
    pub(crate) fn merge_timeout(&mut self, timeout: std::time::Duration) {
        self.timeout = Some(self.timeout.map_or(timeout, |t| t.min(timeout)));
    }
}

/// Something lowering could not give a precise meaning to; the static checks report these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowerIssue {
    pub kind: IssueKind,
    pub message: String,
    pub loc: SourceLoc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueKind {
    /// A guard or requirement the engine cannot evaluate; the rule fails closed.
    UnevaluableGuard,
    /// A rule body that names no operation.
    NotAnOperation,
    /// A `secret_access` guard compares the secret's name with a string no canonical name can
    /// equal or contain (`crate::names::secret_name`); the comparison fails closed.
    NonCanonicalSecretName,
    /// An HTTP guard compares the request's host with a string no canonical host can equal or
    /// contain (`crate::names::host_is_canonical`); the comparison fails closed.
    NonCanonicalHost,
}

/// A level name written in an ordered comparison, checked against the workspace's levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelLiteral {
    /// The list the compared attribute names, if its name says.
    pub kind: Option<crate::LevelKind>,
    pub name: String,
    pub loc: SourceLoc,
}

/// Everything one file says about policies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileModel {
    pub policies: Vec<Arc<PolicyDef>>,
    pub agents: Vec<Arc<AgentDef>>,
    pub issues: Vec<LowerIssue>,
    pub level_literals: Vec<LevelLiteral>,
}
