//! `symbiont-policy`: the policy engine. It gives every policy one meaning
//! (`docs/policy-semantics.md`): it lowers policies from the syntax tree into a model, resolves
//! an agent's effective policy through the hierarchy (base policy, applied policies, `extends`
//! parents, inline policies), compiles it once, and decides requests.
//!
//! It fails closed: no rule allowing an operation means deny, a guard that cannot be evaluated
//! never allows and always denies. It never does I/O and never depends on salsa or the LSP: the
//! runtime uses it as it is.

pub mod catalogue;
pub mod config;
pub mod expr;
pub mod levels;
pub mod lower;
pub mod model;
mod value;

pub use crate::{
    levels::{LevelKind, Levels},
    value::Value,
};
