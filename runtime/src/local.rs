//! Lightweight agents: in-process tasks with no sandbox, for agents whose code is the runtime's
//! own (coordinators, routers) and for scale. They share the bus, the audit log and the
//! scheduler with sandboxed agents and go through the same audited lifecycle; what they may do
//! is what the bus and their policy allow.

use std::{future::Future, sync::Arc, time::Duration};

use serde_json::{json, Map, Value};
use symbiont_policy::Engine;
use tokio::sync::watch;

use crate::{
    bus::{Bus, BusError, Delivered},
    lifecycle,
    scheduler::{Priority, Scheduler},
    Auditor, State,
};

/// One lightweight agent.
#[derive(Clone)]
pub struct LocalAgent {
    pub name: String,
    pub policy: Arc<Engine>,
    pub priority: Priority,
    pub timeout: Duration,
    /// The policy's `env` (as `symbiont run --context`).
    pub context: Map<String, Value>,
}

/// What a lightweight agent's code gets: its name and the bus.
#[derive(Clone)]
pub struct AgentContext {
    name: Arc<str>,
    bus: Arc<Bus>,
}

impl AgentContext {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub async fn send(&self, to: &str, payload: &Value) -> Result<u64, BusError> {
        self.bus.send(&self.name, to, payload).await
    }

    pub async fn receive(&self, wait: Duration) -> Result<Option<Delivered>, BusError> {
        self.bus.receive(&self.name, wait).await
    }
}

/// How a lightweight agent ended.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalReport {
    pub name: String,
    pub state: State,
    pub error: Option<String>,
}

/// A spawned lightweight agent.
pub struct LocalHandle {
    cancel: watch::Sender<bool>,
    task: tokio::task::JoinHandle<LocalReport>,
}

impl LocalHandle {
    /// Stops the agent: a queued one never starts, a running one is dropped at its next await.
    pub fn cancel(&self) {
        let _ = self.cancel.send(true);
    }

    pub async fn wait(self) -> LocalReport {
        match self.task.await {
            Ok(report) => report,
            Err(e) => LocalReport { name: String::new(), state: State::Failed, error: Some(format!("the agent's task failed: {e}")) },
        }
    }
}

async fn cancelled(mut cancel: watch::Receiver<bool>) {
    while !*cancel.borrow_and_update() {
        if cancel.changed().await.is_err() {
            // The handle is gone: nobody can cancel any more.
            std::future::pending::<()>().await;
        }
    }
}

/// Spawns `body` as agent `agent` once the scheduler admits it.
pub(crate) fn spawn<F, Fut>(bus: Arc<Bus>, auditor: Auditor, scheduler: Scheduler, agent: LocalAgent, body: F) -> LocalHandle
where
    F: FnOnce(AgentContext) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let (cancel, cancel_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let name = agent.name.clone();
        let mut state = State::Created;
        let mut audit = |next: State, extra: Map<String, Value>| {
            let (auditor, name, from) = (auditor.clone(), name.clone(), state);
            state = next;
            async move {
                let mut details = Map::from_iter([("local".to_string(), json!(true))]);
                details.extend(extra);
                lifecycle::transition(&auditor, &name, from, next, details).await.map_err(|e| e.to_string())
            }
        };
        let report = |state: State, error: Option<String>| LocalReport { name: name.clone(), state, error };
        let created = Map::from_iter([
            ("priority".to_string(), json!(format!("{:?}", agent.priority).to_lowercase())),
            ("timeout_ms".to_string(), json!(agent.timeout.as_millis() as u64)),
        ]);
        if let Err(e) = audit(State::Created, created).await {
            return report(State::Failed, Some(e));
        }
        // On the bus from creation: peers may write to an agent that is still queued.
        let mut env = agent.context.clone();
        env.insert("agent".into(), json!(name));
        bus.join(&name, agent.policy.clone(), symbiont_policy::Value::from(Value::Object(env)));
        let context = AgentContext { name: Arc::from(name.as_str()), bus: bus.clone() };
        let permit = tokio::select! {
            permit = scheduler.admit(agent.priority) => Some(permit),
            () = cancelled(cancel_rx.clone()) => None,
        };
        let (final_state, error) = match permit {
            None => (State::Killed, Some("cancelled before it started".to_string())),
            Some(_permit) => {
                if let Err(e) = audit(State::Starting, Map::new()).await {
                    bus.leave(&name).await;
                    return report(State::Failed, Some(e));
                }
                if let Err(e) = audit(State::Running, Map::new()).await {
                    bus.leave(&name).await;
                    return report(State::Failed, Some(e));
                }
                tokio::select! {
                    ended = tokio::time::timeout(agent.timeout, body(context)) => match ended {
                        Ok(Ok(())) => (State::Completed, None),
                        Ok(Err(e)) => (State::Failed, Some(e)),
                        Err(_) => (State::TimedOut, Some(format!("timed out after {} ms", agent.timeout.as_millis()))),
                    },
                    () = cancelled(cancel_rx) => (State::Killed, Some("cancelled".to_string())),
                }
            }
        };
        bus.leave(&name).await;
        let details = error.iter().map(|e| ("reason".to_string(), json!(e))).collect();
        if let Err(e) = audit(final_state, details).await {
            return report(State::Failed, Some(e));
        }
        report(final_state, error)
    });
    LocalHandle { cancel, task }
}
