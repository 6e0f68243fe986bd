//! Parked warm containers: the pre-started pool's warm containers (`pool.rs`), made to outlive
//! the process that made them, so that repeated `symbiont run --warm`s (one agent per process)
//! skip the container's creation and start too.
//!
//! A parked container is made by [`Sandbox::park`] exactly as a pool's warm container (the same
//! `container_body`, the same waiter, a slot directory `RUN_ROOT/pool-ID/{code,broker}` with the
//! SDK staged), but nobody attaches to it: its waiter blocks on a standard input that nobody holds
//! until one later process adopts it. Its labels say what it is: `dev.symbiont.pool=cli`, the key
//! of the runs it serves (`dev.symbiont.pool.key`, a hash of tier, image, memory, CPUs, processes
//! and `/tmp` size) and its slot directory (`dev.symbiont.pool.slot`).
//!
//! - **Adoption** (`adopt`, by a run of [`AgentRuntime`](crate::AgentRuntime) with
//!   `set_adopt_parked(true)`): the running containers with the run's key are tried, oldest first.
//!   One whose labelled slot is not a directory directly in this process's run root is skipped.
//!   The process claims one by creating the file `claimed` in its slot with `O_EXCL`: only one
//!   process can, so two runs never share a container. It then attaches (standard input, output
//!   and error) and the run goes on as a claim from the in-process pool: code staged into the
//!   slot, broker socket bound there, `starting` audited with `"pooled": true`, the line written
//!   and standard input closed (the container's `StdinOnce` gives the agent end-of-file). One that
//!   has died is removed; a run that adopts none launches cold at the same tier.
//! - **Refill and expiry** ([`tend`], in a detached `symbiont pool warm` process that the run
//!   starts after its own end): removes, after claiming them, parked containers idle for more
//!   than [`IDLE_LIMIT`] and dead ones, and makes one for the key unless an unclaimed one is
//!   ready.
//! - **Drain** ([`drain`], `symbiont pool drain`): removes every parked container and its slot
//!   but one that a run has claimed and still runs in (that run removes it).
//!
//! No broker socket exists in a slot until a run has claimed it; a slot holds only the SDK until
//! then.

use std::{
    fs,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sha2::{Digest, Sha256};

use crate::{
    image::{self, ImageKind},
    pool::{self, Slot},
    sandbox::{docker::POOL_LABEL, Parked, Sandbox},
    Language, Limits, Tier,
};

/// The value of [`POOL_LABEL`] on every parked container.
pub const POOL_VALUE: &str = "cli";
/// The label that says which runs a parked container serves: [`key`].
pub const KEY_LABEL: &str = "dev.symbiont.pool.key";
/// The label that names a parked container's slot directory.
pub const SLOT_LABEL: &str = "dev.symbiont.pool.slot";
/// How long a parked container may wait for a run, from its creation; [`tend`] removes older ones.
pub const IDLE_LIMIT: Duration = Duration::from_secs(600);
/// A container that is not running and older than this is dead, not still starting.
const START_GRACE: Duration = Duration::from_secs(60);

/// How long a refill waits before its second try at parking a container.
const PARK_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The file whose exclusive creation in a slot claims its container.
const CLAIM_FILE: &str = "claimed";

/// The key of the runs a parked container serves: a hash of the tier, the image (its tag holds
/// the hash of its recipe) and the container's limits (the timeout is the runtime's, not the
/// container's).
pub fn key(tier: Tier, language: Language, limits: &Limits) -> String {
    let text = format!(
        "tier={} image={} memory={} cpus={} pids={} tmpfs={}",
        tier.number(),
        image::reference(ImageKind::for_language(language)),
        limits.memory_bytes,
        limits.cpus,
        limits.pids,
        limits.tmpfs_bytes
    );
    symbiont_audit::entry::hex(&Sha256::digest(text.as_bytes())[..8])
}

fn labels(key: Option<&str>) -> Vec<(String, String)> {
    let mut labels = vec![(POOL_LABEL.to_string(), POOL_VALUE.to_string())];
    labels.extend(key.map(|key| (KEY_LABEL.to_string(), key.to_string())));
    labels
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn older_than(parked: &Parked, age: Duration) -> bool {
    now().saturating_sub(parked.created) >= age.as_secs() as i64
}

/// The slot directory `parked` is labelled with, if it is a directory `pool-…` directly in `root`
/// (not a symbolic link) with `code/` and `broker/` directories: anything else is not this run
/// root's, and is left alone.
fn slot_of(root: &Path, parked: &Parked) -> Option<PathBuf> {
    let path = crate::util::labelled_dir_in(root, parked.labels.get(SLOT_LABEL)?, |name| name.starts_with("pool-"))?;
    let is_dir = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    (is_dir(&path.join("code")) && is_dir(&path.join("broker"))).then_some(path)
}

/// Claims the container of slot `dir` for this process: true for exactly one process.
fn claim(dir: &Path) -> bool {
    fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(dir.join(CLAIM_FILE)).is_ok()
}

fn claimed(dir: &Path) -> bool {
    dir.join(CLAIM_FILE).exists()
}

/// Removes a claimed (or unusable) parked container and its slot.
async fn remove(backend: &dyn Sandbox, id: &str, slot: Option<&Path>) {
    let _ = backend.discard(id).await;
    if let Some(dir) = slot {
        pool::remove_dir(dir);
    }
}

/// Adopts a parked container for a run of `language` at `tier` with `limits` whose staging
/// directories go under `root`: claimed, attached and checked running; `None` when there is none
/// (the run launches cold).
pub(crate) async fn adopt(backend: &dyn Sandbox, root: &Path, tier: Tier, language: Language, limits: &Limits) -> Option<Slot> {
    let key = key(tier, language, limits);
    let mut candidates = backend.parked(&labels(Some(&key)), false).await.ok()?;
    candidates.sort_by_key(|p| p.created);
    for parked in candidates.iter().filter(|p| p.running && !older_than(p, IDLE_LIMIT)) {
        let Some(dir) = slot_of(root, parked) else { continue };
        if !claim(&dir) {
            continue;
        }
        match backend.adopt(&parked.id).await {
            Ok(warm) if warm.alive().await => return Some(Slot::new(dir, warm)),
            Ok(warm) => pool::discard(Slot::new(dir, warm)).await,
            Err(_) => remove(backend, &parked.id, Some(&dir)).await,
        }
    }
    None
}

/// What [`tend`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tended {
    /// Parked containers removed for being idle too long or dead.
    pub removed: usize,
    /// The parked container made for the key, if none was ready.
    pub made: Option<String>,
}

/// Removes the parked containers of `root` that are idle longer than [`IDLE_LIMIT`] or dead
/// (claiming each first, so that none a run adopted is touched), then makes one for runs of
/// `language` at `tier` with `limits` unless an unclaimed one is ready.
pub async fn tend(backend: &dyn Sandbox, root: &Path, tier: Tier, language: Language, limits: &Limits) -> Result<Tended, String> {
    let key = key(tier, language, limits);
    let all = backend.parked(&labels(None), true).await.map_err(|e| e.to_string())?;
    let mut tended = Tended::default();
    let mut ready = 0;
    for parked in &all {
        let Some(dir) = slot_of(root, parked) else { continue };
        let stale = older_than(parked, IDLE_LIMIT) || (!parked.running && older_than(parked, START_GRACE));
        if stale {
            if claim(&dir) {
                remove(backend, &parked.id, Some(&dir)).await;
                tended.removed += 1;
            }
        } else if parked.labels.get(KEY_LABEL) == Some(&key) && !claimed(&dir) {
            ready += 1;
        }
    }
    if ready == 0 {
        tended.made = Some(park_retrying(backend, root, language, limits, &key).await?);
    }
    Ok(tended)
}

/// Parks one container for `key`, trying once more after [`PARK_RETRY_AFTER`] when dockerd
/// refuses: a refill that gives up on one refusal (as dockerd may answer a create or start under
/// load) leaves the next run cold.
async fn park_retrying(backend: &dyn Sandbox, root: &Path, language: Language, limits: &Limits, key: &str) -> Result<String, String> {
    let mut failed = None;
    for attempt in 0..2 {
        if attempt > 0 {
            tokio::time::sleep(PARK_RETRY_AFTER).await;
        }
        let (dir, spec) = pool::make_slot(root, language, *limits)?;
        let mut labels = labels(Some(key));
        labels.push((SLOT_LABEL.to_string(), dir.display().to_string()));
        match backend.park(&spec, &labels).await {
            Ok(id) => return Ok(id),
            Err(e) => {
                pool::remove_dir(&dir);
                failed = Some(match failed {
                    None => e.to_string(),
                    Some(first) => format!("{e} (and before, {first})"),
                });
            }
        }
    }
    Err(failed.unwrap_or_default())
}

/// Removes every parked container (of any run root) and, for those of `root`, its slot, except
/// one that a run has claimed and still runs in: that run removes it. Returns how many it removed.
pub async fn drain(backend: &dyn Sandbox, root: &Path) -> Result<usize, String> {
    let all = backend.parked(&labels(None), true).await.map_err(|e| e.to_string())?;
    let mut removed = 0;
    for parked in &all {
        let dir = slot_of(root, parked);
        if parked.running && dir.as_deref().is_some_and(claimed) {
            continue;
        }
        remove(backend, &parked.id, dir.as_deref()).await;
        removed += 1;
    }
    Ok(removed)
}

/// The parked containers ready for runs of `language` at `tier` with `limits` under `root`: running,
/// unclaimed, not expired.
pub async fn ready(backend: &dyn Sandbox, root: &Path, tier: Tier, language: Language, limits: &Limits) -> Result<Vec<String>, String> {
    let key = key(tier, language, limits);
    let list = backend.parked(&labels(Some(&key)), false).await.map_err(|e| e.to_string())?;
    Ok(list
        .into_iter()
        .filter(|p| p.running && !older_than(p, IDLE_LIMIT) && slot_of(root, p).is_some_and(|dir| !claimed(&dir)))
        .map(|p| p.id)
        .collect())
}

/// Whether a refill runs on this machine: a process whose arguments begin `pool warm` (what
/// `symbiont run --warm` starts, detached, after its run). For tests and benchmarks that must
/// wait for it.
pub fn refill_running() -> bool {
    let Ok(processes) = fs::read_dir("/proc") else { return false };
    processes.flatten().any(|entry| {
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let mut args = cmdline.split(|&b| b == 0).skip(1);
        args.next() == Some(b"pool") && args.next() == Some(b"warm")
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_key_covers_tier_image_and_limits() {
        let limits = Limits::default();
        let k = key(Tier::Docker, Language::Python, &limits);
        assert_eq!(k.len(), 16);
        assert_eq!(k, key(Tier::Docker, Language::Python, &limits));
        assert_ne!(k, key(Tier::GVisor, Language::Python, &limits));
        assert_ne!(k, key(Tier::Docker, Language::JavaScript, &limits));
        assert_ne!(k, key(Tier::Docker, Language::Python, &Limits { memory_bytes: limits.memory_bytes * 2, ..limits }));
        assert_ne!(k, key(Tier::Docker, Language::Python, &Limits { tmpfs_bytes: 1 << 20, ..limits }));
        assert_eq!(k, key(Tier::Docker, Language::Python, &Limits { timeout: Duration::from_secs(1), ..limits }));
    }

    #[test]
    fn only_a_slot_directly_in_the_run_root_is_adopted_and_only_once() {
        let base = std::env::temp_dir().join(format!("symbiont-parked-test-{}", std::process::id()));
        let root = base.join("symbiont-runs");
        let slot = root.join("pool-abc");
        for d in [slot.join("code"), slot.join("broker"), base.join("pool-out/code"), base.join("pool-out/broker")] {
            fs::create_dir_all(d).unwrap();
        }
        let parked = |path: &Path| Parked {
            id: "x".into(),
            labels: HashMap::from([(SLOT_LABEL.to_string(), path.display().to_string())]),
            created: now(),
            running: true,
        };
        assert_eq!(slot_of(&root, &parked(&slot)), Some(slot.clone()));
        assert_eq!(slot_of(&root, &parked(&base.join("pool-out"))), None, "outside the run root");
        assert_eq!(slot_of(&root, &parked(&root.join("pool-abc/../../pool-out"))), None);
        assert_eq!(slot_of(&root, &parked(&root.join("pool-missing"))), None);
        std::os::unix::fs::symlink(base.join("pool-out"), root.join("pool-link")).unwrap();
        assert_eq!(slot_of(&root, &parked(&root.join("pool-link"))), None, "a symbolic link");
        assert!(!claimed(&slot));
        assert!(claim(&slot));
        assert!(!claim(&slot), "a second claim fails");
        assert!(claimed(&slot));
        fs::remove_dir_all(&base).unwrap();
    }
}
