//! Compiles the parser `tree-sitter generate` wrote into `../../src` (committed, so building needs
//! only a C compiler, not the tree-sitter CLI).

use std::path::Path;

fn main() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../src");
    let parser = src.join("parser.c");
    cc::Build::new()
        .std("c11")
        .include(&src)
        // Generated code: its unused parameters and the like are not ours to fix.
        .warnings(false)
        .file(&parser)
        .compile("tree-sitter-symbiont");
    println!("cargo:rerun-if-changed={}", parser.display());
    println!("cargo:rerun-if-changed={}", src.join("tree_sitter/parser.h").display());
}
