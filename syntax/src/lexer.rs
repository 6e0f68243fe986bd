//! Turns text into tokens. Every byte of the input belongs to exactly one token, so the tokens'
//! texts concatenate back to the input; malformed input yields `UNKNOWN` tokens and errors, never
//! a panic.

use crate::SyntaxKind::{self, *};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: SyntaxKind,
    pub len: u32,
}

/// A lexical error: a byte range and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexError {
    pub start: u32,
    pub end: u32,
    pub message: String,
}

/// Units a number may carry. Which of them make a duration and which a size is analysis's
/// business; the lexer only needs to know where a quantity ends.
pub const DOTTED_DURATION_UNITS: &[&str] = &[
    "millisecond",
    "milliseconds",
    "second",
    "seconds",
    "minute",
    "minutes",
    "hour",
    "hours",
    "day",
    "days",
    "week",
    "weeks",
    "month",
    "months",
    "year",
    "years",
];

pub fn tokenize(text: &str) -> (Vec<Token>, Vec<LexError>) {
    let mut lexer = Lexer { bytes: text.as_bytes(), text, pos: 0, tokens: Vec::with_capacity(text.len() / 4), errors: Vec::new() };
    lexer.run();
    (lexer.tokens, lexer.errors)
}

/// Every token with its text, trivia included (the texts concatenate back to `text`).
pub fn tokens_with_text(text: &str) -> Vec<(SyntaxKind, &str)> {
    let (tokens, _) = tokenize(text);
    let mut pos = 0usize;
    tokens
        .iter()
        .map(|t| {
            let s = &text[pos..pos + t.len as usize];
            pos += t.len as usize;
            (t.kind, s)
        })
        .collect()
}

struct Lexer<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
    tokens: Vec<Token>,
    errors: Vec<LexError>,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> u8 {
        self.bytes.get(self.pos + ahead).copied().unwrap_or(0)
    }

    fn error(&mut self, start: usize, end: usize, message: impl Into<String>) {
        self.errors.push(LexError { start: start as u32, end: end as u32, message: message.into() });
    }

    fn run(&mut self) {
        while self.pos < self.bytes.len() {
            let start = self.pos;
            let kind = self.next_kind();
            debug_assert!(self.pos > start);
            self.tokens.push(Token { kind, len: (self.pos - start) as u32 });
        }
    }

    fn next_kind(&mut self) -> SyntaxKind {
        let b = self.bytes[self.pos];
        let start = self.pos;
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {
                self.pos += 1;
                while matches!(self.peek(0), b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') {
                    self.pos += 1;
                }
                WHITESPACE
            }
            b'/' if self.peek(1) == b'/' => self.line_comment(),
            b'#' => self.line_comment(),
            b'/' if self.peek(1) == b'*' => self.block_comment(start),
            b'"' => self.string(start),
            b'0'..=b'9' => self.number(),
            _ if is_ident_start(b) => {
                self.pos += 1;
                while is_ident_continue(self.peek(0)) {
                    self.pos += 1;
                }
                if self.peek(0) == b':' && self.peek(1) == b'/' && self.peek(2) == b'/' && &self.text[start..self.pos] == "vault" {
                    self.pos += 3;
                    while matches!(self.peek(0), b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'/' | b'.') {
                        self.pos += 1;
                    }
                    if self.pos == start + "vault://".len() {
                        self.error(start, self.pos, "expected a secret path after `vault://`");
                    }
                    return SECRET_REF;
                }
                IDENT
            }
            _ => self.punct(start),
        }
    }

    fn line_comment(&mut self) -> SyntaxKind {
        match memchr_newline(&self.bytes[self.pos..]) {
            Some(offset) => self.pos += offset,
            None => self.pos = self.bytes.len(),
        }
        LINE_COMMENT
    }

    fn block_comment(&mut self, start: usize) -> SyntaxKind {
        self.pos += 2;
        let mut depth = 1usize;
        while self.pos < self.bytes.len() {
            match (self.bytes[self.pos], self.peek(1)) {
                (b'/', b'*') => {
                    depth += 1;
                    self.pos += 2;
                }
                (b'*', b'/') => {
                    depth -= 1;
                    self.pos += 2;
                    if depth == 0 {
                        return BLOCK_COMMENT;
                    }
                }
                _ => self.pos += 1,
            }
        }
        self.error(start, start + 2, "unterminated block comment: expected `*/`");
        BLOCK_COMMENT
    }

    fn string(&mut self, start: usize) -> SyntaxKind {
        self.pos += 1;
        while self.pos < self.bytes.len() {
            match self.bytes[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return STRING;
                }
                b'\\' => {
                    let escaped = self.peek(1);
                    if !matches!(escaped, b'"' | b'\\' | b'/' | b'n' | b'r' | b't' | b'0' | b'u' | b'$' | b'{' | b'}' | b'.' | b'\'') {
                        // Regex-like escapes (`\s`, `\(`) are common in real files: keep them, as text.
                        if escaped == b'\n' || escaped == 0 {
                            self.pos += 1;
                            continue;
                        }
                    }
                    self.pos += 2;
                }
                b'\n' => break,
                _ => self.pos += 1,
            }
        }
        self.pos = self.pos.min(self.bytes.len());
        self.error(start, self.pos, "unterminated string: expected a closing `\"` before the end of the line");
        STRING
    }

    fn digits(&mut self) {
        while matches!(self.peek(0), b'0'..=b'9' | b'_') {
            self.pos += 1;
        }
    }

    fn number(&mut self) -> SyntaxKind {
        self.digits();
        let mut kind = INT;
        if self.peek(0) == b'.' && self.peek(1).is_ascii_digit() {
            self.pos += 1;
            self.digits();
            kind = FLOAT;
        } else if self.peek(0) == b'.' && is_ident_start(self.peek(1)) {
            let word_start = self.pos + 1;
            let mut end = word_start;
            while end < self.bytes.len() && is_ident_continue(self.bytes[end]) {
                end += 1;
            }
            if DOTTED_DURATION_UNITS.contains(&&self.text[word_start..end]) {
                self.pos = end;
                return QUANTITY;
            }
        }
        if is_ident_start(self.peek(0)) {
            while is_ident_continue(self.peek(0)) {
                self.pos += 1;
            }
            return QUANTITY;
        }
        kind
    }

    fn punct(&mut self, start: usize) -> SyntaxKind {
        let b = self.bytes[self.pos];
        let next = self.peek(1);
        let (kind, len) = match (b, next) {
            (b':', b':') => (COLON2, 2),
            (b'=', b'=') => (EQ2, 2),
            (b'=', b'>') => (FAT_ARROW, 2),
            (b'!', b'=') => (NEQ, 2),
            (b'<', b'=') => (LTEQ, 2),
            (b'>', b'=') => (GTEQ, 2),
            (b'-', b'>') => (THIN_ARROW, 2),
            (b'&', b'&') => (AMP2, 2),
            (b'|', b'|') => (PIPE2, 2),
            (b'+', b'=') => (PLUS_EQ, 2),
            (b'-', b'=') => (MINUS_EQ, 2),
            (b'*', b'=') => (STAR_EQ, 2),
            (b'/', b'=') => (SLASH_EQ, 2),
            (b'%', b'=') => (PERCENT_EQ, 2),
            (b'{', _) => (L_BRACE, 1),
            (b'}', _) => (R_BRACE, 1),
            (b'(', _) => (L_PAREN, 1),
            (b')', _) => (R_PAREN, 1),
            (b'[', _) => (L_BRACK, 1),
            (b']', _) => (R_BRACK, 1),
            (b',', _) => (COMMA, 1),
            (b';', _) => (SEMI, 1),
            (b':', _) => (COLON, 1),
            (b'.', _) => (DOT, 1),
            (b'?', _) => (QUESTION, 1),
            (b'@', _) => (AT, 1),
            (b'$', _) => (DOLLAR, 1),
            (b'=', _) => (EQ, 1),
            (b'<', _) => (LT, 1),
            (b'>', _) => (GT, 1),
            (b'+', _) => (PLUS, 1),
            (b'-', _) => (MINUS, 1),
            (b'*', _) => (STAR, 1),
            (b'/', _) => (SLASH, 1),
            (b'%', _) => (PERCENT, 1),
            (b'!', _) => (BANG, 1),
            (b'|', _) => (PIPE, 1),
            (b'&', _) => (AMP, 1),
            _ => {
                // One whole character, so that the token ends on a char boundary.
                let ch_len = self.text[start..].chars().next().map_or(1, char::len_utf8);
                self.pos += ch_len;
                let shown = &self.text[start..self.pos];
                self.error(start, self.pos, format!("unexpected character `{}`", shown.escape_debug()));
                return UNKNOWN;
            }
        };
        self.pos += len;
        kind
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(SyntaxKind, &str)> {
        tokens_with_text(text).into_iter().filter(|(k, _)| *k != WHITESPACE).collect()
    }

    #[test]
    fn quantities_and_secrets() {
        assert_eq!(
            kinds("30s 90.days 1.5 512MB x.days vault://a/b[k] 1_000"),
            vec![
                (QUANTITY, "30s"),
                (QUANTITY, "90.days"),
                (FLOAT, "1.5"),
                (QUANTITY, "512MB"),
                (IDENT, "x"),
                (DOT, "."),
                (IDENT, "days"),
                (SECRET_REF, "vault://a/b"),
                (L_BRACK, "["),
                (IDENT, "k"),
                (R_BRACK, "]"),
                (INT, "1_000"),
            ]
        );
    }

    #[test]
    fn comments_nest_and_unterminated_things_are_errors() {
        assert_eq!(kinds("/* a /* b */ c */ x"), vec![(BLOCK_COMMENT, "/* a /* b */ c */"), (IDENT, "x")]);
        let (_, errors) = tokenize("\"abc\n/* x");
        assert_eq!(errors.len(), 2);
    }
}
