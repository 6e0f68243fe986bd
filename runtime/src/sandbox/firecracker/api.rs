//! A client for Firecracker's REST API on its Unix socket (`--api-sock`): hand-written HTTP/1.1,
//! one request per connection, JSON bodies from the typed structs below, which follow
//! Firecracker's API description (`firecracker.yaml`, Swagger 2.0; the contract test in
//! `tests/it/runtime/firecracker.rs` validates every request against it).
//!
//! Firecracker answers `204 No Content` to every successful `PUT`; an error comes with a status
//! of 400 or more and a body `{"fault_message": "..."}`, which [`ApiError`] carries as it is.

use std::{path::Path, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::UnixStream,
};

/// How long one request may take, connection included: Firecracker answers configuration
/// requests in microseconds, and `InstanceStart` in milliseconds.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response body read (Firecracker's are a few hundred bytes).
const MAX_RESPONSE_BODY: usize = 1 << 20;
/// The largest status line or header line read.
const MAX_HEADER_LINE: usize = 8 << 10;

/// `PUT /machine-config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MachineConfiguration {
    /// 1 to 32.
    pub vcpu_count: u32,
    pub mem_size_mib: u64,
    /// Simultaneous multithreading stays off: vCPUs of an agent never share a core's caches
    /// with each other as hyperthread siblings.
    pub smt: bool,
}

/// `PUT /boot-source`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootSource {
    pub kernel_image_path: String,
    /// The initrd, when the kernel needs one (`symbiont image build --tier 3` makes one that
    /// loads the drivers Debian's kernel has as modules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initrd_path: Option<String>,
    pub boot_args: String,
}

/// `PUT /drives/{drive_id}`: a virtio-block drive backed by a file on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drive {
    pub drive_id: String,
    pub path_on_host: String,
    pub is_root_device: bool,
    pub is_read_only: bool,
}

/// `PUT /vsock`. Guest-initiated connections to port `P` arrive on the host's Unix socket
/// `{uds_path}_{P}`, where host software must already listen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vsock {
    /// 3 or more (0 to 2 are reserved; 2 is the host).
    pub guest_cid: u32,
    pub uds_path: String,
}

/// `PUT /actions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InstanceActionInfo {
    pub action_type: ActionType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ActionType {
    /// Boots the configured microVM.
    InstanceStart,
    /// Presses Ctrl-Alt-Del on the guest's keyboard controller (x86_64 only): the guest kernel
    /// signals its init, which stops the agent and ends the VM.
    SendCtrlAltDel,
    FlushMetrics,
}

/// `PUT /logger`: Firecracker's own log (not the guest's console).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Logger {
    pub log_path: String,
    pub level: LogLevel,
    pub show_level: bool,
    pub show_log_origin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LogLevel {
    Error,
    Warning,
    Info,
    Debug,
}

/// `PUT /metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metrics {
    pub metrics_path: String,
}

/// Firecracker's error body (`Error` in the API description).
#[derive(Debug, Deserialize)]
struct Fault {
    fault_message: String,
}

/// A request Firecracker refused, or could not be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub method: &'static str,
    pub path: String,
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Firecracker's `fault_message`, or what went wrong on the way.
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "Firecracker API {} {}: {status}: {}", self.method, self.path, self.message),
            None => write!(f, "Firecracker API {} {}: {}", self.method, self.path, self.message),
        }
    }
}

impl std::error::Error for ApiError {}

/// A parsed HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The API of one Firecracker process.
#[derive(Debug, Clone)]
pub struct ApiClient {
    socket: std::path::PathBuf,
}

impl ApiClient {
    pub fn new(socket: &Path) -> ApiClient {
        ApiClient { socket: socket.to_path_buf() }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub async fn put_machine_config(&self, body: &MachineConfiguration) -> Result<(), ApiError> {
        self.put("/machine-config", body).await
    }

    pub async fn put_boot_source(&self, body: &BootSource) -> Result<(), ApiError> {
        self.put("/boot-source", body).await
    }

    pub async fn put_drive(&self, body: &Drive) -> Result<(), ApiError> {
        // Drive ids are ours ([A-Za-z0-9_]); the path and the body must name the same drive.
        debug_assert!(body.drive_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        self.put(&format!("/drives/{}", body.drive_id), body).await
    }

    pub async fn put_vsock(&self, body: &Vsock) -> Result<(), ApiError> {
        self.put("/vsock", body).await
    }

    pub async fn put_logger(&self, body: &Logger) -> Result<(), ApiError> {
        self.put("/logger", body).await
    }

    pub async fn put_metrics(&self, body: &Metrics) -> Result<(), ApiError> {
        self.put("/metrics", body).await
    }

    pub async fn action(&self, action_type: ActionType) -> Result<(), ApiError> {
        self.put("/actions", &InstanceActionInfo { action_type }).await
    }

    pub async fn instance_start(&self) -> Result<(), ApiError> {
        self.action(ActionType::InstanceStart).await
    }

    pub async fn send_ctrl_alt_del(&self) -> Result<(), ApiError> {
        self.action(ActionType::SendCtrlAltDel).await
    }

    /// `PUT path` with `body` as JSON; any 2xx is success, anything else an [`ApiError`] with
    /// Firecracker's `fault_message`.
    pub async fn put<T: Serialize>(&self, path: &str, body: &T) -> Result<(), ApiError> {
        let error = |status: Option<u16>, message: String| ApiError { method: "PUT", path: path.to_string(), status, message };
        let json = serde_json::to_vec(body).map_err(|e| error(None, format!("encoding the body: {e}")))?;
        let response = match tokio::time::timeout(REQUEST_TIMEOUT, self.request("PUT", path, Some(&json))).await {
            Ok(result) => result.map_err(|e| error(None, e))?,
            Err(_) => return Err(error(None, format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()))),
        };
        if (200..300).contains(&response.status) {
            return Ok(());
        }
        Err(error(Some(response.status), fault_message(&response.body)))
    }

    /// One HTTP/1.1 exchange on a fresh connection.
    pub async fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response, String> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|e| format!("connecting to {}: {e}", self.socket.display()))?;
        let (read, mut write) = stream.into_split();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n");
        if let Some(body) = body {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut message = head.into_bytes();
        message.extend_from_slice(body.unwrap_or_default());
        write.write_all(&message).await.map_err(|e| format!("sending the request: {e}"))?;
        write.flush().await.map_err(|e| format!("sending the request: {e}"))?;
        read_response(&mut BufReader::new(read), method == "HEAD").await
    }
}

/// The `fault_message` of an error body, or the body itself when it is not one.
pub fn fault_message(body: &[u8]) -> String {
    match serde_json::from_slice::<Fault>(body) {
        Ok(fault) => fault.fault_message,
        Err(_) if body.is_empty() => "(no error body)".to_string(),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned(),
    }
}

async fn read_line<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> Result<String, String> {
    let mut line = Vec::new();
    let mut limited = reader.take(MAX_HEADER_LINE as u64 + 1);
    limited.read_until(b'\n', &mut line).await.map_err(|e| format!("reading the response: {e}"))?;
    if line.len() > MAX_HEADER_LINE {
        return Err("a response header line is too long".into());
    }
    if !line.ends_with(b"\n") {
        return Err("the connection closed in the middle of the response head".into());
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| "the response head is not UTF-8".to_string())
}

/// Reads one response: status line, headers, then a body of `Content-Length` bytes (none for
/// 1xx, 204, 304 and answers to `HEAD`). Chunked bodies are refused: Firecracker does not send
/// them.
pub async fn read_response<R: AsyncBufReadExt + Unpin>(reader: &mut R, head_only: bool) -> Result<Response, String> {
    let status_line = read_line(reader).await?;
    let mut parts = status_line.splitn(3, ' ');
    let (version, status) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x response: {status_line:?}"));
    }
    let status: u16 = status.parse().ok().filter(|s| (100..600).contains(s)).ok_or_else(|| format!("bad status line: {status_line:?}"))?;
    let mut content_length: Option<usize> = None;
    loop {
        let line = read_line(reader).await?;
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else { return Err(format!("bad header line: {line:?}")) };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            let length: usize = value.parse().map_err(|_| format!("bad Content-Length: {value:?}"))?;
            if content_length.is_some_and(|prior| prior != length) {
                return Err("conflicting Content-Length headers".into());
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") && !value.eq_ignore_ascii_case("identity") {
            return Err(format!("unsupported Transfer-Encoding: {value}"));
        }
    }
    if head_only || status < 200 || status == 204 || status == 304 {
        return Ok(Response { status, body: Vec::new() });
    }
    let length = content_length.unwrap_or(0);
    if length > MAX_RESPONSE_BODY {
        return Err(format!("a response body of {length} bytes is too large"));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.map_err(|e| format!("reading the response body: {e}"))?;
    Ok(Response { status, body })
}
