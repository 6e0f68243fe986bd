//! `symbiont-code`: what agent code does, in the policy's terms. It parses Rust, Python,
//! JavaScript and TypeScript with tree-sitter, resolves each call's callee through the file's
//! imports and aliases, and reports the catalogue operations the code performs (network access,
//! file writes, process spawning, …) with built-in rules that are data (`rules.rs`) and custom
//! rules from `symbiont.toml`. It also builds the fixes (`fix.rs`): suppression comments and
//! rewrites to the capability SDK, each verified by re-parsing.
//!
//! It never runs or loads the code it reads, never does I/O, and never panics on any input: a file
//! that does not parse is scanned as far as it parses.

pub mod fix;
pub mod lang;
pub mod paths;
mod query_words;
pub mod rules;
pub mod scan;
pub mod sites;

pub use crate::{
    lang::Lang,
    scan::{CustomRule, Finding, RuleSet, Scan, ScanState, Skipped},
};
