//! Editing one file re-runs only what depends on it, shown with salsa's execution log.

use std::collections::BTreeMap;

use symbiont_analysis::AnalysisHost;

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
    assert_eq!(first.get("file_summary"), Some(&2), "{first:?}");

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
            ("file_summary", 1),
            ("resolve_diagnostics", 1),
        ]),
        "only a.sym's queries re-run; the workspace index is reused, b.sym is not re-checked, and\n         a.sym's diagnostics, unchanged, are not recombined"
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
    assert_eq!(runs.get("file_summary"), Some(&1), "b.sym is not re-parsed: {runs:?}");
}
