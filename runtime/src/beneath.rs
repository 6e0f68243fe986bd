//! Opening files beneath a directory descriptor without ever following a link.
//!
//! Everything the runtime opens on an agent's behalf, or from a repository it does not trust,
//! goes through here: the broker's file operations (beneath the agent's [`Workspace`]) and the
//! staging of implementation files (beneath the `.sym` file's directory). A path is first parsed
//! into its one accepted form ([`RelPath`]), so that what a policy guard reads is exactly what is
//! opened; it is then opened relative to a directory descriptor held open, with `openat2(2)`
//! (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`), or, on a kernel without it,
//! by a walk that opens one component at a time with `O_NOFOLLOW`. Neither checks a path and then
//! opens it: a link swapped in at any moment makes the open fail, it is never followed.

use std::{
    ffi::CString,
    fs::File,
    io::{self, Write},
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

/// The longest path accepted, in bytes: Linux's `PATH_MAX` less its NUL.
pub const MAX_PATH: usize = 4095;
/// The longest name of one component, in bytes (`NAME_MAX`).
pub const MAX_NAME: usize = 255;

/// A path relative to a directory, in the one form accepted: names separated by single `/`,
/// none empty, `.` or `..`, no NUL, not absolute, no trailing `/`, at most [`MAX_PATH`] bytes.
/// Other spellings of the same file are refused rather than rewritten, so the string a guard
/// compares, the string audited and the file opened are one and the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelPath(String);

impl RelPath {
    /// The path, or why it is refused (without echoing it: it may be long).
    pub fn parse(raw: &str) -> Result<RelPath, String> {
        let why = if raw.is_empty() {
            "it is empty"
        } else if raw.len() > MAX_PATH {
            "it is longer than 4095 bytes"
        } else if raw.contains('\0') {
            "it contains NUL"
        } else if raw.starts_with('/') {
            "it is absolute (paths are relative to the workspace)"
        } else if raw.ends_with('/') {
            "it ends with `/`"
        } else {
            match raw.split('/').find_map(component_problem) {
                Some(why) => why,
                None => return Ok(RelPath(raw.to_string())),
            }
        };
        Err(format!("{why}; a path is written one way only: names separated by single `/`, without `.`, `..` or a trailing `/`"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The directories on the way and the last name.
    fn split(&self) -> (impl Iterator<Item = &str>, &str) {
        let (dirs, name) = self.0.rsplit_once('/').unwrap_or(("", &self.0));
        // A RelPath has no empty component: the only empty piece is that of no directory.
        (dirs.split('/').filter(|d| !d.is_empty()), name)
    }
}

fn component_problem(name: &str) -> Option<&'static str> {
    match name {
        "" => Some("it has an empty component (`//`)"),
        "." => Some("it has a `.` component"),
        ".." => Some("it has a `..` component (paths stay in the workspace)"),
        _ if name.len() > MAX_NAME => Some("a component is longer than 255 bytes"),
        _ => None,
    }
}

/// Set once `openat2` is known to be missing (`ENOSYS`): the walk is used from then on.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Opens `path` beneath `dir` with `flags` (plus `O_CLOEXEC | O_NOFOLLOW`; `mode` is used with
/// `O_CREAT`), following no symbolic link and never leaving `dir`.
pub fn open(dir: BorrowedFd<'_>, path: &RelPath, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        match openat2(dir, path.as_str(), flags, mode) {
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => NO_OPENAT2.store(true, Ordering::Relaxed),
            // Some seccomp filters (older container profiles) refuse syscalls they do not know
            // with EPERM: the walk, as safe, answers for this call.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            result => return result,
        }
    }
    walk(dir, path, flags, mode)
}

fn openat2(dir: BorrowedFd<'_>, path: &str, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let path = cstring(path)?;
    // SAFETY: `open_how` is a plain C struct of integers, for which all zeroes is a valid value
    // (and the one the kernel expects in fields this code does not set).
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    let flags = flags | libc::O_CLOEXEC | libc::O_NOFOLLOW;
    how.flags = flags as u64;
    how.mode = if flags & libc::O_CREAT != 0 { mode as u64 } else { 0 };
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // The kernel asks for a retry (EAGAIN) only when a rename raced a `..`, which a RelPath has
    // not; a few tries bound it all the same.
    for _ in 0..8 {
        // SAFETY: `dir` is an open descriptor for the duration of the call, `path` is a
        // NUL-terminated string that outlives it, and `how` points to an initialised `open_how`
        // whose exact size is passed; the kernel reads both and writes nothing.
        let fd = unsafe {
            libc::syscall(libc::SYS_openat2, dir.as_raw_fd(), path.as_ptr(), &how as *const libc::open_how, size_of::<libc::open_how>())
        };
        if fd >= 0 {
            // SAFETY: the call returned a new descriptor that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) });
        }
        let error = io::Error::last_os_error();
        if !matches!(error.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) {
            return Err(error);
        }
    }
    Err(io::Error::from_raw_os_error(libc::EAGAIN))
}

/// The fallback: each directory on the way opened with `O_DIRECTORY | O_NOFOLLOW` beneath the
/// previous one, then the last name with `O_NOFOLLOW`. A RelPath has no `..`, so every step
/// stays beneath `dir`.
pub(crate) fn walk(dir: BorrowedFd<'_>, path: &RelPath, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let (dirs, name) = path.split();
    let parent = open_dirs(dir, dirs, None)?;
    openat(parent.as_fd(), name, flags | libc::O_NOFOLLOW, mode)
}

/// The directory reached from `dir` through `names`, each opened without following a link;
/// with `create`, a missing one is made with that mode.
fn open_dirs<'a>(dir: BorrowedFd<'_>, names: impl Iterator<Item = &'a str>, create: Option<libc::mode_t>) -> io::Result<OwnedFd> {
    let mut current = dir.try_clone_to_owned()?;
    for name in names {
        if let Some(mode) = create {
            mkdirat(current.as_fd(), name, mode)?;
        }
        current = open_dir(current.as_fd(), name)?;
    }
    Ok(current)
}

fn open_dir(dir: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)
}

pub(crate) fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `openat(2)`, with `O_CLOEXEC`.
pub(crate) fn openat(dir: BorrowedFd<'_>, name: &str, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let name = cstring(name)?;
    // SAFETY: `dir` is open for the duration of the call and `name` is NUL-terminated and
    // outlives it; `mode` is passed as the variadic argument `openat` reads with `O_CREAT`.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the call returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mkdirat(2)`; an existing entry is left for the open that follows to judge.
fn mkdirat(dir: BorrowedFd<'_>, name: &str, mode: libc::mode_t) -> io::Result<()> {
    let name = cstring(name)?;
    // SAFETY: `dir` is open for the duration of the call and `name` is NUL-terminated and
    // outlives it.
    if unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) } < 0 {
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::AlreadyExists {
            return Err(error);
        }
    }
    Ok(())
}

fn renameat(dir: BorrowedFd<'_>, from: &str, to: &str) -> io::Result<()> {
    let (from, to) = (cstring(from)?, cstring(to)?);
    // SAFETY: `dir` is open for the duration of the call; both names are NUL-terminated and
    // outlive it.
    if unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn unlinkat(dir: BorrowedFd<'_>, name: &str) {
    if let Ok(name) = cstring(name) {
        // SAFETY: `dir` is open for the duration of the call and `name` is NUL-terminated and
        // outlives it. A failure leaves a temporary file beneath `dir`, nothing worse.
        unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) };
    }
}

/// Why an open beneath a directory failed, in words: the errors a link or an escape produces
/// are named as such.
pub fn describe(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(libc::ELOOP) => "a symbolic link is on the way, and no link is followed".into(),
        Some(libc::EXDEV) => "it leads out of the directory".into(),
        Some(libc::ENOTDIR) => "a component on the way is not a directory".into(),
        Some(libc::ENOENT) => "no such file".into(),
        _ => error.to_string(),
    }
}

/// A regular file opened for reading beneath `dir`. A FIFO or device is refused without
/// blocking on it (`O_NONBLOCK`); with `single_link`, so is a file with more than one hard link,
/// which could be a host file (a signing key) linked into the directory from outside.
pub fn open_regular(dir: BorrowedFd<'_>, path: &RelPath, single_link: bool) -> Result<File, OpenError> {
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
    let file = File::from(open(dir, path, flags, 0).map_err(OpenError::Io)?);
    let meta = file.metadata().map_err(OpenError::Io)?;
    if !meta.is_file() {
        return Err(OpenError::Refused("it is not a regular file".into()));
    }
    if single_link && meta.nlink() > 1 {
        return Err(OpenError::Refused(format!(
            "it has {} hard links, and a file with more than one may be a file from outside the workspace: only a file with one link is read",
            meta.nlink()
        )));
    }
    Ok(file)
}

/// Why [`open_regular`] failed.
#[derive(Debug)]
pub enum OpenError {
    Io(io::Error),
    /// Opened, but not a file that may be read.
    Refused(String),
}

impl OpenError {
    pub fn not_found(&self) -> bool {
        matches!(self, OpenError::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Io(e) => f.write_str(&describe(e)),
            OpenError::Refused(why) => f.write_str(why),
        }
    }
}

/// Replaces `path` beneath `dir` with `data`, atomically: missing directories on the way are
/// made (`mkdirat`, 0750), a temporary file is created in the parent with `O_EXCL | O_NOFOLLOW`,
/// written, synced, renamed over the target beneath the same descriptor, and the directory
/// synced. A link at the target is replaced, never written through.
///
/// `prepare` is applied to the temporary file before anything is written to it (its retention
/// mark, `retention.rs`): what it sets arrives with the file's contents, in the same rename, or
/// not at all.
pub fn write_atomic(dir: BorrowedFd<'_>, path: &RelPath, data: &[u8], prepare: impl FnOnce(&File) -> io::Result<()>) -> io::Result<()> {
    let (dirs, name) = path.split();
    let parent = open_dirs(dir, dirs, Some(0o750))?;
    let temp = format!(".symbiont-tmp-{}", crate::util::random_id(8));
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
    let mut file = File::from(openat(parent.as_fd(), &temp, flags, 0o640)?);
    let result = prepare(&file)
        .and_then(|()| file.write_all(data))
        .and_then(|()| file.sync_all())
        .and_then(|()| renameat(parent.as_fd(), &temp, name));
    if let Err(e) = result {
        unlinkat(parent.as_fd(), &temp);
        return Err(e);
    }
    File::from(parent).sync_all()
}

/// An agent's workspace: the host directory its broker's file operations are confined to, opened
/// once and held open, so that renaming or replacing the path later changes nothing.
#[derive(Debug, Clone)]
pub struct Workspace {
    path: PathBuf,
    dir: Arc<OwnedFd>,
}

impl Workspace {
    /// `ROOT/.symbiont/workspaces/AGENT`, the layout `symbiont run` uses: see [`Workspace::open`].
    /// The audit log (`.symbiont/audit/`) and its key (`.symbiont/audit.key`) are beside it,
    /// never beneath it, and the broker opens nothing outside it.
    pub fn for_agent(root: &Path, agent: &str) -> Result<Workspace, String> {
        Workspace::open(root, &format!(".symbiont/workspaces/{agent}"))
    }

    /// Opens `root/relative` (created where missing), walking from `root` one directory at a
    /// time without following links. Refused, naming the directory and why, when a directory on
    /// the way below `root` is a symbolic link, not a directory, or not owned by the effective
    /// user: a repository can ship `.symbiont/workspaces/AGENT -> /`.
    pub fn open(root: &Path, relative: &str) -> Result<Workspace, String> {
        let path = RelPath::parse(relative).map_err(|why| format!("workspace `{relative}`: {why}"))?;
        let mut current = File::open(root).map_err(|e| format!("{}: {e}", root.display()))?;
        let mut host = root.to_path_buf();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        for name in path.as_str().split('/') {
            host.push(name);
            let refuse =
                |why: String| format!("{}: {why}; an agent's workspace must be a directory you own, reached without links", host.display());
            mkdirat(current.as_fd(), name, 0o755).map_err(|e| refuse(e.to_string()))?;
            current = File::from(open_dir(current.as_fd(), name).map_err(|e| match std::fs::symlink_metadata(&host) {
                Ok(meta) if meta.is_symlink() => refuse("it is a symbolic link".into()),
                Ok(meta) if !meta.is_dir() => refuse("it is not a directory".into()),
                _ => refuse(e.to_string()),
            })?);
            let owner = current.metadata().map_err(|e| refuse(e.to_string()))?.uid();
            if owner != euid {
                return Err(refuse(format!("it is owned by uid {owner}, not by the user running symbiont (uid {euid})")));
            }
        }
        Ok(Workspace { path: host, dir: Arc::new(current.into()) })
    }

    /// Where it was opened (for messages: operations use the descriptor).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_per_path() {
        for ok in ["a", "a/b.txt", "topsecret.txt", ".hidden", "a/..b", "...", "a b/c"] {
            assert_eq!(RelPath::parse(ok).unwrap().as_str(), ok);
        }
        let long_name = "x".repeat(256);
        let long_path = "a/".repeat(2048) + "a";
        for bad in ["", "/etc/passwd", "a/", "a//b", "./a", "a/.", "../x", "a/../b", "a\0b", "/", "//", &long_name, &long_path] {
            assert!(RelPath::parse(bad).is_err(), "{bad:?}");
        }
        assert!(RelPath::parse("topsecret.txt/").unwrap_err().contains("ends with `/`"));
    }

    #[test]
    fn links_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = File::open(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/f"), "inside").unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("d/f", dir.path().join("f")).unwrap();
        std::os::unix::fs::symlink("d", dir.path().join("dl")).unwrap();
        for f in [open, walk] {
            let rel = |s| RelPath::parse(s).unwrap();
            assert!(f(root.as_fd(), &rel("d/f"), libc::O_RDONLY, 0).is_ok());
            for linked in ["etc/passwd", "f", "dl/f"] {
                let e = f(root.as_fd(), &rel(linked), libc::O_RDONLY, 0).unwrap_err();
                assert!(matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)), "{linked}: {e}");
            }
        }
    }

    #[test]
    fn a_workspace_is_reached_without_links_and_owned() {
        let root = tempfile::tempdir().unwrap();
        let ws = Workspace::for_agent(root.path(), "a").unwrap();
        assert_eq!(ws.path(), root.path().join(".symbiont/workspaces/a"));
        assert!(root.path().join(".symbiont/workspaces/a").is_dir());
        // The descriptor, not the path: a later swap of the path changes nothing.
        std::fs::rename(root.path().join(".symbiont/workspaces/a"), root.path().join("moved")).unwrap();
        std::os::unix::fs::symlink("/", root.path().join(".symbiont/workspaces/a")).unwrap();
        let rel = RelPath::parse("f").unwrap();
        write_atomic(ws.fd(), &rel, b"x", |_| Ok(())).unwrap();
        assert!(root.path().join("moved/f").is_file() && !Path::new("/f").exists());
        let refused = Workspace::for_agent(root.path(), "a").unwrap_err();
        assert!(refused.contains(".symbiont/workspaces/a: it is a symbolic link"), "{refused}");
        std::fs::write(root.path().join(".symbiont/workspaces/b"), "").unwrap();
        assert!(Workspace::for_agent(root.path(), "b").unwrap_err().contains("not a directory"));
        assert!(Workspace::for_agent(root.path(), "../x").unwrap_err().contains("`..`"));
        std::fs::create_dir(root.path().join("c")).unwrap();
        // Giving a directory away needs root; elsewhere that case is left out.
        if std::os::unix::fs::chown(root.path().join("c"), Some(54321), None).is_ok() {
            assert!(Workspace::open(root.path(), "c").unwrap_err().contains("owned by uid 54321"));
        }
    }

    /// The walk (used where `openat2` is missing) under a racing swap of a file and of a
    /// directory with links out: it never opens what is outside. Bounded by iterations and time.
    #[test]
    fn the_walk_holds_under_a_swap() {
        use std::io::Read;
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(outside.path().join("d")).unwrap();
        std::fs::write(outside.path().join("f"), "OUTSIDE").unwrap();
        std::fs::write(outside.path().join("d/f"), "OUTSIDE").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("f"), "inside").unwrap();
        std::fs::write(dir.path().join("d/f"), "inside").unwrap();
        std::os::unix::fs::symlink(outside.path().join("f"), dir.path().join("f.link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("d"), dir.path().join("d.link")).unwrap();
        let root = File::open(dir.path()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (stop, root) = (stop.clone(), root.try_clone().unwrap());
            std::thread::spawn(move || {
                let pairs = [(cstring("f").unwrap(), cstring("f.link").unwrap()), (cstring("d").unwrap(), cstring("d.link").unwrap())];
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                for i in 0..4_000_000 {
                    if stop.load(Ordering::Relaxed) || std::time::Instant::now() > deadline {
                        break;
                    }
                    let ((a, b), fd) = (&pairs[i % 2], root.as_raw_fd());
                    // SAFETY: `fd` is the open directory `root`, owned by this thread, and both
                    // names are NUL-terminated strings that outlive the call.
                    unsafe { libc::renameat2(fd, a.as_ptr(), fd, b.as_ptr(), libc::RENAME_EXCHANGE) };
                }
            })
        };
        let (deadline, mut opened) = (std::time::Instant::now() + std::time::Duration::from_secs(10), 0);
        for i in 0..40_000 {
            if std::time::Instant::now() > deadline {
                break;
            }
            let path = RelPath::parse(if i % 2 == 0 { "f" } else { "d/f" }).unwrap();
            if let Ok(fd) = walk(root.as_fd(), &path, libc::O_RDONLY, 0) {
                let mut text = String::new();
                File::from(fd).read_to_string(&mut text).unwrap();
                assert_eq!(text, "inside", "{} was opened outside", path.as_str());
                opened += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        assert!(opened > 0, "some opens went through");
    }
}
