//! Shared helpers for the integration tests in `it/`.

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lives in the repository").to_path_buf()
}

/// The shared corpus of real `.sym` files written elsewhere.
pub fn corpus_dir() -> PathBuf {
    std::env::var_os("SYMBIONT_CORPUS").map(PathBuf::from).unwrap_or_else(|| repo_root().join("../shared/corpus/upstream-agents"))
}

/// Every corpus file with its text, sorted by path. Panics when the corpus is missing, so a
/// misplaced checkout fails loudly instead of testing nothing.
pub fn corpus_files() -> Vec<(PathBuf, String)> {
    let dir = corpus_dir();
    let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the corpus at {}: {e}", dir.display()))
        .map(|entry| entry.expect("readable corpus entry").path())
        .filter(|path| matches!(path.extension().and_then(|e| e.to_str()), Some("sym" | "symbi")))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, text)
        })
        .collect();
    files.sort();
    assert!(files.len() >= 10, "expected the corpus at {} to hold its files", dir.display());
    files
}
