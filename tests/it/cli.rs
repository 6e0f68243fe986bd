//! The `symbiont` command, end to end: the built binary run on temporary directories. These tests
//! are the contract written in `docs/cli.md`: exit codes, the four report formats (the SARIF one
//! validated against the official schema), which files are taken, and `fmt`'s promise never to
//! half-write or touch a file it cannot format.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::OnceLock,
};

use serde_json::Value;
use symbiont_analysis::diagnostics::all_rules;
use symbiont_tests::repo_root;

/// The `symbiont` binary, built on first use (`SYMBIONT_BIN` names a prebuilt one instead).
pub(crate) fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| symbiont_tests::workspace_binary("symbiont-cli", "symbiont", "SYMBIONT_BIN"))
}

/// A temporary directory to run `symbiont` in.
pub(crate) struct Workspace {
    dir: tempfile::TempDir,
}

/// What a run printed and how it exited.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Workspace {
    pub(crate) fn new() -> Workspace {
        Workspace { dir: tempfile::tempdir().expect("a temporary directory") }
    }

    pub(crate) fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub(crate) fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> &Self {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
        self
    }

    fn read(&self, relative: &str) -> Vec<u8> {
        std::fs::read(self.path(relative)).unwrap()
    }

    pub(crate) fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut child = Command::new(binary())
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("NO_COLOR")
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("symbiont runs");
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        let Output { status, stdout, stderr } = child.wait_with_output().unwrap();
        Run {
            code: status.code().expect("symbiont exits, not killed"),
            stdout: String::from_utf8(stdout).expect("UTF-8 output"),
            stderr: String::from_utf8(stderr).expect("UTF-8 errors"),
        }
    }

    /// Names of the entries of a directory, sorted, to see that no temporary file is left.
    fn entries(&self, relative: &str) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(self.path(relative)).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }
}

/// Files with one diagnostic of each kind a report must show: an error with a fix, a warning
/// with a fix after a character outside the BMP (so chars and UTF-16 columns differ), an error
/// without a fix, and an error with a related location in another file (`.symbi`).
fn problems() -> Workspace {
    let ws = Workspace::new();
    ws.write(
        "agents/a.sym",
        r#"agent a(x: String) -> R {
    policies = [strct]
    with memory = "𝄞", timeot = 30.seconds {
        let y = 5parsecs;
    }
}

policy strict {
    deny: ["network_access"]
}
"#,
    );
    ws.write("agents/b.symbi", "agent a() -> R {\n}\n");
    ws.write("clean.sym", "policy fine {\n    allow: [\"read\"]\n}\n");
    ws
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", run.stdout))
}

#[test]
fn help_and_version() {
    let ws = Workspace::new();
    let run = ws.run(&["--help"]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("Usage: symbiont <COMMAND>"), "{}", run.stdout);
    for args in [&["check", "--help"][..], &["help", "check"]] {
        let run = ws.run(args);
        assert_eq!(run.code, 0);
        assert!(run.stdout.contains("Usage: symbiont check") && run.stdout.contains("--format <FORMAT>"), "{}", run.stdout);
    }
    let run = ws.run(&["fmt", "-h"]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("Usage: symbiont fmt"), "{}", run.stdout);
    let run = ws.run(&["--version"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, format!("symbiont {}\n", env!("CARGO_PKG_VERSION")).as_str()));
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    let ws = Workspace::new();
    ws.write("a.sym", "policy p {\n}\n");
    for (args, expected) in [
        (&[][..], "no command given"),
        (&["lint"], "unknown command 'lint'"),
        (&["--bogus"], "--bogus"),
        (&["check", "--bogus"], "--bogus"),
        (&["check", "--format", "xml"], "invalid value 'xml' for '--format'"),
        (&["check", "--format"], "--format"),
        (&["check", "--color", "sometimes"], "invalid value 'sometimes' for '--color'"),
        (&["check", "missing.sym"], "missing.sym: no such file or directory"),
        (&["check", "a.sym", "missing"], "missing: no such file or directory"),
        (&["fmt", "-", "a.sym"], "cannot be combined"),
        (&["fmt", "--frobnicate"], "--frobnicate"),
        (&["fmt", "nowhere"], "nowhere: no such file or directory"),
        (&["image", "build", "--tier", "3", "python"], "--tier 3 builds one root filesystem for every language and takes no KIND"),
        (&["image", "build", "--tier", "4"], "invalid value '4' for '--tier' (expected 1, 2 or 3)"),
    ] {
        let run = ws.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.starts_with("error: ") && run.stderr.contains(expected), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
}

#[test]
fn clean_files_exit_0() {
    let ws = Workspace::new();
    ws.write("a.sym", "policy p {\n    allow: [\"read\"]\n}\n");
    ws.write("sub/b.symbi", "agent b() -> R {\n    policies = [p]\n}\n");
    let run = ws.run(&["check"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "All 2 files checked: no problems.\n"), "{}", run.stderr);
    let run = ws.run(&["check", "--format", "json"]);
    assert_eq!(run.code, 0);
    assert_eq!(json(&run)["diagnostics"], serde_json::json!([]));
}

#[test]
fn human_report() {
    let ws = problems();
    let run = ws.run(&["check"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!run.stdout.contains('\x1b'), "no colour when not on a terminal");
    insta::assert_snapshot!("human_report", run.stdout);
}

#[test]
fn human_report_colours_on_request_only() {
    let ws = problems();
    let always = ws.run(&["check", "--color", "always"]);
    assert!(always.stdout.contains("\x1b[1;31merror[SYM0101]\x1b[0m"), "{}", always.stdout);
    let never = ws.run(&["check", "--color", "never"]);
    assert!(!never.stdout.contains('\x1b'));
    // Without the colour codes, the report is the same.
    let stripped = always.stdout.replace("\x1b[0m", "").replace("\x1b[1m", "");
    let stripped = ["31", "33", "34", "36", "32"].iter().fold(stripped, |s, c| s.replace(&format!("\x1b[1;{c}m"), ""));
    assert_eq!(stripped, never.stdout);
}

#[test]
fn json_report() {
    let ws = problems();
    let run = ws.run(&["check", "--format", "json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = json(&run);
    assert_eq!(report["version"], 1);
    assert_eq!(report["files_checked"], 3);
    assert_eq!(report["summary"]["errors"], 3);
    assert_eq!(report["summary"]["warnings"], 1);
    insta::assert_snapshot!("json_report", run.stdout);
}

#[test]
fn github_report() {
    let ws = problems();
    ws.write("odd, name: 100%.sym", "agent a() -> R {\n}\n");
    let run = ws.run(&["check", "--format", "github"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    insta::assert_snapshot!("github_report", run.stdout);
}

#[test]
fn sarif_report_is_valid_sarif_2_1_0() {
    let ws = problems();
    let run = ws.run(&["check", "--format", "sarif"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let log = json(&run);

    let schema_path = repo_root().join("tests/data/sarif/sarif-schema-2.1.0.json");
    let mut schema: Value = serde_json::from_slice(&std::fs::read(&schema_path).unwrap()).unwrap();
    // The schema's `language` patterns have a stray `]`, a literal in ECMA-262 regexes without
    // the `u` flag but rejected by the validator's check of the schema itself; escaping it
    // changes nothing they match.
    let fixed = escape_stray_bracket(&mut schema);
    assert_eq!(fixed, 2, "the schema's known erratum");
    // Formats (`uri`, `uri-reference`, …) are asserted, as draft-07 allows.
    let validator = jsonschema::draft7::options().should_validate_formats(true).build(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator.iter_errors(&log).map(|e| format!("{}: {e}", e.instance_path())).collect();
    assert!(errors.is_empty(), "invalid SARIF:\n{}\n{}", errors.join("\n"), run.stdout);
    // The validator does reject what SARIF forbids: a relative `helpUri`, a column 0.
    let mut relative_help = log.clone();
    relative_help["runs"][0]["tool"]["driver"]["rules"][0]["helpUri"] = "docs/diagnostics.md".into();
    assert!(!validator.is_valid(&relative_help));
    let mut column_zero = log.clone();
    column_zero["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startColumn"] = 0.into();
    assert!(!validator.is_valid(&column_zero));

    assert_eq!(log["version"], "2.1.0");
    let sarif_run = &log["runs"][0];
    let driver = &sarif_run["tool"]["driver"];
    assert_eq!(driver["name"], "symbiont");
    let rules = driver["rules"].as_array().unwrap();
    assert_eq!(rules.len(), all_rules().count());
    for (descriptor, rule) in rules.iter().zip(all_rules()) {
        assert_eq!(descriptor["id"], rule.code);
        assert_eq!(descriptor["name"], rule.name);
        assert_eq!(descriptor["shortDescription"]["text"], rule.summary);
        assert_eq!(descriptor["defaultConfiguration"]["level"], if rule.severity.as_str() == "error" { "error" } else { "warning" });
        let docs = format!("{}#{}-{}", rule.page, rule.code.to_lowercase(), rule.name);
        assert!(descriptor["help"]["text"].as_str().unwrap().contains(&docs), "{descriptor}");
    }

    let results = sarif_run["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for result in results {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], result["ruleId"]);
    }
    let by_rule = |code: &str| results.iter().find(|r| r["ruleId"] == code).unwrap_or_else(|| panic!("no {code}"));

    // Relative, forward-slash URIs against %SRCROOT%; columns in UTF-16 code units: `timeot`
    // follows `𝄞`, one char but two UTF-16 units.
    let unknown = by_rule("SYM0105");
    assert_eq!(unknown["level"], "warning");
    let location = &unknown["locations"][0]["physicalLocation"];
    assert_eq!(location["artifactLocation"], serde_json::json!({ "uri": "agents/a.sym", "uriBaseId": "%SRCROOT%" }));
    assert_eq!(location["region"], serde_json::json!({ "startLine": 3, "startColumn": 25, "endLine": 3, "endColumn": 31 }));
    let replacement = &unknown["fixes"][0]["artifactChanges"][0]["replacements"][0];
    assert_eq!(replacement["insertedContent"]["text"], "timeout");
    assert_eq!(replacement["deletedRegion"], location["region"]);

    let duplicate = by_rule("SYM0101");
    assert_eq!(duplicate["relatedLocations"][0]["physicalLocation"]["artifactLocation"]["uri"], "agents/a.sym");
    assert_eq!(duplicate["relatedLocations"][0]["message"]["text"], "first defined here");

    let root = sarif_run["originalUriBaseIds"]["%SRCROOT%"]["uri"].as_str().unwrap();
    assert!(root.starts_with("file:///") && root.ends_with('/'), "{root}");
}

fn escape_stray_bracket(schema: &mut Value) -> usize {
    match schema {
        Value::Object(map) => map
            .iter_mut()
            .map(|(key, value)| match value {
                Value::String(pattern) if key == "pattern" && pattern.ends_with("{2}]?$") => {
                    *pattern = pattern.replace("{2}]?$", "{2}\\]?$");
                    1
                }
                _ => escape_stray_bracket(value),
            })
            .sum(),
        Value::Array(items) => items.iter_mut().map(escape_stray_bracket).sum(),
        _ => 0,
    }
}

/// Every rule's documentation anchor that reports point at exists in its page.
#[test]
fn documentation_anchors_exist() {
    for rule in all_rules() {
        let docs = std::fs::read_to_string(repo_root().join(rule.page)).unwrap();
        let heading = format!("\n## {}: {}\n", rule.code, rule.name);
        assert!(docs.contains(&heading), "{} has no heading `{}`", rule.page, heading.trim());
    }
}

#[test]
fn non_utf8_file_is_reported_and_the_others_still_checked() {
    let ws = problems();
    ws.write("agents/latin1.sym", b"agent caf\xe9() -> R {\n}\n");
    let run = ws.run(&["check", "--format", "json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let report = json(&run);
    assert_eq!(report["files_checked"], 4);
    let diagnostics = report["diagnostics"].as_array().unwrap();
    let invalid: Vec<&Value> = diagnostics.iter().filter(|d| d["code"] == "SYM0002").collect();
    assert_eq!(invalid.len(), 1, "{diagnostics:#?}");
    assert_eq!(invalid[0]["path"], "agents/latin1.sym");
    assert_eq!(invalid[0]["severity"], "error");
    assert_eq!(invalid[0]["range"]["start"], serde_json::json!({ "line": 1, "column": 1, "offset": 0 }));
    assert!(invalid[0]["message"].as_str().unwrap().contains("UTF-8"));
    // The other files' diagnostics are all there.
    assert_eq!(diagnostics.len(), 5);

    let human = ws.run(&["check", "agents/latin1.sym"]);
    assert_eq!(human.code, 1);
    assert!(human.stdout.starts_with("error[SYM0002]: ") && human.stdout.contains(" --> agents/latin1.sym:1:1\n"), "{}", human.stdout);
}

#[test]
fn gitignore_is_honoured_without_a_git_repository() {
    let ws = Workspace::new();
    ws.write(".gitignore", "generated/\nscratch.sym\n");
    ws.write("generated/bad.sym", "agent {\n");
    ws.write("scratch.sym", "agent {\n");
    ws.write("nested/.gitignore", "local.symbi\n");
    ws.write("nested/local.symbi", "agent {\n");
    ws.write("nested/kept.symbi", "policy kept {\n}\n");
    ws.write(".hidden/x.sym", "agent {\n");
    ws.write("good.sym", "policy p {\n}\n");
    let run = ws.run(&["check"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "All 2 files checked: no problems.\n"), "{}", run.stderr);
    // Naming an ignored file checks it.
    let run = ws.run(&["check", "scratch.sym"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("error[SYM0001]"), "{}", run.stdout);
}

#[test]
fn symbi_files_are_found_and_named_files_taken_whatever_their_extension() {
    let ws = Workspace::new();
    ws.write("a.symbi", "agent a() -> R {\n    policies = [nope]\n}\n");
    ws.write("notes.txt", "agent {\n");
    ws.write("agent.def", "agent b() -> R {\n    policies = [nope]\n}\n");
    let run = ws.run(&["check", "--format", "json"]);
    assert_eq!(run.code, 1);
    let report = json(&run);
    assert_eq!(report["files_checked"], 1);
    assert_eq!(report["diagnostics"][0]["path"], "a.symbi");
    assert_eq!(report["diagnostics"][0]["code"], "SYM0102");

    let run = ws.run(&["check", "--format", "json", "agent.def", "a.symbi"]);
    let report = json(&run);
    assert_eq!(report["files_checked"], 2);
    let paths: Vec<&str> = report["diagnostics"].as_array().unwrap().iter().map(|d| d["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["a.symbi", "agent.def"], "sorted by path");
}

#[test]
fn symbiont_toml_is_read_from_the_nearest_ancestor_of_the_first_path() {
    let ws = Workspace::new();
    ws.write("symbiont.toml", "this is = not = toml\n");
    ws.write("project/agents/a.sym", "policy p {\n}\n");
    let run = ws.run(&["check", "--format", "json", "project/agents"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let report = json(&run);
    assert_eq!(report["diagnostics"][0]["code"], "SYM0003", "{report:#}");
    assert_eq!(report["diagnostics"][0]["path"], "symbiont.toml");
    assert_eq!(report["files_checked"], 1);

    // A nearer one wins.
    ws.write("project/symbiont.toml", "");
    let run = ws.run(&["check", "project/agents"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn output_file_is_written_atomically() {
    let ws = problems();
    ws.write("reports/old.json", "stale");
    let run = ws.run(&["check", "--format", "json", "--output", "reports/check.json", "agents"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let written: Value = serde_json::from_slice(&ws.read("reports/check.json")).unwrap();
    assert_eq!(written["summary"]["errors"], 3);
    // Overwrites, keeping the file's permissions; no temporary file left behind.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(ws.path("reports/check.json"), std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    let run = ws.run(&["check", "-o", "reports/check.json", "clean.sym"]);
    assert_eq!(run.code, 0);
    assert_eq!(ws.read("reports/check.json"), b"1 file checked: no problems.\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(ws.path("reports/check.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }
    assert_eq!(ws.entries("reports"), ["check.json", "old.json"]);

    // A report that cannot be written is an I/O error.
    let run = ws.run(&["check", "--output", "no/such/dir/report.txt", "clean.sym"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("cannot write no/such/dir/report.txt"), "{}", run.stderr);
}

const UNFORMATTED: &str = "agent  c() -> R {capabilities=[\"read\"]}\n";

fn formatted(text: &str) -> String {
    symbiont_syntax::format::format(text).expect("formats")
}

#[test]
fn fmt_check_lists_files_that_would_change() {
    let ws = Workspace::new();
    ws.write("ok.sym", formatted(UNFORMATTED));
    let run = ws.run(&["fmt", "--check"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{}", run.stderr);

    ws.write("sub/messy.symbi", UNFORMATTED);
    ws.write("z.sym", UNFORMATTED);
    let run = ws.run(&["fmt", "--check"]);
    assert_eq!((run.code, run.stdout.as_str()), (1, "sub/messy.symbi\nz.sym\n"), "{}", run.stderr);
    assert_eq!(ws.read("z.sym"), UNFORMATTED.as_bytes(), "--check writes nothing");
}

#[test]
fn fmt_rewrites_changed_files_in_place_atomically() {
    let ws = Workspace::new();
    ws.write("messy.sym", UNFORMATTED);
    ws.write("ok.sym", formatted(UNFORMATTED));
    #[cfg(unix)]
    let (messy_mode, ok_inode) = {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        std::fs::set_permissions(ws.path("messy.sym"), std::fs::Permissions::from_mode(0o640)).unwrap();
        (0o640, std::fs::metadata(ws.path("ok.sym")).unwrap().ino())
    };
    let run = ws.run(&["fmt"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "1 file reformatted, 1 file left unchanged.\n");
    assert_eq!(String::from_utf8(ws.read("messy.sym")).unwrap(), formatted(UNFORMATTED));
    assert_eq!(ws.entries("."), ["messy.sym", "ok.sym"], "no temporary file left behind");
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        assert_eq!(std::fs::metadata(ws.path("messy.sym")).unwrap().permissions().mode() & 0o777, messy_mode);
        assert_eq!(std::fs::metadata(ws.path("ok.sym")).unwrap().ino(), ok_inode, "an unchanged file is not rewritten");
    }
    let run = ws.run(&["fmt", "--check"]);
    assert_eq!(run.code, 0, "formatting is idempotent: {}", run.stdout);
}

#[test]
fn fmt_refuses_files_with_syntax_errors_and_leaves_them_byte_identical() {
    let ws = Workspace::new();
    let broken = b"agent d( {\r\n  capabilities=[\"read\"]\n";
    ws.write("broken.sym", broken);
    ws.write("messy.sym", UNFORMATTED);
    for args in [&["fmt"][..], &["fmt", "--check"], &["fmt", "broken.sym"]] {
        let run = ws.run(args);
        assert_eq!(run.code, 1, "{args:?}");
        assert!(run.stderr.contains("broken.sym:1:10: "), "{args:?}: {}", run.stderr);
        assert_eq!(ws.read("broken.sym"), broken, "{args:?}");
    }
    assert_eq!(String::from_utf8(ws.read("messy.sym")).unwrap(), formatted(UNFORMATTED), "the other file is still formatted");
    assert_eq!(ws.entries("."), ["broken.sym", "messy.sym"]);
}

#[test]
fn fmt_refuses_files_that_are_not_utf8() {
    let ws = Workspace::new();
    let latin1 = b"agent  caf\xe9() -> R {capabilities=[\"read\"]}\n";
    ws.write("latin1.sym", latin1);
    let run = ws.run(&["fmt"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("latin1.sym: the file is not valid UTF-8"), "{}", run.stderr);
    assert_eq!(ws.read("latin1.sym"), latin1);
}

#[test]
fn fmt_filters_standard_input() {
    let ws = Workspace::new();
    let run = ws.run_with_stdin(&["fmt", "-"], Some(UNFORMATTED));
    assert_eq!((run.code, run.stdout.as_str()), (0, formatted(UNFORMATTED).as_str()), "{}", run.stderr);
    let run = ws.run_with_stdin(&["fmt", "--check", "-"], Some(UNFORMATTED));
    assert_eq!((run.code, run.stdout.as_str()), (1, "-\n"));
    let run = ws.run_with_stdin(&["fmt", "--check", "-"], Some(&formatted(UNFORMATTED)));
    assert_eq!((run.code, run.stdout.as_str()), (0, ""));
    let run = ws.run_with_stdin(&["fmt", "-"], Some("agent d( {\n"));
    assert_eq!((run.code, run.stdout.as_str()), (1, ""));
    assert!(run.stderr.starts_with("-:1:10: "), "{}", run.stderr);
}
