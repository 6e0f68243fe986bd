//! File operations confined to the agent's workspace: a directory descriptor opened once at the
//! start of the run ([`crate::Workspace`]).
//!
//! A path is accepted in one spelling only ([`RelPath`]): the broker refuses `a/`, `a/.`, `./a`,
//! `a//b`, `..`, absolute paths and NUL before the policy decides, so the path a guard reads is
//! the path opened. Every open is beneath the workspace's descriptor and follows no symbolic link
//! (`crate::beneath`), so swapping a file or directory for a link at any moment makes the
//! operation fail rather than reach outside. Reads take only regular files with one hard link.
//! Writes are atomic (a temporary file renamed over the target, both beneath the parent's
//! descriptor), so a reader never sees half a file and a failed write loses nothing.

use std::{io::Read, os::fd::BorrowedFd, time::SystemTime};

use super::{protocol::ErrorCode, MAX_BODY};
use crate::beneath;
pub(crate) use crate::beneath::RelPath;

type FileResult<T> = Result<T, (ErrorCode, String)>;

/// The path in its one accepted form, or a `bad_request` saying why not.
pub(crate) fn parse(raw: &str) -> FileResult<RelPath> {
    RelPath::parse(raw).map_err(|why| (ErrorCode::BadRequest, format!("the path {} is refused: {why}", shown(raw))))
}

/// The path for a message: quoted, and cut if long.
fn shown(raw: &str) -> String {
    let cut: String = raw.chars().take(200).collect();
    let more = if cut.len() < raw.len() { "…" } else { "" };
    format!("{:?}{more}", cut)
}

/// Reads `path` (at most [`MAX_BODY`] bytes of UTF-8).
pub fn read(dir: BorrowedFd<'_>, raw: &str) -> FileResult<String> {
    let path = parse(raw)?;
    let failed = |why: String| (ErrorCode::Failed, format!("`{}`: {why}", path.as_str()));
    let file = beneath::open_regular(dir, &path, true).map_err(|e| failed(e.to_string()))?;
    let bytes = read_bounded(file, &path)?;
    String::from_utf8(bytes).map_err(|_| failed("it is not UTF-8 text".into()))
}

fn read_bounded(file: std::fs::File, path: &RelPath) -> FileResult<Vec<u8>> {
    let mut bytes = Vec::new();
    // One byte more than allowed tells a file that is too large (or grew) from one that fits.
    file.take(MAX_BODY + 1).read_to_end(&mut bytes).map_err(|e| (ErrorCode::Failed, format!("`{}`: {e}", path.as_str())))?;
    if bytes.len() as u64 > MAX_BODY {
        return Err((ErrorCode::Failed, format!("`{}` is larger than {MAX_BODY} bytes", path.as_str())));
    }
    Ok(bytes)
}

/// Writes (or appends to) `path`, making missing directories; the bytes written. With `expires`
/// (the agent's retention), the file carries that expiry from the moment it exists
/// (`crate::retention`); the whole file does, an appended one included.
pub fn write(dir: BorrowedFd<'_>, raw: &str, content: &[u8], append: bool, expires: Option<SystemTime>) -> FileResult<usize> {
    let path = parse(raw)?;
    let failed = |why: String| (ErrorCode::Failed, format!("writing `{}`: {why}", path.as_str()));
    let mut data = Vec::new();
    if append {
        // What is appended to is read like a read: beneath the workspace, through no link, and
        // from a file of one link only (else a linked-in host file would be copied in whole).
        match beneath::open_regular(dir, &path, true) {
            Ok(file) => data = read_bounded(file, &path)?,
            Err(e) if e.not_found() => {}
            Err(e) => return Err(failed(e.to_string())),
        }
    }
    data.extend_from_slice(content);
    if data.len() as u64 > MAX_BODY {
        return Err(failed(format!("the file would be larger than {MAX_BODY} bytes")));
    }
    let mark = |file: &std::fs::File| expires.map_or(Ok(()), |at| crate::retention::mark(file, at));
    beneath::write_atomic(dir, &path, &data, mark).map_err(|e| failed(beneath::describe(&e)))?;
    Ok(content.len())
}

#[cfg(test)]
mod tests {
    use std::{
        fs,
        os::{
            fd::{AsFd, AsRawFd},
            unix::fs::MetadataExt,
        },
        path::Path,
        sync::{
            atomic::{AtomicBool, Ordering},
            Arc,
        },
        time::{Duration, Instant},
    };

    use super::*;

    fn open_dir(path: &Path) -> fs::File {
        fs::File::open(path).unwrap()
    }

    #[test]
    fn paths_stay_in_the_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let ws = open_dir(root);
        let fd = ws.as_fd();
        assert_eq!(write(fd, "notes/a.txt", b"hello", false, None), Ok(5));
        assert_eq!(write(fd, "notes/a.txt", b" world", true, None), Ok(6));
        assert_eq!(read(fd, "notes/a.txt").unwrap(), "hello world");
        for escape in ["../x", "/etc/passwd", "notes/../../x", "", "notes/a.txt/", "notes/./a.txt", "notes//a.txt", "./notes/a.txt", "a\0"]
        {
            assert_eq!(read(fd, escape).unwrap_err().0, ErrorCode::BadRequest, "{escape}");
            assert_eq!(write(fd, escape, b"x", false, None).unwrap_err().0, ErrorCode::BadRequest, "{escape}");
        }
        std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
        assert!(read(fd, "link/passwd").unwrap_err().1.contains("symbolic link"));
        assert!(write(fd, "link/evil", b"x", false, None).is_err());
        assert!(!Path::new("/etc/evil").exists());
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(root.join("notes")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.txt")]);
    }

    #[test]
    fn hard_links_fifos_and_links_at_the_target_are_not_read() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ws = open_dir(dir.path());
        fs::write(outside.path().join("key"), "SIGNING-KEY").unwrap();
        fs::hard_link(outside.path().join("key"), dir.path().join("key")).unwrap();
        let (code, message) = read(ws.as_fd(), "key").unwrap_err();
        assert_eq!(code, ErrorCode::Failed);
        assert!(message.contains("2 hard links"), "{message}");
        // Appending would copy the linked file into a fresh one the agent could then read.
        assert!(write(ws.as_fd(), "key", b"x", true, None).unwrap_err().1.contains("hard links"));
        assert_eq!(fs::read_to_string(outside.path().join("key")).unwrap(), "SIGNING-KEY");
        // A write replaces the link's entry; the file outside is untouched.
        assert_eq!(write(ws.as_fd(), "key", b"mine", false, None), Ok(4));
        assert_eq!(fs::read_to_string(outside.path().join("key")).unwrap(), "SIGNING-KEY");
        // A FIFO is refused at once, not waited on.
        let fifo = std::ffi::CString::new(dir.path().join("fifo").to_str().unwrap()).unwrap();
        // SAFETY: `fifo` is a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(read(ws.as_fd(), "fifo").unwrap_err().1.contains("not a regular file"));
        // A link as the file itself: neither read nor appended through.
        std::os::unix::fs::symlink(outside.path().join("key"), dir.path().join("to-key")).unwrap();
        assert!(read(ws.as_fd(), "to-key").unwrap_err().1.contains("symbolic link"));
        assert!(write(ws.as_fd(), "to-key", b"x", true, None).unwrap_err().1.contains("symbolic link"));
        assert_eq!(fs::read_to_string(outside.path().join("key")).unwrap(), "SIGNING-KEY");
    }

    /// A host process swaps a workspace file, and a parent directory, with links to a secret and
    /// to a directory outside (`renameat2(RENAME_EXCHANGE)`: one atomic swap a call, so a link is
    /// there half the time) while reads and writes go on; nothing outside is ever read or written.
    /// Bounded by iterations and by time. (The checks-then-open-by-path code this replaced read
    /// the secret about once in seventy rounds here and left temporary files outside.)
    #[test]
    fn swapping_in_links_never_reaches_outside() {
        const SECRET: &str = "HOST-SECRET-7f3a";
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("data.txt"), SECRET).unwrap();
        fs::create_dir(outside.path().join("sub")).unwrap();
        fs::write(outside.path().join("sub/data.txt"), SECRET).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        fs::create_dir(root.join("sub")).unwrap();
        fs::write(root.join("data.txt"), "inside").unwrap();
        fs::write(root.join("sub/data.txt"), "inside").unwrap();
        for name in ["data.txt", "sub"] {
            std::os::unix::fs::symlink(outside.path().join(name), root.join(format!("{name}.link"))).unwrap();
        }
        let ws = open_dir(&root);
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (stop, ws) = (stop.clone(), ws.try_clone().unwrap());
            std::thread::spawn(move || {
                let name = |s: &str| std::ffi::CString::new(s).unwrap();
                let pairs = [(name("data.txt"), name("data.txt.link")), (name("sub"), name("sub.link"))];
                let deadline = Instant::now() + Duration::from_secs(20);
                for i in 0..2_000_000 {
                    if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                        break;
                    }
                    let (a, b) = &pairs[i % 2];
                    let fd = ws.as_raw_fd();
                    // SAFETY: `fd` is the open directory `ws` (owned by this thread), and both
                    // names are NUL-terminated strings that outlive the call.
                    unsafe { libc::renameat2(fd, a.as_ptr(), fd, b.as_ptr(), libc::RENAME_EXCHANGE) };
                }
            })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut done = 0;
        while done < 10_000 && Instant::now() < deadline {
            for path in ["data.txt", "sub/data.txt"] {
                if let Ok(text) = read(ws.as_fd(), path) {
                    assert!(!text.contains(SECRET), "read {path} through a link");
                }
                // Fewer writes than reads: each syncs the file and its directory.
                if done % 50 == 0 {
                    let _ = write(ws.as_fd(), path, b"inside", done % 100 == 0, None);
                }
            }
            done += 1;
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        for file in ["data.txt", "sub/data.txt"] {
            assert_eq!(fs::read_to_string(outside.path().join(file)).unwrap(), SECRET, "{file} outside was written");
        }
        let mut outside_names: Vec<_> = fs::read_dir(outside.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        outside_names.extend(fs::read_dir(outside.path().join("sub")).unwrap().map(|e| e.unwrap().file_name()));
        outside_names.sort();
        assert_eq!(outside_names, ["data.txt", "data.txt", "sub"], "nothing may be created outside");
        assert!(done > 100, "the loop ran ({done})");
    }

    mod property {
        use proptest::prelude::*;

        use super::*;

        fn raw_path() -> impl Strategy<Value = String> {
            let part = prop::sample::select(vec!["", ".", "..", "topsecret.txt", "a"]);
            let sep = prop::sample::select(vec!["/", "//"]);
            (prop::collection::vec((part, sep), 1..5), any::<bool>(), any::<bool>()).prop_map(|(parts, lead, trail)| {
                let mut s = if lead { "/".to_string() } else { String::new() };
                for (i, (part, sep)) in parts.iter().enumerate() {
                    if i > 0 {
                        s.push_str(sep);
                    }
                    s.push_str(part);
                }
                if trail {
                    s.push('/');
                }
                s
            })
        }

        /// Either the path is refused, or the string a guard reads names exactly the file the
        /// broker opens: same device and inode as the canonical path looked up afresh. One tree
        /// serves every case: a case reads, and writes only paths that are refused.
        #[test]
        fn the_guarded_path_is_the_opened_path() {
            let dir = tempfile::tempdir().unwrap();
            for d in ["a", "a/a", "topsecret.txt.d"] {
                fs::create_dir_all(dir.path().join(d)).unwrap();
            }
            for f in ["topsecret.txt", "a/topsecret.txt", "a/a/topsecret.txt", "a/a/a"] {
                fs::write(dir.path().join(f), f).unwrap();
            }
            let ws = open_dir(dir.path());
            let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(4000));
            let result = runner.run(&raw_path(), |raw| {
                match parse(&raw) {
                    Err((code, _)) => {
                        prop_assert_eq!(code, ErrorCode::BadRequest);
                        prop_assert!(read(ws.as_fd(), &raw).is_err());
                        prop_assert!(write(ws.as_fd(), &raw, b"x", false, None).is_err());
                    }
                    Ok(path) => {
                        // The canonical form is the string itself: what the guard saw.
                        prop_assert_eq!(path.as_str(), raw.as_str());
                        let opened = beneath::open_regular(ws.as_fd(), &path, true);
                        let fresh = fs::symlink_metadata(dir.path().join(&raw));
                        match (opened, fresh) {
                            (Ok(file), Ok(meta)) => {
                                let got = file.metadata().unwrap();
                                prop_assert_eq!((got.dev(), got.ino()), (meta.dev(), meta.ino()));
                            }
                            (Err(_), Ok(meta)) => prop_assert!(!meta.is_file()),
                            (Ok(_), Err(e)) => prop_assert!(false, "opened {raw} that does not exist: {e}"),
                            (Err(_), Err(_)) => {}
                        }
                    }
                }
                Ok(())
            });
            result.unwrap();
        }
    }
}
