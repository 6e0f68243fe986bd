//! Tiers 1 and 2: Docker through `bollard`, with runc (Tier 1) or gVisor's `runsc` (Tier 2).
//!
//! Every container gets: a read-only root filesystem, a size-limited tmpfs `/tmp` (noexec,
//! nosuid, nodev), all capabilities dropped, no-new-privileges, Docker's default seccomp profile,
//! user nobody, pids/memory (no swap)/CPU limits, network mode `none`, and exactly two mounts:
//! the agent's code (read-only) and the directory of its broker socket.

use std::collections::HashMap;

use bollard::{
    container::LogOutput,
    errors::Error as DockerError,
    models::{ContainerCreateBody, HostConfig},
    query_parameters::{
        AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
        RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder,
    },
    ClientVersion, Docker,
};
use futures_util::StreamExt;

use super::{Exit, Instance, LaunchSpec, OutputSender, Peer, Sandbox, SandboxError, AGENT_UID, BROKER_MOUNT, CODE_MOUNT};
use crate::{util::BoxFuture, OutputStream, Tier};

/// The label every container of a run carries: how cleanup and tests find them.
pub const RUN_LABEL: &str = "dev.symbiont.run";
pub const AGENT_LABEL: &str = "dev.symbiont.agent";
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
        labels: Some(HashMap::from([(RUN_LABEL.to_string(), spec.run_id.clone()), (AGENT_LABEL.to_string(), spec.agent.clone())])),
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
            let docker = self.docker()?;
            let body = container_body(self.tier, spec);
            let options = CreateContainerOptionsBuilder::default().name(&format!("symbiont-{}", spec.run_id)).build();
            let created = match docker.create_container(Some(options), body).await {
                Ok(created) => created,
                Err(e) if is_not_found(&e) => return Err(SandboxError::ImageMissing(spec.image.clone())),
                Err(DockerError::DockerResponseServerError { message, .. }) if message.contains("runtime") && self.tier == Tier::GVisor => {
                    return Err(SandboxError::Unavailable(format!(
                        "dockerd has no `{RUNSC_RUNTIME}` runtime ({message}): install gVisor (`apt-get install runsc`) and register it in /etc/docker/daemon.json (docs/runtime.md, \"Set-up\")"
                    )))
                }
                Err(e) => return Err(SandboxError::Backend(format!("creating the container: {e}"))),
            };
            Ok(Box::new(DockerInstance { docker: docker.clone(), id: created.id, output_task: None }) as Box<dyn Instance>)
        })
    }
}

struct DockerInstance {
    docker: Docker,
    id: String,
    output_task: Option<tokio::task::JoinHandle<()>>,
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

    fn identify(&self) -> crate::broker::Identify {
        let id = self.id.clone();
        std::sync::Arc::new(move |peer| match peer {
            Peer::Process { pid } => process_in_container(pid, &id),
            Peer::Vsock { .. } => false,
        })
    }

    fn start(&mut self, output: OutputSender) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async move {
            // Attached before starting, so that no early output is lost.
            let options = AttachContainerOptionsBuilder::default().stdout(true).stderr(true).stream(true).logs(true).build();
            let attached = self.docker.attach_container(&self.id, Some(options)).await.map_err(backend("attaching to the container"))?;
            let mut stream = attached.output;
            self.output_task = Some(tokio::spawn(async move {
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
            }));
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
            let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
            match self.docker.remove_container(&self.id, Some(options)).await {
                Ok(()) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                // Removal already under way (dockerd reports 409): it will finish on its own.
                Err(DockerError::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
                Err(e) => Err(SandboxError::Backend(format!("removing the container: {e}"))),
            }
        })
    }
}

/// Containers labelled as belonging to `run_id` (any state): what a finished run must not leave.
pub async fn containers_of_run(docker: &Docker, run_id: &str) -> Result<Vec<String>, SandboxError> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{RUN_LABEL}={run_id}")])]);
    let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let list = docker.list_containers(Some(options)).await.map_err(backend("listing containers"))?;
    Ok(list.into_iter().filter_map(|c| c.id).collect())
}
