//! The templates (`templates/`, compiled in) and the one environment that renders them. Every
//! rendered file is checked before it is returned: `.sym` files and code parse without an error,
//! JSON and TOML files parse.

use std::sync::OnceLock;

use minijinja::Environment;
use serde::Serialize;

use crate::{capability, GeneratedFile, Language, Refusal};

/// A capability as the effective policy decides it, for the templates.
#[derive(Debug, Clone, Serialize)]
pub struct CapabilityContext {
    pub operation: String,
    /// `allowed`, or `conditional` (allowed under a guard, or a deny's guard may refuse it).
    pub verdict: &'static str,
    /// The allow rules that cover it: `allow: [...]` at `FILE:LINE`.
    pub allowed_by: Vec<RuleContext>,
    /// When conditional: the rules whose guards decide at run time (allows and denies).
    pub conditions: Vec<RuleContext>,
    /// The SDK function that exercises it, if there is one.
    pub sdk: Option<&'static capability::SdkUse>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleContext {
    pub text: String,
    /// `FILE:LINE`.
    pub at: String,
    /// The policy it is a rule of.
    pub policy: String,
}

/// An operation the agent may never perform, and the deny that says so.
#[derive(Debug, Clone, Serialize)]
pub struct DeniedContext {
    pub operation: String,
    pub by: RuleContext,
}

/// Everything a language's templates render from.
#[derive(Debug, Clone, Serialize)]
pub struct AgentContext {
    pub name: String,
    pub language: Language,
    /// The agent's directory, relative to the workspace root.
    pub dir: String,
    /// From the agent's directory back to the workspace root (`../..`).
    pub root: String,
    pub tier: Option<u8>,
    pub policies: Vec<String>,
    pub capabilities: Vec<CapabilityContext>,
    /// The SDK functions to generate, once each, in table order.
    pub functions: Vec<&'static capability::SdkUse>,
    /// Capabilities with no SDK call: declared, nothing generated.
    pub without_sdk: Vec<String>,
    /// What the agent may never do: each operation of the effective policy's unconditional denies.
    pub denied: Vec<DeniedContext>,
    /// Operations the agent's own policy must allow, since nothing else does.
    pub inline_allow: Vec<String>,
    /// `implementation = [...]`, relative to the `.sym` file; the first is the entry point.
    pub implementation: Vec<String>,
}

/// Each template, by the name templates `include` it with.
const TEMPLATES: &[(&str, &str)] = &[
    ("agent.sym", include_str!("../templates/agent.sym")),
    ("python/agent.py", include_str!("../templates/python/agent.py")),
    ("python/function.py", include_str!("../templates/python/function.py")),
    ("python/call.py", include_str!("../templates/python/call.py")),
    ("python/pyproject.toml", include_str!("../templates/python/pyproject.toml")),
    ("python/test_agent.py", include_str!("../templates/python/test_agent.py")),
    ("javascript/agent.test.js", include_str!("../templates/javascript/agent.test.js")),
    ("javascript/test.js", include_str!("../templates/javascript/test.js")),
    ("typescript/agent.test.ts", include_str!("../templates/typescript/agent.test.ts")),
    ("header.txt", include_str!("../templates/header.txt")),
    ("javascript/agent.js", include_str!("../templates/javascript/agent.js")),
    ("javascript/function.js", include_str!("../templates/javascript/function.js")),
    ("javascript/call.js", include_str!("../templates/javascript/call.js")),
    ("javascript/package.json", include_str!("../templates/javascript/package.json")),
    ("typescript/agent.ts", include_str!("../templates/typescript/agent.ts")),
    ("typescript/function.ts", include_str!("../templates/typescript/function.ts")),
    ("typescript/call.ts", include_str!("../templates/typescript/call.ts")),
    ("typescript/package.json", include_str!("../templates/typescript/package.json")),
    ("typescript/tsconfig.json", include_str!("../templates/typescript/tsconfig.json")),
    ("rust/Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
    ("rust/lib.rs", include_str!("../templates/rust/lib.rs")),
    ("rust/function.rs", include_str!("../templates/rust/function.rs")),
    ("rust/main.rs", include_str!("../templates/rust/main.rs")),
    ("rust/test.rs", include_str!("../templates/rust/test.rs")),
    ("rust/rustfmt.toml", include_str!("../templates/rust/rustfmt.toml")),
    ("init/symbiont.toml", include_str!("../templates/init/symbiont.toml")),
    ("init/policies.sym", include_str!("../templates/init/policies.sym")),
    ("init/gitignore", include_str!("../templates/init/gitignore")),
    ("init/symbiontignore", include_str!("../templates/init/symbiontignore")),
    ("init/symbiont.yml", include_str!("../templates/init/symbiont.yml")),
    ("init/extensions.json", include_str!("../templates/init/extensions.json")),
];

fn environment() -> &'static Environment<'static> {
    static ENVIRONMENT: OnceLock<Environment<'static>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut env = Environment::new();
        // Block tags take their line with them, so templates read like the code they write.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_filter("comment", comment);
        env.add_filter("wrap", wrap);
        for (name, source) in TEMPLATES {
            env.add_template(name, source).expect("the compiled-in templates parse");
        }
        env
    })
}

/// `text` as line comments: each line after `prefix` and a space (a blank line, `prefix` alone).
fn comment(text: String, prefix: String) -> String {
    let lines: Vec<String> =
        text.trim_end().lines().map(|line| if line.is_empty() { prefix.clone() } else { format!("{prefix} {line}") }).collect();
    lines.join("\n") + "\n"
}

/// `text` broken at spaces into lines of at most `width` characters (a longer word stays whole).
fn wrap(text: String, width: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(line) if line.len() + 1 + word.len() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines.join("\n")
}

/// Renders `template` with `context`, then checks the result as a file at `path`.
pub(crate) fn render(template: &str, context: &impl serde::Serialize, path: String) -> Result<GeneratedFile, Refusal> {
    let env = environment();
    let rendered = env.get_template(template).and_then(|t| t.render(context));
    let content = rendered.map_err(|e| Refusal::Internal(format!("rendering {template}: {e:#}")))?;
    check(&path, &content).map_err(|why| Refusal::Internal(format!("{path} (from {template}) {why}:\n{content}")))?;
    Ok(GeneratedFile { path, content })
}

/// The agent's `.sym` file alone.
pub(crate) fn render_sym(context: &AgentContext) -> Result<String, Refusal> {
    render("agent.sym", context, format!("{}/{}.sym", context.dir, context.name)).map(|f| f.content)
}

/// Every file of a new agent.
pub(crate) fn render_agent(context: &AgentContext) -> Result<Vec<GeneratedFile>, Refusal> {
    let (dir, name) = (&context.dir, &context.name);
    let at = |path: &str| format!("{dir}/{path}");
    let mut files = vec![GeneratedFile { path: format!("{dir}/{name}.sym"), content: render_sym(context)? }];
    let wanted: Vec<(&str, String)> = match context.language {
        Language::Python => vec![
            ("python/agent.py", at(&format!("{name}.py"))),
            ("python/test_agent.py", at(&format!("test_{name}.py"))),
            ("python/pyproject.toml", at("pyproject.toml")),
        ],
        Language::JavaScript => vec![
            ("javascript/agent.js", at(&format!("{name}.js"))),
            ("javascript/agent.test.js", at(&format!("{name}.test.js"))),
            ("javascript/package.json", at("package.json")),
        ],
        Language::TypeScript => vec![
            ("typescript/agent.ts", at(&format!("src/{name}.ts"))),
            ("typescript/agent.test.ts", at(&format!("src/{name}.test.ts"))),
            ("typescript/package.json", at("package.json")),
            ("typescript/tsconfig.json", at("tsconfig.json")),
        ],
        Language::Rust => vec![
            ("rust/Cargo.toml", at("Cargo.toml")),
            ("rust/rustfmt.toml", at("rustfmt.toml")),
            ("rust/lib.rs", at("src/lib.rs")),
            ("rust/main.rs", at("src/main.rs")),
            ("rust/test.rs", at(&format!("tests/{name}.rs"))),
        ],
    };
    for (template, path) in wanted {
        files.push(render(template, context, path)?);
    }
    Ok(files)
}

/// Why `content` is not a well-formed file at `path`, if it is not.
fn check(path: &str, content: &str) -> Result<(), String> {
    let extension = path.rsplit_once('.').map_or("", |(_, e)| e);
    match extension {
        "sym" | "symbi" => match symbiont_syntax::parse(content).errors().first() {
            Some(error) => Err(format!("does not parse: {}", error.message)),
            None => Ok(()),
        },
        "json" => serde_json::from_str::<serde_json::Value>(content).map(drop).map_err(|e| format!("is not JSON: {e}")),
        "toml" => content.parse::<toml::Table>().map(drop).map_err(|e| format!("is not TOML: {e}")),
        _ => match symbiont_code::Lang::from_path(std::path::Path::new(path)) {
            Some(lang) => match symbiont_code::scan::parse(lang, content) {
                Some(tree) if !tree.root_node().has_error() => Ok(()),
                _ => Err("does not parse (tree-sitter finds an error)".into()),
            },
            None => Ok(()),
        },
    }
}
