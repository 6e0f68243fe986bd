//! The report for people, in the shape rustc and ruff use:
//!
//! ```text
//! error[SYM0101]: agent `a` is defined more than once
//!  --> b.sym:3:7
//!   |
//! 3 | agent a() -> R {
//!   |       ^
//!   |
//!   = note: a.sym:1:7: first defined here
//!   = help: Rename it
//! ```

use std::fmt::Write;

use symbiont_analysis::Severity;

use super::{plural, Item, Report};

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[1;31m";
const YELLOW: &str = "\x1b[1;33m";
const CYAN: &str = "\x1b[1;36m";
const GREEN: &str = "\x1b[1;32m";
const BLUE: &str = "\x1b[1;34m";

/// Tabs in source lines are shown as this many spaces, so that carets line up.
const TAB_WIDTH: usize = 4;

struct Painter {
    color: bool,
}

impl Painter {
    fn paint(&self, style: &str, text: &str) -> String {
        if self.color && !text.is_empty() {
            format!("{style}{text}{RESET}")
        } else {
            text.to_string()
        }
    }
}

fn severity_style(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => RED,
        Severity::Warning => YELLOW,
        Severity::Info => CYAN,
        Severity::Hint => GREEN,
    }
}

pub fn render(report: &Report, color: bool) -> String {
    let painter = Painter { color };
    let mut out = String::new();
    for item in &report.diagnostics {
        render_item(&mut out, item, &painter);
        out.push('\n');
    }
    out.push_str(&painter.paint(BOLD, &summary_line(report)));
    out.push('\n');
    out
}

fn render_item(out: &mut String, item: &Item, painter: &Painter) {
    let style = severity_style(item.severity);
    let header = format!("{}[{}]", item.severity, item.rule.code);
    let _ = writeln!(out, "{}{}", painter.paint(style, &header), painter.paint(BOLD, &format!(": {}", item.message)));

    let start = item.location.start;
    let gutter_width = item.snippet.as_ref().map_or(1, |s| s.line.to_string().len());
    let pad = " ".repeat(gutter_width);
    let bar = painter.paint(BLUE, "|");
    let _ = writeln!(out, "{pad}{} {}:{}:{}", painter.paint(BLUE, "-->"), item.location.path.display, start.line, start.column);
    if let Some(snippet) = &item.snippet {
        let (text, underline_start, underline_len) = expand_tabs(&snippet.text, snippet.underline_start, snippet.underline_len);
        let _ = writeln!(out, "{pad} {bar}");
        let line_number = painter.paint(BLUE, &snippet.line.to_string());
        if text.is_empty() {
            let _ = writeln!(out, "{line_number} {bar}");
        } else {
            let _ = writeln!(out, "{line_number} {bar} {text}");
        }
        let carets = painter.paint(style, &"^".repeat(underline_len));
        let _ = writeln!(out, "{pad} {bar} {}{carets}", " ".repeat(underline_start));
    }
    if !item.related.is_empty() || item.fix.is_some() {
        let _ = writeln!(out, "{pad} {bar}");
    }
    for related in &item.related {
        let location = &related.location;
        let _ = writeln!(
            out,
            "{pad} {} {}:{}:{}: {}",
            painter.paint(BLUE, "= note:"),
            location.path.display,
            location.start.line,
            location.start.column,
            related.message
        );
    }
    if let Some(fix) = &item.fix {
        let _ = writeln!(out, "{pad} {} {}", painter.paint(BLUE, "= help:"), fix.title);
    }
}

/// Replaces tabs with spaces and moves the underline to match.
fn expand_tabs(text: &str, start: usize, len: usize) -> (String, usize, usize) {
    let mut expanded = String::with_capacity(text.len());
    // `widths[i]`: the display column where char `i` starts (and, last, the line's width).
    let mut widths = Vec::with_capacity(text.len() + 1);
    let mut width = 0;
    for ch in text.chars() {
        widths.push(width);
        if ch == '\t' {
            expanded.push_str(&" ".repeat(TAB_WIDTH));
            width += TAB_WIDTH;
        } else {
            expanded.push(ch);
            width += 1;
        }
    }
    widths.push(width);
    // Columns past the end of the line (an error at the end of the file) continue after it.
    let column = |i: usize| widths.get(i).copied().unwrap_or(width + i - (widths.len() - 1));
    let new_start = column(start);
    let new_end = column(start + len).max(new_start + 1);
    (expanded, new_start, new_end - new_start)
}

/// `Found 3 errors and 1 warning in 2 files (17 files checked).` or
/// `All 17 files checked: no problems.`
pub fn summary_line(report: &Report) -> String {
    let summary = &report.summary;
    let checked = plural(report.files_checked, "file");
    let counts: Vec<String> = [(summary.errors, "error"), (summary.warnings, "warning"), (summary.infos, "info"), (summary.hints, "hint")]
        .into_iter()
        .filter(|&(count, _)| count > 0)
        .map(|(count, word)| plural(count, word))
        .collect();
    match counts.as_slice() {
        [] if report.files_checked == 0 => "No .sym or .symbi files to check.".to_string(),
        [] if report.files_checked == 1 => "1 file checked: no problems.".to_string(),
        [] => format!("All {checked} checked: no problems."),
        [only] => format!("Found {only} in {} ({checked} checked).", plural(summary.files_with_diagnostics, "file")),
        [init @ .., last] => {
            format!("Found {} and {last} in {} ({checked} checked).", init.join(", "), plural(summary.files_with_diagnostics, "file"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabs_expand_and_carets_follow() {
        assert_eq!(expand_tabs("\tab", 1, 2), ("    ab".to_string(), 4, 2));
        assert_eq!(expand_tabs("ab", 2, 1), ("ab".to_string(), 2, 1));
        assert_eq!(expand_tabs("a\tb", 0, 3), ("a    b".to_string(), 0, 6));
    }
}
