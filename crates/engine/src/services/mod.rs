//! The services functions call: the engine's side of the runtime's services seam
//! ([`wisp_runtime::Services`]).
//!
//! Each function version gets one [`Services`] when it is deployed or loaded, built
//! from what its configuration grants, and every invocation of it carries a clone.
//! The runtime's host bindings call it; the implementations live here, over the
//! store and the engine, so the runtime never sees either. Nothing is granted by
//! default.

mod outbound;

use wisp_core::FunctionConfig;
use wisp_runtime::Services;

/// The services a function version may call, by its configuration.
pub(crate) fn for_function(_config: &FunctionConfig) -> Services {
    // No configuration grants anything yet: outbound HTTP is refused.
    Services::new(outbound::OutboundPolicy::deny_all())
}
