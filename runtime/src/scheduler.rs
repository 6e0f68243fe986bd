//! Admission of agents: at most `limit` run at once; the rest wait in one queue per priority,
//! served by weighted round robin (4 high : 2 normal : 1 low while all three wait), first come
//! first served within a priority. No priority starves, and a waiter that gives up (its future
//! is dropped: cancellation) leaves the queue without holding a slot.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use tokio::sync::oneshot;

use crate::locks::lock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
}

impl Priority {
    const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    fn index(self) -> usize {
        match self {
            Priority::High => 0,
            Priority::Normal => 1,
            Priority::Low => 2,
        }
    }

    fn weight(self) -> u32 {
        match self {
            Priority::High => 4,
            Priority::Normal => 2,
            Priority::Low => 1,
        }
    }
}

struct State {
    running: usize,
    queues: [VecDeque<oneshot::Sender<Permit>>; 3],
    credits: [u32; 3],
}

struct Inner {
    state: Mutex<State>,
    limit: usize,
}

/// The scheduler; clones share it.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

/// A running slot; dropping it hands the slot to the next waiter.
pub struct Permit {
    inner: Option<Arc<Inner>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            release(inner);
        }
    }
}

fn release(inner: Arc<Inner>) {
    let mut state = lock(&inner.state);
    while let Some(next) = next_waiter(&mut state) {
        // The slot passes on with the permit. A permit that reaches a waiter which then goes away
        // is dropped outside this lock, and releases the slot again from there.
        match next.send(Permit { inner: Some(inner.clone()) }) {
            Ok(()) => return,
            // The waiter gave up: the permit comes back and must not release under this lock.
            Err(mut unsent) => unsent.inner = None,
        }
    }
    state.running -= 1;
}

fn next_waiter(state: &mut State) -> Option<oneshot::Sender<Permit>> {
    for _round in 0..2 {
        for priority in Priority::ALL {
            let i = priority.index();
            if state.credits[i] > 0 && !state.queues[i].is_empty() {
                state.credits[i] -= 1;
                return state.queues[i].pop_front();
            }
        }
        // Every class that waits has spent its credits: a new round.
        state.credits = Priority::ALL.map(Priority::weight);
    }
    None
}

impl Scheduler {
    pub fn new(limit: usize) -> Scheduler {
        let state = State { running: 0, queues: Default::default(), credits: Priority::ALL.map(Priority::weight) };
        Scheduler { inner: Arc::new(Inner { state: Mutex::new(state), limit: limit.max(1) }) }
    }

    /// Waits for a slot. Dropping the future before it resolves leaves the queue.
    pub async fn admit(&self, priority: Priority) -> Permit {
        let receiver = {
            let mut state = lock(&self.inner.state);
            if state.running < self.inner.limit && state.queues.iter().all(VecDeque::is_empty) {
                state.running += 1;
                return Permit { inner: Some(self.inner.clone()) };
            }
            let (sender, receiver) = oneshot::channel();
            state.queues[priority.index()].push_back(sender);
            receiver
        };
        // A queued sender is only ever dropped after sending.
        receiver.await.expect("the scheduler hands every waiter a permit")
    }

    /// Agents running now.
    pub fn running(&self) -> usize {
        lock(&self.inner.state).running
    }

    /// Agents waiting for a slot.
    pub fn queued(&self) -> usize {
        lock(&self.inner.state).queues.iter().map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread")]
    async fn limits_prioritises_and_forgets_the_cancelled() {
        let scheduler = Scheduler::new(1);
        let first = scheduler.admit(Priority::Normal).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, priority) in [("low", Priority::Low), ("normal", Priority::Normal), ("high", Priority::High), ("high2", Priority::High)]
        {
            let (scheduler, order) = (scheduler.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = scheduler.admit(priority).await;
                lock(&order).push(name);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }));
            tokio::task::yield_now().await;
        }
        // One waiter gives up: it must not keep a slot.
        let cancelled = {
            let scheduler = scheduler.clone();
            tokio::spawn(async move { scheduler.admit(Priority::High).await })
        };
        tokio::task::yield_now().await;
        cancelled.abort();
        assert_eq!((scheduler.running(), scheduler.queued()), (1, 5));
        drop(first);
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*lock(&order), ["high", "high2", "normal", "low"]);
        assert_eq!((scheduler.running(), scheduler.queued()), (0, 0));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn no_priority_starves() {
        let scheduler = Scheduler::new(1);
        let gate = scheduler.admit(Priority::Normal).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..8 {
            let priority = if i == 0 { Priority::Low } else { Priority::High };
            let (scheduler, order) = (scheduler.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = scheduler.admit(priority).await;
                lock(&order).push(priority);
            }));
            tokio::task::yield_now().await;
        }
        drop(gate);
        for task in tasks {
            task.await.unwrap();
        }
        let position = lock(&order).iter().position(|p| *p == Priority::Low).unwrap();
        assert!(position <= 4, "the low-priority agent ran after 4 high ones at most: {position}");
    }
}
