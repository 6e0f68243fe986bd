//! `symbiont-analysis`: the incremental semantic model of a Symbiont workspace.
//!
//! A salsa database holds the inputs (each `.sym`/`.symbi` file's path and text, and
//! `symbiont.toml`); tracked queries parse, index, resolve names and check. [`AnalysisHost`] is
//! the one entry point for the CLI and the language server.
//!
//! This crate never does I/O (callers hand it text), never panics on any input, and knows
//! nothing of LSP, terminals or the runtime.

pub mod checks;
pub mod code;
pub mod db;
pub mod diagnostics;
pub mod ide;
pub mod inputs;
pub mod items;
pub mod policies;
pub mod resolve;
pub mod settings;
pub mod summary;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use salsa::Setter;

use db::file_diagnostics_in;
use symbiont_syntax::Parse;

pub use symbiont_syntax::{LineCol, LineIndex};

pub use db::{RootDatabase, SourceFile, Workspace};
pub use diagnostics::{Diagnostic, Edit, FileEdit, Fix, Related, Rule, Severity, RULES};

/// Whether a path is agent code the analysis checks against its policy.
pub use code::is_code_path;

/// Whether a path names a file of the language (`.sym` or `.symbi`).
pub use inputs::is_source_path;

/// The name of the workspace configuration file.
pub const CONFIG_FILE_NAME: &str = "symbiont.toml";

/// Files named so list, in `.gitignore`'s syntax, what `check` and the editor leave out of the
/// workspace beyond what `.gitignore` does: code that is in the repository but is not an agent's,
/// such as the SDKs `symbiont init` vendors.
pub const IGNORE_FILE_NAME: &str = ".symbiontignore";

/// Owns the database and the map from paths to file inputs.
pub struct AnalysisHost {
    db: RootDatabase,
    workspace: Workspace,
    files: BTreeMap<PathBuf, SourceFile>,
    /// New texts of files, not yet in the workspace ([`AnalysisHost::stage_file`]).
    staged: BTreeMap<PathBuf, SourceFile>,
    /// A file's input the workspace let go of when a staged one took its place, for its next
    /// staged text: two inputs per staged file at most, each holding what was derived from it.
    spare: BTreeMap<PathBuf, SourceFile>,
}

impl Default for AnalysisHost {
    fn default() -> Self {
        Self::new()
    }
}

impl AnalysisHost {
    pub fn new() -> Self {
        let db = RootDatabase::default();
        let workspace = Workspace::new(&db, Vec::new(), None, Vec::new());
        AnalysisHost { db, workspace, files: BTreeMap::new(), staged: BTreeMap::new(), spare: BTreeMap::new() }
    }

    pub fn db(&self) -> &RootDatabase {
        &self.db
    }

    /// The input of a file of the workspace, for the queries of [`db`] on [`AnalysisHost::db`].
    pub fn source_file(&self, path: &Path) -> Option<SourceFile> {
        self.files.get(path).copied()
    }

    /// Keeps, for the files analysed last, what analysing them again after an edit needs: for
    /// code files their scans ([`db::CodeStates`]), for `.sym` files their trees
    /// ([`db::ParseStates`]). The language server, which does so after each keystroke, does.
    pub fn keep_edit_states(&mut self) {
        self.db.keep_edit_states();
    }

    /// Parses and summarises `.sym` texts longer than `bytes` item by item, as it does those over
    /// [`inputs::LARGE_TEXT`] (the same diagnostics, in a fraction of the memory): for tests that
    /// compare the two. Call it before adding any file.
    pub fn parse_by_items_above(&mut self, bytes: usize) {
        self.db.set_parse_by_items_above(bytes);
    }

    /// Adds a file (a `.sym`/`.symbi` file, or agent code in one of the four languages) or
    /// replaces its text.
    pub fn set_file(&mut self, path: impl Into<PathBuf>, text: impl Into<Arc<str>>) {
        let path = path.into();
        let text = text.into();
        self.unstage(&path);
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

    /// Stages a new text of a `.sym` file: an input of its own, outside the workspace, so that
    /// what the file says alone can be derived (on a snapshot, [`ide::Analysis::summarise`])
    /// while the workspace, and every answer about other files, stays as it was. The path's
    /// current text, if any, stays in the workspace until [`AnalysisHost::commit_staged`]. For a
    /// language server opening a huge file: nothing waits for it meanwhile.
    pub fn stage_file(&mut self, path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> SourceFile {
        let (path, text) = (path.into(), text.into());
        let file = match self.staged.remove(&path).or_else(|| self.spare.remove(&path)) {
            Some(file) => {
                file.set_text(&mut self.db).to(text);
                file
            }
            None => SourceFile::new(&self.db, path.clone(), text),
        };
        self.staged.insert(path, file);
        file
    }

    /// Puts a staged file in the workspace in place of its path's current text, if it is still
    /// the one staged for it with this text (the one summarised: a newer text or a removal
    /// supersedes it). Whether it did.
    pub fn commit_staged(&mut self, path: &Path, file: SourceFile, text: &Arc<str>) -> bool {
        if self.staged.get(path) != Some(&file) || !Arc::ptr_eq(file.text(&self.db), text) {
            return false;
        }
        self.staged.remove(path);
        if let Some(old) = self.files.insert(path.to_path_buf(), file) {
            self.spare.insert(path.to_path_buf(), old);
        }
        self.sync_file_list();
        true
    }

    /// Whether a text of this path is staged and not yet in the workspace.
    pub fn is_staged(&self, path: &Path) -> bool {
        self.staged.contains_key(path)
    }

    /// The paths with a staged text.
    pub fn staged_files(&self) -> impl Iterator<Item = &Path> {
        self.staged.keys().map(PathBuf::as_path)
    }

    fn unstage(&mut self, path: &Path) {
        if let Some(file) = self.staged.remove(path) {
            self.spare.insert(path.to_path_buf(), file);
        }
    }

    pub fn remove_file(&mut self, path: &Path) {
        self.unstage(path);
        self.spare.remove(path);
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
        // Agent code by its extension; anything else given to the analysis is the language.
        type Files<'a> = Vec<(&'a PathBuf, &'a SourceFile)>;
        let (code, sources): (Files<'_>, Files<'_>) = self.files.iter().partition(|(p, _)| is_code_path(p));
        let sources: Vec<SourceFile> = sources.into_iter().map(|(_, f)| *f).collect();
        let code: Vec<SourceFile> = code.into_iter().map(|(_, f)| *f).collect();
        if *self.workspace.files(&self.db) != sources {
            self.workspace.set_files(&mut self.db).to(sources);
        }
        if *self.workspace.code_files(&self.db) != code {
            self.workspace.set_code_files(&mut self.db).to(code);
        }
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
            return self.file_diagnostics(path, file);
        }
        match self.workspace.config_file(&self.db) {
            Some((config_path, _)) if config_path == path => resolve::config_diagnostics(&self.db, self.workspace).clone(),
            _ => Vec::new(),
        }
    }

    /// Diagnostics of every file (and `symbiont.toml`), in path order.
    pub fn all_diagnostics(&self) -> Vec<(PathBuf, Vec<Diagnostic>)> {
        let mut all: Vec<(PathBuf, Vec<Diagnostic>)> =
            self.files.iter().map(|(path, &file)| (path.clone(), self.file_diagnostics(path, file))).collect();
        if let Some((config_path, _)) = self.workspace.config_file(&self.db) {
            all.push((config_path.clone(), resolve::config_diagnostics(&self.db, self.workspace).clone()));
            all.sort_by(|a, b| a.0.cmp(&b.0));
        }
        all
    }

    /// [`AnalysisHost::all_diagnostics`] on every core, calling `progress(done, total)` as files
    /// finish. Each worker reads through its own handle on the same database.
    pub fn all_diagnostics_parallel(&self, progress: &(dyn Fn(usize, usize) + Sync)) -> Vec<(PathBuf, Vec<Diagnostic>)> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let files: Vec<(PathBuf, SourceFile)> = self.files.iter().map(|(p, f)| (p.clone(), *f)).collect();
        let (next, done) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(files.len().max(1));
        let workspace = self.workspace;
        let mut all: Vec<(PathBuf, Vec<Diagnostic>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    // A database handle is `Send` but not `Sync`: each worker gets its own.
                    let db = self.db.clone();
                    let (files, next, done) = (&files, &next, &done);
                    scope.spawn(move || {
                        let mut out = Vec::new();
                        while let Some((path, file)) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                            out.push((path.clone(), file_diagnostics_in(&db, workspace, path, *file)));
                            progress(done.fetch_add(1, Ordering::Relaxed) + 1, files.len());
                        }
                        out
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
        });
        if let Some((config_path, _)) = self.workspace.config_file(&self.db) {
            all.push((config_path.clone(), resolve::config_diagnostics(&self.db, self.workspace).clone()));
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    fn file_diagnostics(&self, path: &Path, file: SourceFile) -> Vec<Diagnostic> {
        file_diagnostics_in(&self.db, self.workspace, path, file)
    }

    /// A read-only snapshot for another thread. Changing the inputs cancels the snapshot's
    /// queries: they return `Err(Cancelled)` instead of stale answers.
    pub fn snapshot(&self) -> ide::Analysis {
        ide::Analysis { db: self.db.clone(), workspace: self.workspace, files: self.files.clone() }
    }

    /// Starts recording which queries execute (see [`RootDatabase::take_executions`]).
    pub fn record_executions(&self) {
        self.db.record_executions();
    }

    pub fn take_executions(&self) -> Vec<String> {
        self.db.take_executions()
    }
}
