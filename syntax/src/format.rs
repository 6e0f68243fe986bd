//! The formatter: re-lays out the token stream of a tree that parsed without errors.
//!
//! The design is a token-stream re-layout driven by the tree, not a pretty-printer that rebuilds
//! text from the AST. Every significant token and every comment is written back verbatim, in
//! order; only the whitespace between them is regenerated. That makes the two guarantees that
//! matter easy to keep: no comment can be lost and no token can change, so the meaning can only
//! change if two tokens were glued into one (which `would_merge` rules out) or a line
//! break were removed where the grammar is line-sensitive (line breaks are only ever added).
//!
//! What the whitespace becomes:
//! * **Line breaks** come from the source: the user's breaks are kept, runs of blank lines shrink
//!   to one, blank lines at the start of the file and trailing whitespace go, and the file ends
//!   with exactly one `\n`. On top of that, breaks are forced where the structure asks for them
//!   (see `Layout::force_breaks`): inside the braces of non-empty block bodies, between
//!   statement-like members on one line, and a blank line between top-level items.
//! * **Indentation** is computed, never copied (see `Layout::line_level`).
//! * **Spaces within a line** follow the token pair and its syntactic context (see
//!   `Layout::space` and `glue`); alignment the user made (before trailing comments, between the keys and
//!   values of space-separated entries) is kept.
//!
//! A file with syntax errors is refused, like `gofmt` and `rustfmt` do: its tree may not mean
//! what the user meant, so re-laying it out could make things worse.

use std::fmt;

use crate::{
    lexer, Parse, SyntaxError,
    SyntaxKind::{self, *},
    SyntaxNode, SyntaxToken,
};

/// How to format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatOptions {
    /// Spaces per indentation level. Widths above [`MAX_INDENT_WIDTH`] are treated as that
    /// maximum, so that no option can make the output absurdly (or unallocatably) large.
    pub indent_width: usize,
}

/// The largest indentation width honoured; see [`FormatOptions::indent_width`].
pub const MAX_INDENT_WIDTH: usize = 16;

impl Default for FormatOptions {
    fn default() -> Self {
        FormatOptions { indent_width: 4 }
    }
}

/// Why a file was not formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// The file does not parse; it is left untouched.
    Syntax { errors: Vec<SyntaxError> },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Syntax { errors } => {
                write!(f, "cannot format a file with {} syntax error(s); fix them first", errors.len())?;
                if let Some(first) = errors.first() {
                    write!(f, " (first, at {:?}: {})", first.range, first.message)?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for FormatError {}

/// Formats `.sym` text with the default options.
pub fn format(text: &str) -> Result<String, FormatError> {
    format_with(text, &FormatOptions::default())
}

/// Formats `.sym` text.
pub fn format_with(text: &str, options: &FormatOptions) -> Result<String, FormatError> {
    format_tree(&crate::parse(text), options)
}

/// Formats a parsed file, or refuses (`Err`) when it has syntax errors.
///
/// As a last line of defence the result is parsed again and compared with the input through
/// [`significant_structure`]; should a layout bug ever change the meaning, the original text is
/// returned unchanged instead (which is still idempotent), so formatting can never damage a file.
/// Fuzzing builds (`--cfg fuzzing`, set by cargo-fuzz) skip this check so that the fuzz target
/// sees such bugs instead of the fallback.
pub fn format_tree(parse: &Parse, options: &FormatOptions) -> Result<String, FormatError> {
    if !parse.errors().is_empty() {
        return Err(FormatError::Syntax { errors: parse.errors().to_vec() });
    }
    let root = parse.syntax();
    let output = layout(&root, options);
    if cfg!(fuzzing) || preserves_meaning(&root, &output) {
        Ok(output)
    } else {
        Ok(root.text().to_string())
    }
}

/// Non-trivia structure of a tree: each node kind with its nested children and each significant
/// token (kind + text), trivia ignored. Equal before and after formatting = meaning preserved.
pub fn significant_structure(node: &SyntaxNode) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for event in node.preorder_with_tokens() {
        match event {
            rowan::WalkEvent::Enter(rowan::NodeOrToken::Node(node)) => {
                out.push_str(&"  ".repeat(depth));
                out.push_str(&format!("{:?}\n", node.kind()));
                depth += 1;
            }
            rowan::WalkEvent::Leave(rowan::NodeOrToken::Node(_)) => depth = depth.saturating_sub(1),
            rowan::WalkEvent::Enter(rowan::NodeOrToken::Token(token)) if !token.kind().is_trivia() => {
                out.push_str(&"  ".repeat(depth));
                out.push_str(&format!("{:?} {:?}\n", token.kind(), token.text()));
            }
            _ => {}
        }
    }
    out
}

/// Whether `output` parses without errors to the same significant structure as `root`.
fn preserves_meaning(root: &SyntaxNode, output: &str) -> bool {
    let reparsed = crate::parse(output);
    reparsed.errors().is_empty() && significant_structure(&reparsed.syntax()) == significant_structure(root)
}

/// Lays out a tree (which must have parsed without errors) without checking the result.
fn layout(root: &SyntaxNode, options: &FormatOptions) -> String {
    Layout::new(root, options).write()
}

// ---------------------------------------------------------------------------------------------
// Classification of kinds

fn is_opener(kind: SyntaxKind) -> bool {
    matches!(kind, L_BRACE | L_PAREN | L_BRACK)
}

fn is_closer(kind: SyntaxKind) -> bool {
    matches!(kind, R_BRACE | R_PAREN | R_BRACK)
}

fn is_comment(kind: SyntaxKind) -> bool {
    matches!(kind, LINE_COMMENT | BLOCK_COMMENT)
}

/// Top-level items whose body is an entry block.
fn is_entry_item(kind: SyntaxKind) -> bool {
    matches!(kind, METADATA | SCHEDULE | CHANNEL | MEMORY | WEBHOOK)
}

/// Nodes that read like statements: one per line, and a line that starts in the middle of one
/// (after it began on an earlier line) is a continuation line, indented one extra level.
fn is_statement_like(kind: SyntaxKind) -> bool {
    is_entry_item(kind)
        || matches!(kind, AGENT | POLICY | TYPE_DEF | FUNCTION | AGENT_FIELD | WITH_BLOCK | RULE | LET_STMT | EXPR_STMT | ENTRY | MATCH_ARM)
}

/// Braced nodes whose members are statements. Their braces go on their own lines when the body
/// is not empty, and each member starts a line.
///
/// Entry blocks are bodies when they belong to a top-level item, or when they span lines (or will,
/// because they hold a body themselves); a short nested one such as `search { vector_weight 0.6 }`
/// written on one line stays on one line. Since formatting only adds line breaks, this decision
/// is the same when the output is formatted again.
fn is_block_body(node: &SyntaxNode) -> bool {
    match node.kind() {
        ENTRY_BLOCK => {
            node.parent().is_some_and(|parent| is_entry_item(parent.kind()))
                || node.text().contains_char('\n')
                || node.descendants().any(|d| is_body_kind(d.kind()) && d.kind() != ENTRY_BLOCK)
        }
        kind => is_body_kind(kind),
    }
}

/// Nodes that may be block bodies (see [`is_block_body`]).
fn is_body_kind(kind: SyntaxKind) -> bool {
    matches!(kind, AGENT_BODY | POLICY_BODY | BLOCK | MATCH_ARM_LIST | ENTRY_BLOCK)
}

fn parent_kind(token: &SyntaxToken) -> Option<SyntaxKind> {
    token.parent().map(|parent| parent.kind())
}

// ---------------------------------------------------------------------------------------------
// Layout

/// A token written to the output (a significant token or a comment), with the whitespace that
/// preceded it in the source.
struct Element {
    token: SyntaxToken,
    whitespace_before: String,
}

impl Element {
    fn kind(&self) -> SyntaxKind {
        self.token.kind()
    }

    fn newlines_before(&self) -> usize {
        self.whitespace_before.matches('\n').count()
    }
}

struct Layout {
    indent_width: usize,
    /// Every non-whitespace token, in source order.
    elements: Vec<Element>,
    /// Bracket nesting depth before each element.
    depth: Vec<usize>,
    /// Line breaks forced before each element: 0, 1 (a new line) or 2 (after a blank line).
    forced: Vec<usize>,
}

impl Layout {
    fn new(root: &SyntaxNode, options: &FormatOptions) -> Layout {
        let mut elements = Vec::new();
        let mut whitespace = String::new();
        for token in root.descendants_with_tokens().filter_map(|element| element.into_token()) {
            if token.kind() == WHITESPACE {
                whitespace.push_str(token.text());
            } else {
                elements.push(Element { token, whitespace_before: std::mem::take(&mut whitespace) });
            }
        }
        let mut depth = Vec::with_capacity(elements.len());
        let mut current = 0usize;
        for element in &elements {
            depth.push(current);
            if is_opener(element.kind()) {
                current += 1;
            } else if is_closer(element.kind()) {
                current = current.saturating_sub(1);
            }
        }
        let forced = vec![0; elements.len()];
        let mut layout = Layout { indent_width: options.indent_width.min(MAX_INDENT_WIDTH), elements, depth, forced };
        layout.force_breaks(root);
        layout
    }

    /// Index of `token` among the elements.
    fn index_of(&self, token: &SyntaxToken) -> Option<usize> {
        let start = token.text_range().start();
        self.elements.binary_search_by_key(&start, |element| element.token.text_range().start()).ok()
    }

    /// Index of the first significant token of `node`.
    fn first_index(&self, node: &SyntaxNode) -> Option<usize> {
        let token = node.descendants_with_tokens().filter_map(|e| e.into_token()).find(|t| !t.kind().is_trivia())?;
        self.index_of(&token)
    }

    /// Index of the first significant token at or after `index`.
    fn next_significant(&self, index: usize) -> Option<usize> {
        (index..self.elements.len()).find(|&i| !is_comment(self.elements[i].kind()))
    }

    fn force(&mut self, index: usize, newlines: usize) {
        if let Some(slot) = self.forced.get_mut(index) {
            *slot = (*slot).max(newlines);
        }
    }

    /// Records the line breaks the structure requires (they add to the source's own breaks).
    ///
    /// A break "before a token" goes into the gap just before it, after any block comment that
    /// sat on the previous line, so such comments stay where they were.
    fn force_breaks(&mut self, root: &SyntaxNode) {
        for node in root.descendants() {
            if node.kind() == SOURCE_FILE {
                self.separate_items(&node);
            } else if is_block_body(&node) {
                self.break_body(&node);
            }
        }
    }

    /// Braces of a non-empty body on their own lines; each member on its own line.
    fn break_body(&mut self, body: &SyntaxNode) {
        let tokens: Vec<SyntaxToken> = body.children_with_tokens().filter_map(|e| e.into_token()).collect();
        let open = tokens.iter().find(|t| t.kind() == L_BRACE).and_then(|t| self.index_of(t));
        let close = tokens.iter().rev().find(|t| t.kind() == R_BRACE).and_then(|t| self.index_of(t));
        if let (Some(open), Some(close)) = (open, close) {
            if let Some(first) = self.next_significant(open + 1).filter(|&first| first < close) {
                self.force(first, 1);
                self.force(close, 1);
            }
        }
        for member in body.children() {
            if let Some(first) = self.first_index(&member) {
                self.force(first, 1);
            }
        }
    }

    /// Exactly one blank line between top-level items. When the user left none, it goes right
    /// after the previous item's line, so that comments directly above an item stay attached to
    /// it.
    fn separate_items(&mut self, file: &SyntaxNode) {
        let mut previous_end: Option<usize> = None;
        for item in file.children() {
            let Some(first) = self.first_index(&item) else {
                continue;
            };
            if let Some(end) = previous_end {
                let gaps = end + 1..=first;
                if !gaps.clone().any(|i| self.elements[i].newlines_before() >= 2) {
                    let at = gaps.clone().find(|&i| self.elements[i].newlines_before() >= 1).unwrap_or(first);
                    self.force(at, 2);
                }
            }
            self.force(first, 1);
            previous_end = self.last_index(&item);
        }
    }

    /// Index of the last significant token of `node`.
    fn last_index(&self, node: &SyntaxNode) -> Option<usize> {
        let token = node.descendants_with_tokens().filter_map(|e| e.into_token()).filter(|t| !t.kind().is_trivia()).last()?;
        self.index_of(&token)
    }

    /// Writes the output.
    fn write(&self) -> String {
        let mut out = String::new();
        // Base indentation level of the line on which each open bracket was opened.
        let mut stack: Vec<usize> = Vec::new();
        let mut line_level = 0usize;
        // Where each element starts in `out`, for the gluing check.
        let mut starts: Vec<usize> = Vec::with_capacity(self.elements.len());
        for (i, element) in self.elements.iter().enumerate() {
            let newlines = if i == 0 { 0 } else { element.newlines_before().min(2).max(self.forced[i]) };
            if i == 0 || newlines > 0 {
                for _ in 0..newlines {
                    out.push('\n');
                }
                line_level = self.line_level(i, &stack);
                out.extend(std::iter::repeat_n(' ', line_level * self.indent_width));
            } else {
                let space = self.space(i);
                if space.is_empty() && would_merge(&out[starts[i.saturating_sub(2)]..], element.token.text()) {
                    out.push(' ');
                } else {
                    out.push_str(space);
                }
            }
            starts.push(out.len());
            match element.kind() {
                // Trailing whitespace inside a line comment is still trailing whitespace.
                LINE_COMMENT => out.push_str(element.token.text().trim_end()),
                _ => out.push_str(element.token.text()),
            }
            if is_opener(element.kind()) {
                stack.push(line_level);
            } else if is_closer(element.kind()) {
                stack.pop();
            }
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out
    }

    /// Indentation level of a line starting with element `i`, given the open brackets.
    ///
    /// Each bracket indents its contents one level past the line on which it was opened (so that
    /// several brackets opened on one line indent once), and a line starting with a closer goes
    /// back to that line's level. A comment line is indented like the code that follows it,
    /// except that it stays inside a block that it ends.
    fn line_level(&self, i: usize, stack: &[usize]) -> usize {
        let kind = self.elements[i].kind();
        if is_closer(kind) {
            return stack.last().copied().unwrap_or(0);
        }
        let content = stack.last().map_or(0, |base| base + 1);
        let subject = if is_comment(kind) { self.next_significant(i) } else { Some(i) };
        content + subject.map_or(0, |j| self.continuation(j))
    }

    /// 1 when significant element `j`, starting a line, continues a statement-like node begun on
    /// an earlier line at the same bracket depth, as in a rule whose guard is on its own line or
    /// the attributes of a `with` written one per line; 0 otherwise.
    ///
    /// Lines inside a bracket opened by the statement are indented by the bracket instead. Braces
    /// that open a body go back to the statement's level (`with …` attributes, then `{`), as do
    /// closers and `else`/`catch`.
    fn continuation(&self, j: usize) -> usize {
        let token = &self.elements[j].token;
        let kind = token.kind();
        let opens_body = kind == L_BRACE && token.parent().is_some_and(|parent| is_body_kind(parent.kind()));
        if opens_body || is_closer(kind) || matches!(kind, ELSE_KW | CATCH_KW) {
            return 0;
        }
        for ancestor in token.parent_ancestors() {
            if !is_statement_like(ancestor.kind()) {
                continue;
            }
            match self.first_index(&ancestor) {
                Some(first) if first == j => continue,
                Some(first) => return usize::from(self.depth[first] == self.depth[j]),
                None => continue,
            }
        }
        0
    }

    /// The whitespace between element `i - 1` and element `i` when both are on one line.
    fn space(&self, i: usize) -> &str {
        let previous = &self.elements[i - 1];
        let element = &self.elements[i];
        let original = element.whitespace_before.as_str();
        if is_comment(element.kind()) {
            // Keep alignment before a trailing comment.
            return if original.is_empty() { " " } else { original };
        }
        if is_comment(previous.kind()) {
            return " ";
        }
        if is_aligned_entry_value(&previous.token, &element.token) && !original.is_empty() && original.bytes().all(|b| b == b' ') {
            return original;
        }
        if glue(&previous.token, &element.token) {
            ""
        } else {
            " "
        }
    }
}

/// Whether writing `next` right after `before` (the output's last two tokens) would lex
/// differently: `1` `.` `days` would become the quantity `1.days`, `=` `=` would become `==`.
fn would_merge(before: &str, next: &str) -> bool {
    let mut text = String::with_capacity(before.len() + next.len());
    text.push_str(before);
    text.push_str(next);
    let (tokens, _) = lexer::tokenize(&text);
    let mut offset = 0usize;
    for token in tokens {
        if offset == before.len() {
            return token.len as usize != next.len();
        }
        if offset > before.len() {
            break;
        }
        offset += token.len as usize;
    }
    true
}

/// Whether `next` is the value of a space-separated entry (`path     "/hooks/x"`) right after its
/// key: the corpus aligns those values in columns, and the formatter keeps such alignment.
fn is_aligned_entry_value(previous: &SyntaxToken, next: &SyntaxToken) -> bool {
    let Some(entry) = previous.parent().filter(|name| name.kind() == NAME).and_then(|name| name.parent()) else {
        return false;
    };
    entry.kind() == ENTRY && next.kind() != L_BRACE && !entry.children_with_tokens().any(|e| matches!(e.kind(), EQ | COLON))
}

/// Whether `previous` and `next` are written with no space between them (when both are on one
/// line and gluing them cannot change how they lex).
fn glue(previous: &SyntaxToken, next: &SyntaxToken) -> bool {
    let (p, n) = (previous.kind(), next.kind());
    let next_parent = parent_kind(next);
    match (p, n) {
        // Never glue `-` `-`: it reads as a decrement.
        (MINUS, MINUS) => false,
        (_, COMMA | SEMI | COLON | QUESTION) => true,
        (L_PAREN | L_BRACK, _) | (_, R_PAREN | R_BRACK) => true,
        (L_BRACE, R_BRACE) => true,
        // `1 .days` is a field access; glued it would lex as the quantity `1.days`.
        (INT | FLOAT, DOT) => false,
        (DOT | COLON2, _) | (_, DOT | COLON2) => true,
        // Prefix operators and negative literal patterns.
        (BANG | MINUS, _) if matches!(parent_kind(previous), Some(PREFIX_EXPR | LITERAL_PAT)) => true,
        // A callee and its arguments, a name and its parameters, a base and its index.
        (_, L_PAREN) => matches!(next_parent, Some(ARG_LIST | PARAM_LIST | TUPLE_STRUCT_PAT)),
        (_, L_BRACK) => next_parent == Some(INDEX_EXPR),
        // `List<String>`, `Map<K, V>`.
        (LT, _) if parent_kind(previous) == Some(GENERIC_ARGS) => true,
        (_, LT | GT) if next_parent == Some(GENERIC_ARGS) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use symbiont_tests::XorShift;

    use super::*;

    fn fmt(text: &str) -> String {
        match format(text) {
            Ok(output) => output,
            Err(error) => panic!("{error}\n{text}"),
        }
    }

    /// Comment texts, sorted (a multiset); line comments without trailing whitespace, which the
    /// formatter removes.
    fn comments(text: &str) -> Vec<String> {
        let mut out: Vec<String> = crate::parse(text)
            .syntax()
            .descendants_with_tokens()
            .filter_map(|e| e.into_token())
            .filter_map(|t| match t.kind() {
                LINE_COMMENT => Some(t.text().trim_end().to_string()),
                BLOCK_COMMENT => Some(t.text().to_string()),
                _ => None,
            })
            .collect();
        out.sort();
        out
    }

    /// Properties 1–3: the raw layout (not the safety net) preserves meaning, keeps comments and
    /// is idempotent. Returns the formatted text.
    fn check_properties(name: &str, text: &str) -> String {
        let parse = crate::parse(text);
        assert!(parse.errors().is_empty(), "{name}: {:?}", parse.errors());
        let output = layout(&parse.syntax(), &FormatOptions::default());
        let reparsed = crate::parse(&output);
        assert!(reparsed.errors().is_empty(), "{name}: output does not parse: {:?}\n{output}", reparsed.errors());
        assert_eq!(significant_structure(&reparsed.syntax()), significant_structure(&parse.syntax()), "{name}: meaning changed\n{output}");
        assert_eq!(comments(&output), comments(text), "{name}: comments changed");
        assert_eq!(fmt(&output), output, "{name}: not idempotent");
        assert_eq!(fmt(text), output, "{name}: the safety net kicked in");
        output
    }

    fn corpus() -> Vec<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/upstream-agents");
        let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "symbi"))
            .map(|path| (path.display().to_string(), std::fs::read_to_string(&path).unwrap()))
            .collect();
        files.sort();
        assert!(!files.is_empty());
        files
    }

    #[test]
    fn messy_agent() {
        let input = "\n\n// header\nagent  a ( x :String,y:List < String > )->R{\n\tcapabilities=[ \"read\" ,\"write\" ]   \n\n\n\n  policy p{allow:[\"read\"] if x.ok&&!y deny:  \"w\"}\n with memory=\"e\",sandbox = \"Tier1\" { let z=foo (x , b = 1)+ -y [0].len();z+=1;if z>1{return z;}else{ return 0 } }\n}\nmemory m { store markdown   search { w 0.5 } }\n";
        let expected = "\
// header
agent a(x: String, y: List<String>) -> R {
    capabilities = [\"read\", \"write\"]

    policy p {
        allow: [\"read\"] if x.ok && !y
        deny: \"w\"
    }
    with memory = \"e\", sandbox = \"Tier1\" {
        let z = foo(x, b = 1) + -y[0].len();
        z += 1;
        if z > 1 {
            return z;
        } else {
            return 0
        }
    }
}

memory m {
    store markdown
    search { w 0.5 }
}
";
        assert_eq!(check_properties("messy", input), expected);
    }

    #[test]
    fn continuation_lines_and_with_attributes() {
        let input = "agent a {
  policy p {
    allow: [\"a\"]
 if x == 1 &&
   y
  }
with
memory = \"e\",   // why
  timeout = 30s
  {
  match x { \"a\" => 1, _ => {
  2 } }
  let r = call(
  a,
    b
  )
    .then(c);
  }
}
";
        let expected = "agent a {
    policy p {
        allow: [\"a\"]
            if x == 1 &&
            y
    }
    with
        memory = \"e\",   // why
        timeout = 30s
    {
        match x {
            \"a\" => 1,
            _ => {
                2
            }
        }
        let r = call(
            a,
            b
        )
            .then(c);
    }
}
";
        assert_eq!(check_properties("continuation", input), expected);
    }

    #[test]
    fn comments_stay_put() {
        let input = "/* file\n   header */\n# hash comment   \nmetadata { version = \"1\" /* inline */ author = \"me\" // trailing\n}\n// about b\nagent b { /* nested /* inner */ done */ }\n\n\n\n// floating\n\nagent c {\n    x = 1\n    // last\n}";
        let expected = "/* file\n   header */\n# hash comment\nmetadata {\n    version = \"1\" /* inline */\n    author = \"me\" // trailing\n}\n\n// about b\nagent b { /* nested /* inner */ done */ }\n\n// floating\n\nagent c {\n    x = 1\n    // last\n}\n";
        assert_eq!(check_properties("comments", input), expected);
    }

    #[test]
    fn records_arrays_and_nested_entries_keep_user_lines() {
        let input = "agent a {\n    security = {tier: Tier2,memory: 256MB}\n    list = [1,\n        2]\n    empty = { }\n}\nwebhook w {\n    path     \"/x\"\n    filter { json_path \"$.a\"  equals \"b\" }\n    nested {\n        a 1 b 2 }\n}\ntype T = { a: Map < K , V >?, b: [Int] };\ntype U = String;\n";
        let expected = "agent a {\n    security = { tier: Tier2, memory: 256MB }\n    list = [1,\n        2]\n    empty = {}\n}\n\nwebhook w {\n    path     \"/x\"\n    filter { json_path \"$.a\" equals \"b\" }\n    nested {\n        a 1\n        b 2\n    }\n}\n\ntype T = { a: Map<K, V>?, b: [Int] };\n\ntype U = String;\n";
        assert_eq!(check_properties("records", input), expected);
    }

    #[test]
    fn tokens_are_never_glued_into_others() {
        // `1 .days` is a field access on `1`; `1.days` would be a quantity.
        let output = check_properties("glue", "agent a { x = 1 .days  y = - -1 z = a - -b w = ! ( a||b ) v = -(1) u = not(x) }\n");
        assert_eq!(
            output,
            "agent a {\n    x = 1 .days\n    y = - -1\n    z = a - -b\n    w = !(a || b)\n    v = -(1)\n    u = not (x)\n}\n"
        );
    }

    #[test]
    fn indent_width_and_tabs() {
        let options = FormatOptions { indent_width: 2 };
        assert_eq!(format_with("agent a {\n\t\tx = [\n\t1]\n}", &options).unwrap(), "agent a {\n  x = [\n    1]\n}\n");
        let huge = FormatOptions { indent_width: usize::MAX };
        assert!(format_with("agent a {\n x = 1\n}", &huge).unwrap().contains(&format!("\n{}x", " ".repeat(MAX_INDENT_WIDTH))));
    }

    #[test]
    fn empty_and_comment_only_files() {
        assert_eq!(fmt(""), "");
        assert_eq!(fmt("  \n\n \t"), "");
        assert_eq!(fmt("\n\n// only\n\n\n"), "// only\n");
    }

    #[test]
    fn syntax_errors_are_refused() {
        let error = format("agent a { x = }\n").unwrap_err();
        let FormatError::Syntax { errors } = &error;
        assert!(!errors.is_empty());
        assert!(error.to_string().starts_with(&format!("cannot format a file with {} syntax error(s)", errors.len())));
        assert!(format("agent a {").is_err());
        assert!(format("\"unterminated").is_err());
    }

    #[test]
    fn significant_structure_ignores_trivia() {
        let a = crate::parse("agent a { x = 1 } // c");
        let b = crate::parse("agent  a {\n    x = 1\n}\n");
        assert_eq!(significant_structure(&a.syntax()), significant_structure(&b.syntax()));
        assert_ne!(significant_structure(&a.syntax()), significant_structure(&crate::parse("agent a { x = 2 }").syntax()));
    }

    #[test]
    fn corpus_properties_hold() {
        let mut changed = 0usize;
        let mut total = 0usize;
        for (name, text) in corpus() {
            let output = check_properties(&name, &text);
            let before: Vec<&str> = text.lines().collect();
            let after: Vec<&str> = output.lines().collect();
            total += before.len();
            changed += before.iter().zip(&after).filter(|(a, b)| a != b).count() + before.len().abs_diff(after.len());
        }
        eprintln!("corpus: {changed} of {total} lines changed");
    }

    /// Each corpus file with every line comment turned into a block comment and every run of
    /// whitespace into one space: one long line that formatting must spread out again.
    #[test]
    fn corpus_flattened_to_one_line() {
        let mut checked = 0;
        for (name, text) in corpus() {
            let parse = crate::parse(&text);
            let mut flat = String::new();
            for token in parse.syntax().descendants_with_tokens().filter_map(|e| e.into_token()) {
                match token.kind() {
                    WHITESPACE => flat.push(' '),
                    LINE_COMMENT => {
                        let body = token.text().trim_start_matches(['/', '#']);
                        flat.push_str(&format!("/*{}*/", body.replace("*/", "* /").replace("/*", "/ *")));
                    }
                    _ => flat.push_str(token.text()),
                }
            }
            let flat_parse = crate::parse(&flat);
            if !flat_parse.errors().is_empty() || significant_structure(&flat_parse.syntax()) != significant_structure(&parse.syntax()) {
                continue;
            }
            check_properties(&format!("{name} (flattened)"), &flat);
            checked += 1;
        }
        assert!(checked >= 10, "only {checked} corpus files survive flattening");
    }

    /// Corpus files with the whitespace between tokens rewritten at random (same meaning, any
    /// layout): the properties must hold whatever the input layout.
    #[test]
    fn corpus_with_random_whitespace() {
        const GAPS: &[&str] = &["", " ", "   ", "\n", "\n\n\n", "\t", " \n\t  ", "\n\n"];
        let mut random = XorShift::new(0x2545_f491_4f6c_dd1d);
        let mut checked = 0;
        for (name, text) in corpus() {
            let parse = crate::parse(&text);
            let structure = significant_structure(&parse.syntax());
            let tokens: Vec<SyntaxToken> = parse.syntax().descendants_with_tokens().filter_map(|e| e.into_token()).collect();
            for variant in 0..8 {
                let mut messy = String::new();
                for (i, token) in tokens.iter().enumerate() {
                    if token.kind() != WHITESPACE {
                        messy.push_str(token.text());
                        continue;
                    }
                    let mut gap = GAPS[random.below(GAPS.len())];
                    let word = |t: Option<&SyntaxToken>| {
                        t.is_none_or(|t| t.text().ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '"'))
                    };
                    if gap.is_empty() && word(tokens.get(i.wrapping_sub(1))) && word(tokens.get(i + 1)) {
                        gap = " ";
                    }
                    if i > 0 && tokens[i - 1].kind() == LINE_COMMENT && !gap.contains('\n') {
                        gap = "\n";
                    }
                    messy.push_str(gap);
                }
                let messy_parse = crate::parse(&messy);
                if messy_parse.errors().is_empty() && significant_structure(&messy_parse.syntax()) == structure {
                    check_properties(&format!("{name} (variant {variant})"), &messy);
                    checked += 1;
                }
            }
        }
        eprintln!("{checked} variants checked");
        assert!(checked >= 20, "only {checked} variants checked");
    }

    /// Corpus files mutated at random (tokens deleted, duplicated or replaced, comments and line
    /// breaks inserted); the properties must hold for every mutant that still parses.
    #[test]
    fn corpus_mutants() {
        // Mutants tried per file: a few thousand also pass; few enough to keep the suite fast.
        const MUTANTS: usize = 40;
        let inserts: Vec<&str> = "{ } ( ) [ ] , ; = : - ! . x 1 if else \"s\" => -> < > not in && let {} () []"
            .split(' ')
            .chain(["\n", " ", "/* c */", "// c\n", "# c\n", "/* a\n  b */"])
            .collect();
        let mut random = XorShift::new(0x1234_5678_9abc_def1);
        let mut checked = 0;
        for (name, text) in corpus() {
            let tokens: Vec<String> = crate::parse(&text)
                .syntax()
                .descendants_with_tokens()
                .filter_map(|e| e.into_token())
                .map(|t| t.text().to_string())
                .collect();
            for mutant in 0..MUTANTS {
                let mut pieces = tokens.clone();
                for _ in 0..1 + random.below(4) {
                    let at = random.below(pieces.len());
                    match random.below(4) {
                        0 => pieces[at].clear(),
                        1 => pieces.insert(at, pieces[at].clone()),
                        2 => pieces[at] = inserts[random.below(inserts.len())].to_string(),
                        _ => pieces.insert(at, inserts[random.below(inserts.len())].to_string()),
                    }
                }
                let text = pieces.concat();
                if crate::parse(&text).errors().is_empty() {
                    check_properties(&format!("{name} (mutant {mutant})"), &text);
                    checked += 1;
                }
            }
        }
        eprintln!("{checked} mutants checked");
        assert!(checked >= 30, "only {checked} mutants checked");
    }

    /// Never panics, and refuses or formats safely, on every prefix of the corpus files.
    #[test]
    fn prefixes_never_panic() {
        for (name, text) in corpus() {
            let mut cut = 0;
            while cut < text.len() {
                if text.is_char_boundary(cut) {
                    let prefix = &text[..cut];
                    if let Ok(output) = format(prefix) {
                        check_properties(&format!("{name}[..{cut}]"), prefix);
                        assert_eq!(fmt(&output), output);
                    }
                }
                cut += 37;
            }
        }
    }
}
