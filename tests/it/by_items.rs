//! A `.sym` text over `LARGE_TEXT` is parsed and summarised item by item, each item's tree let go
//! once summarised (#20: the whole tree is about 27 times the text). Its diagnostics must be the
//! whole parse's: every `.sym` file of the repository and of the shared corpus (the malformed
//! fixtures among them, whose errors make pieces parse together or to the end) is analysed both
//! ways, and so is each joined with a broken copy of the others.

use std::path::{Path, PathBuf};

use symbiont_analysis::{AnalysisHost, Diagnostic};

/// Every file's diagnostics in one workspace of `files`, parsed whole or item by item.
fn diagnostics(files: &[(PathBuf, String)], by_items: bool) -> Vec<(PathBuf, Vec<Diagnostic>)> {
    let mut host = AnalysisHost::new();
    host.parse_by_items_above(if by_items { 0 } else { usize::MAX });
    for (path, text) in files {
        host.set_file(path.clone(), text.as_str());
    }
    host.all_diagnostics()
}

#[test]
fn diagnostics_of_texts_parsed_item_by_item_are_the_whole_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut paths = Vec::new();
    for dir in [root.join("examples"), root.join("tests"), root.join("../shared/corpus/upstream-agents")] {
        crate::incremental::sources(&dir, &mut paths);
    }
    assert!(paths.len() > 50, "{paths:?}");
    let mut files: Vec<(PathBuf, String)> =
        paths.iter().filter_map(|p| Some((p.strip_prefix(&root).unwrap_or(p).to_path_buf(), std::fs::read_to_string(p).ok()?))).collect();
    // Everything in one file too, with a line of each cut short halfway (unclosed braces, names
    // cut, strings open): errors that swallow the items after them, or not.
    let mut joined = String::new();
    for (_, text) in &files {
        joined.push_str(text);
        let cut = text.len() / 2;
        let cut = (0..=cut).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        joined.push_str(&text[..cut]);
        joined.push('\n');
    }
    files.push((PathBuf::from("joined.sym"), joined));
    let (whole, by_items) = (diagnostics(&files, false), diagnostics(&files, true));
    assert_eq!(whole.len(), by_items.len());
    let mut errors = 0;
    for ((path, whole), (_, by_items)) in whole.iter().zip(&by_items) {
        assert_eq!(by_items, whole, "{}", path.display());
        errors += whole.iter().filter(|d| d.rule.code == "SYM0001").count();
    }
    assert!(errors > 50, "the fixtures should have syntax errors to recover from: {errors}");
}
