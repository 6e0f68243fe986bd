//! An agent run's states. Every transition is audited (`lifecycle` entries) before the runtime
//! acts on it, through [`transition`]: the one way sandboxed runs and lightweight agents alike
//! move from one state to the next.

use serde_json::{json, Map, Value};

use crate::Auditor;

/// Created → Starting → Running → Completed | Failed | TimedOut | Killed. A run can also fail
/// from Created or Starting (sandbox unavailable, image missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Created,
    Starting,
    Running,
    Completed,
    Failed,
    TimedOut,
    Killed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Starting => "starting",
            State::Running => "running",
            State::Completed => "completed",
            State::Failed => "failed",
            State::TimedOut => "timed_out",
            State::Killed => "killed",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, State::Completed | State::Failed | State::TimedOut | State::Killed)
    }

    /// Whether the lifecycle allows going from `self` to `next`.
    pub fn can_become(self, next: State) -> bool {
        use State::*;
        matches!(
            (self, next),
            (Created, Starting)
                | (Starting, Running)
                | (Created | Starting, Failed | Killed)
                | (Running, Completed | Failed | TimedOut | Killed)
        )
    }
}

/// Why a transition was not made: nothing was recorded, and the caller must not act on it.
#[derive(Debug)]
pub enum TransitionError {
    /// The lifecycle does not allow it (a fault in the runtime, refused rather than recorded).
    Forbidden { from: State, to: State },
    /// The audit log refused the entry.
    Audit(symbiont_audit::Error),
}

impl std::fmt::Display for TransitionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransitionError::Forbidden { from, to } => {
                write!(f, "the lifecycle does not allow `{}` to become `{}`: nothing was done", from.as_str(), to.as_str())
            }
            TransitionError::Audit(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TransitionError {}

/// Records that `agent` goes from `from` to `next` (a `lifecycle` entry, decision = `next`, with
/// `from` and `details`) and returns once it is durable; only then may the caller act on it.
/// `created` is recorded once, from `created` itself; every other step must be one
/// [`State::can_become`] allows.
pub async fn transition(
    auditor: &Auditor,
    agent: &str,
    from: State,
    next: State,
    details: Map<String, Value>,
) -> Result<(), TransitionError> {
    let first = from == State::Created && next == State::Created;
    if !(first || from.can_become(next)) {
        return Err(TransitionError::Forbidden { from, to: next });
    }
    let mut entry = Map::from_iter([("from".to_string(), json!(from.as_str()))]);
    entry.extend(details);
    auditor.record(agent, "lifecycle", next.as_str(), entry).await.map_err(TransitionError::Audit)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::State::{self, *};

    #[test]
    fn final_states_are_final() {
        let all = [Created, Starting, Running, Completed, Failed, TimedOut, Killed];
        for from in all.into_iter().filter(|s| s.is_final()) {
            assert!(all.iter().all(|&to| !from.can_become(to)), "{from:?} is final");
        }
        assert!(Created.can_become(Starting) && Starting.can_become(Running) && Running.can_become(TimedOut));
        assert!(!Created.can_become(Running), "a run cannot skip Starting");
        assert!(!State::Created.can_become(TimedOut));
    }

    /// A step the lifecycle forbids is refused and leaves no entry; allowed steps are recorded,
    /// each naming the state it left.
    #[tokio::test]
    async fn only_allowed_transitions_are_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let signer = std::sync::Arc::new(symbiont_audit::FileSigner::generate().unwrap());
        let (log, _) = symbiont_audit::log::Log::open(dir.path(), signer, Default::default()).unwrap();
        let auditor = crate::Auditor::new(std::sync::Arc::new(log));
        let step = |from: State, to: State| super::transition(&auditor, "a", from, to, serde_json::Map::new());
        step(Created, Created).await.unwrap();
        for (from, to) in [(Created, Running), (Running, Created), (Starting, Created), (Completed, Running), (Killed, Killed)] {
            let refused = step(from, to).await.unwrap_err();
            assert!(matches!(refused, super::TransitionError::Forbidden { .. }), "{from:?} -> {to:?}: {refused}");
        }
        step(Created, Starting).await.unwrap();
        let lines = std::fs::read_to_string(symbiont_audit::store::segments(dir.path()).unwrap()[0].1.clone()).unwrap();
        let entries: Vec<serde_json::Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let steps: Vec<(&str, &str)> = entries
            .iter()
            .filter(|e| e["operation"] == "lifecycle")
            .map(|e| (e["details"]["from"].as_str().unwrap(), e["decision"].as_str().unwrap()))
            .collect();
        assert_eq!(steps, [("created", "created"), ("created", "starting")]);
    }
}
