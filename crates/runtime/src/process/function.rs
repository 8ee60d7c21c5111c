//! A process function version: its warm instances and the running of invocations
//! on them, one at a time per instance (Lambda's model).
//!
//! An invocation takes an idle instance or starts one (a cold start, whose init time
//! is reported apart from the run time), runs on it, and gives it back if it is
//! still healthy. Invocations run in their own task, so a caller that goes away
//! does not kill a warm instance mid-invocation. Dropping the function stops every
//! idle instance.

use super::FunctionContext;
use super::instance::{Instance, StartFailure};
use crate::Function;
use crate::invocation::{Finished, Input, Invocation, InvokeError, Logs, Output};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

pub(crate) struct ProcessFunction {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: FunctionContext,
    idle: Mutex<Vec<Instance>>,
}

impl ProcessFunction {
    pub(crate) fn new(ctx: FunctionContext) -> ProcessFunction {
        ProcessFunction {
            inner: Arc::new(Inner {
                ctx,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }
}

impl Drop for ProcessFunction {
    fn drop(&mut self) {
        // Instances kill their processes when dropped.
        self.inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[async_trait]
impl Function for ProcessFunction {
    async fn invoke(&self, invocation: Invocation) -> Result<Output, InvokeError> {
        let inner = self.inner.clone();
        tokio::spawn(inner.run(invocation))
            .await
            .map_err(|e| InvokeError::Internal(format!("the invocation task failed: {e}")))?
    }
}

impl Inner {
    async fn run(self: Arc<Self>, invocation: Invocation) -> Result<Output, InvokeError> {
        let Invocation { id, input, on_finish } = invocation;
        let Input::Event(payload) = input else {
            return Err(InvokeError::WrongInput("process functions take events"));
        };
        let started = Instant::now();
        let finish = |logs: Logs, error: Option<&InvokeError>, init| {
            if let Some(on_finish) = on_finish {
                on_finish(Finished {
                    logs,
                    duration: started.elapsed(),
                    error: error.map(InvokeError::code),
                    init,
                });
            }
        };
        let idle = self.take_idle();
        let (mut instance, init, init_logs) = match idle {
            Some(instance) => (instance, None, Logs::default()),
            None => match Instance::start(&self.ctx).await {
                Ok((instance, init, logs)) => {
                    tracing::debug!(function = %self.ctx.name, instance = instance.id(), "started an instance in {init:?}");
                    (instance, Some(init), logs)
                }
                Err(StartFailure { error, logs }) => {
                    finish(logs, Some(&error), None);
                    return Err(error);
                }
            },
        };
        let (result, logs) = instance.invoke(&id, payload, self.ctx.timeout).await;
        finish(concat(init_logs, logs), result.as_ref().err(), init);
        if instance.reusable() {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(instance);
        }
        result.map(Output::Event)
    }

    /// The most recently used idle instance that is still alive.
    fn take_idle(&self) -> Option<Instance> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(mut instance) = idle.pop() {
            if instance.reusable() {
                return Some(instance);
            }
        }
        None
    }
}

fn concat(first: Logs, then: Logs) -> Logs {
    let join = |a: Bytes, b: Bytes| {
        if a.is_empty() {
            return b;
        }
        let mut joined = BytesMut::from(a);
        joined.extend_from_slice(&b);
        joined.freeze()
    };
    Logs {
        stdout: join(first.stdout, then.stdout),
        stderr: join(first.stderr, then.stderr),
        truncated: first.truncated || then.truncated,
    }
}
