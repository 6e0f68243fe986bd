//! Messages between running agents, delivered by the runtime: each running agent has a bounded
//! inbox; a send to an agent that is not running is an error, a full inbox pushes back.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use serde_json::Value;
use tokio::sync::mpsc;

/// How many undelivered messages an inbox holds before senders are refused.
pub const INBOX_CAPACITY: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub from: String,
    pub payload: Value,
}

struct Inbox {
    sender: mpsc::Sender<Message>,
    receiver: std::sync::Arc<tokio::sync::Mutex<mpsc::Receiver<Message>>>,
}

#[derive(Default)]
pub struct Mailboxes {
    inboxes: Mutex<HashMap<String, Inbox>>,
    sent: std::sync::atomic::AtomicU64,
}

impl Mailboxes {
    pub fn open(&self, agent: &str) {
        let (sender, receiver) = mpsc::channel(INBOX_CAPACITY);
        let inbox = Inbox { sender, receiver: std::sync::Arc::new(tokio::sync::Mutex::new(receiver)) };
        self.inboxes.lock().unwrap_or_else(|e| e.into_inner()).insert(agent.to_string(), inbox);
    }

    /// Closes the inbox: undelivered messages are dropped, later sends fail.
    pub fn close(&self, agent: &str) {
        self.inboxes.lock().unwrap_or_else(|e| e.into_inner()).remove(agent);
    }

    pub fn send(&self, from: &str, to: &str, payload: Value) -> Result<u64, String> {
        let inboxes = self.inboxes.lock().unwrap_or_else(|e| e.into_inner());
        let inbox = inboxes.get(to).ok_or_else(|| format!("no running agent `{to}`: the message was not delivered"))?;
        inbox.sender.try_send(Message { from: from.to_string(), payload }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => format!("agent `{to}` has {INBOX_CAPACITY} undelivered messages: try again later"),
            mpsc::error::TrySendError::Closed(_) => format!("agent `{to}` has stopped: the message was not delivered"),
        })?;
        Ok(self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1)
    }

    /// The next message for `agent`, waiting up to `wait`.
    pub async fn receive(&self, agent: &str, wait: Duration) -> Option<Message> {
        let receiver = self.inboxes.lock().unwrap_or_else(|e| e.into_inner()).get(agent)?.receiver.clone();
        let mut receiver = receiver.lock().await;
        tokio::time::timeout(wait, receiver.recv()).await.unwrap_or_default()
    }
}
