//! Agent code as it comes: files with syntax errors, minified megabytes of JavaScript, binary
//! files named `.py`, text that is not UTF-8, expressions nested ten thousand deep. Each gets a
//! diagnostic or a skip with a reason, never a panic or a hang.

use std::time::Instant;

use symbiont_code::{Lang, RuleSet, Scan};

use crate::{cli::Workspace, code_rules::render};

/// Scans on a thread with a 2 MiB stack (the default for spawned threads, and what `check`'s
/// workers get), so that recursion proportional to the input shows as a failure here.
fn scan_on_small_stack(lang: Lang, text: String) -> (Scan, String) {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let scan = RuleSet::default().scan(lang, &text);
            let rendered = render(&text, &scan.findings);
            (scan, rendered)
        })
        .unwrap()
        .join()
        .unwrap_or_else(|_| panic!("scanning {lang:?} panicked (stack overflow?)"))
}

#[test]
fn syntax_errors_leave_the_parsable_parts_scanned() {
    let js = r#"const fs = require("fs");
fs.writeFileSync("before.txt", "x");
function broken( {
  let x = = 3;
  fetch("https://inside-the-broken-function.example");
}
class {
fetch("https://after.example");
process.env.TOKEN
"#;
    let (scan, rendered) = scan_on_small_stack(Lang::JavaScript, js.to_string());
    assert!(scan.syntax_errors > 0);
    insta::assert_snapshot!("syntax_errors_js", rendered);
    for expected in ["fs.writeFileSync", "fetch", "process.env.TOKEN"] {
        assert!(scan.findings.iter().any(|f| f.qualified == expected), "{expected} not reported:\n{rendered}");
    }

    let py = "import os\nimport requests\nrequests.get('https://a.example')\ndef broken(:\n    pass\nos.system('ls')\nclass\n";
    let (scan, rendered) = scan_on_small_stack(Lang::Python, py.to_string());
    assert!(scan.syntax_errors > 0);
    for expected in ["requests.get", "os.system"] {
        assert!(scan.findings.iter().any(|f| f.qualified == expected), "{expected} not reported:\n{rendered}");
    }

    let rs = "use std::fs;\nfn main() { fs::write(\"a\", \"b\"); let = ; }\nfn other( { std::env::var(\"X\"); }\n";
    let (scan, rendered) = scan_on_small_stack(Lang::Rust, rs.to_string());
    assert!(scan.syntax_errors > 0);
    assert!(scan.findings.iter().any(|f| f.qualified == "std::fs::write"), "fs::write not reported:\n{rendered}");
}

/// A minified bundle: one line of `size` bytes of functions, with a known number of network
/// calls, file writes and environment reads among them.
fn minified_bundle(size: usize) -> (String, usize) {
    let mut out = String::from("\"use strict\";var fs=require(\"fs\");");
    let mut calls = 0;
    let mut i = 0;
    while out.len() < size {
        match i % 50 {
            0 => {
                out.push_str(&format!("function n{i}(a){{return fetch(\"https://example.com/\"+a+\"//x\",{{method:\"POST\"}})}}"));
                calls += 1;
            }
            25 => {
                out.push_str(&format!("function w{i}(a){{fs.writeFileSync(\"/tmp/\"+a,process.env.K{i})}}"));
                calls += 2;
            }
            _ => out.push_str(&format!(
                "function f{i}(a,b){{var c=a.x{i}+b.y*{i};return c>{i}?[c,a.z&&a.z.w(c)]:{{k:\"// not a comment\",v:c}}}}"
            )),
        }
        i += 1;
    }
    (out, calls)
}

/// 5 MB of minified JavaScript through `check`: every finding reported (the policy denies all
/// three operations), none with a fix (the file is too large for fixes, each of which would
/// reparse it), in seconds.
#[test]
fn minified_javascript_of_5_mb_is_checked() {
    let (bundle, calls) = minified_bundle(5_000_000);
    assert!(!bundle.contains('\n'));
    let ws = Workspace::new();
    ws.write("symbiont.toml", "[policy]\nbase = \"base\"\n")
        .write("policies.sym", "policy base {\n    deny: [\"network_access\", \"file_system_write\", \"env_access\"]\n}\n")
        .write("dist/bundle.min.js", &bundle);
    crate::cli::binary();
    let started = Instant::now();
    let run = ws.run(&["check", "--format", "json", "."]);
    println!("`symbiont check` on {} bytes of minified JavaScript took {:?}", bundle.len(), started.elapsed());
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stderr));
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(report["summary"]["errors"].as_u64(), Some(calls as u64), "{}", run.stderr);
    assert!(report["diagnostics"].as_array().unwrap().iter().all(|d| d["fix"].is_null()));
}

/// The human report of a long line shows a window around each diagnostic, not the whole line.
#[test]
fn long_lines_are_shown_as_a_window() {
    let (bundle, calls) = minified_bundle(200_000);
    let ws = Workspace::new();
    ws.write("symbiont.toml", "[policy]\nbase = \"base\"\n")
        .write("policies.sym", "policy base {\n    deny: [\"network_access\", \"file_system_write\", \"env_access\"]\n}\n")
        .write("dist/bundle.min.js", &bundle);
    let run = ws.run(&["check", "."]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stdout.len() < calls * 1000, "{} bytes of report", run.stdout.len());
    let first = run.stdout.lines().find(|l| l.starts_with("1 | ")).unwrap_or_default();
    assert!(first.ends_with('…') && first.contains("fetch(\"https://example.com/\""), "{first}");
    assert!(run.stdout.lines().any(|l| l.starts_with("1 | …") && l.ends_with('…')), "{}", &run.stdout[..2000]);
}

/// 10,000 levels: parentheses, brackets, nested calls, and member chains `a.b.c…` that the
/// resolution of callees walks, on a 2 MiB stack.
#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    const LEVELS: usize = 10_000;
    let chain = |sep: &str| (0..LEVELS).map(|i| format!("m{i}")).collect::<Vec<_>>().join(sep);
    let cases: Vec<(&str, Option<&str>, Lang, String)> = vec![
        (
            "python parens",
            Some("os.getenv"),
            Lang::Python,
            format!("import os\nx = {}os.getenv('A'){}\n", "(".repeat(LEVELS), ")".repeat(LEVELS)),
        ),
        ("python lists", None, Lang::Python, format!("x = {}1{}\n", "[".repeat(LEVELS), "]".repeat(LEVELS))),
        (
            "python nested calls",
            Some("os.getenv"),
            Lang::Python,
            format!("import os\nx = {}os.getenv('A'){}\n", "f(".repeat(LEVELS), ")".repeat(LEVELS)),
        ),
        ("python member chain", None, Lang::Python, format!("import os\nx = os.{}\nos.{}()\n", chain("."), chain("."))),
        (
            "python call chain",
            Some("requests.get"),
            Lang::Python,
            format!("import requests\nrequests.get('u'){}\n", ".json()".repeat(LEVELS)),
        ),
        ("js parens", Some("fetch"), Lang::JavaScript, format!("const x = {}fetch('u'){};\n", "(".repeat(LEVELS), ")".repeat(LEVELS))),
        ("js arrays", None, Lang::JavaScript, format!("const x = {}1{};\n", "[".repeat(LEVELS), "]".repeat(LEVELS))),
        (
            "js nested calls",
            Some("fetch"),
            Lang::JavaScript,
            format!("const x = {}fetch('u'){};\n", "f(".repeat(LEVELS), ")".repeat(LEVELS)),
        ),
        ("js member chain", None, Lang::JavaScript, format!("const x = process.env.{};\nprocess.{}();\n", chain("."), chain("."))),
        ("js require chain", None, Lang::JavaScript, format!("const x = require('fs').{};\n", chain("."))),
        ("js call chain", Some("fetch"), Lang::JavaScript, format!("fetch('u'){};\n", ".then(f)".repeat(LEVELS))),
        ("js curried calls", Some("fetch"), Lang::JavaScript, format!("fetch('u'){};\n", "()".repeat(LEVELS))),
        ("ts member chain", None, Lang::TypeScript, format!("const x: number = process.env.{}!;\n", chain("."))),
        ("rust path", None, Lang::Rust, format!("fn main() {{ std::{}(); }}\n", chain("::"))),
        ("rust use list", None, Lang::Rust, format!("use std::{}fs{};\nfn main() {{}}\n", "{a::".repeat(LEVELS), "}".repeat(LEVELS))),
        (
            "rust method chain",
            Some("std::fs::read"),
            Lang::Rust,
            format!("fn main() {{ std::fs::read(\"a\"){}; }}\n", ".map(f)".repeat(LEVELS)),
        ),
        (
            "rust macro",
            Some("std::env::var"),
            Lang::Rust,
            format!("fn main() {{ {}std::env::var(\"A\"){}; }}\n", "m!(".repeat(LEVELS), ")".repeat(LEVELS)),
        ),
    ];
    for (name, expected, lang, text) in cases {
        let started = Instant::now();
        let (scan, rendered) = scan_on_small_stack(lang, text);
        println!("{name}: {:?}, {} syntax errors, findings:\n{rendered}", started.elapsed(), scan.syntax_errors);
        // The call the nesting wraps is found; chains longer than the resolver follows (64
        // levels) are not resolved, and report nothing.
        let qualified: Vec<&str> = scan.findings.iter().map(|f| f.qualified.as_str()).collect();
        assert_eq!(qualified, expected.into_iter().collect::<Vec<_>>(), "{name}");
    }
}

/// Through `symbiont check`: a binary file named `.py` (random bytes, not UTF-8) is SYM0002 with
/// its path; binary that happens to be UTF-8 (NULs and control bytes) is scanned like any text;
/// the other files are still checked.
#[test]
fn binary_and_non_utf8_files_through_check() {
    // Random-looking bytes, the same on every run.
    let mut rng = symbiont_tests::XorShift::new(0x2545_f491_4f6c_dd1d);
    let random: Vec<u8> = (0..64 * 1024).map(|_| (rng.next_u64() >> 24) as u8).collect();
    assert!(std::str::from_utf8(&random).is_err());
    let control: Vec<u8> = (0..4096u32).map(|i| (i % 32) as u8).collect();
    let ws = Workspace::new();
    ws.write("symbiont.toml", "[policy]\nbase = \"base\"\n")
        .write("policies.sym", "policy base {\n    deny: network_access\n}\n")
        .write("src/random.py", &random)
        .write("src/latin1.js", b"// caf\xe9\nfetch('https://example.com');\n")
        .write("src/control.py", &control)
        .write("src/ok.py", "import requests\nrequests.get('https://example.com')\n");
    let run = ws.run(&["check", "--format", "json", "."]);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    let diagnostics = report["diagnostics"].as_array().expect("a diagnostics array");
    let mut codes: Vec<(String, String)> = diagnostics
        .iter()
        .map(|d| (d["path"].as_str().unwrap_or_default().to_string(), d["code"].as_str().unwrap_or_default().to_string()))
        .collect();
    codes.sort();
    let has = |path: &str, code: &str| codes.iter().any(|(p, c)| p == path && c == code);
    assert!(has("src/random.py", "SYM0002"), "{codes:?}\n{}", run.stdout);
    assert!(has("src/latin1.js", "SYM0002"), "{codes:?}");
    assert!(has("src/ok.py", "SYM0301"), "the readable file is still checked: {codes:?}");
    // Binary that happens to be UTF-8 is code that does not parse, and nothing else.
    let control: Vec<&str> = codes.iter().filter(|(p, _)| p == "src/control.py").map(|(_, c)| c.as_str()).collect();
    assert_eq!(control, ["SYM0404"], "binary UTF-8 is reported as code that does not parse: {codes:?}");
    assert_eq!(run.code, 1, "{}", run.stderr);
    let invalid = diagnostics.iter().find(|d| d["path"] == "src/random.py").and_then(|d| d["message"].as_str()).unwrap_or_default();
    assert!(invalid.contains("not valid UTF-8"), "{invalid}");
}

/// Code that does not parse gets a warning of its own (SYM0404) on the first error's line, beside
/// the findings of what parsed; with only custom queries, a file none of them can match is not
/// parsed and gets none.
#[test]
fn code_that_does_not_parse_is_reported() {
    use symbiont_analysis::AnalysisHost;
    let mut host = AnalysisHost::new();
    host.set_config(Some(("symbiont.toml".into(), "[policy]\nbase = \"base\"\n".into())));
    host.set_file("policies.sym", "policy base {\n    deny: network_access\n}\n");
    let text = "import requests\nrequests.get(u)\ndef broken(:\n    pass\nclass\n";
    host.set_file("broken.py", text);
    let diagnostics = host.diagnostics(std::path::Path::new("broken.py"));
    let codes: Vec<&str> = diagnostics.iter().map(|d| d.code()).collect();
    assert_eq!(codes, ["SYM0301", "SYM0404"], "{diagnostics:#?}");
    let error = &diagnostics[1];
    assert_eq!(error.severity, symbiont_analysis::Severity::Warning);
    let line = text[..usize::from(error.range.start())].matches('\n').count();
    assert_eq!(line, 2, "{error:?}");
    assert!(!text[error.range].contains('\n'), "the first line of the error only: {error:?}");
    assert!(error.message.contains("python code does not parse"), "{}", error.message);

    // Built-in rules off, one custom query about `requests.get`: a broken file without those
    // words cannot be matched, is not parsed, and gets nothing; one with them is.
    let query =
        r#"((call function: (attribute object: (identifier) @o attribute: (identifier) @a)) @match (#eq? @o "requests") (#eq? @a "get"))"#;
    let config = format!(
        "[policy]\nbase = \"base\"\n\n[code]\nbuiltin_rules = false\n\n[[code.rules]]\nid = \"q\"\nlanguage = \"python\"\noperation = \"network_access\"\nmessage = \"m\"\nquery = '''{query}'''\n"
    );
    host.set_config(Some(("symbiont.toml".into(), config)));
    host.set_file("unrelated.py", "def broken(:\n    pass\n");
    assert_eq!(host.diagnostics(std::path::Path::new("unrelated.py")), Vec::new());
    let codes: Vec<&str> = host.diagnostics(std::path::Path::new("broken.py")).iter().map(|d| d.code()).collect();
    assert_eq!(codes, ["SYM0399", "SYM0404"]);
}

/// A code file over 16 MiB is not parsed, and says so (SYM0405) instead of looking clean.
#[test]
fn code_too_large_to_parse_is_reported() {
    use symbiont_analysis::AnalysisHost;
    let mut host = AnalysisHost::new();
    host.set_config(Some(("symbiont.toml".into(), "[policy]\nbase = \"base\"\n".into())));
    host.set_file("policies.sym", "policy base {\n    deny: network_access\n}\n");
    let line = "fetch(\"https://example.com\");\n";
    let bundle = line.repeat((17 << 20) / line.len());
    host.set_file("dist/bundle.js", bundle);
    let diagnostics = host.diagnostics(std::path::Path::new("dist/bundle.js"));
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert_eq!(diagnostics[0].code(), "SYM0405");
    assert_eq!(diagnostics[0].message, "this file is 17.0 MiB, over the 16 MiB the code analysis parses: it was not checked");
}
