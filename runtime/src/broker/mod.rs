//! The broker: one per running agent, on a Unix socket that only that agent's sandbox can see.
//! It speaks JSON lines (`docs/broker-protocol.md`). For each request it identifies the agent by
//! the connection (the peer's process must belong to the agent's sandbox; whatever the request
//! claims is ignored), decides with the policy engine, appends the signed audit entry, and only
//! then acts on the host, within the allowed scope, or refuses.

mod files;
pub mod protocol;

use std::{sync::Arc, time::Duration};

use serde_json::{json, Map, Value};
use symbiont_policy::{Effect, Engine};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};

use crate::{
    sandbox::{OutputSender, Peer},
    Auditor, OutputStream,
};
use protocol::{ErrorCode, Request, RequestError};

/// The longest request line the broker reads (a file write carries its content).
pub const MAX_LINE: usize = 17 << 20;
/// The largest file or HTTP body the broker hands back.
pub const MAX_BODY: u64 = 16 << 20;
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Who the broker serves and what it may touch.
pub struct BrokerContext {
    pub agent: String,
    pub run_id: String,
    pub engine: Arc<Engine>,
    pub auditor: Auditor,
    /// The directory file operations are confined to, held open: each is beneath it.
    pub workspace: crate::Workspace,
    /// The policy's `env`: what guards and requirements read besides the request.
    pub env: symbiont_policy::Value,
    /// What `env_get` reads ([`crate::AgentConfig::env`]): nothing of the host's environment.
    pub variables: Arc<std::collections::BTreeMap<String, String>>,
    pub output: OutputSender,
    /// Messages to and from other agents; the bus decides and audits them itself.
    pub bus: Arc<crate::bus::Bus>,
}

/// Decides whether a connection's peer is the agent's sandbox.
pub type Identify = Arc<dyn Fn(Peer) -> bool + Send + Sync>;

/// Accepts connections until the task is aborted at the end of the run. Returns only when the
/// socket fails for good: the runtime then stops the agent, which has lost its only way out.
pub async fn serve(listener: UnixListener, context: Arc<BrokerContext>, identify: Identify) -> String {
    let mut failures = 0;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                failures = 0;
                let (context, identify) = (context.clone(), identify.clone());
                tokio::spawn(async move { connection(stream, context, identify).await });
            }
            // Out of file descriptors and the like pass; a socket that keeps failing is gone.
            Err(e) => {
                failures += 1;
                if failures >= 100 {
                    return format!("the broker's socket failed: {e}");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn connection(stream: UnixStream, context: Arc<BrokerContext>, identify: Identify) {
    let pid = stream.peer_cred().ok().and_then(|c| c.pid());
    let (read, mut write) = stream.into_split();
    let known = pid.is_some_and(|pid| identify(Peer::Process { pid }));
    if !known {
        // Refused before reading anything: the peer is not the agent, whatever it will claim.
        let details = details(&context, [("peer_pid", json!(pid)), ("reason", json!("the peer is not a process of this agent's sandbox"))]);
        let _ = context.auditor.record(&context.agent, "broker_connect", "deny", details).await;
        let reply = protocol::error_line(&Value::Null, ErrorCode::Unidentified, "this connection does not come from the agent's sandbox");
        let _ = write.write_all(&reply).await;
        // Read (and drop) what the peer sent before closing: closing over unread data would reset
        // the connection and the peer might never see why it was refused.
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(1), read_line(&mut BufReader::new(read), &mut sink)).await;
        return;
    }
    let mut lines = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_line(&mut lines, &mut line).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(message) => {
                let _ = write.write_all(&protocol::error_line(&Value::Null, ErrorCode::BadRequest, &message)).await;
                return;
            }
        }
        let reply = match protocol::parse(&line) {
            Ok(request) => handle(&context, request).await,
            Err(RequestError { id, message }) => protocol::error_line(&id, ErrorCode::BadRequest, &message),
        };
        if write.write_all(&reply).await.is_err() {
            return;
        }
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes (without its newline).
async fn read_line(reader: &mut BufReader<tokio::net::unix::OwnedReadHalf>, line: &mut Vec<u8>) -> Result<usize, String> {
    loop {
        let available = reader.fill_buf().await.map_err(|e| format!("reading the request: {e}"))?;
        if available.is_empty() {
            return Ok(line.len());
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(at) => {
                line.extend_from_slice(&available[..at]);
                reader.consume(at + 1);
                return Ok(line.len() + 1);
            }
            None => {
                let n = available.len();
                line.extend_from_slice(available);
                reader.consume(n);
            }
        }
        if line.len() > MAX_LINE {
            return Err(format!("a request line is longer than {MAX_LINE} bytes"));
        }
    }
}

fn details<const N: usize>(context: &BrokerContext, fields: [(&str, Value); N]) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("run_id".into(), Value::String(context.run_id.clone()));
    for (k, v) in fields {
        map.insert(k.to_string(), v);
    }
    map
}

/// Decides, audits, then acts.
async fn handle(context: &BrokerContext, request: Request) -> Vec<u8> {
    let id = request.id.clone();
    if let Some(claimed) = &request.claimed_agent {
        if claimed != &context.agent {
            let details = details(context, [("claimed_agent", json!(claimed)), ("request", request.audit_view())]);
            let _ = context.auditor.record(&context.agent, "broker_impersonation", "deny", details).await;
            return protocol::error_line(&id, ErrorCode::Unidentified, "a request cannot name another agent: the broker knows who you are");
        }
    }
    if request.is_message() {
        return reply(&id, act(context, &request).await);
    }
    let Some((operation, args)) = request.operation() else {
        // `log` needs no permission: it is the agent's own output, kept in the audit log too.
        let details = details(context, [("request", request.audit_view())]);
        if let Err(e) = context.auditor.record(&context.agent, "log", "allow", details).await {
            return protocol::error_line(&id, ErrorCode::AuditFailed, &format!("the audit log refused the entry: {e}"));
        }
        return reply(&id, act(context, &request).await);
    };
    if let Err(refused) = check_path(context, &request, operation).await {
        return refused;
    }
    let args = symbiont_policy::Value::from(args);
    let (effect, reason, rules) = crate::util::decide(&context.engine, operation, &args, &context.env);
    let details = details(context, [("request", request.audit_view()), ("reason", json!(reason)), ("rules", rules.clone())]);
    // The entry is durable before anything happens; an audit failure refuses the request.
    if let Err(e) = context.auditor.record(&context.agent, operation, effect.as_str(), details).await {
        return protocol::error_line(&id, ErrorCode::AuditFailed, &format!("the audit log refused the entry, so nothing was done: {e}"));
    }
    if effect == Effect::Deny {
        let by = crate::util::denied_by(&rules);
        let message = format!("policy denies {operation} for agent {}{by} ({reason})", context.agent);
        return protocol::error_line(&id, ErrorCode::Denied, &message);
    }
    reply(&id, act(context, &request).await)
}

/// A file operation's path is checked before the policy decides: one the broker would not open
/// as written (`a/`, `a/.`, `a//b`, `..`, absolute) is refused and audited as such (`deny`,
/// reason `InvalidPath`), so an accepted path is the very string guards read and the file opened.
async fn check_path(context: &BrokerContext, request: &Request, operation: &str) -> Result<(), Vec<u8>> {
    let (protocol::Op::FileRead { path } | protocol::Op::FileWrite { path, .. }) = &request.op else { return Ok(()) };
    let Err((code, message)) = files::parse(path) else { return Ok(()) };
    let details = details(context, [("request", request.audit_view()), ("reason", json!("InvalidPath")), ("refused", json!(message))]);
    if let Err(e) = context.auditor.record(&context.agent, operation, "deny", details).await {
        return Err(protocol::error_line(&request.id, ErrorCode::AuditFailed, &format!("the audit log refused the entry: {e}")));
    }
    Err(protocol::error_line(&request.id, code, &message))
}

type ActResult = Result<Value, (ErrorCode, String)>;

fn reply(id: &Value, result: ActResult) -> Vec<u8> {
    match result {
        Ok(result) => protocol::ok_line(id, result),
        Err((code, message)) => protocol::error_line(id, code, &message),
    }
}

async fn act(context: &BrokerContext, request: &Request) -> ActResult {
    use protocol::Op;
    let failed = |e: String| (ErrorCode::Failed, e);
    match &request.op {
        Op::Http { method, url, headers, body } => {
            let (method, url, headers, body) = (method.clone(), url.clone(), headers.clone(), body.clone());
            tokio::task::spawn_blocking(move || http(&method, &url, &headers, body)).await.map_err(|e| failed(e.to_string()))?
        }
        Op::FileRead { path } => files::read(context.workspace.fd(), path).map(|text| json!({ "content": text })),
        Op::FileWrite { path, content, append } => {
            files::write(context.workspace.fd(), path, content.as_bytes(), *append).map(|n| json!({ "written": n }))
        }
        // Only what the run declares: the host's environment holds the runtime's own secrets.
        Op::EnvGet { name } => Ok(json!({ "value": context.variables.get(name) })),
        // `name` is canonical (`protocol::parse`): exactly the name the policy decided on.
        Op::SecretGet { name } => {
            let value = std::env::var(format!("SYMBIONT_SECRET_{}", name.to_ascii_uppercase())).ok();
            Ok(json!({ "value": value }))
        }
        Op::Log { level, message } => {
            let line = format!("[{} {level}] {message}\n", context.agent);
            let _ = context.output.send((OutputStream::Stderr, line.into_bytes()));
            Ok(Value::Null)
        }
        Op::SendMessage { to, payload } => match context.bus.send(&context.agent, to, payload).await {
            Ok(seq) => Ok(json!({ "delivered": seq })),
            Err(e @ crate::bus::BusError::Denied(_)) => Err((ErrorCode::Denied, e.to_string())),
            Err(e @ crate::bus::BusError::Audit(_)) => Err((ErrorCode::AuditFailed, e.to_string())),
            Err(e) => Err((ErrorCode::Failed, e.to_string())),
        },
        Op::ReceiveMessage { timeout_ms } => {
            let wait = Duration::from_millis((*timeout_ms).min(30_000));
            match context.bus.receive(&context.agent, wait).await {
                Ok(message) => Ok(message.map_or(Value::Null, |m| json!({ "from": m.from, "seq": m.seq, "payload": m.payload }))),
                Err(e) => Err((ErrorCode::Failed, e.to_string())),
            }
        }
    }
}

fn http(method: &str, url: &str, headers: &[(String, String)], body: Option<String>) -> ActResult {
    let config = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(HTTP_TIMEOUT)).max_redirects(0).build();
    let agent = ureq::Agent::new_with_config(config);
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    let request =
        builder.body(body.unwrap_or_default().into_bytes()).map_err(|e| (ErrorCode::BadRequest, format!("bad HTTP request: {e}")))?;
    let mut response = agent.run(request).map_err(|e| (ErrorCode::Failed, format!("{method} {url}: {e}")))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| (ErrorCode::Failed, format!("reading the response: {e}")))?;
    Ok(json!({ "status": status, "body": String::from_utf8_lossy(&body) }))
}
