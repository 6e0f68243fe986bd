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
pub mod effective;
pub mod engine;
pub mod expr;
pub mod geography;
pub mod levels;
pub mod lower;
pub mod model;
pub mod names;
pub mod schedule;
mod value;

pub use crate::{
    effective::{EffectivePolicy, Universe},
    engine::{Decision, Effect, Engine, Reason},
    levels::{LevelKind, Levels},
    value::Value,
};

/// Parses and lowers `(path, text)` sources into a [`Universe`]: the one way both the runtime and
/// the tools build a workspace's policies from files.
pub fn load<'a>(sources: impl IntoIterator<Item = (&'a str, &'a str)>, config: config::Config) -> Universe {
    let models: Vec<model::FileModel> =
        sources.into_iter().map(|(path, text)| lower::lower_file(path, text, &symbiont_syntax::parse(text).tree())).collect();
    Universe::new(&models, config)
}
