//! Queues as a platform resource (create, send, receive, delete, redrive), and queue
//! triggers: a poller per (function, queue) that receives batches and invokes the
//! function with SQS-shaped events, deleting only what succeeded.
//!
//! # Design
//!
//! The platform polls, not the function: a poller runs whether or not the function
//! has anything loaded, so a message wakes a function at zero scale. A poller takes
//! a concurrency permit before it receives (so it never holds messages it cannot
//! run), receives up to `batch_size` with the queue's visibility timeout, waits up to
//! `max_batching_window` to fill the batch, and invokes. The function's answer may
//! list `batchItemFailures` (Lambda's `ReportBatchItemFailures`): those messages stay
//! and come back after the visibility timeout; the rest are deleted. A function error
//! deletes nothing. A send wakes the queue's pollers at once; otherwise they look
//! when the next message becomes visible, and at least every second.

use crate::events::AsyncOptions;
use crate::{Deployed, Engine, EngineError};
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use wisp_core::wall::{millis, now_ms};
use wisp_core::{ErrorCode, FunctionName, Limits, Namespace, QueueConfig, QueueName, QueueTrigger};
use wisp_store::{NewMessage, QueueRecord, QueueStats, Received, ReceivedMessage, StoreError};

/// Batches of one trigger running at once, at most (and never more than the
/// function's `max_concurrency`).
const MAX_BATCHES_PER_TRIGGER: u32 = 10;
/// The longest a poller sleeps without looking at its queue.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// A throttled batch comes back after this long.
const THROTTLED_DELAY: Duration = Duration::from_secs(1);

type QueueKey = (Namespace, QueueName);
type TriggerKey = (Namespace, FunctionName, QueueName);

struct Poller {
    trigger: QueueTrigger,
    max_concurrency: u32,
    task: tokio::task::AbortHandle,
}

/// Wake-ups and running pollers.
#[derive(Default)]
pub(crate) struct Queues {
    wakes: Mutex<HashMap<QueueKey, Arc<Notify>>>,
    pollers: Mutex<HashMap<TriggerKey, Poller>>,
}

impl Queues {
    fn wake(&self, key: &QueueKey) -> Arc<Notify> {
        let mut wakes = self.wakes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(notify) = wakes.get(key) {
            return notify.clone();
        }
        let notify = Arc::new(Notify::new());
        wakes.insert(key.clone(), notify.clone());
        notify
    }
}

/// A message to send, as the API takes it.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub body: String,
    pub delay: Duration,
}

fn queue_not_found(name: &QueueName) -> EngineError {
    EngineError::new(
        ErrorCode::QueueNotFound,
        format!("there is no queue named `{name}`"),
    )
}

fn store_error(e: StoreError) -> EngineError {
    match e {
        StoreError::QueueNotFound(name) => queue_not_found(&name),
        e => EngineError::from(e),
    }
}

impl Engine {
    /// Creates or updates a queue. Returns whether it was created.
    pub async fn put_queue(
        &self,
        namespace: &Namespace,
        name: &QueueName,
        config: QueueConfig,
    ) -> Result<bool, EngineError> {
        config
            .validate(name)
            .map_err(|e| EngineError::new(ErrorCode::InvalidConfig, e.to_string()))?;
        if let Some(dlq) = &config.dead_letter_queue
            && self.store.get_queue(namespace, dlq).await?.is_none()
        {
            return Err(EngineError::new(
                ErrorCode::InvalidConfig,
                format!("dead_letter_queue: there is no queue named `{dlq}`; create it first"),
            ));
        }
        Ok(self.store.put_queue(namespace, name, &config, now_ms()).await?)
    }

    pub async fn queue(
        &self,
        namespace: &Namespace,
        name: &QueueName,
    ) -> Result<(QueueRecord, QueueStats), EngineError> {
        let record = self
            .store
            .get_queue(namespace, name)
            .await?
            .ok_or_else(|| queue_not_found(name))?;
        let stats = self
            .store
            .queue_stats(namespace, name, now_ms())
            .await
            .map_err(store_error)?;
        Ok((record, stats))
    }

    pub async fn queues(&self, namespace: &Namespace) -> Result<Vec<(QueueRecord, QueueStats)>, EngineError> {
        let mut list = Vec::new();
        for record in self.store.list_queues(Some(namespace)).await? {
            let stats = self
                .store
                .queue_stats(namespace, &record.name, now_ms())
                .await
                .map_err(store_error)?;
            list.push((record, stats));
        }
        Ok(list)
    }

    /// Deletes a queue and its messages, unless a function's trigger or destination,
    /// or another queue, still uses it.
    pub async fn delete_queue(&self, namespace: &Namespace, name: &QueueName) -> Result<bool, EngineError> {
        for deployed in self.functions(namespace) {
            let config = &deployed.record.version.config;
            let by_trigger = config.queue.iter().any(|t| &t.queue == name);
            let by_destination = [&config.on_success, &config.on_failure]
                .into_iter()
                .flatten()
                .any(|d| matches!(d, wisp_core::Destination::Queue(q) if q == name));
            if by_trigger || by_destination {
                return Err(EngineError::new(
                    ErrorCode::QueueInUse,
                    format!(
                        "queue `{name}` is used by function `{}` ({}); remove that first",
                        deployed.record.name,
                        if by_trigger {
                            "a queue trigger"
                        } else {
                            "a destination"
                        }
                    ),
                ));
            }
        }
        for other in self.store.list_queues(Some(namespace)).await? {
            if other.config.dead_letter_queue.as_ref() == Some(name) {
                return Err(EngineError::new(
                    ErrorCode::QueueInUse,
                    format!(
                        "queue `{name}` is the dead_letter_queue of queue `{}`; change that first",
                        other.name
                    ),
                ));
            }
        }
        Ok(self.store.delete_queue(namespace, name).await?)
    }

    /// Sends messages; returns their ids.
    pub async fn send_messages(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        messages: Vec<Outgoing>,
        chain_depth: u32,
    ) -> Result<Vec<String>, EngineError> {
        if messages.is_empty() || messages.len() > Limits::MAX_MESSAGES_PER_CALL {
            return Err(EngineError::new(
                ErrorCode::InvalidRequest,
                format!(
                    "send 1 to {} messages at once (this request has {})",
                    Limits::MAX_MESSAGES_PER_CALL,
                    messages.len()
                ),
            ));
        }
        let mut batch = Vec::with_capacity(messages.len());
        for (i, m) in messages.into_iter().enumerate() {
            if m.body.len() > Limits::MAX_MESSAGE_SIZE {
                return Err(EngineError::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "message {i} is {} bytes; a message holds at most {} bytes",
                        m.body.len(),
                        Limits::MAX_MESSAGE_SIZE
                    ),
                ));
            }
            if m.delay > Duration::from_secs(15 * 60) {
                return Err(EngineError::new(
                    ErrorCode::InvalidRequest,
                    format!("message {i}: a delay is at most 15m"),
                ));
            }
            batch.push(NewMessage {
                id: uuid::Uuid::now_v7().to_string(),
                body: m.body,
                delay_ms: u64::try_from(m.delay.as_millis()).unwrap_or(u64::MAX),
                chain_depth,
            });
        }
        let ids = batch.iter().map(|m| m.id.clone()).collect();
        self.store
            .send_messages(namespace, queue, &batch, now_ms())
            .await
            .map_err(store_error)?;
        self.queue_sent(namespace, queue);
        Ok(ids)
    }

    /// Receives up to `max` messages, invisible for `visibility` (the queue's own
    /// timeout when `None`).
    pub async fn receive_messages(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        max: usize,
        visibility: Option<Duration>,
    ) -> Result<Received, EngineError> {
        if !(1..=Limits::MAX_MESSAGES_PER_CALL).contains(&max) {
            return Err(EngineError::new(
                ErrorCode::InvalidRequest,
                format!("receive 1 to {} messages at once", Limits::MAX_MESSAGES_PER_CALL),
            ));
        }
        let visibility = match visibility {
            Some(v) if v > Limits::MAX_VISIBILITY_TIMEOUT => {
                return Err(EngineError::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "visibility_timeout is at most {}",
                        humantime::format_duration(Limits::MAX_VISIBILITY_TIMEOUT)
                    ),
                ));
            }
            Some(v) => v,
            None => {
                self.store
                    .get_queue(namespace, queue)
                    .await?
                    .ok_or_else(|| queue_not_found(queue))?
                    .config
                    .visibility_timeout
            }
        };
        let received = self
            .store
            .receive_messages(namespace, queue, max, visibility.as_millis() as u64, now_ms())
            .await
            .map_err(store_error)?;
        Ok(received)
    }

    /// Deletes received messages by receipt handle; per handle, whether it was current.
    pub async fn delete_messages(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        receipts: &[String],
    ) -> Result<Vec<bool>, EngineError> {
        self.store
            .delete_messages(namespace, queue, receipts)
            .await
            .map_err(store_error)
    }

    pub async fn purge_queue(&self, namespace: &Namespace, queue: &QueueName) -> Result<u64, EngineError> {
        self.queue(namespace, queue).await?;
        self.store
            .purge_queue(namespace, queue)
            .await
            .map_err(store_error)
    }

    /// Moves a dead-letter queue's messages back to where they came from.
    pub async fn redrive_queue(&self, namespace: &Namespace, queue: &QueueName) -> Result<u64, EngineError> {
        self.queue(namespace, queue).await?;
        let moved = self
            .store
            .redrive_queue(namespace, queue, now_ms())
            .await
            .map_err(store_error)?;
        // The sources are not known here: wake every poller of the namespace.
        let wakes: Vec<_> = {
            let wakes = self.queues.wakes.lock().unwrap_or_else(PoisonError::into_inner);
            wakes
                .iter()
                .filter(|((ns, _), _)| ns == namespace)
                .map(|(_, n)| n.clone())
                .collect()
        };
        for notify in wakes {
            notify.notify_waiters();
            notify.notify_one();
        }
        Ok(moved)
    }

    /// Wakes the pollers of a queue that just received messages.
    pub(crate) fn queue_sent(&self, namespace: &Namespace, queue: &QueueName) {
        let key = (namespace.clone(), queue.clone());
        let notify = self.queues.wake(&key);
        notify.notify_waiters();
        notify.notify_one();
    }

    /// Starts pollers for the queue triggers of what is deployed, and stops those of
    /// what is gone or changed.
    pub(crate) fn sync_triggers(&self) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let state = self.state.load();
        let mut wanted: HashMap<TriggerKey, (QueueTrigger, u32)> = HashMap::new();
        for ((namespace, name), deployed) in &state.functions {
            let config = &deployed.record.version.config;
            for trigger in &config.queue {
                let key = (namespace.clone(), name.clone(), trigger.queue.clone());
                wanted.insert(key, (trigger.clone(), config.max_concurrency));
            }
        }
        let mut pollers = self.queues.pollers.lock().unwrap_or_else(PoisonError::into_inner);
        pollers.retain(|key, poller| {
            let keep = wanted
                .get(key)
                .is_some_and(|(t, c)| *t == poller.trigger && *c == poller.max_concurrency);
            if !keep {
                poller.task.abort();
            }
            keep
        });
        for (key, (trigger, max_concurrency)) in wanted {
            if pollers.contains_key(&key) {
                continue;
            }
            let wake = self.queues.wake(&(key.0.clone(), key.2.clone()));
            let task = tokio::spawn(poll(
                self.me.clone(),
                key.clone(),
                trigger.clone(),
                max_concurrency,
                wake,
            ));
            pollers.insert(
                key,
                Poller {
                    trigger,
                    max_concurrency,
                    task: task.abort_handle(),
                },
            );
        }
        drop(pollers);
        self.sync_schedules();
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
        let batch = match receive_batch(&engine, &namespace, &queue, &trigger, &wake).await {
            Ok(batch) => {
                missing_reported = false;
                batch
            }
            Err(e) => {
                if e.code != ErrorCode::QueueNotFound || !missing_reported {
                    tracing::warn!(%function, %queue, "queue trigger: {}", e.detail);
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
        };
        match engine
            .enqueue(namespace, function, Bytes::from(event), options)
            .await
        {
            Ok(_) => {
                let _ = engine.delete_messages(namespace, queue, &receipts(&[])).await;
            }
            Err(e) => tracing::warn!(%function, %queue, "cannot dead-letter a looping batch: {}", e.detail),
        }
        return;
    }
    let id = uuid::Uuid::now_v7().to_string();
    let result = engine
        .invoke_deployed(deployed, &id, Bytes::from(event), None)
        .await;
    let answer = match result {
        Ok(response) if !response.status().is_server_error() => {
            wisp_runtime::body::read_to_bytes(response.into_body(), engine.limits.max_response_body).await
        }
        Ok(response) => {
            tracing::debug!(%function, %queue, status = %response.status(), "queue batch failed");
            return;
        }
        Err(e) if e.code == ErrorCode::Throttled => {
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
            tracing::debug!(%function, %queue, "queue batch failed: {}", e.detail);
            return;
        }
    };
    let failed = match answer {
        Ok(answer) => match reported_failures(&answer, &batch) {
            Ok(failed) => failed.unwrap_or_default(),
            Err(why) => {
                let note = format!("wisp: the whole batch failed: {why}");
                engine.logs.note(namespace, function, &id, &note);
                return;
            }
        },
        Err(_) => return,
    };
    if let Err(e) = engine.delete_messages(namespace, queue, &receipts(&failed)).await {
        tracing::warn!(%function, %queue, "deleting a processed batch failed: {}", e.detail);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
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
