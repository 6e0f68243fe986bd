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
