//! What work carries into the work it causes: how many hops deep its chain is (the loop
//! guard, `Limits::MAX_CHAIN_DEPTH`), the trace root it is part of and the invocation
//! that caused it (its parent). They travel together wherever async work starts more
//! work — an event's destinations, a queue message's trigger, a topic message's
//! deliveries, an object write's notifications — stored beside the event or message
//! (`chain_depth`, `trace`, `parent`), so an invocation that runs minutes later still
//! names the trace of the request that began it and the invocation it came from
//! (`wisp trace` reads the tree from the records alone).
//!
//! Work that starts with no trace (an API request without `X-Amzn-Trace-Id`, a
//! schedule) carries none: the invocation it leads to starts a new root from its own id
//! (`CallContext::root_for`), and everything that invocation causes carries that root.

use crate::{CallFrom, Caller, Engine};
use wisp_core::trace;

/// Where a write or a message stands in a chain of work (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cause {
    /// Event hops that led here (0 for a client's own request).
    pub depth: u32,
    /// The trace root (X-Ray's `1-<8 hex>-<24 hex>`); `None`: what it causes starts
    /// a trace of its own.
    pub trace: Option<String>,
    /// The id of the invocation making the write or sending the message: the parent
    /// of the invocations it leads to. `None`: no invocation (a client's request).
    pub parent: Option<String>,
}

impl Engine {
    /// What a write (an object, a queue message, a topic message) by `caller` gives
    /// the work it causes: the depth of [`Engine::write_depth`], and the trace of the
    /// invocation making it — `from`, when the request says which (a wasm guest at the
    /// platform address), else the running invocation the `X-Amzn-Trace-Id` header's
    /// `Parent` names for a function's credential (as [`Engine::call_from`] finds it),
    /// else the header's `Root` (a client may start a trace of its own; a malformed
    /// header is ignored).
    pub fn write_cause(&self, caller: &Caller, from: Option<&CallFrom>, trace_header: Option<&str>) -> Cause {
        let (trace, parent) = match (from, &caller.grants) {
            (Some(from), _) => (from.context.trace_root.clone(), from.invocation.clone()),
            (None, Some(grants)) => {
                let from = self.call_from(&caller.namespace, &grants.function, trace_header);
                (from.context.trace_root, from.invocation)
            }
            (None, None) => (trace_header.and_then(|h| trace::parse(h).0).map(Into::into), None),
        };
        Cause {
            depth: self.write_depth(caller),
            trace: trace.map(|root| root.to_string()),
            parent: parent.map(|id| id.to_string()),
        }
    }
}
