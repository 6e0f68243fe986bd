//! `bench/run sandbox`: what running an agent in its sandbox costs against a bare container on the
//! same dockerd, Tier 1 (runc) and Tier 2 (gVisor's runsc), in one run (issue #7, Performance).
//!
//! Per tier and iteration, in this order (interleaved, so that all four see the same machine):
//!
//! 1. `raw`: create → start → wait → remove of `python3 -c pass` in the Python image, network
//!    `none`, by raw bollard calls (the issue's baseline);
//! 2. `raw agent`: the same four calls for a container with exactly the settings the runtime gives
//!    an agent (read-only root, tmpfs, capabilities dropped, limits, the two bind mounts, user
//!    nobody) running the benchmark's agent, whose one broker message a stub listener answers: the
//!    least any runtime must do for this agent, without audit, identity or output streaming;
//! 3. `library`: `AgentRuntime::run` of the agent on a runtime and audit log kept open;
//! 4. `cli`: the real `symbiont run agent.sym --tier N`, from spawning the process to its exit;
//! 5. `pool`: `AgentRuntime::run` on a second runtime that keeps a pre-started pool of one warm
//!    container for the tier (`AgentRuntime::set_pool`); before each run the benchmark waits for
//!    the pool to be full, so that each run is a claim (checked: `RunReport::pooled`), not a
//!    cold fallback;
//! 6. `cli warm`: the real `symbiont run agent.sym --tier N --warm`, from spawn to exit. Before it
//!    the benchmark waits (untimed) until no refill (`symbiont pool warm`) runs and a warm
//!    container for the run's key is parked (making one itself, the first time); the run must
//!    have adopted it (`"pooled": true` in its `--summary json`); after it the benchmark waits
//!    (untimed) for the refill the run started, so that no refill runs during another path.
//!
//! The agent (`agent.py`) is `import symbiont; symbiont.log("hi")`: one broker message, then exit.
//! Then, unless `--profile 0`, a profile: the library and the CLI again with every Docker API call
//! going through a timing proxy, the library's sandbox steps and audit signatures timestamped, and
//! a few costs measured alone (an audit append, `Log::open`, process start-up).

use std::{
    collections::HashMap,
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use bollard::{
    models::{ContainerCreateBody, HostConfig},
    query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder},
    Docker, API_DEFAULT_VERSION,
};
use futures_util::StreamExt;
use symbiont_audit::{
    keys::{FileSigner, Signer},
    Log, LogOptions,
};
use symbiont_runtime::{
    image::{self, ImageKind},
    parked,
    pool::PoolConfig,
    sandbox::{
        docker::{DockerSandbox, RUNSC_RUNTIME},
        Instance, LaunchSpec, OutputSender, Sandbox, SandboxError, BROKER_SOCKET, CODE_MOUNT,
    },
    AgentConfig, AgentRuntime, Auditor, Language, Limits, OutputStream, RunReport, State, Tier,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};

pub const ARGS: &str = "[--iters N] [--warmup N] [--profile N] [--tiers 1,2] [--keep]";

/// The label of the benchmark's own raw containers, so that the end can remove any it left.
pub(crate) const BENCH_LABEL: &str = "dev.symbiont.bench";

const AGENT_PY: &str = "import symbiont\nsymbiont.log(\"hi\")\n";

struct Options {
    iters: usize,
    warmup: usize,
    /// Instrumented runs per tier and path in the profile; 0 skips it.
    profile: usize,
    tiers: Vec<Tier>,
    keep: bool,
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut o = Options { iters: 20, warmup: 2, profile: 5, tiers: vec![Tier::Docker, Tier::GVisor], keep: false };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |what: &str| -> Result<usize, String> {
            let v = args.next().ok_or_else(|| format!("`{arg}` needs {what}"))?;
            v.parse::<usize>().map_err(|_| format!("`{arg}` needs {what}, found `{v}`"))
        };
        match arg.as_str() {
            "--iters" => o.iters = value("a number of iterations")?.max(1),
            "--warmup" => o.warmup = value("a number of iterations")?,
            "--profile" => o.profile = value("a number of runs")?,
            "--keep" => o.keep = true,
            "--tiers" => {
                let list = args.next().ok_or("`--tiers` needs a list such as 1,2")?;
                o.tiers = list
                    .split(',')
                    .map(|t| match t.trim() {
                        "1" => Ok(Tier::Docker),
                        "2" => Ok(Tier::GVisor),
                        other => Err(format!("`--tiers`: `{other}` is not 1 or 2 (Tier 3 does not run here)")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("unknown argument `{other}` for `sandbox`")),
        }
    }
    Ok(o)
}

// -------------------------------------------------------------------------------------------------
// Statistics

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The nearest-rank percentile `p` (0–100) of `samples`, in their unit.
pub(crate) fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

pub(crate) fn median(samples: &[f64]) -> f64 {
    percentile(samples, 50.0)
}

/// The machine's (busy, total) CPU ticks so far, from `/proc/stat`.
pub(crate) fn cpu_ticks() -> (u64, u64) {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// How many cores were busy between two `cpu_ticks`.
pub(crate) fn busy_cores(before: (u64, u64), after: (u64, u64)) -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let total = after.1.saturating_sub(before.1) as f64;
    if total > 0.0 {
        after.0.saturating_sub(before.0) as f64 / total * cores
    } else {
        f64::NAN
    }
}

// -------------------------------------------------------------------------------------------------
// Set-up

/// Everything one run of the benchmark needs.
struct Bench {
    rt: tokio::runtime::Runtime,
    docker: Docker,
    image: String,
    symbiont: PathBuf,
    dir: PathBuf,
    /// TMPDIR of the CLI and run root of the library: where the runs' staging directories go.
    runs: PathBuf,
    /// The `raw agent` containers' code and broker directories and the stub's answer count.
    raw_code: PathBuf,
    raw_broker: PathBuf,
    stub_answers: Arc<AtomicUsize>,
    /// The library's runtime (and its audit log), kept open across runs as a service would.
    agents: AgentRuntime,
    /// The same with a pre-started pool for each tier (the `pool` path).
    pooled: AgentRuntime,
    engine: Arc<symbiont_policy::Engine>,
}

fn workspace(dir: &Path, tier: Tier) -> PathBuf {
    dir.join(format!("tier{}", tier.number()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn agent_sym(tier: Tier) -> String {
    format!("agent bench {{\n    implementation = [\"agent.py\"]\n    security = {{ tier: Tier{} }}\n}}\n", tier.number())
}

fn set_up(options: &Options) -> Result<Bench, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the bench binary: {e}"))?;
    let release = exe.parent().ok_or("the bench binary has no directory")?;
    let symbiont = release.join("symbiont");
    if !symbiont.is_file() {
        return Err(format!("{} is missing: run this benchmark through `bench/run sandbox`, which builds it", symbiont.display()));
    }
    let target = release.parent().ok_or("the bench binary is not in <target>/<profile>/")?;
    let dir = target.join("tmp").join(format!("sandbox-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let runs = dir.join("runs");
    fs::create_dir_all(&runs).map_err(|e| format!("{}: {e}", runs.display()))?;

    // Two worker threads, as `symbiont run` has on this machine.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    let docker = rt.block_on(async {
        let docker = Docker::connect_with_local_defaults().map_err(|e| format!("cannot reach dockerd: {e}"))?;
        docker.negotiate_version().await.map_err(|e| format!("dockerd does not answer ({e}): run scripts/sandbox-setup as root"))
    })?;
    let info = rt.block_on(docker.info()).map_err(|e| format!("docker info: {e}"))?;
    let has_runsc = info.runtimes.as_ref().is_some_and(|r| r.contains_key(RUNSC_RUNTIME));
    if options.tiers.contains(&Tier::GVisor) && !has_runsc {
        return Err("dockerd has no `runsc` runtime: run scripts/sandbox-setup as root (or `--tiers 1`)".into());
    }
    let image = image::reference(ImageKind::Python);
    if rt.block_on(docker.inspect_image(&image)).is_err() {
        return Err(format!("image {image} is missing: run `symbiont image build python`"));
    }
    let version = rt.block_on(docker.version()).ok().and_then(|v| v.version).unwrap_or_default();
    println!(
        "sandbox: dockerd {version} ({} storage, cgroup {}), image {image}, {} cores, load average {}",
        info.driver.unwrap_or_default(),
        info.cgroup_version.map(|v| v.to_string()).unwrap_or_default(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!("workspaces, audit logs and staging under {}", dir.display());
    let before = cpu_ticks();
    std::thread::sleep(Duration::from_millis(500));
    let idle_busy = busy_cores(before, cpu_ticks());
    println!(
        "busy cores before starting: {idle_busy:.2}{}",
        if idle_busy > 0.3 { " (WARNING: something else is running; the numbers will be slower and noisier)" } else { "" }
    );

    // One workspace per tier, as a user would have: `symbiont run` appends to its audit log.
    for &tier in &options.tiers {
        let ws = workspace(&dir, tier);
        write(&ws.join("symbiont.toml"), "[policy]\n")?;
        write(&ws.join("agent.sym"), &agent_sym(tier))?;
        write(&ws.join("agent.py"), AGENT_PY)?;
    }

    // The `raw agent` containers: code staged once (the SDK is the image's), a stub broker that answers anything.
    let raw_code = dir.join("raw/code");
    let raw_broker = dir.join("raw/broker");
    write(&raw_code.join("agent.py"), AGENT_PY)?;
    fs::create_dir_all(&raw_broker).map_err(|e| e.to_string())?;
    for d in [dir.join("raw"), raw_code.clone(), raw_broker.clone()] {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    }
    let stub_answers = Arc::new(AtomicUsize::new(0));
    let socket = raw_broker.join("broker.sock");
    let listener = rt.block_on(async { UnixListener::bind(&socket) }).map_err(|e| format!("{}: {e}", socket.display()))?;
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).map_err(|e| e.to_string())?;
    rt.spawn(stub_broker(listener, stub_answers.clone()));

    // The library's runtime: the standard backends, one audit log, the same agent and policy.
    let lib_dir = dir.join("lib");
    write(&lib_dir.join("agent.py"), AGENT_PY)?;
    let signer = Arc::new(FileSigner::generate().map_err(|e| e.to_string())?);
    let (log, _) = Log::open(&lib_dir.join("audit"), signer, LogOptions::default()).map_err(|e| format!("audit log: {e}"))?;
    let mut agents = rt.block_on(AgentRuntime::new(Auditor::new(Arc::new(log))));
    agents.set_run_root(runs.join("symbiont-runs"));
    let signer = Arc::new(FileSigner::generate().map_err(|e| e.to_string())?);
    let (log, _) = Log::open(&lib_dir.join("pool-audit"), signer, LogOptions::default()).map_err(|e| format!("audit log: {e}"))?;
    let mut pooled = rt.block_on(AgentRuntime::new(Auditor::new(Arc::new(log))));
    pooled.set_run_root(runs.join("symbiont-runs"));
    for &tier in &options.tiers {
        let pool = PoolConfig { tier, language: Language::Python, limits: Limits::default(), size: 1 };
        rt.block_on(async { pooled.set_pool(pool) }).map_err(|e| format!("the pool at {tier}: {e}"))?;
    }
    let sym = agent_sym(Tier::Docker);
    let universe = symbiont_policy::load([("agent.sym", sym.as_str())], symbiont_policy::config::Config::default());
    let effective = universe.effective(Some("bench")).map_err(|e| format!("the benchmark's agent: {e}"))?;
    let engine = Arc::new(symbiont_policy::Engine::compile(effective));

    Ok(Bench { rt, docker, image, symbiont, dir, runs, raw_code, raw_broker, stub_answers, agents, pooled, engine })
}

/// Answers every request line with `ok`: the broker's reply, without identity, policy or audit.
async fn stub_broker(listener: UnixListener, answers: Arc<AtomicUsize>) {
    while let Ok((stream, _)) = listener.accept().await {
        let answers = answers.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let id = serde_json::from_str::<serde_json::Value>(&line).ok().and_then(|v| v.get("id").cloned());
                let reply = serde_json::json!({"id": id, "ok": true, "result": null});
                if write.write_all(format!("{reply}\n").as_bytes()).await.is_err() {
                    return;
                }
                answers.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
}

// -------------------------------------------------------------------------------------------------
// The four paths

fn runtime_of(tier: Tier) -> Option<String> {
    (tier == Tier::GVisor).then(|| RUNSC_RUNTIME.to_string())
}

/// create → start → wait → remove; returns the time and the exit code.
async fn container_run(docker: &Docker, body: ContainerCreateBody) -> Result<(Duration, i64), String> {
    let start = Instant::now();
    let created = docker.create_container(None::<bollard::query_parameters::CreateContainerOptions>, body).await;
    let id = created.map_err(|e| format!("create: {e}"))?.id;
    let result = async {
        docker.start_container(&id, None).await.map_err(|e| format!("start: {e}"))?;
        let options = WaitContainerOptionsBuilder::default().condition("not-running").build();
        match docker.wait_container(&id, Some(options)).next().await {
            Some(Ok(r)) => Ok(r.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(format!("wait: {e}")),
            None => Err("wait: no status".to_string()),
        }
    }
    .await;
    let removed = docker.remove_container(&id, Some(RemoveContainerOptionsBuilder::default().force(true).v(true).build())).await;
    let elapsed = start.elapsed();
    let code = result?;
    removed.map_err(|e| format!("remove: {e}"))?;
    Ok((elapsed, code))
}

fn bench_labels() -> Option<HashMap<String, String>> {
    Some(HashMap::from([(BENCH_LABEL.to_string(), std::process::id().to_string())]))
}

impl Bench {
    /// The issue's baseline: `python3 -c pass`, network none, nothing else.
    fn raw(&self, tier: Tier) -> Result<Duration, String> {
        let body = ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: Some(vec!["python3".into(), "-c".into(), "pass".into()]),
            network_disabled: Some(true),
            labels: bench_labels(),
            host_config: Some(HostConfig { network_mode: Some("none".into()), runtime: runtime_of(tier), ..Default::default() }),
            ..Default::default()
        };
        let (time, code) = self.rt.block_on(container_run(&self.docker, body))?;
        if code != 0 {
            return Err(format!("the raw container exited with {code}"));
        }
        Ok(time)
    }

    /// The agent's container as `DockerSandbox` makes it (`docker::container_body`), running the
    /// agent against the stub broker.
    fn raw_agent(&self, tier: Tier) -> Result<Duration, String> {
        let limits = Limits::default();
        let before = self.stub_answers.load(Ordering::SeqCst);
        let env = [
            ("SYMBIONT_AGENT", "bench".to_string()),
            ("SYMBIONT_RUN_ID", "raw".to_string()),
            ("SYMBIONT_BROKER", BROKER_SOCKET.to_string()),
            ("SYMBIONT_INPUT", "null".to_string()),
            ("PYTHONDONTWRITEBYTECODE", "1".to_string()),
            ("HOME", "/tmp".to_string()),
        ];
        let spec = LaunchSpec {
            run_id: "raw".into(),
            agent: "bench".into(),
            image: self.image.clone(),
            command: vec!["python3".into(), "-u".into(), format!("{CODE_MOUNT}/agent.py")],
            env: env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            code_dir: self.raw_code.clone(),
            broker_dir: self.raw_broker.clone(),
            limits,
            labels: Vec::new(),
        };
        let mut body = symbiont_runtime::sandbox::docker::container_body(tier, &spec);
        body.labels = bench_labels();
        let (time, code) = self.rt.block_on(container_run(&self.docker, body))?;
        if code != 0 || self.stub_answers.load(Ordering::SeqCst) != before + 1 {
            return Err(format!("the raw agent exited with {code} without its one broker message"));
        }
        Ok(time)
    }

    fn config(&self, tier: Tier) -> AgentConfig {
        AgentConfig {
            id: "bench".into(),
            tier,
            limits: Limits::default(),
            policy: self.engine.clone(),
            language: Language::Python,
            code_root: self.dir.join("lib"),
            files: vec![PathBuf::from("agent.py")],
            workspace: symbiont_runtime::Workspace::open(&self.dir, "lib").expect("the bench's workspace opens"),
            input: serde_json::Value::Null,
            context: serde_json::Map::new(),
            env: Default::default(),
            priority: Default::default(),
        }
    }

    /// `AgentRuntime::run` on `agents`; checks the agent completed and its message arrived.
    fn library_with(&self, agents: &AgentRuntime, tier: Tier) -> Result<Duration, String> {
        self.library_run(agents, tier).map(|(time, _)| time)
    }

    /// `AgentRuntime::run` on the pooled runtime, once its pool is full (not timed); checks the
    /// run claimed a warm container, and waits (not timed) for its replacement.
    fn pool(&self, tier: Tier) -> Result<Duration, String> {
        let status = self.rt.block_on(self.pooled.pool_filled());
        if let Some(e) = status.error {
            return Err(format!("the pool could not fill: {e}"));
        }
        let (time, report) = self.library_run(&self.pooled, tier)?;
        // The refill (started as the run ended) finishes here, untimed, rather than during the
        // next path's run.
        self.rt.block_on(self.pooled.pool_filled());
        if !report.pooled {
            return Err("the run did not use a warm container".into());
        }
        Ok(time)
    }

    fn library_run(&self, agents: &AgentRuntime, tier: Tier) -> Result<(Duration, RunReport), String> {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<symbiont_runtime::Output>();
        let start = Instant::now();
        let report = self.rt.block_on(agents.run(self.config(tier), sender, std::future::pending())).map_err(|e| e.to_string())?;
        let time = start.elapsed();
        let mut stderr = Vec::new();
        while let Ok((stream, bytes)) = receiver.try_recv() {
            if stream == OutputStream::Stderr {
                stderr.extend(bytes);
            }
        }
        if report.state != State::Completed || !String::from_utf8_lossy(&stderr).contains("hi") {
            return Err(format!(
                "the library run ended {:?} ({:?}); stderr: {}",
                report.state,
                report.error,
                String::from_utf8_lossy(&stderr)
            ));
        }
        Ok((time, report))
    }

    fn library(&self, tier: Tier) -> Result<Duration, String> {
        self.library_with(&self.agents, tier)
    }

    fn cli_command(&self, tier: Tier) -> Command {
        let mut command = Command::new(&self.symbiont);
        command
            .args(["run", "agent.sym", "--tier", &tier.number().to_string()])
            .current_dir(workspace(&self.dir, tier))
            .env("TMPDIR", &self.runs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// `symbiont run` from spawn to exit.
    fn cli(&self, command: &mut Command) -> Result<Duration, String> {
        self.cli_run(command).map(|(time, _)| time)
    }

    /// `symbiont run` from spawn to exit, and its standard error.
    fn cli_run(&self, command: &mut Command) -> Result<(Duration, String), String> {
        let start = Instant::now();
        let output = command.output().map_err(|e| format!("cannot run {}: {e}", self.symbiont.display()))?;
        let time = start.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        if !output.status.success() || !stderr.contains("[bench info] hi") {
            return Err(format!("symbiont run failed ({}):\n{stderr}", output.status));
        }
        Ok((time, stderr))
    }

    /// Waits (untimed) until no refill runs, then for a warm container parked for `tier`'s runs,
    /// making one if there is none.
    fn parked_ready(&self, tier: Tier) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while parked::refill_running() {
            if Instant::now() > deadline {
                return Err("a refill (`symbiont pool warm`) still runs after 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let backend = DockerSandbox::new(Ok(self.docker.clone()), tier);
        let root = self.runs.join("symbiont-runs");
        let ready = self.rt.block_on(parked::ready(&backend, &root, tier, Language::Python, &Limits::default()))?;
        if ready.is_empty() {
            self.rt.block_on(parked::tend(&backend, &root, tier, Language::Python, &Limits::default()))?;
        }
        Ok(())
    }

    /// `symbiont run --warm` from spawn to exit, in a warm container parked beforehand (untimed);
    /// checks it was adopted, and waits (untimed) for the refill the run started.
    fn cli_warm(&self, tier: Tier) -> Result<Duration, String> {
        self.parked_ready(tier)?;
        let mut command = self.cli_command(tier);
        command.args(["--warm", "--summary", "json"]);
        let (time, stderr) = self.cli_run(&mut command)?;
        let summary: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap_or("")).map_err(|e| format!("{e}: {stderr}"))?;
        if summary["pooled"] != true {
            return Err(format!("the run did not adopt the warm container: {stderr}"));
        }
        self.parked_ready(tier)?;
        Ok(time)
    }
}

// -------------------------------------------------------------------------------------------------
// The timed runs

const PATHS: [&str; 6] = ["raw", "raw agent", "library", "cli", "pool", "cli warm"];

#[derive(Default)]
struct Samples {
    /// (tier, path) → ms of each timed iteration.
    ms: HashMap<(Tier, &'static str), Vec<f64>>,
}

impl Samples {
    fn get(&self, tier: Tier, path: &str) -> &[f64] {
        self.ms.iter().find(|((t, p), _)| *t == tier && *p == path).map_or(&[], |(_, v)| v.as_slice())
    }
}

fn timed(bench: &Bench, options: &Options) -> Result<Samples, String> {
    let mut samples = Samples::default();
    let total = options.warmup + options.iters;
    let (before, started) = (cpu_ticks(), Instant::now());
    println!(
        "\ntiming: {} warm-up + {} timed iterations; each iteration runs, per tier, raw, raw agent, library, cli, pool and cli warm (in turns)",
        options.warmup, options.iters
    );
    for i in 0..total {
        for &tier in &options.tiers {
            // The order turns every iteration: each path follows each other one equally often, so
            // what a run leaves dockerd doing (removals, cgroup clean-up) is spread evenly.
            for k in 0..PATHS.len() {
                let path = PATHS[(i + k) % PATHS.len()];
                let time = match path {
                    "raw" => bench.raw(tier),
                    "raw agent" => bench.raw_agent(tier),
                    "library" => bench.library(tier),
                    "pool" => bench.pool(tier),
                    "cli warm" => bench.cli_warm(tier),
                    _ => bench.cli(&mut bench.cli_command(tier)),
                }
                .map_err(|e| format!("{path} at {tier}: {e}"))?;
                if i >= options.warmup {
                    samples.ms.entry((tier, path)).or_default().push(ms(time));
                }
            }
        }
        if (i + 1) % 5 == 0 || i + 1 == total {
            eprint!("  {}/{total}\r", i + 1);
        }
    }
    eprintln!();
    println!(
        "timed phase: {:.0} s, {:.2} cores busy on average (this benchmark, dockerd, containerd, the containers and anything else)",
        started.elapsed().as_secs_f64(),
        busy_cores(before, cpu_ticks())
    );
    Ok(samples)
}

fn tier_label(tier: Tier) -> &'static str {
    match tier {
        Tier::Docker => "Tier 1 (runc)",
        Tier::GVisor => "Tier 2 (runsc)",
        Tier::MicroVm => "Tier 3",
    }
}

fn print_table(samples: &Samples, options: &Options) {
    let what = [
        ("raw", "raw bollard: python3 -c pass, network none"),
        ("raw agent", "raw bollard: agent's settings + agent.py, stub broker"),
        ("library", "AgentRuntime::run (runtime kept open)"),
        ("cli", "symbiont run (process spawn → exit)"),
        ("pool", "AgentRuntime::run, pre-started pool (claim)"),
        ("cli warm", "symbiont run --warm (adopts a parked container)"),
    ];
    for &tier in &options.tiers {
        let raw = median(samples.get(tier, "raw"));
        println!("\n{:<56} {:>9} {:>9} {:>9} {:>9}", tier_label(tier), "median ms", "p90 ms", "min ms", "× raw");
        for (path, label) in what {
            let s = samples.get(tier, path);
            println!("{label:<56} {:>9.1} {:>9.1} {:>9.1} {:>9.2}", median(s), percentile(s, 90.0), percentile(s, 0.0), median(s) / raw);
        }
    }
}

// -------------------------------------------------------------------------------------------------
// Profile: a Docker API proxy that times every call

/// One Docker API call seen by the proxy (bollard opens one connection per call).
#[derive(Clone)]
struct Call {
    name: String,
    start: Instant,
    /// When the last byte of the response arrived (a hijacked `attach` ends with the container).
    end: Instant,
}

struct Proxy {
    socket: PathBuf,
    calls: Arc<Mutex<Vec<Call>>>,
}

/// `POST /v1.41/containers/3f…/start?x=y` → `POST /containers/{id}/start`.
fn call_name(request_line: &str) -> String {
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("?");
    let path = parts.next().unwrap_or("?").split('?').next().unwrap_or("");
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.first().is_some_and(|s| s.starts_with('v') && s[1..].starts_with(|c: char| c.is_ascii_digit())) {
        segments.remove(0);
    }
    let name = match segments.as_slice() {
        ["containers", id, rest @ ..] if *id != "create" && *id != "json" => {
            let mut s = "/containers/{id}".to_string();
            for r in rest {
                s.push('/');
                s.push_str(r);
            }
            s
        }
        ["images", .., "json"] => "/images/{image}/json".to_string(),
        other => format!("/{}", other.join("/")),
    };
    format!("{method} {name}")
}

async fn start_proxy(socket: PathBuf, upstream: PathBuf) -> Result<Proxy, String> {
    let listener = UnixListener::bind(&socket).map_err(|e| format!("proxy {}: {e}", socket.display()))?;
    let calls = Arc::new(Mutex::new(Vec::new()));
    let recorded = calls.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let start = Instant::now();
            let (upstream, recorded) = (upstream.clone(), recorded.clone());
            tokio::spawn(async move {
                let Ok(server) = UnixStream::connect(&upstream).await else { return };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                // The request line arrives in the first read: bollard writes the head at once.
                let mut first = vec![0u8; 16 * 1024];
                let n = client_read.read(&mut first).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&first[..n]);
                let name = call_name(head.lines().next().unwrap_or(""));
                if server_write.write_all(&first[..n]).await.is_err() {
                    return;
                }
                let upload = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                    let _ = server_write.shutdown().await;
                });
                let mut buf = vec![0u8; 64 * 1024];
                let mut end = Instant::now();
                loop {
                    match server_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            end = Instant::now();
                            if client_write.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = client_write.shutdown().await;
                upload.abort();
                recorded.lock().unwrap().push(Call { name, start, end });
            });
        }
    });
    Ok(Proxy { socket, calls })
}

impl Proxy {
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

// -------------------------------------------------------------------------------------------------
// Profile: the library's sandbox steps and audit signatures, timestamped

type Marks = Arc<Mutex<Vec<(String, Instant)>>>;

fn mark(marks: &Marks, name: impl Into<String>) {
    marks.lock().unwrap().push((name.into(), Instant::now()));
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

struct TimedSandbox {
    inner: DockerSandbox,
    marks: Marks,
}

struct TimedInstance {
    inner: Box<dyn Instance>,
    marks: Marks,
}

impl Sandbox for TimedSandbox {
    fn tier(&self) -> Tier {
        self.inner.tier()
    }

    fn available(&self) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async move {
            mark(&self.marks, "sandbox available() begins");
            let result = self.inner.available().await;
            mark(&self.marks, "sandbox available() ends");
            result
        })
    }

    fn create<'a>(&'a self, spec: &'a LaunchSpec) -> BoxFuture<'a, Result<Box<dyn Instance>, SandboxError>> {
        Box::pin(async move {
            mark(&self.marks, "sandbox create() begins");
            let result = self.inner.create(spec).await;
            mark(&self.marks, "sandbox create() ends");
            result.map(|inner| Box::new(TimedInstance { inner, marks: self.marks.clone() }) as Box<dyn Instance>)
        })
    }
}

impl Instance for TimedInstance {
    fn id(&self) -> &str {
        self.inner.id()
    }

    fn identify(&self) -> symbiont_runtime::broker::Identify {
        self.inner.identify()
    }

    fn start(&mut self, output: OutputSender) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async move {
            mark(&self.marks, "instance start() begins");
            let result = self.inner.start(output).await;
            mark(&self.marks, "instance start() ends");
            result
        })
    }

    fn wait(&mut self) -> BoxFuture<'_, Result<symbiont_runtime::sandbox::Exit, SandboxError>> {
        Box::pin(async move {
            mark(&self.marks, "instance wait() begins");
            let result = self.inner.wait().await;
            mark(&self.marks, "instance wait() ends");
            result
        })
    }

    fn kill(&self) -> BoxFuture<'_, Result<(), SandboxError>> {
        self.inner.kill()
    }

    fn remove(&mut self) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async move {
            mark(&self.marks, "instance remove() begins");
            let result = self.inner.remove().await;
            mark(&self.marks, "instance remove() ends");
            result
        })
    }
}

/// Marks when each audit entry is signed (the start of its append), named by its operation and
/// decision, read from the signed body.
struct TimedSigner {
    inner: FileSigner,
    marks: Marks,
}

fn json_field<'a>(body: &'a str, key: &str) -> &'a str {
    let pattern = format!("\"{key}\":\"");
    body.find(&pattern).map_or("?", |at| {
        let rest = &body[at + pattern.len()..];
        &rest[..rest.find('"').unwrap_or(rest.len())]
    })
}

impl Signer for TimedSigner {
    fn key_id(&self) -> &str {
        self.inner.key_id()
    }

    fn public_key(&self) -> [u8; 32] {
        self.inner.public_key()
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], symbiont_audit::Error> {
        let body = String::from_utf8_lossy(message);
        let (operation, decision) = (json_field(&body, "operation"), json_field(&body, "decision"));
        let name = match operation {
            "?" => "audit signature: checkpoint".to_string(),
            _ => format!("audit append begins: {operation} {decision}"),
        };
        mark(&self.marks, name);
        self.inner.sign(message)
    }
}

/// The events of one instrumented run: (name, ms since the run began), in time order.
type Timeline = Vec<(String, f64)>;

fn timeline(start: Instant, marks: Vec<(String, Instant)>, calls: Vec<Call>, end: Instant, end_name: &str) -> Timeline {
    let mut events: Vec<(String, Instant)> = marks;
    for call in calls {
        events.push((format!("  docker {} sent", call.name), call.start));
        events.push((format!("  docker {} answered", call.name), call.end));
    }
    events.push((end_name.to_string(), end));
    events.sort_by_key(|(_, t)| *t);
    let mut out = vec![("begins".to_string(), 0.0)];
    out.extend(events.into_iter().filter(|(_, t)| *t >= start).map(|(name, t)| (name, ms(t - start))));
    out
}

/// Prints the median time of each event (matched by name and occurrence) over the runs, in order,
/// with the step from the event before.
fn print_timeline(title: &str, runs: &[Timeline]) {
    let mut keyed: Vec<(String, Vec<f64>)> = Vec::new();
    for run in runs {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (name, at) in run {
            let n = seen.entry(name.as_str()).or_default();
            *n += 1;
            let key = if *n == 1 { name.clone() } else { format!("{name} (#{n})") };
            match keyed.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(*at),
                None => keyed.push((key, vec![*at])),
            }
        }
    }
    let mut rows: Vec<(String, f64, usize)> = keyed.into_iter().map(|(k, v)| (k, median(&v), v.len())).collect();
    rows.sort_by(|a, b| a.1.total_cmp(&b.1));
    println!("\n{title} ({} runs; median ms since it began, and the step from the row before)", runs.len());
    let mut previous = 0.0;
    for (name, at, n) in rows {
        let partial = if n < runs.len() { format!(" (in {n} runs)") } else { String::new() };
        println!("  {at:>8.1} {:>+8.1}  {name}{partial}", at - previous);
        previous = at;
    }
}

/// Per Docker call name: median duration over every call of that name in `calls`.
fn call_summary(calls: &[Call]) -> Vec<(String, f64, usize)> {
    let mut by: Vec<(String, Vec<f64>)> = Vec::new();
    for call in calls {
        let d = ms(call.end - call.start);
        match by.iter_mut().find(|(n, _)| *n == call.name) {
            Some((_, v)) => v.push(d),
            None => by.push((call.name.clone(), vec![d])),
        }
    }
    by.into_iter().map(|(n, v)| (n, median(&v), v.len())).collect()
}

fn profile(bench: &Bench, options: &Options) -> Result<(), String> {
    let upstream = PathBuf::from("/var/run/docker.sock");
    let proxy = bench.rt.block_on(start_proxy(bench.dir.join("docker-proxy.sock"), upstream))?;
    let proxied = bench.rt.block_on(async {
        let docker = Docker::connect_with_unix(&proxy.socket.to_string_lossy(), 120, API_DEFAULT_VERSION).map_err(|e| e.to_string())?;
        docker.negotiate_version().await.map_err(|e| e.to_string())
    })?;
    let marks: Marks = Arc::default();
    let signer = TimedSigner { inner: FileSigner::generate().map_err(|e| e.to_string())?, marks: marks.clone() };
    let (log, _) = Log::open(&bench.dir.join("lib/profile-audit"), Arc::new(signer), LogOptions::default()).map_err(|e| e.to_string())?;
    let mut agents = AgentRuntime::empty(Auditor::new(Arc::new(log)));
    agents.set_run_root(bench.runs.join("symbiont-runs"));
    for &tier in &options.tiers {
        agents.set_backend(Arc::new(TimedSandbox { inner: DockerSandbox::new(Ok(proxied.clone()), tier), marks: marks.clone() }));
    }
    proxy.take();

    println!("\nprofile: {} instrumented runs per tier and path, every Docker API call through a timing proxy", options.profile);
    let mut all_calls = Vec::new();
    for &tier in &options.tiers {
        let mut lib_runs = Vec::new();
        let mut cli_runs = Vec::new();
        for _ in 0..options.profile {
            marks.lock().unwrap().clear();
            let start = Instant::now();
            bench.library_with(&agents, tier)?;
            let end = Instant::now();
            let calls = proxy.take();
            all_calls.extend(calls.iter().cloned());
            lib_runs.push(timeline(start, std::mem::take(&mut *marks.lock().unwrap()), calls, end, "AgentRuntime::run returns"));

            let mut command = bench.cli_command(tier);
            command.env("DOCKER_HOST", format!("unix://{}", proxy.socket.display()));
            let start = Instant::now();
            bench.cli(&mut command)?;
            let end = Instant::now();
            let calls = proxy.take();
            all_calls.extend(calls.iter().cloned());
            cli_runs.push(timeline(start, Vec::new(), calls, end, "symbiont run exits"));
        }
        print_timeline(&format!("{}: library, AgentRuntime::run", tier_label(tier)), &lib_runs);
        print_timeline(&format!("{}: symbiont run, from spawn", tier_label(tier)), &cli_runs);
    }
    println!("\nDocker API calls through the proxy (median ms from connect to the response's last byte):");
    for (name, d, n) in call_summary(&all_calls) {
        println!("  {d:>8.2}  {name}  ({n} calls)");
    }
    drop(agents);

    // Costs measured alone.
    println!("\nmeasured alone (median of {} unless said):", options.profile.max(5));
    let reps = options.profile.max(5);
    let signer = Arc::new(FileSigner::generate().map_err(|e| e.to_string())?);
    let (log, _) = Log::open(&bench.dir.join("lib/append-audit"), signer.clone(), LogOptions::default()).map_err(|e| e.to_string())?;
    let auditor = Auditor::new(Arc::new(log));
    let mut appends = Vec::new();
    for _ in 0..reps * 4 {
        let details = serde_json::Map::from_iter([("run_id".to_string(), serde_json::json!("0123456789abcdef"))]);
        let start = Instant::now();
        bench.rt.block_on(auditor.record("bench", "lifecycle", "running", details)).map_err(|e| e.to_string())?;
        appends.push(ms(start.elapsed()));
    }
    println!(
        "  {:>8.2}  audit append through Auditor::record (sign, write, fdatasync, spawn_blocking), p90 {:.2} ({} appends)",
        median(&appends),
        percentile(&appends, 90.0),
        appends.len()
    );
    drop(auditor);
    for &tier in &options.tiers {
        let dir = workspace(&bench.dir, tier).join(".symbiont/audit");
        let mut opens = Vec::new();
        let mut entries = 0;
        for _ in 0..reps {
            let start = Instant::now();
            let (log, report) = Log::open(&dir, signer.clone(), LogOptions::default()).map_err(|e| e.to_string())?;
            opens.push(ms(start.elapsed()));
            entries = report.entries;
            drop(log);
        }
        println!(
            "  {:>8.2}  Log::open of the {} workspace's audit log ({entries} entries: verifies them all; the CLI does it every run)",
            median(&opens),
            tier_label(tier)
        );
    }
    let mut spawns = Vec::new();
    for _ in 0..reps {
        let start = Instant::now();
        let status = Command::new(&bench.symbiont).arg("--version").stdout(Stdio::null()).status().map_err(|e| e.to_string())?;
        spawns.push(ms(start.elapsed()));
        if !status.success() {
            return Err("symbiont --version failed".into());
        }
    }
    println!("  {:>8.2}  symbiont --version, spawn → exit (process start-up of the 100 MB binary)", median(&spawns));
    let mut connects = Vec::new();
    for _ in 0..reps {
        let start = Instant::now();
        bench.rt.block_on(symbiont_runtime::sandbox::docker::connect())?;
        connects.push(ms(start.elapsed()));
    }
    println!("  {:>8.2}  sandbox::docker::connect (client + negotiate_version: GET /version)", median(&connects));
    let mut infos = Vec::new();
    for _ in 0..reps {
        let start = Instant::now();
        bench.rt.block_on(bench.docker.info()).map_err(|e| e.to_string())?;
        infos.push(ms(start.elapsed()));
    }
    println!("  {:>8.2}  docker.info() alone (what DockerSandbox::available asks before every run)", median(&infos));
    let _ = fs::remove_file(&proxy.socket);
    Ok(())
}

// -------------------------------------------------------------------------------------------------

fn clean_up(bench: &Bench, keep: bool) -> Result<(), String> {
    bench.rt.block_on(bench.pooled.drain_pool());
    while parked::refill_running() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let backend = DockerSandbox::new(Ok(bench.docker.clone()), Tier::Docker);
    bench.rt.block_on(parked::drain(&backend, &bench.runs.join("symbiont-runs")))?;
    let filters = HashMap::from([("label".to_string(), vec![format!("{BENCH_LABEL}={}", std::process::id())])]);
    let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let left = bench.rt.block_on(bench.docker.list_containers(Some(options))).map_err(|e| e.to_string())?;
    for container in &left {
        if let Some(id) = &container.id {
            let _ =
                bench.rt.block_on(bench.docker.remove_container(id, Some(RemoveContainerOptionsBuilder::default().force(true).build())));
        }
    }
    let staging = bench.runs.join("symbiont-runs");
    let staged: Vec<_> = fs::read_dir(&staging).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    if !left.is_empty() || !staged.is_empty() {
        println!("WARNING: left behind: {} raw containers (removed now), staging {staged:?}", left.len());
    }
    if !keep {
        let _ = fs::remove_dir_all(&bench.dir);
    }
    Ok(())
}

pub fn run(args: &[String]) -> Result<(), String> {
    let options = options(args)?;
    let bench = set_up(&options)?;
    let result = timed(&bench, &options).and_then(|samples| {
        print_table(&samples, &options);
        if options.profile > 0 {
            profile(&bench, &options)?;
        }
        Ok(samples)
    });
    clean_up(&bench, options.keep)?;
    let samples = result?;

    let mut line = String::from("RESULT sandbox");
    let key = |tier: Tier, path: &str| median(samples.get(tier, path));
    let has = |tier: Tier| options.tiers.contains(&tier);
    if has(Tier::Docker) {
        line += &format!(" tier1_ms={:.1} raw_docker_ms={:.1}", key(Tier::Docker, "cli"), key(Tier::Docker, "raw"));
    }
    if has(Tier::GVisor) {
        line += &format!(" tier2_ms={:.1} raw_runsc_ms={:.1}", key(Tier::GVisor, "cli"), key(Tier::GVisor, "raw"));
    }
    for (tier, name) in [(Tier::Docker, "tier1"), (Tier::GVisor, "tier2")] {
        if has(tier) {
            line += &format!(
                " {name}_ratio={:.2} {name}_lib_ms={:.1} {name}_lib_ratio={:.2} {name}_raw_agent_ms={:.1} {name}_p90_ms={:.1} {name}_raw_p90_ms={:.1}",
                key(tier, "cli") / key(tier, "raw"),
                key(tier, "library"),
                key(tier, "library") / key(tier, "raw"),
                key(tier, "raw agent"),
                percentile(samples.get(tier, "cli"), 90.0),
                percentile(samples.get(tier, "raw"), 90.0),
            );
        }
    }
    for (tier, name) in [(Tier::Docker, "tier1"), (Tier::GVisor, "tier2")] {
        if has(tier) {
            line += &format!(" {name}_pool_ms={:.1} {name}_pool_ratio={:.2}", key(tier, "pool"), key(tier, "pool") / key(tier, "raw"));
        }
    }
    for (tier, name) in [(Tier::Docker, "tier1"), (Tier::GVisor, "tier2")] {
        if has(tier) {
            let warm = key(tier, "cli warm");
            line += &format!(" {name}_cli_warm_ms={warm:.1} {name}_cli_warm_ratio={:.2}", warm / key(tier, "raw"));
        }
    }
    line += &format!(" iters={}", options.iters);
    println!("{line}");
    Ok(())
}
