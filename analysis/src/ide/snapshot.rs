//! The snapshot every editor feature runs on: [`Analysis`], a read-only view of the database at
//! one revision, with the accessors the features share (files, trees, diagnostics) and the
//! cancellation every answer goes through.

use std::path::{Path, PathBuf};

use symbiont_syntax::SyntaxNode;

use crate::{
    code::is_code_path,
    db::{self, RootDatabase, SourceFile, Workspace},
    diagnostics::Diagnostic,
    resolve::config_diagnostics,
};

pub type Cancellable<T> = Result<T, salsa::Cancelled>;

/// A read-only view of the analysis at one revision, safe to move to another thread.
pub struct Analysis {
    pub(crate) db: RootDatabase,
    pub(crate) workspace: Workspace,
    pub(crate) files: std::collections::BTreeMap<PathBuf, SourceFile>,
}

impl Analysis {
    pub(crate) fn file(&self, path: &Path) -> Option<SourceFile> {
        self.files.get(path).copied()
    }

    /// The file when it is in the language: agent code has diagnostics, hover and fixes, but no
    /// tree of the language to navigate, fold, highlight or format.
    pub(crate) fn sym_file(&self, path: &Path) -> Option<SourceFile> {
        if is_code_path(path) {
            return None;
        }
        self.file(path)
    }

    pub(crate) fn catch<T>(&self, f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Cancellable<T> {
        salsa::Cancelled::catch(f)
    }

    /// `Err` once a change to the inputs has cancelled this snapshot (what every query of it
    /// then answers).
    pub fn cancelled(&self) -> Cancellable<()> {
        use salsa::Database;
        self.catch(std::panic::AssertUnwindSafe(|| self.db.unwind_if_revision_cancelled()))
    }

    /// The text of a file, or of `symbiont.toml` when given its path.
    pub fn file_text(&self, path: &Path) -> Option<std::sync::Arc<str>> {
        if let Some(file) = self.file(path) {
            return Some(file.text(&self.db).clone());
        }
        match self.workspace.config_file(&self.db) {
            Some((config_path, text)) if config_path == path => Some(text.clone()),
            _ => None,
        }
    }

    /// Every file of the workspace (the language's and agent code), in path order.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.keys().map(PathBuf::as_path)
    }

    /// The path of `symbiont.toml`, if the workspace has one.
    pub fn config_path(&self) -> Option<PathBuf> {
        self.workspace.config_file(&self.db).as_ref().map(|(path, _)| path.clone())
    }

    /// [`Analysis::diagnostics`] without agent code's fixes (each costs a parse of the file):
    /// what an editor shows while the code is typed. Fixes come with [`Analysis::code_actions`].
    pub fn diagnostics_unfixed(&self, path: &Path) -> Cancellable<Vec<Diagnostic>> {
        Ok(self.diagnostics_unfixed_ref(path)?.into_iter().cloned().collect())
    }

    /// [`Analysis::diagnostics_unfixed`] as references into the analysis's own lists, which live
    /// as long as this snapshot: for a caller that only reads them (the language server
    /// converting them as it writes them out), a huge file's are not copied.
    pub fn diagnostics_unfixed_ref(&self, path: &Path) -> Cancellable<Vec<&Diagnostic>> {
        self.catch(std::panic::AssertUnwindSafe(|| match self.file(path) {
            Some(file) => db::file_diagnostics_unfixed_in(&self.db, self.workspace, path, file),
            None => match self.workspace.config_file(&self.db) {
                Some((config_path, _)) if config_path == path => config_diagnostics(&self.db, self.workspace).iter().collect(),
                _ => Vec::new(),
            },
        }))
    }

    /// Diagnostics of one file, or of `symbiont.toml` when given its path.
    pub fn diagnostics(&self, path: &Path) -> Cancellable<Vec<Diagnostic>> {
        self.catch(std::panic::AssertUnwindSafe(|| match self.file(path) {
            Some(file) => db::file_diagnostics_in(&self.db, self.workspace, path, file),
            None => match self.workspace.config_file(&self.db) {
                Some((config_path, _)) if config_path == path => config_diagnostics(&self.db, self.workspace).clone(),
                _ => Vec::new(),
            },
        }))
    }

    /// Derives everything a `.sym` file says alone (its names, its one-file checks, its policy
    /// model), so that putting it in the workspace finds them done: for a staged file
    /// ([`crate::AnalysisHost::stage_file`]). A cancelled derivation keeps what it finished.
    pub fn summarise(&self, file: SourceFile) -> Cancellable<()> {
        self.catch(std::panic::AssertUnwindSafe(|| {
            crate::summary::local_diagnostics(&self.db, file);
            crate::summary::file_symbols(&self.db, file);
            crate::summary::file_policy_model(&self.db, file);
        }))
    }

    pub(crate) fn tree(&self, file: SourceFile) -> SyntaxNode {
        db::parse(&self.db, file).syntax()
    }
}
