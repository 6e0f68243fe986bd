//! The typed errors of a broker call: one variant per code of the protocol, plus the transport's.

use std::fmt;

/// The result of every call of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a call did not succeed.
///
/// Each broker error code (`docs/broker-protocol.md`, "Replies") has its variant, carrying the
/// broker's message; a denial also carries the deciding rule when the broker names it. Nothing is
/// retried: a refusal is the broker's answer.
///
/// ```no_run
/// match symbiont::fs::read("secret.txt") {
///     Ok(text) => println!("{text}"),
///     Err(symbiont::Error::Denied { rule, .. }) => eprintln!("denied by {}", rule.as_deref().unwrap_or("the policy")),
///     Err(e) => eprintln!("{} ({})", e, e.code()),
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `denied`: the agent's policy denies the request; the denial is in the audit log.
    Denied {
        /// The broker's message.
        message: String,
        /// The deciding rule as written in the policy, when the broker names it.
        rule: Option<String>,
    },
    /// `audit_failed`: the audit log could not record the request, so nothing was done.
    AuditFailed {
        /// The broker's message.
        message: String,
    },
    /// `unidentified`: the connection is not from the agent's sandbox, or the request named another agent.
    Unidentified {
        /// The broker's message.
        message: String,
    },
    /// `bad_request`: the broker cannot take the request as written (a field over its bound, a
    /// path not in its one accepted spelling, a URL that is not `http` or `https`).
    BadRequest {
        /// The broker's message, or this crate's for a request too large to send.
        message: String,
    },
    /// `limited`: a bound of the agent is reached (connections at once, bytes buffered, the run's log budget).
    Limited {
        /// The broker's message.
        message: String,
    },
    /// `failed`: allowed, but acting failed (a network error, no such file, a recipient not running).
    Failed {
        /// The broker's message.
        message: String,
    },
    /// The broker could not be reached or answered something that is not a reply: the socket is
    /// missing, the connection closed mid-reply, a reply is not JSON.
    Transport {
        /// What went wrong, and with which socket.
        message: String,
    },
    /// The broker speaks another major version of the protocol (the `hello` handshake).
    VersionMismatch {
        /// The broker's protocol version, as it said it (or as much as is known).
        broker: String,
        /// The protocol version this crate speaks ([`crate::PROTOCOL_VERSION`]).
        sdk: String,
    },
    /// An error code this version of the crate does not know (a newer broker's).
    Other {
        /// The broker's code.
        code: String,
        /// The broker's message.
        message: String,
    },
}

impl Error {
    /// The error from a broker reply's `code` and `message`, this SDK speaking protocol
    /// `sdk_version` (named in a version mismatch).
    pub(crate) fn from_reply(code: &str, message: &str, sdk_version: &str) -> Error {
        let message = message.to_string();
        match code {
            "denied" => Error::Denied { rule: rule_of(&message), message },
            "audit_failed" => Error::AuditFailed { message },
            "unidentified" => Error::Unidentified { message },
            "bad_request" => Error::BadRequest { message },
            "limited" => Error::Limited { message },
            "failed" => Error::Failed { message },
            "version" => Error::VersionMismatch { broker: broker_version_of(&message), sdk: sdk_version.into() },
            code => Error::Other { code: code.into(), message },
        }
    }

    /// A transport error saying what went wrong.
    pub(crate) fn transport(message: impl Into<String>) -> Error {
        Error::Transport { message: message.into() }
    }

    /// The broker's error code (`denied`, `audit_failed`, `unidentified`, `bad_request`,
    /// `limited`, `failed`, `version`), or `transport` for a connection that failed.
    ///
    /// ```no_run
    /// if let Err(e) = symbiont::net::get("https://example.com") {
    ///     assert_eq!(e.code(), "denied");
    /// }
    /// ```
    pub fn code(&self) -> &str {
        match self {
            Error::Denied { .. } => "denied",
            Error::AuditFailed { .. } => "audit_failed",
            Error::Unidentified { .. } => "unidentified",
            Error::BadRequest { .. } => "bad_request",
            Error::Limited { .. } => "limited",
            Error::Failed { .. } => "failed",
            Error::Transport { .. } => "transport",
            Error::VersionMismatch { .. } => "version",
            Error::Other { code, .. } => code,
        }
    }

    /// The deciding rule of a denial, when the broker named it.
    ///
    /// ```no_run
    /// if let Err(e) = symbiont::fs::write("out.txt", "x") {
    ///     println!("{:?}", e.rule()); // Some("deny: [\"file_system_write\"]")
    /// }
    /// ```
    pub fn rule(&self) -> Option<&str> {
        match self {
            Error::Denied { rule, .. } => rule.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::VersionMismatch { broker, sdk } => write!(
                f,
                "the broker speaks protocol {broker} and this SDK (symbiont-sdk {}) speaks protocol {sdk}: use an SDK of the broker's major version",
                env!("CARGO_PKG_VERSION")
            ),
            Error::Transport { message } => write!(f, "transport: {message}"),
            Error::Denied { message, .. }
            | Error::AuditFailed { message }
            | Error::Unidentified { message }
            | Error::BadRequest { message }
            | Error::Limited { message }
            | Error::Failed { message }
            | Error::Other { message, .. } => write!(f, "{}: {message}", self.code()),
        }
    }
}

impl std::error::Error for Error {}

/// The deciding rule in a denial's message: "policy denies OP for agent A by `RULE` (REASON)".
fn rule_of(message: &str) -> Option<String> {
    let end = message.rfind("` (")?;
    let start = message[..end].rfind(" by `")? + " by `".len();
    Some(message[start..end].to_string())
}

/// The broker's version in a `version` error: "the broker speaks protocol 1.0; this SDK speaks …".
fn broker_version_of(message: &str) -> String {
    message
        .split_once("speaks protocol ")
        .and_then(|(_, rest)| rest.split([';', ' ', ':']).next())
        .filter(|v| !v.is_empty())
        .unwrap_or("(not said)")
        .to_string()
}
