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
//! 3. **First output.** `symbiont run` of a hello agent handed to a `symbiont up --warm 1` service
//!    of its workspace, from spawning the process to the first byte of its standard output; the
//!    same run without a service (cold); baseline: `docker run --rm IMAGE python3 -c 'print(1)'`
//!    to its first byte, through the docker CLI.
//!
//! Every container the benchmark starts is removed at its end, also after an error: the runtime's
//! by cancelling their runs, and any left (the runtime's, labelled with this process as owner, or
//! the baseline's, labelled `dev.symbiont.bench`) by force.

use std::{
    collections::HashMap,
    fs,
    io::Read,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
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
    sandbox::docker::{container_body, POOL_LABEL},
    sandbox::{LaunchSpec, CODE_MOUNT},
    AgentConfig, AgentRuntime, Auditor, Language, Limits, Output, OutputStream, RunError, RunReport, State, Tier, Workspace,
};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use crate::sandbox::{busy_cores, cpu_ticks, median, percentile, BENCH_LABEL};

pub const ARGS: &str =
    "[--round-trips N] [--warmup N] [--payload-bytes N] [--max-agents N] [--step N] [--first-output N] [--parts rt,idle,first] [--audit-dir DIR] [--keep]";

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
    /// Timed runs per path of the first-output measurement.
    first_iters: usize,
    round_trip: bool,
    idle: bool,
    first_output: bool,
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
        first_iters: 10,
        round_trip: true,
        idle: true,
        first_output: true,
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
            "--first-output" => o.first_iters = value("a number of runs")?.max(1),
            "--keep" => o.keep = true,
            "--audit-dir" => o.audit_dir = Some(args.next().ok_or("`--audit-dir` needs a directory")?.into()),
            "--parts" => {
                let list = args.next().ok_or("`--parts` needs a list such as rt,idle,first")?;
                (o.round_trip, o.idle, o.first_output) = (false, false, false);
                for part in list.split(',') {
                    match part.trim() {
                        "rt" => o.round_trip = true,
                        "idle" => o.idle = true,
                        "first" => o.first_output = true,
                        other => return Err(format!("`--parts`: `{other}` is not `rt`, `idle` or `first`")),
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
    // Made once dockerd and the image are known to be there: a refused start leaves nothing.
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
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
    let audit =
        options.audit_dir.as_ref().map_or_else(|| dir.join("audit"), |d| d.join(format!("service-bench-audit-{}", std::process::id())));
    println!("audit log: {}", audit.display());
    let agents = agent_runtime(&rt, &audit, &dir, options)?;

    let sym = "policy open { allow: [\"send_message\", \"receive_message\"] }\nagent worker { policies = [open] }\n";
    let universe = symbiont_policy::load([("bench.sym", sym)], symbiont_policy::config::Config::default());
    let effective = universe.effective(Some("worker")).map_err(|e| format!("the benchmark's policy: {e}"))?;
    let engine = Arc::new(symbiont_policy::Engine::compile(effective));
    Ok(Bench { rt, audit, docker, image, dir, agents, engine })
}

/// One runtime (one bus) with its audit log in `audit`, its runs staged under `dir`.
fn agent_runtime(rt: &tokio::runtime::Runtime, audit: &Path, dir: &Path, options: &Options) -> Result<Arc<AgentRuntime>, String> {
    let signer = Arc::new(FileSigner::generate().map_err(|e| e.to_string())?);
    let (log, _) = Log::open(audit, signer, LogOptions::default()).map_err(|e| format!("audit log {}: {e}", audit.display()))?;
    let mut agents = rt.block_on(AgentRuntime::new(Auditor::new(Arc::new(log))));
    agents.set_run_root(dir.join("runs"));
    // Admission must not be what caps the idle agents.
    agents.set_concurrency(options.max_agents + 8, symbiont_runtime::runtime::DEFAULT_LIGHTWEIGHT);
    Ok(Arc::new(agents))
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
    fn spawn(&self, config: AgentConfig, stop: watch::Receiver<bool>, ready: Option<(usize, mpsc::UnboundedSender<usize>)>) -> Spawned {
        self.spawn_on(&self.agents, config, stop, ready)
    }

    /// [`Bench::spawn`] on `agents`, a runtime of its own.
    fn spawn_on(
        &self,
        agents: &Arc<AgentRuntime>,
        config: AgentConfig,
        mut stop: watch::Receiver<bool>,
        ready: Option<(usize, mpsc::UnboundedSender<usize>)>,
    ) -> Spawned {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Output>();
        let agents = agents.clone();
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

fn round_trip(bench: &Bench, options: &Options, agents: &Arc<AgentRuntime>) -> Result<Vec<f64>, String> {
    let (stop, stopped) = watch::channel(false);
    let input =
        json!({"peer": "pong", "round_trips": options.round_trips, "warmup": options.warmup, "payload_bytes": options.payload_bytes});
    let pong = bench.spawn_on(agents, bench.config("pong", "pong.py", Value::Null)?, stopped.clone(), None);
    let ping = match bench.config("ping", "ping.py", input) {
        Ok(config) => bench.spawn_on(agents, config, stopped, None),
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
    // A run's clean-up that failed (its container or staging left) says so in its report.
    let mut failed_cleanups: Vec<&str> = ends.iter().filter_map(|(r, _, _)| r.as_ref().ok()?.error.as_deref()).collect();
    failed_cleanups.sort_unstable();
    failed_cleanups.dedup_by(|a, b| a.get(..60) == b.get(..60));
    for error in failed_cleanups.iter().take(5) {
        println!("WARNING: a run's clean-up: {error}");
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
// 3. First output

const HELLO_SYM: &str = "agent hello {\n    implementation = [\"hello.py\"]\n    security = { tier: Tier1 }\n}\n";
const HELLO_PY: &str = "print(\"hello\")\n";

struct FirstOutput {
    /// ms from spawning `symbiont run` (handed to the service) to its first stdout byte.
    service: Vec<f64>,
    /// The same without a service: a cold run in the process.
    cold: Vec<f64>,
    /// ms from spawning `docker run --rm IMAGE python3 -c 'print(1)'` to its first stdout byte.
    raw: Vec<f64>,
}

/// Spawns `command`; returns the ms to the first byte of its standard output, all of its standard
/// output and its standard error, once it has exited 0.
fn first_byte(command: &mut Command) -> Result<(f64, String, String), String> {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = command.spawn().map_err(|e| format!("{command:?}: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let mut first = [0u8; 1];
    let n = stdout.read(&mut first).map_err(|e| format!("reading {command:?}: {e}"))?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let mut rest = Vec::new();
    let _ = stdout.read_to_end(&mut rest);
    let output = child.wait_with_output().map_err(|e| format!("{command:?}: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if n == 0 || !output.status.success() {
        return Err(format!("{command:?} ended {} without output:\n{stderr}", output.status));
    }
    Ok((ms, format!("{}{}", String::from_utf8_lossy(&first[..n]), String::from_utf8_lossy(&rest)), stderr))
}

/// The service's running warm containers (labelled with it as owner).
async fn warm_containers(docker: &Docker, service: u32) -> Result<usize, String> {
    let labels = vec![POOL_LABEL.to_string(), format!("{OWNER_PID_LABEL}={service}")];
    let filters = HashMap::from([("label".to_string(), labels), ("status".to_string(), vec!["running".to_string()])]);
    let options = ListContainersOptionsBuilder::default().filters(&filters).build();
    Ok(docker.list_containers(Some(options)).await.map_err(|e| format!("listing containers: {e}"))?.len())
}

struct Service {
    child: Child,
    log: PathBuf,
}

impl Service {
    /// SIGTERM (the service drains: runs stopped, warm containers removed), then its exit.
    fn stop(mut self) -> Result<(), String> {
        // SAFETY: kill has no memory preconditions; the pid is our own child's, not yet waited for.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return if status.success() { Ok(()) } else { Err(format!("`symbiont up` ended {status} after SIGTERM")) };
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!("`symbiont up` did not drain within 60 s of SIGTERM (killed); its log: {}", self.log.display()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Bench {
    fn symbiont(&self) -> Result<PathBuf, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let symbiont = exe.with_file_name("symbiont");
        if !symbiont.is_file() {
            return Err(format!("{} is missing: run this benchmark through `bench/run service`, which builds it", symbiont.display()));
        }
        Ok(symbiont)
    }

    /// `symbiont run hello.sym` in the workspace; checks its output, and whether a warm container served it.
    fn hello(&self, symbiont: &Path, ws: &Path, pooled: bool) -> Result<f64, String> {
        let mut command = Command::new(symbiont);
        command.args(["run", "hello.sym", "--summary", "json"]).current_dir(ws).env("TMPDIR", self.dir.join("cli-runs"));
        let (ms, stdout, stderr) = first_byte(&mut command)?;
        if stdout != "hello\n" {
            return Err(format!("`symbiont run` printed {stdout:?}, not \"hello\\n\"; its stderr:\n{stderr}"));
        }
        let summary = stderr.lines().rev().find_map(|l| serde_json::from_str::<Value>(l).ok()).unwrap_or_default();
        if summary["pooled"].as_bool() != Some(pooled) {
            return Err(format!("the run's summary says pooled = {}, expected {pooled}: {stderr}", summary["pooled"]));
        }
        Ok(ms)
    }

    fn raw_first_output(&self) -> Result<f64, String> {
        let label = format!("{BENCH_LABEL}={}", std::process::id());
        let mut command = Command::new("docker");
        command.args(["run", "--rm", "--network", "none", "--label", &label, &self.image, "python3", "-c", "print(1)"]);
        let (ms, stdout, _) = first_byte(&mut command)?;
        if stdout != "1\n" {
            return Err(format!("`docker run` printed {stdout:?}"));
        }
        Ok(ms)
    }

    /// Starts `symbiont up WS --warm 1` (its staging under `tmp`) and waits until its warm
    /// container runs.
    fn start_service(&self, symbiont: &Path, ws: &Path, tmp: &Path) -> Result<Service, String> {
        let log = self.dir.join("service.log");
        let stderr = fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = Command::new(symbiont)
            .args(["up", "--warm", "1"])
            .arg(ws)
            .env("TMPDIR", tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("{}: {e}", symbiont.display()))?;
        let mut service = Service { child, log };
        let ready = self.wait_warm(&mut service);
        match ready {
            Ok(()) => Ok(service),
            Err(e) => {
                let log = service.log();
                let _ = service.stop();
                Err(format!("{e}; its log:\n{log}"))
            }
        }
    }

    /// Waits until the service has a running warm container: after a run, the one its pool
    /// makes in place of the one the run claimed (and removed before `symbiont run` exits).
    fn wait_warm(&self, service: &mut Service) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let pid = service.child.id();
        loop {
            if let Some(status) = service.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("`symbiont up` exited {status}"));
            }
            if self.rt.block_on(warm_containers(&self.docker, pid))? >= 1 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("the service had no running warm container after 120 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn first_output(bench: &Bench, options: &Options) -> Result<FirstOutput, String> {
    let symbiont = bench.symbiont()?;
    let ws = bench.dir.join("hello");
    write(&ws.join("symbiont.toml"), "[policy]\n")?;
    write(&ws.join("hello.sym"), HELLO_SYM)?;
    write(&ws.join("hello.py"), HELLO_PY)?;
    // The service's staging directories: a short path, since a broker's socket path must fit in
    // `sockaddr_un` (`target/tmp/…/symbiont-runs/pool-ID/broker/broker.sock` may not).
    let service_tmp = std::env::temp_dir().join(format!("symbiont-service-bench-{}", std::process::id()));
    for dir in [bench.dir.join("cli-runs"), service_tmp.clone()] {
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut out = FirstOutput { service: Vec::new(), cold: Vec::new(), raw: Vec::new() };
    // Without a service: cold runs, each after a raw container (one warm-up of each, untimed).
    bench.raw_first_output()?;
    bench.hello(&symbiont, &ws, false)?;
    for _ in 0..options.first_iters {
        out.raw.push(bench.raw_first_output()?);
        out.cold.push(bench.hello(&symbiont, &ws, false)?);
    }
    // With the service up: each run claims the warm container, then the pool refills (untimed).
    let service = bench.start_service(&symbiont, &ws, &service_tmp);
    let mut service = service.inspect_err(|_| {
        let _ = fs::remove_dir_all(&service_tmp);
    })?;
    let runs = (|| -> Result<(), String> {
        bench.hello(&symbiont, &ws, true)?;
        for _ in 0..options.first_iters {
            bench.wait_warm(&mut service)?;
            out.raw.push(bench.raw_first_output()?);
            bench.wait_warm(&mut service)?;
            out.service.push(bench.hello(&symbiont, &ws, true)?);
        }
        Ok(())
    })();
    let service_pid = service.child.id();
    let log = service.log();
    let stopped = service.stop();
    // What the drain should have removed; removed here if it did not.
    let left = remove_labelled(bench, &format!("{OWNER_PID_LABEL}={service_pid}"));
    let _ = fs::remove_dir_all(&service_tmp);
    runs.map_err(|e| format!("{e}\nthe service's log:\n{log}"))?;
    stopped?;
    if left > 0 {
        return Err(format!("{left} containers of the service were left after its drain (removed now)"));
    }
    Ok(out)
}

// -------------------------------------------------------------------------------------------------

/// Removes the containers that have `label` (`KEY=VALUE`), running or not; returns how many.
fn remove_labelled(bench: &Bench, label: &str) -> usize {
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let ids: Vec<String> =
        bench.rt.block_on(bench.docker.list_containers(Some(options))).unwrap_or_default().into_iter().filter_map(|c| c.id).collect();
    for id in &ids {
        let force = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        let _ = bench.rt.block_on(bench.docker.remove_container(id, Some(force)));
    }
    ids.len()
}

/// Removes whatever containers of this process are left (the runtime's or the baselines').
fn clean_up(bench: &Bench, keep: bool) {
    let pid = std::process::id();
    let left = remove_labelled(bench, &format!("{OWNER_PID_LABEL}={pid}")) + remove_labelled(bench, &format!("{BENCH_LABEL}={pid}"));
    if left > 0 {
        println!("WARNING: {left} containers were left behind (removed now)");
    }
    if !keep {
        let _ = fs::remove_dir_all(&bench.dir);
        let _ = fs::remove_dir_all(&bench.audit);
    }
}

/// The round-trip part: the baseline, the runtime with its log where the other parts have it,
/// the baseline again (both see the same machine), the disk's own `fdatasync` beside the log
/// before and after, and the runtime once more with a log in memory (`/dev/shm`), which
/// separates the runtime's own cost from the disk's. Returns its part of the RESULT line.
fn round_trips(bench: &Bench, options: &Options) -> Result<String, String> {
    let raw = raw_round_trip(bench, options)?;
    let syncs_dir = bench.audit.parent().unwrap_or(&bench.dir);
    let mut syncs = crate::bus::fdatasync_latencies(syncs_dir, 300, 250)?;
    let batches_before = bench.agents.auditor().log().commit_stats().batches;
    let rt = round_trip(bench, options, &bench.agents)?;
    // Every batch is one `fdatasync`; the two agents' start and end add a few.
    let batches = bench.agents.auditor().log().commit_stats().batches - batches_before;
    let batches_per_round_trip = batches as f64 / (options.warmup + options.round_trips) as f64;
    syncs.extend(crate::bus::fdatasync_latencies(syncs_dir, 300, 250)?);
    let _ = fs::remove_file(syncs_dir.join("fdatasync-baseline"));
    let raw_again = raw_round_trip(bench, options)?;
    let raw: Vec<f64> = raw.into_iter().chain(raw_again).collect();
    let memory = in_memory_round_trip(bench, options)?;
    println!("{:<44} {:>9} {:>9} {:>9} {:>9}", "µs", "p50", "p90", "p99", "max");
    print_latency("runtime: sandbox → broker → bus → sandbox", &rt);
    if let Some(memory) = &memory {
        print_latency("runtime, its audit log in /dev/shm", memory);
    }
    print_latency("raw: two containers over a Unix socket", &raw);
    print_latency("the disk's fdatasync beside the log", &syncs);
    let (rt_p99, raw_p99) = (percentile(&rt, 99.0), percentile(&raw, 99.0));
    println!(
        "runtime p99 = {:.2} ms (product bound 10 ms, goal ≤ 2 ms), {:.1}× the raw socket's; {batches_per_round_trip:.2} log batches \
         (each one fdatasync) per round trip",
        rt_p99 / 1e3,
        rt_p99 / raw_p99
    );
    let mut line = format!(
        " rt_p50_us={:.1} rt_p99_us={:.1} raw_p50_us={:.1} raw_p99_us={:.1} rt_p99_vs_raw={:.2} fdatasync_p50_us={:.1} fdatasync_p99_us={:.1}",
        median(&rt),
        rt_p99,
        median(&raw),
        raw_p99,
        rt_p99 / raw_p99,
        median(&syncs),
        percentile(&syncs, 99.0)
    );
    line += &format!(" batches_per_round_trip={batches_per_round_trip:.2}");
    if let Some(memory) = &memory {
        line += &format!(" rt_memory_p50_us={:.1} rt_memory_p99_us={:.1}", median(memory), percentile(memory, 99.0));
    }
    Ok(line + &format!(" round_trips={} payload_bytes={}", options.round_trips, options.payload_bytes))
}

/// The round trip on a runtime of its own whose audit log is in `/dev/shm` (memory): none when
/// the log is there already (`--audit-dir`) or there is no `/dev/shm`.
fn in_memory_round_trip(bench: &Bench, options: &Options) -> Result<Option<Vec<f64>>, String> {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() || bench.audit.starts_with(shm) {
        return Ok(None);
    }
    let audit = shm.join(format!("service-bench-audit-memory-{}", std::process::id()));
    let agents = agent_runtime(&bench.rt, &audit, &bench.dir.join("memory"), options)?;
    let samples = round_trip(bench, options, &agents);
    drop(agents);
    let _ = fs::remove_dir_all(&audit);
    samples.map(Some)
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
            line += &round_trips(&bench, &options)?;
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
        if options.first_output {
            println!(
                "\nfirst output: `symbiont run` of a hello agent, spawn → first stdout byte; {} runs per path after one untimed",
                options.first_iters
            );
            let first = first_output(&bench, &options)?;
            println!("{:<52} {:>9} {:>9} {:>9}", "ms", "median", "p90", "min");
            for (name, samples) in [
                ("symbiont run, handed to `symbiont up --warm 1`", &first.service),
                ("symbiont run, no service (cold)", &first.cold),
                ("docker run --rm IMAGE python3 -c 'print(1)'", &first.raw),
            ] {
                let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
                println!("{name:<52} {:>9.1} {:>9.1} {:>9.1}", median(samples), percentile(samples, 90.0), min);
            }
            let (service, raw) = (median(&first.service), median(&first.raw));
            line += &format!(
                " first_output_ms={service:.1} raw_first_output_ms={raw:.1} first_output_ratio={:.2} cold_first_output_ms={:.1} first_output_runs={}",
                service / raw,
                median(&first.cold),
                options.first_iters
            );
        }
        Ok(())
    })();
    clean_up(&bench, options.keep);
    result?;
    println!("{line}");
    Ok(())
}
