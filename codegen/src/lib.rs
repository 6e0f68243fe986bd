//! `symbiont-codegen`: policy-aware code generation. It writes a new workspace (`init`), a new
//! agent with its code in one of four languages (`new agent`), and adds a capability to an agent
//! and its code (`add capability`), from templates (`templates/`, compiled in) rendered with the
//! agent's *effective* policy: what the base policy, the applied policies and the agent's own
//! allow, and which rule denies what it may not do.
//!
//! It never does I/O: callers hand it the workspace's files and write what it returns. It never
//! returns a file that does not parse, and never generates code for a capability the policies
//! deny: that is a [`Refusal`] naming the rule.

pub mod add;
pub mod agent;
pub mod capability;
pub mod implement;
pub mod init;
mod stub;
pub mod sym_edit;
mod templates;

use std::fmt;

/// The languages an agent's code can be generated in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Rust,
    Python,
    JavaScript,
    TypeScript,
}

impl Language {
    pub const ALL: [Language; 4] = [Language::Rust, Language::Python, Language::JavaScript, Language::TypeScript];

    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::JavaScript => "javascript",
            Language::TypeScript => "typescript",
        }
    }

    pub fn from_name(name: &str) -> Option<Language> {
        Language::ALL.into_iter().find(|l| l.name() == name)
    }
}

/// A file to write: its path relative to the workspace root, and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub path: String,
    pub content: String,
}

/// The workspace as the generator sees it: every `.sym`/`.symbi` file (path relative to the
/// workspace root, text) and `symbiont.toml`'s settings.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    pub sources: Vec<(String, String)>,
    pub config: symbiont_policy::config::Config,
}

impl Workspace {
    fn universe(&self, extra: Option<(&str, &str)>) -> symbiont_policy::Universe {
        let sources = self.sources.iter().map(|(p, t)| (p.as_str(), t.as_str())).chain(extra);
        symbiont_policy::load(sources, self.config.clone())
    }
}

/// Why nothing was generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A requested capability is denied by a rule of the agent's effective policy.
    Denied {
        capability: String,
        rule: String,
        at: String,
    },
    /// Not a name the generator can use for this.
    InvalidName {
        what: &'static str,
        name: String,
        why: &'static str,
    },
    /// An operation neither the catalogue nor `symbiont.toml` knows.
    UnknownOperation {
        name: String,
        suggestion: Option<String>,
    },
    UnknownPolicy {
        name: String,
        suggestion: Option<String>,
    },
    UnknownAgent {
        name: String,
        suggestion: Option<String>,
    },
    /// An agent of that name exists already.
    AgentExists {
        name: String,
        at: String,
    },
    /// The agent's implementation is not something the generator can edit.
    NoImplementation {
        agent: String,
        why: String,
    },
    /// A file the generator would edit has syntax errors: it edits only what it can parse.
    Unparsable {
        path: String,
    },
    /// A generated file failed its own check: a bug of the generator, never written.
    Internal(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let suggest = |s: &Option<String>| s.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
        match self {
            Refusal::Denied { capability, rule, at } => {
                write!(f, "capability `{capability}` is denied by `{rule}` at {at}: nothing was generated")
            }
            Refusal::InvalidName { what, name, why } => write!(f, "`{name}` cannot be {what}: {why}"),
            Refusal::UnknownOperation { name, suggestion } => write!(f, "unknown operation `{name}`{}", suggest(suggestion)),
            Refusal::UnknownPolicy { name, suggestion } => write!(f, "no policy `{name}` in this workspace{}", suggest(suggestion)),
            Refusal::UnknownAgent { name, suggestion } => write!(f, "no agent `{name}` in this workspace{}", suggest(suggestion)),
            Refusal::AgentExists { name, at } => write!(f, "an agent `{name}` exists already at {at}"),
            Refusal::NoImplementation { agent, why } => write!(f, "agent `{agent}`: {why}"),
            Refusal::Unparsable { path } => write!(f, "`{path}` does not parse: fix it first (`symbiont check` shows where)"),
            Refusal::Internal(message) => write!(f, "internal error of the generator (please report it): {message}"),
        }
    }
}

/// A name usable as an agent, a Python module, a Rust crate and an npm package: lower-case ASCII
/// letters, digits and `_`, starting with a letter.
fn check_name(what: &'static str, name: &str) -> Result<(), Refusal> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let why = "use lower-case letters, digits and `_`, starting with a letter (at most 64)";
    if valid {
        Ok(())
    } else {
        Err(Refusal::InvalidName { what, name: name.to_string(), why })
    }
}
