//! The JetStream [`Events`](crate::Events): not written yet (issue 21).

use crate::Result;
use async_nats::jetstream;

/// The buckets and streams this concern keeps (none yet).
#[derive(Clone)]
pub(super) struct Parts {}

/// Opens (making what does not exist) this concern's buckets and streams.
pub(super) async fn open(_context: &jetstream::Context, _prefix: &str) -> Result<Parts> {
    Ok(Parts {})
}
