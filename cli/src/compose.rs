//! Composing a run: everything decided before an agent is handed to the runtime, in one place that
//! `symbiont run`, the workspace service (`symbiont up`, `service/`) and the editor's "Run agent"
//! (which runs `symbiont run`) share.
//!
//! [`Workspace::load`] reads a workspace once (each `.sym` parsed once) and refuses it when its
//! definitions have error diagnostics, listing them; [`compose`] resolves one agent of it (its
//! effective policy, implementation, risk, tier, limits, workspace directory, context and
//! environment) into an [`AgentConfig`]. Neither starts anything nor writes the audit log: the
//! caller opens the log ([`open_log`]) or holds it (the service), records the risk assessment
//! ([`record_risk`]) and hands the config to the runtime; [`Ending`] turns the outcome into the
//! summary and the exit status, the same for every caller.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Component, Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map};
use symbiont_analysis::{AnalysisHost, Severity};
use symbiont_audit::{
    keys::{FileSigner, Signer},
    Log, LogOptions,
};
use symbiont_policy::{effective::StaticVerdict, model::AgentDef, schedule::ScheduleDecl, Engine, Universe};
use symbiont_runtime::{
    risk::{self, RiskInputs},
    AgentConfig, Auditor, Language, Limits, RunError, RunReport, State, Tier,
};

use crate::{walk, workspace};

/// Exit statuses of a run besides the agent's own.
pub mod status {
    pub const TIMED_OUT: u8 = 124;
    pub const KILLED: u8 = 137;
    pub const UNAVAILABLE: u8 = 69;
    pub const REFUSED: u8 = 77;
    pub const RUNTIME_FAILED: u8 = 70;
    pub const USAGE: u8 = 2;
}

/// How long a run waits, by default, for another run writing its audit log (`--lock-wait`).
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(60);

/// Why a run does not start, and the status it exits with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub status: u8,
    pub message: String,
}

pub fn refuse(status: u8, message: impl Into<String>) -> Refusal {
    Refusal { status, message: message.into() }
}

fn usage(message: String) -> Refusal {
    refuse(status::USAGE, message)
}

/// What a run is asked to be, as `symbiont run` says it: the same whether the run is composed in
/// this process or handed to the workspace's service (it travels as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The `.sym` file, absolute.
    pub file: PathBuf,
    pub agent: Option<String>,
    /// `--tier`: a minimum, never lowers the chosen tier.
    pub tier: Option<u8>,
    pub input: serde_json::Value,
    /// `--context`; without it, `symbiont.toml`'s `[run]` context.
    pub context: Option<Map<String, serde_json::Value>>,
    /// `--timeout`, in milliseconds: lowers the agent's timeout.
    pub timeout_ms: Option<u64>,
    pub warm: bool,
    /// The requester's values of the variables `symbiont.toml`'s `pass_env` names: the agent sees
    /// the environment of whoever asked for the run, never the service's.
    pub passed_env: BTreeMap<String, String>,
}

impl RunRequest {
    /// A run of the agent `agent` of the `.sym` file `file` (as the workspace's walk gives it:
    /// relative to the current directory, made absolute here), with no input, context or
    /// timeout of its own and no passed environment: what the service's schedules and warm pools
    /// and `symbiont doctor` compose.
    pub fn for_agent(file: &Path, agent: &str) -> RunRequest {
        RunRequest {
            file: std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf()),
            agent: Some(agent.to_string()),
            tier: None,
            input: serde_json::Value::Null,
            context: None,
            timeout_ms: None,
            warm: false,
            passed_env: BTreeMap::new(),
        }
    }
}

/// The workspace root: the nearest ancestor of `file` with a `symbiont.toml`, else its directory.
pub fn workspace_root(file: &Path, cwd: &Path) -> PathBuf {
    match walk::find_config(file, cwd) {
        Some(config) => cwd.join(config).parent().map(Path::to_path_buf).unwrap_or_else(|| cwd.to_path_buf()),
        None => {
            let absolute = cwd.join(file);
            absolute.parent().map(Path::to_path_buf).unwrap_or_else(|| cwd.to_path_buf())
        }
    }
}

/// The values of the variables `root`'s `symbiont.toml` passes to agents (`[runtime] pass_env`),
/// from this process's environment (set and UTF-8 only).
pub fn passed_env(root: &Path) -> BTreeMap<String, String> {
    let config = std::fs::read_to_string(root.join("symbiont.toml")).ok().and_then(|text| symbiont_policy::config::parse(&text).ok());
    let names = config.map(|c| c.runtime.pass_env).unwrap_or_default();
    names.into_iter().filter_map(|name| Some((name.clone(), std::env::var(&name).ok()?))).collect()
}

/// A workspace as a run sees it: read once, its definitions free of error diagnostics.
pub struct Workspace {
    pub root: PathBuf,
    pub universe: Universe,
    /// Every `schedule` block, with the file it is in.
    pub schedules: Vec<(PathBuf, ScheduleDecl)>,
}

impl Workspace {
    /// Reads the workspace at `root`: every `.sym` file parsed once, lowered to policies, and
    /// analysed; refused with its error diagnostics (as `symbiont check` prints them) when there
    /// are any. Findings in agent code are not refusals: the runtime enforces the policy at the
    /// call, and its denials are what those findings predict.
    pub fn load(root: &Path) -> Result<Workspace, Refusal> {
        Workspace::load_with(root, &mut AnalysisHost::new())
    }

    /// [`Workspace::load`] into `host` (a new one), which a test asks what it executed. Each file
    /// is parsed once: the analysis's parse, cached, is the one lowered to policies.
    fn load_with(root: &Path, host: &mut AnalysisHost) -> Result<Workspace, Refusal> {
        // Paths relative to the current directory, as `symbiont check` shows them.
        let cwd = std::env::current_dir().map_err(|e| usage(format!("cannot read the current directory: {e}")))?;
        let sources = workspace::read(&[root.to_path_buf()], &cwd).map_err(usage)?;
        if let Some((path, error)) = sources.unreadable.first() {
            return Err(usage(format!("{}: {error}", path.display())));
        }
        let config = workspace::config(&sources).map_err(usage)?;
        host.set_config(sources.config.clone());
        let definitions: Vec<PathBuf> =
            sources.files.iter().map(|(path, _)| path.clone()).filter(|p| symbiont_analysis::is_source_path(p)).collect();
        for (path, text) in sources.files.into_iter().filter(|(path, _)| symbiont_analysis::is_source_path(path)) {
            host.set_file(path, text);
        }
        refuse_errors(host)?;
        let (mut models, mut schedules) = (Vec::new(), Vec::new());
        for path in definitions {
            let (Some(parse), Some(text)) = (host.parse(&path), host.file_text(&path)) else { continue };
            let tree = parse.tree();
            models.push(symbiont_policy::lower::lower_file(&path.display().to_string(), &text, &tree));
            schedules.extend(symbiont_policy::schedule::schedules(&tree).into_iter().map(|s| (path.clone(), s)));
        }
        Ok(Workspace { root: root.to_path_buf(), universe: Universe::new(&models, config), schedules })
    }
}

/// Refuses when any file of `host` has an error diagnostic, listing them (at most 20).
fn refuse_errors(host: &AnalysisHost) -> Result<(), Refusal> {
    let mut lines = Vec::new();
    let mut total = 0;
    for (path, diagnostics) in host.all_diagnostics_parallel(&|_, _| {}) {
        let Some(text) = host.file_text(&path) else { continue };
        let index = symbiont_syntax::LineIndex::new(&text);
        for d in diagnostics.iter().filter(|d| d.severity == Severity::Error) {
            total += 1;
            if lines.len() < 20 {
                let pos = index.line_col(&text, d.range.start());
                lines.push(format!("  {}:{}:{}: error[{}]: {}", path.display(), pos.line + 1, pos.col + 1, d.rule.code, d.message));
            }
        }
    }
    if total == 0 {
        return Ok(());
    }
    let more = if total > lines.len() { format!("\n  … and {} more", total - lines.len()) } else { String::new() };
    Err(usage(format!(
        "the workspace has {total} error{}; nothing was started (`symbiont check` explains each):\n{}{more}",
        if total == 1 { "" } else { "s" },
        lines.join("\n")
    )))
}

/// A run composed from its workspace (module doc).
pub struct Composed {
    pub config: AgentConfig,
    pub assessment: risk::Assessment,
    /// The `.sym`'s minimum tier, if it declares one.
    pub declared: Option<Tier>,
    /// `--tier`, if given.
    pub requested: Option<Tier>,
    pub warm: bool,
}

/// Resolves `request`'s agent in `workspace` into a run; starts nothing and writes nothing but the
/// agent's workspace directory (opened, made when missing).
pub fn compose(request: &RunRequest, workspace: &Workspace) -> Result<Composed, Refusal> {
    let universe = &workspace.universe;
    let agent = resolve_agent(request, universe)?;
    let effective = universe.effective(Some(&agent.name)).map_err(|e| usage(e.to_string()))?;
    let requested = match request.tier {
        None => None,
        Some(n) => Some(Tier::from_number(n).ok_or_else(|| usage(format!("invalid tier {n}")))?),
    };
    let declared = declared_tier(agent, requested)?;

    let sym_dir = request.file.parent().unwrap_or(&workspace.root).to_path_buf();
    let files = implementation_files(agent, &sym_dir).map_err(usage)?;
    let language = Language::of_path(&files[0]).ok_or_else(|| {
        usage(format!(
            "{}: the runtime runs Python, JavaScript and compiled programs; compile TypeScript to JavaScript, and list a Rust agent's built binary in `implementation`",
            files[0].display()
        ))
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
    let tier = risk::choose_tier(assessment.tier, declared, requested);

    // The agent's workspace, opened once and held: refused when a directory on the way is a link
    // or not the user's (a repository can ship `.symbiont/workspaces/AGENT -> /`).
    let agent_dir = symbiont_runtime::Workspace::for_agent(&workspace.root, &agent.name).map_err(usage)?;
    let settings = &universe.config().runtime;
    let env = settings.env.clone().into_iter().chain(request.passed_env.clone().into_iter().filter(|(k, _)| settings.pass_env.contains(k)));
    let config = AgentConfig {
        id: agent.name.clone(),
        tier,
        limits: limits(agent, request.timeout_ms.map(Duration::from_millis)),
        policy: Arc::new(Engine::compile(effective)),
        language,
        code_root: sym_dir,
        files,
        workspace: agent_dir,
        input: request.input.clone(),
        context: request.context.clone().unwrap_or_else(|| universe.config().run.context_for(&agent.name)),
        env: env.collect(),
        priority: Default::default(),
    };
    Ok(Composed { config, assessment, declared, requested, warm: request.warm || settings.warm })
}

/// The agent the request names: defined in its file, named by `agent` when the file has several.
fn resolve_agent<'u>(request: &RunRequest, universe: &'u Universe) -> Result<&'u AgentDef, Refusal> {
    let shown = request.file.display();
    let file_key = request.file.canonicalize().unwrap_or(request.file.clone());
    let in_file: Vec<&AgentDef> =
        universe.agents().filter(|a| Path::new(&*a.loc.file).canonicalize().ok().as_deref() == Some(file_key.as_path())).collect();
    match (&request.agent, in_file.as_slice()) {
        (Some(name), _) => in_file.iter().copied().find(|a| &a.name == name).ok_or_else(|| usage(format!("{shown}: no agent `{name}`"))),
        (None, [one]) => Ok(*one),
        (None, []) => Err(usage(format!("{shown}: defines no agent"))),
        (None, many) => {
            let names: Vec<&str> = many.iter().map(|a| a.name.as_str()).collect();
            Err(usage(format!("{shown} defines several agents ({}): choose one with --agent", names.join(", "))))
        }
    }
}

/// The agent's minimum tier: a word the runtime cannot honour refuses the run, and so does a
/// `--tier` below the minimum (a tier can be raised, never lowered).
fn declared_tier(agent: &AgentDef, requested: Option<Tier>) -> Result<Option<Tier>, Refusal> {
    let declared = match &agent.security.isolation {
        Some(Err(word)) => {
            let message = format!("agent `{}` asks for isolation `{word}`, which this runtime cannot provide", agent.name);
            return Err(refuse(status::REFUSED, message));
        }
        Some(Ok(isolation)) => Tier::from_isolation(*isolation),
        None => None,
    };
    if let (Some(requested), Some(minimum)) = (requested, declared) {
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
    Ok(declared)
}

/// The agent's limits: the defaults, its `security` block's, and `timeout` (only ever lower).
fn limits(agent: &AgentDef, timeout: Option<Duration>) -> Limits {
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
    if let Some(timeout) = timeout {
        limits.timeout = limits.timeout.min(timeout);
    }
    limits
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

/// Refuses a run whose audit log or signing key is where the agent's file operations reach.
pub fn check_log_outside(config: &AgentConfig, log_dir: &Path, key: &Path) -> Result<(), Refusal> {
    let workspace = config.workspace.path().canonicalize().ok();
    let within = |path: &Path| path.canonicalize().ok().zip(workspace.as_ref()).is_some_and(|(p, w)| p.starts_with(w));
    for (what, path) in [("audit log", log_dir), ("signing key", key)] {
        if within(path) {
            return Err(usage(format!(
                "the {what} {} is inside the agent's workspace {}",
                path.display(),
                config.workspace.path().display()
            )));
        }
    }
    Ok(())
}

/// The workspace's audit log directory, refused when it is a symbolic link (git keeps links: a
/// repository's link would send the log, and the run's writes, wherever it points).
pub fn default_log_dir(root: &Path) -> Result<PathBuf, Refusal> {
    let log_dir = root.join(".symbiont").join("audit");
    if std::fs::symlink_metadata(&log_dir).is_ok_and(|meta| meta.is_symlink()) {
        return Err(usage(format!(
            "the audit log {} is a symbolic link; the workspace's audit log must be a directory of its own (or choose one with --audit-log)",
            log_dir.display()
        )));
    }
    Ok(log_dir)
}

/// Opens the audit log, waiting up to `wait` for another writer holding it: a log has one writer
/// at a time, so concurrent runs of one workspace take turns. Waiting is said once on stderr.
pub fn open_log(dir: &Path, signer: Arc<dyn Signer>, wait: Duration) -> Result<(Log, symbiont_audit::OpenReport), Refusal> {
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
pub fn signer(key: Option<&str>, state_dir: &Path) -> Result<Arc<dyn Signer>, String> {
    if let Some(spec) = key {
        return symbiont_audit::load_signer(spec).map_err(|e| format!("--key: {e}"));
    }
    let path = state_dir.join("audit.key");
    if !path.exists() {
        std::fs::create_dir_all(state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
        let signer = FileSigner::generate().map_err(|e| e.to_string())?;
        // Another run started at the same time may have made it first (a key file appears whole):
        // then that key is the workspace's.
        if let Err(e) = signer.write(&path) {
            if !path.exists() {
                return Err(format!("{}: {e}", path.display()));
            }
        }
    }
    let signer = FileSigner::load(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Arc::new(signer))
}

/// Appends the run's `risk_assessment` entry: the score, the tiers assessed, declared and
/// requested, and the factors. Before the run, so the log says why its tier was chosen.
pub async fn record_risk(auditor: &Auditor, composed: &Composed) -> Result<(), Refusal> {
    let assessment = &composed.assessment;
    let factors: Vec<_> = assessment.factors.iter().map(|(why, w)| json!({"factor": why, "weight": w})).collect();
    let details = Map::from_iter([
        ("score".to_string(), json!(assessment.score)),
        ("assessed_tier".to_string(), json!(assessment.tier.number())),
        ("declared_tier".to_string(), json!(composed.declared.map(Tier::number))),
        ("requested_tier".to_string(), json!(composed.requested.map(Tier::number))),
        ("factors".to_string(), json!(factors)),
    ]);
    let tier = format!("tier{}", composed.config.tier.number());
    auditor
        .record(&composed.config.id, "risk_assessment", &tier, details)
        .await
        .map(|_| ())
        .map_err(|e| refuse(status::RUNTIME_FAILED, format!("audit log: {e}")))
}

/// How a run ended, for whoever asked for it: the closing summary (for standard error) and the
/// exit status, or the refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    pub summary: String,
    pub status: u8,
}

impl Ending {
    /// The summary `symbiont run` prints (human, or one JSON object with `json`) and its status.
    /// `seqs` are the first and last audit entries the run's process appended.
    pub fn of(outcome: Result<RunReport, RunError>, json: bool, log_dir: &Path, seqs: (u64, u64)) -> Result<Ending, Refusal> {
        let report = match outcome {
            Ok(report) => report,
            Err(e @ (RunError::SandboxUnavailable(_) | RunError::ImageMissing(_))) => {
                return Err(refuse(status::UNAVAILABLE, e.to_string()))
            }
            Err(e @ RunError::Input(_)) => return Err(usage(e.to_string())),
            Err(e) => return Err(refuse(status::RUNTIME_FAILED, e.to_string())),
        };
        let exit = report.exit_code.map_or(String::new(), |c| format!(" (exit {c})"));
        let why = report.error.as_ref().map_or(String::new(), |e| format!(": {e}"));
        let summary = if json {
            json!({
                "agent": report.agent,
                "run_id": report.run_id,
                "state": report.state.as_str(),
                "exit_code": report.exit_code,
                "oom_killed": report.oom_killed,
                "tier": report.tier.number(),
                "duration_ms": report.duration.as_millis() as u64,
                "pooled": report.pooled,
                "error": report.error,
                "audit_log": log_dir.canonicalize().unwrap_or(log_dir.to_path_buf()),
                "audit_seqs": [seqs.0, seqs.1],
            })
            .to_string()
                + "\n"
        } else {
            format!(
                "symbiont: agent `{}` {}{exit} at {} in {:.2} s{why}; run {} is entries {}–{} of the audit log {}\n",
                report.agent,
                report.state.as_str().replace('_', " "),
                report.tier,
                report.duration.as_secs_f64(),
                report.run_id,
                seqs.0,
                seqs.1,
                log_dir.display()
            )
        };
        let status = match report.state {
            State::TimedOut => status::TIMED_OUT,
            State::Killed => status::KILLED,
            State::Completed => 0,
            _ => match report.exit_code {
                Some(code) if (1..=255).contains(&code) => code as u8,
                _ => status::RUNTIME_FAILED,
            },
        };
        Ok(Ending { summary, status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn each_definition_is_parsed_once_per_load() {
        let dir = workspace(&[
            ("symbiont.toml", "[policy]\n"),
            ("a.sym", "agent a {\n    implementation = [\"a.py\"]\n}\n"),
            ("b.sym", "policy p { deny: [\"network_access\"] }\nschedule nightly {\n    cron: \"0 2 * * *\"\n    agent: \"a\"\n}\n"),
            ("a.py", "print(1)\n"),
        ]);
        let mut host = AnalysisHost::new();
        host.record_executions();
        let loaded = Workspace::load_with(dir.path(), &mut host).unwrap();
        let parses = host.take_executions().iter().filter(|q| q.starts_with("parse(")).count();
        assert_eq!(parses, 2, "one parse per .sym file");
        assert_eq!(loaded.universe.agents().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(loaded.schedules.iter().map(|(_, s)| s.name.as_str()).collect::<Vec<_>>(), ["nightly"]);
    }

    #[test]
    fn a_workspace_with_error_diagnostics_is_refused_with_them() {
        let dir = workspace(&[
            ("a.sym", "agent a {\n    capabilities = [\n}\n"),
            ("b.sym", "schedule s {\n    cron: \"99 * * * *\"\n    agent: \"nobody\"\n}\n"),
        ]);
        let Err(refusal) = Workspace::load(dir.path()) else { panic!("refused") };
        assert_eq!(refusal.status, status::USAGE);
        assert!(refusal.message.contains("nothing was started"), "{}", refusal.message);
        for expected in ["a.sym:", "b.sym:", "error[SYM0110]"] {
            assert!(refusal.message.contains(expected), "{expected}: {}", refusal.message);
        }
    }
}
