//! The JetStream backend's run of the `schedules` checks, in a file of its own while the concern
//! is written (issue 21); it joins the list in `main.rs` once it passes.

use super::*;

conformance!(jetstream_schedules, jetstream::open, [schedules]);
