//! What one agent can make its broker hold or write, whatever it sends: connections at once, bytes
//! of request and reply lines in memory, and log entries per run. An agent in a 256 MiB sandbox
//! must not make the host hold gigabytes, run the host out of file descriptors (the audit writer
//! needs them), or fill the disk with its log. Each broker serves one agent's run, so these are
//! per agent and per run.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, Mutex,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

use super::MAX_LINE;
use crate::locks::lock;

/// Connections an agent may hold open to its broker at once (an SDK uses one, or one per thread).
/// One over it is answered `limited` and closed.
pub const MAX_CONNECTIONS: usize = 32;
/// Bytes of request lines being read and of replies waiting to be written that the broker holds
/// for one agent, across all its connections. A line that would take more ends its connection
/// (`limited`); a reply that would is replaced by a `limited` error.
pub const MAX_BUFFERED: usize = 64 << 20;
/// `log` requests a run may make (each one is an audit entry).
pub const MAX_LOG_ENTRIES: usize = 10_000;
/// Bytes of level and message (as kept in the audit entries, JSON-escaped) a run may log.
pub const MAX_LOG_BYTES: usize = 2 << 20;

pub struct Limits {
    connections: Arc<Semaphore>,
    /// Connections refused so far in this run.
    refused: AtomicU64,
    buffered: Semaphore,
    /// Lines and replies refused for want of buffer budget so far in this run.
    squeezed: AtomicU64,
    log: Mutex<LogUse>,
}

#[derive(Default)]
struct LogUse {
    entries: usize,
    bytes: usize,
    exhausted: bool,
}

/// Whether a `log` request may be written.
#[derive(Debug, PartialEq, Eq)]
pub enum LogCharge {
    Allowed,
    /// The first refusal: the one audit entry saying the budget is spent.
    Exhausted,
    Refused,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            refused: AtomicU64::new(0),
            buffered: Semaphore::new(MAX_BUFFERED),
            squeezed: AtomicU64::new(0),
            log: Mutex::default(),
        }
    }
}

impl Limits {
    /// A place for one more connection, held while it lives; or the number of connections
    /// refused in this run, this one included.
    pub fn connection(&self) -> Result<OwnedSemaphorePermit, u64> {
        self.connections.clone().try_acquire_owned().map_err(|_| self.refused.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// `bytes` of the buffer budget, held until the permit drops.
    pub fn hold(&self, bytes: usize) -> Option<SemaphorePermit<'_>> {
        self.buffered.try_acquire_many(u32::try_from(bytes).ok()?).ok()
    }

    /// Counts a line or reply refused for want of buffer budget: how many so far in this run.
    pub fn squeezed(&self) -> u64 {
        self.squeezed.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Charges one `log` entry of `bytes` to the run's budget.
    pub fn log(&self, bytes: usize) -> LogCharge {
        let mut used = lock(&self.log);
        if used.exhausted {
            return LogCharge::Refused;
        }
        if used.entries + 1 > MAX_LOG_ENTRIES || used.bytes + bytes > MAX_LOG_BYTES {
            used.exhausted = true;
            return LogCharge::Exhausted;
        }
        used.entries += 1;
        used.bytes += bytes;
        LogCharge::Allowed
    }
}

/// Whether the `n`th refusal of a kind (a connection, a line) is audited: the 1st, 2nd, 4th, 8th…
/// A flood of them leaves a handful of entries (one per doubling), each with the count so far.
pub fn audited(n: u64) -> bool {
    n.is_power_of_two()
}

/// A request line being read, its memory held against the agent's buffer budget: the budget is
/// taken before the line grows, so what an agent's connections buffer never exceeds it.
pub struct Line<'a> {
    pub bytes: Vec<u8>,
    held: Option<SemaphorePermit<'a>>,
    limits: &'a Limits,
}

impl<'a> Line<'a> {
    pub fn new(limits: &'a Limits) -> Self {
        Line { bytes: Vec::new(), held: None, limits }
    }

    /// Appends `more`, growing the line (by doubling) only within the budget.
    pub fn extend(&mut self, more: &[u8]) -> Result<(), String> {
        let needed = self.bytes.len() + more.len();
        let held = self.held.as_ref().map_or(0, SemaphorePermit::num_permits);
        if needed > held {
            let grown = needed.max(held * 2).max(4096).min(MAX_LINE.max(needed));
            let Some(permit) = self.limits.hold(grown - held) else {
                return Err(format!(
                    "this agent's connections already hold nearly {} MiB of unfinished requests and unread replies: a request \
                     line is not read past that",
                    MAX_BUFFERED >> 20
                ));
            };
            match &mut self.held {
                Some(held) => held.merge(permit),
                None => self.held = Some(permit),
            }
            self.bytes.reserve_exact(grown - self.bytes.len());
        }
        self.bytes.extend_from_slice(more);
        Ok(())
    }

    /// Forgets the line and gives its memory and budget back.
    pub fn clear(&mut self) {
        self.bytes = Vec::new();
        self.held = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_beyond_the_cap_are_refused_and_counted() {
        let limits = Limits::default();
        let held: Vec<_> = (0..MAX_CONNECTIONS).map(|_| limits.connection().unwrap()).collect();
        assert_eq!(limits.connection().unwrap_err(), 1);
        assert_eq!(limits.connection().unwrap_err(), 2);
        drop(held);
        assert!(limits.connection().is_ok());
        let audited: Vec<u64> = (1..=3000).filter(|&n| audited(n)).collect();
        assert_eq!(audited, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]);
    }

    #[test]
    fn lines_take_their_memory_from_the_budget() {
        let limits = Limits::default();
        let chunk = vec![b'x'; 1 << 20];
        let mut lines: Vec<Line> = Vec::new();
        // Partial lines on many connections: the budget runs out at MAX_BUFFERED, not before.
        let mut total = 0;
        'fill: for _ in 0..100 {
            let mut line = Line::new(&limits);
            for _ in 0..16 {
                if line.extend(&chunk).is_err() {
                    lines.push(line);
                    break 'fill;
                }
                total += chunk.len();
            }
            lines.push(line);
        }
        assert!(total <= MAX_BUFFERED && total > MAX_BUFFERED / 2, "{total}");
        assert!(limits.hold(1 << 20).is_none(), "nothing is left for a reply");
        for line in &mut lines {
            line.clear();
        }
        assert!(limits.hold(MAX_BUFFERED).is_some(), "cleared lines give their budget back");
        let mut line = Line::new(&limits);
        line.extend(b"{\"op\":\"log\"}").unwrap();
        assert_eq!(line.bytes, b"{\"op\":\"log\"}");
    }

    #[test]
    fn the_log_budget_is_spent_once() {
        let limits = Limits::default();
        for _ in 0..MAX_LOG_BYTES / 4096 {
            assert_eq!(limits.log(4096), LogCharge::Allowed);
        }
        assert_eq!(limits.log(1), LogCharge::Exhausted);
        assert_eq!(limits.log(1), LogCharge::Refused);
        let limits = Limits::default();
        for _ in 0..MAX_LOG_ENTRIES {
            assert_eq!(limits.log(0), LogCharge::Allowed);
        }
        assert_eq!((limits.log(0), limits.log(0)), (LogCharge::Exhausted, LogCharge::Refused));
    }
}
