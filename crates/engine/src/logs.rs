//! Invocation logs and records leave the request path through a channel and are
//! written to the store in batches by one background task.
//!
//! # Design
//!
//! The runtime hands each invocation's captured output to a callback when the guest
//! finishes; the callback splits it into lines and `try_send`s them. The request path
//! never waits for the store: when the channel is full (the store is slower than the
//! guests are chatty) lines are dropped and counted, and the count is reported in the
//! server log. The writer drains whatever is queued into one transaction per batch, then
//! lets the next batch gather for a moment (see [`LINGER`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use wisp_core::wall::now_ms;
use wisp_core::{FunctionName, Namespace};
use wisp_runtime::Logs;
use wisp_store::{InvocationRecord, LogLine, LogStream, Store};

use crate::quota::Quotas;

/// Lines queued at most before new ones are dropped.
const QUEUE_LINES: usize = 65_536;
/// Lines written per store transaction at most.
const BATCH_LINES: usize = 4_096;
/// How long the writer lets entries gather after writing a batch that was not full.
/// Every transaction also trims each function it touched to what the store keeps, a
/// walk of thousands of index entries: under load, one transaction per few requests
/// took a quarter of the server's CPU; batches gathered for 50 ms cost next to nothing.
const LINGER: std::time::Duration = std::time::Duration::from_millis(50);

/// What the writer writes.
enum Entry {
    Line(LogLine),
    Invocation(Box<InvocationRecord>),
}

/// The sending side, cloned into every invocation's callback.
#[derive(Clone)]
pub(crate) struct LogSink {
    tx: mpsc::Sender<Entry>,
    dropped: Arc<AtomicU64>,
    /// Told which invocation records were written (or lost), for admission's counts.
    quotas: Arc<Quotas>,
}

/// Handle on the writer task, to flush at shutdown.
pub(crate) struct LogWriter {
    task: tokio::task::JoinHandle<()>,
}

pub(crate) fn start(store: Arc<dyn Store>, quotas: Arc<Quotas>) -> (LogSink, LogWriter) {
    let (tx, mut rx) = mpsc::channel::<Entry>(QUEUE_LINES);
    let dropped = Arc::new(AtomicU64::new(0));
    let dropped_seen = dropped.clone();
    let sink = LogSink {
        tx,
        dropped,
        quotas: quotas.clone(),
    };
    let task = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH_LINES);
        let mut lines = Vec::with_capacity(BATCH_LINES);
        let mut invocations = Vec::new();
        while let received @ 1.. = rx.recv_many(&mut batch, BATCH_LINES).await {
            for entry in batch.drain(..) {
                match entry {
                    Entry::Line(line) => lines.push(line),
                    Entry::Invocation(record) => invocations.push(*record),
                }
            }
            if !lines.is_empty()
                && let Err(e) = store.append_logs(&lines).await
            {
                tracing::warn!("cannot write {} log lines: {e}", lines.len());
            }
            if !invocations.is_empty() {
                // Appended and marked written together, apart from a quota reconcile.
                let _reconcile_held = quotas.sync.lock().await;
                if let Err(e) = store.append_invocations(&invocations).await {
                    tracing::warn!("cannot write {} invocation records: {e}", invocations.len());
                }
                quotas.written(&invocations);
            }
            lines.clear();
            invocations.clear();
            if received < BATCH_LINES {
                tokio::time::sleep(LINGER).await;
            }
            let lost = dropped_seen.swap(0, Ordering::Relaxed);
            if lost > 0 {
                tracing::warn!("dropped {lost} log lines and invocation records: the log queue was full");
            }
        }
    });
    (sink, LogWriter { task })
}

impl LogWriter {
    /// Waits until every line sent before all senders were dropped is written.
    pub(crate) async fn flush(self) {
        let _ = self.task.await;
    }
}

impl LogSink {
    /// Queues an invocation's output as log lines.
    pub(crate) fn record(
        &self,
        namespace: &Namespace,
        function: &FunctionName,
        invocation_id: &str,
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
            push(
                LogStream::Stderr,
                "[wisp] output past the per-invocation log limit was dropped".to_string(),
            );
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
        self.record(namespace, function, invocation_id, logs);
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
