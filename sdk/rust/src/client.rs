//! One connection to the broker, opened when first needed, with the `hello` handshake, and opened
//! again after the broker closed it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

/// The broker protocol version this crate speaks (`docs/broker-protocol.md`).
pub const PROTOCOL_VERSION: &str = "1.0";

/// Where the broker listens inside a sandbox when `SYMBIONT_BROKER` is not set.
pub const DEFAULT_BROKER: &str = "/run/symbiont/broker.sock";

/// The broker's bound on a request line (17 MiB): a longer one would be refused and its
/// connection closed, so it is refused here without being sent.
pub const MAX_LINE: usize = 17 << 20;

/// A client of one broker socket: the connection it opens on the first call, after saying
/// `hello`, is kept for the next calls and opened again if the broker closed it.
///
/// The functions at the crate's root use one client per process, at `$SYMBIONT_BROKER`; a
/// `Client` is for a program that wants its own (or a test's broker). Calls from several threads
/// take turns on the one connection.
///
/// ```no_run
/// let client = symbiont::Client::connect("/run/symbiont/broker.sock")?;
/// let text = client.read("notes.txt")?;
/// client.write("notes.txt", &format!("{text}\nseen"))?;
/// # Ok::<(), symbiont::Error>(())
/// ```
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    connection: Mutex<Option<Connection>>,
}

/// An HTTP response the broker relayed.
///
/// ```no_run
/// let response = symbiont::net::get("https://api.example.com/v1/items")?;
/// if response.is_success() {
///     let items = response.json()?;
///     println!("{}", items[0]["name"]);
/// }
/// # Ok::<(), symbiont::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The response body, as text.
    pub body: String,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text. It cannot fail; it returns a `Result` so that code written for
    /// `reqwest::blocking` (`get(url)?.text()?`) reads the same.
    ///
    /// ```no_run
    /// let text = symbiont::net::get("https://example.com")?.text()?;
    /// # Ok::<(), symbiont::Error>(())
    /// ```
    pub fn text(self) -> Result<String> {
        Ok(self.body)
    }

    /// The body parsed as JSON; a body that is not JSON is [`Error::Failed`].
    ///
    /// ```no_run
    /// let value = symbiont::net::get("https://api.example.com/v1/items")?.json()?;
    /// # Ok::<(), symbiont::Error>(())
    /// ```
    pub fn json(self) -> Result<Value> {
        serde_json::from_str(&self.body).map_err(|e| Error::Failed { message: format!("the response body is not JSON: {e}") })
    }
}

/// A message from another agent, as [`receive`](crate::receive) hands it over.
///
/// ```no_run
/// if let Some(message) = symbiont::receive(std::time::Duration::from_secs(5))? {
///     println!("{} (#{}) says {}", message.from, message.seq, message.payload);
/// }
/// # Ok::<(), symbiont::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The sending agent.
    pub from: String,
    /// The message's sequence number between its sender and this agent.
    pub seq: u64,
    /// What the sender sent.
    pub payload: Value,
}

#[derive(Debug)]
struct Connection {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
    agent: String,
}

impl Client {
    /// A client of the broker at `path`; nothing is opened until the first call.
    ///
    /// ```no_run
    /// let client = symbiont::Client::new("/run/symbiont/broker.sock");
    /// # let _ = client;
    /// ```
    pub fn new(path: impl Into<PathBuf>) -> Client {
        Client { path: path.into(), connection: Mutex::new(None) }
    }

    /// A client of the broker at `$SYMBIONT_BROKER` (or [`DEFAULT_BROKER`]); nothing is opened yet.
    ///
    /// ```no_run
    /// let client = symbiont::Client::from_env();
    /// # let _ = client;
    /// ```
    pub fn from_env() -> Client {
        Client::new(std::env::var_os("SYMBIONT_BROKER").map(PathBuf::from).unwrap_or_else(|| DEFAULT_BROKER.into()))
    }

    /// A client of the broker at `path`, connected and past the handshake: a missing broker or
    /// another protocol version fails here rather than at the first call.
    ///
    /// ```no_run
    /// let client = symbiont::Client::connect("/run/symbiont/broker.sock")?;
    /// println!("running as {}", client.agent()?);
    /// # Ok::<(), symbiont::Error>(())
    /// ```
    pub fn connect(path: impl Into<PathBuf>) -> Result<Client> {
        let client = Client::new(path);
        client.agent()?;
        Ok(client)
    }

    /// The socket this client speaks to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The agent's name, as the broker said it in the handshake (connecting if needed).
    ///
    /// ```no_run
    /// println!("{}", symbiont::Client::from_env().agent()?);
    /// # Ok::<(), symbiont::Error>(())
    /// ```
    pub fn agent(&self) -> Result<String> {
        self.with_connection(|c| Ok(c.agent.clone()))
    }

    /// One request of the protocol, by its `op` and fields, answering the reply's `result`: for
    /// an operation this crate has no function for. The `id` is the client's.
    ///
    /// ```no_run
    /// let client = symbiont::Client::from_env();
    /// let reply = client.call("env_get", serde_json::json!({"name": "REGION"}))?;
    /// # Ok::<(), symbiont::Error>(())
    /// ```
    pub fn call(&self, op: &str, fields: Value) -> Result<Value> {
        let fields = match fields {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => return Err(Error::BadRequest { message: format!("a request's fields are a JSON object, not {other}") }),
        };
        self.with_connection(|c| c.call(op, fields))
    }

    /// An HTTP request: `method` (`GET`, `POST`, …), `url`, headers as name-value pairs and an
    /// optional body. The broker decides it (`http_request` or `https_request`) and relays it.
    ///
    /// ```no_run
    /// let client = symbiont::Client::from_env();
    /// let r = client.request("PATCH", "https://api.example.com/v1/items/7", &[("content-type", "application/json")], Some("{\"done\":true}"))?;
    /// # Ok::<(), symbiont::Error>(())
    /// ```
    pub fn request(&self, method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Result<Response> {
        let headers: Map<String, Value> = headers.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        let mut fields = json!({ "method": method, "url": url, "headers": headers });
        if let Some(body) = body {
            fields["body"] = json!(body);
        }
        let result = self.call("http", fields)?;
        let status = result["status"].as_u64().and_then(|s| u16::try_from(s).ok());
        match (status, result["body"].as_str()) {
            (Some(status), Some(body)) => Ok(Response { status, body: body.to_string() }),
            _ => Err(malformed("http", &result)),
        }
    }

    /// An HTTP GET (see [`Client::request`]).
    pub fn get(&self, url: &str) -> Result<Response> {
        self.request("GET", url, &[], None)
    }

    /// An HTTP POST of `body` (see [`Client::request`]).
    pub fn post(&self, url: &str, body: &str) -> Result<Response> {
        self.request("POST", url, &[], Some(body))
    }

    /// An HTTP PUT of `body` (see [`Client::request`]).
    pub fn put(&self, url: &str, body: &str) -> Result<Response> {
        self.request("PUT", url, &[], Some(body))
    }

    /// An HTTP DELETE (see [`Client::request`]).
    pub fn delete(&self, url: &str) -> Result<Response> {
        self.request("DELETE", url, &[], None)
    }

    /// A file of the agent's workspace, as text (`file_read`).
    pub fn read(&self, path: &str) -> Result<String> {
        let result = self.call("file_read", json!({ "path": path }))?;
        result["content"].as_str().map(str::to_string).ok_or_else(|| malformed("file_read", &result))
    }

    /// Replaces a file of the agent's workspace (`file_write`), answering the bytes written.
    pub fn write(&self, path: &str, content: &str) -> Result<usize> {
        self.file_write(path, content, false)
    }

    /// Appends to a file of the agent's workspace (`file_write` with `append`), answering the bytes written.
    pub fn append(&self, path: &str, content: &str) -> Result<usize> {
        self.file_write(path, content, true)
    }

    fn file_write(&self, path: &str, content: &str, append: bool) -> Result<usize> {
        let result = self.call("file_write", json!({ "path": path, "content": content, "append": append }))?;
        result["written"].as_u64().and_then(|n| usize::try_from(n).ok()).ok_or_else(|| malformed("file_write", &result))
    }

    /// A variable the run declares (`env_get`); `None` for any other name.
    pub fn env(&self, name: &str) -> Result<Option<String>> {
        self.value("env_get", name)
    }

    /// A secret (`secret_get`); `None` when the host has none of that name.
    pub fn secret(&self, name: &str) -> Result<Option<String>> {
        self.value("secret_get", name)
    }

    fn value(&self, op: &str, name: &str) -> Result<Option<String>> {
        let result = self.call(op, json!({ "name": name }))?;
        match &result["value"] {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            _ => Err(malformed(op, &result)),
        }
    }

    /// A line of the agent's own output, at `level` (`info`, `warn`, `error`, …; 1 to 16 letters).
    pub fn log(&self, level: &str, message: &str) -> Result<()> {
        self.call("log", json!({ "level": level, "message": message })).map(drop)
    }

    /// Sends `payload` to the agent `to` (`send_message`), answering the message's sequence number.
    pub fn send(&self, to: &str, payload: &Value) -> Result<u64> {
        let result = self.call("send_message", json!({ "to": to, "payload": payload }))?;
        result["delivered"].as_u64().ok_or_else(|| malformed("send_message", &result))
    }

    /// The next message for this agent (`receive_message`), waiting at most `timeout` (the
    /// broker takes at most 30 s); `None` when none came in time.
    pub fn receive(&self, timeout: Duration) -> Result<Option<Message>> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let result = self.call("receive_message", json!({ "timeout_ms": timeout_ms }))?;
        if result.is_null() {
            return Ok(None);
        }
        match (result["from"].as_str(), result["seq"].as_u64()) {
            (Some(from), Some(seq)) => Ok(Some(Message { from: from.into(), seq, payload: result["payload"].clone() })),
            _ => Err(malformed("receive_message", &result)),
        }
    }

    /// Runs `f` on the connection, opening it first if there is none. A connection that failed
    /// (closed, or an error about the connection itself, `"id": null`) is dropped, so the next
    /// call opens a new one; the failed call is not retried (the broker may have acted on it).
    fn with_connection<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, Failure>) -> Result<T> {
        let mut guard = self.connection.lock().unwrap_or_else(|poisoned| {
            // A call panicked mid-exchange: its connection may be mid-line, so start afresh.
            self.connection.clear_poison();
            let mut guard = poisoned.into_inner();
            *guard = None;
            guard
        });
        if guard.is_none() {
            *guard = Some(Connection::open(&self.path).map_err(Failure::into_error)?);
        }
        let connection = guard.as_mut().expect("opened above");
        f(connection).map_err(|failure| {
            if failure.closes {
                *guard = None;
            }
            failure.error
        })
    }
}

/// An error and whether the connection it came on is done with.
struct Failure {
    error: Error,
    closes: bool,
}

impl Failure {
    fn closing(error: Error) -> Failure {
        Failure { error, closes: true }
    }

    fn into_error(self) -> Error {
        self.error
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure { error, closes: false }
    }
}

impl Connection {
    /// Connects and says `hello`; another major version of the protocol fails at once.
    fn open(path: &Path) -> Result<Connection, Failure> {
        let writer = UnixStream::connect(path)
            .map_err(|e| Failure::closing(Error::transport(format!("cannot reach the broker at {}: {e}", path.display()))))?;
        let reader = BufReader::new(
            writer.try_clone().map_err(|e| Failure::closing(Error::transport(format!("cannot use the broker's socket: {e}"))))?,
        );
        let mut connection = Connection { writer, reader, next_id: 0, agent: String::new() };
        let sdk = format!("rust {}", env!("CARGO_PKG_VERSION"));
        let hello = connection.call("hello", json!({ "protocol": PROTOCOL_VERSION, "sdk": sdk }).as_object().cloned().unwrap_or_default());
        let result = hello.map_err(|f| Failure::closing(f.error))?;
        let broker = result["protocol"].as_str().unwrap_or("(not said)");
        if major(broker) != major(PROTOCOL_VERSION) {
            return Err(Failure::closing(Error::VersionMismatch { broker: broker.into(), sdk: PROTOCOL_VERSION.into() }));
        }
        connection.agent = result["agent"].as_str().unwrap_or_default().to_string();
        Ok(connection)
    }

    /// Sends one request and reads its reply to the end.
    fn call(&mut self, op: &str, mut fields: Map<String, Value>) -> Result<Value, Failure> {
        let id = self.next_id;
        self.next_id += 1;
        fields.insert("id".into(), json!(id));
        fields.insert("op".into(), json!(op));
        let mut line =
            serde_json::to_vec(&fields).map_err(|e| Error::BadRequest { message: format!("the request cannot be written: {e}") })?;
        line.push(b'\n');
        if line.len() > MAX_LINE {
            let message = format!("the `{op}` request is {} bytes, over the broker's line of {MAX_LINE}: nothing was sent", line.len());
            return Err(Error::BadRequest { message }.into());
        }
        // A broker that closed the connection may have said why first: read on even if writing failed.
        let written = self.writer.write_all(&line).and_then(|()| self.writer.flush());
        let reply = self.read_reply().map_err(|e| match (&written, e) {
            (Err(w), Error::Transport { message }) => Error::transport(format!("{message} (sending failed: {w})")),
            (_, e) => e,
        });
        let reply = reply.map_err(Failure::closing)?;
        self.answer(id, reply)
    }

    /// One whole reply line, as JSON; a connection that ends before its `\n` is a transport error.
    fn read_reply(&mut self) -> Result<Map<String, Value>> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).map_err(|e| Error::transport(format!("reading the broker's reply failed: {e}")))?;
        if line.is_empty() {
            return Err(Error::transport("the broker closed the connection without replying"));
        }
        if line.last() != Some(&b'\n') {
            return Err(Error::transport(format!("the broker closed the connection mid-reply, after {} bytes", line.len())));
        }
        match serde_json::from_slice(&line) {
            Ok(Value::Object(reply)) => Ok(reply),
            Ok(_) => Err(Error::transport("the broker's reply is not a JSON object")),
            Err(e) => Err(Error::transport(format!("the broker's reply is not JSON: {e}"))),
        }
    }

    /// The result of a reply to request `id`, or its error.
    fn answer(&self, id: u64, reply: Map<String, Value>) -> Result<Value, Failure> {
        let about_connection = reply.get("id").is_none_or(Value::is_null);
        if !about_connection && reply.get("id") != Some(&json!(id)) {
            return Err(Failure::closing(Error::transport(format!("the broker answered another request than {id}"))));
        }
        if reply.get("ok") == Some(&Value::Bool(true)) {
            return Ok(reply.get("result").cloned().unwrap_or(Value::Null));
        }
        let error = reply.get("error").cloned().unwrap_or(Value::Null);
        let (Some(code), message) = (error["code"].as_str(), error["message"].as_str().unwrap_or("")) else {
            return Err(Failure::closing(Error::transport("the broker's reply is neither a result nor an error")));
        };
        // An error with no id is about the connection itself: the broker closes it after this line.
        Err(Failure { error: Error::from_reply(code, message, PROTOCOL_VERSION), closes: about_connection })
    }
}

/// The major of a version "MAJOR.MINOR".
fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

fn malformed(op: &str, result: &Value) -> Error {
    let mut shown = result.to_string();
    if shown.len() > 200 {
        let mut end = 200;
        while !shown.is_char_boundary(end) {
            end -= 1;
        }
        shown.truncate(end);
    }
    Error::transport(format!("the broker's `{op}` result is not what the protocol says: {shown}"))
}
