//! The command line: what each command accepts, its help text, and usage errors.

use std::{ffi::OsString, path::PathBuf};

use lexopt::{Arg, Parser, ValueExt};

use crate::usage::Parsed;
pub use crate::usage::UsageError;

pub const MAIN_HELP: &str = "\
symbiont: check, run and audit AI agents defined in .sym/.symbi files: their policies, their code,
their sandboxes and their signed audit logs

Usage: symbiont <COMMAND> [OPTIONS] [PATH]...

Commands:
  init    Create a workspace: settings, a default-deny base policy, CI and editor files
  new     Create an agent and its code from its effective policy
  add     Add a capability to an agent: its .sym file, its policy and its code
  check   Report problems in .sym/.symbi files and in agent code (Rust, Python, JS, TS)
  fmt     Format .sym/.symbi files in place
  policy  Evaluate a request against an agent's policy, or explain the policy
  audit   Append to, verify, inspect and prove signed audit logs
  run     Run an agent in its sandbox, under its policy, audited
  image   Build the sandbox base images
  pool    Remove the warm containers 'symbiont run --warm' keeps
  up      Start the workspace's runtime service (many agents, their bus, schedules)
  ps      List the runs of the workspace's service
  stop    Stop a run of the workspace's service
  logs    Print a run's output kept by the workspace's service
  doctor  Check that this machine can run the workspace's agents, and how to fix what it cannot
  gc      Delete the files agents wrote whose retention has ended
  help    Print the help of a command

Options:
  -h, --help     Print help
  -V, --version  Print version

Exit status: 0 when all is well, 1 when problems were found, 2 on a usage or I/O error
('run' exits with the agent's status: see 'symbiont run --help').
Run 'symbiont <COMMAND> --help' for a command's options.
";

pub const CHECK_HELP: &str = "\
Report problems in .sym/.symbi files and in agent code (Rust, Python, JS, TS)

Usage: symbiont check [OPTIONS] [PATH]...

Arguments:
  [PATH]...  Files and directories to check [default: .]
             Directories are searched for .sym and .symbi files, honouring .gitignore;
             files named explicitly are checked whatever their extension.
             symbiont.toml is read from the nearest ancestor directory of the first path.

Options:
      --format <FORMAT>  Report format: human, json, sarif, github [default: human]
  -o, --output <FILE>    Write the report to FILE instead of standard output
      --fix              Apply the fixes that need no review, then report what remains
      --color <WHEN>     Colour the human report: auto, always, never [default: auto]
                         (auto: only on a terminal, and not when NO_COLOR is set)
  -h, --help             Print help

Exit status: 0 when no error was found, 1 when at least one error was found,
2 on a usage or I/O error.
";

pub const FMT_HELP: &str = "\
Format .sym/.symbi files in place

Usage: symbiont fmt [OPTIONS] [PATH]...
       symbiont fmt [OPTIONS] -

Arguments:
  [PATH]...  Files and directories to format [default: .]
             Directories are searched for .sym and .symbi files, honouring .gitignore.
  -          Read from standard input and write the result to standard output

Options:
      --check  Write nothing; list the files that would change
  -h, --help   Print help

Files with syntax errors are reported and left untouched. Files are only rewritten when
their formatting changes, through a temporary file renamed over the original.

Exit status: 0 when all is well; 1 when a file has syntax errors or, with --check, would
change; 2 on a usage or I/O error.
";

pub const POLICY_HELP: &str = "\
Evaluate requests against an agent's effective policy, or explain it

Usage: symbiont policy eval --agent NAME --operation OP [OPTIONS] [PATH]...
       symbiont policy explain --agent NAME [OPTIONS] [PATH]...

Arguments:
  [PATH]...  Files and directories holding the workspace's .sym/.symbi files [default: .]
             symbiont.toml is read from the nearest ancestor directory of the first path.

Options:
      --agent <NAME>      The agent whose effective policy decides
      --operation <OP>    (eval) The operation requested, e.g. file_read
      --context <JSON>    (eval) A JSON object whose top-level keys are the names guards use,
                          e.g. '{\"context\": {\"user\": {\"role\": \"viewer\"}}}'
      --args <JSON>       (eval) The operation's arguments: a JSON array (bound to the rule's
                          parameters by position) or object (by name)
      --format <FORMAT>   eval: human, json; explain: human, json, dot [default: human]
  -h, --help              Print help

Exit status: 0 whatever the decision; 2 on an error (unknown agent, bad JSON, a workspace that
does not parse).
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyFormat {
    Human,
    Json,
    Dot,
}

#[derive(Debug)]
pub struct PolicyEvalOptions {
    pub paths: Vec<PathBuf>,
    pub agent: String,
    pub operation: String,
    pub context: Option<String>,
    pub args: Option<String>,
    pub format: PolicyFormat,
}

#[derive(Debug)]
pub struct PolicyExplainOptions {
    pub paths: Vec<PathBuf>,
    pub agent: String,
    pub format: PolicyFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Human,
    Json,
    Sarif,
    Github,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug)]
pub struct CheckOptions {
    pub paths: Vec<PathBuf>,
    pub fix: bool,
    pub format: ReportFormat,
    pub output: Option<PathBuf>,
    pub color: ColorChoice,
}

#[derive(Debug)]
pub struct FmtOptions {
    pub paths: Vec<PathBuf>,
    /// `-`: standard input to standard output.
    pub stdin: bool,
    pub check: bool,
}

#[derive(Debug)]
pub enum Command {
    Help(&'static str),
    Version,
    Check(CheckOptions),
    Fmt(FmtOptions),
    PolicyEval(PolicyEvalOptions),
    PolicyExplain(PolicyExplainOptions),
    Audit(crate::audit::AuditCommand),
    Run(crate::run::RunOptions),
    Up(crate::service::server::UpOptions),
    Service(crate::service::ServiceCommand),
    ImageBuild(crate::run::ImageBuild),
    Pool(crate::warm::PoolCommand),
    Doctor(crate::doctor::DoctorOptions),
    Gc(crate::gc::GcOptions),
    Init(crate::generate::InitOptions),
    New(crate::generate::NewOptions),
    Add(crate::add::AddOptions),
}

/// A command's parse as `Command`: its help, or its options wrapped by `wrap`.
fn lift<T>(parsed: Result<Parsed<T>, UsageError>, wrap: impl FnOnce(T) -> Command) -> Result<Command, UsageError> {
    Ok(match parsed? {
        Parsed::Help(text) => Command::Help(text),
        Parsed::Options(options) => wrap(options),
    })
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut parser = Parser::from_args(args);
    let in_main = |e: lexopt::Error| UsageError::new(e.to_string(), None);
    match parser.next().map_err(in_main)? {
        None => Err(UsageError::new("no command given", None)),
        Some(Arg::Short('h') | Arg::Long("help")) => Ok(Command::Help(MAIN_HELP)),
        Some(Arg::Short('V') | Arg::Long("version")) => Ok(Command::Version),
        Some(Arg::Value(command)) => match command.string().map_err(in_main)?.as_str() {
            "check" => parse_check(&mut parser),
            "init" => lift(crate::generate::parse_init(&mut parser), Command::Init),
            "new" => lift(crate::generate::parse_new(&mut parser), Command::New),
            "add" => lift(crate::add::parse(&mut parser), Command::Add),
            "fmt" => parse_fmt(&mut parser),
            "policy" => parse_policy(&mut parser),
            "audit" => lift(crate::audit::parse(&mut parser), Command::Audit),
            "run" => lift(crate::run::parse_run(&mut parser), Command::Run),
            "image" => lift(crate::run::parse_image(&mut parser), Command::ImageBuild),
            "pool" => lift(crate::warm::parse(&mut parser), Command::Pool),
            "up" => lift(crate::service::parse_up(&mut parser), Command::Up),
            "ps" => lift(crate::service::parse_client("ps", &mut parser), Command::Service),
            "stop" => lift(crate::service::parse_client("stop", &mut parser), Command::Service),
            "logs" => lift(crate::service::parse_client("logs", &mut parser), Command::Service),
            "doctor" => lift(crate::doctor::parse(&mut parser), Command::Doctor),
            "gc" => lift(crate::gc::parse(&mut parser), Command::Gc),
            "help" => match parser.next().map_err(in_main)? {
                None => Ok(Command::Help(MAIN_HELP)),
                Some(Arg::Value(topic)) => match topic.string().map_err(in_main)?.as_str() {
                    "check" => Ok(Command::Help(CHECK_HELP)),
                    "init" => Ok(Command::Help(crate::generate::INIT_HELP)),
                    "new" => Ok(Command::Help(crate::generate::NEW_HELP)),
                    "add" => Ok(Command::Help(crate::add::ADD_HELP)),
                    "fmt" => Ok(Command::Help(FMT_HELP)),
                    "policy" => Ok(Command::Help(POLICY_HELP)),
                    "audit" => Ok(Command::Help(crate::audit::AUDIT_HELP)),
                    "run" => Ok(Command::Help(crate::run::RUN_HELP)),
                    "image" => Ok(Command::Help(crate::run::IMAGE_HELP)),
                    "pool" => Ok(Command::Help(crate::warm::POOL_HELP)),
                    "up" => Ok(Command::Help(crate::service::UP_HELP)),
                    "ps" => Ok(Command::Help(crate::service::PS_HELP)),
                    "stop" => Ok(Command::Help(crate::service::STOP_HELP)),
                    "logs" => Ok(Command::Help(crate::service::LOGS_HELP)),
                    "doctor" => Ok(Command::Help(crate::doctor::DOCTOR_HELP)),
                    "gc" => Ok(Command::Help(crate::gc::GC_HELP)),
                    "help" => Ok(Command::Help(MAIN_HELP)),
                    other => Err(UsageError::new(format!("unknown command '{other}'"), None)),
                },
                Some(arg) => Err(in_main(arg.unexpected())),
            },
            other => Err(UsageError::new(
                format!("unknown command '{other}' (expected 'init', 'new', 'add', 'check', 'fmt', 'policy', 'audit', 'run', 'image', 'pool', 'up', 'ps', 'stop', 'logs', 'doctor' or 'gc')"),
                None,
            )),
        },
        Some(arg) => Err(in_main(arg.unexpected())),
    }
}

fn parse_check(parser: &mut Parser) -> Result<Command, UsageError> {
    let err = |e: lexopt::Error| UsageError::new(e.to_string(), Some("check"));
    let mut options = CheckOptions { paths: Vec::new(), fix: false, format: ReportFormat::Human, output: None, color: ColorChoice::Auto };
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Command::Help(CHECK_HELP)),
            Arg::Long("format") => {
                options.format = match parser.value().map_err(err)?.string().map_err(err)?.as_str() {
                    "human" => ReportFormat::Human,
                    "json" => ReportFormat::Json,
                    "sarif" => ReportFormat::Sarif,
                    "github" => ReportFormat::Github,
                    other => {
                        return Err(UsageError::new(
                            format!("invalid value '{other}' for '--format' (expected human, json, sarif or github)"),
                            Some("check"),
                        ))
                    }
                }
            }
            Arg::Short('o') | Arg::Long("output") => options.output = Some(parser.value().map_err(err)?.into()),
            Arg::Long("fix") => options.fix = true,
            Arg::Long("color") => {
                options.color = match parser.value().map_err(err)?.string().map_err(err)?.as_str() {
                    "auto" => ColorChoice::Auto,
                    "always" => ColorChoice::Always,
                    "never" => ColorChoice::Never,
                    other => {
                        return Err(UsageError::new(
                            format!("invalid value '{other}' for '--color' (expected auto, always or never)"),
                            Some("check"),
                        ))
                    }
                }
            }
            Arg::Value(path) => options.paths.push(path.into()),
            arg => return Err(err(arg.unexpected())),
        }
    }
    if options.paths.is_empty() {
        options.paths.push(PathBuf::from("."));
    }
    Ok(Command::Check(options))
}

fn parse_fmt(parser: &mut Parser) -> Result<Command, UsageError> {
    let err = |e: lexopt::Error| UsageError::new(e.to_string(), Some("fmt"));
    let mut options = FmtOptions { paths: Vec::new(), stdin: false, check: false };
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Command::Help(FMT_HELP)),
            Arg::Long("check") => options.check = true,
            Arg::Value(path) if path == "-" => options.stdin = true,
            Arg::Value(path) => options.paths.push(path.into()),
            arg => return Err(err(arg.unexpected())),
        }
    }
    if options.stdin && !options.paths.is_empty() {
        return Err(UsageError::new("'-' (standard input) cannot be combined with paths", Some("fmt")));
    }
    if options.paths.is_empty() && !options.stdin {
        options.paths.push(PathBuf::from("."));
    }
    Ok(Command::Fmt(options))
}

fn parse_policy(parser: &mut Parser) -> Result<Command, UsageError> {
    let err = |e: lexopt::Error| UsageError::new(e.to_string(), Some("policy"));
    let usage = |m: &str| UsageError::new(m, Some("policy"));
    let explain = match parser.next().map_err(err)? {
        Some(Arg::Short('h') | Arg::Long("help")) | None => return Ok(Command::Help(POLICY_HELP)),
        Some(Arg::Value(sub)) => match sub.string().map_err(err)?.as_str() {
            "eval" => false,
            "explain" => true,
            other => return Err(usage(&format!("unknown policy command '{other}' (expected 'eval' or 'explain')"))),
        },
        Some(arg) => return Err(err(arg.unexpected())),
    };
    let (mut paths, mut agent, mut operation, mut context, mut args, mut format) =
        (Vec::new(), None, None, None, None, PolicyFormat::Human);
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Command::Help(POLICY_HELP)),
            Arg::Long("agent") => agent = Some(parser.value().map_err(err)?.string().map_err(err)?),
            Arg::Long("operation") if !explain => operation = Some(parser.value().map_err(err)?.string().map_err(err)?),
            Arg::Long("context") if !explain => context = Some(parser.value().map_err(err)?.string().map_err(err)?),
            Arg::Long("args") if !explain => args = Some(parser.value().map_err(err)?.string().map_err(err)?),
            Arg::Long("format") => {
                format = match (parser.value().map_err(err)?.string().map_err(err)?.as_str(), explain) {
                    ("human", _) => PolicyFormat::Human,
                    ("json", _) => PolicyFormat::Json,
                    ("dot", true) => PolicyFormat::Dot,
                    (other, _) => {
                        let expected = if explain { "human, json or dot" } else { "human or json" };
                        return Err(usage(&format!("invalid value '{other}' for '--format' (expected {expected})")));
                    }
                }
            }
            Arg::Value(path) => paths.push(PathBuf::from(path)),
            arg => return Err(err(arg.unexpected())),
        }
    }
    if paths.is_empty() {
        paths.push(PathBuf::from("."));
    }
    let agent = agent.ok_or_else(|| usage("missing '--agent NAME'"))?;
    if explain {
        return Ok(Command::PolicyExplain(PolicyExplainOptions { paths, agent, format }));
    }
    let operation = operation.ok_or_else(|| usage("missing '--operation OP'"))?;
    Ok(Command::PolicyEval(PolicyEvalOptions { paths, agent, operation, context, args, format }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn check_options() {
        let Ok(Command::Check(options)) = parse_str(&["check", "--format=json", "-o", "out.json", "--color", "never", "a", "b"]) else {
            panic!("expected check")
        };
        assert_eq!(options.format, ReportFormat::Json);
        assert_eq!(options.output, Some(PathBuf::from("out.json")));
        assert_eq!(options.color, ColorChoice::Never);
        assert_eq!(options.paths, [PathBuf::from("a"), PathBuf::from("b")]);
    }

    #[test]
    fn usage_errors() {
        assert!(parse_str(&[]).is_err());
        assert!(parse_str(&["lint"]).is_err());
        assert!(parse_str(&["check", "--format", "xml"]).is_err());
        assert!(parse_str(&["check", "--bogus"]).is_err());
        assert!(parse_str(&["fmt", "-", "a.sym"]).is_err());
        assert!(matches!(parse_str(&["fmt", "--check", "-"]), Ok(Command::Fmt(FmtOptions { stdin: true, check: true, .. }))));
    }
}
