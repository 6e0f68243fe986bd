//! `bench/run service`: what one long-lived runtime holding many sandboxed agents costs (issue #17,
//! "Must show"), each measurement against its baseline in the same run.
//!
//! 1. **Round trip.** Two Tier 1 Python agents in one `AgentRuntime` (one bus), started together:
//!    `ping` sends a payload to `pong` (`symbiont.send`), `pong` receives it and sends it back,
//!    `ping` receives it. `ping` times each round trip inside its sandbox
//!    (`time.perf_counter_ns`) and prints the samples, which the benchmark reads from its output.
//!    Each message goes sandbox → broker → bus (encrypted, signed, decided by both policies,
//!    audited twice, durably) → broker → sandbox. Baseline: two containers of the same image with
//!    the same settings ping-ponging the same payload over a Unix socket in a directory both
//!    mount, timed the same way.
//! 2. **Idle agents.** Python agents blocked in `symbiont.receive`, started in steps into one
//!    `AgentRuntime` up to `--max-agents` (or until one fails to start); the container's memory
//!    (from its cgroup, as `docker stats` counts it) and this process's RSS growth per agent. Then
//!    all are stopped (cancelled) and the benchmark checks that no container or staging directory
//!    is left.
//!
//! Every container the benchmark starts is removed at its end, also after an error: the runtime's
//! by cancelling their runs, and any left (the runtime's, labelled with this process as owner, or
//! the baseline's, labelled `dev.symbiont.bench`) by force.

use std::{
    collections::HashMap,
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use bollard::{
    query_parameters::{ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder, StatsOptionsBuilder},
    Docker,
};
use futures_util::StreamExt;
use serde_json::{json, Value};
use symbiont_audit::{keys::FileSigner, Log, LogOptions};
use symbiont_runtime::{
    image::{self, ImageKind},
    leftovers::OWNER_PID_LABEL,
    sandbox::{docker::container_body, LaunchSpec, CODE_MOUNT},
    AgentConfig, AgentRuntime, Auditor, Language, Limits, Output, OutputStream, RunError, RunReport, State, Tier, Workspace,
};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use crate::sandbox::{busy_cores, cpu_ticks, median, percentile, BENCH_LABEL};

pub const ARGS: &str =
    "[--round-trips N] [--warmup N] [--payload-bytes N] [--max-agents N] [--step N] [--parts rt,idle] [--audit-dir DIR] [--keep]";

/// The round trip's first agent: finds its peer on the bus, then times `round_trips` round trips
/// after `warmup` untimed ones, and prints the samples (ns), 200 a line.
const PING_PY: &str = r#"import time

import symbiont

cfg = symbiont.input()
peer, payload = cfg["peer"], "x" * cfg["payload_bytes"]
# The peer may not be on the bus yet: a send to an agent that is not running fails.
deadline = time.monotonic() + 120
while True:
    try:
        symbiont.send(peer, payload)
        break
    except symbiont.Failed:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.02)
first = symbiont.receive(30000)
assert first is not None and first.payload == payload, "no first echo"
samples = []
for i in range(cfg["warmup"] + cfg["round_trips"]):
    t0 = time.perf_counter_ns()
    symbiont.send(peer, payload)
    m = symbiont.receive(30000)
    t1 = time.perf_counter_ns()
    if m is None or m.payload != payload:
        raise SystemExit(f"round trip {i}: the echo did not come back ({m!r})")
    if i >= cfg["warmup"]:
        samples.append(t1 - t0)
symbiont.send(peer, None)
for at in range(0, len(samples), 200):
    print("SAMPLES_NS", " ".join(map(str, samples[at : at + 200])))
"#;

/// The round trip's second agent: sends back what it receives, until a `null` payload.
const PONG_PY: &str = r#"import symbiont

while True:
    m = symbiont.receive(30000)
    if m is None:
        continue
    if m.payload is None:
        break
    symbiont.send(m.from_, m.payload)
"#;

/// An idle agent: says it is up once its broker answered, then waits for messages that never come.
const IDLE_PY: &str = r#"import symbiont

symbiont.receive(0)
print("ready", flush=True)
while True:
    symbiont.receive(30000)
"#;

/// The baseline's server: binds the socket in the shared directory, sends back each line.
const RAW_SERVER_PY: &str = r#"import socket

server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind("/shared/pingpong.sock")
server.listen(1)
conn, _ = server.accept()
lines = conn.makefile("rb")
while True:
    line = lines.readline()
    if not line or line == b"stop\n":
        break
    conn.sendall(line)
"#;

/// The baseline's client: the same loop as `ping`, over the raw socket.
const RAW_CLIENT_PY: &str = r#"import socket
import sys
import time

round_trips, warmup, size = map(int, sys.argv[1:4])
payload = b"x" * size + b"\n"
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
deadline = time.monotonic() + 60
while True:
    try:
        sock.connect("/shared/pingpong.sock")
        break
    except (FileNotFoundError, ConnectionRefusedError):
        if time.monotonic() > deadline:
            raise
        time.sleep(0.01)
lines = sock.makefile("rb")
samples = []
for i in range(warmup + round_trips):
    t0 = time.perf_counter_ns()
    sock.sendall(payload)
    line = lines.readline()
    t1 = time.perf_counter_ns()
    if line != payload:
        raise SystemExit(f"round trip {i}: the echo did not come back")
    if i >= warmup:
        samples.append(t1 - t0)
sock.sendall(b"stop\n")
for at in range(0, len(samples), 200):
    print("SAMPLES_NS", " ".join(map(str, samples[at : at + 200])))
"#;

const MB: f64 = 1_000_000.0;

struct Options {
    round_trips: usize,
    warmup: usize,
    payload_bytes: usize,
    max_agents: usize,
    step: usize,
    round_trip: bool,
    idle: bool,
    /// Where the audit log goes (default: the benchmark's directory under `target/tmp`). Every
    /// message waits for its entries to be durable, so the disk's `fdatasync` is in the round trip.
    audit_dir: Option<PathBuf>,
    keep: bool,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        round_trips: 2000,
        warmup: 200,
        payload_bytes: 100,
        max_agents: 200,
        step: 10,
        round_trip: true,
        idle: true,
        audit_dir: None,
        keep: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |what: &str| -> Result<usize, String> {
            let v = args.next().ok_or_else(|| format!("`{arg}` needs {what}"))?;
            v.parse::<usize>().map_err(|_| format!("`{arg}` needs {what}, found `{v}`"))
        };
        match arg.as_str() {
            "--round-trips" => o.round_trips = value("a number of round trips")?.max(1),
            "--warmup" => o.warmup = value("a number of round trips")?,
            "--payload-bytes" => o.payload_bytes = value("a size in bytes")?,
            "--max-agents" => o.max_agents = value("a number of agents")?.max(1),
            "--step" => o.step = value("a number of agents")?.max(1),
            "--keep" => o.keep = true,
            "--audit-dir" => o.audit_dir = Some(args.next().ok_or("`--audit-dir` needs a directory")?.into()),
            "--parts" => {
                let list = args.next().ok_or("`--parts` needs a list such as rt,idle")?;
                (o.round_trip, o.idle) = (false, false);
                for part in list.split(',') {
                    match part.trim() {
                        "rt" => o.round_trip = true,
                        "idle" => o.idle = true,
                        other => return Err(format!("`--parts`: `{other}` is not `rt` or `idle`")),
                    }
                }
            }
            other => return Err(format!("unknown argument `{other}` for `service` (expected {ARGS})")),
        }
    }
    Ok(o)
}

// -------------------------------------------------------------------------------------------------
// Set-up

struct Bench {
    rt: tokio::runtime::Runtime,
    audit: PathBuf,
    docker: Docker,
    image: String,
    /// Agents' code, their workspaces, the audit log, the staging directories, the baseline's files.
    dir: PathBuf,
    /// The one runtime (one bus, one audit log) every agent of the benchmark runs in.
    agents: Arc<AgentRuntime>,
    /// One open policy (`send_message`, `receive_message`) shared by every agent.
    engine: Arc<symbiont_policy::Engine>,
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn chmod(path: &Path, mode: u32) -> Result<(), String> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| format!("{}: {e}", path.display()))
}

fn set_up(options: &Options) -> Result<Bench, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the bench binary: {e}"))?;
    let target = exe.parent().and_then(Path::parent).ok_or("the bench binary is not in <target>/<profile>/")?;
    let dir = target.join("tmp").join(format!("service-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;

    // Two worker threads, as the service has on this machine.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    let docker = rt.block_on(async {
        let docker = Docker::connect_with_local_defaults().map_err(|e| format!("cannot reach dockerd: {e}"))?;
        docker.negotiate_version().await.map_err(|e| format!("dockerd does not answer ({e}): run scripts/sandbox-setup as root"))
    })?;
    let image = image::reference(ImageKind::Python);
    if rt.block_on(docker.inspect_image(&image)).is_err() {
        return Err(format!("image {image} is missing: run `symbiont image build python`"));
    }
    let info = rt.block_on(docker.info()).map_err(|e| format!("docker info: {e}"))?;
    println!(
        "service: dockerd {} (cgroup {}), image {image}, {} cores, load average {}",
        info.server_version.unwrap_or_default(),
        info.cgroup_version.map(|v| v.to_string()).unwrap_or_default(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!("agents, audit log and staging under {}", dir.display());
    let before = cpu_ticks();
    std::thread::sleep(Duration::from_millis(500));
    let idle_busy = busy_cores(before, cpu_ticks());
    println!(
        "busy cores before starting: {idle_busy:.2}{}",
        if idle_busy > 0.3 { " (WARNING: something else is running; the numbers will be slower and noisier)" } else { "" }
    );

    let code = dir.join("agents");
    for (file, text) in [("ping.py", PING_PY), ("pong.py", PONG_PY), ("idle.py", IDLE_PY)] {
        write(&code.join(file), text)?;
    }
    let signer = Arc::new(FileSigner::generate().map_err(|e| e.to_string())?);
    let audit =
        options.audit_dir.as_ref().map_or_else(|| dir.join("audit"), |d| d.join(format!("service-bench-audit-{}", std::process::id())));
    println!("audit log: {}", audit.display());
    let (log, _) = Log::open(&audit, signer, LogOptions::default()).map_err(|e| format!("audit log {}: {e}", audit.display()))?;
    let mut agents = rt.block_on(AgentRuntime::new(Auditor::new(Arc::new(log))));
    agents.set_run_root(dir.join("runs"));
    // Admission must not be what caps the idle agents.
    agents.set_concurrency(options.max_agents + 8, symbiont_runtime::runtime::DEFAULT_LIGHTWEIGHT);

    let sym = "policy open { allow: [\"send_message\", \"receive_message\"] }\nagent worker { policies = [open] }\n";
    let universe = symbiont_policy::load([("bench.sym", sym)], symbiont_policy::config::Config::default());
    let effective = universe.effective(Some("worker")).map_err(|e| format!("the benchmark's policy: {e}"))?;
    let engine = Arc::new(symbiont_policy::Engine::compile(effective));
    Ok(Bench { rt, audit, docker, image, dir, agents: Arc::new(agents), engine })
}

// -------------------------------------------------------------------------------------------------
// Agents in the runtime

/// A run started in the background: its report, and its output once it ends.
struct Spawned {
    run: JoinHandle<Result<RunReport, RunError>>,
    output: JoinHandle<(Vec<u8>, Vec<u8>)>,
}

impl Bench {
    fn config(&self, id: &str, file: &str, input: Value) -> Result<AgentConfig, String> {
        Ok(AgentConfig {
            id: id.into(),
            tier: Tier::Docker,
            // The idle agents live as long as the benchmark needs them.
            limits: Limits { timeout: Duration::from_secs(3600), ..Limits::default() },
            policy: self.engine.clone(),
            language: Language::Python,
            code_root: self.dir.join("agents"),
            files: vec![PathBuf::from(file)],
            workspace: Workspace::for_agent(&self.dir, id)?,
            input,
            context: serde_json::Map::new(),
            env: Default::default(),
            priority: Default::default(),
        })
    }

    /// Starts `config` on the runtime; `stop` turning true (or its sender dropped) cancels it.
    /// When its standard output first says `ready`, `ready` gets its number.
    fn spawn(&self, config: AgentConfig, mut stop: watch::Receiver<bool>, ready: Option<(usize, mpsc::UnboundedSender<usize>)>) -> Spawned {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Output>();
        let agents = self.agents.clone();
        let run = self.rt.spawn(async move {
            let cancel = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            agents.run(config, sender, cancel).await
        });
        let output = self.rt.spawn(async move {
            let (mut stdout, mut stderr, mut ready) = (Vec::new(), Vec::new(), ready);
            while let Some((stream, bytes)) = receiver.recv().await {
                match stream {
                    OutputStream::Stdout => stdout.extend(bytes),
                    OutputStream::Stderr => stderr.extend(bytes),
                }
                if ready.is_some() && stdout.windows(5).any(|w| w == b"ready") {
                    if let Some((n, to)) = ready.take() {
                        let _ = to.send(n);
                    }
                }
            }
            (stdout, stderr)
        });
        Spawned { run, output }
    }

    /// Waits for a spawned run's end and output.
    async fn finish(spawned: Spawned) -> (Result<RunReport, String>, String, String) {
        let report = match spawned.run.await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(e) => Err(format!("the run's task failed: {e}")),
        };
        let (stdout, stderr) = spawned.output.await.unwrap_or_default();
        (report, String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr).into_owned())
    }
}

/// The `SAMPLES_NS` lines of an output, in µs.
fn samples_us(stdout: &str) -> Vec<f64> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("SAMPLES_NS "))
        .flat_map(|l| l.split_whitespace().filter_map(|v| v.parse::<f64>().ok()))
        .map(|ns| ns / 1e3)
        .collect()
}

// -------------------------------------------------------------------------------------------------
// 1. Round trip

fn round_trip(bench: &Bench, options: &Options) -> Result<Vec<f64>, String> {
    let (stop, stopped) = watch::channel(false);
    let input =
        json!({"peer": "pong", "round_trips": options.round_trips, "warmup": options.warmup, "payload_bytes": options.payload_bytes});
    let pong = bench.spawn(bench.config("pong", "pong.py", Value::Null)?, stopped.clone(), None);
    let ping = match bench.config("ping", "ping.py", input) {
        Ok(config) => bench.spawn(config, stopped, None),
        Err(e) => {
            let _ = stop.send(true);
            let _ = bench.rt.block_on(Bench::finish(pong));
            return Err(e);
        }
    };
    let (ping, stdout, stderr) = bench.rt.block_on(Bench::finish(ping));
    // `pong` ends on the `null` that ends `ping`'s loop; if `ping` failed before sending it, the
    // cancel stops `pong`.
    let (pong, _, pong_stderr) = bench.rt.block_on(async {
        let finish = Bench::finish(pong);
        tokio::pin!(finish);
        tokio::select! {
            end = &mut finish => end,
            () = tokio::time::sleep(Duration::from_secs(30)) => {
                let _ = stop.send(true);
                finish.await
            }
        }
    });
    let ping = ping?;
    if ping.state != State::Completed {
        return Err(format!("`ping` ended {:?} ({:?}); its stderr:\n{stderr}", ping.state, ping.error));
    }
    let pong = pong?;
    if pong.state != State::Completed {
        return Err(format!("`pong` ended {:?} ({:?}) after `ping`'s last message; its stderr:\n{pong_stderr}", pong.state, pong.error));
    }
    let samples = samples_us(&stdout);
    if samples.len() != options.round_trips {
        return Err(format!("`ping` printed {} samples, not {}:\n{stdout}", samples.len(), options.round_trips));
    }
    Ok(samples)
}

/// The baseline: two containers of the agents' image, with the agents' settings, ping-ponging the
/// same payload over a Unix socket in a directory both mount.
fn raw_round_trip(bench: &Bench, options: &Options) -> Result<Vec<f64>, String> {
    let code = bench.dir.join("raw/code");
    let shared = bench.dir.join("raw/shared");
    write(&code.join("server.py"), RAW_SERVER_PY)?;
    write(&code.join("client.py"), RAW_CLIENT_PY)?;
    fs::create_dir_all(&shared).map_err(|e| format!("{}: {e}", shared.display()))?;
    for (path, mode) in [(bench.dir.join("raw"), 0o755), (code.clone(), 0o755), (shared.clone(), 0o777)] {
        chmod(&path, mode)?;
    }
    // The socket of the run before.
    let _ = fs::remove_file(shared.join("pingpong.sock"));
    let body = |name: &str, command: Vec<String>| {
        let spec = LaunchSpec {
            run_id: format!("raw-{name}"),
            agent: format!("raw-{name}"),
            image: bench.image.clone(),
            command,
            env: Vec::new(),
            code_dir: code.clone(),
            broker_dir: shared.clone(),
            limits: Limits::default(),
            labels: vec![(BENCH_LABEL.to_string(), std::process::id().to_string())],
        };
        let mut body = container_body(Tier::Docker, &spec);
        if let Some(host) = body.host_config.as_mut() {
            // The code read-only as an agent's; the socket's directory writable (the server binds there).
            host.binds = Some(vec![format!("{}:{CODE_MOUNT}:ro", code.display()), format!("{}:/shared", shared.display())]);
        }
        body
    };
    let server = body("server", vec!["python3".into(), "-u".into(), format!("{CODE_MOUNT}/server.py")]);
    let client = body(
        "client",
        vec![
            "python3".into(),
            "-u".into(),
            format!("{CODE_MOUNT}/client.py"),
            options.round_trips.to_string(),
            options.warmup.to_string(),
            options.payload_bytes.to_string(),
        ],
    );
    let docker = &bench.docker;
    let mut ids = Vec::new();
    let result = bench.rt.block_on(async {
        for body in [server, client] {
            let created = docker.create_container(None::<bollard::query_parameters::CreateContainerOptions>, body).await;
            ids.push(created.map_err(|e| format!("create: {e}"))?.id);
        }
        for id in &ids {
            docker.start_container(id, None).await.map_err(|e| format!("start: {e}"))?;
        }
        let client = &ids[1];
        let options = bollard::query_parameters::WaitContainerOptionsBuilder::default().condition("not-running").build();
        let code = match docker.wait_container(client, Some(options)).next().await {
            Some(Ok(r)) => r.status_code,
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(format!("wait: {e}")),
            None => return Err("wait: no status".to_string()),
        };
        let (stdout, stderr) = logs(docker, client).await?;
        if code != 0 {
            let (_, server) = logs(docker, &ids[0]).await.unwrap_or_default();
            return Err(format!("the baseline's client exited with {code}:\n{stderr}\nthe server's stderr:\n{server}"));
        }
        Ok(samples_us(&stdout))
    });
    for id in &ids {
        let _ = bench.rt.block_on(docker.remove_container(id, Some(RemoveContainerOptionsBuilder::default().force(true).v(true).build())));
    }
    let samples = result?;
    if samples.len() != options.round_trips {
        return Err(format!("the baseline's client printed {} samples, not {}", samples.len(), options.round_trips));
    }
    Ok(samples)
}

async fn logs(docker: &Docker, id: &str) -> Result<(String, String), String> {
    let options = LogsOptionsBuilder::default().stdout(true).stderr(true).build();
    let mut stream = docker.logs(id, Some(options));
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(chunk) = stream.next().await {
        match chunk.map_err(|e| format!("logs: {e}"))? {
            bollard::container::LogOutput::StdOut { message } => stdout.extend_from_slice(&message),
            bollard::container::LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
            _ => {}
        }
    }
    Ok((String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr).into_owned()))
}

// -------------------------------------------------------------------------------------------------
// 2. Idle agents

struct Idle {
    agents: usize,
    /// Why the last step stopped short of the cap, if it did.
    stopped_by: Option<String>,
    /// Mean container memory (cgroup, without inactive file cache), bytes.
    container_bytes: f64,
    /// This process's RSS growth while the agents were started, bytes.
    rss_growth: f64,
    start_seconds: f64,
    /// From the cancel to the last run's return, seconds.
    stop_seconds: f64,
    /// Containers and staging directories found after the stop.
    left: usize,
}

/// This process's resident set, bytes.
fn rss_bytes() -> f64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kb * 1024.0
}

/// The containers this process's runtime made (`all`: stopped ones too).
async fn runtime_containers(docker: &Docker, all: bool) -> Result<Vec<String>, String> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{OWNER_PID_LABEL}={}", std::process::id())])]);
    let options = ListContainersOptionsBuilder::default().all(all).filters(&filters).build();
    let list = docker.list_containers(Some(options)).await.map_err(|e| format!("listing containers: {e}"))?;
    Ok(list.into_iter().filter_map(|c| c.id).collect())
}

/// A container's memory as `docker stats` counts it: its cgroup's usage less the inactive file
/// cache. Read from the cgroup's files (`memory.usage_in_bytes` and `total_inactive_file` on v1,
/// `memory.current` and `inactive_file` on v2) where this process sees them, else asked of dockerd.
async fn container_memory(docker: &Docker, id: &str) -> Result<f64, String> {
    let field = |stat: &str, key: &str| -> u64 {
        stat.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0)
    };
    let v1 = PathBuf::from(format!("/sys/fs/cgroup/memory/docker/{id}"));
    let v2 = [format!("/sys/fs/cgroup/system.slice/docker-{id}.scope"), format!("/sys/fs/cgroup/docker/{id}")].map(PathBuf::from);
    let candidates =
        [(v1, "memory.usage_in_bytes", "total_inactive_file")].into_iter().chain(v2.map(|d| (d, "memory.current", "inactive_file")));
    for (dir, usage, inactive) in candidates {
        if let Ok(usage) = fs::read_to_string(dir.join(usage)) {
            let usage: u64 = usage.trim().parse().map_err(|_| format!("{}: not a number", dir.display()))?;
            let stat = fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
            return Ok(usage.saturating_sub(field(&stat, inactive)) as f64);
        }
    }
    let options = StatsOptionsBuilder::default().stream(false).one_shot(true).build();
    let stats = docker.stats(id, Some(options)).next().await.ok_or("no stats")?.map_err(|e| format!("stats of {id}: {e}"))?;
    let memory = stats.memory_stats.ok_or_else(|| format!("no memory stats for {id}"))?;
    let usage = memory.usage.ok_or_else(|| format!("no memory usage for {id}"))?;
    let stat = memory.stats.unwrap_or_default();
    let inactive = stat.get("total_inactive_file").or_else(|| stat.get("inactive_file")).copied().unwrap_or(0);
    Ok(usage.saturating_sub(inactive) as f64)
}

/// The mean memory of the runtime's running containers, and how many there are.
async fn mean_container_memory(docker: &Docker) -> Result<(f64, usize), String> {
    let ids = runtime_containers(docker, false).await?;
    let each = futures_util::future::join_all(ids.iter().map(|id| container_memory(docker, id))).await;
    let total = each.into_iter().sum::<Result<f64, String>>()?;
    Ok((total / ids.len().max(1) as f64, ids.len()))
}

fn idle(bench: &Bench, options: &Options) -> Result<Idle, String> {
    let (stop, stopped) = watch::channel(false);
    let (ready_to, mut ready) = mpsc::unbounded_channel::<usize>();
    let rss_before = rss_bytes();
    let started = Instant::now();
    let mut runs: Vec<Spawned> = Vec::new();
    let mut up = 0usize;
    let mut stopped_by = None;
    let mut measured = Ok((0.0, 0));
    println!("\nidle agents: Python, blocked in symbiont.receive, started {} at a time up to {}", options.step, options.max_agents);
    println!("{:>7} {:>12} {:>18} {:>18}", "agents", "step s", "container MB avg", "service RSS MB");
    while runs.len() < options.max_agents && stopped_by.is_none() {
        let step_start = Instant::now();
        let target = (runs.len() + options.step).min(options.max_agents);
        while runs.len() < target {
            let n = runs.len();
            match bench.config(&format!("idle{n}"), "idle.py", Value::Null) {
                Ok(config) => runs.push(bench.spawn(config, stopped.clone(), Some((n, ready_to.clone())))),
                Err(e) => {
                    stopped_by = Some(e);
                    break;
                }
            }
        }
        // Every agent of the step says `ready`, or one ends (it could not start), or two minutes pass.
        let waited = bench.rt.block_on(async {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            while up < runs.len() {
                tokio::select! {
                    Some(_) = ready.recv() => up += 1,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {
                        if let Some(n) = runs.iter().position(|r| r.run.is_finished()) {
                            return Err(format!("agent idle{n} ended before it was ready"));
                        }
                        if tokio::time::Instant::now() > deadline {
                            return Err(format!("{} agents of {} were not ready after 120 s", runs.len() - up, runs.len()));
                        }
                    }
                }
            }
            Ok(())
        });
        if let Err(e) = waited {
            stopped_by = Some(e);
            break;
        }
        let step_seconds = step_start.elapsed().as_secs_f64();
        measured = bench.rt.block_on(mean_container_memory(&bench.docker));
        let Ok((mean, _)) = &measured else { break };
        println!("{:>7} {:>12.1} {:>18.1} {:>18.1}", up, step_seconds, mean / MB, rss_bytes() / MB);
    }
    let start_seconds = started.elapsed().as_secs_f64();
    let rss_growth = rss_bytes() - rss_before;

    // Stop them all; each run ends `killed`, its container and staging removed by the runtime.
    let stopping = Instant::now();
    let _ = stop.send(true);
    let ends: Vec<_> = bench.rt.block_on(futures_util::future::join_all(runs.into_iter().map(|run| async move {
        let end = Bench::finish(run).await;
        (end, stopping.elapsed().as_secs_f64())
    })));
    let stop_seconds: Vec<f64> = ends.iter().map(|(_, s)| *s).collect();
    let ends: Vec<_> = ends.into_iter().map(|(end, _)| end).collect();
    let killed = ends.iter().filter(|(r, _, _)| matches!(r, Ok(report) if report.state == State::Killed)).count();
    println!(
        "stopped {} agents ({killed} killed on request): each run returned {:.1} s after the cancel (median), the last {:.1} s",
        ends.len(),
        median(&stop_seconds),
        stop_seconds.iter().copied().fold(0.0, f64::max)
    );
    if let Some((end, _, stderr)) = ends.iter().find(|(r, _, _)| !matches!(r, Ok(report) if report.state == State::Killed)) {
        println!("WARNING: a run did not end by the cancel: {end:?}\n{stderr}");
    }
    let containers = bench.rt.block_on(runtime_containers(&bench.docker, true))?;
    let staged = fs::read_dir(bench.agents.run_root()).map(|d| d.flatten().count()).unwrap_or(0);
    println!("left after the stop: {} containers, {staged} staging directories", containers.len());

    let (container_bytes, measured_count) = measured?;
    if up == 0 {
        return Err(format!("no idle agent started: {}", stopped_by.unwrap_or_default()));
    }
    if measured_count != up {
        println!("WARNING: {measured_count} running containers for {up} ready agents");
    }
    let stop_seconds = stop_seconds.iter().copied().fold(0.0, f64::max);
    Ok(Idle { agents: up, stopped_by, container_bytes, rss_growth, start_seconds, stop_seconds, left: containers.len() + staged })
}

// -------------------------------------------------------------------------------------------------

/// Removes whatever containers of this process are left (the runtime's or the baseline's).
fn clean_up(bench: &Bench, keep: bool) {
    let pid = std::process::id();
    let filters = [format!("{OWNER_PID_LABEL}={pid}"), format!("{BENCH_LABEL}={pid}")];
    let mut left = 0;
    for filter in filters {
        let filters = HashMap::from([("label".to_string(), vec![filter])]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let ids = bench.rt.block_on(bench.docker.list_containers(Some(options))).unwrap_or_default();
        for id in ids.into_iter().filter_map(|c| c.id) {
            left += 1;
            let force = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
            let _ = bench.rt.block_on(bench.docker.remove_container(&id, Some(force)));
        }
    }
    if left > 0 {
        println!("WARNING: {left} containers were left behind (removed now)");
    }
    if !keep {
        let _ = fs::remove_dir_all(&bench.dir);
        let _ = fs::remove_dir_all(&bench.audit);
    }
}

fn print_latency(name: &str, samples: &[f64]) {
    println!(
        "{name:<44} {:>9.0} {:>9.0} {:>9.0} {:>9.0}",
        median(samples),
        percentile(samples, 90.0),
        percentile(samples, 99.0),
        samples.iter().copied().fold(0.0, f64::max)
    );
}

pub fn run(args: &[String]) -> Result<(), String> {
    let options = options(args)?;
    let bench = set_up(&options)?;
    let mut line = String::from("RESULT service");
    let result = (|| -> Result<(), String> {
        if options.round_trip {
            println!(
                "\nround trip: {} timed after {} warm-up, payload {} bytes, timed inside the first container",
                options.round_trips, options.warmup, options.payload_bytes
            );
            // Baseline first, then the runtime, then the baseline again: both see the same machine.
            let raw = raw_round_trip(&bench, &options)?;
            let rt = round_trip(&bench, &options)?;
            let raw_again = raw_round_trip(&bench, &options)?;
            let raw: Vec<f64> = raw.into_iter().chain(raw_again).collect();
            println!("{:<44} {:>9} {:>9} {:>9} {:>9}", "µs", "p50", "p90", "p99", "max");
            print_latency("runtime: sandbox → broker → bus → sandbox", &rt);
            print_latency("raw: two containers over a Unix socket", &raw);
            let (rt_p99, raw_p99) = (percentile(&rt, 99.0), percentile(&raw, 99.0));
            println!("runtime p99 = {:.2} ms (product bound 10 ms, goal ≤ 2 ms), {:.1}× the raw socket's", rt_p99 / 1e3, rt_p99 / raw_p99);
            line += &format!(
                " rt_p50_us={:.1} rt_p99_us={:.1} raw_p50_us={:.1} raw_p99_us={:.1} rt_p99_vs_raw={:.2} round_trips={} payload_bytes={}",
                median(&rt),
                rt_p99,
                median(&raw),
                raw_p99,
                rt_p99 / raw_p99,
                options.round_trips,
                options.payload_bytes
            );
        }
        if options.idle {
            let idle = idle(&bench, &options)?;
            let per_agent = idle.rss_growth / idle.agents as f64;
            println!(
                "{} idle agents held at once{} (started in {:.1} s); per agent: {:.1} MB in its container, {:.2} MB of this process's RSS \
                 (product bound 512 MB, goal ≤ 50 MB)",
                idle.agents,
                idle.stopped_by.as_ref().map_or(" (the cap)".to_string(), |why| format!(", stopped by: {why}")),
                idle.start_seconds,
                idle.container_bytes / MB,
                per_agent / MB,
            );
            line += &format!(
                " idle_agents={} mem_per_agent_mb={:.1} service_mb_per_agent={:.2} idle_cap={} idle_start_s={:.1} idle_stop_s={:.1} left_after_stop={}",
                idle.agents,
                idle.container_bytes / MB,
                per_agent / MB,
                options.max_agents,
                idle.start_seconds,
                idle.stop_seconds,
                idle.left
            );
            if idle.left > 0 {
                return Err(format!("{} containers or staging directories were left after stopping the idle agents", idle.left));
            }
        }
        Ok(())
    })();
    clean_up(&bench, options.keep);
    result?;
    println!("{line}");
    Ok(())
}
