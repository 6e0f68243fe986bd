//! Every real file written elsewhere parses cleanly, round-trips byte for byte and checks with
//! no error-level diagnostic.

use symbiont_analysis::{AnalysisHost, Severity};
use symbiont_tests::corpus_files;

#[test]
fn corpus_parses_without_errors_and_round_trips() {
    for (path, text) in corpus_files() {
        let parse = symbiont_syntax::parse(&text);
        assert_eq!(parse.syntax().text().to_string(), text, "{} does not round-trip", path.display());
        assert!(parse.errors().is_empty(), "{}: {:?}", path.display(), parse.errors());
    }
}

#[test]
fn corpus_checks_with_no_error_level_diagnostic() {
    let mut host = AnalysisHost::new();
    for (path, text) in corpus_files() {
        host.set_file(path, text);
    }
    let errors: Vec<String> = host
        .all_diagnostics()
        .into_iter()
        .flat_map(|(path, diagnostics)| {
            diagnostics
                .into_iter()
                .filter(|d| d.severity == Severity::Error)
                .map(move |d| format!("{}:{:?}: {} {}", path.display(), d.range, d.code(), d.message))
        })
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}
