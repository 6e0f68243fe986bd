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
        // One pass, eight bytes at a time: in a word of ASCII (most of any text) the newlines are
        // found from a mask of its zero bytes after XOR with `\n`s, without a branch per byte.
        // The analysis builds an index per file and per item.
        const LOW7: u64 = u64::from_le_bytes([0x7F; 8]);
        const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
        const NEWLINES: u64 = u64::from_le_bytes([b'\n'; 8]);
        let bytes = text.as_bytes();
        let mut index =
            LineIndex { line_starts: Vec::with_capacity(bytes.len() / 32 + 1), ascii: Vec::with_capacity(bytes.len() / 32 + 1) };
        index.line_starts.push(0);
        let mut line_ascii = true;
        let mut chunks = bytes.chunks_exact(8);
        for (n, chunk) in chunks.by_ref().enumerate() {
            let word = u64::from_le_bytes(chunk.try_into().expect("chunks of eight bytes"));
            if word & HIGH != 0 {
                index.bytes(n * 8, chunk, &mut line_ascii);
                continue;
            }
            let x = word ^ NEWLINES;
            // The high bit of each byte of `x` that is zero: each newline of the word.
            let mut newlines = !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7);
            while newlines != 0 {
                index.line_starts.push((n * 8 + newlines.trailing_zeros() as usize / 8) as u32 + 1);
                index.ascii.push(std::mem::replace(&mut line_ascii, true));
                newlines &= newlines - 1;
            }
        }
        let tail = bytes.len() - chunks.remainder().len();
        index.bytes(tail, chunks.remainder(), &mut line_ascii);
        index.ascii.push(line_ascii);
        index
    }

    /// [`LineIndex::new`]'s step for bytes that may not be ASCII, one at a time.
    fn bytes(&mut self, at: usize, bytes: &[u8], line_ascii: &mut bool) {
        for (i, &b) in bytes.iter().enumerate() {
            *line_ascii &= b.is_ascii();
            if b == b'\n' {
                self.line_starts.push((at + i) as u32 + 1);
                self.ascii.push(std::mem::replace(line_ascii, true));
            }
        }
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

    /// The index read eight bytes at a time agrees with counting lines and chars one by one, with
    /// newlines and non-ASCII characters at every position of a word and in the tail.
    #[test]
    fn every_position_agrees_with_counting() {
        let mixed = ["\n", "a", "é", "€", "\r\n", "bcdefgh", "\n\n", "😀", "ij", "\x0b"];
        let ascii = ["\n", "a", "\r\n", "bcdefgh", "\n\n", "ij", "\x0b", "klm"];
        for (seed, pieces) in (0..800usize).map(|seed| (seed, if seed % 2 == 0 { &mixed[..] } else { &ascii[..] })) {
            let text: String = (0..seed % 37).map(|i| pieces[(seed * 7 + i * (seed % 5 + 1)) % pieces.len()]).collect();
            let index = LineIndex::new(&text);
            let (mut line, mut col) = (0u32, 0u32);
            for (offset, ch) in text.char_indices().chain([(text.len(), '\0')]) {
                assert_eq!(index.line_col(&text, TextSize::from(offset as u32)), LineCol { line, col }, "{text:?} at {offset}");
                (line, col) = if ch == '\n' { (line + 1, 0) } else { (line, col + 1) };
            }
            assert_eq!(index.line_count(), text.matches('\n').count() + 1);
        }
    }
}
