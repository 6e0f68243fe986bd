//! The JSON report: a stable, versioned schema documented in `docs/cli.md`. Adding a field is
//! compatible; renaming or removing one, or changing a meaning, bumps `version`.

use serde::Serialize;

use super::{Item, Location, Report};
use crate::position::Position;

/// The schema version of this report.
pub const VERSION: u32 = 1;

#[derive(Serialize)]
struct JsonReport<'r> {
    version: u32,
    files_checked: usize,
    summary: JsonSummary,
    diagnostics: Vec<JsonDiagnostic<'r>>,
}

#[derive(Serialize)]
struct JsonSummary {
    errors: usize,
    warnings: usize,
    infos: usize,
    hints: usize,
    files_with_diagnostics: usize,
}

#[derive(Serialize)]
struct JsonDiagnostic<'r> {
    code: &'static str,
    name: &'static str,
    severity: &'static str,
    message: &'r str,
    path: &'r str,
    range: JsonRange,
    related: Vec<JsonRelated<'r>>,
    fix: Option<JsonFix<'r>>,
}

#[derive(Serialize)]
struct JsonRange {
    start: JsonPosition,
    end: JsonPosition,
}

#[derive(Serialize)]
struct JsonPosition {
    line: u32,
    column: u32,
    offset: u32,
}

#[derive(Serialize)]
struct JsonRelated<'r> {
    path: &'r str,
    range: JsonRange,
    message: &'r str,
}

#[derive(Serialize)]
struct JsonFix<'r> {
    title: &'r str,
    edits: Vec<JsonEdit<'r>>,
}

#[derive(Serialize)]
struct JsonEdit<'r> {
    path: &'r str,
    range: JsonRange,
    new_text: &'r str,
}

fn position(p: Position) -> JsonPosition {
    JsonPosition { line: p.line, column: p.column, offset: p.offset }
}

fn range(location: &Location) -> JsonRange {
    JsonRange { start: position(location.start), end: position(location.end) }
}

fn diagnostic(item: &Item) -> JsonDiagnostic<'_> {
    JsonDiagnostic {
        code: item.rule.code,
        name: item.rule.name,
        severity: item.severity.as_str(),
        message: &item.message,
        path: &item.location.path.display,
        range: range(&item.location),
        related: item
            .related
            .iter()
            .map(|r| JsonRelated { path: &r.location.path.display, range: range(&r.location), message: &r.message })
            .collect(),
        fix: item.fix.as_ref().map(|fix| JsonFix {
            title: &fix.title,
            edits: fix
                .edits
                .iter()
                .map(|e| JsonEdit { path: &e.location.path.display, range: range(&e.location), new_text: &e.new_text })
                .collect(),
        }),
    }
}

pub fn render(report: &Report) -> String {
    let s = &report.summary;
    let json = JsonReport {
        version: VERSION,
        files_checked: report.files_checked,
        summary: JsonSummary {
            errors: s.errors,
            warnings: s.warnings,
            infos: s.infos,
            hints: s.hints,
            files_with_diagnostics: s.files_with_diagnostics,
        },
        diagnostics: report.diagnostics.iter().map(diagnostic).collect(),
    };
    let mut out = serde_json::to_string_pretty(&json).expect("the report serializes");
    out.push('\n');
    out
}
