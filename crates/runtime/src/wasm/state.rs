//! Per-invocation host state: the `T` of each `wasmtime::Store<T>`.

use super::capture::Capture;
use super::host::http::OutboundHooks;
use super::host::keyvalue::KeyValueView;
use super::host::platform::FunctionsView;
use super::limits::MemoryLimiter;
use crate::services::KeyValues;
use crate::{CallSite, Services};
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// State of a store running a component (http functions, p2 command programs).
pub(crate) struct ComponentState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    /// Outgoing requests and function calls go to the invocation's services, from
    /// its call site.
    hooks: OutboundHooks,
    /// `wasi:keyvalue` calls go to the invocation's services.
    key_values: Arc<dyn KeyValues>,
    pub(crate) limiter: MemoryLimiter,
}

impl ComponentState {
    pub(crate) fn new(
        wasi: WasiCtx,
        limiter: MemoryLimiter,
        services: Services,
        site: CallSite,
    ) -> ComponentState {
        ComponentState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            key_values: services.key_values().clone(),
            hooks: OutboundHooks::new(services, site),
            limiter,
        }
    }

    /// What the `wisp:platform/functions` bindings reach.
    pub(crate) fn functions(&mut self) -> FunctionsView<'_> {
        FunctionsView {
            calls: self.hooks.services.function_calls(),
            site: &self.hooks.site,
        }
    }

    /// What the `wasi:keyvalue` bindings reach.
    pub(crate) fn key_value(&mut self) -> KeyValueView<'_> {
        KeyValueView {
            table: &mut self.table,
            key_values: &self.key_values,
        }
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// State of a store running a WASI p1 core module (event functions).
pub(crate) struct ModuleState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: MemoryLimiter,
}

/// A WASI context for one invocation: the function's environment and the given stdio,
/// no arguments but the program name, no files, no network.
pub(crate) fn wasi_builder(
    name: &str,
    env: &[(String, String)],
    stdout: &Capture,
    stderr: &Capture,
) -> WasiCtxBuilder {
    let mut builder = WasiCtxBuilder::new();
    builder
        .arg(name)
        .envs(env)
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    builder
}
