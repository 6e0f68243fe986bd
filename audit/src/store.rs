//! The on-disk layout of a log directory, and reading it back.
//!
//! ```text
//! LOG/
//!   origin              the log's identity, one line (`symbiont.audit/<random id>`)
//!   lock                held (flock) by the one writer
//!   keys.jsonl          public keys that have signed in this log, one JSON object per line
//!   segments/
//!     00000000000000000000.jsonl   entries from seq 0, one canonical JSON object per line
//!     00000000000000065536.jsonl   the next segment, named by its first seq
//!   checkpoints.jsonl   signed checkpoints, one per line
//! ```
//! Files are created 0600 and directories 0700. Every file but the last segment and the
//! checkpoints is immutable once written.

use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::{io_error, Error};

pub const ORIGIN_FILE: &str = "origin";
pub const LOCK_FILE: &str = "lock";
pub const KEYS_FILE: &str = "keys.jsonl";
pub const SEGMENTS_DIR: &str = "segments";
pub const CHECKPOINTS_FILE: &str = "checkpoints.jsonl";

/// One line of a log file, where it is, and whether it was finished with a newline.
#[derive(Debug, Clone)]
pub struct RawLine {
    pub path: PathBuf,
    pub offset: u64,
    pub bytes: Vec<u8>,
    pub complete: bool,
}

pub fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.jsonl")
}

/// The segment files in order, with the seq each starts at.
pub fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, Error> {
    let seg_dir = dir.join(SEGMENTS_DIR);
    let entries = match fs::read_dir(&seg_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(&seg_dir)(e)),
    };
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error(&seg_dir))?;
        let name = entry.file_name();
        let Some(first) = name.to_str().and_then(|n| n.strip_suffix(".jsonl")).and_then(|n| n.parse::<u64>().ok()) else {
            return Err(Error::Input(format!("{}: unexpected file in the segments directory", entry.path().display())));
        };
        segments.push((first, entry.path()));
    }
    segments.sort();
    Ok(segments)
}

/// The lines of a file. The last line may lack its newline (a torn write).
pub fn read_lines(path: &Path) -> Result<Vec<RawLine>, Error> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(path)(e)),
    };
    let mut lines = Vec::new();
    let mut start = 0usize;
    while start < bytes.len() {
        let (end, complete) = match bytes[start..].iter().position(|&b| b == b'\n') {
            Some(i) => (start + i, true),
            None => (bytes.len(), false),
        };
        lines.push(RawLine { path: path.to_path_buf(), offset: start as u64, bytes: bytes[start..end].to_vec(), complete });
        start = end + 1;
    }
    Ok(lines)
}

pub fn read_origin(dir: &Path) -> Result<String, Error> {
    let path = dir.join(ORIGIN_FILE);
    let text = fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Input(format!("{}: not an audit log (no `{ORIGIN_FILE}` file)", dir.display())),
        _ => io_error(&path)(e),
    })?;
    let origin = text.trim_end_matches('\n');
    if origin.is_empty() || origin.contains('\n') {
        return Err(Error::Input(format!("{}: malformed origin", path.display())));
    }
    Ok(origin.to_string())
}
