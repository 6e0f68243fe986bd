//! WORM backups of a log to S3 with Object Lock, and fetching a backup back to verify it.
//!
//! The backup is a set of immutable objects under `s3://BUCKET/PREFIX/`, each written once with
//! an Object Lock retention in COMPLIANCE mode (nobody, root included, can delete it or shorten
//! its retention until the date passes):
//!
//! ```text
//! PREFIX/origin                                  the log's `origin`
//! PREFIX/keys/<lines>.jsonl                      `keys.jsonl` when it had that many lines
//! PREFIX/segments/<first seq>.jsonl              each sealed segment, byte for byte
//! PREFIX/active/<first seq>-<end seq>.jsonl      (--include-active) the active segment's entries
//!                                                first..end, end being the latest checkpoint's size
//! PREFIX/checkpoints/<line>.json                 line number <line> of `checkpoints.jsonl`
//! ```
//!
//! A checkpoint is uploaded only once every entry it covers is in the backup (sealed segments,
//! or with `include_active` the checkpointed part of the active segment), so the backup is
//! always a valid log by itself and a missing piece shows as a truncation when it is verified.
//! Every object carries its SHA-256 (`x-amz-meta-sha256`, and `x-amz-checksum-sha256`, which S3
//! checks on upload). A run uploads only what is not there yet; an object that is there with
//! other contents is a conflict (the local log or the backup was altered) and stops the run.
//!
//! Overwriting or deleting a key in a versioned bucket only adds a version or a delete marker:
//! the first version stays, locked. [`download`] therefore always takes each key's first
//! version, and says when later ones exist.

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    entry::{self, Checkpoint},
    io_error,
    s3::{Client, Retention, Version},
    store,
    verify::{self, Finding, VerifyOptions},
    Error,
};

/// The retention when none is given: seven years, the longest of the usual audit-record rules
/// (SEC 17a-4 and HIPAA ask for six, SOX for seven).
pub const DEFAULT_RETAIN: &str = "7y";

/// The mode every object is locked in.
pub const LOCK_MODE: &str = "COMPLIANCE";

/// `s3://BUCKET/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub bucket: String,
    /// Empty, or ending with `/`.
    pub prefix: String,
}

impl Target {
    /// Parses `s3://BUCKET` or `s3://BUCKET/PREFIX` (a trailing `/` is optional).
    pub fn parse(url: &str) -> Result<Target, Error> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| Error::Input(format!("`{url}`: expected s3://BUCKET/PREFIX")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Input(format!("`{url}`: no bucket name")));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|p| p == "." || p == "..") || prefix.contains("//") {
            return Err(Error::Input(format!("`{url}`: the prefix must not contain `.`, `..` or empty parts")));
        }
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        Ok(Target { bucket: bucket.to_string(), prefix })
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// `s3://BUCKET/PREFIX/name`.
    pub fn url(&self, name: &str) -> String {
        format!("s3://{}/{}{name}", self.bucket, self.prefix)
    }
}

/// `7y`, `90d`, `12h`, `30m`, `45s` (a year is 365 days).
pub fn parse_duration(text: &str) -> Option<Duration> {
    crate::time::parse_seconds(text, "ydhms").filter(|&s| s > 0).map(Duration::from_secs)
}

/// `2033-11-25T10:00:00Z`: a time as S3 takes it, to the second (rounded up).
pub fn s3_time(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000) + i64::from(micros.rem_euclid(1_000_000) > 0);
    let text = crate::time::format_micros(seconds * 1_000_000);
    text.replace(".000000Z", "Z")
}

#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// How long each uploaded object is locked, from the time of the upload.
    pub retain: Duration,
    /// Also upload the active segment's entries covered by the latest checkpoint.
    pub include_active: bool,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions { retain: parse_duration(DEFAULT_RETAIN).unwrap_or_default(), include_active: false }
    }
}

/// What a backup run did.
#[derive(Debug, Clone, Default)]
pub struct BackupReport {
    /// The keys (relative to the prefix) uploaded by this run, in upload order.
    pub uploaded: Vec<String>,
    /// Objects that were already in the backup, unchanged.
    pub unchanged: usize,
    /// The retention given to this run's uploads.
    pub retain_until: String,
    /// Entries in the backup after this run (0..backed_up).
    pub backed_up: u64,
    /// Entries in the local log.
    pub local_entries: u64,
    /// The size of the latest checkpoint in the backup after this run.
    pub checkpoint: Option<u64>,
}

/// One object to be in the backup.
struct Planned {
    name: String,
    bytes: Vec<u8>,
    /// The local file it comes from, for conflicts.
    path: PathBuf,
}

/// The complete lines of a file, each with its newline.
fn complete_lines(path: &Path) -> Result<Vec<store::RawLine>, Error> {
    Ok(store::read_lines(path)?.into_iter().filter(|l| l.complete).collect())
}

fn joined(lines: &[store::RawLine]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(lines.iter().map(|l| l.bytes.len() + 1).sum());
    for line in lines {
        bytes.extend_from_slice(&line.bytes);
        bytes.push(b'\n');
    }
    bytes
}

/// Each key's first version that is not a delete marker (S3 lists a key's versions newest
/// first), with how many versions and delete markers came after it.
fn first_versions(versions: &[Version]) -> BTreeMap<String, (String, usize, usize)> {
    let mut by_key: BTreeMap<String, (String, usize, usize)> = BTreeMap::new();
    let mut all: BTreeMap<&str, Vec<&Version>> = BTreeMap::new();
    for version in versions {
        all.entry(version.key.as_str()).or_default().push(version);
    }
    for (key, versions) in all {
        let Some(position) = versions.iter().rposition(|v| !v.delete_marker) else { continue };
        let later = &versions[..position];
        let markers = later.iter().filter(|v| v.delete_marker).count();
        by_key.insert(key.to_string(), (versions[position].version_id.clone(), later.len() - markers, markers));
    }
    by_key
}

/// The bucket must exist with Object Lock enabled: never upload without retention.
fn check_bucket(client: &Client) -> Result<(), Error> {
    match client.object_lock_enabled() {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::Remote(format!(
            "s3://{}: Object Lock is not enabled on this bucket; refusing to back up without retention \
             (create the bucket with Object Lock enabled: `x-amz-bucket-object-lock-enabled: true`)",
            client.bucket_name()
        ))),
        Err(e) if e.code == "NoSuchBucket" => {
            Err(Error::Remote(format!("s3://{}: no such bucket (create it with Object Lock enabled first)", client.bucket_name())))
        }
        Err(e) => Err(e.into()),
    }
}

/// Backs up the log in `dir` to `target`: verifies the local log (an invalid log is refused), then
/// uploads, in an order that keeps the backup a valid log at every step, every object not yet
/// there, each locked in COMPLIANCE mode for `options.retain`.
pub fn backup(dir: &Path, client: &Client, target: &Target, options: &BackupOptions) -> Result<BackupReport, Error> {
    // Listed before verifying: every segment sealed by then is immutable, and verified below. A
    // writer may go on appending; only what this verification covered is uploaded.
    let segments = store::segments(dir)?;
    let local = verify::verify_log(dir, &VerifyOptions::default())?;
    if let Some(finding) = local.finding {
        return Err(Error::Corrupt(finding));
    }
    check_bucket(client)?;
    let retain_until = s3_time(crate::time::now_micros().saturating_add(options.retain.as_micros().min(i64::MAX as u128) as i64));
    let retention = Retention { mode: LOCK_MODE.into(), retain_until: retain_until.clone() };

    // Plan: origin, keys, sealed segments, the active part, then the checkpoints they cover.
    let mut plan = Vec::new();
    let origin_path = dir.join(store::ORIGIN_FILE);
    plan.push(Planned {
        name: store::ORIGIN_FILE.into(),
        bytes: fs::read(&origin_path).map_err(io_error(&origin_path))?,
        path: origin_path,
    });
    let keys_path = dir.join(store::KEYS_FILE);
    let keys = complete_lines(&keys_path)?;
    plan.push(Planned { name: format!("keys/{:020}.jsonl", keys.len()), bytes: joined(&keys), path: keys_path });
    let active_first = segments.last().map_or(0, |(first, _)| *first);
    for (_, path) in segments.iter().take(segments.len().saturating_sub(1)) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        plan.push(Planned { name: format!("segments/{name}"), bytes: fs::read(path).map_err(io_error(path))?, path: path.clone() });
    }
    let checkpoints_path = dir.join(store::CHECKPOINTS_FILE);
    let mut checkpoint_lines = complete_lines(&checkpoints_path)?;
    checkpoint_lines.truncate(local.checkpoints as usize);
    let mut sizes = Vec::new();
    for line in &checkpoint_lines {
        let cp: Checkpoint = serde_json::from_slice(&line.bytes)
            .map_err(|e| Error::Input(format!("{}, byte {}: not a checkpoint: {e}", line.path.display(), line.offset)))?;
        sizes.push(cp.size);
    }
    let latest = local.latest_checkpoint.as_ref().map_or(0, |cp| cp.size);
    let mut covered = active_first;
    if options.include_active && latest > active_first {
        if let Some((_, path)) = segments.last() {
            // Capped by the segment's length: a writer may have sealed it since it was listed.
            let lines = complete_lines(path)?;
            let count = ((latest - active_first) as usize).min(lines.len());
            let end = active_first + count as u64;
            if end > active_first {
                plan.push(Planned {
                    name: format!("active/{active_first:020}-{end:020}.jsonl"),
                    bytes: joined(&lines[..count]),
                    path: path.clone(),
                });
                covered = end;
            }
        }
    }
    let mut checkpoint = None;
    for (i, (line, size)) in checkpoint_lines.iter().zip(&sizes).enumerate() {
        if *size > covered {
            break;
        }
        checkpoint = Some(*size);
        plan.push(Planned {
            name: format!("checkpoints/{i:020}.json"),
            bytes: joined(std::slice::from_ref(line)),
            path: line.path.clone(),
        });
    }

    let existing = first_versions(&client.list_versions(&target.prefix)?);
    let mut report = BackupReport { retain_until, backed_up: covered, local_entries: local.entries, checkpoint, ..BackupReport::default() };
    for object in &plan {
        let key = target.key(&object.name);
        let sha = entry::hex(&entry::sha256(&object.bytes));
        if let Some((version, _, _)) = existing.get(&key) {
            let info = client.head_object(&key, Some(version))?;
            let conflict = match &info {
                None => Some("it vanished while being checked".to_string()),
                Some(info) if info.sha256.as_deref() != Some(sha.as_str()) => Some(format!(
                    "it differs from the copy in the backup, {} (SHA-256 {} there, {sha} here): the local log or the backup was altered",
                    target.url(&object.name),
                    info.sha256.as_deref().unwrap_or("unrecorded"),
                )),
                Some(info) if info.retention.as_ref().is_none_or(|r| r.mode != LOCK_MODE) => Some(format!(
                    "its copy in the backup, {}, is not locked in {LOCK_MODE} mode (it was not written by this backup)",
                    target.url(&object.name)
                )),
                Some(_) => None,
            };
            if let Some(reason) = conflict {
                return Err(Error::Corrupt(Finding { seq: None, path: object.path.clone(), offset: 0, reason }));
            }
            report.unchanged += 1;
            continue;
        }
        client.put_object(&key, &object.bytes, Some(&retention))?;
        report.uploaded.push(object.name.clone());
    }
    Ok(report)
}

/// A private temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, Error> {
        let mut random = [0u8; 8];
        getrandom::getrandom(&mut random).map_err(|e| Error::Key(format!("the operating system gave no randomness: {e}")))?;
        let path = std::env::temp_dir().join(format!("symbiont-audit-s3-{}", entry::hex(&random)));
        fs::DirBuilder::new().mode(0o700).create(&path).map_err(io_error(&path))?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A backup laid out as a log directory, ready for [`verify::verify_log`].
#[derive(Debug)]
pub struct Download {
    pub dir: TempDir,
    /// Which object each local file came from: (local path, `s3://…` URL).
    pub sources: Vec<(PathBuf, String)>,
    /// Later versions or delete markers over backed-up keys, objects without a COMPLIANCE lock,
    /// objects that are not part of the layout.
    pub warnings: Vec<String>,
    /// Inconsistencies between objects that verifying the laid-out log cannot see: an active
    /// part that is not a prefix of the segment sealed later, a body that does not match the
    /// SHA-256 recorded at upload.
    pub problems: Vec<Finding>,
    /// Where each checkpoint object starts in the laid-out `checkpoints.jsonl`, with its URL.
    checkpoint_objects: Vec<(u64, String)>,
}

impl Download {
    /// `text` with local paths of the download replaced by the objects' URLs.
    pub fn remote_text(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (path, url) in &self.sources {
            text = text.replace(&path.display().to_string(), url);
        }
        text.replace(&self.dir.path().display().to_string(), "(backup)")
    }

    /// The object a local path came from, or the path itself.
    pub fn remote_path(&self, path: &Path) -> PathBuf {
        self.sources.iter().find(|(p, _)| p == path).map_or_else(|| path.to_path_buf(), |(_, url)| PathBuf::from(url))
    }

    /// A finding about the laid-out log, about the object (and the offset in it) instead.
    pub fn remote_finding(&self, finding: &Finding) -> Finding {
        let mut remote = finding.clone();
        if finding.path == self.dir.path().join(store::CHECKPOINTS_FILE) {
            if let Some((start, url)) = self.checkpoint_objects.iter().rev().find(|(start, _)| *start <= finding.offset) {
                remote.path = PathBuf::from(url);
                remote.offset = finding.offset - start;
                return remote;
            }
        }
        remote.path = self.remote_path(&finding.path);
        remote
    }
}

fn numbered(name: &str, dir: &str, ext: &str) -> Option<u64> {
    name.strip_prefix(dir)?.strip_suffix(ext)?.parse().ok().filter(|_| name.len() == dir.len() + 20 + ext.len())
}

/// Downloads the backup at `target` (each key's first version) into a temporary directory laid
/// out as a log directory.
pub fn download(client: &Client, target: &Target) -> Result<Download, Error> {
    let versions = client.list_versions(&target.prefix)?;
    let objects = first_versions(&versions);
    if objects.is_empty() {
        return Err(Error::Remote(format!("{}: no backup here (no objects under this prefix)", target.url(""))));
    }
    let dir = TempDir::new()?;
    let mut download = Download { sources: Vec::new(), warnings: Vec::new(), problems: Vec::new(), checkpoint_objects: Vec::new(), dir };
    let root = download.dir.path().to_path_buf();
    fs::DirBuilder::new().mode(0o700).create(root.join(store::SEGMENTS_DIR)).map_err(io_error(&root))?;

    let (mut keys, mut segments, mut actives, mut checkpoints, mut origin) = (None, BTreeMap::new(), Vec::new(), BTreeMap::new(), None);
    for (key, (version, later, markers)) in &objects {
        let name = &key[target.prefix.len()..];
        if *later > 0 || *markers > 0 {
            download.warnings.push(format!(
                "{}: written over or deleted after the backup ({later} later version(s), {markers} delete marker(s)); \
                 its first version, the one locked by the backup, is the one verified",
                target.url(name)
            ));
        }
        if name == store::ORIGIN_FILE {
            origin = Some(version);
        } else if let Some(lines) = numbered(name, "keys/", ".jsonl") {
            if keys.as_ref().is_none_or(|(n, _, _)| lines > *n) {
                keys = Some((lines, name, version));
            }
        } else if let Some(first) = numbered(name, "segments/", ".jsonl") {
            segments.insert(first, (name, version));
        } else if let Some((first, end)) = name
            .strip_prefix("active/")
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        {
            actives.push((first, end, name, version));
        } else if let Some(line) = numbered(name, "checkpoints/", ".json") {
            checkpoints.insert(line, (name, version));
        } else {
            download.warnings.push(format!("{}: not part of a backup's layout, ignored", target.url(name)));
        }
    }
    let fetch = |name: &str, version: &str, download: &mut Download| -> Result<Vec<u8>, Error> {
        let (bytes, info) = client.get_object(&target.key(name), Some(version))?;
        let url = target.url(name);
        if info.retention.as_ref().is_none_or(|r| r.mode != LOCK_MODE) {
            download.warnings.push(format!("{url}: not locked in {LOCK_MODE} mode"));
        }
        let sha = entry::hex(&entry::sha256(&bytes));
        if info.sha256.as_deref().is_some_and(|recorded| recorded != sha) {
            download.problems.push(Finding {
                seq: None,
                path: PathBuf::from(&url),
                offset: 0,
                reason: format!("its contents do not match the SHA-256 recorded when it was uploaded ({sha})"),
            });
        }
        Ok(bytes)
    };
    let write = |local: PathBuf, bytes: &[u8], url: String, download: &mut Download| -> Result<(), Error> {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&local)
            .and_then(|mut f| std::io::Write::write_all(&mut f, bytes))
            .map_err(io_error(&local))?;
        download.sources.push((local, url));
        Ok(())
    };

    let Some(origin) = origin else {
        return Err(Error::Remote(format!("{}: the backup has no `origin` object", target.url(""))));
    };
    let bytes = fetch(store::ORIGIN_FILE, origin, &mut download)?;
    write(root.join(store::ORIGIN_FILE), &bytes, target.url(store::ORIGIN_FILE), &mut download)?;
    let Some((_, keys_name, keys_version)) = keys else {
        return Err(Error::Remote(format!("{}: the backup has no `keys/…` object", target.url(""))));
    };
    let bytes = fetch(keys_name, keys_version, &mut download)?;
    write(root.join(store::KEYS_FILE), &bytes, target.url(keys_name), &mut download)?;

    let mut next = 0u64;
    let mut sealed: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for (first, (name, version)) in &segments {
        let bytes = fetch(name, version, &mut download)?;
        let local = root.join(store::SEGMENTS_DIR).join(store::segment_name(*first));
        write(local, &bytes, target.url(name), &mut download)?;
        next = first + bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        sealed.insert(*first, bytes);
    }
    // The active part that continues the sealed segments, the longest one; earlier ones must be
    // prefixes of the segments sealed since.
    actives.sort();
    if let Some(&(first, _, name, version)) = actives.iter().filter(|a| a.0 == next && !sealed.contains_key(&a.0)).max_by_key(|a| a.1) {
        let bytes = fetch(name, version, &mut download)?;
        write(root.join(store::SEGMENTS_DIR).join(store::segment_name(first)), &bytes, target.url(name), &mut download)?;
    }
    for &(first, _, name, version) in &actives {
        let Some(segment) = sealed.get(&first) else {
            if first != next {
                download.warnings.push(format!("{}: does not continue the backed-up segments, ignored", target.url(name)));
            }
            continue;
        };
        let bytes = fetch(name, version, &mut download)?;
        if !segment.starts_with(&bytes) {
            let offset = bytes.iter().zip(segment).position(|(a, b)| a != b).unwrap_or(segment.len().min(bytes.len()));
            download.problems.push(Finding {
                seq: None,
                path: PathBuf::from(target.url(name)),
                offset: offset as u64,
                reason: format!(
                    "this earlier backup of the active segment is not a prefix of the segment sealed since ({}): the log was rewritten",
                    target.url(&format!("segments/{}", store::segment_name(first)))
                ),
            });
        }
    }
    let mut all = Vec::new();
    for (name, version) in checkpoints.values() {
        let bytes = fetch(name, version, &mut download)?;
        download.checkpoint_objects.push((all.len() as u64, target.url(name)));
        all.extend(bytes);
    }
    if !all.is_empty() {
        write(root.join(store::CHECKPOINTS_FILE), &all, target.url("checkpoints/"), &mut download)?;
    }
    Ok(download)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_durations() {
        assert_eq!(Target::parse("s3://b/x/y/").unwrap(), Target { bucket: "b".into(), prefix: "x/y/".into() });
        assert_eq!(Target::parse("s3://b").unwrap().prefix, "");
        assert!(Target::parse("b/x").is_err());
        assert!(Target::parse("s3://b/../x").is_err());
        assert_eq!(parse_duration("7y"), Some(Duration::from_secs(7 * 365 * 86_400)));
        assert_eq!(parse_duration("36h"), Some(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_duration("0d"), None);
        assert_eq!(parse_duration("7"), None);
        assert_eq!(s3_time(1_000_000), "1970-01-01T00:00:01Z");
        assert_eq!(s3_time(1_000_001), "1970-01-01T00:00:02Z");
    }

    #[test]
    fn first_versions_skip_later_writes() {
        let v = |key: &str, id: &str, marker: bool| Version {
            key: key.into(),
            version_id: id.into(),
            is_latest: false,
            delete_marker: marker,
            size: 0,
        };
        let listing = [v("a", "3", true), v("a", "2", false), v("a", "1", false), v("b", "9", false), v("c", "5", true)];
        let first = first_versions(&listing);
        assert_eq!(first["a"], ("1".to_string(), 1, 1));
        assert_eq!(first["b"], ("9".to_string(), 0, 0));
        assert!(!first.contains_key("c"));
    }
}
