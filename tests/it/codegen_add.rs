//! `symbiont add capability` end to end: the binary on a workspace made with `symbiont init` and
//! `symbiont new agent`, and on hand-written agents. What it writes passes the language's own
//! tools and `symbiont check`; a second run changes nothing; a refusal writes nothing.

use std::{collections::BTreeMap, os::unix::fs::PermissionsExt, path::Path, process::Command};

use crate::cli::{Run, Workspace};

/// A workspace as a user makes one (its base policy denies `spawn_process`) with a Python agent
/// and a JavaScript one, plus a hand-written Python agent.
fn workspace() -> Workspace {
    let ws = Workspace::new();
    for args in [
        &["init"][..],
        &["new", "agent", "notes", "--lang", "python", "--capability", "file_read"],
        &["new", "agent", "web", "--lang", "javascript", "--capability", "web_request"],
    ] {
        let run = ws.run(args);
        assert_eq!(run.code, 0, "symbiont {args:?}: {}{}", run.stdout, run.stderr);
    }
    ws.write(
        "tools/tidy.sym",
        "agent tidy(input: String) -> String {\n  capabilities = [\"file_read\"]\n  implementation = [\"tidy.py\"]\n}\n",
    );
    ws.write(
        "tools/tidy.py",
        "#!/usr/bin/env python3\n\"\"\"Tidies.\"\"\"\n\nimport json\n\n\ndef main() -> None:\n    print(json.dumps({}))\n",
    );
    std::fs::set_permissions(ws.path("tools/tidy.py"), std::fs::Permissions::from_mode(0o755)).unwrap();
    ws
}

fn read(ws: &Workspace, relative: &str) -> String {
    std::fs::read_to_string(ws.path(relative)).unwrap()
}

/// Every file under the workspace but the vendored SDKs, for before-and-after comparisons.
fn snapshot(ws: &Workspace) -> BTreeMap<String, String> {
    let root = ws.path("");
    let mut out = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let relative = entry.path().strip_prefix(&root).unwrap().to_string_lossy().into_owned();
            match entry.file_type().unwrap().is_dir() {
                true if relative != "vendor" => stack.push(entry.path()),
                true => {}
                false => {
                    out.insert(relative, std::fs::read_to_string(entry.path()).unwrap_or_default());
                }
            }
        }
    }
    out
}

fn add(ws: &Workspace, agent: &str, operation: &str) -> Run {
    ws.run(&["add", "capability", agent, operation])
}

/// Runs a tool of the language on `dir`; a missing tool fails the test (scripts/test installs them).
fn tool(dir: &Path, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) {
    let program = program.as_ref();
    let out = Command::new(program).args(args).current_dir(dir).output().unwrap_or_else(|e| panic!("{program:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{program:?} {args:?} in {}:\n{text}", dir.display());
}

#[test]
fn added_capabilities_pass_the_languages_tools_and_check() {
    let ws = workspace();
    let before = snapshot(&ws);
    for (agent, operation) in [("notes", "https_request"), ("notes", "send_message"), ("web", "file_system_write"), ("tidy", "env_access")]
    {
        let run = add(&ws, agent, operation);
        assert_eq!(run.code, 0, "add {agent} {operation}: {}{}", run.stdout, run.stderr);
    }
    let after = snapshot(&ws);
    let changed: Vec<String> =
        after.iter().filter(|(path, text)| before.get(*path) != Some(text)).map(|(path, text)| format!("=== {path}\n{text}")).collect();
    insta::assert_snapshot!(changed.join("\n"));
    let ruff = symbiont_tests::repo_root().join(".venv-test/bin/ruff");
    tool(&ws.path("agents/notes"), &ruff, &["check", "."]);
    tool(&ws.path("agents/notes"), &ruff, &["format", "--check", "."]);
    tool(&ws.path("agents/notes"), symbiont_tests::repo_root().join(".venv-test/bin/mypy"), &["notes.py"]);
    tool(&ws.path("agents/web"), "node", &["--check", "web.js"]);
    let check = ws.run(&["check"]);
    assert_eq!(check.code, 0, "symbiont check after add:\n{}{}", check.stdout, check.stderr);
    // The file's permissions are kept.
    assert_eq!(std::fs::metadata(ws.path("tools/tidy.py")).unwrap().permissions().mode() & 0o777, 0o755);
}

#[test]
fn added_typescript_and_rust_functions_type_check_and_compile() {
    let ws = Workspace::new();
    for args in [
        &["init"][..],
        &["new", "agent", "typed", "--lang", "typescript", "--capability", "file_read"],
        &["new", "agent", "native", "--lang", "rust", "--capability", "file_read"],
        &["add", "capability", "typed", "env_access"],
        &["add", "capability", "typed", "send_message"],
        &["add", "capability", "native", "env_access"],
        &["add", "capability", "native", "send_message"],
    ] {
        let run = ws.run(args);
        assert_eq!(run.code, 0, "symbiont {args:?}: {}{}", run.stdout, run.stderr);
    }
    let typed = ws.path("agents/typed");
    tool(&typed, "npm", &["install", "--no-audit", "--no-fund", "--prefer-offline"]);
    tool(&typed, "npx", &["tsc", "--noEmit", "--strict", "-p", "."]);
    let native = ws.path("agents/native");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    tool(&native, &cargo, &["fmt", "--check"]);
    tool(&native, &cargo, &["clippy", "--offline", "--all-targets", "--", "-D", "warnings"]);
    let check = ws.run(&["check"]);
    assert_eq!(check.code, 0, "symbiont check after add:\n{}{}", check.stdout, check.stderr);
}

#[test]
fn adding_twice_changes_nothing_the_second_time() {
    let ws = workspace();
    assert_eq!(add(&ws, "notes", "https_request").code, 0);
    let once = snapshot(&ws);
    let again = add(&ws, "notes", "https_request");
    assert_eq!((again.code, again.stdout.lines().last()), (0, Some("nothing to change")), "{}", again.stdout);
    assert_eq!(snapshot(&ws), once);
}

#[test]
fn a_dry_run_writes_nothing() {
    let ws = workspace();
    let before = snapshot(&ws);
    let run = ws.run(&["add", "capability", "notes", "https_request", "--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("would change") && run.stdout.contains("notes.sym"), "{}", run.stdout);
    assert_eq!(snapshot(&ws), before);
}

#[test]
fn refusals_name_the_reason_and_write_nothing() {
    let ws = workspace();
    let before = snapshot(&ws);
    let refusals = [
        (["add", "capability", "tidy", "spawn_process"], 1, "capability `spawn_process` is denied by `deny: [\"spawn_process\""),
        (["add", "capability", "note", "file_read"], 1, "no agent `note` in this workspace (did you mean `notes`?)"),
        (["add", "capability", "notes", "web_reqest"], 1, "unknown operation `web_reqest` (did you mean `web_request`?)"),
    ];
    for (args, code, message) in refusals {
        let run = ws.run(&args);
        assert_eq!(run.code, code, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(message), "{args:?}: expected `{message}` in:\n{}", run.stderr);
    }
    let denied = ws.run(&["add", "capability", "tidy", "spawn_process"]);
    let line = read(&ws, "policies.sym").lines().position(|l| l.contains("deny: [\"spawn_process\"")).unwrap() + 1;
    assert!(denied.stderr.contains(&format!("policies.sym:{line}")), "{}", denied.stderr);
    for args in [&["add", "capability", "notes"][..], &["add", "widget", "notes", "x"], &["add", "capability", "a", "b", "c"]] {
        assert_eq!(ws.run(args).code, 2, "{args:?}");
    }
    assert_eq!(snapshot(&ws), before);
}
