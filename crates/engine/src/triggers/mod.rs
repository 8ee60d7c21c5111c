//! Triggers: what turns the world outside into invocations of the functions that
//! declare them — HTTP routes ([`http`]), queue messages ([`queue`]) and cron
//! schedules ([`schedule`]).
//!
//! # Design
//!
//! Each kind of trigger is a [`Trigger`], shaped like Spin's: it owns what it runs
//! (a route table, a poller per queue trigger, a timer per schedule) and is told,
//! through [`Trigger::sync`], what is deployed. [`Triggers::sync`] tells them all,
//! once at start and after every deploy and delete, so there is one place where
//! triggers follow the registry. Every trigger hands its work to the same paths: a
//! route request to the dispatcher, a queue batch to [`Engine::attempt`], a
//! schedule's slot to the async pipeline.

pub(crate) mod http;
pub(crate) mod queue;
pub(crate) mod schedule;

use crate::Engine;
use crate::registry::Functions;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use tokio::task::AbortHandle;

/// A kind of trigger. See the module docs.
pub(crate) trait Trigger: Send + Sync {
    /// Its name, for logs.
    fn kind(&self) -> &'static str;

    /// Brings what this trigger runs in line with `functions`, everything deployed
    /// now: starts what is new, stops what is gone or changed, leaves the rest. Called
    /// once at start and after every deploy and delete, under the engine's lock on
    /// changes, so calls never overlap; must not block (it starts and stops tasks).
    fn sync(&self, engine: &Engine, functions: &Functions);
}

/// Every trigger the engine runs.
#[derive(Default)]
pub(crate) struct Triggers {
    pub(crate) http: http::HttpRoutes,
    pub(crate) queue: queue::QueuePollers,
    pub(crate) schedule: schedule::ScheduleTimers,
}

impl Triggers {
    /// Tells every trigger what is deployed now (see [`Trigger::sync`]).
    pub(crate) fn sync(&self, engine: &Engine, functions: &Functions) {
        let all: [&dyn Trigger; 3] = [&self.http, &self.queue, &self.schedule];
        for trigger in all {
            tracing::trace!(trigger = trigger.kind(), "syncing");
            trigger.sync(engine, functions);
        }
    }
}

/// The tasks of a trigger that runs one per declaration (a queue poller, a schedule
/// timer), each keyed by what it serves and started from a spec.
pub(crate) struct Tasks<K, S> {
    running: Mutex<HashMap<K, (S, AbortHandle)>>,
}

impl<K, S> Default for Tasks<K, S> {
    fn default() -> Self {
        Tasks {
            running: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, S: PartialEq> Tasks<K, S> {
    /// Makes the running tasks match `wanted`: stops those whose key is gone or whose
    /// spec changed, and starts one for each key not running with `start`, which may
    /// decline (`None`: nothing runs for that key).
    pub(crate) fn sync(&self, wanted: HashMap<K, S>, mut start: impl FnMut(&K, &S) -> Option<AbortHandle>) {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.retain(|key, (spec, task)| {
            let keep = wanted.get(key) == Some(spec);
            if !keep {
                task.abort();
            }
            keep
        });
        for (key, spec) in wanted {
            if running.contains_key(&key) {
                continue;
            }
            if let Some(task) = start(&key, &spec) {
                running.insert(key, (spec, task));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> Option<AbortHandle> {
        Some(tokio::spawn(std::future::pending::<()>()).abort_handle())
    }

    #[tokio::test]
    async fn tasks_follow_what_is_wanted_and_restart_when_their_spec_changes() {
        let tasks: Tasks<&str, u32> = Tasks::default();
        let mut started = Vec::new();
        tasks.sync(HashMap::from([("a", 1), ("b", 1)]), |k, _| {
            started.push(*k);
            pending()
        });
        started.sort();
        assert_eq!(started, ["a", "b"]);
        let handle = |key| tasks.running.lock().unwrap()[key].1.clone();
        let (a, b) = (handle("a"), handle("b"));

        // `a` unchanged stays; `b` changed restarts; `c` is new; a declined key runs nothing.
        let mut started = Vec::new();
        tasks.sync(HashMap::from([("a", 1), ("b", 2), ("c", 1), ("d", 1)]), |k, _| {
            started.push(*k);
            if *k == "d" { None } else { pending() }
        });
        started.sort();
        assert_eq!(started, ["b", "c", "d"]);
        tokio::task::yield_now().await;
        assert!(!a.is_finished(), "an unchanged task was stopped");
        assert!(b.is_finished(), "a changed task kept running");
        assert!(!tasks.running.lock().unwrap().contains_key("d"));

        // What is no longer wanted stops.
        let c = handle("c");
        tasks.sync(HashMap::from([("a", 1)]), |_, _| pending());
        tokio::task::yield_now().await;
        assert!(c.is_finished() && !a.is_finished());
        assert_eq!(tasks.running.lock().unwrap().len(), 1);
    }
}
