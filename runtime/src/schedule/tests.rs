//! The driver against a fake clock: time moves only when a test says so, and each step waits for
//! the driver's event, so nothing sleeps and nothing races.

use std::time::Duration;

use tokio::sync::{watch, Semaphore};

use symbiont_syntax::ast::AstNode;

use super::*;

struct FakeClock {
    now: watch::Sender<SystemTime>,
}

impl FakeClock {
    fn at(rfc3339: &str) -> Arc<FakeClock> {
        Arc::new(FakeClock { now: watch::Sender::new(parse_utc(rfc3339).unwrap()) })
    }

    fn set(&self, rfc3339: &str) {
        self.now.send_replace(parse_utc(rfc3339).unwrap());
    }
}

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        *self.now.borrow()
    }

    fn sleep_until(&self, at: SystemTime) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut now = self.now.subscribe();
        Box::pin(async move {
            let _ = now.wait_for(|now| *now >= at).await;
        })
    }
}

/// A launch whose runs end only when the test adds a permit, and that records what it was asked.
fn gated_launch() -> (Launch, Arc<Semaphore>, mpsc::UnboundedReceiver<ScheduledRun>) {
    let gate = Arc::new(Semaphore::new(0));
    let (tx, rx) = mpsc::unbounded_channel();
    let held = gate.clone();
    let launch: Launch = Arc::new(move |run| {
        let (gate, tx) = (held.clone(), tx.clone());
        Box::pin(async move {
            let _ = tx.send(run);
            gate.acquire().await.unwrap().forget();
        })
    });
    (launch, gate, rx)
}

fn describe(event: &Event) -> String {
    match event {
        Event::Fired { schedule, tick, .. } => format!("fired {schedule} {}", utc_string(*tick)),
        Event::Finished { schedule, tick, .. } => format!("finished {schedule} {}", utc_string(*tick)),
        Event::Skipped { schedule, tick, .. } => format!("skipped {schedule} {}", utc_string(*tick)),
        Event::Missed { schedule, count, first, last, .. } => {
            format!("missed {schedule} {count} {}..{}", utc_string(*first), utc_string(*last))
        }
        Event::Refused { schedule, tick, reason, .. } => format!("refused {schedule} {} {reason}", utc_string(*tick)),
    }
}

async fn next(events: &mut mpsc::UnboundedReceiver<Event>) -> String {
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv()).await.expect("an event").expect("the driver is running");
    describe(&event)
}

#[tokio::test]
async fn ticks_fire_at_their_utc_minutes() {
    let clock = FakeClock::at("2026-12-04T01:30:00Z"); // a Friday
    let schedule = Schedule::new("nightly", "reviewer", "0 2 * * 1-5").unwrap();
    let (launch, gate, mut runs) = gated_launch();
    let (tx, mut events) = mpsc::unbounded_channel();
    let driver = spawn(schedule, clock.clone(), None, launch, tx);
    clock.set("2026-12-04T02:00:00Z");
    assert_eq!(next(&mut events).await, "fired nightly 2026-12-04T02:00:00Z");
    let run = runs.recv().await.unwrap();
    assert_eq!(
        (run.schedule.as_str(), run.agent.as_str(), utc_string(run.tick)),
        ("nightly", "reviewer", "2026-12-04T02:00:00Z".to_string())
    );
    gate.add_permits(1);
    assert_eq!(next(&mut events).await, "finished nightly 2026-12-04T02:00:00Z");
    // The weekend passes without a tick; Monday's is the next.
    clock.set("2026-12-06T23:59:59Z");
    tokio::task::yield_now().await;
    assert!(events.try_recv().is_err(), "no tick on the weekend");
    clock.set("2026-12-07T02:00:00Z");
    assert_eq!(next(&mut events).await, "fired nightly 2026-12-07T02:00:00Z");
    driver.abort();
}

#[tokio::test]
async fn an_overlapping_tick_is_skipped_and_reported() {
    let clock = FakeClock::at("2026-12-07T10:00:00Z");
    let schedule = Schedule::new("every_second", "reviewer", "* * * * * *").unwrap();
    let (launch, gate, mut runs) = gated_launch();
    let (tx, mut events) = mpsc::unbounded_channel();
    let driver = spawn(schedule, clock.clone(), None, launch, tx);
    clock.set("2026-12-07T10:00:01Z");
    assert_eq!(next(&mut events).await, "fired every_second 2026-12-07T10:00:01Z");
    clock.set("2026-12-07T10:00:02Z");
    assert_eq!(next(&mut events).await, "skipped every_second 2026-12-07T10:00:02Z");
    gate.add_permits(1);
    assert_eq!(next(&mut events).await, "finished every_second 2026-12-07T10:00:01Z");
    clock.set("2026-12-07T10:00:03Z");
    assert_eq!(next(&mut events).await, "fired every_second 2026-12-07T10:00:03Z");
    assert_eq!(runs.recv().await.map(|r| utc_string(r.tick)), Some("2026-12-07T10:00:01Z".to_string()));
    assert_eq!(
        runs.recv().await.map(|r| utc_string(r.tick)),
        Some("2026-12-07T10:00:03Z".to_string()),
        "the skipped tick launched nothing"
    );
    driver.abort();
}

#[tokio::test]
async fn missed_ticks_are_reported_once_and_not_caught_up() {
    // Last fired Monday 02:00; the service was down until Thursday 12:00: Tuesday's, Wednesday's
    // and Thursday's ticks were missed, and the next run is Friday's.
    let clock = FakeClock::at("2026-12-10T12:00:00Z");
    let schedule = Schedule::new("nightly", "reviewer", "0 2 * * 1-5").unwrap();
    let (launch, gate, mut runs) = gated_launch();
    let (tx, mut events) = mpsc::unbounded_channel();
    let driver = spawn(schedule, clock.clone(), parse_utc("2026-12-07T02:00:00Z"), launch, tx);
    assert_eq!(next(&mut events).await, "missed nightly 3 2026-12-08T02:00:00Z..2026-12-10T02:00:00Z");
    tokio::task::yield_now().await;
    assert!(runs.try_recv().is_err(), "nothing is caught up");
    clock.set("2026-12-11T02:00:00Z");
    assert_eq!(next(&mut events).await, "fired nightly 2026-12-11T02:00:00Z");
    gate.add_permits(1);
    driver.abort();
}

#[tokio::test]
async fn ticks_passed_while_the_driver_slept_are_missed_not_caught_up() {
    // The machine sleeps from 10:00:00 to 10:00:05 (or the clock is set forward): the driver wakes
    // for 10:00:01 after 10:00:02 has passed too.
    let clock = FakeClock::at("2026-12-07T10:00:00Z");
    let schedule = Schedule::new("every_second", "reviewer", "* * * * * *").unwrap();
    let (launch, gate, mut runs) = gated_launch();
    let (tx, mut events) = mpsc::unbounded_channel();
    let driver = spawn(schedule, clock.clone(), None, launch, tx);
    clock.set("2026-12-07T10:00:05Z");
    assert_eq!(next(&mut events).await, "missed every_second 5 2026-12-07T10:00:01Z..2026-12-07T10:00:05Z");
    tokio::task::yield_now().await;
    assert!(runs.try_recv().is_err(), "nothing is caught up");
    clock.set("2026-12-07T10:00:06Z");
    assert_eq!(next(&mut events).await, "fired every_second 2026-12-07T10:00:06Z");
    gate.add_permits(1);
    driver.abort();
}

#[test]
fn nothing_is_missed_before_the_next_tick_nor_counted_forever() {
    let nightly = Schedule::new("nightly", "reviewer", "0 2 * * *").unwrap();
    let last = parse_utc("2026-12-07T02:00:00Z").unwrap();
    assert_eq!(missed(&nightly, last, parse_utc("2026-12-08T01:59:59Z").unwrap()), None);
    let every_second = Schedule::new("fast", "reviewer", "* * * * * *").unwrap();
    let Some(Event::Missed { count, .. }) = missed(&every_second, last, last + Duration::from_secs(7 * 86_400)) else {
        panic!("missed ticks")
    };
    assert_eq!(count, MAX_MISSED);
}

#[test]
fn an_invalid_expression_names_the_schedule() {
    let error = Schedule::new("nightly", "reviewer", "0 2 * *").unwrap_err();
    assert!(error.starts_with("schedule nightly: invalid cron expression \"0 2 * *\": a cron expression has 5 fields"), "{error}");
}

#[test]
fn declarations_the_check_refuses_are_refused() {
    let text = "schedule ok { cron: \"0 2 * * 1-5\", agent: reviewer, timezone: \"UTC\" }\n\
                schedule paris { cron: \"0 2 * * *\", agent: reviewer, timezone: \"Europe/Paris\" }\n\
                schedule no_agent { cron: \"0 2 * * *\" }\n\
                schedule no_cron { agent: reviewer }\n";
    let file = symbiont_syntax::ast::SourceFile::cast(symbiont_syntax::parse(text).syntax()).unwrap();
    let results: Vec<String> = symbiont_policy::schedule::schedules(&file)
        .iter()
        .map(|decl| match Schedule::from_decl(decl) {
            Ok(schedule) => format!("{} runs {} at {}", schedule.name, schedule.agent, schedule.cron.as_str()),
            Err(e) => e,
        })
        .collect();
    assert_eq!(
        results,
        [
            "ok runs reviewer at 0 2 * * 1-5",
            "schedule paris: schedules run in UTC only, not \"Europe/Paris\"",
            "schedule no_agent: no agent",
            "schedule no_cron: no cron expression",
        ]
    );
}

#[tokio::test]
async fn events_are_audited_and_the_last_handled_tick_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("audit");
    assert_eq!(last_tick(&log_dir, "nightly").unwrap(), None, "no log yet");
    let signer = Arc::new(symbiont_audit::FileSigner::generate().unwrap());
    let (log, _) = symbiont_audit::log::Log::open(&log_dir, signer, symbiont_audit::log::LogOptions::default()).unwrap();
    let auditor = Auditor::new(Arc::new(log));
    let tick = |t: &str| parse_utc(t).unwrap();
    let (schedule, agent) = ("nightly".to_string(), "reviewer".to_string());
    for event in [
        Event::Fired { schedule: schedule.clone(), agent: agent.clone(), tick: tick("2026-12-07T02:00:00Z") },
        Event::Fired { schedule: "other".into(), agent: agent.clone(), tick: tick("2026-12-09T02:00:00Z") },
        Event::Skipped { schedule: schedule.clone(), agent: agent.clone(), tick: tick("2026-12-08T02:00:00Z") },
    ] {
        event.audit(&auditor).await.unwrap();
    }
    // The skipped tick passed while a service was up: it is the last one handled, not missed.
    assert_eq!(last_tick(&log_dir, "nightly").unwrap(), Some(tick("2026-12-08T02:00:00Z")));
    assert_eq!(last_tick(&log_dir, "never").unwrap(), None);
    let (first, last) = (tick("2026-12-09T02:00:00Z"), tick("2026-12-10T02:00:00Z"));
    Event::Missed { schedule: schedule.clone(), agent: agent.clone(), count: 2, first, last }.audit(&auditor).await.unwrap();
    assert_eq!(last_tick(&log_dir, "nightly").unwrap(), Some(last), "missed ticks are accounted for: not missed again");
    // A refused run's entry names its tick and why; its tick's `fired` entry is the handled one.
    let reason = "the service is stopping".to_string();
    Event::Refused { schedule, agent, tick: tick("2026-12-11T02:00:00Z"), reason }.audit(&auditor).await.unwrap();
    assert_eq!(last_tick(&log_dir, "nightly").unwrap(), Some(last));
    let (_, segment) = store::segments(&log_dir).unwrap().pop().unwrap();
    let entry: Entry = serde_json::from_slice(&store::read_lines(&segment).unwrap().pop().unwrap().bytes).unwrap();
    assert_eq!(
        (entry.operation.as_str(), entry.decision.as_str(), Value::Object(entry.details)),
        ("schedule", "refused", json!({"schedule": "nightly", "tick": "2026-12-11T02:00:00Z", "reason": "the service is stopping"}))
    );
}

/// A scheduled run's lifecycle entries name its schedule; a run started otherwise has no such
/// key. (The runtime has no backend, so each run is created and fails: two entries, no dockerd.)
#[tokio::test]
async fn a_scheduled_runs_lifecycle_entries_name_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Arc::new(symbiont_audit::FileSigner::generate().unwrap());
    let log_dir = dir.path().join("audit");
    let (log, _) = symbiont_audit::log::Log::open(&log_dir, signer, symbiont_audit::log::LogOptions::default()).unwrap();
    let runtime = crate::AgentRuntime::empty(Auditor::new(Arc::new(log)));
    let universe = symbiont_policy::load([("agent.sym", "agent worker() {}")], symbiont_policy::config::Config::default());
    let config = crate::AgentConfig {
        id: "worker".into(),
        tier: crate::Tier::Docker,
        limits: Default::default(),
        policy: Arc::new(symbiont_policy::Engine::compile(universe.effective(Some("worker")).unwrap())),
        language: crate::Language::Python,
        code_root: dir.path().to_path_buf(),
        files: vec!["main.py".into()],
        workspace: crate::Workspace::for_agent(dir.path(), "worker").unwrap(),
        input: Value::Null,
        context: Map::new(),
        env: Default::default(),
        priority: Default::default(),
    };
    let (output, _outputs) = mpsc::unbounded_channel();
    let error = runtime.run_scheduled(config.clone(), "nightly", output.clone(), std::future::pending()).await.unwrap_err();
    assert!(matches!(error, crate::RunError::SandboxUnavailable(_)), "{error:?}");
    runtime.run(config, output, std::future::pending()).await.unwrap_err();
    let mut lifecycle = Vec::new();
    for (_, path) in store::segments(&log_dir).unwrap() {
        for line in store::read_lines(&path).unwrap() {
            let entry: Entry = serde_json::from_slice(&line.bytes).unwrap();
            if entry.operation == "lifecycle" {
                lifecycle.push(format!("{} {}", entry.decision, entry.details.get("schedule").and_then(Value::as_str).unwrap_or("-")));
            }
        }
    }
    assert_eq!(lifecycle, ["created nightly", "failed nightly", "created -", "failed -"]);
}
