//! Which files a command works on: directories are walked honouring `.gitignore` (inside a git
//! repository or not) for `.sym`/`.symbi` files; files named explicitly are taken as they are.

use std::{
    collections::BTreeSet,
    path::{Component, Path, PathBuf},
};

use symbiont_analysis::{is_code_path, is_source_path, CONFIG_FILE_NAME};

/// The files found, sorted by path, and the problems met on the way (unreadable directories).
pub struct Collected {
    pub files: Vec<PathBuf>,
    pub errors: Vec<String>,
}

/// Collects the files under `paths`. A path that does not exist is an error.
/// With `code`, agent code in the four languages is taken too.
pub fn collect(paths: &[PathBuf], cwd: &Path, code: bool) -> Result<Collected, String> {
    let mut files = BTreeSet::new();
    let mut errors = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("{}: no such file or directory", path.display())
            }
            _ => format!("{}: {e}", path.display()),
        })?;
        if !metadata.is_dir() {
            files.insert(normalize(path, cwd));
            continue;
        }
        for entry in
            ignore::WalkBuilder::new(path).require_git(false).add_custom_ignore_filename(symbiont_analysis::IGNORE_FILE_NAME).build()
        {
            match entry {
                Ok(entry) => {
                    if entry.file_type().is_some_and(|t| t.is_file())
                        && (is_source_path(entry.path()) || code && is_code_path(entry.path()))
                    {
                        files.insert(normalize(entry.path(), cwd));
                    }
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    Ok(Collected { files: files.into_iter().collect(), errors })
}

/// The path as reports show it: relative to `cwd` when it is inside it, without `.` components.
pub fn normalize(path: &Path, cwd: &Path) -> PathBuf {
    let path = match path.strip_prefix(cwd) {
        Ok(relative) if path.is_absolute() && !relative.as_os_str().is_empty() => relative,
        _ => path,
    };
    let normalized: PathBuf = path.components().filter(|c| !matches!(c, Component::CurDir)).collect();
    if normalized.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        normalized
    }
}

/// `symbiont.toml` in the nearest ancestor directory of `start` (itself when it is a
/// directory), normalized like the files.
pub fn find_config(start: &Path, cwd: &Path) -> Option<PathBuf> {
    let absolute = std::fs::canonicalize(cwd.join(start)).ok()?;
    let dir = if absolute.is_dir() { absolute.as_path() } else { absolute.parent()? };
    let found = dir.ancestors().map(|d| d.join(CONFIG_FILE_NAME)).find(|candidate| candidate.is_file())?;
    let cwd = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
    Some(normalize(&found, &cwd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        let cwd = Path::new("/w");
        assert_eq!(normalize(Path::new("./a/./b.sym"), cwd), PathBuf::from("a/b.sym"));
        assert_eq!(normalize(Path::new("/w/a.sym"), cwd), PathBuf::from("a.sym"));
        assert_eq!(normalize(Path::new("/x/a.sym"), cwd), PathBuf::from("/x/a.sym"));
        assert_eq!(normalize(Path::new("."), cwd), PathBuf::from("."));
    }
}
