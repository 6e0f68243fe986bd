//! Writing a log: one writer at a time (a file lock), entries signed in the appending threads and
//! committed in order by one committer thread with group commit (a batch, one write, one
//! `fdatasync`), acknowledged only once durable; signed checkpoints every N entries or T
//! milliseconds and on close; recovery of a torn tail on open.

use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Condvar, Mutex, MutexGuard, RwLock,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{
    entry::{self, pae, sha256, Checkpoint, Entry, Record, CHECKPOINT_TYPE, ENTRY_TYPE, GENESIS_PREV, ROTATION_OPERATION, ROTATION_TYPE},
    io_error,
    keys::Signer,
    merkle::{self, Frontier},
    store,
    verify::{self, Finding, VerifyOptions},
    Error,
};

#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Write a checkpoint after this many entries...
    pub checkpoint_every: u64,
    /// ...or when this much time has passed with entries not yet covered.
    pub checkpoint_interval: Duration,
    /// Entries per segment file; full segments are sealed (never written again).
    pub segment_entries: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions { checkpoint_every: 1000, checkpoint_interval: Duration::from_secs(1), segment_entries: 65_536 }
    }
}

/// What opening a log found and did.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    pub created: bool,
    pub entries: u64,
    pub checkpoints: u64,
    /// An unfinished last entry that was cut off (it was never acknowledged).
    pub truncated: Option<Finding>,
}

/// What the committer has done since the log was opened: group commit at work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Entries written and made durable.
    pub entries: u64,
    /// Batches committed (one write per segment touched, then one `fdatasync`).
    pub batches: u64,
    /// `fdatasync` calls, on segments and on the checkpoints file.
    pub syncs: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
}

#[derive(Default)]
struct Counters {
    entries: AtomicU64,
    batches: AtomicU64,
    syncs: AtomicU64,
    checkpoints: AtomicU64,
}

/// The writer's position in the chain.
struct Chain {
    next_seq: u64,
    prev: String,
    last_ts: i64,
    signer: Arc<dyn Signer>,
}

#[derive(Default)]
struct Queue {
    /// Signed lines waiting to be written, by seq.
    ready: BTreeMap<u64, Vec<u8>>,
    /// Entries durable on disk: every seq below this.
    durable: u64,
    failed: Option<String>,
    shutdown: bool,
    checkpoint_requested: bool,
    /// The committer is waiting on `work` (or about to): a new entry must wake it. While it is
    /// busy it looks at the queue again before it waits, so appenders need not wake it (which
    /// would cost a system call per entry).
    committer_waiting: bool,
    /// Tasks awaiting durability ([`Ticket::durable`]): woken with the `durable` condvar.
    wakers: Vec<(u64, std::task::Waker)>,
    /// An entry not held ([`Log::submit_held`]) is queued: the committer writes at once.
    urgent: bool,
    /// Only held entries are queued: the committer may wait until then for one that is not, so
    /// that one `fdatasync` covers both.
    hold_until: Option<Instant>,
}

impl Queue {
    /// How much longer the committer may wait for an entry not held, when only held ones are
    /// queued.
    fn held(&self) -> Option<Duration> {
        let until = self.hold_until.filter(|_| !self.urgent)?;
        Some(until.saturating_duration_since(Instant::now())).filter(|left| !left.is_zero())
    }

    /// Wakes the tasks whose entries are durable, or all of them when the writer failed.
    fn wake_durable(&mut self) {
        let (durable, failed) = (self.durable, self.failed.is_some());
        self.wakers.retain(|(seq, waker)| {
            let done = failed || *seq < durable;
            if done {
                waker.wake_by_ref();
            }
            !done
        });
    }
}

struct Shared {
    dir: PathBuf,
    origin: String,
    options: LogOptions,
    chain: Mutex<Chain>,
    queue: Mutex<Queue>,
    /// The committer waits on this for work.
    work: Condvar,
    /// Appenders wait on this for durability.
    durable: Condvar,
    latest_checkpoint: RwLock<Option<Checkpoint>>,
    counters: Counters,
    /// Set with `Queue::failed`, so that appenders need not lock the queue to check it.
    failed: AtomicBool,
    /// The recent time of one batch's write and `fdatasync`, in µs (a moving average).
    sync_micros: AtomicU64,
}

/// The one writer of a log directory.
pub struct Log {
    shared: Arc<Shared>,
    committer: Option<JoinHandle<()>>,
    /// Held for the writer's lifetime: the lock is released when the file is closed.
    _lock: File,
}

/// An entry accepted for writing; [`Ticket::wait`] returns once it is durable.
pub struct Ticket {
    seq: u64,
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Ticket {
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Resolves once the entry is on disk, without blocking a thread: the committer wakes the
    /// task when the entry's batch is `fdatasync`ed. For async callers; [`Ticket::wait`] blocks.
    pub fn durable(self) -> Durable {
        Durable { ticket: Some(self) }
    }

    /// Blocks until the entry is on disk (its batch was `fdatasync`ed).
    pub fn wait(self) -> Result<u64, Error> {
        let mut queue = lock(&self.shared.queue);
        loop {
            if queue.durable > self.seq {
                return Ok(self.seq);
            }
            if let Some(failure) = &queue.failed {
                return Err(Error::WriterFailed(failure.clone()));
            }
            queue = self.shared.durable.wait(queue).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The future of [`Ticket::durable`].
pub struct Durable {
    ticket: Option<Ticket>,
}

impl std::future::Future for Durable {
    type Output = Result<u64, Error>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let Some(ticket) = self.ticket.as_ref() else { panic!("`Durable` polled after it resolved") };
        let mut queue = lock(&ticket.shared.queue);
        if queue.durable > ticket.seq {
            let seq = ticket.seq;
            drop(queue);
            self.ticket = None;
            return std::task::Poll::Ready(Ok(seq));
        }
        if let Some(failure) = &queue.failed {
            let error = Error::WriterFailed(failure.clone());
            drop(queue);
            self.ticket = None;
            return std::task::Poll::Ready(Err(error));
        }
        let seq = ticket.seq;
        match queue.wakers.iter_mut().find(|(s, _)| *s == seq) {
            Some((_, waker)) => waker.clone_from(cx.waker()),
            None => queue.wakers.push((seq, cx.waker().clone())),
        }
        std::task::Poll::Pending
    }
}

fn create_dir_0700(path: &Path) -> Result<(), Error> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_error(path)(e)),
    }
}

fn open_append_0600(path: &Path) -> Result<File, Error> {
    OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(io_error(path))
}

fn sync_dir(path: &Path) -> Result<(), Error> {
    File::open(path).and_then(|d| d.sync_all()).map_err(io_error(path))
}

fn random_id() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::Key(format!("the operating system gave no randomness: {e}")))?;
    Ok(entry::hex(&bytes))
}

impl Log {
    /// Opens the log in `dir`, creating it when absent. Takes the writer's lock, records the
    /// signer's public key, verifies everything committed (refusing a corrupt log), and cuts an
    /// unfinished last entry.
    pub fn open(dir: &Path, signer: Arc<dyn Signer>, options: LogOptions) -> Result<(Log, OpenReport), Error> {
        Log::open_waiting(dir, signer, options, Duration::ZERO, &mut |_| {})
    }

    /// [`Log::open`], but when another writer holds the log, waits up to `wait` for it to close
    /// the log, calling `waiting` once (with the holder's pid when it wrote one) before it waits.
    /// Past `wait`, [`Error::Locked`]. The log is read only once the lock is held, so this writer
    /// appends after the last entry the previous one wrote.
    pub fn open_waiting(
        dir: &Path,
        signer: Arc<dyn Signer>,
        options: LogOptions,
        wait: Duration,
        waiting: &mut dyn FnMut(Option<u32>),
    ) -> Result<(Log, OpenReport), Error> {
        create_dir_0700(dir)?;
        let lock_file = take_lock(dir, wait, waiting)?;
        let mut report = OpenReport::default();
        let origin_path = dir.join(store::ORIGIN_FILE);
        if !origin_path.exists() {
            let origin = format!("symbiont.audit/{}", random_id()?);
            let tmp = dir.join(".origin.tmp");
            let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io_error(&tmp))?;
            file.write_all(format!("{origin}\n").as_bytes()).and_then(|_| file.sync_all()).map_err(io_error(&tmp))?;
            fs::rename(&tmp, &origin_path).map_err(io_error(&origin_path))?;
            create_dir_0700(&dir.join(store::SEGMENTS_DIR))?;
            sync_dir(dir)?;
            report.created = true;
        }
        let origin = store::read_origin(dir)?;
        record_key(dir, signer.as_ref())?;

        // Entries a signed checkpoint covers are checked through its Merkle root, not one signature
        // each: opening stays cheap as the log grows (`audit verify` checks every signature).
        let verify_options = VerifyOptions { signatures_after_checkpoint: true, ..VerifyOptions::default() };
        let verified = verify::verify_log(dir, &verify_options)?;
        if let Some(finding) = verified.finding {
            return Err(Error::Corrupt(finding));
        }
        if let Some(torn) = &verified.torn_tail {
            let file = OpenOptions::new().write(true).open(&torn.path).map_err(io_error(&torn.path))?;
            file.set_len(torn.offset).and_then(|_| file.sync_all()).map_err(io_error(&torn.path))?;
            report.truncated = Some(torn.clone());
        }
        cut_torn_checkpoint(dir)?;
        report.entries = verified.entries;
        report.checkpoints = verified.checkpoints;

        let last_ts =
            if verified.last_ts.is_empty() { i64::MIN } else { crate::time::parse_rfc3339(&verified.last_ts).unwrap_or(i64::MIN) };
        let prev = verified.last_body_hash.map_or(GENESIS_PREV.to_string(), |h| entry::hex(&h));
        let frontier = verified.frontier.clone();
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            origin,
            options,
            chain: Mutex::new(Chain { next_seq: verified.entries, prev, last_ts, signer }),
            queue: Mutex::new(Queue { durable: verified.entries, ..Queue::default() }),
            work: Condvar::new(),
            durable: Condvar::new(),
            latest_checkpoint: RwLock::new(verified.latest_checkpoint.clone()),
            counters: Counters::default(),
            failed: AtomicBool::new(false),
            sync_micros: AtomicU64::new(0),
        });
        let committer = Committer::new(shared.clone(), frontier, verified.latest_checkpoint.map_or(0, |c| c.size))?;
        let handle = std::thread::Builder::new()
            .name("audit-committer".into())
            .spawn(move || committer.run())
            .map_err(|e| Error::WriterFailed(format!("cannot start the committer thread: {e}")))?;
        Ok((Log { shared, committer: Some(handle), _lock: lock_file }, report))
    }

    pub fn origin(&self) -> &str {
        &self.shared.origin
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Signs `record` and queues it; the ticket says when it is durable. Signing happens in the
    /// calling thread, so several appending threads sign in parallel.
    pub fn submit(&self, record: Record) -> Result<Ticket, Error> {
        self.submit_held(record, Duration::ZERO)
    }

    /// [`Log::submit`] for an entry that another will follow at once (the bus's send entry, then
    /// the recipient's receipt, which is delivered only once durable): while only held entries
    /// are queued, the committer waits up to `hold` for one that is not, so that a single
    /// `fdatasync` covers both instead of the second waiting behind the first's. Durability is
    /// the same; the entry is only written later, by at most `hold`.
    pub fn submit_held(&self, record: Record, hold: Duration) -> Result<Ticket, Error> {
        let mut details = serde_json::Value::Object(record.details);
        entry::redact(&mut details);
        let serde_json::Value::Object(details) = details else { unreachable!("redaction keeps an object an object") };
        // The details are serialized before the chain is locked: appending threads only wait for
        // each other over the few fields that depend on the chain.
        let mut details_json = Vec::with_capacity(256);
        let details_written = crate::canonical::write_object(&details, &mut details_json).map_err(|e| Error::Input(e.0));
        let (seq, body, signer) = {
            let mut chain = lock(&self.shared.chain);
            if self.shared.failed.load(Ordering::Acquire) {
                if let Some(failure) = &lock(&self.shared.queue).failed {
                    return Err(Error::WriterFailed(failure.clone()));
                }
            }
            details_written?;
            let ts = crate::time::now_micros().max(chain.last_ts);
            let entry = Entry {
                v: entry::FORMAT_VERSION,
                log: self.shared.origin.clone(),
                seq: chain.next_seq,
                ts: crate::time::format_micros(ts),
                agent: record.agent,
                operation: record.operation,
                decision: record.decision,
                // Written already (`details_json`); dropped after the lock.
                details: serde_json::Map::new(),
                key_id: chain.signer.key_id().to_string(),
                prev: chain.prev.clone(),
                sig: String::new(),
                cosig: None,
            };
            let body = entry.canonical_body_with(&details_json)?;
            chain.prev = entry::hex(&sha256(body.bytes()));
            chain.next_seq += 1;
            chain.last_ts = ts;
            (entry.seq, body, chain.signer.clone())
        };
        drop(details);
        let signed = signer.sign(&pae(ENTRY_TYPE, body.bytes()));
        self.queue_signed(seq, signed.map(|sig| body.line(&entry::b64(&sig), None)), hold)
    }

    /// Queues the line of entry `seq` (without its newline), held up to `hold`
    /// ([`Log::submit_held`]), or stops the writer when it could not be signed.
    fn queue_signed(&self, seq: u64, line: Result<Vec<u8>, Error>, hold: Duration) -> Result<Ticket, Error> {
        let mut queue = lock(&self.shared.queue);
        match line {
            Ok(mut line) => {
                line.push(b'\n');
                queue.ready.insert(seq, line);
                if hold.is_zero() {
                    queue.urgent = true;
                } else if queue.hold_until.is_none() {
                    queue.hold_until = Some(Instant::now() + hold);
                }
                if queue.committer_waiting {
                    self.shared.work.notify_one();
                }
                Ok(Ticket { seq, shared: self.shared.clone() })
            }
            Err(e) => {
                // The seq is taken and cannot be filled: stop rather than leave a hole.
                queue.failed = Some(format!("signing entry {seq} failed: {e}"));
                self.shared.failed.store(true, Ordering::Release);
                queue.wake_durable();
                self.shared.durable.notify_all();
                self.shared.work.notify_one();
                Err(e)
            }
        }
    }

    /// Appends one record and returns its seq once it is durable.
    pub fn append(&self, record: Record) -> Result<u64, Error> {
        self.submit(record)?.wait()
    }

    /// Hands signing over to `new`: appends a `key_rotation` entry signed by the current key and
    /// countersigned by the new one, then signs everything after it with the new key.
    pub fn rotate(&self, new: Arc<dyn Signer>) -> Result<u64, Error> {
        record_key(&self.shared.dir, new.as_ref())?;
        let (seq, body, cosig, old) = {
            let mut chain = lock(&self.shared.chain);
            let ts = crate::time::now_micros().max(chain.last_ts);
            let mut details = serde_json::Map::new();
            details.insert("new_key_id".into(), new.key_id().into());
            details.insert("new_public_key".into(), entry::b64(&new.public_key()).into());
            let entry = Entry {
                v: entry::FORMAT_VERSION,
                log: self.shared.origin.clone(),
                seq: chain.next_seq,
                ts: crate::time::format_micros(ts),
                agent: "symbiont".into(),
                operation: ROTATION_OPERATION.into(),
                decision: "allow".into(),
                details,
                key_id: chain.signer.key_id().to_string(),
                prev: chain.prev.clone(),
                sig: String::new(),
                cosig: None,
            };
            let body = entry.canonical_body()?;
            // Countersigned under the lock: no later entry may be signed before the hand-over.
            let cosig = entry::b64(&new.sign(&pae(ROTATION_TYPE, body.bytes()))?);
            chain.prev = entry::hex(&sha256(body.bytes()));
            chain.next_seq += 1;
            chain.last_ts = ts;
            let old = std::mem::replace(&mut chain.signer, new);
            (entry.seq, body, cosig, old)
        };
        let signed = old.sign(&pae(ENTRY_TYPE, body.bytes()));
        self.queue_signed(seq, signed.map(|sig| body.line(&entry::b64(&sig), Some(&cosig))), Duration::ZERO)?.wait()
    }

    /// The latest checkpoint written.
    pub fn latest_checkpoint(&self) -> Option<Checkpoint> {
        self.shared.latest_checkpoint.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits for everything submitted, writes a final checkpoint and releases the lock.
    pub fn close(mut self) -> Result<Option<Checkpoint>, Error> {
        self.stop()?;
        Ok(self.latest_checkpoint())
    }

    fn stop(&mut self) -> Result<(), Error> {
        {
            let mut queue = lock(&self.shared.queue);
            queue.shutdown = true;
            self.shared.work.notify_one();
        }
        if let Some(handle) = self.committer.take() {
            let _ = handle.join();
        }
        match &lock(&self.shared.queue).failed {
            Some(failure) => Err(Error::WriterFailed(failure.clone())),
            None => Ok(()),
        }
    }

    /// What the committer has done since the log was opened.
    pub fn commit_stats(&self) -> CommitStats {
        let c = &self.shared.counters;
        CommitStats {
            entries: c.entries.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
        }
    }

    /// The recent time one batch took to be written and `fdatasync`ed (a moving average; zero
    /// before the first): about what a held entry ([`Log::submit_held`]) may wait for company.
    pub fn recent_sync(&self) -> Duration {
        Duration::from_micros(self.shared.sync_micros.load(Ordering::Relaxed))
    }

    /// Asks for a checkpoint now, whatever the thresholds.
    pub fn request_checkpoint(&self) {
        lock(&self.shared.queue).checkpoint_requested = true;
        self.shared.work.notify_one();
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// How often a writer waiting for the lock tries it again: `flock` has no timeout, and a blocked
/// `flock` cannot be given up, so a bounded wait polls.
const LOCK_POLL: Duration = Duration::from_millis(25);

/// Takes the writer's lock on `LOG/lock`, waiting up to `wait` for the writer holding it, and
/// writes this process's pid into the file, so that the next one waiting can say whom it waits for.
fn take_lock(dir: &Path, wait: Duration, waiting: &mut dyn FnMut(Option<u32>)) -> Result<File, Error> {
    let lock_path = dir.join(store::LOCK_FILE);
    let mut lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io_error(&lock_path))?;
    let deadline = Instant::now() + wait;
    let mut announced = false;
    loop {
        match lock_file.try_lock() {
            Ok(()) => break,
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                if !announced {
                    announced = true;
                    waiting(lock_holder(&lock_path));
                }
                std::thread::sleep(LOCK_POLL.min(deadline.saturating_duration_since(Instant::now())));
            }
            Err(fs::TryLockError::WouldBlock) => return Err(Error::Locked(dir.to_path_buf())),
            Err(fs::TryLockError::Error(e)) => return Err(io_error(&lock_path)(e)),
        }
    }
    // Only informative (a holder that died leaves its pid until the next writer replaces it): the
    // lock itself is the flock, released by the kernel whatever ends the holder.
    lock_file
        .set_len(0)
        .and_then(|()| std::io::Seek::rewind(&mut lock_file))
        .and_then(|()| lock_file.write_all(format!("{}\n", std::process::id()).as_bytes()))
        .map_err(io_error(&lock_path))?;
    Ok(lock_file)
}

/// The pid the lock's holder wrote in the lock file, if it did (it writes it just after taking
/// the lock, so one that has only just taken it may not have yet).
fn lock_holder(lock_path: &Path) -> Option<u32> {
    fs::read_to_string(lock_path).ok()?.trim().parse().ok()
}

/// Adds the signer's public key to `keys.jsonl` when it is not there yet.
fn record_key(dir: &Path, signer: &dyn Signer) -> Result<(), Error> {
    let known = verify::read_log_keys(dir)?;
    if known.iter().any(|k| k.id == signer.key_id()) {
        return Ok(());
    }
    let path = dir.join(store::KEYS_FILE);
    let line = serde_json::json!({ "key_id": signer.key_id(), "public_key": entry::b64(&signer.public_key()) });
    let mut file = open_append_0600(&path)?;
    file.write_all(format!("{line}\n").as_bytes()).and_then(|_| file.sync_all()).map_err(io_error(&path))
}

fn cut_torn_checkpoint(dir: &Path) -> Result<(), Error> {
    let path = dir.join(store::CHECKPOINTS_FILE);
    if let Some(last) = store::read_lines(&path)?.last().filter(|l| !l.complete) {
        let file = OpenOptions::new().write(true).open(&path).map_err(io_error(&path))?;
        file.set_len(last.offset).and_then(|_| file.sync_all()).map_err(io_error(&path))?;
    }
    Ok(())
}

struct Committer {
    shared: Arc<Shared>,
    frontier: Frontier,
    segment: File,
    segment_entries: u64,
    checkpointed: u64,
    last_checkpoint: Instant,
}

impl Committer {
    fn new(shared: Arc<Shared>, frontier: Frontier, checkpointed: u64) -> Result<Committer, Error> {
        let size = frontier.size();
        let segments = store::segments(&shared.dir)?;
        let (first, path) = match segments.last() {
            Some((first, path)) => (*first, path.clone()),
            None => (0, shared.dir.join(store::SEGMENTS_DIR).join(store::segment_name(0))),
        };
        let segment = open_append_0600(&path)?;
        Ok(Committer { shared, frontier, segment, segment_entries: size - first, checkpointed, last_checkpoint: Instant::now() })
    }

    fn run(mut self) {
        if let Err(e) = self.run_inner() {
            let mut queue = lock(&self.shared.queue);
            queue.failed = Some(e.to_string());
            self.shared.failed.store(true, Ordering::Release);
            queue.wake_durable();
            self.shared.durable.notify_all();
        }
    }

    fn run_inner(&mut self) -> Result<(), Error> {
        loop {
            let (batch, shutdown, checkpoint_requested) = {
                let mut queue = lock(&self.shared.queue);
                loop {
                    let next = self.frontier.size();
                    let ready = queue.ready.contains_key(&next);
                    let held = queue.held();
                    if (ready && held.is_none()) || queue.shutdown || queue.checkpoint_requested || queue.failed.is_some() {
                        break;
                    }
                    let due = self.shared.options.checkpoint_interval.saturating_sub(self.last_checkpoint.elapsed());
                    if self.checkpointed < next && due.is_zero() {
                        break;
                    }
                    let wait = if self.checkpointed < next { due } else { Duration::from_secs(3600) };
                    let wait = held.map_or(wait, |held| held.min(wait));
                    queue.committer_waiting = true;
                    queue = self.shared.work.wait_timeout(queue, wait).unwrap_or_else(|e| e.into_inner()).0;
                    queue.committer_waiting = false;
                }
                if queue.failed.is_some() {
                    return Ok(());
                }
                let mut batch = Vec::new();
                let mut next = self.frontier.size();
                while let Some(line) = queue.ready.remove(&next) {
                    batch.push(line);
                    next += 1;
                }
                // What is left waits behind a gap (an entry still being signed): no longer held.
                queue.urgent = !queue.ready.is_empty();
                queue.hold_until = None;
                let requested = std::mem::take(&mut queue.checkpoint_requested);
                (batch, queue.shutdown && queue.ready.is_empty(), requested)
            };
            if !batch.is_empty() {
                self.write(&batch)?;
                self.shared.counters.entries.fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.shared.counters.batches.fetch_add(1, Ordering::Relaxed);
                let mut queue = lock(&self.shared.queue);
                queue.durable = self.frontier.size();
                queue.wake_durable();
                self.shared.durable.notify_all();
            }
            let pending = self.frontier.size() - self.checkpointed;
            let due = self.last_checkpoint.elapsed() >= self.shared.options.checkpoint_interval;
            if pending > 0 && (shutdown || checkpoint_requested || pending >= self.shared.options.checkpoint_every || due) {
                self.checkpoint()?;
            }
            if shutdown {
                return Ok(());
            }
        }
    }

    /// One write and one `fdatasync` per segment touched.
    fn write(&mut self, batch: &[Vec<u8>]) -> Result<(), Error> {
        let mut buffer = Vec::with_capacity(batch.iter().map(Vec::len).sum());
        for line in batch {
            if self.segment_entries == self.shared.options.segment_entries {
                self.flush(&mut buffer)?;
                self.seal_and_start_segment()?;
            }
            buffer.extend_from_slice(line);
            self.segment_entries += 1;
            self.frontier.push(merkle::leaf_hash(&line[..line.len() - 1]));
        }
        self.flush(&mut buffer)
    }

    fn flush(&mut self, buffer: &mut Vec<u8>) -> Result<(), Error> {
        if buffer.is_empty() {
            return Ok(());
        }
        let path = self.segment_path();
        let started = Instant::now();
        self.segment.write_all(buffer).and_then(|_| self.segment.sync_data()).map_err(io_error(&path))?;
        self.shared.counters.syncs.fetch_add(1, Ordering::Relaxed);
        // A moving average over about 8 batches.
        let took = started.elapsed().as_micros() as u64;
        let average = self.shared.sync_micros.load(Ordering::Relaxed);
        let average = if average == 0 { took } else { (average * 7 + took) / 8 };
        self.shared.sync_micros.store(average, Ordering::Relaxed);
        buffer.clear();
        Ok(())
    }

    fn segment_path(&self) -> PathBuf {
        let first = self.frontier.size() - self.segment_entries;
        self.shared.dir.join(store::SEGMENTS_DIR).join(store::segment_name(first))
    }

    fn seal_and_start_segment(&mut self) -> Result<(), Error> {
        let path = self.shared.dir.join(store::SEGMENTS_DIR).join(store::segment_name(self.frontier.size()));
        self.segment = OpenOptions::new().create_new(true).append(true).mode(0o600).open(&path).map_err(io_error(&path))?;
        self.segment_entries = 0;
        sync_dir(&self.shared.dir.join(store::SEGMENTS_DIR))
    }

    fn checkpoint(&mut self) -> Result<(), Error> {
        let signer = lock(&self.shared.chain).signer.clone();
        let mut checkpoint = Checkpoint {
            origin: self.shared.origin.clone(),
            size: self.frontier.size(),
            root: entry::b64(&self.frontier.root()),
            ts: crate::time::format_micros(crate::time::now_micros()),
            key_id: signer.key_id().to_string(),
            sig: String::new(),
        };
        let sig = signer.sign(&pae(CHECKPOINT_TYPE, checkpoint.note_body().as_bytes()))?;
        checkpoint.sig = entry::b64(&sig);
        let path = self.shared.dir.join(store::CHECKPOINTS_FILE);
        let line = serde_json::to_string(&checkpoint).map_err(|e| Error::Input(e.to_string()))?;
        let mut file = open_append_0600(&path)?;
        file.write_all(format!("{line}\n").as_bytes()).and_then(|_| file.sync_data()).map_err(io_error(&path))?;
        self.shared.counters.syncs.fetch_add(1, Ordering::Relaxed);
        self.shared.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.checkpointed = checkpoint.size;
        self.last_checkpoint = Instant::now();
        *self.shared.latest_checkpoint.write().unwrap_or_else(|e| e.into_inner()) = Some(checkpoint);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::{
        future::Future,
        sync::Arc,
        task::{Context, Poll, Wake, Waker},
        thread::Thread,
    };

    use super::*;
    use crate::keys::FileSigner;

    struct Unpark(Thread);

    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    /// Polls `future` on this thread, parking until its waker is called: a task woken by the
    /// committer, with no async runtime.
    fn block_on<F: Future>(future: F) -> (F::Output, usize) {
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        let mut polls = 0;
        loop {
            polls += 1;
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return (output, polls);
            }
            std::thread::park();
        }
    }

    fn record(n: u64) -> Record {
        Record {
            agent: "a".into(),
            operation: "op".into(),
            decision: "allow".into(),
            details: serde_json::Map::from_iter([("n".into(), n.into())]),
        }
    }

    fn temp_log(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("symbiont-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn signer() -> Arc<dyn Signer> {
        Arc::new(FileSigner::generate().unwrap())
    }

    /// Every entry present once, in one chain that verifies, signatures included.
    fn assert_verifies(dir: &Path, entries: u64) {
        let report = crate::verify::verify_log(dir, &VerifyOptions::default()).unwrap();
        assert!(report.finding.is_none(), "{:?}", report.finding);
        assert_eq!(report.entries, entries);
    }

    #[test]
    fn a_second_writer_waits_for_the_first_and_appends_after_its_last_entry() {
        let dir = temp_log("wait");
        let (first, _) = Log::open(&dir, signer(), LogOptions::default()).unwrap();
        first.append(record(0)).unwrap();
        let (told, waiting) = std::sync::mpsc::channel();
        let second = std::thread::spawn({
            let dir = dir.clone();
            move || {
                let mut on_wait = |pid| told.send(pid).unwrap();
                let (log, report) =
                    Log::open_waiting(&dir, signer(), LogOptions::default(), Duration::from_secs(60), &mut on_wait).unwrap();
                let seq = log.append(record(2)).unwrap();
                log.close().unwrap();
                (report.entries, seq)
            }
        });
        // The second writer says it waits, naming the holder, before the first one is done.
        assert_eq!(waiting.recv().unwrap(), Some(std::process::id()));
        first.append(record(1)).unwrap();
        first.close().unwrap();
        // It opened the log as the first left it, and its entry follows the first's last.
        assert_eq!(second.join().unwrap(), (2, 2));
        assert_eq!(waiting.try_recv().ok(), None, "told once");
        assert_verifies(&dir, 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_writer_gives_up_once_its_wait_is_over() {
        let dir = temp_log("give-up");
        let (first, _) = Log::open(&dir, signer(), LogOptions::default()).unwrap();
        let mut told = Vec::new();
        let result = Log::open_waiting(&dir, signer(), LogOptions::default(), Duration::from_millis(100), &mut |pid| told.push(pid));
        assert!(matches!(result, Err(Error::Locked(ref d)) if *d == dir), "{:?}", result.err());
        assert_eq!(told, [Some(std::process::id())]);
        // Without a wait, refused at once and nobody is told.
        let result = Log::open_waiting(&dir, signer(), LogOptions::default(), Duration::ZERO, &mut |_| panic!("no wait"));
        assert!(matches!(result, Err(Error::Locked(_))));
        first.close().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writers_started_together_each_append_everything_in_one_chain() {
        let dir = temp_log("together");
        let writers: Vec<_> = (0..4u64)
            .map(|w| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let (log, _) = Log::open_waiting(&dir, signer(), LogOptions::default(), Duration::from_secs(60), &mut |_| {}).unwrap();
                    let tickets: Vec<Ticket> = (0..25).map(|n| log.submit(record(w * 100 + n)).unwrap()).collect();
                    tickets.into_iter().for_each(|t| {
                        t.wait().unwrap();
                    });
                    log.close().unwrap();
                })
            })
            .collect();
        writers.into_iter().for_each(|w| w.join().unwrap());
        assert_verifies(&dir, 100);
        // Every writer's entries, each once.
        let mut seen: Vec<u64> = store::segments(&dir)
            .unwrap()
            .iter()
            .flat_map(|(_, path)| store::read_lines(path).unwrap())
            .map(|line| serde_json::from_slice::<serde_json::Value>(&line.bytes).unwrap()["details"]["n"].as_u64().unwrap())
            .collect();
        seen.sort();
        assert_eq!(seen, (0..4).flat_map(|w| (0..25).map(move |n| w * 100 + n)).collect::<Vec<_>>());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A log whose only reason to write is an entry queued: no checkpoint comes due meanwhile.
    fn quiet_log(name: &str) -> (PathBuf, Log) {
        let dir = temp_log(name);
        let options = LogOptions { checkpoint_interval: Duration::from_secs(3600), ..LogOptions::default() };
        let (log, _) = Log::open(&dir, signer(), options).unwrap();
        (dir, log)
    }

    #[test]
    fn a_held_entry_waits_for_the_next_and_one_batch_writes_both() {
        let (dir, log) = quiet_log("held");
        log.append(record(0)).unwrap();
        let held = log.submit_held(record(1), Duration::from_secs(600)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(log.commit_stats().entries, 1, "held, not written alone");
        let next = log.submit(record(2)).unwrap();
        assert_eq!((held.wait().unwrap(), next.wait().unwrap()), (1, 2));
        let stats = log.commit_stats();
        assert_eq!((stats.entries, stats.batches), (3, 2), "the held entry and the next in one batch");
        log.close().unwrap();
        assert_verifies(&dir, 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_held_entry_that_nothing_follows_is_written_once_its_hold_is_over() {
        let (dir, log) = quiet_log("held-alone");
        assert_eq!(log.submit_held(record(0), Duration::from_millis(20)).unwrap().wait().unwrap(), 0);
        // And on close, however long its hold.
        let held = log.submit_held(record(1), Duration::from_secs(600)).unwrap();
        let seq = held.seq();
        drop(held);
        log.close().unwrap();
        assert_eq!(seq, 1);
        assert_verifies(&dir, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Group commit under many appenders at once, held entries among them: every acknowledged
    /// entry is in the log after it is closed, each once, in one chain that verifies.
    #[test]
    fn concurrent_appenders_find_every_acknowledged_entry_in_the_log() {
        let (dir, log) = quiet_log("concurrent");
        let log = Arc::new(log);
        let appenders: Vec<_> = (0..8u64)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    (0..100u64)
                        .map(|n| {
                            let hold = if n % 2 == 0 { Duration::from_millis(1) } else { Duration::ZERO };
                            let ticket = log.submit_held(record(t * 1000 + n), hold).unwrap();
                            (ticket.wait().unwrap(), t * 1000 + n)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let acknowledged: BTreeMap<u64, u64> = appenders.into_iter().flat_map(|a| a.join().unwrap()).collect();
        assert_eq!(acknowledged.len(), 800, "every seq given once");
        Arc::try_unwrap(log).ok().unwrap().close().unwrap();
        assert_verifies(&dir, 800);
        let written: BTreeMap<u64, u64> = store::segments(&dir)
            .unwrap()
            .iter()
            .flat_map(|(_, path)| store::read_lines(path).unwrap())
            .map(|line| serde_json::from_slice::<serde_json::Value>(&line.bytes).unwrap())
            .map(|entry| (entry["seq"].as_u64().unwrap(), entry["details"]["n"].as_u64().unwrap()))
            .collect();
        assert_eq!(written, acknowledged, "each entry at the seq it was acknowledged with");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_durable_future_is_woken_by_the_committer() {
        let dir = std::env::temp_dir().join(format!("symbiont-audit-durable-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (log, _) = Log::open(&dir, Arc::new(FileSigner::generate().unwrap()), LogOptions::default()).unwrap();
        let record = |n: u64| Record {
            agent: "a".into(),
            operation: "op".into(),
            decision: "allow".into(),
            details: serde_json::Map::from_iter([("n".into(), n.into())]),
        };
        let tickets: Vec<Ticket> = (0..50).map(|n| log.submit(record(n)).unwrap()).collect();
        for (n, ticket) in tickets.into_iter().enumerate() {
            let (seq, _) = block_on(ticket.durable());
            assert_eq!(seq.unwrap(), n as u64);
        }
        // Already durable: ready at the first poll.
        let ticket = log.submit(record(50)).unwrap();
        let seq = ticket.seq();
        ticket.wait().unwrap();
        let (done, polls) = block_on(Ticket { seq, shared: log.shared.clone() }.durable());
        assert_eq!((done.unwrap(), polls), (50, 1));
        log.close().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
