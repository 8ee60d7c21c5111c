//! Defaults and bounds for every limit Wisp enforces, in one place.
//!
//! The docs (`docs/manifest.md`, `docs/api.md`) quote these values; change them here.

use std::time::Duration;

/// Limits on functions and requests. [`Limits::DEFAULT`] is what a fresh server uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body a function may receive (Lambda's 6 MB payload limit).
    pub max_request_body: usize,
    /// Largest result an event function may write to stdout.
    pub max_response_body: usize,
    /// Largest code upload.
    pub max_code_size: usize,
    /// Log bytes kept per invocation (stdout and stderr together); the rest is cut.
    pub max_log_bytes_per_invocation: usize,
    /// Invocations that may run at once across a namespace's functions; past it,
    /// invocations queue behind their function's queue limits.
    pub namespace_max_concurrency: u32,
}

impl Limits {
    /// Memory a function gets when its configuration does not say.
    pub const DEFAULT_MEMORY_MB: u32 = 128;
    /// Smallest `memory_mb` accepted.
    pub const MIN_MEMORY_MB: u32 = 1;
    /// Largest `memory_mb` accepted (the wasm runtime reserves this much address space per instance slot).
    pub const MAX_MEMORY_MB: u32 = 4096;
    /// Timeout a function gets when its configuration does not say.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    /// Smallest timeout accepted.
    pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);
    /// Largest timeout accepted (Lambda's 15 minutes).
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(15 * 60);
    /// `max_concurrency` when the configuration does not say.
    pub const DEFAULT_MAX_CONCURRENCY: u32 = 100;
    /// Largest `max_concurrency` accepted.
    pub const MAX_CONCURRENCY: u32 = 1000;
    /// `max_queue` when the configuration does not say.
    pub const DEFAULT_MAX_QUEUE: u32 = 100;
    /// Largest `max_queue` accepted.
    pub const MAX_QUEUE: u32 = 10_000;
    /// `queue_timeout` when the configuration does not say.
    pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);
    /// Largest `queue_timeout` accepted.
    pub const MAX_QUEUE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
    /// `namespace_max_concurrency` of a fresh server.
    pub const DEFAULT_NAMESPACE_MAX_CONCURRENCY: u32 = 1000;

    /// The defaults.
    pub const DEFAULT: Limits = Limits {
        max_request_body: 6 * 1024 * 1024,
        max_response_body: 6 * 1024 * 1024,
        max_code_size: 50 * 1024 * 1024,
        max_log_bytes_per_invocation: 256 * 1024,
        namespace_max_concurrency: Limits::DEFAULT_NAMESPACE_MAX_CONCURRENCY,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
