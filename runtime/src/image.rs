//! The sandbox images, built without a registry in two steps:
//! - the base, `symbiont/KIND-base:HASH`: `debootstrap --variant=minbase` of Debian plus the
//!   interpreter, imported into dockerd (minutes);
//! - the image agents run in, `symbiont/KIND:HASH`: the base with the language's SDK package
//!   installed where the interpreter finds it with no settings (seconds; `sdk.rs`).
//!
//! Each is tagged with the hash of everything that decides its contents, so a build is skipped
//! when an image of the same recipe exists, and a changed recipe (or SDK) builds anew; a changed
//! SDK reuses the base.

pub mod sdk;
pub mod tier3;

pub use sdk::{SdkPackage, SDK_LABEL};

use std::{path::Path, process::Stdio};

use bollard::{query_parameters::CreateImageOptionsBuilder, Docker};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio_util::io::ReaderStream;

use crate::config::Language;

/// Bump when the way base images are made changes (not their package lists: those are hashed).
const RECIPE_VERSION: &str = "1";
/// Bump when the way the SDK is installed changes (not the SDK's files: those are hashed).
const SDK_RECIPE_VERSION: &str = "1";
pub const SUITE: &str = "bookworm";
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageKind {
    Python,
    Node,
    /// For compiled agents: Debian's minimal base (glibc), no interpreter.
    Minimal,
}

impl ImageKind {
    pub const ALL: [ImageKind; 3] = [ImageKind::Python, ImageKind::Node, ImageKind::Minimal];

    pub fn for_language(language: Language) -> ImageKind {
        match language {
            Language::Python => ImageKind::Python,
            Language::JavaScript => ImageKind::Node,
            Language::Native => ImageKind::Minimal,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ImageKind::Python => "python",
            ImageKind::Node => "node",
            ImageKind::Minimal => "minimal",
        }
    }

    pub fn from_name(name: &str) -> Option<ImageKind> {
        ImageKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Debian packages added to minbase.
    pub fn packages(self) -> &'static [&'static str] {
        match self {
            ImageKind::Python => &["python3"],
            ImageKind::Node => &["nodejs"],
            ImageKind::Minimal => &[],
        }
    }
}

pub fn mirror() -> String {
    std::env::var("SYMBIONT_DEBIAN_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.to_string())
}

/// `symbiont/KIND-base:HASH`: Debian and the interpreter, the hash of everything that decides them.
pub fn base_reference(kind: ImageKind) -> String {
    let mirror = mirror();
    let parts = [RECIPE_VERSION, SUITE, "minbase", &mirror].into_iter().chain(kind.packages().iter().copied());
    format!("symbiont/{}-base:{}", kind.name(), short_hash(parts))
}

/// `symbiont/KIND:HASH`, the image agents run in: its base and the SDK installed in it.
pub fn reference(kind: ImageKind) -> String {
    let base = base_reference(kind);
    let sdk = kind.sdk();
    let files = sdk.iter().flat_map(|sdk| sdk.files.iter()).flat_map(|(path, content)| [path.as_str(), content.as_str()]);
    format!("symbiont/{}:{}", kind.name(), short_hash([SDK_RECIPE_VERSION, base.as_str()].into_iter().chain(files)))
}

pub(crate) fn short_hash<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

pub async fn exists(docker: &Docker, reference: &str) -> bool {
    docker.inspect_image(reference).await.is_ok()
}

/// Builds the image agents of `kind` run in, and its base, unless they exist; returns its
/// reference. `progress` receives one line per step, the last saying which SDK the image holds.
pub async fn build(docker: &Docker, kind: ImageKind, progress: &mut (dyn FnMut(String) + Send)) -> Result<String, String> {
    let reference = reference(kind);
    if exists(docker, &reference).await {
        let holds = sdk::held(docker, &reference).await;
        progress(format!("{reference}: up to date (cached), holds {holds}"));
        return Ok(reference);
    }
    let base = build_base(docker, kind, progress).await?;
    sdk::install(docker, kind, &base, &reference, progress).await?;
    Ok(reference)
}

async fn build_base(docker: &Docker, kind: ImageKind, progress: &mut (dyn FnMut(String) + Send)) -> Result<String, String> {
    let reference = base_reference(kind);
    if exists(docker, &reference).await {
        progress(format!("{reference}: up to date (cached)"));
        return Ok(reference);
    }
    let scratch = std::env::temp_dir().join(format!("symbiont-image-{}-{}", kind.name(), crate::util::random_id(4)));
    let result = build_into(docker, kind, &reference, &scratch, progress).await;
    // The root filesystem is only a stage on the way into dockerd.
    let _ = std::fs::remove_dir_all(&scratch);
    result.map(|()| reference)
}

async fn build_into(
    docker: &Docker,
    kind: ImageKind,
    reference: &str,
    rootfs: &Path,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<(), String> {
    debootstrap(kind.packages(), rootfs, reference, "[1/3]", progress).await?;
    remove_apt_caches(rootfs);
    progress(format!("{reference}: [2/3] packing the root filesystem"));
    let mut tar = tokio::process::Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    let stream = ReaderStream::new(tar.stdout.take().expect("piped"));
    let (repo, tag) = reference.rsplit_once(':').expect("references have a tag");
    progress(format!("{reference}: [3/3] importing into dockerd"));
    let options = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(repo)
        .tag(tag)
        .changes(vec![format!("LABEL dev.symbiont.image={}", kind.name())])
        .build();
    let mut import = docker.create_image(Some(options), Some(bollard::body_try_stream(stream)), None);
    while let Some(step) = import.next().await {
        step.map_err(|e| format!("docker import: {e}"))?;
    }
    let status = tar.wait().await.map_err(|e| format!("tar: {e}"))?;
    if !status.success() {
        return Err(format!("tar failed ({status})"));
    }
    if !exists(docker, reference).await {
        return Err(format!("dockerd accepted the import but has no image `{reference}`"));
    }
    progress(format!("{reference}: built"));
    Ok(())
}

/// `debootstrap --variant=minbase` of [`SUITE`] from [`mirror`] into `rootfs`, with `packages`
/// added; `progress` gets its command line (`LABEL: STEP debootstrap ...`), then one line per
/// stage. The tree keeps apt's lists and downloaded packages: [`remove_apt_caches`] drops them.
pub(crate) async fn debootstrap(
    packages: &[&str],
    rootfs: &Path,
    label: &str,
    step: &str,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<(), String> {
    let mut args = vec!["--variant=minbase".to_string()];
    if !packages.is_empty() {
        args.push(format!("--include={}", packages.join(",")));
    }
    args.extend([SUITE.to_string(), rootfs.display().to_string(), mirror()]);
    progress(format!("{label}: {step} debootstrap {}", args.join(" ")));
    let mut child = tokio::process::Command::new("debootstrap")
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run debootstrap ({e}): install it with `apt-get install debootstrap`"))?;
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().expect("piped")));
    let mut tail = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.starts_with("I: Retrieving")
            || line.starts_with("I: Extracting")
            || line.starts_with("I: Installing")
            || line.starts_with("I: Configuring")
        {
            // One line per stage, not per package.
            let stage = line.split_whitespace().nth(1).unwrap_or("").to_string();
            if tail.last() != Some(&stage) {
                progress(format!("{label}:       {}", line.trim_start_matches("I: ")));
                tail.push(stage);
            }
        }
    }
    let output = child.wait_with_output().await.map_err(|e| format!("debootstrap: {e}"))?;
    if !output.status.success() {
        let log = std::fs::read_to_string(rootfs.join("debootstrap/debootstrap.log")).unwrap_or_default();
        let last: Vec<&str> = log.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(format!(
            "debootstrap failed ({}): {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            last.join("\n")
        ));
    }
    Ok(())
}

/// Drops what apt downloaded and its package lists from a debootstrapped tree: they are only
/// the build's.
pub(crate) fn remove_apt_caches(rootfs: &Path) {
    for cache in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        let dir = rootfs.join(cache);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.path().is_file() {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}
