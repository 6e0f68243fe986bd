//! Editing one file re-runs only what depends on it, shown with salsa's execution log.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use symbiont_analysis::{summary::file_policy_model, AnalysisHost};

const A: &str =
    "policy base { deny: [\"network_access\"] }\nagent alpha() {\n    policies = [base]\n    with sandbox = \"Tier1\" { return 1; }\n}\n";
const B: &str = "policy strict extends base { deny: [\"spawn_process\"] }\nagent beta() {\n    policies = [strict]\n}\n";

/// How many times each query ran, by query name.
fn executed(host: &AnalysisHost) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for entry in host.take_executions() {
        let name = entry.split('(').next().unwrap_or(&entry).to_string();
        *counts.entry(name).or_insert(0) += 1;
    }
    counts
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn editing_a_body_rechecks_only_that_file() {
    let mut host = AnalysisHost::new();
    host.set_file("a.sym", A);
    host.set_file("b.sym", B);
    host.record_executions();
    assert!(host.all_diagnostics().iter().all(|(_, d)| d.is_empty()));
    let first = executed(&host);
    assert_eq!(first.get("file_layout"), Some(&2), "{first:?}");
    assert_eq!(first.get("item_summary"), Some(&4), "two items in each file: {first:?}");

    // Change a body in a.sym: every range after the edit moves, but no name changes.
    host.set_file("a.sym", A.replace("return 1;", "let x = 40 + 2;\n        return x;"));
    assert!(host.all_diagnostics().iter().all(|(_, d)| d.is_empty()));
    assert_eq!(
        executed(&host),
        counts(&[
            ("file_items", 1),
            ("file_policy_model", 1),
            ("file_symbols", 1),
            ("local_diagnostics", 1),
            ("file_layout", 1),
            ("item_summary", 1),
            ("resolve_diagnostics", 1),
        ]),
        "only a.sym's queries re-run, and of its items only the agent edited; the workspace index is\n         reused, b.sym is not re-checked, and a.sym's diagnostics, unchanged, are not recombined"
    );

    // Nothing changed: nothing runs.
    host.all_diagnostics();
    assert_eq!(executed(&host), BTreeMap::new());
}

#[test]
fn renaming_a_definition_rechecks_its_dependents() {
    let mut host = AnalysisHost::new();
    host.set_file("a.sym", A);
    host.set_file("b.sym", B);
    host.all_diagnostics();
    host.record_executions();

    host.set_file("a.sym", A.replace("policy base", "policy basis").replace("[base]", "[basis]"));
    let diagnostics = host.all_diagnostics();
    let b = &diagnostics.iter().find(|(p, _)| p.ends_with("b.sym")).unwrap().1;
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0].code(), "SYM0102");
    let runs = executed(&host);
    assert_eq!(runs.get("workspace_index"), Some(&1), "{runs:?}");
    assert_eq!(runs.get("resolve_diagnostics"), Some(&2), "{runs:?}");
    assert_eq!(runs.get("file_layout"), Some(&1), "b.sym is not re-parsed: {runs:?}");
    assert_eq!(runs.get("item_summary"), Some(&2), "both of a.sym's items changed: {runs:?}");
}

/// A file of `n` agents, each applying the one policy and declaring a capability none allows
/// (a diagnostic each, whose range moves with its agent).
fn many_agents(n: usize) -> String {
    let mut text = String::from("policy base { deny: [\"network_access\"] }\n");
    for i in 0..n {
        text.push_str(&format!(
            "agent a{i}() {{\n    capabilities = [\"file_read\", \"spawn_process\"]\n    policies = [base]\n    policy own{i} {{ allow: [\"file_read\"] }}\n    with sandbox = \"Tier1\" {{ return {i}; }}\n}}\n"
        ));
    }
    text
}

#[test]
fn a_one_character_edit_rederives_only_the_item_it_is_in() {
    let text = many_agents(50);
    let mut host = AnalysisHost::new();
    host.set_file("many.sym", text.as_str());
    host.record_executions();
    let before = host.all_diagnostics();
    assert_eq!(executed(&host).get("item_summary"), Some(&51), "the policy and 50 agents");

    // One character inside agent a17's body: every item after it moves by one byte.
    let edited = text.replace("return 17;", "return 175;");
    host.set_file("many.sym", edited.as_str());
    let after = host.all_diagnostics();
    let runs = executed(&host);
    assert_eq!(runs.get("item_summary"), Some(&1), "only a17's summary is derived again: {runs:?}");
    assert_eq!(runs.get("file_layout"), Some(&1), "{runs:?}");
    for assembly in ["file_items", "local_diagnostics", "file_policy_model"] {
        assert_eq!(runs.get(assembly), Some(&1), "{assembly}: {runs:?}");
    }
    assert_eq!(runs.get("workspace_index"), None, "no name changed: {runs:?}");
    let mut fresh = AnalysisHost::new();
    fresh.set_file("many.sym", edited.as_str());
    assert_eq!(after, fresh.all_diagnostics(), "the same diagnostics as a fresh analysis");
    let count = |all: &[(std::path::PathBuf, Vec<symbiont_analysis::Diagnostic>)]| all.iter().map(|(_, d)| d.len()).sum::<usize>();
    assert_eq!((count(&before), count(&after)), (50, 50), "{after:?}");

    // Text before every item: all of them move, none is derived again, and every range moves.
    let moved = format!("# a comment\n{edited}");
    host.set_file("many.sym", moved.as_str());
    let diagnostics = host.all_diagnostics();
    let runs = executed(&host);
    assert_eq!(runs.get("item_summary"), None, "moving an item keeps its summary: {runs:?}");
    let mut fresh = AnalysisHost::new();
    fresh.set_file("many.sym", moved.as_str());
    assert_eq!(diagnostics, fresh.all_diagnostics());
}

/// Every `.sym`/`.symbi` file under `dir`.
pub(crate) fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if symbiont_analysis::is_source_path(&path) {
            out.push(path);
        }
    }
}

/// The model assembled from the items' is the lowering of the whole file: every location
/// moved to its line, column and range. Items share lines and hold characters wider than a
/// byte before their rules here, so that a column moved wrongly shows.
#[test]
fn the_assembled_policy_model_is_the_whole_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut paths = Vec::new();
    for dir in ["examples", "tests"] {
        sources(&root.join(dir), &mut paths);
    }
    assert!(paths.len() > 20, "{paths:?}");
    let mut texts: Vec<(String, String)> =
        paths.iter().filter_map(|p| Some((p.display().to_string(), std::fs::read_to_string(p).ok()?))).collect();
    texts.push((
        "one-line.sym".into(),
        "/* «é» */ policy a { deny: [\"network_access\"] } policy b extends a { allow: [\"read\"] if user.clearance >= \"sécret\" }\n\
         /* ü */ agent e() { capabilities = [\"rea\"] policy p { allow: [\"x\"] } } # ünïcode\n  agent f() { policies = [b] }"
            .into(),
    ));
    let mut host = AnalysisHost::new();
    for (path, text) in texts {
        host.set_file(&path, text.as_str());
        let file = host.source_file(Path::new(&path)).unwrap();
        let whole = symbiont_policy::lower::lower_file(&path, &text, &symbiont_syntax::parse(&text).tree());
        assert_eq!(*file_policy_model(host.db(), file), whole, "{path}");
        if path == "one-line.sym" {
            assert_eq!((whole.policies.len(), whole.agents.len()), (2, 2), "{whole:#?}");
            assert_eq!((whole.policies[1].rules[0].loc.line, whole.policies[1].rules[0].loc.col), (1, 70), "{whole:#?}");
        }
        // Edits above that move every item (lines, then columns on the first line, then back to
        // where they were lowered): the items' models, derived once, are moved or shared.
        for prefix in ["\n\n# ü\n", "/* «é» */ ", "", "/* a */\n/* ü */  "] {
            let edited = format!("{prefix}{text}");
            host.set_file(&path, edited.as_str());
            let whole = symbiont_policy::lower::lower_file(&path, &edited, &symbiont_syntax::parse(&edited).tree());
            assert_eq!(*file_policy_model(host.db(), file), whole, "{path} after {prefix:?}");
        }
    }
}
