//! Host bindings: the interfaces Wisp offers guests beyond WASI itself, each a thin
//! layer that turns a guest's call into a call on the invocation's
//! [`Services`](crate::Services) and back. What a service does, and whether the
//! function may use it, is the engine's business.

pub(crate) mod http;
pub(crate) mod keyvalue;
pub(crate) mod platform;
