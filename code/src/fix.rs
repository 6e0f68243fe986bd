//! Fixes for findings, built from the syntax tree and checked by re-parsing: a suppression comment
//! (whose justification the author must write), and a rewrite of the raw call to the capability
//! SDK so the runtime's broker performs it under the policy.

use crate::{lang::Family, scan, Finding, Lang};

/// A replacement of `start..end` (bytes) with `new_text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub start: usize,
    pub end: usize,
    pub new_text: String,
}

/// The placeholder a generated suppression carries until its author writes the reason; `check`
/// treats it as missing.
pub const REASON_PLACEHOLDER: &str = "REASON REQUIRED";

/// Applies non-overlapping edits.
pub fn apply(text: &str, edits: &[Edit]) -> String {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| (e.start, e.end));
    let mut out = String::with_capacity(text.len() + 64);
    let mut at = 0;
    for edit in sorted {
        out.push_str(&text[at..edit.start.max(at)]);
        out.push_str(&edit.new_text);
        at = edit.end.max(at);
    }
    out.push_str(&text[at..]);
    out
}

/// Whether the edited text parses with no more errors than the original.
fn reparses(lang: Lang, before: &str, after: &str) -> bool {
    let errors = |t: &str| scan::parse(lang, t).map(|tree| usize::from(tree.root_node().has_error()));
    matches!((errors(before), errors(after)), (Some(b), Some(a)) if a <= b)
}

/// `# symbiont: allow OP -- REASON REQUIRED` on its own line above the finding.
pub fn suppression(lang: Lang, text: &str, finding: &Finding) -> Option<Vec<Edit>> {
    let line_start = text[..finding.start].rfind('\n').map_or(0, |i| i + 1);
    let indent: String = text[line_start..].chars().take_while(|c| *c == ' ' || *c == '\t').collect();
    let comment = format!("{indent}{} {} {} -- {REASON_PLACEHOLDER}\n", lang.line_comment(), scan::SUPPRESSION_MARKER, finding.operation);
    let edits = vec![Edit { start: line_start, end: line_start, new_text: comment }];
    reparses(lang, text, &apply(text, &edits)).then_some(edits)
}

/// Rewrites the callee to the SDK module's function of the same name (`requests.get(url)` becomes
/// `symbiont.net.get(url)`, `fetch(u)` becomes `symbiont.net.fetch(u)`), adding the SDK's import
/// when the language needs one.
pub fn sdk_rewrite(lang: Lang, text: &str, finding: &Finding, sdk_module: &str) -> Option<Vec<Edit>> {
    let method = finding.qualified.rsplit(['.', ':']).next().filter(|m| !m.is_empty() && *m != "()")?;
    let callee = match lang.family() {
        Family::Rust => format!("{sdk_module}::{method}"),
        Family::Python | Family::Js => format!("{sdk_module}.{method}"),
    };
    let mut edits = vec![Edit { start: finding.callee_start, end: finding.callee_end, new_text: callee }];
    match lang.family() {
        Family::Python if !has_line(text, "import symbiont") => edits.push(Edit { start: 0, end: 0, new_text: "import symbiont\n".into() }),
        Family::Js if !text.contains("from \"symbiont\"") && !text.contains("require(\"symbiont\")") => {
            let line = if text.contains("require(") && !text.contains("import ") {
                "const symbiont = require(\"symbiont\");\n"
            } else {
                "import * as symbiont from \"symbiont\";\n"
            };
            edits.push(Edit { start: 0, end: 0, new_text: line.into() })
        }
        _ => {}
    }
    reparses(lang, text, &apply(text, &edits)).then_some(edits)
}

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l.trim() == line)
}
