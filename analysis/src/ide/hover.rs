//! Hover: what the language, the catalogue and the workspace know about the word under the
//! cursor.

use std::path::Path;

use symbiont_policy::{catalogue, effective::StaticVerdict, model::RuleKind};
use symbiont_syntax::{
    ast::{self, AstNode},
    SyntaxKind, SyntaxNode, SyntaxToken, TextRange, TextSize,
};

use super::snapshot::Analysis;
use crate::{code::is_code_path, db, items::DefKind, policies::policy_universe, settings};

fn token_at(analysis: &Analysis, path: &Path, offset: TextSize) -> Option<SyntaxToken> {
    let file = analysis.sym_file(path)?;
    let root = db::parse(&analysis.db, file).syntax();
    if offset > root.text_range().end() {
        return None;
    }
    match root.token_at_offset(offset) {
        rowan::TokenAtOffset::None => None,
        rowan::TokenAtOffset::Single(t) => Some(t),
        // Prefer the word over the punctuation or space beside it.
        rowan::TokenAtOffset::Between(a, b) => {
            Some(if b.kind().is_trivia() || !matches!(b.kind(), SyntaxKind::IDENT | SyntaxKind::STRING) && !b.kind().is_keyword() {
                a
            } else {
                b
            })
        }
    }
}

fn keyword_doc(kind: SyntaxKind) -> Option<&'static str> {
    Some(match kind {
        SyntaxKind::ALLOW_KW => "**allow**: the operations may be performed when the guard holds. Deny overrides allow; an operation no rule allows is denied.",
        SyntaxKind::DENY_KW => "**deny**: the operations must not be performed when the guard holds, or when it cannot be evaluated (fail closed). Deny always overrides allow.",
        SyntaxKind::REQUIRE_KW => "**require**: preconditions that must hold in the request's environment for any allow to take effect.",
        SyntaxKind::AUDIT_KW => "**audit**: an obligation attached to allowed requests (what the audit entry includes).",
        SyntaxKind::CONDITIONS_KW => "**conditions**: obligations merged across the policy hierarchy to the most restrictive value.",
        SyntaxKind::AGENT_KW => "**agent**: an agent: its signature, capabilities, policies, implementation and security settings.",
        SyntaxKind::POLICY_KW => "**policy**: a named set of rules; top-level policies can be extended and applied by agents.",
        SyntaxKind::EXTENDS_KW => "**extends**: inherit every rule of the parent policies. A child can add denies and narrow allows, never weaken a deny.",
        SyntaxKind::WITH_KW => "**with**: run the block with these attributes (sandbox tier, memory mode, timeout, limits).",
        SyntaxKind::METADATA_KW => "**metadata**: descriptive fields of the file (version, author, description, tags).",
        SyntaxKind::SCHEDULE_KW => "**schedule**: run an agent on a cron schedule.",
        SyntaxKind::WEBHOOK_KW => "**webhook**: run an agent when a verified webhook arrives.",
        SyntaxKind::MEMORY_KW => "**memory**: a persistent memory store for agents.",
        SyntaxKind::CHANNEL_KW => "**channel**: a messaging channel an agent listens and answers on.",
        SyntaxKind::TYPE_KW => "**type**: a named type; undefined type names are host types.",
        SyntaxKind::FUNCTION_KW => "**function**: a function agents can call.",
        _ => return None,
    })
}

fn operation_doc(analysis: &Analysis, name: &str) -> Option<String> {
    if let Some(op) = catalogue::lookup(name) {
        let parent = op.parent.map(|p| format!("\n\nA case of `{p}`: rules about `{p}` cover it.")).unwrap_or_default();
        return Some(format!("**operation** `{}`: {}{parent}", op.name, op.description));
    }
    let config = &db::config(&analysis.db, analysis.workspace).0;
    config.operations.get(name).map(|op| format!("**project operation** `{name}` (symbiont.toml): {}", op.description))
}

fn setting_doc(name: &str, table: &[settings::Setting], what: &str) -> Option<String> {
    table.iter().find(|s| s.name == name).map(|s| format!("**{what}** `{}`: {}", s.name, s.doc))
}

pub(super) fn hover(analysis: &Analysis, path: &Path, offset: TextSize) -> Option<(TextRange, String)> {
    if is_code_path(path) {
        return code_hover(analysis, path, offset);
    }
    let token = token_at(analysis, path, offset)?;
    let range = token.text_range();
    if let Some(doc) = keyword_doc(token.kind()) {
        // On a rule's kind: the rule's effect and where it is overridden.
        if let Some(rule) = token.parent().and_then(ast::Rule::cast) {
            return Some((range, format!("{doc}\n\n{}", rule_effect(analysis, path, &rule))));
        }
        return Some((range, doc.to_string()));
    }
    let word = match token.kind() {
        SyntaxKind::IDENT => token.text().to_string(),
        SyntaxKind::STRING => ast::unescape(token.text()),
        _ => return None,
    };
    let parent = token.parent()?;
    // Attribute names.
    if parent.kind() == SyntaxKind::NAME {
        match parent.parent().map(|p| p.kind()) {
            Some(SyntaxKind::WITH_ATTR) => return setting_doc(&word, settings::WITH_ATTRIBUTES, "with attribute").map(|d| (range, d)),
            Some(SyntaxKind::RECORD_FIELD) if inside(&parent, SyntaxKind::AGENT_FIELD, "security") => {
                return setting_doc(&word, settings::SECURITY_FIELDS, "security setting").map(|d| (range, d))
            }
            _ => {}
        }
    }
    // Workspace symbols: definitions and references.
    if let Some((kind, name, _)) = analysis.symbol_at(path, offset) {
        if kind == DefKind::Agent {
            return Some((range, agent_brief(analysis, &name)));
        }
        let defs = analysis.goto_definition(path, offset).ok()?;
        let location =
            defs.first().map(|d| format!(" — defined in {}", d.path.display())).unwrap_or_else(|| " — not defined in the workspace".into());
        return Some((range, format!("**{}** `{name}`{location}", kind.as_str())));
    }
    // Operation names in rules and capabilities.
    if in_operation_position(&token) {
        return operation_doc(analysis, &word).map(|d| (range, d));
    }
    None
}

/// On agent code: each finding at the position, with the rule that decided it (the policy's deny,
/// quoted from its file) and the rule's documentation page.
fn code_hover(analysis: &Analysis, path: &Path, offset: TextSize) -> Option<(TextRange, String)> {
    let file = analysis.files.get(path).copied()?;
    let diagnostics = db::file_diagnostics_unfixed_in(&analysis.db, analysis.workspace, path, file);
    let hits: Vec<_> = diagnostics.iter().filter(|d| d.range.contains_inclusive(offset)).collect();
    let range = hits.iter().map(|d| d.range).reduce(|a, b| a.cover(b))?;
    let mut sections = Vec::new();
    for d in hits {
        let mut section = format!("**{}** `{}` ({}): {}", d.severity, d.rule.code, d.rule.name, d.message);
        for related in &d.related {
            let Some(text) = analysis.files.get(&related.path).map(|f| f.text(&analysis.db).clone()) else { continue };
            let index = symbiont_syntax::LineIndex::new(&text);
            let at = index.line_col(&text, related.range.start());
            let line = index.line_text(&text, at.line).trim();
            section.push_str(&format!(
                "\n\n{} at {}:{}:{}:\n```symbiont\n{line}\n```",
                related.message,
                related.path.display(),
                at.line + 1,
                at.col + 1
            ));
        }
        section.push_str(&format!("\n\n{} See `{}` in {}.", d.rule.summary, d.rule.code, d.rule.page));
        sections.push(section);
    }
    Some((range, sections.join("\n\n---\n\n")))
}

fn inside(node: &SyntaxNode, kind: SyntaxKind, field: &str) -> bool {
    node.ancestors().find(|a| a.kind() == kind).and_then(ast::AgentField::cast).and_then(|f| f.name()).is_some_and(|n| n.text() == field)
}

fn in_operation_position(token: &SyntaxToken) -> bool {
    token
        .parent_ancestors()
        .any(|a| a.kind() == SyntaxKind::RULE && a.children().next().is_some_and(|c| c.text_range().contains_range(token.text_range())))
        || token
            .parent_ancestors()
            .find(|a| a.kind() == SyntaxKind::AGENT_FIELD)
            .and_then(ast::AgentField::cast)
            .and_then(|f| f.name())
            .is_some_and(|n| n.text() == "capabilities")
}

/// For a rule: what it does to which operations, and whether a deny overrides it somewhere.
fn rule_effect(analysis: &Analysis, path: &Path, rule: &ast::Rule) -> String {
    let universe = policy_universe(&analysis.db, analysis.workspace);
    let range = rule.syntax().text_range();
    let here = path.to_string_lossy();
    let mut notes = Vec::new();
    let scopes = universe.agents().filter_map(|a| universe.effective(Some(&a.name)).ok()).chain(
        rule.syntax().ancestors().find_map(ast::Policy::cast).and_then(|p| p.name()).and_then(|n| universe.effective_of_policy(&n.text())),
    );
    for effective in scopes {
        for shadow in &effective.shadowed {
            let allow = &effective.rules[shadow.allow];
            if allow.rule.loc.range == range && *allow.rule.loc.file == *here {
                let deny = &effective.rules[shadow.deny];
                let note = format!(
                    "- `{}` is overridden by the deny at {} (policy `{}`)",
                    shadow.operation, deny.rule.loc, effective.policies[deny.policy].name
                );
                if !notes.contains(&note) {
                    notes.push(note);
                }
            }
        }
    }
    if notes.is_empty() {
        "Not overridden by any deny in the workspace.".to_string()
    } else {
        format!("Overridden:\n{}", notes.join("\n"))
    }
}

/// An agent's effective policy in brief.
fn agent_brief(analysis: &Analysis, agent: &str) -> String {
    let universe = policy_universe(&analysis.db, analysis.workspace);
    let Ok(effective) = universe.effective(Some(agent)) else { return format!("**agent** `{agent}`") };
    let policies: Vec<String> = effective.policies.iter().map(|p| format!("`{}` ({})", p.name, p.via)).collect();
    let mut allowed = Vec::new();
    let mut denied = Vec::new();
    let mut conditional = Vec::new();
    let mut ops: Vec<String> = effective
        .rules
        .iter()
        .filter(|r| matches!(r.rule.kind, RuleKind::Allow | RuleKind::Deny))
        .flat_map(|r| r.rule.ops.iter().map(|o| o.name.clone()))
        .collect();
    ops.sort();
    ops.dedup();
    for op in ops {
        match effective.static_verdict(&op) {
            StaticVerdict::Allowed => allowed.push(format!("`{op}`")),
            StaticVerdict::DeniedBy(_) | StaticVerdict::NeverAllowed => denied.push(format!("`{op}`")),
            StaticVerdict::Conditional => conditional.push(format!("`{op}`")),
        }
    }
    let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    let conditions: Vec<String> = effective.conditions.iter().map(|c| format!("{} = {}", c.key, c.value)).collect();
    format!(
        "**agent** `{agent}`\n\nEffective policy: {}\n\n- allowed: {}\n- allowed under conditions: {}\n- denied: {}\n- conditions: {}\n\nAnything else is denied.",
        if policies.is_empty() { "none (everything is denied)".to_string() } else { policies.join(", ") },
        list(&allowed),
        list(&conditional),
        list(&denied),
        if conditions.is_empty() { "none".into() } else { conditions.join(", ") }
    )
}
