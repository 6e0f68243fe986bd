//! `symbiont-analysis`: the incremental semantic model of a Symbiont workspace.
//!
//! A salsa database holds the inputs (each `.sym`/`.symbi` file's path and text, and
//! `symbiont.toml`); tracked queries parse, index, resolve names and check. [`AnalysisHost`] is
//! the one entry point for the CLI and the language server.
//!
//! This crate never does I/O (callers hand it text), never panics on any input, and knows
//! nothing of LSP, terminals or the runtime.

pub mod checks;
pub mod db;
pub mod diagnostics;
pub mod items;
pub mod policies;
pub mod resolve;
pub mod settings;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use salsa::Setter;
use symbiont_syntax::Parse;

pub use symbiont_syntax::{LineCol, LineIndex};

pub use crate::{
    db::{RootDatabase, SourceFile, Workspace},
    diagnostics::{Diagnostic, Fix, Related, Rule, Severity, TextEdit, RULES},
};

/// Whether a path names a file of the language (`.sym` or `.symbi`).
pub fn is_source_path(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("sym" | "symbi"))
}

/// The name of the workspace configuration file.
pub const CONFIG_FILE_NAME: &str = "symbiont.toml";

/// Owns the database and the map from paths to file inputs.
pub struct AnalysisHost {
    db: RootDatabase,
    workspace: Workspace,
    files: BTreeMap<PathBuf, SourceFile>,
}

impl Default for AnalysisHost {
    fn default() -> Self {
        Self::new()
    }
}

impl AnalysisHost {
    pub fn new() -> Self {
        let db = RootDatabase::default();
        let workspace = Workspace::new(&db, Vec::new(), None);
        AnalysisHost { db, workspace, files: BTreeMap::new() }
    }

    pub fn db(&self) -> &RootDatabase {
        &self.db
    }

    /// Adds a file or replaces its text.
    pub fn set_file(&mut self, path: impl Into<PathBuf>, text: impl Into<Arc<str>>) {
        let path = path.into();
        let text = text.into();
        match self.files.get(&path) {
            Some(&file) => {
                if **file.text(&self.db) != *text {
                    file.set_text(&mut self.db).to(text);
                }
            }
            None => {
                let file = SourceFile::new(&self.db, path.clone(), text);
                self.files.insert(path, file);
                self.sync_file_list();
            }
        }
    }

    pub fn remove_file(&mut self, path: &Path) {
        if self.files.remove(path).is_some() {
            self.sync_file_list();
        }
    }

    /// Sets (or clears) `symbiont.toml`.
    pub fn set_config(&mut self, config: Option<(PathBuf, String)>) {
        let config = config.map(|(path, text)| (path, Arc::from(text)));
        if *self.workspace.config_file(&self.db) != config {
            self.workspace.set_config_file(&mut self.db).to(config);
        }
    }

    fn sync_file_list(&mut self) {
        let files: Vec<SourceFile> = self.files.values().copied().collect();
        self.workspace.set_files(&mut self.db).to(files);
    }

    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.keys().map(PathBuf::as_path)
    }

    pub fn file_text(&self, path: &Path) -> Option<Arc<str>> {
        if let Some(file) = self.files.get(path) {
            return Some(file.text(&self.db).clone());
        }
        match self.workspace.config_file(&self.db) {
            Some((config_path, text)) if config_path == path => Some(text.clone()),
            _ => None,
        }
    }

    pub fn parse(&self, path: &Path) -> Option<Parse> {
        self.files.get(path).map(|&file| db::parse(&self.db, file).clone())
    }

    /// Diagnostics of one source file, or of `symbiont.toml` when given its path.
    pub fn diagnostics(&self, path: &Path) -> Vec<Diagnostic> {
        if let Some(&file) = self.files.get(path) {
            return db::file_diagnostics(&self.db, self.workspace, file);
        }
        match self.workspace.config_file(&self.db) {
            Some((config_path, _)) if config_path == path => resolve::config_diagnostics(&self.db, self.workspace).clone(),
            _ => Vec::new(),
        }
    }

    /// Diagnostics of every file (and `symbiont.toml`), in path order.
    pub fn all_diagnostics(&self) -> Vec<(PathBuf, Vec<Diagnostic>)> {
        let mut all: Vec<(PathBuf, Vec<Diagnostic>)> =
            self.files.iter().map(|(path, &file)| (path.clone(), db::file_diagnostics(&self.db, self.workspace, file))).collect();
        if let Some((config_path, _)) = self.workspace.config_file(&self.db) {
            all.push((config_path.clone(), resolve::config_diagnostics(&self.db, self.workspace).clone()));
            all.sort_by(|a, b| a.0.cmp(&b.0));
        }
        all
    }

    /// Starts recording which queries execute (see [`RootDatabase::take_executions`]).
    pub fn record_executions(&self) {
        self.db.record_executions();
    }

    pub fn take_executions(&self) -> Vec<String> {
        self.db.take_executions()
    }
}
