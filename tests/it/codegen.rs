//! Code generation end to end: `symbiont init` and `symbiont new agent` in each language, as a
//! user runs them, then the language's own tools on what they wrote — the formatter, linter and
//! type checker, the generated tests in their runner against the SDK's fake broker — then
//! `symbiont check`, and the agent run at Tier 1 with its allowed call audited `allow`.
//! `examples/generated/` is what the generator makes (kept equal here: `UPDATE_EXAMPLES=1`
//! rewrites it), so every template's output is reviewed as a file.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use crate::cli::binary;

/// The agents of `examples/generated/`: one per language, the same capabilities, every one with an
/// SDK call (so every template branch is in the examples).
const AGENTS: &[(&str, &str)] = &[("notes_py", "python"), ("notes_js", "javascript"), ("notes_ts", "typescript"), ("notes_rs", "rust")];
const CAPABILITIES: &[&str] =
    &["file_read", "file_system_write", "https_request", "env_access", "secret_access", "send_message", "receive_message", "analyze"];

/// A team's policy the agents apply, beside the workspace's baseline: it allows one capability
/// outright and one under a guard, so the agents' own policies allow only the rest.
const TEAM_POLICY: &str = "// The notes team's policy, applied by name (`symbiont new agent --policy notes_team`).\n\
policy notes_team {\n    allow: [\"file_read\"]\n    allow: https_request(host) if host == \"api.example.com\"\n}\n";

fn symbiont(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(binary()).args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "symbiont {args:?}:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

/// A workspace made as a user makes one: `init`, then `new agent` per language.
fn generated_workspace(dir: &Path) {
    symbiont(dir, &["init"]);
    std::fs::write(dir.join("team.sym"), TEAM_POLICY).unwrap();
    for (name, language) in AGENTS {
        let mut args = vec!["new", "agent", name, "--lang", language, "--tier", "1", "--policy", "notes_team"];
        for capability in CAPABILITIES {
            args.extend(["--capability", capability]);
        }
        symbiont(dir, &args);
    }
}

/// Every file under `dir` by relative path, but the vendored SDKs (the packages' own files).
fn files(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap().map(Result::unwrap) {
            let relative = entry.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if relative == "vendor" || relative == "README.md" {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                out.insert(relative, std::fs::read_to_string(entry.path()).unwrap());
            }
        }
    }
    out
}

#[test]
fn the_examples_are_what_the_generator_makes() {
    let dir = tempfile::tempdir().unwrap();
    generated_workspace(dir.path());
    let examples = symbiont_tests::repo_root().join("examples/generated");
    let (made, committed) = (files(dir.path()), files(&examples));
    if std::env::var_os("UPDATE_EXAMPLES").is_some() {
        for path in committed.keys().filter(|p| !made.contains_key(*p)) {
            std::fs::remove_file(examples.join(path)).unwrap();
        }
        for (path, content) in &made {
            std::fs::create_dir_all(examples.join(path).parent().unwrap()).unwrap();
            std::fs::write(examples.join(path), content).unwrap();
        }
        return;
    }
    for (path, content) in &made {
        assert_eq!(
            committed.get(path),
            Some(content),
            "examples/generated/{path} differs from what the generator makes (UPDATE_EXAMPLES=1 rewrites it)"
        );
    }
    let stale: Vec<&String> = committed.keys().filter(|p| !made.contains_key(*p)).collect();
    assert!(stale.is_empty(), "examples/generated holds files the generator no longer makes: {stale:?}");
}

/// Runs `program` in `dir`; fails with its output unless it succeeds.
fn run(dir: &Path, program: impl AsRef<std::ffi::OsStr>, args: &[&str], env: &[(&str, &str)]) -> String {
    let program = program.as_ref().to_owned();
    let out = Command::new(&program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program:?} is needed to check generated code: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{program:?} {args:?} in {}:\n{text}", dir.display());
    text
}

fn venv_tool(name: &str) -> PathBuf {
    let tool = symbiont_tests::repo_root().join(".venv-test/bin").join(name);
    assert!(tool.exists(), "{} is missing: scripts/test installs it into .venv-test", tool.display());
    tool
}

/// One workspace for the toolchain tests, generated once.
fn workspace() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        generated_workspace(dir.path());
        dir
    })
    .path()
}

#[test]
fn generated_python_passes_ruff_mypy_and_its_tests() {
    let agent = workspace().join("agents/notes_py");
    run(&agent, venv_tool("ruff"), &["check", "."], &[]);
    run(&agent, venv_tool("ruff"), &["format", "--check", "."], &[]);
    run(&agent, venv_tool("mypy"), &["--strict", "."], &[]);
    let tests = run(&agent, venv_tool("pytest"), &[], &[]);
    assert!(tests.contains("passed") && !tests.contains("failed"), "{tests}");
}

#[test]
fn generated_javascript_parses_and_passes_its_tests() {
    let agent = workspace().join("agents/notes_js");
    run(&agent, "node", &["--check", "notes_js.js"], &[]);
    run(&agent, "npm", &["install", "--no-audit", "--no-fund", "--prefer-offline"], &[]);
    let tests = run(&agent, "node", &["--test"], &[]);
    assert!(tests.contains("# fail 0"), "{tests}");
}

#[test]
fn generated_typescript_type_checks_strictly_and_passes_its_tests() {
    let agent = workspace().join("agents/notes_ts");
    run(&agent, "npm", &["install", "--no-audit", "--no-fund", "--prefer-offline"], &[]);
    run(&agent, "npx", &["tsc", "--noEmit", "--strict", "-p", "."], &[]);
    let tests = run(&agent, "npm", &["test"], &[]);
    assert!(tests.contains("# fail 0"), "{tests}");
}

#[test]
fn generated_rust_builds_offline_lints_clean_and_passes_its_tests() {
    let agent = workspace().join("agents/notes_rs");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Its own target directory, as a user's; the workspace's lock keeps it offline.
    std::fs::copy(symbiont_tests::repo_root().join("Cargo.lock"), agent.join("Cargo.lock")).unwrap();
    let env = [("CARGO_TARGET_DIR", agent.join("target").to_str().unwrap().to_string())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run(&agent, &cargo, &["fmt", "--check"], &env);
    run(&agent, &cargo, &["clippy", "--offline", "--all-targets", "--", "-D", "warnings"], &env);
    run(&agent, &cargo, &["test", "--offline"], &env);
}

#[test]
fn symbiont_check_finds_nothing_in_a_generated_workspace_and_fmt_changes_nothing() {
    let out = Command::new(binary()).args(["check", "."]).current_dir(workspace()).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && report.contains("no problems"), "{report}{}", String::from_utf8_lossy(&out.stderr));
    symbiont(workspace(), &["fmt", "--check", "."]);
}

#[test]
fn a_denied_capability_generates_nothing_and_names_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    symbiont(dir.path(), &["init"]);
    let out = Command::new(binary())
        .args(["new", "agent", "runner", "--lang", "python", "--capability", "file_read", "--capability", "spawn_process"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            r#"capability `spawn_process` is denied by `deny: ["spawn_process", "dynamic_code", "modify_policy"]` at policies.sym:9"#
        ),
        "{stderr}"
    );
    assert!(!dir.path().join("agents").exists(), "nothing is written");
}

#[test]
fn init_never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policies.sym"), "// mine\n").unwrap();
    let out = Command::new(binary()).arg("init").current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("policies.sym"), "the existing file is listed");
    assert_eq!(std::fs::read_to_string(dir.path().join("policies.sym")).unwrap(), "// mine\n");
    assert!(!dir.path().join("symbiont.toml").exists(), "nothing is written when a file exists");
    symbiont(dir.path(), &["init", "--force"]);
    assert_ne!(std::fs::read_to_string(dir.path().join("policies.sym")).unwrap(), "// mine\n");
}

/// Builds what must be built before a run: TypeScript compiled, Rust compiled for the image.
fn build_for_run(agent: &Path, language: &str) {
    match language {
        "typescript" => {
            run(agent, "npm", &["install", "--no-audit", "--no-fund", "--prefer-offline"], &[]);
            run(agent, "npm", &["run", "build"], &[]);
        }
        "rust" => {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            std::fs::copy(symbiont_tests::repo_root().join("Cargo.lock"), agent.join("Cargo.lock")).unwrap();
            let target = agent.join("target");
            run(agent, &cargo, &["build", "--release", "--offline", "--quiet"], &[("CARGO_TARGET_DIR", target.to_str().unwrap())]);
        }
        _ => {}
    }
}

/// Each generated agent runs at Tier 1 as generated: asked to write a file, the write is decided
/// `allow` by its policy and audited, and the file is in its workspace.
#[test]
fn generated_agents_run_at_tier1_with_their_calls_allowed_and_audited() {
    if !crate::runtime::sandbox::sandbox_ready("generated_agents_run_at_tier1_with_their_calls_allowed_and_audited") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    generated_workspace(dir.path());
    for (name, language) in AGENTS {
        let agent = dir.path().join("agents").join(name);
        build_for_run(&agent, language);
        let input = format!(r#"{{"write": {{"path": "out.txt", "content": "{name}"}}}}"#);
        let sym = format!("agents/{name}/{name}.sym");
        let out = symbiont(dir.path(), &["run", &sym, "--input", &input]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(&format!("wrote {} bytes", name.len())), "{name}: {stdout}");
        let written = dir.path().join(".symbiont/workspaces").join(name).join("out.txt");
        assert_eq!(std::fs::read_to_string(&written).unwrap(), *name);
    }
    let log = dir.path().join(".symbiont/audit");
    symbiont(dir.path(), &["audit", "verify", log.to_str().unwrap()]);
    let show = symbiont(dir.path(), &["audit", "show", log.to_str().unwrap(), "--format", "json"]);
    let entries: Vec<serde_json::Value> = String::from_utf8_lossy(&show.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for (name, _) in AGENTS {
        let allowed = entries.iter().any(|e| e["agent"] == *name && e["operation"] == "file_system_write" && e["decision"] == "allow");
        assert!(allowed, "{name}: its write is audited `allow`");
    }
}
