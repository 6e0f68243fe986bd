//! Retention of what a run leaves (`docs/runtime.md`, "Retention").
//!
//! Each file an agent writes through its broker carries the time it expires: an extended
//! attribute, [`XATTR`], holding decimal seconds since the Unix epoch (rounded up), set on the
//! broker's temporary file before its contents and renamed into place with them. So a file and
//! its expiry appear together or not at all (a crash leaves neither half), a file moved within
//! the file system keeps its expiry, and a file nobody marked (one the user put there) is never
//! collected. [`collect`] (`symbiont gc`, and the service hourly) deletes the expired ones.

use std::{
    collections::BTreeSet,
    fs::File,
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::beneath::{self, cstring, RelPath};

/// The extended attribute that holds a file's expiry.
pub const XATTR: &str = "user.symbiont.expires";

/// How long a broker's temporary file is taken for a write in progress.
const IN_FLIGHT: Duration = Duration::from_secs(3600);

/// Where agents' workspaces are, relative to the workspace root (`Workspace::for_agent`).
const WORKSPACES: &str = ".symbiont/workspaces";

/// The expiry of a file written now by an agent whose outputs are kept for `retention`.
pub fn expiry_after(retention: Duration) -> SystemTime {
    SystemTime::now().checked_add(retention).unwrap_or(UNIX_EPOCH + Duration::from_secs(u64::MAX >> 2))
}

/// Marks `file` as expiring at `expires`. A file system without user extended attributes is
/// an error saying so: an output whose retention cannot be recorded is not written.
pub(crate) fn mark(file: &File, expires: SystemTime) -> io::Result<()> {
    let since = expires.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs() + u64::from(since.subsec_nanos() > 0);
    let value = seconds.to_string();
    let name = cstring(XATTR)?;
    // SAFETY: `file` is open for the call; `name` is NUL-terminated and `value` is a buffer of
    // the length passed, both outliving the call, which only reads them.
    let done = unsafe { libc::fsetxattr(file.as_raw_fd(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if done < 0 {
        let error = io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::ENOTSUP) {
            return Err(io::Error::other(format!(
                "this file system keeps no extended attributes ({XATTR}), which carry the file's retention_period; \
                 put the workspace on one that does (ext4, xfs, btrfs, tmpfs from Linux 6.6)"
            )));
        }
        return Err(error);
    }
    Ok(())
}

/// The expiry marked on `fd`: `None` when it has none, an error when the mark is not a time.
pub fn expiry(fd: BorrowedFd<'_>) -> io::Result<Option<SystemTime>> {
    let name = cstring(XATTR)?;
    let mut buffer = [0u8; 32];
    // SAFETY: `fd` is open for the call; `name` is NUL-terminated and `buffer` is writable for
    // the length passed; both outlive the call.
    let read = unsafe { libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), buffer.as_mut_ptr().cast(), buffer.len()) };
    if read < 0 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::ENODATA | libc::ENOTSUP) => Ok(None),
            _ => Err(error),
        };
    }
    let text = std::str::from_utf8(&buffer[..read as usize]).unwrap_or("");
    match text.parse::<u64>() {
        Ok(seconds) => Ok(Some(UNIX_EPOCH + Duration::from_secs(seconds))),
        Err(_) => Err(io::Error::other(format!("its {XATTR} is {text:?}, not a number of seconds"))),
    }
}

/// A file collected (or, in a dry run, that would be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    /// Relative to the workspace root: `.symbiont/workspaces/AGENT/…`.
    pub path: PathBuf,
    pub agent: String,
    pub bytes: u64,
    pub expired: SystemTime,
}

/// What [`collect`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub collected: Vec<Collected>,
    /// Marked files whose retention has not ended.
    pub kept: usize,
    /// The earliest expiry among them.
    pub next: Option<SystemTime>,
    /// Unmarked files: never collected.
    pub unmarked: usize,
    /// What could not be looked at or deleted, with why; left in place.
    pub problems: Vec<String>,
}

/// Deletes (unless `dry_run`) every file beneath `root`'s agent workspaces whose expiry is at
/// or before `now`, and then the directories that held only such files. Links are never
/// followed. A file replaced between the check and the deletion is put back, not deleted.
pub fn collect(root: &Path, now: SystemTime, dry_run: bool) -> Result<GcReport, String> {
    let mut report = GcReport::default();
    let workspaces = match File::open(root) {
        Ok(dir) => match beneath::open(dir.as_fd(), &rel(WORKSPACES)?, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
            Err(e) => return Err(format!("{}: {}", root.join(WORKSPACES).display(), beneath::describe(&e))),
        },
        Err(e) => return Err(format!("{}: {e}", root.display())),
    };
    for (agent, kind) in list(workspaces.as_fd()).map_err(|e| format!("{}: {e}", root.join(WORKSPACES).display()))? {
        if kind != Kind::Dir {
            continue;
        }
        let shown = Path::new(WORKSPACES).join(&agent);
        match beneath::openat(workspaces.as_fd(), &agent, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0) {
            Ok(dir) => Agent { dir, name: agent, shown, now, dry_run, report: &mut report }.collect(),
            Err(e) => report.problems.push(format!("{}: {}", shown.display(), beneath::describe(&e))),
        }
    }
    report.collected.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

fn rel(path: &str) -> Result<RelPath, String> {
    RelPath::parse(path).map_err(|why| format!("{path}: {why}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Dir,
    File,
    Other,
}

/// The names in the directory `dir`, with their kind (a link is `Other`).
fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<(String, Kind)>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))? {
        let entry = entry?;
        let kind = match entry.file_type()? {
            t if t.is_dir() => Kind::Dir,
            t if t.is_file() => Kind::File,
            _ => Kind::Other,
        };
        // A name that is not UTF-8 was not written by a broker (its paths are strings).
        if let Ok(name) = entry.file_name().into_string() {
            names.push((name, kind));
        }
    }
    names.sort();
    Ok(names)
}

/// One agent's workspace being collected.
struct Agent<'r> {
    dir: OwnedFd,
    name: String,
    shown: PathBuf,
    now: SystemTime,
    dry_run: bool,
    report: &'r mut GcReport,
}

impl Agent<'_> {
    fn collect(mut self) {
        // Directories by their path beneath the agent's, reopened from it: depth costs no
        // descriptors and no stack.
        let mut pending: Vec<Option<RelPath>> = vec![None];
        let mut emptied = BTreeSet::new();
        while let Some(path) = pending.pop() {
            let dir = match &path {
                None => self.dir.try_clone(),
                Some(path) => beneath::open(self.dir.as_fd(), path, libc::O_RDONLY | libc::O_DIRECTORY, 0),
            };
            let names = dir.and_then(|dir| Ok((list(dir.as_fd())?, dir)));
            let (names, dir) = match names {
                Ok(found) => found,
                Err(e) => {
                    self.problem(path.as_ref(), &beneath::describe(&e));
                    continue;
                }
            };
            for (name, kind) in names {
                let Ok(child) = RelPath::parse(&match &path {
                    None => name.clone(),
                    Some(p) => format!("{}/{name}", p.as_str()),
                }) else {
                    continue;
                };
                match kind {
                    Kind::Dir => pending.push(Some(child)),
                    Kind::File => {
                        if self.file(dir.as_fd(), &name, &child) {
                            if let Some(p) = &path {
                                emptied.insert(p.as_str().to_string());
                            }
                        }
                    }
                    Kind::Other => {}
                }
            }
        }
        if !self.dry_run {
            self.remove_empty(emptied);
        }
    }

    /// Looks at one file; true when it was collected.
    fn file(&mut self, dir: BorrowedFd<'_>, name: &str, path: &RelPath) -> bool {
        let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_NOFOLLOW;
        let checked = beneath::openat(dir, name, flags, 0).and_then(|fd| {
            let meta = File::from(fd.try_clone()?).metadata()?;
            Ok((expiry(fd.as_fd())?, meta))
        });
        let (expires, meta) = match checked {
            Ok((Some(expires), meta)) if meta.is_file() => (expires, meta),
            Ok((None, meta)) if meta.is_file() => {
                self.report.unmarked += 1;
                return false;
            }
            Ok(_) => return false,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return false,
            Err(e) => {
                self.problem(Some(path), &beneath::describe(&e));
                return false;
            }
        };
        // A broker's temporary file is marked before it is written: one modified in the last
        // hour may be a write in progress, whose rename must find it.
        if name.starts_with(".symbiont-tmp-") && meta.modified().is_ok_and(|m| m + IN_FLIGHT > self.now) {
            return false;
        }
        if expires > self.now {
            self.report.kept += 1;
            self.report.next = Some(self.report.next.map_or(expires, |next| next.min(expires)));
            return false;
        }
        if !self.dry_run {
            if let Err(why) = delete(dir, name, (meta.dev(), meta.ino())) {
                self.problem(Some(path), &why);
                return false;
            }
        }
        let collected = Collected { path: self.shown.join(path.as_str()), agent: self.name.clone(), bytes: meta.len(), expired: expires };
        self.report.collected.push(collected);
        true
    }

    /// Removes each directory that held a collected file, and its parents, while they are empty
    /// (deepest first); the agent's own directory stays.
    fn remove_empty(&mut self, emptied: BTreeSet<String>) {
        let mut dirs = BTreeSet::new();
        for dir in emptied {
            let mut at = dir.as_str();
            loop {
                dirs.insert(at.to_string());
                match at.rsplit_once('/') {
                    Some((parent, _)) => at = parent,
                    None => break,
                }
            }
        }
        let mut dirs: Vec<String> = dirs.into_iter().collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        for dir in dirs {
            let (parent, name) = dir.rsplit_once('/').map_or((None, dir.as_str()), |(p, n)| (Some(p), n));
            let parent = match parent {
                None => self.dir.try_clone(),
                Some(p) => rel(p)
                    .map_err(io::Error::other)
                    .and_then(|p| beneath::open(self.dir.as_fd(), &p, libc::O_RDONLY | libc::O_DIRECTORY, 0)),
            };
            if let (Ok(parent), Ok(name)) = (parent, cstring(name)) {
                // SAFETY: `parent` is open for the call and `name` is NUL-terminated and outlives
                // it. A directory that is not empty stays (ENOTEMPTY), as it should.
                unsafe { libc::unlinkat(parent.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) };
            }
        }
    }

    fn problem(&mut self, path: Option<&RelPath>, why: &str) {
        let shown = path.map_or(self.shown.clone(), |p| self.shown.join(p.as_str()));
        self.report.problems.push(format!("{}: {why}; left in place", shown.display()));
    }
}

/// Deletes `name` in `dir` if it is still the file `identity` (device, inode) that was checked:
/// it is first renamed aside (never over anything), and put back if it turns out to be another.
fn delete(dir: BorrowedFd<'_>, name: &str, identity: (u64, u64)) -> Result<(), String> {
    let aside = format!(".symbiont-gc-{}", crate::util::random_id(8));
    rename(dir, name, &aside).map_err(|e| e.to_string())?;
    let moved = beneath::openat(dir, &aside, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW, 0)
        .and_then(|fd| File::from(fd).metadata())
        .map(|m| (m.dev(), m.ino()));
    if moved.as_ref().ok() == Some(&identity) {
        let aside = cstring(&aside).map_err(|e| e.to_string())?;
        // SAFETY: `dir` is open for the call; `aside` is NUL-terminated and outlives it.
        if unsafe { libc::unlinkat(dir.as_raw_fd(), aside.as_ptr(), 0) } < 0 {
            return Err(io::Error::last_os_error().to_string());
        }
        return Ok(());
    }
    match rename(dir, &aside, name) {
        Ok(()) => Err("it was replaced while being collected; the new file is kept".into()),
        Err(e) => {
            Err(format!("it was replaced while being collected, and another took its place since: the newer one is kept as {aside} ({e})"))
        }
    }
}

/// `renameat2(RENAME_NOREPLACE)` within `dir`.
fn rename(dir: BorrowedFd<'_>, from: &str, to: &str) -> io::Result<()> {
    let (from, to) = (cstring(from)?, cstring(to)?);
    // SAFETY: `dir` is open for the call; both names are NUL-terminated and outlive it.
    if unsafe { libc::renameat2(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr(), libc::RENAME_NOREPLACE) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::{fs, os::fd::AsFd};

    use super::*;

    fn write(ws: &crate::Workspace, path: &str, retention: Option<Duration>) {
        let path = RelPath::parse(path).unwrap();
        let expires = retention.map(expiry_after);
        beneath::write_atomic(ws.fd(), &path, b"output", |file| expires.map_or(Ok(()), |e| mark(file, e))).unwrap();
    }

    /// Marked files expire at their time and only then; unmarked ones (the user's) are never
    /// touched; a dry run deletes nothing; directories emptied by collection go, others stay.
    #[test]
    fn expired_outputs_go_and_nothing_else() {
        let root = tempfile::tempdir().unwrap();
        let ws = crate::Workspace::for_agent(root.path(), "a").unwrap();
        write(&ws, "out/old.txt", Some(Duration::ZERO));
        write(&ws, "out/deep/er/old.txt", Some(Duration::ZERO));
        write(&ws, "fresh.txt", Some(Duration::from_secs(3600)));
        write(&ws, "forever.txt", None);
        // A write in progress: the broker's temporary file, marked, not yet renamed.
        let temp = std::fs::File::create(ws.path().join(".symbiont-tmp-0123abcd")).unwrap();
        mark(&temp, SystemTime::now()).unwrap();
        fs::create_dir(ws.path().join("empty-by-user")).unwrap();
        fs::write(ws.path().join("out/mine.txt"), "the user's").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", ws.path().join("link")).unwrap();
        let now = SystemTime::now() + Duration::from_secs(1);

        let dry = collect(root.path(), now, true).unwrap();
        let names = |r: &GcReport| r.collected.iter().map(|c| c.path.display().to_string()).collect::<Vec<_>>();
        assert_eq!(names(&dry), [".symbiont/workspaces/a/out/deep/er/old.txt", ".symbiont/workspaces/a/out/old.txt"]);
        assert!(ws.path().join("out/old.txt").exists() && ws.path().join("out/deep/er/old.txt").exists());

        let done = collect(root.path(), now, false).unwrap();
        assert_eq!(names(&done), names(&dry));
        assert_eq!((done.kept, done.unmarked, done.problems.len()), (1, 2, 0), "{done:?}");
        assert!(ws.path().join(".symbiont-tmp-0123abcd").exists());
        assert!(done.next.is_some_and(|next| next > now));
        assert!(!ws.path().join("out/old.txt").exists() && !ws.path().join("out/deep").exists());
        for kept in ["fresh.txt", "forever.txt", "out/mine.txt", "empty-by-user", "link"] {
            assert!(fs::symlink_metadata(ws.path().join(kept)).is_ok(), "{kept}");
        }
        assert_eq!(collect(root.path(), now, false).unwrap().collected, []);
    }

    #[test]
    fn a_workspace_without_agents_has_nothing_to_collect() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(collect(root.path(), SystemTime::now(), false).unwrap(), GcReport::default());
    }

    /// A file put in place of the checked one is not deleted: it is put back under its name.
    #[test]
    fn a_replaced_file_is_put_back() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), "checked").unwrap();
        let checked = fs::metadata(dir.path().join("f")).unwrap();
        // The checked file stays alive under another name, so the new one has another inode.
        fs::rename(dir.path().join("f"), dir.path().join("g")).unwrap();
        fs::write(dir.path().join("f"), "new").unwrap();
        let handle = File::open(dir.path()).unwrap();
        let why = delete(handle.as_fd(), "f", (checked.dev(), checked.ino())).unwrap_err();
        assert!(why.contains("replaced"), "{why}");
        assert_eq!(fs::read_to_string(dir.path().join("f")).unwrap(), "new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2, "nothing left aside");
    }

    #[test]
    fn a_mark_that_is_not_a_time_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("f")).unwrap();
        let (name, value) = (cstring(XATTR).unwrap(), b"soon");
        // SAFETY: as in `mark`.
        assert_eq!(unsafe { libc::fsetxattr(file.as_raw_fd(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) }, 0);
        assert!(expiry(file.as_fd()).unwrap_err().to_string().contains("\"soon\""));
    }
}
