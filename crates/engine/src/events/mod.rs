//! The async pipeline: durable events, retried until they succeed or become dead
//! letters, with destinations for both outcomes.
//!
//! # Design
//!
//! An async invoke is answered `202` only once its event is committed to the store.
//! Events arrive on a channel; one task, the *enqueuer*, writes whatever has gathered
//! in one transaction (group commit: no linger, so one client waits one commit and
//! many clients share one) and then answers every waiter.
//!
//! The *dispatcher* claims due events in batches (a lease in the store) up to a
//! bound on events in flight, and runs each through the function's pool like any
//! other invocation (the event id is the invocation id of every attempt). It sleeps
//! until the earliest `run_at`, or until the enqueuer or the completer wakes it.
//!
//! Outcomes go to the *completer*, which writes them in batches, together with the
//! destination records they send (one transaction: a crash cannot lose a record or
//! send it twice). A crash between a run and its outcome's commit runs the event
//! again after the restart: delivery is at-least-once. At start-up every lease is
//! released, since the process that held it is gone.
//!
//! Throttles (the function's queue is full) and system errors go back to the queue
//! without counting as attempts, as Lambda's do; function errors count, and retry
//! with exponential backoff and jitter until `max_retries` or `max_event_age`.

mod record;
pub mod retry;

use crate::{Deployed, Engine, EngineError};
use bytes::Bytes;
use record::{Condition, Record};
use retry::{Next, RetrySettings};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use wisp_core::{Destination, ErrorCode, FunctionName, Limits, Namespace};
use wisp_store::{
    Enqueued, EventOutcome, EventRecord, FollowUp, NewEvent, NewMessage, Resolution, Store, StoreError,
    UnixMicros, UnixMillis,
};

/// Events written per enqueue transaction at most.
const ENQUEUE_BATCH: usize = 1024;
/// Outcomes written per transaction at most.
const COMPLETE_BATCH: usize = 1024;
/// Events claimed per claim at most.
const CLAIM_BATCH: usize = 64;
/// Events running at once, across all functions (each function's own
/// `max_concurrency` applies inside this).
const MAX_IN_FLIGHT: usize = 512;
/// How long a claim holds an event: longer than any timeout and queue wait, so only a
/// crashed process's leases ever expire (and those are released at start-up).
const LEASE: Duration = Duration::from_secs(40 * 60);
/// The dispatcher looks at the store at least this often (for events whose retry
/// time came while it slept on an older estimate).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// How often succeeded events past the idempotency window are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

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
pub(crate) struct Events {
    enqueue: mpsc::Sender<Waiting>,
    complete: mpsc::UnboundedSender<EventOutcome>,
    /// Wakes the dispatcher: new events, retries recorded.
    wake: Arc<Notify>,
    settings: RetrySettings,
}

pub(crate) fn now_us() -> UnixMicros {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

pub(crate) fn now_ms() -> UnixMillis {
    now_us() / 1000
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Events {
    /// Starts the enqueuer and the completer; the dispatcher starts with
    /// [`start_dispatcher`] once the engine exists.
    pub(crate) fn start(
        store: Arc<dyn Store>,
        settings: RetrySettings,
    ) -> (Events, mpsc::UnboundedReceiver<EventOutcome>) {
        let wake = Arc::new(Notify::new());
        let (enqueue, rx) = mpsc::channel::<Waiting>(64 * 1024);
        tokio::spawn(enqueuer(store, rx, wake.clone()));
        let (complete, complete_rx) = mpsc::unbounded_channel();
        (
            Events {
                enqueue,
                complete,
                wake,
                settings,
            },
            complete_rx,
        )
    }

    /// Wakes the dispatcher (something became due).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }
}

async fn enqueuer(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Waiting>, wake: Arc<Notify>) {
    let mut batch = Vec::with_capacity(ENQUEUE_BATCH);
    while rx.recv_many(&mut batch, ENQUEUE_BATCH).await > 0 {
        let (events, replies): (Vec<NewEvent>, Vec<_>) = batch.drain(..).map(|w| (w.event, w.reply)).unzip();
        let since = now_us() - micros(Limits::IDEMPOTENCY_WINDOW);
        match store.enqueue_events(&events, since).await {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(e) => {
                tracing::error!("recording {} async events failed: {e}", events.len());
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Backend(e.to_string())));
                }
            }
        }
        wake.notify_one();
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Writes outcomes in batches; wakes the dispatcher when they schedule work.
async fn completer(
    engine: std::sync::Weak<Engine>,
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<EventOutcome>,
) {
    let mut batch = Vec::with_capacity(COMPLETE_BATCH);
    while rx.recv_many(&mut batch, COMPLETE_BATCH).await > 0 {
        let schedules_work = batch.iter().any(|o| {
            matches!(o.resolution, Resolution::Retry { .. })
                || o.follow_ups.iter().any(|f| matches!(f, FollowUp::Event(_)))
        });
        let queues: Vec<(Namespace, wisp_core::QueueName)> = batch
            .iter()
            .flat_map(|o| &o.follow_ups)
            .filter_map(|f| match f {
                FollowUp::Message { namespace, queue, .. } => Some((namespace.clone(), queue.clone())),
                FollowUp::Event(_) => None,
            })
            .collect();
        // A failed write is retried: the outcomes are the only record of runs that
        // happened (dropping them would run the events again after a restart).
        let mut delay = Duration::from_millis(50);
        while let Err(e) = store.complete_events(&batch, now_ms()).await {
            tracing::error!("recording {} async outcomes failed (retrying): {e}", batch.len());
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        batch.clear();
        let Some(engine) = engine.upgrade() else {
            continue;
        };
        if schedules_work {
            engine.events.wake();
        }
        for (namespace, queue) in queues {
            engine.queue_sent(&namespace, &queue);
        }
    }
}

/// Starts the dispatcher and the completer. They end once the engine is gone.
pub(crate) fn start_dispatcher(engine: &Arc<Engine>, outcomes: mpsc::UnboundedReceiver<EventOutcome>) {
    let store = engine.store.clone();
    tokio::spawn(completer(Arc::downgrade(engine), store.clone(), outcomes));
    let wake = engine.events.wake.clone();
    let weak = Arc::downgrade(engine);
    tokio::spawn(async move {
        match store.release_event_leases().await {
            Ok(0) => {}
            Ok(n) => tracing::info!("{n} async events were running when Wisp stopped; they run again"),
            Err(e) => tracing::error!("releasing the leases of async events failed: {e}"),
        }
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut last_sweep = tokio::time::Instant::now();
        loop {
            // Wait for room before claiming, so claimed events never wait on us.
            let Ok(first) = slots.clone().acquire_owned().await else {
                break;
            };
            let want = (slots.available_permits() + 1).min(CLAIM_BATCH);
            let now = now_ms();
            let claimed = match store.claim_events(now, now_us(), now + millis(LEASE), want).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::error!("claiming async events failed: {e}");
                    drop(first);
                    tokio::time::sleep(IDLE_POLL).await;
                    continue;
                }
            };
            let Some(engine) = weak.upgrade() else {
                break;
            };
            let got = claimed.len();
            let mut first = Some(first);
            for event in claimed {
                let permit = match first.take() {
                    Some(permit) => permit,
                    None => match slots.clone().try_acquire_owned() {
                        Ok(permit) => permit,
                        // Cannot happen (we asked for no more than were free); if it
                        // does, wait rather than overrun the bound.
                        Err(_) => match slots.clone().acquire_owned().await {
                            Ok(permit) => permit,
                            Err(_) => return,
                        },
                    },
                };
                let engine = engine.clone();
                tokio::spawn(async move {
                    let outcome = engine.run_event(event).await;
                    let _ = engine.events.complete.send(outcome);
                    drop(permit);
                });
            }
            if last_sweep.elapsed() >= SWEEP_EVERY {
                last_sweep = tokio::time::Instant::now();
                let before = now_us() - micros(Limits::IDEMPOTENCY_WINDOW);
                if let Err(e) = store.sweep_events(before).await {
                    tracing::warn!("sweeping old async events failed: {e}");
                }
            }
            drop(engine);
            if got == want {
                continue;
            }
            // Fewer due than asked: sleep until the next one is due, or a wake.
            let sleep = match store.next_event_due().await {
                Ok(Some(due)) => {
                    Duration::from_millis(u64::try_from(due - now_ms()).unwrap_or(0)).min(IDLE_POLL)
                }
                Ok(None) => IDLE_POLL,
                Err(e) => {
                    tracing::error!("reading the next async event's time failed: {e}");
                    IDLE_POLL
                }
            };
            if sleep.is_zero() {
                continue;
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
    });
}

/// How one attempt ended, before it is turned into an outcome.
enum Attempt {
    Succeeded(Bytes),
    /// Not the function's fault: back to the queue, not counted.
    Throttled(EngineError),
    Failed(EngineError),
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
        if self.function(namespace, name).is_none() {
            return Err(EngineError::function_not_found(name.as_str()));
        }
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
            created_us: now,
            run_at: now / 1000,
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
        self.events.wake();
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
        let unavailable = || EngineError::new(ErrorCode::Internal, "the async pipeline has stopped");
        self.events
            .enqueue
            .send(Waiting { event, reply })
            .await
            .map_err(|_| unavailable())?;
        match answer.await.map_err(|_| unavailable())?? {
            Enqueued::New => Ok(Accepted { id, duplicate: false }),
            Enqueued::Duplicate { id } => Ok(Accepted { id, duplicate: true }),
        }
    }

    /// Runs one claimed event and decides what follows.
    async fn run_event(&self, event: EventRecord) -> EventOutcome {
        let outcome = |attempts, resolution| EventOutcome {
            namespace: event.namespace.clone(),
            id: event.id.clone(),
            attempts,
            resolution,
            follow_ups: Vec::new(),
        };
        let Some(deployed) = self.function(&event.namespace, &event.function) else {
            return outcome(
                event.attempts,
                Resolution::Failed {
                    error: format!("function_not_found: `{}` is not deployed", event.function),
                    failure: "function_not_found".to_string(),
                    result: None,
                },
            );
        };
        let config = &deployed.record.version.config;
        let age = Duration::from_micros(u64::try_from(now_us() - event.created_us).unwrap_or(0));
        if event.chain_depth >= Limits::MAX_CHAIN_DEPTH {
            let why = format!(
                "wisp: event {} was not run: its chain of events has taken {} hops (the limit is {}); \
                 a function is triggering itself in a loop (for example through a queue or a destination)",
                event.id,
                event.chain_depth,
                Limits::MAX_CHAIN_DEPTH
            );
            tracing::warn!(function = %event.function, "{why}");
            self.logs.note(&event.namespace, &event.function, &event.id, &why);
            return self.give_up(
                &deployed,
                &event,
                event.attempts,
                Condition::RecursiveLoop,
                None,
                why,
            );
        }
        if age > config.max_event_age {
            let why = format!(
                "event_age_exceeded: the event is {} old; max_event_age is {}",
                humantime::format_duration(Duration::from_secs(age.as_secs())),
                humantime::format_duration(config.max_event_age)
            );
            return self.give_up(
                &deployed,
                &event,
                event.attempts,
                Condition::EventAgeExceeded,
                None,
                why,
            );
        }
        let attempt = self.attempt(&deployed, &event).await;
        let settings = self.events.settings;
        match attempt {
            Attempt::Succeeded(result) => {
                let attempts = event.attempts + 1;
                let mut done = outcome(
                    attempts,
                    Resolution::Succeeded {
                        result: result.to_vec(),
                    },
                );
                if let Some(destination) = &config.on_success {
                    let record = Record {
                        function: &event.function,
                        event_id: &event.id,
                        condition: Condition::Success,
                        attempts,
                        request: &event.payload,
                        response: Some(&result),
                        function_error: None,
                        version: deployed.record.version.id.short(),
                        timestamp_ms: now_ms(),
                    };
                    done.follow_ups
                        .push(follow_up(&event, destination, record.to_json()));
                }
                done
            }
            Attempt::Throttled(error) => {
                let delay = settings.throttled(fastrand::f64());
                if age + delay > config.max_event_age {
                    let why = format!("event_age_exceeded: still throttled ({error})");
                    return self.give_up(
                        &deployed,
                        &event,
                        event.attempts,
                        Condition::EventAgeExceeded,
                        None,
                        why,
                    );
                }
                outcome(
                    event.attempts,
                    Resolution::Retry {
                        run_at: now_ms() + millis(delay),
                        error: format!("{}: {}", error.code.as_str(), error.detail),
                    },
                )
            }
            Attempt::Failed(error) => {
                let attempts = event.attempts + 1;
                let document = error_document(&error);
                let message = format!("{}: {}", error.code.as_str(), error.detail);
                match settings.after_failure(
                    attempts,
                    config.max_retries,
                    age,
                    config.max_event_age,
                    fastrand::f64(),
                ) {
                    Next::RetryAfter(delay) => outcome(
                        attempts,
                        Resolution::Retry {
                            run_at: now_ms() + millis(delay),
                            error: message,
                        },
                    ),
                    Next::RetriesExhausted => self.give_up(
                        &deployed,
                        &event,
                        attempts,
                        Condition::RetriesExhausted,
                        Some(document),
                        message,
                    ),
                    Next::AgeExceeded => self.give_up(
                        &deployed,
                        &event,
                        attempts,
                        Condition::EventAgeExceeded,
                        Some(document),
                        message,
                    ),
                }
            }
        }
    }

    /// A dead letter, with its `on_failure` record.
    fn give_up(
        &self,
        deployed: &Deployed,
        event: &EventRecord,
        attempts: u32,
        condition: Condition,
        response: Option<Vec<u8>>,
        error: String,
    ) -> EventOutcome {
        let failure = match condition {
            Condition::Success | Condition::RetriesExhausted => "retries_exhausted",
            Condition::EventAgeExceeded => "event_age_exceeded",
            Condition::RecursiveLoop => "loop_detected",
        };
        let mut follow_ups = Vec::new();
        if let Some(destination) = &deployed.record.version.config.on_failure {
            let record = Record {
                function: &event.function,
                event_id: &event.id,
                condition,
                attempts,
                request: &event.payload,
                response: response.as_deref(),
                function_error: response.as_ref().map(|_| "Unhandled"),
                version: deployed.record.version.id.short(),
                timestamp_ms: now_ms(),
            };
            follow_ups.push(follow_up(event, destination, record.to_json()));
        }
        EventOutcome {
            namespace: event.namespace.clone(),
            id: event.id.clone(),
            attempts,
            resolution: Resolution::Failed {
                error,
                failure: failure.to_string(),
                result: response,
            },
            follow_ups,
        }
    }

    /// One run of an event through the function's pool.
    async fn attempt(&self, deployed: &Arc<Deployed>, event: &EventRecord) -> Attempt {
        let payload = Bytes::from(event.payload.clone());
        let result = self.invoke_deployed(deployed, &event.id, payload, None).await;
        let classify = |e: EngineError| match e.code {
            ErrorCode::Throttled | ErrorCode::Internal => Attempt::Throttled(e),
            _ => Attempt::Failed(e),
        };
        let response = match result {
            Ok(response) => response,
            Err(e) => return classify(e),
        };
        let status = response.status();
        let limit = self.limits.max_response_body;
        match wisp_runtime::body::read_to_bytes(response.into_body(), limit).await {
            Ok(body) if status.is_server_error() => Attempt::Failed(EngineError::new(
                ErrorCode::FunctionError,
                format!(
                    "the function answered {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(512)])
                ),
            )),
            Ok(body) => Attempt::Succeeded(body),
            Err(e) => Attempt::Failed(EngineError::new(
                ErrorCode::ResponseTooLarge,
                format!("reading the function's response failed: {e}"),
            )),
        }
    }
}

/// The error document kept as a failed event's result: Lambda's shape for a process
/// function's report, else Wisp's code and message.
fn error_document(error: &EngineError) -> Vec<u8> {
    let value = match &error.report {
        Some(report) => serde_json::to_value(report.as_ref()).unwrap_or_default(),
        None => serde_json::json!({
            "errorType": error.code.as_str(),
            "errorMessage": error.detail,
        }),
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

/// The record a destination receives, as the store will write it.
fn follow_up(event: &EventRecord, destination: &Destination, record: Vec<u8>) -> FollowUp {
    let chain_depth = event.chain_depth + 1;
    let id = uuid::Uuid::now_v7().to_string();
    match destination {
        Destination::Queue(queue) => FollowUp::Message {
            namespace: event.namespace.clone(),
            queue: queue.clone(),
            message: NewMessage {
                id,
                body: String::from_utf8_lossy(&record).into_owned(),
                delay_ms: 0,
                chain_depth,
            },
        },
        Destination::Function(function) => {
            let now = now_us();
            FollowUp::Event(NewEvent {
                namespace: event.namespace.clone(),
                function: function.clone(),
                id,
                payload: record,
                idempotency_key: None,
                chain_depth,
                source: format!("destination:{}", event.function),
                created_us: now,
                run_at: now / 1000,
            })
        }
    }
}
