//! Tier 3: Firecracker microVMs. Each agent runs in its own KVM virtual machine, with its own
//! guest kernel, so that a kernel exploit in the agent reaches a guest kernel, not the host's.
//!
//! For each run the backend
//! - builds the agent drive, a small ext4 image holding the run's code and the guest's init
//!   script ([`guest`]), and links the broker's socket to where Firecracker's vsock device
//!   forwards guest connections (`{uds_path}_{BROKER_VSOCK_PORT}`);
//! - starts `firecracker --api-sock PATH`, or the `jailer` (chroot, uid/gid drop, namespaces)
//!   when [`JailerConfig`] is set, and configures it through its REST API ([`api`], [`configure`]):
//!   machine (vCPUs from `limits.cpus` rounded up, memory from `limits.memory_bytes`), boot
//!   source (kernel and command line), the read-only root and agent drives, the vsock device for
//!   the broker, and Firecracker's own log;
//! - boots it on `start`, reading the serial console (Firecracker's stdout) into the run's
//!   output, and takes the agent's exit status from the console ([`guest::Console`]);
//! - stops it with Ctrl-Alt-Del (the guest's init stops the agent), then SIGKILL, and removes
//!   the socket, log, drive and chroot it made.
//!
//! The broker identifies the agent by the connection: every guest connection reaches the host
//! as a connection from the Firecracker process of the VM on the per-VM Unix socket, so the
//! [`Instance::identify`] closure accepts exactly the peers whose pid is that process's, while
//! it runs.
//!
//! It must never: run an agent when KVM, the Firecracker binary, the kernel or the rootfs is
//! missing (`available` refuses, and the runtime never falls back to a weaker tier), or a kernel,
//! initrd or rootfs that no longer has the hash its Tier 3 manifest records; give the
//! guest a writable view of the rootfs or of the agent's code, a network device, or any host
//! path other than the images and the broker's socket; trust anything the guest says about
//! who it is; run the agent as root inside the guest; or leave a process, socket, image or
//! chroot behind after `remove`.
//!
//! Configuration comes from the environment ([`FirecrackerSandbox::from_environment`]):
//! `SYMBIONT_FIRECRACKER` (the binary; default: `firecracker` on `PATH`); the guest's kernel,
//! initrd and rootfs from the manifest `symbiont image build --tier 3` writes
//! ([`crate::image::tier3`]; `SYMBIONT_TIER3_DIR`, default `/var/lib/symbiont/tier3`), whose
//! SHA-256 hashes are verified before each boot ([`FirecrackerSandbox::verify_artifacts`]), or,
//! when `SYMBIONT_FC_KERNEL` or `SYMBIONT_FC_ROOTFS` is set, from those (an uncompressed guest
//! kernel, `vmlinux`; an ext4 rootfs image used for every agent, or a directory holding one per
//! image kind: `python.ext4`, `node.ext4`, `minimal.ext4`) and `SYMBIONT_FC_INITRD`, unverified;
//! `SYMBIONT_MKFS_EXT4` (default: `mkfs.ext4` on `PATH` or in `/sbin`,
//! `/usr/sbin`), and for the jailer `SYMBIONT_FC_JAILER` (its binary), `SYMBIONT_FC_JAILER_UID`,
//! `SYMBIONT_FC_JAILER_GID` (default 65534) and `SYMBIONT_FC_CHROOT_BASE` (default
//! `/srv/jailer`, which must be on the same file system as the run directory: the broker's
//! socket is hard-linked into the chroot).

pub mod api;
pub mod guest;
pub mod kvm;

use std::{
    fs,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicI32, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tokio::{
    io::AsyncReadExt,
    process::{Child, ChildStdout, Command},
    sync::{watch, Notify},
    task::JoinHandle,
};

use super::{Exit, Instance, LaunchSpec, OutputSender, Peer, Sandbox, SandboxError};
use crate::{config::Limits, image::tier3, locks::lock, util::BoxFuture, Tier};
use api::{ApiClient, BootSource, Drive, LogLevel, Logger, MachineConfiguration, Vsock};
pub use guest::{BROKER_VSOCK_PORT, GUEST_CID};

pub const ENV_FIRECRACKER: &str = "SYMBIONT_FIRECRACKER";
pub const ENV_KERNEL: &str = "SYMBIONT_FC_KERNEL";
pub const ENV_ROOTFS: &str = "SYMBIONT_FC_ROOTFS";
pub const ENV_INITRD: &str = "SYMBIONT_FC_INITRD";
pub const ENV_MKFS: &str = "SYMBIONT_MKFS_EXT4";
pub const ENV_JAILER: &str = "SYMBIONT_FC_JAILER";
pub const ENV_JAILER_UID: &str = "SYMBIONT_FC_JAILER_UID";
pub const ENV_JAILER_GID: &str = "SYMBIONT_FC_JAILER_GID";
pub const ENV_CHROOT_BASE: &str = "SYMBIONT_FC_CHROOT_BASE";

/// The smallest VM this backend boots: a guest kernel and a Debian userland need about this
/// much. A smaller memory limit is refused rather than exceeded.
pub const MIN_MEMORY_MIB: u64 = 64;
/// Firecracker's vCPU range.
pub const MAX_VCPUS: u32 = 32;
/// How long Firecracker may take to create its API socket.
pub const API_SOCKET_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the guest has to stop after Ctrl-Alt-Del before the process is killed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// File names in a VM's directory (the work directory, or the jail's root).
const API_SOCKET: &str = "api.sock";
const VSOCK_SOCKET: &str = "vsock.sock";
const KERNEL_FILE: &str = "vmlinux";
const ROOTFS_FILE: &str = "rootfs.ext4";
const INITRD_FILE: &str = "initrd.cpio";
const DRIVE_FILE: &str = "agent.ext4";
const LOG_FILE: &str = "firecracker.log";
const STAGING_DIR: &str = "drive-staging";

/// Drive ids (also the order of the guest's block devices: `vda`, `vdb`).
pub const ROOTFS_DRIVE: &str = "rootfs";
pub const AGENT_DRIVE: &str = "agent";

/// Run Firecracker under its jailer: chroot, new mount/pid-less namespaces, uid/gid drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JailerConfig {
    pub binary: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub chroot_base: PathBuf,
}

/// Where the backend finds what it needs. `None` means not found; [`Sandbox::available`] says
/// which and where it looked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirecrackerConfig {
    pub firecracker: Option<PathBuf>,
    pub kernel: Option<PathBuf>,
    /// A rootfs image, or a directory of `{kind}.ext4` images.
    pub rootfs: Option<PathBuf>,
    /// The initrd the kernel boots with, if it needs one.
    pub initrd: Option<PathBuf>,
    /// The Tier 3 directory whose manifest named the kernel, initrd and rootfs: their hashes are
    /// verified against it before each boot. `None` when they were named by the environment.
    pub manifest_dir: Option<PathBuf>,
    pub mkfs: Option<PathBuf>,
    pub jailer: Option<JailerConfig>,
    pub kvm_device: PathBuf,
    /// Where each VM's directory is made when there is no jailer.
    pub work_root: PathBuf,
}

impl FirecrackerConfig {
    /// From the environment variables listed in the module's documentation; the second value
    /// lists the variables that were set but unusable.
    pub fn from_environment() -> (FirecrackerConfig, Vec<String>) {
        let mut problems = Vec::new();
        let path_var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let mut id = |name: &str| match std::env::var(name) {
            Ok(value) => value.parse::<u32>().map_err(|_| problems.push(format!("{name}={value:?} is not a numeric id"))).unwrap_or(65534),
            Err(_) => 65534,
        };
        let jailer = path_var(ENV_JAILER).map(|binary| JailerConfig {
            binary,
            uid: id(ENV_JAILER_UID),
            gid: id(ENV_JAILER_GID),
            chroot_base: path_var(ENV_CHROOT_BASE).unwrap_or_else(|| PathBuf::from("/srv/jailer")),
        });
        let (kernel, rootfs, initrd, manifest_dir) = if path_var(ENV_KERNEL).is_some() || path_var(ENV_ROOTFS).is_some() {
            (path_var(ENV_KERNEL), path_var(ENV_ROOTFS), path_var(ENV_INITRD), None)
        } else {
            let dir = tier3::dir();
            match tier3::Manifest::load(&dir) {
                Ok(Some(m)) => (Some(dir.join(&m.kernel.path)), Some(dir.join(&m.rootfs.path)), Some(dir.join(&m.initrd.path)), Some(dir)),
                Ok(None) => (None, None, None, None),
                Err(e) => {
                    problems.push(e);
                    (None, None, None, None)
                }
            }
        };
        let config = FirecrackerConfig {
            firecracker: path_var(ENV_FIRECRACKER).or_else(|| find_program("firecracker", &[])),
            kernel,
            rootfs,
            initrd,
            manifest_dir,
            mkfs: path_var(ENV_MKFS).or_else(mkfs_ext4),
            jailer,
            kvm_device: PathBuf::from("/dev/kvm"),
            work_root: std::env::temp_dir().join("symbiont-firecracker"),
        };
        (config, problems)
    }

    /// The rootfs image for a LaunchSpec's image reference (`symbiont/KIND:HASH`).
    pub fn rootfs_for(&self, image: &str) -> Result<PathBuf, SandboxError> {
        let rootfs = self.rootfs.as_ref().ok_or_else(|| SandboxError::Unavailable(format!("{ENV_ROOTFS} names no rootfs image")))?;
        if !rootfs.is_dir() {
            return Ok(rootfs.clone());
        }
        let kind = image.rsplit('/').next().unwrap_or(image).split(':').next().unwrap_or(image);
        let path = rootfs.join(format!("{kind}.ext4"));
        if path.is_file() {
            Ok(path)
        } else {
            Err(SandboxError::Unavailable(format!("no rootfs image for `{image}`: expected {}", path.display())))
        }
    }
}

pub use crate::util::mkfs_ext4;
use crate::util::{find_program, is_executable};

/// The Firecracker backend.
pub struct FirecrackerSandbox {
    config: FirecrackerConfig,
    problems: Vec<String>,
}

impl FirecrackerSandbox {
    /// Configured from the environment; what is missing is reported by `available`, not here.
    pub fn from_environment() -> FirecrackerSandbox {
        let (config, problems) = FirecrackerConfig::from_environment();
        FirecrackerSandbox { config, problems }
    }

    pub fn new(config: FirecrackerConfig) -> FirecrackerSandbox {
        FirecrackerSandbox { config, problems: Vec::new() }
    }

    pub fn config(&self) -> &FirecrackerConfig {
        &self.config
    }

    /// Every reason this backend cannot run here (empty: it can).
    pub fn missing(&self) -> Vec<String> {
        let mut missing = self.problems.clone();
        if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
            missing.push(format!("Firecracker runs on x86_64 and aarch64 hosts only, not {}", std::env::consts::ARCH));
        }
        if let Err(e) = kvm::check(&self.config.kvm_device) {
            missing.push(e);
        }
        let c = &self.config;
        match &c.firecracker {
            None => missing.push(format!("no firecracker binary: set {ENV_FIRECRACKER} or put `firecracker` on PATH")),
            Some(path) if !is_executable(path) => {
                missing.push(format!("the firecracker binary {} is not an executable file", path.display()))
            }
            Some(_) => {}
        }
        if let Some(jailer) = &c.jailer {
            if !is_executable(&jailer.binary) {
                missing.push(format!("the jailer {} ({ENV_JAILER}) is not an executable file", jailer.binary.display()));
            }
            // SAFETY: geteuid has no preconditions and cannot fail.
            if unsafe { libc::geteuid() } != 0 {
                missing.push(format!("{ENV_JAILER} is set but the jailer must be started as root"));
            }
            if c.firecracker.as_ref().is_some_and(|f| !f.file_name().is_some_and(|n| n.to_string_lossy().contains("firecracker"))) {
                missing.push("the jailer runs only binaries whose name contains `firecracker`".into());
            }
        }
        let build = format!("run `symbiont image build --tier 3` (it records them in {})", tier3::dir().join(tier3::MANIFEST).display());
        match &c.kernel {
            None => missing.push(format!("no guest kernel: {build}, or set {ENV_KERNEL} to an uncompressed kernel image (vmlinux)")),
            Some(path) if !path.is_file() => missing.push(format!("the guest kernel {} is not a file", path.display())),
            Some(_) => {}
        }
        match &c.rootfs {
            None => {
                missing.push(format!("no rootfs image: {build}, or set {ENV_ROOTFS} to an ext4 image, or a directory of KIND.ext4 images"))
            }
            Some(path) if !path.exists() => missing.push(format!("the rootfs {} does not exist", path.display())),
            Some(_) => {}
        }
        if let Some(initrd) = c.initrd.as_ref().filter(|path| !path.is_file()) {
            missing.push(format!("the initrd {} is not a file", initrd.display()));
        }
        match &c.mkfs {
            None => missing.push(format!("no mkfs.ext4 (e2fsprogs) to build the agent drive: install e2fsprogs or set {ENV_MKFS}")),
            Some(path) if !is_executable(path) => missing.push(format!("{} ({ENV_MKFS}) is not an executable file", path.display())),
            Some(_) => {}
        }
        missing
    }

    /// Checks the kernel, initrd and rootfs against the manifest they came from: present, still
    /// the files it names, and of the hashes it records (every byte is read: about a second for
    /// a root filesystem). Nothing to check when the environment named them.
    pub fn verify_artifacts(&self) -> Result<(), String> {
        let c = &self.config;
        let Some(dir) = &c.manifest_dir else { return Ok(()) };
        let manifest = tier3::Manifest::load(dir)?
            .ok_or_else(|| format!("{} is gone: run `symbiont image build --tier 3`", dir.join(tier3::MANIFEST).display()))?;
        let named = (Some(dir.join(&manifest.kernel.path)), Some(dir.join(&manifest.rootfs.path)), Some(dir.join(&manifest.initrd.path)));
        if named != (c.kernel.clone(), c.rootfs.clone(), c.initrd.clone()) {
            return Err(format!(
                "{} was rebuilt since this runtime read it: start it again to use the new artifacts",
                dir.join(tier3::MANIFEST).display()
            ));
        }
        manifest.verify(dir)
    }

    fn required(&self) -> Result<(PathBuf, PathBuf, PathBuf), SandboxError> {
        let c = &self.config;
        match (&c.firecracker, &c.kernel, &c.mkfs) {
            (Some(firecracker), Some(kernel), Some(mkfs)) => Ok((firecracker.clone(), kernel.clone(), mkfs.clone())),
            _ => Err(SandboxError::Unavailable(self.missing().join("; "))),
        }
    }
}

impl Sandbox for FirecrackerSandbox {
    fn tier(&self) -> Tier {
        Tier::MicroVm
    }

    fn available(&self) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async move {
            let missing = self.missing();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(SandboxError::Unavailable(missing.join("; ")))
            }
        })
    }

    fn create<'a>(&'a self, spec: &'a LaunchSpec) -> BoxFuture<'a, Result<Box<dyn Instance>, SandboxError>> {
        Box::pin(async move { Ok(Box::new(self.create_vm(spec).await?) as Box<dyn Instance>) })
    }
}

/// The vCPUs and memory of a VM with these limits: vCPUs are `cpus` rounded up (1 to 32),
/// memory is `memory_bytes` rounded up to MiB, and is the whole guest's, kernel included.
pub fn machine_config(limits: &Limits) -> Result<MachineConfiguration, SandboxError> {
    let cpus = if limits.cpus.is_finite() && limits.cpus > 0.0 { limits.cpus.ceil() } else { 1.0 };
    let vcpu_count = (cpus as u32).clamp(1, MAX_VCPUS);
    let mem_size_mib = limits.memory_bytes.div_ceil(1 << 20);
    if mem_size_mib < MIN_MEMORY_MIB {
        return Err(SandboxError::Backend(format!(
            "a microVM needs at least {MIN_MEMORY_MIB} MiB of memory; the agent's limit is {} bytes",
            limits.memory_bytes
        )));
    }
    Ok(MachineConfiguration { vcpu_count, mem_size_mib, smt: false })
}

/// Paths as the Firecracker process sees them (inside the jail when there is one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmLayout {
    pub kernel: String,
    /// The initrd, when the kernel boots with one.
    pub initrd: Option<String>,
    pub rootfs: String,
    /// The agent drive ([`guest::build_drive`]).
    pub agent_drive: String,
    /// The vsock device's `uds_path`; the broker is reached at `{vsock_uds}_{BROKER_VSOCK_PORT}`.
    pub vsock_uds: String,
    /// Firecracker's own log, when kept.
    pub log: Option<String>,
}

/// Configures a Firecracker process that listens on `api_socket` for `spec`, in order:
/// logger, machine, boot source, root drive, agent drive, vsock. Nothing is started: see
/// [`ApiClient::instance_start`].
pub async fn configure(api_socket: &Path, spec: &LaunchSpec, layout: &VmLayout) -> Result<(), SandboxError> {
    let api = ApiClient::new(api_socket);
    let backend = |e: api::ApiError| SandboxError::Backend(e.to_string());
    if let Some(log) = &layout.log {
        api.put_logger(&Logger { log_path: log.clone(), level: LogLevel::Warning, show_level: true, show_log_origin: false })
            .await
            .map_err(backend)?;
    }
    api.put_machine_config(&machine_config(&spec.limits)?).await.map_err(backend)?;
    let boot = BootSource { kernel_image_path: layout.kernel.clone(), initrd_path: layout.initrd.clone(), boot_args: guest::boot_args() };
    api.put_boot_source(&boot).await.map_err(backend)?;
    api.put_drive(&Drive { drive_id: ROOTFS_DRIVE.into(), path_on_host: layout.rootfs.clone(), is_root_device: true, is_read_only: true })
        .await
        .map_err(backend)?;
    api.put_drive(&Drive {
        drive_id: AGENT_DRIVE.into(),
        path_on_host: layout.agent_drive.clone(),
        is_root_device: false,
        is_read_only: true,
    })
    .await
    .map_err(backend)?;
    api.put_vsock(&Vsock { guest_cid: GUEST_CID, uds_path: layout.vsock_uds.clone() }).await.map_err(backend)?;
    Ok(())
}

/// What a VM made on the host, and how Firecracker names it.
#[derive(Debug, Clone)]
struct HostFiles {
    /// The VM's directory: the work directory, or the jail's `root`.
    dir: PathBuf,
    /// What `remove` deletes: the work directory, or the jail (`{base}/{exec}/{id}`).
    remove: PathBuf,
    /// The jailer's cgroup directories, when it made any.
    cgroups: Vec<PathBuf>,
    jailed: bool,
}

impl HostFiles {
    fn host(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The path Firecracker is given for a file of this directory.
    fn guest(&self, name: &str) -> String {
        if self.jailed {
            format!("/{name}")
        } else {
            self.dir.join(name).display().to_string()
        }
    }

    fn layout(&self, initrd: bool) -> VmLayout {
        VmLayout {
            kernel: self.guest(KERNEL_FILE),
            initrd: initrd.then(|| self.guest(INITRD_FILE)),
            rootfs: self.guest(ROOTFS_FILE),
            agent_drive: self.guest(DRIVE_FILE),
            vsock_uds: self.guest(VSOCK_SOCKET),
            log: Some(self.guest(LOG_FILE)),
        }
    }
}

fn io_error(what: &str, path: &Path) -> impl Fn(std::io::Error) -> SandboxError {
    let what = format!("{what} {}", path.display());
    move |e| SandboxError::Backend(format!("{what}: {e}"))
}

/// A file for the VM: hard-linked when on the same file system, copied otherwise.
fn link_or_copy(from: &Path, to: &Path) -> Result<(), SandboxError> {
    if fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    fs::copy(from, to).map(|_| ()).map_err(io_error("copying into the VM's directory", from))
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), SandboxError> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(io_error("chown", path))
}

/// The last `limit` bytes of what a pipe produced, for error messages.
type Tail = Arc<Mutex<Vec<u8>>>;
const TAIL_BYTES: usize = 4096;

fn tail_text(tail: &Tail) -> String {
    let bytes = lock(tail).clone();
    String::from_utf8_lossy(&bytes).trim().to_string()
}

fn read_log_tail(path: &Path) -> String {
    let text = fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(TAIL_BYTES);
    String::from_utf8_lossy(&text[start..]).trim().to_string()
}

impl FirecrackerSandbox {
    async fn create_vm(&self, spec: &LaunchSpec) -> Result<FirecrackerInstance, SandboxError> {
        let (firecracker, kernel, mkfs) = self.required()?;
        // Hashing reads hundreds of MiB: off the async threads.
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || FirecrackerSandbox::new(config).verify_artifacts())
            .await
            .map_err(|e| SandboxError::Backend(format!("verifying the Tier 3 artifacts: {e}")))?
            .map_err(SandboxError::Unavailable)?;
        let rootfs = self.config.rootfs_for(&spec.image)?;
        machine_config(&spec.limits)?;
        if spec.run_id.is_empty() || !spec.run_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') || spec.run_id.len() > 48 {
            return Err(SandboxError::Backend(format!("run id {:?} cannot name a microVM", spec.run_id)));
        }
        let vm_id = format!("symbiont-{}", spec.run_id);
        let files = match &self.config.jailer {
            None => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o711)
                    .create(&self.config.work_root)
                    .map_err(io_error("creating", &self.config.work_root))?;
                let dir = self.config.work_root.join(&spec.run_id);
                fs::DirBuilder::new().mode(0o700).create(&dir).map_err(io_error("creating", &dir))?;
                HostFiles { dir: dir.clone(), remove: dir, cgroups: Vec::new(), jailed: false }
            }
            Some(jailer) => {
                let exec = firecracker.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "firecracker".into());
                let jail = jailer.chroot_base.join(&exec).join(&vm_id);
                let dir = jail.join("root");
                fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(io_error("creating", &dir))?;
                let cgroups =
                    ["/sys/fs/cgroup", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpuset", "/sys/fs/cgroup/pids"]
                        .iter()
                        .map(|root| Path::new(root).join(&exec).join(&vm_id))
                        .collect();
                HostFiles { dir, remove: jail, cgroups, jailed: true }
            }
        };
        let (pid, exited_tx) = (Arc::new(AtomicI32::new(0)), watch::channel(None).0);
        let mut instance = FirecrackerInstance {
            id: vm_id.clone(),
            api: ApiClient::new(&files.host(API_SOCKET)),
            files,
            markers: guest::Markers::new(&crate::util::random_id(16)),
            pid,
            exited: exited_tx.subscribe(),
            kill: Arc::new(Notify::new()),
            killed: Arc::new(AtomicBool::new(false)),
            stdout: None,
            stderr: Arc::new(Mutex::new(Vec::new())),
            tasks: Vec::new(),
            console: None,
        };
        match self.prepare(&mut instance, spec, exited_tx, &firecracker, &kernel, &rootfs, &mkfs).await {
            Ok(()) => Ok(instance),
            Err(e) => {
                let _ = instance.remove_all().await;
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn prepare(
        &self,
        vm: &mut FirecrackerInstance,
        spec: &LaunchSpec,
        exited: watch::Sender<Option<ExitStatus>>,
        firecracker: &Path,
        kernel: &Path,
        rootfs: &Path,
        mkfs: &Path,
    ) -> Result<(), SandboxError> {
        let files = vm.files.clone();
        // The broker, where Firecracker forwards the guest's connections to BROKER_VSOCK_PORT.
        let broker = spec.broker_dir.join("broker.sock");
        let forward = files.host(&format!("{VSOCK_SOCKET}_{BROKER_VSOCK_PORT}"));
        if files.jailed {
            // Inside the chroot a symbolic link to a host path would not resolve.
            fs::hard_link(&broker, &forward).map_err(|e| {
                SandboxError::Backend(format!(
                    "linking the broker socket {} into the jail ({e}): {ENV_CHROOT_BASE} must be on the same file system as the run directory",
                    broker.display()
                ))
            })?;
            link_or_copy(kernel, &files.host(KERNEL_FILE))?;
            link_or_copy(rootfs, &files.host(ROOTFS_FILE))?;
            if let Some(initrd) = &self.config.initrd {
                link_or_copy(initrd, &files.host(INITRD_FILE))?;
            }
        } else {
            std::os::unix::fs::symlink(&broker, &forward).map_err(io_error("linking the broker socket at", &forward))?;
            std::os::unix::fs::symlink(kernel, files.host(KERNEL_FILE)).map_err(io_error("linking the kernel", kernel))?;
            std::os::unix::fs::symlink(rootfs, files.host(ROOTFS_FILE)).map_err(io_error("linking the rootfs", rootfs))?;
            if let Some(initrd) = &self.config.initrd {
                std::os::unix::fs::symlink(initrd, files.host(INITRD_FILE)).map_err(io_error("linking the initrd", initrd))?;
            }
        }
        let drive = files.host(DRIVE_FILE);
        guest::build_drive(mkfs, spec, &vm.markers, &files.host(STAGING_DIR), &drive).await?;
        let log = files.host(LOG_FILE);
        fs::File::create(&log).map_err(io_error("creating", &log))?;
        if let (true, Some(jailer)) = (files.jailed, &self.config.jailer) {
            // The jailed process (uid/gid) creates its sockets in the jail's root, and reads the
            // drive and writes the log; the kernel and rootfs must be readable by it already.
            for path in [&files.dir, &drive, &log] {
                chown(path, jailer.uid, jailer.gid)?;
            }
            fs::set_permissions(&drive, fs::Permissions::from_mode(0o400)).map_err(io_error("chmod", &drive))?;
        }

        let mut command = match (&self.config.jailer, files.jailed) {
            (Some(jailer), true) => {
                let mut command = Command::new(&jailer.binary);
                command
                    .arg("--id")
                    .arg(&vm.id)
                    .arg("--exec-file")
                    .arg(firecracker)
                    .arg("--uid")
                    .arg(jailer.uid.to_string())
                    .arg("--gid")
                    .arg(jailer.gid.to_string())
                    .arg("--chroot-base-dir")
                    .arg(&jailer.chroot_base)
                    .arg("--")
                    .arg("--api-sock")
                    .arg(files.guest(API_SOCKET));
                command
            }
            _ => {
                let mut command = Command::new(firecracker);
                command.arg("--api-sock").arg(files.host(API_SOCKET)).arg("--id").arg(&vm.id).current_dir(&files.dir);
                command
            }
        };
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| SandboxError::Backend(format!("starting {}: {e}", firecracker.display())))?;
        // Without --daemonize or --new-pid-ns the jailer execs Firecracker in its own process:
        // this pid is the VMM's, which is what the broker's peer check compares.
        let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        vm.pid.store(pid, Ordering::SeqCst);
        vm.stdout = child.stdout.take();
        if let Some(mut stderr) = child.stderr.take() {
            let tail = vm.stderr.clone();
            vm.tasks.push(tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stderr.read(&mut buf).await {
                    let mut tail = lock(&tail);
                    tail.extend_from_slice(&buf[..n]);
                    let excess = tail.len().saturating_sub(TAIL_BYTES);
                    tail.drain(..excess);
                }
            }));
        }
        vm.tasks.push(tokio::spawn(supervise(child, vm.kill.clone(), vm.pid.clone(), exited)));

        vm.wait_for_api().await?;
        configure(vm.api.socket(), spec, &files.layout(self.config.initrd.is_some())).await.map_err(|e| vm.with_logs(e))
    }
}

/// Owns the Firecracker process: waits for it, or kills it when told; reports its status.
async fn supervise(mut child: Child, kill: Arc<Notify>, pid: Arc<AtomicI32>, exited: watch::Sender<Option<ExitStatus>>) {
    let status = tokio::select! {
        status = child.wait() => status,
        () = kill.notified() => {
            let _ = child.start_kill();
            child.wait().await
        }
    };
    // Reaped: the pid may be reused from now on, so it no longer identifies the VM.
    pid.store(0, Ordering::SeqCst);
    let status = status.unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(libc::SIGKILL));
    let _ = exited.send(Some(status));
}

/// One microVM.
pub struct FirecrackerInstance {
    id: String,
    api: ApiClient,
    files: HostFiles,
    markers: guest::Markers,
    /// The Firecracker process's pid while it runs; 0 once it has been reaped.
    pid: Arc<AtomicI32>,
    exited: watch::Receiver<Option<ExitStatus>>,
    kill: Arc<Notify>,
    killed: Arc<AtomicBool>,
    stdout: Option<ChildStdout>,
    stderr: Tail,
    tasks: Vec<JoinHandle<()>>,
    console: Option<JoinHandle<Option<guest::ConsoleExit>>>,
}

impl FirecrackerInstance {
    /// The Firecracker process's pid, while it runs.
    pub fn pid(&self) -> Option<i32> {
        Some(self.pid.load(Ordering::SeqCst)).filter(|&p| p > 0)
    }

    fn has_exited(&self) -> bool {
        self.exited.borrow().is_some()
    }

    /// Waits until the process has ended, at most `limit`; whether it has.
    async fn exited_within(&self, limit: Duration) -> bool {
        let mut exited = self.exited.clone();
        tokio::time::timeout(limit, exited.wait_for(Option::is_some)).await.is_ok_and(|r| r.is_ok())
    }

    /// Adds Firecracker's stderr and log to an error.
    fn with_logs(&self, error: SandboxError) -> SandboxError {
        let mut message = error.to_string();
        for (what, text) in [("stderr", tail_text(&self.stderr)), ("log", read_log_tail(&self.files.host(LOG_FILE)))] {
            if !text.is_empty() {
                message.push_str(&format!("\nfirecracker {what}:\n{text}"));
            }
        }
        SandboxError::Backend(message)
    }

    async fn wait_for_api(&self) -> Result<(), SandboxError> {
        let socket = self.api.socket().to_path_buf();
        let deadline = tokio::time::Instant::now() + API_SOCKET_TIMEOUT;
        loop {
            if tokio::net::UnixStream::connect(&socket).await.is_ok() {
                return Ok(());
            }
            if self.has_exited() {
                let status = self.exited.borrow().map(|s| s.to_string()).unwrap_or_default();
                return Err(self.with_logs(SandboxError::Backend(format!("firecracker exited before its API socket was ready ({status})"))));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.with_logs(SandboxError::Backend(format!(
                    "firecracker did not open its API socket {} within {} s",
                    socket.display(),
                    API_SOCKET_TIMEOUT.as_secs()
                ))));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Kills the process at once (no grace) and waits for it to be reaped.
    async fn kill_now(&self) {
        if !self.has_exited() {
            self.killed.store(true, Ordering::SeqCst);
            self.kill.notify_one();
            self.exited_within(Duration::from_secs(5)).await;
        }
    }

    /// Stops everything and deletes every file made for this VM; safe to call in any state.
    async fn remove_all(&mut self) -> Result<(), SandboxError> {
        if self.pid().is_some() {
            self.kill_now().await;
        }
        if let Some(console) = self.console.take() {
            console.abort();
        }
        for task in self.tasks.drain(..) {
            // The supervisor has finished once the process is reaped; aborting it otherwise
            // drops the child, which `kill_on_drop` kills.
            task.abort();
        }
        self.stdout = None;
        let mut errors = Vec::new();
        match fs::remove_dir_all(&self.files.remove) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => errors.push(format!("removing {}: {e}", self.files.remove.display())),
        }
        for cgroup in &self.files.cgroups {
            // Empty once the process is gone; only the jailer makes these.
            let _ = fs::remove_dir(cgroup);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SandboxError::Backend(errors.join("; ")))
        }
    }
}

impl Drop for FirecrackerInstance {
    fn drop(&mut self) {
        // Never leave a VM running behind a dropped handle.
        if !self.has_exited() && self.pid().is_some() {
            self.killed.store(true, Ordering::SeqCst);
            self.kill.notify_one();
        }
    }
}

/// Reads the serial console into the run's output until it closes; returns the agent's status.
async fn read_console(mut stdout: ChildStdout, mut console: guest::Console, output: OutputSender) -> Option<guest::ConsoleExit> {
    let mut buf = vec![0u8; 16 << 10];
    let mut forward = true;
    loop {
        let n = match stdout.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let bytes = console.feed(&buf[..n]);
        if forward && !bytes.is_empty() && output.send((guest::CONSOLE_STREAM, bytes)).is_err() {
            // Nobody listens any more; keep reading for the exit status.
            forward = false;
        }
    }
    let rest = console.finish();
    if forward && !rest.is_empty() {
        let _ = output.send((guest::CONSOLE_STREAM, rest));
    }
    console.exit()
}

impl Instance for FirecrackerInstance {
    fn id(&self) -> &str {
        &self.id
    }

    fn identify(&self) -> crate::sandbox::Identify {
        let pid = self.pid.clone();
        Arc::new(move |peer| match peer {
            // Every guest connection reaches the broker from this VM's Firecracker process.
            Peer::Process { pid: peer } => {
                let vmm = pid.load(Ordering::SeqCst);
                vmm > 0 && peer == vmm
            }
            // Firecracker's vsock reaches the host as Unix sockets: a vsock peer (vhost-vsock)
            // is never this VM.
            Peer::Vsock { .. } => false,
        })
    }

    fn start(&mut self, output: OutputSender) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async move {
            let stdout = self.stdout.take().ok_or_else(|| SandboxError::Backend("the microVM was already started".into()))?;
            self.console = Some(tokio::spawn(read_console(stdout, guest::Console::new(self.markers.clone()), output)));
            self.api.instance_start().await.map_err(|e| self.with_logs(SandboxError::Backend(e.to_string())))
        })
    }

    fn wait(&mut self) -> BoxFuture<'_, Result<Exit, SandboxError>> {
        Box::pin(async move {
            let mut exited = self.exited.clone();
            let status = match exited.wait_for(Option::is_some).await {
                Ok(status) => status.expect("waited for Some"),
                Err(_) => return Err(SandboxError::Backend("the microVM's supervisor ended without a status".into())),
            };
            // The console closes with the process; let its last bytes through.
            let console = match self.console.take() {
                Some(task) => tokio::time::timeout(Duration::from_secs(2), task).await.ok().and_then(Result::ok).flatten(),
                None => None,
            };
            match console {
                Some(exit) => Ok(Exit { code: exit.code, oom_killed: exit.oom_killed }),
                None if self.killed.load(Ordering::SeqCst) => Ok(Exit { code: 128 + i64::from(libc::SIGKILL), oom_killed: false }),
                None => Err(self.with_logs(SandboxError::Backend(format!(
                    "the microVM ended before reporting the agent's exit (firecracker: {status})"
                )))),
            }
        })
    }

    fn kill(&self) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(async move {
            if self.has_exited() {
                return Ok(());
            }
            // Ctrl-Alt-Del first: the guest's init stops the agent and ends the VM. It is
            // x86_64 only, and a guest may ignore it; the process is killed after the grace.
            let asked = tokio::time::timeout(Duration::from_secs(1), self.api.send_ctrl_alt_del()).await.is_ok_and(|r| r.is_ok());
            if asked && self.exited_within(SHUTDOWN_GRACE).await {
                return Ok(());
            }
            self.killed.store(true, Ordering::SeqCst);
            self.kill.notify_one();
            Ok(())
        })
    }

    fn remove(&mut self) -> BoxFuture<'_, Result<(), SandboxError>> {
        Box::pin(self.remove_all())
    }
}
