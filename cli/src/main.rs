//! `symbiont`, the command line of the Symbiont toolchain.
//!
//! - `symbiont check [PATH…]` finds `.sym`/`.symbi` files (honouring `.gitignore`), hands them
//!   and `symbiont.toml` to `symbiont-analysis`, and renders its diagnostics for people
//!   (`human`), programs (`json`), code-scanning services (`sarif`) or GitHub Actions (`github`).
//! - `symbiont fmt [--check] [PATH…|-]` rewrites files with `symbiont-syntax`'s formatter.
//! - `symbiont policy eval|explain` asks `symbiont-policy` for a decision or an explanation.
//! - `symbiont audit …` writes, verifies and proves audit logs with `symbiont-audit`.
//! - `symbiont run` hands an agent to `symbiont-runtime`; `symbiont image build` makes its images;
//!   `symbiont pool drain` removes the warm containers `symbiont run --warm` keeps.
//! - `symbiont up` keeps a runtime up for a workspace (`service/`), which `symbiont run` hands
//!   runs to and `symbiont ps|stop|logs` ask; runs are composed in `compose.rs` either way.
//! - `symbiont doctor` checks that this machine can run the workspace's agents (`doctor.rs`).
//! - `symbiont gc` deletes what agents wrote whose retention has ended (`gc.rs`).
//!
//! This crate is the I/O shell around those two crates: it walks, reads, renders and writes, and
//! decides nothing about the language. The contract is in `docs/cli.md`.
//!
//! It must never:
//! - decide what is a problem: diagnostics come from the analysis only, unchanged;
//! - leave a file half-written: every write goes to a temporary file in the same directory,
//!   is flushed, and renamed over the target;
//! - touch a file that did not change, or that has syntax errors;
//! - stop at one bad file: an unreadable or non-UTF-8 file is a diagnostic and the others are
//!   still checked;
//! - panic, or exit with any status but 0 (all is well), 1 (problems found) or 2 (usage or I/O
//!   error) — except `run`, which exits with the agent's status (`docs/cli.md`).

mod add;
mod args;
mod audit;
mod audit_backup;
mod audit_report;
mod audit_show;
mod backup_retention;
mod check;
mod compose;
mod doctor;
mod fmt;
mod fsutil;
mod gc;
mod generate;
mod policy;
mod position;
mod report;
mod run;
mod service;
mod signals;
mod usage;
mod walk;
mod warm;
mod workspace;

use std::{io::Write, process::ExitCode};

/// Parsing and analysis allocate many small, short-lived objects; mimalloc frees them far faster
/// than glibc's allocator (`bench/run parse` measures with the same allocator).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use args::Command;

/// The exit status, the one thing scripts read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: nothing to report.
    Clean,
    /// 1: an error-level diagnostic, a file with syntax errors, or (`fmt --check`) a file that
    /// would change.
    Problems,
    /// 2: a usage or I/O error.
    Failure,
    /// `run`: the agent's status, or one of `run::status`.
    Code(u8),
}

impl Exit {
    /// Reports an error on standard error and fails.
    pub fn failure(message: impl std::fmt::Display) -> Exit {
        print_error(message);
        Exit::Failure
    }
}

/// `error: message` on standard error.
pub fn print_error(message: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "error: {message}");
}

fn main() -> ExitCode {
    // SAFETY: first thing in `main`: one thread runs and no tree-sitter object exists yet.
    unsafe { symbiont_code::tree_sitter_uses_mimalloc() };
    let exit = match args::parse(std::env::args_os().skip(1)) {
        Ok(Command::Help(text)) => {
            let _ = std::io::stdout().write_all(text.as_bytes());
            Exit::Clean
        }
        Ok(Command::Version) => {
            let _ = writeln!(std::io::stdout(), "symbiont {}", env!("CARGO_PKG_VERSION"));
            Exit::Clean
        }
        Ok(Command::Check(options)) => check::run(&options),
        Ok(Command::Fmt(options)) => fmt::run(&options),
        Ok(Command::PolicyEval(options)) => policy::eval(&options),
        Ok(Command::PolicyExplain(options)) => policy::explain(&options),
        Ok(Command::Audit(command)) => audit::run(&command),
        Ok(Command::Run(options)) => run::run(&options),
        Ok(Command::Up(options)) => service::server::up(&options),
        Ok(Command::Service(command)) => service::client(&command),
        Ok(Command::ImageBuild(run::ImageBuild::Kinds(kinds))) => run::image_build(&kinds),
        Ok(Command::ImageBuild(run::ImageBuild::Tier3)) => run::image_build_tier3(),
        Ok(Command::Pool(warm::PoolCommand::Drain)) => warm::drain(),
        Ok(Command::Doctor(options)) => doctor::run(&options),
        Ok(Command::Gc(options)) => gc::run(&options),
        Ok(Command::Pool(warm::PoolCommand::Warm(options))) => warm::warm(&options),
        Ok(Command::Init(options)) => generate::init(&options),
        Ok(Command::New(options)) => generate::new_agent(&options),
        Ok(Command::Add(options)) => add::run(&options),
        Err(error) => {
            print_error(&error);
            let _ = writeln!(std::io::stderr(), "\n{}", error.hint());
            Exit::Failure
        }
    };
    ExitCode::from(match exit {
        Exit::Clean => 0,
        Exit::Problems => 1,
        Exit::Failure => 2,
        Exit::Code(code) => code,
    })
}
