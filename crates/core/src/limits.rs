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
    /// Versions each function keeps besides those an alias points to: the newest this
    /// many (older ones, and the code only they used, are forgotten at the next deploy).
    pub keep_versions: u32,
    /// Largest object a bucket accepts (S3's 5 GiB for one PUT).
    pub max_object_bytes: u64,
    /// Bytes a namespace's buckets may hold together; `None`: no cap.
    pub namespace_storage_bytes: Option<u64>,
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
    /// `max_retries` (after a failed async invocation) when the configuration does not say: Lambda's 2.
    pub const DEFAULT_MAX_RETRIES: u32 = 2;
    /// Largest `max_retries` accepted.
    pub const MAX_RETRIES: u32 = 100;
    /// `max_event_age` when the configuration does not say: Lambda's 6 hours.
    pub const DEFAULT_MAX_EVENT_AGE: Duration = Duration::from_secs(6 * 3600);
    /// Smallest `max_event_age` accepted.
    pub const MIN_EVENT_AGE: Duration = Duration::from_secs(1);
    /// Largest `max_event_age` accepted.
    pub const MAX_EVENT_AGE: Duration = Duration::from_secs(24 * 3600);
    /// Largest event an async invocation accepts (Lambda's 1 MB).
    pub const MAX_ASYNC_PAYLOAD: usize = 1024 * 1024;
    /// How long an `Idempotency-Key` deduplicates async invocations.
    pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);
    /// Hops an event chain may take (function → queue → function …) before it is cut,
    /// as Lambda's recursive loop detection.
    pub const MAX_CHAIN_DEPTH: u32 = 16;
    /// Smallest part of a multipart upload but the last (S3's 5 MiB).
    pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
    /// Largest part of a multipart upload (S3's 5 GiB).
    pub const MAX_PART_BYTES: u64 = 5 * 1024 * 1024 * 1024;
    /// Part numbers run from 1 to this (S3's 10,000).
    pub const MAX_PARTS: u32 = 10_000;
    /// Most keys one listing or one batch delete holds (S3's 1,000).
    pub const MAX_KEYS: u32 = 1000;
    /// User metadata an object may carry, names and values together (S3's 2 KiB).
    pub const MAX_USER_METADATA_BYTES: usize = 2048;
    /// A queue trigger's `batch_size` when the configuration does not say.
    pub const DEFAULT_BATCH_SIZE: u32 = 10;
    /// Largest `batch_size` accepted.
    pub const MAX_BATCH_SIZE: u32 = 1000;
    /// Largest `max_batching_window` accepted (Lambda's 5 minutes).
    pub const MAX_BATCHING_WINDOW: Duration = Duration::from_secs(300);
    /// A queue's `visibility_timeout` when its configuration does not say (SQS's 30 s).
    pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);
    /// Largest `visibility_timeout` accepted (SQS's 12 hours).
    pub const MAX_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
    /// A queue's `retention` when its configuration does not say (SQS's 4 days).
    pub const DEFAULT_RETENTION: Duration = Duration::from_secs(4 * 86_400);
    /// Smallest `retention` accepted.
    pub const MIN_RETENTION: Duration = Duration::from_secs(60);
    /// Largest `retention` accepted (SQS's 14 days).
    pub const MAX_RETENTION: Duration = Duration::from_secs(14 * 86_400);
    /// Largest `max_receive_count` accepted.
    pub const MAX_RECEIVE_COUNT: u32 = 1000;
    /// Largest message body a queue accepts (SQS's 256 KiB).
    pub const MAX_MESSAGE_SIZE: usize = 256 * 1024;
    /// Most messages one send or receive may carry.
    pub const MAX_MESSAGES_PER_CALL: usize = 100;
    /// Longest key of a key-value store, in bytes of UTF-8 (S3's object key limit; Spin
    /// allows less, but a key often embeds an id or a path). The engine checks it; the
    /// store takes any key it is given.
    pub const MAX_KV_KEY_BYTES: usize = 1024;
    /// Largest value of a key-value store (JetStream KV's default maximum message size).
    /// The engine checks it, as it does the key.
    pub const MAX_KV_VALUE_BYTES: usize = 1024 * 1024;
    /// Most keys one batch get, set or delete of a key-value store may carry. The
    /// engine checks it, as it does the key.
    pub const MAX_KV_BATCH: usize = 100;
    /// Largest value of a secret, in bytes of UTF-8 (Kubernetes caps a Secret at 1 MiB,
    /// AWS Secrets Manager at 64 KiB: a value is a password, a key or a certificate, and
    /// every instance start of a function that uses it gets it in its environment).
    pub const MAX_SECRET_VALUE_BYTES: usize = 64 * 1024;
    /// Most missed slots a `catch_up` schedule runs after downtime.
    pub const MAX_CATCH_UP_SLOTS: u32 = 100;
    /// Longest period of a `rate(…)` schedule (the shortest is one second); longer
    /// cycles are written as cron expressions.
    pub const MAX_RATE_PERIOD: Duration = Duration::from_secs(365 * 86_400);
    /// `namespace_max_concurrency` of a fresh server.
    pub const DEFAULT_NAMESPACE_MAX_CONCURRENCY: u32 = 1000;
    /// Largest cap on a namespace's concurrent invocations accepted.
    pub const MAX_NAMESPACE_MAX_CONCURRENCY: u32 = 100_000;

    /// The defaults.
    pub const DEFAULT: Limits = Limits {
        max_request_body: 6 * 1024 * 1024,
        max_response_body: 6 * 1024 * 1024,
        max_code_size: 50 * 1024 * 1024,
        max_log_bytes_per_invocation: 256 * 1024,
        namespace_max_concurrency: Limits::DEFAULT_NAMESPACE_MAX_CONCURRENCY,
        keep_versions: 10,
        max_object_bytes: 5 * 1024 * 1024 * 1024,
        namespace_storage_bytes: None,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
