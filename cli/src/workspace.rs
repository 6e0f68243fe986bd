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
    let (mut sources, files) = find(paths, cwd)?;
    read_files(&mut sources, files);
    Ok(sources)
}

/// What [`read`] reads, found: the `symbiont.toml` read, the sources (returned) not yet, for a
/// reader that does not want them all in memory at once.
pub fn find(paths: &[PathBuf], cwd: &Path) -> Result<(Sources, Vec<PathBuf>), String> {
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
    Ok((sources, collected.files))
}

/// Reads `files` into `sources.files`, in their order, or into `sources.unreadable`.
pub fn read_files(sources: &mut Sources, files: Vec<PathBuf>) {
    // Large repositories: read in parallel, keep path order.
    use rayon::prelude::*;
    let read: Vec<(PathBuf, Result<String, fsutil::ReadError>)> = files
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
}

/// The settings of `symbiont.toml`, the defaults when there is none, or why it is invalid.
pub fn config(sources: &Sources) -> Result<symbiont_policy::config::Config, String> {
    match &sources.config {
        None => Ok(symbiont_policy::config::Config::default()),
        Some((path, text)) => {
            symbiont_policy::config::parse(text).map_err(|e| format!("{}: invalid configuration: {}", path.display(), e.message))
        }
    }
}

/// The workspace the generator edits: the directory of the nearest `symbiont.toml` at or above
/// the current directory, its `.sym`/`.symbi` files by path relative to that directory, and its
/// settings. A file that does not parse refuses: generating from a policy half read would be
/// generating from a policy nobody wrote.
pub fn generator_workspace() -> Result<(PathBuf, symbiont_codegen::Workspace), String> {
    let cwd = std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    let settings = walk::find_config(Path::new("."), &cwd)
        .ok_or("no symbiont.toml in this directory or above it: create a workspace with `symbiont init`")?;
    let root = cwd.join(&settings).parent().map(Path::to_path_buf).unwrap_or(cwd);
    let sources = read(std::slice::from_ref(&root), &root)?;
    if let Some((path, error)) = sources.unreadable.first() {
        return Err(format!("{}: {error}", path.display()));
    }
    let config = config(&sources)?;
    let mut files = Vec::new();
    for (path, text) in sources.files.into_iter().filter(|(path, _)| symbiont_analysis::is_source_path(path)) {
        let relative = path.strip_prefix(&root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
        if let Some(error) = symbiont_syntax::parse(&text).errors().first() {
            return Err(format!("{relative}: {} (fix the syntax errors first: `symbiont check` lists them)", error.message));
        }
        files.push((relative, text));
    }
    Ok((root, symbiont_codegen::Workspace { sources: files, config }))
}
