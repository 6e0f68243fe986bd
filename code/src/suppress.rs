//! Suppression comments: `symbiont: allow OP -- reason` on a finding's line or the line above
//! answers for it (reported as a suppression, an error without its reason).

use std::collections::HashMap;

use crate::{
    finding::{Finding, Suppression},
    lang::Lang,
};

/// The marker of a suppression comment.
pub const SUPPRESSION_MARKER: &str = "symbiont: allow";

/// Gives each of `findings` in `text` the suppression comment that answers for it, if any.
pub(crate) fn attach(lang: Lang, text: &str, findings: &mut [Finding]) {
    // Only lines with the marker can hold a suppression: a file without any (the usual case)
    // reads no line's comments.
    let markers: Vec<usize> = text.match_indices(SUPPRESSION_MARKER).map(|(i, _)| i).collect();
    if markers.is_empty() {
        return;
    }
    let lines: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
    // Each line's comments are read once: a minified file is one long line with thousands of
    // findings.
    let mut comments = HashMap::new();
    for f in findings {
        f.suppression = suppression(lang, text, &lines, &markers, &mut comments, f.start, &f.operation);
    }
}

/// A `symbiont: allow OP -- reason` comment: where it starts, the operations it names, its reason.
struct SuppressionComment {
    start: usize,
    operations: Vec<String>,
    reason: String,
}

/// The suppression comments of the line `start..end`.
fn suppression_comments(lang: Lang, text: &str, start: usize, end: usize) -> Vec<SuppressionComment> {
    let line = &text[start..end];
    // JSX children take no line comments: there a suppression is a `{/* … */}` block comment.
    let openers: &[&str] = match lang.family() {
        crate::lang::Family::Js => &["//", "/*"],
        _ => &[lang.line_comment()],
    };
    // Every opener on the line, in order: the first may be inside a string
    // (`fetch("https://…") // symbiont: allow …`).
    let mut openings: Vec<(usize, &str)> = openers.iter().flat_map(|o| line.match_indices(*o)).collect();
    openings.sort();
    let mut out = Vec::new();
    for (comment, opener) in openings {
        let body = line[comment + opener.len()..].trim_start();
        let Some(rest) = body.strip_prefix(SUPPRESSION_MARKER) else { continue };
        let (ops, reason) = match rest.split_once("--") {
            Some((ops, reason)) => (ops, reason.trim()),
            None => (rest, ""),
        };
        let reason = if opener == "/*" { reason.trim_end_matches('}').trim_end().trim_end_matches("*/").trim() } else { reason };
        out.push(SuppressionComment {
            start: start + comment,
            operations: ops.split([',', ' ']).map(str::trim).filter(|o| !o.is_empty()).map(str::to_string).collect(),
            reason: reason.to_string(),
        });
    }
    out
}

/// A `symbiont: allow OP -- reason` comment on the finding's line or the line above. `lines` are
/// the offsets where lines start; `cache` keeps each line's comments, by line.
fn suppression(
    lang: Lang,
    text: &str,
    lines: &[usize],
    markers: &[usize],
    cache: &mut HashMap<usize, Vec<SuppressionComment>>,
    at: usize,
    operation: &str,
) -> Option<Suppression> {
    let line = lines.partition_point(|&start| start <= at).saturating_sub(1);
    for line in [Some(line), line.checked_sub(1)].into_iter().flatten() {
        let start = lines[line];
        let end = lines.get(line + 1).map_or(text.len(), |next| next - 1);
        // No marker starts on the line: no suppression comment there.
        if markers.get(markers.partition_point(|&m| m < start)).is_none_or(|&m| m >= end) {
            continue;
        }
        let comments = cache.entry(line).or_insert_with(|| suppression_comments(lang, text, start, end));
        if let Some(c) = comments.iter().find(|c| c.operations.iter().any(|o| o == operation || o == "all")) {
            return Some(Suppression { reason: c.reason.clone(), start: c.start, end });
        }
    }
    None
}
