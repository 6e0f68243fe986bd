//! The protocol's methods. Notifications that change the inputs are sent to the writer at the very
//! start of their handler, before any `.await`, so they reach it in the order they arrived.
//! Requests wait until the writer has applied every change that arrived before them, take a
//! snapshot and compute on a blocking thread; a change that lands meanwhile cancels them
//! (`ContentModified`), and a panic becomes an error response.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc, Mutex, OnceLock,
    },
};

use serde_json::{json, Value};
use symbiont_analysis::{ide::Cancellable, CONFIG_FILE_NAME};
use symbiont_syntax::TextRange;
use tower_lsp_server::{
    jsonrpc::{self, Result},
    ls_types::{self as lsp},
    Client, LanguageServer,
};

use crate::{
    convert::{self, invalid_params, path_of_uri, request_failed, Ctx, Paths},
    world::{self, lock, Change, Msg, World},
};

pub use crate::run::{RUN_AGENT, VERIFY_AUDIT};

/// The changes sent to the writer so far, numbered, and each open document's latest version.
struct Outbox {
    seq: u64,
    tx: mpsc::Sender<Msg>,
    versions: HashMap<PathBuf, i32>,
}

impl Outbox {
    /// Sends a change to the writer. Synchronous: call it before any `.await`.
    fn send(outbox: &Mutex<Outbox>, change: Change) {
        let mut outbox = outbox.lock().unwrap_or_else(|e| e.into_inner());
        match &change {
            Change::Open { path, version, .. } | Change::Edit { path, version, .. } => {
                outbox.versions.insert(path.clone(), *version);
            }
            Change::Close { path } => {
                outbox.versions.remove(path);
            }
            _ => {}
        }
        outbox.seq += 1;
        let seq = outbox.seq;
        if outbox.tx.send(Msg { seq, change }).is_err() {
            crate::log("the writer has stopped; change dropped".to_string());
        }
    }
}

/// Derives a staged huge file's summary on a snapshot, on a thread of its own, then sends the
/// change that lists it, if it is still `text` then. A change meanwhile cancels the snapshot
/// between two items; the next snapshot goes on from there (what was derived is kept), unless
/// the file is no longer staged. A newer text staged meanwhile has a thread of its own, which
/// lists it.
fn summarise_staged(
    world: Arc<Mutex<World>>,
    outbox: Arc<Mutex<Outbox>>,
    path: PathBuf,
    file: symbiont_analysis::SourceFile,
    text: Arc<str>,
) {
    let summarise = move || loop {
        let snap = {
            let world = lock(&world);
            if !world.host.is_staged(&path) {
                return;
            }
            world.host.snapshot()
        };
        if snap.summarise(file).is_ok() {
            drop(snap);
            Outbox::send(&outbox, Change::List { path, file, text });
            return;
        }
    };
    if let Err(e) = std::thread::Builder::new().name("symbiont-summary".into()).spawn(summarise) {
        crate::log(format!("no thread to summarise a staged file: {e}"));
    }
}

pub struct Backend {
    client: Client,
    world: Arc<Mutex<World>>,
    outbox: Arc<Mutex<Outbox>>,
    applied: tokio::sync::watch::Receiver<u64>,
    /// Fixed by `initialize`.
    paths: OnceLock<Paths>,
    /// The client's folders, on disk.
    folders: Mutex<Vec<PathBuf>>,
    watch_dynamically: AtomicBool,
    /// The client inserts snippets (`completionItem.snippetSupport`).
    snippets: Arc<AtomicBool>,
    /// The client applies workspace edits that create files (`resourceOperations` with `create`).
    create_files: Arc<AtomicBool>,
    push_diagnostics: Arc<AtomicBool>,
    /// What is written to the client, for the test hooks' own notifications.
    frames: tokio::sync::mpsc::WeakUnboundedSender<Vec<u8>>,
}

impl Backend {
    /// `frames`: what is written to the client (diagnostics are published there directly).
    pub fn new(client: Client, frames: tokio::sync::mpsc::WeakUnboundedSender<Vec<u8>>) -> Backend {
        let world = Arc::new(Mutex::new(World::new(Paths::default())));
        let (tx, rx) = mpsc::channel();
        let (applied_tx, applied) = tokio::sync::watch::channel(0);
        let (publish_tx, publish_rx) = mpsc::channel();
        let push_diagnostics = Arc::new(AtomicBool::new(true));
        let outbox = Arc::new(Mutex::new(Outbox { seq: 0, tx, versions: HashMap::new() }));
        let (writer_world, summary_world, summary_outbox) = (world.clone(), world.clone(), Arc::downgrade(&outbox));
        let summarise = move |path, file, text| {
            // The outbox lives as long as the server; a summary finished after it has nowhere to go.
            if let Some(outbox) = summary_outbox.upgrade() {
                summarise_staged(summary_world.clone(), outbox, path, file, text);
            }
        };
        std::thread::Builder::new()
            .name("symbiont-writer".into())
            .spawn(move || world::writer(writer_world, rx, applied_tx, publish_tx, summarise))
            .expect("the writer thread starts");
        let publisher = crate::publish::Publisher { world: world.clone(), frames: frames.clone(), enabled: push_diagnostics.clone() };
        std::thread::Builder::new()
            .name("symbiont-diagnostics".into())
            .spawn(move || publisher.run(publish_rx))
            .expect("the publisher thread starts");
        Backend {
            client,
            world,
            outbox,
            applied,
            paths: OnceLock::new(),
            folders: Mutex::default(),
            watch_dynamically: AtomicBool::new(false),
            snippets: Arc::new(AtomicBool::new(false)),
            create_files: Arc::new(AtomicBool::new(false)),
            push_diagnostics,
            frames,
        }
    }

    fn paths(&self) -> Paths {
        self.paths.get().cloned().unwrap_or_default()
    }

    /// Sends a change to the writer. Synchronous: call it before any `.await`.
    fn send(&self, change: Change) {
        Outbox::send(&self.outbox, change);
    }

    fn doc_path(&self, uri: &lsp::Uri) -> Result<PathBuf> {
        path_of_uri(&self.paths(), uri, None).ok_or_else(|| invalid_params(format!("unsupported document URI `{}`", uri.as_str())))
    }

    /// Runs a read on a snapshot that includes every change sent before the request arrived.
    async fn read<T: Send + 'static>(&self, uri: &lsp::Uri, f: impl FnOnce(&Ctx) -> Result<T> + Send + 'static) -> Result<T> {
        let path = self.doc_path(uri)?;
        let (seq, version) = {
            let outbox = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
            (outbox.seq, outbox.versions.get(&path).copied())
        };
        let mut applied = self.applied.clone();
        let mut seq = seq;
        loop {
            if applied.wait_for(|&done| done >= seq).await.is_err() {
                return Err(jsonrpc::Error::internal_error());
            }
            // A staged huge file is answered about once it is in the workspace: until then the
            // workspace holds its previous text, or nothing. Its listing is a change applied
            // after `seen`.
            let seen = *applied.borrow();
            let (world, staged) = (self.world.clone(), path.clone());
            if !blocking(move || Ok(lock(&world).host.is_staged(&staged))).await? {
                break;
            }
            seq = seen + 1;
        }
        let world = self.world.clone();
        let uri = uri.as_str().to_string();
        blocking(move || {
            let ctx = {
                let world = lock(&world);
                // A newer version of the document already applied: the request is about text
                // that no longer exists.
                if version.is_some() && world.docs.get(&path).map(|d| d.version) != version {
                    return Err(jsonrpc::Error::content_modified());
                }
                let Some(text) = world.host.file_text(&path) else {
                    return Err(invalid_params(format!("unknown document `{uri}`: it is neither open nor a file of the workspace")));
                };
                Ctx::new(world.host.snapshot(), path, text, world.paths.clone(), world.open_uris())
            };
            f(&ctx)
        })
        .await
    }

    async fn register_watchers(&self) {
        let glob = |pattern: &str| lsp::FileSystemWatcher { glob_pattern: lsp::GlobPattern::String(pattern.to_string()), kind: None };
        let options = lsp::DidChangeWatchedFilesRegistrationOptions {
            watchers: vec![
                glob("**/*.{sym,symbi}"),
                glob(&format!("**/{CONFIG_FILE_NAME}")),
                glob("**/*.{rs,py,pyi,js,mjs,cjs,jsx,ts,mts,cts,tsx}"),
            ],
        };
        let registration = lsp::Registration {
            id: "symbiont-watched-files".into(),
            method: "workspace/didChangeWatchedFiles".into(),
            register_options: serde_json::to_value(options).ok(),
        };
        if let Err(e) = self.client.register_capability(vec![registration]).await {
            crate::log(format!("registering file watchers failed: {e}"));
        }
    }

    /// A test hook (`SYMBIONT_LSP_TEST_HOOKS=1`): a read of the document that holds its snapshot,
    /// tells the client so (`symbiont/debugHolding`), and waits for a change to cancel it; answers
    /// `ContentModified` then, as every read a change overtakes does.
    pub async fn debug_hold(&self, params: Value) -> Result<Value> {
        let uri: lsp::Uri = serde_json::from_value(params["textDocument"]["uri"].clone())
            .map_err(|e| invalid_params(format!("no textDocument.uri: {e}")))?;
        let frames = self.frames.clone();
        let holding = json!({ "jsonrpc": "2.0", "method": "symbiont/debugHolding", "params": { "uri": uri.as_str() } });
        self.read(&uri, move |ctx| {
            if let Some(frames) = frames.upgrade() {
                let _ = frames.send(crate::transport::framed(holding.to_string().into_bytes()));
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while std::time::Instant::now() < deadline {
                ctx.snap.cancelled().or_modified()?;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(jsonrpc::Error { code: jsonrpc::ErrorCode::InternalError, message: "no change cancelled the read".into(), data: None })
        })
        .await
    }

    /// A test hook (`SYMBIONT_LSP_TEST_HOOKS=1`): panics where asked, to show a panic becomes
    /// an error response and the server keeps serving.
    pub async fn debug_panic(&self, params: Value) -> Result<Value> {
        if params.get("where").and_then(Value::as_str) == Some("blocking") {
            return blocking(|| -> Result<Value> { panic!("requested panic (blocking)") }).await;
        }
        panic!("requested panic (async)")
    }
}

/// Runs work on the blocking pool; a panic there becomes an internal error (a salsa cancellation
/// that escaped its query: content modified).
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(move || std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))).await {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => Err(crate::panic_error(panic.as_ref())),
        Err(e) => {
            Err(jsonrpc::Error { code: jsonrpc::ErrorCode::InternalError, message: format!("request failed: {e}").into(), data: None })
        }
    }
}

/// Documents larger than this get no answer that grows with the whole file: outline, folding,
/// semantic tokens of the whole file, code lenses and formatting. For a file of tens of megabytes
/// each is hundreds of megabytes of protocol types and JSON (a 5 MB file's outline alone is 11 MB
/// of JSON), and editors ask for all of them on open. Diagnostics, hover, completion, navigation
/// and the semantic tokens of a range stay on. Real `.sym` files are a few kilobytes.
pub const LARGE_FILE: usize = 2 << 20;

fn is_large(ctx: &Ctx) -> bool {
    ctx.file.text.len() > LARGE_FILE
}

/// What the client is told when it opens a document over [`LARGE_FILE`].
fn large_file_notice(uri: &lsp::Uri, bytes: usize) -> String {
    let name = uri.as_str().rsplit('/').next().unwrap_or(uri.as_str());
    format!(
        "{name} is {:.1} MB: over {} MB, its outline, folding, semantic highlighting of the whole file, code lenses and formatting \
         are off (`symbiont fmt` formats it); diagnostics, hover, completion and navigation stay on.",
        bytes as f64 / 1e6,
        LARGE_FILE >> 20
    )
}

/// The kind of the code action that applies every fix needing no review (`symbiont check --fix`'s
/// fixes) to a whole document: what editors run on save (`editor.codeActionsOnSave`).
pub const FIX_ALL: &str = "source.fixAll.symbiont";

/// The fix-all action of the document, when it has anything safe to fix.
fn fix_all_action(ctx: &Ctx, kind: lsp::CodeActionKind) -> Result<Option<lsp::CodeActionOrCommand>> {
    let fixes = ctx.snap.fix_all(&ctx.path).or_modified()?;
    if fixes.fixes == 0 {
        return Ok(None);
    }
    let edits: Vec<symbiont_analysis::FileEdit> = fixes
        .edits
        .into_iter()
        .flat_map(|(path, edits)| edits.into_iter().map(move |edit| symbiont_analysis::FileEdit { path: path.clone(), edit }))
        .collect();
    Ok(Some(lsp::CodeActionOrCommand::CodeAction(lsp::CodeAction {
        title: format!("Apply {} safe fix{}", fixes.fixes, if fixes.fixes == 1 { "" } else { "es" }),
        kind: Some(kind),
        edit: Some(ctx.workspace_edit(&edits)),
        ..Default::default()
    })))
}

/// Formatting a document over [`LARGE_FILE`] is refused with a message: the editor's diff of the
/// whole file would cost several times the file again.
fn refuse_large_format(ctx: &Ctx) -> Result<()> {
    if is_large(ctx) {
        return Err(request_failed(format!(
            "not formatted in the editor: the document is over {} MB; `symbiont fmt` formats it",
            LARGE_FILE >> 20
        )));
    }
    Ok(())
}

/// `?` for the analysis's cancellable answers.
trait OrModified<T> {
    fn or_modified(self) -> Result<T>;
}

impl<T> OrModified<T> for Cancellable<T> {
    fn or_modified(self) -> Result<T> {
        self.map_err(|_| jsonrpc::Error::content_modified())
    }
}

fn folder_paths(params: &lsp::InitializeParams) -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> =
        params.workspace_folders.iter().flatten().filter_map(|f| f.uri.to_file_path().map(|p| p.into_owned())).collect();
    #[allow(deprecated)]
    if folders.is_empty() {
        folders.extend(params.root_uri.as_ref().and_then(|u| u.to_file_path()).map(|p| p.into_owned()));
        if folders.is_empty() {
            folders.extend(params.root_path.as_ref().map(PathBuf::from));
        }
    }
    folders.retain(|f| f.is_absolute());
    folders
}

/// The workspace root of a folder: the directory of the nearest `symbiont.toml` at or above it,
/// else the folder itself.
fn root_of(folder: &Path) -> PathBuf {
    folder.ancestors().find(|d| d.join(CONFIG_FILE_NAME).is_file()).unwrap_or(folder).to_path_buf()
}

fn capabilities(pull: bool) -> lsp::ServerCapabilities {
    use lsp::OneOf::Left;
    lsp::ServerCapabilities {
        position_encoding: Some(lsp::PositionEncodingKind::UTF16),
        text_document_sync: Some(lsp::TextDocumentSyncCapability::Options(lsp::TextDocumentSyncOptions {
            open_close: Some(true),
            change: Some(lsp::TextDocumentSyncKind::INCREMENTAL),
            save: Some(lsp::TextDocumentSyncSaveOptions::Supported(false)),
            ..Default::default()
        })),
        hover_provider: Some(lsp::HoverProviderCapability::Simple(true)),
        completion_provider: Some(lsp::CompletionOptions { trigger_characters: Some(vec!["\"".into(), "[".into()]), ..Default::default() }),
        definition_provider: Some(Left(true)),
        references_provider: Some(Left(true)),
        document_symbol_provider: Some(Left(true)),
        workspace_symbol_provider: Some(Left(true)),
        code_action_provider: Some(lsp::CodeActionProviderCapability::Options(lsp::CodeActionOptions {
            code_action_kinds: Some(vec![
                lsp::CodeActionKind::QUICKFIX,
                lsp::CodeActionKind::REFACTOR_EXTRACT,
                lsp::CodeActionKind::REFACTOR_REWRITE,
                lsp::CodeActionKind::new(FIX_ALL),
            ]),
            ..Default::default()
        })),
        code_lens_provider: Some(lsp::CodeLensOptions { resolve_provider: Some(false) }),
        document_formatting_provider: Some(Left(true)),
        document_range_formatting_provider: Some(Left(true)),
        rename_provider: Some(lsp::OneOf::Right(lsp::RenameOptions {
            prepare_provider: Some(true),
            work_done_progress_options: Default::default(),
        })),
        folding_range_provider: Some(lsp::FoldingRangeProviderCapability::Simple(true)),
        execute_command_provider: Some(lsp::ExecuteCommandOptions {
            commands: vec![RUN_AGENT.into(), VERIFY_AUDIT.into()],
            ..Default::default()
        }),
        semantic_tokens_provider: Some(lsp::SemanticTokensServerCapabilities::SemanticTokensOptions(lsp::SemanticTokensOptions {
            legend: convert::semantic_legend(),
            range: Some(true),
            full: Some(lsp::SemanticTokensFullOptions::Bool(true)),
            ..Default::default()
        })),
        diagnostic_provider: pull.then(|| {
            lsp::DiagnosticServerCapabilities::Options(lsp::DiagnosticOptions {
                identifier: Some("symbiont".into()),
                inter_file_dependencies: true,
                workspace_diagnostics: false,
                ..Default::default()
            })
        }),
        ..Default::default()
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: lsp::InitializeParams) -> Result<lsp::InitializeResult> {
        let folders = folder_paths(&params);
        let mut roots: Vec<PathBuf> = Vec::new();
        for folder in &folders {
            let root = root_of(folder);
            if !roots.contains(&root) {
                roots.push(root);
            }
        }
        let paths = Paths { root: roots.first().cloned() };
        let _ = self.paths.set(paths.clone());
        lock(&self.world).paths = paths;
        *self.folders.lock().unwrap_or_else(|e| e.into_inner()) = roots;
        let dynamic = params
            .capabilities
            .workspace
            .as_ref()
            .and_then(|w| w.did_change_watched_files.as_ref())
            .and_then(|d| d.dynamic_registration)
            .unwrap_or(false);
        self.watch_dynamically.store(dynamic, Ordering::Relaxed);
        let snippets =
            params.capabilities.text_document.as_ref().and_then(|t| t.completion.as_ref()).and_then(|c| c.completion_item.as_ref());
        self.snippets.store(snippets.and_then(|i| i.snippet_support).unwrap_or(false), Ordering::Relaxed);
        let edits = params.capabilities.workspace.as_ref().and_then(|w| w.workspace_edit.as_ref());
        let create = edits.is_some_and(|e| {
            e.document_changes == Some(true)
                && e.resource_operations.as_ref().is_some_and(|ops| ops.contains(&lsp::ResourceOperationKind::Create))
        });
        self.create_files.store(create, Ordering::Relaxed);
        // `initializationOptions.diagnostics`: "push", "pull" or "both" (the default).
        let mode = params.initialization_options.as_ref().and_then(|o| o.get("diagnostics")).and_then(Value::as_str).unwrap_or("both");
        let (push, pull) = match mode {
            "push" => (true, false),
            "pull" => (false, true),
            _ => (true, true),
        };
        self.push_diagnostics.store(push, Ordering::Relaxed);
        Ok(lsp::InitializeResult {
            capabilities: capabilities(pull),
            server_info: Some(lsp::ServerInfo { name: "symbiont-lsp".into(), version: Some(env!("CARGO_PKG_VERSION").into()) }),
            offset_encoding: None,
        })
    }

    async fn initialized(&self, _: lsp::InitializedParams) {
        let roots = self.folders.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for root in roots {
            self.send(Change::Load { root });
        }
        if self.watch_dynamically.load(Ordering::Relaxed) {
            self.register_watchers().await;
        }
    }

    async fn shutdown(&self) -> Result<()> {
        crate::SHUT_DOWN.store(true, Ordering::SeqCst);
        // A run this server started stops as on Ctrl-C, before the answer: nothing is left.
        crate::run::stop_all().await;
        Ok(())
    }

    async fn did_open(&self, params: lsp::DidOpenTextDocumentParams) {
        let doc = params.text_document;
        let Some(path) = path_of_uri(&self.paths(), &doc.uri, Some(&doc.language_id)) else { return };
        if !world::is_followed(&path) {
            return;
        }
        // A file opened outside any workspace folder: its own workspace, if it has a
        // `symbiont.toml` above it.
        let load = match (self.paths().root.is_none(), doc.uri.to_file_path()) {
            (true, Some(disk)) => {
                disk.parent().and_then(|d| d.ancestors().find(|a| a.join(CONFIG_FILE_NAME).is_file())).map(Path::to_path_buf)
            }
            _ => None,
        };
        let notice = (doc.text.len() > LARGE_FILE).then(|| large_file_notice(&doc.uri, doc.text.len()));
        self.send(Change::Open { path, uri: doc.uri, version: doc.version, text: doc.text });
        if let Some(root) = load {
            self.send(Change::Load { root });
        }
        if let Some(notice) = notice {
            crate::log(notice.clone());
            self.client.show_message(lsp::MessageType::INFO, notice).await;
        }
    }

    async fn did_change(&self, params: lsp::DidChangeTextDocumentParams) {
        let Some(path) = path_of_uri(&self.paths(), &params.text_document.uri, None) else { return };
        self.send(Change::Edit { path, version: params.text_document.version, changes: params.content_changes });
    }

    async fn did_close(&self, params: lsp::DidCloseTextDocumentParams) {
        let Some(path) = path_of_uri(&self.paths(), &params.text_document.uri, None) else { return };
        self.send(Change::Close { path });
    }

    async fn did_change_watched_files(&self, params: lsp::DidChangeWatchedFilesParams) {
        let paths = self.paths();
        for event in params.changes {
            let Some(disk) = event.uri.to_file_path() else { continue };
            let deleted = event.typ == lsp::FileChangeType::DELETED;
            self.send(Change::Disk { path: paths.analysis_path(&disk), deleted });
        }
    }

    async fn did_change_configuration(&self, _: lsp::DidChangeConfigurationParams) {
        self.send(Change::Config);
    }

    async fn did_change_workspace_folders(&self, params: lsp::DidChangeWorkspaceFoldersParams) {
        for folder in params.event.added {
            if let Some(disk) = folder.uri.to_file_path() {
                self.send(Change::Load { root: root_of(&disk) });
            }
        }
    }

    async fn diagnostic(&self, params: lsp::DocumentDiagnosticParams) -> Result<lsp::DocumentDiagnosticReportResult> {
        self.read(&params.text_document.uri, |ctx| {
            let items = ctx.snap.diagnostics_unfixed(&ctx.path).or_modified()?.iter().map(|d| ctx.diagnostic(d)).collect();
            Ok(lsp::DocumentDiagnosticReportResult::Report(lsp::DocumentDiagnosticReport::Full(lsp::RelatedFullDocumentDiagnosticReport {
                related_documents: None,
                full_document_diagnostic_report: lsp::FullDocumentDiagnosticReport { result_id: None, items },
            })))
        })
        .await
    }

    async fn hover(&self, params: lsp::HoverParams) -> Result<Option<lsp::Hover>> {
        let at = params.text_document_position_params;
        self.read(&at.text_document.uri, move |ctx| {
            let offset = ctx.file.offset(at.position)?;
            let Some((range, markdown)) = ctx.snap.hover(&ctx.path, offset).or_modified()? else { return Ok(None) };
            Ok(Some(lsp::Hover {
                contents: lsp::HoverContents::Markup(lsp::MarkupContent { kind: lsp::MarkupKind::Markdown, value: markdown }),
                range: Some(ctx.file.range(range)),
            }))
        })
        .await
    }

    async fn goto_definition(&self, params: lsp::GotoDefinitionParams) -> Result<Option<lsp::GotoDefinitionResponse>> {
        let at = params.text_document_position_params;
        self.read(&at.text_document.uri, move |ctx| {
            let offset = ctx.file.offset(at.position)?;
            let targets = ctx.snap.goto_definition(&ctx.path, offset).or_modified()?;
            let locations: Vec<lsp::Location> = targets.iter().filter_map(|t| ctx.location(&t.path, t.focus_range)).collect();
            Ok((!locations.is_empty()).then_some(lsp::GotoDefinitionResponse::Array(locations)))
        })
        .await
    }

    async fn references(&self, params: lsp::ReferenceParams) -> Result<Option<Vec<lsp::Location>>> {
        let at = params.text_document_position;
        let declaration = params.context.include_declaration;
        self.read(&at.text_document.uri, move |ctx| {
            let offset = ctx.file.offset(at.position)?;
            let found = ctx.snap.find_references(&ctx.path, offset, declaration).or_modified()?;
            Ok(Some(found.iter().filter_map(|(path, range)| ctx.location(path, *range)).collect()))
        })
        .await
    }

    async fn prepare_rename(&self, params: lsp::TextDocumentPositionParams) -> Result<Option<lsp::PrepareRenameResponse>> {
        self.read(&params.text_document.uri, move |ctx| {
            let offset = ctx.file.offset(params.position)?;
            Ok(ctx
                .snap
                .prepare_rename(&ctx.path, offset)
                .or_modified()?
                .map(|range| lsp::PrepareRenameResponse::Range(ctx.file.range(range))))
        })
        .await
    }

    async fn rename(&self, params: lsp::RenameParams) -> Result<Option<lsp::WorkspaceEdit>> {
        let at = params.text_document_position;
        let new_name = params.new_name;
        self.read(&at.text_document.uri, move |ctx| {
            let offset = ctx.file.offset(at.position)?;
            match ctx.snap.rename(&ctx.path, offset, &new_name).or_modified()? {
                Ok(edits) => Ok(Some(ctx.workspace_edit(&edits))),
                Err(message) => Err(request_failed(message)),
            }
        })
        .await
    }

    async fn completion(&self, params: lsp::CompletionParams) -> Result<Option<lsp::CompletionResponse>> {
        let at = params.text_document_position;
        let snippets = self.snippets.load(Ordering::Relaxed);
        self.read(&at.text_document.uri, move |ctx| {
            let offset = ctx.file.offset(at.position)?;
            let items: Vec<lsp::CompletionItem> = ctx
                .snap
                .completions(&ctx.path, offset)
                .or_modified()?
                .into_iter()
                // A snippet's placeholders would be inserted literally by a client without them.
                .filter(|c| snippets || c.snippet.is_none())
                .map(|c| lsp::CompletionItem {
                    // Clients filter on the range's text: the name, not its quotes or commas.
                    filter_text: c.edit.as_ref().map(|_| c.label.clone()),
                    text_edit: c
                        .edit
                        .map(|(range, new_text)| lsp::CompletionTextEdit::Edit(lsp::TextEdit { range: ctx.file.range(range), new_text })),
                    label: c.label,
                    kind: Some(convert::completion_kind(c.kind)),
                    detail: (!c.detail.is_empty()).then_some(c.detail),
                    insert_text_format: c.snippet.is_some().then_some(lsp::InsertTextFormat::SNIPPET),
                    insert_text: c.snippet,
                    ..Default::default()
                })
                .collect();
            Ok((!items.is_empty()).then_some(lsp::CompletionResponse::Array(items)))
        })
        .await
    }

    async fn document_symbol(&self, params: lsp::DocumentSymbolParams) -> Result<Option<lsp::DocumentSymbolResponse>> {
        self.read(&params.text_document.uri, |ctx| {
            fn convert_symbol(ctx: &Ctx, s: symbiont_analysis::ide::DocumentSymbol) -> lsp::DocumentSymbol {
                #[allow(deprecated)]
                lsp::DocumentSymbol {
                    name: s.name,
                    detail: None,
                    kind: convert::symbol_kind(s.kind),
                    tags: None,
                    deprecated: None,
                    range: ctx.file.range(s.range),
                    selection_range: ctx.file.range(s.selection),
                    children: (!s.children.is_empty()).then(|| s.children.into_iter().map(|c| convert_symbol(ctx, c)).collect()),
                }
            }
            if is_large(ctx) {
                return Ok(None);
            }
            let symbols = ctx.snap.document_symbols(&ctx.path).or_modified()?;
            Ok(Some(lsp::DocumentSymbolResponse::Nested(symbols.into_iter().map(|s| convert_symbol(ctx, s)).collect())))
        })
        .await
    }

    async fn symbol(&self, params: lsp::WorkspaceSymbolParams) -> Result<Option<lsp::WorkspaceSymbolResponse>> {
        let seq = self.outbox.lock().unwrap_or_else(|e| e.into_inner()).seq;
        let mut applied = self.applied.clone();
        let _ = applied.wait_for(|&done| done >= seq).await;
        let world = self.world.clone();
        blocking(move || {
            let (snap, paths, open) = {
                let world = lock(&world);
                (world.host.snapshot(), world.paths.clone(), world.open_uris())
            };
            let targets = snap.workspace_symbols(&params.query).or_modified()?;
            let mut texts: HashMap<PathBuf, convert::FileText> = HashMap::new();
            let mut symbols = Vec::new();
            for t in targets {
                let Some(uri) = convert::uri_of_path(&paths, &open, &t.path) else { continue };
                if !texts.contains_key(&t.path) {
                    let Some(text) = snap.file_text(&t.path) else { continue };
                    texts.insert(t.path.clone(), convert::FileText::new(text));
                }
                let range = texts[&t.path].range(t.focus_range);
                symbols.push(lsp::WorkspaceSymbol {
                    name: t.name,
                    kind: convert::def_symbol_kind(t.kind),
                    tags: None,
                    container_name: None,
                    location: lsp::OneOf::Left(lsp::Location { uri, range }),
                    data: None,
                });
            }
            Ok(Some(lsp::WorkspaceSymbolResponse::Nested(symbols)))
        })
        .await
    }

    async fn semantic_tokens_full(&self, params: lsp::SemanticTokensParams) -> Result<Option<lsp::SemanticTokensResult>> {
        self.read(&params.text_document.uri, |ctx| {
            if is_large(ctx) {
                return Ok(None);
            }
            let tokens = ctx.snap.semantic_tokens(&ctx.path, None).or_modified()?;
            Ok(Some(lsp::SemanticTokensResult::Tokens(lsp::SemanticTokens {
                result_id: None,
                data: convert::semantic_tokens(&ctx.file, &tokens),
            })))
        })
        .await
    }

    async fn semantic_tokens_range(&self, params: lsp::SemanticTokensRangeParams) -> Result<Option<lsp::SemanticTokensRangeResult>> {
        let range = params.range;
        self.read(&params.text_document.uri, move |ctx| {
            let within = ctx.file.text_range(range)?;
            let tokens = ctx.snap.semantic_tokens(&ctx.path, Some(within)).or_modified()?;
            Ok(Some(lsp::SemanticTokensRangeResult::Tokens(lsp::SemanticTokens {
                result_id: None,
                data: convert::semantic_tokens(&ctx.file, &tokens),
            })))
        })
        .await
    }

    async fn folding_range(&self, params: lsp::FoldingRangeParams) -> Result<Option<Vec<lsp::FoldingRange>>> {
        self.read(&params.text_document.uri, |ctx| {
            if is_large(ctx) {
                return Ok(None);
            }
            let mut out = Vec::new();
            for (range, kind) in ctx.snap.folding_ranges(&ctx.path).or_modified()? {
                let (start, end) = (ctx.file.position(range.start()), ctx.file.position(range.end()));
                // Keep the closing bracket's line visible.
                let closes_own_line = ctx.file.text[range].ends_with(['}', ']', ')'])
                    && ctx.file.index.line_text(&ctx.file.text, end.line).trim_start().starts_with(['}', ']', ')']);
                let end_line = if closes_own_line && end.line > start.line { end.line - 1 } else { end.line };
                if end_line <= start.line {
                    continue;
                }
                out.push(lsp::FoldingRange {
                    start_line: start.line,
                    start_character: None,
                    end_line,
                    end_character: None,
                    kind: Some(match kind {
                        symbiont_analysis::ide::FoldKind::Block => lsp::FoldingRangeKind::Region,
                        symbiont_analysis::ide::FoldKind::Comment => lsp::FoldingRangeKind::Comment,
                    }),
                    collapsed_text: None,
                });
            }
            Ok(Some(out))
        })
        .await
    }

    async fn formatting(&self, params: lsp::DocumentFormattingParams) -> Result<Option<Vec<lsp::TextEdit>>> {
        self.read(&params.text_document.uri, |ctx| {
            refuse_large_format(ctx)?;
            let Some(formatted) = ctx.snap.format(&ctx.path).or_modified()? else { return Ok(None) };
            Ok(Some(convert::diff_edits(&ctx.file, &formatted, None)))
        })
        .await
    }

    async fn range_formatting(&self, params: lsp::DocumentRangeFormattingParams) -> Result<Option<Vec<lsp::TextEdit>>> {
        let range = params.range;
        self.read(&params.text_document.uri, move |ctx| {
            ctx.file.text_range(range)?;
            refuse_large_format(ctx)?;
            let Some(formatted) = ctx.snap.format(&ctx.path).or_modified()? else { return Ok(None) };
            Ok(Some(convert::diff_edits(&ctx.file, &formatted, Some(range.start.line..=range.end.line))))
        })
        .await
    }

    async fn code_action(&self, params: lsp::CodeActionParams) -> Result<Option<lsp::CodeActionResponse>> {
        let range = params.range;
        let only = params.context.only;
        let create_files = self.create_files.load(Ordering::Relaxed);
        self.read(&params.text_document.uri, move |ctx| {
            let range: TextRange = ctx.file.text_range(range)?;
            let wanted = |kind: &lsp::CodeActionKind| {
                only.as_ref().is_none_or(|only| {
                    only.iter().any(|o| kind.as_str() == o.as_str() || kind.as_str().starts_with(&format!("{}.", o.as_str())))
                })
            };
            let mut out = Vec::new();
            for action in ctx.snap.code_actions(&ctx.path, range).or_modified()? {
                let kind = if !action.refactor {
                    lsp::CodeActionKind::QUICKFIX
                } else if action.fix.title.starts_with("Extract") {
                    lsp::CodeActionKind::REFACTOR_EXTRACT
                } else {
                    lsp::CodeActionKind::REFACTOR_REWRITE
                };
                // An action that creates files needs a client that can.
                if !wanted(&kind) || (!action.create.is_empty() && !create_files) {
                    continue;
                }
                let preferred = action.diagnostic.as_ref().map(|d| d.fix.as_ref() == Some(&action.fix));
                out.push(lsp::CodeActionOrCommand::CodeAction(lsp::CodeAction {
                    title: action.fix.title.clone(),
                    kind: Some(kind),
                    diagnostics: action.diagnostic.as_ref().map(|d| vec![ctx.diagnostic(d)]),
                    edit: Some(if action.create.is_empty() {
                        ctx.workspace_edit(&action.fix.edits)
                    } else {
                        ctx.creating_workspace_edit(&action.create, &action.fix.edits)
                    }),
                    command: None,
                    is_preferred: preferred,
                    disabled: None,
                    data: None,
                }));
            }
            // Fix-all is asked for by kind (on save, or a "Fix all" command), never offered
            // unasked beside the fixes under the cursor.
            let fix_all = lsp::CodeActionKind::new(FIX_ALL);
            if only.is_some() && wanted(&fix_all) {
                out.extend(fix_all_action(ctx, fix_all)?);
            }
            Ok(Some(out))
        })
        .await
    }

    async fn code_lens(&self, params: lsp::CodeLensParams) -> Result<Option<Vec<lsp::CodeLens>>> {
        let uri = params.text_document.uri.clone();
        self.read(&params.text_document.uri, move |ctx| {
            if is_large(ctx) {
                return Ok(None);
            }
            let lenses = ctx.snap.agent_lenses(&ctx.path).or_modified()?;
            Ok(Some(
                lenses
                    .into_iter()
                    .map(|(range, agent)| lsp::CodeLens {
                        range: ctx.file.range(range),
                        command: Some(lsp::Command {
                            title: "▶ Run agent".into(),
                            command: RUN_AGENT.into(),
                            arguments: Some(vec![Value::String(agent), serde_json::to_value(&uri).unwrap_or(Value::Null)]),
                        }),
                        data: None,
                    })
                    .collect(),
            ))
        })
        .await
    }

    async fn execute_command(&self, params: lsp::ExecuteCommandParams) -> Result<Option<lsp::LSPAny>> {
        // Arguments: the agent's name, its document's URI (what the "Run agent" lens sends) and,
        // optionally, the run's input (any JSON value); for `symbiont.verifyAudit`, optionally a
        // document or folder URI of the workspace.
        let uri_argument = |index: usize| -> Result<Option<PathBuf>> {
            match params.arguments.get(index) {
                None | Some(Value::Null) => Ok(None),
                Some(value) => {
                    let uri: lsp::Uri =
                        serde_json::from_value(value.clone()).map_err(|e| invalid_params(format!("argument {index}: {e}")))?;
                    uri.to_file_path()
                        .map(|p| Some(p.into_owned()))
                        .ok_or_else(|| invalid_params(format!("`{}` is not a file URI", uri.as_str())))
                }
            }
        };
        match params.command.as_str() {
            RUN_AGENT => {
                let agent =
                    params.arguments.first().and_then(Value::as_str).ok_or_else(|| invalid_params("argument 0: the agent's name"))?;
                let file = uri_argument(1)?.ok_or_else(|| invalid_params("argument 1: the URI of the agent's .sym file"))?;
                let input = params.arguments.get(2).filter(|v| !v.is_null()).cloned();
                let root = root_of(file.parent().unwrap_or(Path::new("/")));
                crate::run::run_agent(&self.client, crate::run::RunRequest { file, agent: agent.to_string(), input, root }).await
            }
            VERIFY_AUDIT => {
                let start = match uri_argument(0)? {
                    Some(path) if path.is_dir() => path,
                    Some(path) => path.parent().map(Path::to_path_buf).unwrap_or(path),
                    None => self.paths().root.ok_or_else(|| invalid_params("no workspace folder: pass a URI of the workspace"))?,
                };
                crate::run::verify_audit(&self.client, root_of(&start).join(".symbiont").join("audit")).await
            }
            other => Err(invalid_params(format!("unknown command `{other}` (expected {RUN_AGENT} or {VERIFY_AUDIT})"))),
        }
    }
}
