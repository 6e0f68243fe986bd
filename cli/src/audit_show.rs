//! `symbiont audit show`: a log's entries, each printed once it is verified, filtered as
//! journalctl's are (`--agent`, `--run`, `--since`, `--tail N`) and followed as they are appended
//! (`--follow`). Memory does not grow with the log: the whole log is read as a stream, and
//! `--tail` reads the segments from their end.

use std::{
    io::{BufWriter, StdoutLock, Write},
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use symbiont_audit::{
    time,
    verify::{self, Position, VerifyOptions, VerifyReport},
    Entry,
};

use crate::Exit;

/// `audit show`'s options.
#[derive(Debug)]
pub struct Show {
    pub log: PathBuf,
    pub filter: Filter,
    /// Only the last N entries that pass the filter.
    pub tail: Option<u64>,
    pub follow: bool,
    pub json: bool,
}

/// Which entries are shown: all the given conditions hold.
#[derive(Debug, Default)]
pub struct Filter {
    pub agent: Option<String>,
    /// The `run_id` in the entry's details.
    pub run: Option<String>,
    /// Microseconds since the epoch: entries at or after it.
    pub since: Option<i64>,
}

impl Filter {
    fn matches(&self, entry: &Entry) -> bool {
        self.agent.as_ref().is_none_or(|a| *a == entry.agent)
            && self.run.as_ref().is_none_or(|r| entry.details.get("run_id").and_then(|v| v.as_str()) == Some(r))
            && !self.before_since(entry)
    }

    /// The entry is older than `--since` (an entry's time that does not parse is not).
    fn before_since(&self, entry: &Entry) -> bool {
        self.since.is_some_and(|t| time::parse_rfc3339(&entry.ts).is_some_and(|ts| ts < t))
    }

    /// Reading backwards: `None` once entries are older than `--since` (times never go back, so
    /// no earlier entry can match).
    fn matches_backwards(&self, entry: &Entry) -> Option<bool> {
        (!self.before_since(entry)).then(|| self.matches(entry))
    }
}

/// `--since`: an RFC 3339 time, with `Z` or an offset, or a duration ago.
pub fn parse_since(text: &str) -> Result<i64, String> {
    time::parse_since(text, time::now_micros()).ok_or_else(|| {
        format!(
            "invalid value '{text}' for '--since' (expected an RFC 3339 time such as 2026-12-07T09:30:00Z or \
             2026-12-07T10:30:00+01:00, or a duration ago: a whole number and s, m, h, d or w, such as 90s, 15m, 2h, 7d)"
        )
    })
}

/// `--tail`: a number of entries.
pub fn parse_tail(text: &str) -> Result<u64, String> {
    text.parse::<u64>().map_err(|_| format!("invalid value '{text}' for '--tail' (expected a number of entries, such as 20)"))
}

/// Writes entries as `show` prints them, through one buffer; stops writing once the reader went
/// away (a closed pipe) or `limit` entries were written.
struct Printer {
    out: BufWriter<StdoutLock<'static>>,
    json: bool,
    limit: Option<u64>,
    closed: bool,
    error: Option<String>,
}

impl Printer {
    fn print(&mut self, entry: &Entry) {
        if self.closed || self.limit == Some(0) {
            return;
        }
        self.limit = self.limit.map(|n| n - 1);
        let written = if self.json {
            serde_json::to_writer(&mut self.out, entry).map_err(std::io::Error::from).and_then(|()| self.out.write_all(b"\n"))
        } else {
            let details =
                if entry.details.is_empty() { String::new() } else { format!(" {}", serde_json::Value::Object(entry.details.clone())) };
            writeln!(self.out, "{:>6}  {}  {:<16} {:<24} {}{details}", entry.seq, entry.ts, entry.agent, entry.operation, entry.decision)
        };
        self.check(written);
    }

    fn flush(&mut self) {
        if !self.closed {
            let flushed = self.out.flush();
            self.check(flushed);
        }
    }

    fn check(&mut self, result: std::io::Result<()>) {
        if let Err(e) = result {
            self.closed = true;
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                self.error = Some(format!("cannot write the output: {e}"));
            }
        }
    }
}

pub fn show(options: &Show) -> Exit {
    // Registered first, so that a Ctrl-C at any moment stops following cleanly.
    let stop = if options.follow {
        match stop_on_signals() {
            Ok(stop) => Some(stop),
            Err(e) => return Exit::failure(e),
        }
    } else {
        None
    };
    let mut printer = Printer {
        out: BufWriter::new(std::io::stdout().lock()),
        json: options.json,
        limit: options.tail.filter(|_| !options.follow),
        closed: false,
        error: None,
    };
    let filter = &options.filter;
    let mut visit = |entry: Entry, _| {
        if filter.matches(&entry) {
            printer.print(&entry);
        }
    };
    let dir = &options.log;
    let start = match options.tail {
        Some(n) => match verify::tail_position(dir, n, &mut |e| filter.matches_backwards(e)) {
            Ok(start) => start,
            Err(e) => return Exit::failure(e),
        },
        None => None,
    };
    let read = match &start {
        Some(position) => verify::verify_from(dir, &VerifyOptions::default(), position, &mut visit),
        None => verify::verify_log_each(dir, &VerifyOptions::default(), &mut visit),
    };
    let mut report = match read {
        Ok(report) => report,
        Err(e) => return Exit::failure(e),
    };
    if let Some(stop) = stop {
        while report.finding.is_none() && !printer.closed {
            printer.flush();
            if !wait(&stop) {
                break;
            }
            let position: Position = report.end.clone();
            let mut visit = |entry: Entry, _| {
                if filter.matches(&entry) {
                    printer.print(&entry);
                }
            };
            report = match verify::verify_from(dir, &VerifyOptions::default(), &position, &mut visit) {
                Ok(report) => report,
                Err(e) => return Exit::failure(e),
            };
        }
    }
    printer.flush();
    finish(&printer, &report, options.follow)
}

fn finish(printer: &Printer, report: &VerifyReport, follow: bool) -> Exit {
    if let Some(error) = &printer.error {
        return Exit::failure(error);
    }
    match &report.finding {
        Some(f) => {
            eprintln!("warning: the log is invalid from {f}; entries after it are not shown");
            if follow {
                Exit::Problems
            } else {
                Exit::Clean
            }
        }
        None => Exit::Clean,
    }
}

/// How often `--follow` looks for new entries, and how often it checks for a signal meanwhile.
const POLL: Duration = Duration::from_millis(200);
const TICK: Duration = Duration::from_millis(20);

/// Waits one poll interval; `false` once a stop signal arrived.
fn wait(stop: &AtomicBool) -> bool {
    for _ in 0..POLL.as_millis() / TICK.as_millis() {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(TICK);
    }
    !stop.load(Ordering::Relaxed)
}

/// A flag raised at the first SIGINT (Ctrl-C), SIGTERM or SIGHUP, which then no longer end the
/// process: `--follow` stops between two entries, with what it printed flushed, and exits 0.
fn stop_on_signals() -> Result<Arc<AtomicBool>, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().map_err(|e| format!("cannot handle signals: {e}"))?;
    let mut streams = Vec::new();
    let _context = runtime.enter();
    for (name, kind) in [("SIGINT", SignalKind::interrupt()), ("SIGTERM", SignalKind::terminate()), ("SIGHUP", SignalKind::hangup())] {
        streams.push(signal(kind).map_err(|e| format!("cannot handle {name}: {e}"))?);
    }
    drop(_context);
    let stop = Arc::new(AtomicBool::new(false));
    let raised = stop.clone();
    std::thread::spawn(move || {
        runtime.block_on(std::future::poll_fn(|cx| {
            if streams.iter_mut().any(|s| s.poll_recv(cx).is_ready()) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        }));
        raised.store(true, Ordering::Relaxed);
    });
    Ok(stop)
}
