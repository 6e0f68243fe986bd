//! The benchmark workload: the corpus files repeated, with every item name made unique per copy,
//! split into files of a realistic size.
//!
//! A name is any word that follows an item keyword (`agent X`, `policy X`, `memory X`,
//! `webhook X`, `schedule X`, `channel X`, `type X`, `function X`). In copy `N` every occurrence of
//! such a name — as a word, or as the whole content of a string such as `"reviewer"` — becomes
//! `X_N`, so definitions and the references to them stay consistent and the analysis sees no
//! duplicate across copies.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::Arc,
};

use symbiont_syntax::{lexer, SyntaxKind};

const ITEM_WORDS: &[&str] = &["agent", "policy", "memory", "webhook", "schedule", "channel", "type", "function"];

/// The corpus directory: `$SYMBIONT_CORPUS`, or `../shared/corpus/upstream-agents` beside the
/// repository root.
pub fn corpus_dir() -> PathBuf {
    std::env::var_os("SYMBIONT_CORPUS").map(PathBuf::from).unwrap_or_else(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("bench/ lives in the repository");
        root.join("../shared/corpus/upstream-agents")
    })
}

enum Piece {
    Text(String),
    /// A renamed name; written `name_N` in copy `N`.
    Name(String),
}

/// One corpus file, cut where names are to be renamed.
struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    fn instantiate(&self, copy: usize, out: &mut String) {
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Name(name) => {
                    out.push_str(name);
                    out.push('_');
                    out.push_str(&copy.to_string());
                }
            }
        }
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
}

pub struct Workload {
    templates: Vec<Template>,
    /// Bytes of one copy of the corpus, before renaming.
    copy_bytes: usize,
}

/// Splits `text` into tokens with their text, trivia included.
fn tokens(text: &str) -> Vec<(SyntaxKind, &str)> {
    lexer::tokens_with_text(text)
}

impl Workload {
    pub fn from_corpus_dir(dir: &Path) -> Result<Workload, String> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read the corpus at {} (set SYMBIONT_CORPUS to override): {e}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("sym" | "symbi")))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(format!("no .sym or .symbi files in {}", dir.display()));
        }
        let texts: Vec<String> =
            paths.iter().map(|p| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))).collect::<Result<_, _>>()?;
        Ok(Workload::from_texts(&texts))
    }

    pub fn from_texts(texts: &[String]) -> Workload {
        // Every name defined anywhere in the corpus.
        let mut names = BTreeSet::new();
        for text in texts {
            let significant: Vec<(SyntaxKind, &str)> = tokens(text).into_iter().filter(|(k, _)| !k.is_trivia()).collect();
            for pair in significant.windows(2) {
                if let [(SyntaxKind::IDENT, word), (SyntaxKind::IDENT, name)] = pair {
                    if ITEM_WORDS.contains(word) && SyntaxKind::keyword(name).is_none() {
                        names.insert(name.to_string());
                    }
                }
            }
        }
        let templates = texts
            .iter()
            .map(|text| {
                let mut pieces: Vec<Piece> = Vec::new();
                let push_text = |pieces: &mut Vec<Piece>, s: &str| match pieces.last_mut() {
                    Some(Piece::Text(last)) => last.push_str(s),
                    _ => pieces.push(Piece::Text(s.to_string())),
                };
                for (kind, s) in tokens(text) {
                    match kind {
                        SyntaxKind::IDENT if names.contains(s) => pieces.push(Piece::Name(s.to_string())),
                        SyntaxKind::STRING if s.len() >= 2 && s.ends_with('"') && names.contains(&s[1..s.len() - 1]) => {
                            push_text(&mut pieces, "\"");
                            pieces.push(Piece::Name(s[1..s.len() - 1].to_string()));
                            push_text(&mut pieces, "\"");
                        }
                        _ => push_text(&mut pieces, s),
                    }
                }
                Template { pieces }
            })
            .collect();
        Workload { templates, copy_bytes: texts.iter().map(String::len).sum() }
    }

    pub fn file_count(&self) -> usize {
        self.templates.len()
    }

    /// How many copies of the corpus [`Workload::build`] makes for `target_bytes`.
    pub fn copies_for(&self, target_bytes: usize) -> usize {
        target_bytes.div_ceil(self.copy_bytes.max(1)).max(1)
    }

    /// Whole copies of the corpus until `target_bytes` is reached, cut into files of at least
    /// `file_bytes` each (a corpus file is never split), named `workload/partNNNN.symbi`.
    pub fn build(&self, target_bytes: usize, file_bytes: usize) -> Vec<(PathBuf, Arc<str>)> {
        let mut files = Vec::new();
        let mut current = String::with_capacity(file_bytes + 16 * 1024);
        let flush = |current: &mut String, files: &mut Vec<(PathBuf, Arc<str>)>| {
            if !current.is_empty() {
                let path = PathBuf::from(format!("workload/part{:04}.symbi", files.len()));
                files.push((path, Arc::from(current.as_str())));
                current.clear();
            }
        };
        for copy in 0..self.copies_for(target_bytes) {
            for template in &self.templates {
                template.instantiate(copy, &mut current);
                if current.len() >= file_bytes {
                    flush(&mut current, &mut files);
                }
            }
        }
        flush(&mut current, &mut files);
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_definitions_and_references_per_copy() {
        let text = "agent a(x: T) -> T { policies = [p] }\npolicy p { allow: [\"a\"] }\nwebhook w { agent \"a\" }\n".to_string();
        let workload = Workload::from_texts(&[text]);
        let files = workload.build(1, 1);
        assert_eq!(
            &*files[0].1,
            "agent a_0(x: T) -> T { policies = [p_0] }\npolicy p_0 { allow: [\"a_0\"] }\nwebhook w_0 { agent \"a_0\" }\n"
        );
    }
}
