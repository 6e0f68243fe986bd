//! Verifying a log: every signature (batched, with a strict per-entry pass to name the culprit
//! when a batch fails), the hash chain, sequence continuity, origins, Merkle roots against the
//! checkpoints, checkpoint signatures, and consistency with a checkpoint saved earlier.

use std::{collections::HashMap, path::PathBuf};

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

/// How many signatures are checked together.
const BATCH: usize = 64;

struct Pending {
    seq: u64,
    line: RawLine,
    message: Vec<u8>,
    signature: Signature,
    key: VerifyingKey,
}

struct Verifier {
    keys: HashMap<String, VerifyingKey>,
    pending: Vec<Pending>,
}

impl Verifier {
    /// Checks the pending signatures; the first bad one, if any.
    fn flush(&mut self) -> Option<Finding> {
        if self.pending.is_empty() {
            return None;
        }
        let messages: Vec<&[u8]> = self.pending.iter().map(|p| p.message.as_slice()).collect();
        let signatures: Vec<Signature> = self.pending.iter().map(|p| p.signature).collect();
        let keys: Vec<VerifyingKey> = self.pending.iter().map(|p| p.key).collect();
        let batch_ok = ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok();
        // Batch and strict verification can disagree on adversarial signatures: every signature
        // must pass `verify_strict` too. After a passing batch only the cheap strict checks of the
        // encoding remain, so both run; a failed batch names its culprit this way.
        let bad = self.pending.iter().find(|p| p.key.verify_strict(&p.message, &p.signature).is_err());
        let finding = match (bad, batch_ok) {
            (Some(p), _) => Some(finding(Some(p.seq), &p.line, "the signature does not verify")),
            (None, true) => None,
            // Every signature passes alone but not together: refuse rather than guess.
            (None, false) => {
                let p = &self.pending[0];
                Some(finding(
                    Some(p.seq),
                    &p.line,
                    "batch verification fails for the entries from here, though each passes strict verification",
                ))
            }
        };
        self.pending.clear();
        finding
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
    let mut verifier = Verifier { keys: trusted.into_iter().map(|k| (k.id, k.key)).collect(), pending: Vec::new() };

    let segments = store::segments(dir)?;
    let mut frontier = Frontier::default();
    let mut prev = GENESIS_PREV.to_string();
    let mut last_ts = String::new();
    let mut lines: Vec<RawLine> = Vec::new();
    for (_, path) in &segments {
        lines.extend(store::read_lines(path)?);
    }
    let total_lines = lines.len();
    'entries: for (i, line) in lines.into_iter().enumerate() {
        let expected_seq = report.entries;
        if !line.complete {
            if i + 1 == total_lines {
                report.torn_tail = Some(finding(
                    Some(expected_seq),
                    &line,
                    "the last line is unfinished (a torn write); the writer cuts it on its next open",
                ));
                break;
            }
            report.finding = Some(finding(Some(expected_seq), &line, "an unfinished line in the middle of the log"));
            break;
        }
        let structural = (|| -> Result<(Pending, bool), String> {
            let entry: Entry = serde_json::from_slice(&line.bytes).map_err(|e| format!("not a valid entry: {e}"))?;
            if entry.line().map_err(|e| e.to_string())? != line.bytes {
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
            let body = entry.body().map_err(|e| e.to_string())?;
            let rotation = entry.rotation_key().is_some();
            if let Some(new_key) = entry.rotation_key() {
                let new = VerifyingKey::from_bytes(&new_key).map_err(|_| "the rotation names an invalid public key")?;
                let cosig = entry.cosig.as_deref().and_then(entry::unb64::<64>).map(|s| Signature::from_bytes(&s));
                let Some(cosig) = cosig else { return Err("the key rotation lacks the new key's signature".into()) };
                new.verify_strict(&pae(ROTATION_TYPE, &body), &cosig)
                    .map_err(|_| "the new key's signature on the rotation does not verify")?;
                verifier.keys.insert(crate::keys::key_id(&new_key), new);
            }
            prev = entry::hex(&sha256(&body));
            last_ts = entry.ts.clone();
            if keep {
                report.kept.push((entry, line.clone()));
            }
            Ok((Pending { seq: expected_seq, line: line.clone(), message: pae(ENTRY_TYPE, &body), signature, key }, rotation))
        })();
        match structural {
            Ok((pending, rotation)) => {
                verifier.pending.push(pending);
                let leaf = merkle::leaf_hash(&line.bytes);
                frontier.push(leaf);
                report.leaves.push(leaf);
                report.entries += 1;
                report.last_body_hash = entry::unhex32(&prev);
                // A rotation's own signature must hold before the new key is trusted.
                if verifier.pending.len() >= BATCH || rotation {
                    if let Some(bad) = verifier.flush() {
                        report.finding = Some(bad);
                        break 'entries;
                    }
                }
            }
            Err(reason) => {
                report.finding = verifier.flush().or(Some(finding(Some(expected_seq), &line, reason)));
                break;
            }
        }
    }
    if report.finding.is_none() {
        report.finding = verifier.flush();
    }
    report.last_ts = last_ts;
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

    check_checkpoints(dir, &origin, &verifier.keys, &mut report)?;
    if let Some(saved) = &options.saved_checkpoint {
        check_saved(saved, &origin, &verifier.keys, dir, &mut report);
    }
    Ok(report)
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
        let root = merkle::root(&report.leaves[..cp.size as usize]);
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
