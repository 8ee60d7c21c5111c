//! The JetStream [`Events`]: the async pipeline's durable queue in bucket `{prefix}_events`
//! (atomic batch publish allowed on its stream, as the registry's).
//!
//! - `ev.ID`: an event's whole record ([`Stored`]: every field of [`EventRecord`], the
//!   node holding its lease, and the key of its state entry). `ID` is the event id when it
//!   is a key token (`[-_A-Za-z0-9]`, as UUIDs are), else `=` and the hex of its bytes.
//! - `st.NS.FN.S.HOLDER.RUN.CREATED.ID.U`: the event's one state entry (empty), where `S`
//!   is `q` (pending, not leased), `r` (pending, leased by node `HOLDER`), `s` (succeeded)
//!   or `f` (a dead letter); `HOLDER` is `-` unless leased; `RUN` and `CREATED` are
//!   `run_at` and `created_us` as 16 hex digits that sort as the numbers do; `U` is 16 hex
//!   digits made fresh for each entry, so that an entry is written once, expecting no
//!   message, and never written again.
//! - `ik.NS.FN.KEY`: who holds an idempotency key (the holder's id and `created_us`);
//!   `KEY` is `x` and the hex of the key (for a key of more than 100 bytes, `m` and the hex
//!   of its MD5 digest).
//!
//! # Design
//!
//! Every change of an event is one atomic batch (ADR-50): its record, expecting the
//! revision read (or none, for a new event), then its new state entry, then the deletion
//! of its old state entry. A state entry is always written right after its record in a
//! batch, whose messages take consecutive sequences, so the old entry's revision is the
//! record's plus one, known without reading it. The state entry is the index every
//! query reads instead of the records: each status of each function, and the due events
//! of all, is one subject filter (`st.*.*.q.>`: the claimable events, whatever else is
//! stored; `st.NS.FN.>`: one function's). A scan reads the filter's keys only (an
//! ephemeral pull consumer, last message per subject, headers only, fetched until the
//! server has no more), never a payload; the records it then needs are read one by one,
//! concurrently. A key deleted leaves a delete marker; the marker is purged after the
//! commit (a purge bounded by its sequence, so it can never remove a later write of the
//! subject), so scans do not grow with the events gone.
//!
//! Why a state entry per event rather than a stream per status, or consumers: claims need
//! a compare-and-set on one record across nodes and due times in the past and future; a
//! KV record with a revision gives the first, and an index keyed by due time the second.
//!
//! What each costs: [`Events::write_events`] of new events alone is one atomic batch (2
//! messages per event, 3 with an idempotency key, whose holder entry and own record are
//! read first, all of a call's concurrently); with outcomes, their records are read
//! concurrently, their follow-ups written, then the outcomes committed as one more batch.
//! A claim scans the keys of the pending, unleased events (so it costs the backlog, not the
//! history: fine for thousands queued, not for millions), reads the records it claims, and
//! commits them as one batch. The API's reads scan one function's keys of one status and
//! read the page's records; [`Events::event_counts`] and [`Events::event_backlog`] count
//! keys (one function's; every pending or dead event of a namespace, or of all) and read no
//! record; [`Events::sweep_events`] scans the keys of the succeeded events.
//!
//! Across nodes: every decision is a compare-and-set (of the record, of the key's holder
//! entry), so an id or a key is recorded once and an event claimed once however many nodes
//! race. A lease names its node ([`JetStreamStore::with_node`]); a node's start-up
//! releases its own leases only.

use super::batch::{self, BatchEntry};
use super::{JetStreamStore, MAX_CAS_ATTEMPTS, backend, contended, decode};
use crate::{
    Enqueued, EventBacklog, EventCounts, EventOutcome, EventQuery, EventRecord, EventStatus, Events,
    FollowUp, HeldLease, NewEvent, Result, StoreError, UnixMicros, UnixMillis,
};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use wisp_core::{ErrorCode, FunctionName, Namespace};

/// How many keys a scan asks the server for at once.
const SCAN_BATCH: usize = 4_096;

/// How many records a method reads or changes at once.
const CONCURRENCY: usize = 64;

/// How many new events a retried slice of [`Events::write_events`] reads and decides at once.
const CAREFUL_SLICE: usize = 250;

/// The bucket this concern keeps.
#[derive(Clone)]
pub(super) struct Parts {
    bucket: kv::Store,
}

/// Opens the events bucket `{prefix}_events`, with atomic batches allowed.
pub(super) async fn open(context: &jetstream::Context, prefix: &str) -> Result<Parts> {
    Ok(Parts {
        bucket: batch::atomic_bucket(context, prefix, "events").await?,
    })
}

mod stored;
mod write;

use stored::{Holder, State, Stored, change, holder_key, record_key};

/// What [`JetStreamStore::modify_event`] does with the record it read.
enum Change {
    Keep,
    Write(Box<Stored>),
    Delete,
}

/// Releases `stored`'s lease if `node` holds it (and, given, until `leased_until`).
fn release(stored: &Stored, node: &str, leased_until: Option<UnixMillis>) -> Change {
    let held = stored.status == EventStatus::Pending
        && stored.holder.as_deref() == Some(node)
        && stored.leased_until.is_some()
        && leased_until.is_none_or(|until| stored.leased_until == Some(until));
    if !held {
        return Change::Keep;
    }
    let mut after = stored.clone();
    after.leased_until = None;
    after.holder = None;
    Change::Write(Box::new(after))
}

/// One outcome to apply: its event's record as read, at its revision.
struct Applying<'a> {
    outcome: &'a EventOutcome,
    revision: u64,
    stored: Stored,
}

/// Awaits `futures`, [`CONCURRENCY`] at a time; their answers in their order. (Built by
/// the caller, so that no closure is part of the future awaiting them.)
async fn each<U>(futures: Vec<impl Future<Output = Result<U>>>) -> Result<Vec<U>> {
    futures::stream::iter(futures)
        .buffered(CONCURRENCY)
        .try_collect()
        .await
}

impl JetStreamStore {
    fn events_bucket(&self) -> &kv::Store {
        &self.events.bucket
    }

    /// The revision to expect for `key` and its live value.
    async fn event_slot<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        what: &str,
    ) -> Result<(u64, Option<T>)> {
        match self
            .events_bucket()
            .entry(key)
            .await
            .map_err(|e| backend(what, e))?
        {
            None => Ok((0, None)),
            Some(entry) if entry.operation == kv::Operation::Put => {
                Ok((entry.revision, Some(decode(&entry)?)))
            }
            Some(entry) => Ok((entry.revision, None)),
        }
    }

    async fn read_event(&self, id: &str, what: &str) -> Result<(u64, Option<Stored>)> {
        self.event_slot(&record_key(id), what).await
    }

    /// Commits `entries` as one atomic batch (`None`: refused, nothing written), then
    /// purges the delete markers it left, in the background.
    async fn commit_events(
        &self,
        entries: &[BatchEntry],
        what: &str,
    ) -> Result<Option<HashMap<String, u64>>> {
        let done = batch::commit(&self.context, self.events_bucket(), entries, what).await?;
        if let Some(revisions) = &done {
            let markers: Vec<(String, u64)> = entries
                .iter()
                .filter(|(_, _, value)| value.is_none())
                .filter_map(|(key, _, _)| revisions.get(key).map(|r| (key.clone(), *r)))
                .collect();
            self.purge_markers(markers);
        }
        Ok(done)
    }

    /// Purges each key's delete marker (its messages up to the marker's sequence, so a
    /// later write of the key stays), in the background: a marker left over only costs
    /// a scan that reads it, and that scan purges it again.
    fn purge_markers(&self, markers: Vec<(String, u64)>) {
        if markers.is_empty() {
            return;
        }
        let stream = self.events_bucket().stream.clone();
        let prefix = self.events_bucket().prefix.clone();
        tokio::spawn(async move {
            let purges = markers.into_iter().map(|(key, revision)| {
                let stream = stream.clone();
                let subject = format!("{prefix}{key}");
                async move {
                    if let Err(e) = stream
                        .purge()
                        .filter(subject.as_str())
                        .sequence(revision + 1)
                        .await
                    {
                        tracing::debug!(subject, error = %e, "purging an event key's delete marker failed");
                    }
                }
            });
            futures::stream::iter(purges)
                .buffer_unordered(CONCURRENCY)
                .collect::<Vec<()>>()
                .await;
        });
    }

    /// The live state entries of `filters` (KV keys with wildcards), in no order; the
    /// delete markers met are purged. A scan the server did not answer is made again,
    /// with a fresh consumer ([`super::scan_again`]).
    async fn scan_states(&self, filters: &[String], what: &str) -> Result<Vec<State>> {
        super::scan_again(what, || self.scan_states_once(filters, what)).await
    }

    async fn scan_states_once(&self, filters: &[String], what: &str) -> Result<Vec<State>> {
        let bucket = self.events_bucket();
        let consumer = bucket
            .stream
            .create_consumer(pull::Config {
                filter_subjects: filters.iter().map(|f| format!("{}{f}", bucket.prefix)).collect(),
                deliver_policy: DeliverPolicy::LastPerSubject,
                ack_policy: AckPolicy::None,
                headers_only: true,
                memory_storage: true,
                inactive_threshold: std::time::Duration::from_secs(30),
                ..pull::Config::default()
            })
            .await
            .map_err(|e| backend(what, e))?;
        let name = consumer.cached_info().name.clone();
        let mut states = Vec::new();
        let mut markers = Vec::new();
        let mut pending = consumer.cached_info().num_pending;
        while pending > 0 {
            let mut batch = consumer
                .fetch()
                .max_messages(SCAN_BATCH)
                .messages()
                .await
                .map_err(|e| backend(what, e))?;
            let mut got = 0;
            while let Some(message) = batch.next().await {
                let message = message.map_err(|e| backend(what, e))?;
                let info = message.info().map_err(|e| backend(what, e))?;
                got += 1;
                pending = info.pending;
                let key = message
                    .subject
                    .strip_prefix(bucket.prefix.as_str())
                    .unwrap_or(&message.subject)
                    .to_owned();
                let marker = message.headers.as_ref().is_some_and(|h| {
                    h.get("KV-Operation").is_some() || h.get("Nats-Marker-Reason").is_some()
                });
                if marker {
                    markers.push((key, info.stream_sequence));
                } else if let Some(state) = State::parse(&key) {
                    states.push(state);
                }
            }
            if got < SCAN_BATCH {
                break;
            }
        }
        self.purge_markers(markers);
        // Deleted now rather than left to its inactivity threshold: claims scan often.
        let stream = bucket.stream.clone();
        tokio::spawn(async move {
            if let Err(e) = stream.delete_consumer(&name).await {
                tracing::debug!(consumer = name, error = %e, "deleting a scan's consumer failed");
            }
        });
        Ok(states)
    }

    /// Reads the event of `id` and changes it with `f` (on the revision read, again while
    /// another writer comes between); the record after the change (or, deleted, before),
    /// `None` when `f` kept it or there was none.
    async fn modify_event(
        &self,
        id: &str,
        what: &str,
        f: impl Fn(&Stored) -> Change,
    ) -> Result<Option<Stored>> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (revision, stored) = self.read_event(id, what).await?;
            let Some(stored) = stored else {
                return Ok(None);
            };
            let mut entries = Vec::new();
            let answer = match f(&stored) {
                Change::Keep => return Ok(None),
                Change::Write(mut after) => {
                    change(&mut entries, revision, Some(&stored), Some(&mut after), what)?;
                    *after
                }
                Change::Delete => {
                    change(&mut entries, revision, Some(&stored), None, what)?;
                    // Its idempotency key goes with it, so that the key is free again.
                    if let Some(key) = &stored.idempotency_key {
                        let key = holder_key(&stored.namespace, &stored.function, key);
                        let (key_revision, holder) = self.event_slot::<Holder>(&key, what).await?;
                        if holder.is_some_and(|h| h.id == stored.id) {
                            entries.push((key, key_revision, None));
                        }
                    }
                    stored
                }
            };
            if self.commit_events(&entries, what).await?.is_some() {
                return Ok(Some(answer));
            }
        }
        Err(contended(what))
    }

    /// The events of one function with `status`, newest `created_us` first (then greatest
    /// id), after `before`, at most `limit`: its state entries of that status scanned,
    /// then the records of the page read.
    async fn function_events(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        status: EventStatus,
        before: Option<&(UnixMicros, String)>,
        limit: usize,
        what: &str,
    ) -> Result<Vec<EventRecord>> {
        let statuses: &[&str] = match status {
            EventStatus::Pending => &["q", "r"],
            EventStatus::Succeeded => &["s"],
            EventStatus::Failed => &["f"],
        };
        let filters: Vec<String> = statuses
            .iter()
            .map(|s| format!("st.{namespace}.{function}.{s}.>"))
            .collect();
        let mut states: Vec<State> = self
            .scan_states(&filters, what)
            .await?
            .into_iter()
            .filter(|s| before.is_none_or(|(us, id)| (s.created_us, &s.id) < (*us, id)))
            .collect();
        states.sort_by(|a, b| (b.created_us, &b.id).cmp(&(a.created_us, &a.id)));
        let mut records = Vec::new();
        for page in states.chunks(limit.clamp(1, CONCURRENCY)) {
            if records.len() >= limit {
                break;
            }
            let read = each(
                page.iter()
                    .map(|state| async move {
                        let (_, stored) = self.read_event(&state.id, what).await?;
                        Ok(stored.filter(|s| s.state == state.key))
                    })
                    .collect::<Vec<_>>(),
            )
            .await?;
            for stored in read.into_iter().flatten() {
                if records.len() < limit {
                    records.push(stored.record()?);
                }
            }
        }
        Ok(records)
    }

    /// The ids a redrive or purge looks at: `ids`, or the function's dead letters.
    async fn dead_letter_ids(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        ids: Option<&[String]>,
        what: &str,
    ) -> Result<Vec<String>> {
        match ids {
            Some(ids) => Ok(ids.to_vec()),
            None => {
                let filter = format!("st.{namespace}.{function}.f.>");
                let mut states = self.scan_states(&[filter], what).await?;
                states.sort_by(|a, b| (a.created_us, &a.id).cmp(&(b.created_us, &b.id)));
                Ok(states.into_iter().map(|s| s.id).collect())
            }
        }
    }
}

#[async_trait]
impl Events for JetStreamStore {
    /// Reads the outcomes' records together; for those still pending, sends their
    /// follow-up messages through [`crate::Queues::send_messages`] (which stores a message
    /// under its id expecting none, so a retried call stores none twice), then records
    /// their follow-up events with the new events (one atomic batch per slice, one for 256
    /// events without keys; ids deduplicated, so a retried call skips the follow-ups it
    /// wrote), and only then commits the outcomes, as one batch expecting the revisions
    /// read. So follow-ups are written first, as the trait asks of a backend without
    /// transactions; one may outlive an outcome that a racing deletion of its event
    /// (purge, [`Events::forget_function`]) made the store skip.
    async fn write_events(
        &self,
        events: &[NewEvent],
        idempotent_since: UnixMicros,
        outcomes: &[EventOutcome],
        now: UnixMillis,
    ) -> Result<Vec<Enqueued>> {
        if events.is_empty() && outcomes.is_empty() {
            return Ok(Vec::new());
        }
        let what = match (events.len(), outcomes.len()) {
            (n, 0) => format!("recording async events (a batch of {n})"),
            (0, n) => format!("recording async outcomes (a batch of {n})"),
            (n, m) => format!("recording async events and outcomes (batches of {n} and {m})"),
        };
        let what = what.as_str();
        let read = each(
            outcomes
                .iter()
                .map(|outcome| async move { Ok((outcome, self.read_event(&outcome.id, what).await?)) })
                .collect::<Vec<_>>(),
        )
        .await?;
        let mut applying = Vec::new();
        for (outcome, (revision, stored)) in read {
            match stored {
                Some(stored)
                    if stored.namespace == outcome.namespace && stored.status == EventStatus::Pending =>
                {
                    applying.push(Applying {
                        outcome,
                        revision,
                        stored,
                    });
                }
                _ => tracing::debug!(
                    namespace = outcome.namespace.as_str(),
                    event = outcome.id,
                    "an outcome for an event no longer pending was skipped"
                ),
            }
        }
        self.send_follow_up_messages(&applying, now).await?;
        // A follow-up event whose key is held, however long ago, is skipped (as SQLite's
        // insert that conflicts does).
        let mut all: Vec<(&NewEvent, UnixMicros)> = applying
            .iter()
            .flat_map(|a| &a.outcome.follow_ups)
            .filter_map(|f| match f {
                FollowUp::Event(event) => Some((event, UnixMicros::MIN)),
                FollowUp::Message { .. } => None,
            })
            .collect();
        let follow_ups = all.len();
        all.extend(events.iter().map(|e| (e, idempotent_since)));
        let mut answers = self.insert_events(&all, what).await?;
        self.apply_outcomes(applying, now, what).await?;
        Ok(answers.split_off(follow_ups))
    }

    /// Scans the pending, unleased events' state entries (`st.*.*.q.>`: the backlog, not
    /// the succeeded or dead events), sorts the due ones by `run_at` and `created_us`,
    /// reads the first `limit` records together and commits their claims as one batch,
    /// each expecting its record's revision (refused, each is committed on its own, and
    /// those another node took meanwhile are passed over for the next due ones). The
    /// lease is held by this node (`self.node`).
    async fn claim_events(
        &self,
        now: UnixMillis,
        now_us: UnixMicros,
        lease_until: UnixMillis,
        limit: usize,
    ) -> Result<Vec<EventRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let what = format!("claiming up to {limit} due async events");
        let what = what.as_str();
        let mut due: Vec<State> = self
            .scan_states(&["st.*.*.q.>".to_owned()], what)
            .await?
            .into_iter()
            .filter(|s| s.run_at <= now)
            .collect();
        due.sort_by(|a, b| (a.run_at, a.created_us, &a.id).cmp(&(b.run_at, b.created_us, &b.id)));
        let mut claimed: Vec<Stored> = Vec::new();
        let mut next = 0;
        while claimed.len() < limit && next < due.len() {
            let take = &due[next..due.len().min(next + limit - claimed.len())];
            next += take.len();
            let read = each(
                take.iter()
                    .map(|state| async move {
                        let (revision, stored) = self.read_event(&state.id, what).await?;
                        Ok((
                            revision,
                            stored
                                .filter(|s| s.state == state.key && s.pending_unleased() && s.run_at <= now),
                        ))
                    })
                    .collect::<Vec<_>>(),
            )
            .await?;
            let mut units = Vec::new();
            for (revision, stored) in read {
                let Some(stored) = stored else { continue };
                let mut after = stored.clone();
                after.leased_until = Some(lease_until);
                after.holder = Some(self.node.clone());
                after.first_run_us = after.first_run_us.or(Some(now_us));
                let mut entries = Vec::new();
                change(&mut entries, revision, Some(&stored), Some(&mut after), what)?;
                units.push((entries, after));
            }
            let all: Vec<BatchEntry> = units.iter().flat_map(|(e, _)| e.iter().cloned()).collect();
            // A failure after some events were claimed returns those: dropped, they would
            // stay leased to this node, which is alive and would never run them.
            match self.commit_events(&all, what).await {
                Ok(Some(_)) => {
                    claimed.extend(units.into_iter().map(|(_, after)| after));
                    continue;
                }
                Ok(None) => {}
                Err(e) if claimed.is_empty() => return Err(e),
                Err(e) => {
                    tracing::warn!("{what}: {e}; running the {} claimed before", claimed.len());
                    break;
                }
            }
            // One was taken meanwhile: each on its own, so the others still go.
            let alone = each(
                units
                    .into_iter()
                    .map(|(entries, after)| async move {
                        Ok(self
                            .commit_events(&entries, what)
                            .await
                            .map(|done| done.map(|_| after)))
                    })
                    .collect::<Vec<_>>(),
            )
            .await?;
            let mut failed = None;
            for result in alone {
                match result {
                    Ok(Some(after)) => claimed.push(after),
                    Ok(None) => {}
                    Err(e) => failed = Some(e),
                }
            }
            if let Some(e) = failed {
                if claimed.is_empty() {
                    return Err(e);
                }
                tracing::warn!("{what}: {e}; running the {} claimed before", claimed.len());
                break;
            }
        }
        claimed.sort_by(|a, b| (a.run_at, a.created_us, &a.id).cmp(&(b.run_at, b.created_us, &b.id)));
        claimed.iter().map(Stored::record).collect()
    }

    /// Releases the leases held by this node (`self.node`, a name a node keeps across
    /// restarts), and only those: another node's leases are its runs in flight.
    async fn release_event_leases(&self) -> Result<u64> {
        self.release_leases_of(&self.node).await
    }

    /// Scans `st.*.*.r.NODE.>`, then changes each event on its revision (an event another
    /// node released or resolved meanwhile is left as it is).
    async fn release_node_leases(&self, node: &str) -> Result<u64> {
        if !super::is_key_token(node) {
            return Ok(0);
        }
        self.release_leases_of(node).await
    }

    /// Scans `st.*.*.r.NODE.>` for this node's leased events, then reads their records
    /// (the state key does not hold `leased_until`).
    async fn held_leases(&self) -> Result<Vec<HeldLease>> {
        let what = format!("listing the leases of async events held by node `{}`", self.node);
        let what = what.as_str();
        let filter = format!("st.*.*.r.{}.>", self.node);
        let states = self.scan_states(&[filter], what).await?;
        let read = each(
            states
                .iter()
                .map(|state| async move { Ok(self.read_event(&state.id, what).await?.1) })
                .collect::<Vec<_>>(),
        )
        .await?;
        Ok(read
            .into_iter()
            .flatten()
            .filter(|s| s.status == EventStatus::Pending && s.holder.as_deref() == Some(self.node.as_str()))
            .filter_map(|s| {
                s.leased_until.map(|leased_until| HeldLease {
                    id: s.id,
                    leased_until,
                })
            })
            .collect())
    }

    /// Changes each event on its revision, if it is still leased by this node until the
    /// same time.
    async fn release_leases(&self, leases: &[HeldLease]) -> Result<u64> {
        let what = format!(
            "releasing {} leases of async events held by node `{}`",
            leases.len(),
            self.node
        );
        let what = what.as_str();
        let node = self.node.as_str();
        let released = each(
            leases
                .iter()
                .map(|lease| async move {
                    self.modify_event(&lease.id, what, |stored| {
                        release(stored, node, Some(lease.leased_until))
                    })
                    .await
                })
                .collect::<Vec<_>>(),
        )
        .await?;
        Ok(released.iter().flatten().count() as u64)
    }

    /// Scans the namespace's (or function's) pending, unleased events' state entries, and
    /// changes those due later whose record says they are held for `code`.
    async fn release_held_events(
        &self,
        namespace: &Namespace,
        function: Option<&FunctionName>,
        code: ErrorCode,
        now: UnixMillis,
    ) -> Result<u64> {
        let what = format!("releasing the held async events of `{namespace}`");
        let what = what.as_str();
        let function = function.map_or("*".to_owned(), ToString::to_string);
        let filter = format!("st.{namespace}.{function}.q.>");
        let prefix = format!("{}:", code.as_str());
        let prefix = prefix.as_str();
        let later: Vec<State> = self
            .scan_states(&[filter], what)
            .await?
            .into_iter()
            .filter(|s| s.run_at > now)
            .collect();
        let released = each(
            later
                .into_iter()
                .map(|state| async move {
                    self.modify_event(&state.id, what, |stored| {
                        let held = stored
                            .last_error
                            .as_deref()
                            .is_some_and(|e| e.starts_with(prefix));
                        if &stored.namespace != namespace
                            || !stored.pending_unleased()
                            || stored.run_at <= now
                            || !held
                        {
                            return Change::Keep;
                        }
                        let mut after = stored.clone();
                        let unserved = u64::try_from(stored.run_at - now).unwrap_or(0);
                        after.held_ms = stored.held_ms.saturating_sub(unserved);
                        after.run_at = now;
                        Change::Write(Box::new(after))
                    })
                    .await
                })
                .collect::<Vec<_>>(),
        )
        .await?;
        Ok(released.iter().flatten().count() as u64)
    }

    /// Scans the pending, unleased events' state entries (their keys hold `run_at`).
    async fn next_event_due(&self) -> Result<Option<UnixMillis>> {
        let what = "reading when the next async event is due";
        let states = self.scan_states(&["st.*.*.q.>".to_owned()], what).await?;
        Ok(states.iter().map(|s| s.run_at).min())
    }

    /// One read of the event's record.
    async fn get_event(&self, namespace: &Namespace, id: &str) -> Result<Option<EventRecord>> {
        let what = format!("reading async event `{id}` in `{namespace}`");
        let (_, stored) = self.read_event(id, &what).await?;
        stored
            .filter(|s| &s.namespace == namespace)
            .map(|s| s.record())
            .transpose()
    }

    /// Scans the function's state entries of `status`, then reads the records listed.
    async fn list_events(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        status: EventStatus,
        limit: usize,
    ) -> Result<Vec<EventRecord>> {
        let what = format!(
            "listing the {} async events of `{namespace}/{function}`",
            status.as_str()
        );
        self.function_events(namespace, function, status, None, limit, &what)
            .await
    }

    /// Scans the function's state entries of the status (keys only), then reads the
    /// records of the page.
    async fn browse_events(&self, query: &EventQuery) -> Result<Vec<EventRecord>> {
        let what = format!("listing the async events of `{}`", query.namespace);
        self.function_events(
            &query.namespace,
            &query.function,
            query.status,
            query.before.as_ref(),
            query.limit,
            &what,
        )
        .await
    }

    /// Scans the function's state entries (keys only, no record read).
    async fn event_counts(&self, namespace: &Namespace, function: &FunctionName) -> Result<EventCounts> {
        let what = format!("counting the async events of `{namespace}/{function}`");
        let filter = format!("st.{namespace}.{function}.>");
        let mut counts = EventCounts::default();
        for state in self.scan_states(&[filter], &what).await? {
            match state.status {
                'q' => counts.queued += 1,
                'r' => counts.running += 1,
                's' => counts.succeeded += 1,
                'f' => counts.failed += 1,
                _ => {}
            }
        }
        Ok(counts)
    }

    /// Scans the state entries of every pending and dead event (of the namespace, or of
    /// all): keys only, no record read. (The trait's sketch, a stream's per-subject counts,
    /// would need a subject per function and status; here each event has a key of its own,
    /// for its compare-and-set, so the same counts come from its state keys, one per
    /// pending or dead event, and the oldest pending from their `CREATED`.)
    async fn event_backlog(&self, namespace: Option<&Namespace>) -> Result<Vec<EventBacklog>> {
        let what = "counting the async backlog";
        let namespace = namespace.map_or("*".to_owned(), ToString::to_string);
        let filters: Vec<String> = ["q", "r", "f"]
            .iter()
            .map(|s| format!("st.{namespace}.*.{s}.>"))
            .collect();
        let mut backlog: BTreeMap<(String, String), (u64, u64, u64, Option<UnixMicros>)> = BTreeMap::new();
        for state in self.scan_states(&filters, what).await? {
            let counts = backlog
                .entry((state.namespace.clone(), state.function.clone()))
                .or_default();
            match state.status {
                'q' => counts.0 += 1,
                'r' => counts.1 += 1,
                'f' => counts.2 += 1,
                _ => continue,
            }
            if state.status != 'f' {
                counts.3 = Some(counts.3.map_or(state.created_us, |c| c.min(state.created_us)));
            }
        }
        backlog
            .into_iter()
            .map(|((ns, function), (queued, running, failed, oldest))| {
                let corrupt = |what: String| {
                    StoreError::Corrupt(format!(
                        "a state entry of async events of `{ns}/{function}` has a bad {what}"
                    ))
                };
                Ok(EventBacklog {
                    namespace: Namespace::new(ns.as_str()).map_err(|e| corrupt(format!("namespace: {e}")))?,
                    function: FunctionName::new(function.as_str())
                        .map_err(|e| corrupt(format!("function name: {e}")))?,
                    queued,
                    running,
                    failed,
                    oldest_pending_ms: oldest.map(|us| us.div_euclid(1000)),
                })
            })
            .collect()
    }

    /// Scans the function's dead letters' state entries (unless `ids` names them), then
    /// changes each on its revision.
    async fn redrive_events(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        ids: Option<&[String]>,
        now: UnixMillis,
        now_us: UnixMicros,
    ) -> Result<Vec<String>> {
        let what = format!("redriving the dead letters of `{namespace}/{function}`");
        let what = what.as_str();
        let ids = self.dead_letter_ids(namespace, function, ids, what).await?;
        let redriven = each(
            ids.into_iter()
                .map(|id| async move {
                    self.modify_event(&id, what, |stored| {
                        if &stored.namespace != namespace
                            || &stored.function != function
                            || stored.status != EventStatus::Failed
                        {
                            return Change::Keep;
                        }
                        let mut after = stored.clone();
                        after.status = EventStatus::Pending;
                        after.attempts = 0;
                        after.chain_depth = 0;
                        after.leased_until = None;
                        after.holder = None;
                        after.created_us = now_us;
                        after.first_run_us = None;
                        after.run_at = now;
                        after.failure = None;
                        after.result = None;
                        after.updated_at = now;
                        Change::Write(Box::new(after))
                    })
                    .await
                })
                .collect::<Vec<_>>(),
        )
        .await?;
        Ok(redriven.into_iter().flatten().map(|s| s.id).collect())
    }

    /// As [`Events::redrive_events`], deleting each dead letter (and its idempotency key
    /// entry).
    async fn purge_events(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        ids: Option<&[String]>,
    ) -> Result<u64> {
        let what = format!("purging the dead letters of `{namespace}/{function}`");
        let what = what.as_str();
        let ids = self.dead_letter_ids(namespace, function, ids, what).await?;
        let purged = each(
            ids.into_iter()
                .map(|id| async move {
                    self.modify_event(&id, what, |stored| {
                        if &stored.namespace == namespace
                            && &stored.function == function
                            && stored.status == EventStatus::Failed
                        {
                            Change::Delete
                        } else {
                            Change::Keep
                        }
                    })
                    .await
                })
                .collect::<Vec<_>>(),
        )
        .await?;
        Ok(purged.iter().flatten().count() as u64)
    }

    /// Scans the succeeded events' state entries (their keys hold `created_us`), then
    /// deletes the old ones, each with its idempotency key entry.
    async fn sweep_events(&self, before_us: UnixMicros) -> Result<u64> {
        let what = "sweeping old succeeded async events";
        let old: Vec<State> = self
            .scan_states(&["st.*.*.s.>".to_owned()], what)
            .await?
            .into_iter()
            .filter(|s| s.created_us < before_us)
            .collect();
        let swept = each(
            old.into_iter()
                .map(|state| async move {
                    self.modify_event(&state.id, what, |stored| {
                        if stored.status == EventStatus::Succeeded && stored.created_us < before_us {
                            Change::Delete
                        } else {
                            Change::Keep
                        }
                    })
                    .await
                })
                .collect::<Vec<_>>(),
        )
        .await?;
        Ok(swept.iter().flatten().count() as u64)
    }

    /// Scans the function's state entries, then deletes each event on its revision.
    async fn forget_function(&self, namespace: &Namespace, function: &FunctionName) -> Result<()> {
        let what = format!("forgetting the async events of `{namespace}/{function}`");
        let what = what.as_str();
        let filter = format!("st.{namespace}.{function}.>");
        let states = self.scan_states(&[filter], what).await?;
        each(
            states
                .into_iter()
                .map(|state| async move {
                    self.modify_event(&state.id, what, |stored| {
                        if &stored.namespace == namespace && &stored.function == function {
                            Change::Delete
                        } else {
                            Change::Keep
                        }
                    })
                    .await
                })
                .collect::<Vec<_>>(),
        )
        .await?;
        Ok(())
    }
}

impl JetStreamStore {
    /// Releases the leases node `node` holds (see [`Events::release_node_leases`]).
    async fn release_leases_of(&self, node: &str) -> Result<u64> {
        let what = format!("releasing the leases of async events held by node `{node}`");
        let what = what.as_str();
        let filter = format!("st.*.*.r.{node}.>");
        let states = self.scan_states(&[filter], what).await?;
        let released = each(
            states
                .into_iter()
                .map(|state| async move {
                    self.modify_event(&state.id, what, |stored| release(stored, node, None))
                        .await
                })
                .collect::<Vec<_>>(),
        )
        .await?;
        Ok(released.iter().flatten().count() as u64)
    }
}

#[cfg(test)]
mod tests;
