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
        ("init/symbiont.yml", ".github/workflows/symbiont.yml"),
        ("init/extensions.json", ".vscode/extensions.json"),
    ] {
        files.push(templates::render(template, &context, path.to_string())?);
    }
    Ok(files)
}
