//! The runtime's one way to write the audit log: [`Auditor::record`] returns once the entry is
//! durable, so callers act only after it returns `Ok`. An append that fails refuses the act.
//!
//! Signing happens in the caller's task (Ed25519 is tens of microseconds); waiting for the
//! group commit's `fdatasync` blocks no thread: the log's committer wakes the task
//! ([`symbiont_audit::Ticket::durable`]).

use std::{sync::Arc, time::Duration};

use serde_json::{Map, Value};
use symbiont_audit::{entry::Record, log::Log, Durable, Error};

/// When the log writes an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// In the next batch.
    Now,
    /// Held up to about one `fdatasync` for an entry that follows at once (the recipient's
    /// receipt of a message to an agent waiting for it), so that one `fdatasync` covers both.
    WithNext,
}

/// The longest an entry is held for the next ([`Write::WithNext`]), however slow the disk.
const MAX_HOLD: Duration = Duration::from_millis(2);

#[derive(Clone)]
pub struct Auditor {
    log: Arc<Log>,
}

impl Auditor {
    pub fn new(log: Arc<Log>) -> Auditor {
        Auditor { log }
    }

    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// Appends one entry and waits until it is on disk; returns its seq. The log redacts secrets
    /// from `details` before signing.
    pub async fn record(&self, agent: &str, operation: &str, decision: &str, details: Map<String, Value>) -> Result<u64, Error> {
        self.submit(agent, operation, decision, details, Write::Now)?.await
    }

    /// Signs and queues the entry now, and returns a future that resolves once it is durable:
    /// work that has no effect outside (sealing a message) can overlap the `fdatasync`; the act
    /// itself waits for the future.
    pub fn submit(
        &self,
        agent: &str,
        operation: &str,
        decision: &str,
        details: Map<String, Value>,
        write: Write,
    ) -> Result<Durable, Error> {
        let record = Record { agent: agent.to_string(), operation: operation.to_string(), decision: decision.to_string(), details };
        let hold = match write {
            Write::Now => Duration::ZERO,
            Write::WithNext => self.log.recent_sync().min(MAX_HOLD),
        };
        Ok(self.log.submit_held(record, hold)?.durable())
    }
}
