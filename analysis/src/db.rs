//! The salsa database ([`RootDatabase`]) and the one query that gathers a file's diagnostics from
//! every check ([`file_diagnostics`]). The inputs and the queries that read them as they are live in
//! `inputs`, the per-file summary in `summary`; both are re-exported here.
//!
//! Query graph, from inputs to outputs:
//! `file_layout(file)` (one parse, the top-level items) → `item_summary(item)` per item →
//! `file_items(file)` → `file_symbols(file)` → `workspace_index(ws)` → `resolve_diagnostics(ws, file)`;
//! `item_summary` → `local_diagnostics(file)`; `item_summary` → `file_policy_model(file)` →
//! `policy_universe(ws)` → `policy_diagnostics(ws, file)`. Editing one item re-derives only that
//! item's summary (the others' texts are unchanged), then reassembles its file's; when its names
//! are unchanged, `workspace_index` is backdated and no other file is re-checked.

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use crate::{code, diagnostics::Diagnostic, policies::policy_diagnostics, resolve::resolve_diagnostics, summary::local_diagnostics};
pub use crate::{
    inputs::{config, parse, CodeStates, Db, ParseStates, SourceFile, Workspace},
    summary::{file_layout, item_summary, FileLayout, Item, ItemSummary},
};

#[salsa::db]
impl Db for RootDatabase {
    fn code_states(&self) -> Option<&CodeStates> {
        self.code_states.as_deref()
    }

    fn parse_states(&self) -> Option<&ParseStates> {
        self.parse_states.as_deref()
    }

    fn parse_by_items_above(&self) -> usize {
        self.parse_by_items_above
    }
}

/// All diagnostics of one file, sorted by position: references into its checks' lists. Not
/// memoized itself: its parts are, and a second copy of every diagnostic would cost memory for
/// nothing (a huge file has hundreds of thousands).
pub fn file_diagnostics(db: &dyn Db, ws: Workspace, file: SourceFile) -> Vec<&Diagnostic> {
    let parts = [local_diagnostics(db, file), resolve_diagnostics(db, ws, file), policy_diagnostics(db, ws, file)];
    let mut all: Vec<&Diagnostic> = Vec::with_capacity(parts.iter().map(|part| part.len()).sum());
    for part in parts {
        all.extend(part.iter());
    }
    all.sort_by_key(|d| (d.range.start(), d.range.end(), d.rule.code));
    all
}

/// The diagnostics of any file of the workspace: agent code's (with their fixes) or a `.sym`
/// file's.
pub fn file_diagnostics_in(db: &RootDatabase, workspace: Workspace, path: &Path, file: SourceFile) -> Vec<Diagnostic> {
    if code::is_code_path(path) {
        code::code_diagnostics(db, workspace, file).clone()
    } else {
        file_diagnostics(db, workspace, file).into_iter().cloned().collect()
    }
}

/// [`file_diagnostics_in`] without agent code's fixes, which cost a parse each (a `.sym` file's
/// come with its checks), as references into the memoized lists.
pub fn file_diagnostics_unfixed_in<'db>(
    db: &'db RootDatabase,
    workspace: Workspace,
    path: &Path,
    file: SourceFile,
) -> Vec<&'db Diagnostic> {
    if code::is_code_path(path) {
        code::code_diagnostics_unfixed(db, workspace, file).iter().collect()
    } else {
        file_diagnostics(db, workspace, file)
    }
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
    parse_by_items_above: usize,
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
            parse_by_items_above: crate::inputs::LARGE_TEXT,
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
        self.code_states = Some(Arc::default());
        self.parse_states = Some(Arc::default());
    }

    /// Parses and summarises `.sym` texts longer than `bytes` item by item ([`Db::parse_by_items_above`]):
    /// for tests, which compare that with a whole parse on small files. Set before any file.
    pub fn set_parse_by_items_above(&mut self, bytes: usize) {
        self.parse_by_items_above = bytes;
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
