//! The inter-agent bus and the scheduler, in process (no sandbox needed): tampering, replay,
//! policy on both sides, order per pair under concurrent senders, back-pressure, stopped agents,
//! and 1,000 lightweight agents exchanging messages through one runtime.

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde_json::{json, Value};
use symbiont_audit::{
    keys::FileSigner,
    verify::{verify_log_each, VerifyOptions},
    Log, LogOptions,
};
use symbiont_policy::Engine;
use symbiont_runtime::{
    bus::{Bus, BusError},
    local::LocalAgent,
    scheduler::Priority,
    AgentRuntime, Auditor, State,
};

/// An audit log in a temporary directory, and a way to read it back once it is closed.
struct Audit {
    dir: tempfile::TempDir,
    log: Option<Arc<Log>>,
}

impl Audit {
    fn new() -> Audit {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = Log::open(&dir.path().join("audit"), Arc::new(FileSigner::generate().unwrap()), LogOptions::default()).unwrap();
        Audit { dir, log: Some(Arc::new(log)) }
    }

    fn auditor(&self) -> Auditor {
        Auditor::new(self.log.clone().unwrap())
    }

    /// Every entry, after verifying the whole log (signatures, chain, checkpoints).
    fn entries(&mut self) -> Vec<Value> {
        if let Some(log) = self.log.take() {
            if let Ok(log) = Arc::try_unwrap(log) {
                log.close().unwrap();
            }
        }
        let mut entries = Vec::new();
        let mut keep = |entry, _| entries.push(serde_json::to_value(entry).unwrap());
        let report = verify_log_each(&self.dir.path().join("audit"), &VerifyOptions::default(), &mut keep).unwrap();
        assert!(report.finding.is_none(), "the log verifies: {:?}", report.finding);
        entries
    }
}

/// Compiled policies of the agents in `sym`, by name.
fn policies(sym: &str) -> HashMap<String, Arc<Engine>> {
    let universe = symbiont_policy::load([("agents.sym", sym)], symbiont_policy::config::Config::default());
    universe.agents().map(|a| (a.name.clone(), Arc::new(Engine::compile(universe.effective(Some(&a.name)).unwrap())))).collect()
}

const AGENTS: &str = r#"
agent alice { policy p { allow: ["send_message", "receive_message"] } }
agent bob { policy p { allow: ["send_message", "receive_message"] deny: receive_message(from) if from == "mallory" } }
agent mallory { policy p { allow: ["send_message", "receive_message"] } }
agent mute { policy p { allow: ["receive_message"] } }
"#;

fn bus_with(audit: &Audit, capacity: usize, send_timeout: Duration) -> Bus {
    let bus = Bus::with_limits(audit.auditor(), capacity, send_timeout);
    for (name, policy) in policies(AGENTS) {
        bus.join(&name, policy, symbiont_policy::Value::from(json!({ "agent": name })));
    }
    bus
}

fn of<'a>(entries: &'a [Value], operation: &str, decision: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["operation"] == operation && e["decision"] == decision).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_replayed_and_refused_messages_never_arrive() {
    let mut audit = Audit::new();
    let bus = bus_with(&audit, 16, Duration::from_secs(1));
    let wait = Duration::from_millis(200);

    // A genuine message arrives, with its payload.
    assert_eq!(bus.send("alice", "bob", &json!({"hello": 1})).await, Ok(1));
    let genuine = bus.take("bob").await.expect("queued");
    bus.deliver(genuine.clone()).await.unwrap();
    let delivered = bus.receive("bob", wait).await.unwrap().expect("delivered");
    assert_eq!((delivered.from.as_str(), delivered.seq, &delivered.payload), ("alice", 1, &json!({"hello": 1})));

    // The same envelope again: a replay.
    bus.deliver(genuine.clone()).await.unwrap();
    assert_eq!(bus.receive("bob", wait).await.unwrap(), None);

    // A flipped ciphertext byte, then a flipped signature byte.
    bus.send("alice", "bob", &json!("second")).await.unwrap();
    let mut tampered = bus.take("bob").await.unwrap();
    let untouched = tampered.clone();
    tampered.ciphertext[0] ^= 0x01;
    bus.deliver(tampered).await.unwrap();
    assert_eq!(bus.receive("bob", wait).await.unwrap(), None);
    let mut forged = untouched.clone();
    forged.signature[10] ^= 0x80;
    bus.deliver(forged).await.unwrap();
    assert_eq!(bus.receive("bob", wait).await.unwrap(), None);
    // Re-addressed to someone else, and claiming another sender.
    let mut readdressed = untouched.clone();
    readdressed.to = "mute".into();
    bus.deliver(readdressed).await.unwrap();
    assert_eq!(bus.receive("mute", wait).await.unwrap(), None);
    let mut spoofed = untouched.clone();
    spoofed.from = "mallory".into();
    bus.deliver(spoofed).await.unwrap();
    assert_eq!(bus.receive("bob", wait).await.unwrap(), None);
    // The untouched one still arrives: rejections consumed nothing of the pair.
    bus.deliver(untouched).await.unwrap();
    assert_eq!(bus.receive("bob", wait).await.unwrap().unwrap().payload, json!("second"));

    // The sender's policy denies: nothing is queued for the peer.
    assert!(matches!(bus.send("mute", "alice", &json!("hi")).await, Err(BusError::Denied(_))));
    assert_eq!(bus.take("alice").await, None);
    // The recipient's policy refuses this sender: consumed, not delivered.
    bus.send("mallory", "bob", &json!("let me in")).await.unwrap();
    assert_eq!(bus.receive("bob", wait).await.unwrap(), None);
    // Unknown peers.
    assert_eq!(bus.send("alice", "nobody", &json!(1)).await, Err(BusError::UnknownAgent("nobody".into())));
    drop(bus);

    let entries = audit.entries();
    let rejected: Vec<&str> = of(&entries, "receive_message", "reject").iter().map(|e| e["details"]["reason"].as_str().unwrap()).collect();
    assert_eq!(
        rejected,
        [
            "a replay or duplicate of a message already received",
            "the sender's signature does not verify",
            // Re-addressing, and claiming another sender, change the signed header.
            "the sender's signature does not verify",
            "the sender's signature does not verify",
            "the sender's signature does not verify",
        ]
    );
    assert_eq!(of(&entries, "send_message", "deny").len(), 1);
    // Allowed, and going nowhere: the entry says so.
    let (nowhere, sent): (Vec<&Value>, Vec<&Value>) =
        of(&entries, "send_message", "allow").into_iter().partition(|e| e["details"]["to"] == "nobody");
    assert_eq!(nowhere.len(), 1);
    assert_eq!(nowhere[0]["details"]["undelivered"], "no running agent `nobody`: the message was not delivered");
    assert!(sent.iter().all(|e| e["details"].get("undelivered").is_none()), "{sent:#?}");
    let refused = of(&entries, "receive_message", "deny");
    assert_eq!((refused.len(), refused[0]["details"]["from"].as_str()), (1, Some("mallory")));
    assert_eq!(of(&entries, "receive_message", "allow").len(), 2);
    // Metadata only: no payload in the log.
    let text = serde_json::to_string(&entries).unwrap();
    assert!(!text.contains("hello") && !text.contains("let me in"), "payloads stay out of the audit log");
}

const OPEN: &str = r#"
policy open { allow: ["send_message", "receive_message"] }
agent worker { policies = [open] }
"#;

/// One open policy, shared by many agents (the env says who is who).
fn open_policy() -> Arc<Engine> {
    policies(OPEN).remove("worker").unwrap()
}

fn join_open(bus: &Bus, names: &[&str]) {
    let policy = open_policy();
    for name in names {
        bus.join(name, policy.clone(), symbiont_policy::Value::from(json!({ "agent": name })));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_holds_per_pair_under_concurrent_senders() {
    let audit = Audit::new();
    let bus = Arc::new(Bus::with_limits(audit.auditor(), 32, Duration::from_secs(10)));
    join_open(&bus, &["s1", "s2", "s3", "s4", "r"]);
    // Two tasks per sender, 100 messages each, all at once, into a small inbox.
    let senders: Vec<_> = (0..8)
        .map(|task| {
            let bus = bus.clone();
            let from = ["s1", "s2", "s3", "s4"][task % 4];
            tokio::spawn(async move {
                for i in 0..100 {
                    bus.send(from, "r", &json!({ "task": task, "i": i })).await.unwrap();
                }
            })
        })
        .collect();
    let mut received = Vec::new();
    while received.len() < 800 {
        received.push(bus.receive("r", Duration::from_secs(10)).await.unwrap().expect("all 800 arrive"));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    let mut last_seq: HashMap<String, u64> = HashMap::new();
    let mut last_i: HashMap<u64, i64> = HashMap::new();
    for message in &received {
        let seq = last_seq.entry(message.from.clone()).or_insert(0);
        assert_eq!(message.seq, *seq + 1, "per pair, in order and without gaps");
        *seq = message.seq;
        let (task, i) = (message.payload["task"].as_u64().unwrap(), message.payload["i"].as_i64().unwrap());
        let last = last_i.entry(task).or_insert(-1);
        assert!(i > *last, "each task's messages in the order it sent them");
        *last = i;
    }
    assert_eq!(last_seq.values().copied().collect::<Vec<_>>().iter().sum::<u64>(), 800);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_inbox_pushes_back_and_a_stopped_agent_drains_with_errors() {
    let mut audit = Audit::new();
    let bus = Arc::new(Bus::with_limits(audit.auditor(), 2, Duration::from_millis(300)));
    join_open(&bus, &["a", "b"]);
    bus.send("a", "b", &json!(1)).await.unwrap();
    bus.send("a", "b", &json!(2)).await.unwrap();
    // Full: the sender waits, then gives up.
    let started = std::time::Instant::now();
    assert_eq!(bus.send("a", "b", &json!(3)).await, Err(BusError::Full("b".into())));
    assert!(started.elapsed() >= Duration::from_millis(250));
    // A sender waiting for room when the recipient stops gets an error, not a hang.
    let waiting = {
        let bus = Arc::new(Bus::with_limits(audit.auditor(), 1, Duration::from_secs(60)));
        join_open(&bus, &["c", "d"]);
        bus.send("c", "d", &json!(1)).await.unwrap();
        let sender = {
            let bus = bus.clone();
            tokio::spawn(async move { bus.send("c", "d", &json!(2)).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        bus.leave("d").await;
        tokio::time::timeout(Duration::from_secs(5), sender).await.expect("the waiting send ends").unwrap()
    };
    assert_eq!(waiting, Err(BusError::Stopped("d".into())));
    // b stops with two messages queued: each is audited as undelivered; later sends fail at once.
    bus.leave("b").await;
    assert_eq!(bus.send("a", "b", &json!(4)).await, Err(BusError::Stopped("b".into())));
    assert_eq!(bus.receive("b", Duration::from_millis(10)).await, Err(BusError::NotMember("b".into())));
    drop(bus);
    let entries = audit.entries();
    let undelivered: Vec<&Value> = of(&entries, "receive_message", "undelivered");
    assert_eq!(undelivered.len(), 3, "b's two and d's one: {entries:#?}");
}

/// 1,000 lightweight agents in one runtime, each sending to five peers and receiving from five,
/// every send and receive decided and audited, the whole log verifying at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_agents_exchange_messages() {
    const AGENTS: usize = 1000;
    const FANOUT: usize = 5;
    let mut audit = Audit::new();
    let runtime = AgentRuntime::empty(audit.auditor());
    let policy = open_policy();
    let handles: Vec<_> = (0..AGENTS)
        .map(|i| {
            let agent = LocalAgent {
                name: format!("agent{i}"),
                policy: policy.clone(),
                priority: [Priority::Low, Priority::Normal, Priority::High][i % 3],
                timeout: Duration::from_secs(60),
                context: Default::default(),
            };
            runtime.spawn_local(agent, move |cx| async move {
                for k in 1..=FANOUT {
                    // Peers may still be starting: an unknown peer is retried.
                    let peer = format!("agent{}", (i + k * 7) % AGENTS);
                    loop {
                        match cx.send(&peer, &json!({ "from": i, "k": k })).await {
                            Ok(_) => break,
                            Err(BusError::UnknownAgent(_)) => tokio::time::sleep(Duration::from_millis(5)).await,
                            Err(e) => return Err(e.to_string()),
                        }
                    }
                }
                let mut got = 0;
                while got < FANOUT {
                    match cx.receive(Duration::from_secs(30)).await.map_err(|e| e.to_string())? {
                        Some(_) => got += 1,
                        None => return Err(format!("{} received {got} of {FANOUT}", cx.name())),
                    }
                }
                Ok(())
            })
        })
        .collect();
    // One more, cancelled while it waits for a message that never comes.
    let lonely = runtime.spawn_local(
        LocalAgent {
            name: "lonely".into(),
            policy: policy.clone(),
            priority: Priority::Normal,
            timeout: Duration::from_secs(60),
            context: Default::default(),
        },
        |cx| async move {
            cx.receive(Duration::from_secs(60)).await.map_err(|e| e.to_string())?;
            Ok(())
        },
    );
    let mut states = HashMap::new();
    for handle in handles {
        let report = handle.wait().await;
        assert_eq!(report.state, State::Completed, "{report:?}");
        *states.entry(report.state).or_insert(0) += 1;
    }
    lonely.cancel();
    assert_eq!(lonely.wait().await.state, State::Killed);
    drop(runtime);
    let entries = audit.entries();
    // A send to a peer not yet on the bus is decided (and audited) before it fails, then retried.
    assert!(of(&entries, "send_message", "allow").len() >= AGENTS * FANOUT);
    assert_eq!(of(&entries, "receive_message", "allow").len(), AGENTS * FANOUT);
    assert_eq!(of(&entries, "lifecycle", "completed").len(), AGENTS);
}

/// A recipient already waiting when a message is sent: the send entry is held for its receipt
/// entry (one `fdatasync` for both), and still nothing is delivered before both are durable,
/// in both directions of every pair (the pair's agreement is computed once, at one end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_to_a_waiting_recipient_arrives_only_once_both_entries_are_durable() {
    let mut audit = Audit::new();
    let log = audit.log.clone().unwrap();
    let bus = Arc::new(Bus::new(audit.auditor()));
    join_open(&bus, &["a", "b"]);
    for round in 0..20u64 {
        let (from, to) = if round % 2 == 0 { ("a", "b") } else { ("b", "a") };
        let receiver = {
            let bus = bus.clone();
            tokio::spawn(async move { bus.receive(to, Duration::from_secs(30)).await })
        };
        // The recipient is in `receive` before the send (it holds its inbox's lock meanwhile).
        tokio::time::sleep(Duration::from_millis(20)).await;
        let sent = bus.send(from, to, &json!(round)).await.unwrap();
        let delivered = receiver.await.unwrap().unwrap().expect("delivered");
        assert_eq!((delivered.from.as_str(), delivered.seq, &delivered.payload), (from, sent, &json!(round)));
        // Each message so far: its send entry and its receipt entry, durable.
        assert!(log.commit_stats().entries >= 2 * (round + 1), "round {round}: {:?}", log.commit_stats());
    }
    drop(log);
    drop(bus);
    let entries = audit.entries();
    assert_eq!((of(&entries, "send_message", "allow").len(), of(&entries, "receive_message", "allow").len()), (20, 20));
}
