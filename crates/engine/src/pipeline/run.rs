//! One run of an event: the attempt through the function's pool, and the outcome it
//! leads to (success, a retry, or a dead letter), with the destination records it
//! sends.

use super::destination::{Condition, Record};
use super::retry::Next;
use crate::registry::Version;
use crate::{Engine, EngineError};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use wisp_core::billing::Limit;
use wisp_core::wall::{millis, now_ms, now_us};
use wisp_core::{Destination, ErrorCode, Limits};
use wisp_store::{EventOutcome, EventRecord, Failure, FollowUp, NewEvent, NewMessage, Resolution};

/// How long an event held by its namespace's quota waits before it is looked at again,
/// unless released sooner (when the quota stops stopping work, every held event of the
/// namespace is made due at once).
const QUOTA_HOLD: Duration = Duration::from_secs(30);

/// How one attempt ended, before it is turned into an outcome.
enum Attempt {
    Succeeded(Bytes),
    /// Not the function's fault: back to the queue, not counted.
    Throttled(EngineError),
    /// The namespace's quota stops work: held, not run, its age paused.
    Held(Limit),
    Failed(EngineError),
}

impl Engine {
    /// Runs one claimed event and decides what follows.
    pub(super) async fn run_event(&self, event: EventRecord) -> EventOutcome {
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
                    failure: Failure::FunctionNotFound,
                    result: None,
                },
            );
        };
        if deployed.record.disabled {
            let why = format!("function_disabled: held while `{}` is disabled", event.function);
            return self.hold(&event, why);
        }
        if let Some(limit) = self.quota_stop(&event.namespace) {
            return self.hold(&event, quota_held(&event, limit));
        }
        // An event runs its qualifier's version, resolved now, or `live` (a weighted
        // alias splits events as it splits requests).
        let deployed = match &event.qualifier {
            None => deployed.live().clone(),
            Some(qualifier) => match deployed.resolve(qualifier) {
                Some(version) => version.clone(),
                None => {
                    let e = EngineError::no_qualifier(&event.function, qualifier);
                    return outcome(
                        event.attempts,
                        Resolution::Failed {
                            error: format!("{}: {}", e.code.as_str(), e.detail),
                            failure: Failure::FunctionNotFound,
                            result: None,
                        },
                    );
                }
            },
        };
        let config = deployed.config();
        let age = Duration::from_micros(event.age_us(now_us()));
        // A dead letter without running it (this time): no attempt counted, no answer.
        let give_up_unrun =
            |condition, why| self.give_up(&deployed, &event, event.attempts, condition, None, why);
        if event.chain_depth >= Limits::MAX_CHAIN_DEPTH {
            let why = format!(
                "wisp: event {} was not run: its chain of events has taken {} hops (the limit is {}); \
                 a function is triggering itself in a loop (for example through a queue, a destination or a bucket it writes to)",
                event.id,
                event.chain_depth,
                Limits::MAX_CHAIN_DEPTH
            );
            tracing::warn!(function = %event.function, "{why}");
            self.logs.note(&event.namespace, &event.function, &event.id, &why);
            return give_up_unrun(Condition::RecursiveLoop, why);
        }
        if age > config.max_event_age {
            let why = format!(
                "event_age_exceeded: the event is {} old; max_event_age is {}",
                humantime::format_duration(Duration::from_secs(age.as_secs())),
                humantime::format_duration(config.max_event_age)
            );
            return give_up_unrun(Condition::EventAgeExceeded, why);
        }
        let running = deployed.running(event.chain_depth);
        let attempt = self.try_once(&deployed, &event).await;
        drop(running);
        let settings = self.pipeline.settings;
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
                        qualifier: event.qualifier.as_ref(),
                        event_id: &event.id,
                        condition: Condition::Success,
                        attempts,
                        request: &event.payload,
                        response: Some(&result),
                        function_error: None,
                        version: deployed.record.number,
                        timestamp_ms: now_ms(),
                    };
                    done.follow_ups
                        .push(follow_up(&event, destination, record.to_json()));
                }
                done
            }
            Attempt::Held(limit) => self.hold(&event, quota_held(&event, limit)),
            Attempt::Throttled(error) => {
                let delay = settings.throttled(fastrand::f64());
                if age + delay > config.max_event_age {
                    let why = format!("event_age_exceeded: still throttled ({error})");
                    return give_up_unrun(Condition::EventAgeExceeded, why);
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
                    Next::RetryAfter(delay) => {
                        deployed.pool.metrics.retries.fetch_add(1, Ordering::Relaxed);
                        outcome(
                            attempts,
                            Resolution::Retry {
                                run_at: now_ms() + millis(delay),
                                error: message,
                            },
                        )
                    }
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

    /// Holds an event back while its namespace's quota stops work: not run, no
    /// attempt counted, not aged (the hold is added to its `held_ms`), looked at again
    /// after [`QUOTA_HOLD`].
    fn hold(&self, event: &EventRecord, why: String) -> EventOutcome {
        let hold = millis(QUOTA_HOLD);
        EventOutcome {
            namespace: event.namespace.clone(),
            id: event.id.clone(),
            attempts: event.attempts,
            resolution: Resolution::Held {
                run_at: now_ms() + hold,
                held_ms: event.held_ms + u64::try_from(hold).unwrap_or(0),
                error: why,
            },
            follow_ups: Vec::new(),
        }
    }

    /// A dead letter, with its `on_failure` record.
    fn give_up(
        &self,
        deployed: &Version,
        event: &EventRecord,
        attempts: u32,
        condition: Condition,
        response: Option<Vec<u8>>,
        error: String,
    ) -> EventOutcome {
        deployed.pool.metrics.dead_letters.fetch_add(1, Ordering::Relaxed);
        let failure = match condition {
            Condition::Success | Condition::RetriesExhausted => Failure::RetriesExhausted,
            Condition::EventAgeExceeded => Failure::EventAgeExceeded,
            Condition::RecursiveLoop => Failure::LoopDetected,
        };
        let mut follow_ups = Vec::new();
        if let Some(destination) = &deployed.config().on_failure {
            let record = Record {
                function: &event.function,
                qualifier: event.qualifier.as_ref(),
                event_id: &event.id,
                condition,
                attempts,
                request: &event.payload,
                response: response.as_deref(),
                function_error: response.as_ref().map(|_| "Unhandled"),
                version: deployed.record.number,
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
                failure,
                result: response,
            },
            follow_ups,
        }
    }

    /// One run of an event through the function's pool, classified.
    async fn try_once(&self, deployed: &Arc<Version>, event: &EventRecord) -> Attempt {
        let payload = Bytes::from(event.payload.clone());
        let context = wisp_runtime::CallContext {
            depth: event.chain_depth,
            trace_root: event.trace.as_deref().map(Into::into),
            parent: event.parent.as_deref().map(Into::into),
            ..Default::default()
        };
        match self
            .attempt(deployed, &event.id, payload, context, event.qualifier.clone())
            .await
        {
            Ok(answer) => Attempt::Succeeded(answer),
            Err(e) if e.code == ErrorCode::QuotaExceeded => {
                Attempt::Held(self.quota_stop(&event.namespace).unwrap_or(Limit::Requests))
            }
            Err(e) if matches!(e.code, ErrorCode::Throttled | ErrorCode::Internal) => {
                // Answered here: the event goes back to the queue with this error.
                e.log();
                Attempt::Throttled(e)
            }
            Err(e) => Attempt::Failed(e),
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

/// The record a destination receives, as the store will write it: one hop deeper, in
/// the trace the event's run was part of (its own new one when the event had none),
/// with that run (its invocation id is the event's) as its parent.
fn follow_up(event: &EventRecord, destination: &Destination, record: Vec<u8>) -> FollowUp {
    let chain_depth = event.chain_depth + 1;
    let trace = Some(
        event
            .trace
            .clone()
            .unwrap_or_else(|| wisp_core::trace::new_root(&event.id)),
    );
    let parent = Some(event.id.clone());
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
                trace,
                parent,
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
                qualifier: None,
                trace,
                parent,
                created_us: now,
                run_at: now / 1000,
                lease: None,
            })
        }
    }
}

/// Why a quota holds an event.
fn quota_held(event: &EventRecord, limit: Limit) -> String {
    format!(
        "quota_exceeded: held while namespace `{}` is at its monthly {} limit",
        event.namespace,
        limit.as_str()
    )
}
