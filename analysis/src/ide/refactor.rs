//! Refactorings offered as code actions on `.sym` files: extract an inline policy to a named
//! top-level policy, and apply a named policy to an agent.

use std::path::{Path, PathBuf};

use symbiont_syntax::{
    ast::{self, AstNode},
    TextRange, TextSize,
};

use super::snapshot::Analysis;
use crate::{
    code::undeclared_in_code,
    db::{self, SourceFile},
    diagnostics::{Diagnostic, FileEdit, Fix},
    inputs::is_source_path,
    items::DefKind,
    resolve::workspace_index,
};

/// A code action: a fix of a diagnostic, or a refactoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub fix: Fix,
    /// The diagnostic it fixes, if any.
    pub diagnostic: Option<Diagnostic>,
    pub refactor: bool,
    /// Files the action creates (path, content), which must not exist yet; before its edits.
    pub create: Vec<(PathBuf, String)>,
}

pub(super) fn refactors(analysis: &Analysis, path: &Path, file: SourceFile, range: TextRange) -> Vec<Action> {
    let tree = db::parse(&analysis.db, file).tree();
    let text = file.text(&analysis.db);
    let mut out = Vec::new();
    let edit = |range: TextRange, new_text: String| FileEdit::new(path, range, new_text);
    for item in tree.items() {
        let ast::Item::Agent(agent) = item else { continue };
        if !agent.syntax().text_range().contains_range(range) {
            continue;
        }
        let agent_start = agent.syntax().text_range().start();
        // Extract the inline policy under the cursor.
        for policy in agent.policies() {
            if !policy.syntax().text_range().contains_range(range) {
                continue;
            }
            let Some(name) = policy.name() else { continue };
            let policy_range = policy.syntax().text_range();
            // Remove the whole line(s) of the inline policy, and insert it before the agent.
            let line_start = TextSize::from(text[..usize::from(policy_range.start())].rfind('\n').map_or(0, |i| i + 1) as u32);
            let mut line_end = TextSize::from(
                text[usize::from(policy_range.end())..].find('\n').map_or(text.len(), |i| usize::from(policy_range.end()) + i + 1) as u32,
            );
            // Between two blank lines, one of them goes too.
            let blank_before = text[..usize::from(line_start)].trim_end_matches([' ', '\t']).ends_with("\n\n");
            let next_line = &text[usize::from(line_end)..];
            if blank_before && next_line.split('\n').next().is_some_and(|l| l.trim().is_empty()) && next_line.contains('\n') {
                line_end += TextSize::from(next_line.find('\n').map_or(0, |i| i + 1) as u32);
            }
            let body = dedent(&text[policy_range]);
            let mut edits =
                vec![edit(TextRange::empty(agent_start), format!("{body}\n\n")), edit(TextRange::new(line_start, line_end), String::new())];
            edits.extend(add_to_policies(&agent, text, &name.text(), path));
            out.push(Action {
                fix: Fix { title: format!("Extract inline policy `{}` to a named top-level policy", name.text()), edits, safe: false },
                diagnostic: None,
                refactor: true,
                create: Vec::new(),
            });
        }
        // Apply each top-level policy the agent does not apply yet.
        let applied: Vec<String> = agent
            .field("policies")
            .and_then(|f| f.value())
            .map(|v| v.syntax().descendants().filter_map(ast::NameRef::cast).map(|n| n.text()).collect())
            .unwrap_or_default();
        let index = workspace_index(&analysis.db, analysis.workspace);
        for policy in index.names(DefKind::Policy).filter(|p| !applied.iter().any(|a| a == p)).take(20) {
            out.push(Action {
                fix: Fix {
                    title: format!("Apply policy `{policy}` to agent `{}`", agent.name().map(|n| n.text()).unwrap_or_default()),
                    edits: add_to_policies(&agent, text, policy, path),
                    safe: false,
                },
                diagnostic: None,
                refactor: true,
                create: Vec::new(),
            });
        }
        if agent.field("implementation").is_none() {
            out.extend(generate_implementation(analysis, &agent));
        }
        // On the capabilities list: declare what the agent's code does and the list does not say.
        let on_capabilities = agent.field("capabilities").is_some_and(|f| f.syntax().text_range().contains_range(range));
        if let (true, Some(name)) = (on_capabilities, agent.name()) {
            let fixes = undeclared_in_code(&analysis.db, analysis.workspace, &name.text());
            out.extend(fixes.into_iter().map(|fix| Action { fix, diagnostic: None, refactor: true, create: Vec::new() }));
        }
    }
    out
}

/// "Generate implementation in LANGUAGE" for an agent without code, Python first: the files
/// `symbiont new agent` writes for the language, from the agent's effective policy, created
/// beside its `.sym` file, and `implementation = [...]` added to it. A language whose files
/// exist already is not offered.
fn generate_implementation(analysis: &Analysis, agent: &ast::Agent) -> Vec<Action> {
    use symbiont_codegen::Language;
    let Some(name) = agent.name().map(|n| n.text()) else { return Vec::new() };
    let sources = analysis
        .files
        .iter()
        .filter(|(path, _)| is_source_path(path))
        .map(|(path, file)| (path.to_string_lossy().replace('\\', "/"), file.text(&analysis.db).to_string()))
        .collect();
    let config = db::config(&analysis.db, analysis.workspace).0.clone();
    let ws = symbiont_codegen::Workspace { sources, config };
    let languages = [
        (Language::Python, "Python"),
        (Language::TypeScript, "TypeScript"),
        (Language::JavaScript, "JavaScript"),
        (Language::Rust, "Rust"),
    ];
    let mut out = Vec::new();
    for (language, title) in languages {
        let Ok(generated) = symbiont_codegen::implement::implementation(&ws, &name, language) else { continue };
        let create: Vec<(PathBuf, String)> = generated.files.into_iter().map(|f| (PathBuf::from(f.path), f.content)).collect();
        if create.iter().any(|(path, _)| analysis.files.contains_key(path)) {
            continue;
        }
        out.push(Action {
            fix: Fix {
                title: format!("Generate implementation in {title}"),
                edits: vec![FileEdit { path: PathBuf::from(generated.sym_path), edit: generated.sym_edit }],
                safe: false,
            },
            diagnostic: None,
            refactor: true,
            create,
        });
    }
    out
}

/// Edits adding `name` to the agent's `policies = [...]`, creating the field when absent.
fn add_to_policies(agent: &ast::Agent, text: &str, name: &str, path: &Path) -> Vec<FileEdit> {
    symbiont_codegen::sym_edit::add_to_list(text, agent, "policies", name)
        .map(|edit| FileEdit { path: path.to_path_buf(), edit })
        .into_iter()
        .collect()
}

/// Removes the common leading indentation of all lines but the first (the closing brace's line
/// is indented like the policy itself, so that is what goes).
fn dedent(text: &str) -> String {
    let indent = text.lines().skip(1).filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    text.lines()
        .enumerate()
        .map(|(i, l)| match l.get(..indent) {
            Some(lead) if i > 0 && lead.bytes().all(|b| b == b' ' || b == b'\t') => l[indent..].to_string(),
            _ => l.trim_start().to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}
