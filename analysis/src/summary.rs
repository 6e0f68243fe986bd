//! The per-file summary: everything the analysis derives from one parse of a `.sym` file, and the
//! narrow queries that read one part of it (`file_items`, `file_symbols`, `local_diagnostics`,
//! `file_policy_model`). It builds on the pure per-file passes (`items::collect`,
//! `checks::check_file`, the policy engine's lowering); the workspace-wide modules read these
//! queries, and none of them is imported here.

use symbiont_policy::model::FileModel;

use crate::{
    checks::check_file,
    diagnostics::Diagnostic,
    inputs::{parse_file, Db, SourceFile},
    items::{collect, FileItems, FileSymbols, RefContext},
};

/// Everything the analysis derives from one parse of a file: its item index, its one-file
/// diagnostics and its policy model. The tree is dropped as soon as these are built, so checking a
/// workspace never holds every tree at once; the narrower queries below read their part, so that
/// an edit which changes one part re-runs only what depends on it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSummary {
    pub items: FileItems,
    pub local_diagnostics: Vec<Diagnostic>,
    pub policy_model: FileModel,
}

#[salsa::tracked(returns(ref))]
pub fn file_summary(db: &dyn Db, file: SourceFile) -> FileSummary {
    let parse = parse_file(db, file);
    let tree = parse.tree();
    let path = file.path(db);
    FileSummary {
        items: collect(&tree),
        local_diagnostics: check_file(path, &parse),
        policy_model: symbiont_policy::lower::lower_file(&path.to_string_lossy(), file.text(db), &tree),
    }
}

/// What a file defines and references, with ranges (they move on every edit).
#[salsa::tracked(returns(ref))]
pub fn file_items(db: &dyn Db, file: SourceFile) -> FileItems {
    file_summary(db, file).items.clone()
}

/// [`file_items`] without ranges, so that the workspace-wide index built from it is not
/// invalidated by edits that change no name.
#[salsa::tracked(returns(ref))]
pub fn file_symbols(db: &dyn Db, file: SourceFile) -> FileSymbols {
    let items = file_items(db, file);
    FileSymbols {
        defs: items.defs.iter().map(|d| (d.kind, d.name.clone())).collect(),
        extends: items
            .references
            .iter()
            .filter_map(|r| match &r.context {
                RefContext::Extends { child } => Some((child.clone(), r.name.clone())),
                _ => None,
            })
            .collect(),
    }
}

/// The checks that need this file only ([`check_file`]).
#[salsa::tracked(returns(ref))]
pub fn local_diagnostics(db: &dyn Db, file: SourceFile) -> Vec<Diagnostic> {
    file_summary(db, file).local_diagnostics.clone()
}

/// What one file says about policies, in the engine's model.
#[salsa::tracked(returns(ref))]
pub fn file_policy_model(db: &dyn Db, file: SourceFile) -> FileModel {
    file_summary(db, file).policy_model.clone()
}
