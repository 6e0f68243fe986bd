//! Symbiont's `.sym`/`.symbi` language for [tree-sitter](https://tree-sitter.github.io/): the parser
//! generated from `editors/tree-sitter-symbiont/grammar.js` and the editor queries beside it.
//!
//! ```
//! let mut parser = tree_sitter::Parser::new();
//! parser.set_language(&tree_sitter_symbiont::LANGUAGE.into()).expect("the grammar's ABI is supported");
//! let tree = parser.parse("policy p { allow: [\"read\"] }", None).expect("a tree");
//! assert!(!tree.root_node().has_error());
//! ```

use tree_sitter_language::LanguageFn;

extern "C" {
    fn tree_sitter_symbiont() -> *const ();
}

/// The tree-sitter language of `.sym`/`.symbi` files.
// SAFETY: `tree_sitter_symbiont` is the language function of the parser compiled by build.rs.
pub const LANGUAGE: LanguageFn = unsafe { LanguageFn::from_raw(tree_sitter_symbiont) };

/// The node types of the grammar (`src/node-types.json`).
pub const NODE_TYPES: &str = include_str!("../../src/node-types.json");

/// Syntax highlighting (nvim-treesitter capture names).
pub const HIGHLIGHTS_QUERY: &str = include_str!("../../queries/highlights.scm");
/// Folds.
pub const FOLDS_QUERY: &str = include_str!("../../queries/folds.scm");
/// Indentation (nvim-treesitter captures).
pub const INDENTS_QUERY: &str = include_str!("../../queries/indents.scm");
/// Scopes, definitions and references.
pub const LOCALS_QUERY: &str = include_str!("../../queries/locals.scm");

#[cfg(test)]
mod tests {
    #[test]
    fn every_query_compiles_against_the_language() {
        let language = super::LANGUAGE.into();
        for (name, source) in [
            ("highlights", super::HIGHLIGHTS_QUERY),
            ("folds", super::FOLDS_QUERY),
            ("indents", super::INDENTS_QUERY),
            ("locals", super::LOCALS_QUERY),
        ] {
            if let Err(error) = tree_sitter::Query::new(&language, source) {
                panic!("queries/{name}.scm: {error}");
            }
        }
    }
}
