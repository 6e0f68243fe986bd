//! Schedules: an agent started at the ticks of a cron expression, in UTC (`docs/runtime.md`,
//! "Schedules"). Not the admission [`crate::scheduler`]: this decides *when* a run starts, the
//! scheduler decides when a started run gets a slot.
//!
//! [`spawn`] drives one schedule as a tokio task: at each tick it calls the caller's `launch`
//! unless the schedule's previous run is still going, in which case the tick is skipped. It
//! reports what it did as [`Event`]s, which the caller audits ([`Event::audit`]). Ticks missed
//! while no driver ran are not caught up: the first tick after the start is the next one in the
//! future, and the missed ones are reported once, with their count.

use std::{
    future::Future,
    path::Path,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::SystemTime,
};

use serde_json::{json, Map, Value};
use symbiont_audit::{entry::Entry, store};
use symbiont_policy::schedule::{parse_utc, utc_string, Cron, ScheduleDecl};
use tokio::sync::mpsc;

use crate::Auditor;

/// One schedule of the workspace, ready to drive.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub agent: String,
    pub cron: Cron,
}

impl Schedule {
    /// From a `schedule` block's plain data ([`symbiont_policy::schedule::schedules`]).
    pub fn new(name: &str, agent: &str, cron: &str) -> Result<Schedule, String> {
        let cron = Cron::parse(cron).map_err(|e| format!("schedule {name}: invalid cron expression {cron:?}: {e}"))?;
        Ok(Schedule { name: name.to_string(), agent: agent.to_string(), cron })
    }

    /// From a `schedule` block as read from its file: what `symbiont check` reports as SYM0110
    /// is refused here too, so a service never drives a schedule the check would refuse.
    pub fn from_decl(decl: &ScheduleDecl) -> Result<Schedule, String> {
        let name = &decl.name;
        let agent = decl.agent.as_deref().ok_or_else(|| format!("schedule {name}: no agent"))?;
        let (cron, _) = decl.cron.as_ref().ok_or_else(|| format!("schedule {name}: no cron expression"))?;
        if let Some((zone, _)) = decl.timezone.as_ref().filter(|(zone, _)| zone != "UTC") {
            return Err(format!("schedule {name}: schedules run in UTC only, not {zone:?}"));
        }
        Schedule::new(name, agent, cron)
    }
}

/// Where the driver reads the time and waits: the system clock in a service, a fake one in tests.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> SystemTime;
    /// Returns once `now()` has reached `at`.
    fn sleep_until(&self, at: SystemTime) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The system clock. Sleeps are re-checked against it, so a clock set forward fires the due tick.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep_until(&self, at: SystemTime) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            // At most a minute at a time, so a clock that jumps is noticed within a minute.
            while let Ok(left) = at.duration_since(SystemTime::now()) {
                if left.is_zero() {
                    break;
                }
                tokio::time::sleep(left.min(std::time::Duration::from_secs(60))).await;
            }
        })
    }
}

/// What a scheduled run is asked to be: the caller composes and starts it, and names the schedule
/// in the run's lifecycle entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledRun {
    pub schedule: String,
    pub agent: String,
    pub tick: SystemTime,
}

/// Starts one scheduled run; the future ends when the run has ended.
pub type Launch = Arc<dyn Fn(ScheduledRun) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// What a driver did, for the caller to audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A tick started a run.
    Fired { schedule: String, agent: String, tick: SystemTime },
    /// The run a tick started has ended.
    Finished { schedule: String, agent: String, tick: SystemTime },
    /// A tick came while the schedule's previous run was still going: no run.
    Skipped { schedule: String, agent: String, tick: SystemTime },
    /// Ticks that passed undriven, not caught up: those between the last one handled (read from
    /// the audit log) and the driver's start, or those that passed while the driver was not woken
    /// (the machine asleep, the clock set forward). `count` stops at [`MAX_MISSED`].
    Missed { schedule: String, agent: String, count: u64, first: SystemTime, last: SystemTime },
    /// The run a fired tick asked for was refused before it started (its composition failed, or
    /// the service was stopping); the caller reports it, the driver does not.
    Refused { schedule: String, agent: String, tick: SystemTime, reason: String },
}

/// Counting missed ticks stops here: a per-second schedule down for a week would otherwise count
/// 600,000 of them at start.
pub const MAX_MISSED: u64 = 10_000;

impl Event {
    /// Appends the event's audit entry (operation `schedule`, the decision `fired`, `skipped`,
    /// `missed` or `refused`; `finished` is not audited: the run's own lifecycle entries say how
    /// it ended).
    pub async fn audit(&self, auditor: &Auditor) -> Result<(), String> {
        let (schedule, agent, decision, mut details) = match self {
            Event::Fired { schedule, agent, tick } => (schedule, agent, "fired", tick_details(*tick)),
            Event::Skipped { schedule, agent, tick } => (schedule, agent, "skipped", tick_details(*tick)),
            Event::Missed { schedule, agent, count, first, last } => {
                let details = Map::from_iter([
                    ("count".to_string(), json!(count)),
                    ("first".to_string(), json!(utc_string(*first))),
                    ("last".to_string(), json!(utc_string(*last))),
                ]);
                (schedule, agent, "missed", details)
            }
            Event::Refused { schedule, agent, tick, reason } => {
                let mut details = tick_details(*tick);
                details.insert("reason".into(), json!(reason));
                (schedule, agent, "refused", details)
            }
            Event::Finished { .. } => return Ok(()),
        };
        details.insert("schedule".into(), json!(schedule));
        auditor.record(agent, "schedule", decision, details).await.map(|_| ()).map_err(|e| format!("audit log: {e}"))
    }
}

fn tick_details(tick: SystemTime) -> Map<String, Value> {
    Map::from_iter([("tick".to_string(), json!(utc_string(tick)))])
}

/// Drives `schedule` until the returned task is aborted (a run already started goes on). `last`
/// is the last tick a driver handled, if any ([`last_tick`]).
pub fn spawn(
    schedule: Schedule,
    clock: Arc<dyn Clock>,
    last: Option<SystemTime>,
    launch: Launch,
    events: mpsc::UnboundedSender<Event>,
) -> tokio::task::JoinHandle<()> {
    // The start is when `spawn` is called, not when the task first runs.
    let start = clock.now();
    tokio::spawn(async move {
        if let Some(missed) = last.and_then(|last| missed(&schedule, last, start)) {
            let _ = events.send(missed);
        }
        let busy = Arc::new(AtomicBool::new(false));
        let mut after = start;
        while let Some(tick) = schedule.cron.next_after(after) {
            clock.sleep_until(tick).await;
            let now = clock.now();
            // Woken after the next tick too (the machine slept, the clock was set forward): the
            // ticks since the last one handled passed undriven; like those while no service was
            // up, they are missed, not caught up.
            if schedule.cron.next_after(tick).is_some_and(|next| next <= now) {
                if let Some(event @ Event::Missed { last, .. }) = missed(&schedule, after, now) {
                    after = last;
                    let _ = events.send(event);
                    continue;
                }
            }
            after = tick;
            let (name, agent) = (schedule.name.clone(), schedule.agent.clone());
            // Only this loop sets `busy`, and only the run it started clears it.
            if busy.swap(true, Ordering::AcqRel) {
                let _ = events.send(Event::Skipped { schedule: name, agent, tick });
                continue;
            }
            let _ = events.send(Event::Fired { schedule: name.clone(), agent: agent.clone(), tick });
            let run = launch(ScheduledRun { schedule: name.clone(), agent: agent.clone(), tick });
            let (busy, events) = (busy.clone(), events.clone());
            tokio::spawn(async move {
                run.await;
                busy.store(false, Ordering::Release);
                let _ = events.send(Event::Finished { schedule: name, agent, tick });
            });
        }
    })
}

/// The ticks strictly after `last` up to `now`, as one event; `None` if there are none.
fn missed(schedule: &Schedule, last: SystemTime, now: SystemTime) -> Option<Event> {
    let first = schedule.cron.next_after(last).filter(|t| *t <= now)?;
    let (mut count, mut at) = (1, first);
    while count < MAX_MISSED {
        match schedule.cron.next_after(at) {
            Some(next) if next <= now => (count, at) = (count + 1, next),
            _ => break,
        }
    }
    Some(Event::Missed { schedule: schedule.name.clone(), agent: schedule.agent.clone(), count, first, last: at })
}

/// The last tick of `name` that a driver handled, from the audit log `dir` (newest segment first):
/// the `tick` of a `fired` or `skipped` entry, or the `last` of a `missed` one (those ticks are
/// audited already); `None` if it never fired (or the log does not exist yet).
pub fn last_tick(dir: &Path, name: &str) -> Result<Option<SystemTime>, String> {
    if !dir.exists() {
        return Ok(None);
    }
    let segments = store::segments(dir).map_err(|e| e.to_string())?;
    for (_, path) in segments.iter().rev() {
        let lines = store::read_lines(path).map_err(|e| e.to_string())?;
        for line in lines.iter().rev() {
            let Ok(entry) = serde_json::from_slice::<Entry>(&line.bytes) else { continue };
            let key = match entry.decision.as_str() {
                "fired" | "skipped" => "tick",
                "missed" => "last",
                _ => continue,
            };
            if entry.operation == "schedule" && entry.details.get("schedule").and_then(Value::as_str) == Some(name) {
                return Ok(entry.details.get(key).and_then(Value::as_str).and_then(parse_utc));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
