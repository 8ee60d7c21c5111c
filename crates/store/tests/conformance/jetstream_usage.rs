//! The JetStream backend's run of the `usage` checks, in a file of its own while the concern
//! is written (issue 21); it joins the list in `main.rs` once it passes.

use super::*;

conformance!(jetstream_usage, jetstream::open, [usage]);
