//! The service's callers: `symbiont run` handing its run over, `symbiont ps`, `symbiont stop` and
//! `symbiont logs`.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
};

use super::protocol::{self, Event, Request, RunInfo, ServiceInfo, Stream};
use crate::{
    compose::{refuse, status, Refusal, RunRequest},
    Exit,
};

/// A connection to the workspace's service, when one is up: `None` when there is no socket or
/// nobody answers on it (a dead service's: the caller runs without one).
fn connect(root: &Path) -> Option<UnixStream> {
    UnixStream::connect(protocol::socket_path(root)).ok()
}

/// Writes the request. A failure is not the end: a service that refuses the caller answers before
/// reading, so its answer is read whatever happened here.
fn write_request(stream: &mut UnixStream, request: &Request) {
    let mut line = serde_json::to_vec(request).expect("requests serialize");
    line.push(b'\n');
    let _ = stream.write_all(&line);
}

fn lost(why: &str) -> Refusal {
    refuse(status::RUNTIME_FAILED, format!("the workspace's service stopped answering: {why}"))
}

/// The service's events, one per line, until it closes the connection.
fn events(stream: &UnixStream) -> impl Iterator<Item = Result<Event, Refusal>> + '_ {
    BufReader::new(stream).lines().map(|line| {
        let line = line.map_err(|e| lost(&e.to_string()))?;
        serde_json::from_str(&line).map_err(|e| lost(&format!("an event that is not JSON ({e})")))
    })
}

fn print_output(stream: Stream, text: Option<String>, bytes: Option<Vec<u8>>) {
    let bytes = text.map(String::into_bytes).or(bytes).unwrap_or_default();
    let _ = match stream {
        Stream::Stdout => std::io::stdout().write_all(&bytes).and_then(|()| std::io::stdout().flush()),
        Stream::Stderr => std::io::stderr().write_all(&bytes),
    };
}

/// Hands `request` to the workspace's service if one is up, printing what `symbiont run` would
/// (the agent's output, then the summary) and returning its exit status; `None` when no service is
/// up. Ctrl-C (and SIGTERM, SIGHUP) stop the run as they stop a run without a service: the service
/// is told by this side of the connection closing, and the run's end is still printed.
pub fn hand_off(root: &Path, request: &RunRequest, json_summary: bool) -> Option<Result<u8, Refusal>> {
    let mut stream = connect(root)?;
    Some(follow_run(&mut stream, request, json_summary))
}

fn follow_run(stream: &mut UnixStream, request: &RunRequest, json_summary: bool) -> Result<u8, Refusal> {
    write_request(stream, &Request::Run { request: request.clone(), json_summary });
    let stopper = stream.try_clone().map_err(|e| lost(&e.to_string()))?;
    stop_on_signal(stopper)?;
    for event in events(stream) {
        match event? {
            Event::Started { .. } | Event::Runs { .. } => {}
            Event::Output { stream, text, bytes } => print_output(stream, text, bytes),
            Event::Ended { summary, status } => {
                let _ = std::io::stderr().write_all(summary.as_bytes());
                return Ok(status);
            }
            Event::Refused { status, message } => return Err(refuse(status, message)),
        }
    }
    Err(lost("it closed the connection before the run ended"))
}

/// On SIGINT, SIGTERM or SIGHUP, closes the writing side of `stream`: the service stops the run
/// (the agent killed, `killed` audited, its container removed) and sends its end, printed as usual.
fn stop_on_signal(stream: UnixStream) -> Result<(), Refusal> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| refuse(status::RUNTIME_FAILED, format!("cannot start the async runtime: {e}")))?;
    let signals = runtime.block_on(async { crate::signals::stop_signals() }).map_err(|m| refuse(status::RUNTIME_FAILED, m))?;
    std::thread::spawn(move || {
        runtime.block_on(signals);
        let _ = stream.shutdown(std::net::Shutdown::Write);
    });
    Ok(())
}

/// The workspace whose service `ps`, `stop` and `logs` talk to: `--workspace DIR`, else the
/// nearest directory with a `symbiont.toml` at or above the current one.
fn root(dir: Option<&Path>) -> Result<PathBuf, String> {
    let cwd = std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    let root = match dir {
        Some(dir) => cwd.join(dir),
        None => {
            let config = crate::walk::find_config(Path::new("."), &cwd);
            config.and_then(|c| cwd.join(c).parent().map(Path::to_path_buf)).unwrap_or(cwd)
        }
    };
    root.canonicalize().map_err(|e| format!("{}: {e}", root.display()))
}

fn ask(dir: Option<&Path>, request: &Request) -> Result<UnixStream, String> {
    let root = root(dir)?;
    let mut stream = connect(&root).ok_or_else(|| format!("no service is up for {} (start one with `symbiont up`)", root.display()))?;
    write_request(&mut stream, request);
    Ok(stream)
}

/// `symbiont ps`: the service and its runs.
pub fn ps(dir: Option<&Path>, json: bool) -> Exit {
    let stream = match ask(dir, &Request::Ps) {
        Ok(stream) => stream,
        Err(message) => return Exit::failure(message),
    };
    let first = events(&stream).next();
    match first {
        Some(Ok(Event::Runs { service, runs })) => {
            let text =
                if json { serde_json::json!({ "service": service, "runs": runs }).to_string() + "\n" } else { ps_table(&service, &runs) };
            let _ = std::io::stdout().write_all(text.as_bytes());
            Exit::Clean
        }
        Some(Ok(Event::Refused { message, .. })) => Exit::failure(message),
        Some(Err(refusal)) => Exit::failure(refusal.message),
        _ => Exit::failure("the service did not answer `ps`"),
    }
}

fn ps_table(service: &ServiceInfo, runs: &[RunInfo]) -> String {
    let mut out = format!(
        "service pid {} for {} (audit log {}); schedules: {}\n",
        service.pid,
        service.workspace.display(),
        service.audit_log.display(),
        if service.schedules.is_empty() { "none".to_string() } else { service.schedules.join(", ") }
    );
    out.push_str(&format!(
        "{:<16}  {:<20}  {:<10}  {:>4}  {:>9}  {:>6}  {}\n",
        "RUN", "AGENT", "STATE", "TIER", "DURATION", "STATUS", "SCHEDULE"
    ));
    for run in runs {
        let status = run.status.map_or("-".to_string(), |s| s.to_string());
        let duration = format!("{:.1}s", run.duration_ms as f64 / 1000.0);
        let schedule = run.schedule.as_deref().unwrap_or("-");
        out.push_str(&format!(
            "{:<16}  {:<20}  {:<10}  {:>4}  {:>9}  {:>6}  {schedule}\n",
            run.run, run.agent, run.state, run.tier, duration, status
        ));
    }
    out
}

/// `symbiont stop RUN`: stops the run and waits for its end (the run's summary on standard error).
pub fn stop(dir: Option<&Path>, run: &str) -> Exit {
    let stream = match ask(dir, &Request::Stop { run: run.to_string() }) {
        Ok(stream) => stream,
        Err(message) => return Exit::failure(message),
    };
    let first = events(&stream).next();
    match first {
        Some(Ok(Event::Ended { summary, .. })) => {
            let _ = std::io::stderr().write_all(summary.as_bytes());
            Exit::Clean
        }
        Some(Ok(Event::Refused { message, .. })) => Exit::failure(message),
        Some(Err(refusal)) => Exit::failure(refusal.message),
        _ => Exit::failure("the service did not answer `stop`"),
    }
}

/// `symbiont logs RUN [--follow]`: the run's output so far (and, following, until it ends).
pub fn logs(dir: Option<&Path>, run: &str, follow: bool) -> Exit {
    let stream = match ask(dir, &Request::Logs { run: run.to_string(), follow }) {
        Ok(stream) => stream,
        Err(message) => return Exit::failure(message),
    };
    for event in events(&stream) {
        match event {
            Ok(Event::Output { stream, text, bytes }) => print_output(stream, text, bytes),
            Ok(Event::Ended { summary, .. }) => {
                let _ = std::io::stderr().write_all(summary.as_bytes());
            }
            Ok(Event::Refused { message, .. }) => return Exit::failure(message),
            Ok(_) => {}
            Err(refusal) => return Exit::failure(refusal.message),
        }
    }
    Exit::Clean
}
