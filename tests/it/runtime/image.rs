//! The images hold the SDK packages: the files `symbiont` installs are the packages' own (the
//! wheel's module, the files `npm pack` ships), and in each image the interpreter imports the
//! SDK from where it was installed, at the packages' version, with no settings; `symbiont image
//! build` says which SDK each image holds.

use std::{collections::BTreeSet, path::Path, process::Command};

use symbiont_runtime::image::{self, ImageKind};
use symbiont_sdk_packages as sdk_files;

use super::sandbox::sandbox_ready;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the repository")
}

/// Every file under `dir`, relative to it, but Python's caches.
fn files_under(dir: &Path, prefix: &str, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            if name.ends_with("__pycache__") {
                continue;
            }
            files_under(&entry.path(), &format!("{name}/"), found);
        } else if !name.ends_with(".pyc") {
            found.insert(name);
        }
    }
}

#[test]
fn the_installed_files_are_the_packages_files() {
    // flit_core's wheel holds the module's directory, every file of it.
    let mut wheel = BTreeSet::new();
    files_under(&repo().join("runtime/sdk/python/symbiont"), "symbiont/", &mut wheel);
    let compiled: BTreeSet<String> = sdk_files::PYTHON_MODULE.iter().map(|(path, _)| path.to_string()).collect();
    assert_eq!(compiled, wheel, "runtime/src/image/sdk.rs sdk/packages must list every file of the Python module, and only those");

    // npm pack ships package.json's `files`, package.json and the README.
    let package = repo().join("runtime/sdk/node/symbiont");
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(package.join("package.json")).unwrap()).unwrap();
    let mut shipped: BTreeSet<String> = manifest["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect();
    shipped.extend(["package.json".to_string(), "README.md".to_string()]);
    let compiled: BTreeSet<String> = sdk_files::NODE_PACKAGE.iter().map(|(path, _)| path.to_string()).collect();
    assert_eq!(compiled, shipped, "runtime/src/image/sdk.rs sdk/packages must list the files npm pack ships, and only those");

    // The Rust crate's sources, but its own unit tests (the vendored manifest is written anew).
    let mut sources = BTreeSet::new();
    files_under(&repo().join("sdk/rust/src"), "src/", &mut sources);
    sources.remove("src/tests.rs");
    sources.insert("README.md".to_string());
    let compiled: BTreeSet<String> = sdk_files::RUST_CRATE.iter().map(|(path, _)| path.to_string()).collect();
    assert_eq!(compiled, sources, "sdk/packages must list every source of the Rust crate, and only those");

    // The contents compiled in are the files as they are now (a stale build would differ).
    let lists = [
        ("runtime/sdk/python", sdk_files::PYTHON_MODULE),
        ("runtime/sdk/python", sdk_files::PYTHON_PROJECT),
        ("runtime/sdk/node/symbiont", sdk_files::NODE_PACKAGE),
        ("sdk/rust", sdk_files::RUST_CRATE),
    ];
    for (dir, files) in lists {
        for (path, content) in files {
            assert_eq!(std::fs::read_to_string(repo().join(dir).join(path)).unwrap(), *content, "{dir}/{path}");
        }
    }
}

/// Runs `command` in `image` (no network) and returns its standard output.
fn run_in(reference: &str, command: &[&str]) -> String {
    let out = Command::new("docker").args(["run", "--rm", "--network", "none", reference]).args(command).output().unwrap();
    assert!(out.status.success(), "{command:?} in {reference}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Python finds the package where `pip` would have put it: the module, its metadata (version),
/// and a RECORD whose every hash and size is the installed file's.
const PYTHON_PROBE: &str = r#"
import base64, hashlib, importlib.metadata as md, symbiont
files = md.files("symbiont-sdk")
for f in files:
    if f.hash is None:
        continue
    data = f.locate().read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    assert (digest, len(data)) == (f.hash.value, f.size), f
print(md.version("symbiont-sdk"), symbiont.__version__, symbiont.__file__, len(files))
"#;

#[test]
fn each_image_holds_its_sdk_at_the_packages_version() {
    if !sandbox_ready("each_image_holds_its_sdk_at_the_packages_version") {
        return;
    }
    let python = ImageKind::Python.sdk().unwrap();
    let probe = run_in(&image::reference(ImageKind::Python), &["python3", "-c", PYTHON_PROBE]);
    let expected = format!("{v} {v} /usr/lib/python3/dist-packages/symbiont/__init__.py {}\n", python.files.len(), v = python.version);
    assert_eq!(probe, expected);

    let node = ImageKind::Node.sdk().unwrap();
    let script = r#"const s = require("symbiont"); console.log(s.VERSION, require.resolve("symbiont"))"#;
    let probe = run_in(&image::reference(ImageKind::Node), &["node", "-e", script]);
    assert_eq!(probe, format!("{} /usr/share/nodejs/symbiont/index.js\n", node.version));

    // `symbiont image build` finds them built and says what each holds.
    let out = Command::new(crate::cli::binary()).args(["image", "build"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for (kind, holds) in [
        (ImageKind::Python, python.describe()),
        (ImageKind::Node, node.describe()),
        (ImageKind::Minimal, "no SDK (compiled agents link the Rust crate symbiont-sdk)".into()),
    ] {
        let line = format!("{}: up to date (cached), holds {holds}", image::reference(kind));
        assert!(stderr.lines().any(|l| l == line), "expected the line `{line}` in:\n{stderr}");
    }
}
