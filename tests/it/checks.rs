//! Snapshot tests of the semantic checks: each fixture in `checks/` with every diagnostic `check`
//! reports for it, in a workspace whose `symbiont.toml` is the fixture's `.toml` beside it, if any.

use std::path::Path;

#[test]
fn check_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("it/checks");
    let mut paths: Vec<_> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "sym")).collect();
    paths.sort();
    assert!(!paths.is_empty());
    for path in paths {
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let config = std::fs::read_to_string(path.with_extension("toml")).ok();
        insta::assert_snapshot!(name.clone(), crate::malformed::render_with_config(&name, &text, config), &text);
    }
}
