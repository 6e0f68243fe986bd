//! The workspace's service (`symbiont up`) and the commands that talk to it (`symbiont ps`,
//! `symbiont stop`, `symbiont logs`, and `symbiont run` when a service is up). Runs are composed by
//! `crate::compose`, the same way with or without a service; the API is `protocol.rs`.

pub mod client;
pub mod protocol;
pub mod server;

use std::{path::PathBuf, time::Duration};

use lexopt::{Arg, Parser, ValueExt};

use crate::usage::{Parsed, UsageError};

pub const UP_HELP: &str = "\
Start the workspace's runtime service in the foreground: many agents in one runtime, talking over
its bus, its schedules driven, every run handed to it by `symbiont run` (and the editor's Run agent)

Usage: symbiont up [DIR] [OPTIONS]

Arguments:
  [DIR]               The workspace [default: the current directory]

Options:
      --warm <N>        Keep N warm containers ready for each tier, language and limits of the
                        workspace's agents [default: 0]
      --key <KEY>       The audit log's signing key: a key file or a PKCS#11 URI
                        [default: DIR/.symbiont/audit.key, created (0600) when missing]
      --lock-wait <DUR> How long to wait for a run writing the audit log to finish [default: 60s]
  -h, --help            Print help

The service holds the workspace's audit log (DIR/.symbiont/audit) and serves its API on
DIR/.symbiont/service.sock (mode 0600; only the user who started it is served). It logs to
standard error. SIGTERM, SIGINT (Ctrl-C) and SIGHUP stop it: running agents are stopped (their
final lifecycle entries written), warm containers removed, the audit log closed with a checkpoint.
A workspace with error diagnostics is refused. After a crash, the next start removes what the
dead service left and audits its lost runs as failed.
";

pub const PS_HELP: &str = "\
List the runs of the workspace's service

Usage: symbiont ps [OPTIONS]

Options:
      --workspace <DIR>   The workspace [default: the nearest directory with a symbiont.toml]
      --format <FORMAT>   human or json [default: human]
  -h, --help              Print help
";

pub const STOP_HELP: &str = "\
Stop a run of the workspace's service, and wait for its end

Usage: symbiont stop RUN [OPTIONS]

Options:
      --workspace <DIR>   The workspace [default: the nearest directory with a symbiont.toml]
  -h, --help              Print help
";

pub const LOGS_HELP: &str = "\
Print a run's output, as the workspace's service kept it (the last 8 MiB)

Usage: symbiont logs RUN [OPTIONS]

Options:
  -f, --follow            Go on printing until the run ends
      --workspace <DIR>   The workspace [default: the nearest directory with a symbiont.toml]
  -h, --help              Print help
";

/// A client command of the service.
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceCommand {
    Ps { workspace: Option<PathBuf>, json: bool },
    Stop { workspace: Option<PathBuf>, run: String },
    Logs { workspace: Option<PathBuf>, run: String, follow: bool },
}

pub fn parse_up(parser: &mut Parser) -> Result<Parsed<server::UpOptions>, UsageError> {
    let err = |e: lexopt::Error| UsageError::new(e.to_string(), Some("up"));
    let mut options = server::UpOptions { dir: None, warm: 0, lock_wait: crate::compose::DEFAULT_LOCK_WAIT, key: None };
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Parsed::Help(UP_HELP)),
            Arg::Long("warm") => options.warm = parser.value().map_err(err)?.parse().map_err(err)?,
            Arg::Long("key") => options.key = Some(parser.value().map_err(err)?.string().map_err(err)?),
            Arg::Long("lock-wait") => {
                let text = parser.value().map_err(err)?.string().map_err(err)?;
                options.lock_wait = duration(&text).ok_or_else(|| {
                    UsageError::new(format!("invalid value '{text}' for '--lock-wait' (expected a duration such as 60s)"), Some("up"))
                })?;
            }
            Arg::Value(dir) if options.dir.is_none() => options.dir = Some(PathBuf::from(dir)),
            arg => return Err(err(arg.unexpected())),
        }
    }
    Ok(Parsed::Options(options))
}

fn duration(text: &str) -> Option<Duration> {
    match symbiont_syntax::quantity::parse(text) {
        Ok(symbiont_syntax::quantity::Quantity::Duration(d)) => Some(d),
        _ => None,
    }
}

/// `ps`, `stop` and `logs`, named by `command`.
pub fn parse_client(command: &'static str, parser: &mut Parser) -> Result<Parsed<ServiceCommand>, UsageError> {
    let err = |e: lexopt::Error| UsageError::new(e.to_string(), Some(command));
    let help = match command {
        "ps" => PS_HELP,
        "stop" => STOP_HELP,
        _ => LOGS_HELP,
    };
    let (mut workspace, mut run, mut json, mut follow) = (None, None, false, false);
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Parsed::Help(help)),
            Arg::Long("workspace") => workspace = Some(PathBuf::from(parser.value().map_err(err)?)),
            Arg::Long("format") if command == "ps" => {
                json = match parser.value().map_err(err)?.string().map_err(err)?.as_str() {
                    "human" => false,
                    "json" => true,
                    other => {
                        return Err(UsageError::new(
                            format!("invalid value '{other}' for '--format' (expected human or json)"),
                            Some(command),
                        ))
                    }
                }
            }
            Arg::Short('f') | Arg::Long("follow") if command == "logs" => follow = true,
            Arg::Value(value) if command != "ps" && run.is_none() => run = Some(value.string().map_err(err)?),
            arg => return Err(err(arg.unexpected())),
        }
    }
    let missing = || UsageError::new("missing RUN (`symbiont ps` lists the runs)".to_string(), Some(command));
    Ok(Parsed::Options(match command {
        "ps" => ServiceCommand::Ps { workspace, json },
        "stop" => ServiceCommand::Stop { workspace, run: run.ok_or_else(missing)? },
        _ => ServiceCommand::Logs { workspace, run: run.ok_or_else(missing)?, follow },
    }))
}

pub fn client(command: &ServiceCommand) -> crate::Exit {
    match command {
        ServiceCommand::Ps { workspace, json } => client::ps(workspace.as_deref(), *json),
        ServiceCommand::Stop { workspace, run } => client::stop(workspace.as_deref(), run),
        ServiceCommand::Logs { workspace, run, follow } => client::logs(workspace.as_deref(), run, *follow),
    }
}
