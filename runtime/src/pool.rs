//! The pre-started pool of a long-lived [`AgentRuntime`](crate::AgentRuntime): containers created
//! and started ahead of their runs, so that a run skips the container's creation and start.
//!
//! A pool is kept per (tier, language, container limits). Each warm container is made by its
//! backend's [`Sandbox::warm`] with exactly the restrictions of a cold one, mounts a slot
//! directory `RUN_ROOT/pool-ID/{code,broker}` (the SDK staged, nothing else), and runs a POSIX
//! shell waiter ([`waiter`]) that blocks on one line of standard input: the agent's name, the
//! run's id, the entry point and the input, separated by tabs. A run that claims it stages its code
//! into the slot, binds its broker's socket there, and starts it by writing that line; the waiter
//! `exec`s the interpreter. A warm container serves exactly one run and is removed after it, like a
//! cold one; the pool refills in the background when that run has ended.
//!
//! The pool's containers idle until claimed, so [`Pool::drain`] must run before the runtime is
//! dropped: it removes every warm container and slot directory. A process killed before it could
//! drain leaves them to the next runtime: they carry its owner labels (`leftovers::pool_labels`,
//! also in the slot's `owner.json`), and `leftovers::reap` removes those of a dead owner.

use std::{
    fs,
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use crate::{
    image::{self, ImageKind},
    locks::lock,
    sandbox::{self, LaunchSpec, Sandbox, Warm},
    Language, Limits, Tier,
};

/// One pool: how many warm containers to keep for runs of `language` at `tier` with `limits`.
/// `limits.timeout` plays no part (the runtime enforces it, not the container).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolConfig {
    pub tier: Tier,
    pub language: Language,
    pub limits: Limits,
    pub size: usize,
}

impl PoolConfig {
    fn serves(&self, tier: Tier, language: Language, limits: &Limits) -> bool {
        let (a, b) = (&self.limits, limits);
        self.tier == tier
            && self.language == language
            && a.memory_bytes == b.memory_bytes
            && a.cpus == b.cpus
            && a.pids == b.pids
            && a.tmpfs_bytes == b.tmpfs_bytes
    }
}

/// What [`Pool::filled`] found once no fill was under way.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolStatus {
    /// Warm containers ready, over all pools.
    pub warm: usize,
    /// The last error of a fill, if the last fill of some pool failed.
    pub error: Option<String>,
}

/// A claimed warm container and its slot directory.
pub(crate) struct Slot {
    pub dir: PathBuf,
    pub code: PathBuf,
    pub broker: PathBuf,
    pub warm: Box<dyn Warm>,
}

impl Slot {
    /// The slot `dir` (with `code/` and `broker/`) of the warm container `warm`.
    pub(crate) fn new(dir: PathBuf, warm: Box<dyn Warm>) -> Slot {
        Slot { code: dir.join("code"), broker: dir.join("broker"), dir, warm }
    }
}

struct Group {
    config: PoolConfig,
    backend: Arc<dyn Sandbox>,
    run_root: PathBuf,
    warm: Vec<Slot>,
    filling: usize,
    error: Option<String>,
}

#[derive(Default)]
struct State {
    groups: Vec<Group>,
    fills: Vec<tokio::task::JoinHandle<()>>,
}

/// The runtime's pools; cheap to clone (shared).
#[derive(Clone)]
pub(crate) struct Pool {
    /// The value of every warm container's `dev.symbiont.pool` label.
    id: String,
    state: Arc<Mutex<State>>,
}

impl Default for Pool {
    fn default() -> Self {
        Pool { id: crate::util::random_id(6), state: Arc::default() }
    }
}

/// The constant environment of an agent's sandbox: what does not depend on the run.
pub(crate) fn constant_env() -> Vec<(String, String)> {
    vec![
        ("SYMBIONT_BROKER".into(), sandbox::BROKER_SOCKET.into()),
        ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
        ("HOME".into(), "/tmp".into()),
    ]
}

/// The command that runs an agent's entry point `entry` (a path under the code mount).
pub(crate) fn interpreter(language: Language) -> &'static [&'static str] {
    match language {
        Language::Python => &["python3", "-u"],
        Language::JavaScript => &["node"],
        Language::Native => &[],
    }
}

/// The warm container's command: Debian minbase's `sh` (dash) reads one tab-separated line,
/// exports the run's variables and `exec`s the interpreter on the entry point, which becomes the
/// container's process as in a cold one. No line (standard input closed) ends it with status 1.
pub(crate) fn waiter(language: Language) -> Vec<String> {
    let exec: String = interpreter(language).iter().map(|part| format!("{part} ")).collect();
    let script = format!(
        "IFS='\t' read -r agent run entry input || exit 1\n\
         export SYMBIONT_AGENT=\"$agent\" SYMBIONT_RUN_ID=\"$run\" SYMBIONT_INPUT=\"$input\"\n\
         exec {exec}\"{}/$entry\"\n",
        sandbox::CODE_MOUNT
    );
    vec!["/bin/sh".into(), "-c".into(), script]
}

/// The line that starts a warm container's waiter, or `None` when a field could not be carried
/// by it (a tab or a line break, or an empty field): that run launches cold. The input's JSON,
/// as serde_json writes it, never holds a raw tab or line break.
pub(crate) fn go_line(agent: &str, run_id: &str, entry: &str, input: &serde_json::Value) -> Option<String> {
    let input = input.to_string();
    let fields = [agent, run_id, entry, input.as_str()];
    if fields.iter().any(|f| f.is_empty() || f.contains(['\t', '\n', '\r'])) {
        return None;
    }
    Some(fields.join("\t"))
}

/// Makes `dir` with `code/` and `broker/` as a run's staging makes them (see `runtime::stage`).
pub(crate) fn make_dirs(root: &Path, dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let err = crate::util::setup_error;
    fs::DirBuilder::new().recursive(true).mode(0o711).create(root).map_err(err("creating", root))?;
    fs::DirBuilder::new().mode(0o711).create(dir).map_err(err("creating", dir))?;
    let code = dir.join("code");
    let broker = dir.join("broker");
    for d in [&code, &broker] {
        fs::DirBuilder::new().mode(0o755).create(d).map_err(err("creating", d))?;
    }
    Ok((code, broker))
}

/// A new slot under `root`: `pool-ID/` with `code/` and `broker/`, and the spec
/// of the warm container for `language` and `limits` that mounts it. On an error nothing is left.
pub(crate) fn make_slot(root: &Path, language: Language, limits: Limits) -> Result<(PathBuf, LaunchSpec), String> {
    let name = format!("pool-{}", crate::util::random_id(8));
    let dir = root.join(&name);
    let (code, broker) = make_dirs(root, &dir).inspect_err(|_| remove_dir(&dir))?;
    let spec = LaunchSpec {
        run_id: name,
        agent: "pool".into(),
        image: image::reference(ImageKind::for_language(language)),
        command: waiter(language),
        env: constant_env(),
        code_dir: code,
        broker_dir: broker,
        limits,
        labels: Vec::new(),
    };
    Ok((dir, spec))
}

pub(crate) fn remove_dir(dir: &Path) {
    let _ = fs::remove_dir_all(dir);
}

/// Removes an unused (or dead) warm container and its slot.
pub(crate) async fn discard(slot: Slot) {
    let mut instance = slot.warm.claim(String::new());
    let _ = instance.remove().await;
    remove_dir(&slot.dir);
}

impl Pool {
    /// Keeps `config.size` warm containers for its key from now on (0 empties it), made by
    /// `backend` under `run_root`.
    pub fn set(&self, config: PoolConfig, backend: Arc<dyn Sandbox>, run_root: PathBuf) {
        let surplus = {
            let mut state = lock(&self.state);
            let at = state.groups.iter().position(|g| g.config.serves(config.tier, config.language, &config.limits));
            let group = match at {
                Some(at) => &mut state.groups[at],
                None => {
                    let group =
                        Group { config, backend: backend.clone(), run_root: run_root.clone(), warm: Vec::new(), filling: 0, error: None };
                    state.groups.push(group);
                    state.groups.last_mut().expect("pushed")
                }
            };
            group.config.size = config.size;
            group.backend = backend;
            group.run_root = run_root;
            let keep = group.warm.len().min(config.size);
            group.warm.split_off(keep)
        };
        for slot in surplus {
            self.track(tokio::spawn(discard(slot)));
        }
        self.fill();
    }

    fn track(&self, handle: tokio::task::JoinHandle<()>) {
        let mut state = lock(&self.state);
        state.fills.retain(|h| !h.is_finished());
        state.fills.push(handle);
    }

    /// Starts, in the background, the warm containers each pool lacks.
    pub fn fill(&self) {
        let mut state = lock(&self.state);
        state.fills.retain(|h| !h.is_finished());
        let mut spawned = Vec::new();
        for group in &mut state.groups {
            while group.warm.len() + group.filling < group.config.size {
                group.filling += 1;
                let (pool, config, backend, root) = (self.clone(), group.config, group.backend.clone(), group.run_root.clone());
                spawned.push(tokio::spawn(async move { pool.warm_one(config, backend, root).await }));
            }
        }
        state.fills.extend(spawned);
    }

    /// Makes one warm container for `config`'s pool and adds it, unless the pool no longer
    /// wants it.
    async fn warm_one(&self, config: PoolConfig, backend: Arc<dyn Sandbox>, root: PathBuf) {
        let made = async {
            let (dir, mut spec) = make_slot(&root, config.language, config.limits)?;
            // Owner labels on the container and in the slot: if this process is killed, the next
            // runtime's `leftovers::reap` removes both (parked containers, made by a process that
            // exits by design, have none).
            let labelled =
                crate::leftovers::pool_labels(&self.id, &dir).and_then(|labels| crate::leftovers::mark(&dir, &labels).map(|()| labels));
            spec.labels = labelled.inspect_err(|_| remove_dir(&dir))?;
            match backend.warm(&spec, &self.id).await {
                Ok(warm) => Ok(Slot::new(dir, warm)),
                Err(e) => {
                    remove_dir(&dir);
                    Err(e.to_string())
                }
            }
        }
        .await;
        let unwanted = {
            let mut state = lock(&self.state);
            let group = state.groups.iter_mut().find(|g| g.config.serves(config.tier, config.language, &config.limits));
            match (group, made) {
                (Some(group), Ok(slot)) => {
                    group.filling -= 1;
                    group.error = None;
                    if group.warm.len() < group.config.size {
                        group.warm.push(slot);
                        None
                    } else {
                        Some(Ok(slot))
                    }
                }
                (Some(group), Err(e)) => {
                    group.filling -= 1;
                    group.error = Some(e.clone());
                    Some(Err(e))
                }
                (None, made) => Some(made),
            }
        };
        if let Some(Ok(slot)) = unwanted {
            discard(slot).await;
        }
    }

    /// Takes a warm container for a run of `language` at `tier` with `limits`, if one is ready.
    /// The pool refills when the caller calls [`Pool::fill`] (at the run's end).
    pub fn claim(&self, tier: Tier, language: Language, limits: &Limits) -> Option<Slot> {
        let mut state = lock(&self.state);
        let group = state.groups.iter_mut().find(|g| g.config.serves(tier, language, limits))?;
        group.warm.pop()
    }

    /// Waits until no fill is under way, then says how many warm containers are ready.
    pub async fn filled(&self) -> PoolStatus {
        loop {
            let fills = std::mem::take(&mut lock(&self.state).fills);
            if fills.is_empty() {
                break;
            }
            for fill in fills {
                let _ = fill.await;
            }
        }
        let state = lock(&self.state);
        PoolStatus { warm: state.groups.iter().map(|g| g.warm.len()).sum(), error: state.groups.iter().find_map(|g| g.error.clone()) }
    }

    /// Empties every pool: no fill goes on, every warm container and slot directory is removed.
    pub async fn drain(&self) {
        for group in &mut lock(&self.state).groups {
            group.config.size = 0;
        }
        self.filled().await;
        let slots: Vec<Slot> = {
            let mut state = lock(&self.state);
            let slots = state.groups.iter_mut().flat_map(|g| std::mem::take(&mut g.warm)).collect();
            state.groups.clear();
            slots
        };
        for slot in slots {
            discard(slot).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_carries_what_the_waiter_reads_or_the_run_goes_cold() {
        let input = serde_json::json!({"text": "a\tb\nc", "n": 1});
        let line = go_line("worker", "0123", "src/agent.py", &input).unwrap();
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields, ["worker", "0123", "src/agent.py", r#"{"n":1,"text":"a\tb\nc"}"#]);
        assert_eq!(go_line("worker", "0123", "odd\tname.py", &input), None);
        assert_eq!(go_line("worker", "0123", "odd\nname.py", &input), None);
        assert_eq!(go_line("", "0123", "agent.py", &input), None);
        let script = &waiter(Language::Python)[2];
        assert!(script.contains("exec python3 -u \"/agent/$entry\""), "{script}");
        assert!(waiter(Language::Native)[2].contains("exec \"/agent/$entry\""));
    }
}
