//! Tier 3's guest artifacts, what `symbiont image build --tier 3` makes for the Firecracker
//! backend (`sandbox/firecracker/`), all from Debian's packages on [`mirror`]:
//! - `rootfs.ext4`, the guest's read-only root: `debootstrap --variant=minbase` (the images'
//!   recipe, `image::debootstrap`) plus Python, Node.js and `socat` (the init's vsock bridge to
//!   the broker), both SDK packages where the interpreters find them (as `sdk.rs` installs them in
//!   the images), and the `/agent` mount point; packed by `mkfs.ext4 -d`;
//! - `vmlinux`, the kernel of `linux-image-cloud-amd64` as Firecracker boots it: uncompressed ELF;
//! - `config`, that kernel's configuration, checked for what the guest needs ([`REQUIRED`]);
//! - `initrd.cpio`: Debian builds the virtio-mmio, virtio-block and vsock drivers as modules
//!   (`=m`), and a kernel booted without an initrd cannot load a module before it has mounted its
//!   root, which is on a virtio-mmio block device. The initrd (busybox-static and those modules)
//!   loads them, mounts the root drive and hands over to the init the backend names (`/bin/sh`).
//!
//! They are kept in [`dir`]`/RECIPE/`, RECIPE being the hash of everything that decides them, and
//! recorded with their SHA-256 in [`dir`]`/manifest.json`, which the backend reads by default and
//! whose hashes it verifies before each boot ([`Manifest::verify`]). A build whose recipe matches
//! the manifest, with every file intact, is skipped.

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    io::Read,
    path::{Path, PathBuf},
    process::Stdio,
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{mirror, short_hash, ImageKind, SUITE};

/// Where the artifacts are kept: `SYMBIONT_TIER3_DIR`, by default [`DEFAULT_DIR`].
pub const ENV_DIR: &str = "SYMBIONT_TIER3_DIR";
pub const DEFAULT_DIR: &str = "/var/lib/symbiont/tier3";
pub const MANIFEST: &str = "manifest.json";

/// Bump when the way the artifacts are made changes (not their package lists: those are hashed).
const RECIPE_VERSION: &str = "1";
/// Added to minbase, which already has what the init script runs: `sh`, `mount`, `env`, and
/// util-linux's `setpriv` and `prlimit`. socat is built with vsock support in bookworm.
pub const ROOTFS_PACKAGES: &[&str] = &["python3", "nodejs", "socat"];
pub const KERNEL_PACKAGE: &str = "linux-image-cloud-amd64";
/// The initrd's only program: a static busybox (sh, insmod, mount, switch_root).
pub const BUSYBOX_PACKAGE: &str = "busybox-static";
const ARCH: &str = "amd64";
/// The root drive is the VM's first virtio block device (`sandbox::firecracker::ROOTFS_DRIVE`).
const ROOT_DEVICE: &str = "/dev/vda";
/// The init `guest::boot_args` names; with an initrd the kernel runs the initrd's `/init`
/// instead, with the same arguments, and that passes them on to this.
const INIT: &str = "/bin/sh";
/// A file of the root filesystem that says what built it.
pub const GUEST_STAMP: &str = "/etc/symbiont-guest";

/// What the guest needs of its kernel: the option, why, and the module that provides it when it
/// is built as one (`=m`: the initrd loads it, with what it depends on). An option with no module
/// must be built in (`=y`).
pub const REQUIRED: &[(&str, &str, Option<&str>)] = &[
    ("CONFIG_VIRTIO_MMIO", "Firecracker's devices are virtio-mmio", Some("virtio_mmio")),
    ("CONFIG_VIRTIO_BLK", "the root and agent drives are virtio block devices", Some("virtio_blk")),
    ("CONFIG_EXT4_FS", "both drives are ext4", Some("ext4")),
    ("CONFIG_VSOCKETS", "the agent reaches the broker over vsock", Some("vsock")),
    ("CONFIG_VIRTIO_VSOCKETS", "Firecracker's vsock device is virtio", Some("vmw_vsock_virtio_transport")),
    ("CONFIG_DEVTMPFS", "the guest's /dev (the initrd and the init mount devtmpfs)", None),
    ("CONFIG_SERIAL_8250_CONSOLE", "the serial console carries the agent's output", None),
    ("CONFIG_MAGIC_SYSRQ", "the init ends the VM through /proc/sysrq-trigger", None),
    ("CONFIG_BLK_DEV_INITRD", "the initrd that loads the modules", None),
];

/// Where the artifacts are kept.
pub fn dir() -> PathBuf {
    std::env::var_os(ENV_DIR).filter(|v| !v.is_empty()).map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from)
}

/// One file the manifest records: its path relative to the manifest's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

/// `manifest.json`: what was built, from what, and each file's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The hash of the recipe ([`recipe`]) these were built by.
    pub recipe: String,
    pub suite: String,
    pub mirror: String,
    /// The kernel's package (`linux-image-6.1.0-50-cloud-amd64`), its version and release.
    pub kernel_package: String,
    pub kernel_version: String,
    pub kernel_release: String,
    pub kernel: Artifact,
    pub config: Artifact,
    pub initrd: Artifact,
    pub rootfs: Artifact,
    /// Each option of [`REQUIRED`] as the kernel's configuration sets it (`y` or `m`).
    pub options: BTreeMap<String, String>,
    /// The modules the initrd loads, in order.
    pub modules: Vec<String>,
    /// The SDK packages the root filesystem holds.
    pub sdk: Vec<String>,
}

impl Manifest {
    /// The manifest in `dir`; `None` when there is none.
    pub fn load(dir: &Path) -> Result<Option<Manifest>, String> {
        let path = dir.join(MANIFEST);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{} is not a Tier 3 manifest ({e}): rebuild it with `symbiont image build --tier 3`", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }

    pub fn artifacts(&self) -> [(&'static str, &Artifact); 4] {
        [
            ("guest kernel", &self.kernel),
            ("kernel configuration", &self.config),
            ("initrd", &self.initrd),
            ("root filesystem", &self.rootfs),
        ]
    }

    /// Hashes every file and compares it with the manifest: an error names the first that is
    /// missing or differs.
    pub fn verify(&self, dir: &Path) -> Result<(), String> {
        for (what, artifact) in self.artifacts() {
            let path = dir.join(&artifact.path);
            let (sha256, _) = hash_file(&path).map_err(|e| {
                format!("the Tier 3 {what} {} is unreadable ({e}): rebuild it with `symbiont image build --tier 3`", path.display())
            })?;
            if sha256 != artifact.sha256 {
                return Err(format!(
                    "the Tier 3 {what} {} does not match {}: its SHA-256 is {sha256}, the manifest records {}; it changed after `symbiont image build --tier 3` built it, so it is not booted (rebuild it)",
                    path.display(),
                    dir.join(MANIFEST).display(),
                    artifact.sha256
                ));
            }
        }
        Ok(())
    }
}

/// SHA-256 (hex) and size of a file, read in blocks.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = fs::File::open(path)?;
    let (mut hash, mut buf, mut bytes) = (Sha256::new(), vec![0u8; 1 << 20], 0u64);
    loop {
        match file.read(&mut buf)? {
            0 => break,
            n => {
                hash.update(&buf[..n]);
                bytes += n as u64;
            }
        }
    }
    Ok((symbiont_audit::entry::hex(&hash.finalize()), bytes))
}

/// The hash of everything that decides the artifacts.
pub fn recipe() -> String {
    let mirror = mirror();
    let sdk: Vec<(String, String)> =
        [ImageKind::Python, ImageKind::Node].into_iter().filter_map(|k| k.sdk()).flat_map(|s| s.files).collect();
    let options = REQUIRED.iter().map(|(option, _, module)| format!("{option}={}", module.unwrap_or("y")));
    let parts: Vec<String> = [RECIPE_VERSION, SUITE, "minbase", &mirror, ARCH, KERNEL_PACKAGE, BUSYBOX_PACKAGE, INIT, ROOT_DEVICE]
        .into_iter()
        .map(String::from)
        .chain(ROOTFS_PACKAGES.iter().map(|p| p.to_string()))
        .chain(options)
        // The initrd's /init, but for the module list that the kernel package decides.
        .chain([init_script(&[])])
        .chain(sdk.into_iter().flat_map(|(path, content)| [path, content]))
        .collect();
    short_hash(parts.iter().map(String::as_str))
}

/// Builds the artifacts into [`dir`] unless the manifest there records this recipe and every
/// file matches it; returns the manifest. `progress` receives one line per step.
pub async fn build(progress: &mut (dyn FnMut(String) + Send)) -> Result<Manifest, String> {
    if std::env::consts::ARCH != "x86_64" {
        return Err(format!(
            "Tier 3's artifacts are built for x86_64 hosts (Firecracker boots an ELF vmlinux there), not {}",
            std::env::consts::ARCH
        ));
    }
    let (dir, recipe) = (dir(), recipe());
    let label = format!("tier 3 ({})", dir.display());
    let cached = |progress: &mut (dyn FnMut(String) + Send)| {
        let manifest = Manifest::load(&dir).ok().flatten().filter(|m| m.recipe == recipe && m.verify(&dir).is_ok())?;
        progress(format!(
            "{label}: up to date (cached, recipe {recipe}), kernel {}, holds {}",
            manifest.kernel_release,
            manifest.sdk.join(", ")
        ));
        Some(manifest)
    };
    if let Some(manifest) = cached(progress) {
        return Ok(manifest);
    }
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    // One build at a time: two would replace each other's files under each other's manifest. The
    // second waits, then finds the first's result.
    let lock_path = dir.join(".lock");
    let lock = fs::File::create(&lock_path).map_err(|e| format!("creating {}: {e}", lock_path.display()))?;
    lock.lock().map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    if let Some(manifest) = cached(progress) {
        return Ok(manifest);
    }
    // On the same file system as the result, so that it is moved into place, never copied.
    let scratch = dir.join(format!(".build-{}", crate::util::random_id(4)));
    fs::create_dir(&scratch).map_err(|e| format!("creating {}: {e}", scratch.display()))?;
    let result = build_in(&dir, &scratch, &recipe, &label, progress).await;
    let _ = fs::remove_dir_all(&scratch);
    let manifest = result?;
    // Earlier recipes' artifacts: a root filesystem is hundreds of MiB.
    for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
        if entry.file_name() != *recipe && entry.path().is_dir() && !entry.file_name().to_string_lossy().starts_with('.') {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    progress(format!(
        "{label}: built, kernel {}, holds {}; recorded in {}",
        manifest.kernel_release,
        manifest.sdk.join(", "),
        dir.join(MANIFEST).display()
    ));
    Ok(manifest)
}

async fn build_in(
    dir: &Path,
    scratch: &Path,
    recipe: &str,
    label: &str,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<Manifest, String> {
    let (tree, out) = (scratch.join("tree"), scratch.join(recipe));
    fs::create_dir(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    super::debootstrap(ROOTFS_PACKAGES, &tree, label, "[1/5]", progress).await?;

    // The package index debootstrap fetched and verified (Release signature, then its hash).
    let index = packages_index(&tree)?;
    let kernel_meta = index.get(KERNEL_PACKAGE).ok_or_else(|| format!("{KERNEL_PACKAGE} is not in {SUITE}'s package index"))?;
    let kernel_name = first_dependency(kernel_meta).ok_or_else(|| format!("{KERNEL_PACKAGE} depends on no kernel package"))?;
    let kernel_pkg =
        index.get(&kernel_name).ok_or_else(|| format!("{kernel_name} ({KERNEL_PACKAGE}'s kernel) is not in the package index"))?;
    let busybox_pkg = index.get(BUSYBOX_PACKAGE).ok_or_else(|| format!("{BUSYBOX_PACKAGE} is not in the package index"))?;
    progress(format!(
        "{label}: [2/5] downloading {kernel_name} {} and {BUSYBOX_PACKAGE} {}",
        field(kernel_pkg, "Version"),
        field(busybox_pkg, "Version")
    ));
    let kernel_files = scratch.join("kernel");
    download_and_unpack(kernel_pkg, &scratch.join("kernel.deb"), &kernel_files).await?;
    let busybox_files = scratch.join("busybox");
    download_and_unpack(busybox_pkg, &scratch.join("busybox.deb"), &busybox_files).await?;

    let (release, vmlinuz, config_file) = kernel_files_of(&kernel_files)?;
    progress(format!("{label}: [3/5] checking {release}'s configuration and extracting vmlinux"));
    let config_text = fs::read_to_string(&config_file).map_err(|e| format!("reading {}: {e}", config_file.display()))?;
    let config = parse_config(&config_text);
    let options = check_config(&config)?;
    let vmlinux = extract_vmlinux(&fs::read(&vmlinuz).map_err(|e| format!("reading {}: {e}", vmlinuz.display()))?, &config).await?;
    fs::write(out.join("vmlinux"), vmlinux).map_err(|e| format!("writing vmlinux: {e}"))?;
    fs::copy(&config_file, out.join("config")).map_err(|e| format!("copying the kernel's configuration: {e}"))?;

    let wanted: Vec<&str> = REQUIRED.iter().filter(|(option, _, _)| options[*option] == "m").filter_map(|(_, _, module)| *module).collect();
    let modules = module_order(&kernel_files.join("lib/modules").join(&release).join("kernel"), &wanted)?;
    progress(format!(
        "{label}: [4/5] the initrd: busybox, and the modules {}",
        modules.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
    ));
    let busybox = fs::read(busybox_files.join("bin/busybox")).map_err(|e| format!("{BUSYBOX_PACKAGE} has no bin/busybox: {e}"))?;
    fs::write(out.join("initrd.cpio"), initrd(&busybox, &modules)?).map_err(|e| format!("writing the initrd: {e}"))?;

    progress(format!("{label}: [5/5] the root filesystem (mkfs.ext4 -d)"));
    super::remove_apt_caches(&tree);
    let sdk = install_guest_files(&tree, recipe)?;
    make_ext4(&tree, &out.join("rootfs.ext4")).await?;

    let artifact = |name: &str| -> Result<Artifact, String> {
        let (sha256, bytes) = hash_file(&out.join(name)).map_err(|e| format!("hashing {name}: {e}"))?;
        Ok(Artifact { path: format!("{recipe}/{name}"), sha256, bytes })
    };
    let manifest = Manifest {
        recipe: recipe.to_string(),
        suite: SUITE.to_string(),
        mirror: mirror(),
        kernel_package: kernel_name.clone(),
        kernel_version: field(kernel_pkg, "Version").to_string(),
        kernel_release: release,
        kernel: artifact("vmlinux")?,
        config: artifact("config")?,
        initrd: artifact("initrd.cpio")?,
        rootfs: artifact("rootfs.ext4")?,
        options,
        modules: modules.into_iter().map(|(name, _)| name).collect(),
        sdk,
    };
    let target = dir.join(recipe);
    if target.exists() {
        fs::remove_dir_all(&target).map_err(|e| format!("removing the earlier {}: {e}", target.display()))?;
    }
    fs::rename(&out, &target).map_err(|e| format!("moving the artifacts to {}: {e}", target.display()))?;
    // The manifest last, and whole: the backend never sees one naming files not yet in place.
    let staged = scratch.join(MANIFEST);
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    fs::write(&staged, json).map_err(|e| format!("writing {}: {e}", staged.display()))?;
    fs::rename(&staged, dir.join(MANIFEST)).map_err(|e| format!("writing {}: {e}", dir.join(MANIFEST).display()))?;
    Ok(manifest)
}

/// One package's stanza of a Debian `Packages` index: its fields.
type Stanza = HashMap<String, String>;

fn field<'a>(stanza: &'a Stanza, name: &str) -> &'a str {
    stanza.get(name).map_or("", String::as_str)
}

/// The `main` component's index for this architecture, as debootstrap left it in the tree.
fn packages_index(tree: &Path) -> Result<HashMap<String, Stanza>, String> {
    let lists = tree.join("var/lib/apt/lists");
    let suffix = format!("_dists_{SUITE}_main_binary-{ARCH}_Packages");
    let path = fs::read_dir(&lists)
        .map_err(|e| format!("reading {}: {e}", lists.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().ends_with(&suffix)))
        .ok_or_else(|| format!("debootstrap left no *{suffix} in {}", lists.display()))?;
    let text = fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    Ok(parse_packages(&text))
}

/// Stanzas by package name (multi-line fields keep their first line only: enough for the
/// fields read here).
pub fn parse_packages(text: &str) -> HashMap<String, Stanza> {
    let mut index = HashMap::new();
    for block in text.split("\n\n") {
        let stanza: Stanza = block
            .lines()
            .filter(|line| !line.starts_with(' '))
            .filter_map(|line| line.split_once(": ").map(|(k, v)| (k.to_string(), v.trim().to_string())))
            .collect();
        if let Some(name) = stanza.get("Package") {
            index.insert(name.clone(), stanza);
        }
    }
    index
}

/// The name of a metapackage's first dependency (`linux-image-6.1.0-50-cloud-amd64 (= …)`).
fn first_dependency(stanza: &Stanza) -> Option<String> {
    let depends = stanza.get("Depends")?;
    let first = depends.split([',', '|']).next()?.split_whitespace().next()?;
    Some(first.to_string())
}

/// Downloads a package from the mirror, checks its SHA-256 against the index, and unpacks it
/// with `dpkg-deb -x`.
async fn download_and_unpack(stanza: &Stanza, deb: &Path, into: &Path) -> Result<(), String> {
    let (name, filename, expected) = (field(stanza, "Package").to_string(), field(stanza, "Filename"), field(stanza, "SHA256").to_string());
    if filename.is_empty() || expected.is_empty() {
        return Err(format!("the package index gives {name} no Filename or SHA256"));
    }
    let url = format!("{}/{filename}", mirror().trim_end_matches('/'));
    let target = deb.to_path_buf();
    let fetched = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let response = ureq::get(&url).call().map_err(|e| format!("downloading {url}: {e}"))?;
        let mut body = response.into_body().into_reader();
        let mut file = fs::File::create(&target).map_err(|e| format!("creating {}: {e}", target.display()))?;
        std::io::copy(&mut body, &mut file).map_err(|e| format!("downloading {url}: {e}"))?;
        hash_file(&target).map(|(sha, _)| sha).map_err(|e| format!("hashing {}: {e}", target.display()))
    })
    .await
    .map_err(|e| format!("downloading {name}: {e}"))??;
    if fetched != expected {
        return Err(format!("{name} from the mirror has SHA-256 {fetched}, its index says {expected}: refused"));
    }
    let output = tokio::process::Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(into)
        .output()
        .await
        .map_err(|e| format!("cannot run dpkg-deb ({e}): install dpkg"))?;
    if !output.status.success() {
        return Err(format!("dpkg-deb -x {name} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok(())
}

/// The kernel package's release (`6.1.0-50-cloud-amd64`), `/boot/vmlinuz-*` and `/boot/config-*`.
fn kernel_files_of(unpacked: &Path) -> Result<(String, PathBuf, PathBuf), String> {
    let boot = unpacked.join("boot");
    let release = fs::read_dir(&boot)
        .map_err(|e| format!("the kernel package has no /boot ({e})"))?
        .flatten()
        .find_map(|e| e.file_name().to_string_lossy().strip_prefix("vmlinuz-").map(String::from))
        .ok_or_else(|| "the kernel package has no /boot/vmlinuz-*".to_string())?;
    let config = boot.join(format!("config-{release}"));
    if !config.is_file() {
        return Err(format!("the kernel package has no /boot/config-{release}: its configuration cannot be checked"));
    }
    Ok((release.clone(), boot.join(format!("vmlinuz-{release}")), config))
}

/// `CONFIG_X=value` lines (`# CONFIG_X is not set` and comments are absent options).
pub fn parse_config(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|line| line.starts_with("CONFIG_"))
        .filter_map(|line| line.split_once('=').map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string())))
        .collect()
}

/// Each option of [`REQUIRED`] and its value; an error lists every option that is missing, or a
/// module where only built in will do.
pub fn check_config(config: &HashMap<String, String>) -> Result<BTreeMap<String, String>, String> {
    let mut options = BTreeMap::new();
    let mut problems = Vec::new();
    for (option, why, module) in REQUIRED {
        match (config.get(*option).map(String::as_str), module) {
            (Some("y"), _) | (Some("m"), Some(_)) => {
                options.insert(option.to_string(), config[*option].clone());
            }
            (Some("m"), None) => problems.push(format!("{option}=m must be built in (=y): {why}")),
            (value, _) => problems.push(format!("{option} is {} ({why})", value.map_or("not set".to_string(), |v| format!("={v}")))),
        }
    }
    // Firecracker describes its virtio-mmio devices on the kernel command line (which the kernel
    // reads only with CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES) and, from Firecracker 1.8 on x86_64, in
    // its ACPI tables (CONFIG_ACPI).
    let set = |option: &str| config.get(option).is_some_and(|v| v == "y");
    match (set("CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES"), set("CONFIG_ACPI")) {
        (true, _) => {
            options.insert("CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES".into(), "y".into());
        }
        (false, true) => {
            options.insert("CONFIG_ACPI".into(), "y".into());
        }
        (false, false) => problems.push(
            "neither CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES nor CONFIG_ACPI is set: the kernel cannot find Firecracker's virtio-mmio devices"
                .into(),
        ),
    }
    if problems.is_empty() {
        Ok(options)
    } else {
        Err(format!("the guest kernel's configuration lacks what the guest needs: {}", problems.join("; ")))
    }
}

/// How each `CONFIG_KERNEL_*` compression is found and undone, as the kernel's own
/// `scripts/extract-vmlinux` does: the payload's magic, then Debian's command-line tool for it
/// (gzip, xz, zstd, lz4, bzip2, lzop). bookworm's cloud kernel is LZ4 (`lz4`, package lz4).
const COMPRESSIONS: &[(&str, &[u8], &str, &[&str])] = &[
    ("CONFIG_KERNEL_GZIP", &[0x1f, 0x8b, 0x08], "gzip", &["-dc"]),
    ("CONFIG_KERNEL_XZ", b"\xfd7zXZ\x00", "xz", &["-dc"]),
    ("CONFIG_KERNEL_ZSTD", &[0x28, 0xb5, 0x2f, 0xfd], "zstd", &["-dc"]),
    // The legacy LZ4 frame the kernel's build writes.
    ("CONFIG_KERNEL_LZ4", &[0x02, 0x21, 0x4c, 0x18], "lz4", &["-dc"]),
    ("CONFIG_KERNEL_BZIP2", b"BZh", "bzip2", &["-dc"]),
    ("CONFIG_KERNEL_LZMA", &[0x5d, 0x00, 0x00, 0x00], "xz", &["--format=lzma", "-dc"]),
    ("CONFIG_KERNEL_LZO", &[0x89, 0x4c, 0x5a, 0x4f], "lzop", &["-dc"]),
];

/// The uncompressed ELF kernel inside a bzImage: the payload starts at one of the offsets where
/// its compression's magic occurs; the first from which the tool yields a whole ELF file is it.
/// The tool's exit status is not the test: the payload is followed by other data (the
/// uncompressed size, the rest of the image) that some tools call trailing garbage.
pub async fn extract_vmlinux(vmlinuz: &[u8], config: &HashMap<String, String>) -> Result<Vec<u8>, String> {
    let (option, magic, tool, args) = COMPRESSIONS
        .iter()
        .find(|(option, ..)| config.get(*option).is_some_and(|v| v == "y"))
        .ok_or_else(|| "the kernel's configuration names no compression (CONFIG_KERNEL_*) this build knows".to_string())?;
    let offsets = vmlinuz.windows(magic.len()).enumerate().filter(|(_, w)| w == magic).map(|(at, _)| at).take(16);
    let mut tried = 0;
    for at in offsets {
        tried += 1;
        let output = pipe_through(tool, args, vmlinuz[at..].to_vec()).await?;
        if elf_is_whole(&output) {
            return Ok(output);
        }
    }
    Err(format!("no {option} payload in the kernel image decompresses to an ELF vmlinux ({tried} candidate offsets tried with {tool})"))
}

async fn pipe_through(tool: &str, args: &[&str], input: Vec<u8>) -> Result<Vec<u8>, String> {
    let mut child = tokio::process::Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {tool} ({e}): install it (Debian package {})", if tool == "lzop" { "lzop" } else { tool }))?;
    let mut stdin = child.stdin.take().expect("piped");
    // Written beside the read: the tool's output fills its pipe before its input is consumed.
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
    });
    let output = child.wait_with_output().await.map_err(|e| format!("{tool}: {e}"))?;
    let _ = writer.await;
    Ok(output.stdout)
}

/// A 64-bit x86-64 ELF executable whose program and section header tables are within the file.
pub fn elf_is_whole(bytes: &[u8]) -> bool {
    let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])));
    let u64_at = |at: usize| bytes.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let (Some(kind), Some(machine), Some(phoff), Some(phentsize), Some(phnum), Some(shoff), Some(shentsize), Some(shnum)) =
        (u16_at(16), u16_at(18), u64_at(0x20), u16_at(0x36), u16_at(0x38), u64_at(0x28), u16_at(0x3a), u16_at(0x3c))
    else {
        return false;
    };
    let len = bytes.len() as u64;
    bytes.starts_with(b"\x7fELF\x02\x01")
        && kind == 2
        && machine == 0x3e
        && phnum > 0
        && phoff + phentsize * phnum <= len
        && shoff + shentsize * shnum <= len
}

/// The modules that provide `wanted`, with what they depend on, in an order in which each comes
/// after its dependencies; each with its file under `modules` (`lib/modules/RELEASE/kernel`).
pub fn module_order(modules: &Path, wanted: &[&str]) -> Result<Vec<(String, PathBuf)>, String> {
    let mut files = HashMap::new();
    index_modules(modules, &mut files)?;
    let mut order = Vec::new();
    for name in wanted {
        visit_module(name, &files, &mut order, &mut Vec::new())?;
    }
    Ok(order)
}

fn index_modules(dir: &Path, files: &mut HashMap<String, PathBuf>) -> Result<(), String> {
    for entry in fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            index_modules(&path, files)?;
        } else if let Some(stem) = entry.file_name().to_string_lossy().strip_suffix(".ko") {
            files.insert(stem.replace('-', "_"), path);
        }
    }
    Ok(())
}

fn visit_module(
    name: &str,
    files: &HashMap<String, PathBuf>,
    order: &mut Vec<(String, PathBuf)>,
    path: &mut Vec<String>,
) -> Result<(), String> {
    let name = name.replace('-', "_");
    if order.iter().any(|(n, _)| *n == name) {
        return Ok(());
    }
    if path.contains(&name) {
        return Err(format!("the modules depend on each other in a cycle: {} -> {name}", path.join(" -> ")));
    }
    let file = files.get(&name).ok_or_else(|| {
        format!("the kernel package has no module {name}.ko (a compressed module, .ko.xz or .ko.zst, is not loaded by the initrd)")
    })?;
    let bytes = fs::read(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    path.push(name.clone());
    for dependency in modinfo_depends(&bytes) {
        visit_module(&dependency, files, order, path)?;
    }
    path.pop();
    order.push((name, file.clone()));
    Ok(())
}

/// The `depends=` entry of a module's `.modinfo` section: the modules it needs loaded first.
fn modinfo_depends(module: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(at) = module.windows(KEY.len()).position(|w| w == KEY) else { return Vec::new() };
    let value = &module[at + KEY.len()..];
    let value = &value[..value.iter().position(|&b| b == 0).unwrap_or(value.len())];
    String::from_utf8_lossy(value).split(',').filter(|s| !s.is_empty()).map(String::from).collect()
}

/// The initrd's `/init`, a busybox shell script (`modules` in load order).
pub fn init_script(modules: &[String]) -> String {
    let loads: String =
        modules.iter().map(|m| format!("busybox insmod /lib/modules/{m}.ko || fail 'cannot load the module {m}'\n")).collect();
    format!(
        r#"#!/bin/busybox sh
# The initrd of symbiont's Tier 3 guests (runtime/src/image/tier3.rs). The kernel's virtio-mmio,
# block and vsock drivers are modules: load them, mount the root drive read-only, move /dev onto
# it (the run's init mounts the agent drive from it) and hand over to {INIT} with the arguments
# the kernel command line gave, as the kernel would have without an initrd.
fail() {{
    echo "symbiont-initrd: $1" >&2
    exit 1
}}
busybox mount -t devtmpfs devtmpfs /dev || fail 'cannot mount /dev'
{loads}i=0
while [ ! -b {ROOT_DEVICE} ]; do
    i=$((i + 1))
    [ "$i" -le 500 ] || fail 'no root drive {ROOT_DEVICE}'
    busybox sleep 0.01
done
busybox mount -t ext4 -o ro,nodev {ROOT_DEVICE} /root || fail 'cannot mount the root drive {ROOT_DEVICE}'
busybox mount -o move /dev /root/dev || fail 'cannot move /dev to the root drive'
exec busybox switch_root /root {INIT} "$@"
"#
    )
}

/// The initrd: an uncompressed cpio archive (newc) holding busybox, the modules and `/init`.
pub fn initrd(busybox: &[u8], modules: &[(String, PathBuf)]) -> Result<Vec<u8>, String> {
    let mut cpio = Cpio::default();
    for dir in ["bin", "dev", "lib", "lib/modules", "proc", "root", "sys"] {
        cpio.entry(dir, 0o040_755, (0, 0), &[]);
    }
    // Without /dev/console in the initrd, its /init would have no console until devtmpfs is up.
    cpio.entry("dev/console", 0o020_600, (5, 1), &[]);
    cpio.entry("bin/busybox", 0o100_755, (0, 0), busybox);
    for (name, file) in modules {
        let bytes = fs::read(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
        cpio.entry(&format!("lib/modules/{name}.ko"), 0o100_644, (0, 0), &bytes);
    }
    let names: Vec<String> = modules.iter().map(|(n, _)| n.clone()).collect();
    cpio.entry("init", 0o100_755, (0, 0), init_script(&names).as_bytes());
    Ok(cpio.finish())
}

/// A cpio archive in the "new ASCII" (newc) format the kernel unpacks.
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    inode: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, (major, minor): (u32, u32), data: &[u8]) {
        self.inode += 1;
        let links = if mode & 0o170_000 == 0o040_000 { 2 } else { 1 };
        let fields = [self.inode, mode, 0, 0, links, 0, data.len() as u32, 0, 0, major, minor, name.len() as u32 + 1, 0];
        self.out.extend_from_slice(b"070701");
        for value in fields {
            self.out.extend_from_slice(format!("{value:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        self.out.resize(self.out.len().next_multiple_of(4), 0);
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

/// Into the debootstrapped tree: both SDK packages, the code's mount point, and a stamp saying
/// what built it. Returns the SDKs it holds.
fn install_guest_files(tree: &Path, recipe: &str) -> Result<Vec<String>, String> {
    let mut held = Vec::new();
    for sdk in [ImageKind::Python, ImageKind::Node].into_iter().filter_map(ImageKind::sdk) {
        for (path, content) in &sdk.files {
            let target = tree.join(path.trim_start_matches('/'));
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
            }
            fs::write(&target, content).map_err(|e| format!("writing {}: {e}", target.display()))?;
        }
        held.push(sdk.describe());
    }
    let code = tree.join(crate::sandbox::CODE_MOUNT.trim_start_matches('/'));
    fs::create_dir_all(&code).map_err(|e| format!("creating {}: {e}", code.display()))?;
    let stamp = tree.join(GUEST_STAMP.trim_start_matches('/'));
    let text = format!(
        "symbiont Tier 3 guest root filesystem\nrecipe {recipe}\n{}\n",
        held.iter().map(|s| format!("sdk {s}")).collect::<Vec<_>>().join("\n")
    );
    fs::write(&stamp, text).map_err(|e| format!("writing {}: {e}", stamp.display()))?;
    Ok(held)
}

/// `mkfs.ext4 -d`: the tree as an ext4 image, sized for its content with room for ext4's own.
async fn make_ext4(tree: &Path, image: &Path) -> Result<(), String> {
    let mkfs = crate::util::mkfs_ext4().ok_or("no mkfs.ext4: install e2fsprogs")?;
    let (bytes, entries) = tree_size(tree)?;
    let size = ((bytes + bytes / 4 + (64 << 20)) >> 20) << 20;
    let file = fs::File::create(image).map_err(|e| format!("creating {}: {e}", image.display()))?;
    file.set_len(size).map_err(|e| format!("sizing {}: {e}", image.display()))?;
    drop(file);
    let output = tokio::process::Command::new(&mkfs)
        .args(["-q", "-F", "-t", "ext4", "-L", "symbiont-root", "-m", "0", "-O", "^has_journal", "-E", "root_owner=0:0"])
        .arg("-N")
        .arg((entries + entries / 2 + 1024).to_string())
        .arg("-d")
        .arg(tree)
        .arg(image)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("running {}: {e}", mkfs.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} could not build the root filesystem ({}): {}",
            mkfs.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}

/// Bytes of the regular files and number of entries under `dir` (symbolic links not followed).
fn tree_size(dir: &Path) -> Result<(u64, u64), String> {
    let (mut bytes, mut entries) = (0, 1);
    for entry in fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?.flatten() {
        let meta = entry.path().symlink_metadata().map_err(|e| format!("{}: {e}", entry.path().display()))?;
        if meta.is_dir() {
            let (b, e) = tree_size(&entry.path())?;
            bytes += b;
            entries += e;
        } else {
            bytes += meta.len().next_multiple_of(4096);
            entries += 1;
        }
    }
    Ok((bytes, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "CONFIG_VIRTIO_MMIO=m\n# CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES is not set\nCONFIG_ACPI=y\nCONFIG_VIRTIO_BLK=m\nCONFIG_EXT4_FS=y\nCONFIG_VSOCKETS=m\nCONFIG_VIRTIO_VSOCKETS=m\nCONFIG_DEVTMPFS=y\nCONFIG_SERIAL_8250_CONSOLE=y\nCONFIG_MAGIC_SYSRQ=y\nCONFIG_BLK_DEV_INITRD=y\nCONFIG_LOCALVERSION=\"\"\n";

    #[test]
    fn a_config_with_modules_passes_and_says_which() {
        let options = check_config(&parse_config(CONFIG)).unwrap();
        assert_eq!(options["CONFIG_VIRTIO_MMIO"], "m");
        assert_eq!(options["CONFIG_EXT4_FS"], "y");
        assert_eq!(options["CONFIG_ACPI"], "y");
    }

    #[test]
    fn a_config_missing_what_the_guest_needs_is_refused_with_each_reason() {
        let config = CONFIG.replace("CONFIG_VSOCKETS=m", "# CONFIG_VSOCKETS is not set").replace("CONFIG_DEVTMPFS=y", "CONFIG_DEVTMPFS=m");
        let config = config.replace("CONFIG_ACPI=y", "");
        let error = check_config(&parse_config(&config)).unwrap_err();
        assert!(error.contains("CONFIG_VSOCKETS is not set (the agent reaches the broker over vsock)"), "{error}");
        assert!(error.contains("CONFIG_DEVTMPFS=m must be built in (=y)"), "{error}");
        assert!(error.contains("neither CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES nor CONFIG_ACPI"), "{error}");
    }

    #[test]
    fn package_index_stanzas_and_dependencies() {
        let index =
            parse_packages("Package: a\nVersion: 1\nDepends: b (= 1), c\nDescription: x\n more\n\nPackage: b\nFilename: pool/b.deb\n");
        assert_eq!(first_dependency(&index["a"]).as_deref(), Some("b"));
        assert_eq!(field(&index["b"], "Filename"), "pool/b.deb");
    }

    #[test]
    fn modinfo_depends_is_read_from_the_module() {
        let module = b"\x7fELF...\0license=GPL\0depends=virtio,virtio_ring\0intree=Y\0";
        assert_eq!(modinfo_depends(module), ["virtio", "virtio_ring"]);
        assert!(modinfo_depends(b"\0depends=\0").is_empty());
    }

    #[test]
    fn cpio_entries_are_newc_and_aligned() {
        let mut cpio = Cpio::default();
        cpio.entry("init", 0o100_755, (0, 0), b"#!x\n");
        let out = cpio.finish();
        assert!(out.starts_with(b"070701"));
        assert_eq!(&out[110..115], b"init\0");
        assert_eq!(out.len() % 4, 0);
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}
