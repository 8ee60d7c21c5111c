//! Queues as a platform resource: create, inspect, send, receive, delete, purge and
//! redrive, with SQS's model (see the store's `Queues`). A send wakes whoever waits on
//! the queue (its triggers' pollers, in `triggers::queue`) at once.

use crate::{Cause, Engine, EngineError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use wisp_core::wall::now_ms;
use wisp_core::{ErrorCode, Limits, Namespace, QueueConfig, QueueName};
use wisp_store::{NewMessage, QueueDepth, QueueRecord, QueueStats, Received, StoreError};

type QueueKey = (Namespace, QueueName);

/// A wake-up per queue, for whoever waits for its messages.
#[derive(Default)]
pub(crate) struct QueueWakes {
    wakes: Mutex<HashMap<QueueKey, Arc<Notify>>>,
}

impl QueueWakes {
    fn get(&self, key: &QueueKey) -> Arc<Notify> {
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

pub(crate) fn queue_not_found(name: &QueueName) -> EngineError {
    EngineError::new(
        ErrorCode::QueueNotFound,
        format!("there is no queue named `{name}`"),
    )
}

pub(crate) fn store_error(e: StoreError) -> EngineError {
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

    /// What each queue of `namespace` holds, with when its oldest message was sent, in
    /// one read (what `/metrics` reads), ordered by name.
    pub async fn queue_depths(&self, namespace: &Namespace) -> Result<Vec<QueueDepth>, EngineError> {
        Ok(self.store.queue_depths(Some(namespace), now_ms()).await?)
    }

    /// Deletes a queue and its messages, unless a function's trigger or destination,
    /// or another queue, still uses it.
    pub async fn delete_queue(&self, namespace: &Namespace, name: &QueueName) -> Result<bool, EngineError> {
        for deployed in self.functions(namespace) {
            let config = deployed.config();
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

    /// Sends messages; returns their ids. Each carries `cause` (its depth and trace)
    /// into the function its queue triggers.
    pub async fn send_messages(
        &self,
        namespace: &Namespace,
        queue: &QueueName,
        messages: Vec<Outgoing>,
        cause: Cause,
    ) -> Result<Vec<String>, EngineError> {
        self.refuse_if_stopped(namespace)?;
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
                chain_depth: cause.depth,
                trace: cause.trace.clone(),
                parent: cause.parent.clone(),
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
            let wakes = self
                .queue_wakes
                .wakes
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
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

    /// The wake-up of a queue's waiters.
    pub(crate) fn queue_wake(&self, namespace: &Namespace, queue: &QueueName) -> Arc<Notify> {
        self.queue_wakes.get(&(namespace.clone(), queue.clone()))
    }

    /// Wakes the pollers of a queue that just received messages.
    pub(crate) fn queue_sent(&self, namespace: &Namespace, queue: &QueueName) {
        let notify = self.queue_wake(namespace, queue);
        notify.notify_waiters();
        notify.notify_one();
    }
}
