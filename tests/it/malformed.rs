//! Snapshot tests of the diagnostics for malformed input: each fixture in `malformed/` with the
//! diagnostics `check` reports for it (`tests/it/snapshots/`).

use std::path::Path;

use symbiont_analysis::{AnalysisHost, LineIndex};

/// Renders every diagnostic of `text` as `line:col..line:col CODE severity: message`, 1-based.
pub(crate) fn render(name: &str, text: &str) -> String {
    render_with_config(name, text, None)
}

/// [`render`] in a workspace whose `symbiont.toml` is `config`.
pub(crate) fn render_with_config(name: &str, text: &str, config: Option<String>) -> String {
    let mut host = AnalysisHost::new();
    host.set_config(config.map(|c| ("symbiont.toml".into(), c)));
    host.set_file(name, text);
    let index = LineIndex::new(text);
    let mut out = String::new();
    for (_, diagnostics) in host.all_diagnostics() {
        for d in diagnostics {
            let start = index.line_col(text, d.range.start());
            let end = index.line_col(text, d.range.end());
            out.push_str(&format!(
                "{}:{}..{}:{} {} {}: {}\n",
                start.line + 1,
                start.col + 1,
                end.line + 1,
                end.col + 1,
                d.code(),
                d.severity,
                d.message
            ));
        }
    }
    let parse = symbiont_syntax::parse(text);
    assert_eq!(parse.syntax().text().to_string(), text, "{name} does not round-trip");
    out
}

#[test]
fn malformed_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("it/malformed");
    let mut paths: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    assert!(paths.len() >= 6);
    for path in paths {
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let rendered = render(&name, &text);
        assert!(!rendered.is_empty(), "{name}: malformed input must be reported");
        insta::assert_snapshot!(name, rendered, &text);
    }
}

/// 10,000 levels of nesting of each bracket kind: one error, no stack overflow, round-trip intact.
#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    const LEVELS: usize = 10_000;
    let cases = [
        ("arrays", format!("policy p {{ deny: {}{} }}", "[".repeat(LEVELS), "]".repeat(LEVELS))),
        ("parens", format!("agent a() {{ with sandbox = \"Tier1\" {{ return {}1{}; }} }}", "(".repeat(LEVELS), ")".repeat(LEVELS))),
        ("blocks", format!("function f() {{ {}{} }}", "if x { ".repeat(LEVELS), "}".repeat(LEVELS))),
        ("records", format!("metadata {{ a = {}{} }}", "{ b: ".repeat(LEVELS), "}".repeat(LEVELS))),
        ("prefix", format!("agent a() {{ with sandbox = \"Tier1\" {{ return {}x; }} }}", "!".repeat(LEVELS))),
        ("entries", format!("memory m {}{}", "{ a ".repeat(LEVELS), "}".repeat(LEVELS))),
    ];
    let mut summary = String::new();
    for (name, text) in cases {
        // Run on a thread with a small stack to prove the depth limit protects the default stacks.
        let rendered = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || render(name, &text))
            .unwrap()
            .join()
            .unwrap_or_else(|_| panic!("{name}: parsing panicked"));
        summary.push_str(&format!("== {name}\n{rendered}"));
    }
    insta::assert_snapshot!("deep_nesting", summary);
}
