//! What a killed runtime left behind, found and cleaned up by the next one.
//!
//! A `symbiont run` killed with SIGKILL (or a long-lived runtime that died) cannot clean up: its
//! container goes on running (its timeout is the runtime's), its staging directory stays, and its
//! audit log has no final lifecycle entry for the run. So a cold run's container carries labels
//! that say who owns it ([`labels`]): the run and agent, the owner process (pid, its start time
//! from `/proc/PID/stat` so that a reused pid is not taken for the owner, the boot id and the pid
//! namespace), the audit log (its canonical directory and its origin) and the staging directory;
//! the staging directory holds the same labels in its [`OWNER_FILE`], for a run killed before its
//! container existed or after it was removed.
//!
//! [`reap`] lists the containers with the run label and the staging directories of the run root,
//! and for each whose owner is certainly dead (never one whose owner is alive or cannot be
//! judged: another pid namespace, an unreadable `/proc`, labels missing):
//!
//! - **of the audit log this runtime writes**: appends the run's missing final lifecycle entry,
//!   `failed` (when its last lifecycle entry in the log is not final), then removes the container
//!   and the staging directory (only one directly in this run root, named as a run id);
//! - **of another audit log**: stops the container (SIGKILL) if it still runs, and leaves it and
//!   its staging directory to the next run that writes that log, which removes them and audits
//!   the run: this runtime cannot write that log (another key, maybe another user's).
//!
//! The warm containers of a long-lived runtime's pool (`pool.rs`) carry the owner labels too
//! ([`pool_labels`]: the pool, the owner, and their slot directory `pool-…` instead of a staging
//! directory; the slot holds them in its [`OWNER_FILE`]). One whose owner is certainly dead is
//! removed with its slot (if directly in this run root), whatever audit log its runtime wrote: an
//! unclaimed one holds no run, and a run that had claimed one is audited by its own log's next
//! writer ([`close_unfinished`]), not from the container. Parked containers (`parked.rs`,
//! `dev.symbiont.pool=cli`) carry no owner labels and are never touched: the process that parks
//! them exits by design, and they have their own expiry and drain.
//!
//! [`close_unfinished`] closes, in the log of a writer that holds it for its whole life (a
//! long-lived runtime), every run left without a final lifecycle entry, wherever it ran: a log has
//! one writer, so such a run is lost.

use std::{
    collections::{HashMap, HashSet},
    fmt, fs,
    io::{BufRead, BufReader, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use bollard::{
    models::ContainerSummaryStateEnum,
    query_parameters::{KillContainerOptionsBuilder, ListContainersOptionsBuilder},
    Docker,
};
use serde_json::{json, Map};
use symbiont_audit::{entry::Entry, log::Log, store};

use crate::{
    sandbox::docker::{AGENT_LABEL, POOL_LABEL, RUN_LABEL},
    Auditor, State,
};

pub const OWNER_PID_LABEL: &str = "dev.symbiont.owner.pid";
/// The owner's start time, in clock ticks since boot (field 22 of `/proc/PID/stat`).
pub const OWNER_START_LABEL: &str = "dev.symbiont.owner.start";
/// `/proc/sys/kernel/random/boot_id`: an owner of another boot is dead.
pub const OWNER_BOOT_LABEL: &str = "dev.symbiont.owner.boot";
/// The owner's pid namespace (`/proc/self/ns/pid`): a pid means nothing in another one.
pub const OWNER_PIDNS_LABEL: &str = "dev.symbiont.owner.pidns";
/// The audit log's canonical directory.
pub const AUDIT_LABEL: &str = "dev.symbiont.audit";
/// The audit log's origin (`symbiont.audit/…`), unique per log.
pub const AUDIT_ORIGIN_LABEL: &str = "dev.symbiont.audit.origin";
/// The run's staging directory.
pub const STAGING_LABEL: &str = "dev.symbiont.staging";
/// The file in a staging directory that holds the run's labels (JSON), outside what is mounted.
pub const OWNER_FILE: &str = "owner.json";
/// The reason of the `failed` entry of a run lost with its runtime; `{by}` names who cleans up.
fn lost_reason(by: &str) -> String {
    format!("the runtime that ran it was killed; cleaned up by {by}")
}

/// A process, identified so that a reused pid is not taken for it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    pid: u32,
    start: u64,
    boot: String,
    pidns: String,
}

/// Whether an owner process still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liveness {
    Alive,
    Dead,
    /// Cannot be judged from here: left alone.
    Unknown,
}

/// Field 22 (`starttime`) of `/proc/PID/stat`; `Ok(None)` when there is no such process.
fn start_time(pid: u32) -> Result<Option<u64>, String> {
    let path = format!("/proc/{pid}/stat");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{path}: {e}")),
    };
    if is_zombie(&text) {
        // Killed and not yet waited for by its parent (a service started with `cmd &` whose
        // parent is an init that reaps slowly): it runs nothing and holds nothing any more.
        return Ok(None);
    }
    parse_start_time(&text).map(Some).ok_or_else(|| format!("{path}: unexpected format"))
}

/// Whether a `/proc/PID/stat` line is a zombie's (state `Z`, field 3) or a dead task's (`X`).
fn is_zombie(stat: &str) -> bool {
    stat.rfind(')').and_then(|at| stat[at + 1..].split_whitespace().next()).is_some_and(|state| state == "Z" || state == "X")
}

/// The start time in a `/proc/PID/stat` line: the command (field 2) is in parentheses and may hold
/// spaces and parentheses itself, so fields are counted after its last `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // Fields 3 (state) onwards: starttime, field 22, is the 20th.
    after.split_whitespace().nth(19)?.parse().ok()
}

impl Owner {
    /// This process.
    fn current() -> Result<Owner, String> {
        static CURRENT: OnceLock<Result<Owner, String>> = OnceLock::new();
        CURRENT
            .get_or_init(|| {
                let pid = std::process::id();
                let start = start_time(pid)?.ok_or("/proc/self/stat: missing")?;
                let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").map_err(|e| format!("the boot id: {e}"))?;
                let pidns = fs::read_link("/proc/self/ns/pid").map_err(|e| format!("/proc/self/ns/pid: {e}"))?;
                Ok(Owner { pid, start, boot: boot.trim().to_string(), pidns: pidns.display().to_string() })
            })
            .clone()
    }

    fn labels(&self) -> [(String, String); 4] {
        [
            (OWNER_PID_LABEL.into(), self.pid.to_string()),
            (OWNER_START_LABEL.into(), self.start.to_string()),
            (OWNER_BOOT_LABEL.into(), self.boot.clone()),
            (OWNER_PIDNS_LABEL.into(), self.pidns.clone()),
        ]
    }

    fn from_labels(labels: &HashMap<String, String>) -> Option<Owner> {
        Some(Owner {
            pid: labels.get(OWNER_PID_LABEL)?.parse().ok()?,
            start: labels.get(OWNER_START_LABEL)?.parse().ok()?,
            boot: labels.get(OWNER_BOOT_LABEL)?.clone(),
            pidns: labels.get(OWNER_PIDNS_LABEL)?.clone(),
        })
    }

    /// Whether this owner still runs, judged from `me` (this process).
    fn liveness(&self, me: &Owner) -> Liveness {
        if self.boot != me.boot {
            // The machine restarted since: every process of that boot is gone.
            return Liveness::Dead;
        }
        if self.pidns != me.pidns {
            return Liveness::Unknown;
        }
        match start_time(self.pid) {
            Ok(None) => Liveness::Dead,
            Ok(Some(start)) if start == self.start => Liveness::Alive,
            // The pid was reused by a later process.
            Ok(Some(_)) => Liveness::Dead,
            Err(_) => Liveness::Unknown,
        }
    }
}

/// The labels of a cold run's container (and of its staging directory's [`OWNER_FILE`]): the run,
/// the agent, this process as owner, the audit log and the staging directory.
pub fn labels(run_id: &str, agent: &str, staging: &Path, log: &Log) -> Result<Vec<(String, String)>, String> {
    let owner = Owner::current()?;
    let audit = log.dir().canonicalize().map_err(|e| format!("{}: {e}", log.dir().display()))?;
    let mut labels = vec![(RUN_LABEL.to_string(), run_id.to_string()), (AGENT_LABEL.to_string(), agent.to_string())];
    labels.extend(owner.labels());
    labels.push((AUDIT_LABEL.into(), audit.display().to_string()));
    labels.push((AUDIT_ORIGIN_LABEL.into(), log.origin().to_string()));
    labels.push((STAGING_LABEL.into(), staging.display().to_string()));
    Ok(labels)
}

/// The labels of a warm container of the pool `pool` (the value of its `dev.symbiont.pool` label)
/// and of its slot directory's [`OWNER_FILE`]: the pool, this process as owner, and the slot.
pub(crate) fn pool_labels(pool: &str, slot: &Path) -> Result<Vec<(String, String)>, String> {
    let mut labels = vec![(POOL_LABEL.to_string(), pool.to_string())];
    labels.extend(Owner::current()?.labels());
    labels.push((STAGING_LABEL.into(), slot.display().to_string()));
    Ok(labels)
}

/// Writes `labels` into the staging directory `dir` ([`OWNER_FILE`], mode 0600).
pub fn mark(dir: &Path, labels: &[(String, String)]) -> Result<(), String> {
    let path = dir.join(OWNER_FILE);
    let map: Map<String, serde_json::Value> = labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    file.write_all(serde_json::Value::Object(map).to_string().as_bytes()).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// What [`reap`] did with one leftover.
#[derive(Debug, Clone, PartialEq)]
pub enum Reaped {
    /// A run of this runtime's audit log: its container (if any) and staging directory removed,
    /// and its final `failed` entry appended (`audited`) unless the log had a final entry already.
    Removed { run_id: String, agent: String, container: Option<String>, audited: bool },
    /// A running container of another audit log, stopped and left for that log's next run.
    Stopped { run_id: String, agent: String, container: String, audit_log: String },
    /// A warm container of a dead runtime's pool (if it still existed) and its slot directory (if
    /// it was in this run root), removed.
    Warm { container: Option<String>, slot: Option<PathBuf> },
    /// A run of this audit log without a final lifecycle entry, audited `failed` from its last
    /// state `from` by [`close_unfinished`].
    Closed { run_id: String, agent: String, from: State },
    /// Something could not be cleaned up.
    Error(String),
}

impl fmt::Display for Reaped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reaped::Removed { run_id, agent, container, audited } => {
                let what = if container.is_some() { "its container and staging directory" } else { "its staging directory" };
                let entry = if *audited { "; audited as failed" } else { "" };
                write!(f, "run {run_id} of agent `{agent}` was left by a killed runtime: removed {what}{entry}")
            }
            Reaped::Stopped { run_id, agent, container, audit_log } => write!(
                f,
                "run {run_id} of agent `{agent}` (audit log {audit_log}) was left by a killed runtime: its container {} is stopped; \
                 the next run with that audit log removes it and audits the run",
                short(container)
            ),
            Reaped::Warm { container: Some(id), slot } => {
                let with = if slot.is_some() { " and its slot directory" } else { "" };
                write!(f, "warm container {} of a killed runtime's pool was left: removed it{with}", short(id))
            }
            Reaped::Warm { container: None, slot } => {
                let slot = slot.as_ref().map(|s| s.display().to_string()).unwrap_or_default();
                write!(f, "slot directory {slot} of a killed runtime's pool was left: removed it")
            }
            Reaped::Closed { run_id, agent, from } => write!(
                f,
                "run {run_id} of agent `{agent}` was lost with the runtime that ran it (killed while {}): audited as failed",
                from.as_str()
            ),
            Reaped::Error(why) => write!(f, "cleaning up after a killed runtime: {why}"),
        }
    }
}

/// A container id as `docker ps` shows it.
fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// One thing a run (or a pool) left: its labels, and its container if it has one.
struct Leftover {
    labels: HashMap<String, String>,
    container: Option<(String, bool)>,
}

impl Leftover {
    /// A warm container of a pool, or its slot directory, rather than a cold run's.
    fn warm(&self) -> bool {
        self.labels.contains_key(POOL_LABEL)
    }
}

/// Finds what killed runtimes left (module doc) and cleans it up; `by` names who does (it goes in
/// the `failed` entries' reason, e.g. "run 0123…"). Containers of dead owners are found on
/// `docker`, staging directories in `run_root`; `auditor` writes the audit log the runtime uses.
pub async fn reap(docker: &Docker, run_root: &Path, auditor: &Auditor, by: &str) -> Result<Vec<Reaped>, String> {
    let me = Owner::current()?;
    let mut leftovers = containers(docker).await?;
    let staged: HashSet<String> = leftovers.iter().filter_map(|l| l.labels.get(STAGING_LABEL).cloned()).collect();
    leftovers.extend(directories(run_root).into_iter().filter(|l| l.labels.get(STAGING_LABEL).is_none_or(|s| !staged.contains(s))));
    let log = auditor.log();
    let ours = (log.dir().canonicalize().ok().map(|d| d.display().to_string()), log.origin().to_string());
    let mut reaped = Vec::new();
    for leftover in leftovers {
        let owner = Owner::from_labels(&leftover.labels);
        if owner.is_none_or(|o| o.liveness(&me) != Liveness::Dead) {
            continue;
        }
        let label = |key: &str| leftover.labels.get(key).cloned().unwrap_or_default();
        let of_this_log = ours.0.as_deref() == Some(label(AUDIT_LABEL).as_str()) && ours.1 == label(AUDIT_ORIGIN_LABEL);
        let outcome = if leftover.warm() {
            remove_warm(docker, run_root, &leftover).await
        } else if of_this_log {
            remove(docker, run_root, auditor, &leftover, by).await
        } else {
            match &leftover.container {
                Some((id, true)) => stop(docker, id).await.map(|()| {
                    Some(Reaped::Stopped {
                        run_id: label(RUN_LABEL),
                        agent: label(AGENT_LABEL),
                        container: id.clone(),
                        audit_log: label(AUDIT_LABEL),
                    })
                }),
                _ => Ok(None),
            }
        };
        reaped.extend(outcome.unwrap_or_else(|e| Some(Reaped::Error(e))));
    }
    Ok(reaped)
}

/// The containers with the run label and owner labels (any state): cold runs' and pools' (parked
/// containers have no owner labels).
async fn containers(docker: &Docker) -> Result<Vec<Leftover>, String> {
    let filters = HashMap::from([("label".to_string(), vec![RUN_LABEL.to_string(), OWNER_PID_LABEL.to_string()])]);
    let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let list = docker.list_containers(Some(options)).await.map_err(|e| format!("listing containers: {e}"))?;
    Ok(list
        .into_iter()
        .filter_map(|c| {
            let labels = c.labels.unwrap_or_default();
            let running = c.state == Some(ContainerSummaryStateEnum::RUNNING);
            Some(Leftover { labels, container: Some((c.id?, running)) })
        })
        .collect())
}

/// The staging directories (named as run ids) and pools' slot directories (`pool-…`) of
/// `run_root`, not links, with an owner file that says which they are.
fn directories(run_root: &Path) -> Vec<Leftover> {
    let Ok(entries) = fs::read_dir(run_root) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let text = fs::read_to_string(e.path().join(OWNER_FILE)).ok()?;
            let labels: HashMap<String, String> = serde_json::from_str(&text).ok()?;
            let leftover = Leftover { labels, container: None };
            let name = e.file_name().to_string_lossy().to_string();
            let named = if leftover.warm() { is_slot(&name) } else { is_run_id(&name) };
            // The directory is the one the file is in, whatever the file says.
            let path = e.path().display().to_string();
            (named && leftover.labels.get(STAGING_LABEL) == Some(&path)).then_some(leftover)
        })
        .collect()
}

/// A pool's slot directory, as `pool::make_slot` names it.
fn is_slot(name: &str) -> bool {
    name.strip_prefix("pool-").is_some_and(is_run_id)
}

/// A run id as `util::random_id(8)` makes it: 16 lowercase hex digits.
fn is_run_id(name: &str) -> bool {
    name.len() == 16 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Audits a dead run of this log as failed (unless its last lifecycle entry is final already),
/// then removes its container and its staging directory.
async fn remove(docker: &Docker, run_root: &Path, auditor: &Auditor, leftover: &Leftover, by: &str) -> Result<Option<Reaped>, String> {
    let label = |key: &str| leftover.labels.get(key).cloned().unwrap_or_default();
    let (run_id, agent) = (label(RUN_LABEL), label(AGENT_LABEL));
    let last = last_lifecycle(auditor.log().dir(), &run_id)?;
    let audited = match last {
        Some(from) if !from.is_final() && from.can_become(State::Failed) => {
            let sandbox = leftover.container.as_ref().map(|(id, _)| id.as_str());
            audit_lost(auditor, &agent, &run_id, from, sandbox, by).await?;
            true
        }
        _ => false,
    };
    if let Some((id, _)) = &leftover.container {
        crate::sandbox::docker::remove_container(docker, id).await.map_err(|e| format!("run {run_id}: {e}"))?;
    }
    if let Some(dir) = staging_in(run_root, &label(STAGING_LABEL)) {
        remove_dir(&dir)?;
    }
    Ok(Some(Reaped::Removed { run_id, agent, container: leftover.container.as_ref().map(|(id, _)| id.clone()), audited }))
}

/// Removes a warm container of a dead runtime's pool and its slot directory (only one directly in
/// this run root, named `pool-…`). Nothing is audited: a run that had claimed it is closed by its
/// log's next writer ([`close_unfinished`]).
async fn remove_warm(docker: &Docker, run_root: &Path, leftover: &Leftover) -> Result<Option<Reaped>, String> {
    let container = leftover.container.as_ref().map(|(id, _)| id.clone());
    if let Some(id) = &container {
        crate::sandbox::docker::remove_container(docker, id).await?;
    }
    let slot = leftover.labels.get(STAGING_LABEL).and_then(|path| crate::util::labelled_dir_in(run_root, path, is_slot));
    if let Some(dir) = &slot {
        remove_dir(dir)?;
    }
    Ok((container.is_some() || slot.is_some()).then_some(Reaped::Warm { container, slot }))
}

fn remove_dir(dir: &Path) -> Result<(), String> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("removing {}: {e}", dir.display())),
    }
}

/// Appends the final entry of a run lost with its runtime: `failed` from its last state `from`.
async fn audit_lost(auditor: &Auditor, agent: &str, run_id: &str, from: State, sandbox: Option<&str>, by: &str) -> Result<(), String> {
    let details = Map::from_iter([
        ("run_id".to_string(), json!(run_id)),
        ("from".to_string(), json!(from.as_str())),
        ("exit_code".to_string(), json!(null)),
        ("oom_killed".to_string(), json!(false)),
        ("sandbox".to_string(), json!(sandbox)),
        ("reason".to_string(), json!(lost_reason(by))),
    ]);
    auditor.record(agent, "lifecycle", State::Failed.as_str(), details).await.map(drop).map_err(|e| format!("audit log: {e}"))
}

/// Closes every run of the log `auditor` writes whose last lifecycle entry is not final: appends
/// its `failed` entry (from its last state, naming the sandbox its `starting` entry named, with
/// the reason [`reap`] gives, `by` naming who cleans up), in the order of their last entries.
///
/// Safe only for a writer that holds the log's lock for the log's whole life (a long-lived
/// runtime), called once when it has opened the log and before any run of its own starts: a log
/// has one writer, so a run of it without a final entry when its writer opens it belonged to an
/// earlier writer that died, and is lost. Nothing else is touched: this is how a run that had
/// claimed a warm container (which [`reap`] removes without auditing) gets its final entry.
/// Call [`reap`] first, so that the cold runs it removes are audited once, naming their container.
///
/// The log is read line by line, keeping only the runs without a final entry so far.
pub async fn close_unfinished(auditor: &Auditor, by: &str) -> Result<Vec<Reaped>, String> {
    let dir = auditor.log().dir().to_path_buf();
    let unfinished =
        tokio::task::spawn_blocking(move || unfinished_runs(&dir)).await.map_err(|e| format!("reading the audit log: {e}"))??;
    let mut closed = Vec::new();
    for run in unfinished {
        audit_lost(auditor, &run.agent, &run.run_id, run.from, run.sandbox.as_deref(), by).await?;
        closed.push(Reaped::Closed { run_id: run.run_id, agent: run.agent, from: run.from });
    }
    Ok(closed)
}

/// A run whose last lifecycle entry so far is not final.
struct Unfinished {
    run_id: String,
    agent: String,
    from: State,
    sandbox: Option<String>,
    seq: u64,
}

/// The runs of the log `dir` whose last lifecycle entry is not final, oldest last entry first.
/// Lines that are not entries (a torn tail) are skipped, as are lifecycle entries without a run id
/// (lightweight agents'). A run whose last entry names no known state is left alone.
fn unfinished_runs(dir: &Path) -> Result<Vec<Unfinished>, String> {
    let mut open: HashMap<String, Unfinished> = HashMap::new();
    for (_, path) in store::segments(dir).map_err(|e| e.to_string())? {
        let file = fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).map_err(|e| format!("{}: {e}", path.display()))? == 0 {
                break;
            }
            let Ok(entry) = serde_json::from_slice::<Entry>(&line) else { continue };
            let Some(run_id) = entry.details.get("run_id").and_then(|v| v.as_str()).filter(|_| entry.operation == "lifecycle") else {
                continue;
            };
            match state_named(&entry.decision).filter(|s| !s.is_final() && s.can_become(State::Failed)) {
                Some(from) => {
                    let sandbox = entry.details.get("sandbox").and_then(|v| v.as_str()).map(String::from);
                    let earlier = open.remove(run_id).and_then(|run| run.sandbox);
                    let run =
                        Unfinished { run_id: run_id.to_string(), agent: entry.agent, from, sandbox: sandbox.or(earlier), seq: entry.seq };
                    open.insert(run.run_id.clone(), run);
                }
                None => {
                    open.remove(run_id);
                }
            }
        }
    }
    let mut runs: Vec<Unfinished> = open.into_values().collect();
    runs.sort_by_key(|run| run.seq);
    Ok(runs)
}

/// `path` if it is a staging directory directly in `run_root` (named as a run id, not a link):
/// a label never makes the runtime remove anything else.
fn staging_in(run_root: &Path, path: &str) -> Option<PathBuf> {
    crate::util::labelled_dir_in(run_root, path, is_run_id)
}

/// Stops (SIGKILL) a running container of another audit log.
async fn stop(docker: &Docker, id: &str) -> Result<(), String> {
    let options = KillContainerOptionsBuilder::default().signal("SIGKILL").build();
    match docker.kill_container(id, Some(options)).await {
        Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404 | 409, .. }) => Ok(()),
        Err(e) => Err(format!("stopping container {id}: {e}")),
    }
}

/// The state of the last lifecycle entry of `run_id` in the log `dir`, newest segment first.
fn last_lifecycle(dir: &Path, run_id: &str) -> Result<Option<State>, String> {
    let segments = store::segments(dir).map_err(|e| e.to_string())?;
    for (_, path) in segments.iter().rev() {
        let lines = store::read_lines(path).map_err(|e| e.to_string())?;
        for line in lines.iter().rev() {
            let Ok(entry) = serde_json::from_slice::<Entry>(&line.bytes) else { continue };
            if entry.operation == "lifecycle" && entry.details.get("run_id").and_then(|v| v.as_str()) == Some(run_id) {
                return Ok(state_named(&entry.decision));
            }
        }
    }
    Ok(None)
}

fn state_named(name: &str) -> Option<State> {
    use State::*;
    [Created, Starting, Running, Completed, Failed, TimedOut, Killed].into_iter().find(|s| s.as_str() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_read_after_the_last_parenthesis() {
        let fields: String = (3..=30).map(|n| format!(" {n}")).collect();
        assert_eq!(parse_start_time(&format!("42 (a) b (c){fields}")), Some(22));
        assert_eq!(parse_start_time(&format!("42 (sleep){fields}")), Some(22));
        assert_eq!(parse_start_time("42 (short) S 1"), None);
        assert_eq!(parse_start_time("no parenthesis"), None);
    }

    #[test]
    fn a_zombie_owner_is_dead() {
        assert!(is_zombie("42 (symbiont) Z 1 42 42 0"));
        assert!(is_zombie("42 (a) S (b)) X 1"));
        assert!(!is_zombie("42 (a) Z (b)) S 1"), "the state is the field after the last parenthesis");
        assert!(!is_zombie("42 (sleep) S 1"));
        // A real zombie: a child killed and not yet waited for.
        let mut child = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        child.kill().unwrap();
        let pid = child.id();
        let mut dead = false;
        for _ in 0..100 {
            dead = start_time(pid).unwrap().is_none();
            if dead {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(dead, "a killed child not yet waited for counts as gone");
        child.wait().unwrap();
    }

    #[test]
    fn this_process_is_alive_and_a_reused_or_gone_pid_is_not() {
        let me = Owner::current().unwrap();
        assert_eq!(me.liveness(&me), Liveness::Alive);
        let reused = Owner { start: me.start + 1, ..me.clone() };
        assert_eq!(reused.liveness(&me), Liveness::Dead);
        let gone = Owner { pid: u32::MAX - 1, ..me.clone() };
        assert_eq!(gone.liveness(&me), Liveness::Dead);
        let rebooted = Owner { boot: "another boot".into(), ..me.clone() };
        assert_eq!(rebooted.liveness(&me), Liveness::Dead);
        let elsewhere = Owner { pidns: "pid:[1]".into(), ..me.clone() };
        assert_eq!(elsewhere.liveness(&me), Liveness::Unknown);
        let labels: HashMap<String, String> = me.labels().into_iter().collect();
        assert_eq!(Owner::from_labels(&labels), Some(me));
    }

    #[test]
    fn only_run_directories_directly_in_the_run_root_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("0123456789abcdef");
        fs::create_dir(&run).unwrap();
        fs::create_dir(root.path().join("pool-0123")).unwrap();
        let shown = |p: &Path| p.display().to_string();
        assert_eq!(staging_in(root.path(), &shown(&run)), Some(run.clone()));
        assert_eq!(staging_in(root.path(), &shown(&root.path().join("pool-0123"))), None);
        assert_eq!(staging_in(root.path(), &shown(&run.join("code"))), None);
        assert_eq!(staging_in(root.path(), "/etc"), None);
        let link = root.path().join("fedcba9876543210");
        std::os::unix::fs::symlink(&run, &link).unwrap();
        assert_eq!(staging_in(root.path(), &shown(&link)), None);
    }

    #[test]
    fn a_pools_slot_is_found_by_its_name_and_owner_file_and_a_parked_one_is_not() {
        let root = tempfile::tempdir().unwrap();
        let dir = |name: &str, labels: Option<Vec<(String, String)>>| {
            let path = root.path().join(name);
            fs::create_dir(&path).unwrap();
            if let Some(labels) = labels {
                mark(&path, &labels).unwrap();
            }
            path
        };
        let at = |name: &str| root.path().join(name).display().to_string();
        let run_labels = |name: &str| vec![(RUN_LABEL.to_string(), name.to_string()), (STAGING_LABEL.to_string(), at(name))];
        let slot = dir("pool-0123456789abcdef", Some(pool_labels("a1b2c3", &root.path().join("pool-0123456789abcdef")).unwrap()));
        let run = dir("fedcba9876543210", Some(run_labels("fedcba9876543210")));
        // A parked container's slot has no owner file: its maker exits by design.
        dir("pool-00000000000000aa", None);
        dir("pool-odd", Some(pool_labels("a1b2c3", &root.path().join("pool-odd")).unwrap()));
        // An owner file naming another directory, or a run's directory said to be a pool's.
        dir("pool-00000000000000bb", Some(pool_labels("a1b2c3", &slot).unwrap()));
        dir("00000000000000cc", Some(pool_labels("a1b2c3", &root.path().join("00000000000000cc")).unwrap()));
        let mut found: Vec<(String, bool)> = directories(root.path()).iter().map(|l| (l.labels[STAGING_LABEL].clone(), l.warm())).collect();
        found.sort();
        assert_eq!(found, [(run.display().to_string(), false), (slot.display().to_string(), true)]);
        let labels: HashMap<String, String> = pool_labels("a1b2c3", &slot).unwrap().into_iter().collect();
        assert_eq!(Owner::from_labels(&labels), Some(Owner::current().unwrap()), "a pool's owner is this process");
        assert_eq!(labels[POOL_LABEL], "a1b2c3");
    }

    /// A log in `dir` with segments of three entries, so that runs span segments.
    fn small_log(dir: &Path) -> Auditor {
        let signer = std::sync::Arc::new(symbiont_audit::FileSigner::generate().unwrap());
        let options = symbiont_audit::LogOptions { segment_entries: 3, ..Default::default() };
        let (log, _) = Log::open(dir, signer, options).unwrap();
        Auditor::new(std::sync::Arc::new(log))
    }

    fn entries(dir: &Path) -> Vec<Entry> {
        let mut entries = Vec::new();
        for (_, path) in store::segments(dir).unwrap() {
            entries.extend(store::read_lines(&path).unwrap().iter().map(|line| serde_json::from_slice::<Entry>(&line.bytes).unwrap()));
        }
        entries
    }

    #[tokio::test]
    async fn every_run_without_a_final_entry_is_closed_once_as_failed() {
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path().join("audit");
        let auditor = small_log(&log_dir);
        // (agent, operation, decision, run id, sandbox), in log order.
        let written = [
            ("a", "lifecycle", "created", Some("created-only"), None),
            ("b", "lifecycle", "created", Some("was-running"), None),
            ("b", "lifecycle", "starting", Some("was-running"), Some("c0ffee")),
            ("c", "lifecycle", "created", Some("completed"), None),
            ("b", "lifecycle", "running", Some("was-running"), None),
            ("b", "http_request", "allow", Some("was-running"), None),
            ("c", "lifecycle", "starting", Some("completed"), Some("beef")),
            ("c", "lifecycle", "running", Some("completed"), None),
            ("c", "lifecycle", "completed", Some("completed"), None),
            ("d", "lifecycle", "created", Some("reaped"), None),
            ("d", "lifecycle", "starting", Some("reaped"), Some("d00d")),
            ("e", "lifecycle", "created", Some("was-starting"), None),
            ("e", "lifecycle", "starting", Some("was-starting"), Some("f00d")),
            // `reap` closed this one already.
            ("d", "lifecycle", "failed", Some("reaped"), None),
            // A state this runtime does not know: not judged, left alone.
            ("f", "lifecycle", "created", Some("odd"), None),
            ("f", "lifecycle", "paused", Some("odd"), None),
            // A lightweight agent's entries carry no run id.
            ("g", "lifecycle", "created", None, None),
        ];
        for (agent, operation, decision, run_id, sandbox) in written {
            let mut details = Map::new();
            details.extend(run_id.map(|id| ("run_id".to_string(), json!(id))));
            details.extend(sandbox.map(|id| ("sandbox".to_string(), json!(id))));
            auditor.record(agent, operation, decision, details).await.unwrap();
        }

        let closed = close_unfinished(&auditor, "service 42").await.unwrap();
        let expected = [
            ("created-only", "a", State::Created, None),
            ("was-running", "b", State::Running, Some("c0ffee")),
            ("was-starting", "e", State::Starting, Some("f00d")),
        ];
        let as_closed = |(run_id, agent, from, _): &(&str, &str, State, Option<&str>)| Reaped::Closed {
            run_id: run_id.to_string(),
            agent: agent.to_string(),
            from: *from,
        };
        assert_eq!(closed, expected.iter().map(as_closed).collect::<Vec<_>>());
        assert_eq!(
            closed[1].to_string(),
            "run was-running of agent `b` was lost with the runtime that ran it (killed while running): audited as failed"
        );

        let all = entries(&log_dir);
        assert_eq!(all.len(), written.len() + expected.len());
        for (entry, (run_id, agent, from, sandbox)) in all[written.len()..].iter().zip(&expected) {
            assert_eq!((entry.agent.as_str(), entry.operation.as_str(), entry.decision.as_str()), (*agent, "lifecycle", "failed"));
            let details = serde_json::Value::Object(entry.details.clone());
            let reason = "the runtime that ran it was killed; cleaned up by service 42";
            let want = json!({"run_id": run_id, "from": from.as_str(), "exit_code": null, "oom_killed": false, "sandbox": sandbox, "reason": reason});
            assert_eq!(details, want);
        }
        assert_eq!(close_unfinished(&auditor, "service 43").await.unwrap(), [], "each run is closed once");
        assert_eq!(entries(&log_dir).len(), all.len());
        let report = symbiont_audit::verify_log(&log_dir, &Default::default()).unwrap();
        assert!(report.is_valid(), "{:?}", report.finding);
    }
}
