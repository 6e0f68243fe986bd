//! Tiers 1 and 2: Docker through `bollard`, with runc (Tier 1) or gVisor's `runsc` (Tier 2).
//!
//! Every container gets: a read-only root filesystem, a size-limited tmpfs `/tmp` (noexec,
//! nosuid, nodev), all capabilities dropped, no-new-privileges, Docker's default seccomp profile,
//! user nobody, pids/memory (no swap)/CPU limits, network mode `none`, and exactly two mounts:
//! the agent's code (read-only) and the directory of its broker socket.
//!
//! A warm container ([`Sandbox::warm`], for the runtime's pre-started pool) is the same container
//! with its standard input open (closed once the one line it waits for is written) and attached
//! from its creation: its output is held until the run that claims it starts it. A parked one
//! ([`Sandbox::park`], `crate::parked`) is the same container attached by nobody until the one
//! process that adopts it ([`Sandbox::adopt`]).

use std::collections::HashMap;

use bollard::{
    container::LogOutput,
    errors::Error as DockerError,
    models::{ContainerCreateBody, ContainerSummaryStateEnum, HostConfig},
    query_parameters::{
        AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
        RemoveContainerOptionsBuilder, StartContainerOptions, WaitContainerOptionsBuilder,
    },
    ClientVersion, Docker,
};
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{Exit, Instance, LaunchSpec, OutputSender, Parked, Peer, Sandbox, SandboxError, Warm, AGENT_UID, BROKER_MOUNT, CODE_MOUNT};
use crate::{locks::get_mut, util::BoxFuture, OutputStream, Tier};

/// The label every container of a run carries: how cleanup and tests find them. A warm container
/// carries `pool-SLOT` instead (labels are fixed when it is made, before any run): the run's
/// `starting` audit entry names it by its id.
pub const RUN_LABEL: &str = "dev.symbiont.run";
pub const AGENT_LABEL: &str = "dev.symbiont.agent";
/// The label of a pre-started (warm) container: the id of the runtime's pool that made it, or
/// `cli` for one parked for a later process (`crate::parked`).
pub const POOL_LABEL: &str = "dev.symbiont.pool";
/// The name dockerd knows gVisor's runtime by (`/etc/docker/daemon.json`, set up by `scripts/test`).
pub const RUNSC_RUNTIME: &str = "runsc";

pub struct DockerSandbox {
    docker: Result<Docker, String>,
    tier: Tier,
}

/// The Docker Engine API version the runtime speaks: Debian's docker.io (20.10) speaks 1.41, and
/// later engines still accept it. Pinned rather than negotiated: negotiation is one more round
/// trip (`GET /version`, ~6 ms here) on every run.
pub const API_VERSION: ClientVersion = ClientVersion { major_version: 1, minor_version: 41 };

/// Connects to dockerd: `DOCKER_HOST` when it names a Unix socket, else `/var/run/docker.sock`,
/// at API 1.41; any other `DOCKER_HOST` (TCP) with bollard's defaults and version negotiation.
pub async fn connect() -> Result<Docker, String> {
    let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string());
    if host.starts_with("unix://") {
        return Docker::connect_with_unix(&host, 120, &API_VERSION).map_err(|e| format!("cannot reach dockerd at {host}: {e}"));
    }
    let docker = Docker::connect_with_local_defaults().map_err(|e| format!("cannot reach dockerd: {e}"))?;
    docker.negotiate_version().await.map_err(|e| format!("dockerd is not answering on its socket: {e}"))
}

fn backend(context: &str) -> impl Fn(DockerError) -> SandboxError + '_ {
    move |e| SandboxError::Backend(format!("{context}: {e}"))
}

fn is_not_found(e: &DockerError) -> bool {
    matches!(e, DockerError::DockerResponseServerError { status_code: 404, .. })
}

impl DockerSandbox {
    /// Tier 1 (runc) or Tier 2 (runsc) on the given connection.
    pub fn new(docker: Result<Docker, String>, tier: Tier) -> DockerSandbox {
        assert!(tier != Tier::MicroVm, "Docker provides tiers 1 and 2");
        DockerSandbox { docker, tier }
    }

    fn docker(&self) -> Result<&Docker, SandboxError> {
        self.docker.as_ref().map_err(|e| SandboxError::Unavailable(e.clone()))
    }
}

/// The container an agent runs in at `tier` (1 or 2): every restriction of the module's doc, the
/// two mounts, and the run's labels. Public so that the `sandbox` benchmark's baseline runs
/// exactly these settings.
pub fn container_body(tier: Tier, spec: &LaunchSpec) -> ContainerCreateBody {
    let limits = &spec.limits;
    let host_config = HostConfig {
        readonly_rootfs: Some(true),
        tmpfs: Some(HashMap::from([("/tmp".to_string(), format!("rw,noexec,nosuid,nodev,size={}", limits.tmpfs_bytes))])),
        cap_drop: Some(vec!["ALL".into()]),
        // Docker applies its default seccomp profile unless told otherwise; saying nothing
        // about seccomp keeps it.
        security_opt: Some(vec!["no-new-privileges:true".into()]),
        pids_limit: Some(limits.pids),
        memory: Some(limits.memory_bytes as i64),
        memory_swap: Some(limits.memory_bytes as i64),
        nano_cpus: Some((limits.cpus * 1e9) as i64),
        network_mode: Some("none".into()),
        ipc_mode: Some("private".into()),
        binds: Some(vec![
            format!("{}:{CODE_MOUNT}:ro", spec.code_dir.display()),
            format!("{}:{BROKER_MOUNT}:ro", spec.broker_dir.display()),
        ]),
        runtime: (tier == Tier::GVisor).then(|| RUNSC_RUNTIME.to_string()),
        ..Default::default()
    };
    let mut labels = HashMap::from([(RUN_LABEL.to_string(), spec.run_id.clone()), (AGENT_LABEL.to_string(), spec.agent.clone())]);
    labels.extend(spec.labels.iter().cloned());
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        cmd: Some(spec.command.clone()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        user: Some(format!("{AGENT_UID}:{AGENT_UID}")),
        working_dir: Some("/tmp".into()),
        network_disabled: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        labels: Some(labels),
        host_config: Some(host_config),
        ..Default::default()
    }
}

impl Sandbox for DockerSandbox {
    fn tier(&self) -> Tier {
        self.tier
    }

    fn available(&self) -> BoxFuture<'_, Result<(), SandboxError>> {
        // `/_ping` only (under a millisecond): whether runsc is registered and the image exists
        // come out of the create call itself, which fails precisely when they do not.
        Box::pin(async move {
            let docker = self.docker()?;
            docker.ping().await.map(drop).map_err(|e| SandboxError::Unavailable(format!("dockerd: {e}")))
        })
    }

    fn create<'a>(&'a self, spec: &'a LaunchSpec) -> BoxFuture<'a, Result<Box<dyn Instance>, SandboxError>> {
        Box::pin(async move {
            let id = self.create_container(spec, container_body(self.tier, spec)).await?;
            Ok(Box::new(DockerInstance::new(self.docker()?.clone(), id)) as Box<dyn Instance>)
        })
    }

    fn warm<'a>(&'a self, spec: &'a LaunchSpec, pool: &'a str) -> BoxFuture<'a, Result<Box<dyn Warm>, SandboxError>> {
        Box::pin(async move {
            let docker = self.docker()?.clone();
            let body = warm_body(self.tier, spec, &[(POOL_LABEL.to_string(), pool.to_string())]);
            let id = self.create_container(spec, body).await?;
            let mut instance = DockerInstance::new(docker, id);
            // Attached before it starts: no output is lost, and its standard input is ours.
            let started = async {
                let held = attach_held(&instance.docker, &instance.id).await?;
                instance
                    .docker
                    .start_container(&instance.id, None::<StartContainerOptions>)
                    .await
                    .map_err(backend("starting the container"))?;
                Ok::<_, SandboxError>(held)
            }
            .await;
            match started {
                Ok(held) => {
                    instance.held = std::sync::Mutex::new(Some(held));
                    Ok(Box::new(DockerWarm { instance }) as Box<dyn Warm>)
                }
                Err(e) => {
                    let _ = instance.remove().await;
                    Err(e)
                }
            }
        })
    }

    fn park<'a>(&'a self, spec: &'a LaunchSpec, labels: &'a [(String, String)]) -> BoxFuture<'a, Result<String, SandboxError>> {
        Box::pin(async move {
            let docker = self.docker()?.clone();
            let id = self.create_container(spec, warm_body(self.tier, spec, labels)).await?;
            // Started unattached: nobody holds its standard input, so the waiter blocks on it
            // until the one process that adopts the container attaches, writes and closes it.
            match docker.start_container(&id, None::<StartContainerOptions>).await {
                Ok(()) => Ok(id),
                Err(e) => {
                    let _ = DockerInstance::new(docker, id).remove().await;
                    Err(backend("starting the container")(e))
                }
            }
        })
    }

    fn parked<'a>(&'a self, labels: &'a [(String, String)], all: bool) -> BoxFuture<'a, Result<Vec<Parked>, SandboxError>> {
        Box::pin(async move {
            let docker = self.docker()?;
            let filters = HashMap::from([("label".to_string(), labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>())]);
            let options = ListContainersOptionsBuilder::default().all(all).filters(&filters).build();
            let list = docker.list_containers(Some(options)).await.map_err(backend("listing containers"))?;
            Ok(list
                .into_iter()
                .filter_map(|c| {
                    let running = c.state == Some(ContainerSummaryStateEnum::RUNNING);
                    Some(Parked { id: c.id?, labels: c.labels.unwrap_or_default(), created: c.created.unwrap_or(0), running })
                })
                .collect())
        })
    }

    fn adopt<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Box<dyn Warm>, SandboxError>> {
        Box::pin(async move {
            let docker = self.docker()?.clone();
            let held = attach_held(&docker, id).await?;
            let instance = DockerInstance { held: std::sync::Mutex::new(Some(held)), ..DockerInstance::new(docker, id.to_string()) };
            Ok(Box::new(DockerWarm { instance }) as Box<dyn Warm>)
        })
    }

    fn discard<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), SandboxError>> {
        Box::pin(async move { DockerInstance::new(self.docker()?.clone(), id.to_string()).remove().await })
    }
}

/// A warm container's body: the cold one's, so that no restriction can drift, with `labels` added
/// and standard input open until its one client (the attach that writes its line) closes it: the
/// program sees end-of-file after its line, as a cold one reads end-of-file from /dev/null.
fn warm_body(tier: Tier, spec: &LaunchSpec, labels: &[(String, String)]) -> ContainerCreateBody {
    let mut body = container_body(tier, spec);
    body.open_stdin = Some(true);
    body.attach_stdin = Some(true);
    body.stdin_once = Some(true);
    body.labels.get_or_insert_with(HashMap::new).extend(labels.iter().cloned());
    body
}

/// Attaches to a warm container's standard input, output and error: what its claim's `start`
/// writes the line to and streams the output from.
async fn attach_held(docker: &Docker, id: &str) -> Result<Held, SandboxError> {
    let options = AttachContainerOptionsBuilder::default().stdin(true).stdout(true).stderr(true).stream(true).logs(true).build();
    let attached = docker.attach_container(id, Some(options)).await.map_err(backend("attaching to the container"))?;
    Ok(Held { output: attached.output, input: attached.input, line: String::new() })
}

impl DockerSandbox {
    /// Creates the container of `body`, named after the run; the errors a user can act on
    /// (image missing, runsc not registered) said as such.
    async fn create_container(&self, spec: &LaunchSpec, body: ContainerCreateBody) -> Result<String, SandboxError> {
        let docker = self.docker()?;
        let options = CreateContainerOptionsBuilder::default().name(&format!("symbiont-{}", spec.run_id)).build();
        match docker.create_container(Some(options), body).await {
            Ok(created) => Ok(created.id),
            Err(e) if is_not_found(&e) => Err(SandboxError::ImageMissing(spec.image.clone())),
            Err(DockerError::DockerResponseServerError { message, .. }) if message.contains("runtime") && self.tier == Tier::GVisor => {
                Err(SandboxError::Unavailable(format!(
                    "dockerd has no `{RUNSC_RUNTIME}` runtime ({message}): install gVisor (`apt-get install runsc`) and register it in /etc/docker/daemon.json (docs/runtime.md, \"Set-up\")"
                )))
            }
            Err(e) => Err(SandboxError::Backend(format!("creating the container: {e}"))),
        }
    }
}

type OutputStreamOf = std::pin::Pin<Box<dyn Stream<Item = Result<LogOutput, DockerError>> + Send>>;

/// A started warm container: its attach connection, made before it started, held in
/// `instance.held` (with an empty line until it is claimed).
struct DockerWarm {
    instance: DockerInstance,
}

impl Warm for DockerWarm {
    fn id(&self) -> &str {
        &self.instance.id
    }

    fn alive(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            match self.instance.docker.inspect_container(&self.instance.id, None).await {
                Ok(inspected) => inspected.state.and_then(|s| s.running).unwrap_or(false),
                Err(_) => false,
            }
        })
    }

    fn claim(self: Box<Self>, line: String) -> Box<dyn Instance> {
        let mut instance = self.instance;
        if let Some(held) = get_mut(&mut instance.held) {
            held.line = line;
        }
        Box::new(instance)
    }
}

/// What a claimed warm container's `start` uses: the attach made before it started, and the line
/// its program waits for.
struct Held {
    output: OutputStreamOf,
    input: std::pin::Pin<Box<dyn AsyncWrite + Send>>,
    line: String,
}

struct DockerInstance {
    docker: Docker,
    id: String,
    output_task: Option<tokio::task::JoinHandle<()>>,
    /// Set when it was claimed from the pool (already running, waiting for its line). In a
    /// mutex only so that the instance is `Sync`: `start` alone takes it.
    held: std::sync::Mutex<Option<Held>>,
}

impl DockerInstance {
    fn new(docker: Docker, id: String) -> DockerInstance {
        DockerInstance { docker, id, output_task: None, held: std::sync::Mutex::new(None) }
    }
}

/// Forwards a container's output to the run's sender until either ends.
fn forward(mut stream: OutputStreamOf, output: OutputSender) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(Ok(chunk)) = stream.next().await {
            let item = match chunk {
                LogOutput::StdOut { message } | LogOutput::Console { message } => (OutputStream::Stdout, message.to_vec()),
                LogOutput::StdErr { message } => (OutputStream::Stderr, message.to_vec()),
                LogOutput::StdIn { .. } => continue,
            };
            if output.send(item).is_err() {
                break;
            }
        }
    })
}

/// Whether the host process `pid` runs in the container `id`'s cgroup (runc puts the agent's
/// processes there, runsc its sandbox and gofer).
pub fn process_in_container(pid: i32, id: &str) -> bool {
    if pid <= 0 || id.len() < 12 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
        Ok(cgroups) => {
            cgroups.lines().any(|line| line.rsplit(':').next().is_some_and(|path| path.split('/').any(|part| part.contains(id))))
        }
        Err(_) => false,
    }
}

impl Instance for DockerInstance {
    fn id(&self) -> &str {
        &self.id
    }

    fn identify(&self) -> crate::sandbox::Identify {
        let id = self.id.clone();
        std::sync::Arc::new(move |peer| match peer {
            Peer::Process { pid } => process_in_container(pid, &id),
            Peer::Vsock { .. } => false,
        })
    }

    fn start(&mut self, output: OutputSender) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async move {
            let held = get_mut(&mut self.held).take();
            if let Some(Held { output: stream, mut input, mut line }) = held {
                // Warm: running already, its output attached since before it started.
                self.output_task = Some(forward(stream, output));
                line.push('\n');
                let written = async {
                    input.write_all(line.as_bytes()).await?;
                    input.flush().await?;
                    input.shutdown().await
                }
                .await;
                return written.map_err(|e| SandboxError::Backend(format!("writing to the warm container's standard input: {e}")));
            }
            // Attached before starting, so that no early output is lost.
            let options = AttachContainerOptionsBuilder::default().stdout(true).stderr(true).stream(true).logs(true).build();
            let attached = self.docker.attach_container(&self.id, Some(options)).await.map_err(backend("attaching to the container"))?;
            self.output_task = Some(forward(attached.output, output));
            self.docker.start_container(&self.id, None).await.map_err(backend("starting the container"))
        })
    }

    fn wait(&mut self) -> BoxFuture<'_, Result<Exit, SandboxError>> {
        Box::pin(async move {
            let options = WaitContainerOptionsBuilder::default().condition("not-running").build();
            let code = match self.docker.wait_container(&self.id, Some(options)).next().await {
                Some(Ok(response)) => response.status_code,
                Some(Err(DockerError::DockerContainerWaitError { code, .. })) => code,
                Some(Err(e)) => return Err(SandboxError::Backend(format!("waiting for the container: {e}"))),
                None => return Err(SandboxError::Backend("dockerd closed the wait without a status".into())),
            };
            // The output ends with the program; let the last lines through before reporting.
            if let Some(task) = self.output_task.take() {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), task).await;
            }
            // Only a SIGKILLed program (137) can have been killed for its memory: ask then. dockerd
            // may report the exit before it has processed the OOM event, so ask a few times.
            let mut oom_killed = false;
            for attempt in 0..if code == 137 { 5 } else { 0 } {
                if attempt > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                }
                let inspected = self.docker.inspect_container(&self.id, None).await.map_err(backend("inspecting the container"))?;
                oom_killed = inspected.state.and_then(|s| s.oom_killed).unwrap_or(false);
                if oom_killed {
                    break;
                }
            }
            Ok(Exit { code, oom_killed })
        })
    }

    fn kill(&self) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async move {
            let options = KillContainerOptionsBuilder::default().signal("SIGKILL").build();
            match self.docker.kill_container(&self.id, Some(options)).await {
                Ok(()) => Ok(()),
                // Not running (any more) or gone: nothing to kill.
                Err(DockerError::DockerResponseServerError { status_code: 404 | 409, .. }) => Ok(()),
                Err(e) => Err(SandboxError::Backend(format!("killing the container: {e}"))),
            }
        })
    }

    fn remove(&mut self) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async move {
            if let Some(task) = self.output_task.take() {
                task.abort();
            }
            remove_container(&self.docker, &self.id).await.map_err(SandboxError::Backend)
        })
    }
}

/// How many times [`remove_container`] asks dockerd to remove a container whose removal failed.
const REMOVAL_TRIES: u32 = 5;

/// How long [`remove_container`] waits for a removal that dockerd already had under way.
const REMOVAL_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Removes a container, running or not, and returns once it is gone: one already gone is no
/// error, and one whose removal is already under way (dockerd answers 409: an auto-removed
/// container whose process just ended, or another remover) is waited for, so that "removed"
/// means no listing shows it any more.
///
/// dockerd's own removal can fail under load (a 500, "unable to remove filesystem for …: directory
/// not empty", seen stopping 1,000 agents at once): it is tried again, up to [`REMOVAL_TRIES`]
/// times with a growing pause, before the error is reported.
pub(crate) async fn remove_container(docker: &bollard::Docker, id: &str) -> Result<(), String> {
    let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    let mut tries = 0;
    loop {
        tries += 1;
        match docker.remove_container(id, Some(options.clone())).await {
            Ok(()) => return Ok(()),
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(DockerError::DockerResponseServerError { status_code: 409, .. }) => break,
            Err(DockerError::DockerResponseServerError { status_code: 500, .. }) if tries < REMOVAL_TRIES => {
                tokio::time::sleep(std::time::Duration::from_millis(200) * tries).await;
            }
            Err(e) => return Err(format!("removing container {id}: {e}")),
        }
    }
    let deadline = std::time::Instant::now() + REMOVAL_WAIT;
    while std::time::Instant::now() < deadline {
        match docker.inspect_container(id, None).await {
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(format!("inspecting container {id} being removed: {e}")),
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    Err(format!("container {id} is still being removed after {} s", REMOVAL_WAIT.as_secs()))
}

/// Containers labelled as belonging to `run_id` (any state): what a finished run must not leave.
pub async fn containers_of_run(docker: &Docker, run_id: &str) -> Result<Vec<String>, SandboxError> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{RUN_LABEL}={run_id}")])]);
    let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let list = docker.list_containers(Some(options)).await.map_err(backend("listing containers"))?;
    Ok(list.into_iter().filter_map(|c| c.id).collect())
}
