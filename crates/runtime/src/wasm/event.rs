//! `event` functions: WASI command programs, as p1 core modules (`_start`) or p2
//! command components (`wasi:cli/run`). The event goes to stdin, the result comes
//! from stdout, stderr is the log; a non-zero exit or a trap is a function error.

use super::capture::Capture;
use super::failure::{RunEnd, classify};
use super::limits::{MemoryLimiter, set_deadline};
use super::state::{ComponentState, ModuleState, wasi_builder};
use super::{Artifact, Inner};
use crate::env::FunctionEnv;
use crate::{
    CallContext, CallSite, Finished, FunctionSpec, Input, Invocation, InvokeError, LoadError, Logs, Output,
    Services,
};
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::Component;
use wasmtime::{ExternType, InstancePre, Module, Store};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;

enum Program {
    Module(InstancePre<ModuleState>),
    Command(CommandPre<ComponentState>),
}

pub(crate) struct EventFunction {
    inner: Arc<Inner>,
    /// The compiled code, shared by every function loaded from it; held so that it
    /// stays shared for as long as one of them is loaded.
    _code: Arc<Artifact>,
    program: Program,
    name: String,
    /// Built at load; secret references resolved per instance (see `crate::env`).
    env: FunctionEnv,
    memory_mb: u32,
    timeout: Duration,
}

impl EventFunction {
    pub(crate) fn from_module(
        inner: Arc<Inner>,
        spec: &FunctionSpec,
        module: &Module,
        code: Arc<Artifact>,
    ) -> Result<Self, LoadError> {
        let has_start = module
            .exports()
            .any(|e| e.name() == "_start" && matches!(e.ty(), ExternType::Func(_)));
        if !has_start {
            return Err(LoadError::InvalidCode(
                "kind = \"event\" needs a WASI command program, but the module exports no `_start` \
                 function (build a binary crate, not a library)"
                    .into(),
            ));
        }
        let pre = inner.module_linker.instantiate_pre(module).map_err(|e| {
            LoadError::InvalidCode(format!(
                "the module imports something Wisp does not provide (only wasi_snapshot_preview1 is): {e:#}"
            ))
        })?;
        Ok(Self::new(inner, spec, Program::Module(pre), code))
    }

    pub(crate) fn from_component(
        inner: Arc<Inner>,
        spec: &FunctionSpec,
        component: &Component,
        code: Arc<Artifact>,
    ) -> Result<Self, LoadError> {
        let instance_pre = inner.component_linker.instantiate_pre(component).map_err(|e| {
            LoadError::InvalidCode(format!(
                "the component imports something Wisp does not provide: {e:#}"
            ))
        })?;
        let pre = CommandPre::new(instance_pre).map_err(|e| {
            LoadError::InvalidCode(format!(
                "kind = \"event\" needs a WASI command exporting wasi:cli/run, and this component does \
                 not ({e:#}); a wasi:http/proxy component is deployed with kind = \"http\""
            ))
        })?;
        Ok(Self::new(inner, spec, Program::Command(pre), code))
    }

    fn new(inner: Arc<Inner>, spec: &FunctionSpec, program: Program, code: Arc<Artifact>) -> Self {
        EventFunction {
            inner,
            _code: code,
            program,
            name: spec.name.clone(),
            env: FunctionEnv::new(&spec.config.env),
            memory_mb: spec.config.memory_mb,
            timeout: spec.config.timeout,
        }
    }

    /// Runs the program to its end; `Ok(None)` is success.
    async fn run(
        &self,
        env: &[(String, String)],
        event: Bytes,
        services: Services,
        site: CallSite,
        (stdout, stderr): (&Capture, &Capture),
        timeout: Duration,
    ) -> Option<InvokeError> {
        let deadline = site.context.deadline.unwrap_or_else(|| Instant::now() + timeout);
        let mut builder = wasi_builder(&self.name, env, stdout, stderr);
        builder.stdin(MemoryInputPipe::new(event));
        let limiter = MemoryLimiter::new(self.memory_mb);
        let (end, memory_exceeded) = match &self.program {
            Program::Module(pre) => {
                let mut store = Store::new(
                    &self.inner.engine,
                    ModuleState {
                        wasi: builder.build_p1(),
                        limiter,
                    },
                );
                store.limiter(|s| &mut s.limiter);
                set_deadline(&mut store, deadline);
                let run = async {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                    start.call_async(&mut store, ()).await
                };
                let end = tokio::time::timeout_at(deadline.into(), run).await;
                (end, store.data().limiter.exceeded)
            }
            Program::Command(pre) => {
                let mut store = Store::new(
                    &self.inner.engine,
                    ComponentState::new(builder.build(), limiter, services, site),
                );
                store.limiter(|s| &mut s.limiter);
                set_deadline(&mut store, deadline);
                let run = async {
                    let command = pre.instantiate_async(&mut store).await?;
                    match command.wasi_cli_run().call_run(&mut store).await? {
                        Ok(()) => Ok(()),
                        Err(()) => Err(wasmtime::Error::new(wasmtime_wasi::I32Exit(1))),
                    }
                };
                let end = tokio::time::timeout_at(deadline.into(), run).await;
                (end, store.data().limiter.exceeded)
            }
        };
        match end {
            Ok(Ok(())) => None,
            Ok(Err(e)) => classify(RunEnd::Failed(e), memory_exceeded, self.memory_mb, timeout),
            Err(_) => classify(RunEnd::Elapsed, memory_exceeded, self.memory_mb, timeout),
        }
    }
}

#[async_trait]
impl crate::Function for EventFunction {
    async fn invoke(&self, invocation: Invocation) -> Result<Output, InvokeError> {
        let Input::Event(event) = invocation.input else {
            return Err(InvokeError::WrongInput("event functions take an event payload"));
        };
        let started = Instant::now();
        let env = match self.env.resolve(invocation.services.secret_values().as_ref()) {
            Ok(env) => env,
            Err(missing) => {
                return Err(super::http::missing_secret(
                    missing,
                    started,
                    invocation.on_finish,
                ));
            }
        };
        let limits = &self.inner.limits;
        let stdout = Capture::new(limits.max_response_body);
        let stderr = Capture::new(limits.max_log_bytes_per_invocation);
        let (deadline, timeout) = invocation.context.bound(started, self.timeout);
        let site = CallSite {
            invocation: invocation.id,
            context: CallContext {
                deadline: Some(deadline),
                ..invocation.context
            },
        };
        let mut error = self
            .run(
                &env,
                event,
                invocation.services,
                site,
                (&stdout, &stderr),
                timeout,
            )
            .await;
        if error.is_none() && stdout.overflowed() {
            error = Some(InvokeError::ResponseTooLarge(limits.max_response_body));
        }
        if let Some(on_finish) = invocation.on_finish {
            on_finish(Finished {
                logs: Logs {
                    stdout: Bytes::new(),
                    truncated: stderr.overflowed(),
                    stderr: stderr.take(),
                },
                duration: started.elapsed(),
                error: error.as_ref().map(InvokeError::code),
                init: None,
            });
        }
        match error {
            None => Ok(Output::Event(stdout.take())),
            Some(error) => Err(error),
        }
    }
}
