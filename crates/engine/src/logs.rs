//! Invocation logs and records leave the request path through a channel and are
//! written to the store in batches by one background task.
//!
//! # Design
//!
//! The runtime hands each invocation's captured output to a callback when the guest
//! finishes; the callback splits it into lines and `try_send`s them. The request path
//! never waits for the store: when the channel is full (the store is slower than the
//! guests are chatty) lines are dropped and counted, and the count is reported in the
//! server log and (the total since the server started) on `/metrics`. The writer drains
//! whatever is queued into one transaction per batch, then lets the next batch gather
//! for a moment (see [`LINGER`]).
//!
//! Following a log ([`LogFollower`]) is reading "the lines after this cursor" from the
//! store again and again, never a feed from the writer: on a cluster the lines of a
//! function are written by every node that runs it. The writer bumps a watch after each
//! committed batch, which wakes this node's followers at once; a follower also looks
//! about once a second ([`FOLLOW_POLL`]) for lines another node wrote. The same writer
//! trims every function's log to its retention about once a minute
//! ([`RETENTION_SWEEP`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use wisp_core::wall::{millis, now_ms};
use wisp_core::{FunctionName, LogRetention, Namespace};
use wisp_runtime::Logs;
use wisp_store::{InvocationRecord, LogLine, LogQuery, LogStream, Store};

use crate::quota::Quotas;
use crate::{Engine, EngineError};

/// The line that ends an invocation's log when output past its cap was dropped.
pub(crate) const DROPPED_NOTE: &str = "[wisp] output past the per-invocation log limit was dropped";
/// Lines queued at most before new ones are dropped.
const QUEUE_LINES: usize = 65_536;
/// Lines written per store transaction at most.
const BATCH_LINES: usize = 4_096;
/// How long the writer lets entries gather after writing a batch that was not full.
/// Every transaction also trims each function it touched to what the store keeps, a
/// walk of thousands of index entries: under load, one transaction per few requests
/// took a quarter of the server's CPU; batches gathered for 50 ms cost next to nothing.
const LINGER: Duration = Duration::from_millis(50);
/// How often the writer trims every function's log to its retention.
const RETENTION_SWEEP: Duration = Duration::from_secs(60);
/// How often a follower looks for lines without being woken (lines another node wrote).
pub const FOLLOW_POLL: Duration = Duration::from_secs(1);
/// How many lines a follower reads at once after its first read.
const FOLLOW_PAGE: usize = 500;

/// What the writer writes.
enum Entry {
    Line(LogLine),
    Invocation(Box<InvocationRecord>),
}

/// The sending side, cloned into every invocation's callback.
#[derive(Clone)]
pub(crate) struct LogSink {
    tx: mpsc::Sender<Entry>,
    /// Lines and invocation records dropped since the server started (the queue was
    /// full); only ever grows, so `/metrics` can export it as a counter.
    dropped: Arc<AtomicU64>,
    /// Told which invocation records were written (or lost), for admission's counts.
    quotas: Arc<Quotas>,
    /// Bumped by the writer after each batch of lines it committed.
    written: Arc<watch::Sender<u64>>,
}

/// Handle on the writer task, to flush at shutdown.
pub(crate) struct LogWriter {
    task: tokio::task::JoinHandle<()>,
}

pub(crate) fn start(
    store: Arc<dyn Store>,
    quotas: Arc<Quotas>,
    spans: crate::otlp::SpanTap,
) -> (LogSink, LogWriter) {
    let (tx, mut rx) = mpsc::channel::<Entry>(QUEUE_LINES);
    let dropped = Arc::new(AtomicU64::new(0));
    let dropped_seen = dropped.clone();
    let written = Arc::new(watch::Sender::new(0_u64));
    let sink = LogSink {
        tx,
        dropped,
        quotas: quotas.clone(),
        written: written.clone(),
    };
    let task = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH_LINES);
        let mut lines = Vec::with_capacity(BATCH_LINES);
        let mut invocations = Vec::new();
        let start = tokio::time::Instant::now() + RETENTION_SWEEP;
        let mut sweep = tokio::time::interval_at(start, RETENTION_SWEEP);
        let mut reported = 0;
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let received = tokio::select! {
                received = rx.recv_many(&mut batch, BATCH_LINES) => received,
                _ = sweep.tick() => {
                    trim_to_retention(store.as_ref()).await;
                    continue;
                }
            };
            if received == 0 {
                break;
            }
            for entry in batch.drain(..) {
                match entry {
                    Entry::Line(line) => lines.push(line),
                    Entry::Invocation(record) => invocations.push(*record),
                }
            }
            if !lines.is_empty() {
                match store.append_logs(&lines).await {
                    Ok(()) => written.send_modify(|batches| *batches += 1),
                    Err(e) => tracing::warn!("cannot write {} log lines: {e}", lines.len()),
                }
            }
            if !invocations.is_empty() {
                // Appended and marked written together, apart from a quota reconcile.
                let _reconcile_held = quotas.sync.lock().await;
                if let Err(e) = store.append_invocations(&invocations).await {
                    tracing::warn!("cannot write {} invocation records: {e}", invocations.len());
                }
                quotas.written(&invocations);
                // Moved out for OTLP export when an exporter runs.
                spans.offer(&mut invocations);
            }
            lines.clear();
            invocations.clear();
            if received < BATCH_LINES {
                tokio::time::sleep(LINGER).await;
            }
            let dropped = dropped_seen.load(Ordering::Relaxed);
            let lost = dropped - reported;
            reported = dropped;
            if lost > 0 {
                tracing::warn!("dropped {lost} log lines and invocation records: the log queue was full");
            }
        }
    });
    (sink, LogWriter { task })
}

/// Trims every function's log to its live version's retention (or the defaults).
async fn trim_to_retention(store: &dyn Store) {
    let functions = match store.list_functions(None).await {
        Ok(functions) => functions,
        Err(e) => {
            tracing::warn!("cannot list the functions to trim their logs: {e}");
            return;
        }
    };
    let now = now_ms();
    for function in functions {
        let retention = function
            .live_version()
            .config
            .logs
            .unwrap_or(LogRetention::DEFAULT);
        let older_than = now.saturating_sub(millis(retention.retention));
        if let Err(e) = store
            .trim_logs(
                &function.namespace,
                &function.name,
                older_than,
                retention.max_size,
            )
            .await
        {
            tracing::warn!(
                "cannot trim the logs of `{}/{}`: {e}",
                function.namespace,
                function.name
            );
        }
    }
}

impl LogWriter {
    /// Waits until every line sent before all senders were dropped is written.
    pub(crate) async fn flush(self) {
        let _ = self.task.await;
    }
}

impl LogSink {
    /// Queues an invocation's output as log lines of version number `version` (`0`:
    /// none, for Wisp's own notes).
    pub(crate) fn record(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        invocation_id: &str,
        version: u32,
        logs: Logs,
    ) {
        let time = now_ms();
        let push = |stream: LogStream, line: String| {
            let line = LogLine {
                namespace: namespace.clone(),
                function: function.clone(),
                invocation_id: invocation_id.to_string(),
                time,
                stream,
                line,
                version,
                cursor: 0,
            };
            if self.tx.try_send(Entry::Line(line)).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        };
        for (stream, bytes) in [
            (LogStream::Stdout, &logs.stdout),
            (LogStream::Stderr, &logs.stderr),
        ] {
            for line in split_lines(bytes) {
                push(stream, line);
            }
        }
        if logs.truncated {
            push(LogStream::Stderr, DROPPED_NOTE.to_string());
        }
    }
}

impl LogSink {
    /// Queues one line Wisp itself writes into a function's log (on stderr, with a
    /// `wisp:` prefix), for something the function's owner must see.
    pub(crate) fn note(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        invocation_id: &str,
        text: &str,
    ) {
        let logs = Logs {
            stdout: bytes::Bytes::new(),
            stderr: bytes::Bytes::from(text.to_string()),
            truncated: false,
        };
        self.record(namespace, function, invocation_id, 0, logs);
    }

    /// Lines and invocation records dropped since the server started because the
    /// queue was full. A relaxed load: cheap, for a scrape.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues an invocation's record.
    pub(crate) fn record_invocation(&self, record: InvocationRecord) {
        if let Err(e) = self.tx.try_send(Entry::Invocation(Box::new(record))) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            if let mpsc::error::TrySendError::Full(Entry::Invocation(record))
            | mpsc::error::TrySendError::Closed(Entry::Invocation(record)) = e
            {
                self.quotas.written(std::slice::from_ref(&record));
            }
        }
    }
}

impl Engine {
    /// Follows a function's log: a [`LogFollower`] yielding first the lines a listing
    /// with `query` shows (or, given `resume`, the matching lines after that cursor),
    /// then every matching line written afterwards, on any node. Refused with
    /// `function_not_found` for a function not deployed.
    pub fn follow_logs(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        mut query: LogQuery,
        resume: Option<u64>,
    ) -> Result<LogFollower, EngineError> {
        if self.function(namespace, name).is_none() {
            return Err(EngineError::function_not_found(name.as_str()));
        }
        query.after = resume;
        Ok(LogFollower {
            engine: self.me.clone(),
            namespace: namespace.clone(),
            name: name.clone(),
            query,
            resumed: resume.is_some(),
            first: true,
            wake: self.logs.written.subscribe(),
        })
    }
}

/// A function's log as it is written: see [`Engine::follow_logs`]. Holds no task and
/// no strong reference to the engine: dropping it (the client went away) is the end,
/// and it ends by itself when the function is deleted or the engine shuts down.
pub struct LogFollower {
    engine: Weak<Engine>,
    namespace: Namespace,
    name: FunctionName,
    /// The filters; `after` is the cursor of the last line yielded.
    query: LogQuery,
    resumed: bool,
    first: bool,
    wake: watch::Receiver<u64>,
}

impl LogFollower {
    /// The next lines, oldest first, never empty: waits until there are some. `None`
    /// once the function is no longer deployed or the engine is gone. Cancel-safe:
    /// dropping the future loses no line (the cursor moves only when lines are returned).
    pub async fn next(&mut self) -> Result<Option<Vec<LogLine>>, EngineError> {
        loop {
            // Marked seen before reading, so a batch committed during the read wakes
            // the next wait rather than being missed.
            self.wake.borrow_and_update();
            let Some(engine) = self.engine.upgrade() else {
                return Ok(None);
            };
            if engine.function(&self.namespace, &self.name).is_none() {
                return Ok(None);
            }
            let mut query = self.query.clone();
            if !self.first || self.resumed {
                query.limit = FOLLOW_PAGE;
            }
            let lines = engine.store.logs(&self.namespace, &self.name, &query).await?;
            drop(engine);
            if self.first {
                self.first = false;
                // Nothing matches yet: every line to come is after all those kept.
                self.query.after.get_or_insert(0);
            }
            if let Some(last) = lines.last() {
                self.query.after = Some(last.cursor);
                return Ok(Some(lines));
            }
            tokio::select! {
                changed = self.wake.changed() => {
                    if changed.is_err() {
                        return Ok(None);
                    }
                }
                () = tokio::time::sleep(FOLLOW_POLL) => {}
            }
        }
    }
}

/// Splits output into lines (a final line without a newline counts), lossy UTF-8.
pub(crate) fn split_lines(bytes: &[u8]) -> Vec<String> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(bytes);
    text.strip_suffix('\n')
        .unwrap_or(&text)
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_like_a_terminal_would() {
        assert_eq!(split_lines(b""), Vec::<String>::new());
        assert_eq!(split_lines(b"a\nb\n"), vec!["a", "b"]);
        assert_eq!(split_lines(b"a\r\nb"), vec!["a", "b"]);
        assert_eq!(split_lines(b"\n"), vec![""]);
        assert_eq!(split_lines(b"\xff\n"), vec!["\u{fffd}"]);
    }
}
