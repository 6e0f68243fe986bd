//! `symbiont.toml`'s `[run]` (a run's context, `docs/runtime.md`): what `symbiont check` reports
//! about it, over the built binary. That a run uses it is tested where runs are
//! (`runtime::sandbox::the_bundled_example_runs`, `lsp::run`).

use crate::cli::Workspace;

const AGENT: &str = "agent reviewer {}\n";

/// Each `symbiont.toml` with what `check` says about it.
const CASES: &[(&str, &str)] = &[
    (
        "a workspace and an agent context",
        "[run]\ncontext = { audit_trail = true }\n[run.agents.reviewer]\ncontext = { user_clearance = \"developer\" }\n",
    ),
    ("an unknown key", "[run]\ncontxt = { audit_trail = true }\n"),
    ("an unknown key of an agent", "[run.agents.reviewer]\ncontext = {}\nclearance = \"developer\"\n"),
    ("a context that is not a table", "[run]\ncontext = \"developer\"\n"),
    ("an agent that is not a table", "[run.agents]\nreviewer = \"developer\"\n"),
    ("a date-time", "[run.agents.reviewer]\ncontext = { since = 2026-01-01 }\n"),
    ("a name the runtime sets", "[run]\ncontext = { tier = 1 }\n"),
    ("an agent the workspace does not define", "[run.agents.reviwer]\ncontext = { user_clearance = \"developer\" }\n"),
];

#[test]
fn symbiont_toml_run_context_is_checked() {
    let mut out = String::new();
    for (what, toml) in CASES {
        let ws = Workspace::new();
        ws.write("symbiont.toml", toml).write("reviewer.sym", AGENT);
        let run = ws.run(&["check", "--color", "never"]);
        let clean = what.starts_with("a workspace and");
        assert_eq!(run.code, if clean { 0 } else { 1 }, "{what}: {}{}", run.stdout, run.stderr);
        out.push_str(&format!("## {what}\n{toml}--- exit {}\n{}\n", run.code, run.stdout));
        // The fix of a misspelt agent gives another agent the context: never applied unreviewed.
        let fixed = ws.run(&["check", "--fix", "--color", "never"]);
        assert_eq!(fixed.code, run.code, "{what}: {}", fixed.stderr);
        assert_eq!(std::fs::read_to_string(ws.path("symbiont.toml")).unwrap(), *toml, "{what}: --fix left symbiont.toml alone");
    }
    insta::assert_snapshot!(out);
}
