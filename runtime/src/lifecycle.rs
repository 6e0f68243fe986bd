//! An agent run's states. Every transition is audited (`lifecycle` entries) before the runtime
//! acts on it.

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
}
