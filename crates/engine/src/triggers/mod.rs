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
