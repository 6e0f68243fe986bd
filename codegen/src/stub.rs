//! A capability's function inserted into an agent's existing code, through its tree-sitter tree:
//! after the imports, before the code that follows them (with the comments, decorators and
//! attributes that belong to that code), in the file's indentation, with the imports the function
//! needs merged after the file's own. A function of the same name already there means nothing to
//! do: a second run changes nothing.

use symbiont_code::{fix, lang::Family, scan, Lang};
use tree_sitter::Node;

use crate::{
    sym_edit::{line_end, line_start},
    Refusal,
};

/// `text` with `function` (a rendered `LANG/function.EXT`) inserted, or `None` when the file
/// defines a function of that name already. The result parses without an error, else nothing.
pub(crate) fn insert_function(lang: Lang, path: &str, text: &str, function: &str) -> Result<Option<String>, Refusal> {
    let tree = parse(lang, text).ok_or_else(|| Refusal::Unparsable { path: path.to_string() })?;
    let stub_tree =
        parse(lang, function).ok_or_else(|| Refusal::Internal(format!("the generated function does not parse:\n{function}")))?;
    let stub_root = stub_tree.root_node();
    let name = top_level(stub_root)
        .find_map(|n| declared_name(n, function))
        .ok_or_else(|| Refusal::Internal(format!("the generated function declares no name:\n{function}")))?;
    if top_level(tree.root_node()).any(|n| declared_name(n, text).as_deref() == Some(name.as_str())) {
        return Ok(None);
    }
    // Blank lines around a top-level function: two in Python (PEP 8, ruff format), else one.
    let blank = if lang.family() == Family::Python { "\n\n" } else { "\n" };
    let function = reindent(function.trim_end(), &indent_unit(function), &indent_unit(text));
    let layout = Layout::of(lang, tree.root_node(), text);
    let with_function = match layout.code_start {
        Some(at) => format!("{}{}{function}\n{blank}{}", &text[..at], top_up(&text[..at], blank.len()), &text[at..]),
        None if text.trim().is_empty() => format!("{function}\n"),
        None => format!("{}\n{blank}{function}\n", text.trim_end_matches('\n')),
    };
    let mut edited = with_function;
    for import in needed_imports(lang, &edited, &stub_tree, function.as_str()) {
        edited = add_import(lang, &edited, &import, blank)?;
    }
    match parse(lang, &edited) {
        Some(_) => Ok(Some(edited)),
        None => Err(Refusal::Internal(format!("{path} would not parse with `{name}` added:\n{edited}"))),
    }
}

/// The tree of `text` when it parses without an error.
fn parse(lang: Lang, text: &str) -> Option<tree_sitter::Tree> {
    scan::parse(lang, text).filter(|t| !t.root_node().has_error())
}

fn top_level(root: Node<'_>) -> impl Iterator<Item = Node<'_>> {
    (0..root.named_child_count()).filter_map(move |i| root.named_child(i as u32))
}

/// The name a top-level declaration binds: a function, class or variable, through `export` and
/// decorators.
fn declared_name(node: Node<'_>, text: &str) -> Option<String> {
    let inner = match node.kind() {
        "export_statement" => node.child_by_field_name("declaration")?,
        "decorated_definition" => node.child_by_field_name("definition")?,
        _ => node,
    };
    let named = match inner.kind() {
        "lexical_declaration" | "variable_declaration" => inner.named_child(0)?,
        _ => inner,
    };
    Some(text[named.child_by_field_name("name")?.byte_range()].to_string())
}

/// Where the file's parts are: its header (shebang, docstring, directives, imports) ends at
/// `imports_end`, and the code that gets the function in front of it starts at `code_start`.
struct Layout {
    /// The end of the line of the last import, if there is one.
    imports_end: Option<usize>,
    /// Where a first import goes: the start of the line after the header (shebang, docstring,
    /// directives, comments documenting the file), or the end of a file without a final newline.
    header_end: (usize, bool),
    code_start: Option<usize>,
}

impl Layout {
    fn of(lang: Lang, root: Node<'_>, text: &str) -> Layout {
        let (header_end, no_newline) = fix::import_offset(lang, text);
        let nodes: Vec<Node<'_>> = top_level(root).filter(|n| n.start_byte() >= header_end).collect();
        let mut imports_end = None;
        // Rust's inner doc comments (`//!`) document the file: they stay above everything.
        let mut floor = header_end;
        let mut first_code = None;
        for (i, node) in nodes.iter().enumerate() {
            if is_import(lang, *node, text) {
                imports_end = Some(line_end(text, node.end_byte()));
                floor = floor.max(node.end_byte());
            } else if is_inner_doc(*node, text) || (imports_end.is_none() && is_prologue(lang, *node)) {
                // A docstring or directive (`"use strict"`) after a leading comment is still first.
                floor = floor.max(node.end_byte());
            } else if !is_comment(*node) {
                first_code = Some(i);
                break;
            }
        }
        let code_start = first_code.map(|mut i| {
            // The comments, attributes and decorators right above the code belong to it.
            while i > 0 {
                let (above, node) = (nodes[i - 1], nodes[i]);
                let attached = (is_comment(above) || above.kind() == "attribute_item")
                    && above.end_position().row + 1 >= node.start_position().row
                    && above.start_byte() >= floor;
                if !attached {
                    break;
                }
                i -= 1;
            }
            line_start(text, nodes[i].start_byte())
        });
        let header_end = if floor == header_end {
            (header_end, no_newline)
        } else {
            match line_end(text, floor) {
                end if end == text.len() => (end, true),
                end => (end + 1, false),
            }
        };
        Layout { imports_end, header_end, code_start }
    }
}

fn is_comment(node: Node<'_>) -> bool {
    matches!(node.kind(), "comment" | "line_comment" | "block_comment")
}

fn is_inner_doc(node: Node<'_>, text: &str) -> bool {
    is_comment(node) && (text[node.byte_range()].starts_with("//!") || text[node.byte_range()].starts_with("/*!"))
}

/// A statement that is a string alone: Python's docstring, JavaScript's directive.
fn is_prologue(lang: Lang, node: Node<'_>) -> bool {
    lang.family() != Family::Rust
        && node.kind() == "expression_statement"
        && node.named_child_count() == 1
        && node.named_child(0).is_some_and(|c| c.kind() == "string")
}

fn is_import(lang: Lang, node: Node<'_>, text: &str) -> bool {
    match (lang.family(), node.kind()) {
        (Family::Python, "import_statement" | "import_from_statement" | "future_import_statement") => true,
        (Family::Js, "import_statement") => true,
        // `const x = require("x")`, CommonJS's import.
        (Family::Js, "lexical_declaration" | "variable_declaration") => {
            let value = node.named_child(0).and_then(|d| d.child_by_field_name("value"));
            value.is_some_and(|v| v.kind() == "call_expression" && text[v.byte_range()].starts_with("require("))
        }
        (Family::Rust, "use_declaration" | "extern_crate_declaration" | "inner_attribute_item") => true,
        (Family::Rust, "mod_item") => node.child_by_field_name("body").is_none(),
        _ => false,
    }
}

/// The import lines the function needs and `text` lacks: the SDK's, and for Python `Any` when the
/// function's signature uses it.
fn needed_imports(lang: Lang, text: &str, stub: &tree_sitter::Tree, stub_text: &str) -> Vec<String> {
    let mut imports: Vec<String> = Vec::new();
    if lang.family() == Family::Python && uses_identifier(stub.root_node(), stub_text, "Any") && !binds_any(text) {
        imports.push("from typing import Any".into());
    }
    imports.extend(fix::sdk_import(lang, text).map(str::to_string));
    imports
}

fn uses_identifier(node: Node<'_>, text: &str, name: &str) -> bool {
    let mut cursor = node.walk();
    let mut stack = vec![node];
    while let Some(node) = stack.pop() {
        if node.kind() == "identifier" && &text[node.byte_range()] == name {
            return true;
        }
        stack.extend(node.named_children(&mut cursor));
    }
    false
}

/// Whether a Python file imports `Any` from `typing` at its top level (or everything).
fn binds_any(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim();
        l.starts_with("from typing import")
            && l["from typing import".len()..].split(',').any(|n| matches!(n.trim().trim_matches(['(', ')']), "Any" | "*"))
    })
}

/// Python's imports where ruff's isort puts them: sections (standard library, then third-party)
/// separated by a blank line, `import x` before `from x import y` in a section, each sorted by
/// module; a name imported from a module already imported from joins that import.
mod python {
    use tree_sitter::Node;

    /// Common standard-library modules: a first import section made only of these is the
    /// standard library's, and a third-party import gets a section of its own after it.
    const STDLIB: &[&str] = &[
        "abc",
        "argparse",
        "asyncio",
        "base64",
        "collections",
        "contextlib",
        "csv",
        "dataclasses",
        "datetime",
        "enum",
        "functools",
        "hashlib",
        "http",
        "io",
        "itertools",
        "json",
        "logging",
        "math",
        "os",
        "pathlib",
        "random",
        "re",
        "shutil",
        "string",
        "subprocess",
        "sys",
        "tempfile",
        "textwrap",
        "time",
        "typing",
        "urllib",
        "uuid",
    ];

    /// One top-level import: `import M` or `from M import …`.
    struct Import<'t> {
        node: Node<'t>,
        from: bool,
        module: String,
    }

    /// `text` with `import` (`import M` or `from M import N`) in place, or `None` for a line it
    /// does not know how to place.
    pub(super) fn add_import(root: Node<'_>, text: &str, import: &str) -> Option<String> {
        let (from, module, name) = match import.strip_prefix("from ") {
            Some(rest) => {
                let (module, name) = rest.split_once(" import ")?;
                (true, module, Some(name))
            }
            None => (false, import.strip_prefix("import ")?, None),
        };
        let blocks = blocks(root, text);
        if let (Some(name), Some(existing)) = (name, blocks.iter().flatten().find(|i| i.from && i.module == module)) {
            return join_name(existing.node, text, name);
        }
        let key = |from: bool, module: &str| (from, module.to_lowercase());
        let stdlib = STDLIB.contains(&module.split('.').next()?);
        let all_stdlib = |block: &Vec<Import<'_>>| block.iter().all(|i| STDLIB.contains(&i.module.split('.').next().unwrap_or("")));
        let block = match (stdlib, blocks.len()) {
            (_, 0) => return None,
            // The standard library's section comes first: a new one when the first is not it.
            (true, _) if !blocks[0].iter().any(|i| STDLIB.contains(&i.module.split('.').next().unwrap_or(""))) => {
                let start = blocks[0].first()?.node.start_byte();
                return Some(format!("{}{import}\n\n{}", &text[..start], &text[start..]));
            }
            (true, _) => &blocks[0],
            (false, 1) if all_stdlib(&blocks[0]) => {
                let end = line_end(text, blocks[0].last()?.node.end_byte());
                return Some(format!("{}\n\n{import}{}", &text[..end], &text[end..]));
            }
            (false, 1) => &blocks[0],
            (false, _) => &blocks[1],
        };
        let after = block.iter().rfind(|i| key(i.from, &i.module) <= key(from, module));
        Some(match after {
            Some(previous) => {
                let end = line_end(text, previous.node.end_byte());
                format!("{}\n{import}{}", &text[..end], &text[end..])
            }
            None => {
                let start = block.first()?.node.start_byte();
                format!("{}{import}\n{}", &text[..start], &text[start..])
            }
        })
    }

    /// The file's top-level imports (not `__future__`), in runs of consecutive lines.
    fn blocks<'t>(root: Node<'t>, text: &str) -> Vec<Vec<Import<'t>>> {
        let mut blocks: Vec<Vec<Import<'t>>> = Vec::new();
        let mut previous_row = None;
        for node in super::top_level(root) {
            let (from, module) = match node.kind() {
                "import_statement" => (false, node.named_child(0).and_then(|n| n.child_by_field_name("name").or(Some(n)))),
                "import_from_statement" => (true, node.child_by_field_name("module_name")),
                _ => continue,
            };
            let Some(module) = module else { continue };
            let import = Import { node, from, module: text[module.byte_range()].to_string() };
            match blocks.last_mut() {
                Some(block) if previous_row.is_some_and(|r: usize| r + 1 >= node.start_position().row) => block.push(import),
                _ => blocks.push(vec![import]),
            }
            previous_row = Some(node.end_position().row);
        }
        blocks
    }

    /// `from M import a, c` with `b` joined where isort's order by type puts it (constants,
    /// classes, then the rest).
    fn join_name(statement: Node<'_>, text: &str, name: &str) -> Option<String> {
        let kind = |n: &str| {
            (
                if n.len() > 1 && n.chars().all(|c| !c.is_lowercase()) {
                    0
                } else if n.starts_with(char::is_uppercase) {
                    1
                } else {
                    2
                },
                n.to_lowercase(),
            )
        };
        let mut cursor = statement.walk();
        let names: Vec<Node<'_>> = statement.children_by_field_name("name", &mut cursor).collect();
        let last = names.last()?;
        Some(match names.iter().find(|n| kind(&text[n.byte_range()]) > kind(name)) {
            Some(next) => format!("{}{name}, {}", &text[..next.start_byte()], &text[next.start_byte()..]),
            None => format!("{}, {name}{}", &text[..last.end_byte()], &text[last.end_byte()..]),
        })
    }

    fn line_end(text: &str, at: usize) -> usize {
        super::line_end(text, at)
    }
}

/// `text` with `import` on a line of its own after the file's last import, else where an import
/// may go first (after a shebang, docstring or directive), a blank line from the code after it.
fn add_import(lang: Lang, text: &str, import: &str, blank: &str) -> Result<String, Refusal> {
    let tree = parse(lang, text).ok_or_else(|| Refusal::Internal(format!("adding `{import}` to a file that does not parse")))?;
    if lang.family() == Family::Python {
        if let Some(edited) = python::add_import(tree.root_node(), text, import) {
            return Ok(edited);
        }
    }
    let layout = Layout::of(lang, tree.root_node(), text);
    Ok(match layout.imports_end {
        Some(end) if end == text.len() => format!("{text}\n{import}\n"),
        Some(end) => format!("{}\n{import}{}", &text[..end], &text[end..]),
        None => {
            let (at, no_newline) = layout.header_end;
            let (before, after) = text.split_at(at);
            // A blank line between the header and the import, and between the import and code.
            let lead = if no_newline {
                "\n\n"
            } else if at > 0 && !before.ends_with("\n\n") {
                "\n"
            } else {
                ""
            };
            let blank_after = after.len() - after.trim_start_matches('\n').len();
            let trail = "\n".repeat(blank.len().saturating_sub(blank_after));
            format!("{before}{lead}{import}\n{trail}{after}")
        }
    })
}

/// The file's indentation step: a tab when its first indented line starts with one, else the
/// fewest spaces any line is indented by; four spaces for a file with no indented line.
fn indent_unit(text: &str) -> String {
    // A block comment's continuation lines (` * …`) are aligned, not indented.
    let indents = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('*'))
        .map(|l| &l[..l.len() - l.trim_start().len()])
        .filter(|i| !i.is_empty());
    let mut fewest: Option<usize> = None;
    for indent in indents {
        if indent.starts_with('\t') {
            return "\t".into();
        }
        fewest = Some(fewest.map_or(indent.len(), |f| f.min(indent.len())));
    }
    " ".repeat(fewest.unwrap_or(4))
}

/// Each line's leading `from` steps become as many `to` steps.
fn reindent(text: &str, from: &str, to: &str) -> String {
    if from == to {
        return text.to_string();
    }
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let mut rest = line;
            let mut depth = 0;
            while let Some(r) = rest.strip_prefix(from) {
                rest = r;
                depth += 1;
            }
            format!("{}{rest}", to.repeat(depth))
        })
        .collect();
    lines.join("\n")
}

/// The newlines that make the blank lines at the end of `before` (text ending at a line start)
/// `blank_lines` at least; none at the start of a file.
fn top_up(before: &str, blank_lines: usize) -> String {
    if before.trim().is_empty() {
        return String::new();
    }
    let have = before.len() - before.trim_end_matches('\n').len() - 1;
    "\n".repeat(blank_lines.saturating_sub(have))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file, and the function rendered for it, as `add capability` inserts it.
    fn insert(lang: Lang, text: &str) -> String {
        let function = match lang.family() {
            Family::Python => "def send(to: str, payload: Any) -> int:\n    return symbiont.send(to, payload)\n",
            Family::Js => "/**\n * Sends.\n */\nasync function send(to, payload) {\n  return symbiont.send(to, payload);\n}\n",
            Family::Rust => {
                "/// Sends.\npub fn send(to: &str) -> symbiont::Result<u64> {\n    symbiont::send(to, &serde_json::Value::Null)\n}\n"
            }
        };
        match insert_function(lang, "file", text, function) {
            Ok(Some(edited)) => edited,
            Ok(None) => "(unchanged)\n".into(),
            Err(refusal) => format!("refused: {refusal}\n"),
        }
    }

    #[test]
    fn where_functions_and_imports_go() {
        let cases: &[(Lang, &str)] = &[
            (Lang::Python, ""),
            (Lang::Python, "# Copyright: us.\n\"\"\"The docstring.\"\"\"\n\nprint(1)\n"),
            (Lang::Python, "import requests\n\n\ndef main() -> None:\n    requests.get(\"x\")\n"),
            (Lang::Python, "import os\nfrom typing import Optional\n\nimport requests\n\nx: Optional[int] = None\n"),
            (Lang::Python, "def send(to: str, payload: object) -> int:\n    return 0\n"),
            (Lang::Python, "def main(:\n"),
            (Lang::JavaScript, "// The agent.\n\"use strict\";\n\nmain();\n"),
            (Lang::JavaScript, "import fs from \"node:fs\";\n\n\tfs.readFileSync(0);"),
            (Lang::TypeScript, "export const x = 1;\n"),
            (Lang::Rust, "//! The crate.\n#![forbid(unsafe_code)]\nuse std::fmt;\n\n#[derive(Debug)]\n// Why.\nstruct A;\n"),
            (Lang::Rust, "//! Only docs."),
        ];
        let out: Vec<String> = cases.iter().map(|(lang, text)| format!("--- {} {text:?}\n{}", lang.name(), insert(*lang, text))).collect();
        insta::assert_snapshot!(out.join(""));
    }
}
