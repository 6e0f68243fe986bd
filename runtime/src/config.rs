//! What the runtime needs to run one agent: [`AgentConfig`].

use std::{path::PathBuf, sync::Arc, time::Duration};

use symbiont_policy::{model::Isolation, Engine};

/// An isolation tier the runtime provides. Ordered: a higher tier isolates more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    /// Docker (runc) with every restriction Docker offers.
    Docker = 1,
    /// Docker with gVisor's `runsc`: a user-space kernel between the agent and the host.
    GVisor = 2,
    /// A Firecracker KVM microVM.
    MicroVm = 3,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Docker, Tier::GVisor, Tier::MicroVm];

    pub fn number(self) -> u8 {
        self as u8
    }

    pub fn from_number(n: u8) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.number() == n)
    }

    pub fn from_isolation(isolation: Isolation) -> Option<Tier> {
        match isolation {
            Isolation::Tier1 => Some(Tier::Docker),
            Isolation::Tier2 => Some(Tier::GVisor),
            Isolation::Tier3 => Some(Tier::MicroVm),
            Isolation::Auto => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tier::Docker => "Tier1 (Docker)",
            Tier::GVisor => "Tier2 (gVisor)",
            Tier::MicroVm => "Tier3 (Firecracker microVM)",
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Resource limits, enforced by the sandbox.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub memory_bytes: u64,
    pub cpus: f64,
    pub pids: i64,
    pub timeout: Duration,
    /// The size of the writable `/tmp`.
    pub tmpfs_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_bytes: 256 << 20, cpus: 1.0, pids: 128, timeout: Duration::from_secs(60), tmpfs_bytes: 64 << 20 }
    }
}

/// The language an agent's implementation is written in, which picks the image and the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    Python,
    JavaScript,
    /// A compiled program (a Rust agent built for Linux): run as it is.
    Native,
}

impl Language {
    /// From the entry point's file name.
    pub fn of_path(path: &std::path::Path) -> Option<Language> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("py") => Some(Language::Python),
            Some("js" | "mjs" | "cjs") => Some(Language::JavaScript),
            Some("rs" | "ts" | "tsx" | "mts" | "cts") => None,
            Some(_) => None,
            None => Some(Language::Native),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::JavaScript => "javascript",
            Language::Native => "native",
        }
    }
}

/// One agent, ready to run.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The agent's name in its `.sym` file.
    pub id: String,
    pub tier: Tier,
    pub limits: Limits,
    /// The agent's effective policy, compiled.
    pub policy: Arc<Engine>,
    pub language: Language,
    /// The implementation's files, copied read-only into the sandbox at `/agent`; the first is
    /// the entry point. Paths are relative to `code_root`.
    pub code_root: PathBuf,
    pub files: Vec<PathBuf>,
    /// The host directory the broker's file operations are confined to, opened once
    /// ([`crate::Workspace::for_agent`]): every file operation is beneath its descriptor.
    pub workspace: crate::Workspace,
    /// Handed to the agent as `SYMBIONT_INPUT` and to the policy as `input`.
    pub input: serde_json::Value,
    /// What the policy's guards and requirements read besides the request (`user_clearance`,
    /// `audit_trail`, …), given by whoever starts the run. `agent`, `run_id`, `tier` and `input`
    /// are set by the runtime and cannot be overridden.
    pub context: serde_json::Map<String, serde_json::Value>,
    /// The environment the agent reads with `env_get`: exactly these variables (undeclared ones
    /// read as null), never the host process's. `symbiont run` fills it from `symbiont.toml`
    /// (`[runtime.env]` and `pass_env`); put no secret here (secrets go through `secret_get`).
    pub env: std::collections::BTreeMap<String, String>,
    /// Its place in the scheduler's queue when the runtime is busy.
    pub priority: crate::scheduler::Priority,
}
