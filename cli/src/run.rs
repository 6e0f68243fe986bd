//! `symbiont run` and `symbiont image build`: hand an agent to `symbiont-runtime`, stream its
//! output, and exit with its status. This module resolves what the `.sym` says (the agent, its
//! effective policy, its implementation, its security settings), assesses the risk, and reports;
//! the runtime decides and enforces.

use std::{
    io::Write,
    path::{Component, Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use lexopt::{Arg, Parser, ValueExt};
use serde_json::{json, Map};
use symbiont_audit::{
    keys::{FileSigner, Signer},
    Log, LogOptions,
};
use symbiont_policy::{effective::StaticVerdict, model::AgentDef, Engine};
use symbiont_runtime::{
    image::{self, ImageKind},
    risk::{self, RiskInputs},
    AgentConfig, AgentRuntime, Auditor, Language, Limits, OutputStream, RunError, State, Tier,
};

use crate::{args::UsageError, walk, Exit};

pub const RUN_HELP: &str = "\
Run an agent in its sandbox, under its policy, with every boundary crossing audited

Usage: symbiont run FILE.sym [OPTIONS]

Options:
      --agent <NAME>      The agent to run (needed when FILE defines more than one)
      --tier <TIER>       auto, 1, 2 or 3 [default: auto]: raises the tier the risk assessment and
                          the .sym choose, never lowers it
      --audit-log <DIR>   The audit log [default: WORKSPACE/.symbiont/audit]
      --key <KEY>         The signing key: a key file or a PKCS#11 URI
                          [default: WORKSPACE/.symbiont/audit.key, created (0600) when missing]
      --input <JSON>      The agent's input (SYMBIONT_INPUT in the sandbox)
      --context <JSON>    A JSON object whose top-level keys are names the policy's guards and
                          requirements read, e.g. '{\"user_clearance\": \"developer\"}'
                          [default: symbiont.toml's [run] context, with [run.agents.NAME]
                          context's keys over it]
      --timeout <DUR>     Lower the execution timeout (e.g. 30s, 5m)
      --lock-wait <DUR>   How long to wait for another run writing the same audit log to finish
                          (runs of one workspace take turns on its log) [default: 60s]
      --summary <FORMAT>  The closing summary on standard error: human or json [default: human]
                          (json: one object with agent, run_id, state, exit_code, tier,
                          duration_ms, pooled, error, audit_log and audit_seqs, the run's first
                          and last entry)
      --warm              Run in a warm container an earlier `symbiont run --warm` left for
                          the same tier, image and limits, if one is ready; then, after the run,
                          leave one for the next (made by a detached process). Idle ones are
                          removed after 10 minutes; `symbiont pool drain` removes them all
  -h, --help              Print help

WORKSPACE is the directory of the nearest symbiont.toml above FILE, or FILE's directory.
The agent's output streams to standard output and error; a summary goes to standard error.

Exit status: the agent's own exit status when it ran to its end; 124 when it timed out;
137 when it was killed (out of memory, or SIGINT/Ctrl-C, SIGTERM, SIGHUP: the run cleans up
first); 69 when the sandbox or its image is not available (nothing weaker is tried); 77 when
the policy or the security settings refuse the run; 70 when the runtime failed (audit log, host
set-up); 2 on a usage or workspace error.
";

pub const IMAGE_HELP: &str = "\
Build the sandbox base images from Debian packages (no registry needed)

Usage: symbiont image build [KIND]...

Arguments:
  [KIND]...  python, node, minimal [default: all three]

Each image is debootstrap --variant=minbase plus its interpreter, imported into dockerd and
tagged symbiont/KIND:HASH by the hash of its recipe; an image that exists is not rebuilt.
The Debian mirror is SYMBIONT_DEBIAN_MIRROR [default: http://deb.debian.org/debian].
Exit status: 0 when every image exists or was built; 2 otherwise.
";

/// Exit statuses of `symbiont run` besides the agent's own.
pub mod status {
    pub const TIMED_OUT: u8 = 124;
    pub const KILLED: u8 = 137;
    pub const UNAVAILABLE: u8 = 69;
    pub const REFUSED: u8 = 77;
    pub const RUNTIME_FAILED: u8 = 70;
}

/// How long a run waits, by default, for another run writing its audit log (`--lock-wait`).
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct RunOptions {
    pub file: PathBuf,
    pub agent: Option<String>,
    pub tier: Option<Tier>,
    pub audit_log: Option<PathBuf>,
    pub key: Option<String>,
    pub input: serde_json::Value,
    /// `--context`; without it, the run's context is the one `symbiont.toml`'s `[run]` gives.
    pub context: Option<serde_json::Map<String, serde_json::Value>>,
    pub timeout: Option<Duration>,
    /// How long to wait for another writer of the audit log to close it.
    pub lock_wait: Duration,
    pub json_summary: bool,
    /// Adopt a warm container left by an earlier run, and leave one for the next.
    pub warm: bool,
}

pub fn parse_run(parser: &mut Parser) -> Result<crate::args::Command, UsageError> {
    let err = |e: lexopt::Error| UsageError::new(e.to_string(), Some("run"));
    let usage = |m: String| UsageError::new(m, Some("run"));
    let (mut file, mut agent, mut tier, mut audit_log, mut key, mut input, mut timeout) = (None, None, None, None, None, json!(null), None);
    let mut context = None;
    let mut lock_wait = DEFAULT_LOCK_WAIT;
    let (mut json_summary, mut warm) = (false, false);
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(crate::args::Command::Help(RUN_HELP)),
            Arg::Long("warm") => warm = true,
            Arg::Long("agent") => agent = Some(parser.value().map_err(err)?.string().map_err(err)?),
            Arg::Long("tier") => {
                tier = match parser.value().map_err(err)?.string().map_err(err)?.to_ascii_lowercase().trim_start_matches("tier") {
                    "auto" => None,
                    n @ ("1" | "2" | "3") => Tier::from_number(n.parse().unwrap_or(0)),
                    other => return Err(usage(format!("invalid value '{other}' for '--tier' (expected auto, 1, 2 or 3)"))),
                }
            }
            Arg::Long("audit-log") => audit_log = Some(PathBuf::from(parser.value().map_err(err)?)),
            Arg::Long("key") => key = Some(parser.value().map_err(err)?.string().map_err(err)?),
            Arg::Long("input") => {
                let text = parser.value().map_err(err)?.string().map_err(err)?;
                input = serde_json::from_str(&text).map_err(|e| usage(format!("'--input' is not JSON: {e}")))?;
            }
            Arg::Long("context") => {
                let text = parser.value().map_err(err)?.string().map_err(err)?;
                context = match serde_json::from_str(&text) {
                    Ok(serde_json::Value::Object(map)) => Some(map),
                    Ok(_) => return Err(usage("'--context' must be a JSON object".into())),
                    Err(e) => return Err(usage(format!("'--context' is not JSON: {e}"))),
                };
            }
            Arg::Long("summary") => {
                json_summary = match parser.value().map_err(err)?.string().map_err(err)?.as_str() {
                    "human" => false,
                    "json" => true,
                    other => return Err(usage(format!("invalid value '{other}' for '--summary' (expected human or json)"))),
                }
            }
            Arg::Long("timeout") => {
                let text = parser.value().map_err(err)?.string().map_err(err)?;
                match symbiont_syntax::quantity::parse(&text) {
                    Ok(symbiont_syntax::quantity::Quantity::Duration(d)) if !d.is_zero() => timeout = Some(d),
                    _ => return Err(usage(format!("invalid value '{text}' for '--timeout' (expected a duration such as 30s or 5m)"))),
                }
            }
            Arg::Long("lock-wait") => {
                let text = parser.value().map_err(err)?.string().map_err(err)?;
                match symbiont_syntax::quantity::parse(&text) {
                    Ok(symbiont_syntax::quantity::Quantity::Duration(d)) => lock_wait = d,
                    _ => return Err(usage(format!("invalid value '{text}' for '--lock-wait' (expected a duration such as 60s or 5m)"))),
                }
            }
            Arg::Value(path) if file.is_none() => file = Some(PathBuf::from(path)),
            arg => return Err(err(arg.unexpected())),
        }
    }
    let file = file.ok_or_else(|| usage("missing FILE.sym".into()))?;
    Ok(crate::args::Command::Run(RunOptions { file, agent, tier, audit_log, key, input, context, timeout, lock_wait, json_summary, warm }))
}

pub fn parse_image(parser: &mut Parser) -> Result<crate::args::Command, UsageError> {
    let err = |e: lexopt::Error| UsageError::new(e.to_string(), Some("image"));
    match parser.next().map_err(err)? {
        Some(Arg::Value(sub)) if sub == "build" => {}
        None | Some(Arg::Short('h') | Arg::Long("help")) => return Ok(crate::args::Command::Help(IMAGE_HELP)),
        Some(Arg::Value(other)) => {
            return Err(UsageError::new(format!("unknown image command '{}' (expected 'build')", other.to_string_lossy()), Some("image")))
        }
        Some(arg) => return Err(err(arg.unexpected())),
    }
    let mut kinds = Vec::new();
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(crate::args::Command::Help(IMAGE_HELP)),
            Arg::Value(kind) => {
                let name = kind.string().map_err(err)?;
                kinds.push(
                    ImageKind::from_name(&name).ok_or_else(|| {
                        UsageError::new(format!("unknown image '{name}' (expected python, node or minimal)"), Some("image"))
                    })?,
                );
            }
            arg => return Err(err(arg.unexpected())),
        }
    }
    if kinds.is_empty() {
        kinds = ImageKind::ALL.to_vec();
    }
    Ok(crate::args::Command::ImageBuild(kinds))
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| format!("cannot start the async runtime: {e}"))
}

pub fn image_build(kinds: &[ImageKind]) -> Exit {
    let runtime = match tokio_runtime() {
        Ok(r) => r,
        Err(e) => return Exit::failure(e),
    };
    runtime.block_on(async {
        let docker = match symbiont_runtime::sandbox::docker::connect().await {
            Ok(docker) => docker,
            Err(e) => return Exit::failure(e),
        };
        for &kind in kinds {
            let mut progress = |line: String| {
                let _ = writeln!(std::io::stderr(), "{line}");
            };
            if let Err(e) = image::build(&docker, kind, &mut progress).await {
                return Exit::failure(format!("building the {} image: {e}", kind.name()));
            }
        }
        Exit::Clean
    })
}

/// What `run` refuses with, and the status it exits with.
struct Refusal {
    status: u8,
    message: String,
}

fn refuse(status: u8, message: impl Into<String>) -> Refusal {
    Refusal { status, message: message.into() }
}

pub fn run(options: &RunOptions) -> Exit {
    match run_inner(options) {
        Ok(status) => Exit::Code(status),
        Err(Refusal { status, message }) => {
            crate::print_error(message);
            Exit::Code(status)
        }
    }
}

/// The workspace root: the nearest ancestor with a `symbiont.toml`, else the file's directory.
fn workspace_root(file: &Path, cwd: &Path) -> PathBuf {
    match walk::find_config(file, cwd) {
        Some(config) => cwd.join(config).parent().map(Path::to_path_buf).unwrap_or_else(|| cwd.to_path_buf()),
        None => {
            let absolute = cwd.join(file);
            absolute.parent().map(Path::to_path_buf).unwrap_or_else(|| cwd.to_path_buf())
        }
    }
}

/// A run composed from its workspace: everything decided before the agent is handed to the
/// runtime. Composing reads the workspace (each `.sym` parsed once, refused on syntax errors),
/// resolves the agent and its effective policy, assesses the risk, picks the tier and limits,
/// opens the agent's workspace and the audit log (waiting its turn), and makes the run's context;
/// it starts nothing.
struct Composed {
    config: AgentConfig,
    assessment: risk::Assessment,
    /// The `.sym`'s minimum tier, if it declares one.
    declared: Option<Tier>,
    warm: bool,
    log: Arc<Log>,
    opened: symbiont_audit::OpenReport,
    log_dir: PathBuf,
}

fn compose(options: &RunOptions) -> Result<Composed, Refusal> {
    let usage = |m: String| refuse(2, m);
    let cwd = std::env::current_dir().map_err(|e| usage(format!("cannot read the current directory: {e}")))?;
    let file = cwd.join(&options.file);
    if !file.is_file() {
        return Err(usage(format!("{}: no such file", options.file.display())));
    }
    let root = workspace_root(&options.file, &cwd);
    let universe = crate::policy::load(std::slice::from_ref(&root)).map_err(usage)?;

    // The agent: defined in FILE, named by --agent when FILE defines several.
    let file_key = file.canonicalize().unwrap_or(file.clone());
    let in_file: Vec<&AgentDef> =
        universe.agents().filter(|a| Path::new(&*a.loc.file).canonicalize().ok().as_deref() == Some(file_key.as_path())).collect();
    let agent = match (&options.agent, in_file.as_slice()) {
        (Some(name), _) => in_file
            .iter()
            .copied()
            .find(|a| &a.name == name)
            .ok_or_else(|| usage(format!("{}: no agent `{name}`", options.file.display())))?,
        (None, [one]) => *one,
        (None, []) => return Err(usage(format!("{}: defines no agent", options.file.display()))),
        (None, many) => {
            let names: Vec<&str> = many.iter().map(|a| a.name.as_str()).collect();
            return Err(usage(format!(
                "{} defines several agents ({}): choose one with --agent",
                options.file.display(),
                names.join(", ")
            )));
        }
    };
    let effective = universe.effective(Some(&agent.name)).map_err(|e| usage(e.to_string()))?;
    let warm = options.warm || universe.config().runtime.warm;

    // Isolation: a word the runtime cannot honour refuses the run; a tier is a minimum.
    let declared = match &agent.security.isolation {
        Some(Err(word)) => {
            return Err(refuse(
                status::REFUSED,
                format!("agent `{}` asks for isolation `{word}`, which this runtime cannot provide", agent.name),
            ))
        }
        Some(Ok(isolation)) => Tier::from_isolation(*isolation),
        None => None,
    };
    if let (Some(requested), Some(minimum)) = (options.tier, declared) {
        if requested < minimum {
            return Err(refuse(
                status::REFUSED,
                format!(
                    "--tier {} is below agent `{}`'s minimum, {minimum}: the tier can be raised, never lowered",
                    requested.number(),
                    agent.name
                ),
            ));
        }
    }

    let sym_dir = file.parent().unwrap_or(&root).to_path_buf();
    let files = implementation_files(agent, &sym_dir).map_err(|m| refuse(2, m))?;
    let language = Language::of_path(&files[0]).ok_or_else(|| {
        refuse(
            2,
            format!(
                "{}: the runtime runs Python, JavaScript and compiled programs; compile TypeScript to JavaScript, and list a Rust agent's built binary in `implementation`",
                files[0].display()
            ),
        )
    })?;

    // Risk: what the policy allows, what the code does, how sensitive the data is.
    let allowed: Vec<String> = symbiont_policy::catalogue::OPERATIONS
        .iter()
        .map(|op| op.name.to_string())
        .filter(|op| !matches!(effective.static_verdict(op), StaticVerdict::DeniedBy(_) | StaticVerdict::NeverAllowed))
        .collect();
    let rules = symbiont_code::RuleSet::new(true, Vec::new()).map_err(|e| usage(format!("{e:?}")))?;
    let mut performed = Vec::new();
    for path in &files {
        if let (Some(lang), Ok(text)) = (symbiont_code::Lang::from_path(path), std::fs::read_to_string(sym_dir.join(path))) {
            performed.extend(rules.scan(lang, &text).findings.into_iter().map(|f| f.operation));
        }
    }
    let classification =
        effective.conditions.iter().find(|c| c.key == "data_classification").and_then(|c| c.value.as_str().map(str::to_string));
    let assessment = risk::assess(&RiskInputs { allowed, performed, classification });
    let tier = risk::choose_tier(assessment.tier, declared, options.tier);

    let mut limits = Limits::default();
    if let Some(bytes) = agent.security.memory_bytes {
        limits.memory_bytes = bytes.max(8 << 20);
    }
    if let Some(cpus) = agent.security.cpus {
        limits.cpus = cpus.max(0.01);
    }
    if let Some(timeout) = agent.security.timeout {
        limits.timeout = timeout;
    }
    if let Some(timeout) = options.timeout {
        limits.timeout = limits.timeout.min(timeout);
    }

    // The agent's workspace, opened once and held: refused when a directory on the way is a link
    // or not the user's (a repository can ship `.symbiont/workspaces/AGENT -> /`). First, so that
    // `.symbiont`, where the key goes, is checked before anything is written there.
    let workspace = symbiont_runtime::Workspace::for_agent(&root, &agent.name).map_err(usage)?;

    // The audit log and its key: per workspace by default, never inside what the agent sees.
    let state_dir = root.join(".symbiont");
    let log_dir = options.audit_log.clone().unwrap_or_else(|| state_dir.join("audit"));
    if options.audit_log.is_none() {
        // The workspace's own log directory may come from the repository (git keeps links): a
        // link would send the log, and the run's writes, wherever the repository points.
        if std::fs::symlink_metadata(&log_dir).is_ok_and(|meta| meta.is_symlink()) {
            return Err(usage(format!(
                "the audit log {} is a symbolic link; the workspace's audit log must be a directory of its own (or choose one with --audit-log)",
                log_dir.display()
            )));
        }
    }
    let signer = signer(options.key.as_deref(), &state_dir).map_err(|m| refuse(status::RUNTIME_FAILED, m))?;
    let (log, opened) = open_log(&log_dir, signer, options.lock_wait)?;
    let log = Arc::new(log);
    // Neither the audit log nor its key may be where the agent's file operations reach.
    let within = |path: &Path| path.canonicalize().ok().zip(workspace.path().canonicalize().ok()).is_some_and(|(p, w)| p.starts_with(w));
    let key = options.key.as_deref().map_or_else(|| state_dir.join("audit.key"), PathBuf::from);
    for (what, path) in [("audit log", &log_dir), ("signing key", &key)] {
        if within(path) {
            return Err(usage(format!("the {what} {} is inside the agent's workspace {}", path.display(), workspace.path().display())));
        }
    }

    let config = AgentConfig {
        id: agent.name.clone(),
        tier,
        limits,
        policy: Arc::new(Engine::compile(effective)),
        language,
        code_root: sym_dir,
        files,
        workspace,
        input: options.input.clone(),
        context: options.context.clone().unwrap_or_else(|| universe.config().run.context_for(&agent.name)),
        env: agent_env(&universe.config().runtime),
        priority: Default::default(),
    };
    Ok(Composed { config, assessment, declared, warm, log, opened, log_dir })
}

/// Runs a composed run to its end: audits the risk assessment, hands the agent to the runtime,
/// streams its output, closes the log and reports.
fn run_inner(options: &RunOptions) -> Result<u8, Refusal> {
    let Composed { config, assessment, declared, warm, log, opened, log_dir } = compose(options)?;
    let (tier, language, limits) = (config.tier, config.language, config.limits);
    let usage = |m: String| refuse(2, m);
    let auditor = Auditor::new(log.clone());
    let runtime = tokio_runtime().map_err(|m| refuse(status::RUNTIME_FAILED, m))?;
    let outcome = runtime.block_on(async {
        // First, so that no stop signal kills the process while it has made anything.
        let cancel = stop_signals().map_err(|m| refuse(status::RUNTIME_FAILED, m))?;
        let factors: Vec<_> = assessment.factors.iter().map(|(why, w)| json!({"factor": why, "weight": w})).collect();
        let details = Map::from_iter([
            ("score".to_string(), json!(assessment.score)),
            ("assessed_tier".to_string(), json!(assessment.tier.number())),
            ("declared_tier".to_string(), json!(declared.map(Tier::number))),
            ("requested_tier".to_string(), json!(options.tier.map(Tier::number))),
            ("factors".to_string(), json!(factors)),
        ]);
        auditor
            .record(&config.id, "risk_assessment", &format!("tier{}", tier.number()), details)
            .await
            .map_err(|e| refuse(status::RUNTIME_FAILED, format!("audit log: {e}")))?;
        let mut runtime = AgentRuntime::new(auditor).await;
        runtime.set_adopt_parked(warm);
        // What an earlier `symbiont run` killed with SIGKILL left: removed, and audited when its
        // audit log is this one.
        runtime.set_reap_leftovers(true);
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<symbiont_runtime::Output>();
        let printer = tokio::spawn(async move {
            while let Some((stream, bytes)) = receiver.recv().await {
                let _ = match stream {
                    OutputStream::Stdout => std::io::stdout().write_all(&bytes).and_then(|()| std::io::stdout().flush()),
                    OutputStream::Stderr => std::io::stderr().write_all(&bytes),
                };
            }
        });
        let result = runtime.run(config, sender, cancel).await;
        let _ = printer.await;
        Ok::<_, Refusal>(result)
    })?;
    let summary = |line: String| {
        let _ = writeln!(std::io::stderr(), "symbiont: {line}");
    };
    // Entries are durable already; closing writes the final checkpoint.
    drop(runtime);
    let written = log.commit_stats().entries;
    if let Ok(log) = Arc::try_unwrap(log) {
        let _ = log.close();
    }
    // This run's entries: from the first appended after opening to the last.
    let seqs = (opened.entries, (opened.entries + written).saturating_sub(1));
    if warm && outcome.is_ok() {
        // After the run's clean-up, and without waiting: the next run's warm container.
        crate::warm::spawn_refill(tier, language, &limits);
    }
    match outcome {
        Ok(report) => {
            let exit = report.exit_code.map_or(String::new(), |c| format!(" (exit {c})"));
            let why = report.error.as_ref().map_or(String::new(), |e| format!(": {e}"));
            if options.json_summary {
                let line = json!({
                    "agent": report.agent,
                    "run_id": report.run_id,
                    "state": report.state.as_str(),
                    "exit_code": report.exit_code,
                    "oom_killed": report.oom_killed,
                    "tier": report.tier.number(),
                    "duration_ms": report.duration.as_millis() as u64,
                    "pooled": report.pooled,
                    "error": report.error,
                    "audit_log": log_dir.canonicalize().unwrap_or(log_dir.clone()),
                    "audit_seqs": [seqs.0, seqs.1],
                });
                let _ = writeln!(std::io::stderr(), "{line}");
            } else {
                summary(format!(
                    "agent `{}` {}{exit} at {} in {:.2} s{why}; run {} is entries {}–{} of the audit log {}",
                    report.agent,
                    report.state.as_str().replace('_', " "),
                    report.tier,
                    report.duration.as_secs_f64(),
                    report.run_id,
                    seqs.0,
                    seqs.1,
                    log_dir.display()
                ));
            }
            Ok(match report.state {
                State::TimedOut => status::TIMED_OUT,
                State::Killed => status::KILLED,
                State::Completed => 0,
                _ => match report.exit_code {
                    Some(code) if (1..=255).contains(&code) => code as u8,
                    _ => status::RUNTIME_FAILED,
                },
            })
        }
        Err(e @ (RunError::SandboxUnavailable(_) | RunError::ImageMissing(_))) => Err(refuse(status::UNAVAILABLE, e.to_string())),
        Err(e @ RunError::Input(_)) => Err(usage(e.to_string())),
        Err(e) => Err(refuse(status::RUNTIME_FAILED, e.to_string())),
    }
}

/// Resolves at the first SIGINT (Ctrl-C), SIGTERM (`kill`, a service manager) or SIGHUP (the
/// terminal went away): each stops the run the same way (the agent killed, `killed` audited, the
/// container and staging directory removed, exit 137). Registered before anything is made, so
/// that none of them ends the process by its default action; Tokio never unregisters them, so a
/// second signal during the clean-up is absorbed and the clean-up finishes (it is bounded: the
/// kill, at most 10 s waiting for the agent to end, the removal). SIGKILL cannot be handled: the
/// next run cleans up (`symbiont_runtime::leftovers`).
fn stop_signals() -> Result<impl std::future::Future<Output = ()>, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [("SIGINT", SignalKind::interrupt()), ("SIGTERM", SignalKind::terminate()), ("SIGHUP", SignalKind::hangup())];
    let mut streams = Vec::new();
    for (name, kind) in kinds {
        streams.push((name, signal(kind).map_err(|e| format!("cannot handle {name}: {e}"))?));
    }
    Ok(async move {
        let name = std::future::poll_fn(|cx| {
            for (name, stream) in &mut streams {
                if stream.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(*name);
                }
            }
            std::task::Poll::Pending
        })
        .await;
        let _ = writeln!(std::io::stderr(), "symbiont: {name}: stopping the agent and cleaning up");
    })
}

/// Opens the audit log, waiting up to `wait` for another run (or any writer) holding it: a log has
/// one writer at a time, so concurrent runs of one workspace take turns, each appending after the
/// last entry of the one before. Waiting is said once on standard error.
fn open_log(dir: &Path, signer: Arc<dyn Signer>, wait: Duration) -> Result<(Log, symbiont_audit::OpenReport), Refusal> {
    let mut waiting = |holder: Option<u32>| {
        let pid = holder.map_or(String::new(), |pid| format!(" (pid {pid})"));
        let _ = writeln!(
            std::io::stderr(),
            "symbiont: waiting for another run of this workspace{pid} to release the audit log {} (at most {} s; --lock-wait)",
            dir.display(),
            wait.as_secs_f64()
        );
    };
    Log::open_waiting(dir, signer, LogOptions::default(), wait, &mut waiting).map_err(|e| {
        let waited = match e {
            symbiont_audit::Error::Locked(_) if !wait.is_zero() => format!("; waited {} s (--lock-wait)", wait.as_secs_f64()),
            _ => String::new(),
        };
        refuse(status::RUNTIME_FAILED, format!("{}: cannot open the audit log: {e}{waited}", dir.display()))
    })
}

/// The signer for `--key`, or the workspace's key, created (0600) on first use.
fn signer(key: Option<&str>, state_dir: &Path) -> Result<Arc<dyn Signer>, String> {
    if let Some(spec) = key {
        return symbiont_audit::keys::load_signer(spec).map_err(|e| format!("--key: {e}"));
    }
    let path = state_dir.join("audit.key");
    if !path.exists() {
        std::fs::create_dir_all(state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
        let signer = FileSigner::generate().map_err(|e| e.to_string())?;
        signer.write(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let signer = FileSigner::load(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Arc::new(signer))
}

/// The files `implementation` names, relative to the `.sym` file's directory, in order: a plain
/// path as it is, a glob's matches sorted. The first file is the entry point.
fn implementation_files(agent: &AgentDef, base: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = Vec::new();
    for (pattern, loc) in &agent.implementation {
        let escapes = Path::new(pattern).components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
        if escapes {
            return Err(format!("{loc}: implementation `{pattern}` must be a path below the .sym file's directory"));
        }
        let mut matched: Vec<PathBuf> = if pattern.contains(['*', '?']) {
            walk::collect(&[base.to_path_buf()], base, true)?
                .files
                .into_iter()
                .filter_map(|p| p.strip_prefix(base).ok().map(Path::to_path_buf))
                .filter(|p| symbiont_code::paths::matches(pattern, &p.to_string_lossy()))
                .collect()
        } else {
            let path = PathBuf::from(pattern.trim_start_matches("./"));
            if !base.join(&path).is_file() {
                return Err(format!("{loc}: implementation file `{pattern}` does not exist"));
            }
            vec![path]
        };
        matched.sort();
        for path in matched {
            if !files.contains(&path) {
                files.push(path);
            }
        }
    }
    if files.is_empty() {
        return Err(format!("{}: agent `{}` has no `implementation` files to run", agent.loc, agent.name));
    }
    Ok(files)
}

/// The environment the agent reads with `env_get`, as `symbiont.toml` declares it: the values of
/// `[runtime.env]`, and the `pass_env` variables this process has (set and UTF-8). Nothing else
/// of this process's environment, which may hold secrets, reaches the agent.
fn agent_env(settings: &symbiont_policy::config::RuntimeSettings) -> std::collections::BTreeMap<String, String> {
    let passed = settings.pass_env.iter().filter_map(|name| Some((name.clone(), std::env::var(name).ok()?)));
    settings.env.clone().into_iter().chain(passed).collect()
}
