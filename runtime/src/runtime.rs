//! [`AgentRuntime`]: takes an [`AgentConfig`] through its lifecycle in the sandbox of its tier,
//! with its broker beside it, auditing every transition, and always cleaning up.

use std::{
    collections::HashMap,
    fs,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{json, Map, Value};
use tokio::net::UnixListener;

use crate::{
    broker::{self, BrokerContext},
    bus::Bus,
    image::{self, ImageKind},
    lifecycle::{self, TransitionError},
    local::{AgentContext, LocalAgent, LocalHandle},
    pool::{self, Pool, PoolConfig, PoolStatus},
    sandbox::{self, docker::DockerSandbox, Exit, Instance, LaunchSpec, OutputSender, OutputStream, Sandbox, SandboxError},
    scheduler::Scheduler,
    util::setup_error,
    AgentConfig, Auditor, Language, State, Tier,
};

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub run_id: String,
    pub agent: String,
    pub tier: Tier,
    pub state: State,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub duration: Duration,
    /// It ran in a warm container of the runtime's pre-started pool (`AgentRuntime::set_pool`).
    pub pooled: bool,
    /// Why the run failed, when it did for a reason other than the agent's own exit status.
    pub error: Option<String>,
}

/// Why a run could not start.
#[derive(Debug, Clone, PartialEq)]
pub enum RunError {
    /// The chosen tier cannot run here; nothing weaker is tried.
    SandboxUnavailable(String),
    ImageMissing(String),
    /// The audit log refused an entry: nothing that entry would cover was done.
    Audit(String),
    /// Setting up the run on the host failed.
    Setup(String),
    /// What the run was given cannot be used (an implementation file that is a link or not a
    /// regular file): no sandbox was started.
    Input(String),
    /// The runtime tried a step its lifecycle forbids (a fault in the runtime): it was neither
    /// recorded nor taken.
    Lifecycle(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::SandboxUnavailable(why) => write!(f, "{why}"),
            RunError::ImageMissing(image) => write!(f, "image `{image}` is not built: run `symbiont image build`"),
            RunError::Audit(why) => write!(f, "audit log: {why}"),
            RunError::Setup(why) | RunError::Input(why) | RunError::Lifecycle(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for RunError {}

impl From<TransitionError> for RunError {
    fn from(e: TransitionError) -> RunError {
        match e {
            TransitionError::Audit(e) => RunError::Audit(e.to_string()),
            forbidden @ TransitionError::Forbidden { .. } => RunError::Lifecycle(forbidden.to_string()),
        }
    }
}

/// Sandboxed agents running at once by default.
pub const DEFAULT_SANDBOXES: usize = 32;
/// Lightweight agents running at once by default.
pub const DEFAULT_LIGHTWEIGHT: usize = 8192;

pub struct AgentRuntime {
    auditor: Auditor,
    backends: HashMap<Tier, Arc<dyn Sandbox>>,
    bus: Arc<Bus>,
    /// Where each run's staging directory (code, broker socket) is made.
    run_root: PathBuf,
    /// Admission of sandboxed agents: few at once, each is a container or VM.
    sandboxes: Scheduler,
    /// Admission of lightweight (in-process) agents: thousands at once.
    lightweight: Scheduler,
    /// Warm containers started ahead of their runs (`pool.rs`); empty unless `set_pool` is called.
    pool: Pool,
    /// Runs may adopt warm containers parked by earlier processes (`parked.rs`).
    adopt_parked: bool,
    /// Each run first cleans up what killed runs left (`leftovers.rs`).
    reap_leftovers: bool,
}

impl AgentRuntime {
    /// A runtime with the standard backends: Docker (Tier 1), gVisor through Docker (Tier 2) and
    /// Firecracker (Tier 3). A backend that cannot run here reports it when a run asks for it.
    pub async fn new(auditor: Auditor) -> AgentRuntime {
        let docker = sandbox::docker::connect().await;
        let mut runtime = AgentRuntime::empty(auditor);
        runtime.set_backend(Arc::new(DockerSandbox::new(docker.clone(), Tier::Docker)));
        runtime.set_backend(Arc::new(DockerSandbox::new(docker, Tier::GVisor)));
        runtime.set_backend(Arc::new(sandbox::firecracker::FirecrackerSandbox::from_environment()));
        runtime
    }

    /// A runtime without backends: every tier is unavailable until one is set.
    pub fn empty(auditor: Auditor) -> AgentRuntime {
        AgentRuntime {
            bus: Arc::new(Bus::new(auditor.clone())),
            auditor,
            backends: HashMap::new(),
            run_root: std::env::temp_dir().join("symbiont-runs"),
            sandboxes: Scheduler::new(DEFAULT_SANDBOXES),
            lightweight: Scheduler::new(DEFAULT_LIGHTWEIGHT),
            pool: Pool::default(),
            adopt_parked: false,
            reap_leftovers: false,
        }
    }

    pub fn set_backend(&mut self, backend: Arc<dyn Sandbox>) {
        self.backends.insert(backend.tier(), backend);
    }

    pub fn set_run_root(&mut self, dir: PathBuf) {
        self.run_root = dir;
    }

    /// How many sandboxed and lightweight agents may run at once; the rest wait their turn.
    pub fn set_concurrency(&mut self, sandboxes: usize, lightweight: usize) {
        self.sandboxes = Scheduler::new(sandboxes);
        self.lightweight = Scheduler::new(lightweight);
    }

    /// Starts a lightweight agent (`local.rs`) when the scheduler admits it.
    pub fn spawn_local<F, Fut>(&self, agent: LocalAgent, body: F) -> LocalHandle
    where
        F: FnOnce(AgentContext) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        crate::local::spawn(self.bus.clone(), self.auditor.clone(), self.lightweight.clone(), agent, body)
    }

    /// Keeps `config.size` warm containers ready for runs of `config.language` at `config.tier`
    /// with `config.limits` (a size of 0 empties that pool): they are made in the background now
    /// and after each run that used one. A run that finds none, or a dead one, launches cold at
    /// the same tier. Call it within a Tokio runtime, and [`AgentRuntime::drain_pool`] before the
    /// runtime is dropped: warm containers idle until then. Only a long-lived runtime gains from
    /// a pool (docs/runtime.md, "Pre-started pool").
    pub fn set_pool(&self, config: PoolConfig) -> Result<(), SandboxError> {
        let backend = self
            .backends
            .get(&config.tier)
            .cloned()
            .ok_or_else(|| SandboxError::Unavailable(format!("this runtime has no {} backend", config.tier)))?;
        self.pool.set(config, backend, self.run_root.clone());
        Ok(())
    }

    /// Lets runs adopt a warm container parked by an earlier process (`symbiont run --warm`;
    /// `parked.rs`) when the pool has none for them: claimed by exactly one run, used once and
    /// removed like a pool's. A run that finds none launches cold at the same tier. Refilling is
    /// the caller's ([`crate::parked::tend`], from another process).
    pub fn set_adopt_parked(&mut self, on: bool) {
        self.adopt_parked = on;
    }

    /// Makes each run first clean up what killed runtimes left ([`AgentRuntime::reap_leftovers`]),
    /// saying what it did on the run's standard error: for a process that runs one agent
    /// (`symbiont run`). A long-lived runtime calls `reap_leftovers` itself, once, at its start.
    pub fn set_reap_leftovers(&mut self, on: bool) {
        self.reap_leftovers = on;
    }

    /// Cleans up after runtimes that were killed (`leftovers.rs`): the containers and staging
    /// directories (in this run root) of their runs; the runs of this runtime's audit log are
    /// audited `failed`, `by` naming who cleaned up. Fails only when dockerd cannot be asked.
    pub async fn reap_leftovers(&self, by: &str) -> Result<Vec<crate::leftovers::Reaped>, String> {
        let docker = sandbox::docker::connect().await?;
        crate::leftovers::reap(&docker, &self.run_root, &self.auditor, by).await
    }

    /// The directory under which each run's staging directory (and each slot) is made.
    pub fn run_root(&self) -> &Path {
        &self.run_root
    }

    /// Waits until no warm container is being made, then says how many are ready.
    pub async fn pool_filled(&self) -> PoolStatus {
        self.pool.filled().await
    }

    /// Removes every warm container and its directory, and stops refilling.
    pub async fn drain_pool(&self) {
        self.pool.drain().await
    }

    pub fn auditor(&self) -> &Auditor {
        &self.auditor
    }

    pub fn bus(&self) -> &Arc<Bus> {
        &self.bus
    }

    /// Whether `tier` can run here, and why not.
    pub async fn available(&self, tier: Tier) -> Result<(), SandboxError> {
        match self.backends.get(&tier) {
            Some(backend) => backend.available().await,
            None => Err(SandboxError::Unavailable(format!("this runtime has no {tier} backend"))),
        }
    }

    /// Runs one agent to its end. `cancel` resolving kills it (Ctrl-C, an editor's stop).
    pub async fn run(
        &self,
        config: AgentConfig,
        output: OutputSender,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<RunReport, RunError> {
        self.run_as(config, AgentRuntime::new_run_id(), None, output, cancel).await
    }

    /// A fresh run id ([`AgentRuntime::run_as`]).
    pub fn new_run_id() -> String {
        crate::util::random_id(8)
    }

    /// [`AgentRuntime::run`] under the id `run_id` (from [`AgentRuntime::new_run_id`]), for a
    /// caller that names the run before it starts (a service listing its runs), and for a tick of
    /// `schedule` when given (as [`AgentRuntime::run_scheduled`]).
    pub async fn run_as(
        &self,
        config: AgentConfig,
        run_id: String,
        schedule: Option<String>,
        output: OutputSender,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<RunReport, RunError> {
        let _slot = self.sandboxes.admit(config.priority).await;
        let run = Run { runtime: self, run_id, config, schedule, state: State::Created, started: Instant::now(), pooled: false };
        run.execute(output, cancel).await
    }

    /// [`AgentRuntime::run`], for a tick of the schedule `schedule` (`crate::schedule`): every
    /// lifecycle entry of the run names it (`"schedule"` in their details; other runs' entries
    /// have no such key).
    pub async fn run_scheduled(
        &self,
        config: AgentConfig,
        schedule: &str,
        output: OutputSender,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<RunReport, RunError> {
        self.run_as(config, AgentRuntime::new_run_id(), Some(schedule.to_string()), output, cancel).await
    }
}

struct Run<'r> {
    runtime: &'r AgentRuntime,
    run_id: String,
    config: AgentConfig,
    /// The schedule whose tick started the run, named in each lifecycle entry.
    schedule: Option<String>,
    state: State,
    started: Instant,
    /// Its sandbox is a warm container of the pool.
    pooled: bool,
}

/// What a run made on the host, removed at its end whatever happened.
#[derive(Default)]
struct Resources {
    dir: Option<PathBuf>,
    broker: Option<tokio::task::JoinHandle<String>>,
    /// Opens the broker to the agent once `running` is in the log: no decision of the run may
    /// precede it (a warm container's agent connects the moment it has its line).
    open_broker: Option<tokio::sync::oneshot::Sender<()>>,
    instance: Option<Box<dyn Instance>>,
    on_bus: Option<String>,
    /// The run took a warm container from the pool (which then refills).
    claimed: bool,
}

impl Run<'_> {
    async fn transition(&mut self, next: State, extra: Map<String, Value>) -> Result<(), RunError> {
        let mut details = Map::new();
        details.insert("run_id".into(), json!(self.run_id));
        if let Some(schedule) = &self.schedule {
            details.insert("schedule".into(), json!(schedule));
        }
        details.extend(extra);
        lifecycle::transition(&self.runtime.auditor, &self.config.id, self.state, next, details).await?;
        self.state = next;
        Ok(())
    }

    /// Cleans up what killed runs left, saying so on the run's standard error. When dockerd cannot
    /// be asked, nothing is said: the run reports that itself if it needs dockerd.
    async fn reap_leftovers(&self, output: &OutputSender) {
        let Ok(reaped) = self.runtime.reap_leftovers(&format!("run {}", self.run_id)).await else { return };
        for line in reaped {
            let _ = output.send((OutputStream::Stderr, format!("symbiont: {line}\n").into_bytes()));
        }
    }

    /// The policy's `env`: the caller's context, then what only the runtime may say.
    fn policy_env(&self) -> Map<String, Value> {
        let mut env = self.config.context.clone();
        env.insert("agent".into(), json!(self.config.id));
        env.insert("run_id".into(), json!(self.run_id));
        env.insert("tier".into(), json!(self.config.tier.number()));
        env.insert("input".into(), self.config.input.clone());
        env
    }

    fn report(&self, exit: Option<Exit>, error: Option<String>) -> RunReport {
        RunReport {
            run_id: self.run_id.clone(),
            agent: self.config.id.clone(),
            tier: self.config.tier,
            state: self.state,
            exit_code: exit.map(|e| e.code),
            oom_killed: exit.is_some_and(|e| e.oom_killed),
            duration: self.started.elapsed(),
            pooled: self.pooled,
            error,
        }
    }

    async fn execute(mut self, output: OutputSender, cancel: impl std::future::Future<Output = ()> + Send) -> Result<RunReport, RunError> {
        let limits = self.config.limits;
        let created = Map::from_iter([
            ("tier".to_string(), json!(self.config.tier.number())),
            ("language".to_string(), json!(self.config.language.name())),
            ("files".to_string(), json!(self.config.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>())),
            (
                "limits".to_string(),
                json!({"memory_bytes": limits.memory_bytes, "cpus": limits.cpus, "pids": limits.pids, "timeout_ms": limits.timeout.as_millis() as u64}),
            ),
        ]);
        self.transition(State::Created, created).await?;
        // On the bus from its creation, as a lightweight agent is: runs started together can write
        // to each other at once, while their sandboxes are still being made (a message waits,
        // sealed, in the inbox until the agent's code asks for it).
        let mut resources = Resources::default();
        let env = symbiont_policy::Value::from(Value::Object(self.policy_env()));
        self.runtime.bus.join(&self.config.id, self.config.policy.clone(), env);
        resources.on_bus = Some(self.config.id.clone());
        if self.runtime.reap_leftovers {
            self.reap_leftovers(&output).await;
        }
        let result = self.launch_and_wait(&mut resources, output, cancel).await;
        let claimed = resources.claimed;
        let cleanup = cleanup(&self.runtime.bus, resources).await;
        if claimed {
            // Its replacement is made now rather than at the claim: it would compete with this
            // run's own start for dockerd and the CPU.
            self.runtime.pool.fill();
        }
        match result {
            Ok(mut report) => {
                if let Err(e) = cleanup {
                    report.error = Some(report.error.map_or(e.clone(), |prior| format!("{prior}; {e}")));
                }
                Ok(report)
            }
            Err(e) => {
                // The failure is in the log before it is reported.
                if !self.state.is_final() {
                    let reason = Map::from_iter([("reason".to_string(), json!(e.to_string()))]);
                    let _ = self.transition(State::Failed, reason).await;
                }
                Err(e)
            }
        }
    }

    async fn launch_and_wait(
        &mut self,
        resources: &mut Resources,
        output: OutputSender,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> Result<RunReport, RunError> {
        let tier = self.config.tier;
        let backend = self.runtime.backends.get(&tier).cloned();
        let backend = backend.ok_or_else(|| RunError::SandboxUnavailable(format!("this runtime has no {tier} backend")))?;
        backend.available().await.map_err(|e| RunError::SandboxUnavailable(format!("{tier}: {e}")))?;

        let entry = self.config.files.first().ok_or_else(|| RunError::Setup("the agent has no implementation file".into()))?;
        let entry = entry.display().to_string();
        let mut started = None;
        if let Some((slot, line)) = self.claim_warm(resources, backend.as_ref(), &entry).await {
            match self.launch_pooled(resources, slot, line, &output).await? {
                Ok(()) => started = Some(Ok(())),
                Err(_) => {
                    // The warm container did not take its line (the agent did not start): it is
                    // removed, and the run launches cold at the same tier.
                    // The run stays on the bus, with whatever waits in its inbox.
                    let mut used = std::mem::take(resources);
                    resources.on_bus = used.on_bus.take();
                    let _ = cleanup(&self.runtime.bus, used).await;
                    resources.claimed = true;
                }
            }
        }
        let started = match started {
            Some(started) => started,
            None => self.launch_cold(resources, backend.as_ref(), &entry, &output).await?,
        };
        if let Err(e) = started {
            let reason = Map::from_iter([("reason".to_string(), json!(e.to_string()))]);
            self.transition(State::Failed, reason).await?;
            return Ok(self.report(None, Some(e.to_string())));
        }
        self.transition(State::Running, Map::new()).await?;
        if let Some(open) = resources.open_broker.take() {
            let _ = open.send(());
        }

        let timeout = self.config.limits.timeout;
        let instance = resources.instance.as_mut().expect("the instance was made above");
        let broker = resources.broker.as_mut().expect("the broker was started above");
        let ended = tokio::select! {
            waited = tokio::time::timeout(timeout, instance.wait()) => match waited {
                Ok(result) => Ended::Exited(result),
                Err(_) => Ended::TimedOut,
            },
            () = cancel => Ended::Cancelled,
            stopped = broker => Ended::BrokerStopped(stopped.unwrap_or_else(|e| format!("the broker stopped: {e}"))),
        };
        if matches!(ended, Ended::BrokerStopped(_)) {
            // Finished: a JoinHandle must not be awaited again at clean-up.
            resources.broker = None;
        }
        let (state, exit, error) = match ended {
            Ended::Exited(Ok(exit)) if exit.oom_killed => (State::Killed, Some(exit), Some("killed: out of memory".to_string())),
            Ended::Exited(Ok(exit)) if exit.code == 0 => (State::Completed, Some(exit), None),
            Ended::Exited(Ok(exit)) => (State::Failed, Some(exit), None),
            Ended::Exited(Err(e)) => (State::Failed, None, Some(e.to_string())),
            Ended::TimedOut | Ended::Cancelled | Ended::BrokerStopped(_) => {
                let _ = instance.kill().await;
                let exit = tokio::time::timeout(Duration::from_secs(10), instance.wait()).await.ok().and_then(Result::ok);
                match ended {
                    Ended::TimedOut => (State::TimedOut, exit, Some(format!("timed out after {} ms", timeout.as_millis()))),
                    Ended::BrokerStopped(why) => (State::Failed, exit, Some(why)),
                    _ => (State::Killed, exit, Some("killed on request".to_string())),
                }
            }
        };
        let mut details = Map::new();
        details.insert("exit_code".into(), json!(exit.map(|e| e.code)));
        details.insert("oom_killed".into(), json!(exit.is_some_and(|e| e.oom_killed)));
        details.insert("duration_ms".into(), json!(self.started.elapsed().as_millis() as u64));
        if let Some(error) = &error {
            details.insert("reason".into(), json!(error));
        }
        self.transition(state, details).await?;
        Ok(self.report(exit, error))
    }

    /// A live warm container for this run, with the line that starts it, if the run's line can
    /// be carried by the waiter and the pool has one (the pool then refills at the run's end; a
    /// dead one is removed) or, when allowed, a parked one can be adopted.
    async fn claim_warm(&self, resources: &mut Resources, backend: &dyn Sandbox, entry: &str) -> Option<(pool::Slot, String)> {
        let line = pool::go_line(&self.config.id, &self.run_id, entry, &self.config.input)?;
        let (tier, language, limits) = (self.config.tier, self.config.language, &self.config.limits);
        if let Some(slot) = self.runtime.pool.claim(tier, language, limits) {
            resources.claimed = true;
            if slot.warm.alive().await {
                return Some((slot, line));
            }
            pool::discard(slot).await;
        }
        if self.runtime.adopt_parked {
            return crate::parked::adopt(backend, &self.runtime.run_root, tier, language, limits).await.map(|slot| (slot, line));
        }
        None
    }

    /// Launches in a claimed warm container: the code staged into its slot, the broker's socket
    /// bound there. The inner error says the container did not take its line.
    async fn launch_pooled(
        &mut self,
        resources: &mut Resources,
        slot: pool::Slot,
        line: String,
        output: &OutputSender,
    ) -> Result<Result<(), SandboxError>, RunError> {
        resources.dir = Some(slot.dir.clone());
        resources.instance = Some(slot.warm.claim(line));
        stage_files(&slot.code, &self.config)?;
        // A slot's socket path is a little longer than a cold run's (`pool-ID`): one that does not
        // fit `sockaddr_un` makes the run cold rather than failed.
        let listener = match bind_broker(&slot.broker) {
            Ok(listener) => listener,
            Err(e) => return Ok(Err(SandboxError::Backend(e.to_string()))),
        };
        let started = self.serve_and_start(resources, listener, output, true).await?;
        self.pooled = started.is_ok();
        Ok(started)
    }

    /// Launches in a new container: the run's directory staged, the container created.
    async fn launch_cold(
        &mut self,
        resources: &mut Resources,
        backend: &dyn Sandbox,
        entry: &str,
        output: &OutputSender,
    ) -> Result<Result<(), SandboxError>, RunError> {
        let tier = self.config.tier;
        let dir = self.runtime.run_root.join(&self.run_id);
        resources.dir = Some(dir.clone());
        let (code_dir, broker_dir) = stage(&self.runtime.run_root, &dir, &self.config)?;
        // Who owns the run, on its directory and its container: a later runtime cleans up if this
        // one is killed (`leftovers.rs`).
        let labels = crate::leftovers::labels(&self.run_id, &self.config.id, &dir, self.runtime.auditor.log()).map_err(RunError::Setup)?;
        crate::leftovers::mark(&dir, &labels).map_err(RunError::Setup)?;
        let listener = bind_broker(&broker_dir)?;
        let mut command: Vec<String> = pool::interpreter(self.config.language).iter().map(|s| s.to_string()).collect();
        command.push(format!("{}/{entry}", sandbox::CODE_MOUNT));
        let mut env = vec![
            ("SYMBIONT_AGENT".to_string(), self.config.id.clone()),
            ("SYMBIONT_RUN_ID".into(), self.run_id.clone()),
            ("SYMBIONT_INPUT".into(), self.config.input.to_string()),
        ];
        env.extend(pool::constant_env());
        let spec = LaunchSpec {
            run_id: self.run_id.clone(),
            agent: self.config.id.clone(),
            image: image::reference(ImageKind::for_language(self.config.language)),
            command,
            env,
            code_dir,
            broker_dir,
            limits: self.config.limits,
            labels,
        };
        match backend.create(&spec).await {
            Ok(instance) => resources.instance = Some(instance),
            Err(SandboxError::ImageMissing(image)) => return Err(RunError::ImageMissing(image)),
            Err(SandboxError::Unavailable(why)) => return Err(RunError::SandboxUnavailable(format!("{tier}: {why}"))),
            Err(e) => return Err(RunError::Setup(e.to_string())),
        }
        self.serve_and_start(resources, listener, output, false).await
    }

    /// With the run's instance made: starts the broker with the instance's identity, records
    /// Starting, and starts the program.
    async fn serve_and_start(
        &mut self,
        resources: &mut Resources,
        listener: UnixListener,
        output: &OutputSender,
        pooled: bool,
    ) -> Result<Result<(), SandboxError>, RunError> {
        let instance = resources.instance.as_mut().expect("the instance is made before it is started");
        let env = self.policy_env();
        let context = Arc::new(BrokerContext {
            agent: self.config.id.clone(),
            run_id: self.run_id.clone(),
            engine: self.config.policy.clone(),
            auditor: self.runtime.auditor.clone(),
            workspace: self.config.workspace.clone(),
            env: symbiont_policy::Value::from(Value::Object(env)),
            variables: Arc::new(self.config.env.clone()),
            output: output.clone(),
            bus: self.runtime.bus.clone(),
            limits: Default::default(),
        });
        let (open, opened) = tokio::sync::oneshot::channel();
        resources.open_broker = Some(open);
        resources.broker = Some(tokio::spawn(broker::serve(listener, context, instance.identify(), opened)));

        let mut details = Map::from_iter([("sandbox".to_string(), json!(instance.id()))]);
        if pooled {
            details.insert("pooled".into(), json!(true));
        }
        self.transition(State::Starting, details).await?;
        let instance = resources.instance.as_mut().expect("the instance is made before it is started");
        Ok(instance.start(output.clone()).await)
    }
}

enum Ended {
    Exited(Result<Exit, SandboxError>),
    TimedOut,
    Cancelled,
    /// The broker's socket failed: the agent is stopped rather than left without a way out.
    BrokerStopped(String),
}

/// Makes the run's directory: `code/` (the implementation, world-readable for the sandbox's user,
/// mounted read-only; the SDK is the image's) and `broker/` (the socket).
fn stage(root: &Path, dir: &Path, config: &AgentConfig) -> Result<(PathBuf, PathBuf), RunError> {
    let (code, broker) = pool::make_dirs(root, dir).map_err(RunError::Setup)?;
    stage_files(&code, config)?;
    Ok((code, broker))
}

/// Copies the agent's implementation into `code` (executable for a compiled agent). Each file is
/// opened beneath `code_root` without following any link (`beneath.rs`) and must be a regular
/// file, copied from that descriptor: a repository's `notes.txt -> /etc/shadow` refuses the run
/// instead of putting the host's file in `/agent`.
fn stage_files(code: &Path, config: &AgentConfig) -> Result<(), RunError> {
    use std::os::fd::AsFd;
    let root = fs::File::open(&config.code_root).map_err(|e| RunError::Setup(setup_error("opening", &config.code_root)(e)))?;
    let mode = if config.language == Language::Native { 0o755 } else { 0o644 };
    for file in &config.files {
        let refused = |why: String| {
            RunError::Input(format!(
                "implementation file {}: {why}; only regular files inside {} are staged, reached without links",
                config.code_root.join(file).display(),
                config.code_root.display()
            ))
        };
        let relative = crate::beneath::RelPath::parse(&file.to_string_lossy()).map_err(refused)?;
        let mut source = crate::beneath::open_regular(root.as_fd(), &relative, false).map_err(|e| refused(e.to_string()))?;
        let target = code.join(relative.as_str());
        if let Some(parent) = target.parent() {
            let made = fs::DirBuilder::new().recursive(true).mode(0o755).create(parent);
            made.map_err(setup_error("creating", parent)).map_err(RunError::Setup)?;
        }
        let copied = fs::File::create(&target).and_then(|mut out| std::io::copy(&mut source, &mut out));
        copied.map_err(setup_error("copying to", &target)).map_err(RunError::Setup)?;
        fs::set_permissions(&target, fs::Permissions::from_mode(mode)).map_err(setup_error("chmod", &target)).map_err(RunError::Setup)?;
    }
    Ok(())
}

/// Binds the broker's socket in `broker_dir`.
fn bind_broker(broker_dir: &Path) -> Result<UnixListener, RunError> {
    let socket = broker_dir.join("broker.sock");
    let listener =
        UnixListener::bind(&socket).map_err(|e| RunError::Setup(format!("binding the broker socket {}: {e}", socket.display())))?;
    // Any local user may connect; the broker then accepts only the sandbox's processes.
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).map_err(|e| RunError::Setup(e.to_string()))?;
    Ok(listener)
}

async fn cleanup(bus: &Bus, resources: Resources) -> Result<(), String> {
    let mut errors = Vec::new();
    if let Some(task) = resources.broker {
        task.abort();
        let _ = task.await;
    }
    if let Some(agent) = resources.on_bus {
        bus.leave(&agent).await;
    }
    if let Some(mut instance) = resources.instance {
        if let Err(e) = instance.remove().await {
            errors.push(format!("cleanup: {e}"));
        }
    }
    if let Some(dir) = resources.dir {
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => errors.push(format!("cleanup: removing {}: {e}", dir.display())),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}
