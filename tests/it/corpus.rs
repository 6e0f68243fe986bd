//! Every real file written elsewhere parses cleanly, round-trips byte for byte and checks with
//! no error-level diagnostic.

use symbiont_analysis::{AnalysisHost, Severity};
use symbiont_syntax::ast::AstNode;
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

/// Every `schedule` block written anywhere (the corpus, `examples/`, the valid fixtures) is one
/// the runtime's driver can run: an agent, and a cron expression with a next tick.
#[test]
fn every_schedule_block_can_be_driven() {
    let root = symbiont_tests::repo_root();
    let mut files = corpus_files();
    let mut dirs = vec![root.join("examples"), root.join("tests/it/valid")];
    while let Some(dir) = dirs.pop() {
        for path in std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()) {
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "sym" || e == "symbi") {
                files.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut driven = 0;
    for (path, text) in files {
        let file = symbiont_syntax::ast::SourceFile::cast(symbiont_syntax::parse(&text).syntax()).unwrap();
        for decl in symbiont_policy::schedule::schedules(&file) {
            let schedule = symbiont_runtime::schedule::Schedule::from_decl(&decl).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(schedule.cron.next_after(std::time::SystemTime::now()).is_some(), "{}: {} never ticks", path.display(), decl.name);
            driven += 1;
        }
    }
    assert!(driven >= 2, "only {driven} schedule blocks found: the walk is broken");
}
