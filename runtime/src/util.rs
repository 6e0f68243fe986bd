//! Small helpers shared by the runtime's modules.

use std::{future::Future, pin::Pin};

/// A boxed future: the sandbox traits return these so that backends are object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The directory a container label names, if it is a directory (not a symbolic link) directly in
/// `root` whose name `named` accepts: a label, which anyone who can start a container can write,
/// never makes the runtime stage, bind or remove anything elsewhere.
pub(crate) fn labelled_dir_in(root: &std::path::Path, label: &str, named: impl Fn(&str) -> bool) -> Option<std::path::PathBuf> {
    let path = std::path::PathBuf::from(label);
    let inside = path.parent()?.canonicalize().ok()? == root.canonicalize().ok()?;
    let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
    (inside && is_dir && named(path.file_name()?.to_str()?)).then_some(path)
}

/// An error message maker for a set-up step on `path`: `WHAT PATH: ERROR`.
pub(crate) fn setup_error(what: &str, path: &std::path::Path) -> impl Fn(std::io::Error) -> String {
    let message = format!("{what} {}", path.display());
    move |e| format!("{message}: {e}")
}

/// A random identifier of `bytes` random bytes, in hex.
pub fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).expect("the operating system's random source failed");
    symbiont_audit::entry::hex(&buf)
}

/// `mkfs.ext4` (e2fsprogs) on `PATH` or in `/usr/sbin`, `/sbin`: Tier 3 makes file systems with it,
/// the guest's image (`image::tier3`) and each run's scratch drive (`sandbox::firecracker`).
pub fn mkfs_ext4() -> Option<std::path::PathBuf> {
    find_program("mkfs.ext4", &["/usr/sbin", "/sbin"])
}

/// An executable file named `name` on `PATH` or in `extra` directories.
pub(crate) fn find_program(name: &str, extra: &[&str]) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain(extra.iter().map(std::path::PathBuf::from)).map(|dir| dir.join(name)).find(|p| is_executable(p))
}

pub(crate) fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
