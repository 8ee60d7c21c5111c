//! The JetStream [`Records`]: log lines on stream `{prefix}_logs`, invocation records on
//! stream `{prefix}_invocations`, each message the record as JSON.
//!
//! - Log lines: subject `{prefix}.logs.{namespace}.{function}`, one subject per function,
//!   so the per-function cap is the stream limit `max_msgs_per_subject`
//!   ([`LOG_LINES_KEPT_PER_FUNCTION`], discarding the oldest). A line's cursor is its
//!   stream sequence, which the server never reuses (not after a purge either); following
//!   is an ordered consumer starting at `after + 1`. Trimming by age and size reads the
//!   function's subject, then purges the subject up to the first line kept (one request)
//!   or, when what goes is not a prefix, deletes those messages one by one.
//! - Invocation records: subject `{prefix}.inv.{namespace}.{function}.{trace}`, the trace
//!   root as `t` and the hex of its bytes (`_` for none), so a trace's records are read
//!   with the filter `{prefix}.inv.{namespace}.*.{trace}` and not the whole stream. Since
//!   the function's records span several subjects, `max_msgs_per_subject` cannot cap them:
//!   after each batch, every function it touched is purged with filter
//!   `{prefix}.inv.{namespace}.{function}.*` and `keep` [`INVOCATIONS_KEPT_PER_FUNCTION`]
//!   (the server keeps the newest across the filter). A record's message id is its run
//!   (namespace, function, invocation id, start), so a retried batch within the duplicate
//!   window appends nothing twice.
//! - Queries read the function's subject(s) through an ordered consumer: a listing or a
//!   summary reads every kept record of the function (at most 10,000), a follower only
//!   what is after its cursor.

use super::{JetStreamStore, audit::DUPLICATE_WINDOW, backend};
use crate::{
    INVOCATIONS_KEPT_PER_FUNCTION, InvocationQuery, InvocationRecord, InvocationSummary,
    LOG_LINES_KEPT_PER_FUNCTION, LogLine, LogQuery, Records, Result, StoreError, TRACE_INVOCATIONS_MAX,
};
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};
use async_trait::async_trait;
use futures::StreamExt;
use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use wisp_core::{FunctionName, Namespace, UnixMillis};

/// How many lines or records a query returns when its limit is `0` (as on SQLite).
const DEFAULT_LIMIT: usize = 100;

/// How many publishes a batch sends before it awaits their acknowledgements.
const ACKS_IN_FLIGHT: usize = 512;

/// Opens streams `{prefix}_logs` and `{prefix}_invocations`, making them if they do not
/// exist.
pub(super) async fn open_streams(
    context: &jetstream::Context,
    prefix: &str,
) -> Result<(stream::Stream, stream::Stream)> {
    let logs = format!("{prefix}_logs");
    let logs = context
        .get_or_create_stream(stream::Config {
            name: logs.clone(),
            subjects: vec![format!("{prefix}.logs.*.*")],
            max_messages_per_subject: i64::try_from(LOG_LINES_KEPT_PER_FUNCTION).unwrap_or(i64::MAX),
            discard: stream::DiscardPolicy::Old,
            ..stream::Config::default()
        })
        .await
        .map_err(|e| backend(format!("opening the JetStream stream `{logs}`"), e))?;
    let invocations = format!("{prefix}_invocations");
    let invocations = context
        .get_or_create_stream(stream::Config {
            name: invocations.clone(),
            subjects: vec![format!("{prefix}.inv.*.*.*")],
            discard: stream::DiscardPolicy::Old,
            duplicate_window: DUPLICATE_WINDOW,
            ..stream::Config::default()
        })
        .await
        .map_err(|e| backend(format!("opening the JetStream stream `{invocations}`"), e))?;
    Ok((logs, invocations))
}

/// The subject token of a trace root: `t` and the hex of its bytes, `_` for none.
fn trace_token(trace: Option<&str>) -> String {
    match trace {
        None => "_".to_owned(),
        Some(trace) => {
            let mut token = String::with_capacity(1 + trace.len() * 2);
            token.push('t');
            for byte in trace.bytes() {
                let _ = write!(token, "{byte:02x}");
            }
            token
        }
    }
}

/// Reads the messages of `stream` on `filter` in stream order, from sequence `start`
/// (`None`: from the first kept), handing each (sequence, payload) to `each` until it
/// returns `false` or none is left.
async fn scan(
    stream: &stream::Stream,
    filter: String,
    start: Option<u64>,
    what: &str,
    mut each: impl FnMut(u64, &[u8]) -> Result<bool>,
) -> Result<()> {
    let deliver_policy = match start {
        None => DeliverPolicy::All,
        Some(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
    };
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: filter,
            deliver_policy,
            ..pull::OrderedConfig::default()
        })
        .await
        .map_err(|e| backend(what, e))?;
    if consumer.cached_info().num_pending == 0 {
        return Ok(());
    }
    let mut messages = consumer.messages().await.map_err(|e| backend(what, e))?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(|e| backend(what, e))?;
        let info = message.info().map_err(|e| backend(what, e))?;
        let (sequence, pending) = (info.stream_sequence, info.pending);
        if !each(sequence, &message.payload)? || pending == 0 {
            break;
        }
    }
    Ok(())
}

fn corrupt(what: impl fmt::Display, sequence: u64, error: impl fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: message {sequence}: {error}"))
}

fn matches(line: &LogLine, query: &LogQuery) -> bool {
    query
        .invocation_id
        .as_ref()
        .is_none_or(|id| &line.invocation_id == id)
        && query.version.is_none_or(|v| line.version == v)
        && query.since.is_none_or(|s| line.time >= s)
        && query.until.is_none_or(|u| line.time <= u)
        && query
            .contains
            .as_ref()
            .is_none_or(|text| line.line.contains(text.as_str()))
}

impl JetStreamStore {
    fn logs_subject(&self, namespace: &Namespace, function: &FunctionName) -> String {
        format!("{}.logs.{namespace}.{function}", self.prefix)
    }

    fn invocations_filter(&self, namespace: &Namespace, function: &FunctionName) -> String {
        format!("{}.inv.{namespace}.{function}.*", self.prefix)
    }

    /// Every kept line of a function, oldest first, with its cursor.
    async fn all_lines(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        what: &str,
    ) -> Result<Vec<LogLine>> {
        let mut lines = Vec::new();
        scan(
            &self.logs,
            self.logs_subject(namespace, function),
            None,
            what,
            |sequence, payload| {
                let mut line: LogLine =
                    serde_json::from_slice(payload).map_err(|e| corrupt(what, sequence, e))?;
                line.cursor = sequence;
                lines.push(line);
                Ok(true)
            },
        )
        .await?;
        Ok(lines)
    }

    /// Every kept record of a function, oldest first.
    async fn all_invocations(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        what: &str,
    ) -> Result<Vec<InvocationRecord>> {
        let mut records = Vec::new();
        scan(
            &self.invocations,
            self.invocations_filter(namespace, function),
            None,
            what,
            |sequence, payload| {
                records.push(serde_json::from_slice(payload).map_err(|e| corrupt(what, sequence, e))?);
                Ok(true)
            },
        )
        .await?;
        Ok(records)
    }
}

#[async_trait]
impl Records for JetStreamStore {
    async fn append_logs(&self, lines: &[LogLine]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let what = format!("appending log lines (a batch of {})", lines.len());
        let mut acks = Vec::with_capacity(lines.len());
        for line in lines {
            let payload = serde_json::to_vec(line).map_err(|e| backend(&what, e))?;
            let subject = self.logs_subject(&line.namespace, &line.function);
            let ack = self
                .context
                .send_publish(subject, PublishMessage::build().payload(payload.into()))
                .await
                .map_err(|e| backend(&what, e))?;
            acks.push(ack);
            // The client bounds the publishes awaiting their acknowledgement: await them
            // in chunks, or a batch larger than that bound waits on itself.
            if acks.len() >= ACKS_IN_FLIGHT {
                for ack in acks.drain(..) {
                    ack.await.map_err(|e| backend(&what, e))?;
                }
            }
        }
        for ack in acks {
            ack.await.map_err(|e| backend(&what, e))?;
        }
        Ok(())
    }

    async fn logs(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        query: &LogQuery,
    ) -> Result<Vec<LogLine>> {
        let what = format!("reading the logs of `{namespace}/{function}`");
        let limit = match query.limit {
            0 => DEFAULT_LIMIT,
            n => n,
        };
        let mut lines = Vec::new();
        match query.after {
            Some(after) => {
                scan(
                    &self.logs,
                    self.logs_subject(namespace, function),
                    Some(after.saturating_add(1)),
                    &what,
                    |sequence, payload| {
                        let mut line: LogLine =
                            serde_json::from_slice(payload).map_err(|e| corrupt(&what, sequence, e))?;
                        line.cursor = sequence;
                        if matches(&line, query) {
                            lines.push(line);
                        }
                        Ok(lines.len() < limit)
                    },
                )
                .await?;
            }
            None => {
                lines = self.all_lines(namespace, function, &what).await?;
                lines.retain(|l| matches(l, query));
                let skip = lines.len().saturating_sub(limit);
                lines.drain(..skip);
            }
        }
        Ok(lines)
    }

    async fn trim_logs(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        older_than: UnixMillis,
        max_bytes: u64,
    ) -> Result<u64> {
        let what = format!("trimming the logs of `{namespace}/{function}`");
        let lines = self.all_lines(namespace, function, &what).await?;
        // By age, then by size from the newest of those left.
        let mut drop: BTreeSet<u64> = lines
            .iter()
            .filter(|l| l.time < older_than)
            .map(|l| l.cursor)
            .collect();
        let mut total: u64 = 0;
        let mut crossed = false;
        for line in lines
            .iter()
            .rev()
            .filter(|l| !drop.contains(&l.cursor))
            .collect::<Vec<_>>()
        {
            total = total.saturating_add(line.line.len() as u64);
            if crossed || total > max_bytes {
                crossed = true;
                drop.insert(line.cursor);
            }
        }
        if drop.is_empty() {
            return Ok(0);
        }
        let first_kept = lines.iter().map(|l| l.cursor).find(|c| !drop.contains(c));
        let is_prefix = lines.iter().take_while(|l| drop.contains(&l.cursor)).count() == drop.len();
        if is_prefix {
            let purge = self.logs.purge().filter(self.logs_subject(namespace, function));
            match first_kept {
                Some(sequence) => purge.sequence(sequence).await.map_err(|e| backend(&what, e))?,
                None => purge.await.map_err(|e| backend(&what, e))?,
            };
        } else {
            for &sequence in &drop {
                // Already gone (another node trimmed it): the same outcome.
                let _ = self.logs.delete_message(sequence).await;
            }
        }
        Ok(drop.len() as u64)
    }

    async fn append_invocations(&self, records: &[InvocationRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        // Counted first: the count is durable before the records are (see `usage`).
        self.count_invocations(records).await?;
        let what = format!("appending invocation records (a batch of {})", records.len());
        let mut acks = Vec::with_capacity(records.len());
        let mut touched = BTreeSet::new();
        for record in records {
            let payload = serde_json::to_vec(record).map_err(|e| backend(&what, e))?;
            let subject = format!(
                "{}.inv.{}.{}.{}",
                self.prefix,
                record.namespace,
                record.function,
                trace_token(record.trace.as_deref())
            );
            let id = format!(
                "{}.{}.{}.{}",
                record.namespace, record.function, record.id, record.started_at
            );
            let publish = PublishMessage::build().payload(payload.into()).message_id(id);
            let ack = self
                .context
                .send_publish(subject, publish)
                .await
                .map_err(|e| backend(&what, e))?;
            acks.push(ack);
            // The client bounds the publishes awaiting their acknowledgement: await them
            // in chunks, or a batch larger than that bound waits on itself.
            if acks.len() >= ACKS_IN_FLIGHT {
                for ack in acks.drain(..) {
                    ack.await.map_err(|e| backend(&what, e))?;
                }
            }
            touched.insert((&record.namespace, &record.function));
        }
        for ack in acks {
            ack.await.map_err(|e| backend(&what, e))?;
        }
        let keep = INVOCATIONS_KEPT_PER_FUNCTION as u64;
        for (namespace, function) in touched {
            self.invocations
                .purge()
                .filter(self.invocations_filter(namespace, function))
                .keep(keep)
                .await
                .map_err(|e| backend(&what, e))?;
        }
        Ok(())
    }

    async fn invocations(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        query: &InvocationQuery,
    ) -> Result<Vec<InvocationRecord>> {
        let what = format!("reading the invocations of `{namespace}/{function}`");
        let limit = match query.limit {
            0 => DEFAULT_LIMIT,
            n => n,
        };
        let mut records = self.all_invocations(namespace, function, &what).await?;
        if query.cold_only {
            records.retain(|r| r.cold);
        }
        let skip = records.len().saturating_sub(limit);
        records.drain(..skip);
        Ok(records)
    }

    async fn trace_invocations(&self, namespace: &Namespace, trace: &str) -> Result<Vec<InvocationRecord>> {
        let what = format!("reading the invocations of trace `{trace}` in `{namespace}`");
        let filter = format!("{}.inv.{namespace}.*.{}", self.prefix, trace_token(Some(trace)));
        let mut records: Vec<InvocationRecord> = Vec::new();
        scan(&self.invocations, filter, None, &what, |sequence, payload| {
            records.push(serde_json::from_slice(payload).map_err(|e| corrupt(&what, sequence, e))?);
            Ok(true)
        })
        .await?;
        // Stable: equal starts stay in the order of appending.
        records.sort_by_key(|r| r.started_at);
        records.truncate(TRACE_INVOCATIONS_MAX);
        Ok(records)
    }

    async fn invocation_summary(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
    ) -> Result<InvocationSummary> {
        let what = format!("summarising the invocations of `{namespace}/{function}`");
        let records = self.all_invocations(namespace, function, &what).await?;
        let mut inits: Vec<u64> = records.iter().filter_map(|r| r.init_us).collect();
        inits.sort_unstable();
        Ok(InvocationSummary {
            invocations: records.len() as u64,
            cold_starts: records.iter().filter(|r| r.cold).count() as u64,
            errors: records.iter().filter(|r| r.error.is_some()).count() as u64,
            init_p50_us: percentile(&inits, 50),
            init_p99_us: percentile(&inits, 99),
        })
    }

    async fn forget_function(&self, namespace: &Namespace, function: &FunctionName) -> Result<()> {
        let what = format!("forgetting the logs and invocation records of `{namespace}/{function}`");
        self.logs
            .purge()
            .filter(self.logs_subject(namespace, function))
            .await
            .map_err(|e| backend(&what, e))?;
        self.invocations
            .purge()
            .filter(self.invocations_filter(namespace, function))
            .await
            .map_err(|e| backend(&what, e))?;
        Ok(())
    }
}

/// The nearest-rank `p`th percentile of `sorted` (ascending), as on SQLite.
fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}
