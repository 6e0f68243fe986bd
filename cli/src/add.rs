//! `symbiont add capability AGENT OP`: what `symbiont-codegen` edits to give an agent a
//! capability, written to disk. Every file is written atomically (`fsutil::write_atomic`: a
//! temporary file in the same directory, the old file's permissions, renamed over it), and only
//! once every edit has been made and checked: a refusal writes nothing.

use std::io::Write;

use lexopt::{Arg, Parser, ValueExt};
use symbiont_codegen::add::AddCapability;

use crate::{
    fsutil,
    usage::{Parsed, UsageError},
    workspace, Exit,
};

pub const ADD_HELP: &str = "\
Add a capability to an agent: to its .sym file, and its SDK call to its code

Usage: symbiont add capability AGENT OP [OPTIONS]

Arguments:
  AGENT  The agent, by name, in the workspace of the nearest symbiont.toml
  OP     The operation, e.g. file_read, https_request, env_access

Options:
      --dry-run  Say what would change; write nothing
  -h, --help     Print help

The operation joins the agent's capabilities. When the agent's effective policy allows it
nowhere, an allow joins the agent's own inline policy; when a deny forbids it, nothing is
written and the command exits 1 naming the rule (FILE:LINE). When the operation has an SDK call,
a function using it is added to the agent's implementation (its first Rust, Python, JavaScript
or TypeScript source), after the imports, with the SDK's import when it is missing. What is
there already is left alone: running it twice changes nothing the second time.

Exit status: 0 when the capability was added (or was there), 1 when it is refused (a deny, an
unknown agent or operation, code that does not parse), 2 on a usage or I/O error.
";

#[derive(Debug)]
pub struct AddOptions {
    pub request: AddCapability,
    pub dry_run: bool,
}

pub fn parse(parser: &mut Parser) -> Result<Parsed<AddOptions>, UsageError> {
    let err = |e: lexopt::Error| UsageError::new(e.to_string(), Some("add"));
    let usage = |m: &str| UsageError::new(m, Some("add"));
    match parser.next().map_err(err)? {
        None | Some(Arg::Short('h') | Arg::Long("help")) => return Ok(Parsed::Help(ADD_HELP)),
        Some(Arg::Value(what)) if what == "capability" => {}
        Some(Arg::Value(what)) => return Err(usage(&format!("unknown thing to add '{}' (expected 'capability')", what.to_string_lossy()))),
        Some(arg) => return Err(err(arg.unexpected())),
    }
    let (mut values, mut dry_run) = (Vec::new(), false);
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Parsed::Help(ADD_HELP)),
            Arg::Long("dry-run") => dry_run = true,
            Arg::Value(value) => values.push(value.string().map_err(err)?),
            arg => return Err(err(arg.unexpected())),
        }
    }
    let [agent, operation]: [String; 2] =
        values.try_into().map_err(|v: Vec<String>| usage(&format!("expected AGENT and OP, got {} argument(s)", v.len())))?;
    Ok(Parsed::Options(AddOptions { request: AddCapability { agent, operation }, dry_run }))
}

pub fn run(options: &AddOptions) -> Exit {
    let (root, ws) = match workspace::generator_workspace() {
        Ok(found) => found,
        Err(message) => return Exit::failure(message),
    };
    let agent = &options.request.agent;
    let entry = match symbiont_codegen::add::entry_file(&ws, agent) {
        Ok(entry) => entry,
        Err(refusal) => return refused(refusal),
    };
    let code = match &entry {
        Some(entry) => match fsutil::read_source(&root.join(entry)) {
            Ok(text) => Some((entry.as_str(), text)),
            // A missing file is the generator's to refuse, with the agent's name.
            Err(fsutil::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Exit::failure(format!("{}: {e}", root.join(entry).display())),
        },
        None => None,
    };
    let added = match symbiont_codegen::add::add_capability(&ws, &options.request, code.as_ref().map(|(p, t)| (*p, t.as_str()))) {
        Ok(added) => added,
        Err(refusal) => return refused(refusal),
    };
    let mut out = std::io::stdout().lock();
    for note in &added.notes {
        let _ = writeln!(out, "{note}");
    }
    for file in &added.files {
        let path = root.join(&file.path);
        if options.dry_run {
            let _ = writeln!(out, "would change {}", path.display());
            continue;
        }
        if let Err(e) = fsutil::write_atomic(&path, file.content.as_bytes()) {
            return Exit::failure(format!("cannot write {}: {e}", path.display()));
        }
        let _ = writeln!(out, "changed {}", path.display());
    }
    if added.files.is_empty() {
        let _ = writeln!(out, "nothing to change");
    }
    Exit::Clean
}

fn refused(refusal: symbiont_codegen::Refusal) -> Exit {
    crate::print_error(refusal);
    Exit::Problems
}
