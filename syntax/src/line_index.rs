//! Offsets to line/column positions and back. Columns are counted in Unicode scalar values for
//! humans (`file:line:col`) and in UTF-16 code units for LSP and SARIF consumers that ask for it.

use crate::TextSize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineIndex {
    /// Byte offset where each line starts.
    line_starts: Vec<u32>,
    /// Whether each line is ASCII, where a column is a byte count: counting chars from the line's
    /// start would make each position of a minified file's one long line cost its whole length.
    ascii: Vec<bool>,
}

/// A 0-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LineCol {
    pub line: u32,
    pub col: u32,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.bytes().enumerate().filter(|&(_, b)| b == b'\n').map(|(i, _)| i as u32 + 1));
        let ascii = line_starts
            .iter()
            .enumerate()
            .map(|(line, &start)| {
                let end = line_starts.get(line + 1).map_or(text.len(), |&e| e as usize);
                text.as_bytes()[start as usize..end].is_ascii()
            })
            .collect();
        LineIndex { line_starts, ascii }
    }

    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    /// Byte offset of the start of a 0-based line.
    pub fn line_start(&self, line: u32) -> Option<TextSize> {
        self.line_starts.get(line as usize).map(|&s| TextSize::from(s))
    }

    fn line_of(&self, offset: TextSize) -> usize {
        let offset = u32::from(offset);
        match self.line_starts.binary_search(&offset) {
            Ok(line) => line,
            Err(next) => next - 1,
        }
    }

    /// 0-based line and column in chars. `text` must be the text the index was built from.
    pub fn line_col(&self, text: &str, offset: TextSize) -> LineCol {
        let offset = clamp_to_boundary(text, offset);
        let line = self.line_of(offset);
        let start = self.line_starts[line] as usize;
        let col = if self.ascii[line] { usize::from(offset) - start } else { text[start..usize::from(offset)].chars().count() } as u32;
        LineCol { line: line as u32, col }
    }

    /// 0-based line and column in UTF-16 code units.
    pub fn line_col_utf16(&self, text: &str, offset: TextSize) -> LineCol {
        let offset = clamp_to_boundary(text, offset);
        let line = self.line_of(offset);
        let start = self.line_starts[line] as usize;
        let col =
            if self.ascii[line] { usize::from(offset) - start } else { text[start..usize::from(offset)].encode_utf16().count() } as u32;
        LineCol { line: line as u32, col }
    }

    /// Byte offset of a UTF-16 position; positions past a line's end clamp to it.
    pub fn offset_utf16(&self, text: &str, pos: LineCol) -> TextSize {
        let Some(&start) = self.line_starts.get(pos.line as usize) else {
            return TextSize::of(text);
        };
        let line_end = self.line_starts.get(pos.line as usize + 1).map_or(text.len(), |&e| e as usize);
        let mut units = 0u32;
        for (i, ch) in text[start as usize..line_end].char_indices() {
            if units >= pos.col || ch == '\n' {
                return TextSize::from(start + i as u32);
            }
            units += ch.len_utf16() as u32;
        }
        TextSize::from(line_end as u32)
    }

    /// The text of a 0-based line without its line terminator.
    pub fn line_text<'t>(&self, text: &'t str, line: u32) -> &'t str {
        let Some(&start) = self.line_starts.get(line as usize) else { return "" };
        let end = self.line_starts.get(line as usize + 1).map_or(text.len(), |&e| e as usize);
        text[start as usize..end].trim_end_matches(['\n', '\r'])
    }
}

fn clamp_to_boundary(text: &str, offset: TextSize) -> TextSize {
    let mut offset = usize::from(offset).min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    TextSize::from(offset as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip() {
        let text = "ab\nçd€x\n\nz";
        let index = LineIndex::new(text);
        assert_eq!(index.line_col(text, 0.into()), LineCol { line: 0, col: 0 });
        let x = text.find('x').unwrap() as u32;
        assert_eq!(index.line_col(text, x.into()), LineCol { line: 1, col: 3 });
        assert_eq!(index.line_col_utf16(text, x.into()), LineCol { line: 1, col: 3 });
        assert_eq!(index.offset_utf16(text, LineCol { line: 1, col: 3 }), TextSize::from(x));
        assert_eq!(index.line_text(text, 1), "çd€x");
        assert_eq!(index.line_col(text, TextSize::of(text)), LineCol { line: 3, col: 1 });
    }
}
