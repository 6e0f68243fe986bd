//! File operations confined to the agent's workspace directory on the host.
//!
//! A path is relative, made of normal components only (no `..`, no root, no NUL), and no
//! component may be a symbolic link: what the broker touches is always inside the workspace.
//! Writes are atomic (a temporary file renamed over the target), so a reader never sees half a
//! file and a failed write loses nothing.

use std::{
    fs,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Component, Path, PathBuf},
};

use super::{protocol::ErrorCode, MAX_BODY};

type FileResult<T> = Result<T, (ErrorCode, String)>;

fn bad(message: String) -> (ErrorCode, String) {
    (ErrorCode::BadRequest, message)
}

/// The checked host path of `relative` inside `root`; with `create_parents`, missing parent
/// directories are created (each checked in turn).
fn confine(root: &Path, relative: &str, create_parents: bool) -> FileResult<PathBuf> {
    if relative.is_empty() || relative.contains('\0') {
        return Err(bad("the path is empty or contains NUL".into()));
    }
    let path = Path::new(relative);
    let mut host = root.to_path_buf();
    let components: Vec<_> = path.components().collect();
    for (i, component) in components.iter().enumerate() {
        let Component::Normal(part) = component else {
            return Err(bad(format!("`{relative}` must be relative to the workspace, without `..`")));
        };
        host.push(part);
        let last = i + 1 == components.len();
        match fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(bad(format!("`{relative}` goes through a symbolic link; the broker does not follow links")))
            }
            Ok(meta) if !last && !meta.is_dir() => return Err(bad(format!("`{relative}`: a parent is not a directory"))),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !last && create_parents => {
                fs::create_dir(&host).map_err(|e| (ErrorCode::Failed, format!("creating a directory for `{relative}`: {e}")))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !last {
                    return Err((ErrorCode::Failed, format!("`{relative}`: no such file in the workspace")));
                }
            }
            Err(e) => return Err((ErrorCode::Failed, format!("`{relative}`: {e}"))),
        }
    }
    Ok(host)
}

pub fn read(root: &Path, relative: &str) -> FileResult<String> {
    let host = confine(root, relative, false)?;
    let meta = fs::metadata(&host).map_err(|e| (ErrorCode::Failed, format!("`{relative}`: {e}")))?;
    if !meta.is_file() {
        return Err((ErrorCode::Failed, format!("`{relative}` is not a regular file")));
    }
    if meta.len() > MAX_BODY {
        return Err((ErrorCode::Failed, format!("`{relative}` is larger than {MAX_BODY} bytes")));
    }
    let bytes = fs::read(&host).map_err(|e| (ErrorCode::Failed, format!("`{relative}`: {e}")))?;
    String::from_utf8(bytes).map_err(|_| (ErrorCode::Failed, format!("`{relative}` is not UTF-8 text")))
}

pub fn write(root: &Path, relative: &str, content: &[u8], append: bool) -> FileResult<usize> {
    let host = confine(root, relative, true)?;
    let failed = |e: std::io::Error| (ErrorCode::Failed, format!("writing `{relative}`: {e}"));
    let mut data = Vec::new();
    if append {
        match fs::read(&host) {
            Ok(existing) => data = existing,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(e)),
        }
    }
    data.extend_from_slice(content);
    if data.len() as u64 > MAX_BODY {
        return Err((ErrorCode::Failed, format!("`{relative}` would be larger than {MAX_BODY} bytes")));
    }
    let dir = host.parent().unwrap_or(root);
    let temp =
        dir.join(format!(".{}.symbiont-tmp-{}", host.file_name().and_then(|n| n.to_str()).unwrap_or("file"), crate::util::random_id(6)));
    let result = (|| {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o640).open(&temp)?;
        file.write_all(&data)?;
        file.sync_all()?;
        fs::rename(&temp, &host)?;
        fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(failed(e));
    }
    Ok(content.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_in_the_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert_eq!(write(root, "notes/a.txt", b"hello", false), Ok(5));
        assert_eq!(write(root, "notes/a.txt", b" world", true), Ok(6));
        assert_eq!(read(root, "notes/a.txt").unwrap(), "hello world");
        for escape in ["../x", "/etc/passwd", "notes/../../x", ""] {
            assert_eq!(read(root, escape).unwrap_err().0, ErrorCode::BadRequest, "{escape}");
            assert_eq!(write(root, escape, b"x", false).unwrap_err().0, ErrorCode::BadRequest, "{escape}");
        }
        std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
        assert!(read(root, "link/passwd").unwrap_err().1.contains("symbolic link"));
        assert!(write(root, "link/evil", b"x", false).is_err());
        assert!(!Path::new("/etc/evil").exists());
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(root.join("notes")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.txt")]);
    }
}
