//! Completion: what may be written at the cursor (keywords, operations, workspace names,
//! attributes, snippets), and how a name completed in a list is written as one of its elements.

use std::path::Path;

use symbiont_policy::catalogue;
use symbiont_syntax::{
    ast::{self, AstNode},
    SyntaxKind, SyntaxNode, SyntaxToken, TextRange, TextSize,
};

use super::snapshot::Analysis;
use crate::{db, items::DefKind, resolve::workspace_index, settings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionKind {
    Keyword,
    Operation,
    Agent,
    Policy,
    Type,
    Attribute,
    Value,
    /// A template of a whole construct, with placeholders.
    Snippet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub label: String,
    pub kind: CompletionKind,
    pub detail: String,
    /// What to insert instead of the label, in the protocol's snippet syntax (`${1:name}`).
    pub snippet: Option<String>,
    /// The range to replace (the word typed so far, or empty at the cursor) and the text to write
    /// there, when the label alone would not fit: a name in a list, quoted and separated from its
    /// neighbours.
    pub edit: Option<(TextRange, String)>,
}

const ITEM_KEYWORDS: &[&str] = &["agent", "policy", "metadata", "type", "function", "schedule", "channel", "memory", "webhook"];
const TIERS: &[&str] = &["Tier1", "Tier2", "Tier3", "auto"];

pub(super) fn completions(analysis: &Analysis, path: &Path, offset: TextSize) -> Vec<Completion> {
    let item = |label: &str, kind, detail: &str| Completion {
        label: label.to_string(),
        kind,
        detail: detail.to_string(),
        snippet: None,
        edit: None,
    };
    let Some(file) = analysis.sym_file(path) else { return Vec::new() };
    let root = db::parse(&analysis.db, file).syntax();
    let text = file.text(&analysis.db);
    let offset = offset.min(root.text_range().end());
    // The token just before the cursor decides the context.
    let before = root.token_at_offset(offset).left_biased().filter(|t| t.text_range().start() < offset);
    let Some(token) = before else { return top_level_items() };
    let line_prefix = &text[text[..usize::from(offset)].rfind('\n').map_or(0, |i| i + 1)..usize::from(offset)];
    let index = workspace_index(&analysis.db, analysis.workspace);
    let names = |kind: DefKind, ck: CompletionKind| -> Vec<Completion> { index.names(kind).map(|n| item(n, ck, kind.as_str())).collect() };
    let ancestors: Vec<SyntaxKind> = token.parent_ancestors().map(|a| a.kind()).collect();
    let has = |k: SyntaxKind| ancestors.contains(&k);
    let config = &db::config(&analysis.db, analysis.workspace).0;
    let operations = || -> Vec<Completion> {
        catalogue::Operations::new(&config.operations).names().map(|n| item(n, CompletionKind::Operation, "operation")).collect()
    };

    if line_prefix.trim_end().ends_with("extends") || line_prefix.contains(" extends ") {
        return names(DefKind::Policy, CompletionKind::Policy);
    }
    if inside_field(&token, "policies") {
        return as_list_elements(names(DefKind::Policy, CompletionKind::Policy), &root, offset, false);
    }
    if inside_field(&token, "capabilities") || has(SyntaxKind::RULE) {
        return as_list_elements(operations(), &root, offset, true);
    }
    if has(SyntaxKind::POLICY_BODY) {
        return symbiont_syntax::RULE_KINDS.iter().map(|k| item(&format!("{k}:"), CompletionKind::Keyword, "rule")).collect();
    }
    if has(SyntaxKind::ENTRY) && line_prefix.trim_start().starts_with("agent") {
        return names(DefKind::Agent, CompletionKind::Agent);
    }
    if has(SyntaxKind::WITH_ATTR_LIST) || line_prefix.trim_start().starts_with("with") {
        if line_prefix.trim_end().ends_with("sandbox =") || line_prefix.trim_end().ends_with("sandbox = \"") {
            return TIERS.iter().map(|t| item(t, CompletionKind::Value, "isolation tier")).collect();
        }
        return settings::WITH_ATTRIBUTES.iter().map(|s| item(s.name, CompletionKind::Attribute, s.doc)).collect();
    }
    if inside_field(&token, "security") {
        if line_prefix.trim_end().ends_with("tier:") {
            return TIERS.iter().map(|t| item(t, CompletionKind::Value, "isolation tier")).collect();
        }
        return settings::SECURITY_FIELDS.iter().map(|s| item(s.name, CompletionKind::Attribute, s.doc)).collect();
    }
    if has(SyntaxKind::PARAM_LIST) || has(SyntaxKind::RET_TYPE) || has(SyntaxKind::TYPE_DEF) {
        let mut types = names(DefKind::Type, CompletionKind::Type);
        types.extend(
            ["String", "int", "float", "bool", "List", "Map", "Result", "JSON"]
                .iter()
                .map(|t| item(t, CompletionKind::Type, "built-in type")),
        );
        return types;
    }
    if has(SyntaxKind::AGENT_BODY) {
        let mut fields: Vec<Completion> = ["capabilities", "policies", "implementation", "security"]
            .iter()
            .map(|f| item(&format!("{f} = "), CompletionKind::Attribute, "agent field"))
            .collect();
        fields.extend(["policy", "function", "with"].iter().map(|k| item(k, CompletionKind::Keyword, "agent member")));
        return fields;
    }
    top_level_items()
}

/// What starts a top-level item: each keyword, and a whole new agent or policy as a snippet.
fn top_level_items() -> Vec<Completion> {
    let keyword =
        |k: &&str| Completion { label: k.to_string(), kind: CompletionKind::Keyword, detail: "item".into(), snippet: None, edit: None };
    let mut items: Vec<Completion> = ITEM_KEYWORDS.iter().map(keyword).collect();
    items.extend(ITEM_SNIPPETS.iter().map(|(label, detail, snippet)| Completion {
        label: label.to_string(),
        kind: CompletionKind::Snippet,
        detail: detail.to_string(),
        snippet: Some(snippet.to_string()),
        edit: None,
    }));
    items
}

/// A new agent as `symbiont new agent` writes one (its own policy allowing what it declares, so
/// it can do something under a default-deny base policy), and a new policy. The implementation is
/// left out: the "Generate implementation" action writes it.
const ITEM_SNIPPETS: &[(&str, &str, &str)] = &[
    (
        "agent",
        "new agent (snippet)",
        "agent ${1:name}(input: String) -> String {\n    capabilities = [${2:\"file_read\"}]\n    security = { tier: ${3|Tier1,Tier2,Tier3|}, memory: 256MB, cpus: 1, timeout: 30s }\n\n    policy ${1:name}_capabilities {\n        allow: [${2:\"file_read\"}]\n    }\n}\n$0",
    ),
    ("policy", "new policy (snippet)", "policy ${1:name} {\n    allow: [${2:\"file_read\"}]\n    deny: [${3:\"spawn_process\"}]\n}\n$0"),
];

/// Names completed in a list (`[…]` of operations or policies) written as elements: quoted when
/// `quote` (operations are written as strings), replacing the word typed so far, with `, ` before
/// when an element precedes and after when one follows, so that completing right before an
/// existing name (`[$0"read"]`) gives `["file_read", "read"]`. Inside a string being typed the
/// quotes are there already: the name alone replaces what is typed in it.
fn as_list_elements(items: Vec<Completion>, root: &SyntaxNode, offset: TextSize, quote: bool) -> Vec<Completion> {
    let before = root.token_at_offset(offset).left_biased().filter(|t| t.text_range().start() < offset);
    match &before {
        // In a string: what is typed in it so far becomes the name.
        Some(t) if t.kind() == SyntaxKind::STRING && string_open_at(t, offset) => {
            let typed = TextRange::new(t.text_range().start() + TextSize::from(1), offset);
            return items.into_iter().map(|c| Completion { edit: Some((typed, c.label.clone())), ..c }).collect();
        }
        // In the middle of a word: the client's own insertion.
        Some(t) if t.kind() == SyntaxKind::IDENT && t.text_range().end() > offset => return items,
        _ => {}
    }
    let typed = before.clone().filter(|t| t.kind() == SyntaxKind::IDENT);
    let previous = match (&typed, before) {
        (Some(word), _) => significant(word.clone(), SyntaxToken::prev_token),
        (None, Some(t)) if t.kind().is_trivia() => significant(t, SyntaxToken::prev_token),
        (None, t) => t,
    };
    let next = match &typed {
        Some(word) => significant(word.clone(), SyntaxToken::next_token),
        None => root.token_at_offset(offset).right_biased().and_then(|t| {
            if t.kind().is_trivia() {
                significant(t, SyntaxToken::next_token)
            } else {
                Some(t)
            }
        }),
    };
    let range = typed.map_or(TextRange::empty(offset), |word| word.text_range());
    with_separators(items, range, previous, next, quote)
}

fn with_separators(
    mut items: Vec<Completion>,
    range: TextRange,
    previous: Option<SyntaxToken>,
    next: Option<SyntaxToken>,
    quote: bool,
) -> Vec<Completion> {
    let element = |t: &Option<SyntaxToken>| t.as_ref().is_some_and(|t| matches!(t.kind(), SyntaxKind::STRING | SyntaxKind::IDENT));
    let lead = if element(&previous) { ", " } else { "" };
    // A space already before the next element is kept.
    let trail = match &next {
        Some(t) if element(&next) && t.text_range().start() > range.end() => ",",
        _ if element(&next) => ", ",
        _ => "",
    };
    for item in &mut items {
        let name = if quote { format!("\"{}\"", item.label) } else { item.label.clone() };
        item.edit = Some((range, format!("{lead}{name}{trail}")));
    }
    items
}

/// The nearest token in a direction that is not whitespace or a comment.
fn significant(token: SyntaxToken, step: fn(&SyntaxToken) -> Option<SyntaxToken>) -> Option<SyntaxToken> {
    let mut at = step(&token)?;
    while at.kind().is_trivia() {
        at = step(&at)?;
    }
    Some(at)
}

/// Whether `offset` is inside the string `token`: after its opening quote, and before its closing
/// one if it has one (a string being typed may not).
fn string_open_at(token: &SyntaxToken, offset: TextSize) -> bool {
    let text = token.text();
    let closed = text.len() >= 2 && text.ends_with('"') && text[..text.len() - 1].chars().rev().take_while(|&c| c == '\\').count() % 2 == 0;
    offset > token.text_range().start() && (offset < token.text_range().end() || !closed)
}

fn inside_field(token: &SyntaxToken, field: &str) -> bool {
    token.parent_ancestors().find_map(ast::AgentField::cast).and_then(|f| f.name()).is_some_and(|n| n.text() == field)
}
