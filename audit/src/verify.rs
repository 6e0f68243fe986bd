//! Verifying a log: every signature (`verify_batch` on every core, `verify_strict` to settle a failed batch), the hash chain, sequence
//! continuity, origins, Merkle roots against the checkpoints, checkpoint signatures, and
//! consistency with a checkpoint saved earlier.

use std::{
    collections::HashMap,
    path::PathBuf,
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
    store::{self, RawLine},
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
    /// Leaf hashes of the valid entries, for proofs.
    pub leaves: Vec<Hash>,
    /// The signed body hash of the last valid entry (the next entry's `prev`).
    pub last_body_hash: Option<Hash>,
    /// The timestamp of the last valid entry.
    pub last_ts: String,
    /// Valid entries, when the caller asked to keep them.
    pub kept: Vec<(Entry, RawLine)>,
    pub latest_checkpoint: Option<Checkpoint>,
}

impl VerifyReport {
    pub fn is_valid(&self) -> bool {
        self.finding.is_none()
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

/// A signature to check: entry `seq`, on line `line` of the log.
struct Pending {
    seq: u64,
    line: usize,
    message: Vec<u8>,
    signature: Signature,
    key: VerifyingKey,
    /// The entry's body hash and time: the report's last valid entry once this one is checked.
    body_hash: Hash,
    ts: String,
}

/// Signatures checked together by one `verify_batch` call.
const BATCH: usize = 64;

/// Signatures checked together by every checking thread: each takes the next unchecked one.
struct Chunk {
    items: Vec<Pending>,
    next: AtomicUsize,
    done: AtomicUsize,
    first_bad: AtomicUsize,
}

impl Chunk {
    fn new(items: Vec<Pending>) -> Chunk {
        Chunk { items, next: AtomicUsize::new(0), done: AtomicUsize::new(0), first_bad: AtomicUsize::new(usize::MAX) }
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
            let messages: Vec<&[u8]> = batch.iter().map(|p| p.message.as_slice()).collect();
            let signatures: Vec<Signature> = batch.iter().map(|p| p.signature).collect();
            let keys: Vec<VerifyingKey> = batch.iter().map(|p| p.key).collect();
            if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_err() {
                // Every signature passes strictly yet the batch fails: refuse the batch's first entry.
                let bad = batch.iter().position(|p| p.key.verify_strict(&p.message, &p.signature).is_err()).unwrap_or(0);
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

/// Checks signatures in order of the entries, on every core: the thread reading the log hands over
/// a chunk of signatures, reads the next chunk while the other threads check it, then helps them.
struct Verifier<'a> {
    keys: HashMap<String, VerifyingKey>,
    pending: Vec<Pending>,
    /// Handed over, not yet known to be good.
    in_flight: Option<Arc<Chunk>>,
    workers: &'a [mpsc::Sender<Arc<Chunk>>],
    /// The body hash and time of the last entry whose signature (and every earlier one) is good.
    last_good: Option<(Hash, String)>,
    /// Entries below this seq are covered by a signed checkpoint: their signatures are not checked.
    covered_below: u64,
}

impl Verifier<'_> {
    fn push(&mut self, pending: Pending) -> Option<(u64, usize)> {
        if pending.seq < self.covered_below && self.pending.is_empty() && self.in_flight.is_none() {
            self.last_good = Some((pending.body_hash, pending.ts));
            return None;
        }
        self.pending.push(pending);
        if self.pending.len() < CHUNK {
            return None;
        }
        let chunk = Arc::new(Chunk::new(std::mem::take(&mut self.pending)));
        for worker in self.workers {
            let _ = worker.send(chunk.clone());
        }
        let earlier = self.in_flight.replace(chunk);
        earlier.and_then(|c| self.settle(&c))
    }

    /// Checks everything handed over or pending; the first bad signature (seq, line), if any.
    fn flush(&mut self) -> Option<(u64, usize)> {
        if let Some(chunk) = self.in_flight.take() {
            if let Some(bad) = self.settle(&chunk) {
                return Some(bad);
            }
        }
        if self.pending.is_empty() {
            return None;
        }
        let chunk = Chunk::new(std::mem::take(&mut self.pending));
        self.settle(&chunk)
    }

    fn settle(&mut self, chunk: &Chunk) -> Option<(u64, usize)> {
        match chunk.finish() {
            Some(i) => {
                if let Some(before) = i.checked_sub(1).and_then(|j| chunk.items.get(j)) {
                    self.last_good = Some((before.body_hash, before.ts.clone()));
                }
                Some((chunk.items[i].seq, chunk.items[i].line))
            }
            None => {
                if let Some(last) = chunk.items.last() {
                    self.last_good = Some((last.body_hash, last.ts.clone()));
                }
                None
            }
        }
    }
}

fn finding(seq: Option<u64>, line: &RawLine, reason: impl Into<String>) -> Finding {
    Finding { seq, path: line.path.clone(), offset: line.offset, reason: reason.into() }
}

/// Verifies the log in `dir`. `Err` only when the log cannot be read at all; problems with its
/// contents are reported in [`VerifyReport::finding`].
pub fn verify_log(dir: &std::path::Path, options: &VerifyOptions) -> Result<VerifyReport, Error> {
    verify_inner(dir, options, false)
}

/// [`verify_log`], keeping the valid entries (for `show` and the writer's recovery).
pub fn verify_log_keeping(dir: &std::path::Path, options: &VerifyOptions) -> Result<VerifyReport, Error> {
    verify_inner(dir, options, true)
}

fn verify_inner(dir: &std::path::Path, options: &VerifyOptions, keep: bool) -> Result<VerifyReport, Error> {
    let report = verify_pass(dir, options, keep)?;
    if options.signatures_after_checkpoint && report.finding.is_some() {
        // Found through a checkpoint's root, a problem may be named at the entry after the one
        // changed: check every signature to name the first bad entry exactly.
        let every = VerifyOptions { signatures_after_checkpoint: false, ..options.clone() };
        return verify_pass(dir, &every, keep);
    }
    Ok(report)
}

fn verify_pass(dir: &std::path::Path, options: &VerifyOptions, keep: bool) -> Result<VerifyReport, Error> {
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

    let covered_below = if options.signatures_after_checkpoint { checkpointed_size(dir, &origin, &keys) } else { 0 };
    let segments = store::segments(dir)?;
    let mut frontier = Frontier::default();
    let mut lines: Vec<RawLine> = Vec::new();
    for (_, path) in &segments {
        lines.extend(store::read_lines(path)?);
    }
    let threads = if lines.len() > CHUNK { std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_THREADS) } else { 1 };
    let keys: HashMap<String, VerifyingKey> = std::thread::scope(|scope| {
        let workers: Vec<mpsc::Sender<Arc<Chunk>>> = (1..threads)
            .map(|_| {
                let (sender, receiver) = mpsc::channel::<Arc<Chunk>>();
                scope.spawn(move || receiver.into_iter().for_each(|chunk| chunk.work()));
                sender
            })
            .collect();
        let mut verifier = Verifier { keys, pending: Vec::new(), in_flight: None, workers: &workers, last_good: None, covered_below };
        check_entries(&lines, &origin, keep, &mut verifier, &mut frontier, &mut report);
        let (hash, ts) = verifier.last_good.take().unzip();
        report.last_body_hash = hash;
        report.last_ts = ts.unwrap_or_default();
        verifier.keys
    });
    if let Some(bad) = &report.finding {
        // Nothing at or after the first bad entry counts.
        let valid = bad.seq.unwrap_or(report.entries).min(report.entries) as usize;
        report.leaves.truncate(valid);
        report.kept.truncate(valid);
        report.entries = valid as u64;
        let mut f = Frontier::default();
        report.leaves.iter().for_each(|l| f.push(*l));
        frontier = f;
    }
    report.root = frontier.root();

    check_checkpoints(dir, &origin, &keys, &mut report)?;
    if let Some(saved) = &options.saved_checkpoint {
        check_saved(saved, &origin, &keys, dir, &mut report);
    }
    Ok(report)
}

/// The entries, in order: structure and chain here, signatures on every core; stops at the first
/// problem, which goes in `report.finding`.
fn check_entries(
    lines: &[RawLine],
    origin: &str,
    keep: bool,
    verifier: &mut Verifier<'_>,
    frontier: &mut Frontier,
    report: &mut VerifyReport,
) {
    let bad_signature = |(seq, line): (u64, usize)| finding(Some(seq), &lines[line], "the signature does not verify");
    let mut prev = GENESIS_PREV.to_string();
    let mut last_ts = String::new();
    let total_lines = lines.len();
    for (i, line) in lines.iter().enumerate() {
        let expected_seq = report.entries;
        if !line.complete {
            if i + 1 == total_lines {
                report.torn_tail = Some(finding(
                    Some(expected_seq),
                    line,
                    "the last line is unfinished (a torn write); the writer cuts it on its next open",
                ));
                break;
            }
            report.finding = Some(finding(Some(expected_seq), line, "an unfinished line in the middle of the log"));
            break;
        }
        let structural = (|| -> Result<(Pending, bool), String> {
            let entry: Entry = serde_json::from_slice(&line.bytes).map_err(|e| format!("not a valid entry: {e}"))?;
            let body = entry.canonical_body().map_err(|e| e.to_string())?;
            if body.line(&entry.sig, entry.cosig.as_deref()) != line.bytes {
                return Err("the entry is not in canonical form (it was edited)".into());
            }
            if entry.v != entry::FORMAT_VERSION {
                return Err(format!("unknown format version {}", entry.v));
            }
            if entry.log != origin {
                return Err(format!("the entry belongs to another log (`{}`, this one is `{origin}`)", entry.log));
            }
            if entry.seq != expected_seq {
                return Err(format!("sequence break: expected entry {expected_seq}, found entry {}", entry.seq));
            }
            if entry.prev != prev {
                return Err(format!("the chain is broken: `prev` does not match the hash of entry {}", expected_seq.wrapping_sub(1)));
            }
            if entry.ts < last_ts {
                return Err(format!("time goes backwards ({} after {last_ts})", entry.ts));
            }
            let key = *verifier.keys.get(&entry.key_id).ok_or_else(|| format!("signed by key {}, which is not trusted", entry.key_id))?;
            let signature =
                entry::unb64::<64>(&entry.sig).map(|s| Signature::from_bytes(&s)).ok_or("the signature is not 64 base64 bytes")?;
            let rotation = entry.rotation_key().is_some();
            if let Some(new_key) = entry.rotation_key() {
                let new = VerifyingKey::from_bytes(&new_key).map_err(|_| "the rotation names an invalid public key")?;
                let cosig = entry.cosig.as_deref().and_then(entry::unb64::<64>).map(|s| Signature::from_bytes(&s));
                let Some(cosig) = cosig else { return Err("the key rotation lacks the new key's signature".into()) };
                new.verify_strict(&pae(ROTATION_TYPE, body.bytes()), &cosig)
                    .map_err(|_| "the new key's signature on the rotation does not verify")?;
                verifier.keys.insert(crate::keys::key_id(&new_key), new);
            }
            let body_hash = sha256(body.bytes());
            prev = entry::hex(&body_hash);
            last_ts.clone_from(&entry.ts);
            let message = pae(ENTRY_TYPE, body.bytes());
            let ts = entry.ts.clone();
            if keep {
                report.kept.push((entry, line.clone()));
            }
            Ok((Pending { seq: expected_seq, line: i, message, signature, key, body_hash, ts }, rotation))
        })();
        match structural {
            Ok((pending, rotation)) => {
                let leaf = merkle::leaf_hash(&line.bytes);
                frontier.push(leaf);
                report.leaves.push(leaf);
                report.entries += 1;
                let bad = verifier.push(pending);
                // A rotation's own signature must hold before the new key is trusted.
                if let Some(bad) = bad.or_else(|| if rotation { verifier.flush() } else { None }) {
                    report.finding = Some(bad_signature(bad));
                    return;
                }
            }
            Err(reason) => {
                report.finding = Some(verifier.flush().map_or_else(|| finding(Some(expected_seq), line, reason), bad_signature));
                return;
            }
        }
    }
    if report.finding.is_none() {
        report.finding = verifier.flush().map(bad_signature);
    }
}

/// The size of the log's latest checkpoint, if it is complete, of this log, and signed by a
/// trusted key; 0 otherwise.
fn checkpointed_size(dir: &std::path::Path, origin: &str, keys: &HashMap<String, VerifyingKey>) -> u64 {
    let Ok(lines) = store::read_lines(&dir.join(store::CHECKPOINTS_FILE)) else { return 0 };
    let Some(last) = lines.iter().rev().find(|l| l.complete) else { return 0 };
    match serde_json::from_slice::<Checkpoint>(&last.bytes) {
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

fn check_checkpoints(
    dir: &std::path::Path,
    origin: &str,
    keys: &HashMap<String, VerifyingKey>,
    report: &mut VerifyReport,
) -> Result<(), Error> {
    let path = dir.join(store::CHECKPOINTS_FILE);
    let mut last_size = 0u64;
    let mut last_ts = String::new();
    // The tree of the first `last_size` leaves, grown checkpoint by checkpoint (sizes never go
    // down): each root costs the leaves since the previous checkpoint, not the whole prefix.
    let mut tree = Frontier::default();
    let lines = store::read_lines(&path)?;
    let total = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        if !line.complete && i + 1 == total {
            report.warnings.push(format!(
                "{}, byte {}: an unfinished last checkpoint (a torn write), ignored",
                line.path.display(),
                line.offset
            ));
            break;
        }
        let problem = (|| -> Result<Checkpoint, String> {
            let cp: Checkpoint = serde_json::from_slice(&line.bytes).map_err(|e| format!("not a valid checkpoint: {e}"))?;
            checkpoint_signature_ok(&cp, keys)?;
            if cp.origin != origin {
                return Err(format!("the checkpoint belongs to another log (`{}`)", cp.origin));
            }
            if cp.size < last_size || cp.ts < last_ts {
                return Err(format!("a checkpoint goes back in time (size {} after {last_size}): an old checkpoint was replayed", cp.size));
            }
            Ok(cp)
        })();
        let cp = match problem {
            Ok(cp) => cp,
            Err(reason) => {
                if report.finding.is_none() {
                    report.finding = Some(Finding { seq: None, path: line.path.clone(), offset: line.offset, reason });
                }
                return Ok(());
            }
        };
        if cp.size > report.leaves.len() as u64 {
            if report.finding.is_none() {
                let seq = report.leaves.len() as u64;
                report.finding = Some(Finding {
                    seq: Some(seq),
                    path: line.path.clone(),
                    offset: line.offset,
                    reason: format!(
                        "the log is truncated: a checkpoint covers {} entries but entry {seq} onwards is missing or invalid",
                        cp.size
                    ),
                });
            }
            return Ok(());
        }
        let mut grown = tree.clone();
        report.leaves[grown.size() as usize..cp.size as usize].iter().for_each(|l| grown.push(*l));
        let root = grown.root();
        if Some(root) != cp.root_hash() {
            if report.finding.is_none() {
                report.finding = Some(Finding {
                    seq: None,
                    path: line.path.clone(),
                    offset: line.offset,
                    reason: format!("the Merkle root of the first {} entries does not match the checkpoint", cp.size),
                });
            }
            return Ok(());
        }
        last_size = cp.size;
        last_ts = cp.ts.clone();
        tree = grown;
        report.checkpoints += 1;
        report.latest_checkpoint = Some(cp);
    }
    if report.finding.is_none() && last_size < report.entries {
        report.warnings.push(format!("entries {last_size}..{} are not yet covered by a checkpoint", report.entries));
    }
    Ok(())
}

fn check_saved(saved: &Checkpoint, origin: &str, keys: &HashMap<String, VerifyingKey>, dir: &std::path::Path, report: &mut VerifyReport) {
    let here = dir.join(store::CHECKPOINTS_FILE);
    let fail = |reason: String, seq: Option<u64>| Finding { seq, path: here.clone(), offset: 0, reason };
    let problem = if let Err(reason) = checkpoint_signature_ok(saved, keys) {
        Some(fail(format!("the saved checkpoint: {reason}"), None))
    } else if saved.origin != origin {
        Some(fail(format!("the saved checkpoint is of another log (`{}`)", saved.origin), None))
    } else if saved.size > report.leaves.len() as u64 {
        let seq = report.leaves.len() as u64;
        Some(fail(
            format!("the log is truncated: the saved checkpoint covers {} entries, entry {seq} onwards is gone", saved.size),
            Some(seq),
        ))
    } else if Some(merkle::root(&report.leaves[..saved.size as usize])) != saved.root_hash() {
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
