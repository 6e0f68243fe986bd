//! `bench/run bus`: the inter-agent bus under 1,000 agents, against a plain in-process channel.
//!
//! In one run:
//! 1. **Throughput.** 1,000 agents on the bus, each sending `--messages` messages to random peers
//!    as fast as the bus takes them (every message encrypted, signed, decided by the sender's and
//!    the recipient's policies, audited twice durably, verified and decrypted), while every agent
//!    receives. The same traffic through one bounded `tokio::sync::mpsc` channel per agent is the
//!    baseline.
//! 2. **Latency.** The same 1,000 agents, paced: `--rate` messages/s in all from random senders
//!    to random peers; the time from `send` to the recipient's `receive` returning, per message,
//!    on the bus and on the channels. The bus's added latency is the difference.
//! 3. **Memory.** RSS before and after starting `--idle` lightweight agents that wait on the bus
//!    (each joined, admitted, running, blocked in `receive`), per agent.
//!
//! The audit log is written (fdatasync'ed, group commit) in a temporary directory under `TMPDIR`
//! (or `--audit-dir`): every message waits for two durable entries, so the disk's `fdatasync`
//! latency is part of the bus's. The same paced traffic then runs on a second bus whose log is in
//! `/dev/shm`: the bus's own latency, so that what the disk adds is measured in the same run.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use serde_json::json;
use symbiont_audit::{keys::FileSigner, Log, LogOptions};
use symbiont_policy::Engine;
use symbiont_runtime::{
    bus::{Bus, BusError},
    local::LocalAgent,
    scheduler::Priority,
    AgentRuntime, Auditor,
};
use symbiont_tests::XorShift;
use tokio::sync::mpsc;

pub const ARGS: &str = "[--agents N] [--messages N] [--rate N] [--seconds S] [--idle N] [--syncs N] [--audit-dir DIR]";

struct Options {
    /// Where the audit log goes (its disk's fdatasync latency is part of the bus's).
    audit_dir: std::path::PathBuf,
    agents: usize,
    messages: usize,
    rate: f64,
    seconds: f64,
    idle: usize,
    /// `fdatasync`s timed for the disk's baseline.
    syncs: usize,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut o =
        Options { audit_dir: std::env::temp_dir(), agents: 1000, messages: 20, rate: 2000.0, seconds: 5.0, idle: 10_000, syncs: 2000 };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--audit-dir" {
            o.audit_dir = args.next().ok_or("`--audit-dir` needs a directory")?.into();
            continue;
        }
        let value =
            args.next().and_then(|v| v.parse::<f64>().ok()).filter(|v| *v > 0.0).ok_or(format!("`{arg}` needs a positive number"))?;
        match arg.as_str() {
            "--agents" => o.agents = value as usize,
            "--messages" => o.messages = value as usize,
            "--rate" => o.rate = value,
            "--seconds" => o.seconds = value,
            "--idle" => o.idle = value as usize,
            "--syncs" => o.syncs = value as usize,
            other => return Err(format!("unknown argument `{other}` (expected {ARGS})")),
        }
    }
    Ok(o)
}

fn open_policy() -> Arc<Engine> {
    let sym = "policy open { allow: [\"send_message\", \"receive_message\"] }\nagent worker { policies = [open] }\n";
    let universe = symbiont_policy::load([("bench.sym", sym)], symbiont_policy::config::Config::default());
    Arc::new(Engine::compile(universe.effective(Some("worker")).expect("the agent exists")))
}

fn name(i: usize) -> String {
    format!("agent{i}")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The disk's own `fdatasync` latency, the floor under every durable entry: `count` times, one
/// `record_bytes` record appended to a file in `dir` (beside the audit log, so on its filesystem)
/// and `fdatasync`ed, as the log's committer does with a batch. In µs.
pub(crate) fn fdatasync_latencies(dir: &std::path::Path, record_bytes: usize, count: usize) -> Result<Vec<f64>, String> {
    use std::io::Write;
    let path = dir.join("fdatasync-baseline");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut record = vec![b'x'; record_bytes.max(2)];
    *record.last_mut().expect("not empty") = b'\n';
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        file.write_all(&record).and_then(|()| file.sync_data()).map_err(|e| format!("{}: {e}", path.display()))?;
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
    }
    Ok(latencies)
}

/// The mean size of an entry in the log at `log_dir`: what one message's entries look like.
fn mean_entry_bytes(log_dir: &std::path::Path, entries: u64) -> usize {
    let segments = std::fs::read_dir(log_dir.join("segments")).into_iter().flatten().flatten();
    let bytes: u64 = segments.filter_map(|s| s.metadata().ok()).map(|m| m.len()).sum();
    (bytes / entries.max(1)) as usize
}

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

/// Moves `total` messages among `agents` endpoints with `send`/`receive`; returns the elapsed
/// time and each message's latency in µs. `pace`: messages per second, or flat out.
async fn traffic<S, R>(agents: usize, total: usize, pace: Option<f64>, send: S, receive: R) -> (Duration, Vec<f64>)
where
    S: Fn(usize, usize, u64) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync + 'static,
    R: Fn(usize) -> futures_util::future::BoxFuture<'static, Option<u64>> + Send + Sync + 'static,
{
    let epoch = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let (latency_tx, mut latency_rx) = mpsc::unbounded_channel::<f64>();
    let receive = Arc::new(receive);
    let receivers: Vec<_> = (0..agents)
        .map(|i| {
            let (receive, received, latency_tx) = (receive.clone(), received.clone(), latency_tx.clone());
            tokio::spawn(async move {
                while received.load(Ordering::Relaxed) < total as u64 {
                    if let Some(sent_ns) = receive(i).await {
                        let now = epoch.elapsed().as_nanos() as u64;
                        let _ = latency_tx.send(now.saturating_sub(sent_ns) as f64 / 1e3);
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    drop(latency_tx);
    let send = Arc::new(send);
    let started = Instant::now();
    match pace {
        None => {
            let per_agent = total / agents;
            let senders: Vec<_> = (0..agents)
                .map(|i| {
                    let send = send.clone();
                    tokio::spawn(async move {
                        let mut rng = XorShift::new(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
                        for _ in 0..per_agent {
                            let mut to = rng.below(agents);
                            if to == i {
                                to = (to + 1) % agents;
                            }
                            send(i, to, epoch.elapsed().as_nanos() as u64).await;
                        }
                    })
                })
                .collect();
            for s in senders {
                let _ = s.await;
            }
        }
        Some(rate) => {
            let mut rng = XorShift::new(0x2545_F491_4F6C_DD1D);
            let interval = Duration::from_secs_f64(1.0 / rate);
            let mut next = Instant::now();
            let mut in_flight = Vec::with_capacity(total);
            for _ in 0..total {
                tokio::time::sleep_until(next.into()).await;
                next += interval;
                let from = rng.below(agents);
                let to = (from + 1 + rng.below(agents - 1)) % agents;
                let send = send.clone();
                in_flight.push(tokio::spawn(async move { send(from, to, epoch.elapsed().as_nanos() as u64).await }));
            }
            for s in in_flight {
                let _ = s.await;
            }
        }
    }
    let mut latencies = Vec::with_capacity(total);
    while latencies.len() < total {
        match tokio::time::timeout(Duration::from_secs(60), latency_rx.recv()).await {
            Ok(Some(l)) => latencies.push(l),
            _ => break,
        }
    }
    let elapsed = started.elapsed();
    for r in receivers {
        r.abort();
    }
    latencies.sort_by(f64::total_cmp);
    (elapsed, latencies)
}

/// One bounded channel per agent: the senders, and each receiver behind a lock.
type Channels = (Arc<Vec<mpsc::Sender<u64>>>, Arc<Vec<tokio::sync::Mutex<mpsc::Receiver<u64>>>>);

fn channels(agents: usize) -> Channels {
    let (tx, rx): (Vec<_>, Vec<_>) = (0..agents).map(|_| mpsc::channel::<u64>(256)).unzip();
    (Arc::new(tx), Arc::new(rx.into_iter().map(tokio::sync::Mutex::new).collect()))
}

async fn baseline(agents: usize, total: usize, pace: Option<f64>) -> (Duration, Vec<f64>) {
    let (tx, rx) = channels(agents);
    traffic(
        agents,
        total,
        pace,
        move |_, to, t| {
            let tx = tx.clone();
            Box::pin(async move {
                let _ = tx[to].send(t).await;
            })
        },
        move |i| {
            let rx = rx.clone();
            Box::pin(
                async move { tokio::time::timeout(Duration::from_secs(1), async { rx[i].lock().await.recv().await }).await.ok().flatten() },
            )
        },
    )
    .await
}

async fn on_bus(bus: Arc<Bus>, agents: usize, total: usize, pace: Option<f64>) -> (Duration, Vec<f64>) {
    let sender = bus.clone();
    traffic(
        agents,
        total,
        pace,
        move |from, to, t| {
            let bus = sender.clone();
            Box::pin(async move {
                loop {
                    match bus.send(&name(from), &name(to), &json!(t)).await {
                        Ok(_) => return,
                        Err(BusError::Full(_)) => tokio::task::yield_now().await,
                        Err(e) => panic!("send failed: {e}"),
                    }
                }
            })
        },
        move |i| {
            let bus = bus.clone();
            Box::pin(async move { bus.receive(&name(i), Duration::from_secs(1)).await.ok().flatten().and_then(|m| m.payload.as_u64()) })
        },
    )
    .await
}

/// A bus of `agents` agents under `policy` whose audit log is in a fresh directory under `parent`.
fn open_bus(
    parent: &std::path::Path,
    agents: usize,
    policy: &Arc<Engine>,
) -> Result<(std::path::PathBuf, Arc<Log>, Auditor, Arc<Bus>), String> {
    let dir = parent.join(format!("symbiont-bench-bus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let signer = Arc::new(FileSigner::generate().map_err(|e| e.to_string())?);
    let (log, _) = Log::open(&dir.join("audit"), signer, LogOptions::default()).map_err(|e| e.to_string())?;
    let log = Arc::new(log);
    let auditor = Auditor::new(log.clone());
    let bus = Arc::new(Bus::new(auditor.clone()));
    for i in 0..agents {
        bus.join(&name(i), policy.clone(), symbiont_policy::Value::from(json!({ "agent": name(i) })));
    }
    Ok((dir, log, auditor, bus))
}

/// The same paced traffic on a bus whose log is in memory (`/dev/shm`), after the same warm-up:
/// the bus's own latency, without the disk. `None` (and said) without `/dev/shm`.
async fn paced_in_memory(o: &Options, policy: &Arc<Engine>, paced: usize) -> Result<Option<Vec<f64>>, String> {
    let shm = std::path::Path::new("/dev/shm");
    if !shm.is_dir() {
        println!("  (no /dev/shm: the bus with its log in memory is not measured)");
        return Ok(None);
    }
    let (dir, log, auditor, bus) = open_bus(shm, o.agents, policy)?;
    let _ = on_bus(bus.clone(), o.agents, o.agents, None).await;
    let (_, latencies) = on_bus(bus.clone(), o.agents, paced, Some(o.rate)).await;
    drop((bus, auditor));
    if let Ok(log) = Arc::try_unwrap(log) {
        let _ = log.close();
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Some(latencies))
}

pub fn run(args: &[String]) -> Result<(), String> {
    let o = options(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let policy = open_policy();
        let (dir, log, auditor, bus) = open_bus(&o.audit_dir, o.agents, &policy)?;
        let total = o.agents * o.messages;
        println!("bus: {} agents, {} workers; audit log in {}", o.agents, tokio::runtime::Handle::current().metrics().num_workers(), dir.display());

        // Warm-up (page in, key derivations per pair happen lazily either way).
        let _ = on_bus(bus.clone(), o.agents, o.agents, None).await;
        let (base_time, _) = baseline(o.agents, total, None).await;
        let (bus_time, _) = on_bus(bus.clone(), o.agents, total, None).await;
        let msgs_per_s = total as f64 / bus_time.as_secs_f64();
        let base_per_s = total as f64 / base_time.as_secs_f64();
        println!("\nthroughput, {total} messages flat out:");
        println!("  {:<28} {:>12.0} msgs/s", "mpsc channels (baseline)", base_per_s);
        println!("  {:<28} {:>12.0} msgs/s  (2 durable audit entries each)", "bus", msgs_per_s);

        let paced = (o.rate * o.seconds) as usize;
        // The disk's floor, half just before the bus's paced traffic and half just after, so
        // that a disk whose latency drifts (other work on the machine) is sampled around it.
        let (_, base_lat) = baseline(o.agents, paced, Some(o.rate)).await;
        let entry_bytes = mean_entry_bytes(&dir.join("audit"), log.commit_stats().entries);
        let mut sync_lat = fdatasync_latencies(&dir, entry_bytes, o.syncs / 2)?;
        let (_, bus_lat) = on_bus(bus.clone(), o.agents, paced, Some(o.rate)).await;
        sync_lat.extend(fdatasync_latencies(&dir, entry_bytes, o.syncs - o.syncs / 2)?);
        sync_lat.sort_by(f64::total_cmp);
        let memory_lat = paced_in_memory(&o, &policy, paced).await?;
        println!("\nlatency, {paced} messages at {:.0}/s among {} agents (µs, send → receive):", o.rate, o.agents);
        println!("  {:<28} {:>10} {:>10} {:>10}", "", "p50", "p99", "max");
        let mut rows = vec![("mpsc channels (baseline)", &base_lat), ("bus", &bus_lat)];
        rows.extend(memory_lat.as_ref().map(|lat| ("bus, its log in /dev/shm", lat)));
        for (label, lat) in rows {
            println!("  {:<28} {:>10.1} {:>10.1} {:>10.1}", label, percentile(lat, 50.0), percentile(lat, 99.0), lat.last().copied().unwrap_or(0.0));
        }
        let stats = log.commit_stats();
        println!("  audit log: {} entries in {} batches, {} fdatasyncs", stats.entries, stats.batches, stats.syncs);
        let (sync_p50, sync_p99) = (percentile(&sync_lat, 50.0), percentile(&sync_lat, 99.0));
        println!(
            "  {:<28} {:>10.1} {:>10.1} {:>10.1}  ({} × write {entry_bytes} B + fdatasync beside the log, half before the bus's run, half after)",
            "disk's fdatasync (floor)",
            sync_p50,
            sync_p99,
            sync_lat.last().copied().unwrap_or(0.0),
            o.syncs
        );

        // Idle lightweight agents: joined, admitted, blocked in receive.
        let mut agents_runtime = AgentRuntime::empty(auditor.clone());
        // All of them running at once, not queued behind the default limit.
        agents_runtime.set_concurrency(1, o.idle);
        let before = rss_kb();
        let handles: Vec<_> = (0..o.idle)
            .map(|i| {
                let agent = LocalAgent {
                    name: format!("idle{i}"),
                    policy: policy.clone(),
                    priority: Priority::Normal,
                    timeout: Duration::from_secs(600),
                    context: Default::default(),
                };
                agents_runtime.spawn_local(agent, |cx| async move {
                    let _ = cx.receive(Duration::from_secs(600)).await;
                    Ok(())
                })
            })
            .collect();
        // Every one is running once its lifecycle entries are in.
        let expected = stats.entries + 3 * o.idle as u64;
        let deadline = Instant::now() + Duration::from_secs(120);
        while log.commit_stats().entries < expected {
            if Instant::now() > deadline {
                return Err(format!("the {} idle agents did not all start within 2 minutes", o.idle));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = rss_kb();
        let per_agent_kb = (after.saturating_sub(before)) as f64 / o.idle as f64;
        println!("\nmemory: {} idle lightweight agents: RSS {:.1} → {:.1} MB, {per_agent_kb:.1} kB per agent", o.idle, before as f64 / 1024.0, after as f64 / 1024.0);
        for h in &handles {
            h.cancel();
        }
        for h in handles {
            let _ = h.wait().await;
        }
        drop(agents_runtime);
        drop(bus);
        drop(auditor);
        if let Ok(log) = Arc::try_unwrap(log) {
            let _ = log.close();
        }
        let _ = std::fs::remove_dir_all(&dir);

        let p50 = percentile(&bus_lat, 50.0);
        let p99 = percentile(&bus_lat, 99.0);
        let base_p99 = percentile(&base_lat, 99.0);
        let added_p99 = p99 - base_p99;
        // What the disk adds at p99 over the same bus with its log in memory, in fdatasyncs.
        let memory = memory_lat.map_or(String::new(), |lat| {
            let memory_p99 = percentile(&lat, 99.0);
            format!(" memory_p99_us={memory_p99:.1} disk_added_p99_vs_fdatasync={:.2}", (p99 - memory_p99) / sync_p99)
        });
        println!(
            "\nRESULT bus agents={} msgs_per_s={msgs_per_s:.0} p50_us={p50:.1} p99_us={p99:.1} baseline_p99_us={base_p99:.1} rss_per_agent_kb={per_agent_kb:.1} baseline_msgs_per_s={base_per_s:.0} added_p99_us={added_p99:.1} fdatasync_p50_us={sync_p50:.1} fdatasync_p99_us={sync_p99:.1} added_p99_vs_fdatasync={:.2}{memory}",
            o.agents,
            added_p99 / sync_p99
        );
        Ok(())
    })
}
