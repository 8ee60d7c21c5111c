//! The vocabulary of Wisp: names, roles, function configuration, limits, routes
//! (with their auth and rate limits), the triggers and destinations a function
//! declares, queue settings, the wall clock's units, and the table of error codes
//! that every layer (API, CLI, runtimes) speaks.
//!
//! This crate does no I/O (beyond reading the clock, in [`wall`]) and depends on
//! nothing heavy, so every other crate can use it without pulling in wasmtime, SQLite
//! or an HTTP stack.

pub mod alarm;
pub mod billing;
pub mod breaker;
pub mod destination;
pub mod duration_text;
pub mod error;
pub mod exposition;
pub mod filter_policy;
pub mod grant;
pub mod limits;
pub mod log_retention;
pub mod name;
pub mod object;
pub mod outbound;
pub mod queue;
pub mod rate_limit;
pub mod role;
pub mod route;
pub mod route_auth;
pub mod schedule;
pub mod size_text;
pub mod spec;
pub mod trace;
pub mod trigger;
pub mod version;
pub mod wall;

pub use alarm::{ActionTarget, AlarmAction, AlarmMetric, AlarmSpec, AlarmSpecError, AlarmState};
pub use breaker::{BreakerConfig, BreakerConfigError};
pub use destination::Destination;
pub use error::ErrorCode;
pub use filter_policy::{FilterPolicy, FilterPolicyError, PolicyScope};
pub use grant::{BucketAccess, BucketGrant};
pub use limits::Limits;
pub use log_retention::{LogRetention, LogRetentionError};
pub use name::{
    AlarmName, AliasName, FunctionName, KvStoreName, NameError, Namespace, QueueName, SecretName, TopicName,
};
pub use object::{BucketName, EventPattern, NotificationRule, ObjectError, StorageEvent, StorageTrigger};
pub use outbound::OutboundHost;
pub use queue::{QueueConfig, QueueConfigError};
pub use rate_limit::{Rate, RateLimit, RateLimitBy};
pub use role::{Permission, Role, UnknownRole};
pub use route::{RESERVED_PREFIXES, Route, RouteError, RoutePattern};
pub use route_auth::{AuthMode, JwtConfig};
pub use schedule::{ParsedSchedule, ScheduleError};
pub use spec::{ConfigError, ConfigField, EnvValue, FunctionConfig, FunctionRuntime, Kind, VersionId};
pub use trigger::{QueueTrigger, Schedule};
pub use version::{AdditionalVersion, AliasTarget, Qualifier, QualifierError, Weight};
pub use wall::{UnixMicros, UnixMillis};
