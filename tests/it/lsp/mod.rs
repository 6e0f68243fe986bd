//! The language server, end to end: the real `symbiont-lsp --stdio` driven over JSON-RPC by a
//! small client (`client.rs`). Fixtures are the workspace in `workspace/`, copied to a temporary
//! directory; cursors are written as `$0` inside a snippet of a file's text. Results are
//! snapshots, with URIs made relative to the workspace and ranges written `line:col-line:col`
//! (0-based, UTF-16 columns, as on the wire).

mod client;
mod code;
mod codegen;
mod features;
mod fix_all;
mod large_file;
mod properties;
mod robustness;
mod run;
mod workspace;

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

pub use client::{cursors, file_uri, offset, position, Server};

/// A copy of `workspace/` (plus or minus some files) in a temporary directory.
pub struct Fixture {
    dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fixture {
    pub fn new() -> Fixture {
        let fixture = Fixture::empty();
        symbiont_tests::copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("it/lsp/workspace"), &fixture.root, &|_| false);
        fixture
    }

    pub fn empty() -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path().canonicalize().unwrap();
        Fixture { dir, root }
    }

    pub fn root(&self) -> &Path {
        let _ = &self.dir;
        &self.root
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    pub fn uri(&self, relative: &str) -> String {
        file_uri(&self.path(relative))
    }

    pub fn text(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).unwrap()
    }

    pub fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// A server initialized on this workspace.
    pub fn server(&self) -> Server {
        Server::start(Some(&self.root))
    }

    /// The protocol position of the `$0` in `snippet`, which must occur once in the file.
    pub fn at(&self, relative: &str, snippet: &str) -> Value {
        let text = self.text(relative);
        position(&text, find_cursor(&text, snippet))
    }

    /// Opens a file of the workspace with its text from disk, and waits for its diagnostics.
    pub fn open(&self, server: &mut Server, relative: &str) -> Value {
        let uri = self.uri(relative);
        server.open(&uri, language_of(relative), &self.text(relative));
        server.diagnostics(&uri, Some(1))
    }

    /// JSON made stable for snapshots: URIs relative to the workspace, ranges short.
    pub fn render(&self, value: &Value) -> String {
        serde_json::to_string_pretty(&self.normalize(value)).unwrap()
    }

    pub fn normalize(&self, value: &Value) -> Value {
        let prefix = file_uri(&self.root);
        match value {
            Value::String(s) => Value::String(s.replace(&format!("{prefix}/"), "ws:").replace(&prefix, "ws:")),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.normalize(v)).collect()),
            Value::Object(object) => {
                if let Some(range) = short_range(value) {
                    return Value::String(range);
                }
                Value::Object(object.iter().map(|(k, v)| (self.normalize_key(k), self.normalize(v))).collect::<Map<_, _>>())
            }
            other => other.clone(),
        }
    }

    fn normalize_key(&self, key: &str) -> String {
        key.replace(&format!("{}/", file_uri(&self.root)), "ws:")
    }
}

/// The byte offset of the `$0` in `snippet` within `text`, where the snippet occurs once.
pub fn find_cursor(text: &str, snippet: &str) -> usize {
    let (plain, offsets) = cursors(snippet);
    assert_eq!(offsets.len(), 1, "one $0 in {snippet:?}");
    let found: Vec<usize> = text.match_indices(&plain).map(|(i, _)| i).collect();
    assert_eq!(found.len(), 1, "{plain:?} occurs once in the text");
    found[0] + offsets[0]
}

fn short_range(value: &Value) -> Option<String> {
    let object = value.as_object()?;
    if object.len() != 2 {
        return None;
    }
    let point = |p: &Value| Some(format!("{}:{}", p.get("line")?.as_u64()?, p.get("character")?.as_u64()?));
    Some(format!("{}-{}", point(object.get("start")?)?, point(object.get("end")?)?))
}

pub fn language_of(path: &str) -> &'static str {
    match Path::new(path).extension().and_then(|e| e.to_str()) {
        Some("py") => "python",
        Some("rs") => "rust",
        Some("js") => "javascript",
        Some("ts") => "typescript",
        Some("toml") => "toml",
        _ => "symbiont",
    }
}

/// `{ textDocument, position }` params.
pub fn at(uri: &str, position: Value) -> Value {
    json!({ "textDocument": { "uri": uri }, "position": position })
}

/// Applies protocol text edits (non-overlapping, any order) to a text.
pub fn apply_edits(text: &str, edits: &Value) -> String {
    let mut edits: Vec<(usize, usize, String)> = edits
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let r = &e["range"];
            let at = |p: &Value| offset(text, p["line"].as_u64().unwrap() as usize, p["character"].as_u64().unwrap() as usize);
            (at(&r["start"]), at(&r["end"]), e["newText"].as_str().unwrap().to_string())
        })
        .collect();
    edits.sort_by_key(|e| std::cmp::Reverse((e.0, e.1)));
    let mut out = text.to_string();
    for (start, end, new_text) in edits {
        out.replace_range(start..end, &new_text);
    }
    out
}

/// The text a range covers.
pub fn covered(text: &str, range: &Value) -> String {
    let at = |p: &Value| offset(text, p["line"].as_u64().unwrap() as usize, p["character"].as_u64().unwrap() as usize);
    text[at(&range["start"])..at(&range["end"])].to_string()
}
