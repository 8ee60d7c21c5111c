//! Queue triggers: a poller per (function, queue) that receives batches and runs the
//! function on SQS-shaped events, deleting only what succeeded.
//!
//! # Design
//!
//! The platform polls, not the function: a poller runs whether or not the function
//! has anything loaded, so a message wakes a function at zero scale. A poller takes
//! a concurrency permit before it receives (so it never holds messages it cannot
//! run), receives up to `batch_size` with the queue's visibility timeout, waits up to
//! `max_batching_window` to fill the batch, and runs it through [`Engine::attempt`].
//! The function's answer may list `batchItemFailures` (Lambda's
//! `ReportBatchItemFailures`): those messages stay and come back after the visibility
//! timeout; the rest are deleted. A function error deletes nothing. A send wakes the
//! queue's pollers at once; otherwise they look when the next message becomes
//! visible, and at least every second.

use super::{Functions, Tasks, Trigger};
use crate::pipeline::AsyncOptions;
use crate::queues::{queue_not_found, store_error};
use crate::{Deployed, Engine, EngineError};
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use wisp_core::wall::{millis, now_ms};
use wisp_core::{ErrorCode, FunctionName, Limits, Namespace, QueueName, QueueTrigger};
use wisp_store::ReceivedMessage;

/// Batches of one trigger running at once, at most (and never more than the
/// function's `max_concurrency`).
const MAX_BATCHES_PER_TRIGGER: u32 = 10;
/// The longest a poller sleeps without looking at its queue.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// How often a poller whose namespace's quota stops work looks again.
const QUOTA_RECHECK: Duration = Duration::from_millis(500);
/// A throttled batch comes back after this long.
const THROTTLED_DELAY: Duration = Duration::from_secs(1);

type TriggerKey = (Namespace, FunctionName, QueueName);

/// The running pollers, each with the trigger and the function's `max_concurrency`
/// it was started with.
#[derive(Default)]
pub(crate) struct QueuePollers {
    pollers: Tasks<TriggerKey, (QueueTrigger, u32)>,
}

impl Trigger for QueuePollers {
    fn kind(&self) -> &'static str {
        "queue"
    }

    /// Starts pollers for the queue triggers of what is deployed, and stops those of
    /// what is gone or changed.
    fn sync(&self, engine: &Engine, functions: &Functions) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let mut wanted = HashMap::new();
        for ((namespace, name), deployed) in functions {
            let config = deployed.config();
            for trigger in &config.queue {
                let key = (namespace.clone(), name.clone(), trigger.queue.clone());
                wanted.insert(key, (trigger.clone(), config.max_concurrency));
            }
        }
        self.pollers.sync(wanted, |key, (trigger, max_concurrency)| {
            let wake = engine.queue_wake(&key.0, &key.2);
            let task = tokio::spawn(poll(
                engine.me.clone(),
                key.clone(),
                trigger.clone(),
                *max_concurrency,
                wake,
            ));
            Some(task.abort_handle())
        });
    }
}

/// One trigger's poller.
async fn poll(
    engine: Weak<Engine>,
    key: TriggerKey,
    trigger: QueueTrigger,
    max_concurrency: u32,
    wake: Arc<Notify>,
) {
    let (namespace, function, queue) = key;
    let slots = Arc::new(Semaphore::new(
        max_concurrency.min(MAX_BATCHES_PER_TRIGGER) as usize
    ));
    let mut missing_reported = false;
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let Some(deployed) = engine.function(&namespace, &function) else {
            return;
        };
        if engine.quota_stop(&namespace).is_some() || deployed.record.disabled {
            // The namespace's quota stops work, or the function is disabled: the
            // messages stay in the queue, not received (their receive counts do not
            // grow), until it is raised or the function enabled.
            drop(engine);
            tokio::time::sleep(QUOTA_RECHECK).await;
            continue;
        }
        let batch = match receive_batch(&engine, &namespace, &queue, &trigger, &wake).await {
            Ok(batch) => {
                missing_reported = false;
                batch
            }
            Err(e) => {
                if e.code == ErrorCode::Internal {
                    e.log();
                } else if e.code != ErrorCode::QueueNotFound || !missing_reported {
                    tracing::warn!(%function, %queue, "queue trigger: {}", e.with_cause());
                    missing_reported = e.code == ErrorCode::QueueNotFound;
                }
                drop(engine);
                tokio::time::sleep(MAX_SLEEP).await;
                continue;
            }
        };
        if batch.is_empty() {
            // Nothing visible: sleep until a send, the next visible message, or a second.
            let sleep = match engine.store.next_message_visible(&namespace, &queue).await {
                Ok(Some(at)) => {
                    Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0)).min(MAX_SLEEP)
                }
                _ => MAX_SLEEP,
            };
            drop(engine);
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(sleep.max(Duration::from_millis(5))) => {}
            }
            continue;
        }
        let queue = queue.clone();
        tokio::spawn(async move {
            run_batch(&engine, &deployed, &queue, batch).await;
            drop(permit);
        });
    }
}

/// Receives up to `batch_size` messages, waiting up to the batching window to fill.
async fn receive_batch(
    engine: &Engine,
    namespace: &Namespace,
    queue: &QueueName,
    trigger: &QueueTrigger,
    wake: &Notify,
) -> Result<Vec<ReceivedMessage>, EngineError> {
    let size = trigger.batch_size as usize;
    let visibility = engine
        .store
        .get_queue(namespace, queue)
        .await?
        .ok_or_else(|| queue_not_found(queue))?
        .config
        .visibility_timeout;
    let vt = u64::try_from(visibility.as_millis()).unwrap_or(u64::MAX);
    let mut batch = Vec::new();
    let deadline = tokio::time::Instant::now() + trigger.max_batching_window;
    loop {
        let want = size - batch.len();
        let received = engine
            .store
            .receive_messages(namespace, queue, want, vt, now_ms())
            .await
            .map_err(store_error)?;
        if !received.dead_lettered.is_empty() {
            tracing::info!(
                %queue,
                "moved {} messages past max_receive_count to the dead-letter queue",
                received.dead_lettered.len()
            );
        }
        let got = received.messages.len();
        batch.extend(received.messages);
        if batch.len() >= size || trigger.max_batching_window.is_zero() || batch.is_empty() {
            return Ok(batch);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(batch);
        }
        if got == 0 {
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

/// The SQS event Lambda gives a function for a batch.
fn sqs_event(queue: &QueueName, batch: &[ReceivedMessage]) -> Value {
    let arn = format!("arn:aws:sqs:local:000000000000:{queue}");
    let records: Vec<Value> = batch
        .iter()
        .map(|m| {
            json!({
                "messageId": m.id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": {
                    "ApproximateReceiveCount": m.receive_count.to_string(),
                    "SentTimestamp": m.sent_at.to_string(),
                    "SenderId": "wisp",
                    "ApproximateFirstReceiveTimestamp": m.first_received_at.to_string(),
                },
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "local",
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The ids a function reported as failed (`batchItemFailures`), or `None` when the
/// answer does not use the format. An identifier that is not in the batch fails the
/// whole batch, as Lambda does.
fn reported_failures(answer: &[u8], batch: &[ReceivedMessage]) -> Result<Option<Vec<String>>, String> {
    let Ok(value) = serde_json::from_slice::<Value>(answer) else {
        return Ok(None);
    };
    let Some(failures) = value.get("batchItemFailures") else {
        return Ok(None);
    };
    let Some(list) = failures.as_array() else {
        return Err("`batchItemFailures` is not a list".to_string());
    };
    let mut ids = Vec::with_capacity(list.len());
    for item in list {
        let id = item
            .get("itemIdentifier")
            .and_then(Value::as_str)
            .ok_or_else(|| "a `batchItemFailures` entry has no string `itemIdentifier`".to_string())?;
        if !batch.iter().any(|m| m.id == id) {
            return Err(format!(
                "`batchItemFailures` names `{id}`, which is not in the batch"
            ));
        }
        ids.push(id.to_string());
    }
    Ok(Some(ids))
}

async fn run_batch(
    engine: &Arc<Engine>,
    deployed: &Arc<Deployed>,
    queue: &QueueName,
    batch: Vec<ReceivedMessage>,
) {
    let namespace = &deployed.record.namespace;
    let function = &deployed.record.name;
    let event = serde_json::to_vec(&sqs_event(queue, &batch)).unwrap_or_default();
    let depth = batch.iter().map(|m| m.chain_depth).max().unwrap_or(0);
    // A batch runs as one invocation, in one trace: its first message's, with its first
    // message's sender as parent (the messages of a batch may come from different
    // traces; the others' roots and parents are not recorded).
    let trace = batch.first().and_then(|m| m.trace.clone());
    let parent = batch.first().and_then(|m| m.parent.clone());
    let receipts = |keep: &[String]| -> Vec<String> {
        batch
            .iter()
            .filter(|m| !keep.contains(&m.id))
            .map(|m| m.receipt_handle.clone())
            .collect()
    };
    if depth >= Limits::MAX_CHAIN_DEPTH {
        // A loop: the batch becomes a dead letter of the function (where the async
        // pipeline writes why into its log), and leaves the queue.
        let options = AsyncOptions {
            idempotency_key: None,
            chain_depth: depth,
            source: format!("queue:{queue}"),
            qualifier: None,
            trace,
            parent,
        };
        match engine
            .enqueue(namespace, function, Bytes::from(event), options)
            .await
        {
            Ok(_) => {
                let _ = engine.delete_messages(namespace, queue, &receipts(&[])).await;
            }
            Err(e) => {
                tracing::warn!(%function, %queue, "cannot dead-letter a looping batch: {}", e.with_cause())
            }
        }
        return;
    }
    let id = crate::dispatch::new_invocation_id();
    let context = wisp_runtime::CallContext {
        depth,
        trace_root: trace.map(Into::into),
        parent: parent.map(Into::into),
        ..Default::default()
    };
    let answer = match engine
        .attempt(deployed.live(), &id, Bytes::from(event), context, None)
        .await
    {
        Ok(answer) => answer,
        Err(e) if matches!(e.code, ErrorCode::Throttled | ErrorCode::QuotaExceeded) => {
            // Not the function's fault: let the messages come back soon.
            let at = now_ms() + millis(THROTTLED_DELAY);
            for m in &batch {
                let _ = engine
                    .store
                    .change_visibility(namespace, queue, &m.receipt_handle, at)
                    .await;
            }
            return;
        }
        Err(e) => {
            // Nothing is deleted: the batch comes back after its visibility timeout.
            e.log();
            tracing::debug!(%function, %queue, "queue batch failed: {}", e.with_cause());
            return;
        }
    };
    let failed = match reported_failures(&answer, &batch) {
        Ok(failed) => failed.unwrap_or_default(),
        Err(why) => {
            let note = format!("wisp: the whole batch failed: {why}");
            engine.logs.note(namespace, function, &id, &note);
            return;
        }
    };
    if let Err(e) = engine.delete_messages(namespace, queue, &receipts(&failed)).await {
        tracing::warn!(%function, %queue, "deleting a processed batch failed: {}", e.with_cause());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str) -> ReceivedMessage {
        ReceivedMessage {
            id: id.to_string(),
            receipt_handle: format!("r-{id}"),
            body: format!("body {id}"),
            sent_at: 1_000,
            first_received_at: 2_000,
            receive_count: 1,
            chain_depth: 0,
            trace: None,
            parent: None,
        }
    }

    #[test]
    fn batch_item_failures_are_read_as_lambda_writes_them() {
        let batch = [message("a"), message("b")];
        assert_eq!(reported_failures(b"null", &batch), Ok(None));
        assert_eq!(reported_failures(b"not json", &batch), Ok(None));
        assert_eq!(reported_failures(br#"{"ok":1}"#, &batch), Ok(None));
        assert_eq!(
            reported_failures(br#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#, &batch),
            Ok(Some(vec!["b".to_string()]))
        );
        assert_eq!(
            reported_failures(br#"{"batchItemFailures":[]}"#, &batch),
            Ok(Some(vec![]))
        );
        assert!(reported_failures(br#"{"batchItemFailures":[{"itemIdentifier":"zzz"}]}"#, &batch).is_err());
        assert!(reported_failures(br#"{"batchItemFailures":{}}"#, &batch).is_err());
    }

    #[test]
    fn the_event_has_sqs_shape() {
        let q = QueueName::new("jobs").unwrap();
        let v = sqs_event(&q, &[message("a")]);
        let r = &v["Records"][0];
        assert_eq!(r["messageId"], "a");
        assert_eq!(r["receiptHandle"], "r-a");
        assert_eq!(r["body"], "body a");
        assert_eq!(r["eventSource"], "aws:sqs");
        assert_eq!(r["eventSourceARN"], "arn:aws:sqs:local:000000000000:jobs");
        assert_eq!(r["attributes"]["ApproximateReceiveCount"], "1");
        assert_eq!(r["attributes"]["SentTimestamp"], "1000");
    }
}
