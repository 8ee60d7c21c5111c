//! The services functions call: the engine's side of the runtime's services seam
//! ([`wisp_runtime::Services`]).
//!
//! Each function version gets one [`Services`] when it is deployed or loaded, built
//! from what its configuration grants, and every invocation of it carries a clone.
//! The runtime's host bindings call it; the implementations live here, over the
//! store and the engine, so the runtime never sees either. Nothing is granted by
//! default.

mod kv;
mod outbound;

use std::sync::Arc;
use wisp_core::{FunctionConfig, Namespace};
use wisp_runtime::Services;
use wisp_store::Store;

/// The services a function version of `namespace` may call, by its configuration.
/// Called once per version, when it is deployed or loaded.
pub(crate) fn for_function(
    namespace: &Namespace,
    config: &FunctionConfig,
    store: &Arc<dyn Store>,
) -> Services {
    let services = Services::new(outbound::OutboundPolicy::new(&config.outbound));
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
