//! `symbiont init`: a new workspace — settings with a base policy, a default-deny baseline, a
//! `.gitignore` for Symbiont's state, a CI workflow that checks and uploads SARIF, the editor
//! recommendation, and the SDKs the generated agents build and test against (`vendor/`).

use crate::{templates, GeneratedFile, Refusal};

/// The files of a new workspace, paths relative to its root.
pub fn workspace_files() -> Result<Vec<GeneratedFile>, Refusal> {
    let context = serde_json::json!({});
    let mut files = Vec::new();
    for (template, path) in [
        ("init/symbiont.toml", "symbiont.toml"),
        ("init/policies.sym", "policies.sym"),
        ("init/gitignore", ".gitignore"),
        ("init/symbiontignore", ".symbiontignore"),
        ("init/symbiont.yml", ".github/workflows/symbiont.yml"),
        ("init/extensions.json", ".vscode/extensions.json"),
    ] {
        files.push(templates::render(template, &context, path.to_string())?);
    }
    files.extend(vendored_sdks());
    Ok(files)
}

/// Where the SDKs go in a workspace: generated agents' project files point here.
pub const VENDOR_DIR: &str = "vendor/symbiont-sdk";

/// The three SDK packages as this `symbiont` ships them: the sandbox images hold the same, so the
/// code tested here is the code that runs there.
pub fn vendored_sdks() -> Vec<GeneratedFile> {
    use symbiont_sdk_packages as sdk;
    let in_dir = |dir: &'static str, files: &'static [sdk::File]| {
        files.iter().map(move |(path, text)| GeneratedFile { path: format!("{VENDOR_DIR}/{dir}/{path}"), content: text.to_string() })
    };
    let readme = GeneratedFile {
        path: format!("{VENDOR_DIR}/README.md"),
        content: format!(
            "# The Symbiont SDKs, vendored

Written by `symbiont init` ({}): the Python package `python/`, the npm package `node/` and the
             Rust crate `rust/` (SDK {}), as the sandbox images hold them. Generated agents build and test against
             these copies offline. Do not edit them: `symbiont init --force` writes them anew.
",
            env!("CARGO_PKG_VERSION"),
            sdk::rust_version()
        ),
    };
    let manifest = GeneratedFile { path: format!("{VENDOR_DIR}/rust/Cargo.toml"), content: sdk::rust_manifest() };
    std::iter::once(readme)
        .chain(in_dir("python", sdk::PYTHON_PROJECT))
        .chain(in_dir("python", sdk::PYTHON_MODULE))
        .chain(in_dir("node", sdk::NODE_PACKAGE))
        .chain(std::iter::once(manifest))
        .chain(in_dir("rust", sdk::RUST_CRATE))
        .collect()
}
