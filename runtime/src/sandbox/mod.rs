//! Sandbox backends, one per tier, behind one trait so that the runtime never knows which it
//! drives. A backend that cannot run on this machine says so from [`Sandbox::available`]; the
//! runtime then refuses the run (it never picks a weaker backend).

pub mod docker;
pub mod firecracker;

use std::path::PathBuf;

use tokio::sync::mpsc;

use crate::{config::Limits, util::BoxFuture, Tier};

/// Where things are inside every sandbox.
pub const CODE_MOUNT: &str = "/agent";
pub const BROKER_MOUNT: &str = "/run/symbiont";
pub const BROKER_SOCKET: &str = "/run/symbiont/broker.sock";
/// The user agents run as (nobody); never root.
pub const AGENT_UID: u32 = 65534;

/// What a backend needs to launch one agent.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// Unique per run: names the container or VM and labels everything created for it.
    pub run_id: String,
    pub agent: String,
    pub image: String,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Mounted read-only at [`CODE_MOUNT`].
    pub code_dir: PathBuf,
    /// Holds the broker's socket; mounted at [`BROKER_MOUNT`].
    pub broker_dir: PathBuf,
    pub limits: Limits,
    /// Labels added to the sandbox besides the run's and the agent's: who owns it
    /// (`crate::leftovers::labels`), so that a later runtime can clean up after a killed one.
    pub labels: Vec<(String, String)>,
}

/// How the peer of a broker connection is known to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A Unix socket peer: the host pid from `SO_PEERCRED`.
    Process { pid: i32 },
    /// A vsock peer: the guest's context id.
    Vsock { cid: u32 },
}

/// How a sandboxed program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: i64,
    /// The kernel killed it for exceeding its memory limit.
    pub oom_killed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SandboxError {
    /// The tier cannot run here (no dockerd, no runsc runtime, no KVM or firecracker binary).
    Unavailable(String),
    /// The image the agent needs is not built.
    ImageMissing(String),
    /// Anything else the backend reported.
    Backend(String),
}

impl std::fmt::Display for SandboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SandboxError::Unavailable(why) => write!(f, "sandbox unavailable: {why}"),
            SandboxError::ImageMissing(image) => {
                write!(f, "image `{image}` is not built: run `symbiont image build` first")
            }
            SandboxError::Backend(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for SandboxError {}

/// Output of the sandboxed program, in arrival order.
pub type OutputSender = mpsc::UnboundedSender<Output>;

/// Which of the agent's streams a chunk of output is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// One agent's output chunk, as the sandbox produced it.
pub type Output = (OutputStream, Vec<u8>);

/// Decides whether a connection's peer is the agent's sandbox (the broker asks it of each).
pub type Identify = std::sync::Arc<dyn Fn(Peer) -> bool + Send + Sync>;

/// A sandbox backend: one per tier.
pub trait Sandbox: Send + Sync {
    fn tier(&self) -> Tier;

    /// Whether this backend can run here; the error says why not.
    fn available(&self) -> BoxFuture<'_, Result<(), SandboxError>>;

    /// Creates the sandbox (not started): the broker learns its identity before it runs.
    fn create<'a>(&'a self, spec: &'a LaunchSpec) -> BoxFuture<'a, Result<Box<dyn Instance>, SandboxError>>;

    /// Creates and starts a sandbox ahead of its run, for the runtime's pre-started pool
    /// (`crate::pool`): exactly the restrictions of [`Sandbox::create`], `spec.command` waiting
    /// for one line on its standard input, labelled as belonging to `pool`. A backend without a
    /// pool (the default) says so and the runtime launches cold.
    fn warm<'a>(&'a self, spec: &'a LaunchSpec, pool: &'a str) -> BoxFuture<'a, Result<Box<dyn Warm>, SandboxError>> {
        let _ = (spec, pool);
        Box::pin(async move { Err(SandboxError::Unavailable(format!("{} has no pre-started pool", self.tier()))) })
    }

    /// Creates and starts a warm sandbox that outlives this process (`crate::parked`): the
    /// sandbox of [`Sandbox::warm`], but attached by nobody, so that its program waits until a
    /// later process adopts it ([`Sandbox::adopt`]). Labelled with `labels`; returns its id.
    fn park<'a>(&'a self, spec: &'a LaunchSpec, labels: &'a [(String, String)]) -> BoxFuture<'a, Result<String, SandboxError>> {
        let _ = (spec, labels);
        Box::pin(async move { Err(SandboxError::Unavailable(format!("{} has no parked warm sandboxes", self.tier()))) })
    }

    /// The parked sandboxes carrying every label of `labels` (running ones only, unless `all`).
    fn parked<'a>(&'a self, labels: &'a [(String, String)], all: bool) -> BoxFuture<'a, Result<Vec<Parked>, SandboxError>> {
        let _ = (labels, all);
        Box::pin(async move { Ok(Vec::new()) })
    }

    /// Attaches to the parked sandbox `id` (made by [`Sandbox::park`], claimed by the caller), as
    /// [`Sandbox::warm`] attaches to its own.
    fn adopt<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Box<dyn Warm>, SandboxError>> {
        let _ = id;
        Box::pin(async move { Err(SandboxError::Unavailable(format!("{} has no parked warm sandboxes", self.tier()))) })
    }

    /// Removes the sandbox `id`, whatever its state; one that is gone already is no error.
    fn discard<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), SandboxError>> {
        let _ = id;
        Box::pin(async move { Ok(()) })
    }
}

/// A parked warm sandbox as [`Sandbox::parked`] lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Parked {
    pub id: String,
    pub labels: std::collections::HashMap<String, String>,
    /// When it was created, in seconds since the Unix epoch.
    pub created: i64,
    pub running: bool,
}

/// A sandbox started ahead of its run whose program waits for one line on its standard input.
pub trait Warm: Send + Sync {
    /// The backend's id for it, as [`Instance::id`] will say.
    fn id(&self) -> &str;

    /// Whether its program still runs, waiting for its line.
    fn alive(&self) -> BoxFuture<'_, bool>;

    /// Hands it to one run: `start()` of the instance writes `line` (ending it with a newline),
    /// closes the program's standard input, and streams its output. One that is not wanted is
    /// claimed and removed ([`Instance::remove`]) without being started.
    fn claim(self: Box<Self>, line: String) -> Box<dyn Instance>;
}

/// One created sandbox.
pub trait Instance: Send + Sync {
    /// The backend's id for it (container id, VM id).
    fn id(&self) -> &str;

    /// Tells whether a peer is a process of this sandbox: how the broker identifies the agent.
    fn identify(&self) -> Identify;

    /// Starts the program, streaming its output to `output`.
    fn start(&mut self, output: OutputSender) -> BoxFuture<'_, Result<(), SandboxError>>;

    /// Waits for the program to end.
    fn wait(&mut self) -> BoxFuture<'_, Result<Exit, SandboxError>>;

    /// Kills the program (SIGKILL); waiting then returns.
    fn kill(&self) -> BoxFuture<'_, Result<(), SandboxError>>;

    /// Removes everything the backend created for this sandbox; safe to call in any state.
    fn remove(&mut self) -> BoxFuture<'_, Result<(), SandboxError>>;
}
