//! The SDK layer of an image: the language's SDK package, as its own installer would lay it out,
//! where the image's interpreter finds it with no settings — Python's `symbiont-sdk` in
//! `/usr/lib/python3/dist-packages` (the module and a `.dist-info`, so `importlib.metadata`
//! knows its version), the npm package `symbiont` in `/usr/share/nodejs` (on Debian's Node.js
//! search path). The files are the packages' own (`runtime/sdk/`), compiled in: the package's
//! file list is what ships, checked by `tests/it/runtime/image.rs` against the packages.
//!
//! The layer is made without a builder: a container created (never started) from the base, the
//! files uploaded into it as a tar archive, the container committed as the image and removed.

use bollard::{
    models::{ContainerConfig, ContainerCreateBody},
    query_parameters::{CommitContainerOptionsBuilder, RemoveContainerOptionsBuilder, UploadToContainerOptionsBuilder},
    Docker,
};
use sha2::{Digest, Sha256};

use super::ImageKind;

/// The image label that says which SDK the image holds.
pub const SDK_LABEL: &str = "dev.symbiont.sdk";

/// An SDK package as installed in an image.
#[derive(Debug, Clone)]
pub struct SdkPackage {
    /// The package's name in its registry: `symbiont-sdk` (PyPI), `symbiont` (npm).
    pub name: String,
    pub version: String,
    pub language: &'static str,
    /// Each file of the installed package: its absolute path in the image and its content.
    pub files: Vec<(String, String)>,
}

impl SdkPackage {
    /// `symbiont-sdk 0.1.0 (Python)`: what `symbiont image build` says an image holds.
    pub fn describe(&self) -> String {
        format!("{} {} ({})", self.name, self.version, self.language)
    }
}

use symbiont_sdk_packages::{NODE_PACKAGE, PYTHON_MODULE, PYTHON_PROJECT};

const PYPROJECT: &str = PYTHON_PROJECT[0].1;
const PYTHON_SITE: &str = "/usr/lib/python3/dist-packages";

const NODE_MODULES: &str = "/usr/share/nodejs";

impl ImageKind {
    /// The SDK installed in this kind's image; none in the minimal image, whose compiled agents
    /// link the Rust crate `symbiont-sdk` when they are built.
    pub fn sdk(self) -> Option<SdkPackage> {
        match self {
            ImageKind::Python => Some(python_package()),
            ImageKind::Node => Some(node_package()),
            ImageKind::Minimal => None,
        }
    }
}

/// What the image of `kind` holds, for its label and the build's report.
fn label_value(kind: ImageKind) -> String {
    kind.sdk().map_or_else(|| "no SDK (compiled agents link the Rust crate symbiont-sdk)".to_string(), |sdk| sdk.describe())
}

fn python_package() -> SdkPackage {
    let init = PYTHON_MODULE.iter().find(|(path, _)| *path == "symbiont/__init__.py").expect("the module's __init__.py").1;
    let version = python_assignment(init, "__version__").expect("the Python SDK sets __version__");
    let name = python_assignment(PYPROJECT, "name").expect("pyproject.toml names the package");
    let dist_info = format!("{}-{version}.dist-info", name.replace('-', "_"));
    let metadata = format!(
        "Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {}\nRequires-Python: {}\nLicense-Expression: {}\n",
        python_assignment(PYPROJECT, "description").unwrap_or_default(),
        python_assignment(PYPROJECT, "requires-python").unwrap_or_default(),
        python_assignment(PYPROJECT, "license").unwrap_or_default(),
    );
    let mut files: Vec<(String, String)> = PYTHON_MODULE.iter().map(|(path, text)| (path.to_string(), text.to_string())).collect();
    files.push((format!("{dist_info}/METADATA"), metadata));
    files.push((format!("{dist_info}/INSTALLER"), "symbiont image build\n".to_string()));
    // RECORD lists every installed file with its hash and size, then itself without them.
    let mut record: String = files.iter().map(|(path, text)| format!("{path},sha256={},{}\n", record_hash(text), text.len())).collect();
    record.push_str(&format!("{dist_info}/RECORD,,\n"));
    files.push((format!("{dist_info}/RECORD"), record));
    let files = files.into_iter().map(|(path, text)| (format!("{PYTHON_SITE}/{path}"), text)).collect();
    SdkPackage { name, version, language: "Python", files }
}

fn node_package() -> SdkPackage {
    let manifest: serde_json::Value =
        serde_json::from_str(NODE_PACKAGE.iter().find(|(path, _)| *path == "package.json").expect("package.json").1)
            .expect("the npm package's package.json is JSON");
    let field = |key: &str| manifest[key].as_str().expect("package.json has a name and a version").to_string();
    let (name, version) = (field("name"), field("version"));
    let files = NODE_PACKAGE.iter().map(|(path, text)| (format!("{NODE_MODULES}/{name}/{path}"), text.to_string())).collect();
    SdkPackage { name, version, language: "JavaScript and TypeScript", files }
}

/// The string value of `key = "value"` (or `key: str = "value"`) at the start of a line.
fn python_assignment(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.trim_start();
        let rest = rest.strip_prefix(": str").unwrap_or(rest).trim_start().strip_prefix('=')?.trim();
        Some(rest.strip_prefix('"')?.strip_suffix('"')?.to_string())
    })
}

/// A RECORD file's hash: SHA-256, URL-safe base64 without padding (PEP 376, PEP 627).
fn record_hash(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::new();
    for chunk in digest.chunks(3) {
        let bits = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(bits >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// What the image `reference` says it holds (its label), for a build that finds it cached.
pub(super) async fn held(docker: &Docker, reference: &str) -> String {
    let image = docker.inspect_image(reference).await.ok();
    let labels = image.and_then(|image| image.config).and_then(|config| config.labels);
    labels.and_then(|mut labels| labels.remove(SDK_LABEL)).unwrap_or_else(|| format!("no `{SDK_LABEL}` label"))
}

/// Makes `reference` from `base` with the SDK of `kind` installed; the container it uses to do
/// so is removed whether or not it succeeds.
pub(super) async fn install(
    docker: &Docker,
    kind: ImageKind,
    base: &str,
    reference: &str,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<(), String> {
    let holds = label_value(kind);
    match kind.sdk() {
        Some(sdk) => progress(format!("{reference}: installing {} into {base}", sdk.describe())),
        None => progress(format!("{reference}: from {base}, nothing to install")),
    }
    // dockerd creates no container without a command, and an imported base has none: the image
    // keeps this one as its default, as Debian's own images have a shell.
    let command = Some(vec!["/bin/sh".to_string()]);
    let body = ContainerCreateBody { image: Some(base.to_string()), cmd: command, network_disabled: Some(true), ..Default::default() };
    let created = docker.create_container(None, body).await.map_err(|e| format!("creating a container of {base}: {e}"))?;
    let result = fill_and_commit(docker, &created.id, kind, reference, &holds).await;
    let remove = RemoveContainerOptionsBuilder::default().force(true).build();
    let removed = docker.remove_container(&created.id, Some(remove)).await;
    result?;
    removed.map_err(|e| format!("removing the container {} that built {reference}: {e}", created.id))?;
    progress(format!("{reference}: built, holds {holds}"));
    Ok(())
}

async fn fill_and_commit(docker: &Docker, container: &str, kind: ImageKind, reference: &str, holds: &str) -> Result<(), String> {
    let files = kind.sdk().map(|sdk| sdk.files).unwrap_or_default();
    if !files.is_empty() {
        let archive = tar_archive(&files)?;
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        let upload = docker.upload_to_container(container, Some(options), bollard::body_full(archive.into()));
        upload.await.map_err(|e| format!("copying the SDK into the image: {e}"))?;
    }
    let (repo, tag) = reference.rsplit_once(':').expect("references have a tag");
    // A label's value is quoted as a Dockerfile's LABEL takes it; descriptions hold no quotes.
    let options = CommitContainerOptionsBuilder::default()
        .container(container)
        .repo(repo)
        .tag(tag)
        .changes(&format!("LABEL {SDK_LABEL}=\"{holds}\""))
        .build();
    docker.commit_container(options, ContainerConfig::default()).await.map_err(|e| format!("committing {reference}: {e}"))?;
    Ok(())
}

/// A ustar archive of `files` (absolute paths), each a regular file owned by root, mode 0644;
/// dockerd makes their missing directories (0755) as it unpacks.
fn tar_archive(files: &[(String, String)]) -> Result<Vec<u8>, String> {
    let mut archive = Vec::new();
    for (path, content) in files {
        let name = path.trim_start_matches('/');
        if name.len() >= 100 {
            return Err(format!("{path}: longer than a tar header's name (99 bytes)"));
        }
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name.as_bytes());
        for (at, width, value) in [(100, 8, 0o644), (108, 8, 0), (116, 8, 0), (124, 12, content.len() as u64), (136, 12, 0)] {
            let field = format!("{value:0w$o}\0", w = width - 1);
            header[at..at + width].copy_from_slice(field.as_bytes());
        }
        header[156] = b'0';
        header[257..265].copy_from_slice(b"ustar\x0000");
        // The checksum is summed with its own field as spaces.
        header[148..156].fill(b' ');
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        archive.extend_from_slice(&header);
        archive.extend_from_slice(content.as_bytes());
        archive.resize(archive.len().next_multiple_of(512), 0);
    }
    archive.resize(archive.len() + 1024, 0);
    Ok(archive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_hashes_are_pep_376s() {
        // `python3 -c "import hashlib,base64; print(base64.urlsafe_b64encode(hashlib.sha256(b'abc').digest()).rstrip(b'='))"`
        assert_eq!(record_hash("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
        assert_eq!(record_hash(""), "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
    }

    #[test]
    fn the_python_package_says_its_name_and_version() {
        let sdk = python_package();
        assert_eq!((sdk.name.as_str(), sdk.language), ("symbiont-sdk", "Python"));
        assert!(sdk.files.iter().any(|(path, _)| path == "/usr/lib/python3/dist-packages/symbiont/__init__.py"));
        let record = &sdk.files.last().expect("RECORD").1;
        assert_eq!(record.lines().count(), sdk.files.len());
    }

    #[test]
    fn tar_headers_check_out() {
        let archive = tar_archive(&[("/a/b".into(), "hello".into())]).unwrap();
        assert_eq!(archive.len(), 512 + 512 + 1024);
        let sum: u32 = archive[..512].iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u32::from(b) }).sum();
        let field = std::str::from_utf8(&archive[148..154]).unwrap();
        assert_eq!(u32::from_str_radix(field, 8).unwrap(), sum);
        assert_eq!(&archive[512..517], b"hello");
    }
}
