//! Between the analysis (byte offsets, paths) and the protocol (UTF-16 line/character positions,
//! URIs). Every position the server sends or receives goes through here.

use std::{
    cell::RefCell,
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use symbiont_analysis::{
    ide::{self, Analysis},
    Diagnostic, LineCol, LineIndex, Severity,
};
use symbiont_syntax::{TextRange, TextSize};
use tower_lsp_server::{jsonrpc, ls_types as lsp};

/// Where the analysis's paths are on disk: files under the workspace root are known to the
/// analysis by their path relative to it (so messages read `agents/a.sym`), others by their
/// absolute path.
#[derive(Debug, Clone, Default)]
pub struct Paths {
    pub root: Option<PathBuf>,
}

impl Paths {
    pub fn analysis_path(&self, disk: &Path) -> PathBuf {
        if let Some(root) = &self.root {
            if let Ok(relative) = disk.strip_prefix(root) {
                if !relative.as_os_str().is_empty() {
                    return relative.to_path_buf();
                }
            }
        }
        disk.to_path_buf()
    }

    pub fn disk_path(&self, path: &Path) -> Option<PathBuf> {
        if path.is_absolute() {
            return Some(path.to_path_buf());
        }
        if path.starts_with(UNTITLED) {
            return None;
        }
        self.root.as_ref().map(|root| root.join(path))
    }
}

/// Documents without a file (`untitled:`) live under this pseudo-directory.
const UNTITLED: &str = "untitled:";

/// The analysis path of a document URI. `language_id` gives documents without a file the
/// extension their language has.
pub fn path_of_uri(paths: &Paths, uri: &lsp::Uri, language_id: Option<&str>) -> Option<PathBuf> {
    if uri.scheme().as_str().eq_ignore_ascii_case("file") {
        let path = uri.to_file_path()?;
        if !path.is_absolute() {
            return None;
        }
        return Some(paths.analysis_path(&path));
    }
    let extension = match language_id {
        Some("python") => ".py",
        Some("rust") => ".rs",
        Some("javascript" | "javascriptreact") => ".js",
        Some("typescript") => ".ts",
        Some("typescriptreact") => ".tsx",
        _ => ".sym",
    };
    let name: String = uri.as_str().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect();
    let name = if Path::new(&name).extension().is_some() { name } else { format!("{name}{extension}") };
    Some(Path::new(UNTITLED).join(name))
}

/// The URI of an analysis path: the one the client opened it by, else the file's.
pub fn uri_of_path(paths: &Paths, open: &HashMap<PathBuf, lsp::Uri>, path: &Path) -> Option<lsp::Uri> {
    if let Some(uri) = open.get(path) {
        return Some(uri.clone());
    }
    lsp::Uri::from_file_path(paths.disk_path(path)?)
}

pub fn invalid_params(message: impl Into<String>) -> jsonrpc::Error {
    jsonrpc::Error::invalid_params(message.into())
}

pub fn request_failed(message: impl Into<String>) -> jsonrpc::Error {
    jsonrpc::Error { code: jsonrpc::ErrorCode::ServerError(-32803), message: message.into().into(), data: None }
}

/// One file's text with its line index.
pub struct FileText {
    pub text: Arc<str>,
    pub index: LineIndex,
}

impl FileText {
    pub fn new(text: Arc<str>) -> Self {
        let index = LineIndex::new(&text);
        FileText { text, index }
    }

    pub fn position(&self, offset: TextSize) -> lsp::Position {
        let LineCol { line, col } = self.index.line_col_utf16(&self.text, offset);
        lsp::Position { line, character: col }
    }

    pub fn range(&self, range: TextRange) -> lsp::Range {
        lsp::Range { start: self.position(range.start()), end: self.position(range.end()) }
    }

    /// The byte offset of a protocol position. A character past the end of its line means the
    /// line's end (as the protocol says); a line past the end of the file is an error.
    pub fn offset(&self, position: lsp::Position) -> jsonrpc::Result<TextSize> {
        if position.line as usize >= self.index.line_count() {
            return Err(invalid_params(format!(
                "position {}:{} is out of range: the document has {} lines",
                position.line,
                position.character,
                self.index.line_count()
            )));
        }
        Ok(self.index.offset_utf16(&self.text, LineCol { line: position.line, col: position.character }))
    }

    pub fn text_range(&self, range: lsp::Range) -> jsonrpc::Result<TextRange> {
        let (start, end) = (self.offset(range.start)?, self.offset(range.end)?);
        Ok(if start <= end { TextRange::new(start, end) } else { TextRange::new(end, start) })
    }
}

/// What a read request works on: a snapshot, the document it is about, and the means to turn any
/// file's offsets into protocol locations.
pub struct Ctx {
    pub snap: Analysis,
    pub path: PathBuf,
    pub file: FileText,
    pub paths: Paths,
    pub open: HashMap<PathBuf, lsp::Uri>,
    others: RefCell<HashMap<PathBuf, Option<Arc<FileText>>>>,
}

impl Ctx {
    pub fn new(snap: Analysis, path: PathBuf, text: Arc<str>, paths: Paths, open: HashMap<PathBuf, lsp::Uri>) -> Self {
        Ctx { snap, path, file: FileText::new(text), paths, open, others: RefCell::default() }
    }

    pub fn uri(&self, path: &Path) -> Option<lsp::Uri> {
        uri_of_path(&self.paths, &self.open, path)
    }

    /// The text of another file of the snapshot (cached for the request).
    pub fn text_of(&self, path: &Path) -> Option<Arc<FileText>> {
        if let Some(cached) = self.others.borrow().get(path) {
            return cached.clone();
        }
        let text = self.snap.file_text(path).map(|t| Arc::new(FileText::new(t)));
        self.others.borrow_mut().insert(path.to_path_buf(), text.clone());
        text
    }

    pub fn range_in(&self, path: &Path, range: TextRange) -> Option<lsp::Range> {
        if path == self.path {
            return Some(self.file.range(range));
        }
        Some(self.text_of(path)?.range(range))
    }

    pub fn location(&self, path: &Path, range: TextRange) -> Option<lsp::Location> {
        Some(lsp::Location { uri: self.uri(path)?, range: self.range_in(path, range)? })
    }

    /// Edits across files as a `WorkspaceEdit` with `changes`.
    pub fn workspace_edit(&self, edits: &[symbiont_analysis::FileEdit]) -> lsp::WorkspaceEdit {
        let mut changes: HashMap<lsp::Uri, Vec<lsp::TextEdit>> = HashMap::new();
        for edit in edits {
            let (Some(uri), Some(range)) = (self.uri(&edit.path), self.range_in(&edit.path, edit.range())) else { continue };
            changes.entry(uri).or_default().push(lsp::TextEdit { range, new_text: edit.edit.new_text.clone() });
        }
        lsp::WorkspaceEdit { changes: Some(changes), ..Default::default() }
    }

    /// Files created (each must not exist yet, else the client applies nothing) with their
    /// content, then edits of existing files, as `documentChanges`.
    pub fn creating_workspace_edit(&self, create: &[(PathBuf, String)], edits: &[symbiont_analysis::FileEdit]) -> lsp::WorkspaceEdit {
        let unversioned = |uri: lsp::Uri| lsp::OptionalVersionedTextDocumentIdentifier { uri, version: None };
        let mut operations = Vec::new();
        for (path, content) in create {
            let Some(uri) = self.uri(path) else { continue };
            let options = lsp::CreateFileOptions { overwrite: Some(false), ignore_if_exists: Some(false) };
            operations.push(lsp::DocumentChangeOperation::Op(lsp::ResourceOp::Create(lsp::CreateFile {
                uri: uri.clone(),
                options: Some(options),
                annotation_id: None,
            })));
            let start = lsp::Position { line: 0, character: 0 };
            let insert = lsp::TextEdit { range: lsp::Range { start, end: start }, new_text: content.clone() };
            operations.push(lsp::DocumentChangeOperation::Edit(lsp::TextDocumentEdit {
                text_document: unversioned(uri),
                edits: vec![lsp::OneOf::Left(insert)],
            }));
        }
        let mut changes: Vec<(lsp::Uri, Vec<lsp::TextEdit>)> = self.workspace_edit(edits).changes.unwrap_or_default().into_iter().collect();
        changes.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        for (uri, edits) in changes {
            operations.push(lsp::DocumentChangeOperation::Edit(lsp::TextDocumentEdit {
                text_document: unversioned(uri),
                edits: edits.into_iter().map(lsp::OneOf::Left).collect(),
            }));
        }
        lsp::WorkspaceEdit { document_changes: Some(lsp::DocumentChanges::Operations(operations)), ..Default::default() }
    }

    pub fn diagnostic(&self, d: &Diagnostic) -> lsp::Diagnostic {
        diagnostic(d, &self.file, |path, range| self.location(path, range))
    }
}

pub fn severity(severity: Severity) -> lsp::DiagnosticSeverity {
    match severity {
        Severity::Error => lsp::DiagnosticSeverity::ERROR,
        Severity::Warning => lsp::DiagnosticSeverity::WARNING,
        Severity::Info => lsp::DiagnosticSeverity::INFORMATION,
        Severity::Hint => lsp::DiagnosticSeverity::HINT,
    }
}

/// A diagnostic of the file `file`; `location` places related information in any file.
pub fn diagnostic(d: &Diagnostic, file: &FileText, mut location: impl FnMut(&Path, TextRange) -> Option<lsp::Location>) -> lsp::Diagnostic {
    let related: Vec<lsp::DiagnosticRelatedInformation> = d
        .related
        .iter()
        .filter_map(|r| Some(lsp::DiagnosticRelatedInformation { location: location(&r.path, r.range)?, message: r.message.clone() }))
        .collect();
    lsp::Diagnostic {
        range: file.range(d.range),
        severity: Some(severity(d.severity)),
        code: Some(lsp::NumberOrString::String(d.rule.code.to_string())),
        code_description: None,
        source: Some("symbiont".into()),
        message: d.message.clone(),
        related_information: (!related.is_empty()).then_some(related),
        tags: None,
        data: None,
    }
}

pub fn symbol_kind(kind: ide::SymbolKind) -> lsp::SymbolKind {
    match kind {
        ide::SymbolKind::Def(def) => def_symbol_kind(def),
        ide::SymbolKind::Metadata => lsp::SymbolKind::NAMESPACE,
        ide::SymbolKind::Rule => lsp::SymbolKind::KEY,
        ide::SymbolKind::Field => lsp::SymbolKind::FIELD,
        ide::SymbolKind::Function => lsp::SymbolKind::FUNCTION,
    }
}

pub fn def_symbol_kind(kind: symbiont_analysis::items::DefKind) -> lsp::SymbolKind {
    use symbiont_analysis::items::DefKind;
    match kind {
        DefKind::Agent => lsp::SymbolKind::CLASS,
        DefKind::Policy => lsp::SymbolKind::INTERFACE,
        DefKind::Type => lsp::SymbolKind::STRUCT,
        DefKind::Function => lsp::SymbolKind::FUNCTION,
        DefKind::Schedule => lsp::SymbolKind::EVENT,
        DefKind::Channel => lsp::SymbolKind::MODULE,
        DefKind::Memory => lsp::SymbolKind::OBJECT,
        DefKind::Webhook => lsp::SymbolKind::EVENT,
    }
}

pub fn completion_kind(kind: ide::CompletionKind) -> lsp::CompletionItemKind {
    match kind {
        ide::CompletionKind::Keyword => lsp::CompletionItemKind::KEYWORD,
        ide::CompletionKind::Operation => lsp::CompletionItemKind::FUNCTION,
        ide::CompletionKind::Agent => lsp::CompletionItemKind::CLASS,
        ide::CompletionKind::Policy => lsp::CompletionItemKind::INTERFACE,
        ide::CompletionKind::Type => lsp::CompletionItemKind::STRUCT,
        ide::CompletionKind::Attribute => lsp::CompletionItemKind::PROPERTY,
        ide::CompletionKind::Value => lsp::CompletionItemKind::ENUM_MEMBER,
        ide::CompletionKind::Snippet => lsp::CompletionItemKind::SNIPPET,
    }
}

/// Semantic tokens, relative-encoded; a token spanning lines (a block comment) becomes one token
/// per line, since clients need not support multi-line tokens.
pub fn semantic_tokens(file: &FileText, tokens: &[ide::SemanticToken]) -> Vec<lsp::SemanticToken> {
    let mut out = Vec::with_capacity(tokens.len());
    let (mut prev_line, mut prev_start) = (0u32, 0u32);
    let mut push = |start: lsp::Position, length: u32, token: &ide::SemanticToken| {
        if length == 0 {
            return;
        }
        let delta_line = start.line - prev_line;
        let delta_start = if delta_line == 0 { start.character - prev_start } else { start.character };
        out.push(lsp::SemanticToken {
            delta_line,
            delta_start,
            length,
            token_type: token.kind.index(),
            token_modifiers_bitset: token.modifiers.bits(),
        });
        (prev_line, prev_start) = (start.line, start.character);
    };
    for token in tokens {
        let text = &file.text[token.range];
        let mut offset = token.range.start();
        for piece in text.split_inclusive('\n') {
            let content = piece.trim_end_matches(['\n', '\r']);
            push(file.position(offset), content.encode_utf16().count() as u32, token);
            offset += TextSize::of(piece);
        }
    }
    out
}

pub fn semantic_legend() -> lsp::SemanticTokensLegend {
    lsp::SemanticTokensLegend {
        token_types: ide::TokenType::LEGEND.iter().map(|t| lsp::SemanticTokenType::new(t)).collect(),
        token_modifiers: ide::TokenModifiers::LEGEND.iter().map(|m| lsp::SemanticTokenModifier::new(m)).collect(),
    }
}

/// Line-level edits turning `old` into `new`, keeping only the changes that touch lines
/// `lines` of `old` (all of them when `None`): formatting returns the smallest edits, so cursors
/// and marks elsewhere stay where they are.
pub fn diff_edits(file: &FileText, new: &str, lines: Option<std::ops::RangeInclusive<u32>>) -> Vec<lsp::TextEdit> {
    let old: &str = &file.text;
    let diff = similar::TextDiff::configure().algorithm(similar::Algorithm::Myers).diff_lines(old, new);
    let old_lines: Vec<&str> = old.split_inclusive('\n').collect();
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    let line_offset = |lines: &[&str], i: usize| -> usize { lines[..i].iter().map(|l| l.len()).sum() };
    let mut edits = Vec::new();
    for op in diff.ops() {
        let (old_range, new_range) = (op.old_range(), op.new_range());
        if matches!(op, similar::DiffOp::Equal { .. }) {
            continue;
        }
        if let Some(lines) = &lines {
            // A change touches the range when its old lines overlap it (an insertion: when it
            // sits inside it or at its edges).
            let (first, last) = (old_range.start as u32, old_range.end.max(old_range.start + 1) as u32 - 1);
            if last < *lines.start() || first > *lines.end() + u32::from(old_range.is_empty()) {
                continue;
            }
        }
        let start = line_offset(&old_lines, old_range.start);
        let end = start + old_lines[old_range.clone()].iter().map(|l| l.len()).sum::<usize>();
        let new_text: String = new_lines[new_range].concat();
        let range = TextRange::new(TextSize::from(start as u32), TextSize::from(end as u32));
        edits.push(lsp::TextEdit { range: file.range(range), new_text });
    }
    edits
}
