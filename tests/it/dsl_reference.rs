//! `docs/dsl-reference.md` stays in step with the parser: its EBNF (the ```ebnf blocks) names a
//! production after every node kind, defines every production it uses and quotes every keyword,
//! and every example (the ```sym blocks) parses without a syntax error.

use std::collections::{BTreeMap, BTreeSet};

use symbiont_syntax::SyntaxKind;
use symbiont_tests::repo_root;

const DOC: &str = "docs/dsl-reference.md";

fn doc() -> String {
    let path = repo_root().join(DOC);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A fenced code block: the document line its content starts on, and its content (with the
/// fence's indentation removed, so blocks inside list items work too).
pub(crate) struct Block {
    pub(crate) line: usize,
    pub(crate) text: String,
}

/// The fenced blocks whose info string is `lang` (also used by grammar.rs).
pub(crate) fn blocks(doc: &str, lang: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = doc.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let trimmed = line.trim_start();
        let Some(info) = trimmed.strip_prefix("```") else { continue };
        let indent = line.len() - trimmed.len();
        let mut text = String::new();
        let mut closed = false;
        for (_, inner) in lines.by_ref() {
            if inner.trim_start().starts_with("```") {
                closed = true;
                break;
            }
            let strip = inner.len() - inner.trim_start().len();
            text.push_str(&inner[strip.min(indent)..]);
            text.push('\n');
        }
        assert!(closed, "{DOC}:{}: the code block opened here is never closed", i + 1);
        if info.trim() == lang {
            out.push(Block { line: i + 2, text });
        }
    }
    out
}

#[derive(Debug, PartialEq)]
enum Tok {
    /// A production name, where defined or used.
    Name(String),
    /// A quoted terminal, without its quotes.
    Quoted(String),
    /// `::=`
    Defines,
    /// An operator or bracket of the notation.
    Op,
}

/// Splits W3C-style EBNF into tokens, each with its document line. Comments, character classes
/// (`[a-z]`, `[^"]`) and code points (`#xA`) are skipped.
fn ebnf_tokens(block: &Block) -> Vec<(Tok, usize)> {
    let text = block.text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let line_of = |at: usize| block.line + block.text[..at].matches('\n').count();
    while i < text.len() {
        let c = text[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'/' if text.get(i + 1) == Some(&b'*') => {
                let end = block.text[i + 2..].find("*/").unwrap_or_else(|| panic!("{DOC}:{}: unterminated EBNF comment", line_of(i)));
                i += 2 + end + 2;
            }
            b'\'' | b'"' => {
                let end = block.text[i + 1..]
                    .find(c as char)
                    .unwrap_or_else(|| panic!("{DOC}:{}: unterminated quoted terminal in the EBNF", line_of(i)));
                let quoted = &block.text[i + 1..i + 1 + end];
                assert!(!quoted.contains('\n'), "{DOC}:{}: a quoted terminal spans lines in the EBNF", line_of(i));
                tokens.push((Tok::Quoted(quoted.to_string()), line_of(i)));
                i += end + 2;
            }
            b'[' => {
                let end = block.text[i + 1..]
                    .find(']')
                    .unwrap_or_else(|| panic!("{DOC}:{}: unterminated character class in the EBNF", line_of(i)));
                i += end + 2;
            }
            b'#' if text.get(i + 1) == Some(&b'x') => {
                i += 2;
                while i < text.len() && text[i].is_ascii_hexdigit() {
                    i += 1;
                }
            }
            b':' if block.text[i..].starts_with("::=") => {
                tokens.push((Tok::Defines, line_of(i)));
                i += 3;
            }
            b'|' | b'(' | b')' | b'?' | b'*' | b'+' | b'-' => {
                tokens.push((Tok::Op, line_of(i)));
                i += 1;
            }
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                while i < text.len() && (text[i].is_ascii_alphanumeric() || text[i] == b'_') {
                    i += 1;
                }
                tokens.push((Tok::Name(block.text[start..i].to_string()), line_of(start)));
            }
            _ => {
                let ch = block.text[i..].chars().next().unwrap_or('?');
                panic!(
                    "{DOC}:{}: unexpected `{ch}` in the EBNF (W3C notation: name ::= …, 'terminal', [class], #xN, | ? * + - ( ))",
                    line_of(i)
                );
            }
        }
    }
    tokens
}

/// The grammar of the document: where each production is defined, where each name is used, and
/// every quoted terminal.
struct Grammar {
    defined: BTreeMap<String, usize>,
    used: BTreeMap<String, Vec<usize>>,
    quoted: BTreeSet<String>,
}

fn grammar(doc: &str) -> Grammar {
    let blocks = blocks(doc, "ebnf");
    assert!(!blocks.is_empty(), "{DOC} has no ```ebnf code block");
    let mut grammar = Grammar { defined: BTreeMap::new(), used: BTreeMap::new(), quoted: BTreeSet::new() };
    let mut duplicates = Vec::new();
    for block in &blocks {
        let tokens = ebnf_tokens(block);
        for (i, (token, line)) in tokens.iter().enumerate() {
            match token {
                Tok::Name(name) if tokens.get(i + 1).is_some_and(|(t, _)| *t == Tok::Defines) => {
                    if let Some(first) = grammar.defined.insert(name.clone(), *line) {
                        duplicates.push(format!("`{name}` (lines {first} and {line})"));
                    }
                }
                Tok::Name(name) => grammar.used.entry(name.clone()).or_default().push(*line),
                Tok::Quoted(text) => {
                    grammar.quoted.insert(text.clone());
                }
                Tok::Defines if i == 0 || !matches!(tokens[i - 1].0, Tok::Name(_)) => {
                    panic!("{DOC}:{line}: `::=` without a production name before it")
                }
                Tok::Defines | Tok::Op => {}
            }
        }
    }
    assert!(duplicates.is_empty(), "{DOC} defines these productions more than once: {}", duplicates.join(", "));
    grammar
}

/// The production name of a node kind: its name in snake case (`POLICY_BODY` → `policy_body`).
fn production_name(kind: SyntaxKind) -> String {
    format!("{kind:?}").to_ascii_lowercase()
}

#[test]
fn every_node_kind_has_a_production() {
    let grammar = grammar(&doc());
    let kinds: Vec<SyntaxKind> = SyntaxKind::all_node_kinds().collect();
    assert!(kinds.first() == Some(&SyntaxKind::SOURCE_FILE), "node kinds should start at SOURCE_FILE, found {:?}", kinds.first());
    let missing: Vec<String> = kinds
        .iter()
        .map(|&kind| (kind, production_name(kind)))
        .filter(|(_, name)| !grammar.defined.contains_key(name))
        .map(|(kind, name)| format!("`{name} ::= …` (for {kind:?})"))
        .collect();
    assert!(
        missing.is_empty(),
        "{DOC}: the EBNF has no production for {} node kind(s) the parser builds; add: {}",
        missing.len(),
        missing.join(", ")
    );
}

#[test]
fn every_production_used_is_defined() {
    let grammar = grammar(&doc());
    let undefined: Vec<String> = grammar
        .used
        .iter()
        .filter(|(name, _)| !grammar.defined.contains_key(*name))
        .map(|(name, lines)| format!("`{name}` (used on line {})", lines.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")))
        .collect();
    assert!(undefined.is_empty(), "{DOC}: the EBNF uses productions it never defines: {}", undefined.join("; "));
}

#[test]
fn every_keyword_is_quoted_in_the_grammar() {
    let grammar = grammar(&doc());
    let keywords: Vec<(SyntaxKind, String)> = SyntaxKind::all()
        .filter(|kind| kind.is_keyword())
        .map(|kind| {
            let word = format!("{kind:?}")
                .strip_suffix("_KW")
                .unwrap_or_else(|| panic!("keyword kind {kind:?} is not named WORD_KW"))
                .to_ascii_lowercase();
            assert_eq!(SyntaxKind::keyword(&word), Some(kind), "{kind:?}: `SyntaxKind::keyword(\"{word}\")` does not return it");
            (kind, word)
        })
        .collect();
    assert!(keywords.len() >= 30, "expected the parser's ~32 keywords, found {}", keywords.len());
    let mut missing: Vec<String> =
        keywords.iter().filter(|(_, word)| !grammar.quoted.contains(word)).map(|(kind, word)| format!("'{word}' ({kind:?})")).collect();
    missing.extend(symbiont_syntax::RULE_KINDS.iter().filter(|k| !grammar.quoted.contains(**k)).map(|k| format!("'{k}' (rule kind)")));
    assert!(missing.is_empty(), "{DOC}: keywords the parser recognises that the EBNF never quotes: {}", missing.join(", "));
}

#[test]
fn every_example_parses() {
    let doc = doc();
    let examples = blocks(&doc, "sym");
    assert!(
        examples.len() >= 9,
        "{DOC} should give an example for each of the nine top-level forms, found {} ```sym blocks",
        examples.len()
    );
    let mut failures = Vec::new();
    for example in &examples {
        let parse = symbiont_syntax::parse(&example.text);
        for error in parse.errors() {
            let offset = usize::from(error.range.start());
            let line_in_block = example.text[..offset].matches('\n').count();
            let source = example.text.lines().nth(line_in_block).unwrap_or("").trim();
            failures.push(format!("{DOC}:{}: {} (in `{source}`)", example.line + line_in_block, error.message));
        }
    }
    assert!(failures.is_empty(), "examples in {DOC} do not parse:\n{}", failures.join("\n"));
}

#[test]
fn the_ebnf_reader_sees_what_is_written() {
    let block = Block { line: 1, text: "a ::= 'x' b? /* c */ [^\"d] #xA (e | \"'\")*\nb ::= a - e\n".to_string() };
    let grammar_tokens: Vec<Tok> = ebnf_tokens(&block).into_iter().map(|(t, _)| t).collect();
    let names: Vec<&str> = grammar_tokens.iter().filter_map(|t| if let Tok::Name(n) = t { Some(n.as_str()) } else { None }).collect();
    assert_eq!(names, ["a", "b", "e", "b", "a", "e"]);
    assert!(grammar_tokens.contains(&Tok::Quoted("x".into())) && grammar_tokens.contains(&Tok::Quoted("'".into())));
}
