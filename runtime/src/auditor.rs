//! The runtime's one way to write the audit log: [`Auditor::record`] returns once the entry is
//! durable, so callers act only after it returns `Ok`. An append that fails refuses the act.

use std::sync::Arc;

use serde_json::{Map, Value};
use symbiont_audit::{entry::Record, log::Log, Error};

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
        let record = Record { agent: agent.to_string(), operation: operation.to_string(), decision: decision.to_string(), details };
        let log = self.log.clone();
        // Signing and fdatasync block: they run on the blocking pool, not on a reactor thread.
        match tokio::task::spawn_blocking(move || log.append(record)).await {
            Ok(result) => result,
            Err(e) => Err(Error::WriterFailed(format!("the audit append task failed: {e}"))),
        }
    }
}
