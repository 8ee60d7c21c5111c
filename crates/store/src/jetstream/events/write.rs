//! [`Events::write_events`](crate::Events::write_events)' steps: new events decided and
//! committed in slices of one atomic batch ([`Plan`]), follow-up messages sent, outcomes
//! applied.

use super::stored::{Holder, Stored, change, holder_key};
use super::{Applying, CAREFUL_SLICE, Change, each};
use crate::jetstream::batch::{BatchEntry, MAX_BATCH};
use crate::jetstream::{JetStreamStore, MAX_CAS_ATTEMPTS, contended, encode};
use crate::{
    Enqueued, EventStatus, FollowUp, NewEvent, NewMessage, Result, StoreError, UnixMicros, UnixMillis,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use wisp_core::{Namespace, QueueName};

impl JetStreamStore {
    /// Records new events in order (each with its own idempotency window, `since`),
    /// answering for each whether it is new: slices of events, each one atomic batch.
    pub(super) async fn insert_events(
        &self,
        events: &[(&NewEvent, UnixMicros)],
        what: &str,
    ) -> Result<Vec<Enqueued>> {
        let mut answers = Vec::with_capacity(events.len());
        // The holders of the keys, read together (then known from what this call commits).
        let mut holders = self.read_holders(events.iter().map(|(e, _)| *e), what).await?;
        // A keyed event's own id comes first (a duplicate of itself, whoever holds the
        // key): read with the keys. Others are presumed new, and a batch is refused if one
        // is not.
        let keyed: HashSet<&str> = events
            .iter()
            .filter(|(e, _)| e.idempotency_key.is_some())
            .map(|(e, _)| e.id.as_str())
            .collect();
        let mut slots: HashMap<String, (u64, Option<Stored>)> = each(
            keyed
                .into_iter()
                .map(|id| async move { Ok((id.to_owned(), self.read_event(id, what).await?)) })
                .collect::<Vec<_>>(),
        )
        .await?
        .into_iter()
        .collect();
        let mut written: HashSet<String> = HashSet::new();
        let mut careful = false;
        let mut refusals = 0;
        while answers.len() < events.len() {
            let start = answers.len();
            // As many events as surely fit one batch: 2 entries each, 3 with a key, 6 when
            // an older holder may have to give the key up.
            let (mut end, mut budget) = (start, 0);
            while end < events.len() && (!careful || end < start + CAREFUL_SLICE) {
                let (event, since) = events[end];
                let cost = match &event.idempotency_key {
                    None => 2,
                    Some(key) => match holders.get(&holder_key(&event.namespace, &event.function, key)) {
                        Some((_, Some(holder))) if holder.created_us >= since && !careful => 3,
                        Some((_, None)) | None if !careful => 3,
                        _ => 6,
                    },
                };
                if budget + cost > MAX_BATCH && end > start {
                    break;
                }
                budget += cost;
                end += 1;
            }
            let slice = &events[start..end];
            // After a refusal, the slice is read whole and decided again: which ids exist,
            // who holds the keys.
            if careful {
                let read = each(
                    slice
                        .iter()
                        .map(|(e, _)| async move { Ok((e.id.clone(), self.read_event(&e.id, what).await?)) })
                        .collect::<Vec<_>>(),
                )
                .await?;
                slots.extend(read);
                holders.extend(self.read_holders(slice.iter().map(|(e, _)| *e), what).await?);
            }
            let saved = holders.clone();
            let mut plan = Plan::default();
            for (event, since) in slice {
                let answer = self
                    .plan_event(event, *since, &slots, &written, &mut holders, &mut plan, what)
                    .await?;
                plan.answers.push(answer);
            }
            match self.commit_events(&plan.entries, what).await? {
                Some(revisions) => {
                    for (key, revision) in revisions {
                        if let Some(slot) = holders.get_mut(&key) {
                            slot.0 = revision;
                        }
                    }
                    written.extend(plan.ids);
                    answers.append(&mut plan.answers);
                    careful = false;
                    refusals = 0;
                }
                None => {
                    holders = saved;
                    careful = true;
                    refusals += 1;
                    if refusals >= MAX_CAS_ATTEMPTS {
                        return Err(contended(what));
                    }
                }
            }
        }
        Ok(answers)
    }

    /// The holder entries of the keyed events' keys, read together: each key's revision and
    /// holder.
    async fn read_holders<'a>(
        &self,
        events: impl Iterator<Item = &'a NewEvent>,
        what: &str,
    ) -> Result<HashMap<String, (u64, Option<Holder>)>> {
        let keys: HashSet<String> = events
            .filter_map(|e| {
                e.idempotency_key
                    .as_ref()
                    .map(|k| holder_key(&e.namespace, &e.function, k))
            })
            .collect();
        let read = each(
            keys.into_iter()
                .map(|key| async move {
                    let slot = self.event_slot::<Holder>(&key, what).await?;
                    Ok((key, slot))
                })
                .collect::<Vec<_>>(),
        )
        .await?;
        Ok(read.into_iter().collect())
    }

    /// Decides `event` against what is stored (`slots`: the keyed events' records, and
    /// every record of a slice decided again; an id not there is presumed new, and the
    /// batch is refused if it is not), what this call wrote, and the key holders; adds its
    /// entries to `plan`.
    #[allow(clippy::too_many_arguments, reason = "the planner's state, passed as it is")]
    async fn plan_event(
        &self,
        event: &NewEvent,
        since: UnixMicros,
        slots: &HashMap<String, (u64, Option<Stored>)>,
        written: &HashSet<String>,
        holders: &mut HashMap<String, (u64, Option<Holder>)>,
        plan: &mut Plan,
        what: &str,
    ) -> Result<Enqueued> {
        let duplicate = |id: &str| Enqueued::Duplicate { id: id.to_owned() };
        if written.contains(&event.id) || plan.ids.contains(&event.id) {
            return Ok(duplicate(&event.id));
        }
        let (revision, existing) = slots.get(&event.id).cloned().unwrap_or((0, None));
        if existing.is_some() {
            return Ok(duplicate(&event.id));
        }
        if let Some(key) = &event.idempotency_key {
            let entry = holder_key(&event.namespace, &event.function, key);
            let (key_revision, holder) = holders.get(&entry).cloned().unwrap_or((0, None));
            if let Some(holder) = holder {
                if holder.created_us >= since {
                    return Ok(duplicate(&holder.id));
                }
                // An older holder gives its key up.
                if plan.records.contains_key(&holder.id) {
                    plan.release_key(&holder.id, what)?;
                } else {
                    let (holder_revision, stored) = self.read_event(&holder.id, what).await?;
                    if let Some(stored) = stored
                        && stored.idempotency_key.as_ref() == Some(key)
                        && stored.namespace == event.namespace
                        && stored.function == event.function
                    {
                        // Judged by the holder as it is now: a redrive renews `created_us`.
                        if stored.created_us >= since {
                            return Ok(duplicate(&holder.id));
                        }
                        let mut after = stored.clone();
                        after.idempotency_key = None;
                        change(
                            &mut plan.entries,
                            holder_revision,
                            Some(&stored),
                            Some(&mut after),
                            what,
                        )?;
                    }
                }
            }
            let holder = Holder {
                id: event.id.clone(),
                created_us: event.created_us,
            };
            plan.hold(&entry, key_revision, encode(&holder, what)?);
            holders.insert(entry, (key_revision, Some(holder)));
        }
        let mut stored = Stored::fresh(event, &self.node);
        let index = plan.entries.len();
        change(&mut plan.entries, revision, None, Some(&mut stored), what)?;
        plan.ids.insert(event.id.clone());
        if event.idempotency_key.is_some() {
            plan.records.insert(event.id.clone(), (index, stored));
        }
        Ok(Enqueued::New)
    }

    /// Writes the follow-up messages of the outcomes about to be applied, each queue's
    /// together; a queue that does not exist drops its messages with a warning.
    pub(super) async fn send_follow_up_messages(
        &self,
        applying: &[Applying<'_>],
        now: UnixMillis,
    ) -> Result<()> {
        let mut by_queue: BTreeMap<(Namespace, QueueName), Vec<NewMessage>> = BTreeMap::new();
        for applying in applying {
            for follow_up in &applying.outcome.follow_ups {
                if let FollowUp::Message {
                    namespace,
                    queue,
                    message,
                } = follow_up
                {
                    by_queue
                        .entry((namespace.clone(), queue.clone()))
                        .or_default()
                        .push(message.clone());
                }
            }
        }
        for ((namespace, queue), messages) in by_queue {
            match crate::Queues::send_messages(self, &namespace, &queue, &messages, now).await {
                Ok(()) => {}
                Err(StoreError::QueueNotFound(_)) => tracing::warn!(
                    namespace = namespace.as_str(),
                    queue = queue.as_str(),
                    "the destination queue does not exist; the message was dropped"
                ),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Applies outcomes whose events were read pending: as one batch expecting the
    /// revisions read, or, refused, each on its own, read and decided again.
    pub(super) async fn apply_outcomes(
        &self,
        applying: Vec<Applying<'_>>,
        now: UnixMillis,
        what: &str,
    ) -> Result<()> {
        for chunk in applying.chunks(MAX_BATCH / 3) {
            let mut entries = Vec::new();
            for applying in chunk {
                let mut after = applying.stored.clone();
                after.resolve(applying.outcome, now);
                change(
                    &mut entries,
                    applying.revision,
                    Some(&applying.stored),
                    Some(&mut after),
                    what,
                )?;
            }
            if self.commit_events(&entries, what).await?.is_some() {
                continue;
            }
            each(
                chunk
                    .iter()
                    .map(|applying| async move {
                        let outcome = applying.outcome;
                        self.modify_event(&outcome.id, what, |stored| {
                            if stored.namespace != outcome.namespace || stored.status != EventStatus::Pending
                            {
                                return Change::Keep;
                            }
                            let mut after = stored.clone();
                            after.resolve(outcome, now);
                            Change::Write(Box::new(after))
                        })
                        .await
                    })
                    .collect::<Vec<_>>(),
            )
            .await?;
        }
        Ok(())
    }
}

/// The entries of a slice of new events being decided.
#[derive(Default)]
struct Plan {
    entries: Vec<BatchEntry>,
    answers: Vec<Enqueued>,
    /// The ids recorded by this slice.
    ids: HashSet<String>,
    /// Each new keyed record's entry index and record, to give up its key within the
    /// slice.
    records: HashMap<String, (usize, Stored)>,
    /// The holder entries written, by key: their index in `entries`.
    held: HashMap<String, usize>,
}

impl Plan {
    /// Writes holder entry `entry`: one entry of the slice, however many of its events
    /// take the key (the last wins, expecting the revision read first).
    fn hold(&mut self, entry: &str, revision: u64, value: Vec<u8>) {
        match self
            .held
            .get(entry)
            .and_then(|index| self.entries.get_mut(*index))
        {
            Some(slot) => slot.2 = Some(value),
            None => {
                self.held.insert(entry.to_owned(), self.entries.len());
                self.entries.push((entry.to_owned(), revision, Some(value)));
            }
        }
    }

    /// Clears the key of a record of this slice (its key taken by a later event).
    fn release_key(&mut self, id: &str, what: &str) -> Result<()> {
        if let Some((index, stored)) = self.records.get_mut(id) {
            stored.idempotency_key = None;
            if let Some(slot) = self.entries.get_mut(*index) {
                slot.2 = Some(encode(&*stored, what)?);
            }
        }
        Ok(())
    }
}
