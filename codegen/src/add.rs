//! `symbiont add capability AGENT OP`: a capability added to an existing agent and to its code.
//!
//! The `.sym` side: the operation joins the agent's `capabilities`, and when the agent's
//! effective policy allows it nowhere, an allow joins the agent's own inline policy (the first
//! allow list without a guard, else a new policy). A deny that forbids it refuses everything,
//! naming the rule. The code side: the capability's SDK function, rendered from
//! `templates/LANG/function.EXT`, is inserted into the agent's implementation after its imports
//! (`stub.rs`). Both are idempotent: what is there already is left alone, so a second run changes
//! nothing. Every edited file is parsed again, and the policy asked again, before it is returned.

use serde::Serialize;
use symbiont_policy::effective::{EffectivePolicy, StaticVerdict};

use crate::{capability, stub, sym_edit, templates, GeneratedFile, Language, Refusal, Workspace};

/// What `symbiont add capability` was asked for.
#[derive(Debug, Clone)]
pub struct AddCapability {
    pub agent: String,
    pub operation: String,
}

/// The files an addition changes (their new content) and what it did, for people.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Added {
    pub files: Vec<GeneratedFile>,
    /// One line per change, and why a part was left out (no SDK call, no implementation).
    pub notes: Vec<String>,
}

/// The agent's source file that gets the capability's function, relative to the workspace root:
/// the first `implementation` entry in one of the four languages (not a glob), preferring a
/// TypeScript source to the JavaScript compiled from it and a Rust crate's `lib.rs` to its
/// `main.rs`. `None` when the agent lists none.
pub fn entry_file(ws: &Workspace, agent: &str) -> Result<Option<String>, Refusal> {
    let universe = ws.universe(None);
    let def = find_agent(&universe, agent)?;
    let dir = def.loc.file.rsplit_once('/').map_or("", |(dir, _)| dir);
    let sources: Vec<&str> = def
        .implementation
        .iter()
        .map(|(entry, _)| entry.as_str())
        .filter(|e| !e.contains(['*', '?', '[', '{']) && symbiont_code::Lang::from_path(std::path::Path::new(e)).is_some())
        .collect();
    let has_ts = sources.iter().any(|e| e.ends_with(".ts") || e.ends_with(".tsx"));
    let rank = |entry: &&&str| match entry.rsplit_once('.').map_or("", |(_, ext)| ext) {
        "js" | "mjs" | "cjs" | "jsx" if has_ts => 2,
        "rs" if entry.ends_with("lib.rs") => 0,
        _ => 1,
    };
    let entry = sources.iter().min_by_key(rank);
    Ok(entry.map(|e| normalize(&if dir.is_empty() { e.to_string() } else { format!("{dir}/{e}") })))
}

/// The edits that add `request.operation` to `request.agent`, given the text of the agent's
/// [`entry_file`] when it has one (`code`: path and text, the path as [`entry_file`] gave it).
pub fn add_capability(ws: &Workspace, request: &AddCapability, code: Option<(&str, &str)>) -> Result<Added, Refusal> {
    let (agent, operation) = (request.agent.as_str(), request.operation.as_str());
    let universe = ws.universe(None);
    let def = find_agent(&universe, agent)?;
    check_operation(ws, operation)?;
    let effective = universe.effective(Some(agent)).map_err(|e| Refusal::Internal(e.to_string()))?;
    let verdict = effective.static_verdict(operation);
    if let StaticVerdict::DeniedBy(i) = verdict {
        let rule = &effective.rules[i].rule;
        return Err(Refusal::Denied {
            capability: operation.to_string(),
            rule: rule.text.to_string(),
            at: format!("{}:{}", rule.loc.file, rule.loc.line),
        });
    }
    let sym_path = def.loc.file.to_string();
    let sym_text = source(ws, &sym_path)?;
    let mut added = Added::default();
    let declared = def.capabilities.iter().any(|(c, _)| effective.operations.ancestors(operation).any(|a| a == c));
    if let Some(edits) = sym_edits(sym_text, agent, operation, !declared, verdict == StaticVerdict::NeverAllowed, &mut added.notes)? {
        let edited = symbiont_code::fix::apply(sym_text, &edits);
        check_sym(ws, &sym_path, &edited, agent, operation)?;
        added.files.push(GeneratedFile { path: sym_path.clone(), content: edited });
    }
    let Some(sdk) = capability::sdk_use(operation) else {
        added.notes.push(format!("`{operation}` has no SDK call: no code to add"));
        return Ok(added);
    };
    let Some(entry) = entry_file(ws, agent)? else {
        added.notes.push(format!("agent `{agent}` lists no implementation file to add code to (a Rust, Python, JavaScript or TypeScript file, not a glob): no code to add"));
        return Ok(added);
    };
    let text = match code {
        Some((path, text)) if path == entry => text,
        _ => {
            return Err(Refusal::NoImplementation { agent: agent.to_string(), why: format!("its implementation `{entry}` does not exist") })
        }
    };
    let lang = symbiont_code::Lang::from_path(std::path::Path::new(&entry)).expect("entry_file returns code paths");
    let function = render_function(lang, sdk)?;
    match stub::insert_function(lang, &entry, text, &function)? {
        Some(content) => {
            added
                .notes
                .push(format!("{entry}: function `{}` added, which performs `{operation}` through the SDK", function_name(lang, sdk)));
            added.files.push(GeneratedFile { path: entry, content });
        }
        None => added.notes.push(format!("{entry}: has its `{}` function already", function_name(lang, sdk))),
    }
    Ok(added)
}

/// The `.sym` edits: the capability when undeclared, an allow when nothing allows it. `None` when
/// there is nothing to do.
fn sym_edits(
    text: &str,
    agent: &str,
    operation: &str,
    declare: bool,
    allow: bool,
    notes: &mut Vec<String>,
) -> Result<Option<Vec<symbiont_code::fix::Edit>>, Refusal> {
    let parse = symbiont_syntax::parse(text);
    let tree = parse.tree();
    let node = sym_edit::find_agent(&tree, agent).ok_or_else(|| Refusal::Internal(format!("agent `{agent}` is not in its file")))?;
    let mut edits = Vec::new();
    if declare {
        let edit = sym_edit::add_to_list(text, &node, "capabilities", &format!("\"{operation}\""))
            .ok_or_else(|| Refusal::NoImplementation { agent: agent.to_string(), why: "its `capabilities` is not a list".into() })?;
        edits.push(edit);
        notes.push(format!("`{operation}` added to the capabilities of agent `{agent}`"));
    }
    if allow {
        let (edit, policy) = sym_edit::add_allow(text, &node, operation)
            .ok_or_else(|| Refusal::Internal(format!("no place for an allow in agent `{agent}`")))?;
        edits.push(edit);
        notes.push(format!("`{operation}` allowed in policy `{policy}`: no other policy of agent `{agent}` allows it"));
    }
    if edits.is_empty() {
        notes.push(format!("agent `{agent}` declares `{operation}` already, and its policy allows it"));
    }
    Ok((!edits.is_empty()).then_some(edits))
}

/// The edited `.sym` file parses, and with it the agent declares and is allowed the operation.
fn check_sym(ws: &Workspace, path: &str, edited: &str, agent: &str, operation: &str) -> Result<(), Refusal> {
    if let Some(error) = symbiont_syntax::parse(edited).errors().first() {
        return Err(Refusal::Internal(format!("{path} would not parse ({}):\n{edited}", error.message)));
    }
    let sources = ws.sources.iter().map(|(p, t)| (p.as_str(), if p == path { edited } else { t.as_str() }));
    let universe = symbiont_policy::load(sources, ws.config.clone());
    let effective: EffectivePolicy = universe.effective(Some(agent)).map_err(|e| Refusal::Internal(e.to_string()))?;
    let declared = universe
        .agent(agent)
        .is_some_and(|a| a.capabilities.iter().any(|(c, _)| effective.operations.ancestors(operation).any(|o| o == c)));
    match effective.static_verdict(operation) {
        StaticVerdict::Allowed | StaticVerdict::Conditional if declared => Ok(()),
        other => Err(Refusal::Internal(format!(
            "after the edit, agent `{agent}` still does not have `{operation}` ({other:?}, declared: {declared})"
        ))),
    }
}

fn function_name(lang: symbiont_code::Lang, sdk: &capability::SdkUse) -> &'static str {
    match lang.family() {
        symbiont_code::lang::Family::Js => sdk.camel,
        _ => sdk.function,
    }
}

#[derive(Serialize)]
struct FunctionContext {
    f: &'static capability::SdkUse,
}

/// The capability's function in the file's language, from `templates/LANG/function.EXT`.
fn render_function(lang: symbiont_code::Lang, sdk: &'static capability::SdkUse) -> Result<String, Refusal> {
    let language = match lang {
        symbiont_code::Lang::Rust => Language::Rust,
        symbiont_code::Lang::Python => Language::Python,
        symbiont_code::Lang::JavaScript => Language::JavaScript,
        symbiont_code::Lang::TypeScript | symbiont_code::Lang::Tsx => Language::TypeScript,
    };
    let extension = match language {
        Language::Rust => "rs",
        Language::Python => "py",
        Language::JavaScript => "js",
        Language::TypeScript => "ts",
    };
    let template = format!("{}/function.{extension}", language.name());
    templates::render(&template, &FunctionContext { f: sdk }, format!("function.{extension}")).map(|f| f.content)
}

/// The text of the workspace's `.sym` file `path`.
pub(crate) fn source<'w>(ws: &'w Workspace, path: &str) -> Result<&'w str, Refusal> {
    let found = ws.sources.iter().find(|(p, _)| p == path).map(|(_, t)| t.as_str());
    found.ok_or_else(|| Refusal::Internal(format!("{path} is not among the sources")))
}

fn find_agent<'u>(universe: &'u symbiont_policy::Universe, name: &str) -> Result<&'u symbiont_policy::model::AgentDef, Refusal> {
    universe.agent(name).ok_or_else(|| {
        let suggestion = symbiont_syntax::suggest::closest(name, universe.agents().map(|a| a.name.as_str())).map(str::to_string);
        Refusal::UnknownAgent { name: name.to_string(), suggestion }
    })
}

/// An operation the catalogue or `symbiont.toml` knows, else the closest one that is.
pub(crate) fn check_operation(ws: &Workspace, operation: &str) -> Result<(), Refusal> {
    if symbiont_policy::catalogue::Operations::new(&ws.config.operations).is_known(operation) {
        return Ok(());
    }
    let known = symbiont_policy::catalogue::OPERATIONS.iter().map(|o| o.name).chain(ws.config.operations.keys().map(String::as_str));
    let suggestion = symbiont_syntax::suggest::closest(operation, known).map(str::to_string);
    Err(Refusal::UnknownOperation { name: operation.to_string(), suggestion })
}

/// `a/./b/../c` → `a/c`: an implementation path as the workspace names it.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "." | "" => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    const LANGUAGES: [&str; 4] = ["python", "javascript", "typescript", "rust"];

    /// A fixture's workspace: `tests/add/policies.sym`, `symbiont.toml`, and the language's agent
    /// `notes` at `agents/notes/`, its code read from the fixture's directory.
    struct Fixture {
        ws: Workspace,
        code: std::collections::BTreeMap<String, String>,
    }

    fn fixture(language: &str) -> Fixture {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/add");
        let read = |path: PathBuf| std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let config = symbiont_policy::config::parse(&read(root.join("symbiont.toml"))).unwrap();
        let sources = vec![
            ("policies.sym".to_string(), read(root.join("policies.sym"))),
            ("agents/notes/notes.sym".to_string(), read(root.join(language).join("notes.sym"))),
        ];
        let mut code = std::collections::BTreeMap::new();
        for (entry, _) in &symbiont_policy::load(sources.iter().map(|(p, t)| (p.as_str(), t.as_str())), config.clone())
            .agent("notes")
            .unwrap()
            .implementation
        {
            if let Ok(text) = std::fs::read_to_string(root.join(language).join(entry)) {
                code.insert(format!("agents/notes/{entry}"), text);
            }
        }
        Fixture { ws: Workspace { sources, config }, code }
    }

    impl Fixture {
        fn add(&self, operation: &str) -> Result<Added, Refusal> {
            let request = AddCapability { agent: "notes".into(), operation: operation.into() };
            let entry = entry_file(&self.ws, "notes")?;
            let code = entry.as_deref().and_then(|e| self.code.get(e).map(|t| (e, t.as_str())));
            add_capability(&self.ws, &request, code)
        }

        fn apply(&mut self, added: &Added) {
            for file in &added.files {
                match self.ws.sources.iter_mut().find(|(p, _)| *p == file.path) {
                    Some(source) => source.1 = file.content.clone(),
                    None => {
                        self.code.insert(file.path.clone(), file.content.clone());
                    }
                }
            }
        }

        fn files(&self) -> String {
            let sym = self.ws.sources.iter().map(|(p, t)| (p, t)).filter(|(p, _)| p.starts_with("agents/"));
            sym.chain(self.code.iter()).map(|(p, t)| format!("=== {p}\n{t}")).collect()
        }
    }

    const OPERATIONS: [&str; 3] = ["https_request", "send_message", "analyze"];

    #[test]
    fn adding_capabilities_to_each_language() {
        for language in LANGUAGES {
            let mut fx = fixture(language);
            let mut notes = Vec::new();
            for operation in OPERATIONS {
                let added = fx.add(operation).unwrap_or_else(|r| panic!("{language}: {r}"));
                notes.extend(added.notes.iter().map(|n| format!("- {n}")));
                fx.apply(&added);
            }
            insta::assert_snapshot!(format!("add_{language}"), format!("{}\n{}", notes.join("\n"), fx.files()));
        }
    }

    #[test]
    fn adding_twice_changes_nothing_the_second_time() {
        for language in LANGUAGES {
            let mut once = fixture(language);
            for operation in OPERATIONS {
                let added = once.add(operation).unwrap();
                once.apply(&added);
            }
            for operation in OPERATIONS {
                let again = once.add(operation).unwrap();
                assert_eq!(again.files, [], "{language}: adding `{operation}` again changed {:?}", again.files);
            }
        }
    }

    #[test]
    fn a_denied_capability_changes_nothing_and_names_the_rule() {
        let refusal = fixture("python").add("spawn_process").unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Denied { capability: "spawn_process".into(), rule: "deny: [\"spawn_process\"]".into(), at: "policies.sym:3".into() }
        );
        assert_eq!(
            refusal.to_string(),
            "capability `spawn_process` is denied by `deny: [\"spawn_process\"]` at policies.sym:3: nothing was generated"
        );
    }

    #[test]
    fn unknown_agents_and_operations_are_refused_with_a_suggestion() {
        let fx = fixture("python");
        let request = AddCapability { agent: "note".into(), operation: "file_read".into() };
        assert_eq!(
            add_capability(&fx.ws, &request, None),
            Err(Refusal::UnknownAgent { name: "note".into(), suggestion: Some("notes".into()) })
        );
        assert_eq!(
            fx.add("web_reqest"),
            Err(Refusal::UnknownOperation { name: "web_reqest".into(), suggestion: Some("web_request".into()) })
        );
    }

    #[test]
    fn a_missing_or_broken_implementation_changes_nothing() {
        let mut fx = fixture("python");
        fx.code.clear();
        assert!(matches!(fx.add("https_request"), Err(Refusal::NoImplementation { .. })), "{:?}", fx.add("https_request"));
        fx.code.insert("agents/notes/notes.py".into(), "def main(:\n".into());
        assert_eq!(fx.add("https_request"), Err(Refusal::Unparsable { path: "agents/notes/notes.py".into() }));
    }

    #[test]
    fn an_agent_without_code_gets_only_the_sym_edit() {
        let mut fx = fixture("python");
        fx.ws.sources[1].1 = fx.ws.sources[1].1.replace("    implementation = [\"notes.py\"]\n", "    implementation = [\"src/*.py\"]\n");
        let added = fx.add("https_request").unwrap();
        assert_eq!(added.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["agents/notes/notes.sym"]);
        assert!(added.notes.last().unwrap().contains("not a glob): no code to add"), "{:?}", added.notes);
    }

    #[test]
    fn the_entry_file_prefers_sources_to_what_is_built_from_them() {
        assert_eq!(entry_file(&fixture("typescript").ws, "notes").unwrap().as_deref(), Some("agents/notes/src/notes.ts"));
        assert_eq!(entry_file(&fixture("rust").ws, "notes").unwrap().as_deref(), Some("agents/notes/src/lib.rs"));
        assert_eq!(entry_file(&fixture("javascript").ws, "notes").unwrap().as_deref(), Some("agents/notes/notes.js"));
    }
}
