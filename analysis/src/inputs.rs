//! The database's inputs (each file's path and text, the workspace's file lists and
//! `symbiont.toml`), the [`Db`] trait every query takes, and the two queries that read an input
//! as it is: a file's tree ([`parse`]) and the workspace configuration ([`config`]). Everything
//! else is derived from these; nothing here knows the queries that derive it.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use symbiont_policy::config::{Config, ConfigError};
use symbiont_syntax::Parse;

/// Whether a path names a file of the language (`.sym` or `.symbi`).
pub fn is_source_path(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("sym" | "symbi"))
}

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
    /// A `.sym` text longer than this is parsed and summarised item by item, each item's tree let
    /// go once it is summarised ([`LARGE_TEXT`] unless changed).
    fn parse_by_items_above(&self) -> usize;
}

/// The length (2 MiB) above which a `.sym` text is parsed item by item: its tree would be about
/// 27 times the text, held whole until the last item is summarised. Real files are kilobytes.
pub const LARGE_TEXT: usize = 2 << 20;

/// The trees of the `.sym` files parsed last, each with its text, so that an edited file is
/// re-parsed from its previous tree ([`symbiont_syntax::reparse`]: only the item the edit is in).
/// The tree is the same as a fresh parse's, so salsa needs to know nothing of this.
#[derive(Default)]
pub struct ParseStates {
    states: Mutex<Vec<(SourceFile, Arc<str>, Parse)>>,
}

impl ParseStates {
    /// How many files' trees are kept, the most recently parsed.
    const KEPT: usize = 8;
    /// The tree of a text longer than this is not kept: it is about 27 times its text, and kept
    /// beside the queries that follow the parse it would double a language server's peak memory
    /// on a file of megabytes (#20). Such a file is parsed whole again after an edit.
    const KEPT_TEXT_MAX: usize = LARGE_TEXT;

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
        if text.len() > Self::KEPT_TEXT_MAX {
            return parse;
        }
        if states.len() >= Self::KEPT {
            states.remove(0);
        }
        states.push((file, text.clone(), parse.clone()));
        parse
    }
}

/// Parses a `.sym` file, from its previous tree when the database keeps them.
pub(crate) fn parse_file(db: &dyn Db, file: SourceFile) -> Parse {
    match db.parse_states() {
        Some(states) => states.parse(file, file.text(db)),
        None => symbiont_syntax::parse(file.text(db)),
    }
}

/// The [`symbiont_code::ScanState`]s of the code files scanned last, so that the scan of an edited
/// file redoes only what the edit touched (tree-sitter's incremental parsing, and the rules only
/// in the top-level nodes that changed). The scan's result is the same with or without them, so
/// salsa needs to know nothing of this. A tree is several times its text: only a few are kept.
#[derive(Default)]
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
