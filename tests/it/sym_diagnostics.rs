//! One fixture per diagnostic code of the language (`SYM00xx`, `SYM01xx`, `SYM02xx`; agent code's
//! rules have theirs in `code/`), in `sym_diagnostics/`: named `CODE-what.EXT`, it must report its
//! code, and every diagnostic of it is snapshotted with its related locations and fixes. A `.sym`
//! fixture is one file, a `.toml` one is `symbiont.toml`, a `.workspace` one holds several files
//! (`//- PATH` lines, see `fixture.rs`). A fixture that is not UTF-8 cannot reach the analysis:
//! it goes through `symbiont check`, which reports it.

use std::path::{Path, PathBuf};

use symbiont_analysis::{Diagnostic, RULES};

use crate::fixture::Fixture;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("it/sym_diagnostics")
}

/// Every fixture's path, sorted.
fn fixtures() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixture_dir()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    paths.sort();
    paths
}

/// The code a fixture is for: its name up to the first `-`.
fn code_of(path: &Path) -> String {
    let name = path.file_name().unwrap().to_str().unwrap();
    name.split('-').next().unwrap().to_string()
}

/// Whether a rule is one of the language's own (checked on `.sym` files and `symbiont.toml`).
fn is_language_code(code: &str) -> bool {
    ["SYM00", "SYM01", "SYM02"].iter().any(|prefix| code.starts_with(prefix))
}

#[test]
fn every_language_code_has_a_fixture() {
    let have: Vec<String> = fixtures().iter().map(|p| code_of(p)).collect();
    let missing: Vec<&str> = RULES.iter().map(|r| r.code).filter(|c| is_language_code(c) && !have.iter().any(|h| h == c)).collect();
    assert!(
        missing.is_empty(),
        "no fixture in tests/it/sym_diagnostics/ for {}: add a file named CODE-what.sym (or .toml, .workspace) that triggers each",
        missing.join(", ")
    );
    for code in &have {
        assert!(RULES.iter().any(|r| r.code == code && is_language_code(code)), "sym_diagnostics/{code}-*: no language rule has this code");
    }
}

#[test]
fn each_fixture_reports_its_code() {
    for path in fixtures() {
        let code = code_of(&path);
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let bytes = std::fs::read(&path).unwrap();
        let Ok(text) = String::from_utf8(bytes) else {
            let rendered = through_check(&path);
            assert!(rendered.contains(&format!("[{code}]")), "{name}: `symbiont check` does not report {code}:\n{rendered}");
            insta::assert_snapshot!(name, rendered);
            continue;
        };
        let single = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => "symbiont.toml",
            Some("sym") => "fixture.sym",
            Some("workspace") => "fixture.sym",
            other => panic!("{name}: unexpected extension {other:?}"),
        };
        let fixture = Fixture::parse(&text, single);
        let host = fixture.host();
        let mut out = String::new();
        let mut codes = Vec::new();
        for (file, diagnostics) in host.all_diagnostics() {
            for d in &diagnostics {
                codes.push(d.code().to_string());
                render(&fixture, &file, d, &mut out);
            }
        }
        assert!(codes.contains(&code), "{name}: does not report {code} (reports {codes:?})");
        insta::assert_snapshot!(name, out, &text);
    }
}

/// A diagnostic as `location CODE severity: message`, then its related locations and its fixes'
/// titles (with `(safe)` for those `check --fix` applies), indented.
fn render(fixture: &Fixture, file: &Path, d: &Diagnostic, out: &mut String) {
    out.push_str(&format!("{} {} {}: {}\n", fixture.location(file, d.range), d.code(), d.severity, d.message));
    for related in &d.related {
        out.push_str(&format!("    related {}: {}\n", fixture.location(&related.path, related.range), related.message));
    }
    for fix in d.fix.iter().chain(&d.alternatives) {
        out.push_str(&format!("    fix{}: {}\n", if fix.safe { " (safe)" } else { "" }, fix.title));
    }
}

/// What `symbiont check` prints for a file it cannot read as text.
fn through_check(path: &Path) -> String {
    let ws = crate::cli::Workspace::new();
    let name = path.file_name().unwrap().to_str().unwrap();
    ws.write(name, std::fs::read(path).unwrap());
    let run = ws.run(&["check", "--color", "never", name]);
    assert_eq!(run.code, 1, "{name}: check exits 1 on an error:\n{}{}", run.stdout, run.stderr);
    run.stdout
}
