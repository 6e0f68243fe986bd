//! Workspaces written as one text, for data-driven tests of the analysis: `//- PATH` on a line of
//! its own starts each file (as in `docs/diagnostics.md`'s multi-file examples), `symbiont.toml`
//! among them being the configuration; a text without such a line is one file. In an IDE fixture,
//! `$0` marks the cursor, or two of them a selection (as in rust-analyzer's fixtures).

use std::path::{Path, PathBuf};

use symbiont_analysis::{AnalysisHost, LineIndex, CONFIG_FILE_NAME};
use symbiont_syntax::{TextRange, TextSize};

/// A fixture's files, in the order written.
pub(crate) struct Fixture {
    pub(crate) files: Vec<(PathBuf, String)>,
    /// The file and range the `$0` markers give, if any (empty for a cursor).
    pub(crate) cursor: Option<(PathBuf, TextRange)>,
}

impl Fixture {
    /// Parses a fixture; `single` names the file when the text has no `//- PATH` line.
    pub(crate) fn parse(text: &str, single: &str) -> Fixture {
        let mut files: Vec<(PathBuf, String)> = Vec::new();
        if !text.starts_with("//- ") {
            files.push((PathBuf::from(single), String::new()));
        }
        for line in text.split_inclusive('\n') {
            match line.strip_prefix("//- ") {
                Some(path) => files.push((PathBuf::from(path.trim()), String::new())),
                None => files.last_mut().expect("a file").1.push_str(line),
            }
        }
        let mut cursor = None;
        for (path, text) in &mut files {
            let marks: Vec<usize> = text.match_indices("$0").map(|(at, _)| at).collect();
            let range = match marks.as_slice() {
                [] => continue,
                [at] => TextRange::empty(offset(*at)),
                [start, end] => TextRange::new(offset(*start), offset(*end - 2)),
                _ => panic!("{}: more than two `$0`", path.display()),
            };
            assert!(cursor.is_none(), "`$0` in more than one file");
            *text = text.replace("$0", "");
            cursor = Some((path.clone(), range));
        }
        Fixture { files, cursor }
    }

    /// A host holding the fixture's files.
    pub(crate) fn host(&self) -> AnalysisHost {
        let mut host = AnalysisHost::new();
        for (path, text) in &self.files {
            if path == Path::new(CONFIG_FILE_NAME) {
                host.set_config(Some((path.clone(), text.clone())));
            } else {
                host.set_file(path.clone(), text.as_str());
            }
        }
        host
    }

    pub(crate) fn text(&self, path: &Path) -> &str {
        self.files.iter().find(|(p, _)| p == path).map(|(_, t)| t.as_str()).unwrap_or_else(|| panic!("no file {}", path.display()))
    }

    /// `path:line:col..line:col` (1-based, columns in chars) of a range in one of the files.
    pub(crate) fn location(&self, path: &Path, range: TextRange) -> String {
        let text = self.text(path);
        let index = LineIndex::new(text);
        let (start, end) = (index.line_col(text, range.start()), index.line_col(text, range.end()));
        format!("{}:{}:{}..{}:{}", path.display(), start.line + 1, start.col + 1, end.line + 1, end.col + 1)
    }
}

fn offset(at: usize) -> TextSize {
    TextSize::from(u32::try_from(at).expect("a fixture under 4 GiB"))
}
