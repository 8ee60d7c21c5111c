//! The scaler task: wakes at the earliest autoscaler deadline of any pool (and at
//! least once a second) and drives every pool: releases idle ones (scale to zero),
//! prewarms others, and stops process instances idle past their keep-alive.

use crate::Engine;
use std::sync::Arc;
use std::time::Duration;

/// The longest the task sleeps: how late a scale-in of single process instances can be.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// The shortest: deadlines closer together than this are served in one wake-up.
const MIN_SLEEP: Duration = Duration::from_millis(5);

/// Starts the task. It ends by itself within a second of the engine's end.
pub(crate) fn start(engine: &Arc<Engine>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let engine = Arc::downgrade(engine);
    handle.spawn(async move {
        loop {
            let wake = {
                let Some(engine) = engine.upgrade() else {
                    break;
                };
                let clock = engine.pools.clock;
                let now = clock.now();
                let mut next = now + MAX_SLEEP;
                for version in engine.functions.load().values().flat_map(|d| d.versions()) {
                    version.pool.drive(now);
                    version.pool.trim();
                    if let Some(deadline) = version.pool.next_deadline() {
                        next = next.min(deadline);
                    }
                }
                clock.at(next.max(now + MIN_SLEEP))
            };
            tokio::time::sleep_until(wake).await;
        }
    });
}
