//! The JetStream backend's run of the `objects` checks, in a file of its own while the
//! concerns are written (issue 21); it joins the list in `main.rs` once every concern does.

use super::*;

conformance!(jetstream_objects, jetstream::open, [objects]);
