//! The runtime's one way to write the audit log: [`Auditor::record`] returns once the entry is
//! durable, so callers act only after it returns `Ok`. An append that fails refuses the act.
//!
//! Signing happens in the caller's task (Ed25519 is tens of microseconds); waiting for the
//! group commit's `fdatasync` blocks no thread: the log's committer wakes the task
//! ([`symbiont_audit::Ticket::durable`]).

use std::sync::Arc;

use serde_json::{Map, Value};
use symbiont_audit::{entry::Record, log::Log, Durable, Error};

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
        self.submit(agent, operation, decision, details)?.await
    }

    /// Signs and queues the entry now, and returns a future that resolves once it is durable:
    /// work that has no effect outside (sealing a message) can overlap the `fdatasync`; the act
    /// itself waits for the future.
    pub fn submit(&self, agent: &str, operation: &str, decision: &str, details: Map<String, Value>) -> Result<Durable, Error> {
        let record = Record { agent: agent.to_string(), operation: operation.to_string(), decision: decision.to_string(), details };
        Ok(self.log.submit(record)?.durable())
    }
}
