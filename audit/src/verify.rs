//! Verifying a log: every signature (`verify_batch` on every core, `verify_strict` to settle a failed batch), the hash chain, sequence
//! continuity, origins, Merkle roots against the checkpoints, checkpoint signatures, and
//! consistency with a checkpoint saved earlier.
//!
//! A reading streams: segments are read line by line, the Merkle tree is kept as its frontier
//! (logarithmic in the number of entries), checkpoints are read as the entries reach their sizes,
//! and only the entries whose signatures are being checked are held. Memory does not grow with
//! the log, also for an inclusion proof ([`prove_inclusion`]).

use std::{
    collections::{HashMap, VecDeque},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc, Arc,
    },
};

use ed25519_dalek::{Signature, VerifyingKey};
use serde::Deserialize;

use crate::{
    entry::{self, pae, sha256, Checkpoint, Entry, CHECKPOINT_TYPE, ENTRY_TYPE, GENESIS_PREV, ROTATION_TYPE},
    keys::PublicKey,
    merkle::{self, Frontier, Hash},
    store::{self, LineReader, RawLine, ReverseLines},
    Error,
};

/// The first thing wrong with a log: which entry (when one is to blame), where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub seq: Option<u64>,
    pub path: PathBuf,
    pub offset: u64,
    pub reason: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "entry {seq} ({}, byte {}): {}", self.path.display(), self.offset, self.reason),
            None => write!(f, "{}, byte {}: {}", self.path.display(), self.offset, self.reason),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Keys trusted to sign. Empty: trust the keys the log records in `keys.jsonl` (which proves
    /// integrity, not authorship), and say so.
    pub trusted_keys: Vec<PublicKey>,
    /// A checkpoint saved earlier: the log must still contain exactly what it covered.
    pub saved_checkpoint: Option<Checkpoint>,
    /// Check entry signatures only after the latest checkpoint whose own signature verifies. The
    /// checkpoint's signed Merkle root covers every entry before it, and that root is still
    /// compared with the entries, so a changed entry is still found (as a root mismatch, not by
    /// its seq). For the writer's open, which runs on every `symbiont run`; `audit verify` checks
    /// every signature.
    pub signatures_after_checkpoint: bool,
}

#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    pub origin: String,
    /// Entries read (valid ones, up to the first finding).
    pub entries: u64,
    pub checkpoints: u64,
    pub root: Hash,
    /// The first problem, if any: the log is invalid.
    pub finding: Option<Finding>,
    /// An unfinished last line, which the writer cuts on its next open: not an invalid log.
    pub torn_tail: Option<Finding>,
    pub warnings: Vec<String>,
    /// The Merkle tree of the valid entries, as its frontier (logarithmic in their number).
    pub frontier: Frontier,
    /// The signed body hash of the last valid entry (the next entry's `prev`).
    pub last_body_hash: Option<Hash>,
    /// The timestamp of the last valid entry.
    pub last_ts: String,
    pub latest_checkpoint: Option<Checkpoint>,
    /// Where a later reading continues ([`verify_from`]): after the last valid entry.
    pub end: Position,
}

impl VerifyReport {
    pub fn is_valid(&self) -> bool {
        self.finding.is_none()
    }
}

/// A place in a log where a reading starts: the segment (named by its first seq) and byte of the
/// next line, and what the entry there must continue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
    /// `None`: the entry there is taken at its word for its seq, `prev` and time (a reading that
    /// starts in the middle of a log checks what follows against it, not what precedes it).
    pub chain: Option<Link>,
}

/// What the next entry must continue: its seq, the previous entry's body hash (hex) and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub seq: u64,
    pub prev: String,
    pub ts: String,
}

impl Position {
    /// The start of a log: entry 0, chained to nothing.
    pub fn start() -> Position {
        Position { segment: 0, offset: 0, chain: Some(Link { seq: 0, prev: GENESIS_PREV.into(), ts: String::new() }) }
    }
}

/// One line of `keys.jsonl`.
#[derive(Deserialize)]
struct KeyRecord {
    key_id: String,
    public_key: String,
}

pub fn read_log_keys(dir: &std::path::Path) -> Result<Vec<PublicKey>, Error> {
    let mut keys = Vec::new();
    for line in store::read_lines(&dir.join(store::KEYS_FILE))? {
        let record: KeyRecord = serde_json::from_slice(&line.bytes)
            .map_err(|e| Error::Input(format!("{}, byte {}: malformed key record: {e}", line.path.display(), line.offset)))?;
        let bytes = entry::unb64::<32>(&record.public_key)
            .ok_or_else(|| Error::Input(format!("{}: key {} is not 32 base64 bytes", line.path.display(), record.key_id)))?;
        let key = PublicKey::from_bytes(&bytes)?;
        if key.id != record.key_id {
            return Err(Error::Input(format!("{}: key id {} does not match its public key", line.path.display(), record.key_id)));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// How many signatures are handed to the checking threads at a time.
const CHUNK: usize = 256;
/// At most this many threads check signatures.
const MAX_THREADS: usize = 8;

/// Where an entry's line is: an index into the segments being read, and its byte.
type Loc = (usize, u64);

/// A signature to check: entry `seq`, at `at`, over the bytes `span` of its chunk's messages.
struct Pending {
    seq: u64,
    at: Loc,
    span: (usize, usize),
    signature: Signature,
    key: VerifyingKey,
}

/// What becomes of an entry once its signature (and every earlier one) is known to be good.
struct Payload {
    seq: u64,
    leaf: Hash,
    body_hash: Hash,
    ts: String,
    /// Where the next line starts: (segment's first seq, byte).
    next: (u64, u64),
    /// The entry and its line, for a caller that visits them.
    entry: Option<(Entry, RawLine)>,
}

/// Signatures checked together by one `verify_batch` call.
const BATCH: usize = 64;

/// Signatures checked together by every checking thread: each takes the next unchecked one.
struct Chunk {
    items: Vec<Pending>,
    /// The signed messages, one after the other: one allocation a chunk, whichever thread frees it.
    messages: Vec<u8>,
    next: AtomicUsize,
    done: AtomicUsize,
    first_bad: AtomicUsize,
}

impl Chunk {
    fn new(items: Vec<Pending>, messages: Vec<u8>) -> Chunk {
        Chunk { items, messages, next: AtomicUsize::new(0), done: AtomicUsize::new(0), first_bad: AtomicUsize::new(usize::MAX) }
    }

    fn message(&self, pending: &Pending) -> &[u8] {
        &self.messages[pending.span.0..pending.span.1]
    }

    /// Checks signatures until none is left to take: `verify_batch` over a few at a time and, when
    /// a batch fails, `verify_strict` one by one to name the first bad signature (batch and strict
    /// verification can disagree on adversarial signatures, so a failed batch is settled strictly).
    fn work(&self) {
        loop {
            let start = self.next.fetch_add(BATCH, Ordering::Relaxed);
            if start >= self.items.len() {
                return;
            }
            let batch = &self.items[start..(start + BATCH).min(self.items.len())];
            let messages: Vec<&[u8]> = batch.iter().map(|p| self.message(p)).collect();
            let signatures: Vec<Signature> = batch.iter().map(|p| p.signature).collect();
            let keys: Vec<VerifyingKey> = batch.iter().map(|p| p.key).collect();
            if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_err() {
                // Every signature passes strictly yet the batch fails: refuse the batch's first entry.
                let bad = batch.iter().position(|p| p.key.verify_strict(self.message(p), &p.signature).is_err()).unwrap_or(0);
                self.first_bad.fetch_min(start + bad, Ordering::Relaxed);
            }
            self.done.fetch_add(batch.len(), Ordering::Release);
        }
    }

    /// Helps check the rest, waits for the other threads, and returns the index of the first bad
    /// signature.
    fn finish(&self) -> Option<usize> {
        self.work();
        while self.done.load(Ordering::Acquire) < self.items.len() {
            std::thread::yield_now();
        }
        Some(self.first_bad.load(Ordering::Relaxed)).filter(|&i| i < self.items.len())
    }
}

/// What a reading keeps of the valid entries, in order: the Merkle frontier, where it stands, the
/// checkpoints the entries reach, and whatever the caller asked for.
struct Sink<'v> {
    frontier: Frontier,
    /// The log's checkpoints, for a reading from the start.
    checkpoints: Option<Checkpoints>,
    /// A saved checkpoint's size, and the root of that many entries once reached.
    saved: Option<(u64, Option<Hash>)>,
    visit: Option<&'v mut dyn FnMut(Entry, RawLine)>,
    end: Position,
    last: Option<(Hash, String)>,
}

impl Sink<'_> {
    /// The tree so far reached a size: the checkpoints and saved checkpoint of that size are due.
    fn reached(&mut self, keys: &HashMap<String, VerifyingKey>) {
        if let Some(checkpoints) = &mut self.checkpoints {
            checkpoints.reached(&self.frontier, keys);
        }
        if let Some((size, root)) = &mut self.saved {
            if *size == self.frontier.size() {
                *root = Some(self.frontier.root());
            }
        }
    }

    fn accept(&mut self, payload: Payload, keys: &HashMap<String, VerifyingKey>) {
        self.frontier.push(payload.leaf);
        self.reached(keys);
        let chain = Link { seq: payload.seq + 1, prev: entry::hex(&payload.body_hash), ts: payload.ts.clone() };
        self.end = Position { segment: payload.next.0, offset: payload.next.1, chain: Some(chain) };
        self.last = Some((payload.body_hash, payload.ts));
        if let (Some(visit), Some((entry, line))) = (&mut self.visit, payload.entry) {
            visit(entry, line);
        }
    }
}

/// Checks signatures in order of the entries, on every core: the thread reading the log hands over
/// a chunk of signatures, reads the next chunk while the other threads check it, then helps them.
/// An entry goes to the sink once its signature and every earlier one are good.
struct Verifier<'a, 'v> {
    keys: HashMap<String, VerifyingKey>,
    pending: Vec<Pending>,
    /// The messages `pending` signs.
    messages: Vec<u8>,
    /// Handed over, not yet known to be good.
    in_flight: Option<Arc<Chunk>>,
    workers: &'a [mpsc::SyncSender<Arc<Chunk>>],
    /// The entries of `in_flight` and `pending`, in order.
    unsettled: VecDeque<Payload>,
    sink: Sink<'v>,
    /// Entries below this seq are covered by a signed checkpoint: their signatures are not checked.
    covered_below: u64,
}

impl Verifier<'_, '_> {
    fn push(&mut self, mut pending: Pending, message: &[u8], payload: Payload) -> Option<(u64, Loc)> {
        if pending.seq < self.covered_below && self.pending.is_empty() && self.in_flight.is_none() {
            self.sink.accept(payload, &self.keys);
            return None;
        }
        pending.span = (self.messages.len(), self.messages.len() + message.len());
        self.messages.extend_from_slice(message);
        self.pending.push(pending);
        self.unsettled.push_back(payload);
        if self.pending.len() < CHUNK {
            return None;
        }
        let chunk = Arc::new(Chunk::new(std::mem::take(&mut self.pending), std::mem::take(&mut self.messages)));
        for worker in self.workers {
            // A worker that is behind misses this chunk: the others and this thread check it.
            let _ = worker.try_send(chunk.clone());
        }
        let earlier = self.in_flight.replace(chunk);
        earlier.and_then(|c| self.settle(&c))
    }

    /// Checks everything handed over or pending; the first bad signature (seq, where), if any.
    fn flush(&mut self) -> Option<(u64, Loc)> {
        if let Some(chunk) = self.in_flight.take() {
            if let Some(bad) = self.settle(&chunk) {
                return Some(bad);
            }
        }
        if self.pending.is_empty() {
            return None;
        }
        let chunk = Chunk::new(std::mem::take(&mut self.pending), std::mem::take(&mut self.messages));
        self.settle(&chunk)
    }

    fn settle(&mut self, chunk: &Chunk) -> Option<(u64, Loc)> {
        let bad = chunk.finish();
        for _ in 0..bad.unwrap_or(chunk.items.len()) {
            if let Some(payload) = self.unsettled.pop_front() {
                self.sink.accept(payload, &self.keys);
            }
        }
        bad.map(|i| (chunk.items[i].seq, chunk.items[i].at))
    }
}

/// A log's checkpoints, read one at a time as the entries reach their sizes.
struct Checkpoints {
    path: PathBuf,
    origin: String,
    reader: Option<LineReader>,
    /// The next checkpoint, read and parsed, and where its line is.
    next: Option<(Checkpoint, u64)>,
    /// Checkpoints whose key was not known yet when the entries reached them (a rotation's new
    /// key may sign a checkpoint before the rotation entry is written): their signature is
    /// checked at the end, with what was known of them then.
    deferred: Vec<Deferred>,
    finding: Option<Finding>,
    warnings: Vec<String>,
    error: Option<Error>,
    last_size: u64,
    last_ts: String,
    count: u64,
    latest: Option<Checkpoint>,
}

struct Deferred {
    checkpoint: Checkpoint,
    offset: u64,
    count_before: u64,
    latest_before: Option<Checkpoint>,
}

impl Checkpoints {
    fn open(dir: &Path, origin: &str) -> Result<Checkpoints, Error> {
        let path = dir.join(store::CHECKPOINTS_FILE);
        let reader = LineReader::open(&path, 0)?;
        let mut checkpoints = Checkpoints {
            path,
            origin: origin.to_string(),
            reader,
            next: None,
            deferred: Vec::new(),
            finding: None,
            warnings: Vec::new(),
            error: None,
            last_size: 0,
            last_ts: String::new(),
            count: 0,
            latest: None,
        };
        checkpoints.advance();
        Ok(checkpoints)
    }

    fn stop(&mut self, offset: u64, seq: Option<u64>, reason: String) {
        self.finding = Some(Finding { seq, path: self.path.clone(), offset, reason });
        self.next = None;
        self.reader = None;
    }

    /// Reads the next checkpoint; a torn last one is ignored (with a warning), a malformed one stops.
    fn advance(&mut self) {
        self.next = None;
        let Some(reader) = &mut self.reader else { return };
        let line = match reader.next_line() {
            Ok(Some(store::Line { offset, bytes, complete })) => (offset, serde_json::from_slice::<Checkpoint>(bytes), complete),
            Ok(None) => return,
            Err(e) => {
                self.error = Some(e);
                self.reader = None;
                return;
            }
        };
        match line {
            (offset, _, false) => {
                self.warnings
                    .push(format!("{}, byte {offset}: an unfinished last checkpoint (a torn write), ignored", self.path.display()));
                self.reader = None;
            }
            (offset, Err(e), true) => self.stop(offset, None, format!("not a valid checkpoint: {e}")),
            (offset, Ok(cp), true) => self.next = Some((cp, offset)),
        }
    }

    /// Signature, origin and order of the next checkpoint.
    fn check(&self, cp: &Checkpoint, keys: &HashMap<String, VerifyingKey>) -> Result<(), String> {
        checkpoint_signature_ok(cp, keys)?;
        if cp.origin != self.origin {
            return Err(format!("the checkpoint belongs to another log (`{}`)", cp.origin));
        }
        if cp.size < self.last_size || cp.ts < self.last_ts {
            return Err(format!(
                "a checkpoint goes back in time (size {} after {}): an old checkpoint was replayed",
                cp.size, self.last_size
            ));
        }
        Ok(())
    }

    /// The entries reached the size of `frontier`: checks the checkpoints of that size.
    fn reached(&mut self, frontier: &Frontier, keys: &HashMap<String, VerifyingKey>) {
        while let Some((cp, offset)) = self.next.take() {
            if cp.size != frontier.size() {
                self.next = Some((cp, offset));
                return;
            }
            if !keys.contains_key(&cp.key_id) {
                let (count_before, latest_before) = (self.count, self.latest.clone());
                self.deferred.push(Deferred { checkpoint: cp.clone(), offset, count_before, latest_before });
            } else if let Err(reason) = self.check(&cp, keys) {
                return self.stop(offset, None, reason);
            }
            if Some(frontier.root()) != cp.root_hash() {
                let reason = format!("the Merkle root of the first {} entries does not match the checkpoint", cp.size);
                return self.stop(offset, None, reason);
            }
            self.last_size = cp.size;
            self.last_ts.clone_from(&cp.ts);
            self.count += 1;
            self.latest = Some(cp);
            self.advance();
        }
    }

    /// The entries ended at `valid`: a checkpoint still ahead covers entries that are missing.
    fn finish(&mut self, valid: u64, keys: &HashMap<String, VerifyingKey>) {
        if let Some((cp, offset)) = self.next.take() {
            let reason = self.check(&cp, keys).err().unwrap_or_else(|| {
                format!("the log is truncated: a checkpoint covers {} entries but entry {valid} onwards is missing or invalid", cp.size)
            });
            let seq = reason.starts_with("the log is truncated").then_some(valid);
            self.stop(offset, seq, reason);
        }
        let deferred = std::mem::take(&mut self.deferred);
        if let Some((d, reason)) = deferred.into_iter().find_map(|d| checkpoint_signature_ok(&d.checkpoint, keys).err().map(|r| (d, r))) {
            self.count = d.count_before;
            self.latest = d.latest_before;
            self.stop(d.offset, None, reason);
        }
    }
}

fn finding(seq: Option<u64>, path: &Path, offset: u64, reason: impl Into<String>) -> Finding {
    Finding { seq, path: path.to_path_buf(), offset, reason: reason.into() }
}

/// Verifies the log in `dir`. `Err` only when the log cannot be read at all; problems with its
/// contents are reported in [`VerifyReport::finding`].
pub fn verify_log(dir: &Path, options: &VerifyOptions) -> Result<VerifyReport, Error> {
    let report = verify_pass(dir, options, &Position::start(), None)?;
    if options.signatures_after_checkpoint && report.finding.is_some() {
        // Found through a checkpoint's root, a problem may be named at the entry after the one
        // changed: check every signature to name the first bad entry exactly.
        let every = VerifyOptions { signatures_after_checkpoint: false, ..options.clone() };
        return verify_pass(dir, &every, &Position::start(), None);
    }
    Ok(report)
}

/// The inclusion proof of one entry: its line, and the audit path from it to a checkpoint's root.
#[derive(Debug, Clone)]
pub struct InclusionProof {
    pub seq: u64,
    pub line: Vec<u8>,
    pub path: Vec<Hash>,
    pub checkpoint: Checkpoint,
}

/// The inclusion proof of entry `seq` in the tree of the log's latest checkpoint, read as
/// [`verify_log_each`] reads it (every signature, the chain, every checkpoint): the path's
/// subtrees are built as the entries stream by, so memory stays logarithmic in the log's length.
/// Refused when the log is invalid or the latest checkpoint does not cover `seq`.
pub fn prove_inclusion(dir: &Path, seq: u64, options: &VerifyOptions) -> Result<InclusionProof, String> {
    // The latest checkpoint, as written: the reading below checks it with every other one.
    let latest = ReverseLines::open(&dir.join(store::CHECKPOINTS_FILE), None)
        .map_err(|e| e.to_string())?
        .and_then(|mut lines| lines.prev_line().ok().flatten())
        .and_then(|(_, line)| serde_json::from_slice::<Checkpoint>(&line).ok())
        .ok_or("the log has no checkpoint yet")?;
    let mut streamed = merkle::StreamedProof::new(seq, latest.size)
        .ok_or_else(|| format!("entry {seq} is not covered by the latest checkpoint (size {})", latest.size))?;
    let mut line = None;
    let mut visit = |entry: Entry, raw: RawLine| {
        if streamed.wants_more() {
            if entry.seq == seq {
                line = Some(raw.bytes.clone());
            }
            streamed.push(merkle::leaf_hash(&raw.bytes));
        }
    };
    let report = verify_log_each(dir, options, &mut visit).map_err(|e| e.to_string())?;
    if let Some(finding) = &report.finding {
        return Err(format!("the log is invalid ({finding}): no proof is given from it"));
    }
    let checked = report.latest_checkpoint.is_some_and(|checked| checked.size >= latest.size);
    let (path, root) = streamed.finish().filter(|_| checked).ok_or("the log changed while it was read: run the command again")?;
    if entry::b64(&root) != latest.root {
        return Err("the log changed while it was read: run the command again".into());
    }
    Ok(InclusionProof { seq, line: line.expect("entry seq was streamed: it is below the size"), path, checkpoint: latest })
}

/// [`verify_log`] checking every signature, handing each valid entry to `visit` in order as soon
/// as it is known to be valid (entries after the first bad one are never visited; a checkpoint
/// found wrong is reported at the end, after the entries it covers were visited).
pub fn verify_log_each(dir: &Path, options: &VerifyOptions, visit: &mut dyn FnMut(Entry, RawLine)) -> Result<VerifyReport, Error> {
    let every = VerifyOptions { signatures_after_checkpoint: false, ..options.clone() };
    verify_pass(dir, &every, &Position::start(), Some(visit))
}

/// Checks the entries from `from` on (structure, chain, sequence, signatures), handing each valid
/// one to `visit`: what a reading of the end of a log, or of what was appended since an earlier
/// reading ([`VerifyReport::end`]), can check. Checkpoints cover a log from its start and are not
/// checked; `entries` counts the entries read from `from`.
pub fn verify_from(
    dir: &Path,
    options: &VerifyOptions,
    from: &Position,
    visit: &mut dyn FnMut(Entry, RawLine),
) -> Result<VerifyReport, Error> {
    let every = VerifyOptions { signatures_after_checkpoint: false, saved_checkpoint: None, ..options.clone() };
    verify_pass(dir, &every, from, Some(visit))
}

fn verify_pass(
    dir: &Path,
    options: &VerifyOptions,
    from: &Position,
    visit: Option<&mut dyn FnMut(Entry, RawLine)>,
) -> Result<VerifyReport, Error> {
    let origin = store::read_origin(dir)?;
    let mut report = VerifyReport { origin: origin.clone(), root: merkle::empty_root(), ..VerifyReport::default() };
    let trusted = if options.trusted_keys.is_empty() {
        report
            .warnings
            .push("no --key given: trusting the keys recorded in the log itself (this proves integrity, not who wrote it)".into());
        read_log_keys(dir)?
    } else {
        options.trusted_keys.clone()
    };
    let keys: HashMap<String, VerifyingKey> = trusted.into_iter().map(|k| (k.id, k.key)).collect();
    let whole = *from == Position::start();

    let covered_below = if options.signatures_after_checkpoint { checkpointed_size(dir, &origin, &keys) } else { 0 };
    let segments: Vec<(u64, PathBuf)> = store::segments(dir)?.into_iter().filter(|(first, _)| *first >= from.segment).collect();
    let bytes: u64 = segments.iter().map(|(_, path)| std::fs::metadata(path).map_or(0, |m| m.len())).sum();
    // A few hundred bytes an entry: threads only for logs of more than a chunk or so.
    let threads =
        if bytes > (CHUNK * 256) as u64 { std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_THREADS) } else { 1 };
    let mut sink = Sink {
        frontier: Frontier::default(),
        checkpoints: if whole { Some(Checkpoints::open(dir, &origin)?) } else { None },
        saved: if whole { options.saved_checkpoint.as_ref().map(|cp| (cp.size, None)) } else { None },
        visit,
        end: from.clone(),
        last: None,
    };
    sink.reached(&keys);
    let (keys, mut sink) = std::thread::scope(|scope| -> Result<_, Error> {
        let workers: Vec<mpsc::SyncSender<Arc<Chunk>>> = (1..threads)
            .map(|_| {
                // A worker kept off its core must not keep every chunk alive: at most two wait for it.
                let (sender, receiver) = mpsc::sync_channel::<Arc<Chunk>>(2);
                scope.spawn(move || receiver.into_iter().for_each(|chunk| chunk.work()));
                sender
            })
            .collect();
        let mut verifier = Verifier {
            keys,
            pending: Vec::new(),
            messages: Vec::new(),
            in_flight: None,
            workers: &workers,
            unsettled: VecDeque::new(),
            sink,
            covered_below,
        };
        check_entries(&segments, from, &origin, verifier.sink.visit.is_some(), &mut verifier, &mut report)?;
        Ok((verifier.keys, verifier.sink))
    })?;
    report.entries = sink.frontier.size();
    let (hash, ts) = sink.last.take().unzip();
    report.last_body_hash = hash;
    report.last_ts = ts.unwrap_or_default();
    report.root = sink.frontier.root();
    report.end = sink.end.clone();
    if let Some(mut checkpoints) = sink.checkpoints.take() {
        checkpoints.finish(report.entries, &keys);
        if let Some(e) = checkpoints.error {
            return Err(e);
        }
        report.warnings.append(&mut checkpoints.warnings);
        report.checkpoints = checkpoints.count;
        report.latest_checkpoint = checkpoints.latest;
        if report.finding.is_none() {
            report.finding = checkpoints.finding;
        }
        if report.finding.is_none() && checkpoints.last_size < report.entries {
            report.warnings.push(format!("entries {}..{} are not yet covered by a checkpoint", checkpoints.last_size, report.entries));
        }
    }
    if let Some(saved) = options.saved_checkpoint.as_ref().filter(|_| whole) {
        let root = sink.saved.and_then(|(_, root)| root);
        check_saved(saved, &origin, &keys, dir, report.entries, root, &mut report);
    }
    report.frontier = sink.frontier.clone();
    drop(sink);
    Ok(report)
}

/// The entries from `from`, in order: structure and chain here, signatures on every core; stops at
/// the first problem, which goes in `report.finding`.
fn check_entries(
    segments: &[(u64, PathBuf)],
    from: &Position,
    origin: &str,
    keep: bool,
    verifier: &mut Verifier<'_, '_>,
    report: &mut VerifyReport,
) -> Result<(), Error> {
    let mut chain = from.chain.clone();
    for (index, (first, path)) in segments.iter().enumerate() {
        let offset = if *first == from.segment { from.offset } else { 0 };
        let Some(mut reader) = LineReader::open(path, offset)? else { continue };
        while let Some(store::Line { offset, bytes, complete }) = reader.next_line()? {
            let expected_seq = chain.as_ref().map_or(0, |c| c.seq);
            let bad_signature =
                |(seq, (i, offset)): (u64, Loc)| finding(Some(seq), &segments[i].1, offset, "the signature does not verify");
            if !complete {
                // The entries before it are checked first: a bad one among them comes first.
                let last = segments[index + 1..].iter().all(|(_, later)| std::fs::metadata(later).map_or(true, |m| m.len() == 0));
                report.finding = verifier.flush().map(bad_signature);
                if report.finding.is_none() && last {
                    let reason = "the last line is unfinished (a torn write); the writer cuts it on its next open";
                    report.torn_tail = Some(finding(Some(expected_seq), path, offset, reason));
                } else if report.finding.is_none() {
                    report.finding = Some(finding(Some(expected_seq), path, offset, "an unfinished line in the middle of the log"));
                }
                return Ok(());
            }
            let next = (*first, offset + bytes.len() as u64 + 1);
            let checked = check_entry(bytes, origin, chain.as_ref(), &mut verifier.keys);
            match checked {
                Ok((entry, body_hash, message, signature, key, rotation)) => {
                    chain = Some(Link { seq: entry.seq + 1, prev: entry::hex(&body_hash), ts: entry.ts.clone() });
                    let pending = Pending { seq: entry.seq, at: (index, offset), span: (0, 0), signature, key };
                    let line = RawLine { path: path.clone(), offset, bytes: bytes.to_vec(), complete };
                    let payload = Payload {
                        seq: entry.seq,
                        leaf: merkle::leaf_hash(bytes),
                        body_hash,
                        ts: entry.ts.clone(),
                        next,
                        entry: keep.then_some((entry, line)),
                    };
                    let bad = verifier.push(pending, &message, payload);
                    // A rotation's own signature must hold before the new key is trusted.
                    if let Some(bad) = bad.or_else(|| if rotation { verifier.flush() } else { None }) {
                        report.finding = Some(bad_signature(bad));
                        return Ok(());
                    }
                }
                Err(reason) => {
                    let found = verifier.flush().map_or_else(|| finding(Some(expected_seq), path, offset, reason), bad_signature);
                    report.finding = Some(found);
                    return Ok(());
                }
            }
        }
    }
    report.finding = verifier.flush().map(|(seq, (i, offset))| finding(Some(seq), &segments[i].1, offset, "the signature does not verify"));
    Ok(())
}

/// An entry checked but for its signature: (entry, body hash, signed message, signature, key,
/// whether it is a key rotation). A rotation's new key joins `keys` once its countersignature
/// verifies.
type Checked = (Entry, Hash, Vec<u8>, Signature, VerifyingKey, bool);

/// One line against the entry before it (`chain`; `None`: the line is taken at its word).
fn check_entry(bytes: &[u8], origin: &str, chain: Option<&Link>, keys: &mut HashMap<String, VerifyingKey>) -> Result<Checked, String> {
    let entry: Entry = serde_json::from_slice(bytes).map_err(|e| format!("not a valid entry: {e}"))?;
    let body = entry.canonical_body().map_err(|e| e.to_string())?;
    if body.line(&entry.sig, entry.cosig.as_deref()) != bytes {
        return Err("the entry is not in canonical form (it was edited)".into());
    }
    if entry.v != entry::FORMAT_VERSION {
        return Err(format!("unknown format version {}", entry.v));
    }
    if entry.log != origin {
        return Err(format!("the entry belongs to another log (`{}`, this one is `{origin}`)", entry.log));
    }
    if let Some(chain) = chain {
        if entry.seq != chain.seq {
            return Err(format!("sequence break: expected entry {}, found entry {}", chain.seq, entry.seq));
        }
        if entry.prev != chain.prev {
            return Err(format!("the chain is broken: `prev` does not match the hash of entry {}", chain.seq.wrapping_sub(1)));
        }
        if entry.ts < chain.ts {
            return Err(format!("time goes backwards ({} after {})", entry.ts, chain.ts));
        }
    }
    let key = *keys.get(&entry.key_id).ok_or_else(|| format!("signed by key {}, which is not trusted", entry.key_id))?;
    let signature = entry::unb64::<64>(&entry.sig).map(|s| Signature::from_bytes(&s)).ok_or("the signature is not 64 base64 bytes")?;
    let rotation = entry.rotation_key().is_some();
    if let Some(new_key) = entry.rotation_key() {
        let new = VerifyingKey::from_bytes(&new_key).map_err(|_| "the rotation names an invalid public key")?;
        let cosig = entry.cosig.as_deref().and_then(entry::unb64::<64>).map(|s| Signature::from_bytes(&s));
        let Some(cosig) = cosig else { return Err("the key rotation lacks the new key's signature".into()) };
        new.verify_strict(&pae(ROTATION_TYPE, body.bytes()), &cosig)
            .map_err(|_| "the new key's signature on the rotation does not verify")?;
        keys.insert(crate::keys::key_id(&new_key), new);
    }
    let body_hash = sha256(body.bytes());
    let message = pae(ENTRY_TYPE, body.bytes());
    Ok((entry, body_hash, message, signature, key, rotation))
}

/// Where a reading of the last `n` entries that `matches` starts, reading the segments from the
/// end: the line of the `n`th from the end, taken at its word ([`Position::chain`] is `None`;
/// [`verify_from`] checks what follows it). `matches` says `None` to stop early (no earlier entry
/// can match: the reading starts after it). `Ok(None)`: the log has no more than `n` such entries
/// (read it from the start). With `n` = 0, the end of the log, chained to its last entry.
pub fn tail_position(dir: &Path, n: u64, matches: &mut dyn FnMut(&Entry) -> Option<bool>) -> Result<Option<Position>, Error> {
    let segments = store::segments(dir)?;
    let mut found = 0u64;
    let mut earliest: Option<Position> = None;
    for (first, path) in segments.iter().rev() {
        let Some(mut lines) = ReverseLines::open(path, None)? else { continue };
        while let Some((offset, bytes)) = lines.prev_line()? {
            let here = Position { segment: *first, offset, chain: None };
            let Ok(entry) = serde_json::from_slice::<Entry>(&bytes) else {
                // Not an entry: start there, for the reading to say so.
                return Ok(Some(here));
            };
            // After this entry, chained to it.
            let after = || -> Result<Position, Error> {
                let body = entry.canonical_body().map_err(|e| Error::Input(e.to_string()))?;
                let chain = Link { seq: entry.seq + 1, prev: entry::hex(&sha256(body.bytes())), ts: entry.ts.clone() };
                Ok(Position { segment: *first, offset: offset + bytes.len() as u64 + 1, chain: Some(chain) })
            };
            if n == 0 {
                return after().map(Some);
            }
            match matches(&entry) {
                None => return earliest.map_or_else(after, Ok).map(Some),
                Some(true) => {
                    found += 1;
                    if found == n {
                        return Ok(Some(here));
                    }
                }
                Some(false) => {}
            }
            earliest = Some(here);
        }
    }
    // An empty log: its end is its start.
    Ok(if n == 0 { Some(Position::start()) } else { None })
}

/// The size of the log's latest checkpoint, if it is complete, of this log, and signed by a
/// trusted key; 0 otherwise.
fn checkpointed_size(dir: &Path, origin: &str, keys: &HashMap<String, VerifyingKey>) -> u64 {
    let Ok(Some(mut lines)) = ReverseLines::open(&dir.join(store::CHECKPOINTS_FILE), None) else { return 0 };
    let Ok(Some((_, last))) = lines.prev_line() else { return 0 };
    match serde_json::from_slice::<Checkpoint>(&last) {
        Ok(cp) if cp.origin == origin && checkpoint_signature_ok(&cp, keys).is_ok() => cp.size,
        _ => 0,
    }
}

/// Verifies a checkpoint's signature with the trusted keys.
pub fn checkpoint_signature_ok(checkpoint: &Checkpoint, keys: &HashMap<String, VerifyingKey>) -> Result<(), String> {
    let key = keys.get(&checkpoint.key_id).ok_or_else(|| format!("signed by key {}, which is not trusted", checkpoint.key_id))?;
    let sig = entry::unb64::<64>(&checkpoint.sig).map(|s| Signature::from_bytes(&s)).ok_or("the signature is not 64 base64 bytes")?;
    key.verify_strict(&pae(CHECKPOINT_TYPE, checkpoint.note_body().as_bytes()), &sig)
        .map_err(|_| "the checkpoint signature does not verify".to_string())
}

/// The saved checkpoint against the first `valid` entries (`root`: the root of its size, if the
/// entries reached it).
fn check_saved(
    saved: &Checkpoint,
    origin: &str,
    keys: &HashMap<String, VerifyingKey>,
    dir: &Path,
    valid: u64,
    root: Option<Hash>,
    report: &mut VerifyReport,
) {
    let here = dir.join(store::CHECKPOINTS_FILE);
    let fail = |reason: String, seq: Option<u64>| Finding { seq, path: here.clone(), offset: 0, reason };
    let problem = if let Err(reason) = checkpoint_signature_ok(saved, keys) {
        Some(fail(format!("the saved checkpoint: {reason}"), None))
    } else if saved.origin != origin {
        Some(fail(format!("the saved checkpoint is of another log (`{}`)", saved.origin), None))
    } else if saved.size > valid {
        Some(fail(
            format!("the log is truncated: the saved checkpoint covers {} entries, entry {valid} onwards is gone", saved.size),
            Some(valid),
        ))
    } else if root != saved.root_hash() {
        Some(fail(format!("the first {} entries were rewritten since the saved checkpoint (their Merkle root differs)", saved.size), None))
    } else {
        None
    };
    if let Some(problem) = problem {
        // A finding inside the log comes first only when it is about an earlier entry.
        let earlier = report.finding.as_ref().is_some_and(|f| f.seq.is_some() && f.seq <= problem.seq.or(Some(u64::MAX)));
        if !earlier {
            report.finding = Some(problem);
        }
    }
}
