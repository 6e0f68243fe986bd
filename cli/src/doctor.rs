//! `symbiont doctor`: whether this machine can run the workspace's agents. One check per thing a
//! sandbox tier or the audit log needs, each saying why it fails and the command that fixes it,
//! then one line per tier.
//!
//! Every check looks where the runtime looks, with the runtime's own code: its Docker client and
//! image references (`symbiont_runtime::image::reference`, the `dev.symbiont.sdk` label), the
//! Firecracker backend's configuration and KVM probe, the audit crate's PKCS#11 loader and key
//! reader. So a check passes exactly when a run would find the thing. Which tiers matter comes
//! from composing each agent as `symbiont run` does (`compose.rs`); a missing thing an agent needs
//! makes the exit status 1, a missing thing nobody needs is reported and leaves it 0.

use std::{
    fs,
    io::Write,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

use bollard::{errors::Error as DockerError, models::SystemInfo, query_parameters::ListImagesOptionsBuilder, Docker};
use lexopt::{Arg, Parser, ValueExt};
use serde::Serialize;
use symbiont_audit::{keys::FileSigner, pkcs11};
use symbiont_runtime::{
    image::{self, tier3, ImageKind, SDK_LABEL},
    sandbox::{
        docker,
        firecracker::{self, FirecrackerConfig, FirecrackerSandbox},
    },
    Tier,
};

use crate::{
    compose::{self, RunRequest, Workspace},
    usage::{Parsed, UsageError},
    Exit,
};

pub const DOCTOR_HELP: &str = "\
Check that this machine can run the workspace's agents, and say how to fix what it cannot

Usage: symbiont doctor [OPTIONS] [DIR]

Arguments:
  [DIR]  The workspace: the nearest directory with a symbiont.toml at or above DIR [default: .]

Options:
      --format <FORMAT>  human or json [default: human]
      --key <KEY>        The audit log's signing key, as runs are given it: a key file whose
                         permissions are checked, or a PKCS#11 URI whose module must load
                         [default: the workspace's .symbiont/audit.key]
  -h, --help             Print help

Checks: dockerd, runsc and its arguments, the images and the SDKs they hold (Tiers 1 and 2);
KVM, firecracker, the jailer, mkfs.ext4, the guest kernel and root filesystems (Tier 3); the
PKCS#11 module; the audit log directory's and its key's permissions. Each agent is composed as
'symbiont run' would compose it, to know its tier (a workspace without agents needs Tier 1).

Exit status: 0 when everything the workspace's agents need is there (what is missing is not
needed by them), 1 when something they need is missing, 2 on a usage error.
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug)]
pub struct DoctorOptions {
    pub dir: PathBuf,
    pub format: Format,
    pub key: Option<String>,
}

pub fn parse(parser: &mut Parser) -> Result<Parsed<DoctorOptions>, UsageError> {
    let err = |e: lexopt::Error| UsageError::new(e.to_string(), Some("doctor"));
    let usage = |m: String| UsageError::new(m, Some("doctor"));
    let (mut dir, mut format, mut key) = (None, Format::Human, None);
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Parsed::Help(DOCTOR_HELP)),
            Arg::Long("format") => {
                format = match parser.value().map_err(err)?.string().map_err(err)?.as_str() {
                    "human" => Format::Human,
                    "json" => Format::Json,
                    other => return Err(usage(format!("invalid value '{other}' for '--format' (expected human or json)"))),
                }
            }
            Arg::Long("key") => key = Some(parser.value().map_err(err)?.string().map_err(err)?),
            Arg::Value(value) if dir.is_some() => {
                return Err(usage(format!("one workspace at a time: unexpected '{}'", value.to_string_lossy())))
            }
            Arg::Value(value) => dir = Some(PathBuf::from(value)),
            arg => return Err(err(arg.unexpected())),
        }
    }
    Ok(Parsed::Options(DoctorOptions { dir: dir.unwrap_or_else(|| PathBuf::from(".")), format, key }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Missing,
    Warning,
}

/// Which runs need a check to pass.
#[derive(Debug, Clone, Copy)]
enum Need {
    /// Every run (the audit log, a key the runs are given).
    Always,
    /// No run: reported for information.
    Never,
    Tiers(&'static [Tier]),
    /// Runs at Tiers 1 and 2 of agents of this image's language.
    Image(ImageKind),
}

const CONTAINER_TIERS: &[Tier] = &[Tier::Docker, Tier::GVisor];
const GVISOR: &[Tier] = &[Tier::GVisor];
const MICRO_VM: &[Tier] = &[Tier::MicroVm];

/// One line of the report (the JSON output is an array of these).
#[derive(Debug, Serialize)]
struct Check {
    check: String,
    status: Status,
    detail: String,
    /// The command that fixes it; `null` when nothing needs fixing.
    fix: Option<String>,
    #[serde(skip)]
    need: Need,
}

impl Check {
    fn ok(check: &str, detail: impl Into<String>, need: Need) -> Check {
        Check { check: check.to_string(), status: Status::Ok, detail: detail.into(), fix: None, need }
    }

    fn missing(check: &str, detail: impl Into<String>, fix: impl Into<String>, need: Need) -> Check {
        Check { check: check.to_string(), status: Status::Missing, detail: detail.into(), fix: Some(fix.into()), need }
    }

    fn warning(check: &str, detail: impl Into<String>, fix: impl Into<String>, need: Need) -> Check {
        Check { check: check.to_string(), status: Status::Warning, detail: detail.into(), fix: Some(fix.into()), need }
    }

    /// Missing, and needed by one of `needers`.
    fn blocks(&self, needers: &[Needer]) -> bool {
        self.status == Status::Missing && needers.iter().any(|n| self.need.covers(n))
    }
}

/// What one agent needs of this machine: its tier and its image (`None`: any of them).
struct Needer {
    name: String,
    tier: Tier,
    image: Option<ImageKind>,
}

impl Need {
    fn covers(self, needer: &Needer) -> bool {
        match self {
            Need::Always => true,
            Need::Never => false,
            Need::Tiers(tiers) => tiers.contains(&needer.tier),
            Need::Image(kind) => CONTAINER_TIERS.contains(&needer.tier) && needer.image.is_none_or(|i| i == kind),
        }
    }
}

pub fn run(options: &DoctorOptions) -> Exit {
    let root = match workspace_root(&options.dir) {
        Ok(root) => root,
        Err(e) => return Exit::failure(e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return Exit::failure(format!("cannot start the async runtime: {e}")),
    };
    let (needers, agents) = needers(&root);
    let mut checks = vec![agents];
    checks.extend(runtime.block_on(docker_checks()));
    checks.extend(tier3_checks());
    checks.push(hsm_check(options.key.as_deref()));
    checks.extend(audit_checks(&root, options.key.as_deref()));
    let summaries: Vec<Check> = Tier::ALL.iter().map(|&tier| tier_summary(tier, &checks, &needers)).collect();
    let blocked = checks.iter().any(|c| c.blocks(&needers));
    checks.extend(summaries);
    let text = match options.format {
        Format::Human => human(&checks),
        Format::Json => serde_json::to_string_pretty(&checks).expect("checks serialize") + "\n",
    };
    if let Err(e) = std::io::stdout().write_all(text.as_bytes()) {
        return Exit::failure(format!("cannot write the report: {e}"));
    }
    if blocked {
        Exit::Problems
    } else {
        Exit::Clean
    }
}

/// `ok       dockerd: reachable (Docker 20.10.24)`, one line per check, the fix at its end.
fn human(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let status = match c.status {
            Status::Ok => "ok",
            Status::Missing => "missing",
            Status::Warning => "warning",
        };
        let fix = c.fix.as_ref().map(|f| format!(" (fix: {f})")).unwrap_or_default();
        out.push_str(&format!("{status:<8} {}: {}{fix}\n", c.check, c.detail));
    }
    out
}

/// The nearest directory with a `symbiont.toml` at or above `dir`, else `dir`; absolute.
fn workspace_root(dir: &Path) -> Result<PathBuf, String> {
    let cwd = std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    let dir = cwd.join(dir).canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    if !dir.is_dir() {
        return Err(format!("{}: not a directory (doctor checks a workspace directory)", dir.display()));
    }
    Ok(crate::walk::find_config(&dir, &cwd).and_then(|c| cwd.join(c).parent().map(Path::to_path_buf)).unwrap_or(dir))
}

/// Each agent's tier and image, composed as `symbiont run` composes it, and the line saying so.
/// A workspace without agents (or one that cannot be read) needs Tier 1.
fn needers(root: &Path) -> (Vec<Needer>, Check) {
    let tier1 = || vec![Needer { name: "the workspace".into(), tier: Tier::Docker, image: None }];
    let workspace = match Workspace::load(root) {
        Ok(workspace) => workspace,
        Err(refusal) => {
            let detail = format!("cannot tell which tiers the agents need (Tier 1 is assumed): {}", refusal.message);
            return (tier1(), Check::warning("agents", detail, "symbiont check", Need::Never));
        }
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| root.to_path_buf());
    let (mut needers, mut refused) = (Vec::new(), Vec::new());
    for agent in workspace.universe.agents() {
        let request = RunRequest::for_agent(&cwd.join(&*agent.loc.file), &agent.name);
        match compose::compose(&request, &workspace) {
            Ok(composed) => needers.push(Needer {
                name: agent.name.clone(),
                tier: composed.config.tier,
                image: Some(ImageKind::for_language(composed.config.language)),
            }),
            Err(refusal) => refused.push(format!("`{}`: {}", agent.name, refusal.message)),
        }
    }
    let listed: Vec<String> = needers
        .iter()
        .map(|n| format!("`{}` at Tier {} ({} image)", n.name, n.tier.number(), n.image.map_or("any", ImageKind::name)))
        .collect();
    let check = if !refused.is_empty() {
        let detail = format!("{}; not counted, as `symbiont run` refuses them: {}", plural_agents(&listed), refused.join("; "));
        Check::warning("agents", detail, "symbiont check", Need::Never)
    } else if listed.is_empty() {
        Check::ok("agents", format!("none in {}: Tier 1 is what the workspace needs", root.display()), Need::Never)
    } else {
        Check::ok("agents", plural_agents(&listed), Need::Never)
    };
    if needers.is_empty() {
        needers = tier1();
    }
    (needers, check)
}

fn plural_agents(listed: &[String]) -> String {
    match listed {
        [] => "no agent composes".to_string(),
        [one] => format!("1 agent: {one}"),
        many => format!("{} agents: {}", many.len(), many.join(", ")),
    }
}

/// The line of a tier: available, or unavailable with the missing checks it rests on; missing
/// (the exit status 1) when an agent of that tier needs one of them.
fn tier_summary(tier: Tier, checks: &[Check], needers: &[Needer]) -> Check {
    let relevant = |c: &&Check| match c.need {
        Need::Tiers(tiers) => tiers.contains(&tier),
        Need::Image(_) => CONTAINER_TIERS.contains(&tier),
        Need::Always | Need::Never => false,
    };
    let name = format!("tier {}", tier.number());
    let missing: Vec<&Check> = checks.iter().filter(relevant).filter(|c| c.status == Status::Missing).collect();
    if missing.is_empty() {
        return Check::ok(&name, format!("{tier} is available"), Need::Never);
    }
    let users: Vec<&Needer> = needers.iter().filter(|n| n.tier == tier).collect();
    let reasons: Vec<String> = missing.iter().map(|c| format!("{} ({})", c.check, c.detail)).collect();
    let who = match users.as_slice() {
        [] => "no agent of this workspace needs it".to_string(),
        users => format!("needed by {}", users.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")),
    };
    let mut fixes: Vec<&str> = Vec::new();
    for fix in missing.iter().filter_map(|c| c.fix.as_deref()) {
        if !fixes.contains(&fix) {
            fixes.push(fix);
        }
    }
    let detail = format!("{tier} is unavailable: {}; {who}", reasons.join("; "));
    let status = if missing.iter().any(|c| users.iter().any(|n| c.need.covers(n))) { Status::Missing } else { Status::Warning };
    Check { check: name, status, detail, fix: Some(fixes.join("; ")), need: Need::Never }
}

// Tiers 1 and 2: dockerd, runsc, the images.

const SANDBOX_SETUP: &str = "sudo scripts/sandbox-setup";

async fn docker_checks() -> Vec<Check> {
    let connected = match docker::connect().await {
        Ok(docker) => docker.version().await.map(|v| (docker, v)).map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    let (docker, version) = match connected {
        Ok(found) => found,
        Err(e) => {
            let mut checks = vec![Check::missing("dockerd", format!("not reachable: {e}"), SANDBOX_SETUP, Need::Tiers(CONTAINER_TIERS))];
            let unknown = "unknown: dockerd is not reachable";
            checks.push(Check::missing("runsc", unknown, SANDBOX_SETUP, Need::Tiers(GVISOR)));
            for kind in ImageKind::ALL {
                checks.push(Check::missing(&format!("image {}", kind.name()), unknown, SANDBOX_SETUP, Need::Image(kind)));
            }
            return checks;
        }
    };
    let engine = version.version.unwrap_or_else(|| "version unknown".into());
    let mut checks = vec![Check::ok("dockerd", format!("reachable (Docker {engine})"), Need::Tiers(CONTAINER_TIERS))];
    checks.push(runsc_check(docker.info().await));
    for kind in ImageKind::ALL {
        checks.push(image_check(&docker, kind).await);
    }
    checks
}

/// The arguments `scripts/sandbox-setup` registers runsc with, and why Tier 2 needs each.
const RUNSC_FIX: &str = "sudo scripts/sandbox-setup && sudo pkill -HUP dockerd";

/// runsc registered in dockerd, with `--host-uds=open` (without it the agent cannot connect to
/// its broker's socket); a platform other than ptrace or systrap (both work without KVM) and
/// gVisor's own network stack left on are warnings.
fn runsc_check(info: Result<SystemInfo, DockerError>) -> Check {
    let need = Need::Tiers(GVISOR);
    let runtimes = match info {
        Ok(info) => info.runtimes.unwrap_or_default(),
        Err(e) => return Check::missing("runsc", format!("dockerd does not say its runtimes: {e}"), SANDBOX_SETUP, need),
    };
    let Some(runsc) = runtimes.get(docker::RUNSC_RUNTIME) else {
        let detail = "dockerd has no `runsc` runtime (gVisor is not registered in /etc/docker/daemon.json)";
        return Check::missing("runsc", detail, RUNSC_FIX, need);
    };
    let path = runsc.path.clone().unwrap_or_else(|| docker::RUNSC_RUNTIME.to_string());
    let args = runsc.runtime_args.clone().unwrap_or_default();
    let registered = format!("{path} {}", args.join(" "));
    if path.starts_with('/') && !is_executable(Path::new(&path)) {
        return Check::missing(
            "runsc",
            format!("registered as {path}, which is not an executable file"),
            "sudo apt-get install runsc",
            need,
        );
    }
    if !args.iter().any(|a| a == "--host-uds=open") {
        let detail = format!("registered as `{registered}`, without --host-uds=open: the agent cannot connect to its broker's socket");
        return Check::missing("runsc", detail, RUNSC_FIX, need);
    }
    let mut concerns = Vec::new();
    if let Some(platform) = args.iter().find_map(|a| a.strip_prefix("--platform=")).filter(|p| !matches!(*p, "ptrace" | "systrap")) {
        concerns.push(format!("--platform={platform} needs more of the host than ptrace, which works everywhere"));
    }
    if !args.iter().any(|a| a == "--network=none") {
        concerns.push("gVisor's own network stack is on (no --network=none) though the containers have no network".to_string());
    }
    if concerns.is_empty() {
        Check::ok("runsc", format!("registered as `{registered}`"), need)
    } else {
        Check::warning("runsc", format!("registered as `{registered}`: {}", concerns.join("; ")), RUNSC_FIX, need)
    }
}

/// The image this build of symbiont runs `kind`'s agents in, holding the SDK it was built with.
async fn image_check(docker: &Docker, kind: ImageKind) -> Check {
    let name = format!("image {}", kind.name());
    let (reference, need, fix) = (image::reference(kind), Need::Image(kind), format!("symbiont image build {}", kind.name()));
    let wanted = kind.sdk().map(|sdk| sdk.describe());
    match docker.inspect_image(&reference).await {
        Ok(found) => {
            let label = found.config.and_then(|c| c.labels).and_then(|mut labels| labels.remove(SDK_LABEL));
            match (wanted, label) {
                (Some(wanted), Some(label)) if wanted == label => Check::ok(&name, format!("{reference}, holds {label}"), need),
                (Some(wanted), label) => {
                    let holds = label.unwrap_or_else(|| format!("no `{SDK_LABEL}` label"));
                    let detail = format!("{reference} holds {holds}, not {wanted}");
                    Check::missing(&name, detail, format!("docker rmi {reference} && {fix}"), need)
                }
                (None, _) => Check::ok(&name, reference, need),
            }
        }
        Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => {
            let needs = wanted.map(|w| format!(" (with {w})")).unwrap_or_default();
            let older = older_images(docker, kind, &reference).await;
            let detail = if older.is_empty() {
                format!("{reference}{needs} is not built")
            } else {
                format!("{reference}{needs} is not built; this machine has only older ones: {}", older.join(", "))
            };
            Check::missing(&name, detail, fix, need)
        }
        Err(e) => Check::missing(&name, format!("cannot inspect {reference}: {e}"), fix, need),
    }
}

/// The other `symbiont/KIND:*` images and the SDK each holds: what an older build left.
async fn older_images(docker: &Docker, kind: ImageKind, current: &str) -> Vec<String> {
    let repository = format!("symbiont/{}", kind.name());
    let filters = std::collections::HashMap::from([("reference", vec![repository.as_str()])]);
    let options = ListImagesOptionsBuilder::default().filters(&filters).build();
    let images = docker.list_images(Some(options)).await.unwrap_or_default();
    let mut older = Vec::new();
    for summary in images {
        let holds = summary.labels.get(SDK_LABEL).cloned().unwrap_or_else(|| format!("no `{SDK_LABEL}` label"));
        for tag in summary.repo_tags.iter().filter(|t| t.as_str() != current && t.starts_with(&format!("{repository}:"))) {
            older.push(format!("{tag} (holds {holds})"));
        }
    }
    older.sort();
    older
}

// Tier 3: KVM, Firecracker, the jailer, mkfs.ext4, the guest's artifacts.

const FIRECRACKER_INSTALL: &str = "install firecracker (and jailer) from https://github.com/firecracker-microvm/firecracker/releases into /usr/local/bin, or set SYMBIONT_FIRECRACKER";

fn tier3_checks() -> Vec<Check> {
    let (config, problems) = FirecrackerConfig::from_environment();
    vec![
        kvm_check(&config.kvm_device),
        firecracker_check(&config),
        jailer_check(&config, &problems),
        mkfs_check(&config),
        artifacts_check(&config, &problems),
    ]
}

/// The backend's own probe: the device opens read-write, speaks KVM API 12 and creates a VM.
fn kvm_check(device: &Path) -> Check {
    let need = Need::Tiers(MICRO_VM);
    match firecracker::kvm::check(device) {
        Ok(()) => Check::ok(
            "kvm",
            format!("{} opens read-write, speaks KVM API {} and creates VMs", device.display(), firecracker::kvm::KVM_API_VERSION),
            need,
        ),
        Err(e) => {
            let fix = match fs::OpenOptions::new().read(true).write(true).open(device) {
                Err(open) if open.kind() == std::io::ErrorKind::NotFound => {
                    "sudo modprobe kvm_intel || sudo modprobe kvm_amd (with virtualization enabled in the firmware, or nested virtualization on a VM)"
                }
                Err(open) if open.kind() == std::io::ErrorKind::PermissionDenied => "sudo usermod -aG kvm \"$USER\" (then log in again)",
                _ => "use a host whose KVM creates VMs: bare metal, or a VM with nested virtualization",
            };
            Check::missing("kvm", e, fix, need)
        }
    }
}

fn firecracker_check(config: &FirecrackerConfig) -> Check {
    let need = Need::Tiers(MICRO_VM);
    if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        let detail = format!("Firecracker runs on x86_64 and aarch64 hosts only, not {}", std::env::consts::ARCH);
        return Check::missing("firecracker", detail, "use an x86_64 or aarch64 host for Tier 3", need);
    }
    let Some(path) = &config.firecracker else {
        let detail = format!("not found: no `firecracker` on PATH, and {} is not set", firecracker::ENV_FIRECRACKER);
        return Check::missing("firecracker", detail, FIRECRACKER_INSTALL, need);
    };
    if !is_executable(path) {
        return Check::missing("firecracker", format!("{} is not an executable file", path.display()), FIRECRACKER_INSTALL, need);
    }
    match std::process::Command::new(path).arg("--version").output() {
        Ok(out) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().trim().to_string();
            Check::ok("firecracker", format!("{} ({version})", path.display()), need)
        }
        Ok(out) => {
            let detail = format!("{} --version failed: {}", path.display(), String::from_utf8_lossy(&out.stderr).trim());
            Check::missing("firecracker", detail, FIRECRACKER_INSTALL, need)
        }
        Err(e) => Check::missing("firecracker", format!("{} does not run: {e}", path.display()), FIRECRACKER_INSTALL, need),
    }
}

/// The jailer is used only when `SYMBIONT_FC_JAILER` names it; without it VMs run unjailed (a
/// warning). Named but unusable, the backend refuses Tier 3.
fn jailer_check(config: &FirecrackerConfig, problems: &[String]) -> Check {
    let need = Need::Tiers(MICRO_VM);
    let env = firecracker::ENV_JAILER;
    let Some(jailer) = &config.jailer else {
        return match find_on_path("jailer") {
            Some(found) => Check::warning(
                "jailer",
                format!("{} is there but unused: {env} is not set, so VMs run without its chroot and privilege drop", found.display()),
                format!("export {env}={}", found.display()),
                need,
            ),
            None => Check::warning(
                "jailer",
                format!("not found and {env} is not set: VMs would run without the jailer's chroot and privilege drop"),
                format!("install jailer from the Firecracker release (https://github.com/firecracker-microvm/firecracker/releases) beside firecracker, then export {env}=/usr/local/bin/jailer"),
                need,
            ),
        };
    };
    // The configuration's problems that are the jailer's: its uid and gid.
    let mut wrong: Vec<String> = problems.iter().filter(|p| p.starts_with(env)).cloned().collect();
    if !is_executable(&jailer.binary) {
        wrong.push(format!("{} ({env}) is not an executable file", jailer.binary.display()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        wrong.push(format!("{env} is set but the jailer must be started as root"));
    }
    if wrong.is_empty() {
        let detail = format!(
            "{}: VMs run in chroots under {}, as uid {} gid {}",
            jailer.binary.display(),
            jailer.chroot_base.display(),
            jailer.uid,
            jailer.gid
        );
        Check::ok("jailer", detail, need)
    } else {
        Check::missing("jailer", wrong.join("; "), format!("{FIRECRACKER_INSTALL}; run Tier 3 as root, or unset {env}"), need)
    }
}

fn mkfs_check(config: &FirecrackerConfig) -> Check {
    let need = Need::Tiers(MICRO_VM);
    match &config.mkfs {
        Some(path) if is_executable(path) => Check::ok("mkfs.ext4", format!("{} (makes each run's agent drive)", path.display()), need),
        Some(path) => {
            Check::missing("mkfs.ext4", format!("{} is not an executable file", path.display()), "sudo apt-get install e2fsprogs", need)
        }
        None => Check::missing("mkfs.ext4", "not found (each run's agent drive is made with it)", "sudo apt-get install e2fsprogs", need),
    }
}

/// The guest kernel, initrd and root filesystem where the backend finds them: from the manifest
/// `symbiont image build --tier 3` writes, their SHA-256 verified as a run verifies them before
/// booting; or named by the environment (unverified, as the backend takes them).
fn artifacts_check(config: &FirecrackerConfig, problems: &[String]) -> Check {
    const NAME: &str = "tier 3 artifacts";
    const BUILD: &str = "symbiont image build --tier 3";
    let need = Need::Tiers(MICRO_VM);
    if let Some(dir) = &config.manifest_dir {
        if let Err(e) = FirecrackerSandbox::new(config.clone()).verify_artifacts() {
            return Check::missing(NAME, e, BUILD, need);
        }
        let shown = dir.join(tier3::MANIFEST);
        return match tier3::Manifest::load(dir) {
            Ok(Some(manifest)) if manifest.recipe != tier3::recipe() => {
                let detail = format!(
                    "{} was built by another recipe ({}; this symbiont's is {}: its SDKs or packages changed); it still boots",
                    shown.display(),
                    manifest.recipe,
                    tier3::recipe()
                );
                Check::warning(NAME, detail, BUILD, need)
            }
            Ok(Some(manifest)) => {
                let detail = format!(
                    "kernel {} ({}), initrd and root filesystem as {} records them (SHA-256 verified)",
                    manifest.kernel_release,
                    manifest.kernel_package,
                    shown.display()
                );
                Check::ok(NAME, detail, need)
            }
            Ok(None) => Check::missing(NAME, format!("{} is gone", shown.display()), BUILD, need),
            Err(e) => Check::missing(NAME, e, BUILD, need),
        };
    }
    let (kernel, rootfs) = (&config.kernel, &config.rootfs);
    if kernel.is_none() && rootfs.is_none() {
        // A manifest that does not parse is among the configuration's problems.
        let unreadable: Vec<&str> = problems.iter().filter(|p| !p.starts_with(firecracker::ENV_JAILER)).map(String::as_str).collect();
        let detail = match unreadable.as_slice() {
            [] => format!("not built (no {})", tier3::dir().join(tier3::MANIFEST).display()),
            problems => problems.join("; "),
        };
        return Check::missing(NAME, detail, BUILD, need);
    }
    let mut wrong = Vec::new();
    match kernel {
        None => wrong.push(format!("no guest kernel ({} is not set)", firecracker::ENV_KERNEL)),
        Some(path) if !path.is_file() => wrong.push(format!("the guest kernel {} is not a file", path.display())),
        Some(_) => {}
    }
    if let Some(initrd) = config.initrd.as_ref().filter(|path| !path.is_file()) {
        wrong.push(format!("the initrd {} is not a file", initrd.display()));
    }
    let mut images = Vec::new();
    if rootfs.is_none() {
        wrong.push(format!("no root filesystem ({} is not set)", firecracker::ENV_ROOTFS));
    } else {
        for kind in ImageKind::ALL {
            match config.rootfs_for(&image::reference(kind)) {
                Ok(path) if path.is_file() => images.push(path.display().to_string()),
                Ok(path) => wrong.push(format!("the root filesystem {} is not a file", path.display())),
                Err(e) => wrong.push(e.to_string()),
            }
        }
    }
    if !wrong.is_empty() {
        return Check::missing(NAME, wrong.join("; "), BUILD, need);
    }
    let kernel = kernel.as_ref().map(|k| k.display().to_string()).unwrap_or_default();
    images.dedup();
    let detail = format!(
        "kernel {kernel}, root filesystem {}, named by {} and {} (not verified: no manifest records their hashes)",
        images.join(", "),
        firecracker::ENV_KERNEL,
        firecracker::ENV_ROOTFS
    );
    Check::ok(NAME, detail, need)
}

// The audit log: the PKCS#11 module, the log directory, the key.

/// Where distributions install SoftHSM2's module: what is looked for when no `--key` URI names one.
const SOFTHSM_MODULES: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
];

/// The PKCS#11 module loads and initializes: the one `--key`'s URI names (every run needs it),
/// else SoftHSM2's, if installed (for information: the workspace's own key is a file).
fn hsm_check(key: Option<&str>) -> Check {
    const NAME: &str = "hsm module";
    const URI_FIX: &str = "name the module with ?module-path=/path/to/module.so (symbiont audit --help)";
    let (module, need) = match key.filter(|k| pkcs11::is_uri(k)) {
        Some(uri) => match pkcs11::Pkcs11Uri::parse(uri) {
            Ok(parsed) => match parsed.module_path {
                Some(path) => (path, Need::Always),
                None => return Check::missing(NAME, "--key names no module (no module-path)", URI_FIX, Need::Always),
            },
            Err(e) => return Check::missing(NAME, format!("--key: {e}"), URI_FIX, Need::Always),
        },
        None => match SOFTHSM_MODULES.iter().map(Path::new).find(|p| p.exists()) {
            Some(path) => (path.to_path_buf(), Need::Never),
            None => {
                let detail =
                    "no PKCS#11 module found (SoftHSM2's libsofthsm2.so): needed only to keep the audit key in an HSM (--key pkcs11:…)";
                return Check::warning(NAME, detail, "sudo apt-get install softhsm2", Need::Never);
            }
        },
    };
    match pkcs11::load_module(&module) {
        Ok(()) => Check::ok(NAME, format!("{} loads and initializes", module.display()), need),
        Err(e) => {
            let fix = "install the module's package (SoftHSM2: sudo apt-get install softhsm2; its configuration: SOFTHSM2_CONF)";
            Check::missing(NAME, e.to_string(), fix, need)
        }
    }
}

fn audit_checks(root: &Path, key: Option<&str>) -> Vec<Check> {
    let state = root.join(".symbiont");
    let mut checks = vec![audit_dir_check(&state.join("audit"))];
    match key {
        Some(uri) if pkcs11::is_uri(uri) => {}
        Some(file) => checks.push(key_check(Path::new(file), false)),
        None => checks.push(key_check(&state.join("audit.key"), true)),
    }
    checks
}

/// `.symbiont/audit`: a directory of its own (not a link, as runs refuse), owned by the user,
/// writable by nobody else (who could delete or replace its segments).
fn audit_dir_check(dir: &Path) -> Check {
    const NAME: &str = "audit log directory";
    let shown = dir.display();
    let meta = match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Check::ok(NAME, format!("{shown}: not made yet (the first run makes it)"), Need::Always)
        }
        Err(e) => return Check::missing(NAME, format!("{shown}: {e}"), format!("ls -ld {}", quote(dir)), Need::Always),
        Ok(meta) => meta,
    };
    if meta.file_type().is_symlink() {
        let detail = format!("{shown} is a symbolic link: runs refuse it (the log must be a directory of its own)");
        return Check::missing(NAME, detail, format!("rm {} (the link only)", quote(dir)), Need::Always);
    }
    if !meta.is_dir() {
        return Check::missing(NAME, format!("{shown} is not a directory"), format!("mv {0} {0}.old", quote(dir)), Need::Always);
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if meta.uid() != euid {
        let detail = format!("{shown} is owned by uid {}, not by you (uid {euid}): its owner can rewrite the log", meta.uid());
        return Check::missing(NAME, detail, format!("sudo chown -R {euid} {}", quote(dir)), Need::Always);
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        let detail = format!("{shown} is group- or world-writable (mode {mode:04o}): others can delete or replace its segments");
        return Check::missing(NAME, detail, format!("chmod go-w {}", quote(dir)), Need::Always);
    }
    Check::ok(NAME, format!("{shown}: yours, mode {mode:04o}"), Need::Always)
}

/// The signing key file, read as a run reads it (`FileSigner::load`: no link, the user's, 0600).
fn key_check(path: &Path, workspace_key: bool) -> Check {
    const NAME: &str = "audit key";
    let shown = path.display();
    let meta = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && workspace_key => {
            return Check::ok(NAME, format!("{shown}: not made yet (the first run makes it, mode 0600)"), Need::Always)
        }
        Err(e) => {
            return Check::missing(NAME, format!("{shown}: {e}"), format!("symbiont audit keygen --key {}", quote(path)), Need::Always)
        }
        Ok(meta) => meta,
    };
    match FileSigner::load(path) {
        Ok(_) => Check::ok(NAME, format!("{shown}: yours, mode {:04o}", meta.permissions().mode() & 0o7777), Need::Always),
        Err(e) => {
            // SAFETY: geteuid has no preconditions and cannot fail.
            let euid = unsafe { libc::geteuid() };
            let fix = if meta.file_type().is_symlink() {
                format!("replace the link {} with the key file itself", quote(path))
            } else if meta.uid() != euid {
                format!("sudo chown {euid} {}", quote(path))
            } else if meta.permissions().mode() & 0o077 != 0 {
                format!("chmod 600 {}", quote(path))
            } else {
                format!("mv {0} {0}.bad (a new key is made at the next run; keep the old one to verify older entries)", quote(path))
            };
            Check::missing(NAME, e.to_string(), fix, Need::Always)
        }
    }
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| is_executable(p))
}

/// `path` as a shell word: as it is when it holds only safe characters, else single-quoted.
fn quote(path: &Path) -> String {
    let text = path.display().to_string();
    if text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:@%=,".contains(c)) {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needer(tier: Tier, image: Option<ImageKind>) -> Needer {
        Needer { name: "a".into(), tier, image }
    }

    #[test]
    fn needs_cover_the_agents_that_need_them() {
        let python1 = needer(Tier::Docker, Some(ImageKind::Python));
        let vm = needer(Tier::MicroVm, Some(ImageKind::Python));
        assert!(Need::Image(ImageKind::Python).covers(&python1));
        assert!(!Need::Image(ImageKind::Node).covers(&python1));
        assert!(!Need::Image(ImageKind::Python).covers(&vm), "a VM boots a root filesystem, not an image");
        assert!(Need::Image(ImageKind::Node).covers(&needer(Tier::Docker, None)), "no agents: every image of Tier 1");
        assert!(Need::Tiers(MICRO_VM).covers(&vm) && !Need::Tiers(GVISOR).covers(&python1));
        assert!(Need::Always.covers(&python1) && !Need::Never.covers(&python1));
    }

    #[test]
    fn a_tier_is_missing_only_when_an_agent_of_it_needs_what_is_missing() {
        let checks = vec![
            Check::missing("firecracker", "not found", "install", Need::Tiers(MICRO_VM)),
            Check::missing("image node", "not built", "symbiont image build node", Need::Image(ImageKind::Node)),
        ];
        let python1 = [needer(Tier::Docker, Some(ImageKind::Python))];
        let tier1 = tier_summary(Tier::Docker, &checks, &python1);
        assert_eq!(tier1.status, Status::Warning, "{tier1:?}");
        assert!(tier1.detail.contains("image node (not built)"), "{tier1:?}");
        let tier3 = tier_summary(Tier::MicroVm, &checks, &python1);
        assert_eq!(tier3.status, Status::Warning);
        assert!(tier3.detail.ends_with("no agent of this workspace needs it"), "{tier3:?}");
        let tier3 = tier_summary(Tier::MicroVm, &checks, &[needer(Tier::MicroVm, Some(ImageKind::Python))]);
        assert_eq!((tier3.status, tier3.fix.as_deref()), (Status::Missing, Some("install")));
        assert_eq!(tier_summary(Tier::GVisor, &checks, &python1).status, Status::Warning, "images serve Tiers 1 and 2");
        assert_eq!(tier_summary(Tier::GVisor, &checks[..1], &python1).status, Status::Ok);
        assert!(checks.iter().all(|c| !c.blocks(&python1)));
    }

    #[test]
    fn shell_words() {
        assert_eq!(quote(Path::new("/w/.symbiont/audit")), "/w/.symbiont/audit");
        assert_eq!(quote(Path::new("/my dir/it's")), r"'/my dir/it'\''s'");
    }
}
