//! The tree-sitter grammar (`editors/tree-sitter-symbiont`) against the toolchain's own parser:
//! every file `symbiont_syntax::parse` accepts (the repository's `.sym`/`.symbi` files, the shared
//! corpus and the ```sym examples of the docs) parses with no ERROR or MISSING node, the malformed
//! fixtures do not, and with the pinned tree-sitter CLI the grammar's own `tree-sitter test`
//! passes and the committed `src/` is what `tree-sitter generate` makes of `grammar.js`.

use std::path::{Path, PathBuf};
use std::process::Command;

use symbiont_tests::{corpus_files, repo_root};

const GRAMMAR_DIR: &str = "editors/tree-sitter-symbiont";

/// A text to parse and where it comes from, for messages: `path`, and the line of the file its
/// first line is (1 for whole files, later for examples in documents).
struct Source {
    path: String,
    first_line: usize,
    text: String,
}

fn parser() -> tree_sitter::Parser {
    let mut parser = tree_sitter::Parser::new();
    parser.set_language(&tree_sitter_symbiont::LANGUAGE.into()).expect("the grammar's ABI is one this tree-sitter loads");
    parser
}

/// The first ERROR or MISSING node in document order, as `LINE:COLUMN: what`, lines counted from
/// `first_line`.
fn first_syntax_error(parser: &mut tree_sitter::Parser, source: &Source) -> Option<String> {
    let tree = parser.parse(&source.text, None).expect("tree-sitter returns a tree without a timeout");
    let mut node = tree.root_node();
    if !node.has_error() {
        return None;
    }
    // Descend into the first child that holds an error until the error itself.
    'descend: while !node.is_error() && !node.is_missing() {
        let mut cursor = node.walk();
        for child in node.children(&mut cursor) {
            if child.has_error() {
                node = child;
                continue 'descend;
            }
        }
        break;
    }
    let at = node.start_position();
    let what = if node.is_missing() {
        format!("missing `{}`", node.kind())
    } else {
        let text = &source.text[node.byte_range()];
        let first_line = text.lines().next().unwrap_or_default();
        format!("unexpected `{}`", first_line.chars().take(40).collect::<String>())
    };
    Some(format!("{}:{}:{}: {what}", source.path, source.first_line + at.row, at.column + 1))
}

/// The repository's `.sym`/`.symbi` files, tracked or new (not ignored), as `git ls-files` lists them.
fn repository_files() -> Vec<Source> {
    let root = repo_root();
    let output = Command::new("git")
        .args(["ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "*.sym", "*.symbi"])
        .current_dir(&root)
        .output()
        .expect("git runs (the test lists the repository's files with git ls-files)");
    assert!(output.status.success(), "git ls-files failed: {}", String::from_utf8_lossy(&output.stderr));
    let listing = String::from_utf8(output.stdout).expect("UTF-8 paths");
    let mut files: Vec<Source> = listing
        .split('\0')
        .filter(|path| !path.is_empty() && root.join(path).is_file())
        // A file that is not UTF-8 (SYM0002's fixture) is one the toolchain does not parse either.
        .filter_map(|path| {
            let bytes = std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
            Some(Source { path: path.to_string(), first_line: 1, text: String::from_utf8(bytes).ok()? })
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// The ```sym examples of the README and of every document under docs/.
fn doc_examples() -> Vec<Source> {
    let root = repo_root();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ is readable")
        .map(|entry| entry.expect("a readable docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.push(root.join("README.md"));
    docs.sort();
    docs.iter()
        .flat_map(|doc| {
            let name = doc.strip_prefix(&root).expect("inside the repository").display().to_string();
            crate::dsl_reference::blocks(&read(doc), "sym").into_iter().map(move |block| Source {
                path: name.clone(),
                first_line: block.line,
                text: block.text,
            })
        })
        .collect()
}

fn corpus() -> Vec<Source> {
    corpus_files().into_iter().map(|(path, text)| Source { path: path.display().to_string(), first_line: 1, text }).collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn every_file_the_toolchain_parses_has_no_error_node() {
    let mut parser = parser();
    let (mut checked, mut rejected, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    for source in repository_files().into_iter().chain(corpus()).chain(doc_examples()) {
        // Deliberately broken fixtures (tests/it/malformed/, a template, a diagnostic's example)
        // are the ones the toolchain's parser rejects too.
        if !symbiont_syntax::parse(&source.text).errors().is_empty() {
            rejected.push(format!("{}:{}", source.path, source.first_line));
            continue;
        }
        if let Some(error) = first_syntax_error(&mut parser, &source) {
            failures.push(error);
        }
        // The same file as `symbiont fmt` lays it out: other line breaks, same meaning.
        let formatted = symbiont_syntax::format::format(&source.text).expect("a file without syntax errors formats");
        let formatted = Source { path: format!("{} (formatted)", source.path), first_line: 1, text: formatted };
        if let Some(error) = first_syntax_error(&mut parser, &formatted) {
            failures.push(error);
        }
        checked.push(source.path);
    }
    assert!(failures.is_empty(), "tree-sitter finds syntax errors the toolchain's parser does not:\n{}", failures.join("\n"));
    // Not vacuous: the examples, the valid fixtures and the whole corpus are among the files checked.
    for expected in
        ["examples/agents/reviewer.sym", "examples/agents/incidents.symbi", "tests/it/valid/dsl_forms.sym", "docs/dsl-reference.md"]
    {
        assert!(checked.iter().any(|path| path == expected), "{expected} was not checked (rejected: {rejected:?})");
    }
    let corpus_checked = checked.iter().filter(|path| path.contains("upstream-agents")).count();
    assert_eq!(corpus_checked, corpus_files().len(), "every corpus file is checked (rejected: {rejected:?})");
}

#[test]
fn the_malformed_fixtures_have_error_nodes() {
    let mut parser = parser();
    let dir = repo_root().join("tests/it/malformed");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(&dir).expect("tests/it/malformed").map(|e| e.expect("an entry").path()).collect();
    fixtures.retain(|path| path.extension().is_some_and(|e| e == "sym"));
    assert!(fixtures.len() >= 5, "expected the malformed fixtures in {}", dir.display());
    for path in fixtures {
        let source = Source { path: path.display().to_string(), first_line: 1, text: read(&path) };
        assert!(
            first_syntax_error(&mut parser, &source).is_some(),
            "{}: tree-sitter finds no syntax error in a malformed fixture",
            source.path
        );
    }
}

/// The tree-sitter CLI of the version `src/` was generated with (`tree-sitter-cli-version`, which
/// scripts/test installs): `SYMBIONT_TREE_SITTER`, else `tree-sitter` on PATH, else in
/// ~/.cargo/bin. `None` (the tests skip) only outside CI; in CI a missing CLI fails.
fn tree_sitter_cli() -> Option<PathBuf> {
    let pinned = read(&repo_root().join(GRAMMAR_DIR).join("tree-sitter-cli-version")).trim().to_string();
    let home_bin = std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo/bin/tree-sitter"));
    let candidates =
        std::env::var_os("SYMBIONT_TREE_SITTER").map(PathBuf::from).into_iter().chain([PathBuf::from("tree-sitter")]).chain(home_bin);
    for cli in candidates {
        let Ok(output) = Command::new(&cli).arg("--version").output() else { continue };
        let version = String::from_utf8_lossy(&output.stdout);
        assert!(
            version.split_whitespace().nth(1) == Some(pinned.as_str()),
            "{} is `{}`, but the grammar is generated with tree-sitter-cli {pinned}: cargo install --locked tree-sitter-cli@{pinned} (or set SYMBIONT_TREE_SITTER)",
            cli.display(),
            version.trim()
        );
        return Some(cli);
    }
    assert!(std::env::var_os("CI").is_none(), "CI is set but the tree-sitter CLI {pinned} is not installed (scripts/test installs it)");
    eprintln!("tree-sitter CLI {pinned} not found: skipping (cargo install --locked tree-sitter-cli@{pinned})");
    None
}

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?} does not run: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{command:?} failed:\n{text}");
    text
}

#[test]
fn tree_sitter_test_passes() {
    let Some(cli) = tree_sitter_cli() else { return };
    let output = run(Command::new(cli).arg("test").current_dir(repo_root().join(GRAMMAR_DIR)));
    // The corpus and the highlight assertions both ran.
    assert!(output.contains("syntax highlighting"), "{output}");
    assert!(!output.contains("Failure"), "{output}");
}

#[test]
fn the_committed_parser_is_generated_from_grammar_js() {
    let Some(cli) = tree_sitter_cli() else { return };
    let grammar = repo_root().join(GRAMMAR_DIR);
    let scratch = tempfile::tempdir().expect("a temporary directory");
    for file in ["grammar.js", "tree-sitter.json"] {
        std::fs::copy(grammar.join(file), scratch.path().join(file)).expect("copy the grammar");
    }
    // QuickJS, built into the CLI, evaluates grammar.js: no Node.js needed.
    run(Command::new(cli).args(["generate", "--js-runtime", "native"]).current_dir(scratch.path()));
    for file in ["parser.c", "grammar.json", "node-types.json", "tree_sitter/parser.h", "tree_sitter/array.h", "tree_sitter/alloc.h"] {
        let generated = read(&scratch.path().join("src").join(file));
        let committed = read(&grammar.join("src").join(file));
        assert!(
            generated == committed,
            "{GRAMMAR_DIR}/src/{file} is not what grammar.js generates: run `tree-sitter generate` in {GRAMMAR_DIR}"
        );
    }
}

/// The top-level names of Helix's highlight scopes (its book, "Themes"): Helix colours a capture
/// by its longest prefix that a theme defines, so a capture whose first part is not one of these
/// shows uncoloured.
const HELIX_SCOPE_ROOTS: &[&str] = &[
    "attribute",
    "type",
    "constructor",
    "constant",
    "string",
    "comment",
    "variable",
    "label",
    "punctuation",
    "keyword",
    "operator",
    "function",
    "tag",
    "namespace",
    "special",
];

/// The text of the section that starts with the heading `heading`, up to the next `## ` heading.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("no `{heading}` section"));
    let rest = &doc[start + 1..];
    let end = rest[heading.len()..].find("\n## ").map_or(rest.len(), |i| i + heading.len() + 1);
    &rest[..end]
}

fn capture_names(query: &tree_sitter::Query) -> impl Iterator<Item = &str> {
    query.capture_names().iter().copied().filter(|name| !name.starts_with('_'))
}

#[test]
fn the_helix_setup_in_the_docs_installs_queries_helix_reads() {
    let doc = read(&repo_root().join("docs/editors.md"));
    let helix = section(&doc, "## Helix");

    let configs = crate::dsl_reference::blocks(helix, "toml");
    assert_eq!(configs.len(), 1, "docs/editors.md's Helix section has one languages.toml");
    let config: toml::Table = configs[0].text.parse().unwrap_or_else(|e| panic!("docs/editors.md:{}: {e}", configs[0].line));
    let languages = config["language"].as_array().expect("[[language]] entries");
    let symbiont = languages.iter().find(|l| l["name"].as_str() == Some("symbiont")).expect("a symbiont [[language]]");
    assert_eq!(symbiont["file-types"], toml::Value::from(vec!["sym", "symbi"]));
    assert_eq!(symbiont["language-servers"], toml::Value::from(vec!["symbiont-lsp"]));
    assert_eq!(symbiont["comment-token"].as_str(), Some("//"));
    let grammar = &config["grammar"].as_array().expect("a [[grammar]] entry")[0];
    assert_eq!(grammar["name"].as_str(), Some("symbiont"));
    assert_eq!(grammar["source"]["subpath"].as_str(), Some(GRAMMAR_DIR));
    let only = config["use-grammars"]["only"].as_array().expect("use-grammars.only");
    assert!(only.iter().any(|g| g.as_str() == Some("symbiont")), "use-grammars leaves out symbiont");

    // The shell lines that install the queries, run as written, into a scratch home.
    let scripts = crate::dsl_reference::blocks(helix, "sh");
    assert_eq!(scripts.len(), 1, "docs/editors.md's Helix section has one shell block");
    let home = tempfile::tempdir().expect("a temporary directory");
    run(Command::new("sh").arg("-ec").arg(&scripts[0].text).env("HOME", home.path()).current_dir(repo_root()));
    let installed = home.path().join(".config/helix/runtime/queries/symbiont");
    let language = tree_sitter_symbiont::LANGUAGE.into();
    let query = |name: &str| {
        let path = installed.join(format!("{name}.scm"));
        tree_sitter::Query::new(&language, &read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let highlights = query("highlights");
    let uncoloured: Vec<&str> =
        capture_names(&highlights).filter(|name| !HELIX_SCOPE_ROOTS.contains(&name.split('.').next().unwrap_or_default())).collect();
    assert!(uncoloured.is_empty(), "captures Helix has no scope for after the docs' renaming: {uncoloured:?}");
    let indents = query("indents");
    assert_eq!(capture_names(&indents).collect::<Vec<_>>(), ["indent", "outdent"]);
    let locals = query("locals");
    assert!(capture_names(&locals).all(|name| name.starts_with("local.")), "{:?}", locals.capture_names());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, failure_persistence: None, rng_seed: crate::properties::seed(), ..Default::default() })]

    /// Corpus files changed at random (deletions, insertions of syntax fragments, duplications):
    /// whichever of them the toolchain's parser still accepts, tree-sitter parses without error.
    #[test]
    fn mutated_corpus_files_the_toolchain_accepts_parse_cleanly(
        file in proptest::prelude::any::<proptest::sample::Index>(),
        mutations in proptest::collection::vec(crate::properties::mutation(), 1..6),
    ) {
        let files = corpus_files();
        let (path, text) = &files[file.index(files.len())];
        let mut text = text.clone();
        for m in &mutations {
            crate::properties::apply(&mut text, m);
        }
        // A NUL byte is text to the toolchain's lexer but the end of input to tree-sitter's.
        if !text.contains('\0') && symbiont_syntax::parse(&text).errors().is_empty() {
            let source = Source { path: format!("{} mutated by {mutations:?}", path.display()), first_line: 1, text };
            let error = first_syntax_error(&mut parser(), &source);
            proptest::prop_assert!(error.is_none(), "{}\n--- text:\n{}", error.unwrap_or_default(), source.text);
        }
    }
}
