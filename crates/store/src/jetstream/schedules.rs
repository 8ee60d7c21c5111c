//! The JetStream [`Schedules`]: one entry per schedule in bucket `{prefix}_schedules`,
//! holding the last slot it reached, moved forward by compare-and-set.
//!
//! Key `NAMESPACE.FUNCTION.kHEX`: the schedule's key (a cron expression, with spaces and
//! `*`) as `k` and the hex of its bytes, one token. Value `{"last_slot": MILLIS}`.
//!
//! # Design
//!
//! No transaction spans the schedule's entry and the event its slot fires, so
//! [`Schedules::advance_schedule`] follows the trait's order: read the entry (its slot and
//! revision); stop with `false` when the slot is reached already; record the event
//! through [`Events::enqueue_events`] (its id derived from the slot by the caller, so a
//! second recording is a duplicate, not a second event); then write the slot expecting
//! the revision read. A failure between the event and the slot leaves the event recorded
//! and the slot behind; the next advance to that slot records nothing new and moves it.
//!
//! Every node runs the tasks of every deployed schedule, so several may advance one
//! schedule to one slot at once: all may record the event (one id, so one event), and
//! one compare-and-set on the revision they read wins: exactly one answers `true`. The
//! others read again, find the slot reached, and answer `false`.
//!
//! What a transaction would give and this does not: a task behind another (advancing to
//! an earlier slot than a node already ahead of it) may record that earlier slot's event
//! before its compare-and-set loses. That event has the earlier slot's id, so it is the
//! one event of that slot: recorded once, unless the node ahead skipped that slot.

use super::{JetStreamStore, MAX_CAS_ATTEMPTS, Written, backend, contended, create, encode, update};
use crate::{Events, NewEvent, Result, Schedules, UnixMillis};
use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::sync::Arc;
use wisp_core::{FunctionName, Namespace};

/// The bucket of schedule states, behind an `Arc` (the store is cloned often and a
/// bucket handle with its cached stream info is large).
#[derive(Clone)]
pub(super) struct Parts(Arc<kv::Store>);

/// Opens bucket `{prefix}_schedules`, making it if it does not exist.
pub(super) async fn open(context: &jetstream::Context, prefix: &str) -> Result<Parts> {
    Ok(Parts(Arc::new(
        super::bucket(context, prefix, "schedules").await?,
    )))
}

/// A schedule's state as the bucket keeps it.
#[derive(Serialize, Deserialize)]
struct State {
    last_slot: UnixMillis,
}

/// The key of a schedule: `NAMESPACE.FUNCTION.k` and the hex of the schedule key's bytes.
fn key(namespace: &Namespace, function: &FunctionName, schedule_key: &str) -> String {
    let mut key = format!("{namespace}.{function}.k");
    for byte in schedule_key.bytes() {
        let _ = write!(key, "{byte:02x}");
    }
    key
}

impl JetStreamStore {
    /// The entry of a schedule: its state and revision, `None` when it never advanced.
    async fn schedule_entry(&self, key: &str, what: &str) -> Result<Option<(State, u64)>> {
        let entry = super::live_entry(&self.schedules.0, key, what).await?;
        entry
            .map(|entry| Ok((super::decode::<State>(&entry)?, entry.revision)))
            .transpose()
    }
}

#[async_trait]
impl Schedules for JetStreamStore {
    async fn schedule_last_slot(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        schedule_key: &str,
    ) -> Result<Option<UnixMillis>> {
        let what = format!("reading schedule `{schedule_key}` of `{namespace}/{function}`");
        let key = key(namespace, function, schedule_key);
        Ok(self
            .schedule_entry(&key, &what)
            .await?
            .map(|(state, _)| state.last_slot))
    }

    /// Reads the slot, records the event (a duplicate when recorded before), then moves
    /// the slot by compare-and-set on the revision read; refused, reads again: a slot
    /// reached meanwhile answers `false`, an earlier one is moved past (the event is
    /// recorded already).
    async fn advance_schedule(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        schedule_key: &str,
        slot: UnixMillis,
        event: Option<&NewEvent>,
    ) -> Result<bool> {
        let what = format!("advancing schedule `{schedule_key}` of `{namespace}/{function}` to {slot}");
        let key = key(namespace, function, schedule_key);
        let value = encode(&State { last_slot: slot }, &what)?;
        let mut event = event;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let entry = self.schedule_entry(&key, &what).await?;
            if entry.as_ref().is_some_and(|(state, _)| state.last_slot >= slot) {
                return Ok(false);
            }
            if let Some(event) = event.take() {
                // Any holder of its idempotency key makes it a duplicate, as a conflict
                // does on SQLite; a schedule's events carry none.
                Events::enqueue_events(self, std::slice::from_ref(event), i64::MIN).await?;
            }
            let written = match entry {
                None => create(&self.schedules.0, &key, value.clone(), &what).await?,
                Some((_, revision)) => {
                    update(&self.schedules.0, &key, value.clone(), revision, &what).await?
                }
            };
            if let Written::Done(_) = written {
                return Ok(true);
            }
        }
        Err(contended(what))
    }

    /// Deletes every entry under `NAMESPACE.FUNCTION.` (a delete marker each, so a later
    /// advance creates the entry afresh).
    async fn forget_function(&self, namespace: &Namespace, function: &FunctionName) -> Result<()> {
        let what = format!("forgetting the schedules of `{namespace}/{function}`");
        let prefix = format!("{namespace}.{function}.");
        for entry in super::live_entries(&self.schedules.0, &prefix, &what).await? {
            self.schedules
                .0
                .delete(&entry.key)
                .await
                .map_err(|e| backend(&what, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! What the shared suite cannot show: two nodes racing to advance one schedule to one
    //! slot answer `true` once and record its event once.
    use super::*;
    use crate::EventStatus;
    use wisp_test_support::nats::NatsServer;

    fn event(namespace: &Namespace, function: &FunctionName, slot: UnixMillis) -> NewEvent {
        NewEvent {
            namespace: namespace.clone(),
            function: function.clone(),
            id: format!("slot-{slot}"),
            payload: b"{}".to_vec(),
            idempotency_key: None,
            chain_depth: 0,
            source: "schedule:* * * * *".to_owned(),
            qualifier: None,
            trace: None,
            parent: None,
            created_us: slot * 1_000,
            run_at: slot,
            lease: None,
        }
    }

    #[tokio::test]
    async fn racing_nodes_fire_each_slot_once() {
        let server = NatsServer::start();
        let first = JetStreamStore::connect(&server.url, "test").await.unwrap();
        let second = JetStreamStore::connect(&server.url, "test").await.unwrap();
        let (ns, function) = (
            Namespace::new("default").unwrap(),
            FunctionName::new("tick").unwrap(),
        );
        let schedule = "* * * * *";
        let slots: Vec<UnixMillis> = (1..=10).map(|n| 1_700_000_000_000 + n * 60_000).collect();
        for &slot in &slots {
            let fired = event(&ns, &function, slot);
            let racers = (0..4).map(|n| {
                let store = if n % 2 == 0 { &first } else { &second };
                let (ns, function, fired) = (&ns, &function, &fired);
                async move {
                    store
                        .advance_schedule(ns, function, schedule, slot, Some(fired))
                        .await
                        .unwrap()
                }
            });
            let won = futures::future::join_all(racers).await;
            assert_eq!(won.iter().filter(|w| **w).count(), 1, "slot {slot}: {won:?}");
            assert_eq!(
                second.schedule_last_slot(&ns, &function, schedule).await.unwrap(),
                Some(slot)
            );
        }
        let events = first
            .list_events(&ns, &function, EventStatus::Pending, 100)
            .await
            .unwrap();
        let mut ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        ids.sort_unstable();
        let mut expected: Vec<String> = slots.iter().map(|s| format!("slot-{s}")).collect();
        expected.sort_unstable();
        assert_eq!(ids, expected, "one event per slot");
    }

    /// An advance that recorded its event and died before moving the slot: the retry
    /// moves it and records no second event.
    #[tokio::test]
    async fn an_advance_retried_after_its_event_fires_once() {
        let server = NatsServer::start();
        let store = JetStreamStore::connect(&server.url, "test").await.unwrap();
        let (ns, function) = (
            Namespace::new("default").unwrap(),
            FunctionName::new("tick").unwrap(),
        );
        let slot = 1_700_000_060_000;
        let fired = event(&ns, &function, slot);
        Events::enqueue_events(&store, std::slice::from_ref(&fired), i64::MIN)
            .await
            .unwrap();
        assert!(
            store
                .advance_schedule(&ns, &function, "* * * * *", slot, Some(&fired))
                .await
                .unwrap()
        );
        let events = store
            .list_events(&ns, &function, EventStatus::Pending, 100)
            .await
            .unwrap();
        assert_eq!(events.len(), 1);
        // The same slot again, or an earlier one, records nothing, not even its event.
        for again in [slot, slot - 60_000] {
            let mut other = event(&ns, &function, again);
            other.id = format!("again-{again}");
            assert!(
                !store
                    .advance_schedule(&ns, &function, "* * * * *", again, Some(&other))
                    .await
                    .unwrap()
            );
            assert_eq!(store.get_event(&ns, &other.id).await.unwrap(), None);
        }
        assert_eq!(
            store
                .schedule_last_slot(&ns, &function, "* * * * *")
                .await
                .unwrap(),
            Some(slot)
        );
    }

    #[test]
    fn schedule_keys_are_one_token() {
        let (ns, function) = (
            Namespace::new("default").unwrap(),
            FunctionName::new("tick").unwrap(),
        );
        assert_eq!(key(&ns, &function, "* *"), "default.tick.k2a202a");
        assert_eq!(key(&ns, &function, ""), "default.tick.k");
    }
}
