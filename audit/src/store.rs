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
    let mut lines = Vec::new();
    let Some(mut reader) = LineReader::open(path, 0)? else { return Ok(lines) };
    while let Some(Line { offset, bytes, complete }) = reader.next_line()? {
        lines.push(RawLine { path: path.to_path_buf(), offset, bytes: bytes.to_vec(), complete });
    }
    Ok(lines)
}

/// A line as [`LineReader`] reads it: where it starts, its bytes without the newline, and whether
/// it had one (the last line may not: a torn write, or one being written).
pub struct Line<'a> {
    pub offset: u64,
    pub bytes: &'a [u8],
    pub complete: bool,
}

/// Reads a file line by line from a byte offset through one reused buffer: memory is bounded by
/// the longest line, whatever the file's length.
pub struct LineReader {
    path: PathBuf,
    reader: std::io::BufReader<fs::File>,
    offset: u64,
    line: Vec<u8>,
}

impl LineReader {
    /// `None` when the file does not exist.
    pub fn open(path: &Path, offset: u64) -> Result<Option<LineReader>, Error> {
        use std::io::Seek;
        let mut file = match fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(path)(e)),
        };
        if offset > 0 {
            file.seek(std::io::SeekFrom::Start(offset)).map_err(io_error(path))?;
        }
        let reader = std::io::BufReader::with_capacity(1 << 16, file);
        Ok(Some(LineReader { path: path.to_path_buf(), reader, offset, line: Vec::new() }))
    }

    /// The next line.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, Error> {
        use std::io::BufRead;
        self.line.clear();
        let read = self.reader.read_until(b'\n', &mut self.line).map_err(io_error(&self.path))?;
        if read == 0 {
            return Ok(None);
        }
        let start = self.offset;
        self.offset += read as u64;
        let complete = self.line.last() == Some(&b'\n');
        let end = self.line.len() - usize::from(complete);
        Ok(Some(Line { offset: start, bytes: &self.line[..end], complete }))
    }

    /// Where the next line starts.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

/// Reads a file's complete lines backwards from a byte offset (its end, to begin with), a block at
/// a time: memory is bounded by the block and the longest line.
pub struct ReverseLines {
    path: PathBuf,
    file: fs::File,
    /// Bytes of the file before `buffer` not read yet.
    unread: u64,
    /// The tail of the file read so far that is not yet returned (it starts mid-line unless
    /// `unread` is 0).
    buffer: Vec<u8>,
}

impl ReverseLines {
    const BLOCK: u64 = 1 << 16;

    /// The lines that end before `end` (an unfinished line there is not returned); `None` when the
    /// file does not exist.
    pub fn open(path: &Path, end: Option<u64>) -> Result<Option<ReverseLines>, Error> {
        let file = match fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(path)(e)),
        };
        let len = file.metadata().map_err(io_error(path))?.len();
        let mut lines = ReverseLines { path: path.to_path_buf(), file, unread: end.unwrap_or(len).min(len), buffer: Vec::new() };
        // An unfinished last line is not a line yet: drop what follows the last newline.
        loop {
            if let Some(i) = lines.buffer.iter().rposition(|&b| b == b'\n') {
                lines.buffer.truncate(i + 1);
                break;
            }
            if lines.unread == 0 {
                lines.buffer.clear();
                break;
            }
            lines.read_block()?;
        }
        Ok(Some(lines))
    }

    fn read_block(&mut self) -> Result<(), Error> {
        use std::os::unix::fs::FileExt;
        let size = self.unread.min(Self::BLOCK);
        let start = self.unread - size;
        let mut block = vec![0u8; size as usize];
        self.file.read_exact_at(&mut block, start).map_err(io_error(&self.path))?;
        block.extend_from_slice(&self.buffer);
        self.buffer = block;
        self.unread = start;
        Ok(())
    }

    /// The previous complete line: where it starts, and its bytes without the newline.
    pub fn prev_line(&mut self) -> Result<Option<(u64, Vec<u8>)>, Error> {
        if self.buffer.is_empty() {
            return Ok(None);
        }
        // `buffer` ends with the newline of the line to return.
        loop {
            let body = &self.buffer[..self.buffer.len() - 1];
            if let Some(i) = body.iter().rposition(|&b| b == b'\n') {
                let line = body[i + 1..].to_vec();
                self.buffer.truncate(i + 1);
                return Ok(Some((self.unread + i as u64 + 1, line)));
            }
            if self.unread == 0 {
                let line = body.to_vec();
                self.buffer.clear();
                return Ok(Some((0, line)));
            }
            self.read_block()?;
        }
    }
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
