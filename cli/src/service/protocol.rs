//! The service's API: newline-delimited JSON on the workspace's Unix socket
//! (`.symbiont/service.sock`, docs/runtime.md "The service's API"). One request per connection,
//! the first line; the service answers with events, one per line, until it closes the connection.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::compose::RunRequest;

/// The socket of the service of the workspace at `root`.
pub fn socket_path(root: &Path) -> PathBuf {
    root.join(".symbiont").join("service.sock")
}

/// Longest request line accepted: a run's input and context travel in it.
pub const MAX_REQUEST_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "params", rename_all = "snake_case")]
pub enum Request {
    /// Runs an agent; its events stream until it ends. Closing the connection's writing side (or
    /// the connection) stops the run as Ctrl-C stops `symbiont run`.
    Run { request: RunRequest, json_summary: bool },
    /// The service and its runs (running, waiting, and the last ended ones).
    Ps,
    /// Stops a run and answers once it has ended.
    Stop { run: String },
    /// A run's output so far, then (with `follow`) as it comes until the run ends.
    Logs { run: String, follow: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run has its id and is registered (`ps` lists it from now on).
    Started { run: String },
    /// A chunk of the run's output: `text` when it is UTF-8, else `bytes`.
    Output {
        stream: Stream,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes: Option<Vec<u8>>,
    },
    /// The run ended: the summary `symbiont run` prints on standard error, and its exit status.
    Ended { summary: String, status: u8 },
    /// The run did not start, or the request could not be served: the message, and the exit
    /// status `symbiont run` gives it.
    Refused { status: u8, message: String },
    /// The answer to `ps`.
    Runs { service: ServiceInfo, runs: Vec<RunInfo> },
}

impl Event {
    pub fn output(stream: Stream, chunk: &[u8]) -> Event {
        match std::str::from_utf8(chunk) {
            Ok(text) => Event::Output { stream, text: Some(text.to_string()), bytes: None },
            Err(_) => Event::Output { stream, text: None, bytes: Some(chunk.to_vec()) },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub pid: u32,
    pub workspace: PathBuf,
    pub audit_log: PathBuf,
    /// Seconds since the Unix epoch.
    pub started: u64,
    pub schedules: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run: String,
    pub agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// `waiting` (its agent's previous run has not ended), `running`, or how it ended (the final
    /// lifecycle state: `completed`, `failed`, `timed_out`, `killed`; `refused` when it did not
    /// start).
    pub state: String,
    pub tier: u8,
    /// Seconds since the Unix epoch.
    pub started: u64,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u8>,
}
