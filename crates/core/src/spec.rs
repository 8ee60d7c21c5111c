//! A function's configuration: what the manifest declares and the API accepts.

use crate::destination::Destination;
use crate::duration_text;
use crate::limits::Limits;
use crate::name::{FunctionName, SecretName};
use crate::object::MAX_KEY_BYTES;
use crate::rate_limit::{RateKey, RateLimit, RateLimitError};
use crate::route::{Route, RouteError, RoutePattern};
use crate::route_auth::{AuthMode, JwtConfig};
use crate::schedule::ParsedSchedule;
use crate::trigger::{QueueTrigger, Schedule};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// How a function is invoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A `wasi:http/proxy` component: it receives an HTTP request and answers with a response.
    Http,
    /// A WASI command program: event JSON on stdin, result on stdout, logs on stderr.
    Event,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Event => "event",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What runs a function's code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FunctionRuntime {
    /// WebAssembly under wasmtime: a `.wasm` component or module.
    #[default]
    Wasm,
    /// A native process speaking the AWS Lambda Runtime API: a zip whose root holds an
    /// executable `bootstrap`.
    Process,
    /// Python, through Wisp's own bootstrap: a zip holding the handler's module.
    Python,
    /// Node.js, through Wisp's own bootstrap: a zip holding the handler's module.
    Node,
}

impl FunctionRuntime {
    pub const ALL: [FunctionRuntime; 4] = [
        FunctionRuntime::Wasm,
        FunctionRuntime::Process,
        FunctionRuntime::Python,
        FunctionRuntime::Node,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FunctionRuntime::Wasm => "wasm",
            FunctionRuntime::Process => "process",
            FunctionRuntime::Python => "python",
            FunctionRuntime::Node => "node",
        }
    }

    /// Parses the name used in manifests and the API.
    pub fn parse(text: &str) -> Option<FunctionRuntime> {
        FunctionRuntime::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// Whether the code runs as a native process (Lambda's Runtime API).
    pub fn is_process(self) -> bool {
        self != FunctionRuntime::Wasm
    }

    /// Whether the runtime needs a `handler` (`module.function`).
    pub fn needs_handler(self) -> bool {
        matches!(self, FunctionRuntime::Python | FunctionRuntime::Node)
    }

    fn is_wasm(&self) -> bool {
        *self == FunctionRuntime::Wasm
    }
}

impl fmt::Display for FunctionRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything about a function except its code. Part of a version's identity:
/// changing any field makes a new version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionConfig {
    pub kind: Kind,
    /// Left out of the serialised form when it is `wasm`, so versions made before
    /// runtimes existed keep their ids.
    #[serde(default, skip_serializing_if = "FunctionRuntime::is_wasm")]
    pub runtime: FunctionRuntime,
    /// For process runtimes: the handler, as Lambda's `_HANDLER` (`app.handler`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u32,
    #[serde(default = "default_timeout", with = "duration_text")]
    pub timeout: Duration,
    /// Environment variables: each a text value, or a reference to a secret of the
    /// function's namespace, resolved at every instance start ([`EnvValue`]).
    #[serde(default)]
    pub env: BTreeMap<String, EnvValue>,
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Invocations that may run at once; more wait in the queue. The scaling fields are
    /// left out of the serialised form at their defaults, so older versions keep their ids.
    #[serde(
        default = "default_max_concurrency",
        skip_serializing_if = "is_default_max_concurrency"
    )]
    pub max_concurrency: u32,
    /// Instances (process) or loaded code (wasm) kept warm even when idle, and
    /// started ahead of need at deploy and at start-up.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_instances: u32,
    /// Invocations that may wait for a free slot when `max_concurrency` are running;
    /// past it, requests are refused at once with 429 `throttled`.
    #[serde(default = "default_max_queue", skip_serializing_if = "is_default_max_queue")]
    pub max_queue: u32,
    /// How long an invocation may wait in the queue before it is refused with 429.
    #[serde(
        default = "default_queue_timeout",
        skip_serializing_if = "is_default_queue_timeout",
        with = "duration_text"
    )]
    pub queue_timeout: Duration,
    /// Async invocations: how many times a failed invocation is retried (throttles
    /// and system errors are retried without counting).
    #[serde(
        default = "default_max_retries",
        skip_serializing_if = "is_default_max_retries"
    )]
    pub max_retries: u32,
    /// Async invocations: how long an event may wait for a successful run before it
    /// is dead-lettered.
    #[serde(
        default = "default_max_event_age",
        skip_serializing_if = "is_default_max_event_age",
        with = "duration_text"
    )]
    pub max_event_age: Duration,
    /// Where a successful async invocation's record goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<Destination>,
    /// Where an async invocation's record goes when it has failed for good (it is
    /// kept in the function's dead-letter list as well).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Destination>,
    /// Cron triggers. Written as one schedule or a list.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub schedule: Vec<Schedule>,
    /// Queue triggers. Written as one trigger or a list.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub queue: Vec<QueueTrigger>,
    /// Storage triggers: object events in a bucket of the namespace. Written as one
    /// trigger or a list.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "one_or_many"
    )]
    pub storage: Vec<crate::StorageTrigger>,
    /// A rate limit shared by all the function's routes (`"100/s"`); a route's own
    /// `rate_limit` replaces it for that route. See [`crate::rate_limit`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_by: Option<String>,
    /// Grants (see [`crate::grant`]): the key-value stores of its namespace it may use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kv: Vec<crate::KvStoreName>,
    /// The buckets of its namespace it may read or write.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<crate::BucketGrant>,
    /// The queues of its namespace it may send to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<crate::QueueName>,
    /// The functions of its namespace it may invoke.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invoke: Vec<FunctionName>,
    /// The outbound hosts it may reach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbound: Vec<crate::OutboundHost>,
    /// The topics of its namespace it may publish to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<crate::TopicName>,
    /// How the circuit breakers on calls *into* this function (from other functions,
    /// destinations and subscriptions) open and recover; `None`: the defaults
    /// ([`crate::BreakerConfig::DEFAULT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<crate::BreakerConfig>,
    /// How long and how much of its log the function keeps; `None`: the defaults
    /// ([`crate::LogRetention::DEFAULT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<crate::LogRetention>,
}

/// An environment variable's value: text, or a reference to a secret of the function's
/// namespace (`{"secret": "db"}`), whose value each instance gets when it starts (so a
/// secret set again reaches new instances without a deploy, and no version or API view
/// ever holds a value).
///
/// Serialised untagged: text stays a plain JSON string, so a configuration without
/// secret references serialises (and hashes into its version id) as before secrets
/// existed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum EnvValue {
    Text(String),
    Secret { secret: SecretName },
}

impl EnvValue {
    /// The secret it refers to, if it refers to one.
    pub fn secret(&self) -> Option<&SecretName> {
        match self {
            EnvValue::Text(_) => None,
            EnvValue::Secret { secret } => Some(secret),
        }
    }
}

impl From<String> for EnvValue {
    fn from(text: String) -> Self {
        EnvValue::Text(text)
    }
}

impl From<&str> for EnvValue {
    fn from(text: &str) -> Self {
        EnvValue::Text(text.to_owned())
    }
}

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, Visitor};

        struct EnvValueVisitor;

        impl<'de> Visitor<'de> for EnvValueVisitor {
            type Value = EnvValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a string, or {"secret": "NAME"} naming a secret"#)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvValue, E> {
                Ok(EnvValue::Text(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<EnvValue, E> {
                Ok(EnvValue::Text(v))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EnvValue, A::Error> {
                let mut secret = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "secret" {
                        return Err(de::Error::unknown_field(&key, &["secret"]));
                    }
                    if secret.is_some() {
                        return Err(de::Error::duplicate_field("secret"));
                    }
                    secret = Some(map.next_value::<SecretName>()?);
                }
                let secret = secret.ok_or_else(|| de::Error::missing_field("secret"))?;
                Ok(EnvValue::Secret { secret })
            }
        }

        d.deserialize_any(EnvValueVisitor)
    }
}

/// A value or a list of values.
fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        Many(Vec<T>),
        One(T),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::Many(list) => list,
        OneOrMany::One(one) => vec![one],
    })
}

fn default_max_retries() -> u32 {
    Limits::DEFAULT_MAX_RETRIES
}

fn is_default_max_retries(n: &u32) -> bool {
    *n == Limits::DEFAULT_MAX_RETRIES
}

fn default_max_event_age() -> Duration {
    Limits::DEFAULT_MAX_EVENT_AGE
}

fn is_default_max_event_age(d: &Duration) -> bool {
    *d == Limits::DEFAULT_MAX_EVENT_AGE
}

fn default_memory_mb() -> u32 {
    Limits::DEFAULT_MEMORY_MB
}

fn default_timeout() -> Duration {
    Limits::DEFAULT_TIMEOUT
}

fn default_max_concurrency() -> u32 {
    Limits::DEFAULT_MAX_CONCURRENCY
}

fn is_default_max_concurrency(n: &u32) -> bool {
    *n == Limits::DEFAULT_MAX_CONCURRENCY
}

fn default_max_queue() -> u32 {
    Limits::DEFAULT_MAX_QUEUE
}

fn is_default_max_queue(n: &u32) -> bool {
    *n == Limits::DEFAULT_MAX_QUEUE
}

fn default_queue_timeout() -> Duration {
    Limits::DEFAULT_QUEUE_TIMEOUT
}

fn is_default_queue_timeout(d: &Duration) -> bool {
    *d == Limits::DEFAULT_QUEUE_TIMEOUT
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A configuration value that is out of bounds; `field` names it (`memory_mb`,
/// `routes[1].path`, `env.KEY`) so the manifest can point at the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    pub field: ConfigField,
    pub message: String,
    /// The route error behind a route field's error (to tell reserved paths apart).
    pub route_error: Option<RouteError>,
}

/// Which part of a [`FunctionConfig`] a [`ConfigError`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigField {
    Kind,
    Runtime,
    Handler,
    MemoryMb,
    Timeout,
    EnvKey(String),
    EnvValue(String),
    RoutePath(usize),
    RouteMethods(usize),
    MaxConcurrency,
    MinInstances,
    MaxQueue,
    QueueTimeout,
    MaxRetries,
    MaxEventAge,
    OnSuccess,
    OnFailure,
    /// `schedule[i]` (its expression or time zone).
    Schedule(usize),
    /// `queue[i]` (its batch size or batching window).
    Queue(usize),
    /// `storage[i]` (its events, prefix or suffix, or the trigger as a whole).
    Storage(usize),
    /// `routes[i].auth`.
    RouteAuth(usize),
    /// `routes[i].jwt`, or one key of it (`issuer`, `audience`, `secret`, `jwks`).
    RouteJwt(usize, &'static str),
    /// `routes[i].rate_limit`, `.burst` or `.rate_limit_by`.
    RouteRate(usize, RateKey),
    /// The function's `rate_limit`, `burst` or `rate_limit_by`.
    Rate(RateKey),
    /// One key of `breaker`.
    Breaker(&'static str),
    /// One key of `logs`.
    Logs(&'static str),
}

impl fmt::Display for ConfigField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigField::Kind => f.write_str("kind"),
            ConfigField::Runtime => f.write_str("runtime"),
            ConfigField::Handler => f.write_str("handler"),
            ConfigField::MemoryMb => f.write_str("memory_mb"),
            ConfigField::Timeout => f.write_str("timeout"),
            ConfigField::EnvKey(k) | ConfigField::EnvValue(k) => write!(f, "env.{k}"),
            ConfigField::RoutePath(i) => write!(f, "routes[{i}].path"),
            ConfigField::RouteMethods(i) => write!(f, "routes[{i}].methods"),
            ConfigField::MaxConcurrency => f.write_str("max_concurrency"),
            ConfigField::MinInstances => f.write_str("min_instances"),
            ConfigField::MaxQueue => f.write_str("max_queue"),
            ConfigField::QueueTimeout => f.write_str("queue_timeout"),
            ConfigField::MaxRetries => f.write_str("max_retries"),
            ConfigField::MaxEventAge => f.write_str("max_event_age"),
            ConfigField::OnSuccess => f.write_str("on_success"),
            ConfigField::OnFailure => f.write_str("on_failure"),
            ConfigField::Schedule(i) => write!(f, "schedule[{i}]"),
            ConfigField::Queue(i) => write!(f, "queue[{i}]"),
            ConfigField::Storage(i) => write!(f, "storage[{i}]"),
            ConfigField::RouteAuth(i) => write!(f, "routes[{i}].auth"),
            ConfigField::RouteJwt(i, "") => write!(f, "routes[{i}].jwt"),
            ConfigField::RouteJwt(i, key) => write!(f, "routes[{i}].jwt.{key}"),
            ConfigField::RouteRate(i, key) => write!(f, "routes[{i}].{}", key.as_str()),
            ConfigField::Rate(key) => f.write_str(key.as_str()),
            ConfigField::Breaker(key) => write!(f, "breaker.{key}"),
            ConfigField::Logs(key) => write!(f, "logs.{key}"),
        }
    }
}

impl FunctionConfig {
    /// A configuration of `kind` with every default.
    pub fn new(kind: Kind) -> FunctionConfig {
        FunctionConfig {
            kind,
            runtime: FunctionRuntime::Wasm,
            handler: None,
            memory_mb: default_memory_mb(),
            timeout: default_timeout(),
            env: BTreeMap::new(),
            routes: Vec::new(),
            max_concurrency: default_max_concurrency(),
            min_instances: 0,
            max_queue: default_max_queue(),
            queue_timeout: default_queue_timeout(),
            max_retries: default_max_retries(),
            max_event_age: default_max_event_age(),
            on_success: None,
            on_failure: None,
            schedule: Vec::new(),
            queue: Vec::new(),
            storage: Vec::new(),
            rate_limit: None,
            burst: None,
            rate_limit_by: None,
            kv: Vec::new(),
            buckets: Vec::new(),
            queues: Vec::new(),
            invoke: Vec::new(),
            outbound: Vec::new(),
            topics: Vec::new(),
            breaker: None,
            logs: None,
        }
    }

    /// The secrets its environment refers to, with the variable each one sets.
    pub fn secret_refs(&self) -> impl Iterator<Item = (&str, &SecretName)> {
        self.env
            .iter()
            .filter_map(|(key, value)| value.secret().map(|secret| (key.as_str(), secret)))
    }

    /// Checks every field against [`Limits`] and returns the canonical form
    /// (methods upper-cased and sorted), which is what versions are hashed from.
    pub fn validate(mut self) -> Result<FunctionConfig, ConfigError> {
        self.validate_runtime()?;
        if !(Limits::MIN_MEMORY_MB..=Limits::MAX_MEMORY_MB).contains(&self.memory_mb) {
            return Err(ConfigError {
                field: ConfigField::MemoryMb,
                message: format!(
                    "memory_mb = {} is out of range: use {} to {}",
                    self.memory_mb,
                    Limits::MIN_MEMORY_MB,
                    Limits::MAX_MEMORY_MB
                ),
                route_error: None,
            });
        }
        if self.timeout < Limits::MIN_TIMEOUT || self.timeout > Limits::MAX_TIMEOUT {
            return Err(ConfigError {
                field: ConfigField::Timeout,
                message: format!(
                    "timeout `{}` is out of range: use 1ms to {}",
                    humantime::format_duration(self.timeout),
                    humantime::format_duration(Limits::MAX_TIMEOUT)
                ),
                route_error: None,
            });
        }
        self.validate_scaling()?;
        self.validate_async()?;
        self.validate_triggers()?;
        // Grants are sets: the same ones in another order make the same version.
        self.kv.sort();
        self.kv.dedup();
        self.buckets.sort();
        self.buckets.dedup();
        self.queues.sort();
        self.queues.dedup();
        self.invoke.sort();
        self.invoke.dedup();
        self.outbound.sort();
        self.outbound.dedup();
        self.topics.sort();
        self.topics.dedup();
        if let Some(breaker) = &self.breaker
            && let Err(e) = breaker.validate()
        {
            return Err(ConfigError {
                field: ConfigField::Breaker(e.field),
                message: format!("breaker.{}: {}", e.field, e.message),
                route_error: None,
            });
        }
        if let Some(logs) = &self.logs
            && let Err(e) = logs.validate()
        {
            return Err(ConfigError {
                field: ConfigField::Logs(e.field),
                message: format!("logs.{}: {}", e.field, e.message),
                route_error: None,
            });
        }
        for (key, value) in &self.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(ConfigError {
                    field: ConfigField::EnvKey(key.clone()),
                    message: format!(
                        "invalid environment variable name `{key}`: it must be non-empty and contain no '=' or NUL"
                    ),
                    route_error: None,
                });
            }
            if matches!(value, EnvValue::Text(text) if text.contains('\0')) {
                return Err(ConfigError {
                    field: ConfigField::EnvValue(key.clone()),
                    message: format!("environment variable `{key}` contains a NUL byte"),
                    route_error: None,
                });
            }
        }
        let mut checked: Vec<(RoutePattern, Vec<String>)> = Vec::new();
        for (i, route) in self.routes.iter_mut().enumerate() {
            let (pattern, methods) = route.validate().map_err(|e| ConfigError {
                field: match e {
                    RouteError::BadMethod { .. } => ConfigField::RouteMethods(i),
                    _ => ConfigField::RoutePath(i),
                },
                message: e.to_string(),
                route_error: Some(e),
            })?;
            if let Some((other, _)) = checked
                .iter()
                .find(|(p, m)| Route::overlaps((p, m), (&pattern, &methods)))
            {
                return Err(ConfigError {
                    field: ConfigField::RoutePath(i),
                    message: format!(
                        "route `{}` conflicts with route `{}` of the same function",
                        pattern, other
                    ),
                    route_error: None,
                });
            }
            route.methods = methods.clone();
            checked.push((pattern, methods));
            validate_access(i, route)?;
        }
        self.rate_limit().map_err(|e| ConfigError {
            field: ConfigField::Rate(e.key),
            message: e.message,
            route_error: None,
        })?;
        Ok(self)
    }

    /// The function's rate limit, shared by its routes, checked.
    pub fn rate_limit(&self) -> Result<Option<RateLimit>, RateLimitError> {
        RateLimit::from_parts(
            self.rate_limit.as_deref(),
            self.burst,
            self.rate_limit_by.as_deref(),
        )
    }

    /// The configuration as the API shows it: HS256 secrets replaced by
    /// [`crate::route_auth::REDACTED`].
    pub fn redacted(&self) -> FunctionConfig {
        let mut shown = self.clone();
        for route in &mut shown.routes {
            route.jwt = route.jwt.as_ref().map(JwtConfig::redacted);
        }
        shown
    }

    /// [`FunctionConfig::validate`], and what needs the function's own name: a
    /// destination that is the function itself. The manifest and the API call this one.
    pub fn validate_named(self, name: &FunctionName) -> Result<FunctionConfig, ConfigError> {
        let config = self.validate()?;
        for (field, key, destination) in [
            (ConfigField::OnSuccess, "on_success", &config.on_success),
            (ConfigField::OnFailure, "on_failure", &config.on_failure),
        ] {
            if let Some(Destination::Function(target)) = destination
                && target == name
            {
                return Err(ConfigError {
                    field,
                    message: format!(
                        "{key} sends to function `{name}` itself: each record would invoke it again; \
                         send it to another function or to a queue"
                    ),
                    route_error: None,
                });
            }
        }
        Ok(config)
    }
}

impl FunctionConfig {
    /// Retries, event age and destinations of async invocations.
    fn validate_async(&self) -> Result<(), ConfigError> {
        let fail = |field, message: String| {
            Err(ConfigError {
                field,
                message,
                route_error: None,
            })
        };
        if self.max_retries > Limits::MAX_RETRIES {
            return fail(
                ConfigField::MaxRetries,
                format!(
                    "max_retries = {} is out of range: use 0 to {}",
                    self.max_retries,
                    Limits::MAX_RETRIES
                ),
            );
        }
        if self.max_event_age < Limits::MIN_EVENT_AGE || self.max_event_age > Limits::MAX_EVENT_AGE {
            return fail(
                ConfigField::MaxEventAge,
                format!(
                    "max_event_age `{}` is out of range: use {} to {}",
                    humantime::format_duration(self.max_event_age),
                    humantime::format_duration(Limits::MIN_EVENT_AGE),
                    humantime::format_duration(Limits::MAX_EVENT_AGE)
                ),
            );
        }
        // A record sent to a queue this function reads comes straight back to it.
        for (field, key, outcome, destination) in [
            (ConfigField::OnSuccess, "on_success", "success", &self.on_success),
            (ConfigField::OnFailure, "on_failure", "failure", &self.on_failure),
        ] {
            if let Some(Destination::Queue(queue)) = destination
                && self.queue.iter().any(|t| t.queue == *queue)
            {
                return fail(
                    field,
                    format!(
                        "{key} sends to queue `{queue}`, which triggers this same function: \
                         every {outcome} would invoke it again; send it to another queue"
                    ),
                );
            }
        }
        Ok(())
    }

    /// Schedules parse, queue and storage triggers are in bounds, and none is declared
    /// twice.
    fn validate_triggers(&self) -> Result<(), ConfigError> {
        let fail = |field, message: String| {
            Err(ConfigError {
                field,
                message,
                route_error: None,
            })
        };
        for (i, schedule) in self.schedule.iter().enumerate() {
            if let Err(e) = ParsedSchedule::parse(schedule) {
                return fail(ConfigField::Schedule(i), e.to_string());
            }
            if self.schedule[..i].iter().any(|s| s.key() == schedule.key()) {
                return fail(
                    ConfigField::Schedule(i),
                    format!(
                        "schedule `{}` is declared twice: give each schedule of a function its own expression or time zone",
                        schedule.key()
                    ),
                );
            }
        }
        for (i, trigger) in self.queue.iter().enumerate() {
            let queue = &trigger.queue;
            if !(1..=Limits::MAX_BATCH_SIZE).contains(&trigger.batch_size) {
                return fail(
                    ConfigField::Queue(i),
                    format!(
                        "queue trigger `{queue}`: batch_size = {} is out of range: use 1 to {}",
                        trigger.batch_size,
                        Limits::MAX_BATCH_SIZE
                    ),
                );
            }
            if trigger.max_batching_window > Limits::MAX_BATCHING_WINDOW {
                return fail(
                    ConfigField::Queue(i),
                    format!(
                        "queue trigger `{queue}`: max_batching_window `{}` is out of range: use 0s to {}",
                        humantime::format_duration(trigger.max_batching_window),
                        humantime::format_duration(Limits::MAX_BATCHING_WINDOW)
                    ),
                );
            }
            if self.queue[..i].iter().any(|t| t.queue == *queue) {
                return fail(
                    ConfigField::Queue(i),
                    format!("queue `{queue}` triggers this function twice: declare one trigger per queue"),
                );
            }
        }
        for (i, trigger) in self.storage.iter().enumerate() {
            let bucket = &trigger.bucket;
            if trigger.events.is_empty() {
                return fail(
                    ConfigField::Storage(i),
                    format!(
                        "storage trigger `{bucket}`: `events` is empty, so no event would invoke the function: \
                         leave `events` out for `ObjectCreated:*`, or name events such as `ObjectRemoved:*`"
                    ),
                );
            }
            for (key, value) in [("prefix", &trigger.prefix), ("suffix", &trigger.suffix)] {
                if value.len() > MAX_KEY_BYTES {
                    return fail(
                        ConfigField::Storage(i),
                        format!(
                            "storage trigger `{bucket}`: the {key} is {} bytes long; it may hold at most \
                             {MAX_KEY_BYTES} bytes, the longest object key",
                            value.len()
                        ),
                    );
                }
            }
            // Two triggers on the same keys would invoke the function twice for one
            // event; with different events they are one trigger written in two halves.
            if self.storage[..i]
                .iter()
                .any(|t| t.bucket == *bucket && t.prefix == trigger.prefix && t.suffix == trigger.suffix)
            {
                return fail(
                    ConfigField::Storage(i),
                    format!(
                        "bucket `{bucket}` triggers this function twice with the same prefix and suffix: \
                         list every event in one trigger, or give each trigger its own prefix or suffix"
                    ),
                );
            }
        }
        Ok(())
    }

    /// Concurrency, warm instances and the queue in front of them.
    fn validate_scaling(&self) -> Result<(), ConfigError> {
        let fail = |field, message: String| {
            Err(ConfigError {
                field,
                message,
                route_error: None,
            })
        };
        let max = Limits::MAX_CONCURRENCY;
        if !(1..=max).contains(&self.max_concurrency) {
            return fail(
                ConfigField::MaxConcurrency,
                format!(
                    "max_concurrency = {} is out of range: use 1 to {max}",
                    self.max_concurrency
                ),
            );
        }
        if self.min_instances > self.max_concurrency {
            return fail(
                ConfigField::MinInstances,
                format!(
                    "min_instances = {} is more than max_concurrency = {}: at most max_concurrency instances can run",
                    self.min_instances, self.max_concurrency
                ),
            );
        }
        if self.max_queue > Limits::MAX_QUEUE {
            return fail(
                ConfigField::MaxQueue,
                format!(
                    "max_queue = {} is out of range: use 0 to {}",
                    self.max_queue,
                    Limits::MAX_QUEUE
                ),
            );
        }
        if self.queue_timeout > Limits::MAX_QUEUE_TIMEOUT {
            return fail(
                ConfigField::QueueTimeout,
                format!(
                    "queue_timeout `{}` is out of range: use 0s to {}",
                    humantime::format_duration(self.queue_timeout),
                    humantime::format_duration(Limits::MAX_QUEUE_TIMEOUT)
                ),
            );
        }
        Ok(())
    }

    /// Process runtimes are Lambda's model: an event in, a result out.
    fn validate_runtime(&self) -> Result<(), ConfigError> {
        let fail = |field, message: String| {
            Err(ConfigError {
                field,
                message,
                route_error: None,
            })
        };
        let runtime = self.runtime;
        if runtime.is_process() && self.kind == Kind::Http {
            return fail(
                ConfigField::Kind,
                format!(
                    "runtime `{runtime}` runs event functions (Lambda's model): use kind `event`; \
                     routes give it API Gateway v2.0 events"
                ),
            );
        }
        match (&self.handler, runtime) {
            (None, r) if r.needs_handler() => fail(
                ConfigField::Handler,
                format!(
                    "runtime `{runtime}` needs a handler such as `{}`",
                    example_handler(runtime)
                ),
            ),
            (Some(_), FunctionRuntime::Wasm) => fail(
                ConfigField::Handler,
                "`handler` is for the process, python and node runtimes; a wasm function has none"
                    .to_string(),
            ),
            (Some(handler), r) if r.needs_handler() => match handler_problem(handler) {
                Some(problem) => fail(
                    ConfigField::Handler,
                    format!(
                        "invalid handler `{handler}`: {problem}; write it as `module.function`, like `{}`",
                        example_handler(runtime)
                    ),
                ),
                None => Ok(()),
            },
            (Some(handler), _) if handler.contains('\0') || handler.len() > 128 => fail(
                ConfigField::Handler,
                "the handler must be at most 128 bytes, without NUL".to_string(),
            ),
            _ => Ok(()),
        }
    }
}

/// A route's `auth`, `jwt` table and rate limit.
fn validate_access(i: usize, route: &Route) -> Result<(), ConfigError> {
    let fail = |field, message: String| {
        Err(ConfigError {
            field,
            message,
            route_error: None,
        })
    };
    match (&route.auth, &route.jwt) {
        (AuthMode::Unknown(other), _) => {
            return fail(
                ConfigField::RouteAuth(i),
                format!("unknown value \"{other}\"; use \"public\", \"key\" or \"jwt\""),
            );
        }
        (AuthMode::Jwt, None) => {
            return fail(
                ConfigField::RouteAuth(i),
                "`auth = \"jwt\"` needs a `jwt` table with `issuer`, `audience` and the keys that sign tokens"
                    .to_string(),
            );
        }
        (AuthMode::Jwt, Some(jwt)) => {
            if let Err(e) = jwt.check() {
                return fail(ConfigField::RouteJwt(i, e.key), e.message);
            }
        }
        (mode, Some(_)) => {
            return fail(
                ConfigField::RouteJwt(i, ""),
                format!(
                    "a `jwt` table is only read when `auth = \"jwt\"`; this route's auth is \"{}\"",
                    mode.as_str()
                ),
            );
        }
        (AuthMode::Public | AuthMode::Key, None) => {}
    }
    route.rate_limit().map_err(|e| ConfigError {
        field: ConfigField::RouteRate(i, e.key),
        message: e.message,
        route_error: None,
    })?;
    Ok(())
}

fn example_handler(runtime: FunctionRuntime) -> &'static str {
    match runtime {
        FunctionRuntime::Node => "index.handler",
        _ => "app.handler",
    }
}

/// What is wrong with a `module.function` handler, if anything. The module may sit in
/// a subdirectory (`src/app.handler`) but never outside the code.
fn handler_problem(handler: &str) -> Option<&'static str> {
    if handler.len() > 128 {
        return Some("it is longer than 128 bytes");
    }
    let Some((module, function)) = handler.rsplit_once('.') else {
        return Some("it has no `.` between the module and the function");
    };
    let ident = |s: &str| {
        !s.is_empty()
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    };
    if !ident(function) {
        return Some("the function name is not an identifier");
    }
    if module.is_empty() || module.starts_with('/') {
        return Some("the module is missing or absolute");
    }
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    if !module.split('/').all(segment_ok) {
        return Some("the module path must be letters, digits, `_`, `-`, `.` and `/`, without `..`");
    }
    None
}

/// The identity of an immutable version: a hex SHA-256 over the code and the
/// canonical configuration.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VersionId(pub String);

impl VersionId {
    /// The first 12 hex digits, as the CLI shows it.
    pub fn short(&self) -> &str {
        &self.0[..self.0.len().min(12)]
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BucketName, EventPattern, StorageTrigger};

    #[test]
    fn defaults_fill_in() {
        let c: FunctionConfig = serde_json::from_str(r#"{"kind":"http"}"#).unwrap();
        assert_eq!(c, FunctionConfig::new(Kind::Http));
        assert_eq!(c.memory_mb, 128);
        assert_eq!(c.timeout, Duration::from_secs(30));
    }

    #[test]
    fn timeout_is_human_text() {
        let c: FunctionConfig = serde_json::from_str(r#"{"kind":"event","timeout":"500ms"}"#).unwrap();
        assert_eq!(c.timeout, Duration::from_millis(500));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["timeout"], "500ms");
        let err = serde_json::from_str::<FunctionConfig>(r#"{"kind":"event","timeout":"soon"}"#).unwrap_err();
        assert!(err.to_string().contains("invalid duration `soon`"), "{err}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<FunctionConfig>(r#"{"kind":"http","memroy_mb":1}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `memroy_mb`"), "{err}");
    }

    #[test]
    fn validate_checks_bounds() {
        let mut c = FunctionConfig::new(Kind::Http);
        c.memory_mb = 0;
        assert_eq!(c.clone().validate().unwrap_err().field, ConfigField::MemoryMb);
        c.memory_mb = 64;
        c.timeout = Duration::from_secs(3600);
        assert_eq!(c.clone().validate().unwrap_err().field, ConfigField::Timeout);
        c.timeout = Duration::from_secs(1);
        c.env.insert("A=B".into(), "x".into());
        assert!(matches!(
            c.clone().validate().unwrap_err().field,
            ConfigField::EnvKey(_)
        ));
    }

    /// A text value stays a plain string (so versions made before secrets keep their
    /// ids); a secret reference is `{"secret": NAME}`, and nothing else is taken.
    #[test]
    fn env_values_are_text_or_a_secret_reference() {
        let c: FunctionConfig =
            serde_json::from_str(r#"{"kind":"http","env":{"A":"x","DB_PASSWORD":{"secret":"db"}}}"#).unwrap();
        assert_eq!(c.env["A"], EnvValue::Text("x".into()));
        let db = SecretName::new("db").unwrap();
        assert_eq!(c.env["DB_PASSWORD"], EnvValue::Secret { secret: db.clone() });
        assert_eq!(c.secret_refs().collect::<Vec<_>>(), [("DB_PASSWORD", &db)]);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json["env"],
            serde_json::json!({"A":"x","DB_PASSWORD":{"secret":"db"}})
        );
        for bad in [
            r#"{"secret":5}"#,
            r#"{"secret":"Bad_Name"}"#,
            r#"{"secret":"db","extra":1}"#,
            r#"{}"#,
            "5",
        ] {
            let text = format!(r#"{{"kind":"http","env":{{"A":{bad}}}}}"#);
            assert!(serde_json::from_str::<FunctionConfig>(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn scaling_fields_default_out_of_the_serialised_form() {
        let json = serde_json::to_value(FunctionConfig::new(Kind::Http)).unwrap();
        for key in [
            "max_concurrency",
            "min_instances",
            "max_queue",
            "queue_timeout",
            "max_retries",
            "max_event_age",
            "on_success",
            "on_failure",
            "schedule",
            "queue",
            "storage",
        ] {
            assert!(json.get(key).is_none(), "{key} in {json}");
        }
        let c: FunctionConfig = serde_json::from_str(
            r#"{"kind":"event","max_concurrency":10,"min_instances":2,"max_queue":0,"queue_timeout":"250ms"}"#,
        )
        .unwrap();
        assert_eq!(
            (c.max_concurrency, c.min_instances, c.max_queue, c.queue_timeout),
            (10, 2, 0, Duration::from_millis(250))
        );
        c.clone().validate().unwrap();
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["queue_timeout"], "250ms");
        let bad = |f: fn(&mut FunctionConfig)| {
            let mut c = c.clone();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(bad(|c| c.max_concurrency = 0).field, ConfigField::MaxConcurrency);
        assert_eq!(
            bad(|c| c.max_concurrency = 100_000).field,
            ConfigField::MaxConcurrency
        );
        let e = bad(|c| c.min_instances = 11);
        assert_eq!(e.field, ConfigField::MinInstances);
        assert!(e.message.contains("max_concurrency = 10"), "{}", e.message);
        assert_eq!(bad(|c| c.max_queue = 1_000_000).field, ConfigField::MaxQueue);
        assert_eq!(
            bad(|c| c.queue_timeout = Duration::from_secs(86_400)).field,
            ConfigField::QueueTimeout
        );
    }

    /// Versions are hashed from the serialised form: a function that sets none of the
    /// async and trigger fields must serialise exactly as before they existed.
    #[test]
    fn event_fields_default_out_of_the_serialised_form() {
        let json = serde_json::to_value(FunctionConfig::new(Kind::Http)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind":"http","memory_mb":128,"timeout":"30s","env":{},"routes":[]})
        );
        let c: FunctionConfig = serde_json::from_str(
            r#"{"kind":"event","max_retries":0,"max_event_age":"1h","on_success":"queue:done",
                "on_failure":{"function":"alarm"},"schedule":"rate(5 minutes)",
                "queue":[{"queue":"jobs","batch_size":5,"max_batching_window":"2s"},"more"]}"#,
        )
        .unwrap();
        let c = c.validate().unwrap();
        assert_eq!((c.max_retries, c.max_event_age), (0, Duration::from_secs(3600)));
        assert_eq!(c.schedule.len(), 1);
        assert_eq!(
            c.queue[1],
            QueueTrigger::new(crate::QueueName::new("more").unwrap())
        );
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["max_retries"], 0);
        assert_eq!(json["max_event_age"], "1h");
        assert_eq!(json["on_success"], "queue:done");
        assert_eq!(json["on_failure"], "function:alarm");
        assert_eq!(
            json["schedule"],
            serde_json::json!([{"expression":"rate(5 minutes)"}])
        );
        assert_eq!(json["queue"][1]["max_batching_window"], "0s");
        // And it reads back to the same configuration.
        assert_eq!(serde_json::from_value::<FunctionConfig>(json).unwrap(), c);
    }

    #[test]
    fn event_fields_are_checked() {
        let base = FunctionConfig::new(Kind::Event);
        let bad = |f: &dyn Fn(&mut FunctionConfig)| {
            let mut c = base.clone();
            f(&mut c);
            c.validate().unwrap_err()
        };
        let queue = |name: &str| crate::QueueName::new(name).unwrap();
        let schedule = |expression: &str, timezone: Option<&str>| Schedule {
            expression: expression.into(),
            timezone: timezone.map(Into::into),
            catch_up: false,
        };

        let e = bad(&|c| c.max_retries = 101);
        assert_eq!(e.field, ConfigField::MaxRetries);
        assert_eq!(e.message, "max_retries = 101 is out of range: use 0 to 100");
        let e = bad(&|c| c.max_event_age = Duration::from_millis(500));
        assert_eq!(e.field, ConfigField::MaxEventAge);
        assert_eq!(e.message, "max_event_age `500ms` is out of range: use 1s to 1day");
        assert_eq!(
            bad(&|c| c.max_event_age = Duration::from_secs(2 * 86_400)).field,
            ConfigField::MaxEventAge
        );

        let e = bad(&|c| c.schedule = vec![schedule("0 9 * * *", None), schedule("61 * * * *", None)]);
        assert_eq!(e.field, ConfigField::Schedule(1));
        assert!(
            e.message
                .starts_with("invalid schedule `61 * * * *`: the minute field"),
            "{}",
            e.message
        );
        let e = bad(&|c| c.schedule = vec![schedule("0 9 * * *", Some("Mars/Base"))]);
        assert_eq!(e.field, ConfigField::Schedule(0));
        assert!(
            e.message.starts_with("unknown time zone `Mars/Base`"),
            "{}",
            e.message
        );
        let e = bad(&|c| {
            c.schedule = vec![
                schedule("0 9 * * *", Some("Europe/Berlin")),
                schedule("0 9 * * *", None),
                Schedule {
                    catch_up: true,
                    ..schedule("0 9 * * *", Some("Europe/Berlin"))
                },
            ]
        });
        assert_eq!(e.field, ConfigField::Schedule(2));
        assert_eq!(
            e.message,
            "schedule `0 9 * * * @ Europe/Berlin` is declared twice: give each schedule of a function its own expression or time zone"
        );

        let e = bad(&|c| {
            c.queue = vec![QueueTrigger {
                batch_size: 0,
                ..QueueTrigger::new(queue("jobs"))
            }]
        });
        assert_eq!(e.field, ConfigField::Queue(0));
        assert_eq!(
            e.message,
            "queue trigger `jobs`: batch_size = 0 is out of range: use 1 to 1000"
        );
        assert_eq!(
            bad(&|c| {
                c.queue = vec![QueueTrigger {
                    batch_size: 1001,
                    ..QueueTrigger::new(queue("jobs"))
                }]
            })
            .field,
            ConfigField::Queue(0)
        );
        let e = bad(&|c| {
            c.queue = vec![QueueTrigger {
                max_batching_window: Duration::from_secs(301),
                ..QueueTrigger::new(queue("jobs"))
            }]
        });
        assert_eq!(
            e.message,
            "queue trigger `jobs`: max_batching_window `5m 1s` is out of range: use 0s to 5m"
        );
        let e = bad(&|c| {
            c.queue = vec![
                QueueTrigger::new(queue("jobs")),
                QueueTrigger::new(queue("other")),
                QueueTrigger {
                    batch_size: 1,
                    ..QueueTrigger::new(queue("jobs"))
                },
            ]
        });
        assert_eq!(e.field, ConfigField::Queue(2));
        assert_eq!(
            e.message,
            "queue `jobs` triggers this function twice: declare one trigger per queue"
        );

        let e = bad(&|c| {
            c.queue = vec![QueueTrigger::new(queue("jobs"))];
            c.on_failure = Some(Destination::Queue(queue("jobs")));
        });
        assert_eq!(e.field, ConfigField::OnFailure);
        assert_eq!(
            e.message,
            "on_failure sends to queue `jobs`, which triggers this same function: every failure would invoke it again; send it to another queue"
        );
        let e = bad(&|c| {
            c.queue = vec![QueueTrigger::new(queue("jobs"))];
            c.on_success = Some(Destination::Queue(queue("jobs")));
        });
        assert_eq!(e.field, ConfigField::OnSuccess);

        // Itself as a destination needs the name to be seen.
        let name = FunctionName::new("worker").unwrap();
        let mut c = base.clone();
        c.on_success = Some(Destination::Function(name.clone()));
        c.clone().validate().unwrap();
        let e = c.clone().validate_named(&name).unwrap_err();
        assert_eq!(e.field, ConfigField::OnSuccess);
        assert_eq!(
            e.message,
            "on_success sends to function `worker` itself: each record would invoke it again; send it to another function or to a queue"
        );
        c.validate_named(&FunctionName::new("other").unwrap()).unwrap();
    }

    #[test]
    fn http_functions_may_have_triggers() {
        let c: FunctionConfig = serde_json::from_str(
            r#"{"kind":"http","schedule":["*/5 * * * *",{"expression":"0 9 * * MON","timezone":"Europe/Berlin","catch_up":true}],"queue":"jobs","storage":"photos"}"#,
        )
        .unwrap();
        let c = c.validate().unwrap();
        assert_eq!(c.schedule.len(), 2);
        assert!(c.schedule[1].catch_up);
        assert_eq!(c.storage, vec![StorageTrigger::new(bucket("photos"))]);
    }

    fn bucket(name: &str) -> BucketName {
        BucketName::new(name).unwrap()
    }

    #[test]
    fn storage_triggers_read_one_or_many_and_round_trip() {
        let c: FunctionConfig = serde_json::from_str(
            r#"{"kind":"event","storage":[
                "photos",
                {"bucket":"photos","events":["s3:ObjectRemoved:*"],"prefix":"in/","suffix":".jpg"}
            ]}"#,
        )
        .unwrap();
        let c = c.validate().unwrap();
        assert_eq!(c.storage[0], StorageTrigger::new(bucket("photos")));
        assert_eq!(c.storage[1].events[0].as_str(), "ObjectRemoved:*");
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json["storage"],
            serde_json::json!([
                {"bucket":"photos","events":["ObjectCreated:*"]},
                {"bucket":"photos","events":["ObjectRemoved:*"],"prefix":"in/","suffix":".jpg"}
            ])
        );
        assert_eq!(serde_json::from_value::<FunctionConfig>(json).unwrap(), c);
        let one: FunctionConfig = serde_json::from_str(r#"{"kind":"event","storage":"photos"}"#).unwrap();
        assert_eq!(one.storage.len(), 1);
    }

    #[test]
    fn storage_triggers_are_checked() {
        let bad = |storage: Vec<StorageTrigger>| {
            let c = FunctionConfig {
                storage,
                ..FunctionConfig::new(Kind::Event)
            };
            c.validate().unwrap_err()
        };
        let photos = StorageTrigger::new(bucket("photos"));

        let e = bad(vec![StorageTrigger {
            events: Vec::new(),
            ..photos.clone()
        }]);
        assert_eq!(e.field, ConfigField::Storage(0));
        assert_eq!(
            e.message,
            "storage trigger `photos`: `events` is empty, so no event would invoke the function: \
             leave `events` out for `ObjectCreated:*`, or name events such as `ObjectRemoved:*`"
        );

        // 1024 bytes, the longest key, is fine; one more is not.
        let longest = StorageTrigger {
            prefix: "p".repeat(MAX_KEY_BYTES),
            suffix: "s".repeat(MAX_KEY_BYTES),
            ..photos.clone()
        };
        FunctionConfig {
            storage: vec![longest.clone()],
            ..FunctionConfig::new(Kind::Event)
        }
        .validate()
        .unwrap();
        let e = bad(vec![
            photos.clone(),
            StorageTrigger {
                prefix: "p".repeat(MAX_KEY_BYTES + 1),
                ..photos.clone()
            },
        ]);
        assert_eq!(e.field, ConfigField::Storage(1));
        assert_eq!(
            e.message,
            "storage trigger `photos`: the prefix is 1025 bytes long; it may hold at most 1024 bytes, the longest object key"
        );
        let e = bad(vec![StorageTrigger {
            suffix: "é".repeat(513),
            ..photos.clone()
        }]);
        assert_eq!(e.field, ConfigField::Storage(0));
        assert!(
            e.message.contains("the suffix is 1026 bytes long"),
            "{}",
            e.message
        );

        // The same keys twice, whatever the events: the later one is refused.
        let removed = StorageTrigger {
            events: vec![EventPattern::new("ObjectRemoved:*").unwrap()],
            ..photos.clone()
        };
        let jpg = StorageTrigger {
            suffix: ".jpg".into(),
            ..photos.clone()
        };
        let e = bad(vec![photos.clone(), jpg.clone(), removed.clone()]);
        assert_eq!(e.field, ConfigField::Storage(2));
        assert_eq!(
            e.message,
            "bucket `photos` triggers this function twice with the same prefix and suffix: \
             list every event in one trigger, or give each trigger its own prefix or suffix"
        );
        assert_eq!(bad(vec![jpg.clone(), jpg.clone()]).field, ConfigField::Storage(1));
        assert_eq!(ConfigField::Storage(1).to_string(), "storage[1]");

        // Another prefix, suffix or bucket is another trigger.
        let c = FunctionConfig {
            storage: vec![
                photos.clone(),
                jpg,
                StorageTrigger {
                    prefix: "in/".into(),
                    ..removed
                },
                StorageTrigger::new(bucket("other")),
            ],
            ..FunctionConfig::new(Kind::Event)
        };
        assert_eq!(c.validate().unwrap().storage.len(), 4);
    }

    #[test]
    fn wasm_stays_out_of_the_serialised_form() {
        let json = serde_json::to_value(FunctionConfig::new(Kind::Http)).unwrap();
        assert!(
            json.get("runtime").is_none() && json.get("handler").is_none(),
            "{json}"
        );
        let c: FunctionConfig =
            serde_json::from_str(r#"{"kind":"event","runtime":"python","handler":"app.handler"}"#).unwrap();
        assert_eq!(c.runtime, FunctionRuntime::Python);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["runtime"], "python");
        let err = serde_json::from_str::<FunctionConfig>(r#"{"kind":"event","runtime":"java"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant `java`"), "{err}");
    }

    #[test]
    fn process_runtimes_are_checked() {
        let config = |runtime, handler: Option<&str>| FunctionConfig {
            runtime,
            handler: handler.map(str::to_string),
            ..FunctionConfig::new(Kind::Event)
        };
        for ok in [
            "app.handler",
            "src/app.handler",
            "pkg.mod.handler",
            "index.$handler",
        ] {
            config(FunctionRuntime::Python, Some(ok)).validate().unwrap();
        }
        config(FunctionRuntime::Process, None).validate().unwrap();
        config(FunctionRuntime::Process, Some("anything goes"))
            .validate()
            .unwrap();
        let field = |c: FunctionConfig| c.validate().unwrap_err();
        let e = field(config(FunctionRuntime::Node, None));
        assert_eq!(e.field, ConfigField::Handler);
        assert!(e.message.contains("`index.handler`"), "{}", e.message);
        for bad in [
            "handler",
            "app.",
            ".handler",
            "../app.handler",
            "/abs.handler",
            "a b.handler",
            "app.9x",
        ] {
            let e = field(config(FunctionRuntime::Python, Some(bad)));
            assert_eq!(e.field, ConfigField::Handler, "{bad}");
            assert!(
                e.message.starts_with(&format!("invalid handler `{bad}`")),
                "{}",
                e.message
            );
        }
        let e = field(config(FunctionRuntime::Wasm, Some("app.handler")));
        assert_eq!(e.field, ConfigField::Handler);
        let mut http = config(FunctionRuntime::Python, Some("app.handler"));
        http.kind = Kind::Http;
        let e = field(http);
        assert_eq!(e.field, ConfigField::Kind);
        assert!(e.message.contains("use kind `event`"), "{}", e.message);
    }

    #[test]
    fn validate_normalises_methods_and_finds_self_conflicts() {
        let mut c = FunctionConfig::new(Kind::Http);
        c.routes = vec![Route {
            path: "/a".into(),
            methods: vec!["post".into(), "get".into()],
            ..Route::default()
        }];
        let c = c.validate().unwrap();
        assert_eq!(c.routes[0].methods, vec!["GET", "POST"]);
        let mut d = c.clone();
        d.routes.push(Route {
            path: "/a".into(),
            ..Route::default()
        });
        let err = d.validate().unwrap_err();
        assert_eq!(err.field, ConfigField::RoutePath(1));
    }
}
