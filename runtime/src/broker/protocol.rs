//! The broker's wire format: one JSON object per line each way (`docs/broker-protocol.md`).

use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::target::{self, Target};

// Bounds on what a request may carry into the audit log, a guard or the host's output (a field
// over its bound refuses the request as `bad_request`, audited with the field cut short).
/// An HTTP request's URL, as given and in canonical form.
pub const MAX_URL: usize = 8 << 10;
/// A file path.
pub const MAX_PATH: usize = 4 << 10;
/// A name: of a variable or secret, a header, a message's recipient, an agent claimed.
pub const MAX_NAME: usize = 256;
/// Headers of one HTTP request.
pub const MAX_HEADERS: usize = 64;
/// An HTTP method: letters, as `GET`.
pub const MAX_METHOD: usize = 16;
/// A log level: letters, as `info` (kept in lowercase).
pub const MAX_LEVEL: usize = 16;
/// The bytes of a log message the audit entry keeps (the rest is cut, its length noted).
pub const AUDIT_MESSAGE_BYTES: usize = 1024;
/// The bytes of a log message written to the host's output.
pub const OUTPUT_MESSAGE_BYTES: usize = 4096;
/// The bytes of each field kept in the audit entry of a refused request.
const REFUSED_FIELD_BYTES: usize = 256;

const OPS: [&str; 9] = ["hello", "http", "file_read", "file_write", "env_get", "secret_get", "log", "send_message", "receive_message"];

/// The protocol's version (`docs/broker-protocol.md`). An SDK says which it speaks in `hello`; a
/// different major version is refused (`version`), so an SDK never half-works against a broker
/// that means something else by the same words. The broker protocol doc and the SDKs change
/// together with it.
pub const PROTOCOL_VERSION: &str = "1.0";

/// Error codes in replies; stable, documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is not valid JSON or lacks a field.
    BadRequest,
    /// The policy denied it (the denial is in the audit log).
    Denied,
    /// The connection or the request claims to be another agent.
    Unidentified,
    /// The audit log could not record the request, so nothing was done.
    AuditFailed,
    /// Allowed, but acting failed (network error, no such file).
    Failed,
    /// A per-agent bound is reached: connections at once, buffered bytes, the run's log budget.
    Limited,
    /// `hello` named a protocol version whose major differs from [`PROTOCOL_VERSION`].
    Version,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Denied => "denied",
            ErrorCode::Unidentified => "unidentified",
            ErrorCode::AuditFailed => "audit_failed",
            ErrorCode::Failed => "failed",
            ErrorCode::Limited => "limited",
            ErrorCode::Version => "version",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// The SDK's handshake: the protocol version it speaks and who it is (`python 0.1.0`).
    Hello {
        protocol: String,
        sdk: String,
    },
    // `address`: where the broker will connect. It resolves `target.host` before the policy
    // decides, so that guards read the address connected to.
    Http {
        method: String,
        target: Target,
        headers: Vec<(String, String)>,
        body: Option<String>,
        address: Option<IpAddr>,
    },
    FileRead {
        path: String,
    },
    FileWrite {
        path: String,
        content: String,
        append: bool,
    },
    EnvGet {
        name: String,
    },
    SecretGet {
        name: String,
    },
    Log {
        level: String,
        message: String,
    },
    SendMessage {
        to: String,
        payload: Value,
    },
    ReceiveMessage {
        timeout_ms: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: Value,
    pub op: Op,
    /// An `agent` field, if the request has one: never trusted, only compared.
    pub claimed_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestError {
    pub id: Value,
    pub message: String,
    /// For a request of a known `op`: what the audit entry of its refusal keeps, every field cut
    /// short. `None` for what is not a request at all (not JSON, no or an unknown `op`).
    pub view: Option<Value>,
}

impl RequestError {
    fn plain(id: Value, message: String) -> Self {
        RequestError { id, message, view: None }
    }
}

pub fn parse(line: &[u8]) -> Result<Request, RequestError> {
    let value: Value = serde_json::from_slice(line).map_err(|e| RequestError::plain(Value::Null, format!("not a JSON object: {e}")))?;
    let Value::Object(map) = value else { return Err(RequestError::plain(Value::Null, "a request is a JSON object".into())) };
    let id = map.get("id").cloned().unwrap_or(Value::Null);
    let name = match map.get("op") {
        Some(Value::String(name)) => name.as_str(),
        Some(_) => return Err(RequestError::plain(id, "`op` must be a string".into())),
        None => return Err(RequestError::plain(id, "the request has no `op`".into())),
    };
    if !OPS.contains(&name) {
        let message = format!("unknown op `{}`: expected {}", excerpt(name, REFUSED_FIELD_BYTES), OPS.join(", "));
        return Err(RequestError::plain(id, message));
    }
    match within_bounds(&map).and_then(|()| op(name, &map)) {
        Ok(op) => {
            let claimed_agent = map.get("agent").map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_string));
            Ok(Request { id, op, claimed_agent })
        }
        Err(message) => Err(RequestError { id, message, view: Some(refused_view(&map)) }),
    }
}

fn op(name: &str, map: &Map<String, Value>) -> Result<Op, String> {
    let string = |key: &str| -> Result<String, String> {
        match map.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("`{key}` must be a string")),
            None => Err(format!("the request has no `{key}`")),
        }
    };
    let word = |key: &str, default: &str, max: usize| -> Result<String, String> {
        let word = match map.get(key) {
            None | Some(Value::Null) => default.to_string(),
            Some(_) => string(key)?,
        };
        match word.bytes().all(|b| b.is_ascii_alphabetic()) && (1..=max).contains(&word.len()) {
            true => Ok(word),
            false => Err(format!("`{key}` must be 1 to {max} letters, as {default}")),
        }
    };
    Ok(match name {
        "hello" => Op::Hello { protocol: string("protocol")?, sdk: map.get("sdk").and_then(Value::as_str).unwrap_or("").to_string() },
        "http" => {
            let method = word("method", "GET", MAX_METHOD)?.to_ascii_uppercase();
            let target = target::canonical(&string("url")?)?;
            if target.url.len() > MAX_URL {
                return Err(format!("the URL in canonical form is longer than {MAX_URL} bytes"));
            }
            let body = map.get("body").and_then(Value::as_str).map(str::to_string);
            Op::Http { method, target, headers: headers(map)?, body, address: None }
        }
        "file_read" => Op::FileRead { path: string("path")? },
        "file_write" => Op::FileWrite {
            path: string("path")?,
            content: string("content")?,
            append: map.get("append").and_then(Value::as_bool).unwrap_or(false),
        },
        "env_get" => Op::EnvGet { name: string("name")? },
        // Canonical before anything decides on it: guards and the lookup see one name.
        "secret_get" => Op::SecretGet { name: symbiont_policy::names::secret_name(&string("name")?)? },
        "log" => Op::Log { level: word("level", "info", MAX_LEVEL)?.to_ascii_lowercase(), message: string("message")? },
        "send_message" => Op::SendMessage { to: string("to")?, payload: map.get("payload").cloned().unwrap_or(Value::Null) },
        _ => Op::ReceiveMessage { timeout_ms: map.get("timeout_ms").and_then(Value::as_u64).unwrap_or(0) },
    })
}

fn headers(map: &Map<String, Value>) -> Result<Vec<(String, String)>, String> {
    let headers = match map.get("headers") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(headers)) => headers,
        Some(_) => return Err("`headers` must be an object of strings".into()),
    };
    let mut list = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("host") {
            // A request goes where its guards saw it go: the URL names the host, not a header.
            return Err("a request may not set its Host header: the URL's host is sent".into());
        }
        let value = value.as_str().ok_or_else(|| format!("header `{name}` must be a string"))?;
        list.push((name.clone(), value.to_string()));
    }
    Ok(list)
}

/// Refuses a request any of whose fields is longer than its bound.
fn within_bounds(map: &Map<String, Value>) -> Result<(), String> {
    let long = |key: &str, len: usize, max: usize| match len > max {
        true => Err(format!("`{key}` is longer than {max} bytes ({len} bytes)")),
        false => Ok(()),
    };
    let bounds = [("url", MAX_URL), ("path", MAX_PATH), ("name", MAX_NAME), ("to", MAX_NAME), ("method", MAX_METHOD), ("level", MAX_LEVEL)];
    for (key, max) in bounds {
        if let Some(Value::String(s)) = map.get(key) {
            long(key, s.len(), max)?;
        }
    }
    if let Some(agent) = map.get("agent") {
        long("agent", agent.as_str().map_or_else(|| agent.to_string().len(), str::len), MAX_NAME)?;
    }
    if let Some(Value::Object(headers)) = map.get("headers") {
        if headers.len() > MAX_HEADERS {
            return Err(format!("a request has at most {MAX_HEADERS} headers ({})", headers.len()));
        }
        for name in headers.keys() {
            long("a header name", name.len(), MAX_NAME)?;
        }
    }
    Ok(())
}

/// What the audit entry of a refused request keeps: its parameters cut to
/// [`REFUSED_FIELD_BYTES`] (the message to [`AUDIT_MESSAGE_BYTES`], a URL's userinfo redacted);
/// of contents, bodies and header values nothing but lengths.
fn refused_view(map: &Map<String, Value>) -> Value {
    let cut = |value: &Value, max: usize| match value {
        Value::String(s) => json!(excerpt(s, max)),
        Value::Array(_) => json!("(an array)"),
        Value::Object(_) => json!("(an object)"),
        scalar => scalar.clone(),
    };
    let mut view = Map::new();
    for key in ["op", "method", "path", "name", "to", "agent", "level", "append", "timeout_ms"] {
        if let Some(value) = map.get(key) {
            view.insert(key.to_string(), cut(value, REFUSED_FIELD_BYTES));
        }
    }
    if let Some(url) = map.get("url") {
        view.insert("url".into(), url.as_str().map_or_else(|| cut(url, 0), |url| cut(&json!(url_for_audit(url)), REFUSED_FIELD_BYTES)));
    }
    if let Some(message) = map.get("message") {
        view.insert("message".into(), cut(message, AUDIT_MESSAGE_BYTES));
    }
    if let Some(Value::Object(headers)) = map.get("headers") {
        let names: Vec<String> = headers.keys().take(MAX_HEADERS).map(|k| excerpt(k, REFUSED_FIELD_BYTES)).collect();
        view.insert("header_names".into(), json!(names));
    }
    for (key, length) in [("content", "content_bytes"), ("body", "body_bytes")] {
        if let Some(Value::String(s)) = map.get(key) {
            view.insert(length.into(), json!(s.len()));
        }
    }
    Value::Object(view)
}

/// `text` cut to at most `max` bytes (at a character boundary), saying how long it was.
pub fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let end = (0..=max).rev().find(|&at| text.is_char_boundary(at)).unwrap_or(0);
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// The URL as the audit log keeps it: its userinfo (`user:password@`, a credential field) is
/// replaced by `[REDACTED]`; the rest (host, path, query) is the request the policy decided on.
fn url_for_audit(url: &str) -> std::borrow::Cow<'_, str> {
    let Some(at) = url.find("://").map(|i| i + 3) else { return url.into() };
    let authority = url[at..].find(['/', '?', '#']).map_or(&url[at..], |end| &url[at..at + end]);
    match authority.rfind('@') {
        Some(userinfo) => format!("{}[REDACTED]{}", &url[..at], &url[at + userinfo..]).into(),
        None => url.into(),
    }
}

impl Request {
    /// Messages are decided and audited by the bus, on both sides.
    pub fn is_message(&self) -> bool {
        matches!(self.op, Op::SendMessage { .. } | Op::ReceiveMessage { .. })
    }

    /// The catalogue operation the request performs and the arguments its guards read; `None`
    /// for `log`, which needs no permission.
    pub fn operation(&self) -> Option<(&'static str, Value)> {
        Some(match &self.op {
            Op::Http { method, target, address, .. } => {
                let op = if target.scheme == "https" { "https_request" } else { "http_request" };
                let scope = address.map(target::scope);
                let args = json!({
                    "url": target.url, "method": method, "scheme": target.scheme, "host": target.host, "port": target.port,
                    "path": target.path, "address": address.map(|a| a.to_string()),
                    "loopback": scope.map(|s| s.loopback), "private": scope.map(|s| s.private),
                });
                (op, args)
            }
            // A path reaches a guard only in its one accepted spelling, checked before the
            // decision (`files::parse`), so the `path` read here is the file opened.
            Op::FileRead { path } => ("file_read", json!({ "path": path })),
            Op::FileWrite { path, append, .. } => ("file_system_write", json!({ "path": path, "append": append })),
            Op::EnvGet { name } => ("env_access", json!({ "name": name })),
            Op::SecretGet { name } => ("secret_access", json!({ "name": name })),
            Op::SendMessage { to, .. } => ("send_message", json!({ "to": to, "recipient": to })),
            Op::ReceiveMessage { .. } => ("receive_message", json!({})),
            Op::Log { .. } | Op::Hello { .. } => return None,
        })
    }

    /// What the audit entry keeps of the request: parameters, never contents or secret values
    /// (a file's content and an HTTP body are kept as their length).
    pub fn audit_view(&self) -> Value {
        let mut view = Map::new();
        let mut put = |k: &str, v: Value| {
            view.insert(k.to_string(), v);
        };
        match &self.op {
            Op::Http { method, target, headers, body, address } => {
                put("op", json!("http"));
                put("method", json!(method));
                put("url", json!(url_for_audit(&target.url)));
                put("host", json!(target.host));
                put("address", json!(address.map(|a| a.to_string())));
                put("header_names", json!(headers.iter().map(|(k, _)| k).collect::<Vec<_>>()));
                put("body_bytes", json!(body.as_ref().map_or(0, String::len)));
            }
            Op::FileRead { path } => {
                put("op", json!("file_read"));
                put("path", json!(path));
            }
            Op::FileWrite { path, content, append } => {
                put("op", json!("file_write"));
                put("path", json!(path));
                put("append", json!(append));
                put("content_bytes", json!(content.len()));
            }
            Op::EnvGet { name } => {
                put("op", json!("env_get"));
                put("name", json!(name));
            }
            Op::SecretGet { name } => {
                put("op", json!("secret_get"));
                put("name", json!(name));
            }
            Op::Log { level, message } => {
                put("op", json!("log"));
                put("level", json!(level));
                put("message", json!(excerpt(message, AUDIT_MESSAGE_BYTES)));
            }
            Op::SendMessage { to, payload } => {
                put("op", json!("send_message"));
                put("to", json!(to));
                put("payload_bytes", json!(payload.to_string().len()));
            }
            Op::ReceiveMessage { timeout_ms } => {
                put("op", json!("receive_message"));
                put("timeout_ms", json!(timeout_ms));
            }
            Op::Hello { protocol, sdk } => {
                put("op", json!("hello"));
                put("protocol", json!(protocol));
                put("sdk", json!(sdk));
            }
        }
        Value::Object(view)
    }
}

fn line(value: Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(&value).expect("JSON values serialize");
    bytes.push(b'\n');
    bytes
}

/// The reply to `hello`: the broker's version, or `version` when the majors differ.
pub fn hello_line(id: &Value, sdk_protocol: &str, agent: &str) -> Vec<u8> {
    let major = |v: &str| v.split('.').next().unwrap_or("").to_string();
    if major(sdk_protocol) != major(PROTOCOL_VERSION) {
        let message = format!(
            "the broker speaks protocol {PROTOCOL_VERSION}; this SDK speaks {}: use an SDK of major version {}",
            excerpt(sdk_protocol, 32),
            major(PROTOCOL_VERSION)
        );
        return error_line(id, ErrorCode::Version, &message);
    }
    ok_line(id, json!({ "protocol": PROTOCOL_VERSION, "agent": agent }))
}

pub fn ok_line(id: &Value, result: Value) -> Vec<u8> {
    line(json!({ "id": id, "ok": true, "result": result }))
}

pub fn error_line(id: &Value, code: ErrorCode, message: &str) -> Vec<u8> {
    line(json!({ "id": id, "ok": false, "error": { "code": code.as_str(), "message": message } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_or_say_what_is_wrong() {
        let r = parse(br#"{"id":1,"op":"http","url":"https://api.example.com:8443/v1?q=1","method":"post"}"#).unwrap();
        let (op, args) = r.operation().unwrap();
        assert_eq!(op, "https_request");
        assert_eq!(args["host"], "api.example.com");
        assert_eq!(args["port"], 8443);
        assert_eq!(args["method"], "POST");
        assert_eq!(args["path"], "/v1?q=1");
        assert_eq!(parse(b"{\"op\":\"file_read\"}").unwrap_err().message, "the request has no `path`");
        assert!(parse(b"[1]").unwrap_err().message.contains("JSON object"));
        assert!(parse(b"{\"id\":7,\"op\":\"rm\"}").unwrap_err().message.starts_with("unknown op `rm`"));
        assert_eq!(parse(b"{\"id\":7,\"op\":\"rm\"}").unwrap_err().id, json!(7));
        let claimed = parse(br#"{"op":"env_get","name":"HOME","agent":"other"}"#).unwrap();
        assert_eq!(claimed.claimed_agent.as_deref(), Some("other"));
    }

    #[test]
    fn hello_answers_the_version_or_refuses_another_major() {
        let hello = parse(br#"{"id":0,"op":"hello","protocol":"1.3","sdk":"python 0.1.0"}"#).unwrap();
        assert_eq!(hello.op, Op::Hello { protocol: "1.3".into(), sdk: "python 0.1.0".into() });
        assert!(hello.operation().is_none(), "hello is no operation: nothing to decide");
        let ok: Value = serde_json::from_slice(&hello_line(&json!(0), "1.3", "worker")).unwrap();
        assert_eq!(ok["result"], json!({ "protocol": PROTOCOL_VERSION, "agent": "worker" }));
        let refused: Value = serde_json::from_slice(&hello_line(&json!(0), "2.0", "worker")).unwrap();
        assert_eq!(refused["error"]["code"], "version");
        let message = refused["error"]["message"].as_str().unwrap();
        assert!(message.contains("protocol 1.0") && message.contains("speaks 2.0"), "{message}");
        assert!(parse(br#"{"id":0,"op":"hello"}"#).unwrap_err().message.contains("`protocol`"));
    }

    #[test]
    fn audit_views_keep_no_contents() {
        let r = parse(br#"{"op":"file_write","path":"a.txt","content":"s3cret contents"}"#).unwrap();
        let view = r.audit_view().to_string();
        assert!(!view.contains("s3cret"), "{view}");
        assert!(view.contains("\"content_bytes\":15"), "{view}");
    }

    #[test]
    fn audited_urls_keep_no_userinfo() {
        let r = parse(br#"{"op":"http","url":"https://alice:hunter2@api.example.com/v1?q=a@b","headers":{"Authorization":"Bearer tok"}}"#)
            .unwrap();
        let view = r.audit_view();
        assert_eq!(view["url"], "https://[REDACTED]@api.example.com/v1?q=a@b");
        assert_eq!(view["header_names"], json!(["Authorization"]), "header names, never their values");
        assert!(!view.to_string().contains("hunter2") && !view.to_string().contains("tok\""), "{view}");
        assert_eq!(url_for_audit("https://ghp_token@github.com"), "https://[REDACTED]@github.com");
        assert_eq!(url_for_audit("http://host/a@b"), "http://host/a@b", "an @ in the path is no userinfo");
        assert_eq!(url_for_audit("not a url"), "not a url");
    }

    #[test]
    fn secret_names_are_canonical_before_the_decision() {
        for spelling in ["DB_PASSWORD", "Db_Password", "db_password"] {
            let line = format!(r#"{{"op":"secret_get","name":"{spelling}"}}"#);
            let r = parse(line.as_bytes()).unwrap();
            assert_eq!(r.operation().unwrap().1["name"], "db_password", "{spelling}");
            assert_eq!(r.audit_view()["name"], "db_password");
        }
        for bad in ["db-password", "", "../db", "db\\u0000"] {
            let line = format!(r#"{{"id":3,"op":"secret_get","name":"{bad}"}}"#);
            let err = parse(line.as_bytes()).unwrap_err();
            assert!(err.message.contains("a secret's name"), "{bad}: {}", err.message);
            assert_eq!(err.id, json!(3));
        }
        // Environment names are looked up as they are: only declared ones have a value.
        let r = parse(br#"{"op":"env_get","name":"Home"}"#).unwrap();
        assert_eq!(r.operation().unwrap().1["name"], "Home");
    }

    #[test]
    fn http_arguments_are_canonical_and_name_the_address() {
        let mut r = parse(br#"{"op":"http","url":"http://[::1]:8080/x"}"#).unwrap();
        assert_eq!(r.operation().unwrap().1["host"], "::1");
        assert_eq!(r.operation().unwrap().1["address"], Value::Null, "not resolved yet");
        let Op::Http { address, .. } = &mut r.op else { unreachable!() };
        *address = Some("::1".parse().unwrap());
        let (op, args) = r.operation().unwrap();
        assert_eq!(op, "http_request");
        assert_eq!(
            (&args["address"], &args["loopback"], &args["private"], &args["port"]),
            (&json!("::1"), &json!(true), &json!(true), &json!(8080))
        );
        let view = r.audit_view();
        assert_eq!((&view["url"], &view["host"], &view["address"]), (&json!("http://[::1]:8080/x"), &json!("::1"), &json!("::1")));
        let r = parse(br#"{"op":"http","url":"HTTP://0x7F000001./a/../b#f"}"#).unwrap();
        let (_, args) = r.operation().unwrap();
        assert_eq!((&args["url"], &args["host"], &args["path"]), (&json!("http://127.0.0.1/b"), &json!("127.0.0.1"), &json!("/b")));
        for bad in [
            r#"{"op":"http","url":"nonsense"}"#,
            r#"{"op":"http","url":"ftp://a.example/"}"#,
            r#"{"op":"http","url":"http://a.example","headers":{"HOST":"b.example"}}"#,
            r#"{"op":"http","url":"http://a.example","method":"GET /evil"}"#,
        ] {
            let e = parse(bad.as_bytes()).unwrap_err();
            assert!(e.view.is_some(), "a refused request of a known op is audited: {bad}");
        }
        let e = parse(br#"{"op":"http","url":"nonsense://alice:hunter2@x"}"#).unwrap_err();
        assert!(!e.view.unwrap().to_string().contains("hunter2"), "a refused URL's userinfo is redacted too");
    }

    #[test]
    fn fields_over_their_bounds_are_refused_and_audited_cut_short() {
        let huge = "x".repeat(1 << 20);
        for (field, op) in
            [("url", "http"), ("level", "log"), ("name", "secret_get"), ("path", "file_read"), ("to", "send_message"), ("agent", "env_get")]
        {
            let value = if field == "url" { format!("http://a.example/{huge}") } else { huge.clone() };
            let request =
                json!({ "id": 3, "op": op, "url": "http://a.example", "message": "m", "name": "n", "path": "p", "to": "t", field: value });
            let e = parse(request.to_string().as_bytes()).unwrap_err();
            assert!(e.message.contains(&format!("`{field}` is longer than")), "{field}: {}", e.message);
            let view = e.view.expect("audited").to_string();
            assert!(view.len() < 2048 && view.contains("(10485"), "{field}: {view}");
        }
        let headers: Map<String, Value> = (0..=MAX_HEADERS).map(|i| (format!("x-{i}"), json!("v"))).collect();
        let request = json!({ "op": "http", "url": "http://a.example", "headers": headers });
        assert!(parse(request.to_string().as_bytes()).unwrap_err().message.contains("at most 64 headers"));
        // A level is letters; a message is kept whole, and cut only in the audit entry.
        assert!(parse(br#"{"op":"log","message":"m","level":"in fo"}"#).unwrap_err().message.contains("letters"));
        let r = parse(format!(r#"{{"op":"log","message":"{huge}","level":"WARN"}}"#).as_bytes()).unwrap();
        assert_eq!(r.op, Op::Log { level: "warn".into(), message: huge.clone() });
        assert_eq!(r.audit_view()["message"], json!(format!("{}… (1048576 bytes)", &huge[..AUDIT_MESSAGE_BYTES])));
        // An unknown op is not echoed whole.
        let e = parse(format!(r#"{{"op":"{huge}"}}"#).as_bytes()).unwrap_err();
        assert!(e.message.len() < 1024 && e.view.is_none(), "{}", e.message.len());
        assert_eq!(excerpt("é", 1), "… (2 bytes)");
    }
}
