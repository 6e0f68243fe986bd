//! Integration tests for the whole toolchain, in one binary to keep link times down.
//! Tests are data: fixtures on disk with expected output beside them (insta snapshots).

mod alloc;
mod audit_crash;
mod audit_pkcs11;
mod audit_read;
mod audit_s3;
mod audit_tamper;
mod by_items;
mod checks;
mod cli;
mod code_docs;
mod code_e2e;
mod code_robustness;
mod code_rules;
mod code_sdk_table;
mod codegen;
mod codegen_add;
mod corpus;
mod diagnostics_docs;
mod doctor;
mod dsl_reference;
mod fixture;
mod grammar;
mod ide;
mod incremental;
mod lsp;
mod malformed;
mod nvim;
mod policy;
mod policy_cli;
mod policy_docs;
mod policy_properties;
mod properties;
mod run_context;
mod runtime;
mod sym_diagnostics;
mod tidy;
mod valid;

#[global_allocator]
static ALLOCATOR: alloc::CountingAllocator = alloc::CountingAllocator;
