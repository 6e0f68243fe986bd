//! `symbiont up` drives the workspace's `schedule` blocks (docs/runtime.md, "Schedules"), on a
//! real dockerd: a schedule ticking every second whose Tier 1 agent takes longer than a second
//! fires runs one at a time and skips the ticks that come while its run is going; SIGTERM drains
//! (the running scheduled run is `killed`, no container is left, the log verifies); and the ticks
//! that pass while no service is up are audited once, as one `missed` entry with their count,
//! and start no run. The service is started from outside its workspace (`symbiont up DIR`).

use std::time::{Duration, SystemTime};

use serde_json::Value;
use symbiont_policy::schedule::parse_utc;

use super::{
    sandbox::{assert_no_container, entries_of, sandbox_ready, Ws},
    service::Up,
};

const SCHEDULE: &str = "every_second";

/// Longer than the schedule's period: the tick after a fired one comes while its run is going.
const TICKER: &str = "import time\ntime.sleep(1.6)\nprint('tick', flush=True)\n";

const TICKER_SYM: &str = r#"agent ticker {
    implementation = ["ticker.py"]
    security = { tier: Tier1, timeout: 60s }
}

schedule every_second {
    cron: "* * * * * *"
    agent: "ticker"
}
"#;

/// The schedule's `schedule` entries of the decision `decision`.
fn schedule_entries<'a>(entries: &'a [Value], decision: &str) -> Vec<&'a Value> {
    entries_of(entries, "schedule").into_iter().filter(|e| e["decision"] == decision && e["details"]["schedule"] == SCHEDULE).collect()
}

fn tick(entry: &Value, key: &str) -> SystemTime {
    let text = entry["details"][key].as_str().unwrap_or_else(|| panic!("no {key} in {entry}"));
    parse_utc(text).unwrap_or_else(|| panic!("{key} {text:?} is not an RFC 3339 UTC time"))
}

/// Each run's lifecycle decisions, in order, the runs in the order they started; every lifecycle
/// entry must name the schedule (the workspace starts no other run).
fn scheduled_runs(entries: &[Value]) -> Vec<(String, Vec<String>)> {
    let mut runs: Vec<(String, Vec<String>)> = Vec::new();
    for entry in entries_of(entries, "lifecycle") {
        assert_eq!(entry["details"]["schedule"], SCHEDULE, "a lifecycle entry of a scheduled run names its schedule: {entry}");
        let run = entry["details"]["run_id"].as_str().expect("lifecycle entries name their run");
        let decision = entry["decision"].as_str().unwrap().to_string();
        match runs.iter_mut().find(|(id, _)| id == run) {
            Some((_, states)) => states.push(decision),
            None => runs.push((run.to_string(), vec![decision])),
        }
    }
    runs
}

/// Sleeps `at_least`, then on to the next half second: the service is then stopped away from the
/// ticks (at whole seconds), never while a tick that fired is still composing its run (which the
/// stop would refuse, leaving a `fired` entry without a run).
fn sleep_to_half_second(at_least: Duration) {
    let at = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap() + at_least;
    let to_half = (Duration::from_millis(1500) - Duration::from_nanos(at.subsec_nanos().into())).as_millis() % 1000;
    std::thread::sleep(at_least + Duration::from_millis(to_half as u64));
}

#[test]
fn a_schedule_runs_one_at_a_time_drains_and_does_not_catch_up_missed_ticks() {
    if !sandbox_ready("a_schedule_runs_one_at_a_time_drains_and_does_not_catch_up_missed_ticks") {
        return;
    }
    // The workspace is `inner`, its service started from the directory above: a scheduled run
    // finds its agent's files whatever the service's current directory.
    let ws = Ws::new();
    ws.write("inner/symbiont.toml", "[policy]\n");
    ws.write("inner/ticker.py", TICKER);
    ws.write("inner/ticker.sym", TICKER_SYM);
    let up_inner = ["up", "inner"];

    let up = Up::start_with(&ws, &up_inner);
    sleep_to_half_second(Duration::from_secs(5));
    let (code, stderr) = up.terminate();
    assert_eq!(code, 0, "SIGTERM drains and exits 0:\n{stderr}");

    let entries = ws.audit_of("inner");
    let fired = schedule_entries(&entries, "fired");
    assert!(fired.len() >= 2, "a tick each second fires the runs one after the other:\n{stderr}\n{entries:#?}");
    let skipped = schedule_entries(&entries, "skipped");
    assert!(!skipped.is_empty(), "the ticks during a 1.6 s run are skipped:\n{stderr}");
    assert!(schedule_entries(&entries, "missed").is_empty(), "a schedule that never fired has nothing missed");
    let runs = scheduled_runs(&entries);
    assert_eq!(runs.len(), fired.len(), "one run per fired tick: {runs:?}");
    // One run at a time: only the last to start may have been stopped by the drain.
    let finals: Vec<&str> = runs.iter().map(|(_, states)| states.last().unwrap().as_str()).collect();
    let (last, before) = finals.split_last().unwrap();
    assert!(before.iter().all(|s| *s == "completed"), "the runs before the drain completed: {runs:?}");
    assert!(["completed", "killed"].contains(last), "the drain stops the running run (`killed`): {runs:?}");
    for (run, _) in &runs {
        assert_no_container(run);
    }
    ws.assert_clean_dir();

    // Down for two seconds, then up again briefly: the ticks after the last one the service
    // handled (fired or skipped: those are audited already) are one `missed` entry.
    let handled = fired.iter().chain(&skipped).map(|e| tick(e, "tick")).max().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let up = Up::start_with(&ws, &up_inner);
    let serving = SystemTime::now();
    sleep_to_half_second(Duration::ZERO);
    let (code, stderr) = up.terminate();
    assert_eq!(code, 0, "{stderr}");

    let entries = ws.audit_of("inner");
    let missed = schedule_entries(&entries, "missed");
    assert_eq!(missed.len(), 1, "the missed ticks are audited once, not one entry per tick:\n{stderr}\n{missed:#?}");
    let (first, last) = (tick(missed[0], "first"), tick(missed[0], "last"));
    let count = missed[0]["details"]["count"].as_u64().expect("a count");
    assert!(count >= 2, "at least the two seconds the service was down: {}", missed[0]);
    assert_eq!(first, handled + Duration::from_secs(1), "the missed ticks start after the last one handled: {}", missed[0]);
    assert_eq!(last.duration_since(first).unwrap().as_secs() + 1, count, "every second in between is counted once: {}", missed[0]);
    assert!(last <= serving, "only ticks before the start are missed: {}", missed[0]);
    // No run for a missed tick: every run has a fired tick, and those after the restart are later
    // than the missed ones.
    let fired = schedule_entries(&entries, "fired");
    assert!(fired.iter().all(|e| tick(e, "tick") <= handled || tick(e, "tick") > last), "{fired:#?}");
    let runs = scheduled_runs(&entries);
    assert_eq!(runs.len(), fired.len(), "one run per fired tick, none for the missed ones: {runs:?}");
    for (run, _) in &runs {
        assert_no_container(run);
    }
}

/// A tick whose run is refused (here the workspace on disk has gained an error diagnostic since the
/// service started: each tick composes its run from the workspace as it is then) is audited
/// `refused` with the reason, after its `fired` entry, and starts nothing. Nothing here reaches a
/// sandbox.
#[test]
fn a_tick_whose_run_is_refused_is_audited_with_the_reason() {
    let ws = Ws::new();
    ws.write("ticker.py", TICKER);
    ws.write("ticker.sym", TICKER_SYM);
    let up = Up::start(&ws);
    sleep_to_half_second(Duration::ZERO);
    ws.write("broken.sym", "agent broken {\n");
    let broken = SystemTime::now();
    // Long enough for a run started before the file was written to end, and a tick after it.
    sleep_to_half_second(Duration::from_secs(3));
    let (code, stderr) = up.terminate();
    assert_eq!(code, 0, "{stderr}");

    let entries = ws.audit();
    let refused = schedule_entries(&entries, "refused");
    assert!(!refused.is_empty(), "the ticks after the file broke are refused:\n{stderr}");
    let fired: Vec<SystemTime> = schedule_entries(&entries, "fired").iter().map(|e| tick(e, "tick")).collect();
    for entry in &refused {
        assert!(fired.contains(&tick(entry, "tick")), "a refused tick fired first: {entry}");
        let reason = entry["details"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("broken.sym"), "the reason names the diagnostic's file: {entry}");
    }
    let refused_ticks: Vec<SystemTime> = refused.iter().map(|e| tick(e, "tick")).collect();
    for at in fired.iter().filter(|t| **t > broken) {
        assert!(refused_ticks.contains(at), "every tick after the file broke is refused: {refused:#?}");
    }
    let runs = scheduled_runs(&entries);
    assert_eq!(runs.len() + refused.len(), fired.len(), "a fired tick starts a run or is refused: {runs:?}");
}
