//! Keep-alive policies and the autoscaler: pure state machines over a clock.
//!
//! The engine keeps one [`Autoscaler`] per function version's pool. It reports invocation
//! starts and ends, polls for [`Action`]s at [`Autoscaler::next_deadline`], and applies them
//! (release the warm state, or load it ahead of need). How long a pool stays warm is the
//! [`KeepAlivePolicy`]: a fixed window (the default, 10 minutes), or the hybrid histogram
//! policy of Shahrad et al., "Serverless in the Wild" (USENIX ATC 2020), which learns each
//! function's idle times ([`IdleHistogram`]) and picks a prewarm and a keep-alive window.
//!
//! Nothing here reads a clock, sleeps or spawns: time is a [`std::time::Duration`] since an
//! epoch the caller chooses, so tests and the `keepalive-replay` trace simulator drive the
//! same code the server runs with fake time.

mod autoscaler;
mod histogram;
mod policy;

pub use autoscaler::{Action, Autoscaler, PREWARM_RETRY};
pub use histogram::{IdleHistogram, Verdict};
pub use policy::{AdaptiveConfig, DEFAULT_KEEP_ALIVE, KeepAlivePolicy, Windows};
