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

/// What the client was last sent for a file: a fingerprint of the list (a huge file's is tens of
/// megabytes; two different lists of one file sharing a 64-bit SipHash is not a concern).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Sent(u64);

impl Sent {
    fn of(diagnostics: &[&Diagnostic]) -> Sent {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        diagnostics.hash(&mut hasher);
        Sent(hasher.finish())
    }
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
                // An empty list clears what the client shows for the file.
                self.publish(uri, [(); 0], 0, None);
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
                    Ok(Some((outgoing, diagnostics))) => {
                        dirty.remove(&path);
                        self.send(&round, &outgoing, &diagnostics);
                        sent.insert(path, Sent::of(&diagnostics));
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
                let Ok(diagnostics) = round.snap.diagnostics_unfixed_ref(&path) else {
                    finished = false;
                    break;
                };
                let previous = sent.get(&path).copied();
                if previous == Some(Sent::of(&diagnostics)) || (previous.is_none() && diagnostics.is_empty()) {
                    continue;
                }
                let Some(outgoing) = self.outgoing(&round, &path) else { continue };
                out.push((outgoing, diagnostics));
            }
            // Sent once every file is computed: a newer change interrupts computing, not sending.
            for (outgoing, diagnostics) in out {
                self.send(&round, &outgoing, &diagnostics);
                sent.insert(outgoing.path, Sent::of(&diagnostics));
            }
            drop(round);
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

    /// A file's diagnostics on the round's snapshot, ready to be sent; `None` for a file that is
    /// no longer known, `Err` when the snapshot was cancelled.
    fn compute<'r>(&self, round: &'r Round, path: &Path) -> Result<Option<(Outgoing, Vec<&'r Diagnostic>)>, ()> {
        let diagnostics = round.snap.diagnostics_unfixed_ref(path).map_err(|_| ())?;
        Ok(self.outgoing(round, path).map(|outgoing| (outgoing, diagnostics)))
    }

    /// Where a file's diagnostics go: its URI, version and text (for positions).
    fn outgoing(&self, round: &Round, path: &Path) -> Option<Outgoing> {
        let text = FileText::new(round.snap.file_text(path)?);
        let (uri, version) = match round.versions.get(path) {
            Some((uri, version)) => (uri.clone(), Some(*version)),
            None => (convert::uri_of_path(&round.paths, &HashMap::new(), path)?, None),
        };
        Some(Outgoing { path: path.to_path_buf(), uri, version, text })
    }

    /// Publishes `diagnostics` of `to`, each converted to the protocol's form as it is written:
    /// a huge file's thousands are never held twice, converted and serialised.
    fn send(&self, round: &Round, to: &Outgoing, diagnostics: &[&Diagnostic]) {
        let open: HashMap<PathBuf, lsp::Uri> = round.versions.iter().map(|(p, (u, _))| (p.clone(), u.clone())).collect();
        // The other files related information points into (a policy, an agent), each one's URI and
        // line index made once, not once per diagnostic.
        let others: std::cell::RefCell<HashMap<PathBuf, Option<(lsp::Uri, FileText)>>> = Default::default();
        let convert = |d: &Diagnostic| {
            convert::diagnostic(d, &to.text, |other, range| {
                if other == to.path {
                    return Some(lsp::Location { uri: to.uri.clone(), range: to.text.range(range) });
                }
                let mut others = others.borrow_mut();
                let file = others.entry(other.to_path_buf()).or_insert_with(|| {
                    convert::uri_of_path(&round.paths, &open, other).zip(round.snap.file_text(other).map(FileText::new))
                });
                let (uri, file) = file.as_ref()?;
                Some(lsp::Location { uri: uri.clone(), range: file.range(range) })
            })
        };
        self.publish(to.uri.clone(), Converted { diagnostics, convert }, diagnostics.len(), to.version);
    }

    /// Writes one `publishDiagnostics` notification of `count` diagnostics to the client.
    fn publish(&self, uri: lsp::Uri, diagnostics: impl serde::Serialize, count: usize, version: Option<i32>) {
        #[derive(serde::Serialize)]
        struct Params<D> {
            uri: lsp::Uri,
            diagnostics: D,
            #[serde(skip_serializing_if = "Option::is_none")]
            version: Option<i32>,
        }
        #[derive(serde::Serialize)]
        struct Notification<D> {
            jsonrpc: &'static str,
            method: &'static str,
            params: Params<D>,
        }
        let notification =
            Notification { jsonrpc: "2.0", method: "textDocument/publishDiagnostics", params: Params { uri, diagnostics, version } };
        // About 350 bytes a diagnostic: written once into room made for them (and for the frame's
        // header, put in front in place), not grown by copies.
        let mut body = Vec::with_capacity(512 + 384 * count);
        match serde_json::to_writer(&mut body, &notification) {
            // The connection is gone when the writer is: nothing to tell then.
            Ok(()) => {
                if let Some(frames) = self.frames.upgrade() {
                    let _ = frames.send(crate::transport::framed(body));
                }
            }
            Err(e) => crate::log(format!("diagnostics not published: {e}")),
        }
    }
}

/// A file whose diagnostics are about to be published.
struct Outgoing {
    path: PathBuf,
    uri: lsp::Uri,
    version: Option<i32>,
    text: FileText,
}

/// Diagnostics serialised as a list of the protocol's, each converted when it is written.
struct Converted<'a, F> {
    diagnostics: &'a [&'a Diagnostic],
    convert: F,
}

impl<F: Fn(&Diagnostic) -> lsp::Diagnostic> serde::Serialize for Converted<'_, F> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut list = serializer.serialize_seq(Some(self.diagnostics.len()))?;
        for diagnostic in self.diagnostics {
            list.serialize_element(&(self.convert)(diagnostic))?;
        }
        list.end()
    }
}
