//! The audit log's promises under attack: every kind of tampering is detected and the right entry
//! is named; proofs agree with a naive recomputation; bad input gets a precise error, never a
//! panic.

use std::{path::Path, sync::Arc};

use proptest::prelude::*;
use serde_json::json;
use symbiont_audit::{
    entry::{Checkpoint, Record},
    keys::{FileSigner, PublicKey, Signer},
    merkle, store,
    verify::{verify_log, VerifyOptions, VerifyReport},
    Error, Log, LogOptions,
};

const ENTRIES: u64 = 20;

fn record(i: u64) -> Record {
    Record::from_json(
        json!({ "agent": format!("agent{}", i % 3), "operation": "file_read", "decision": "allow", "path": format!("/data/{i}") }),
    )
    .unwrap()
}

fn signer(seed: u8) -> Arc<FileSigner> {
    Arc::new(FileSigner::from_seed([seed; 32]))
}

fn public(signer: &FileSigner) -> PublicKey {
    PublicKey::from_bytes(&signer.public_key()).unwrap()
}

/// A closed log of `ENTRIES` entries in 3 segments, with checkpoints every 5 entries.
fn build(dir: &Path, key: Arc<FileSigner>) {
    let options = LogOptions { checkpoint_every: 5, segment_entries: 8, ..LogOptions::default() };
    let (log, report) = Log::open(dir, key, options).unwrap();
    assert!(report.created);
    for i in 0..ENTRIES {
        assert_eq!(log.append(record(i)).unwrap(), i);
    }
    log.close().unwrap();
}

fn verify(dir: &Path, key: &FileSigner) -> VerifyReport {
    verify_log(dir, &VerifyOptions { trusted_keys: vec![public(key)], saved_checkpoint: None, ..VerifyOptions::default() }).unwrap()
}

/// All entry lines, as (segment path, lines).
fn segments(dir: &Path) -> Vec<(std::path::PathBuf, Vec<Vec<u8>>)> {
    store::segments(dir)
        .unwrap()
        .into_iter()
        .map(|(_, path)| {
            let lines = store::read_lines(&path).unwrap().into_iter().map(|l| l.bytes).collect();
            (path, lines)
        })
        .collect()
}

fn write_segments(segments: &[(std::path::PathBuf, Vec<Vec<u8>>)]) {
    for (path, lines) in segments {
        let mut bytes = Vec::new();
        for line in lines {
            bytes.extend_from_slice(line);
            bytes.push(b'\n');
        }
        std::fs::write(path, bytes).unwrap();
    }
}

/// Global position of entry `seq`: (segment index, line index).
fn locate(segments: &[(std::path::PathBuf, Vec<Vec<u8>>)], seq: u64) -> (usize, usize) {
    let mut remaining = seq as usize;
    for (s, (_, lines)) in segments.iter().enumerate() {
        if remaining < lines.len() {
            return (s, remaining);
        }
        remaining -= lines.len();
    }
    panic!("no entry {seq}");
}

fn assert_names(report: &VerifyReport, seq: u64, what: &str) {
    let finding = report.finding.as_ref().unwrap_or_else(|| panic!("{what}: not detected"));
    assert_eq!(finding.seq, Some(seq), "{what}: wrong entry named: {finding}");
}

struct Fixture {
    _tmp: tempfile::TempDir,
    original: std::path::PathBuf,
    key: Arc<FileSigner>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let original = tmp.path().join("log");
    let key = signer(7);
    build(&original, key.clone());
    assert!(verify(&original, &key).is_valid());
    Fixture { _tmp: tmp, original, key }
}

impl Fixture {
    fn copy(&self, name: &str) -> std::path::PathBuf {
        let dir = self._tmp.path().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        symbiont_tests::copy_dir(&self.original, &dir, &|name| name == "lock");
        dir
    }
}

#[test]
fn a_valid_log_verifies_with_the_right_key_only() {
    let f = fixture();
    let report = verify(&f.original, &f.key);
    assert_eq!((report.entries, report.checkpoints), (ENTRIES, 4));
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let wrong = signer(9);
    let report = verify(&f.original, &wrong);
    assert_names(&report, 0, "a log signed by another key");
    assert!(report.finding.unwrap().reason.contains("not trusted"));
}

#[test]
fn flipping_any_byte_of_any_entry_is_detected_at_that_entry() {
    let f = fixture();
    let dir = f.copy("flip");
    let pristine = segments(&dir);
    let mut flips = 0;
    for seq in 0..ENTRIES {
        let (s, l) = locate(&pristine, seq);
        let len = pristine[s].1[l].len();
        // Every byte of three entries, every 7th byte of the others.
        let step = if matches!(seq, 0 | 9 | 19) { 1 } else { 7 };
        for byte in (0..len).step_by(step) {
            for mask in [0x01u8, 0x20] {
                let mut tampered = pristine.clone();
                tampered[s].1[l][byte] ^= mask;
                write_segments(&tampered);
                assert_names(&verify(&dir, &f.key), seq, &format!("byte {byte} of entry {seq} flipped with {mask:#x}"));
                flips += 1;
            }
        }
    }
    assert!(flips > 1000, "{flips}");
}

#[test]
fn deleting_swapping_and_splicing_entries_are_detected() {
    let f = fixture();
    let dir = f.copy("delete");
    let pristine = segments(&dir);
    for seq in [0, 7, 8, 13, 19] {
        let mut tampered = pristine.clone();
        let (s, l) = locate(&tampered, seq);
        tampered[s].1.remove(l);
        write_segments(&tampered);
        assert_names(&verify(&dir, &f.key), seq, &format!("entry {seq} deleted"));
    }
    for (a, b) in [(0, 1), (3, 11), (18, 19)] {
        let mut tampered = pristine.clone();
        let (sa, la) = locate(&tampered, a);
        let (sb, lb) = locate(&tampered, b);
        let line_a = tampered[sa].1[la].clone();
        tampered[sa].1[la] = tampered[sb].1[lb].clone();
        tampered[sb].1[lb] = line_a;
        write_segments(&tampered);
        assert_names(&verify(&dir, &f.key), a, &format!("entries {a} and {b} swapped"));
    }
    // An entry from another log, signed by the same key, at the same position.
    let other = f._tmp.path().join("other");
    build(&other, f.key.clone());
    let foreign = segments(&other);
    for seq in [0, 12] {
        let mut tampered = pristine.clone();
        let (s, l) = locate(&tampered, seq);
        tampered[s].1[l] = foreign[s].1[l].clone();
        write_segments(&tampered);
        let report = verify(&dir, &f.key);
        assert_names(&report, seq, "an entry spliced in from another log");
        assert!(report.finding.unwrap().reason.contains("another log"));
    }
}

#[test]
fn re_signing_with_another_key_is_detected() {
    let f = fixture();
    let dir = f.copy("resign");
    let attacker = signer(66);
    // The attacker rewrites entry 5 and re-signs it (and everything after it, to keep the chain)
    // with a key of their own: they cannot produce the trusted key's signatures.
    let mut tampered = segments(&dir);
    let mut prev: Option<String> = None;
    for seq in 5..ENTRIES {
        let (s, l) = locate(&tampered, seq);
        let mut entry: symbiont_audit::Entry = serde_json::from_slice(&tampered[s].1[l]).unwrap();
        if seq == 5 {
            entry.decision = "deny".into();
        }
        if let Some(p) = &prev {
            entry.prev = p.clone();
        }
        entry.key_id = attacker.key_id().to_string();
        let body = entry.body().unwrap();
        entry.sig =
            symbiont_audit::entry::b64(&attacker.sign(&symbiont_audit::entry::pae(symbiont_audit::entry::ENTRY_TYPE, &body)).unwrap());
        prev = Some(symbiont_audit::entry::hex(&symbiont_audit::entry::sha256(&body)));
        tampered[s].1[l] = entry.line().unwrap();
    }
    write_segments(&tampered);
    let report = verify(&dir, &f.key);
    assert_names(&report, 5, "entries re-signed with an attacker's key");
    // Keeping the trusted key id does not help: the signature fails.
    let dir = f.copy("resign-same-id");
    let mut tampered = segments(&dir);
    let (s, l) = locate(&tampered, 5);
    let mut entry: symbiont_audit::Entry = serde_json::from_slice(&tampered[s].1[l]).unwrap();
    entry.decision = "deny".into();
    entry.sig = symbiont_audit::entry::b64(
        &attacker.sign(&symbiont_audit::entry::pae(symbiont_audit::entry::ENTRY_TYPE, &entry.body().unwrap())).unwrap(),
    );
    tampered[s].1[l] = entry.line().unwrap();
    write_segments(&tampered);
    let report = verify(&dir, &f.key);
    assert_names(&report, 5, "an entry re-signed under the trusted key id");
    assert!(report.finding.unwrap().reason.contains("signature"));
}

#[test]
fn truncation_past_a_saved_checkpoint_and_replayed_checkpoints_are_detected() {
    let f = fixture();
    let saved: Checkpoint = verify(&f.original, &f.key).latest_checkpoint.unwrap();
    assert_eq!(saved.size, ENTRIES);

    // Truncate to 12 entries and drop the checkpoints that would give it away.
    let dir = f.copy("truncate");
    let mut tampered = segments(&dir);
    let (s, l) = locate(&tampered, 12);
    tampered[s].1.truncate(l);
    for later in tampered.iter_mut().skip(s + 1) {
        later.1.clear();
    }
    write_segments(&tampered);
    let checkpoints = dir.join(store::CHECKPOINTS_FILE);
    let kept: Vec<String> = std::fs::read_to_string(&checkpoints).unwrap().lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(&checkpoints, kept.concat()).unwrap();
    assert!(verify(&dir, &f.key).is_valid(), "without the saved checkpoint, a clean truncation looks like a shorter log");
    let with_saved = verify_log(
        &dir,
        &VerifyOptions { trusted_keys: vec![public(&f.key)], saved_checkpoint: Some(saved.clone()), ..VerifyOptions::default() },
    )
    .unwrap();
    assert_names(&with_saved, 12, "truncation past a saved checkpoint");

    // An old checkpoint replayed at the end of the checkpoints.
    let dir = f.copy("replay");
    let checkpoints = dir.join(store::CHECKPOINTS_FILE);
    let text = std::fs::read_to_string(&checkpoints).unwrap();
    let first = text.lines().next().unwrap().to_string();
    std::fs::write(&checkpoints, format!("{text}{first}\n")).unwrap();
    let report = verify(&dir, &f.key);
    assert!(report.finding.as_ref().is_some_and(|f| f.reason.contains("replayed")), "{:?}", report.finding);

    // A checkpoint of the right size whose root was forged is caught by its signature.
    let dir = f.copy("forge");
    let checkpoints = dir.join(store::CHECKPOINTS_FILE);
    let mut lines: Vec<Checkpoint> =
        std::fs::read_to_string(&checkpoints).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    lines[1].root = symbiont_audit::entry::b64(&[0u8; 32]);
    std::fs::write(&checkpoints, lines.iter().map(|c| format!("{}\n", serde_json::to_string(c).unwrap())).collect::<String>()).unwrap();
    assert!(verify(&dir, &f.key).finding.is_some_and(|f| f.reason.contains("signature")));
}

#[test]
fn recovery_cuts_only_a_torn_tail_and_refuses_a_corrupt_log() {
    let f = fixture();
    // A torn last line: cut on open, reported, and the log goes on.
    let dir = f.copy("torn");
    let (_, path) = store::segments(&dir).unwrap().pop().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(br#"{"v":1,"log":"half-writ"#);
    std::fs::write(&path, &bytes).unwrap();
    let report = verify(&dir, &f.key);
    assert!(report.is_valid() && report.torn_tail.is_some());
    let (log, opened) = Log::open(&dir, f.key.clone(), LogOptions::default()).unwrap();
    assert_eq!(opened.entries, ENTRIES);
    assert!(opened.truncated.is_some());
    assert_eq!(log.append(record(99)).unwrap(), ENTRIES);
    log.close().unwrap();
    assert!(verify(&dir, &f.key).is_valid());

    // A corrupt committed entry: the writer refuses the log, naming the entry.
    let dir = f.copy("corrupt");
    let mut tampered = segments(&dir);
    let (s, l) = locate(&tampered, 4);
    tampered[s].1[l][30] ^= 1;
    write_segments(&tampered);
    match Log::open(&dir, f.key.clone(), LogOptions::default()) {
        Err(Error::Corrupt(finding)) => assert_eq!(finding.seq, Some(4)),
        Err(other) => panic!("expected a corrupt log, got {other}"),
        Ok(_) => panic!("a corrupt log was opened for writing"),
    }

    // The writer checks signatures only after the last checkpoint (the checkpoint's signed root
    // covers the rest): a signature changed under a checkpoint, which leaves the chain intact, is
    // still refused, and named.
    let dir = f.copy("resigned");
    let mut tampered = segments(&dir);
    let (s, l) = locate(&tampered, 2);
    let line = &mut tampered[s].1[l];
    let at = line.windows(7).position(|w| w == b"\"sig\":\"").unwrap() + 7;
    line[at] = if line[at] == b'A' { b'B' } else { b'A' };
    write_segments(&tampered);
    match Log::open(&dir, f.key.clone(), LogOptions::default()) {
        Err(Error::Corrupt(finding)) => assert_eq!(finding.seq, Some(2)),
        Err(other) => panic!("expected a corrupt log, got {other}"),
        Ok(_) => panic!("a log with a forged signature was opened for writing"),
    }
}

#[test]
fn one_writer_at_a_time_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (log, _) = Log::open(&dir, signer(1), LogOptions::default()).unwrap();
    log.append(record(0)).unwrap();
    assert!(matches!(Log::open(&dir, signer(1), LogOptions::default()), Err(Error::Locked(_))));
    log.close().unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("segments")), 0o700);
    for file in ["origin", "keys.jsonl", "checkpoints.jsonl", "segments/00000000000000000000.jsonl"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    // Reopening after close works and continues the chain.
    let (log, report) = Log::open(&dir, signer(1), LogOptions::default()).unwrap();
    assert_eq!(report.entries, 1);
    assert_eq!(log.append(record(1)).unwrap(), 1);
    log.close().unwrap();
}

#[test]
fn key_rotation_is_signed_by_both_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (old, new) = (signer(1), signer(2));
    let (log, _) = Log::open(&dir, old.clone(), LogOptions::default()).unwrap();
    log.append(record(0)).unwrap();
    assert_eq!(log.rotate(new.clone()).unwrap(), 1);
    log.append(record(2)).unwrap();
    log.close().unwrap();
    // Trusting only the old key is enough: the rotation introduces the new one.
    let report = verify(&dir, &old);
    assert!(report.is_valid(), "{:?}", report.finding);
    assert_eq!(report.entries, 3);
    // The new key alone cannot vouch for what the old one signed.
    assert_names(&verify(&dir, &new), 0, "entries before the rotation, checked with the new key only");
}

#[test]
fn bad_input_gets_a_precise_error_never_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    // An empty directory is not a log.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = verify_log(&empty, &VerifyOptions::default()).unwrap_err();
    assert!(err.to_string().contains("not an audit log"), "{err}");
    // A log whose segment is garbage.
    let f = fixture();
    let dir = f.copy("garbage");
    let (_, path) = store::segments(&dir).unwrap().remove(0);
    let mut garbage = vec![0u8; 4096];
    for (i, b) in garbage.iter_mut().enumerate() {
        *b = (i * 7919 % 251) as u8;
    }
    std::fs::write(&path, &garbage).unwrap();
    let report = verify(&dir, &f.key);
    assert_names(&report, 0, "a garbage segment");
    // A record without its fields.
    assert!(Record::from_json(json!({"agent": "a"})).unwrap_err().to_string().contains("operation"));
    assert!(Record::from_json(json!([1, 2])).is_err());
    // A key file that is not a key.
    let not_a_key = tmp.path().join("key");
    std::fs::write(&not_a_key, "hello").unwrap();
    // Written 0644: refused for who may read it before what it says is read.
    assert!(FileSigner::load(&not_a_key).err().unwrap().to_string().contains("must be mode 0600"));
    std::fs::set_permissions(&not_a_key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    assert!(FileSigner::load(&not_a_key).err().unwrap().to_string().contains("not a Symbiont private key"));
    // A link to a key is refused, even to a good one: a repository can ship links.
    let good = tmp.path().join("good.key");
    FileSigner::generate().unwrap().write(&good).unwrap();
    FileSigner::load(&good).expect("a 0600 key of one's own loads");
    let link = tmp.path().join("link.key");
    std::os::unix::fs::symlink(&good, &link).unwrap();
    assert!(FileSigner::load(&link).err().unwrap().to_string().contains("symbolic link"));
}

/// The audit path of leaf `m` by the definition of RFC 6962 §2.1.1, written as plainly as possible.
fn naive_path(m: usize, leaves: &[merkle::Hash]) -> Vec<merkle::Hash> {
    if leaves.len() <= 1 {
        return Vec::new();
    }
    let k = (0..).map(|i| 1usize << i).take_while(|&p| p < leaves.len()).last().unwrap();
    if m < k {
        let mut path = naive_path(m, &leaves[..k]);
        path.push(merkle::root(&leaves[k..]));
        path
    } else {
        let mut path = naive_path(m - k, &leaves[k..]);
        path.push(merkle::root(&leaves[..k]));
        path
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, rng_seed: crate::properties::seed(), ..ProptestConfig::default() })]

    #[test]
    fn proofs_agree_with_a_naive_recomputation(size in 1usize..300, index in any::<prop::sample::Index>(), old in any::<prop::sample::Index>()) {
        let leaves: Vec<merkle::Hash> = (0..size).map(|i| merkle::leaf_hash(format!("entry {i}").as_bytes())).collect();
        let root = merkle::root(&leaves);
        let mut frontier = merkle::Frontier::default();
        leaves.iter().for_each(|l| frontier.push(*l));
        prop_assert_eq!(frontier.root(), root);

        let m = index.index(size);
        let proof = merkle::inclusion_proof(m, &leaves);
        prop_assert_eq!(&proof, &naive_path(m, &leaves));
        prop_assert!(merkle::verify_inclusion(m as u64, size as u64, &leaves[m], &proof, &root));
        let other = (m + 1) % size;
        if other != m {
            prop_assert!(!merkle::verify_inclusion(m as u64, size as u64, &leaves[other], &proof, &root));
        }

        let old_size = old.index(size) + 1;
        let consistency = merkle::consistency_proof(old_size, &leaves);
        prop_assert!(merkle::verify_consistency(old_size as u64, size as u64, &merkle::root(&leaves[..old_size]), &root, &consistency));
        if old_size < size {
            let mut rewritten = leaves.clone();
            rewritten[old_size - 1] = merkle::leaf_hash(b"rewritten");
            prop_assert!(!merkle::verify_consistency(old_size as u64, size as u64, &merkle::root(&rewritten[..old_size]), &root, &consistency));
        }
    }
}

#[test]
fn the_cli_names_the_first_bad_entry_and_exits_1() {
    let ws = crate::cli::Workspace::new();
    let run = ws.run(&["audit", "keygen", "--key", "k"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    for i in 0..5 {
        let record = format!(r#"{{"agent":"a","operation":"file_read","decision":"allow","n":{i}}}"#);
        assert_eq!(ws.run(&["audit", "append", "log", "--key", "k", "--json", &record]).code, 0);
    }
    let valid = ws.run(&["audit", "verify", "log", "--key", "k.pub"]);
    assert_eq!(valid.code, 0, "{}{}", valid.stdout, valid.stderr);
    assert!(valid.stdout.starts_with("valid: 5 entries"), "{}", valid.stdout);
    let saved = ws.run(&["audit", "checkpoint", "log"]);
    ws.write("saved.json", &saved.stdout);

    let segment = ws.path("log/segments/00000000000000000000.jsonl");
    let text = std::fs::read_to_string(&segment).unwrap().replace(r#""n":3"#, r#""n":4"#);
    std::fs::write(&segment, text).unwrap();
    let invalid = ws.run(&["audit", "verify", "log", "--key", "k.pub", "--format", "json"]);
    assert_eq!(invalid.code, 1);
    let report: serde_json::Value = serde_json::from_str(&invalid.stdout).unwrap();
    assert_eq!(report["first_bad"]["seq"], 3);
    assert!(report["first_bad"]["offset"].as_u64().unwrap() > 0);

    for (args, message) in [
        (vec!["audit", "verify", "nowhere"], "not an audit log"),
        (vec!["audit", "verify", "log", "--checkpoint", "missing.json"], "missing.json"),
        (vec!["audit", "append", "log", "--key", "k", "--json", "{nope"], "invalid JSON"),
        (vec!["audit", "verify", "log", "--key", "k"], "not a Symbiont public key"),
    ] {
        let run = ws.run(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
    }
    std::fs::create_dir(ws.path("nowhere")).unwrap();
    assert!(ws.run(&["audit", "verify", "nowhere"]).stderr.contains("not an audit log"));
}
