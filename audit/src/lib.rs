//! `symbiont-audit`: the audit log, the system of record for what agents did.
//!
//! Every entry is an Ed25519-signed record of one operation, chained to the previous entry and
//! covered by RFC 6962 Merkle checkpoints, written with group commit so that an append is
//! acknowledged only once it is durable. `verify` checks everything and names the first bad entry;
//! inclusion and consistency proofs let a third party check one entry or an older checkpoint.
//!
//! This crate never logs a secret or a key (details are redacted before they are signed), never
//! acknowledges an append that is not on disk, never rewrites a committed entry (a torn tail is the
//! only thing recovery removes, and it says so), and never panics on a bad log. It does not depend
//! on the runtime: the CLI verifies logs with this crate alone.

pub mod canonical;
pub mod entry;
pub mod keys;
pub mod log;
pub mod merkle;
pub mod pkcs11;
pub mod signer;
pub mod store;
pub mod time;
pub mod verify;

/// WORM backups to S3 with Object Lock (feature `s3`).
#[cfg(feature = "s3")]
pub mod backup;
/// The small S3 client behind [`backup`] (feature `s3`).
#[cfg(feature = "s3")]
pub mod s3;

pub use crate::{
    entry::{Checkpoint, Entry, Record},
    keys::{FileSigner, PublicKey, Signer},
    log::{Durable, Log, LogOptions, OpenReport, Ticket},
    pkcs11::Pkcs11Signer,
    signer::load_signer,
    verify::{verify_log, Finding, VerifyOptions, VerifyReport},
};

/// Everything that can go wrong, with enough context to act on.
#[derive(Debug)]
pub enum Error {
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// Another writer holds the log.
    Locked(std::path::PathBuf),
    /// The committed part of the log fails verification: the log is refused.
    Corrupt(Finding),
    Key(String),
    Input(String),
    /// The writer stopped after an I/O error; nothing more is acknowledged.
    WriterFailed(String),
    /// A remote store (S3) refused or failed a request, or holds something unusable.
    Remote(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Locked(path) => write!(f, "{}: another process is writing this log (its lock is held)", path.display()),
            Error::Corrupt(finding) => write!(f, "the log is corrupt: {finding}"),
            Error::Key(message) | Error::Input(message) => f.write_str(message),
            Error::WriterFailed(message) => write!(f, "the log writer stopped: {message}"),
            Error::Remote(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

pub(crate) fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}
