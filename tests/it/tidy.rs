//! The house rules, held by tests rather than by care: which crate of ours may depend on which
//! (read from each `Cargo.toml`), and `docs/architecture.md` kept true to the code (every source
//! file named in it, every Rust identifier it quotes existing).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use symbiont_tests::repo_root;

/// The layering, stated once: each crate's directory, package and the crates of ours it may
/// depend on. Only `[dependencies]` and `[build-dependencies]` (also per target) count: they are
/// what ships. `[dev-dependencies]` do not: a crate's tests may drive it through any crate (the
/// syntax tests use `symbiont-tests`, the runtime's parse `.sym` fixtures with `symbiont-syntax`).
const ALLOWED: &[(&str, &str, &[&str])] = &[
    ("syntax", "symbiont-syntax", &[]),
    ("policy", "symbiont-policy", &["symbiont-syntax"]),
    ("audit", "symbiont-audit", &[]),
    ("code", "symbiont-code", &[]),
    ("sdk/packages", "symbiont-sdk-packages", &[]),
    ("sdk/rust", "symbiont-sdk", &[]),
    ("codegen", "symbiont-codegen", &["symbiont-syntax", "symbiont-policy", "symbiont-code", "symbiont-sdk-packages"]),
    ("analysis", "symbiont-analysis", &["symbiont-syntax", "symbiont-policy", "symbiont-code", "symbiont-codegen"]),
    // Neither `analysis` nor `code`: what a run needs from the `.sym` files is composed by the CLI.
    ("runtime", "symbiont-runtime", &["symbiont-policy", "symbiont-audit", "symbiont-sdk-packages"]),
    // Neither `runtime` nor `cli`: the editor's "Run agent" hands off to the `symbiont` binary.
    ("lsp", "symbiont-lsp", &["symbiont-syntax", "symbiont-analysis", "symbiont-code", "symbiont-policy"]),
    // The command line composes everything.
    (
        "cli",
        "symbiont-cli",
        &[
            "symbiont-syntax",
            "symbiont-analysis",
            "symbiont-policy",
            "symbiont-audit",
            "symbiont-code",
            "symbiont-codegen",
            "symbiont-runtime",
            "symbiont-sdk-packages",
        ],
    ),
];

/// Workspace members that are not layers: they use the crates above from outside.
const NOT_LAYERS: &[&str] = &["tests", "bench", "editors/tree-sitter-symbiont/bindings/rust"];

/// The shipped dependencies on crates of ours that `manifest` (the `Cargo.toml` of the crate in
/// `dir`) has and the table does not allow, each as a message saying what to change.
fn forbidden_dependencies(dir: &str, manifest: &str, ours: &BTreeSet<String>) -> Result<Vec<String>, String> {
    let Some(&(_, package, allowed)) = ALLOWED.iter().find(|(d, ..)| *d == dir) else {
        return Err(format!("{dir} is not in tests/it/tidy.rs's ALLOWED table: add it with the crates of ours it may use"));
    };
    let manifest: toml::Table = manifest.parse().map_err(|e| format!("{dir}/Cargo.toml: {e}"))?;
    let mut tables = vec![manifest.get("dependencies"), manifest.get("build-dependencies")];
    for target in manifest.get("target").and_then(toml::Value::as_table).into_iter().flat_map(|t| t.values()) {
        tables.extend([target.get("dependencies"), target.get("build-dependencies")]);
    }
    let mut forbidden = Vec::new();
    for (key, spec) in tables.into_iter().flatten().filter_map(toml::Value::as_table).flatten() {
        let name = spec.get("package").and_then(toml::Value::as_str).unwrap_or(key);
        if ours.contains(name) && !allowed.contains(&name) {
            forbidden.push(format!(
                "{dir}/Cargo.toml: `{package}` may not depend on `{name}` (it may use: {}). Move what it needs \
                 into a crate both may use, or, if the layering itself should change, change the ALLOWED table \
                 in tests/it/tidy.rs and docs/architecture.md together",
                if allowed.is_empty() { "none of ours".to_string() } else { allowed.join(", ") }
            ));
        }
    }
    Ok(forbidden)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn members() -> Vec<String> {
    let workspace: toml::Table = read(&repo_root().join("Cargo.toml")).parse().expect("Cargo.toml parses");
    let members = workspace["workspace"]["members"].as_array().expect("workspace.members is a list");
    members.iter().map(|m| m.as_str().expect("a member is a path").to_string()).collect()
}

fn package_name(dir: &str) -> String {
    let manifest: toml::Table = read(&repo_root().join(dir).join("Cargo.toml")).parse().expect("a member's Cargo.toml parses");
    manifest["package"]["name"].as_str().expect("package.name").to_string()
}

/// Every workspace member's package name: what counts as "a crate of ours".
fn our_packages() -> BTreeSet<String> {
    members().iter().map(|m| package_name(m)).collect()
}

#[test]
fn every_member_is_in_the_allowed_table() {
    let layers: BTreeSet<String> = members().into_iter().filter(|m| !NOT_LAYERS.contains(&m.as_str())).collect();
    let table: BTreeSet<String> = ALLOWED.iter().map(|(dir, ..)| dir.to_string()).collect();
    assert_eq!(layers, table, "the workspace's members and tests/it/tidy.rs's ALLOWED table differ: add the new crate to the table, with the crates of ours it may use");
    for (dir, package, _) in ALLOWED {
        assert_eq!(&package_name(dir), package, "{dir}/Cargo.toml's package name: correct the ALLOWED table in tests/it/tidy.rs");
    }
}

#[test]
fn crates_depend_only_on_the_crates_they_may() {
    let ours = our_packages();
    let forbidden: Vec<String> = ALLOWED
        .iter()
        .flat_map(|(dir, ..)| {
            forbidden_dependencies(dir, &read(&repo_root().join(dir).join("Cargo.toml")), &ours).unwrap_or_else(|e| vec![e])
        })
        .collect();
    assert!(forbidden.is_empty(), "{}", forbidden.join("\n"));
}

/// The test of the test: a forbidden dependency added to a real manifest is found and named.
#[test]
fn a_forbidden_dependency_is_reported() {
    let ours = our_packages();
    let manifest = read(&repo_root().join("syntax/Cargo.toml"));
    assert_eq!(forbidden_dependencies("syntax", &manifest, &ours), Ok(vec![]));
    let broken = manifest.replacen("[dependencies]\n", "[dependencies]\nsymbiont-analysis.workspace = true\n", 1);
    assert_ne!(broken, manifest, "syntax/Cargo.toml has a [dependencies] table");
    let found = forbidden_dependencies("syntax", &broken, &ours).expect("the manifest parses");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("syntax/Cargo.toml: `symbiont-syntax` may not depend on `symbiont-analysis` (it may use: none of ours)"),
        "{}",
        found[0]
    );
    // A renamed dependency is still the crate it names, and a target-specific one still ships.
    let renamed = format!(
        "{manifest}\n[target.'cfg(unix)'.dependencies]\nanalysis = {{ package = \"symbiont-analysis\", path = \"../analysis\" }}\n"
    );
    assert_eq!(forbidden_dependencies("syntax", &renamed, &ours).expect("the manifest parses").len(), 1);
    // A dev-dependency does not count.
    let dev = format!("{manifest}\n[dev-dependencies.symbiont-analysis]\nworkspace = true\n");
    assert_eq!(forbidden_dependencies("syntax", &dev, &ours), Ok(vec![]));
    assert!(forbidden_dependencies("nowhere", &manifest, &ours).unwrap_err().contains("not in tests/it/tidy.rs's ALLOWED table"));
}

fn architecture() -> String {
    read(&repo_root().join("docs/architecture.md"))
}

/// The `.rs` files under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if path.is_dir() && !name.starts_with('.') && !matches!(name, "target" | "node_modules") {
                pending.push(path);
            } else if name.ends_with(".rs") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Whether `text` names `name`: not as the tail of a longer name (`files.rs` is not in `profiles.rs`).
fn names(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(at, _)| !text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
}

/// The part of the document about the crate in `dir`: from its `### \`dir/\`` heading to the next heading.
fn section<'a>(doc: &'a str, dir: &str) -> &'a str {
    let heading = format!("\n### `{dir}/`");
    let Some(start) = doc.find(&heading) else { return "" };
    let rest = &doc[start + heading.len()..];
    &rest[..rest.find("\n#").unwrap_or(rest.len())]
}

/// How a source file may be named: its path under `src/` (a `mod.rs` by its directory), or, in
/// its crate's section, its file name when no other file of the crate has it; or its path from
/// the repository's root anywhere. The crate root (`lib.rs`, `main.rs`) is named by the section.
fn is_named(doc: &str, dir: &str, relative: &str, unique_name: bool) -> bool {
    let own = section(doc, dir);
    let relative = relative.strip_suffix("mod.rs").unwrap_or(relative);
    let file_name = relative.trim_end_matches('/').rsplit('/').next().unwrap_or(relative);
    names(doc, &format!("{dir}/src/{relative}"))
        || names(own, relative)
        || (unique_name && relative.ends_with(".rs") && names(own, file_name))
        || (relative.ends_with('/') && unique_name && names(own, &format!("`{file_name}/`")))
}

#[test]
fn every_source_file_is_named_in_the_architecture() {
    let doc = architecture();
    let mut missing = Vec::new();
    for (dir, ..) in ALLOWED {
        let src = repo_root().join(dir).join("src");
        let files: Vec<String> =
            rust_files(&src).iter().map(|f| f.strip_prefix(&src).expect("under src").to_string_lossy().into_owned()).collect();
        // A file's own name; a `mod.rs`'s is its directory's.
        let file_name = |f: &str| f.strip_suffix("/mod.rs").unwrap_or(f).rsplit('/').next().unwrap_or(f).to_string();
        for relative in &files {
            if matches!(relative.as_str(), "lib.rs" | "main.rs") {
                continue;
            }
            let unique = files.iter().filter(|f| file_name(f) == file_name(relative)).count() == 1;
            if !section(&doc, dir).is_empty() && !is_named(&doc, dir, relative, unique) {
                missing.push(format!("{dir}/src/{relative}"));
            }
            if section(&doc, dir).is_empty() {
                missing.push(format!("{dir}/ (the whole crate: no \"### `{dir}/`\" section)"));
                break;
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/architecture.md does not name these source files: add each to its crate's section of the code map \
         (by its path under src/, or its file name when that is unique in the crate) with what it is for:\n  {}",
        missing.join("\n  ")
    );
}

/// Every `word` of the Rust sources (outside `target/`), once.
fn code_words() -> (BTreeSet<String>, String) {
    let mut words = BTreeSet::new();
    let mut all = String::new();
    for file in rust_files(&repo_root()) {
        let text = read(&file);
        words.extend(text.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).map(str::to_string));
        all.push_str(&text);
        all.push('\n');
    }
    (words, all)
}

fn is_ident(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_') && s.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// The identifiers a code span of the document quotes as Rust: each segment of a `path::to::item`,
/// a `function(…)`'s name, and a lone `CamelCase` type (two humps at least: `Parse` may be prose).
/// A `Type::method` is also a claim that the method is defined: it is returned as `fn method`.
fn quoted_identifiers(span: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = span;
    while !rest.is_empty() {
        let start = rest.find(|c: char| c.is_alphabetic() || c == '_').unwrap_or(rest.len());
        let before = &rest[..start];
        rest = &rest[start..];
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
        let (word, after) = rest.split_at(end);
        rest = after;
        // Paths outside Rust: `s3://…`, `--flags`, `$0`, file names.
        let file_or_flag = before.ends_with(['-', '/', '$', '@']) || after.starts_with(['.', '/', '-']);
        if file_or_flag || (before.ends_with('.') && !after.starts_with('(')) {
            continue;
        }
        let segments: Vec<&str> = word.split("::").collect();
        if segments.len() > 1 && segments.iter().all(|s| is_ident(s)) {
            found.extend(segments.iter().map(|s| s.to_string()));
            let (owner, item) = (segments[segments.len() - 2], segments[segments.len() - 1]);
            if owner.starts_with(char::is_uppercase) && item.starts_with(char::is_lowercase) {
                found.push(format!("fn {item}"));
            }
        } else if segments.len() == 1 && is_ident(word) {
            let camel = word.starts_with(char::is_uppercase)
                && word.chars().any(char::is_lowercase)
                && word.chars().skip(1).any(char::is_uppercase);
            if after.starts_with('(') && word.starts_with(char::is_lowercase) {
                found.push(format!("fn {word}"));
            } else if camel && span.trim() == word {
                found.push(word.to_string());
            }
        }
    }
    found
}

#[test]
fn every_identifier_the_architecture_quotes_exists() {
    let doc = architecture();
    let (words, code) = code_words();
    let is_ident_char = |c: char| c.is_alphanumeric() || c == '_';
    let defines = |function: &str| {
        let definition = format!("fn {function}");
        code.match_indices(&definition).any(|(at, _)| !code[at + definition.len()..].starts_with(is_ident_char))
    };
    let mut missing = BTreeSet::new();
    for (i, span) in doc.split('`').enumerate() {
        // Attributes (`#[repr(u16)]`) are not calls.
        if i % 2 == 0 || span.contains('\n') || span.starts_with("#[") {
            continue;
        }
        for identifier in quoted_identifiers(span) {
            let exists = match identifier.strip_prefix("fn ") {
                Some(function) => defines(function),
                None => words.contains(&identifier),
            };
            if !exists {
                missing.insert(format!("`{span}`: {identifier}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/architecture.md quotes Rust identifiers that no .rs file has (renamed or removed?): \
         correct the document to the code's names:\n  {}",
        missing.into_iter().collect::<Vec<_>>().join("\n  ")
    );
}

#[test]
fn quoted_identifiers_are_read_as_rust() {
    let cases: &[(&str, &[&str])] = &[
        ("Engine::compile(effective).decide(op, args, env)", &["Engine", "compile", "fn compile", "fn decide"]),
        ("symbiont_syntax::parse(&str) -> Parse", &["symbiont_syntax", "parse"]),
        ("AnalysisHost", &["AnalysisHost"]),
        ("Parse", &[]),
        ("symbiont run --tier 3", &[]),
        ("s3://bucket/prefix", &[]),
        ("lexer.rs", &[]),
        ("diagnostics(path)", &["fn diagnostics"]),
    ];
    for (span, expected) in cases {
        assert_eq!(quoted_identifiers(span), *expected, "{span}");
    }
}

/// `scripts/import-circles`, which the closing note quotes, on a workspace made to have one
/// circle (`a` and `b`, through a `use` and a path in an expression) and two imports that are
/// not one (`lib.rs` re-exporting `c`'s item, which `c` reaches through `crate::`; a test module's
/// `super::*`; `pub(crate)`/`pub(super)`, visibilities).
#[test]
fn the_import_circles_script_finds_circles() {
    let root = tempfile::tempdir().expect("a temporary directory");
    for crate_dir in ["syntax", "analysis", "policy", "audit", "code", "codegen", "runtime", "cli", "lsp", "sdk/packages", "sdk/rust"] {
        fs::create_dir_all(root.path().join(crate_dir).join("src")).expect("src/");
    }
    let src = root.path().join("policy/src");
    for (file, text) in [
        ("lib.rs", "mod a;\nmod b;\nmod c;\npub use crate::c::Thing;\nfn root() {\n    crate::b::h()\n}\n"),
        ("a.rs", "use crate::{b::{self, Other}, Thing};\npub struct One;\n"),
        ("b.rs", "pub struct Other;\nfn f() -> super::a::One { crate::a::One }\npub(crate) fn h() {}\n"),
        ("c.rs", "pub struct Thing;\nfn g() -> crate::Thing { Thing }\n#[cfg(test)]\nmod tests {\n    use super::*;\n    pub(super) fn t() {}\n}\n"),
    ] {
        fs::write(src.join(file), text).expect("a source file");
    }
    let output = std::process::Command::new(repo_root().join("scripts/import-circles"))
        .args(["--edges", &root.path().to_string_lossy()])
        .output()
        .expect("scripts/import-circles runs (python3)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "policy: a.rs <-> b.rs\n    a.rs:1 -> b.rs\n    b.rs:2 -> a.rs\n1 import circles\n"
    );
}
