//! Tier 3: Firecracker microVMs. The backend is being completed; until then it reports itself
//! unavailable, so that a Tier 3 run is refused, never run with weaker isolation.

use super::{Instance, LaunchSpec, Sandbox, SandboxError};
use crate::{util::BoxFuture, Tier};

pub struct FirecrackerSandbox;

impl FirecrackerSandbox {
    pub fn from_environment() -> FirecrackerSandbox {
        FirecrackerSandbox
    }
}

impl Sandbox for FirecrackerSandbox {
    fn tier(&self) -> Tier {
        Tier::MicroVm
    }

    fn available(&self) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async { Err(SandboxError::Unavailable("the Firecracker backend is not built in yet".into())) })
    }

    fn create<'a>(&'a self, _spec: &'a LaunchSpec) -> BoxFuture<'a, Result<Box<dyn Instance>, SandboxError>> {
        Box::pin(async { Err(SandboxError::Unavailable("the Firecracker backend is not built in yet".into())) })
    }
}
