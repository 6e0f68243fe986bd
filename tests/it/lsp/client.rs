//! A small LSP client for the tests: starts the real `symbiont-lsp --stdio`, frames JSON-RPC over
//! its stdin/stdout, answers the server's own requests, and keeps notifications for the tests to
//! wait on. Positions are computed here independently of the server (UTF-16, per the protocol).

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{mpsc, OnceLock},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

/// The `symbiont-lsp` binary, built on first use (`SYMBIONT_LSP_BIN` names a prebuilt one).
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| symbiont_tests::workspace_binary("symbiont-lsp", "symbiont-lsp", "SYMBIONT_LSP_BIN"))
}

const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    messages: mpsc::Receiver<Value>,
    next_id: i64,
    /// Notifications and server requests not yet waited for, in arrival order.
    pub backlog: Vec<Value>,
    /// The server's own requests (`client/registerCapability`, …), answered with `null`.
    pub server_requests: Vec<Value>,
    /// The last diagnostics published for each URI.
    pub published: std::collections::HashMap<String, Value>,
}

pub use symbiont_tests::frame;

fn read_message(reader: &mut impl BufRead) -> Option<Value> {
    let body = symbiont_tests::read_frame(reader)?;
    Some(serde_json::from_slice(&body).expect("the server sends JSON"))
}

impl Server {
    /// Starts the server (with its test hooks on), not yet initialized.
    pub fn spawn() -> Server {
        let mut child = Command::new(binary())
            .arg("--stdio")
            .env("SYMBIONT_LSP_TEST_HOOKS", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("symbiont-lsp starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            while let Some(message) = read_message(&mut reader) {
                if tx.send(message).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Server { child, stdin, messages, next_id: 0, backlog: Vec::new(), server_requests: Vec::new(), published: Default::default() }
    }

    /// Starts and initializes a server on a workspace folder (or none).
    pub fn start(root: Option<&Path>) -> Server {
        Self::start_with(root, json!({}), Value::Null)
    }

    pub fn start_with(root: Option<&Path>, capabilities: Value, options: Value) -> Server {
        let mut server = Server::spawn();
        let folders = root.map(|r| json!([{ "uri": file_uri(r), "name": "ws" }])).unwrap_or(Value::Null);
        server
            .request(
                "initialize",
                json!({ "processId": null, "rootUri": root.map(file_uri), "workspaceFolders": folders, "capabilities": capabilities, "initializationOptions": options }),
            )
            .expect("initialize succeeds");
        server.notify("initialized", json!({}));
        server
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    fn send(&mut self, message: Value) {
        self.send_raw(&frame(message.to_string().as_bytes()));
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// Sends a request without waiting; returns its id.
    pub fn send_request(&mut self, method: &str, params: Value) -> i64 {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        id
    }

    /// A request's result, or its error object.
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.send_request(method, params);
        self.response(id)
    }

    pub fn response(&mut self, id: i64) -> Result<Value, Value> {
        let response = self.wait_for(|m| m.get("id") == Some(&json!(id)) && m.get("method").is_none());
        match response.get("error") {
            Some(error) => Err(error.clone()),
            None => Ok(response.get("result").cloned().unwrap_or(Value::Null)),
        }
    }

    /// The next message from the server, answering its requests and recording diagnostics.
    pub fn next_message(&mut self, deadline: Instant) -> Option<Value> {
        let message = self.messages.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok()?;
        if message.get("method").is_some() && message.get("id").is_some() {
            let id = message["id"].clone();
            self.server_requests.push(message.clone());
            self.send(json!({ "jsonrpc": "2.0", "id": id, "result": null }));
        }
        if message.get("method") == Some(&json!("textDocument/publishDiagnostics")) {
            let params = &message["params"];
            self.published.insert(params["uri"].as_str().unwrap().to_string(), params.clone());
        }
        Some(message)
    }

    /// Waits for a message matching `pred` (looking at the backlog first); panics after a while.
    pub fn wait_for(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i);
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let Some(message) = self.next_message(deadline) else { panic!("no matching message from the server in {TIMEOUT:?}") };
            if pred(&message) {
                return message;
            }
            if message.get("method").is_some() {
                self.backlog.push(message);
            }
        }
    }

    /// The notifications of `method` that arrived while waiting for other messages, oldest
    /// first; they leave the backlog.
    pub fn backlog_of(&mut self, method: &str) -> Vec<Value> {
        let (matching, rest) = std::mem::take(&mut self.backlog).into_iter().partition(|m| m["method"] == method);
        self.backlog = rest;
        matching
    }

    /// Waits for diagnostics published for `uri` (at `version`, when given).
    pub fn diagnostics(&mut self, uri: &str, version: Option<i64>) -> Value {
        let message = self.wait_for(|m| {
            m["method"] == "textDocument/publishDiagnostics"
                && m["params"]["uri"] == uri
                && version.is_none_or(|v| m["params"]["version"] == json!(v))
        });
        message["params"]["diagnostics"].clone()
    }

    /// Waits until the diagnostics published for `uri` satisfy `pred` (the last ones published
    /// count too), and returns them.
    pub fn diagnostics_until(&mut self, uri: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.backlog.retain(|m| !(m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri));
        if let Some(last) = self.published.get(uri) {
            if pred(&last["diagnostics"]) {
                return last["diagnostics"].clone();
            }
        }
        let message = self.wait_for(|m| {
            m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri && pred(&m["params"]["diagnostics"])
        });
        message["params"]["diagnostics"].clone()
    }

    pub fn open(&mut self, uri: &str, language: &str, text: &str) {
        self.notify("textDocument/didOpen", json!({ "textDocument": { "uri": uri, "languageId": language, "version": 1, "text": text } }));
    }

    pub fn change(&mut self, uri: &str, version: i64, changes: Value) {
        self.notify("textDocument/didChange", json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": changes }));
    }

    /// `shutdown`, `exit`, and the exit code.
    pub fn stop(mut self) -> i32 {
        self.request("shutdown", Value::Null).expect("shutdown succeeds");
        self.notify("exit", Value::Null);
        self.wait_exit()
    }

    pub fn wait_exit(&mut self) -> i32 {
        self.stdin.take();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().expect("exited, not killed");
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The server's process id (to read its `/proc/PID/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `file://` URI, percent-encoding what must be.
pub fn file_uri(path: &Path) -> String {
    let mut uri = String::from("file://");
    for byte in path.to_str().expect("UTF-8 paths").bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            uri.push(byte as char);
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri
}

/// The UTF-16 position of a byte offset.
pub fn position(text: &str, offset: usize) -> Value {
    let before = &text[..offset];
    let line = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let character: usize = before[line_start..].chars().map(char::len_utf16).sum();
    json!({ "line": line, "character": character })
}

/// The byte offset of a UTF-16 position (clamped to its line, as the protocol says).
pub fn offset(text: &str, line: usize, character: usize) -> usize {
    let mut start = 0;
    for _ in 0..line {
        start += text[start..].find('\n').map_or(text.len() - start, |i| i + 1);
    }
    let mut units = 0;
    for (i, c) in text[start..].char_indices() {
        if units >= character || c == '\n' {
            return start + i;
        }
        units += c.len_utf16();
    }
    text.len()
}

/// Text with cursor markers `$0`: the text without them and each marker's byte offset.
pub fn cursors(marked: &str) -> (String, Vec<usize>) {
    let mut text = String::new();
    let mut offsets = Vec::new();
    let mut rest = marked;
    while let Some(i) = rest.find("$0") {
        text.push_str(&rest[..i]);
        offsets.push(text.len());
        rest = &rest[i + 2..];
    }
    text.push_str(rest);
    (text, offsets)
}
