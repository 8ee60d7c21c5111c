//! Schedule triggers: one timer task per (function, schedule) that fires EventBridge-shaped
//! scheduled events into the async pipeline at every slot.
//!
//! # Design
//!
//! The store remembers the last slot each schedule reached; a slot's event and the
//! advance to it are one transaction, and an advance never goes backwards, so a
//! restart never fires a slot twice. On (re)start the task plans from that slot
//! ([`wisp_core::schedule::ParsedSchedule::plan`]): the slot now due fires; older
//! missed slots are skipped and the function's log says exactly which (or, with
//! `catch_up`, they fire too, oldest first, up to a cap). A schedule seen for the
//! first time records the moment it started, so downtime before its first slot is
//! still noticed. A slot's event id is derived from the function, schedule and slot,
//! so even two writers could not record it twice.

use super::{Functions, Tasks, Trigger};
use crate::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Weak;
use std::time::Duration;
use wisp_core::schedule::ParsedSchedule;
use wisp_core::wall::{now_ms, now_us, rfc3339_s};
use wisp_core::{FunctionName, Namespace, Schedule};
use wisp_store::NewEvent;

/// The longest a schedule task sleeps at once (wall-clock time is re-read after).
const MAX_SLEEP: Duration = Duration::from_secs(30);

type ScheduleKey = (Namespace, FunctionName, String);

/// A timer task per schedule, with the schedule's place in its function's list (its
/// events name it) and the schedule it was started with.
#[derive(Default)]
pub(crate) struct ScheduleTimers {
    timers: Tasks<ScheduleKey, (usize, Schedule)>,
}

/// The id of a slot's event: the same for the same function, schedule and slot.
fn slot_event_id(namespace: &Namespace, function: &FunctionName, key: &str, slot: i64) -> String {
    let digest = Sha256::digest(format!("{namespace}/{function}/{key}/{slot}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid().to_string()
}

/// EventBridge's scheduled event.
fn scheduled_event(id: &str, function: &FunctionName, index: usize, slot: i64) -> Vec<u8> {
    let event = json!({
        "version": "0",
        "id": id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": rfc3339_s(slot),
        "region": "local",
        "resources": [format!("arn:aws:events:local:000000000000:rule/{function}-schedule-{index}")],
        "detail": {},
    });
    serde_json::to_vec(&event).unwrap_or_default()
}

impl Trigger for ScheduleTimers {
    fn kind(&self) -> &'static str {
        "schedule"
    }

    /// Starts a task per declared schedule; stops those no longer declared.
    fn sync(&self, engine: &Engine, functions: &Functions) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let mut wanted: HashMap<ScheduleKey, (usize, Schedule)> = HashMap::new();
        for ((namespace, name), deployed) in functions {
            for (index, schedule) in deployed.config().schedule.iter().enumerate() {
                wanted.insert(
                    (namespace.clone(), name.clone(), schedule.key()),
                    (index, schedule.clone()),
                );
            }
        }
        self.timers.sync(wanted, |key, (index, schedule)| {
            let parsed = match ParsedSchedule::parse(schedule) {
                Ok(parsed) => parsed,
                Err(e) => {
                    // Refused at deploy; a stored one that no longer parses is skipped.
                    tracing::error!(function = %key.1, "schedule `{}` cannot run: {e}", key.2);
                    return None;
                }
            };
            let task = tokio::spawn(run(
                engine.me.clone(),
                key.clone(),
                *index,
                parsed,
                schedule.catch_up,
            ));
            Some(task.abort_handle())
        });
    }
}

impl Engine {
    /// The slot the schedule `key` ([`Schedule::key`]) of a function last fired for
    /// since the server started, if it has: what the dashboard shows as its last run.
    pub fn schedule_last_fired(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        key: &str,
    ) -> Option<i64> {
        self.metrics.schedule_last_fired(namespace, function, key)
    }

    /// Records that a schedule reached `slot`, firing its event unless `skip`.
    async fn advance(&self, key: &ScheduleKey, index: usize, slot: i64, fire: bool) -> bool {
        let (namespace, function, schedule) = key;
        let event = fire.then(|| {
            let id = slot_event_id(namespace, function, schedule, slot);
            let now = now_us();
            NewEvent {
                namespace: namespace.clone(),
                function: function.clone(),
                payload: scheduled_event(&id, function, index, slot),
                id,
                idempotency_key: None,
                chain_depth: 0,
                source: format!("schedule:{schedule}"),
                qualifier: None,
                // A schedule starts no trace: each run starts its own.
                trace: None,
                parent: None,
                created_us: now,
                run_at: now / 1000,
                lease: None,
            }
        });
        match self
            .store
            .advance_schedule(namespace, function, schedule, slot, event.as_ref())
            .await
        {
            Ok(advanced) => {
                if advanced && fire {
                    self.metrics.schedule_fired(namespace, function, schedule, slot);
                    self.pipeline.wake();
                }
                advanced
            }
            Err(e) => {
                tracing::error!(%function, "recording schedule `{schedule}` at {} failed: {e}", rfc3339_s(slot));
                false
            }
        }
    }
}

async fn run(engine: Weak<Engine>, key: ScheduleKey, index: usize, parsed: ParsedSchedule, catch_up: bool) {
    let (namespace, function, schedule) = &key;
    loop {
        let next = {
            let Some(engine) = engine.upgrade() else {
                return;
            };
            let now = now_ms();
            let last = match engine
                .store
                .schedule_last_slot(namespace, function, schedule)
                .await
            {
                Ok(Some(last)) => last,
                Ok(None) => {
                    // First sight: slots from now on are due.
                    engine.advance(&key, index, now, false).await;
                    now
                }
                Err(e) => {
                    tracing::error!(%function, "reading schedule `{schedule}` failed: {e}");
                    drop(engine);
                    tokio::time::sleep(MAX_SLEEP).await;
                    continue;
                }
            };
            let plan = parsed.plan(Some(last), now, catch_up);
            if let Some(skipped) = &plan.skipped {
                let note = format!(
                    "wisp: schedule `{schedule}` skipped {}{} missed slot(s) from {} to {} while Wisp was down{}",
                    if skipped.exact { "" } else { "at least " },
                    skipped.count,
                    rfc3339_s(skipped.first),
                    rfc3339_s(skipped.last),
                    if catch_up {
                        " (past the catch-up limit)"
                    } else {
                        " (set catch_up = true to run missed slots)"
                    }
                );
                tracing::info!(%function, "{note}");
                engine.logs.note(namespace, function, "schedule", &note);
                engine
                    .metrics
                    .schedule_missed(namespace, function, schedule, skipped.count);
                engine.advance(&key, index, skipped.last, false).await;
            }
            for slot in &plan.fire {
                let disabled = engine
                    .function(namespace, function)
                    .is_some_and(|d| d.record.disabled);
                let why = if disabled {
                    Some(format!("`{function}` is disabled"))
                } else {
                    engine.quota_stop(namespace).map(|limit| {
                        format!(
                            "namespace `{namespace}` has reached its monthly {} limit",
                            limit.as_str()
                        )
                    })
                };
                if let Some(why) = why {
                    let note = format!(
                        "wisp: schedule `{schedule}` skipped its run at {}: {why}",
                        rfc3339_s(*slot)
                    );
                    tracing::warn!(%function, "{note}");
                    engine.logs.note(namespace, function, "schedule", &note);
                    engine.metrics.schedule_missed(namespace, function, schedule, 1);
                    engine.advance(&key, index, *slot, false).await;
                    continue;
                }
                engine.advance(&key, index, *slot, true).await;
            }
            plan.next
        };
        let Some(next) = next else {
            return;
        };
        let wait = u64::try_from(next - now_ms()).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(wait).min(MAX_SLEEP)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_has_one_event_id() {
        let ns = Namespace::default_namespace();
        let f = FunctionName::new("tick").unwrap();
        let a = slot_event_id(&ns, &f, "*/5 * * * *", 1_000);
        assert_eq!(a, slot_event_id(&ns, &f, "*/5 * * * *", 1_000));
        assert_ne!(a, slot_event_id(&ns, &f, "*/5 * * * *", 2_000));
        assert!(uuid::Uuid::parse_str(&a).is_ok());
    }

    #[test]
    fn the_event_has_eventbridge_shape() {
        let f = FunctionName::new("tick").unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&scheduled_event("id-1", &f, 0, 1_700_000_100_000)).unwrap();
        assert_eq!(v["detail-type"], "Scheduled Event");
        assert_eq!(v["source"], "aws.events");
        assert_eq!(v["time"], "2023-11-14T22:15:00Z");
        assert_eq!(v["id"], "id-1");
        assert_eq!(v["detail"], json!({}));
    }
}
