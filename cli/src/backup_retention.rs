//! What `symbiont audit backup` must lock its objects for: at least the longest retention of the
//! agents whose entries the log holds (`docs/policy-semantics.md`, §8). Audit entries are never
//! deleted; a backup that expired before the data its entries describe would leave that data
//! without its record.

use std::{collections::BTreeSet, path::Path, time::Duration};

use symbiont_audit::store;

use crate::compose::Workspace;

/// [`check`] for the agents named in the entries of the log at `log`.
pub fn check_log(workspace: &Workspace, log: &Path, retain: Duration) -> Result<Vec<String>, String> {
    check(workspace, &agents_in(log)?, retain)
}

/// The agents named in the entries of the log at `log` (every complete line of every segment;
/// the backup verifies the log itself).
pub fn agents_in(log: &Path) -> Result<BTreeSet<String>, String> {
    let mut agents = BTreeSet::new();
    for (_, segment) in store::segments(log).map_err(|e| e.to_string())? {
        for line in store::read_lines(&segment).map_err(|e| e.to_string())?.into_iter().filter(|l| l.complete) {
            let entry: serde_json::Value = serde_json::from_slice(&line.bytes).unwrap_or_default();
            if let Some(agent) = entry.get("agent").and_then(|a| a.as_str()) {
                agents.insert(agent.to_string());
            }
        }
    }
    Ok(agents)
}

/// Refuses `retain` when it is shorter than the merged `retention_period` of an agent of `agents`
/// in `workspace`; otherwise the notes to print: the agents the workspace does not define (their
/// retention is unknown, so they count for nothing).
pub fn check(workspace: &Workspace, agents: &BTreeSet<String>, retain: Duration) -> Result<Vec<String>, String> {
    let mut longest: Option<(Duration, &str)> = None;
    let mut undefined = Vec::new();
    for agent in agents {
        let Ok(effective) = workspace.universe.effective(Some(agent)) else {
            undefined.push(format!("`{agent}`"));
            continue;
        };
        let retention = effective.retention().map_err(|why| format!("agent `{agent}`: {why}"))?;
        if let Some(retention) = retention.filter(|r| longest.is_none_or(|(l, _)| *r > l)) {
            longest = Some((retention, agent));
        }
    }
    if let Some((needed, agent)) = longest.filter(|(needed, _)| retain < *needed) {
        return Err(format!(
            "refusing to back up: the objects would be locked for {} (--retain), less than the retention_period of agent `{agent}` \
             ({}), whose entries the log holds; audit entries must be kept at least as long as the data they describe: \
             give --retain {} or longer",
            shown(retain),
            shown(needed),
            flag(needed)
        ));
    }
    let mut notes = Vec::new();
    if !undefined.is_empty() {
        notes.push(format!(
            "the log has entries of {}, which {} does not define: their retention is unknown and was not counted",
            undefined.join(", "),
            workspace.root.display()
        ));
    }
    Ok(notes)
}

/// Units, largest first: seconds, the word, the `--retain` letter.
const UNITS: [(u64, &str, char); 4] = [(86_400, "day", 'd'), (3_600, "hour", 'h'), (60, "minute", 'm'), (1, "second", 's')];

/// `d` (rounded up to the second) as a count of the largest unit that divides it.
fn in_units(d: Duration) -> (u64, &'static str, char) {
    let seconds = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    let (size, word, letter) = UNITS.into_iter().find(|(size, _, _)| seconds > 0 && seconds.is_multiple_of(*size)).unwrap_or(UNITS[3]);
    (seconds / size, word, letter)
}

/// A duration for people: `2 days`.
fn shown(d: Duration) -> String {
    let (count, word, _) = in_units(d);
    format!("{count} {word}{}", if count == 1 { "" } else { "s" })
}

/// The `--retain` value for exactly `d`, rounded up to the second: `2d`.
fn flag(d: Duration) -> String {
    let (count, _, letter) = in_units(d);
    format!("{count}{letter}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(sym: &str) -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("symbiont.toml"), "[policy]\n").unwrap();
        std::fs::write(dir.path().join("agents.sym"), sym).unwrap();
        let workspace = Workspace::load(dir.path()).unwrap_or_else(|r| panic!("{}", r.message));
        (dir, workspace)
    }

    const AGENTS: &str = "agent short {\n    policy p {\n        conditions: { retention_period: 2.days }\n    }\n}\n\
        agent long {\n    policy q {\n        conditions: { retention_period: 36.hours }\n    }\n    policy r {\n        conditions: { retention_period: 90.days }\n    }\n}\n\
        agent none {\n    policy s {\n        allow: file_read\n    }\n}\n";

    fn names(agents: &[&str]) -> BTreeSet<String> {
        agents.iter().map(|a| a.to_string()).collect()
    }

    /// The longest of the agents' merged (shortest) retentions decides; agents the log does not
    /// name do not count; an undefined one is a note.
    #[test]
    fn the_longest_agent_retention_decides() {
        let (_dir, ws) = workspace(AGENTS);
        let day = Duration::from_secs(86_400);
        let refused = check(&ws, &names(&["short", "long", "none"]), day).unwrap_err();
        assert!(refused.contains("locked for 1 day (--retain), less than the retention_period of agent `short` (2 days)"), "{refused}");
        assert!(refused.ends_with("give --retain 2d or longer"), "{refused}");
        assert_eq!(check(&ws, &names(&["short", "long"]), 2 * day), Ok(vec![]));
        // `long`'s merged retention is 36 hours, the shorter of its two policies'.
        let refused = check(&ws, &names(&["long"]), day).unwrap_err();
        assert!(refused.contains("agent `long` (36 hours)") && refused.contains("--retain 36h"), "{refused}");
        assert_eq!(check(&ws, &names(&["none"]), Duration::from_secs(1)), Ok(vec![]));
        let notes = check(&ws, &names(&["pool", "short"]), 3 * day).unwrap();
        assert!(notes.len() == 1 && notes[0].starts_with("the log has entries of `pool`, which "), "{notes:?}");
    }

    #[test]
    fn a_retention_that_is_no_duration_refuses() {
        // Loading refuses such a workspace (SYM0108); its universe alone shows `check` refusing too.
        let text = "agent a {\n    policy p {\n        conditions: { retention_period: \"a while\" }\n    }\n}\n";
        let universe = symbiont_policy::load([("agents.sym", text)], symbiont_policy::config::Config::default());
        let ws = Workspace { root: "ws".into(), universe, schedules: Vec::new() };
        let refused = check(&ws, &names(&["a"]), Duration::from_secs(86_400 * 3650)).unwrap_err();
        assert!(refused.starts_with("agent `a`: the condition retention_period is \"a while\""), "{refused}");
    }

    #[test]
    fn durations_are_shown_in_their_largest_unit() {
        assert_eq!(shown(Duration::from_secs(2 * 86_400)), "2 days");
        assert_eq!(shown(Duration::from_secs(90)), "90 seconds");
        assert_eq!(shown(Duration::from_secs(3_600)), "1 hour");
        assert_eq!(flag(Duration::from_millis(1_500)), "2s");
        assert_eq!(flag(Duration::from_secs(120)), "2m");
    }
}
