//! Push diagnostics: after each batch of changes, the changed documents' diagnostics are computed
//! on a snapshot and published first (the latency an editor feels), then every other file's,
//! published only when they differ from what the client already has. A newer change cancels the
//! snapshot; the round starts again on the newer text.

use std::{
    collections::{BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc, Mutex,
    },
};

use symbiont_analysis::{ide::Analysis, Diagnostic};
use tower_lsp_server::ls_types as lsp;

use crate::{
    convert::{self, FileText, Paths},
    world::{lock, Effects, World},
};

pub struct Publisher {
    pub world: Arc<Mutex<World>>,
    /// The frames written to the client ([`crate::transport::write_frames`]). Notifications go
    /// there directly, serialised on this thread: through `tower-lsp-server`'s client each would be
    /// turned into a `serde_json::Value`, then serialised on the protocol's threads and framed
    /// twice, which for a file with a thousand diagnostics costs more than computing them again.
    /// Weak: the writer ends with the server's output, not with this thread.
    pub frames: tokio::sync::mpsc::WeakUnboundedSender<Vec<u8>>,
    /// Off when the client pulls diagnostics instead.
    pub enabled: Arc<AtomicBool>,
}

/// What the client was last sent for a file.
struct Sent {
    diagnostics: Vec<Diagnostic>,
}

struct Round {
    snap: Analysis,
    versions: HashMap<PathBuf, (lsp::Uri, i32)>,
    paths: Paths,
}

impl Publisher {
    pub fn run(self, rx: mpsc::Receiver<Effects>) {
        let mut sent: HashMap<PathBuf, Sent> = HashMap::new();
        let mut dirty: BTreeSet<PathBuf> = BTreeSet::new();
        let mut all = false;
        let mut next = None;
        loop {
            let mut effects = match next.take() {
                Some(effects) => effects,
                None => match rx.recv() {
                    Ok(effects) => effects,
                    Err(_) => return,
                },
            };
            for more in rx.try_iter() {
                effects.merge(more);
            }
            if !self.enabled.load(Ordering::Relaxed) {
                continue;
            }
            for (path, uri) in effects.removed {
                dirty.remove(&path);
                sent.remove(&path);
                self.send(uri, Vec::new(), None);
            }
            // A file whose text changed always gets a publish: the client waits for its version.
            dirty.extend(effects.changed.iter().cloned());
            all |= effects.all || !effects.changed.is_empty();

            // The changed files first, the smallest first, each pushed as soon as it is computed:
            // a small file's diagnostics never wait behind a huge file's.
            let round = self.round();
            let mut order: Vec<PathBuf> = dirty.iter().cloned().collect();
            order.sort_by_cached_key(|p| round.snap.file_text(p).map_or(0, |t| t.len()));
            let mut cancelled = false;
            for path in order {
                match self.compute(&round, &path) {
                    Ok(Some((path, uri, lsp_diagnostics, version, diagnostics))) => {
                        dirty.remove(&path);
                        self.send(uri, lsp_diagnostics, version);
                        sent.insert(path, Sent { diagnostics });
                    }
                    Ok(None) => {}
                    Err(()) => {
                        cancelled = true;
                        break;
                    }
                }
            }
            drop(round);
            if cancelled {
                dirty.retain(|p| self.known(p));
                continue;
            }
            dirty.clear();
            if !all {
                continue;
            }
            // Then every other file, when its diagnostics changed. A newer change interrupts.
            let round = self.round();
            let mut files: Vec<PathBuf> = round.snap.files().map(Path::to_path_buf).chain(round.snap.config_path()).collect();
            files.sort_by_key(|p| !round.versions.contains_key(p));
            let mut out = Vec::new();
            let mut finished = true;
            for path in files {
                if let Ok(effects) = rx.try_recv() {
                    next = Some(effects);
                    finished = false;
                    break;
                }
                let Ok(diagnostics) = round.snap.diagnostics_unfixed(&path) else {
                    finished = false;
                    break;
                };
                let previous = sent.get(&path).map(|s| &s.diagnostics);
                if previous == Some(&diagnostics) || (previous.is_none() && diagnostics.is_empty()) {
                    continue;
                }
                let Some((uri, lsp_diagnostics, version)) = self.convert(&round, &path, &diagnostics) else { continue };
                out.push((path, uri, lsp_diagnostics, version, diagnostics));
            }
            drop(round);
            for (path, uri, lsp_diagnostics, version, diagnostics) in out {
                self.send(uri, lsp_diagnostics, version);
                sent.insert(path, Sent { diagnostics });
            }
            all = !finished;
        }
    }

    fn round(&self) -> Round {
        let world = lock(&self.world);
        Round {
            snap: world.host.snapshot(),
            versions: world.docs.iter().map(|(p, d)| (p.clone(), (d.uri.clone(), d.version))).collect(),
            paths: world.paths.clone(),
        }
    }

    fn known(&self, path: &Path) -> bool {
        lock(&self.world).host.file_text(path).is_some()
    }

    #[allow(clippy::type_complexity)]
    fn compute(
        &self,
        round: &Round,
        path: &Path,
    ) -> Result<Option<(PathBuf, lsp::Uri, Vec<lsp::Diagnostic>, Option<i32>, Vec<Diagnostic>)>, ()> {
        let diagnostics = round.snap.diagnostics_unfixed(path).map_err(|_| ())?;
        Ok(self.convert(round, path, &diagnostics).map(|(uri, lsp, version)| (path.to_path_buf(), uri, lsp, version, diagnostics)))
    }

    fn convert(&self, round: &Round, path: &Path, diagnostics: &[Diagnostic]) -> Option<(lsp::Uri, Vec<lsp::Diagnostic>, Option<i32>)> {
        let text = FileText::new(round.snap.file_text(path)?);
        let (uri, version) = match round.versions.get(path) {
            Some((uri, version)) => (uri.clone(), Some(*version)),
            None => (convert::uri_of_path(&round.paths, &HashMap::new(), path)?, None),
        };
        let open: HashMap<PathBuf, lsp::Uri> = round.versions.iter().map(|(p, (u, _))| (p.clone(), u.clone())).collect();
        // The other files related information points into (a policy, an agent), each one's URI and
        // line index made once, not once per diagnostic.
        let mut others: HashMap<PathBuf, Option<(lsp::Uri, FileText)>> = HashMap::new();
        let lsp_diagnostics = diagnostics
            .iter()
            .map(|d| {
                convert::diagnostic(d, &text, |other, range| {
                    if other == path {
                        return Some(lsp::Location { uri: uri.clone(), range: text.range(range) });
                    }
                    if !others.contains_key(other) {
                        let file = convert::uri_of_path(&round.paths, &open, other).zip(round.snap.file_text(other).map(FileText::new));
                        others.insert(other.to_path_buf(), file);
                    }
                    let (uri, file) = others.get(other)?.as_ref()?;
                    Some(lsp::Location { uri: uri.clone(), range: file.range(range) })
                })
            })
            .collect();
        Some((uri, lsp_diagnostics, version))
    }

    fn send(&self, uri: lsp::Uri, diagnostics: Vec<lsp::Diagnostic>, version: Option<i32>) {
        #[derive(serde::Serialize)]
        struct Notification {
            jsonrpc: &'static str,
            method: &'static str,
            params: lsp::PublishDiagnosticsParams,
        }
        let notification = Notification {
            jsonrpc: "2.0",
            method: "textDocument/publishDiagnostics",
            params: lsp::PublishDiagnosticsParams { uri, diagnostics, version },
        };
        // About 350 bytes a diagnostic: written once into room made for them, not grown by copies.
        let mut body = Vec::with_capacity(512 + 384 * notification.params.diagnostics.len());
        match serde_json::to_writer(&mut body, &notification) {
            // The connection is gone when the writer is: nothing to tell then.
            Ok(()) => {
                if let Some(frames) = self.frames.upgrade() {
                    let _ = frames.send(crate::transport::frame(&body));
                }
            }
            Err(e) => crate::log(format!("diagnostics not published: {e}")),
        }
    }
}
