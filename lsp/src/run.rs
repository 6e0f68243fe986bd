//! The editor's hand-off to the runtime: `symbiont.runAgent` runs `symbiont run` for the agent
//! under the code lens, reporting `$/progress` while it runs, streaming its output to the client
//! (`window/logMessage`), and answering with the run's summary and where its audit entries are;
//! `symbiont.verifyAudit` verifies the workspace's audit log with `symbiont audit verify`.
//!
//! Both run the `symbiont` binary (beside this one, or `SYMBIONT_BIN`, or on `PATH`): a run is
//! exactly what `symbiont run` does on the command line (handed to the workspace's service when
//! one is up, `symbiont up`), and a crashing agent or runtime never takes the language server down
//! with it.
//!
//! A run is stopped as Ctrl-C stops `symbiont run`, never killed first: SIGINT, after which it
//! kills its agent, audits `killed`, removes its container and staging directory and exits. That
//! happens when its request is cancelled (`$/cancelRequest`), at `shutdown`, and when the server
//! exits while a run is going ([`stop_all`]); the server waits for it, at most [`STOP_GRACE`], and
//! only then kills it (SIGKILL: what it leaves, the next `symbiont run` removes).

use std::{
    path::{Path, PathBuf},
    process::{ExitStatus, Stdio},
    sync::LazyLock,
    time::Duration,
};

use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Child,
    sync::watch,
};
use tower_lsp_server::{
    jsonrpc::Result,
    ls_types::{self as lsp, MessageType},
    Client,
};

use crate::convert::request_failed;

pub const RUN_AGENT: &str = "symbiont.runAgent";
pub const VERIFY_AUDIT: &str = "symbiont.verifyAudit";

/// The `symbiont` command line this server hands runs to.
pub fn symbiont_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SYMBIONT_BIN") {
        return PathBuf::from(path);
    }
    let sibling = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("symbiont")));
    sibling.filter(|path| path.is_file()).unwrap_or_else(|| PathBuf::from("symbiont"))
}

fn file_uri(path: &Path) -> String {
    lsp::Uri::from_file_path(path).map(|u| u.as_str().to_string()).unwrap_or_else(|| format!("file://{}", path.display()))
}

/// How long a run may take to stop after SIGINT (killing its agent, auditing, removing its
/// container: about a second) before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// The runs this server started that have not ended, and whether the server is stopping them.
#[derive(Default)]
struct Runs {
    live: usize,
    stopping: bool,
}

static RUNS: LazyLock<watch::Sender<Runs>> = LazyLock::new(|| watch::Sender::new(Runs::default()));

/// A `symbiont run` this server started. Dropped before it ended (its request cancelled, the
/// server stopping), it is stopped in the background ([`stop`]) and counted until it has ended.
struct Running {
    child: Option<Child>,
}

impl Running {
    fn new(child: Child) -> Running {
        RUNS.send_modify(|runs| runs.live += 1);
        Running { child: Some(child) }
    }

    async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.as_mut().expect("waited for once").wait().await?;
        self.child = None;
        Ok(status)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    stop(child).await;
                    RUNS.send_modify(|runs| runs.live -= 1);
                });
                return;
            }
            // No runtime left to wait in (never while the server runs): the last resort.
            let mut child = child;
            let _ = child.start_kill();
        }
        RUNS.send_modify(|runs| runs.live -= 1);
    }
}

/// Stops a run with SIGINT and waits for it to end, at most [`STOP_GRACE`]; then kills it.
async fn stop(mut child: Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) only takes integers. `Child::id` is `None` once the child has been
        // reaped, and only this `Child` reaps it, so `pid` still names our child, not a process
        // that reused its pid.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
    }
    if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
        crate::log(format!(
            "`symbiont run` did not stop within {} s of SIGINT: killed (the next run removes what it left)",
            STOP_GRACE.as_secs()
        ));
        let _ = child.kill().await;
    }
}

/// Stops every run this server started (SIGINT) and waits until all have ended, at most a little
/// more than [`STOP_GRACE`]; no run starts after it. At `shutdown`, and when the server exits.
pub async fn stop_all() {
    let mut runs = RUNS.subscribe();
    RUNS.send_modify(|runs| runs.stopping = true);
    let _ = tokio::time::timeout(STOP_GRACE + Duration::from_secs(5), runs.wait_for(|runs| runs.live == 0)).await;
}

/// Resolves once the server is stopping its runs.
async fn stopping(runs: &mut watch::Receiver<Runs>) {
    let _ = runs.wait_for(|runs| runs.stopping).await;
}

/// A run asked for by `symbiont.runAgent`.
pub struct RunRequest {
    /// The agent's `.sym` file.
    pub file: PathBuf,
    pub agent: String,
    /// The run's input (`--input`), if given.
    pub input: Option<Value>,
    /// Where `symbiont` runs: the workspace root. Its `symbiont.toml` gives the run's context.
    pub root: PathBuf,
}

/// Runs the agent of a request. The run's context is the workspace's (`[run]` in
/// `symbiont.toml`): `symbiont run` reads it when given no `--context`.
pub async fn run_agent(client: &Client, request: RunRequest) -> Result<Option<Value>> {
    let RunRequest { file, agent, input, root } = request;
    let mut stop_requested = RUNS.subscribe();
    if stop_requested.borrow().stopping {
        return Err(request_failed("the language server is shutting down: no run starts"));
    }
    let token = lsp::ProgressToken::String(format!("symbiont.runAgent/{agent}/{}", std::process::id() ^ rand_u32()));
    // Clients that cannot show progress answer with an error; the run goes on regardless.
    let _ = client.create_work_done_progress(token.clone()).await;
    let progress = client.progress(token, format!("Running agent {agent}")).with_message("starting the sandbox").begin().await;
    let mut command = tokio::process::Command::new(symbiont_binary());
    command.arg("run").arg(&file).args(["--agent", &agent, "--summary", "json"]);
    if let Some(input) = &input {
        command.arg("--input").arg(input.to_string());
    }
    let mut child = command
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| request_failed(format!("cannot start `{}`: {e}", symbiont_binary().display())))?;
    let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut stderr = BufReader::new(child.stderr.take().expect("piped")).lines();
    let mut child = Running::new(child);
    let (mut summary, mut errors) = (None, Vec::new());
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        tokio::select! {
            line = stdout.next_line(), if out_open => match line {
                Ok(Some(line)) => {
                    client.log_message(MessageType::INFO, format!("[{agent}] {line}")).await;
                    progress.report(line).await;
                }
                _ => out_open = false,
            },
            line = stderr.next_line(), if err_open => match line {
                Ok(Some(line)) => match serde_json::from_str::<Value>(&line) {
                    Ok(value) if value.get("run_id").is_some() => summary = Some(value),
                    _ => {
                        client.log_message(MessageType::WARNING, format!("[{agent}] {line}")).await;
                        errors.push(line);
                    }
                },
                _ => err_open = false,
            },
            () = stopping(&mut stop_requested) => {
                // Dropping `child` stops the run (SIGINT) and `stop_all` waits for it.
                progress.finish_with_message("stopped: the language server is shutting down".to_string()).await;
                return Err(request_failed(format!("agent {agent}: stopped, the language server is shutting down")));
            }
        }
    }
    let status = child.wait().await.map_err(|e| request_failed(format!("waiting for `symbiont run`: {e}")))?;
    let Some(mut summary) = summary else {
        // Refused before running (no sandbox, policy refusal, workspace error): say why.
        let why = errors
            .iter()
            .rev()
            .find(|l| l.starts_with("error: "))
            .cloned()
            .unwrap_or_else(|| format!("`symbiont run` exited with {status}"));
        progress.finish_with_message(why.clone()).await;
        client.show_message(MessageType::ERROR, format!("Agent {agent} did not run: {why}")).await;
        return Err(request_failed(format!("agent {agent} did not run: {why}")));
    };
    let state = summary["state"].as_str().unwrap_or("unknown").replace('_', " ");
    let exit = summary["exit_code"].as_i64().map_or(String::new(), |c| format!(" (exit {c})"));
    let log = PathBuf::from(summary["audit_log"].as_str().unwrap_or_default());
    let seqs = (summary["audit_seqs"][0].as_u64().unwrap_or(0), summary["audit_seqs"][1].as_u64().unwrap_or(0));
    let message = format!(
        "Agent {agent} {state}{exit} at Tier{} in {} ms; audit entries {}–{}: {}",
        summary["tier"],
        summary["duration_ms"],
        seqs.0,
        seqs.1,
        file_uri(&log)
    );
    progress.finish_with_message(format!("{state}{exit}")).await;
    let kind = if summary["state"] == "completed" { MessageType::INFO } else { MessageType::ERROR };
    client.show_message(kind, &message).await;
    summary["audit_uri"] = json!(file_uri(&log));
    summary["exit_status"] = json!(status.code());
    Ok(Some(summary))
}

/// Verifies the audit log in `root/.symbiont/audit` (or the log named).
pub async fn verify_audit(client: &Client, log: PathBuf) -> Result<Option<Value>> {
    let output = tokio::process::Command::new(symbiont_binary())
        .args(["audit", "verify"])
        .arg(&log)
        .args(["--format", "json"])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| request_failed(format!("cannot start `{}`: {e}", symbiont_binary().display())))?;
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| json!({ "valid": false, "error": String::from_utf8_lossy(&output.stderr).trim().to_string() }));
    let valid = output.status.code() == Some(0);
    let text = if valid {
        format!("The audit log {} verifies: {} entries", log.display(), report["entries"])
    } else {
        let why = report.get("first_bad").filter(|f| !f.is_null()).or(report.get("error")).map(|f| f.to_string()).unwrap_or_default();
        format!("The audit log {} does NOT verify: {why}", log.display())
    };
    client.show_message(if valid { MessageType::INFO } else { MessageType::ERROR }, &text).await;
    Ok(Some(json!({ "valid": valid, "log": file_uri(&log), "report": report })))
}

fn rand_u32() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
}
