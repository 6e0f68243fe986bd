//! The editor features in process, on `AnalysisHost` snapshots (`ide::Analysis`), as
//! rust-analyzer tests its own: each fixture in `ide/` is a workspace (see `fixture.rs`) with `$0`
//! at the cursor, or around a selection; the feature its name starts with (`hover-`,
//! `goto_definition-`, `completion-`, `references-`, `rename-`, `code_actions-`) runs there and its
//! answer is snapshotted. A rename fixture names the new name in a comment line
//! `// rename to: NAME` (`renamed` otherwise). `lsp/features.rs` tests the same features over the
//! language server's protocol.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use symbiont_analysis::{
    ide::{Action, Analysis},
    Edit, FileEdit,
};

use crate::fixture::Fixture;

const FEATURES: &[&str] = &["hover", "goto_definition", "completion", "references", "rename", "code_actions"];

#[test]
fn ide_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("it/ide");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    let mut tested: Vec<&str> = Vec::new();
    for path in paths {
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let feature = FEATURES
            .iter()
            .copied()
            .find(|f| name.strip_prefix(f).is_some_and(|rest| rest.starts_with('-')))
            .unwrap_or_else(|| panic!("{name}: a fixture's name starts with its feature, one of {FEATURES:?}"));
        let text = std::fs::read_to_string(&path).unwrap();
        let single =
            if path.extension().is_some_and(|e| e == "workspace") { "main.sym" } else { path.file_name().unwrap().to_str().unwrap() };
        let fixture = Fixture::parse(&text, single);
        let rendered = run(feature, &fixture).unwrap_or_else(|| panic!("{name}: no `$0` cursor"));
        tested.push(feature);
        insta::assert_snapshot!(format!("ide-{name}"), rendered, &text);
    }
    let untested: Vec<&&str> = FEATURES.iter().filter(|f| !tested.contains(f)).collect();
    assert!(untested.is_empty(), "no fixture in tests/it/ide/ for {untested:?}");
}

/// The feature's answer at the fixture's cursor, rendered; `None` without a cursor.
fn run(feature: &str, fixture: &Fixture) -> Option<String> {
    let (file, range) = fixture.cursor.clone()?;
    let analysis = fixture.host().snapshot();
    let at = range.start();
    Some(match feature {
        "hover" => match analysis.hover(&file, at).unwrap() {
            Some((range, text)) => format!("{}\n{text}\n", fixture.location(&file, range)),
            None => "(no hover)\n".to_string(),
        },
        "goto_definition" => lines(analysis.goto_definition(&file, at).unwrap().iter().map(|t| {
            format!(
                "{} {} at {} (name {})",
                t.kind.as_str(),
                t.name,
                fixture.location(&t.path, t.full_range),
                fixture.location(&t.path, t.focus_range)
            )
        })),
        "completion" => lines(analysis.completions(&file, at).unwrap().iter().map(|c| {
            let mut line = format!("{:?} {} — {}", c.kind, c.label, c.detail);
            if let Some(snippet) = &c.snippet {
                line.push_str(&format!("\n    snippet: {snippet:?}"));
            }
            if let Some((range, text)) = &c.edit {
                line.push_str(&format!("\n    edit: {} -> {text:?}", fixture.location(&file, *range)));
            }
            line
        })),
        "references" => lines(
            analysis
                .find_references(&file, at, true)
                .unwrap()
                .iter()
                .map(|(path, range)| format!("{} `{}`", fixture.location(path, *range), &fixture.text(path)[*range])),
        ),
        "rename" => rename(&analysis, fixture, &file, at),
        "code_actions" => lines(analysis.code_actions(&file, range).unwrap().iter().map(|a| action(fixture, a))),
        other => unreachable!("feature {other}"),
    })
}

fn lines(items: impl Iterator<Item = String>) -> String {
    let out: String = items.map(|line| line + "\n").collect();
    if out.is_empty() {
        "(none)\n".to_string()
    } else {
        out
    }
}

/// The range the rename would change, then each changed file in full, or the refusal.
fn rename(analysis: &Analysis, fixture: &Fixture, file: &Path, at: symbiont_syntax::TextSize) -> String {
    let new_name = fixture
        .files
        .iter()
        .flat_map(|(_, text)| text.lines())
        .find_map(|l| l.trim().strip_prefix("// rename to: "))
        .unwrap_or("renamed")
        .trim()
        .to_string();
    let prepared = analysis.prepare_rename(file, at).unwrap().map(|r| fixture.location(file, r));
    let mut out = format!("prepare: {}\nrename to `{new_name}`: ", prepared.as_deref().unwrap_or("(nothing to rename)"));
    match analysis.rename(file, at, &new_name).unwrap() {
        Err(refusal) => out.push_str(&format!("refused: {refusal}\n")),
        Ok(edits) => {
            out.push_str(&format!("{} edits\n", edits.len()));
            out.push_str(&applied(fixture, edits));
        }
    }
    out
}

/// An action: its title, what it is, then its edits applied (each changed file in full) and the
/// files it would create (their paths and sizes).
fn action(fixture: &Fixture, a: &Action) -> String {
    let what = match (&a.diagnostic, a.refactor) {
        (Some(d), _) => format!("fix of {}", d.code()),
        (None, true) => "refactor".to_string(),
        (None, false) => "action".to_string(),
    };
    let mut out = format!("## {} [{what}{}]\n", a.fix.title, if a.fix.safe { ", safe" } else { "" });
    for (path, content) in &a.create {
        out.push_str(&format!("creates {} ({} lines)\n", path.display(), content.lines().count()));
    }
    out.push_str(&applied(fixture, a.fix.edits.clone()));
    out
}

/// Each file the edits change, after them, under a `--- path` line.
fn applied(fixture: &Fixture, edits: Vec<FileEdit>) -> String {
    let mut by_file: BTreeMap<PathBuf, Vec<Edit>> = BTreeMap::new();
    for FileEdit { path, edit } in edits {
        by_file.entry(path).or_default().push(edit);
    }
    let mut out = String::new();
    for (path, edits) in by_file {
        let before = fixture.files.iter().find(|(p, _)| *p == path).map_or("", |(_, t)| t.as_str());
        out.push_str(&format!("--- {}\n{}", path.display(), symbiont_code::fix::apply(before, &edits)));
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}
