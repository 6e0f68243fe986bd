//! The broker's wire format: one JSON object per line each way (`docs/broker-protocol.md`).

use serde_json::{json, Map, Value};

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
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Denied => "denied",
            ErrorCode::Unidentified => "unidentified",
            ErrorCode::AuditFailed => "audit_failed",
            ErrorCode::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Http { method: String, url: String, headers: Vec<(String, String)>, body: Option<String> },
    FileRead { path: String },
    FileWrite { path: String, content: String, append: bool },
    EnvGet { name: String },
    SecretGet { name: String },
    Log { level: String, message: String },
    SendMessage { to: String, payload: Value },
    ReceiveMessage { timeout_ms: u64 },
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
}

pub fn parse(line: &[u8]) -> Result<Request, RequestError> {
    let value: Value =
        serde_json::from_slice(line).map_err(|e| RequestError { id: Value::Null, message: format!("not a JSON object: {e}") })?;
    let Value::Object(map) = value else { return Err(RequestError { id: Value::Null, message: "a request is a JSON object".into() }) };
    let id = map.get("id").cloned().unwrap_or(Value::Null);
    let fail = |message: String| RequestError { id: id.clone(), message };
    let string = |key: &str| -> Result<String, RequestError> {
        match map.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(fail(format!("`{key}` must be a string"))),
            None => Err(fail(format!("the request has no `{key}`"))),
        }
    };
    let op_name = string("op")?;
    let op = match op_name.as_str() {
        "http" => {
            let method = map.get("method").and_then(Value::as_str).unwrap_or("GET").to_ascii_uppercase();
            let headers = match map.get("headers") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Object(h)) => h
                    .iter()
                    .map(|(k, v)| {
                        v.as_str().map(|v| (k.clone(), v.to_string())).ok_or_else(|| fail(format!("header `{k}` must be a string")))
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(fail("`headers` must be an object of strings".into())),
            };
            let body = map.get("body").and_then(Value::as_str).map(str::to_string);
            Op::Http { method, url: string("url")?, headers, body }
        }
        "file_read" => Op::FileRead { path: string("path")? },
        "file_write" => Op::FileWrite {
            path: string("path")?,
            content: string("content")?,
            append: map.get("append").and_then(Value::as_bool).unwrap_or(false),
        },
        "env_get" => Op::EnvGet { name: string("name")? },
        // Canonical before anything decides on it: guards and the lookup see one name.
        "secret_get" => Op::SecretGet { name: symbiont_policy::names::secret_name(&string("name")?).map_err(fail)? },
        "log" => Op::Log { level: map.get("level").and_then(Value::as_str).unwrap_or("info").to_string(), message: string("message")? },
        "send_message" => Op::SendMessage { to: string("to")?, payload: map.get("payload").cloned().unwrap_or(Value::Null) },
        "receive_message" => Op::ReceiveMessage { timeout_ms: map.get("timeout_ms").and_then(Value::as_u64).unwrap_or(0) },
        other => {
            return Err(fail(format!(
                "unknown op `{other}`: expected http, file_read, file_write, env_get, secret_get, log, send_message or receive_message"
            )))
        }
    };
    let claimed_agent = map.get("agent").map(|a| a.as_str().map_or_else(|| a.to_string(), str::to_string));
    Ok(Request { id, op, claimed_agent })
}

/// Splits a URL into what policies read: scheme, host, port, path.
fn url_parts(url: &str) -> Option<(String, String, u16, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let (authority, path) = rest.find(['/', '?', '#']).map_or((rest, "/"), |at| (&rest[..at], &rest[at..]));
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let default_port = if scheme == "https" { 443 } else { 80 };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => match port.parse() {
            Ok(port) => (host, port),
            Err(_) => (authority, default_port),
        },
        _ => (authority, default_port),
    };
    Some((scheme, host.trim_matches(['[', ']']).to_ascii_lowercase(), port, path.to_string()))
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
            Op::Http { method, url, .. } => {
                let (scheme, host, port, path) = url_parts(url).unwrap_or_default();
                let op = if scheme == "https" { "https_request" } else { "http_request" };
                (op, json!({ "url": url, "method": method, "scheme": scheme, "host": host, "port": port, "path": path }))
            }
            Op::FileRead { path } => ("file_read", json!({ "path": path })),
            Op::FileWrite { path, append, .. } => ("file_system_write", json!({ "path": path, "append": append })),
            Op::EnvGet { name } => ("env_access", json!({ "name": name })),
            Op::SecretGet { name } => ("secret_access", json!({ "name": name })),
            Op::SendMessage { to, .. } => ("send_message", json!({ "to": to, "recipient": to })),
            Op::ReceiveMessage { .. } => ("receive_message", json!({})),
            Op::Log { .. } => return None,
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
            Op::Http { method, url, headers, body } => {
                put("op", json!("http"));
                put("method", json!(method));
                put("url", json!(url_for_audit(url)));
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
                put("message", json!(message.chars().take(1024).collect::<String>()));
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
        }
        Value::Object(view)
    }
}

fn line(value: Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(&value).expect("JSON values serialize");
    bytes.push(b'\n');
    bytes
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
    fn url_parts_handle_ipv6_and_userinfo() {
        assert_eq!(url_parts("http://[::1]:8080/x"), Some(("http".into(), "::1".into(), 8080, "/x".into())));
        assert_eq!(url_parts("https://user:pw@Host.example"), Some(("https".into(), "host.example".into(), 443, "/".into())));
        assert_eq!(url_parts("nonsense"), None);
    }
}
