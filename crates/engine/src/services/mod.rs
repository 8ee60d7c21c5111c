//! The services functions call: the engine's side of the runtime's services seam
//! ([`wisp_runtime::Services`]).
//!
//! Each function version gets one [`Services`] when it is deployed or loaded, built
//! from what its configuration grants, and every invocation of it carries a clone.
//! The runtime's host bindings call it; the implementations live here, over the
//! store and the engine, so the runtime never sees either. Nothing is granted by
//! default.

pub(crate) mod calls;
mod kv;
pub(crate) mod outbound;
pub(crate) mod platform;

use std::sync::Arc;
use wisp_core::{FunctionConfig, FunctionName, Namespace};
use wisp_runtime::Services;
use wisp_store::Store;

/// The services a function version of `namespace` may call, by its configuration.
/// Called once per version, when it is deployed or loaded.
pub(crate) fn for_function(
    namespace: &Namespace,
    function: &FunctionName,
    config: &FunctionConfig,
    store: &Arc<dyn Store>,
    platform: &platform::PlatformCell,
    engine: &calls::EngineCell,
) -> Services {
    let guest = platform::Guest::new(namespace, function, config);
    let services = Services::new(platform::GuestHttp::new(guest.clone(), config, platform))
        .with_function_calls(calls::GuestCalls::new(guest, engine));
    if config.kv.is_empty() {
        // Every store refused with `access-denied`.
        return services;
    }
    services.with_key_values(Arc::new(kv::GrantedKeyValues::new(
        store.clone(),
        namespace.clone(),
        &config.kv,
    )))
}
