//! Destinations behind circuit breakers: each `on_success` or `on_failure` record an
//! outcome sends asks the breaker from the event's function to its destination (a
//! function or a queue) before it is written.
//!
//! The record is part of the outcome's transaction, so it is never held back in
//! memory: while the breaker is open it is written due after the breaker's
//! `retry_after` (a delayed event, or a queue message invisible until then), so it
//! waits and then goes on, counting no attempt and never becoming a dead letter for
//! the breaker. The call a record stands for succeeds when its destination exists
//! (the record lands) and fails when it is gone (it would be dropped).

use crate::Engine;
use crate::breaker::Endpoint;
use wisp_core::wall::now_ms;
use wisp_core::{FunctionName, Namespace};
use wisp_store::{EventOutcome, FollowUp};

impl Engine {
    /// Puts each follow-up of `outcome` (of an event of `function`) through its
    /// breaker, delaying those whose breaker is open.
    pub(super) async fn guard_destinations(&self, function: &FunctionName, outcome: &mut EventOutcome) {
        let caller = Endpoint::Function {
            namespace: outcome.namespace.clone(),
            name: function.clone(),
        };
        for follow_up in &mut outcome.follow_ups {
            let callee = callee(follow_up);
            let permit = match self.guard(caller.clone(), callee) {
                Ok(permit) => permit,
                Err(open) => {
                    let wait_ms = u64::from(open.retry_after.unwrap_or(1)).saturating_mul(1000);
                    tracing::debug!("{}; the destination record waits {wait_ms} ms", open.detail);
                    delay(follow_up, wait_ms);
                    continue;
                }
            };
            let lands = match &*follow_up {
                FollowUp::Event(event) => Ok(self.function(&event.namespace, &event.function).is_some()),
                FollowUp::Message { namespace, queue, .. } => self
                    .store
                    .get_queue(namespace, queue)
                    .await
                    .map(|found| found.is_some()),
            };
            match lands {
                Ok(true) => permit.success(self.breaker_now()),
                Ok(false) => permit.failure(self.breaker_now()),
                // The store's trouble says nothing of the destination.
                Err(_) => permit.release(),
            }
        }
    }
}

/// The breaker's callee for a follow-up: its function or queue.
fn callee(follow_up: &FollowUp) -> Endpoint {
    match follow_up {
        FollowUp::Event(event) => Endpoint::Function {
            namespace: event.namespace.clone(),
            name: event.function.clone(),
        },
        FollowUp::Message { namespace, queue, .. } => Endpoint::Queue {
            namespace: Namespace::clone(namespace),
            name: queue.clone(),
        },
    }
}

/// Makes a follow-up due `wait_ms` from now.
fn delay(follow_up: &mut FollowUp, wait_ms: u64) {
    match follow_up {
        FollowUp::Event(event) => {
            let wait = i64::try_from(wait_ms).unwrap_or(i64::MAX);
            event.run_at = event.run_at.max(now_ms()).saturating_add(wait);
        }
        FollowUp::Message { message, .. } => {
            message.delay_ms = message.delay_ms.max(wait_ms);
        }
    }
}
