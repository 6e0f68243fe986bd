//! Byte offsets to the positions every report shows: the one place where lines and columns are
//! computed for the CLI.

use std::borrow::Cow;

use symbiont_analysis::LineIndex;
use symbiont_syntax::TextSize;

/// A resolved position. `line` and both columns are 1-based; `column` counts Unicode scalar
/// values (what people and editors' status bars count), `column_utf16` counts UTF-16 code units
/// (what SARIF counts by default). `offset` is the byte offset it was resolved from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u32,
    pub column: u32,
    pub column_utf16: u32,
    pub offset: u32,
}

impl Position {
    /// The position of the start of a file whose text is unknown (unreadable files).
    pub const START: Position = Position { line: 1, column: 1, column_utf16: 1, offset: 0 };
}

/// A file's text with its line index, to resolve many offsets in it.
pub struct SourceText<'t> {
    text: &'t str,
    index: Cow<'t, LineIndex>,
}

impl<'t> SourceText<'t> {
    pub fn new(text: &'t str) -> Self {
        SourceText { text, index: Cow::Owned(LineIndex::new(text)) }
    }

    /// With the line index of `text` built before (`LineIndex::new(text)`).
    pub fn with_index(text: &'t str, index: &'t LineIndex) -> Self {
        SourceText { text, index: Cow::Borrowed(index) }
    }

    pub fn position(&self, offset: TextSize) -> Position {
        let chars = self.index.line_col(self.text, offset);
        let utf16 = self.index.line_col_utf16(self.text, offset);
        Position { line: chars.line + 1, column: chars.col + 1, column_utf16: utf16.col + 1, offset: u32::from(offset) }
    }

    /// The byte offset where a 1-based line starts.
    pub fn line_start(&self, line: u32) -> usize {
        self.index.line_start(line.saturating_sub(1)).map_or(self.text.len(), usize::from)
    }

    /// The text of a 1-based line, without its terminator.
    pub fn line_text(&self, line: u32) -> &'t str {
        self.index.line_text(self.text, line.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_in_chars_and_utf16() {
        let text = "a\n𝄞é x";
        let source = SourceText::new(text);
        let x = text.find('x').unwrap() as u32;
        let pos = source.position(x.into());
        assert_eq!(pos, Position { line: 2, column: 4, column_utf16: 5, offset: x });
        assert_eq!(source.line_text(2), "𝄞é x");
    }
}
