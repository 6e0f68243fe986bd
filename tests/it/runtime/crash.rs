//! A long-lived runtime (one `AgentRuntime` with a warm pool, as `symbiont up` runs) killed with
//! SIGKILL, and the next writer of its audit log cleaning up, on real dockerd: the warm containers
//! of its pool (one claimed by a run, one idle) and the cold run's container are removed with their
//! directories by `leftovers::reap`; the cold run is audited `failed` by `reap` and the pooled run,
//! which `reap` cannot attribute, by `leftovers::close_unfinished`, each once; nothing is left
//! running and the log verifies.
//!
//! The killed runtime is this test binary run again as a child process (`CHILD_ENV` set): the
//! owner labels name a process, and only a process can be killed.

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc},
    time::Duration,
};

use serde_json::Value;
use symbiont_audit::{keys::FileSigner, Log, LogOptions};
use symbiont_runtime::{
    leftovers::{self, Reaped},
    pool::PoolConfig,
    AgentConfig, AgentRuntime, Auditor, Language, Limits, OutputStream, State, Tier,
};

use super::sandbox::{entries_of, sandbox_ready, tokio_runtime, Ws};

/// Set in the child: `WORKSPACE:TMPDIR`.
const CHILD_ENV: &str = "SYMBIONT_TEST_KILLED_RUNTIME";
const TEST: &str = "runtime::crash::a_killed_runtimes_containers_and_lost_runs_are_cleaned_up_by_the_next_writer";
const POOLED: &str = "import os, time\nprint('ready pooled', os.environ['SYMBIONT_RUN_ID'], flush=True)\ntime.sleep(300)\n";
const COLD: &str = "console.log('ready cold', process.env.SYMBIONT_RUN_ID);\nsetTimeout(() => {}, 300000);\n";
const BY: &str = "the restarted runtime";

#[test]
fn a_killed_runtimes_containers_and_lost_runs_are_cleaned_up_by_the_next_writer() {
    if let Ok(dirs) = std::env::var(CHILD_ENV) {
        let (workspace, tmp) = dirs.split_once(':').expect("WORKSPACE:TMPDIR");
        return killed_runtime(Path::new(workspace), Path::new(tmp));
    }
    if !sandbox_ready(TEST) {
        return;
    }
    let ws = Ws::new();
    ws.write("agent.sym", "agent pooled() {}\nagent cold() {}\n");
    ws.write("pooled.py", POOLED);
    ws.write("cold.js", COLD);
    let mut child = Killed(
        Command::new(std::env::current_exe().unwrap())
            .args([TEST, "--exact", "--nocapture"])
            .env(CHILD_ENV, format!("{}:{}", ws.dir.path().display(), ws.tmp.path().display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the test binary runs again"),
    );
    let (pooled, cold) = child.ready();
    let pid = child.0.id();
    let before = owned_by(pid);
    assert_eq!(before.iter().filter(|c| c.pool).count(), 2, "the pool's two containers (one claimed) carry owner labels: {before:?}");
    assert_eq!(before.len(), 3, "{before:?}");
    assert!(before.iter().all(|c| c.state == "running"), "{before:?}");
    let slots = slots(&ws);
    assert_eq!(slots.len(), 2, "{slots:?}");
    assert!(slots.iter().all(|slot| slot.join("owner.json").is_file()), "{slots:?}");

    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert_eq!(owned_by(pid).len(), 3, "SIGKILL: nothing could clean up");

    // The next writer of the log, as a restarted service: reap, then close what is left open.
    let rt = tokio_runtime();
    let (reaped, closed, again) = rt.block_on(async {
        let agents = runtime(ws.dir.path(), ws.tmp.path()).await;
        let reaped = agents.reap_leftovers(BY).await.unwrap();
        let closed = leftovers::close_unfinished(agents.auditor(), BY).await.unwrap();
        // dockerd may finish a create the killed runtime's pool had asked for after the first
        // reap listed the containers: such a late warm container is found by a later reap (the
        // next start's, in a service), never a run.
        let mut again = Vec::new();
        for _ in 0..20 {
            let late = agents.reap_leftovers(BY).await.unwrap();
            assert!(late.iter().all(|r| matches!(r, Reaped::Warm { .. })), "only late warm containers: {late:#?}");
            if late.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        again.extend(leftovers::close_unfinished(agents.auditor(), BY).await.unwrap());
        (reaped, closed, again)
    });
    let cold_container = before.iter().find(|c| !c.pool).unwrap().id.clone();
    let mut warm: Vec<&Reaped> = reaped.iter().filter(|r| matches!(r, Reaped::Warm { .. })).collect();
    warm.sort_by_key(|r| r.to_string());
    let mut expected_warm: Vec<Reaped> = before
        .iter()
        .filter(|c| c.pool)
        .map(|c| Reaped::Warm { container: Some(c.id.clone()), slot: slots.iter().find(|s| c.slot == s.display().to_string()).cloned() })
        .collect();
    expected_warm.sort_by_key(|r| r.to_string());
    assert_eq!(warm, expected_warm.iter().collect::<Vec<_>>(), "{reaped:#?}");
    let removed = Reaped::Removed { run_id: cold.clone(), agent: "cold".into(), container: Some(cold_container.clone()), audited: true };
    assert!(reaped.contains(&removed), "{reaped:#?}");
    assert_eq!(reaped.len(), 3, "{reaped:#?}");
    assert_eq!(closed, [Reaped::Closed { run_id: pooled.clone(), agent: "pooled".into(), from: State::Running }], "{closed:#?}");
    assert_eq!(again, [], "every run is closed once");

    assert_eq!(owned_by(pid), [], "nothing of the killed runtime is left");
    ws.assert_clean_dir();
    let report = symbiont_audit::verify_log(&ws.path(".symbiont/audit"), &Default::default()).unwrap();
    assert!(report.is_valid(), "{:?}", report.finding);
    let entries = ws.audit();
    let lifecycle = |run_id: &str| -> Vec<Value> {
        entries_of(&entries, "lifecycle").into_iter().filter(|e| e["details"]["run_id"] == run_id).cloned().collect()
    };
    let pooled_container = before.iter().find(|c| c.pool && lifecycle(&pooled).iter().any(|e| e["details"]["sandbox"] == c.id.as_str()));
    let reason = format!("the runtime that ran it was killed; cleaned up by {BY}");
    for (run_id, container) in [(&cold, Some(&cold_container)), (&pooled, pooled_container.map(|c| &c.id))] {
        let lifecycle = lifecycle(run_id);
        let decisions: Vec<&str> = lifecycle.iter().map(|e| e["decision"].as_str().unwrap()).collect();
        assert_eq!(decisions, ["created", "starting", "running", "failed"], "{run_id}: {lifecycle:#?}");
        let failed = &lifecycle[3]["details"];
        assert_eq!((&failed["from"], &failed["reason"]), (&Value::from("running"), &Value::from(reason.as_str())), "{failed}");
        let container = container.unwrap_or_else(|| panic!("{run_id}: the container its starting entry names: {lifecycle:#?}"));
        assert_eq!(failed["sandbox"], container.as_str(), "{failed}");
    }
}

/// The child: a runtime with a pool of two warm Python containers runs a Python agent in one of
/// them and a JavaScript agent cold, forwards their output (each says `ready KIND RUN_ID`) and
/// waits to be killed. It exits when its standard input closes (the test is gone).
fn killed_runtime(workspace: &Path, tmp: &Path) {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(3);
    });
    let universe = symbiont_policy::load(
        [("agent.sym", std::fs::read_to_string(workspace.join("agent.sym")).unwrap().as_str())],
        symbiont_policy::config::Config::default(),
    );
    let limits = Limits { timeout: Duration::from_secs(300), ..Limits::default() };
    let config = |agent: &str, file: &str, language: Language| AgentConfig {
        id: agent.to_string(),
        tier: Tier::Docker,
        limits,
        policy: Arc::new(symbiont_policy::Engine::compile(universe.effective(Some(agent)).unwrap())),
        language,
        code_root: workspace.to_path_buf(),
        files: vec![PathBuf::from(file)],
        workspace: symbiont_runtime::Workspace::for_agent(workspace, agent).unwrap(),
        input: Value::Null,
        context: serde_json::Map::new(),
        env: Default::default(),
        priority: Default::default(),
    };
    tokio_runtime().block_on(async {
        let agents = runtime(workspace, tmp).await;
        agents.set_pool(PoolConfig { tier: Tier::Docker, language: Language::Python, limits, size: 2 }).unwrap();
        assert_eq!(agents.pool_filled().await.warm, 2);
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<symbiont_runtime::Output>();
        let forward = async move {
            while let Some((stream, bytes)) = receiver.recv().await {
                match stream {
                    OutputStream::Stdout => {
                        std::io::stdout().write_all(&bytes).unwrap();
                        std::io::stdout().flush().unwrap();
                    }
                    OutputStream::Stderr => eprint!("{}", String::from_utf8_lossy(&bytes)),
                }
            }
        };
        let pooled = agents.run(config("pooled", "pooled.py", Language::Python), sender.clone(), std::future::pending());
        let cold = agents.run(config("cold", "cold.js", Language::JavaScript), sender, std::future::pending());
        let (pooled, cold, ()) = tokio::join!(pooled, cold, forward);
        panic!("the runs ended before the child was killed: {pooled:?} {cold:?}");
    });
}

/// A runtime writing `workspace`'s audit log (holding it for its life, with a key of its own) and
/// staging under `tmp`, as a service does.
async fn runtime(workspace: &Path, tmp: &Path) -> AgentRuntime {
    std::fs::create_dir_all(workspace.join(".symbiont")).unwrap();
    let signer = Arc::new(FileSigner::generate().unwrap());
    let (log, _) = Log::open(&workspace.join(".symbiont/audit"), signer, LogOptions::default()).unwrap();
    let mut agents = AgentRuntime::new(Auditor::new(Arc::new(log))).await;
    agents.set_run_root(tmp.join("symbiont-runs"));
    agents
}

/// The child process; killed, and what it owns removed, however the test ends.
struct Killed(Child);

impl Killed {
    /// The run ids of the pooled and the cold run, once both agents said they are ready (at most
    /// 120 s).
    fn ready(&mut self) -> (String, String) {
        let stdout = self.0.stdout.take().unwrap();
        let (lines, ready) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut pooled, mut cold) = (None, None);
        while pooled.is_none() || cold.is_none() {
            let line = ready.recv_timeout(Duration::from_secs(120)).expect("both agents of the child say they are ready");
            if let Some(id) = line.strip_prefix("ready pooled ") {
                pooled = Some(id.to_string());
            } else if let Some(id) = line.strip_prefix("ready cold ") {
                cold = Some(id.to_string());
            }
        }
        (pooled.unwrap(), cold.unwrap())
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        for container in owned_by(self.0.id()) {
            let _ = Command::new("docker").args(["rm", "-f", &container.id]).output();
        }
    }
}

#[derive(Debug, PartialEq)]
struct Container {
    id: String,
    pool: bool,
    slot: String,
    state: String,
}

/// The containers (any state) whose owner label names `pid`.
fn owned_by(pid: u32) -> Vec<Container> {
    let format = "{{.ID}}\t{{.Label \"dev.symbiont.pool\"}}\t{{.Label \"dev.symbiont.staging\"}}\t{{.State}}";
    let filter = format!("label={}={pid}", leftovers::OWNER_PID_LABEL);
    let out = Command::new("docker").args(["ps", "-a", "--no-trunc", "--filter", &filter, "--format", format]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            Container { id: fields[0].into(), pool: !fields[1].is_empty(), slot: fields[2].into(), state: fields[3].into() }
        })
        .collect()
}

/// The pool's slot directories in `ws`'s run root.
fn slots(ws: &Ws) -> Vec<PathBuf> {
    let root = ws.tmp.path().join("symbiont-runs");
    let entries = std::fs::read_dir(root).unwrap().flatten();
    entries.map(|e| e.path()).filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("pool-")).collect()
}
