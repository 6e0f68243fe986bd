//! Navigation: the symbol under the cursor, its definitions, its references, renaming it, and the
//! workspace's symbols by name.

use std::path::{Path, PathBuf};

use symbiont_syntax::{SyntaxKind, TextRange, TextSize};

use super::snapshot::{Analysis, Cancellable};
use crate::{
    db::SourceFile,
    diagnostics::FileEdit,
    items::{DefKind, ItemDef},
    resolve::workspace_index,
    summary::{file_items, file_uses},
};

/// A place to jump to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NavTarget {
    pub path: PathBuf,
    pub name: String,
    pub kind: DefKind,
    /// The whole definition.
    pub full_range: TextRange,
    /// The name in it.
    pub focus_range: TextRange,
}

impl Analysis {
    /// The workspace symbol a position names: a definition's name or a reference to one.
    pub(crate) fn symbol_at(&self, path: &Path, offset: TextSize) -> Option<(DefKind, String, TextRange)> {
        let file = self.sym_file(path)?;
        let items = file_items(&self.db, file);
        if let Some(def) = items.defs.iter().find(|d| d.name_range.contains_inclusive(offset)) {
            return Some((def.kind, def.name.clone(), def.name_range));
        }
        if let Some(r) = items.references.iter().chain(file_uses(&self.db, file)).find(|r| r.range.contains_inclusive(offset)) {
            return Some((r.namespace, r.name.clone(), r.range));
        }
        None
    }

    fn nav(&self, file: SourceFile, def: &ItemDef) -> NavTarget {
        NavTarget {
            path: file.path(&self.db).clone(),
            name: def.name.clone(),
            kind: def.kind,
            full_range: def.range,
            focus_range: def.name_range,
        }
    }

    fn definitions(&self, kind: DefKind, name: &str) -> Vec<NavTarget> {
        let index = workspace_index(&self.db, self.workspace);
        index
            .lookup(kind, name)
            .iter()
            .flat_map(|&f| file_items(&self.db, f).defs.iter().filter(|d| d.kind == kind && d.name == name).map(move |d| self.nav(f, d)))
            .collect()
    }

    pub fn goto_definition(&self, path: &Path, offset: TextSize) -> Cancellable<Vec<NavTarget>> {
        self.catch(std::panic::AssertUnwindSafe(|| match self.symbol_at(path, offset) {
            Some((kind, name, _)) => self.definitions(kind, &name),
            None => Vec::new(),
        }))
    }

    /// Every definition of and reference to the symbol at the position, across the workspace.
    pub fn find_references(&self, path: &Path, offset: TextSize, include_declaration: bool) -> Cancellable<Vec<(PathBuf, TextRange)>> {
        self.catch(std::panic::AssertUnwindSafe(|| {
            let Some((kind, name, _)) = self.symbol_at(path, offset) else { return Vec::new() };
            self.occurrences(kind, &name, include_declaration)
        }))
    }

    fn occurrences(&self, kind: DefKind, name: &str, include_declaration: bool) -> Vec<(PathBuf, TextRange)> {
        let mut out = Vec::new();
        for &file in self.workspace.files(&self.db) {
            let items = file_items(&self.db, file);
            let path = file.path(&self.db);
            if include_declaration {
                out.extend(items.defs.iter().filter(|d| d.kind == kind && d.name == name).map(|d| (path.clone(), d.name_range)));
            }
            let references = items.references.iter().chain(file_uses(&self.db, file));
            out.extend(references.filter(|r| r.namespace == kind && r.name == name).map(|r| (path.clone(), r.range)));
        }
        out.sort_by(|a, b| (&a.0, a.1.start()).cmp(&(&b.0, b.1.start())));
        out
    }

    /// The range a rename at the position would change, when the position names a symbol.
    pub fn prepare_rename(&self, path: &Path, offset: TextSize) -> Cancellable<Option<TextRange>> {
        self.catch(std::panic::AssertUnwindSafe(|| {
            let (_, name, range) = self.symbol_at(path, offset)?;
            let text = self.file_text(path)?;
            // A quoted reference (`agent: "reviewer"`) renames inside its quotes.
            let written = &text[range];
            Some(if written.starts_with('"') {
                TextRange::at(range.start() + TextSize::from(1), TextSize::of(name.as_str()))
            } else {
                range
            })
        }))
    }

    pub fn rename(&self, path: &Path, offset: TextSize, new_name: &str) -> Cancellable<Result<Vec<FileEdit>, String>> {
        self.catch(std::panic::AssertUnwindSafe(|| {
            let valid = new_name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && new_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && SyntaxKind::keyword(new_name).is_none();
            if !valid {
                return Err(format!("`{new_name}` is not a valid name"));
            }
            let Some((kind, name, _)) = self.symbol_at(path, offset) else { return Err("nothing to rename here".into()) };
            if !self.definitions(kind, new_name).is_empty() {
                return Err(format!("a {} named `{new_name}` already exists", kind.as_str()));
            }
            let mut edits = Vec::new();
            for (file_path, range) in self.occurrences(kind, &name, true) {
                let Some(text) = self.file_text(&file_path) else { continue };
                let written = &text[range];
                let (range, new_text) = if written.starts_with('"') {
                    (TextRange::at(range.start() + TextSize::from(1), TextSize::of(name.as_str())), new_name.to_string())
                } else {
                    (range, new_name.to_string())
                };
                edits.push(FileEdit::new(file_path, range, new_text));
            }
            Ok(edits)
        }))
    }

    /// Definitions whose name contains `query` (case-insensitive).
    pub fn workspace_symbols(&self, query: &str) -> Cancellable<Vec<NavTarget>> {
        self.catch(std::panic::AssertUnwindSafe(|| {
            let query = query.to_ascii_lowercase();
            let mut out = Vec::new();
            for &file in self.workspace.files(&self.db) {
                for def in &file_items(&self.db, file).defs {
                    if def.name.to_ascii_lowercase().contains(&query) {
                        out.push(self.nav(file, def));
                    }
                }
            }
            out
        }))
    }
}
