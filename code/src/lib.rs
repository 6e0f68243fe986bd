//! `symbiont-code`: what agent code does, in the policy's terms. It parses Rust, Python,
//! JavaScript and TypeScript with tree-sitter, resolves each call's callee through the file's
//! imports and aliases, and reports the catalogue operations the code performs (network access,
//! file writes, process spawning, …) with built-in rules that are data (`rules.rs`) and custom
//! rules from `symbiont.toml`. It also builds the fixes (`fix.rs`): suppression comments and
//! rewrites to the capability SDK, each verified by re-parsing.
//!
//! It never runs or loads the code it reads, never does I/O, and never panics on any input: a file
//! that does not parse is scanned as far as it parses.

mod finding;
pub mod fix;
mod incremental;
pub mod lang;
mod parse;
pub mod paths;
mod pieces;
mod query_words;
mod rule_set;
pub mod rules;
pub mod scan;
mod sdk_fit;
pub mod sites;
mod suppress;

/// Hands tree-sitter's allocations to mimalloc: its trees are many small, short-lived
/// allocations, which mimalloc frees far faster than C's `malloc`. Both are C libraries linked
/// into every binary that uses this crate (tree-sitter's `ts_set_allocator`, mimalloc's `mi_*`).
///
/// # Safety
///
/// Call it before any tree-sitter parser, tree or query exists, while no other thread may create
/// one: memory allocated by one allocator must never be freed by the other.
pub unsafe fn tree_sitter_uses_mimalloc() {
    use std::ffi::c_void;
    extern "C" {
        fn mi_malloc(size: usize) -> *mut c_void;
        fn mi_calloc(count: usize, size: usize) -> *mut c_void;
        fn mi_realloc(p: *mut c_void, size: usize) -> *mut c_void;
        fn mi_free(p: *mut c_void);
        fn ts_set_allocator(
            malloc: Option<unsafe extern "C" fn(usize) -> *mut c_void>,
            calloc: Option<unsafe extern "C" fn(usize, usize) -> *mut c_void>,
            realloc: Option<unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void>,
            free: Option<unsafe extern "C" fn(*mut c_void)>,
        );
    }
    // SAFETY: the caller guarantees no tree-sitter allocation exists yet (so none is freed by
    // the other allocator) and no thread races this call; the four functions are one allocator's,
    // with C's semantics and alignment.
    unsafe { ts_set_allocator(Some(mi_malloc), Some(mi_calloc), Some(mi_realloc), Some(mi_free)) }
}

pub use crate::{
    lang::Lang,
    scan::{CustomRule, Finding, RuleSet, Scan, ScanState, Skipped},
};
