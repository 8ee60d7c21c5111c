//! The async pipeline: durable events, retried until they succeed or become dead
//! letters, with destinations for both outcomes.
//!
//! # Design
//!
//! An async invoke is answered `202` only once its event is committed to the store.
//! Events arrive on a channel, and the outcomes of finished runs on another; one
//! task, the *writer* ([`tasks`]), writes whatever has gathered on both in one
//! transaction (group commit: no linger, so one client waits one commit and many
//! clients share one), answers every waiter, and hands each fresh event straight to a
//! runner when there is room: its claim (a lease) is written with it. So an event
//! that runs at once costs two writes, each shared with a batch: its insert, and its
//! outcome with the next batch's.
//!
//! The *dispatcher* claims the due events nobody runs yet (retries whose time came,
//! fresh events that found no room, a backlog after a restart) in batches, up to the
//! same bound on events in flight. Every run goes through the function's pool like
//! any other invocation (the event id is the invocation id of every attempt; [`run`]).
//!
//! Outcomes are written together with the destination records they send (one
//! transaction: a crash cannot lose a record or send it twice). A crash between a
//! run and its outcome's commit runs the event again after the restart: delivery is
//! at-least-once. At start-up every lease is released, since the process that held
//! it is gone.
//!
//! Throttles (the function's queue is full) and system errors go back to the queue
//! without counting as attempts, as Lambda's do; function errors count, and retry
//! with exponential backoff and jitter until `max_retries` or `max_event_age`.

mod destination;
mod guarded;
mod leases;
pub mod retry;
mod run;
mod tasks;

use crate::{Engine, EngineError};
use bytes::Bytes;
use retry::RetrySettings;
use std::sync::Arc;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use wisp_core::wall::now_us;
use wisp_core::{ErrorCode, FunctionName, Limits, Namespace, Qualifier};
use wisp_store::{Enqueued, EventOutcome, EventRecord, NewEvent, StoreError};

pub(crate) use tasks::start;

/// Events running at once, across all functions (each function's own
/// `max_concurrency` applies inside this).
const MAX_IN_FLIGHT: usize = 512;

/// How an async invocation was asked for.
#[derive(Clone, Debug, Default)]
pub struct AsyncOptions {
    /// `Idempotency-Key`: a second invoke with the same key within
    /// [`Limits::IDEMPOTENCY_WINDOW`] returns the first one's id and runs nothing.
    pub idempotency_key: Option<String>,
    /// Event hops that led to this invoke (a function forwarding an event).
    pub chain_depth: u32,
    /// Who asked: `api` when empty.
    pub source: String,
    /// The version or alias to run (`None`: `live`, as it is when the event runs).
    pub qualifier: Option<Qualifier>,
    /// The trace root the event is part of (X-Ray's `1-<8 hex>-<24 hex>`): its
    /// invocation runs in it, and what that causes carries it on. `None`: the
    /// invocation starts a trace of its own.
    pub trace: Option<String>,
    /// The invocation that asked for it (a function's async call, a message's or
    /// topic's sender): the parent its invocation records. `None`: none did.
    pub parent: Option<String>,
}

/// A durable event: its id, and whether an earlier invoke with the same idempotency
/// key is what was accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub id: String,
    pub duplicate: bool,
}

struct Waiting {
    event: NewEvent,
    reply: oneshot::Sender<Result<Enqueued, StoreError>>,
}

/// The pipeline's handles, owned by the engine.
pub(crate) struct Pipeline {
    enqueue: mpsc::Sender<Waiting>,
    complete: mpsc::UnboundedSender<EventOutcome>,
    /// Wakes the dispatcher: events became due, or found no room.
    wake: Arc<Notify>,
    /// Room for events in flight: a permit per running event, taken by the writer
    /// (for a fresh event) or the dispatcher (for a claimed one).
    slots: Arc<Semaphore>,
    /// The events this node has taken and not yet written the outcome of.
    taken: Arc<leases::Taken>,
    settings: RetrySettings,
}

/// The ends of the pipeline's channels that its tasks own.
pub(crate) struct Inboxes {
    enqueue: mpsc::Receiver<Waiting>,
    complete: mpsc::UnboundedReceiver<EventOutcome>,
}

impl Pipeline {
    /// The handles; the tasks start with [`start`] once the engine exists (events
    /// sent before then wait in the channel).
    pub(crate) fn new(settings: RetrySettings) -> (Pipeline, Inboxes) {
        let (enqueue, enqueue_rx) = mpsc::channel::<Waiting>(64 * 1024);
        let (complete, complete_rx) = mpsc::unbounded_channel();
        let pipeline = Pipeline {
            enqueue,
            complete,
            wake: Arc::new(Notify::new()),
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            taken: Arc::default(),
            settings,
        };
        let inboxes = Inboxes {
            enqueue: enqueue_rx,
            complete: complete_rx,
        };
        (pipeline, inboxes)
    }

    /// Wakes the dispatcher (something became due).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }
}

impl Engine {
    /// Accepts an async invocation of `name`: answers once the event is durable.
    pub async fn enqueue(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        payload: Bytes,
        options: AsyncOptions,
    ) -> Result<Accepted, EngineError> {
        let deployed = self
            .function(namespace, name)
            .ok_or_else(|| EngineError::function_not_found(name.as_str()))?;
        if let Some(qualifier) = &options.qualifier
            && deployed.resolve(qualifier).is_none()
        {
            return Err(EngineError::no_qualifier(name, qualifier));
        }
        // Events accepted before the quota stopped work are held; new ones are refused.
        self.refuse_if_stopped(namespace)?;
        let limit = Limits::MAX_ASYNC_PAYLOAD;
        if payload.len() > limit {
            return Err(EngineError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "the event is {} bytes; an async invocation takes at most {limit} bytes",
                    payload.len()
                ),
            ));
        }
        if let Some(key) = &options.idempotency_key
            && (key.is_empty() || key.len() > 256)
        {
            return Err(EngineError::new(
                ErrorCode::InvalidRequest,
                "the Idempotency-Key must be 1 to 256 characters",
            ));
        }
        let now = now_us();
        let event = NewEvent {
            namespace: namespace.clone(),
            function: name.clone(),
            id: uuid::Uuid::now_v7().to_string(),
            payload: payload.to_vec(),
            idempotency_key: options.idempotency_key,
            chain_depth: options.chain_depth,
            source: if options.source.is_empty() {
                "api".to_string()
            } else {
                options.source
            },
            qualifier: options.qualifier,
            trace: options.trace,
            parent: options.parent,
            created_us: now,
            run_at: now / 1000,
            lease: None,
        };
        self.record_event(event).await
    }

    /// An async invocation, by id.
    pub async fn event(&self, namespace: &Namespace, id: &str) -> Result<EventRecord, EngineError> {
        self.store.get_event(namespace, id).await?.ok_or_else(|| {
            EngineError::new(
                ErrorCode::InvocationNotFound,
                format!("there is no async invocation `{id}` (succeeded ones are kept for 24h)"),
            )
        })
    }

    /// A function's events with `status`, newest first.
    pub async fn events_of(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        status: wisp_store::EventStatus,
        limit: usize,
    ) -> Result<Vec<EventRecord>, EngineError> {
        self.function_exists(namespace, name)?;
        Ok(self.store.list_events(namespace, name, status, limit).await?)
    }

    /// A page of a function's events of one status, newest first (see
    /// [`wisp_store::Events::browse_events`]). The function must exist.
    pub async fn browse_events(
        &self,
        query: &wisp_store::EventQuery,
    ) -> Result<Vec<EventRecord>, EngineError> {
        self.function_exists(&query.namespace, &query.function)?;
        Ok(self.store.browse_events(query).await?)
    }

    /// Each function of a namespace with async events queued, running or dead, and its
    /// counts (see [`wisp_store::Events::event_backlog`]).
    pub async fn event_backlog(
        &self,
        namespace: &Namespace,
    ) -> Result<Vec<wisp_store::EventBacklog>, EngineError> {
        Ok(self.store.event_backlog(Some(namespace)).await?)
    }

    /// How many of a function's events are queued, running, succeeded and dead.
    pub async fn event_counts(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
    ) -> Result<wisp_store::EventCounts, EngineError> {
        self.function_exists(namespace, name)?;
        Ok(self.store.event_counts(namespace, name).await?)
    }

    /// Runs a function's dead letters (all, or `ids`) again. Returns the ids.
    pub async fn redrive(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        ids: Option<&[String]>,
    ) -> Result<Vec<String>, EngineError> {
        self.function_exists(namespace, name)?;
        let now = now_us();
        let ids = self
            .store
            .redrive_events(namespace, name, ids, now / 1000, now)
            .await?;
        self.pipeline.wake();
        Ok(ids)
    }

    /// Deletes a function's dead letters (all, or `ids`). Returns how many.
    pub async fn purge(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
        ids: Option<&[String]>,
    ) -> Result<u64, EngineError> {
        self.function_exists(namespace, name)?;
        Ok(self.store.purge_events(namespace, name, ids).await?)
    }

    fn function_exists(&self, namespace: &Namespace, name: &FunctionName) -> Result<(), EngineError> {
        match self.function(namespace, name) {
            Some(_) => Ok(()),
            None => Err(EngineError::function_not_found(name.as_str())),
        }
    }

    /// Writes one event through the group commit.
    pub(crate) async fn record_event(&self, event: NewEvent) -> Result<Accepted, EngineError> {
        let id = event.id.clone();
        let (reply, answer) = oneshot::channel();
        let unavailable = || EngineError::internal("the async pipeline's writer has stopped");
        self.pipeline
            .enqueue
            .send(Waiting { event, reply })
            .await
            .map_err(|_| unavailable())?;
        // A node that cannot make the event durable (it lost the store) accepts nothing.
        let enqueued = answer.await.map_err(|_| unavailable())?.map_err(|e| {
            EngineError::store_unavailable(
                "the event could not be recorded durably (the store is unreachable or refused it); nothing was accepted, retry later",
                e,
            )
        })?;
        match enqueued {
            Enqueued::New => Ok(Accepted { id, duplicate: false }),
            Enqueued::Duplicate { id } => Ok(Accepted { id, duplicate: true }),
        }
    }
}
