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

/// A compiled boolean expression with its source text.
#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    pub expr: Expr,
    pub text: String,
    pub loc: SourceLoc,
}

impl Guard {
    /// Whether the guard is the literal `true` (the rule is unconditional).
    pub fn is_trivially_true(&self) -> bool {
        self.expr == Expr::Lit(Value::Bool(true))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub kind: RuleKind,
    /// `allow`/`deny`: the operations. `require`/`audit`/`conditions`: the operations they are
    /// scoped to (`for …`), empty for all.
    pub ops: Vec<OpPattern>,
    /// The `if` guard (and `unless` qualifiers, negated).
    pub guard: Option<Guard>,
    /// `require`: what must hold for an allow to take effect.
    pub preconditions: Vec<Guard>,
    /// `audit` and `conditions`: the obligation's fields; qualifiers of phrases (`with x`).
    pub obligations: Vec<(String, Value)>,
    /// The rule's text as written (one line), for explanations.
    pub text: String,
    pub loc: SourceLoc,
}

impl Rule {
    /// Unconditional: no guard, or the literal `if true`.
    pub fn is_unconditional(&self) -> bool {
        self.guard.as_ref().is_none_or(Guard::is_trivially_true)
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
    pub loc: SourceLoc,
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
