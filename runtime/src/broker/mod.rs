//! The broker: one per running agent, on a Unix socket that only that agent's sandbox can see.
//! It speaks JSON lines (`docs/broker-protocol.md`). For each request it identifies the agent by
//! the connection (the peer's process must belong to the agent's sandbox; whatever the request
//! claims is ignored), decides with the policy engine, appends the signed audit entry, and only
//! then acts on the host, within the allowed scope, or refuses.

mod files;
pub mod limits;
pub mod protocol;
mod target;

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use serde_json::{json, Map, Value};
use symbiont_policy::Engine;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{unix::OwnedReadHalf, UnixListener, UnixStream},
    sync::OwnedSemaphorePermit,
};

use crate::{
    decision::{self, Decision, Question},
    sandbox::{OutputSender, Peer},
    Auditor, OutputStream,
};
use limits::LogCharge;
use protocol::{ErrorCode, Request, RequestError};
use target::Target;

/// The longest request line the broker reads (a file write carries its content).
pub const MAX_LINE: usize = 17 << 20;
/// The largest file or HTTP body the broker hands back.
pub const MAX_BODY: u64 = 16 << 20;
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an HTTP request's host may take to resolve.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// What the agent may make the broker hold or write: connections, buffered bytes, log entries.
    pub limits: limits::Limits,
}

pub use crate::sandbox::Identify;

/// Accepts connections, once `opened` fires, until the task is aborted at the end of the run.
/// Returns only when the socket fails for good: the runtime then stops the agent, which has lost
/// its only way out.
///
/// Until `opened` fires (the runtime has logged the run `running`) the agent's connections wait in
/// the socket's backlog, so that no decision of the run is logged before its `running` entry. A
/// run that ends before then drops the sender and the broker never serves.
pub async fn serve(
    listener: UnixListener,
    context: Arc<BrokerContext>,
    identify: Identify,
    opened: tokio::sync::oneshot::Receiver<()>,
) -> String {
    if opened.await.is_err() {
        return std::future::pending().await;
    }
    static RAISED: std::sync::Once = std::sync::Once::new();
    RAISED.call_once(raise_descriptor_limit);
    let mut failures = 0;
    let mut pause = Duration::from_millis(10);
    // The connections end with the broker: when the run aborts this task at its clean-up, a
    // connection still waiting (an agent blocked in `receive` holds its inbox) must not outlive it.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        match accepted {
            Ok((stream, _)) => {
                (failures, pause) = (0, Duration::from_millis(10));
                match context.limits.connection() {
                    Ok(place) => {
                        let (context, identify) = (context.clone(), identify.clone());
                        connections.spawn(async move { connection(stream, context, identify, place).await });
                    }
                    Err(refused) => refuse_connection(stream, &context, refused).await,
                }
            }
            // Out of descriptors or memory: wait until some are freed, backing off, and never end
            // the run for it (the agent's own connections may be what used them up).
            Err(e) if transient(&e) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            // A socket that keeps failing otherwise is gone.
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

/// An `accept` error that says nothing about the socket itself.
fn transient(e: &std::io::Error) -> bool {
    let codes = [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM, libc::ECONNABORTED, libc::EINTR, libc::EAGAIN, libc::EPROTO];
    e.raw_os_error().is_some_and(|code| codes.contains(&code))
}

/// Raises this process's soft limit on open files to its hard limit (at most 2^20), once: each
/// running agent may hold [`limits::MAX_CONNECTIONS`] connections, and the audit writer must find
/// descriptors however many agents run. If it cannot, the limit stays as it was.
fn raise_descriptor_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one `rlimit` through a pointer to this live, aligned local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    let wanted = limit.rlim_max.min(1 << 20);
    if limit.rlim_cur < wanted {
        limit.rlim_cur = wanted;
        // SAFETY: setrlimit reads one `rlimit` from this live local; a soft limit at or below the
        // hard one is always permitted, and it changes nothing but this process's limit.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    }
}

/// Answers a connection over [`limits::MAX_CONNECTIONS`] and closes it at once, so that it holds
/// no descriptor. The 1st, 2nd, 4th, 8th… refusal of the run is audited, with the count so far.
async fn refuse_connection(stream: UnixStream, context: &BrokerContext, refused: u64) {
    let max = limits::MAX_CONNECTIONS;
    let message = format!("this agent already has {max} connections open to its broker: close one first");
    // A new connection's send buffer is empty: one short write never waits.
    let _ = stream.try_write(&protocol::error_line(&Value::Null, ErrorCode::Limited, &message));
    drop(stream);
    audit_refusal(context, "broker_connect", "TooManyConnections", refused).await;
}

/// Audits the `n`th refusal of its kind in this run (`deny`, with `reason` and the `count` so far)
/// if it is the 1st, 2nd, 4th, 8th…: a flood leaves a handful of entries.
async fn audit_refusal(context: &BrokerContext, operation: &str, reason: &str, n: u64) {
    if limits::audited(n) {
        let details = details(context, [("reason", json!(reason)), ("count", json!(n))]);
        let _ = context.auditor.record(&context.agent, operation, "deny", details).await;
    }
}

async fn connection(stream: UnixStream, context: Arc<BrokerContext>, identify: Identify, _place: OwnedSemaphorePermit) {
    let pid = stream.peer_cred().ok().and_then(|c| c.pid());
    let (read, mut write) = stream.into_split();
    let known = pid.is_some_and(|pid| identify(Peer::Process { pid }));
    let mut lines = BufReader::new(read);
    let mut line = limits::Line::new(&context.limits);
    if !known {
        // Refused before reading anything: the peer is not the agent, whatever it will claim.
        let details = details(&context, [("peer_pid", json!(pid)), ("reason", json!("the peer is not a process of this agent's sandbox"))]);
        let _ = context.auditor.record(&context.agent, "broker_connect", "deny", details).await;
        let reply = protocol::error_line(&Value::Null, ErrorCode::Unidentified, "this connection does not come from the agent's sandbox");
        let _ = write.write_all(&reply).await;
        // Read (and drop) what the peer sent before closing: closing over unread data would reset
        // the connection and the peer might never see why it was refused.
        let _ = tokio::time::timeout(Duration::from_secs(1), read_line(&mut lines, &mut line)).await;
        return;
    }
    loop {
        line.clear();
        match read_line(&mut lines, &mut line).await {
            Ok(0) => return,
            Ok(_) => {}
            Err((code, message)) => {
                if code == ErrorCode::Limited {
                    audit_refusal(&context, "broker_request", "BufferBudget", context.limits.squeezed()).await;
                }
                let _ = write.write_all(&protocol::error_line(&Value::Null, code, &message)).await;
                return;
            }
        }
        let (id, reply) = match protocol::parse(&line.bytes) {
            Ok(request) => (request.id.clone(), handle(&context, request).await),
            Err(refused) => (refused.id.clone(), refuse_request(&context, refused).await),
        };
        line.clear();
        // A reply waits for the agent to read it only within the agent's buffer budget.
        let held = context.limits.hold(reply.len());
        let reply = match held {
            Some(_) => reply,
            None => {
                audit_refusal(&context, "broker_request", "BufferBudget", context.limits.squeezed()).await;
                let message = format!(
                    "the reply ({} bytes) does not fit in what this agent's connections may hold ({} MiB): read replies, or \
                     finish requests, on the others",
                    reply.len(),
                    limits::MAX_BUFFERED >> 20
                );
                protocol::error_line(&id, ErrorCode::Limited, &message)
            }
        };
        if write.write_all(&reply).await.is_err() {
            return;
        }
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes (without its newline), taking its memory from the
/// agent's buffer budget before it grows.
async fn read_line(reader: &mut BufReader<OwnedReadHalf>, line: &mut limits::Line<'_>) -> Result<usize, (ErrorCode, String)> {
    loop {
        let available = reader.fill_buf().await.map_err(|e| (ErrorCode::BadRequest, format!("reading the request: {e}")))?;
        if available.is_empty() {
            return Ok(line.bytes.len());
        }
        let end = available.iter().position(|&b| b == b'\n');
        let part = &available[..end.unwrap_or(available.len())];
        if line.bytes.len() + part.len() > MAX_LINE {
            return Err((ErrorCode::BadRequest, format!("a request line is longer than {MAX_LINE} bytes")));
        }
        line.extend(part).map_err(|message| (ErrorCode::Limited, message))?;
        let consumed = part.len();
        match end {
            Some(_) => {
                reader.consume(consumed + 1);
                return Ok(line.bytes.len() + 1);
            }
            None => reader.consume(consumed),
        }
    }
}

/// A request the broker cannot take as written is refused (`bad_request`), and audited, cut
/// short, when it names a known `op`: `broker_request`, `deny`, reason `BadRequest`.
async fn refuse_request(context: &BrokerContext, refused: RequestError) -> Vec<u8> {
    let RequestError { id, message, view } = refused;
    if let Some(view) = view {
        let details = details(context, [("request", view), ("reason", json!("BadRequest")), ("refused", json!(message))]);
        if let Err(e) = context.auditor.record(&context.agent, "broker_request", "deny", details).await {
            return protocol::error_line(&id, ErrorCode::AuditFailed, &format!("the audit log refused the entry: {e}"));
        }
    }
    protocol::error_line(&id, ErrorCode::BadRequest, &message)
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
    if let protocol::Op::Hello { protocol: version, .. } = &request.op {
        // Crosses no boundary: nothing to decide or audit.
        return protocol::hello_line(&id, version, &context.agent);
    }
    if request.is_message() {
        return reply(&id, act(context, &request).await);
    }
    let request = match resolve(context, request).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let Some((operation, args)) = request.operation() else {
        return log(context, &request).await;
    };
    if let Err(refused) = check_path(context, &request, operation).await {
        return refused;
    }
    let args = symbiont_policy::Value::from(args);
    // An allowed request outside the agent's regions is denied by the condition that says so.
    let unmet = match &request.op {
        protocol::Op::Http { target: to, address, .. } => target::within_regions(context.engine.effective(), to, *address).err(),
        _ => None,
    };
    let question = Question { engine: &context.engine, env: &context.env, agent: &context.agent, operation, args: &args, unmet };
    // The entry is durable before anything happens; an audit failure refuses the request.
    let entry = |_: &Decision| details(context, [("request", request.audit_view())]);
    let decision = match decision::decide_and_record(&context.auditor, question, entry).await {
        Ok(decision) => decision,
        Err(e) => {
            return protocol::error_line(&id, ErrorCode::AuditFailed, &format!("the audit log refused the entry, so nothing was done: {e}"))
        }
    };
    if !decision.allowed() {
        return protocol::error_line(&id, ErrorCode::Denied, &decision.denial(operation, &context.agent));
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

/// `log` needs no permission: it is the agent's own output, kept in the audit log too, within the
/// run's budget ([`limits::MAX_LOG_ENTRIES`] entries, [`limits::MAX_LOG_BYTES`] of level and
/// message as kept). Past it, log requests are refused (`limited`); one entry says so.
async fn log(context: &BrokerContext, request: &Request) -> Vec<u8> {
    let view = request.audit_view();
    let bytes = view["level"].to_string().len() + view["message"].to_string().len();
    let spent = format!(
        "this run has used its log budget ({} entries or {} MiB of level and message): further log requests are refused",
        limits::MAX_LOG_ENTRIES,
        limits::MAX_LOG_BYTES >> 20
    );
    let (decision, details) = match context.limits.log(bytes) {
        LogCharge::Allowed => ("allow", details(context, [("request", view)])),
        LogCharge::Exhausted => {
            ("deny", details(context, [("request", view), ("reason", json!("LogBudgetSpent")), ("refused", json!(spent))]))
        }
        LogCharge::Refused => return protocol::error_line(&request.id, ErrorCode::Limited, &spent),
    };
    if let Err(e) = context.auditor.record(&context.agent, "log", decision, details).await {
        return protocol::error_line(&request.id, ErrorCode::AuditFailed, &format!("the audit log refused the entry: {e}"));
    }
    match decision {
        "allow" => reply(&request.id, act(context, request).await),
        _ => protocol::error_line(&request.id, ErrorCode::Limited, &spent),
    }
}

/// Where an HTTP request will connect, found before the policy decides, so that guards read the
/// address connected to (`address`, `loopback`, `private`) and the connection cannot go elsewhere.
/// A host that does not resolve, or resolves to no destination (`0.0.0.0`), is refused and
/// audited (`deny`, reason `Unresolved` or `NoDestination`).
async fn resolve(context: &BrokerContext, mut request: Request) -> Result<Request, Vec<u8>> {
    let protocol::Op::Http { target: to, .. } = &request.op else { return Ok(request) };
    match destination(to).await {
        Ok(ip) => {
            if let protocol::Op::Http { address, .. } = &mut request.op {
                *address = Some(ip);
            }
            Ok(request)
        }
        Err((code, reason, message)) => {
            let operation = request.operation().map_or("http_request", |(operation, _)| operation);
            let details = details(context, [("request", request.audit_view()), ("reason", json!(reason)), ("refused", json!(message))]);
            if let Err(e) = context.auditor.record(&context.agent, operation, "deny", details).await {
                return Err(protocol::error_line(&request.id, ErrorCode::AuditFailed, &format!("the audit log refused the entry: {e}")));
            }
            Err(protocol::error_line(&request.id, code, &message))
        }
    }
}

/// The one address a request to `to` connects to: its host if that is an address, else the first
/// address the host's resolver gives.
async fn destination(to: &Target) -> Result<IpAddr, (ErrorCode, &'static str, String)> {
    let ip = match to.host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => {
            let unresolved = |why: String| (ErrorCode::Failed, "Unresolved", format!("the host {} does not resolve: {why}", to.host));
            let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((to.host.as_str(), to.port)))
                .await
                .map_err(|_| unresolved(format!("no answer in {} s", RESOLVE_TIMEOUT.as_secs())))?
                .map_err(|e| unresolved(e.to_string()))?;
            found.map(|a| a.ip()).next().ok_or_else(|| unresolved("no address".into()))?
        }
    };
    let ip = target::plain(ip);
    target::destination(ip).map_err(|message| (ErrorCode::BadRequest, "NoDestination", message))?;
    Ok(ip)
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
        Op::Http { method, target: to, headers, body, address } => {
            let address = address.ok_or_else(|| failed("the host was not resolved before the decision".into()))?;
            let (method, to, headers, body) = (method.clone(), to.clone(), headers.clone(), body.clone());
            tokio::task::spawn_blocking(move || http(&method, &to, address, &headers, body)).await.map_err(|e| failed(e.to_string()))?
        }
        Op::FileRead { path } => files::read(context.workspace.fd(), path).map(|text| json!({ "content": text })),
        Op::FileWrite { path, content, append } => {
            // The agent's merged retention_period: what it writes expires with it (retention.rs).
            let retention = context.engine.effective().retention().map_err(|why| failed(format!("nothing was written: {why}")))?;
            let expires = retention.map(crate::retention::expiry_after);
            files::write(context.workspace.fd(), path, content.as_bytes(), *append, expires).map(|n| json!({ "written": n }))
        }
        // Only what the run declares: the host's environment holds the runtime's own secrets.
        Op::EnvGet { name } => Ok(json!({ "value": context.variables.get(name) })),
        // `name` is canonical (`protocol::parse`): exactly the name the policy decided on.
        Op::SecretGet { name } => {
            let value = std::env::var(format!("SYMBIONT_SECRET_{}", name.to_ascii_uppercase())).ok();
            Ok(json!({ "value": value }))
        }
        Op::Log { level, message } => {
            // Cut short, and one line: control characters are escaped, so that an agent forges no
            // line of another agent and sends no terminal escapes.
            let message = protocol::excerpt(message, protocol::OUTPUT_MESSAGE_BYTES);
            let line = format!("[{} {level}] {}\n", context.agent, one_line(&message));
            let _ = context.output.send((OutputStream::Stderr, line.into_bytes()));
            Ok(Value::Null)
        }
        Op::SendMessage { to, payload } => match context.bus.send(&context.agent, to, payload).await {
            Ok(seq) => Ok(json!({ "delivered": seq })),
            Err(e @ crate::bus::BusError::Denied(_)) => Err((ErrorCode::Denied, e.to_string())),
            Err(e @ crate::bus::BusError::Audit(_)) => Err((ErrorCode::AuditFailed, e.to_string())),
            Err(e) => Err((ErrorCode::Failed, e.to_string())),
        },
        // Answered by `handle` before anything is decided.
        Op::Hello { .. } => Ok(Value::Null),
        Op::ReceiveMessage { timeout_ms } => {
            let wait = Duration::from_millis((*timeout_ms).min(30_000));
            match context.bus.receive(&context.agent, wait).await {
                Ok(message) => Ok(message.map_or(Value::Null, |m| json!({ "from": m.from, "seq": m.seq, "payload": m.payload }))),
                Err(e) => Err((ErrorCode::Failed, e.to_string())),
            }
        }
    }
}

/// Makes the request to exactly `address`, the one the policy saw, whatever DNS says by now; the
/// server still sees the URL's host (the Host header, the TLS name).
fn http(method: &str, to: &Target, address: IpAddr, headers: &[(String, String)], body: Option<String>) -> ActResult {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(HTTP_TIMEOUT))
        .max_redirects(0)
        // A proxy (from the environment) would resolve the host itself.
        .proxy(None)
        .build();
    let pinned = Pinned(SocketAddr::new(address, to.port));
    let agent = ureq::Agent::with_parts(config, ureq::unversioned::transport::DefaultConnector::new(), pinned);
    let mut builder = ureq::http::Request::builder().method(method).uri(&to.url);
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    let request =
        builder.body(body.unwrap_or_default().into_bytes()).map_err(|e| (ErrorCode::BadRequest, format!("bad HTTP request: {e}")))?;
    let mut response = agent.run(request).map_err(|e| (ErrorCode::Failed, format!("{method} {} ({address}): {e}", to.url)))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| (ErrorCode::Failed, format!("reading the response: {e}")))?;
    Ok(json!({ "status": status, "body": String::from_utf8_lossy(&body) }))
}

/// A resolver that answers every lookup with the one address decided on.
#[derive(Debug)]
struct Pinned(SocketAddr);

impl ureq::unversioned::resolver::Resolver for Pinned {
    fn resolve(
        &self,
        _: &ureq::http::Uri,
        _: &ureq::config::Config,
        _: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let mut addresses = self.empty();
        addresses.push(self.0);
        Ok(addresses)
    }
}

/// `text` on one line: its control characters escaped (`\n`, `\u{1b}`).
fn one_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len());
    for c in text.chars() {
        match c.is_control() {
            true => line.extend(c.escape_default()),
            false => line.push(c),
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};

    use super::*;

    /// The connection goes to the address decided on, never where the name resolves by then:
    /// `pinned.invalid` resolves nowhere, yet the request reaches the server at the decided
    /// address, which sees the requested host in its Host header.
    #[test]
    fn http_connects_to_the_decided_address_only() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            while reader.read_line(&mut head).unwrap() > 2 && !head.ends_with("\r\n\r\n") {}
            (&stream).write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").unwrap();
            head
        });
        let to = target::canonical(&format!("http://Pinned.INVALID.:{port}/x")).unwrap();
        let result = http("GET", &to, "127.0.0.1".parse().unwrap(), &[], None).unwrap();
        assert_eq!(result, json!({ "status": 200, "body": "ok" }));
        let head = server.join().unwrap().to_ascii_lowercase();
        assert!(head.starts_with("get /x http/1.1\r\n") && head.contains(&format!("host: pinned.invalid:{port}\r\n")), "{head}");
    }

    /// The agent's first request waits, unanswered, until the runtime opens the broker (after the
    /// run's `running` entry), and is answered at once after; a broker never opened never serves.
    #[tokio::test]
    async fn requests_wait_until_the_broker_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Arc::new(symbiont_audit::FileSigner::generate().unwrap());
        let (log, _) = symbiont_audit::log::Log::open(&dir.path().join("audit"), signer, Default::default()).unwrap();
        let auditor = Auditor::new(Arc::new(log));
        let universe = symbiont_policy::load([("agent.sym", "agent worker() {}")], symbiont_policy::config::Config::default());
        let context = Arc::new(BrokerContext {
            agent: "worker".into(),
            run_id: "r".into(),
            engine: Arc::new(Engine::compile(universe.effective(Some("worker")).unwrap())),
            auditor: auditor.clone(),
            workspace: crate::Workspace::for_agent(dir.path(), "worker").unwrap(),
            env: symbiont_policy::Value::from(Value::Null),
            variables: Default::default(),
            output: tokio::sync::mpsc::unbounded_channel().0,
            bus: Arc::new(crate::bus::Bus::new(auditor)),
            limits: Default::default(),
        });
        let anyone: Identify = Arc::new(|_| true);
        let hello = |socket: std::path::PathBuf| async move {
            let mut stream = UnixStream::connect(socket).await.unwrap();
            stream.write_all(b"{\"id\": 0, \"op\": \"hello\", \"protocol\": \"1.0\", \"sdk\": \"test\"}\n").await.unwrap();
            let mut reply = String::new();
            tokio::io::BufReader::new(stream).read_line(&mut reply).await.unwrap();
            reply
        };

        let opened_socket = dir.path().join("opened.sock");
        let (open, opened) = tokio::sync::oneshot::channel();
        let broker = tokio::spawn(serve(UnixListener::bind(&opened_socket).unwrap(), context.clone(), anyone.clone(), opened));
        let mut reply = tokio::spawn(hello(opened_socket));
        let early = tokio::time::timeout(Duration::from_millis(300), &mut reply).await;
        assert!(early.is_err(), "answered before the broker was opened: {early:?}");
        open.send(()).unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), reply).await.expect("answered once opened").unwrap();
        assert!(reply.contains("\"ok\":true") && reply.contains("\"agent\":\"worker\""), "{reply}");
        broker.abort();

        let closed_socket = dir.path().join("closed.sock");
        let (never, not_opened) = tokio::sync::oneshot::channel::<()>();
        let broker = tokio::spawn(serve(UnixListener::bind(&closed_socket).unwrap(), context, anyone, not_opened));
        drop(never);
        let unanswered = tokio::time::timeout(Duration::from_millis(300), hello(closed_socket)).await;
        assert!(unanswered.is_err(), "a broker whose run ended before running served: {unanswered:?}");
        assert!(!broker.is_finished());
        broker.abort();
    }

    #[test]
    fn a_log_line_is_one_line() {
        assert_eq!(one_line("a\n[other error] b\x1b[2J\tc é"), "a\\n[other error] b\\u{1b}[2J\\tc é");
    }
}
