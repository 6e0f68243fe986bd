//! `symbiont run` end to end on real sandboxes: dockerd with runc (Tier 1) and with gVisor's
//! runsc (Tier 2), each agent in Python and JavaScript making one allowed and one denied broker
//! request; the escape suite; and failures (crash, OOM, timeout, missing image, no dockerd),
//! after each of which nothing may be left behind.
//!
//! The tests skip, saying why, when no sandbox is set up (`scripts/sandbox-setup`), unless
//! `CI` or `SYMBIONT_REQUIRE_SANDBOX` is set (as `scripts/test` does as root): then they fail.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, OnceLock,
    },
    time::Duration,
};

use serde_json::Value;
use symbiont_audit::{keys::FileSigner, Log, LogOptions};
use symbiont_policy::Engine;
use symbiont_runtime::{
    image::{self, ImageKind},
    local::{LocalAgent, LocalHandle, LocalReport},
    pool::{PoolConfig, PoolStatus},
    sandbox::{docker::DockerSandbox, LaunchSpec, Sandbox},
    AgentConfig, AgentRuntime, Auditor, Language, Limits, OutputStream, RunReport, State, Tier,
};

/// Whether dockerd answers and has runsc and the images; else why not.
fn sandbox_missing() -> Option<String> {
    static STATE: OnceLock<Option<String>> = OnceLock::new();
    STATE
        .get_or_init(|| {
            let info = Command::new("docker").args(["info", "--format", "{{json .Runtimes}}"]).output();
            match info {
                Err(e) => return Some(format!("no docker client: {e}")),
                Ok(out) if !out.status.success() => {
                    return Some(format!("dockerd is not running: {}", String::from_utf8_lossy(&out.stderr).trim()))
                }
                Ok(out) if !String::from_utf8_lossy(&out.stdout).contains("runsc") => return Some("dockerd has no runsc runtime".into()),
                Ok(_) => {}
            }
            // The images of this build: an older build's (another SDK, say) is no substitute.
            let missing = ImageKind::ALL.map(image::reference).into_iter().find(|reference| {
                !Command::new("docker").args(["image", "inspect", reference]).output().is_ok_and(|out| out.status.success())
            });
            missing.map(|reference| format!("image {reference} is not built (symbiont image build)"))
        })
        .clone()
}

/// True when the test should go on; prints why it skips otherwise. Under CI (`CI` set, as the CI
/// runner sets it, or `SYMBIONT_REQUIRE_SANDBOX`, as `scripts/test` does as root) a missing
/// sandbox fails the test instead: there every sandbox test must run.
pub(crate) fn sandbox_ready(test: &str) -> bool {
    match sandbox_missing() {
        None => true,
        Some(why) if std::env::var_os("SYMBIONT_REQUIRE_SANDBOX").is_some() || std::env::var_os("CI").is_some() => {
            panic!("{test}: the sandbox is required here (CI or SYMBIONT_REQUIRE_SANDBOX) but not ready: {why}")
        }
        Some(why) => {
            eprintln!("SKIPPED {test}: {why}; run scripts/sandbox-setup as root");
            false
        }
    }
}

pub(crate) struct Ws {
    pub(crate) dir: tempfile::TempDir,
    /// TMPDIR of the runs: where their staging directories and broker sockets go.
    pub(crate) tmp: tempfile::TempDir,
}

pub(crate) struct RunOutput {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) run_id: String,
}

impl Ws {
    pub(crate) fn new() -> Ws {
        let ws = Ws { dir: tempfile::tempdir().unwrap(), tmp: tempfile::tempdir().unwrap() };
        ws.write("symbiont.toml", "[policy]\n");
        ws
    }

    pub(crate) fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub(crate) fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(crate::cli::binary());
        command.args(args).current_dir(self.dir.path()).env("TMPDIR", self.tmp.path()).stdin(Stdio::null());
        command
    }

    pub(crate) fn run(&self, args: &[&str]) -> RunOutput {
        self.output(self.command(args))
    }

    /// Runs a command made by [`Ws::command`] (with more settings) to its end.
    pub(crate) fn output(&self, mut command: Command) -> RunOutput {
        let out = command.output().expect("symbiont runs");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let run_id = stderr.split("run ").nth(1).and_then(|s| s.split_whitespace().next()).unwrap_or("").to_string();
        RunOutput { code: out.status.code().expect("exits"), stdout: String::from_utf8_lossy(&out.stdout).to_string(), stderr, run_id }
    }

    /// The audit log's entries, after checking that it verifies.
    pub(crate) fn audit(&self) -> Vec<Value> {
        self.audit_of(".")
    }

    /// [`Ws::audit`] of the workspace in the directory `relative`.
    pub(crate) fn audit_of(&self, relative: &str) -> Vec<Value> {
        let log = self.path(relative).join(".symbiont/audit");
        let verify = self.command(&["audit", "verify", log.to_str().unwrap()]).output().unwrap();
        assert!(verify.status.success(), "the run's audit log must verify:\n{}", String::from_utf8_lossy(&verify.stdout));
        let show = self.command(&["audit", "show", log.to_str().unwrap(), "--format", "json"]).output().unwrap();
        String::from_utf8_lossy(&show.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON lines")).collect()
    }

    /// Nothing of the run may remain: no container, no staging directory or socket.
    pub(crate) fn assert_clean(&self, run: &RunOutput) {
        assert!(!run.run_id.is_empty(), "the summary names the run:\n{}", run.stderr);
        assert_no_container(&run.run_id);
        self.assert_clean_dir();
    }

    /// No staging directory or socket of any run is left.
    pub(crate) fn assert_clean_dir(&self) {
        let runs = self.tmp.path().join("symbiont-runs");
        let left: Vec<_> = std::fs::read_dir(&runs).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "staging left behind: {left:?}");
    }
}

pub(crate) fn assert_no_container(run_id: &str) {
    assert_eq!(containers_labelled(&format!("dev.symbiont.run={run_id}")), "", "a container of run {run_id} is left");
}

/// The ids of the containers (any state) with the label `label` (`KEY=VALUE`), one per line.
pub(crate) fn containers_labelled(label: &str) -> String {
    let ps = Command::new("docker").args(["ps", "-aq", "--filter", &format!("label={label}")]).output().unwrap();
    String::from_utf8_lossy(&ps.stdout).trim().to_string()
}

pub(crate) fn entries_of<'a>(entries: &'a [Value], operation: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["operation"] == operation).collect()
}

/// A plain HTTP server on the host's loopback that answers every request with `hello` and counts
/// connections.
pub(crate) fn http_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello");
        }
    });
    (port, hits)
}

const PYTHON_AGENT: &str = r#"
import symbiont, sys
port = symbiont.input()["port"]
r = symbiont.net.get(f"http://127.0.0.1:{port}/data")
print("http", r.status_code, r.text)
try:
    symbiont.fs.write("out.txt", "should not be written")
    print("write allowed")
except symbiont.PolicyDenied as e:
    print("write denied", e.code)
"#;

const JS_AGENT: &str = r#"
const symbiont = require("symbiont");
(async () => {
  const port = symbiont.input().port;
  const r = await symbiont.net.get(`http://127.0.0.1:${port}/data`);
  console.log("http", r.status, r.data);
  try {
    await symbiont.fs.write("out.txt", "should not be written");
    console.log("write allowed");
  } catch (e) {
    console.log("write denied", e.code);
  }
})();
"#;

fn allowed_and_denied(tier: u8, file: &str, code: &str) {
    let test = format!("allowed_and_denied tier {tier} {file}");
    if !sandbox_ready(&test) {
        return;
    }
    let ws = Ws::new();
    ws.write(file, code);
    ws.write(
        "agent.sym",
        &format!(
            r#"agent worker {{
    capabilities = ["http_request"]
    implementation = ["{file}"]
    security = {{ tier: Tier{tier}, memory: 256MB, timeout: 60s }}
    policy rules {{
        allow: http_request(host) if host == "127.0.0.1"
        deny: ["file_system_write"]
    }}
}}
"#
        ),
    );
    let (port, hits) = http_server();
    let input = format!(r#"{{"port": {port}}}"#);
    let run = ws.run(&["run", "agent.sym", "--input", &input]);
    assert_eq!(run.code, 0, "{test}\nstdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.contains("http 200 hello"), "{test}: {}", run.stdout);
    assert!(run.stdout.contains("write denied denied"), "{test}: {}", run.stdout);
    assert!(run.stderr.contains(&format!("at Tier{tier}")), "{test}: {}", run.stderr);
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the broker made the one allowed request");
    assert!(!ws.path(".symbiont/workspaces/worker/out.txt").exists(), "a denied write wrote nothing");
    let entries = ws.audit();
    let http = entries_of(&entries, "http_request");
    assert_eq!(http.len(), 1, "{entries:#?}");
    assert_eq!(http[0]["decision"], "allow");
    assert_eq!(http[0]["details"]["request"]["url"], format!("http://127.0.0.1:{port}/data"));
    let write = entries_of(&entries, "file_system_write");
    assert_eq!((write.len(), write[0]["decision"].as_str()), (1, Some("deny")), "{entries:#?}");
    assert!(write[0]["details"]["rules"][0]["rule"].as_str().unwrap().contains("file_system_write"));
    // Every lifecycle step, in order, and the allow entry precedes nothing it covers.
    let states: Vec<&str> = entries_of(&entries, "lifecycle").iter().map(|e| e["decision"].as_str().unwrap()).collect();
    assert_eq!(states, ["created", "starting", "running", "completed"]);
    ws.assert_clean(&run);
}

#[test]
fn python_agent_tier1() {
    allowed_and_denied(1, "agent.py", PYTHON_AGENT);
}

#[test]
fn python_agent_tier2() {
    allowed_and_denied(2, "agent.py", PYTHON_AGENT);
}

#[test]
fn javascript_agent_tier1() {
    allowed_and_denied(1, "agent.js", JS_AGENT);
}

#[test]
fn javascript_agent_tier2() {
    allowed_and_denied(2, "agent.js", JS_AGENT);
}

/// Each escape attempt prints `NAME contained` or `NAME ESCAPED: how`.
const ESCAPES: &str = r#"
import ctypes, json, os, socket, time, sys
import symbiont

results = {}
def attempt(name, fn):
    try:
        how = fn()
        results[name] = "ESCAPED: " + str(how)
    except Exception as e:
        results[name] = "contained: " + type(e).__name__ + " " + str(e)[:80]

inp = symbiont.input()

def egress_public():
    s = socket.create_connection(("1.1.1.1", 80), timeout=3)
    return "connected to 1.1.1.1"
attempt("egress_public", egress_public)

def egress_host_loopback():
    s = socket.create_connection(("127.0.0.1", inp["port"]), timeout=3)
    return "connected to the host's listener"
attempt("egress_host_loopback", egress_host_loopback)

def write_root():
    open("/etc/escape", "w").write("x")
    return "wrote /etc/escape"
attempt("write_root", write_root)

def write_code():
    open("/agent/escape", "w").write("x")
    return "wrote /agent/escape"
attempt("write_code", write_code)

def read_audit_key_via_broker():
    return symbiont.fs.read("../../audit.key")
attempt("read_audit_key_via_broker", read_audit_key_via_broker)

def read_audit_key_direct():
    for path in inp["host_paths"]:
        if os.path.exists(path):
            return open(path).read()[:20]
    raise FileNotFoundError("no host path is visible")
attempt("read_audit_key_direct", read_audit_key_direct)

def read_shadow():
    return open("/etc/shadow").read()[:20]
attempt("read_shadow", read_shadow)

def setuid_root():
    os.setuid(0)
    return "uid 0"
attempt("setuid_root", setuid_root)

libc = ctypes.CDLL(None, use_errno=True)
def mount_tmpfs():
    if libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return "mounted"
attempt("mount", mount_tmpfs)

def ptrace_attach():
    PTRACE_ATTACH = 16
    if libc.ptrace(PTRACE_ATTACH, 1, None, None) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return "attached to pid 1"
attempt("ptrace", ptrace_attach)

def impersonate():
    return symbiont._broker.call("env_get", name="HOME", agent="someone_else")
attempt("impersonate", impersonate)


print(json.dumps(results))
sys.stdout.flush()
"#;

/// Runs `agent` of `ws/agent.sym` through the runtime library at exactly `tier`: the escape
/// suite tests each tier's containment, where `symbiont run`'s risk assessment would (rightly)
/// raise such code to a higher tier.
pub(crate) fn run_direct(ws: &Ws, agent: &str, tier: Tier, limits: Limits, file: &str, input: Value) -> (RunReport, String) {
    let (report, stdout, _) = run_beside(ws, agent, tier, limits, file, input, |_, _| Vec::new());
    (report, stdout)
}

/// [`run_direct`], with lightweight agents that `beside` spawns on the same runtime (and bus)
/// before the sandboxed one starts; their reports come back too.
pub(crate) fn run_beside(
    ws: &Ws,
    agent: &str,
    tier: Tier,
    limits: Limits,
    file: &str,
    input: Value,
    beside: impl FnOnce(&AgentRuntime, &symbiont_policy::Universe) -> Vec<LocalHandle>,
) -> (RunReport, String, Vec<LocalReport>) {
    let universe = universe_of(ws);
    let config = agent_config(ws, &universe, agent, tier, limits, file, input);
    tokio_runtime().block_on(async {
        let agents = workspace_runtime(ws).await;
        let (sender, collected) = collect_output();
        let locals = beside(&agents, &universe);
        let report = agents.run(config, sender, std::future::pending()).await.expect("the run starts");
        let mut local_reports = Vec::new();
        for local in locals {
            local_reports.push(local.wait().await);
        }
        drop(agents);
        (report, collected.await.unwrap(), local_reports)
    })
}

/// The policies of `ws/agent.sym`.
pub(crate) fn universe_of(ws: &Ws) -> symbiont_policy::Universe {
    let sym = std::fs::read_to_string(ws.path("agent.sym")).unwrap();
    symbiont_policy::load([("agent.sym", sym.as_str())], symbiont_policy::config::Config::default())
}

/// The run of `agent` (of `universe`) executing `ws/file` at exactly `tier`.
pub(crate) fn agent_config(
    ws: &Ws,
    universe: &symbiont_policy::Universe,
    agent: &str,
    tier: Tier,
    limits: Limits,
    file: &str,
    input: Value,
) -> AgentConfig {
    let engine = Engine::compile(universe.effective(Some(agent)).unwrap());
    AgentConfig {
        id: agent.to_string(),
        tier,
        limits,
        policy: Arc::new(engine),
        language: Language::of_path(Path::new(file)).expect("a Python, JavaScript or compiled agent"),
        code_root: ws.dir.path().to_path_buf(),
        files: vec![PathBuf::from(file)],
        workspace: symbiont_runtime::Workspace::for_agent(ws.dir.path(), agent).unwrap(),
        input,
        context: serde_json::Map::new(),
        env: Default::default(),
        priority: Default::default(),
    }
}

/// The Tokio runtime the library's runs are driven on (two workers, as the machine's cores).
pub(crate) fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// An agent runtime with the standard backends writing `ws`'s audit log (a new signing key) and
/// staging its runs under `ws.tmp`.
pub(crate) async fn workspace_runtime(ws: &Ws) -> AgentRuntime {
    let signer = Arc::new(FileSigner::generate().unwrap());
    std::fs::create_dir_all(ws.path(".symbiont")).unwrap();
    let (log, _) = Log::open(&ws.path(".symbiont/audit"), signer, LogOptions::default()).unwrap();
    let mut agents = AgentRuntime::new(Auditor::new(Arc::new(log))).await;
    agents.set_run_root(ws.tmp.path().join("symbiont-runs"));
    agents
}

/// Where runs write their output: the standard output is collected (what the task returns once
/// every sender is gone), the standard error echoed to the test's.
pub(crate) fn collect_output() -> (symbiont_runtime::sandbox::OutputSender, tokio::task::JoinHandle<String>) {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<symbiont_runtime::Output>();
    let collect = tokio::spawn(async move {
        let mut stdout = Vec::new();
        while let Some((stream, bytes)) = receiver.recv().await {
            match stream {
                OutputStream::Stdout => stdout.extend(bytes),
                OutputStream::Stderr => eprint!("{}", String::from_utf8_lossy(&bytes)),
            }
        }
        String::from_utf8_lossy(&stdout).to_string()
    });
    (sender, collect)
}

fn escape_suite(tier: Tier) {
    let test = format!("escape suite {tier}");
    if !sandbox_ready(&test) {
        return;
    }
    let ws = Ws::new();
    ws.write("escape.py", ESCAPES);
    ws.write("agent.sym", "agent intruder {\n    policy rules {\n        allow: [\"file_read\", \"env_access\"]\n    }\n}\n");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let key = ws.path(".symbiont/audit/keys");
    let input = serde_json::json!({"port": port, "host_paths": [key, ws.path("agent.sym")]});
    let limits = Limits { timeout: Duration::from_secs(60), ..Limits::default() };
    let (report, stdout) = run_direct(&ws, "intruder", tier, limits, "escape.py", input);
    assert_eq!((report.state, report.exit_code), (State::Completed, Some(0)), "{test}: {report:?}\n{stdout}");
    let results: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let results = results.as_object().unwrap();
    assert_eq!(results.len(), 11, "{results:#?}");
    for (name, outcome) in results {
        assert!(outcome.as_str().unwrap().starts_with("contained"), "{test}: {name} {outcome}");
    }
    assert!(listener.accept().is_err(), "nothing reached the host's loopback listener");
    assert!(!Path::new("/etc/escape").exists());
    // The attempts that reached the broker are in the audit log.
    let entries = ws.audit();
    let reads = entries_of(&entries, "file_read");
    assert_eq!(reads.len(), 1, "{entries:#?}");
    assert_eq!(reads[0]["details"]["request"]["path"], "../../audit.key");
    let impersonation = entries_of(&entries, "broker_impersonation");
    assert_eq!((impersonation.len(), impersonation[0]["details"]["claimed_agent"].as_str()), (1, Some("someone_else")));
    assert_no_container(&report.run_id);
    ws.assert_clean_dir();

    // A fork bomb meets the pids limit: runc refuses the forks; under gVisor the limit also
    // bounds the sandbox's own host threads, so the sandbox dies instead. Either way it ends, on
    // time, and the host keeps nothing of it.
    ws.write("bomb.py", FORK_BOMB);
    let limits = Limits { timeout: Duration::from_secs(60), ..Limits::default() };
    let (report, stdout) = run_direct(&ws, "intruder", tier, limits, "bomb.py", Value::Null);
    assert_ne!(report.state, State::TimedOut, "{test}: the fork bomb must not outlive its limits");
    if report.state == State::Completed {
        assert!(stdout.contains("contained BlockingIOError"), "{test}: {stdout}");
    } else {
        assert!(tier == Tier::GVisor && matches!(report.state, State::Failed | State::Killed), "{test}: {report:?} {stdout}");
    }
    assert_no_container(&report.run_id);
    ws.assert_clean_dir();
}

const FORK_BOMB: &str = r#"
import os, time
children = []
try:
    for _ in range(10000):
        pid = os.fork()
        if pid == 0:
            time.sleep(2)
            os._exit(0)
        children.append(pid)
    print("ESCAPED: forked", len(children))
except OSError as e:
    print("contained", type(e).__name__, len(children), flush=True)
finally:
    for pid in children:
        os.waitpid(pid, 0)
"#;

#[test]
fn escapes_are_contained_tier1() {
    escape_suite(Tier::Docker);
}

#[test]
fn escapes_are_contained_tier2() {
    escape_suite(Tier::GVisor);
}

/// `symbiont run` raises code like the escape suite above Tier 1: the `.sym`'s tier is a minimum.
#[test]
fn risky_code_runs_at_a_higher_tier() {
    if !sandbox_ready("risky_code_runs_at_a_higher_tier") {
        return;
    }
    let ws = Ws::new();
    ws.write("agent.py", "import subprocess\nprint('assessed')\nif False:\n    subprocess.run(['ls'])\n");
    ws.write("agent.sym", "agent risky {\n    implementation = [\"agent.py\"]\n    security = { tier: Tier1, timeout: 30s }\n}\n");
    let run = ws.run(&["run", "agent.sym"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("at Tier2"), "{}", run.stderr);
    let entries = ws.audit();
    let assessment = entries_of(&entries, "risk_assessment");
    assert_eq!(assessment[0]["decision"], "tier2");
    assert_eq!(assessment[0]["details"]["declared_tier"], 1);
    assert!(assessment[0]["details"]["score"].as_u64().unwrap() >= 30);
    ws.assert_clean(&run);
}

/// A second process on the host speaking to a running agent's broker is refused and audited.
#[test]
fn another_process_cannot_use_an_agents_broker() {
    if !sandbox_ready("another_process_cannot_use_an_agents_broker") {
        return;
    }
    let ws = Ws::new();
    ws.write("wait.py", "import time, symbiont\nsymbiont.log('waiting')\ntime.sleep(4)\nprint('done')\n");
    ws.write("agent.sym", "agent sleeper {\n    implementation = [\"wait.py\"]\n    security = { tier: Tier1, timeout: 30s }\n}\n");
    let child = ws.command(&["run", "agent.sym"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let runs = ws.tmp.path().join("symbiont-runs");
    let mut socket = None;
    for _ in 0..100 {
        if let Some(dir) = std::fs::read_dir(&runs).ok().and_then(|mut d| d.next()).and_then(Result::ok) {
            let path = dir.path().join("broker/broker.sock");
            if path.exists() {
                socket = Some(path);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let socket = socket.expect("the run's broker socket appears");
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    let _ = stream.write_all(b"{\"id\":1,\"op\":\"env_get\",\"name\":\"HOME\",\"agent\":\"sleeper\"}\n");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.contains("\"unidentified\""), "{reply}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let entries = ws.audit();
    let refused = entries_of(&entries, "broker_connect");
    assert_eq!((refused.len(), refused[0]["decision"].as_str()), (1, Some("deny")), "{entries:#?}");
    assert_eq!(refused[0]["details"]["peer_pid"], std::process::id());
    assert!(entries_of(&entries, "env_access").is_empty(), "the refused connection's request was never decided");
}

fn failing(tier: u8, code: &str, security: &str) -> (Ws, RunOutput) {
    let ws = Ws::new();
    ws.write("agent.py", code);
    ws.write(
        "agent.sym",
        &format!("agent failing {{\n    implementation = [\"agent.py\"]\n    security = {{ tier: Tier{tier}, {security} }}\n}}\n"),
    );
    let run = ws.run(&["run", "agent.sym"]);
    (ws, run)
}

fn final_state(ws: &Ws) -> String {
    let entries = ws.audit();
    entries_of(&entries, "lifecycle").last().map(|e| e["decision"].as_str().unwrap().to_string()).unwrap_or_default()
}

#[test]
fn failures_have_a_status_an_entry_and_no_leftovers() {
    if !sandbox_ready("failures_have_a_status_an_entry_and_no_leftovers") {
        return;
    }
    for tier in [1, 2] {
        let (ws, run) = failing(tier, "import sys\nprint('crashing')\nsys.exit(3)\n", "timeout: 30s");
        assert_eq!(run.code, 3, "tier {tier}: the agent's own status: {}", run.stderr);
        assert_eq!(final_state(&ws), "failed");
        ws.assert_clean(&run);

        let (ws, run) = failing(tier, "import time\nprint('sleeping', flush=True)\ntime.sleep(60)\n", "timeout: 2s");
        assert_eq!(run.code, 124, "tier {tier}: timeout: {}", run.stderr);
        assert!(run.stdout.contains("sleeping"));
        assert_eq!(final_state(&ws), "timed_out");
        ws.assert_clean(&run);

        let bomb = "blocks = []\nwhile True:\n    blocks.append(bytearray(16 << 20))\n";
        let (ws, run) = failing(tier, bomb, "memory: 64MB, timeout: 60s");
        assert_eq!(run.code, 137, "tier {tier}: out of memory: {}", run.stderr);
        assert_eq!(final_state(&ws), "killed");
        ws.assert_clean(&run);
    }
}

#[test]
fn unavailable_sandboxes_refuse_the_run() {
    if !sandbox_ready("unavailable_sandboxes_refuse_the_run") {
        return;
    }
    let ws = Ws::new();
    ws.write("agent.py", "print('never')\n");
    ws.write("agent.sym", "agent a {\n    implementation = [\"agent.py\"]\n    security = { tier: Tier1 }\n}\n");
    // No dockerd at that address: refused, never run some other way.
    let out = ws.command(&["run", "agent.sym"]).env("DOCKER_HOST", "unix:///nonexistent/docker.sock").output().unwrap();
    assert_eq!(out.status.code(), Some(69), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Tier1"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("never"));
    assert_eq!(final_state(&ws), "failed");
    // A recipe whose image was never built: the image is missing.
    let out = ws.command(&["run", "agent.sym"]).env("SYMBIONT_DEBIAN_MIRROR", "http://mirror.invalid/debian").output().unwrap();
    assert_eq!(out.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&out.stderr).contains("symbiont image build"), "{}", String::from_utf8_lossy(&out.stderr));
    // Tier 3 cannot boot here: refused, not run at Tier 2.
    let out = ws.command(&["run", "agent.sym", "--tier", "3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(69), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Tier3"));
    // A tier below the agent's minimum is refused by policy.
    ws.write("agent.sym", "agent a {\n    implementation = [\"agent.py\"]\n    security = { tier: Tier2 }\n}\n");
    let out = ws.command(&["run", "agent.sym", "--tier", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(77), "{}", String::from_utf8_lossy(&out.stderr));
    let runs = ws.tmp.path().join("symbiont-runs");
    assert!(std::fs::read_dir(&runs).map(|d| d.count() == 0).unwrap_or(true));
}

/// The README's example: the bundled reviewer runs at its Tier 2, reads its input through the
/// broker when the caller's context meets its policy's requirement (the context `symbiont.toml`'s
/// `[run]` gives it, or `--context`), and is refused otherwise.
#[test]
fn the_bundled_example_runs() {
    if !sandbox_ready("the_bundled_example_runs") {
        return;
    }
    let ws = Ws::new();
    let examples = symbiont_tests::repo_root().join("examples");
    for file in ["symbiont.toml", "policies.sym", "agents/reviewer.sym", "agents/reviewer.py", "agents/incidents.symbi"] {
        ws.write(file, &std::fs::read_to_string(examples.join(file)).unwrap());
    }
    ws.write(".symbiont/workspaces/reviewer/change.diff", "+ fn main() {}\n+ // TODO: handle errors\n");
    // As the README runs it: the context is examples/symbiont.toml's.
    let run = ws.run(&["run", "agents/reviewer.sym"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let review: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(review["verdict"], "changes_requested");
    assert_eq!(review["findings"][0]["line"], 2);
    assert!(run.stderr.contains("at Tier2"), "{}", run.stderr);
    let given = ws.run(&["run", "agents/reviewer.sym", "--context", r#"{"user_clearance": "maintainer", "audit_trail": true}"#]);
    assert_eq!(given.code, 0, "{}\n{}", given.stdout, given.stderr);
    // `--context` replaces the configured context: without the clearance the read is denied.
    let refused = ws.run(&["run", "agents/reviewer.sym", "--context", r#"{"audit_trail": true}"#]);
    assert_eq!(refused.code, 1, "without the clearance the read is denied: {}", refused.stderr);
    assert!(refused.stderr.contains("RequirementFailed"), "{}", refused.stderr);
    ws.assert_clean(&refused);
}

/// A compiled agent (Rust, built here against the SDK crate `sdk/rust`) runs in the minimal image
/// at Tier 1 and Tier 2 and reaches its broker through the SDK: the handshake, an allowed write, a
/// denial as the typed error naming the deciding rule, and the run's input; the audit log verifies.
#[test]
fn a_compiled_rust_agent_speaks_the_protocol() {
    if !sandbox_ready("a_compiled_rust_agent_speaks_the_protocol") {
        return;
    }
    let agent = build_rust_agent(
        r##"fn main() {
    println!("agent {}", symbiont::Client::from_env().agent().unwrap());
    println!("written {}", symbiont::fs::write("native.txt", "from rust").unwrap());
    match symbiont::env::get("HOME") {
        Err(symbiont::Error::Denied { rule, .. }) => println!("denied by {}", rule.unwrap_or_default()),
        other => println!("not denied: {other:?}"),
    }
    println!("input {}", symbiont::input().unwrap()["n"]);
}
"##,
    );
    for tier in ["1", "2"] {
        let ws = Ws::new();
        std::fs::copy(&agent, ws.path("agent")).unwrap();
        ws.write(
            "agent.sym",
            "agent native {\n    implementation = [\"agent\"]\n    security = { tier: Tier1, timeout: 30s }\n    policy p {\n        allow: [\"file_system_write\"]\n        deny: env_access(name) if name == \"HOME\"\n    }\n}\n",
        );
        let run = ws.run(&["run", "agent.sym", "--tier", tier, "--input", r#"{"n": 7}"#]);
        assert_eq!(run.code, 0, "tier {tier}: {}\n{}", run.stdout, run.stderr);
        let expected = "agent native\nwritten 9\ndenied by deny: env_access(name) if name == \"HOME\"\ninput 7\n";
        assert_eq!(run.stdout, expected, "tier {tier}: {}", run.stderr);
        assert_eq!(std::fs::read_to_string(ws.path(".symbiont/workspaces/native/native.txt")).unwrap(), "from rust");
        let entries = ws.audit();
        let decisions: Vec<(&str, &str)> = entries
            .iter()
            .filter(|e| e["operation"] == "env_access" || e["operation"] == "file_system_write")
            .map(|e| (e["operation"].as_str().unwrap(), e["decision"].as_str().unwrap()))
            .collect();
        assert_eq!(decisions, [("file_system_write", "allow"), ("env_access", "deny")], "tier {tier}");
        ws.assert_clean(&run);
    }
}

/// Builds `main_rs` into a binary against the SDK crate, offline, as a throw-away package of its own
/// under the target directory (kept between runs, so that serde_json is built once). It resolves
/// with the workspace's lock, so it needs no crate the workspace does not already have. Tests
/// running at once take turns (they share the package), and each gets its own copy of its binary.
pub(crate) fn build_rust_agent(main_rs: &str) -> PathBuf {
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = BUILDING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = symbiont_tests::repo_root();
    let package = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rust-sdk-agent");
    std::fs::create_dir_all(package.join("src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"sdk-agent\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\nsymbiont-sdk = {{ path = {:?} }}\nserde_json = \"1\"\n\n[workspace]\n",
        root.join("sdk/rust")
    );
    std::fs::write(package.join("Cargo.toml"), manifest).unwrap();
    std::fs::copy(root.join("Cargo.lock"), package.join("Cargo.lock")).unwrap();
    std::fs::write(package.join("src/main.rs"), main_rs).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--offline", "--quiet"])
        .current_dir(&package)
        .env("CARGO_TARGET_DIR", package.join("target"))
        .output()
        .unwrap();
    assert!(built.status.success(), "building the Rust agent: {}", String::from_utf8_lossy(&built.stderr));
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(main_rs, &mut hasher);
    let binary = package.join(format!("sdk-agent-{:016x}", std::hash::Hasher::finish(&hasher)));
    std::fs::copy(package.join("target/debug/sdk-agent"), &binary).unwrap();
    binary
}

/// A sandboxed agent and a lightweight one on the same runtime talk over the bus: the sandboxed
/// one through its broker (`symbiont.send`/`receive`), the lightweight one in process; each send
/// and receipt is decided by its agent's policy and audited, and a send the policy denies fails.
#[test]
fn a_sandboxed_agent_and_a_lightweight_one_talk_over_the_bus() {
    if !sandbox_ready("a_sandboxed_agent_and_a_lightweight_one_talk_over_the_bus") {
        return;
    }
    let ws = Ws::new();
    ws.write(
        "asker.py",
        "import symbiont\nprint('sent', symbiont.send('echo', {'question': 6}))\nm = symbiont.receive(20000)\nprint('got', m['from'], m['payload']['answer'])\ntry:\n    symbiont.send('vault', {'x': 1})\nexcept symbiont.PolicyDenied as e:\n    print('denied', e.code)\n",
    );
    ws.write(
        "agent.sym",
        "agent asker {\n    policy p {\n        allow: [\"send_message\", \"receive_message\"]\n        deny: send_message(to) if to == \"vault\"\n    }\n}\nagent echo {\n    policy p { allow: [\"send_message\", \"receive_message\"] }\n}\n",
    );
    let limits = Limits { timeout: Duration::from_secs(60), ..Limits::default() };
    let (report, stdout, locals) = run_beside(&ws, "asker", Tier::Docker, limits, "asker.py", Value::Null, |runtime, universe| {
        let policy = Arc::new(Engine::compile(universe.effective(Some("echo")).unwrap()));
        let echo = LocalAgent {
            name: "echo".into(),
            policy,
            priority: Default::default(),
            timeout: Duration::from_secs(60),
            context: Default::default(),
        };
        vec![runtime.spawn_local(echo, |cx| async move {
            let question = cx.receive(Duration::from_secs(50)).await.map_err(|e| e.to_string())?.ok_or("no question came")?;
            let answer = question.payload["question"].as_i64().unwrap_or(0) * 7;
            cx.send(&question.from, &serde_json::json!({ "answer": answer })).await.map_err(|e| e.to_string())?;
            Ok(())
        })]
    });
    assert_eq!(report.state, State::Completed, "{report:?}\n{stdout}");
    assert_eq!(stdout, "sent 1\ngot echo 42\ndenied denied\n");
    assert_eq!(locals[0].state, State::Completed, "{:?}", locals[0]);
    let entries = ws.audit();
    let decisions: Vec<(String, String, String)> = entries
        .iter()
        .filter(|e| e["operation"] == "send_message" || e["operation"] == "receive_message")
        .map(|e| (e["agent"].as_str().unwrap().into(), e["operation"].as_str().unwrap().into(), e["decision"].as_str().unwrap().into()))
        .collect();
    let expected = [
        ("asker", "send_message", "allow"),
        ("echo", "receive_message", "allow"),
        ("echo", "send_message", "allow"),
        ("asker", "receive_message", "allow"),
        ("asker", "send_message", "deny"),
    ];
    assert_eq!(decisions, expected.map(|(a, o, d)| (a.to_string(), o.to_string(), d.to_string())));
    assert_no_container(&report.run_id);
    ws.assert_clean_dir();
}

/// The warm containers a runtime's pool keeps under `run_root`: each has a slot directory
/// `pool-ID` and is named `symbiont-pool-ID`.
fn warm_containers(run_root: &Path) -> Vec<String> {
    let slots: Vec<String> = std::fs::read_dir(run_root)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().to_string()).filter(|n| n.starts_with("pool-")).collect())
        .unwrap_or_default();
    let mut ids = Vec::new();
    for slot in slots {
        let out = Command::new("docker").args(["inspect", "--format", "{{.Id}}", &format!("symbiont-{slot}")]).output().unwrap();
        if out.status.success() {
            ids.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
    }
    ids
}

fn container_exists(id: &str) -> bool {
    let ps = Command::new("docker").args(["ps", "-aq", "--no-trunc", "--filter", &format!("id={id}")]).output().unwrap();
    !String::from_utf8_lossy(&ps.stdout).trim().is_empty()
}

/// A container's `HostConfig`, its two bind mounts' host directories replaced by their roles.
fn host_config(id: &str) -> Value {
    let out = Command::new("docker").args(["inspect", "--format", "{{json .HostConfig}}", id]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut config: Value = serde_json::from_slice(&out.stdout).unwrap();
    let binds = config["Binds"].as_array().unwrap().iter().map(|b| b.as_str().unwrap().split_once(':').unwrap().1.into()).collect();
    config["Binds"] = Value::Array(binds);
    config
}

/// A runtime with a pre-started pool of one Python container at `tier`: a pooled run completes
/// with its broker decisions audited and its output streamed, uses the warm container (which has
/// exactly a cold one's restrictions) once and removes it, and the pool refills; a warm
/// container found dead falls back to a cold run at the same tier; draining leaves nothing.
fn pooled_runs(tier: Tier) {
    let test = format!("pooled runs {tier}");
    if !sandbox_ready(&test) {
        return;
    }
    let ws = Ws::new();
    // As in a cold container, standard input reads end-of-file (the waiter's line is consumed).
    ws.write("agent.py", &format!("{PYTHON_AGENT}print('stdin', repr(sys.stdin.read()))\n"));
    ws.write(
        "agent.sym",
        "agent worker {\n    capabilities = [\"http_request\"]\n    policy rules {\n        allow: http_request(host) if host == \"127.0.0.1\"\n        deny: [\"file_system_write\"]\n    }\n}\n",
    );
    let sym = std::fs::read_to_string(ws.path("agent.sym")).unwrap();
    let universe = symbiont_policy::load([("agent.sym", sym.as_str())], symbiont_policy::config::Config::default());
    let engine = Arc::new(Engine::compile(universe.effective(Some("worker")).unwrap()));
    std::fs::create_dir_all(ws.path(".symbiont/workspaces/worker")).unwrap();
    let (port, hits) = http_server();
    let limits = Limits { timeout: Duration::from_secs(60), ..Limits::default() };
    let config = AgentConfig {
        id: "worker".into(),
        tier,
        limits,
        policy: engine,
        language: Language::Python,
        code_root: ws.dir.path().to_path_buf(),
        files: vec![PathBuf::from("agent.py")],
        workspace: symbiont_runtime::Workspace::for_agent(ws.dir.path(), "worker").unwrap(),
        input: serde_json::json!({ "port": port }),
        context: serde_json::Map::new(),
        env: Default::default(),
        priority: Default::default(),
    };
    let run_root = ws.tmp.path().join("symbiont-runs");
    let signer = Arc::new(FileSigner::generate().unwrap());
    let (log, _) = Log::open(&ws.path(".symbiont/audit"), signer, LogOptions::default()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut agents = rt.block_on(AgentRuntime::new(Auditor::new(Arc::new(log))));
    agents.set_run_root(run_root.clone());
    let run = |config: AgentConfig| {
        rt.block_on(async {
            let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<symbiont_runtime::Output>();
            let report = agents.run(config, sender, std::future::pending()).await.expect("the run starts");
            let mut stdout = Vec::new();
            while let Some((stream, bytes)) = receiver.recv().await {
                match stream {
                    OutputStream::Stdout => stdout.extend(bytes),
                    OutputStream::Stderr => eprint!("{}", String::from_utf8_lossy(&bytes)),
                }
            }
            (report, String::from_utf8_lossy(&stdout).to_string())
        })
    };

    /// Drains the pool however the test ends, so that a failure leaves no warm container.
    struct Drain<'a>(&'a tokio::runtime::Runtime, &'a AgentRuntime);
    impl Drop for Drain<'_> {
        fn drop(&mut self) {
            self.0.block_on(self.1.drain_pool());
        }
    }
    let _drain = Drain(&rt, &agents);
    let pool = PoolConfig { tier, language: Language::Python, limits, size: 1 };
    rt.block_on(async { agents.set_pool(pool) }).unwrap();
    assert_eq!(rt.block_on(agents.pool_filled()), PoolStatus { warm: 1, error: None }, "{test}");
    let warm = warm_containers(&run_root);
    assert_eq!(warm.len(), 1, "{test}: {warm:?}");

    // The warm container's restrictions are a cold one's, to the letter.
    let cold = rt.block_on(async {
        let backend = DockerSandbox::new(symbiont_runtime::sandbox::docker::connect().await, tier);
        let dir = tempfile::tempdir().unwrap();
        let spec = LaunchSpec {
            run_id: format!("cold-{}", std::process::id()),
            agent: "worker".into(),
            image: image::reference(ImageKind::Python),
            command: vec!["python3".into(), "-c".into(), "pass".into()],
            env: Vec::new(),
            code_dir: dir.path().to_path_buf(),
            broker_dir: dir.path().to_path_buf(),
            limits,
            labels: Vec::new(),
        };
        let mut instance = backend.create(&spec).await.unwrap();
        let config = host_config(instance.id());
        instance.remove().await.unwrap();
        config
    });
    assert_eq!(host_config(&warm[0]), cold, "{test}: a warm container must have exactly a cold one's restrictions");

    // A pooled run: the agent's allowed and denied requests, audited; its output streamed.
    let (report, stdout) = run(config.clone());
    assert_eq!((report.state, report.pooled), (State::Completed, true), "{test}: {report:?}\n{stdout}");
    assert!(stdout.contains("http 200 hello") && stdout.contains("write denied denied"), "{test}: {stdout}");
    assert!(stdout.ends_with("stdin ''\n"), "{test}: {stdout}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let entries = ws.audit();
    let decisions: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["details"]["run_id"] == report.run_id.as_str() || e["operation"] != "lifecycle")
        .map(|e| (e["operation"].as_str().unwrap(), e["decision"].as_str().unwrap()))
        .collect();
    assert_eq!(
        decisions,
        [
            ("lifecycle", "created"),
            ("lifecycle", "starting"),
            ("lifecycle", "running"),
            ("http_request", "allow"),
            ("file_system_write", "deny"),
            ("lifecycle", "completed")
        ],
        "{test}"
    );
    let starting = entries.iter().find(|e| e["decision"] == "starting").unwrap();
    assert_eq!((starting["details"]["sandbox"].as_str(), &starting["details"]["pooled"]), (Some(warm[0].as_str()), &Value::Bool(true)));
    assert!(!container_exists(&warm[0]), "{test}: the warm container serves one run and is removed");
    assert_eq!(rt.block_on(agents.pool_filled()).warm, 1, "{test}: the pool refills");
    let refilled = warm_containers(&run_root);
    assert_eq!(refilled.len(), 1);
    assert_ne!(refilled[0], warm[0]);

    // A warm container found dead: the run goes cold, at the same tier, and succeeds.
    let killed = Command::new("docker").args(["kill", &refilled[0]]).output().unwrap();
    assert!(killed.status.success(), "{}", String::from_utf8_lossy(&killed.stderr));
    let (report, stdout) = run(config);
    assert_eq!((report.state, report.pooled, report.tier), (State::Completed, false, tier), "{test}: {report:?}\n{stdout}");
    assert!(stdout.contains("http 200 hello"), "{test}: {stdout}");
    assert!(!container_exists(&refilled[0]), "{test}: the dead warm container is removed");
    assert_no_container(&report.run_id);
    assert_eq!(rt.block_on(agents.pool_filled()).warm, 1, "{test}: the pool refills after the fallback");
    let last = warm_containers(&run_root);

    // Draining leaves no container and no directory.
    rt.block_on(agents.drain_pool());
    assert_eq!(rt.block_on(agents.pool_filled()).warm, 0);
    assert!(last.iter().all(|id| !container_exists(id)), "{test}: {last:?} left after draining");
    ws.assert_clean_dir();
    ws.audit();
}

#[test]
fn pooled_runs_tier1() {
    pooled_runs(Tier::Docker);
}

#[test]
fn pooled_runs_tier2() {
    pooled_runs(Tier::GVisor);
}

/// The warm containers `symbiont run --warm` left under `ws`'s TMPDIR (their slot directories
/// are there): `(id, running)`.
fn parked_of(ws: &Ws) -> Vec<(String, bool)> {
    let format = "{{.ID}}\t{{.State}}\t{{.Label \"dev.symbiont.pool.slot\"}}";
    let ps =
        Command::new("docker").args(["ps", "-a", "--no-trunc", "--filter", "label=dev.symbiont.pool=cli", "--format", format]).output();
    let root = ws.tmp.path().join("symbiont-runs");
    String::from_utf8_lossy(&ps.unwrap().stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let (id, state, slot) = (fields.next()?, fields.next()?, fields.next()?);
            Path::new(slot).starts_with(&root).then(|| (id.to_string(), state == "running"))
        })
        .collect()
}

/// Waits until every detached `symbiont pool warm` (started by a `--warm` run) has ended.
fn wait_for_refills() {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while symbiont_runtime::parked::refill_running() {
        assert!(std::time::Instant::now() < deadline, "a `symbiont pool warm` still runs after 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the warm containers of `ws` to be exactly `n` running ones, and returns them.
fn wait_for_parked(ws: &Ws, n: usize, test: &str) -> Vec<String> {
    wait_for_refills();
    let parked = parked_of(ws);
    let refill_log = || std::fs::read_to_string(ws.tmp.path().join("symbiont-runs/refill.log")).unwrap_or_default();
    assert!(
        parked.len() == n && parked.iter().all(|(_, running)| *running),
        "{test}: expected {n} warm containers running: {parked:?}; the refills said: {}",
        refill_log()
    );
    parked.into_iter().map(|(id, _)| id).collect()
}

/// The JSON summary (`--summary json`) of a run: the last line of its standard error.
fn summary_of(run: &RunOutput) -> Value {
    serde_json::from_str(run.stderr.lines().last().unwrap_or("")).unwrap_or_else(|_| panic!("a JSON summary:\n{}", run.stderr))
}

/// `symbiont run --warm` between processes: the first run is cold and leaves one warm container
/// (made by a detached process); the next adopts it (pooled, its broker decisions audited) and
/// one more is left; two concurrent runs with one warm container both complete, at most one of
/// them in it; `symbiont pool drain` leaves no container or slot.
fn warm_cli_runs(tier: u8) {
    let test = format!("warm cli runs tier {tier}");
    let ws = Ws::new();
    /// Drains however the test ends, so that a failure leaves no warm container.
    struct Drain<'a>(&'a Ws);
    impl Drop for Drain<'_> {
        fn drop(&mut self) {
            wait_for_refills();
            let _ = self.0.command(&["pool", "drain"]).output();
        }
    }
    let _drain = Drain(&ws);
    ws.write("agent.py", PYTHON_AGENT);
    ws.write(
        "agent.sym",
        &format!(
            "agent worker {{\n    capabilities = [\"http_request\"]\n    implementation = [\"agent.py\"]\n    security = {{ tier: Tier{tier} }}\n    policy rules {{\n        allow: http_request(host) if host == \"127.0.0.1\"\n        deny: [\"file_system_write\"]\n    }}\n}}\n"
        ),
    );
    let (port, hits) = http_server();
    let input = format!(r#"{{"port": {port}}}"#);
    let args = ["run", "agent.sym", "--warm", "--summary", "json", "--input", &input];

    let first = ws.run(&args);
    assert_eq!((first.code, &summary_of(&first)["pooled"]), (0, &Value::Bool(false)), "{test}: {}", first.stderr);
    let warm = wait_for_parked(&ws, 1, &test);

    let second = ws.run(&args);
    let summary = summary_of(&second);
    assert_eq!((second.code, &summary["pooled"]), (0, &Value::Bool(true)), "{test}: {}\n{}", second.stdout, second.stderr);
    assert!(second.stdout.contains("http 200 hello") && second.stdout.contains("write denied denied"), "{test}: {}", second.stdout);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let entries = ws.audit();
    let run_id = summary["run_id"].as_str().unwrap();
    let of_run: Vec<&Value> = entries.iter().filter(|e| e["details"]["run_id"] == run_id).collect();
    let starting = of_run.iter().find(|e| e["decision"] == "starting").expect("a starting entry");
    assert_eq!((starting["details"]["sandbox"].as_str(), &starting["details"]["pooled"]), (Some(warm[0].as_str()), &Value::Bool(true)));
    let http: Vec<&str> = entries_of(&entries, "http_request").iter().map(|e| e["decision"].as_str().unwrap()).collect();
    assert_eq!(http, ["allow", "allow"], "{test}");
    assert!(!container_exists(&warm[0]), "{test}: the adopted container serves one run and is removed");
    assert_no_container(run_id);
    let next = wait_for_parked(&ws, 1, &test);
    assert_ne!(next, warm, "{test}: a new warm container is left for the next run");

    // Two at once with one warm container: at most one adopts it (the claim file), both complete.
    let spawn = |log: &str| {
        let mut command = ws.command(&["run", "agent.sym", "--warm", "--summary", "json", "--input", &input, "--audit-log", log]);
        command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    };
    let (a, b) = (spawn(".symbiont/audit-a"), spawn(".symbiont/audit-b"));
    let mut pooled = 0;
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{test}: {stderr}");
        let summary: Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
        pooled += usize::from(summary["pooled"] == true);
    }
    assert!(pooled <= 1, "{test}: one warm container served {pooled} runs");
    assert!(!container_exists(&next[0]) || pooled == 0, "{test}");
    wait_for_refills();
    assert!(!parked_of(&ws).is_empty(), "{test}: a warm container is left for the next run");

    let drained = ws.command(&["pool", "drain"]).output().unwrap();
    assert!(drained.status.success(), "{test}: {}", String::from_utf8_lossy(&drained.stderr));
    assert_eq!(parked_of(&ws), [], "{test}: drained");
    ws.assert_clean_dir();
}

/// A refill that cannot make its warm container (here dockerd is not at the address) says why
/// in the run root's `refill.log`, 0600, as nobody reads the detached process's standard error.
#[test]
fn a_failed_refill_says_why_in_the_refill_log() {
    let ws = Ws::new();
    let warm = ws
        .command(&["pool", "warm", "--tier", "1", "--language", "python"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(warm.status.code(), Some(2), "dockerd unavailable: {}", String::from_utf8_lossy(&warm.stderr));
    let log_path = ws.tmp.path().join("symbiont-runs/refill.log");
    let log = std::fs::read_to_string(&log_path).expect("a refill log");
    assert!(log.contains("making a warm container (tier 1, python): ") && log.contains("nonexistent"), "{log}");
    assert_eq!(std::fs::metadata(&log_path).unwrap().permissions().mode() & 0o777, 0o600);
}

/// Both tiers in one test: `symbiont pool drain` removes every warm container of the CLI, so two
/// such tests must not run at once.
#[test]
fn warm_cli_runs_tier1_and_tier2() {
    if !sandbox_ready("warm cli runs") {
        return;
    }
    warm_cli_runs(1);
    warm_cli_runs(2);
}
