//! A fake broker for an agent's own unit tests: the crate's calls answered from memory, without a
//! sandbox.
//!
//! [`FakeBroker`] serves the broker protocol 1.0 on a Unix socket in a private temporary directory
//! and, while it is alive, the crate's functions (`symbiont::fs::read`, `symbiont::input`, …) talk
//! to it, so the code under test runs unchanged. What it answers comes from its [`Builder`] (files,
//! environment, secrets, HTTP routes, denials, messages to receive); what the code did is recorded
//! ([`FakeBroker::sent`], [`FakeBroker::logs`], [`FakeBroker::requests`], and the files it wrote
//! in [`FakeBroker::files`]), all readable after the code ran. Dropping it stops it and removes its
//! socket.
//!
//! ```
//! use symbiont::testing::FakeBroker;
//!
//! fn summarize() -> Result<(), symbiont::Error> { // the agent's code
//!     let items = symbiont::net::get("https://api.example.com/v1/items")?.json()?;
//!     symbiont::fs::write("out/summary.txt", format!("{} items", items.as_array().map_or(0, Vec::len)))?;
//!     symbiont::log("info", "done")
//! }
//!
//! let broker = FakeBroker::builder().http("https://api.example.com/v1/items", 200, "[1, 2]").start();
//! summarize().unwrap();
//! assert_eq!(broker.files()["out/summary.txt"], "2 items");
//! assert_eq!(broker.logs(), [("info".to_string(), "done".to_string())]);
//!
//! let rule = r#"deny: secret_access(name) if name == "db_password""#;
//! drop(broker);
//! let _broker = FakeBroker::builder().deny("secret_get", rule).start();
//! let denied = symbiont::secrets::get("DB_PASSWORD").unwrap_err();
//! assert_eq!(denied.rule(), Some(rule));
//! ```
//!
//! Like the real broker it refuses a path in another spelling (`./a`, `a//b`, `/etc/x`), a
//! malformed secret name or log level ([`Error::BadRequest`](crate::Error::BadRequest)), answers
//! [`Error::Failed`](crate::Error::Failed) for a file it does not have or a URL it has no route
//! for (as the real broker does for a host that does not resolve), and names the deciding rule of
//! a denial in its message exactly as the real broker does, so
//! [`Error::Denied`](crate::Error::Denied) carries it as `rule`.
//!
//! **One at a time.** A process has one broker for the crate's functions, and Rust runs a binary's
//! tests on several threads at once: so a `FakeBroker` is a turn. Starting one waits until no
//! other is alive in the process (the tests that use it take turns by themselves, whatever
//! `--test-threads`), and starting a second in the thread that holds one panics rather than wait
//! forever: drop the first. It does not touch the process's environment (`SYMBIONT_BROKER`,
//! `SYMBIONT_INPUT`): the crate reads its own override; a child process can be given
//! [`FakeBroker::socket_path`].

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{JoinHandle, ThreadId};

use serde_json::{json, Value};

use crate::{Client, PROTOCOL_VERSION};

/// The broker ops a policy decides, and so the ops [`Builder::deny`] takes (`log` and `hello`
/// are not decided).
pub const DENIABLE: [&str; 7] = ["http", "file_read", "file_write", "env_get", "secret_get", "send_message", "receive_message"];

/// The broker and input the crate's functions use while a [`FakeBroker`] is alive.
pub(crate) struct Override {
    pub(crate) client: Arc<Client>,
    pub(crate) input: Value,
}

static OVERRIDE: Mutex<Option<Override>> = Mutex::new(None);

/// The live fake broker's client, if one is alive.
pub(crate) fn client() -> Option<Arc<Client>> {
    lock(&OVERRIDE).as_ref().map(|o| o.client.clone())
}

/// The live fake broker's input, if one is alive.
pub(crate) fn input() -> Option<Value> {
    lock(&OVERRIDE).as_ref().map(|o| o.input.clone())
}

/// A lock that a panicking test left poisoned still guards consistent data here: take it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which thread holds the process's turn to have a fake broker, and the wait for it.
static TURN: (Mutex<Option<ThreadId>>, Condvar) = (Mutex::new(None), Condvar::new());

/// The process's turn, held by a live [`FakeBroker`]; given back when it drops. (The crate's own
/// test of `$SYMBIONT_BROKER` takes it too, so that no fake broker overrides it meanwhile.)
pub(crate) struct Turn;

impl Turn {
    pub(crate) fn take() -> Turn {
        let me = std::thread::current().id();
        let mut holder = lock(&TURN.0);
        assert!(
            *holder != Some(me),
            "a FakeBroker is already alive in this thread: drop it before starting another (one at a time per process)"
        );
        while holder.is_some() {
            holder = TURN.1.wait(holder).unwrap_or_else(PoisonError::into_inner);
        }
        *holder = Some(me);
        Turn
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        *lock(&TURN.0) = None;
        TURN.1.notify_one();
    }
}

/// What the fake broker answers from and what it records.
#[derive(Debug, Default)]
struct State {
    files: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
    http: BTreeMap<String, (u16, String)>,
    deny: BTreeMap<String, String>,
    inbox: VecDeque<(String, Value)>,
    sent: Vec<(String, Value)>,
    logs: Vec<(String, String)>,
    requests: Vec<Value>,
    agent: String,
    sequences: BTreeMap<(String, String), u64>,
}

/// The options of a [`FakeBroker`]: each call adds one thing it answers from; [`Builder::start`]
/// starts it. Made by [`FakeBroker::builder`].
///
/// ```
/// let broker = symbiont::testing::FakeBroker::builder()
///     .file("in.txt", "hello")
///     .env("REGION", "eu-west-1")
///     .secret("API_TOKEN", "t0k3n")
///     .http("https://api.example.com/v1/items", 200, "[]")
///     .deny("file_write", r#"deny: file_system_write(path) if path.starts_with("etc/")"#)
///     .inbox("planner", serde_json::json!({ "task": 1 }))
///     .input(serde_json::json!({ "name": "x" }))
///     .agent("summarizer")
///     .start();
/// # drop(broker);
/// ```
#[derive(Debug)]
#[must_use = "a Builder does nothing until `start()`"]
pub struct Builder {
    state: State,
    input: Value,
}

impl Builder {
    /// A workspace file at the start: `symbiont::fs::read(path)` answers `content`.
    pub fn file(mut self, path: impl Into<String>, content: impl Into<String>) -> Builder {
        self.state.files.insert(path.into(), content.into());
        self
    }

    /// A variable the run declares; `symbiont::env::get` answers `None` for any other name.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Builder {
        self.state.env.insert(name.into(), value.into());
        self
    }

    /// A secret the host holds, kept under its canonical name (ASCII letters lowercased:
    /// `API_TOKEN` is `api_token`), as the broker looks it up.
    ///
    /// # Panics
    ///
    /// When the canonical name is not 1 to 128 of `a-z`, `0-9` and `_`: the broker would refuse it.
    pub fn secret(mut self, name: impl AsRef<str>, value: impl Into<String>) -> Builder {
        let name = secret_name(name.as_ref()).unwrap_or_else(|(_, why)| panic!("FakeBroker secret: {why}"));
        self.state.secrets.insert(name, value.into());
        self
    }

    /// An HTTP route: a request to exactly `url`, any method, answers `status` and `body`. A URL
    /// with no route is [`Error::Failed`](crate::Error::Failed), as the real broker answers for a
    /// host that does not resolve.
    ///
    /// # Panics
    ///
    /// When `status` is not between 100 and 599.
    pub fn http(mut self, url: impl Into<String>, status: u16, body: impl Into<String>) -> Builder {
        let url = url.into();
        assert!((100..=599).contains(&status), "FakeBroker http {url:?}: the status {status} is not between 100 and 599");
        self.state.http.insert(url, (status, body.into()));
        self
    }

    /// A denial: every request of the broker op `op` (one of [`DENIABLE`]) is
    /// [`Error::Denied`](crate::Error::Denied) by `rule`, the rule's text as written in a policy,
    /// which the error carries as `rule` (an empty `rule`: a denial naming none, `rule` is `None`).
    /// A denied `receive_message` consumes the next message and answers `None`, as the real broker
    /// does.
    ///
    /// # Panics
    ///
    /// When `op` is not one of [`DENIABLE`].
    pub fn deny(mut self, op: &str, rule: impl Into<String>) -> Builder {
        assert!(DENIABLE.contains(&op), "FakeBroker deny: {op:?} is not a broker op a policy decides; use one of {DENIABLE:?}");
        self.state.deny.insert(op.to_string(), rule.into());
        self
    }

    /// A message for `symbiont::receive`, after those added before (first in first out), with the
    /// next sequence number of its sender (1, 2, …). With none left, `receive` answers `None` at
    /// once, whatever its timeout.
    pub fn inbox(mut self, from: impl Into<String>, payload: Value) -> Builder {
        self.state.inbox.push_back((from.into(), payload));
        self
    }

    /// What `symbiont::input()` answers while the broker is alive (`null` unless set).
    pub fn input(mut self, input: Value) -> Builder {
        self.input = input;
        self
    }

    /// The agent's name, in the `hello` answer and denial messages (`agent` unless set).
    pub fn agent(mut self, name: impl Into<String>) -> Builder {
        self.state.agent = name.into();
        self
    }

    /// Starts serving, once no other fake broker is alive in the process, and points the crate's
    /// functions at it until it drops.
    ///
    /// # Panics
    ///
    /// When this thread already holds a live `FakeBroker`, or the socket cannot be made.
    pub fn start(self) -> FakeBroker {
        let turn = Turn::take();
        let dir = private_dir().unwrap_or_else(|e| panic!("FakeBroker: cannot make a private directory for its socket: {e}"));
        let path = dir.join("broker.sock");
        let listener = UnixListener::bind(&path).unwrap_or_else(|e| panic!("FakeBroker: cannot listen at {}: {e}", path.display()));
        let shared = Arc::new(Shared { state: Mutex::new(self.state), stopping: AtomicBool::new(false), streams: Mutex::new(Vec::new()) });
        let serving = shared.clone();
        let accept = std::thread::spawn(move || serving.accept(&listener));
        *lock(&OVERRIDE) = Some(Override { client: Arc::new(Client::new(&path)), input: self.input });
        FakeBroker { shared, path, dir, accept: Some(accept), _turn: turn }
    }
}

/// A broker of protocol 1.0 answering from memory, which the crate's functions talk to while it
/// is alive; dropping it stops it and removes its socket. See [the module](self).
///
/// ```
/// use std::time::Duration;
/// use symbiont::testing::FakeBroker;
///
/// let broker = FakeBroker::builder().inbox("planner", serde_json::json!("go")).start();
/// let message = symbiont::receive(Duration::from_secs(1)).unwrap().unwrap();
/// symbiont::send("planner", &serde_json::json!({ "got": message.payload })).unwrap();
/// assert_eq!(broker.sent(), [("planner".to_string(), serde_json::json!({ "got": "go" }))]);
/// assert!(symbiont::receive(Duration::from_secs(30)).unwrap().is_none()); // at once
/// ```
#[derive(Debug)]
pub struct FakeBroker {
    shared: Arc<Shared>,
    path: PathBuf,
    dir: PathBuf,
    accept: Option<JoinHandle<()>>,
    _turn: Turn,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Turn")
    }
}

impl FakeBroker {
    /// The options of a new fake broker, none set: no files, no variables, no secrets, no routes,
    /// nothing denied, no messages.
    pub fn builder() -> Builder {
        Builder { state: State { agent: "agent".into(), ..State::default() }, input: Value::Null }
    }

    /// A fake broker with no options, started (see [`Builder::start`]).
    pub fn start() -> FakeBroker {
        FakeBroker::builder().start()
    }

    /// The workspace's files, path → content: those given, as the code under test left them.
    pub fn files(&self) -> BTreeMap<String, String> {
        self.state().files.clone()
    }

    /// What the code sent with `symbiont::send`, `(to, payload)`, in order.
    pub fn sent(&self) -> Vec<(String, Value)> {
        self.state().sent.clone()
    }

    /// What the code logged with `symbiont::log`, `(level, message)`, in order; the level in lower
    /// case, as the broker keeps it.
    pub fn logs(&self) -> Vec<(String, String)> {
        self.state().logs.clone()
    }

    /// Every request as received (`hello` included, with its `id`), in order.
    pub fn requests(&self) -> Vec<Value> {
        self.state().requests.clone()
    }

    /// The messages not received yet, `(from, payload)`, first in first out.
    pub fn inbox(&self) -> Vec<(String, Value)> {
        self.state().inbox.iter().cloned().collect()
    }

    /// Adds a message for `symbiont::receive`, after those waiting (see [`Builder::inbox`]).
    pub fn deliver(&self, from: impl Into<String>, payload: Value) {
        self.state().inbox.push_back((from.into(), payload));
    }

    /// The socket it serves, for a child process's `SYMBIONT_BROKER`.
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        *lock(&OVERRIDE) = None;
        self.shared.stopping.store(true, Ordering::SeqCst);
        for stream in lock(&self.shared.streams).drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        // Wakes the accept loop, which sees it is stopping.
        let _ = UnixStream::connect(&self.path);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A new directory only this user can enter, in the system's temporary directory.
fn private_dir() -> std::io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Short: a socket's path is at most 107 bytes.
        let dir = std::env::temp_dir().join(format!("symsdk-{}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            other => return other.map(|()| dir),
        }
    }
}

/// The broker's state and its connections, shared with the threads serving them.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    stopping: AtomicBool,
    streams: Mutex<Vec<UnixStream>>,
}

/// An error reply: the protocol's code and the real broker's message.
type Refusal = (&'static str, String);

impl Shared {
    fn accept(self: Arc<Self>, listener: &UnixListener) {
        for stream in listener.incoming() {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let Ok(stream) = stream else { continue };
            let Ok(reader) = stream.try_clone() else { continue };
            if let Ok(kept) = stream.try_clone() {
                lock(&self.streams).push(kept);
            }
            let shared = self.clone();
            std::thread::spawn(move || shared.serve(BufReader::new(reader), stream));
        }
    }

    /// Answers each request line of one connection until it ends.
    fn serve(&self, mut reader: BufReader<UnixStream>, mut writer: UnixStream) {
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let mut reply = serde_json::to_vec(&self.answer(&line)).expect("a reply is JSON");
            reply.push(b'\n');
            line.clear();
            if writer.write_all(&reply).is_err() {
                return;
            }
        }
    }

    /// The reply to one request line.
    fn answer(&self, line: &[u8]) -> Value {
        let request = match serde_json::from_slice::<Value>(line) {
            Ok(request @ Value::Object(_)) => request,
            Ok(_) => return error_reply(&Value::Null, ("bad_request", "a request is a JSON object".into())),
            Err(e) => return error_reply(&Value::Null, ("bad_request", format!("not JSON: {e}"))),
        };
        let mut state = lock(&self.state);
        state.requests.push(request.clone());
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        match state.result(&request) {
            Ok(result) => json!({ "id": id, "ok": true, "result": result }),
            Err(refusal) => error_reply(&id, refusal),
        }
    }
}

fn error_reply(id: &Value, (code, message): Refusal) -> Value {
    json!({ "id": id, "ok": false, "error": { "code": code, "message": message } })
}

impl State {
    /// The result of `request`, or the error the real broker would give.
    fn result(&mut self, request: &Value) -> Result<Value, Refusal> {
        match request["op"].as_str().unwrap_or("") {
            "hello" => self.hello(request),
            "log" => self.log(request),
            "http" => self.http(request),
            "file_read" => {
                let path = path(request)?;
                self.decide("file_read", "file_read", "")?;
                let content =
                    self.files.get(path).ok_or_else(|| ("failed", format!("`{path}`: No such file or directory (os error 2)")))?;
                Ok(json!({ "content": content }))
            }
            "file_write" => {
                let (path, content) = (path(request)?, text(request, "content")?);
                self.decide("file_write", "file_system_write", "")?;
                let before = if request["append"] == true { self.files.get(path).cloned().unwrap_or_default() } else { String::new() };
                self.files.insert(path.to_string(), before + content);
                Ok(json!({ "written": content.len() }))
            }
            "env_get" => {
                let name = text(request, "name")?;
                self.decide("env_get", "env_access", "")?;
                Ok(json!({ "value": self.env.get(name) }))
            }
            "secret_get" => {
                let name = secret_name(text(request, "name")?)?;
                self.decide("secret_get", "secret_access", "")?;
                Ok(json!({ "value": self.secrets.get(&name) }))
            }
            "send_message" => self.send(request),
            "receive_message" => Ok(self.receive()),
            op => Err(("bad_request", format!("unknown op {op:?}: expected hello, log or one of {DENIABLE:?}"))),
        }
    }

    /// Refuses as `denied` when `deny` names `op`, in the real broker's words.
    fn decide(&self, op: &str, operation: &str, target: &str) -> Result<(), Refusal> {
        let Some(rule) = self.deny.get(op) else { return Ok(()) };
        let (by, reason) = if rule.is_empty() { (String::new(), "NotAllowed") } else { (format!(" by `{rule}`"), "Denied") };
        Err(("denied", format!("policy denies {operation}{target} for agent {}{by} ({reason})", self.agent)))
    }

    fn hello(&self, request: &Value) -> Result<Value, Refusal> {
        let theirs = request["protocol"].as_str().unwrap_or("");
        let major = |v: &str| v.split('.').next().unwrap_or("").to_string();
        if major(theirs) != major(PROTOCOL_VERSION) {
            let ours = major(PROTOCOL_VERSION);
            return Err((
                "version",
                format!("the broker speaks protocol {PROTOCOL_VERSION}; this SDK speaks {theirs}: use an SDK of major version {ours}"),
            ));
        }
        Ok(json!({ "protocol": PROTOCOL_VERSION, "agent": self.agent }))
    }

    fn log(&mut self, request: &Value) -> Result<Value, Refusal> {
        let level = match request.get("level") {
            None => "info",
            Some(level) => level
                .as_str()
                .filter(|l| (1..=16).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphabetic()))
                .ok_or_else(|| ("bad_request", format!("the log level {level} is refused: 1 to 16 letters")))?,
        };
        let message = text(request, "message")?;
        self.logs.push((level.to_ascii_lowercase(), message.to_string()));
        Ok(Value::Null)
    }

    fn http(&self, request: &Value) -> Result<Value, Refusal> {
        let url = text(request, "url")?;
        let Some((scheme, host)) = scheme_and_host(url) else {
            return Err(("bad_request", format!("the URL {url:?} is refused: only http and https URLs are accepted")));
        };
        self.decide("http", &format!("{scheme}_request"), "")?;
        let (status, body) = self
            .http
            .get(url)
            .ok_or_else(|| ("failed", format!("the host {host} does not resolve: the fake broker has no route for {url}")))?;
        Ok(json!({ "status": status, "body": body }))
    }

    fn send(&mut self, request: &Value) -> Result<Value, Refusal> {
        let to = text(request, "to")?;
        let payload = request.get("payload").ok_or(("bad_request", "the `send_message` request lacks its `payload`".to_string()))?;
        self.decide("send_message", "send_message", &format!(" to `{to}`"))?;
        self.sent.push((to.to_string(), payload.clone()));
        let delivered = self.next_seq(&self.agent.clone(), to);
        Ok(json!({ "delivered": delivered }))
    }

    fn receive(&mut self) -> Value {
        let Some((from, payload)) = self.inbox.pop_front() else { return Value::Null };
        let seq = self.next_seq(&from, &self.agent.clone());
        if self.deny.contains_key("receive_message") {
            return Value::Null; // the real broker consumes a message its policy refuses and answers nothing
        }
        json!({ "from": from, "seq": seq, "payload": payload })
    }

    fn next_seq(&mut self, sender: &str, recipient: &str) -> u64 {
        let seq = self.sequences.entry((sender.to_string(), recipient.to_string())).or_insert(0);
        *seq += 1;
        *seq
    }
}

/// The string field `field` of `request`; missing or another type is `bad_request`.
fn text<'a>(request: &'a Value, field: &str) -> Result<&'a str, Refusal> {
    request[field].as_str().ok_or_else(|| ("bad_request", format!("the `{}` request's `{field}` must be a string", request["op"])))
}

/// The request's path, refused unless in the broker's one accepted spelling.
fn path(request: &Value) -> Result<&str, Refusal> {
    let path = text(request, "path")?;
    let why = if path.is_empty() {
        "it is empty"
    } else if path.starts_with('/') {
        "it is absolute: paths are relative to the workspace"
    } else if path.contains('\0') {
        "it holds NUL"
    } else if path.len() > 4095 {
        "it is longer than 4095 bytes"
    } else if path.split('/').any(|name| matches!(name, "" | "." | "..")) {
        "it has an empty, `.` or `..` name (write names separated by single `/`)"
    } else if path.split('/').any(|name| name.len() > 255) {
        "a name is longer than 255 bytes"
    } else {
        return Ok(path);
    };
    Err(("bad_request", format!("the path {path:?} is refused: {why}")))
}

/// A secret's canonical name (ASCII letters lowercased), refused unless 1 to 128 of `a-z0-9_`.
fn secret_name(name: &str) -> Result<String, Refusal> {
    let canonical = name.to_ascii_lowercase();
    let good = (1..=128).contains(&canonical.len()) && canonical.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if good {
        Ok(canonical)
    } else {
        Err(("bad_request", format!("the secret name {name:?} is refused: it must be 1 to 128 of a-z, 0-9 and _")))
    }
}

/// An `http` or `https` URL's scheme (lower case) and host (lower case, without port or
/// credentials); `None` for anything else.
fn scheme_and_host(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    (!host.is_empty()).then(|| (scheme, host.to_ascii_lowercase()))
}
