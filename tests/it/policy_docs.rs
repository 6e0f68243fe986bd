//! `docs/operations.md` lists exactly the catalogue.

use symbiont_policy::catalogue::OPERATIONS;
use symbiont_tests::repo_root;

#[test]
fn operations_doc_matches_the_catalogue() {
    let doc = std::fs::read_to_string(repo_root().join("docs/operations.md")).unwrap();
    let rows: Vec<String> = doc.lines().filter(|l| l.starts_with("| `")).map(str::to_string).collect();
    let expected: Vec<String> = OPERATIONS
        .iter()
        .map(|o| format!("| `{}` | {} | {} |", o.name, o.parent.map_or("—".to_string(), |p| format!("`{p}`")), o.description))
        .collect();
    assert_eq!(rows, expected, "docs/operations.md and policy/src/catalogue.rs differ");
}

/// `docs/policy-semantics.md` lists exactly the conditions the runtime enforces (what `check`'s
/// SYM0212 does not warn about), in the same order.
#[test]
fn enforced_conditions_doc_matches_the_list() {
    let doc = std::fs::read_to_string(repo_root().join("docs/policy-semantics.md")).unwrap();
    let section = doc.split("### Conditions the runtime enforces").nth(1).expect("the section exists");
    let section = section.split("\n**").next().unwrap_or(section);
    let keys: Vec<&str> = section.lines().filter_map(|l| l.strip_prefix("| `")).filter_map(|l| l.split('`').next()).collect();
    let expected: Vec<&str> = symbiont_policy::effective::ENFORCED_CONDITIONS.iter().map(|(key, _)| *key).collect();
    assert_eq!(keys, expected, "docs/policy-semantics.md and ENFORCED_CONDITIONS differ");
}
