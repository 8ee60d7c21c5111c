//! The JetStream [`Usage`]: what each invocation and each capacity add counts, as deltas on
//! stream `{prefix}_usage_deltas`, folded into hourly rows in bucket `{prefix}_usage`.
//!
//! # Design
//!
//! Usage is billed, so each run must be counted exactly once, and it is never capped: it
//! cannot be read back later from the invocations stream, which is capped and purged per
//! function. Counting is two steps:
//!
//! - **Deltas.** [`JetStreamStore::count_invocations`], which
//!   [`Records::append_invocations`](crate::Records::append_invocations) calls *before* it
//!   publishes the records, publishes one small delta per record on
//!   `{prefix}.usage.inv`, with the record's run (namespace, function, invocation id,
//!   start) as `Nats-Msg-Id`, the id the invocations stream dedupes the record on. The
//!   stream's duplicate window ([`DUPLICATE_WINDOW`]) drops a delta whose run it has seen:
//!   a retried batch, a run twice in one batch, or a later batch repeating a run is not
//!   counted again, while each new run is, whichever batch it comes in. A delta per record
//!   rather than per batch because the dedupe must be per run, and decided before the
//!   records are written: counting after them (from the records' publish acks saying which
//!   were duplicates) would lose the count of a batch whose process died between the two,
//!   since the engine's writer keeps no batch across a crash. Published first, a delta is
//!   the durable count; a crash after it and before the record keeps the run billed (it
//!   did run), and a retry writes the record without counting it twice.
//!   [`Usage::add_capacity`] publishes one message per call on `{prefix}.usage.cap` with
//!   a fresh id, published again with the same id when its acknowledgement is lost, so a
//!   capacity add that reached the stream is not added twice by the retry.
//! - **Fold.** [`JetStreamStore::fold_usage`] reads the deltas after the bucket's
//!   `cursor` entry (the sequence through which every delta is in the rows), adds them to
//!   one entry per namespace × function × version × hour, and moves the cursor. Each row
//!   keeps the sequence of the last delta in it (`through`), and a fold adds to a row only
//!   the deltas after that sequence, by compare-and-set on the row's revision: so folds on
//!   several nodes at once, or one that died after writing some rows and not the cursor,
//!   never add a delta twice (every delta of a row up to its `through` is in it, and every
//!   delta up to the cursor is in its row). Any node folds: after a batch of records or a
//!   capacity add (unless its last fold began less than [`FOLD_EVERY`] ago or still
//!   runs), and before every read, so a read counts everything appended before it.
//! - **Purge.** Folded deltas are purged, except those of the last [`DUPLICATE_WINDOW`]
//!   (by the server's timestamps): the server's dedupe table outlives a purge, but a
//!   restarted server rebuilds it from the messages it keeps. So the stream holds the
//!   deltas not yet folded and about two minutes more, and a retry within the window is
//!   dropped as the record's is.
//!
//! Rows: key `r.NAMESPACE.DAY.HOUR.FUNCTION.VERSION` (day and hour as their first
//! millisecond; the version as `v` and its text when that is a key token, else `x` and
//! the hex of its bytes), value the row as JSON. A query reads the rows' last values in
//! one ordered consumer over the bucket's stream, its filter one subject per day of the
//! query (namespace and function in it when given), so a read touches the days asked for
//! and not the whole history; past [`MAX_DAY_FILTERS`] days it filters by namespace and
//! function only. Rows are never deleted.
//!
//! Across nodes: counts are exact for runs repeated within the duplicate window (as the
//! records are), whichever nodes append and fold. A run appended again after the window
//! is counted again (the trait allows it: the first copy is no longer known).

use super::audit::DUPLICATE_WINDOW;
use super::{JetStreamStore, MAX_CAS_ATTEMPTS, Written, backend, contended, create, encode, update};
use crate::usage::{DAY_MS, hour_of};
use crate::{CapacityHeld, InvocationRecord, Result, StoreError, Usage, UsageGrouping, UsageQuery, UsageRow};
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, kv, stream};
use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wisp_core::{FunctionName, Namespace, UnixMillis, VersionId};

/// How many publishes a batch of deltas sends before it awaits their acknowledgements
/// (as the records' batches do).
const ACKS_IN_FLIGHT: usize = 512;

/// How many deltas one pass of a fold reads before it writes the rows and the cursor, so
/// a long backlog is folded in bounded memory.
const FOLD_CHUNK: usize = 10_000;

/// How many days a query names one by one in its filter; a longer query filters by
/// namespace and function only.
const MAX_DAY_FILTERS: i64 = 400;

/// How often at most a node folds after its appends and capacity adds (reads fold
/// always): each fold costs a few requests and a compare-and-set per row touched.
const FOLD_EVERY: Duration = Duration::from_secs(1);

/// How many times a capacity add publishes its message when the acknowledgement is lost.
const PUBLISH_ATTEMPTS: usize = 3;

/// How much older than the duplicate window the first delta kept must be before a fold
/// purges: purges come in steps of about this much, not after every fold.
const PURGE_SLACK: Duration = Duration::from_secs(60);

/// The key of the fold's cursor in the bucket.
const CURSOR: &str = "cursor";

/// What this concern keeps, behind an `Arc`: the store is cloned often and its futures
/// hold it, and streams with their cached info are large.
#[derive(Clone)]
pub(super) struct Parts(Arc<Inner>);

pub(super) struct Inner {
    /// Stream `{prefix}_usage_deltas`: deltas not yet folded (and the last window's).
    deltas: stream::Stream,
    /// Bucket `{prefix}_usage`: the rows and the cursor.
    rows: kv::Store,
    /// The bucket's stream, read directly to fetch many rows in one pass.
    rows_stream: stream::Stream,
    /// Held while this process folds, with when its last fold began: folds after appends
    /// skip when one runs or ran less than [`FOLD_EVERY`] ago (an optimisation: folds on
    /// other nodes run at the same time, safely).
    folding: tokio::sync::Mutex<Option<Instant>>,
}

impl std::ops::Deref for Parts {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Opens bucket `{prefix}_usage` and stream `{prefix}_usage_deltas`, making them if they
/// do not exist.
pub(super) async fn open(context: &jetstream::Context, prefix: &str) -> Result<Parts> {
    let name = format!("{prefix}_usage_deltas");
    let deltas = context
        .get_or_create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{prefix}.usage.*")],
            duplicate_window: DUPLICATE_WINDOW,
            ..stream::Config::default()
        })
        .await
        .map_err(|e| backend(format!("opening the JetStream stream `{name}`"), e))?;
    let rows = super::bucket(context, prefix, "usage").await?;
    let stream_name = format!("KV_{prefix}_usage");
    let rows_stream = context
        .get_stream(&stream_name)
        .await
        .map_err(|e| backend(format!("opening the JetStream stream `{stream_name}`"), e))?;
    Ok(Parts(Arc::new(Inner {
        deltas,
        rows,
        rows_stream,
        folding: tokio::sync::Mutex::new(None),
    })))
}

/// The sums a delta adds and a row holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
struct Sums {
    requests: u64,
    errors: u64,
    billed_ms: u64,
    mb_ms: u64,
    reserved_mb_ms: u64,
    capacity_mb_ms: u64,
}

impl Sums {
    /// Adds `other`, each sum saturating at `i64::MAX` as SQLite's do.
    fn add(&mut self, other: &Sums) {
        let add = |a: u64, b: u64| a.saturating_add(b).min(i64::MAX as u64);
        self.requests = add(self.requests, other.requests);
        self.errors = add(self.errors, other.errors);
        self.billed_ms = add(self.billed_ms, other.billed_ms);
        self.mb_ms = add(self.mb_ms, other.mb_ms);
        self.reserved_mb_ms = add(self.reserved_mb_ms, other.reserved_mb_ms);
        self.capacity_mb_ms = add(self.capacity_mb_ms, other.capacity_mb_ms);
    }
}

/// The row a delta adds to: namespace, function, version and hour.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct RowId {
    namespace: Namespace,
    function: FunctionName,
    version: VersionId,
    hour: UnixMillis,
}

impl RowId {
    fn key(&self) -> String {
        let day = self.hour.div_euclid(DAY_MS) * DAY_MS;
        format!(
            "r.{}.{day}.{}.{}.{}",
            self.namespace,
            self.hour,
            self.function,
            version_token(&self.version)
        )
    }
}

/// One delta: what to add to which row.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Delta {
    #[serde(flatten)]
    row: RowId,
    #[serde(flatten)]
    sums: Sums,
}

/// A row as the bucket keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Row {
    #[serde(flatten)]
    id: RowId,
    #[serde(flatten)]
    sums: Sums,
    /// The sequence of the last delta added (every delta of this row up to it is in).
    through: u64,
}

/// A version as one key token: `v` and its text when that is letters, digits, `-` and
/// `_`, else `x` and the hex of its bytes.
fn version_token(version: &VersionId) -> String {
    let text = &version.0;
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if plain {
        format!("v{text}")
    } else {
        let mut token = String::with_capacity(1 + text.len() * 2);
        token.push('x');
        for byte in text.bytes() {
            let _ = write!(token, "{byte:02x}");
        }
        token
    }
}

/// What an invocation record counts.
fn delta_of(record: &InvocationRecord) -> Delta {
    let mb_ms = u64::from(record.memory_mb).saturating_mul(record.billed_ms);
    Delta {
        row: RowId {
            namespace: record.namespace.clone(),
            function: record.function.clone(),
            version: record.version.clone(),
            hour: hour_of(record.started_at),
        },
        sums: Sums {
            requests: 1,
            errors: u64::from(record.error.is_some()),
            billed_ms: record.billed_ms,
            mb_ms,
            reserved_mb_ms: if record.reserved { mb_ms } else { 0 },
            capacity_mb_ms: 0,
        },
    }
}

/// The deltas a fold read: per row, each delta with its sequence, in stream order.
type Read = BTreeMap<RowId, Vec<(u64, Sums)>>;

impl JetStreamStore {
    /// Counts `records` into usage: publishes one delta per record, deduped on its run
    /// (the invocations stream's message id), then folds unless a fold of this process is
    /// already running. Called by `append_invocations` before it publishes the records.
    pub(super) async fn count_invocations(&self, records: &[InvocationRecord]) -> Result<()> {
        let what = format!(
            "counting the usage of invocation records (a batch of {})",
            records.len()
        );
        let subject = format!("{}.usage.inv", self.prefix);
        let mut acks = Vec::with_capacity(records.len().min(ACKS_IN_FLIGHT));
        for record in records {
            let payload = encode(&[delta_of(record)], &what)?;
            let id = format!(
                "{}.{}.{}.{}",
                record.namespace, record.function, record.id, record.started_at
            );
            let publish = PublishMessage::build().payload(payload.into()).message_id(id);
            let ack = self
                .context
                .send_publish(subject.clone(), publish)
                .await
                .map_err(|e| backend(&what, e))?;
            acks.push(ack);
            if acks.len() >= ACKS_IN_FLIGHT {
                for ack in acks.drain(..) {
                    ack.await.map_err(|e| backend(&what, e))?;
                }
            }
        }
        for ack in acks {
            ack.await.map_err(|e| backend(&what, e))?;
        }
        self.fold_unless_folding().await;
        Ok(())
    }

    /// Folds, unless this process is folding already or began its last fold less than
    /// [`FOLD_EVERY`] ago; a failure is only logged: the deltas are kept, and the next
    /// fold (at the latest, the next read's) adds them.
    async fn fold_unless_folding(&self) {
        let Ok(mut last) = self.usage.folding.try_lock() else {
            return;
        };
        if last.is_some_and(|at| at.elapsed() < FOLD_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(e) = self.fold_locked().await {
            tracing::warn!("cannot fold the usage deltas yet: {e}");
        }
    }

    /// Adds every delta published before the call to its row and moves the cursor past
    /// it, then purges the deltas folded and older than the duplicate window.
    pub(super) async fn fold_usage(&self) -> Result<()> {
        let mut last = self.usage.folding.lock().await;
        *last = Some(Instant::now());
        self.fold_locked().await
    }

    async fn fold_locked(&self) -> Result<()> {
        let what = "folding the usage deltas";
        let parts = &self.usage;
        let last = parts
            .deltas
            .get_info()
            .await
            .map_err(|e| backend(what, e))?
            .state
            .last_sequence;
        loop {
            let (cursor, revision) = self.cursor().await?;
            if cursor >= last {
                break;
            }
            let (read, through) = self.read_deltas(cursor, what).await?;
            for (row, deltas) in &read {
                self.add_to_row(row, deltas).await?;
            }
            // Nothing after the cursor: the deltas were folded and purged elsewhere
            // meanwhile (or are gone), so nothing published before the call is left.
            if through == cursor {
                break;
            }
            self.move_cursor(through, revision).await?;
        }
        self.purge_folded(DUPLICATE_WINDOW, PURGE_SLACK, what).await
    }

    /// The fold's cursor and its entry's revision (`None`: no fold yet).
    async fn cursor(&self) -> Result<(u64, Option<u64>)> {
        let what = "reading the usage fold's cursor";
        match super::live_entry(&self.usage.rows, CURSOR, what).await? {
            None => Ok((0, None)),
            Some(entry) => Ok((super::decode(&entry)?, Some(entry.revision))),
        }
    }

    /// Moves the cursor to `through` unless it is there or past it already.
    async fn move_cursor(&self, through: u64, mut revision: Option<u64>) -> Result<()> {
        let what = "moving the usage fold's cursor";
        for _ in 0..MAX_CAS_ATTEMPTS {
            let value = encode(&through, what)?;
            let written = match revision {
                None => create(&self.usage.rows, CURSOR, value, what).await?,
                Some(revision) => update(&self.usage.rows, CURSOR, value, revision, what).await?,
            };
            if let Written::Done(_) = written {
                return Ok(());
            }
            let (now, now_revision) = self.cursor().await?;
            if now >= through {
                return Ok(());
            }
            revision = now_revision;
        }
        Err(contended(what))
    }

    /// Reads at most [`FOLD_CHUNK`] deltas after `cursor`, grouped by row, and the
    /// sequence of the last read (`cursor` when none).
    async fn read_deltas(&self, cursor: u64, what: &str) -> Result<(Read, u64)> {
        let consumer = self
            .usage
            .deltas
            .create_consumer(pull::OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: cursor + 1,
                },
                ..pull::OrderedConfig::default()
            })
            .await
            .map_err(|e| backend(what, e))?;
        let mut read = Read::new();
        let mut through = cursor;
        if consumer.cached_info().num_pending == 0 {
            return Ok((read, through));
        }
        let mut messages = consumer.messages().await.map_err(|e| backend(what, e))?;
        let mut count = 0;
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| backend(what, e))?;
            let info = message.info().map_err(|e| backend(what, e))?;
            let (sequence, pending) = (info.stream_sequence, info.pending);
            let deltas: Vec<Delta> = serde_json::from_slice(&message.payload).map_err(|e| {
                StoreError::Corrupt(format!(
                    "usage delta {sequence} of JetStream stream `{}`: {e}",
                    self.usage.deltas.cached_info().config.name
                ))
            })?;
            for delta in deltas {
                read.entry(delta.row).or_default().push((sequence, delta.sums));
            }
            through = sequence;
            count += 1;
            if pending == 0 || count >= FOLD_CHUNK {
                break;
            }
        }
        Ok((read, through))
    }

    /// Adds to `row` the deltas after its `through`, by compare-and-set.
    async fn add_to_row(&self, id: &RowId, deltas: &[(u64, Sums)]) -> Result<()> {
        let key = id.key();
        let what = format!(
            "adding to the usage of `{}/{}` version `{}` hour {}",
            id.namespace, id.function, id.version, id.hour
        );
        let Some(&(last, _)) = deltas.last() else {
            return Ok(());
        };
        for _ in 0..MAX_CAS_ATTEMPTS {
            let entry = super::live_entry(&self.usage.rows, &key, &what).await?;
            let mut row = match &entry {
                Some(entry) => super::decode::<Row>(entry)?,
                None => Row {
                    id: id.clone(),
                    sums: Sums::default(),
                    through: 0,
                },
            };
            if row.through >= last {
                return Ok(());
            }
            for (sequence, sums) in deltas {
                if *sequence > row.through {
                    row.sums.add(sums);
                }
            }
            row.through = last;
            let value = encode(&row, &what)?;
            let written = match &entry {
                None => create(&self.usage.rows, &key, value, &what).await?,
                Some(entry) => update(&self.usage.rows, &key, value, entry.revision, &what).await?,
            };
            if let Written::Done(_) = written {
                return Ok(());
            }
        }
        Err(contended(what))
    }

    /// Purges the deltas the cursor has passed, keeping those of the last `keep` (the
    /// duplicate window, by the server's clock) so that a restarted server still drops
    /// their repeats; only once the first delta kept is `slack` older than that. A purge
    /// that races another is harmless: both drop only folded deltas.
    async fn purge_folded(&self, keep: Duration, slack: Duration, what: &str) -> Result<()> {
        let deltas = &self.usage.deltas;
        let state = deltas.get_info().await.map_err(|e| backend(what, e))?.state;
        let recent = state.last_timestamp - keep;
        if state.messages == 0 || state.first_timestamp >= recent - slack {
            return Ok(());
        }
        let (cursor, _) = self.cursor().await?;
        // The first delta of the window: purging stops there, or at the cursor.
        let consumer = deltas
            .create_consumer(pull::OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartTime { start_time: recent },
                ..pull::OrderedConfig::default()
            })
            .await
            .map_err(|e| backend(what, e))?;
        let first_recent = if consumer.cached_info().num_pending == 0 {
            state.last_sequence + 1
        } else {
            let mut messages = consumer.messages().await.map_err(|e| backend(what, e))?;
            match messages.next().await {
                Some(message) => {
                    let message = message.map_err(|e| backend(what, e))?;
                    message.info().map_err(|e| backend(what, e))?.stream_sequence
                }
                None => state.last_sequence + 1,
            }
        };
        let below = first_recent.min(cursor + 1);
        if below > state.first_sequence {
            deltas
                .purge()
                .sequence(below)
                .await
                .map_err(|e| backend(what, e))?;
        }
        Ok(())
    }

    /// The rows `query` selects: the last value of each row key its filter matches, with
    /// the hours outside the query left out.
    async fn rows(&self, query: &UsageQuery) -> Result<Vec<Row>> {
        let what = match &query.namespace {
            Some(ns) => format!("reading the usage of `{ns}`"),
            None => "reading the usage of every namespace".to_owned(),
        };
        let first_hour = hour_of(query.from);
        if first_hour >= query.to {
            return Ok(Vec::new());
        }
        let namespace = query.namespace.as_ref().map_or("*".to_owned(), |n| n.to_string());
        let function = query.function.as_ref().map_or("*".to_owned(), |f| f.to_string());
        let bucket = &self.usage.rows.name;
        let first_day = first_hour.div_euclid(DAY_MS);
        let last_day = (query.to - 1).div_euclid(DAY_MS);
        let filters: Vec<String> = if last_day - first_day < MAX_DAY_FILTERS {
            (first_day..=last_day)
                .map(|day| format!("$KV.{bucket}.r.{namespace}.{}.*.{function}.*", day * DAY_MS))
                .collect()
        } else {
            vec![format!("$KV.{bucket}.r.{namespace}.*.*.{function}.*")]
        };
        let consumer = self
            .usage
            .rows_stream
            .create_consumer(pull::OrderedConfig {
                filter_subjects: filters,
                deliver_policy: DeliverPolicy::LastPerSubject,
                ..pull::OrderedConfig::default()
            })
            .await
            .map_err(|e| backend(&what, e))?;
        let mut rows = Vec::new();
        if consumer.cached_info().num_pending == 0 {
            return Ok(rows);
        }
        let mut messages = consumer.messages().await.map_err(|e| backend(&what, e))?;
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| backend(&what, e))?;
            let info = message.info().map_err(|e| backend(&what, e))?;
            let (sequence, pending) = (info.stream_sequence, info.pending);
            let row: Row = serde_json::from_slice(&message.payload).map_err(|e| {
                StoreError::Corrupt(format!(
                    "usage row `{}` of JetStream bucket `{bucket}` (revision {sequence}): {e}",
                    message.subject
                ))
            })?;
            if row.id.hour >= first_hour && row.id.hour < query.to {
                rows.push(row);
            }
            if pending == 0 {
                break;
            }
        }
        Ok(rows)
    }
}

/// The group of `row` under `grouping`: namespace, function, version and period.
type Group = (
    Namespace,
    Option<FunctionName>,
    Option<VersionId>,
    Option<UnixMillis>,
);

fn group_of(row: &Row, grouping: UsageGrouping) -> Group {
    let id = &row.id;
    let ns = id.namespace.clone();
    match grouping {
        UsageGrouping::Namespace => (ns, None, None, None),
        UsageGrouping::Function => (ns, Some(id.function.clone()), None, None),
        UsageGrouping::Version => (ns, Some(id.function.clone()), Some(id.version.clone()), None),
        UsageGrouping::Day => (ns, None, None, Some(id.hour.div_euclid(DAY_MS) * DAY_MS)),
        UsageGrouping::Hour => (ns, None, None, Some(id.hour)),
    }
}

#[async_trait]
impl Usage for JetStreamStore {
    /// Folds every delta published before the call, then sums the rows the query
    /// selects: a read sees every append and capacity add that returned before it.
    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>> {
        self.fold_usage().await?;
        let mut groups: BTreeMap<Group, Sums> = BTreeMap::new();
        for row in self.rows(query).await? {
            groups
                .entry(group_of(&row, query.group_by))
                .or_default()
                .add(&row.sums);
        }
        Ok(groups
            .into_iter()
            .map(|((namespace, function, version, period), sums)| UsageRow {
                namespace,
                function,
                version,
                period,
                requests: sums.requests,
                errors: sums.errors,
                billed_ms: sums.billed_ms,
                mb_ms: sums.mb_ms,
                reserved_mb_ms: sums.reserved_mb_ms,
                capacity_mb_ms: sums.capacity_mb_ms,
            })
            .collect())
    }

    /// Publishes the call's adds as one message with a fresh id, published again with
    /// that id when the acknowledgement is lost (so a retry that finds it stored adds
    /// nothing), then folds unless a fold of this process runs.
    async fn add_capacity(&self, held: &[CapacityHeld]) -> Result<()> {
        if held.is_empty() {
            return Ok(());
        }
        let what = format!("recording reserved capacity of {} versions", held.len());
        let deltas: Vec<Delta> = held
            .iter()
            .map(|h| Delta {
                row: RowId {
                    namespace: h.namespace.clone(),
                    function: h.function.clone(),
                    version: h.version.clone(),
                    hour: hour_of(h.hour),
                },
                sums: Sums {
                    capacity_mb_ms: h.mb_ms.min(i64::MAX as u64),
                    ..Sums::default()
                },
            })
            .collect();
        let payload = encode(&deltas, &what)?;
        let id = uuid::Uuid::now_v7().simple().to_string();
        let subject = format!("{}.usage.cap", self.prefix);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let publish = PublishMessage::build()
                .payload(payload.clone().into())
                .message_id(id.clone());
            let sent = match self.context.send_publish(subject.clone(), publish).await {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(_) => break,
                Err(e) if e.kind() == PublishErrorKind::TimedOut && attempt < PUBLISH_ATTEMPTS => {}
                Err(e) => return Err(backend(&what, e)),
            }
        }
        self.fold_unless_folding().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! What the shared suite cannot show: nodes appending, retrying and folding at once
    //! count each run once, and so does a fold that died midway or an append that died
    //! between its count and its records.
    use super::*;
    use crate::Records;
    use wisp_test_support::nats::NatsServer;

    const H: UnixMillis = 1_699_999_200_000;

    async fn open() -> (NatsServer, JetStreamStore, JetStreamStore) {
        let server = NatsServer::start();
        let first = JetStreamStore::connect(&server.url, "test").await.unwrap();
        let second = JetStreamStore::connect(&server.url, "test").await.unwrap();
        (server, first, second)
    }

    fn record(function: &str, id: &str, started_at: UnixMillis) -> InvocationRecord {
        InvocationRecord {
            namespace: Namespace::new("default").unwrap(),
            function: FunctionName::new(function).unwrap(),
            id: id.to_owned(),
            version: VersionId("v1".to_owned()),
            version_number: 1,
            started_at,
            cold: false,
            init_us: None,
            queue_us: 0,
            run_us: 1_000,
            error: None,
            memory_mb: 128,
            billed_ms: 1,
            reserved: false,
            trace: None,
            parent: None,
        }
    }

    /// The requests counted per function, over the test's two hours.
    async fn requests(store: &JetStreamStore) -> BTreeMap<String, u64> {
        let query = UsageQuery {
            namespace: None,
            function: None,
            from: H,
            to: H + 2 * crate::usage::HOUR_MS,
            group_by: UsageGrouping::Function,
        };
        let rows = store.usage(&query).await.unwrap();
        rows.into_iter()
            .map(|r| (r.function.unwrap().to_string(), r.requests))
            .collect()
    }

    /// Two nodes append batches that overlap (each run in two batches, some retried by
    /// the other node) while both fold: every run is counted once.
    #[tokio::test]
    async fn racing_appends_and_folds_count_each_run_once() {
        let (_server, first, second) = open().await;
        let batches: Vec<Vec<InvocationRecord>> = (0..8)
            .map(|b| {
                (0..50)
                    .map(|n| {
                        let run = b * 25 + n;
                        let hour = if run % 2 == 0 {
                            H
                        } else {
                            H + crate::usage::HOUR_MS
                        };
                        record(["a", "b", "c"][run % 3], &format!("inv-{run}"), hour + 1)
                    })
                    .collect()
            })
            .collect();
        let runs: std::collections::BTreeSet<usize> = (0..8 * 25 + 25).collect();
        let tasks = batches.iter().enumerate().flat_map(|(n, batch)| {
            let (store, other) = if n % 2 == 0 {
                (&first, &second)
            } else {
                (&second, &first)
            };
            [
                Box::pin(async move { store.append_invocations(batch).await.unwrap() })
                    as std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
                Box::pin(async move { other.append_invocations(batch).await.unwrap() }),
                Box::pin(async move { other.fold_usage().await.unwrap() }),
            ]
        });
        futures::future::join_all(tasks).await;
        let mut expected: BTreeMap<String, u64> = BTreeMap::new();
        for run in runs {
            *expected.entry(["a", "b", "c"][run % 3].to_owned()).or_default() += 1;
        }
        assert_eq!(requests(&first).await, expected);
        assert_eq!(requests(&second).await, expected);
    }

    /// A fold that wrote some rows and died before the cursor moved: the next fold adds
    /// only what those rows lack.
    #[tokio::test]
    async fn a_fold_that_died_midway_is_not_counted_twice() {
        let (_server, first, second) = open().await;
        let batch = [
            record("a", "inv-1", H + 1),
            record("b", "inv-2", H + 2),
            record("a", "inv-3", H + 3),
        ];
        let _folding = first.usage.folding.lock().await;
        // Counted, not folded: this process's fold is held.
        first.count_invocations(&batch).await.unwrap();
        let (cursor, _) = first.cursor().await.unwrap();
        let (read, through) = first.read_deltas(cursor, "a test fold").await.unwrap();
        assert_eq!(through, cursor + 3);
        // Only the first row written, and the cursor left where it was.
        let (row, deltas) = read.iter().next().unwrap();
        first.add_to_row(row, deltas).await.unwrap();
        assert_eq!(first.cursor().await.unwrap().0, cursor);
        // The same fold again (a retry on this node), then a full fold on another node.
        first.add_to_row(row, deltas).await.unwrap();
        let expected = BTreeMap::from([("a".to_owned(), 2), ("b".to_owned(), 1)]);
        assert_eq!(requests(&second).await, expected);
        drop(_folding);
        assert_eq!(requests(&first).await, expected);
        assert_eq!(first.cursor().await.unwrap().0, cursor + 3);
    }

    /// An append that died after counting and before writing its records, then retried
    /// (on another node): the records are written, the runs counted once.
    #[tokio::test]
    async fn an_append_retried_after_its_count_counts_once() {
        let (_server, first, second) = open().await;
        let batch = [record("a", "inv-1", H + 1), record("a", "inv-2", H + 2)];
        first.count_invocations(&batch).await.unwrap();
        assert_eq!(
            first
                .invocations(&batch[0].namespace, &batch[0].function, &Default::default())
                .await
                .unwrap(),
            [],
            "no record yet"
        );
        second.append_invocations(&batch).await.unwrap();
        second.append_invocations(&batch).await.unwrap();
        assert_eq!(requests(&first).await, BTreeMap::from([("a".to_owned(), 2)]));
        let records = first
            .invocations(&batch[0].namespace, &batch[0].function, &Default::default())
            .await
            .unwrap();
        assert_eq!(records, batch);
        // Folded deltas of the duplicate window are kept, so the dedupe outlives a
        // restart of the server; the cursor is past them.
        let state = first.usage.deltas.get_info().await.unwrap().state;
        assert_eq!(state.messages, 2);
        assert_eq!(first.cursor().await.unwrap().0, state.last_sequence);
    }

    /// A capacity add sent twice with one id (its acknowledgement lost) adds once; two
    /// calls with the same amounts add twice.
    #[tokio::test]
    async fn capacity_adds_are_each_counted_once() {
        let (_server, first, second) = open().await;
        let held = CapacityHeld {
            namespace: Namespace::new("default").unwrap(),
            function: FunctionName::new("warm").unwrap(),
            version: VersionId("v1".to_owned()),
            hour: H + 5,
            mb_ms: 1_000,
        };
        first.add_capacity(std::slice::from_ref(&held)).await.unwrap();
        second.add_capacity(std::slice::from_ref(&held)).await.unwrap();
        let delta = Delta {
            row: RowId {
                namespace: held.namespace.clone(),
                function: held.function.clone(),
                version: held.version.clone(),
                hour: H,
            },
            sums: Sums {
                capacity_mb_ms: 1_000,
                ..Sums::default()
            },
        };
        for _ in 0..2 {
            let publish = PublishMessage::build()
                .payload(serde_json::to_vec(&[&delta]).unwrap().into())
                .message_id("one-call");
            let ack = first
                .context
                .send_publish("test.usage.cap", publish)
                .await
                .unwrap();
            ack.await.unwrap();
        }
        let query = UsageQuery {
            namespace: None,
            function: None,
            from: H,
            to: H + 1,
            group_by: UsageGrouping::Hour,
        };
        let rows = second.usage(&query).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].capacity_mb_ms, 3_000);
        assert_eq!(rows[0].requests, 0);
    }

    /// Folded deltas older than the window kept are purged; the window's and those not
    /// folded stay.
    #[tokio::test]
    async fn folded_deltas_past_the_window_are_purged() {
        let (_server, first, _second) = open().await;
        first
            .append_invocations(&[record("a", "inv-1", H + 1)])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        first
            .append_invocations(&[record("a", "inv-2", H + 2)])
            .await
            .unwrap();
        first.fold_usage().await.unwrap();
        let _folding = first.usage.folding.lock().await;
        first
            .count_invocations(&[record("a", "inv-3", H + 3)])
            .await
            .unwrap();
        let what = "a test purge";
        first
            .purge_folded(Duration::from_millis(200), Duration::ZERO, what)
            .await
            .unwrap();
        let state = first.usage.deltas.get_info().await.unwrap().state;
        assert_eq!(
            (state.first_sequence, state.messages),
            (2, 2),
            "inv-1's delta purged"
        );
        // No window kept: every folded delta goes, and the one not folded stays.
        first
            .purge_folded(Duration::ZERO, Duration::ZERO, what)
            .await
            .unwrap();
        let state = first.usage.deltas.get_info().await.unwrap().state;
        assert_eq!(
            (state.first_sequence, state.messages),
            (3, 1),
            "inv-2's delta kept"
        );
        drop(_folding);
        assert_eq!(requests(&first).await, BTreeMap::from([("a".to_owned(), 3)]));
    }

    /// Queries of many days (a filter subject per day) and of more than
    /// [`MAX_DAY_FILTERS`] days (one filter) read the same rows.
    #[tokio::test]
    async fn long_queries_read_every_day_asked() {
        let (_server, first, _second) = open().await;
        let early = H - 300 * DAY_MS;
        first
            .append_invocations(&[record("a", "inv-1", early), record("a", "inv-2", H + 1)])
            .await
            .unwrap();
        for days in [300, 301, MAX_DAY_FILTERS + 10] {
            let query = UsageQuery {
                namespace: None,
                function: Some(FunctionName::new("a").unwrap()),
                from: H + DAY_MS - days * DAY_MS,
                to: H + DAY_MS,
                group_by: UsageGrouping::Day,
            };
            let rows = first.usage(&query).await.unwrap();
            let periods: Vec<_> = rows.iter().map(|r| r.period).collect();
            let first_day = early.div_euclid(DAY_MS) * DAY_MS;
            let expected = if days == 300 {
                vec![Some(H.div_euclid(DAY_MS) * DAY_MS)]
            } else {
                vec![Some(first_day), Some(H.div_euclid(DAY_MS) * DAY_MS)]
            };
            assert_eq!(periods, expected, "{days} days");
        }
    }

    #[test]
    fn versions_are_key_tokens() {
        assert_eq!(version_token(&VersionId("v1".to_owned())), "vv1");
        assert_eq!(version_token(&VersionId("a.b".to_owned())), "x612e62");
        assert_eq!(version_token(&VersionId(String::new())), "x");
    }
}
