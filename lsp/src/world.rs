//! The one owner of the analysis: every change to the server's inputs (documents opened, edited
//! and closed; files changed on disk; the configuration; the workspace loaded) is a [`Change`]
//! sent through one ordered channel to one writer thread, which applies them in arrival order
//! (and, per document, in version order). Readers take snapshots of the analysis under a brief
//! lock; a write cancels the snapshots still in use.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::{mpsc, Arc, Mutex, MutexGuard},
};

use symbiont_analysis::{is_code_path, is_source_path, AnalysisHost, SourceFile, CONFIG_FILE_NAME};
use tower_lsp_server::ls_types as lsp;

use crate::convert::Paths;

/// More files than this under one root are not loaded (a home directory opened by mistake).
const MAX_FILES_PER_ROOT: usize = 50_000;

/// An open document: the client's URI for it, its version and its text (the client's text wins
/// over the disk's as long as it is open). The text is the analysis's own, shared, not a copy.
pub struct Doc {
    pub uri: lsp::Uri,
    pub version: i32,
    pub text: Arc<str>,
}

pub struct World {
    pub host: AnalysisHost,
    pub docs: HashMap<PathBuf, Doc>,
    pub paths: Paths,
    /// Directories whose files were loaded, on disk.
    pub roots: Vec<PathBuf>,
    /// `symbiont.toml` in use, as an analysis path.
    pub config: Option<PathBuf>,
}

impl World {
    pub fn new(paths: Paths) -> Self {
        // Files are analysed again after each edit: keep what makes that incremental.
        let mut host = AnalysisHost::new();
        host.keep_edit_states();
        World { host, docs: HashMap::new(), paths, roots: Vec::new(), config: None }
    }

    pub fn open_uris(&self) -> HashMap<PathBuf, lsp::Uri> {
        self.docs.iter().map(|(p, d)| (p.clone(), d.uri.clone())).collect()
    }
}

/// Locks the world, shrugging off a poisoned lock: the world is only changed by the writer, and
/// a panic there is caught before it can leave the world half-changed.
pub fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    world.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether the server follows a file: the language, agent code or the configuration.
pub fn is_followed(path: &Path) -> bool {
    is_source_path(path) || is_code_path(path) || is_config(path)
}

fn is_config(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == CONFIG_FILE_NAME)
}

#[derive(Debug)]
pub enum Change {
    Open {
        path: PathBuf,
        uri: lsp::Uri,
        version: i32,
        text: String,
    },
    Edit {
        path: PathBuf,
        version: i32,
        changes: Vec<lsp::TextDocumentContentChangeEvent>,
    },
    Close {
        path: PathBuf,
    },
    /// A file changed, appeared or disappeared on disk (an analysis path).
    Disk {
        path: PathBuf,
        deleted: bool,
    },
    /// Read `symbiont.toml` again.
    Config,
    /// Load the files under a directory (on disk) and its `symbiont.toml`.
    Load {
        root: PathBuf,
    },
    /// A staged huge file is summarised (with this text): put it in the workspace.
    List {
        path: PathBuf,
        file: SourceFile,
        text: Arc<str>,
    },
}

pub struct Msg {
    pub seq: u64,
    pub change: Change,
}

/// What a batch of changes did, for the diagnostics publisher.
#[derive(Debug, Default)]
pub struct Effects {
    /// Files whose text changed (their diagnostics are published first, and always).
    pub changed: BTreeSet<PathBuf>,
    /// Files that left the analysis, with the URI to clear their diagnostics at.
    pub removed: Vec<(PathBuf, lsp::Uri)>,
    /// Whether every file's diagnostics may have changed (a load, the configuration).
    pub all: bool,
    /// Huge `.sym` files staged with their texts, to be summarised in the background and then
    /// listed.
    pub staged: Vec<(PathBuf, SourceFile, Arc<str>)>,
}

impl Effects {
    pub fn merge(&mut self, other: Effects) {
        self.changed.extend(other.changed);
        self.removed.extend(other.removed);
        self.all |= other.all;
        self.staged.extend(other.staged);
    }
}

/// The writer: applies each batch of changes under the lock, then reports the last sequence
/// number applied (readers wait for it) and what changed (to the publisher), and hands each huge
/// file it staged to `summarise` (which lists it, through a change, once summarised).
pub fn writer(
    world: Arc<Mutex<World>>,
    rx: mpsc::Receiver<Msg>,
    applied: tokio::sync::watch::Sender<u64>,
    publish: mpsc::Sender<Effects>,
    summarise: impl Fn(PathBuf, SourceFile, Arc<str>),
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let last = batch.last().map_or(0, |m| m.seq);
        let mut effects = Effects::default();
        {
            let mut world = lock(&world);
            let mut writer = Writer { world: &mut world, effects: &mut effects, pending: BTreeMap::new() };
            for msg in batch {
                // A panic here must not take the server down: the change is dropped, logged.
                let change = format!("{:?}", ChangeKind(&msg.change));
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| writer.apply(msg.change))).is_err() {
                    crate::log(format!("applying {change} panicked; the change was dropped"));
                }
            }
            writer.flush_pending();
        }
        applied.send_replace(last);
        for (path, file, text) in std::mem::take(&mut effects.staged) {
            summarise(path, file, text);
        }
        if publish.send(effects).is_err() {
            return;
        }
    }
}

struct ChangeKind<'a>(&'a Change);

impl std::fmt::Debug for ChangeKind<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Change::Open { path, version, .. } => write!(f, "didOpen {} v{version}", path.display()),
            Change::Edit { path, version, .. } => write!(f, "didChange {} v{version}", path.display()),
            Change::Close { path } => write!(f, "didClose {}", path.display()),
            Change::Disk { path, .. } => write!(f, "file change {}", path.display()),
            Change::Config => write!(f, "configuration change"),
            Change::Load { root } => write!(f, "loading {}", root.display()),
            Change::List { path, .. } => write!(f, "listing {}", path.display()),
        }
    }
}

struct Writer<'a> {
    world: &'a mut World,
    effects: &'a mut Effects,
    /// Edits that arrived ahead of a missing version, by document and version.
    pending: BTreeMap<PathBuf, BTreeMap<i32, Vec<lsp::TextDocumentContentChangeEvent>>>,
}

impl Writer<'_> {
    fn apply(&mut self, change: Change) {
        match change {
            Change::Open { path, uri, version, text } => {
                self.pending.remove(&path);
                let text: Arc<str> = text.into();
                self.set_text(&path, text.clone());
                self.world.docs.insert(path, Doc { uri, version, text });
            }
            Change::Edit { path, version, changes } => {
                let Some(doc) = self.world.docs.get(&path) else {
                    crate::log(format!("didChange for {}, which is not open: ignored", path.display()));
                    return;
                };
                if version <= doc.version {
                    crate::log(format!("didChange for {} v{version} after v{}: ignored", path.display(), doc.version));
                } else if version == doc.version + 1 {
                    self.edit(&path, version, changes);
                    self.apply_pending(&path);
                } else {
                    self.pending.entry(path).or_default().insert(version, changes);
                }
            }
            Change::Close { path } => {
                self.pending.remove(&path);
                if let Some(doc) = self.world.docs.remove(&path) {
                    self.reload(&path, Some(doc.uri));
                }
            }
            Change::Disk { path, deleted } => {
                if deleted {
                    // A deleted directory takes its files with it.
                    let host = &self.world.host;
                    let gone: Vec<PathBuf> = host
                        .files()
                        .chain(host.staged_files())
                        .filter(|f| f.starts_with(&path) && *f != path)
                        .map(Path::to_path_buf)
                        .collect();
                    for file in gone {
                        if !self.world.docs.contains_key(&file) {
                            self.reload(&file, None);
                        }
                    }
                }
                if !self.world.docs.contains_key(&path) && is_followed(&path) {
                    self.reload(&path, None);
                }
            }
            Change::Config => {
                if let Some(config) = self.world.config.clone() {
                    if !self.world.docs.contains_key(&config) {
                        self.reload(&config, None);
                    }
                }
            }
            Change::Load { root } => self.load(&root),
            Change::List { path, file, text } => {
                if self.world.host.commit_staged(&path, file, &text) {
                    self.effects.changed.insert(path);
                    self.effects.all = true;
                }
            }
        }
    }

    fn apply_pending(&mut self, path: &Path) {
        loop {
            let Some(version) = self.world.docs.get(path).map(|d| d.version) else { return };
            let Some(changes) = self.pending.get_mut(path).and_then(|p| p.remove(&(version + 1))) else { return };
            self.edit(path, version + 1, changes);
        }
    }

    /// Edits still waiting for an earlier version when the channel ran dry: the client skipped
    /// versions, so they are applied in version order.
    fn flush_pending(&mut self) {
        for (path, edits) in std::mem::take(&mut self.pending) {
            for (version, changes) in edits {
                if self.world.docs.get(&path).is_some_and(|d| d.version < version) {
                    self.edit(&path, version, changes);
                }
            }
        }
    }

    fn edit(&mut self, path: &Path, version: i32, changes: Vec<lsp::TextDocumentContentChangeEvent>) {
        let Some(doc) = self.world.docs.get_mut(path) else { return };
        let mut edited: Option<String> = None;
        for change in changes {
            match change.range {
                None => edited = Some(change.text),
                Some(range) => {
                    let text = edited.get_or_insert_with(|| doc.text.to_string());
                    let (start, end) = (offset_utf16(text, range.start), offset_utf16(text, range.end));
                    text.replace_range(start.min(end)..end.max(start), &change.text);
                }
            }
        }
        doc.version = version;
        if let Some(edited) = edited {
            doc.text = edited.into();
        }
        let text = doc.text.clone();
        self.set_text(path, text);
    }

    fn set_text(&mut self, path: &Path, text: Arc<str>) {
        if is_config(path) {
            // Another directory's `symbiont.toml` is not this workspace's configuration.
            if self.world.config.as_deref().is_none_or(|c| c == path) {
                self.world.config = Some(path.to_path_buf());
                self.world.host.set_config(Some((path.to_path_buf(), text.to_string())));
                self.effects.all = true;
                self.effects.changed.insert(path.to_path_buf());
            }
            return;
        }
        if self.put(path, text) {
            self.effects.changed.insert(path.to_path_buf());
        }
    }

    /// Sets a file's text, or stages it when it is a huge `.sym` file (over
    /// [`symbiont_analysis::inputs::LARGE_TEXT`], above which the analysis parses item by item;
    /// the server's `LARGE_FILE` is the same 2 MiB): its summary is derived in the background, on
    /// a snapshot, before it joins the workspace, so that no answer about another file waits for
    /// it (a request that needs the workspace's names would: salsa shares a query in progress).
    /// Whether the text is in the workspace now.
    fn put(&mut self, path: &Path, text: Arc<str>) -> bool {
        if is_source_path(path) && text.len() > symbiont_analysis::inputs::LARGE_TEXT {
            let file = self.world.host.stage_file(path, text.clone());
            self.effects.staged.push((path.to_path_buf(), file, text));
            return false;
        }
        self.world.host.set_file(path, text);
        true
    }

    /// Takes a file's text from disk again, or drops it from the analysis when it is gone or not
    /// part of a loaded workspace.
    fn reload(&mut self, path: &Path, uri: Option<lsp::Uri>) {
        let disk = self.world.paths.disk_path(path);
        let in_workspace =
            disk.as_ref().is_some_and(|d| self.world.roots.iter().any(|r| d.starts_with(r)) && !ignored(d, &self.world.roots));
        let text = disk.as_ref().filter(|_| in_workspace).and_then(|d| std::fs::read_to_string(d).ok());
        if self.world.config.as_deref() == Some(path) {
            let text = text.map(|t| (path.to_path_buf(), t));
            if text.is_none() {
                self.world.config = None;
            }
            self.world.host.set_config(text);
            self.effects.all = true;
            self.effects.changed.insert(path.to_path_buf());
            return;
        }
        match text {
            Some(text) if is_config(path) && self.world.config.is_none() => {
                self.world.config = Some(path.to_path_buf());
                self.world.host.set_config(Some((path.to_path_buf(), text)));
                self.effects.all = true;
            }
            Some(text) if !is_config(path) => {
                if self.put(path, text.into()) {
                    self.effects.changed.insert(path.to_path_buf());
                }
            }
            _ => {
                let known = self.world.host.file_text(path).is_some();
                self.world.host.remove_file(path);
                if known || uri.is_some() {
                    let uri = uri.or_else(|| crate::convert::uri_of_path(&self.world.paths, &HashMap::new(), path));
                    self.effects.removed.extend(uri.map(|u| (path.to_path_buf(), u)));
                    self.effects.changed.remove(path);
                    self.effects.all = true;
                }
            }
        }
    }

    fn load(&mut self, root: &Path) {
        if self.world.roots.iter().any(|r| root.starts_with(r)) {
            return;
        }
        self.world.roots.push(root.to_path_buf());
        let mut count = 0;
        for entry in ignore::WalkBuilder::new(root)
            .require_git(false)
            .add_custom_ignore_filename(symbiont_analysis::IGNORE_FILE_NAME)
            .build()
            .flatten()
        {
            let path = entry.path();
            if !entry.file_type().is_some_and(|t| t.is_file()) || !(is_source_path(path) || is_code_path(path)) {
                continue;
            }
            count += 1;
            if count > MAX_FILES_PER_ROOT {
                crate::log(format!("{}: more than {MAX_FILES_PER_ROOT} files; the rest are not loaded", root.display()));
                break;
            }
            let path = self.world.paths.analysis_path(path);
            if self.world.docs.contains_key(&path) {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                self.put(&path, text.into());
            }
        }
        // The configuration: the nearest `symbiont.toml` at or above the root.
        if self.world.config.is_none() {
            if let Some(found) = root.ancestors().map(|d| d.join(CONFIG_FILE_NAME)).find(|c| c.is_file()) {
                let path = self.world.paths.analysis_path(&found);
                self.world.config = Some(path.clone());
                let text = match self.world.docs.get(&path) {
                    Some(doc) => Some(doc.text.to_string()),
                    None => std::fs::read_to_string(&found).ok(),
                };
                self.world.host.set_config(text.map(|t| (path, t)));
            }
        }
        self.effects.all = true;
    }
}

/// Whether a file under a root is one a walk of the root skips: hidden, or ignored by a
/// `.gitignore` (or `.ignore`) between the root and the file.
pub fn ignored(path: &Path, roots: &[PathBuf]) -> bool {
    let Some(root) = roots.iter().find(|r| path.starts_with(r)) else { return true };
    let Ok(relative) = path.strip_prefix(root) else { return true };
    if relative.components().any(|c| c.as_os_str().to_string_lossy().starts_with('.')) {
        return true;
    }
    let mut dir = root.to_path_buf();
    let mut dirs = vec![dir.clone()];
    for component in relative.parent().into_iter().flat_map(Path::components) {
        dir.push(component);
        dirs.push(dir.clone());
    }
    // The nearest ignore file decides; test from the file's directory up.
    for dir in dirs.iter().rev() {
        let mut builder = ignore::gitignore::GitignoreBuilder::new(dir);
        let mut any = false;
        for name in [".gitignore", ".ignore"] {
            let file = dir.join(name);
            if file.is_file() {
                any = true;
                let _ = builder.add(file);
            }
        }
        if !any {
            continue;
        }
        let Ok(matcher) = builder.build() else { continue };
        let matched = matcher.matched_path_or_any_parents(path, false);
        if matched.is_ignore() {
            return true;
        }
        if matched.is_whitelist() {
            return false;
        }
    }
    false
}

/// The byte offset of an LSP position (UTF-16 columns) in `text`, as
/// [`symbiont_syntax::LineIndex::offset_utf16`] finds it, without indexing every line of the file
/// for the two positions of an edit: past the last line, the end of the text; past the end of a
/// line, its line break.
fn offset_utf16(text: &str, position: lsp::Position) -> usize {
    let mut start = 0;
    for _ in 0..position.line {
        match text[start..].find('\n') {
            Some(i) => start += i + 1,
            None => return text.len(),
        }
    }
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i + 1);
    let mut units = 0u32;
    for (i, ch) in text[start..line_end].char_indices() {
        if units >= position.character || ch == '\n' {
            return start + i;
        }
        units += ch.len_utf16() as u32;
    }
    line_end
}
