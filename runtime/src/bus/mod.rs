//! The inter-agent bus: messages between agents travel only through the runtime, sealed per pair
//! of agents and signed by the sender ([`crypto`]), gated by policy on both sides (`send_message`
//! with the recipient as `to`, `receive_message` with the sender as `from`), delivered in order per
//! pair, with duplicates and replays dropped, through bounded inboxes that push back on senders.
//! Each decision is audited with metadata only (the peer, the sequence number, the size).
//!
//! What the sealing is and is not: the runtime generates and holds every agent's keys, and an
//! agent hands its payload in clear to its broker (inside the runtime), so this is not end-to-end
//! encryption between agents' code. It keeps payloads sealed while they wait in inboxes and makes
//! a tampered, re-addressed, re-attributed or replayed message detectable; the trusted party is the
//! runtime process itself.
//!
//! It must never deliver a message the sender's policy denied or the recipient's policy refuses,
//! a message whose signature or ciphertext does not verify, or the same message twice; and a
//! send to an agent that is unknown or stopped fails at once rather than waiting.

pub mod crypto;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, RwLock,
    },
    time::{Duration, Instant},
};

use serde_json::{json, Map, Value};
use symbiont_policy::Engine;
use tokio::sync::mpsc;

use crate::{
    auditor::Write,
    decision::{self, Decision, Question},
    locks::{lock, read, write},
    Auditor,
};
use crypto::{Identity, PublicIdentity};

/// Undelivered messages an inbox holds before senders wait (then fail with [`BusError::Full`]).
pub const DEFAULT_CAPACITY: usize = 256;
/// How long a sender waits for room in a full inbox.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// A message as it travels: the header in clear, the payload sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub from: String,
    pub to: String,
    /// Per ordered pair, from 1; the AEAD nonce and the replay counter.
    pub seq: u64,
    pub ciphertext: Vec<u8>,
    pub signature: [u8; 64],
}

/// A message delivered to its recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    pub from: String,
    pub seq: u64,
    pub payload: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusError {
    /// The sender is not on the bus (not running).
    NotMember(String),
    /// No running agent has that name.
    UnknownAgent(String),
    /// The recipient stopped; the message was not delivered.
    Stopped(String),
    /// The sender's policy denies the send.
    Denied(String),
    /// The recipient's inbox stayed full for the send timeout.
    Full(String),
    /// The audit log refused the entry, so nothing was done.
    Audit(String),
}

impl std::fmt::Display for BusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BusError::NotMember(a) => write!(f, "agent `{a}` is not on the bus"),
            BusError::UnknownAgent(a) => write!(f, "no running agent `{a}`: the message was not delivered"),
            BusError::Stopped(a) => write!(f, "agent `{a}` has stopped: the message was not delivered"),
            BusError::Denied(why) => f.write_str(why),
            BusError::Full(a) => write!(f, "agent `{a}`'s inbox stayed full: the message was not delivered (try again later)"),
            BusError::Audit(why) => write!(f, "the audit log refused the entry, so nothing was done: {why}"),
        }
    }
}

impl std::error::Error for BusError {}

struct Outgoing {
    next_seq: u64,
    key: chacha20poly1305::ChaCha20Poly1305,
}

struct Incoming {
    last_seq: u64,
    key: chacha20poly1305::ChaCha20Poly1305,
}

struct Member {
    identity: Identity,
    policy: Arc<Engine>,
    env: symbiont_policy::Value,
    inbox: mpsc::Sender<Envelope>,
    receiver: tokio::sync::Mutex<mpsc::Receiver<Envelope>>,
    /// Per recipient; held across sequence numbering and enqueueing, so order holds per pair
    /// however many tasks send at once.
    outgoing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Outgoing>>>>>,
    incoming: Mutex<HashMap<String, Incoming>>,
    /// X25519 agreements with peers by name, with the peer's public key they were made with:
    /// computed once per pair of members, for both directions (the costliest step of a first
    /// message).
    agreements: Mutex<HashMap<String, Agreement>>,
    /// A [`Bus::receive`] is waiting for the inbox: the receipt entry of a message sent now
    /// follows its send entry at once.
    receiving: AtomicBool,
    /// When this member last sent to each peer: a peer's message within [`REPLY_WINDOW`] of it
    /// is likely the reply this member is about to wait for.
    last_sent: Mutex<HashMap<String, Instant>>,
}

/// How soon after a member's send to a peer that peer's message to it is taken for a reply the
/// member is about to receive (its `receive` follows its `send` in its own code, while the
/// reply may already be on its way). Such a send entry is held for the receipt as one to a
/// waiting recipient is: at worst the reply is written one `fdatasync` later.
const REPLY_WINDOW: Duration = Duration::from_millis(10);

/// An X25519 agreement with a peer: the peer's public key, and the shared secret.
type Agreement = ([u8; 32], [u8; 32]);

impl Member {
    /// This member sent to `peer` within [`REPLY_WINDOW`].
    fn awaits_reply_from(&self, peer: &str) -> bool {
        lock(&self.last_sent).get(peer).is_some_and(|sent| sent.elapsed() < REPLY_WINDOW)
    }

    /// The X25519 agreement of this member, `own_name`, with `peer`, named `peer_name`. The same
    /// at both ends: whichever end needs it first computes it and leaves it with the other
    /// (`peer_member`, when on the bus), so a pair's first message costs one agreement.
    fn agreement(&self, own_name: &str, peer_name: &str, peer: &PublicIdentity, peer_member: Option<&Member>) -> [u8; 32] {
        let peer_key = peer.agreement.to_bytes();
        if let Some((_, shared)) = lock(&self.agreements).get(peer_name).filter(|(key, _)| *key == peer_key) {
            return *shared;
        }
        let shared = self.identity.agree(peer);
        lock(&self.agreements).insert(peer_name.to_string(), (peer_key, shared));
        if let Some(peer_member) = peer_member {
            let own_key = self.identity.public().agreement.to_bytes();
            lock(&peer_member.agreements).insert(own_name.to_string(), (own_key, shared));
        }
        shared
    }
}

/// Marks a member as waiting in [`Bus::receive`] while alive (also when the wait is dropped).
struct Receiving<'a>(&'a AtomicBool);

impl<'a> Receiving<'a> {
    fn new(flag: &'a AtomicBool) -> Receiving<'a> {
        flag.store(true, Ordering::Relaxed);
        Receiving(flag)
    }
}

impl Drop for Receiving<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// The bus of one runtime.
pub struct Bus {
    members: RwLock<HashMap<String, Arc<Member>>>,
    /// Public identities of every agent that joined, kept after it leaves so that what it sent
    /// can still be verified.
    known: RwLock<HashMap<String, PublicIdentity>>,
    auditor: Auditor,
    capacity: usize,
    send_timeout: Duration,
}

impl Bus {
    pub fn new(auditor: Auditor) -> Bus {
        Bus::with_limits(auditor, DEFAULT_CAPACITY, DEFAULT_SEND_TIMEOUT)
    }

    pub fn with_limits(auditor: Auditor, capacity: usize, send_timeout: Duration) -> Bus {
        Bus { members: RwLock::default(), known: RwLock::default(), auditor, capacity: capacity.max(1), send_timeout }
    }

    fn member(&self, name: &str) -> Option<Arc<Member>> {
        read(&self.members).get(name).cloned()
    }

    /// Puts `agent` on the bus with a fresh identity; its policy decides what it may send and
    /// accept. Returns the identity's public keys (the runtime records them).
    pub fn join(&self, agent: &str, policy: Arc<Engine>, env: symbiont_policy::Value) -> PublicIdentity {
        let identity = Identity::generate();
        let public = identity.public().clone();
        let (inbox, receiver) = mpsc::channel(self.capacity);
        let member = Member {
            identity,
            policy,
            env,
            inbox,
            receiver: tokio::sync::Mutex::new(receiver),
            outgoing: Mutex::default(),
            incoming: Mutex::default(),
            agreements: Mutex::default(),
            receiving: AtomicBool::new(false),
            last_sent: Mutex::default(),
        };
        write(&self.known).insert(agent.to_string(), public.clone());
        write(&self.members).insert(agent.to_string(), Arc::new(member));
        public
    }

    /// Takes `agent` off the bus: later sends fail at once, senders waiting for room fail, and
    /// what was still queued is dropped with an audit entry each (never delivered late).
    pub async fn leave(&self, agent: &str) {
        let Some(member) = write(&self.members).remove(agent) else { return };
        let mut receiver = member.receiver.lock().await;
        receiver.close();
        while let Ok(envelope) = receiver.try_recv() {
            let details = Map::from_iter([
                ("from".to_string(), json!(envelope.from)),
                ("seq".to_string(), json!(envelope.seq)),
                ("reason".to_string(), json!("the recipient stopped before receiving it")),
            ]);
            let _ = self.auditor.record(agent, "receive_message", "undelivered", details).await;
        }
    }

    /// Sends `payload` from `from` to `to`: decided by `from`'s policy and audited first.
    /// Returns the message's sequence number on the pair.
    pub async fn send(&self, from: &str, to: &str, payload: &Value) -> Result<u64, BusError> {
        let sender = self.member(from).ok_or_else(|| BusError::NotMember(from.to_string()))?;
        let plaintext = serde_json::to_vec(payload).expect("JSON values serialize");
        let args = symbiont_policy::Value::from(json!({ "to": to, "recipient": to }));
        let recipient = match self.member(to) {
            Some(member) => Ok(member),
            None if read(&self.known).contains_key(to) => Err(BusError::Stopped(to.to_string())),
            None => Err(BusError::UnknownAgent(to.to_string())),
        };
        let details = |decision: &Decision| {
            let mut details = Map::from_iter([("to".to_string(), json!(to)), ("bytes".to_string(), json!(plaintext.len()))]);
            if let (true, Err(missing)) = (decision.allowed(), &recipient) {
                // Allowed, yet going nowhere: the entry says so, or a sender's retries would read
                // as messages sent.
                details.insert("undelivered".into(), json!(missing.to_string()));
            }
            details
        };
        let question =
            Question { engine: &sender.policy, env: &sender.env, agent: from, operation: "send_message", args: &args, unmet: None };
        // A recipient waiting for its inbox (or about to: this is a reply to its message) writes
        // its receipt entry as soon as the message is in: the send entry waits for it, and one
        // `fdatasync` makes both durable.
        let write = match &recipient {
            Ok(member) if member.receiving.load(Ordering::Relaxed) || member.awaits_reply_from(from) => Write::WithNext,
            _ => Write::Now,
        };
        let (decision, audited) =
            decision::decide_and_submit(&self.auditor, question, write, details).map_err(|e| BusError::Audit(e.to_string()))?;
        if !decision.allowed() {
            audited.await.map_err(|e| BusError::Audit(e.to_string()))?;
            return Err(BusError::Denied(decision.denial(&format!("send_message to `{to}`"), from)));
        }
        let recipient = match recipient {
            Ok(member) => member,
            Err(missing) => {
                // Answered once the entry is durable, as every other send is.
                audited.await.map_err(|e| BusError::Audit(e.to_string()))?;
                return Err(missing);
            }
        };
        let pair = lock(&sender.outgoing).entry(to.to_string()).or_default().clone();
        let mut pair = pair.lock().await;
        let outgoing = pair.get_or_insert_with(|| Outgoing {
            next_seq: 1,
            key: crypto::channel_key(&sender.agreement(from, to, recipient.identity.public(), Some(&recipient)), from, to),
        });
        let seq = outgoing.next_seq;
        let header = crypto::header(from, to, seq);
        let ciphertext = crypto::seal(&outgoing.key, &header, seq, &plaintext);
        let signature = crypto::sign(&sender.identity, &header, &ciphertext);
        let envelope = Envelope { from: from.to_string(), to: to.to_string(), seq, ciphertext, signature };
        // The sealed message may wait in the inbox while the send entry is being written: the
        // recipient hands it to its agent only once its own receipt entry is durable, and the log
        // is durable in order, so the send entry (earlier) is durable by then too. The sender
        // still hears of a failed entry.
        let queued = match tokio::time::timeout(self.send_timeout, recipient.inbox.send(envelope)).await {
            Ok(Ok(())) => {
                outgoing.next_seq += 1;
                lock(&sender.last_sent).insert(to.to_string(), Instant::now());
                Ok(seq)
            }
            Ok(Err(_)) => Err(BusError::Stopped(to.to_string())),
            Err(_) => Err(BusError::Full(to.to_string())),
        };
        drop(pair);
        audited.await.map_err(|e| BusError::Audit(e.to_string()))?;
        queued
    }

    /// Takes the next envelope out of `agent`'s inbox unopened, as a transport forwarding it
    /// elsewhere would; [`Bus::deliver`] puts one in. Neither checks anything: [`Bus::receive`]
    /// does. Tests use the pair to replay and tamper.
    pub async fn take(&self, agent: &str) -> Option<Envelope> {
        let member = self.member(agent)?;
        let mut receiver = member.receiver.lock().await;
        receiver.try_recv().ok()
    }

    /// Hands an envelope to its recipient's inbox as a transport would: no checks here, all of
    /// them on receipt. Tests use it to replay and tamper.
    pub async fn deliver(&self, envelope: Envelope) -> Result<(), BusError> {
        let recipient = self.member(&envelope.to).ok_or_else(|| BusError::UnknownAgent(envelope.to.clone()))?;
        let to = envelope.to.clone();
        recipient.inbox.send(envelope).await.map_err(|_| BusError::Stopped(to))
    }

    /// The next message for `agent` that verifies, is new, and its policy accepts; waits up to
    /// `wait`. Rejected messages are audited and skipped.
    pub async fn receive(&self, agent: &str, wait: Duration) -> Result<Option<Delivered>, BusError> {
        let member = self.member(agent).ok_or_else(|| BusError::NotMember(agent.to_string()))?;
        let deadline = Instant::now() + wait;
        let mut receiver = member.receiver.lock().await;
        loop {
            let receiving = Receiving::new(&member.receiving);
            let envelope = tokio::time::timeout_at(deadline.into(), receiver.recv()).await;
            drop(receiving);
            let envelope = match envelope {
                Err(_) => return Ok(None),
                Ok(None) => return Err(BusError::Stopped(agent.to_string())),
                Ok(Some(envelope)) => envelope,
            };
            if let Some(delivered) = self.accept(agent, &member, envelope).await? {
                return Ok(Some(delivered));
            }
        }
    }

    /// Checks one envelope for `agent`: signature, freshness, decryption, policy.
    async fn accept(&self, agent: &str, member: &Member, envelope: Envelope) -> Result<Option<Delivered>, BusError> {
        let Envelope { from, to, seq, ciphertext, signature } = envelope;
        let mut details = Map::from_iter([("from".to_string(), json!(from)), ("seq".to_string(), json!(seq))]);
        let sender = read(&self.known).get(&from).cloned();
        let header = crypto::header(&from, &to, seq);
        let rejection = if to != agent {
            Some("addressed to another agent")
        } else if sender.as_ref().is_none_or(|s| !crypto::verify(s, &header, &ciphertext, &signature)) {
            Some("the sender's signature does not verify")
        } else {
            None
        };
        let plaintext = match (rejection, sender) {
            (None, Some(sender)) => {
                if !lock(&member.incoming).contains_key(&from) {
                    let shared = member.agreement(agent, &from, &sender, self.member(&from).as_deref());
                    let key = crypto::channel_key(&shared, &from, &to);
                    lock(&member.incoming).insert(from.clone(), Incoming { last_seq: 0, key });
                }
                let mut incoming = lock(&member.incoming);
                let pair = incoming.get_mut(&from).expect("inserted above");
                if seq <= pair.last_seq {
                    Err("a replay or duplicate of a message already received")
                } else {
                    crypto::open(&pair.key, &header, seq, &ciphertext).ok_or("the ciphertext does not authenticate")
                }
            }
            _ => Err(rejection.unwrap_or("unknown sender")),
        };
        let plaintext = match plaintext {
            Ok(plaintext) => plaintext,
            Err(why) => {
                details.insert("reason".into(), json!(why));
                self.auditor.record(agent, "receive_message", "reject", details).await.map_err(|e| BusError::Audit(e.to_string()))?;
                return Ok(None);
            }
        };
        let args = symbiont_policy::Value::from(json!({ "from": from, "sender": from }));
        details.insert("bytes".into(), json!(plaintext.len()));
        let question = Question { engine: &member.policy, env: &member.env, agent, operation: "receive_message", args: &args, unmet: None };
        let decision =
            decision::decide_and_record(&self.auditor, question, |_| details).await.map_err(|e| BusError::Audit(e.to_string()))?;
        // Only now is the pair's counter advanced: a refused message is still consumed.
        lock(&member.incoming).get_mut(&from).expect("inserted above").last_seq = seq;
        if !decision.allowed() {
            return Ok(None);
        }
        let payload = serde_json::from_slice(&plaintext).unwrap_or(Value::Null);
        Ok(Some(Delivered { from, seq, payload }))
    }
}
