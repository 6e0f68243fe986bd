//! Fixes for findings, built from the syntax tree and checked by re-parsing: a suppression comment
//! (whose justification the author must write), and a rewrite of the raw call to the capability
//! SDK so the runtime's broker performs it under the policy.

use crate::{lang::Family, rules::SdkRewrite, scan, Finding, Lang};

/// A replacement of `start..end` (bytes) with `new_text`: the one kind of text edit, here, in the
/// analysis (which names the file it applies to: `symbiont_analysis::FileEdit`) and in `check --fix`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Edit {
    pub start: usize,
    pub end: usize,
    pub new_text: String,
}

/// The placeholder a generated suppression carries until its author writes the reason; `check`
/// treats it as missing.
pub const REASON_PLACEHOLDER: &str = "REASON REQUIRED";

/// `text` with `edits` applied, in order of position: the one way edits are applied, here, in the
/// analysis's tests and in `symbiont check --fix`. An edit that overlaps one before
/// it, ends past the text or splits a character is left out.
pub fn apply(text: &str, edits: &[Edit]) -> String {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| (e.start, e.end));
    let mut out = String::with_capacity(text.len() + 64);
    let mut at = 0;
    for edit in sorted {
        let (start, end) = (edit.start, edit.end);
        if start < at || end < start || end > text.len() || !text.is_char_boundary(start) || !text.is_char_boundary(end) {
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(&edit.new_text);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// Files larger than this get no fixes. Each fix is verified by reparsing the whole file, and the
/// number of findings grows with the size too, so a minified bundle of megabytes with thousands of
/// findings would take minutes to check; its findings are still reported. (Fixing minified or
/// generated code is moot anyway: the next build regenerates it.)
pub const MAX_FIX_BYTES: usize = 256 << 10;

/// Whether `text` with `edits` applied parses with no more errors than the original. The
/// original's tree is the scan's (cached per thread); the result is parsed incrementally from it,
/// with each edit described to tree-sitter, so only what the edits touch is parsed again.
fn reparses(lang: Lang, text: &str, edits: &[&Edit]) -> bool {
    if text.len() > MAX_FIX_BYTES {
        return false;
    }
    let Some(tree) = scan::parse(lang, text) else { return false };
    let errors = tree.root_node().has_error();
    match reparse_edited(lang, &tree, text, edits) {
        Some(edited) => !edited.root_node().has_error() || errors,
        None => false,
    }
}

/// `text` with `edits` (non-overlapping) applied, parsed incrementally from `tree` (the tree of
/// `text`): tree-sitter's incremental parsing gives the tree that a fresh parse of the result gives.
pub fn reparse_edited(lang: Lang, tree: &tree_sitter::Tree, text: &str, edits: &[&Edit]) -> Option<tree_sitter::Tree> {
    let mut sorted: Vec<&Edit> = edits.to_vec();
    sorted.sort_by_key(|e| (e.start, e.end));
    if sorted.windows(2).any(|w| w[1].start < w[0].end) || sorted.last().is_some_and(|e| e.end > text.len()) {
        return None;
    }
    let line_starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
    let point = |at: usize| {
        let row = line_starts.partition_point(|&start| start <= at) - 1;
        tree_sitter::Point { row, column: at - line_starts[row] }
    };
    let mut tree = tree.clone();
    // From the end backwards: what precedes an edit is still the original text when it is applied.
    for edit in sorted.iter().rev() {
        let start_position = point(edit.start);
        let new_end_position = match edit.new_text.rfind('\n') {
            Some(last) => tree_sitter::Point {
                row: start_position.row + edit.new_text.bytes().filter(|b| *b == b'\n').count(),
                column: edit.new_text.len() - last - 1,
            },
            None => tree_sitter::Point { row: start_position.row, column: start_position.column + edit.new_text.len() },
        };
        tree.edit(&tree_sitter::InputEdit {
            start_byte: edit.start,
            old_end_byte: edit.end,
            new_end_byte: edit.start + edit.new_text.len(),
            start_position,
            old_end_position: point(edit.end),
            new_end_position,
        });
    }
    let owned: Vec<Edit> = sorted.into_iter().cloned().collect();
    scan::parse_incremental(lang, &apply(text, &owned), &tree)
}

/// `# symbiont: allow OP -- REASON REQUIRED` on its own line above the finding.
/// Among JSX children, where a line comment would be text, `{/* symbiont: allow OP -- … */}`.
pub fn suppression(lang: Lang, text: &str, finding: &Finding) -> Option<Vec<Edit>> {
    suppressions(lang, text, &[finding]).pop().flatten()
}

/// [`suppression`] for several findings of one file. The comments are verified together, one
/// re-parse with all of them inserted: a comment line changes no token outside a string or a
/// comment, so a file that parses with all of them parses with any one. When it does not, each is
/// verified alone.
pub fn suppressions(lang: Lang, text: &str, findings: &[&Finding]) -> Vec<Option<Vec<Edit>>> {
    if findings.is_empty() {
        return Vec::new();
    }
    if text.len() > MAX_FIX_BYTES {
        return vec![None; findings.len()];
    }
    let edits: Vec<Edit> = findings.iter().map(|f| suppression_edit(lang, text, f)).collect();
    let mut distinct: Vec<&Edit> = edits.iter().collect();
    distinct.sort_by(|a, b| (a.start, &a.new_text).cmp(&(b.start, &b.new_text)));
    distinct.dedup();
    let verified: Vec<bool> = if reparses(lang, text, &distinct) {
        vec![true; edits.len()]
    } else {
        let alone: Vec<(&Edit, bool)> = distinct.iter().map(|e| (*e, reparses(lang, text, &[e]))).collect();
        edits.iter().map(|e| alone.iter().any(|(d, ok)| *d == e && *ok)).collect()
    };
    edits.into_iter().zip(verified).map(|(edit, ok)| ok.then(|| vec![edit])).collect()
}

/// The suppression comment of a finding, not yet verified.
fn suppression_edit(lang: Lang, text: &str, finding: &Finding) -> Edit {
    let line_start = text[..finding.start].rfind('\n').map_or(0, |i| i + 1);
    let indent: String = text[line_start..].chars().take_while(|c| *c == ' ' || *c == '\t').collect();
    let body = format!("{} {} -- {REASON_PLACEHOLDER}", scan::SUPPRESSION_MARKER, finding.operation);
    let comment = if in_jsx_children(lang, text, line_start + indent.len()) {
        format!("{indent}{{/* {body} */}}\n")
    } else {
        format!("{indent}{} {body}\n", lang.line_comment())
    };
    Edit { start: line_start, end: line_start, new_text: comment }
}

/// Whether the line starting at `at` (its first non-blank byte) is among a JSX element's children.
fn in_jsx_children(lang: Lang, text: &str, at: usize) -> bool {
    if !matches!(lang, Lang::JavaScript | Lang::Tsx) {
        return false;
    }
    let Some(tree) = scan::parse(lang, text) else { return false };
    let Some(mut node) = tree.root_node().descendant_for_byte_range(at, at) else { return false };
    // The largest node that starts there: `<li>` is a child, `<ul>` after `return (` is not.
    while let Some(parent) = node.parent().filter(|p| p.start_byte() == node.start_byte()) {
        node = parent;
    }
    node.parent().is_some_and(|p| matches!(p.kind(), "jsx_element" | "jsx_fragment"))
}

/// Rewrites the callee to the SDK call its rule's table maps it to ([`crate::rules::Rule::sdk`]:
/// `requests.get(url)` becomes `symbiont.net.get(url)`), adding the SDK's import when the
/// language needs one. `sdk_call` is the table's; a callee without a row gets no rewrite.
pub fn sdk_rewrite(lang: Lang, text: &str, finding: &Finding, row: &SdkRewrite) -> Option<Vec<Edit>> {
    if text.len() > MAX_FIX_BYTES || !crate::sdk_fit::fits(lang, text, finding, row)? {
        return None;
    }
    let callee = row.sdk_call.to_string();
    let mut edits = vec![Edit { start: finding.callee_start, end: finding.callee_end, new_text: callee }];
    if let Some(import) = sdk_import(lang, text) {
        let (at, newline) = import_offset(lang, text);
        let new_text = if newline { format!("\n{import}\n") } else { format!("{import}\n") };
        edits.push(Edit { start: at, end: at, new_text });
    }
    edits.extend(unused_import(lang, text, finding));
    reparses(lang, text, &edits.iter().collect::<Vec<_>>()).then_some(edits)
}

/// The line that imports the SDK as `symbiont` (without its newline), when `text` lacks one and
/// its language needs one (Rust names the crate's paths directly).
pub fn sdk_import(lang: Lang, text: &str) -> Option<&'static str> {
    match lang.family() {
        Family::Python if !has_line(text, "import symbiont") => Some("import symbiont"),
        Family::Js if !text.contains("from \"symbiont\"") && !text.contains("require(\"symbiont\")") => {
            // CommonJS JavaScript keeps `require`; TypeScript always imports, as its `require` is
            // untyped (`any`) and the rewritten call would go unchecked.
            let common_js = ["require(", "module.exports", "\"use strict\""].iter().any(|m| text.contains(m));
            if lang == Lang::JavaScript && common_js && !text.contains("import ") {
                Some("const symbiont = require(\"symbiont\");")
            } else {
                Some("import * as symbiont from \"symbiont\";")
            }
        }
        _ => None,
    }
}

/// Deletes the import the rewritten call was the last use of: the top-level statement that binds
/// the callee's first name (`requests` of `requests.get`, `get` of `from requests import get`),
/// when it binds that name alone, stands on lines of its own, and no other identifier in the file
/// is that name. When anything is less certain the import stays: an unused import is a lint, a
/// removed one that was still used breaks the program. (`--fix` applies one file's fixes
/// together: with two calls through one import, neither removes it.)
fn unused_import(lang: Lang, text: &str, finding: &Finding) -> Option<Edit> {
    let callee = text.get(finding.callee_start..finding.callee_end)?;
    let name = callee.split(['.', ':']).next()?.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '$') {
        return None;
    }
    let tree = scan::parse(lang, text)?;
    let root = tree.root_node();
    let node_text = |n: tree_sitter::Node| &text[n.byte_range()];
    fn named(n: tree_sitter::Node<'_>) -> Vec<tree_sitter::Node<'_>> {
        let mut cursor = n.walk();
        n.named_children(&mut cursor).filter(|c| c.kind() != "comment").collect()
    }
    // The name an import binds, when it binds exactly one.
    let binds_only = |statement: tree_sitter::Node| -> Option<String> {
        let children = named(statement);
        match (lang.family(), statement.kind()) {
            (Family::Python, "import_statement") => match children.as_slice() {
                [one] if one.kind() == "dotted_name" && !node_text(*one).contains('.') => Some(node_text(*one).to_string()),
                [one] if one.kind() == "aliased_import" => one.child_by_field_name("alias").map(|a| node_text(a).to_string()),
                _ => None,
            },
            (Family::Python, "import_from_statement") => {
                let mut cursor = statement.walk();
                let names: Vec<_> = statement.children_by_field_name("name", &mut cursor).collect();
                match names.as_slice() {
                    [one] if one.kind() == "dotted_name" => Some(node_text(*one).to_string()),
                    [one] if one.kind() == "aliased_import" => one.child_by_field_name("alias").map(|a| node_text(a).to_string()),
                    _ => None,
                }
            }
            (Family::Js, "import_statement") => {
                let clause = children.iter().find(|c| c.kind() == "import_clause")?;
                match named(*clause).as_slice() {
                    [one] if one.kind() == "identifier" => Some(node_text(*one).to_string()),
                    [one] if one.kind() == "namespace_import" => named(*one).first().map(|n| node_text(*n).to_string()),
                    _ => None,
                }
            }
            (Family::Js, "lexical_declaration" | "variable_declaration") => match children.as_slice() {
                [declarator] => {
                    let id = declarator.child_by_field_name("name").filter(|n| n.kind() == "identifier")?;
                    let value = declarator.child_by_field_name("value").filter(|v| v.kind() == "call_expression")?;
                    let function = value.child_by_field_name("function")?;
                    (node_text(function) == "require").then(|| node_text(id).to_string())
                }
                _ => None,
            },
            (Family::Rust, "use_declaration") => {
                let argument = statement.child_by_field_name("argument")?;
                match argument.kind() {
                    "identifier" => Some(node_text(argument).to_string()),
                    "scoped_identifier" => argument.child_by_field_name("name").map(|n| node_text(n).to_string()),
                    "use_as_clause" => argument.child_by_field_name("alias").map(|n| node_text(n).to_string()),
                    _ => None,
                }
            }
            _ => None,
        }
    };
    let mut cursor = root.walk();
    let statement = root.named_children(&mut cursor).find(|child| binds_only(*child).as_deref() == Some(name))?;
    // Any other use of the name keeps the import.
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        let inside = |n: tree_sitter::Node, start: usize, end: usize| n.start_byte() >= start && n.end_byte() <= end;
        if inside(node, statement.start_byte(), statement.end_byte()) || inside(node, finding.callee_start, finding.callee_end) {
            continue;
        }
        if matches!(node.kind(), "identifier" | "type_identifier" | "shorthand_property_identifier") && node_text(node) == name {
            return None;
        }
        let mut walk = node.walk();
        stack.extend(node.children(&mut walk));
    }
    // Whole lines only: nothing else before the statement on its first line or after it on its last.
    let line_start = text[..statement.start_byte()].rfind('\n').map_or(0, |i| i + 1);
    if !text[line_start..statement.start_byte()].trim().is_empty() {
        return None;
    }
    let rest = &text[statement.end_byte()..];
    let line_end = rest.find('\n').map_or(text.len(), |i| statement.end_byte() + i + 1);
    if !text[statement.end_byte()..line_end].trim().trim_start_matches(';').trim().is_empty() {
        return None;
    }
    Some(Edit { start: line_start, end: line_end, new_text: String::new() })
}

/// Where an added import goes: after what must stay first in the file — a shebang, Python's
/// encoding cookie, module docstring and `from __future__` imports, JavaScript's directives
/// (`"use strict"`). The flag says the file ends there without a newline.
pub fn import_offset(lang: Lang, text: &str) -> (usize, bool) {
    let Some(tree) = scan::parse(lang, text) else { return (0, false) };
    let root = tree.root_node();
    let mut cursor = root.walk();
    let mut end = None;
    for (i, node) in root.children(&mut cursor).enumerate() {
        let node_text = &text[node.byte_range()];
        let only_string = || node.named_child_count() == 1 && node.named_child(0).is_some_and(|c| c.kind() == "string");
        let first = match (lang.family(), node.kind()) {
            (Family::Js, "hash_bang_line") => true,
            (Family::Js, "expression_statement") => only_string(),
            (Family::Python, "comment") => node_text.starts_with("#!") || (node.start_position().row < 2 && node_text.contains("coding")),
            (Family::Python, "expression_statement") => i == end.map_or(0, |(j, _)| j + 1) && only_string(),
            (Family::Python, "future_import_statement") => true,
            _ => false,
        };
        if !first {
            break;
        }
        end = Some((i, node.end_byte()));
    }
    match end {
        None => (0, false),
        Some((_, end)) => match text[end..].find('\n') {
            Some(newline) => (end + newline + 1, false),
            None => (text.len(), true),
        },
    }
}

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l.trim() == line)
}
