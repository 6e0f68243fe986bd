//! Reading a workspace from disk: the source files under the given paths and the `symbiont.toml`
//! that governs them. `check` and `policy` both start here.

use std::path::{Path, PathBuf};

use crate::{fsutil, walk};

/// What was read: sources and configuration, plus what could not be read, by path.
pub struct Sources {
    pub files: Vec<(PathBuf, String)>,
    pub config: Option<(PathBuf, String)>,
    pub unreadable: Vec<(PathBuf, fsutil::ReadError)>,
    /// Problems met while walking (unreadable directories).
    pub walk_errors: Vec<String>,
    /// How many files the walk found, readable or not.
    pub files_found: usize,
}

/// Reads every source under `paths` and the `symbiont.toml` of the first path's nearest ancestor.
pub fn read(paths: &[PathBuf], cwd: &Path) -> Result<Sources, String> {
    let collected = walk::collect(paths, cwd, true)?;
    let mut sources = Sources {
        files: Vec::new(),
        config: None,
        unreadable: Vec::new(),
        walk_errors: collected.errors,
        files_found: collected.files.len(),
    };
    let config_start = paths.first().map_or(Path::new("."), PathBuf::as_path);
    if let Some(config) = walk::find_config(config_start, cwd) {
        match fsutil::read_source(&config) {
            Ok(text) => sources.config = Some((config, text)),
            Err(e) => sources.unreadable.push((config, e)),
        }
    }
    // Large repositories: read in parallel, keep path order.
    use rayon::prelude::*;
    let read: Vec<(PathBuf, Result<String, fsutil::ReadError>)> = collected
        .files
        .into_par_iter()
        .map(|path| {
            let text = fsutil::read_source(&path);
            (path, text)
        })
        .collect();
    for (path, text) in read {
        match text {
            Ok(text) => sources.files.push((path, text)),
            Err(e) => sources.unreadable.push((path, e)),
        }
    }
    Ok(sources)
}
