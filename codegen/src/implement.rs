//! An implementation for an existing agent that has none: the files `symbiont new agent` writes
//! for its language (entry point, one function per capability its effective policy allows, the
//! project file and a test), and the `.sym` edit that lists them in `implementation = [...]`.
//! What the editor's "Generate implementation" action creates.

use symbiont_code::fix::Edit;
use symbiont_policy::effective::StaticVerdict;

use crate::{
    agent::{self, NewAgent},
    sym_edit, templates, GeneratedFile, Language, Refusal, Workspace,
};

/// The files to create and the edit of the agent's `.sym` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Implementation {
    /// Paths relative to the workspace root, beside the agent's `.sym` file.
    pub files: Vec<GeneratedFile>,
    pub sym_path: String,
    /// Adds `implementation = [...]` to the agent.
    pub sym_edit: Edit,
}

/// The implementation of `agent` in `language`. Its capabilities that the policy does not allow
/// get no function (the code's diagnostics would flag any call to them); an agent that lists an
/// implementation already gets none.
pub fn implementation(ws: &Workspace, agent: &str, language: Language) -> Result<Implementation, Refusal> {
    let universe = ws.universe(None);
    let def = universe.agent(agent).ok_or_else(|| Refusal::UnknownAgent { name: agent.to_string(), suggestion: None })?;
    if !def.implementation.is_empty() {
        return Err(Refusal::NoImplementation { agent: agent.to_string(), why: "it lists an implementation already".into() });
    }
    crate::check_name("an agent's name", agent)?;
    let effective = universe.effective(Some(agent)).map_err(|e| Refusal::Internal(e.to_string()))?;
    let allowed: Vec<String> = def
        .capabilities
        .iter()
        .map(|(c, _)| c.clone())
        .filter(|c| matches!(effective.static_verdict(c), StaticVerdict::Allowed | StaticVerdict::Conditional))
        .collect();
    let request = NewAgent {
        name: agent.to_string(),
        language,
        policies: def.applied.iter().map(|(p, _)| p.clone()).collect(),
        capabilities: allowed.clone(),
        tier: None,
    };
    let mut context = agent::skeleton(&request);
    let sym_path = def.loc.file.to_string();
    let dir = sym_path.rsplit_once('/').map_or("", |(dir, _)| dir);
    context.dir = if dir.is_empty() { ".".into() } else { dir.to_string() };
    context.root = if dir.is_empty() { ".".into() } else { vec![".."; dir.split('/').count()].join("/") };
    agent::judge_all(&mut context, &effective, &allowed)?;
    let files: Vec<GeneratedFile> = templates::render_agent(&context)?
        .into_iter()
        .filter(|f| !f.path.ends_with(".sym"))
        .map(|f| GeneratedFile { path: f.path.strip_prefix("./").unwrap_or(&f.path).to_string(), content: f.content })
        .collect();
    let text = crate::add::source(ws, &sym_path)?;
    let tree = symbiont_syntax::parse(text).tree();
    let node = sym_edit::find_agent(&tree, agent).ok_or_else(|| Refusal::Internal(format!("agent `{agent}` is not in {sym_path}")))?;
    let entries: Vec<String> = context.implementation.iter().map(|p| format!("\"{p}\"")).collect();
    let edit = sym_edit::add_to_list(text, &node, "implementation", &entries.join(", "))
        .ok_or_else(|| Refusal::Internal(format!("no place for `implementation` in agent `{agent}`")))?;
    let edited = symbiont_code::fix::apply(text, std::slice::from_ref(&edit));
    if let Some(error) = symbiont_syntax::parse(&edited).errors().first() {
        return Err(Refusal::Internal(format!("{sym_path} would not parse ({}):\n{edited}", error.message)));
    }
    Ok(Implementation { files, sym_path, sym_edit: edit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_without_code_gets_the_files_of_its_language() {
        let sym = "agent notes(input: String) -> String {\n    capabilities = [\"file_read\", \"web_request\"]\n    policy own {\n        allow: [\"file_read\"]\n    }\n}\n";
        let ws = Workspace { sources: vec![("agents/notes.sym".into(), sym.into())], config: Default::default() };
        let python = implementation(&ws, "notes", Language::Python).unwrap();
        let paths: Vec<&str> = python.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["agents/notes.py", "agents/test_notes.py", "agents/pyproject.toml"]);
        // Only what the policy allows gets a function.
        assert!(python.files[0].content.contains("def read_file("), "{}", python.files[0].content);
        assert!(!python.files[0].content.contains("def fetch_url("), "{}", python.files[0].content);
        let edited = symbiont_code::fix::apply(sym, &[python.sym_edit]);
        assert!(edited.contains("    implementation = [\"notes.py\"]\n"), "{edited}");
        let rust = implementation(&ws, "notes", Language::Rust).unwrap();
        let edited = symbiont_code::fix::apply(sym, &[rust.sym_edit]);
        assert!(edited.contains("implementation = [\"target/release/notes\", \"src/main.rs\", \"src/lib.rs\"]"), "{edited}");
        let ws = Workspace { sources: vec![("agents/notes.sym".into(), edited)], config: Default::default() };
        assert!(matches!(implementation(&ws, "notes", Language::Python), Err(Refusal::NoImplementation { .. })));
    }
}
