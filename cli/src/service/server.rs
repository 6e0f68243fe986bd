//! `symbiont up`: the workspace's service. One [`AgentRuntime`] (one bus, one warm pool) and the
//! workspace's audit log, held open, for every run handed to it; its `schedule` blocks driven; its
//! API on the workspace's socket (`protocol.rs`), for the user who started it only.

use std::{
    collections::HashMap,
    io::Write,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use symbiont_audit::Log;
use symbiont_runtime::{
    pool::PoolConfig,
    schedule::{self, Schedule, ScheduledRun, SystemClock},
    AgentRuntime, Auditor, OutputStream,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::watch,
    task::JoinHandle,
};

use super::protocol::{self, Event, Request, RunInfo, ServiceInfo, Stream};
use crate::{
    compose::{self, refuse, status, Composed, Ending, Refusal, RunRequest, Workspace},
    Exit,
};

/// What `symbiont up` was asked.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub dir: Option<PathBuf>,
    /// Warm containers kept ready for each (tier, language, limits) of the workspace's agents.
    pub warm: usize,
    pub lock_wait: Duration,
    pub key: Option<String>,
}

/// Output kept per run for `logs`; older chunks are dropped first.
const OUTPUT_KEPT_BYTES: usize = 8 << 20;
/// Ended runs `ps` and `logs` still know.
const ENDED_KEPT: usize = 200;
/// How long a stopped run may take to end (killing the agent, auditing, removing its container).
const STOP_GRACE: Duration = Duration::from_secs(30);

fn say(line: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "symbiont up: {line}");
}

pub fn up(options: &UpOptions) -> Exit {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return Exit::failure(format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(serve(options)) {
        Ok(()) => Exit::Clean,
        Err(Refusal { status, message }) => {
            crate::print_error(message);
            Exit::Code(status)
        }
    }
}

/// A piece of a run's output, as its sandbox produced it.
type Chunk = (Stream, Vec<u8>);

/// One run the service knows: live, or among the last ended.
struct RunRecord {
    id: String,
    agent: String,
    schedule: Option<String>,
    tier: u8,
    started: SystemTime,
    clock: Instant,
    /// The agent's retention (the merged `retention_period`): its output is forgotten that long
    /// after the run ended, as `symbiont gc` deletes its files.
    retention: Option<Duration>,
    inner: Mutex<RecordState>,
    /// Bumped at each change (output, state), for followers.
    changed: watch::Sender<u64>,
    stop: watch::Sender<bool>,
}

#[derive(Default)]
struct RecordState {
    /// Output chunks; `chunks[0]` is chunk number `dropped` of the run.
    chunks: Vec<Chunk>,
    dropped: usize,
    bytes: usize,
    state: String,
    ending: Option<Ending>,
    duration: Option<Duration>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these leaves consistent data: every update is one assignment.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl RunRecord {
    fn update(&self, f: impl FnOnce(&mut RecordState)) {
        f(&mut lock(&self.inner));
        self.changed.send_modify(|n| *n += 1);
    }

    fn push(&self, stream: Stream, bytes: Vec<u8>) {
        self.update(|s| {
            s.bytes += bytes.len();
            s.chunks.push((stream, bytes));
            while s.bytes > OUTPUT_KEPT_BYTES && s.chunks.len() > 1 {
                let (_, first) = s.chunks.remove(0);
                s.bytes -= first.len();
                s.dropped += 1;
            }
        });
    }

    fn end(&self, ending: Ending, state: &str) {
        self.update(|s| {
            s.state = state.to_string();
            s.duration = Some(self.clock.elapsed());
            s.ending = Some(ending);
        });
    }

    /// Ended longer ago than its agent's retention.
    fn expired(&self) -> bool {
        let s = lock(&self.inner);
        match (self.retention, s.ending.is_some(), s.duration) {
            (Some(retention), true, Some(duration)) => self.clock.elapsed() > duration + retention,
            _ => false,
        }
    }

    fn ending(&self) -> Option<Ending> {
        lock(&self.inner).ending.clone()
    }

    fn info(&self) -> RunInfo {
        let s = lock(&self.inner);
        RunInfo {
            run: self.id.clone(),
            agent: self.agent.clone(),
            schedule: self.schedule.clone(),
            state: s.state.clone(),
            tier: self.tier,
            started: self.started.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            duration_ms: s.duration.unwrap_or_else(|| self.clock.elapsed()).as_millis() as u64,
            status: s.ending.as_ref().map(|e| e.status),
        }
    }

    /// The chunks from number `next` on (a notice first if some were dropped), and the ending.
    fn since(&self, next: usize) -> (Vec<Chunk>, usize, Option<Ending>) {
        let s = lock(&self.inner);
        let mut out = Vec::new();
        if next < s.dropped {
            let notice = format!(
                "symbiont: ({} earlier output chunks of this run were dropped: the service keeps the last 8 MiB)\n",
                s.dropped - next
            );
            out.push((Stream::Stderr, notice.into_bytes()));
        }
        let from = next.saturating_sub(s.dropped);
        out.extend(s.chunks[from.min(s.chunks.len())..].iter().cloned());
        (out, s.dropped + s.chunks.len(), s.ending.clone())
    }
}

struct Service {
    root: PathBuf,
    log_dir: PathBuf,
    key: PathBuf,
    runtime: AgentRuntime,
    /// Entries in the log when the service opened it: the base of the runs' entry numbers.
    base_seq: u64,
    runs: Mutex<Vec<Arc<RunRecord>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// One run per agent at a time: an agent is one member of the bus.
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    stopping: watch::Sender<bool>,
    info: ServiceInfo,
}

impl Service {
    fn log(&self) -> &Arc<Log> {
        self.runtime.auditor().log()
    }

    /// Forgets the ended runs whose agent's retention has passed since: their output is gone
    /// from memory (`ps` and `logs` no longer know them).
    fn forget_expired(&self) {
        lock(&self.runs).retain(|r| !r.expired());
    }

    fn find(&self, run: &str) -> Option<Arc<RunRecord>> {
        lock(&self.runs).iter().find(|r| r.id == run).cloned()
    }

    fn register(&self, record: Arc<RunRecord>) {
        let mut runs = lock(&self.runs);
        runs.push(record);
        let ended = runs.iter().filter(|r| r.ending().is_some()).count();
        if ended > ENDED_KEPT {
            let mut surplus = ended - ENDED_KEPT;
            runs.retain(|r| {
                let drop = surplus > 0 && r.ending().is_some();
                surplus -= usize::from(drop);
                !drop
            });
        }
    }

    /// Registers a composed run and starts it: it waits for its agent's turn, records its risk
    /// assessment, runs, and records how it ended. `None` once the service is stopping.
    fn start(self: &Arc<Self>, composed: Composed, schedule: Option<String>, json_summary: bool) -> Option<Arc<RunRecord>> {
        // Checked and registered under the tasks' lock, which `drain` takes after setting
        // `stopping`: a run composed while the service began to stop is either refused here or
        // registered in time for the drain to stop it and wait for its end.
        let mut tasks = lock(&self.tasks);
        if *self.stopping.borrow() {
            return None;
        }
        let (changed, _) = watch::channel(0);
        let (stop, _) = watch::channel(false);
        let record = Arc::new(RunRecord {
            id: AgentRuntime::new_run_id(),
            agent: composed.config.id.clone(),
            schedule,
            tier: composed.config.tier.number(),
            started: SystemTime::now(),
            clock: Instant::now(),
            retention: composed.config.policy.effective().retention().ok().flatten(),
            inner: Mutex::new(RecordState { state: "waiting".into(), ..RecordState::default() }),
            changed,
            stop,
        });
        self.register(record.clone());
        let task = tokio::spawn(self.clone().execute(record.clone(), composed, json_summary));
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
        Some(record)
    }

    async fn execute(self: Arc<Self>, record: Arc<RunRecord>, composed: Composed, json_summary: bool) {
        let turn = lock(&self.turns).entry(record.agent.clone()).or_default().clone();
        let _turn = match turn.clone().try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => {
                let line =
                    format!("symbiont: waiting for the running run of agent `{}` to end (an agent's runs take turns)\n", record.agent);
                record.push(Stream::Stderr, line.into_bytes());
                let mut stop = record.stop.subscribe();
                tokio::select! {
                    guard = turn.lock_owned() => guard,
                    _ = stop.wait_for(|s| *s) => {
                        let ending = Ending { summary: String::new(), status: status::KILLED };
                        record.push(Stream::Stderr, b"symbiont: stopped before it started\n".to_vec());
                        return record.end(ending, "killed");
                    }
                }
            }
        };
        record.update(|s| s.state = "running".into());
        let first = self.log().commit_stats().entries;
        if let Err(refusal) = compose::record_risk(self.runtime.auditor(), &composed).await {
            return record.end(Ending { summary: format!("error: {}\n", refusal.message), status: refusal.status }, "refused");
        }
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<symbiont_runtime::Output>();
        let forward = {
            let record = record.clone();
            tokio::spawn(async move {
                while let Some((stream, bytes)) = receiver.recv().await {
                    let stream = if stream == OutputStream::Stdout { Stream::Stdout } else { Stream::Stderr };
                    record.push(stream, bytes);
                }
            })
        };
        let mut stop = record.stop.subscribe();
        let cancel = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let outcome = self.runtime.run_as(composed.config, record.id.clone(), record.schedule.clone(), sender, cancel).await;
        let _ = forward.await;
        let last = (self.base_seq + self.log().commit_stats().entries).saturating_sub(1);
        let state = outcome.as_ref().map_or("failed".to_string(), |r| r.state.as_str().to_string());
        let ending = Ending::of(outcome, json_summary, &self.log_dir, (self.base_seq + first, last))
            .unwrap_or_else(|Refusal { status, message }| Ending { summary: format!("error: {message}\n"), status });
        say(format!("run {} of agent `{}` ended: {state}", record.id, record.agent));
        record.end(ending, &state);
    }

    /// Composes a run of the workspace as it is on disk now.
    async fn compose(&self, request: RunRequest) -> Result<Composed, Refusal> {
        let root = self.root.clone();
        let (log_dir, key) = (self.log_dir.clone(), self.key.clone());
        let composed = tokio::task::spawn_blocking(move || {
            let workspace = Workspace::load(&root)?;
            let composed = compose::compose(&request, &workspace)?;
            compose::check_log_outside(&composed.config, &log_dir, &key)?;
            Ok(composed)
        });
        composed.await.unwrap_or_else(|e| Err(refuse(status::RUNTIME_FAILED, format!("composing the run: {e}"))))
    }

    /// One scheduled run, to its end.
    async fn run_scheduled(self: Arc<Self>, file: PathBuf, tick: ScheduledRun) {
        // The variables `pass_env` names come from the service's environment for a scheduled run.
        let request = RunRequest { passed_env: compose::passed_env(&self.root), ..RunRequest::for_agent(&file, &tick.agent) };
        let reason = match self.compose(request).await {
            Ok(composed) => match self.start(composed, Some(tick.schedule.clone()), false) {
                Some(record) => {
                    say(format!("schedule {}: run {} of agent `{}` started", tick.schedule, record.id, tick.agent));
                    let mut changed = record.changed.subscribe();
                    let _ = changed.wait_for(|_| record.ending().is_some()).await;
                    return;
                }
                None => "the service is stopping".to_string(),
            },
            Err(refusal) => refusal.message,
        };
        // Audited as well as said: the log has the tick's `fired` entry, and no run of it.
        say(format!("schedule {}: the run of agent `{}` was refused: {reason}", tick.schedule, tick.agent));
        let refused = schedule::Event::Refused { schedule: tick.schedule, agent: tick.agent, tick: tick.tick, reason };
        if let Err(e) = refused.audit(self.runtime.auditor()).await {
            say(format!("auditing a schedule event: {e}"));
        }
    }
}

/// The service, from start to drained.
async fn serve(options: &UpOptions) -> Result<(), Refusal> {
    let usage = |m: String| refuse(status::USAGE, m);
    let cwd = std::env::current_dir().map_err(|e| usage(format!("cannot read the current directory: {e}")))?;
    let dir = cwd.join(options.dir.as_deref().unwrap_or(Path::new(".")));
    let root = dir.canonicalize().map_err(|e| usage(format!("{}: {e}", dir.display())))?;
    let workspace = tokio::task::block_in_place(|| Workspace::load(&root))?;
    let socket = protocol::socket_path(&root);
    if UnixStream::connect(&socket).await.is_ok() {
        return Err(usage(format!("a service is already up for {} (its socket: {})", root.display(), socket.display())));
    }
    let state_dir = root.join(".symbiont");
    let log_dir = compose::default_log_dir(&root)?;
    let signer = compose::signer(options.key.as_deref(), &state_dir).map_err(|m| refuse(status::RUNTIME_FAILED, m))?;
    let (log, opened) = tokio::task::block_in_place(|| compose::open_log(&log_dir, signer, options.lock_wait))?;
    // Holding the log's lock, this is the workspace's one service: a socket left is a dead one's.
    let listener = bind(&socket).map_err(|m| refuse(status::RUNTIME_FAILED, m))?;
    let owner = std::fs::metadata(&socket).map_err(|e| refuse(status::RUNTIME_FAILED, format!("{}: {e}", socket.display())))?.uid();

    let runtime = AgentRuntime::new(Auditor::new(Arc::new(log))).await;
    clean_up_after_crash(&runtime).await;
    let (stopping, _) = watch::channel(false);
    let schedule_names = workspace.schedules.iter().map(|(_, s)| s.name.clone()).collect();
    let info = ServiceInfo {
        pid: std::process::id(),
        workspace: root.clone(),
        audit_log: log_dir.clone(),
        started: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        schedules: schedule_names,
    };
    let key = options.key.as_deref().map_or_else(|| state_dir.join("audit.key"), PathBuf::from);
    let service = Arc::new(Service {
        root: root.clone(),
        log_dir,
        key,
        runtime,
        base_seq: opened.entries,
        runs: Mutex::default(),
        tasks: Mutex::default(),
        turns: Mutex::default(),
        stopping,
        info,
    });
    fill_pools(&service, &workspace, options.warm);
    let schedules = drive_schedules(&service, &workspace);
    // Outputs whose retention has ended are deleted now and every hour (`symbiont gc`).
    let sweep = crate::gc::sweep(root.clone(), |line| say(line));
    let forget = {
        let service = service.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                service.forget_expired();
            }
        })
    };
    say(format!(
        "serving {} (pid {}) on {}; audit log {}; {} schedule{}; Ctrl-C or SIGTERM stops it",
        root.display(),
        std::process::id(),
        socket.display(),
        service.log_dir.display(),
        workspace.schedules.len(),
        if workspace.schedules.len() == 1 { "" } else { "s" }
    ));

    let signal = stop_signal().map_err(|m| refuse(status::RUNTIME_FAILED, m))?;
    tokio::pin!(signal);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            name = &mut signal => { say(format!("{name}: stopping the runs and draining")); break; }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => { connections.spawn(connection(service.clone(), stream, owner)); }
                Err(e) => say(format!("accepting a connection: {e}")),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    sweep.abort();
    forget.abort();
    let _ = forget.await;
    drain(service, schedules, connections, &socket).await;
    Ok(())
}

/// Binds the socket at `path` (mode 0600) in place of whatever a dead service left there: bound
/// under a temporary name, restricted, then renamed, so it is never reachable with wider rights.
fn bind(path: &Path) -> Result<UnixListener, String> {
    let temporary = path.with_extension(format!("{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let listener = UnixListener::bind(&temporary).map_err(|e| format!("binding {}: {e}", temporary.display()))?;
    let restricted =
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600)).and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = restricted {
        let _ = std::fs::remove_file(&temporary);
        return Err(format!("making the socket {}: {e}", path.display()));
    }
    Ok(listener)
}

/// What a killed service (or a killed `symbiont run`) of this log left: containers, warm
/// containers and staging directories removed, their runs audited `failed`.
async fn clean_up_after_crash(runtime: &AgentRuntime) {
    let by = format!("the service (pid {}) at its start", std::process::id());
    match runtime.reap_leftovers(&by).await {
        Ok(reaped) => reaped.iter().for_each(say),
        Err(e) => say(format!("cannot look for what a killed runtime left: {e}")),
    }
    // Holding the log's lock, every run of it without a final entry is lost (one in a warm
    // container has no container of its own for the reaping above to find).
    match symbiont_runtime::leftovers::close_unfinished(runtime.auditor(), &by).await {
        Ok(closed) => closed.iter().for_each(say),
        Err(e) => say(format!("cannot close the runs a killed runtime lost: {e}")),
    }
}

/// Warm containers for each (tier, language, limits) of the workspace's agents.
fn fill_pools(service: &Service, workspace: &Workspace, size: usize) {
    if size == 0 {
        return;
    }
    let mut keys: Vec<PoolConfig> = Vec::new();
    for agent in workspace.universe.agents() {
        let request = RunRequest::for_agent(Path::new(&*agent.loc.file), &agent.name);
        let Ok(composed) = compose::compose(&request, workspace) else { continue };
        let c = &composed.config;
        let config = PoolConfig { tier: c.tier, language: c.language, limits: c.limits, size };
        if !keys.iter().any(|k| k.tier == config.tier && k.language == config.language && k.limits == config.limits) {
            keys.push(config);
        }
    }
    for config in keys {
        let what = format!("{} warm {} container(s) at {}", config.size, config.language.name(), config.tier);
        match service.runtime.set_pool(config) {
            Ok(()) => say(format!("keeping {what}")),
            Err(e) => say(format!("cannot keep {what}: {e}")),
        }
    }
}

/// The schedules' drivers, and the task that audits their events: it ends once the drivers and
/// the runs they started have ended (each holds a sender of the events).
struct Schedules {
    drivers: Vec<JoinHandle<()>>,
    auditing: JoinHandle<()>,
}

/// Starts a driver per `schedule` block; their events are audited and said.
fn drive_schedules(service: &Arc<Service>, workspace: &Workspace) -> Schedules {
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel::<schedule::Event>();
    let mut drivers = Vec::new();
    for (file, decl) in &workspace.schedules {
        // Workspace::load refused what SYM0110 reports; this only fails on what it cannot see.
        let schedule = match Schedule::from_decl(decl) {
            Ok(schedule) => schedule,
            Err(e) => {
                say(e);
                continue;
            }
        };
        let last = schedule::last_tick(&service.log_dir, &schedule.name).unwrap_or_else(|e| {
            say(format!("schedule {}: reading its last tick from the audit log: {e}", schedule.name));
            None
        });
        let (service, file) = (service.clone(), file.clone());
        let launch: schedule::Launch = Arc::new(move |tick| Box::pin(service.clone().run_scheduled(file.clone(), tick)));
        drivers.push(schedule::spawn(schedule, Arc::new(SystemClock), last, launch, events.clone()));
    }
    let auditor = service.runtime.auditor().clone();
    let auditing = tokio::spawn(async move {
        while let Some(event) = received.recv().await {
            if let schedule::Event::Skipped { schedule, agent, .. } = &event {
                say(format!("schedule {schedule}: tick skipped, the previous run of agent `{agent}` is still going"));
            }
            if let schedule::Event::Missed { schedule, count, .. } = &event {
                say(format!("schedule {schedule}: {count} tick(s) passed undriven (no service up, the machine asleep); not caught up"));
            }
            if let Err(e) = event.audit(&auditor).await {
                say(format!("auditing a schedule event: {e}"));
            }
        }
    });
    Schedules { drivers, auditing }
}

/// Stops every run (each gets its final lifecycle entry), removes warm containers, stops the
/// schedules, and closes the audit log (its final checkpoint) and the socket.
async fn drain(service: Arc<Service>, schedules: Schedules, mut connections: tokio::task::JoinSet<()>, socket: &Path) {
    service.stopping.send_replace(true);
    for driver in &schedules.drivers {
        driver.abort();
    }
    // The tasks first, then the runs: `start` registers both under the tasks' lock.
    let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&service.tasks));
    let runs: Vec<Arc<RunRecord>> = lock(&service.runs).clone();
    for run in &runs {
        run.stop.send_replace(true);
    }
    let stopped = tasks.iter().filter(|t| !t.is_finished()).count();
    if tokio::time::timeout(STOP_GRACE, futures_join_all(tasks)).await.is_err() {
        say("some runs did not end within 30 s; their containers are left to the next start");
    }
    // Connections still streaming a run see its end; give them a moment to pass it on.
    let _ = tokio::time::timeout(Duration::from_secs(2), async { while connections.join_next().await.is_some() {} }).await;
    connections.abort_all();
    service.runtime.drain_pool().await;
    for driver in schedules.drivers {
        let _ = driver.await;
    }
    // The events of the ticks before the stop are audited (a `fired` one names a run already in
    // the log) unless a run outlived the grace above.
    let mut auditing = schedules.auditing;
    if tokio::time::timeout(Duration::from_secs(5), &mut auditing).await.is_err() {
        auditing.abort();
        let _ = auditing.await;
    }
    let _ = std::fs::remove_file(socket);
    let Ok(service) = Arc::try_unwrap(service) else {
        say("the audit log is still in use; it is closed when the process exits");
        return;
    };
    let entries = service.base_seq + service.log().commit_stats().entries;
    drop(service);
    say(format!("stopped: {stopped} run(s) stopped, warm containers removed, audit log closed after entry {}", entries.saturating_sub(1)));
}

async fn futures_join_all(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

/// Resolves at the first SIGTERM, SIGINT or SIGHUP, with its name.
fn stop_signal() -> Result<impl std::future::Future<Output = &'static str>, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut streams = Vec::new();
    for (name, kind) in [("SIGTERM", SignalKind::terminate()), ("SIGINT", SignalKind::interrupt()), ("SIGHUP", SignalKind::hangup())] {
        streams.push((name, signal(kind).map_err(|e| format!("cannot handle {name}: {e}"))?));
    }
    Ok(async move {
        std::future::poll_fn(|cx| {
            for (name, stream) in &mut streams {
                if stream.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(*name);
                }
            }
            std::task::Poll::Pending
        })
        .await
    })
}

/// Serves one connection: its caller checked, its request read, answered.
async fn connection(service: Arc<Service>, stream: UnixStream, owner: u32) {
    let (reader, mut writer) = stream.into_split();
    let caller = writer.as_ref().peer_cred().map(|c| c.uid());
    if caller.as_ref().ok() != Some(&owner) {
        let message = format!("refused: the service serves only the user who started it (uid {owner}); this caller is {caller:?}");
        let _ = send(&mut writer, &Event::Refused { status: status::REFUSED, message }).await;
        return;
    }
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    let read = (&mut reader).take(protocol::MAX_REQUEST_BYTES as u64).read_until(b'\n', &mut line).await;
    let request = match read.map_err(|e| e.to_string()).and_then(|_| serde_json::from_slice::<Request>(&line).map_err(|e| e.to_string())) {
        Ok(request) => request,
        Err(e) => {
            let message = format!("a request is one JSON object on one line (docs/runtime.md, \"The service's API\"): {e}");
            let _ = send(&mut writer, &Event::Refused { status: status::USAGE, message }).await;
            return;
        }
    };
    let _ = match request {
        Request::Ps => {
            let runs = lock(&service.runs).iter().map(|r| r.info()).collect();
            send(&mut writer, &Event::Runs { service: service.info.clone(), runs }).await
        }
        Request::Run { request, json_summary } => run(&service, request, json_summary, reader, &mut writer).await,
        Request::Logs { run, follow } => match service.find(&run) {
            Some(record) => stream_run(&record, &mut writer, follow, None::<&mut BufReader<tokio::net::unix::OwnedReadHalf>>).await,
            None => send(&mut writer, &no_run(&run)).await,
        },
        Request::Stop { run } => stop(&service, &run, &mut writer).await,
    };
}

fn no_run(run: &str) -> Event {
    Event::Refused { status: status::USAGE, message: format!("no run `{run}` in this service (`symbiont ps` lists them)") }
}

async fn send(writer: &mut (impl AsyncWriteExt + Unpin), event: &Event) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(event).expect("events serialize");
    line.push(b'\n');
    writer.write_all(&line).await
}

async fn run(
    service: &Arc<Service>,
    request: RunRequest,
    json_summary: bool,
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: &mut tokio::net::unix::OwnedWriteHalf,
) -> std::io::Result<()> {
    let stopping = || Event::Refused { status: status::RUNTIME_FAILED, message: "the workspace's service is stopping".into() };
    if *service.stopping.borrow() {
        return send(writer, &stopping()).await;
    }
    let composed = match service.compose(request).await {
        Ok(composed) => composed,
        Err(Refusal { status, message }) => return send(writer, &Event::Refused { status, message }).await,
    };
    let Some(record) = service.start(composed, None, json_summary) else { return send(writer, &stopping()).await };
    say(format!("run {} of agent `{}` started", record.id, record.agent));
    send(writer, &Event::Started { run: record.id.clone() }).await?;
    let mut reader = reader;
    stream_run(&record, writer, true, Some(&mut reader)).await
}

/// Sends `record`'s output from its start, and (with `follow`) what comes until it ends, then its
/// ending. With `owner`, the connection owns the run: its closing stops the run.
async fn stream_run<R: AsyncRead + Unpin>(
    record: &RunRecord,
    writer: &mut tokio::net::unix::OwnedWriteHalf,
    follow: bool,
    mut owner: Option<&mut R>,
) -> std::io::Result<()> {
    let mut changed = record.changed.subscribe();
    let mut next = 0;
    loop {
        let (chunks, upto, ending) = record.since(next);
        next = upto;
        for (stream, bytes) in chunks {
            if let Err(e) = send(writer, &Event::output(stream, &bytes)).await {
                if owner.is_some() {
                    record.stop.send_replace(true);
                }
                return Err(e);
            }
        }
        if let Some(Ending { summary, status }) = ending {
            return send(writer, &Event::Ended { summary, status }).await;
        }
        if !follow {
            return Ok(());
        }
        let closed = async {
            match owner.as_mut() {
                Some(reader) => {
                    let mut byte = [0u8; 1];
                    while let Ok(1..) = reader.read(&mut byte).await {}
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = changed.changed() => if result.is_err() { return Ok(()) },
            () = closed => {
                // The caller stopped (Ctrl-C on `symbiont run`, the editor's stop) or went away.
                record.stop.send_replace(true);
                owner = None;
            }
        }
    }
}

async fn stop(service: &Service, run: &str, writer: &mut tokio::net::unix::OwnedWriteHalf) -> std::io::Result<()> {
    let Some(record) = service.find(run) else { return send(writer, &no_run(run)).await };
    record.stop.send_replace(true);
    let mut changed = record.changed.subscribe();
    let _ = tokio::time::timeout(STOP_GRACE, changed.wait_for(|_| record.ending().is_some())).await;
    match record.ending() {
        Some(Ending { summary, status }) => send(writer, &Event::Ended { summary, status }).await,
        None => {
            send(writer, &Event::Refused { status: status::RUNTIME_FAILED, message: format!("run {run} did not end within 30 s") }).await
        }
    }
}
