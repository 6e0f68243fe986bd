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
    local::{AgentContext, LocalAgent, LocalHandle},
    sandbox::{self, docker::DockerSandbox, Exit, Instance, LaunchSpec, OutputSender, Sandbox, SandboxError},
    scheduler::Scheduler,
    AgentConfig, Auditor, Language, State, Tier,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// One agent's output chunk, as the sandbox produced it.
pub type Output = (OutputStream, Vec<u8>);

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
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::SandboxUnavailable(why) => write!(f, "{why}"),
            RunError::ImageMissing(image) => write!(f, "image `{image}` is not built: run `symbiont image build`"),
            RunError::Audit(why) => write!(f, "audit log: {why}"),
            RunError::Setup(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for RunError {}

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
}

/// The SDKs agents use to reach their broker, copied next to their code.
const SDK_FILES: &[(&str, &str)] = &[
    (".symbiont/python/symbiont/__init__.py", include_str!("../sdk/python/symbiont/__init__.py")),
    (".symbiont/node/symbiont/index.js", include_str!("../sdk/node/symbiont/index.js")),
];

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
        let _slot = self.sandboxes.admit(config.priority).await;
        let run = Run { runtime: self, run_id: crate::util::random_id(8), config, state: State::Created, started: Instant::now() };
        run.execute(output, cancel).await
    }
}

struct Run<'r> {
    runtime: &'r AgentRuntime,
    run_id: String,
    config: AgentConfig,
    state: State,
    started: Instant,
}

/// What a run made on the host, removed at its end whatever happened.
#[derive(Default)]
struct Resources {
    dir: Option<PathBuf>,
    broker: Option<tokio::task::JoinHandle<String>>,
    instance: Option<Box<dyn Instance>>,
    on_bus: Option<String>,
}

impl Run<'_> {
    async fn transition(&mut self, next: State, extra: Map<String, Value>) -> Result<(), RunError> {
        debug_assert!(self.state == next || self.state.can_become(next), "{:?} -> {next:?}", self.state);
        let mut details = Map::new();
        details.insert("run_id".into(), json!(self.run_id));
        details.insert("from".into(), json!(self.state.as_str()));
        details.extend(extra);
        self.runtime
            .auditor
            .record(&self.config.id, "lifecycle", next.as_str(), details)
            .await
            .map_err(|e| RunError::Audit(e.to_string()))?;
        self.state = next;
        Ok(())
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
        let mut resources = Resources::default();
        let result = self.launch_and_wait(&mut resources, output, cancel).await;
        let cleanup = cleanup(&self.runtime.bus, resources).await;
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

        let dir = self.runtime.run_root.join(&self.run_id);
        resources.dir = Some(dir.clone());
        let (code_dir, broker_dir) = stage(&self.runtime.run_root, &dir, &self.config).map_err(RunError::Setup)?;
        let socket = broker_dir.join("broker.sock");
        let listener =
            UnixListener::bind(&socket).map_err(|e| RunError::Setup(format!("binding the broker socket {}: {e}", socket.display())))?;
        // Any local user may connect; the broker then accepts only the sandbox's processes.
        fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).map_err(|e| RunError::Setup(e.to_string()))?;

        let entry = self.config.files.first().ok_or_else(|| RunError::Setup("the agent has no implementation file".into()))?;
        let entry = format!("{}/{}", sandbox::CODE_MOUNT, entry.display());
        let command = match self.config.language {
            Language::Python => vec!["python3".to_string(), "-u".into(), entry],
            Language::JavaScript => vec!["node".to_string(), entry],
            Language::Native => vec![entry],
        };
        let spec = LaunchSpec {
            run_id: self.run_id.clone(),
            agent: self.config.id.clone(),
            image: image::reference(ImageKind::for_language(self.config.language)),
            command,
            env: vec![
                ("SYMBIONT_AGENT".into(), self.config.id.clone()),
                ("SYMBIONT_RUN_ID".into(), self.run_id.clone()),
                ("SYMBIONT_BROKER".into(), sandbox::BROKER_SOCKET.into()),
                ("SYMBIONT_INPUT".into(), self.config.input.to_string()),
                ("PYTHONPATH".into(), format!("{}/.symbiont/python", sandbox::CODE_MOUNT)),
                ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
                ("NODE_PATH".into(), format!("{}/.symbiont/node", sandbox::CODE_MOUNT)),
                ("HOME".into(), "/tmp".into()),
            ],
            code_dir,
            broker_dir,
            limits: self.config.limits,
        };
        let instance = match backend.create(&spec).await {
            Ok(instance) => resources.instance.insert(instance),
            Err(SandboxError::ImageMissing(image)) => return Err(RunError::ImageMissing(image)),
            Err(SandboxError::Unavailable(why)) => return Err(RunError::SandboxUnavailable(format!("{tier}: {why}"))),
            Err(e) => return Err(RunError::Setup(e.to_string())),
        };

        let env = self.policy_env();
        self.runtime.bus.join(&self.config.id, self.config.policy.clone(), symbiont_policy::Value::from(Value::Object(env.clone())));
        resources.on_bus = Some(self.config.id.clone());
        let context = Arc::new(BrokerContext {
            agent: self.config.id.clone(),
            run_id: self.run_id.clone(),
            engine: self.config.policy.clone(),
            auditor: self.runtime.auditor.clone(),
            workspace: self.config.workspace.clone(),
            env: symbiont_policy::Value::from(Value::Object(env)),
            output: output.clone(),
            bus: self.runtime.bus.clone(),
        });
        resources.broker = Some(tokio::spawn(broker::serve(listener, context, instance.identify())));

        let sandbox_id = json!(instance.id());
        self.transition(State::Starting, Map::from_iter([("sandbox".to_string(), sandbox_id)])).await?;
        if let Err(e) = instance.start(output).await {
            let reason = Map::from_iter([("reason".to_string(), json!(e.to_string()))]);
            self.transition(State::Failed, reason).await?;
            return Ok(self.report(None, Some(e.to_string())));
        }
        self.transition(State::Running, Map::new()).await?;

        let timeout = self.config.limits.timeout;
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
}

enum Ended {
    Exited(Result<Exit, SandboxError>),
    TimedOut,
    Cancelled,
    /// The broker's socket failed: the agent is stopped rather than left without a way out.
    BrokerStopped(String),
}

/// Makes the run's directory: `code/` (the implementation and the SDK, world-readable for the
/// sandbox's user, mounted read-only) and `broker/` (the socket).
fn stage(root: &Path, dir: &Path, config: &AgentConfig) -> Result<(PathBuf, PathBuf), String> {
    let setup = |what: &str, path: &Path| {
        let what = what.to_string();
        let path = path.display().to_string();
        move |e: std::io::Error| format!("{what} {path}: {e}")
    };
    fs::DirBuilder::new().recursive(true).mode(0o711).create(root).map_err(setup("creating", root))?;
    fs::DirBuilder::new().mode(0o711).create(dir).map_err(setup("creating", dir))?;
    let code = dir.join("code");
    let broker = dir.join("broker");
    for d in [&code, &broker] {
        fs::DirBuilder::new().mode(0o755).create(d).map_err(setup("creating", d))?;
    }
    for file in &config.files {
        let source = config.code_root.join(file);
        let target = code.join(file);
        if let Some(parent) = target.parent() {
            fs::DirBuilder::new().recursive(true).mode(0o755).create(parent).map_err(setup("creating", parent))?;
        }
        fs::copy(&source, &target).map_err(setup("copying", &source))?;
        let executable = config.language == Language::Native;
        fs::set_permissions(&target, fs::Permissions::from_mode(if executable { 0o755 } else { 0o644 }))
            .map_err(setup("chmod", &target))?;
    }
    for (path, text) in SDK_FILES {
        let target = code.join(path);
        if let Some(parent) = target.parent() {
            fs::DirBuilder::new().recursive(true).mode(0o755).create(parent).map_err(setup("creating", parent))?;
        }
        fs::write(&target, text).map_err(setup("writing", &target))?;
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).map_err(setup("chmod", &target))?;
    }
    Ok((code, broker))
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
