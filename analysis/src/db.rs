//! The salsa database: inputs (files, workspace configuration) and the queries over them.
//!
//! Query graph, from inputs to outputs:
//! `file_summary(file)` (one parse) → `file_items(file)` → `file_symbols(file)` →
//! `workspace_index(ws)` → `resolve_diagnostics(ws, file)`; `file_summary` → `local_diagnostics(file)`;
//! `file_summary` → `file_policy_model(file)` → `policy_universe(ws)` → `policy_diagnostics(ws, file)`.
//! Editing one file's body re-runs only its own queries: when its names are unchanged,
//! `workspace_index` is backdated and no other file is re-checked.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
};

use symbiont_syntax::Parse;

use symbiont_policy::config::{Config, ConfigError};

use symbiont_policy::model::FileModel;

use crate::{diagnostics::Diagnostic, items::FileItems};

#[salsa::input(debug)]
pub struct SourceFile {
    #[returns(ref)]
    pub path: PathBuf,
    #[returns(ref)]
    pub text: Arc<str>,
}

#[salsa::input(debug)]
pub struct Workspace {
    /// Every `.sym`/`.symbi` file, sorted by path.
    #[returns(ref)]
    pub files: Vec<SourceFile>,
    /// `symbiont.toml`: its path and text, if the workspace has one.
    #[returns(ref)]
    pub config_file: Option<(PathBuf, Arc<str>)>,
    /// Agent code in the four languages, sorted by path.
    #[returns(ref)]
    pub code_files: Vec<SourceFile>,
}

#[salsa::db]
pub trait Db: salsa::Database {
    /// What the scans of code files kept for their next scan, when the database keeps it (a
    /// language server, where the same files are scanned again after each edit).
    fn code_states(&self) -> Option<&CodeStates>;
    /// The trees of the `.sym` files parsed last, when the database keeps them (the same).
    fn parse_states(&self) -> Option<&ParseStates>;
}

#[salsa::db]
impl Db for RootDatabase {
    fn code_states(&self) -> Option<&CodeStates> {
        self.code_states.as_deref()
    }

    fn parse_states(&self) -> Option<&ParseStates> {
        self.parse_states.as_deref()
    }
}

/// The trees of the `.sym` files parsed last, each with its text, so that an edited file is
/// re-parsed from its previous tree ([`symbiont_syntax::reparse`]: only the item the edit is in).
/// The tree is the same as a fresh parse's, so salsa needs to know nothing of this.
pub struct ParseStates {
    states: Mutex<Vec<(SourceFile, Arc<str>, Parse)>>,
}

impl ParseStates {
    /// How many files' trees are kept, the most recently parsed.
    const KEPT: usize = 8;

    /// The tree of `text`, the file's text now.
    pub fn parse(&self, file: SourceFile, text: &Arc<str>) -> Parse {
        let previous = {
            let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
            states.iter().position(|(f, _, _)| *f == file).map(|at| states.remove(at))
        };
        let parse = match previous {
            Some((_, old_text, old)) => symbiont_syntax::reparse(&old, &old_text, text),
            None => symbiont_syntax::parse(text),
        };
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states.retain(|(f, _, _)| *f != file);
        if states.len() >= Self::KEPT {
            states.remove(0);
        }
        states.push((file, text.clone(), parse.clone()));
        parse
    }
}

/// Parses a `.sym` file, from its previous tree when the database keeps them.
fn parse_file(db: &dyn Db, file: SourceFile) -> Parse {
    match db.parse_states() {
        Some(states) => states.parse(file, file.text(db)),
        None => symbiont_syntax::parse(file.text(db)),
    }
}

/// The [`symbiont_code::ScanState`]s of the code files scanned last, so that the scan of an edited
/// file redoes only what the edit touched (tree-sitter's incremental parsing, and the rules only
/// in the top-level nodes that changed). The scan's result is the same with or without them, so
/// salsa needs to know nothing of this. A tree is several times its text: only a few are kept.
pub struct CodeStates {
    states: Mutex<Vec<(SourceFile, symbiont_code::ScanState)>>,
}

impl CodeStates {
    /// How many files' states are kept, the most recently scanned.
    const KEPT: usize = 8;

    pub fn take(&self, file: SourceFile) -> Option<symbiont_code::ScanState> {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let at = states.iter().position(|(f, _)| *f == file)?;
        Some(states.remove(at).1)
    }

    pub fn put(&self, file: SourceFile, state: symbiont_code::ScanState) {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states.retain(|(f, _)| *f != file);
        if states.len() >= Self::KEPT {
            states.remove(0);
        }
        states.push((file, state));
    }
}

/// A file's tree, for features that need one (the language server's navigation). Trees are
/// several times larger than their text and cheap to rebuild, so only recently used ones are kept.
#[salsa::tracked(returns(ref), lru = 128)]
pub fn parse(db: &dyn Db, file: SourceFile) -> Parse {
    parse_file(db, file)
}

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
        items: crate::items::collect(&tree),
        local_diagnostics: crate::checks::check_file(path, &parse),
        policy_model: symbiont_policy::lower::lower_file(&path.to_string_lossy(), file.text(db), &tree),
    }
}

/// The workspace configuration, or the defaults with the error when `symbiont.toml` is malformed.
#[salsa::tracked(returns(ref))]
pub fn config(db: &dyn Db, ws: Workspace) -> (Config, Option<ConfigError>) {
    match ws.config_file(db) {
        None => (Config::default(), None),
        Some((_, text)) => match symbiont_policy::config::parse(text) {
            Ok(config) => (config, None),
            Err(e) => (Config::default(), Some(e)),
        },
    }
}

/// All diagnostics of one file, sorted by position. Not memoized itself: its parts are, and a
/// second copy of every diagnostic would cost memory for nothing.
pub fn file_diagnostics(db: &dyn Db, ws: Workspace, file: SourceFile) -> Vec<Diagnostic> {
    let mut all: Vec<Diagnostic> = crate::checks::local_diagnostics(db, file).clone();
    all.extend(crate::resolve::resolve_diagnostics(db, ws, file).iter().cloned());
    all.extend(crate::policies::policy_diagnostics(db, ws, file).iter().cloned());
    all.sort_by_key(|d| (d.range.start(), d.range.end(), d.rule.code));
    all
}

/// The database used by [`crate::AnalysisHost`]. It can record which queries execute, so tests can
/// prove that an edit re-runs only what depends on it.
#[salsa::db]
#[derive(Clone)]
pub struct RootDatabase {
    storage: salsa::Storage<Self>,
    executed: Arc<Mutex<Option<Vec<String>>>>,
    code_states: Option<Arc<CodeStates>>,
    parse_states: Option<Arc<ParseStates>>,
}

impl Default for RootDatabase {
    fn default() -> Self {
        let executed: Arc<Mutex<Option<Vec<String>>>> = Arc::default();
        let log = executed.clone();
        RootDatabase {
            storage: salsa::Storage::new(Some(Box::new(move |event: salsa::Event| {
                if let salsa::EventKind::WillExecute { database_key } = event.kind {
                    if let Some(log) = log.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                        log.push(format!("{database_key:?}"));
                    }
                }
            }))),
            executed,
            code_states: None,
            parse_states: None,
        }
    }
}

#[salsa::db]
impl salsa::Database for RootDatabase {}

impl RootDatabase {
    /// Keeps what the scans of code files need to scan an edited file again quickly
    /// ([`CodeStates`]) and the trees `.sym` files are re-parsed from ([`ParseStates`]): for a
    /// language server.
    pub fn keep_edit_states(&mut self) {
        self.code_states = Some(Arc::new(CodeStates { states: Mutex::new(Vec::new()) }));
        self.parse_states = Some(Arc::new(ParseStates { states: Mutex::new(Vec::new()) }));
    }

    /// Starts recording executed queries.
    pub fn record_executions(&self) {
        *self.executed.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
    }

    /// The queries executed since the last call, as `query_name(Id(..))`.
    pub fn take_executions(&self) -> Vec<String> {
        self.executed.lock().unwrap_or_else(|e| e.into_inner()).as_mut().map(std::mem::take).unwrap_or_default()
    }
}
