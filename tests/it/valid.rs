//! Fixtures in `valid/` use every form of the language: they must parse with no syntax error,
//! round-trip, and check with no error-level diagnostic, in the workspace `valid/symbiont.toml`
//! configures.

use std::path::Path;

use symbiont_analysis::{AnalysisHost, Severity};

#[test]
fn valid_fixtures_parse_and_check_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("it/valid");
    let mut host = AnalysisHost::new();
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if path.file_name().is_some_and(|n| n == "symbiont.toml") {
            host.set_config(Some((path, text)));
            continue;
        }
        let parse = symbiont_syntax::parse(&text);
        assert_eq!(parse.syntax().text().to_string(), text);
        assert!(parse.errors().is_empty(), "{}: {:#?}", path.display(), parse.errors());
        host.set_file(path, text);
        count += 1;
    }
    assert!(count > 0);
    for (path, diagnostics) in host.all_diagnostics() {
        let errors: Vec<_> = diagnostics.iter().filter(|d| d.severity == Severity::Error).collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}
