//! `symbiont init` and `symbiont new agent`: write what `symbiont-codegen` generates. Nothing is
//! overwritten unless `--force` says so: when a file exists, they list every such file and stop
//! before writing anything. Each file is written atomically (`fsutil::write_atomic`).

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use lexopt::{Arg, Parser, ValueExt};
use symbiont_codegen::{agent::NewAgent, GeneratedFile, Language};

use crate::{
    fsutil,
    usage::{Parsed, UsageError},
    workspace, Exit,
};

pub const INIT_HELP: &str = "\
Create a Symbiont workspace: settings, a default-deny base policy, CI and editor files

Usage: symbiont init [OPTIONS] [DIR]

Arguments:
  [DIR]  The workspace's directory, created if missing [default: .]

Writes symbiont.toml (levels and the base policy), policies.sym (the default-deny baseline),
.gitignore (Symbiont's .symbiont/ state and build outputs), .github/workflows/symbiont.yml
(runs 'symbiont check --format sarif' and uploads the report), .vscode/extensions.json (the
Symbiont extension) and vendor/symbiont-sdk/ (the SDKs generated agents build and test against).

Options:
      --force  Overwrite files that exist (without it, existing files are listed and nothing is written)
  -h, --help   Print help

Exit status: 0 when the workspace was written, 1 when files exist (nothing written), 2 on a
usage or I/O error.
";

pub const NEW_HELP: &str = "\
Create an agent: its .sym file, its code, its project file and a test, from its effective policy

Usage: symbiont new agent NAME --lang LANG [OPTIONS]

Arguments:
  NAME  The agent's name: lower-case letters, digits and '_', starting with a letter

Options:
      --lang <LANG>       rust, python, javascript or typescript
      --policy <P>        A named policy of the workspace to apply (repeatable)
      --capability <OP>   An operation the agent may perform (repeatable), e.g. file_read,
                          https_request, env_access: one function per capability uses its SDK call
      --tier <N>          Isolation tier 1 (Docker), 2 (gVisor) or 3 (microVM)
                          [default: chosen by the runtime from the agent's risk]
      --force             Overwrite files that exist
  -h, --help              Print help

Writes agents/NAME/ in the workspace of the nearest symbiont.toml ('symbiont init' makes one).
Each capability is judged by the agent's effective policy (the base policy, the applied
policies): one a deny forbids generates nothing and the command exits 1 naming the rule; one no
rule allows is allowed in the agent's own policy.

Exit status: 0 when the agent was written, 1 when a capability is denied or files exist
(nothing written), 2 on a usage or I/O error.
";

#[derive(Debug)]
pub struct InitOptions {
    pub dir: PathBuf,
    pub force: bool,
}

#[derive(Debug)]
pub struct NewOptions {
    pub agent: NewAgent,
    pub force: bool,
}

pub fn parse_init(parser: &mut Parser) -> Result<Parsed<InitOptions>, UsageError> {
    let err = |e: lexopt::Error| UsageError::new(e.to_string(), Some("init"));
    let (mut dir, mut force) = (None, false);
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Parsed::Help(INIT_HELP)),
            Arg::Long("force") => force = true,
            Arg::Value(value) if dir.is_none() => dir = Some(PathBuf::from(value)),
            arg => return Err(err(arg.unexpected())),
        }
    }
    Ok(Parsed::Options(InitOptions { dir: dir.unwrap_or_else(|| PathBuf::from(".")), force }))
}

pub fn parse_new(parser: &mut Parser) -> Result<Parsed<NewOptions>, UsageError> {
    let err = |e: lexopt::Error| UsageError::new(e.to_string(), Some("new"));
    let usage = |message: String| UsageError::new(message, Some("new"));
    match parser.next().map_err(err)? {
        Some(Arg::Value(kind)) if kind == "agent" => {}
        None | Some(Arg::Short('h') | Arg::Long("help")) => return Ok(Parsed::Help(NEW_HELP)),
        Some(Arg::Value(other)) => return Err(usage(format!("unknown kind '{}' (expected 'agent')", other.to_string_lossy()))),
        Some(arg) => return Err(err(arg.unexpected())),
    }
    let (mut name, mut language, mut tier, mut force) = (None, None, None, false);
    let (mut policies, mut capabilities) = (Vec::new(), Vec::new());
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Parsed::Help(NEW_HELP)),
            Arg::Long("lang") => {
                let value: String = parser.value().map_err(err)?.string().map_err(err)?;
                let lang = Language::from_name(&value);
                language = Some(
                    lang.ok_or_else(|| usage(format!("unknown language '{value}' (expected rust, python, javascript or typescript)")))?,
                );
            }
            Arg::Long("policy") => policies.push(parser.value().map_err(err)?.string().map_err(err)?),
            Arg::Long("capability") => capabilities.push(parser.value().map_err(err)?.string().map_err(err)?),
            Arg::Long("tier") => {
                let value: String = parser.value().map_err(err)?.string().map_err(err)?;
                let n = value.trim_start_matches("Tier").parse::<u8>().ok().filter(|n| (1..=3).contains(n));
                tier = Some(n.ok_or_else(|| usage(format!("invalid tier '{value}' (expected 1, 2 or 3)")))?);
            }
            Arg::Long("force") => force = true,
            Arg::Value(value) if name.is_none() => name = Some(value.string().map_err(err)?),
            arg => return Err(err(arg.unexpected())),
        }
    }
    let name = name.ok_or_else(|| usage("missing the agent's NAME".into()))?;
    let language = language.ok_or_else(|| usage("missing --lang (rust, python, javascript or typescript)".into()))?;
    Ok(Parsed::Options(NewOptions { agent: NewAgent { name, language, policies, capabilities, tier }, force }))
}

pub fn init(options: &InitOptions) -> Exit {
    let files = match symbiont_codegen::init::workspace_files() {
        Ok(files) => files,
        Err(refusal) => return Exit::failure(refusal),
    };
    write_all(&options.dir, &files, options.force, "symbiont init")
}

pub fn new_agent(options: &NewOptions) -> Exit {
    let (root, workspace) = match workspace::generator_workspace() {
        Ok(found) => found,
        Err(message) => return Exit::failure(message),
    };
    match symbiont_codegen::agent::new_agent(&workspace, &options.agent) {
        Ok(files) => write_all(&root, &files, options.force, "symbiont new agent"),
        Err(refusal) => {
            crate::print_error(refusal);
            Exit::Problems
        }
    }
}

/// Writes `files` under `root`, or, when some exist and `force` is not set, lists them and writes
/// nothing.
fn write_all(root: &Path, files: &[GeneratedFile], force: bool, command: &str) -> Exit {
    let existing: Vec<&GeneratedFile> = files.iter().filter(|f| root.join(&f.path).exists()).collect();
    if !existing.is_empty() && !force {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "error: {command}: these files exist, so nothing was written (--force overwrites them):");
        for file in existing {
            let _ = writeln!(err, "  {}", root.join(&file.path).display());
        }
        return Exit::Problems;
    }
    let mut out = std::io::stdout().lock();
    for file in files {
        let path = root.join(&file.path);
        if let Some(parent) = path.parent() {
            if let Err(e) = std::fs::create_dir_all(parent) {
                return Exit::failure(format!("cannot create {}: {e}", parent.display()));
            }
        }
        if let Err(e) = fsutil::write_atomic(&path, file.content.as_bytes()) {
            return Exit::failure(format!("cannot write {}: {e}", path.display()));
        }
        let _ = writeln!(out, "created {}", path.display());
    }
    Exit::Clean
}
