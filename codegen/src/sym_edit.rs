//! Edits of an agent in a `.sym` file, found through its syntax tree and written in the file's
//! own indentation: an element added to one of its list fields (`capabilities`, `policies`,
//! `implementation`), creating the field when it is missing, and an operation allowed in its own
//! inline policy. `symbiont add capability`, the editor's code actions and the analysis's policy
//! fixes all edit `.sym` files through these, so an edit looks the same whoever makes it.

use symbiont_code::fix::Edit;
use symbiont_syntax::{
    ast::{self, AstNode},
    SyntaxKind,
};

/// The agent fields lists are kept in, in the order `symbiont new agent` writes them: a field
/// added goes after the last one before it in this order.
const FIELD_ORDER: [&str; 4] = ["capabilities", "policies", "implementation", "security"];

/// The agent `name` of a parsed file.
pub fn find_agent(file: &ast::SourceFile, name: &str) -> Option<ast::Agent> {
    file.items().find_map(|item| match item {
        ast::Item::Agent(agent) if agent.name().is_some_and(|n| n.text() == name) => Some(agent),
        _ => None,
    })
}

/// Whether `field`'s list holds an element written exactly `element` (`"file_read"`, `readers`).
pub fn list_has(agent: &ast::Agent, field: &str, element: &str) -> bool {
    match agent.field(field).and_then(|f| f.value()) {
        Some(ast::Expr::ArrayExpr(list)) => list.elements().any(|e| e.syntax().text() == element),
        _ => false,
    }
}

/// The edit adding `element` (as written: `"file_read"`, `readers`) to the agent's `field = [...]`,
/// creating the field when the agent has none. `None` when the list holds it already, or when the
/// field's value is not a list (nothing sensible to add to).
pub fn add_to_list(text: &str, agent: &ast::Agent, field: &str, element: &str) -> Option<Edit> {
    if let Some(existing) = agent.field(field) {
        let ast::Expr::ArrayExpr(list) = existing.value()? else { return None };
        if list_has(agent, field, element) {
            return None;
        }
        return Some(add_element(text, &list, element));
    }
    let body = agent.body()?;
    let indent = member_indent(text, agent);
    let rank = |name: &str| FIELD_ORDER.iter().position(|f| *f == name).unwrap_or(FIELD_ORDER.len());
    let before = agent.fields().filter(|f| f.name().is_some_and(|n| rank(&n.text()) < rank(field))).last();
    let new_field = format!("{field} = [{element}]");
    if let Some(before) = before {
        // At the end of that field's line, so a comment closing the line stays with it.
        let at = line_end(text, usize::from(before.syntax().text_range().end()));
        return Some(insert(at, format!("\n{indent}{new_field}")));
    }
    if let Some(first) = body.syntax().children().next() {
        let at = line_start(text, usize::from(first.text_range().start()));
        return Some(insert(at, format!("{indent}{new_field}\n")));
    }
    // An empty body: the field on a line of its own, the brace on the next.
    let open = body.syntax().first_token().filter(|t| t.kind() == SyntaxKind::L_BRACE)?;
    let close = body.syntax().last_token().filter(|t| t.kind() == SyntaxKind::R_BRACE)?;
    Some(Edit {
        start: usize::from(open.text_range().end()),
        end: usize::from(close.text_range().start()),
        new_text: format!("\n{indent}{new_field}\n{}", line_indent(text, agent)),
    })
}

/// The name of the inline policy [`add_allow`] creates for `agent` when it has no allow list.
pub fn inline_policy_name(agent: &str) -> String {
    format!("{agent}_capabilities")
}

/// The edit allowing `operation` in the agent's own inline policy: into the first allow list
/// without a guard, else in a new inline policy ([`inline_policy_name`]). With the policy's name.
pub fn add_allow(text: &str, agent: &ast::Agent, operation: &str) -> Option<(Edit, String)> {
    let quoted = format!("\"{operation}\"");
    for policy in agent.policies() {
        for rule in policy.rules() {
            if let (Some(ast::RuleKind::Allow), None, Some(ast::Expr::ArrayExpr(list))) = (rule.kind(), rule.guard(), rule.body()) {
                return Some((add_element(text, &list, &quoted), policy.name()?.text()));
            }
        }
    }
    let agent_name = agent.name()?.text();
    let taken: Vec<String> = agent.policies().filter_map(|p| p.name()).map(|n| n.text()).collect();
    let base = inline_policy_name(&agent_name);
    let name = std::iter::once(base.clone())
        .chain((2..).map(|i| format!("{base}_{i}")))
        .find(|n| !taken.contains(n))
        .expect("an unused name exists");
    let indent = member_indent(text, agent);
    let unit = indent.strip_prefix(&line_indent(text, agent)).filter(|u| !u.is_empty()).unwrap_or("    ").to_string();
    let policy = format!(
        "{indent}// What no other policy allows this agent.\n{indent}policy {name} {{\n{indent}{unit}allow: [{quoted}]\n{indent}}}\n"
    );
    let close = agent.body()?.syntax().last_token().filter(|t| t.kind() == SyntaxKind::R_BRACE)?;
    let close_at = usize::from(close.text_range().start());
    let start = line_start(text, close_at);
    let edit = if text[start..close_at].trim().is_empty() {
        // A blank line between the policy and what precedes it, as `symbiont new agent` writes it.
        let previous_blank =
            text[..start].trim_end_matches([' ', '\t']).ends_with("\n\n") || agent.body()?.syntax().children().next().is_none();
        insert(start, format!("{}{policy}", if previous_blank { "" } else { "\n" }))
    } else {
        // The brace closes a line with members on it: the policy goes between them.
        let cut = text[..close_at].trim_end_matches([' ', '\t']).len();
        Edit { start: cut, end: close_at, new_text: format!("\n{policy}{}", line_indent(text, agent)) }
    };
    Some((edit, name))
}

/// Adds `element` as the last element of `list`, in the list's own layout: one per line when
/// its elements are, with a trailing comma when it has one.
fn add_element(text: &str, list: &ast::ArrayExpr, element: &str) -> Edit {
    let close = list.syntax().last_token().filter(|t| t.kind() == SyntaxKind::R_BRACK);
    let close_at = close.map_or(usize::from(list.syntax().text_range().end()), |t| usize::from(t.text_range().start()));
    let Some(last) = list.elements().last() else { return insert(close_at, element.to_string()) };
    let last_end = usize::from(last.syntax().text_range().end());
    let after_last = &text[last_end..close_at];
    let multiline = text[usize::from(list.syntax().text_range().start())..close_at].contains('\n');
    let element_indent = line_indent_at(text, usize::from(last.syntax().text_range().start()));
    match (after_last.find(','), multiline) {
        (Some(comma), true) => insert(last_end + comma + 1, format!("\n{element_indent}{element},")),
        (Some(_), false) => insert(close_at, format!(" {element}")),
        (None, true) => insert(last_end, format!(",\n{element_indent}{element}")),
        (None, false) => insert(last_end, format!(", {element}")),
    }
}

fn insert(at: usize, new_text: String) -> Edit {
    Edit { start: at, end: at, new_text }
}

/// The indentation of the agent's members: its first member's, else one level (the file's, or
/// four spaces) deeper than the agent.
pub fn member_indent(text: &str, agent: &ast::Agent) -> String {
    let agent_line = line_start(text, usize::from(agent.syntax().text_range().start()));
    let first = agent.body().and_then(|b| b.syntax().children().next());
    match first {
        // On a line of its own, not on the agent's.
        Some(member) if line_start(text, usize::from(member.text_range().start())) != agent_line => {
            line_indent_at(text, usize::from(member.text_range().start()))
        }
        _ => format!("{}    ", line_indent(text, agent)),
    }
}

fn line_indent(text: &str, agent: &ast::Agent) -> String {
    line_indent_at(text, usize::from(agent.syntax().text_range().start()))
}

/// The whitespace that starts the line holding `at`.
fn line_indent_at(text: &str, at: usize) -> String {
    let start = line_start(text, at);
    text[start..].chars().take_while(|c| *c == ' ' || *c == '\t').collect()
}

/// The offset of the start of the line holding `at`.
pub(crate) fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |i| i + 1)
}

/// The offset of the end of the line holding `at` (its `\n`, or the end of the text).
pub(crate) fn line_end(text: &str, at: usize) -> usize {
    text[at..].find('\n').map_or(text.len(), |i| at + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(text: &str, f: impl Fn(&str, &ast::Agent) -> Option<Edit>) -> String {
        let tree = symbiont_syntax::parse(text).tree();
        let agent = find_agent(&tree, "a").expect("agent a");
        match f(text, &agent) {
            Some(e) => symbiont_code::fix::apply(text, &[e]),
            None => "(no edit)".into(),
        }
    }

    #[test]
    fn list_edits_keep_the_layout() {
        let add = |text: &str| edit(text, |t, a| add_to_list(t, a, "capabilities", "\"file_read\""));
        insta::assert_snapshot!([
            add("agent a() {\n    capabilities = []\n}\n"),
            add("agent a() {\n    capabilities = [\"web_request\"]\n}\n"),
            add("agent a() {\n    capabilities = [\"file_read\"]\n}\n"),
            add("agent a() {\n  capabilities = [\n    \"web_request\",\n  ]\n}\n"),
            add("agent a() {\n  capabilities = [\n    \"web_request\"\n  ]\n}\n"),
            add("agent a() {\n\tpolicies = [p]\n\timplementation = [\"a.py\"]\n}\n"),
            add("agent a() {}\n"),
            add("agent a() {\n}\n"),
        ]
        .join("---\n"));
    }

    #[test]
    fn new_fields_go_in_the_generators_order() {
        let add = |text: &str| edit(text, |t, a| add_to_list(t, a, "implementation", "\"a.py\""));
        insta::assert_snapshot!([
            add("agent a() {\n    capabilities = [\"file_read\"] // what it does\n    policies = [p]\n    security = { tier: Tier1 }\n}\n"),
            add("agent a() {\n    security = { tier: Tier1 }\n}\n"),
        ]
        .join("---\n"));
    }

    #[test]
    fn allows_go_into_the_agents_own_policy() {
        let allow = |text: &str| edit(text, |t, a| add_allow(t, a, "file_read").map(|(e, _)| e));
        insta::assert_snapshot!([
            allow("agent a() {\n    capabilities = [\"file_read\"]\n    policy mine {\n        allow: [\"web_request\"]\n    }\n}\n"),
            allow("agent a() {\n    capabilities = [\"file_read\"]\n    policy mine {\n        allow: [\"web_request\"] if x == 1\n    }\n}\n"),
            allow("agent a() {\n  capabilities = [\"file_read\"]\n}\n"),
            allow("  agent a() { capabilities = [\"file_read\"] }\n"),
            allow("agent a() {\n    capabilities = [\"file_read\"]\n    policy a_capabilities {\n        deny: [\"x\"]\n    }\n}\n"),
        ]
        .join("---\n"));
    }
}
