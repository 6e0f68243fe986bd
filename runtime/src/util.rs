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

/// A random identifier of `bytes` random bytes, in hex.
pub fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).expect("the operating system's random source failed");
    symbiont_audit::entry::hex(&buf)
}
