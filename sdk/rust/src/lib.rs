//! Symbiont's SDK for Rust agents.
//!
//! An agent in a Symbiont sandbox has no network and a read-only file system: everything it does
//! outside (HTTP, its workspace's files, the run's environment, secrets, its log, messages to
//! other agents) goes through its broker, which decides each request by the agent's policy and
//! records it in the signed audit log before acting. This crate makes those requests function
//! calls: it speaks the broker protocol (JSON lines over the Unix socket at `$SYMBIONT_BROKER`,
//! `docs/broker-protocol.md`), synchronously, with std and serde_json only, so that an agent
//! builds offline into the smallest image.
//!
//! What it must never do: decide anything itself, or work around an answer. The broker is the
//! only authority; a refusal is an [`Error`] the agent sees, never retried and never "fallen back"
//! from (no direct connection, no cached answer). It keeps no secret or content beyond the call
//! that returned it and writes nothing to the agent's output. It speaks only its own major
//! version of the protocol: against another it fails at once ([`Error::VersionMismatch`]).
//!
//! ```no_run
//! fn main() -> Result<(), symbiont::Error> {
//!     let items = symbiont::net::get("https://api.example.com/v1/items")?.json()?;
//!     symbiont::fs::write("out/items.json", &items.to_string())?;
//!     symbiont::log("info", "items saved")?;
//!     match symbiont::secrets::get("API_TOKEN") {
//!         Err(symbiont::Error::Denied { rule, .. }) => eprintln!("no token for me: {rule:?}"),
//!         other => drop(other?),
//!     }
//!     Ok(())
//! }
//! ```
//!
//! The functions here share one connection per process (a [`Client`] from
//! [`Client::from_env`]); a program that wants its own uses [`Client`] directly. An agent's own
//! tests run its code against [`testing::FakeBroker`], a broker answering from memory.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;

mod client;
mod error;
pub mod testing;
#[cfg(test)]
mod tests;

pub use client::{Client, Message, Response, DEFAULT_BROKER, MAX_LINE, PROTOCOL_VERSION};
pub use error::{Error, Result};

/// The process's client: a live [`testing::FakeBroker`]'s, else the one at `$SYMBIONT_BROKER` as
/// it was at the first call.
fn broker() -> Arc<Client> {
    static CLIENT: OnceLock<Arc<Client>> = OnceLock::new();
    testing::client().unwrap_or_else(|| CLIENT.get_or_init(|| Arc::new(Client::from_env())).clone())
}

/// HTTP through the broker, which decides each request (`http_request`, `https_request`) by the
/// URL's canonical host, port and path, and relays it (no redirect followed, 30 s at most).
pub mod net {
    use super::{broker, Response, Result};

    /// GET `url`.
    ///
    /// ```no_run
    /// let response = symbiont::net::get("https://api.example.com/v1/items")?;
    /// println!("{} {}", response.status, response.body);
    /// # Ok::<(), symbiont::Error>(())
    /// ```
    pub fn get(url: impl AsRef<str>) -> Result<Response> {
        broker().get(url.as_ref())
    }

    /// POST `body` to `url`.
    ///
    /// ```no_run
    /// let response = symbiont::net::post("https://api.example.com/v1/items", r#"{"name":"x"}"#)?;
    /// # Ok::<(), symbiont::Error>(())
    /// ```
    pub fn post(url: impl AsRef<str>, body: impl AsRef<str>) -> Result<Response> {
        broker().post(url.as_ref(), body.as_ref())
    }

    /// PUT `body` at `url`.
    ///
    /// ```no_run
    /// symbiont::net::put("https://api.example.com/v1/items/7", r#"{"name":"y"}"#)?;
    /// # Ok::<(), symbiont::Error>(())
    /// ```
    pub fn put(url: impl AsRef<str>, body: impl AsRef<str>) -> Result<Response> {
        broker().put(url.as_ref(), body.as_ref())
    }

    /// DELETE `url`.
    ///
    /// ```no_run
    /// symbiont::net::delete("https://api.example.com/v1/items/7")?;
    /// # Ok::<(), symbiont::Error>(())
    /// ```
    pub fn delete(url: impl AsRef<str>) -> Result<Response> {
        broker().delete(url.as_ref())
    }

    /// Any method, with headers (name-value pairs; not `Host`, which is the URL's) and an optional body.
    ///
    /// ```no_run
    /// let response = symbiont::net::request(
    ///     "PATCH",
    ///     "https://api.example.com/v1/items/7",
    ///     &[("content-type", "application/json")],
    ///     Some(r#"{"done":true}"#),
    /// )?;
    /// # Ok::<(), symbiont::Error>(())
    /// ```
    pub fn request(method: &str, url: impl AsRef<str>, headers: &[(&str, &str)], body: Option<&str>) -> Result<Response> {
        broker().request(method, url.as_ref(), headers, body)
    }
}

/// Files of the agent's workspace, by relative paths in their one accepted spelling
/// (`notes/a.txt`: no `/` at either end, no `.`, `..` or `//`); at most 16 MiB each.
pub mod fs {
    use super::{broker, Result};

    /// The file at `path`, as text (`file_read`).
    ///
    /// ```no_run
    /// let diff = symbiont::fs::read("change.diff")?;
    /// # Ok::<(), symbiont::Error>(())
    /// ```
    pub fn read(path: impl AsRef<str>) -> Result<String> {
        broker().read(path.as_ref())
    }

    /// Replaces the file at `path` with `content` (atomically; missing directories are made),
    /// answering the bytes written (`file_write`).
    ///
    /// ```no_run
    /// let written = symbiont::fs::write("out/report.txt", "all good\n")?;
    /// # Ok::<(), symbiont::Error>(())
    /// ```
    pub fn write(path: impl AsRef<str>, content: impl AsRef<str>) -> Result<usize> {
        broker().write(path.as_ref(), content.as_ref())
    }

    /// Appends `content` to the file at `path`, answering the bytes written (`file_write`, `append`).
    ///
    /// ```no_run
    /// symbiont::fs::append("out/log.txt", "one more line\n")?;
    /// # Ok::<(), symbiont::Error>(())
    /// ```
    pub fn append(path: impl AsRef<str>, content: impl AsRef<str>) -> Result<usize> {
        broker().append(path.as_ref(), content.as_ref())
    }
}

/// The variables the run declares (`[runtime.env]`, `pass_env`), through the broker.
pub mod env {
    use super::{broker, Result};

    /// The variable `name`; `None` when the run does not declare it (`env_get`).
    ///
    /// ```no_run
    /// let region = symbiont::env::get("REGION")?.unwrap_or_else(|| "eu-west-1".into());
    /// # Ok::<(), symbiont::Error>(())
    /// ```
    pub fn get(name: impl AsRef<str>) -> Result<Option<String>> {
        broker().env(name.as_ref())
    }
}

/// Secrets the host holds (`SYMBIONT_SECRET_NAME`), each read only as the policy allows.
pub mod secrets {
    use super::{broker, Result};

    /// The secret `name` (case-insensitive: `DB_PASSWORD` is `db_password`); `None` when the
    /// host has none (`secret_get`).
    ///
    /// ```no_run
    /// let token = symbiont::secrets::get("API_TOKEN")?.expect("the host sets SYMBIONT_SECRET_API_TOKEN");
    /// # Ok::<(), symbiont::Error>(())
    /// ```
    pub fn get(name: impl AsRef<str>) -> Result<Option<String>> {
        broker().secret(name.as_ref())
    }
}

/// Writes a line of the agent's own output to the run's log and audit log, at `level` (`info`,
/// `warn`, `error`, …: 1 to 16 letters). A run's log has a budget; past it the call is [`Error::Limited`].
///
/// ```no_run
/// symbiont::log("info", "starting")?;
/// # Ok::<(), symbiont::Error>(())
/// ```
pub fn log(level: &str, message: impl AsRef<str>) -> Result<()> {
    broker().log(level, message.as_ref())
}

/// Sends `payload` to the agent `to` in the same runtime (`send_message`, decided by this agent's
/// policy and by the recipient's), answering the message's sequence number.
///
/// ```no_run
/// let seq = symbiont::send("reviewer", &serde_json::json!({"diff": "change.diff"}))?;
/// # Ok::<(), symbiont::Error>(())
/// ```
pub fn send(to: &str, payload: &Value) -> Result<u64> {
    broker().send(to, payload)
}

/// The next message for this agent, waiting at most `timeout` (at most 30 s; zero does not
/// wait); `None` when none came in time.
///
/// ```no_run
/// use std::time::Duration;
/// while let Some(message) = symbiont::receive(Duration::from_secs(10))? {
///     println!("{}: {}", message.from, message.payload);
/// }
/// # Ok::<(), symbiont::Error>(())
/// ```
pub fn receive(timeout: Duration) -> Result<Option<Message>> {
    broker().receive(timeout)
}

/// The run's input (`symbiont run --input JSON`, in `$SYMBIONT_INPUT`; a live
/// [`testing::FakeBroker`]'s input instead); `null` when it has none.
///
/// ```no_run
/// let input = symbiont::input()?;
/// let name = input["name"].as_str().unwrap_or("world");
/// # Ok::<(), symbiont::Error>(())
/// ```
pub fn input() -> Result<Value> {
    match testing::input() {
        Some(input) => Ok(input),
        None => parse_input(std::env::var("SYMBIONT_INPUT").ok().as_deref()),
    }
}

/// The input from `$SYMBIONT_INPUT`'s text: the runtime writes JSON, so anything else is a transport error.
fn parse_input(text: Option<&str>) -> Result<Value> {
    match text {
        None => Ok(Value::Null),
        Some(text) => serde_json::from_str(text).map_err(|e| Error::transport(format!("SYMBIONT_INPUT is not JSON: {e}"))),
    }
}
