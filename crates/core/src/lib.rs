//! The vocabulary of Wisp: names, function configuration, limits, routes and the
//! table of error codes that every layer (API, CLI, runtimes) speaks.
//!
//! This crate does no I/O and depends on nothing heavy, so every other crate can
//! use it without pulling in wasmtime, SQLite or an HTTP stack.

pub mod error;
pub mod events;
pub mod limits;
pub mod name;
pub mod route;
pub mod schedule;
pub mod spec;

pub use error::ErrorCode;
pub use events::{Destination, QueueConfig, QueueConfigError, QueueTrigger, Schedule};
pub use limits::Limits;
pub use name::{FunctionName, NameError, Namespace, QueueName};
pub use route::{RESERVED_PREFIXES, Route, RouteError, RoutePattern};
pub use schedule::{ParsedSchedule, ScheduleError};
pub use spec::{ConfigError, ConfigField, FunctionConfig, FunctionRuntime, Kind, VersionId};
