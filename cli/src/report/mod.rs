//! The report of `symbiont check`: diagnostics with every position resolved once, in a model
//! that each renderer (`human`, `json`, `sarif`, `github`) only formats.

pub mod github;
pub mod human;
pub mod json;
pub mod sarif;

use std::{
    collections::HashMap,
    path::{Component, Path, PathBuf},
    sync::Arc,
};

use symbiont_analysis::{AnalysisHost, Diagnostic, LineIndex, Rule, Severity};
use symbiont_syntax::TextRange;

use crate::position::{Position, SourceText};

/// Everything a renderer needs, in output order (by path, then by position).
pub struct Report {
    pub files_checked: usize,
    pub diagnostics: Vec<Item>,
    pub summary: Summary,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
    pub hints: usize,
    /// How many distinct files have at least one diagnostic.
    pub files_with_diagnostics: usize,
}

/// One diagnostic, resolved.
pub struct Item {
    pub rule: &'static Rule,
    pub severity: Severity,
    pub message: String,
    pub location: Location,
    /// The primary range's first line, when the file's text is known.
    pub snippet: Option<Snippet>,
    pub related: Vec<RelatedItem>,
    pub fix: Option<FixItem>,
}

/// A range in a file, with both ends resolved.
pub struct Location {
    pub path: ReportPath,
    pub start: Position,
    pub end: Position,
}

/// A path as reports show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportPath {
    /// For people: the path as given (relative to the working directory when it is inside it).
    pub display: String,
    /// For machines: a relative URI reference with forward slashes when the path is relative,
    /// otherwise an absolute `file://` URI. Percent-encoded.
    pub uri: String,
    pub is_relative: bool,
}

/// The source line under a diagnostic's start, and which of its chars to underline.
pub struct Snippet {
    /// 1-based line number.
    pub line: u32,
    pub text: String,
    /// 0-based index, in chars, of the first underlined char.
    pub underline_start: usize,
    /// How many chars to underline: at least 1; a range spanning lines is underlined to the end
    /// of its first line.
    pub underline_len: usize,
}

pub struct RelatedItem {
    pub location: Location,
    pub message: String,
}

pub struct FixItem {
    pub title: String,
    pub edits: Vec<EditItem>,
}

pub struct EditItem {
    pub location: Location,
    pub new_text: String,
}

impl Report {
    /// Resolves diagnostics whose files' texts the host holds. Files the host does not hold
    /// (unreadable ones) resolve every range to their first position.
    pub fn build(host: &AnalysisHost, files_checked: usize, diagnostics: Vec<(PathBuf, Vec<Diagnostic>)>) -> Report {
        let mut resolver = Resolver { host, texts: HashMap::new() };
        let mut summary = Summary::default();
        let mut items = Vec::new();
        for (path, mut diagnostics) in diagnostics {
            if diagnostics.is_empty() {
                continue;
            }
            summary.files_with_diagnostics += 1;
            diagnostics.sort_by_key(|d| (d.range.start(), d.range.end(), d.rule.code));
            for diagnostic in diagnostics {
                match diagnostic.severity {
                    Severity::Error => summary.errors += 1,
                    Severity::Warning => summary.warnings += 1,
                    Severity::Info => summary.infos += 1,
                    Severity::Hint => summary.hints += 1,
                }
                items.push(resolver.item(&path, diagnostic));
            }
        }
        Report { files_checked, diagnostics: items, summary }
    }
}

/// Lines longer than this (minified code: one line of megabytes, thousands of diagnostics on it)
/// are shown as a window of [`SNIPPET_CONTEXT`] bytes either side of the diagnostic.
const MAX_SNIPPET_BYTES: usize = 1000;
const SNIPPET_CONTEXT: usize = 80;

/// The snippet of a diagnostic on a long line: the window around it, `…` where it is cut.
fn long_line_snippet(source: &SourceText<'_>, location: &Location) -> Snippet {
    let line_text = source.line_text(location.start.line);
    let at = (location.start.offset as usize).saturating_sub(source.line_start(location.start.line)).min(line_text.len());
    let mut from = at.saturating_sub(SNIPPET_CONTEXT);
    while !line_text.is_char_boundary(from) {
        from -= 1;
    }
    let mut to = (at + SNIPPET_CONTEXT).min(line_text.len());
    while !line_text.is_char_boundary(to) {
        to += 1;
    }
    let (head, tail) = (if from > 0 { "…" } else { "" }, if to < line_text.len() { "…" } else { "" });
    let window = &line_text[from..to];
    let underline_start = head.chars().count() + line_text[from..at].chars().count();
    let underline_len = if location.end.line == location.start.line && location.end.offset >= location.start.offset {
        let end = (location.end.offset - location.start.offset) as usize + at;
        line_text.get(at..end.min(to)).map_or(1, |s| s.chars().count())
    } else {
        line_text[at..to].chars().count()
    };
    Snippet { line: location.start.line, text: format!("{head}{window}{tail}"), underline_start, underline_len: underline_len.max(1) }
}

struct Resolver<'h> {
    host: &'h AnalysisHost,
    /// Each file's text and line index, built once: a file can have thousands of diagnostics.
    texts: HashMap<PathBuf, Option<(Arc<str>, LineIndex)>>,
}

impl Resolver<'_> {
    fn source(&mut self, path: &Path) -> Option<SourceText<'_>> {
        let host = self.host;
        let entry = self.texts.entry(path.to_path_buf()).or_insert_with(|| {
            host.file_text(path).map(|text| {
                let index = LineIndex::new(&text);
                (text, index)
            })
        });
        entry.as_ref().map(|(text, index)| SourceText::with_index(text, index))
    }

    fn location(&mut self, path: &Path, range: TextRange) -> Location {
        let (start, end) = match self.source(path) {
            Some(source) => (source.position(range.start()), source.position(range.end())),
            None => (Position::START, Position::START),
        };
        Location { path: ReportPath::new(path), start, end }
    }

    fn item(&mut self, path: &Path, diagnostic: Diagnostic) -> Item {
        let location = self.location(path, diagnostic.range);
        let snippet = self.source(path).map(|source| {
            let line_text = source.line_text(location.start.line);
            if line_text.len() > MAX_SNIPPET_BYTES {
                return long_line_snippet(&source, &location);
            }
            let line_chars = line_text.chars().count();
            let underline_start = (location.start.column - 1) as usize;
            let underline_end = if location.end.line == location.start.line { (location.end.column - 1) as usize } else { line_chars };
            Snippet {
                line: location.start.line,
                text: line_text.to_string(),
                underline_start,
                underline_len: underline_end.saturating_sub(underline_start).max(1),
            }
        });
        let related =
            diagnostic.related.into_iter().map(|r| RelatedItem { location: self.location(&r.path, r.range), message: r.message }).collect();
        let fix = diagnostic.fix.map(|fix| FixItem {
            title: fix.title,
            edits: fix
                .edits
                .into_iter()
                .map(|e| EditItem { location: self.location(&e.path, e.range()), new_text: e.edit.new_text })
                .collect(),
        });
        Item { rule: diagnostic.rule, severity: diagnostic.severity, message: diagnostic.message, location, snippet, related, fix }
    }
}

impl ReportPath {
    pub fn new(path: &Path) -> ReportPath {
        let display = path.display().to_string();
        if path.is_absolute() {
            let mut uri = String::from("file://");
            for component in path.components() {
                match component {
                    Component::RootDir => {}
                    // Windows: `C:` becomes `/C:`.
                    Component::Prefix(prefix) => {
                        uri.push('/');
                        uri.push_str(&prefix.as_os_str().to_string_lossy().replace('\\', "/"));
                    }
                    other => {
                        uri.push('/');
                        percent_encode(other.as_os_str(), &mut uri);
                    }
                }
            }
            if uri == "file://" {
                uri.push('/');
            }
            ReportPath { display, uri, is_relative: false }
        } else {
            let mut uri = String::new();
            for component in path.components() {
                if matches!(component, Component::CurDir) {
                    continue;
                }
                if !uri.is_empty() {
                    uri.push('/');
                }
                percent_encode(component.as_os_str(), &mut uri);
            }
            ReportPath { display, uri, is_relative: true }
        }
    }
}

/// Appends a path component to a URI, percent-encoding every byte but RFC 3986's unreserved
/// characters.
pub fn percent_encode(component: &std::ffi::OsStr, out: &mut String) {
    #[cfg(unix)]
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(component).to_vec();
    #[cfg(not(unix))]
    let bytes = component.to_string_lossy().into_owned().into_bytes();
    for byte in bytes {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// "1 error", "3 warnings".
pub fn plural(count: usize, word: &str) -> String {
    if count == 1 {
        format!("{count} {word}")
    } else {
        format!("{count} {word}s")
    }
}

#[cfg(test)]
mod tests {
    use symbiont_analysis::diagnostics::SYNTAX_ERROR;

    use super::*;

    #[test]
    fn snippets_underline_at_least_one_char_and_only_the_first_line() {
        let text = "policy p {\n    allow: [\"read\"]\n}\n";
        let mut host = AnalysisHost::new();
        host.set_file("a.sym", text);
        let start = text.find("allow").unwrap() as u32;
        let diagnostic = |end: u32| Diagnostic::new(&SYNTAX_ERROR, TextRange::new(start.into(), end.into()), "m");
        let diagnostics = vec![(PathBuf::from("a.sym"), vec![diagnostic(text.len() as u32), diagnostic(start)])];
        let report = Report::build(&host, 1, diagnostics);
        let underlines: Vec<(u32, usize, usize)> = report
            .diagnostics
            .iter()
            .map(|item| item.snippet.as_ref().map(|s| (s.line, s.underline_start, s.underline_len)).unwrap())
            .collect();
        assert_eq!(underlines, [(2, 4, 1), (2, 4, "allow: [\"read\"]".len())]);
        assert_eq!(report.diagnostics[1].location.end, Position { line: 4, column: 1, column_utf16: 1, offset: text.len() as u32 });
        assert_eq!(report.summary, Summary { errors: 2, files_with_diagnostics: 1, ..Summary::default() });
    }

    #[test]
    fn uris() {
        assert_eq!(ReportPath::new(Path::new("./a b/c.sym")).uri, "a%20b/c.sym");
        assert_eq!(ReportPath::new(Path::new("/tmp/x#1.sym")).uri, "file:///tmp/x%231.sym");
        assert_eq!(ReportPath::new(Path::new("/")).uri, "file:///");
    }
}
