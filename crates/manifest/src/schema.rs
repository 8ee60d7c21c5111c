//! The shape of `wisp.toml` as serde types: every key the manifest accepts, with
//! its span, before any value is checked.
//!
//! Unknown keys are refused here (`deny_unknown_fields`); types are checked here;
//! values (names, limits, routes) are checked in [`crate::validate`]. Values that
//! core parses itself (`kind`, `timeout`, destinations, schedules, queue and bucket
//! names, storage events) are kept as text so their errors are the manifest's own and
//! point at the value.

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, StrDeserializer};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;
use toml::Spanned;

/// The whole document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawManifest {
    pub app: Option<Spanned<RawApp>>,
    pub functions: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawFunction>>>>,
    pub queues: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawQueue>>>>,
    pub buckets: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawBucket>>>>,
    pub kv: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawKvStore>>>>,
    pub topics: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawTopic>>>>,
    /// `[alarms.NAME]`: core's `AlarmSpec`, by the same keys (those of
    /// `PUT /v1/alarms/{name}`); its unknown keys and bad values are serde's errors.
    pub alarms: Option<Spanned<BTreeMap<Spanned<String>, Spanned<wisp_core::AlarmSpec>>>>,
}

/// `[app]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApp {
    pub name: Spanned<String>,
}

/// `[functions.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFunction {
    pub source: Spanned<String>,
    /// Required for wasm functions; process runtimes default to `event`.
    pub kind: Option<Spanned<String>>,
    pub runtime: Option<Spanned<String>>,
    pub handler: Option<Spanned<String>>,
    /// Wider than core's `u32` (and than TOML's i64, which toml reads beyond) so a
    /// negative or huge value gets core's range message, not serde's.
    pub memory_mb: Option<Spanned<i128>>,
    pub timeout: Option<Spanned<String>>,
    pub max_concurrency: Option<Spanned<i128>>,
    pub min_instances: Option<Spanned<i128>>,
    pub max_queue: Option<Spanned<i128>>,
    pub queue_timeout: Option<Spanned<String>>,
    /// Each value a string, or `{ secret = "NAME" }` naming a secret of the namespace.
    #[serde(default)]
    pub env: BTreeMap<Spanned<String>, Spanned<TextOrTable<RawEnvSecret>>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
    pub max_retries: Option<Spanned<i128>>,
    pub max_event_age: Option<Spanned<String>>,
    pub on_success: Option<Spanned<TextOrTable<RawDestination>>>,
    pub on_failure: Option<Spanned<TextOrTable<RawDestination>>>,
    pub schedule: Option<Spanned<OneOrMany<RawSchedule>>>,
    pub queue: Option<Spanned<OneOrMany<RawQueueTrigger>>>,
    pub storage: Option<Spanned<OneOrMany<RawStorageTrigger>>>,
    pub rate_limit: Option<Spanned<String>>,
    pub burst: Option<Spanned<i128>>,
    pub rate_limit_by: Option<Spanned<String>>,
    /// Grants: each a name (or, for `buckets` and `outbound`, core's text form),
    /// parsed in `validate` so a bad one points at itself.
    #[serde(default)]
    pub kv: Vec<Spanned<String>>,
    #[serde(default)]
    pub buckets: Vec<Spanned<String>>,
    #[serde(default)]
    pub queues: Vec<Spanned<String>>,
    #[serde(default)]
    pub invoke: Vec<Spanned<String>>,
    #[serde(default)]
    pub outbound: Vec<Spanned<String>>,
    #[serde(default)]
    pub topics: Vec<Spanned<String>>,
    /// `breaker = { failure_rate = 0.5, window = "10s", … }`: core's `BreakerConfig`,
    /// by the same keys.
    pub breaker: Option<Spanned<wisp_core::BreakerConfig>>,
    /// `[functions.NAME.logs] retention = "7d", max_size = "10MiB"`: core's
    /// `LogRetention`, by the same keys.
    pub logs: Option<Spanned<wisp_core::LogRetention>>,
}

/// `[queues.NAME]`: core's `QueueConfig`, by the same keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueue {
    pub visibility_timeout: Option<Spanned<String>>,
    pub retention: Option<Spanned<String>>,
    pub max_receive_count: Option<Spanned<i128>>,
    pub dead_letter_queue: Option<Spanned<String>>,
}

/// `[buckets.NAME]`: what `PUT /v1/buckets/{bucket}` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBucket {
    pub quota: Option<Spanned<RawSize>>,
}

/// `[kv.NAME]`: a key-value store, made by `wisp deploy` when missing. It takes no
/// keys yet; an unknown one is refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKvStore {}

/// `[topics.NAME]`: a topic, made by `wisp deploy` when missing, with the
/// subscriptions it adds when missing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTopic {
    #[serde(default)]
    pub subscriptions: Vec<Spanned<RawSubscription>>,
}

/// One item of a topic's `subscriptions`: exactly one of `function`, `queue` or
/// `webhook`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSubscription {
    pub function: Option<Spanned<String>>,
    pub queue: Option<Spanned<String>>,
    pub webhook: Option<Spanned<String>>,
    /// A table, or its JSON text.
    pub filter_policy: Option<Spanned<toml::Value>>,
    pub filter_policy_scope: Option<Spanned<String>>,
    pub raw: Option<Spanned<bool>>,
}

/// A size: bytes as an integer, or text such as `"10GiB"` (checked in `validate`).
#[derive(Debug)]
pub(crate) enum RawSize {
    Bytes(i128),
    Text(String),
}

pub(crate) const SIZE_EXPECTED: &str = "a size such as \"10GiB\" or \"500MiB\", or a number of bytes";

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SizeVisitor;

        impl Visitor<'_> for SizeVisitor {
            type Value = RawSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SIZE_EXPECTED)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(v.into()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(v.into()))
            }

            fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(v))
            }

            fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(i128::try_from(v).unwrap_or(i128::MAX)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSize, E> {
                Ok(RawSize::Text(v.to_string()))
            }
        }

        d.deserialize_any(SizeVisitor)
    }
}

/// A value written as a string or as a table: a destination, a schedule, a queue or
/// storage trigger.
#[derive(Debug)]
pub(crate) enum TextOrTable<T> {
    Text(String),
    Table(T),
}

/// A value written once or as an array: `schedule`, `queue` and `storage`.
#[derive(Debug)]
pub(crate) enum OneOrMany<T> {
    One(TextOrTable<T>),
    Many(Vec<Spanned<TextOrTable<T>>>),
}

impl<T> OneOrMany<T> {
    /// Each item with where it is written (`whole` is the span of the whole value).
    pub fn items(&self, whole: Range<usize>) -> Vec<(&TextOrTable<T>, Range<usize>)> {
        match self {
            OneOrMany::One(item) => vec![(item, whole)],
            OneOrMany::Many(items) => items.iter().map(|i| (i.get_ref(), i.span())).collect(),
        }
    }
}

/// What serde shows for a value of a [`TextOrTable`] type that is neither.
pub(crate) trait Expected {
    const EXPECTED: &'static str;
}

/// The table form of `on_success` / `on_failure`: exactly one of the two keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDestination {
    pub queue: Option<Spanned<String>>,
    pub function: Option<Spanned<String>>,
}

/// The table form of a schedule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchedule {
    pub expression: Spanned<String>,
    pub timezone: Option<Spanned<String>>,
    pub catch_up: Option<Spanned<bool>>,
}

/// The table form of a queue trigger.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueueTrigger {
    pub queue: Spanned<String>,
    pub batch_size: Option<Spanned<i128>>,
    pub max_batching_window: Option<Spanned<String>>,
}

/// The table form of a storage trigger. `events` is kept as written (an empty array
/// too, which core refuses) so each event's error points at it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStorageTrigger {
    pub bucket: Spanned<String>,
    pub events: Option<Spanned<Vec<Spanned<String>>>>,
    pub prefix: Option<Spanned<String>>,
    pub suffix: Option<Spanned<String>>,
}

/// The table form of an `env` value: a reference to a secret.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEnvSecret {
    pub secret: Spanned<String>,
}

pub(crate) const ENV_VALUE_EXPECTED: &str =
    "an environment variable's value: a string, or a table `{ secret = \"NAME\" }` naming a secret";

impl Expected for RawEnvSecret {
    const EXPECTED: &'static str = ENV_VALUE_EXPECTED;
}

pub(crate) const DESTINATION_EXPECTED: &str =
    "a destination: \"queue:NAME\", \"function:NAME\" or a table with `queue` or `function`";
pub(crate) const SCHEDULE_EXPECTED: &str = "a schedule: a cron expression or rate such as \"0 9 * * *\" \
     or \"rate(5 minutes)\", or a table with `expression` and optional `timezone` and `catch_up`";
pub(crate) const QUEUE_TRIGGER_EXPECTED: &str = "a queue trigger: a queue name, or a table with `queue` and optional `batch_size` and `max_batching_window`";
pub(crate) const STORAGE_TRIGGER_EXPECTED: &str =
    "a storage trigger: a bucket name, or a table with `bucket` and optional `events`, `prefix` and `suffix`";

impl Expected for RawDestination {
    const EXPECTED: &'static str = DESTINATION_EXPECTED;
}

impl Expected for RawSchedule {
    const EXPECTED: &'static str = SCHEDULE_EXPECTED;
}

impl Expected for RawQueueTrigger {
    const EXPECTED: &'static str = QUEUE_TRIGGER_EXPECTED;
}

impl Expected for RawStorageTrigger {
    const EXPECTED: &'static str = STORAGE_TRIGGER_EXPECTED;
}

/// Reads a string as [`TextOrTable::Text`] and a table as `T`.
struct TextOrTableVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de> + Expected> Visitor<'de> for TextOrTableVisitor<T> {
    type Value = TextOrTable<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTED)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(TextOrTable::Text(v.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(TextOrTable::Table)
    }
}

impl<'de, T: Deserialize<'de> + Expected> Deserialize<'de> for TextOrTable<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextOrTableVisitor(PhantomData))
    }
}

impl<'de, T: Deserialize<'de> + Expected> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de> + Expected> Visitor<'de> for OneOrManyVisitor<T> {
            type Value = OneOrMany<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}, or an array of them", T::EXPECTED)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let text = StrDeserializer::<E>::new(v);
                TextOrTable::deserialize(text).map(OneOrMany::One)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                TextOrTableVisitor(PhantomData).visit_map(map).map(OneOrMany::One)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
        }

        d.deserialize_any(OneOrManyVisitor(PhantomData))
    }
}

/// One item of `routes`: a path string, or a table with `path` and optional keys.
#[derive(Debug)]
pub(crate) enum RawRoute {
    Path(String),
    Table(Box<RawRouteTable>),
}

/// The table form of a route.
#[derive(Debug)]
pub(crate) struct RawRouteTable {
    pub path: Spanned<String>,
    pub methods: Option<Spanned<Vec<Spanned<String>>>>,
    pub auth: Option<Spanned<String>>,
    pub jwt: Option<Spanned<RawJwt>>,
    pub rate_limit: Option<Spanned<String>>,
    pub burst: Option<Spanned<i128>>,
    pub rate_limit_by: Option<Spanned<String>>,
}

/// A route's `jwt` table. The keys come from files and the environment, read when
/// the manifest is loaded: `secret_env` names the variable holding an HS256 secret,
/// `jwks` the file holding a JWKS. `secret` is read only to refuse it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwt {
    pub issuer: Spanned<String>,
    pub audience: Spanned<StringOrList>,
    pub secret_env: Option<Spanned<String>>,
    pub jwks: Option<Spanned<String>>,
    pub secret: Option<Spanned<String>>,
}

/// A string or a list of strings (`audience`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            StringOrList::One(one) => vec![one.clone()],
            StringOrList::Many(many) => many.clone(),
        }
    }
}

impl RawRoute {
    /// The path and where it is written (`item` is the span of the whole route item).
    pub fn path(&self, item: &Range<usize>) -> (&str, Range<usize>) {
        match self {
            RawRoute::Path(path) => (path, item.clone()),
            RawRoute::Table(table) => (table.path.get_ref(), table.path.span()),
        }
    }

    /// The methods as written, each with its span.
    pub fn methods(&self) -> &[Spanned<String>] {
        match self.table().and_then(|t| t.methods.as_ref()) {
            Some(methods) => methods.get_ref(),
            None => &[],
        }
    }

    /// The table form, if the route is written as one.
    pub fn table(&self) -> Option<&RawRouteTable> {
        match self {
            RawRoute::Table(table) => Some(table),
            RawRoute::Path(_) => None,
        }
    }

    /// Where the methods array is written, if it is.
    pub fn methods_span(&self) -> Option<Range<usize>> {
        self.table()?.methods.as_ref().map(Spanned::span)
    }
}

/// The keys of a route table; an unknown one fails in the key's own span.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum RouteKey {
    Path,
    Methods,
    Auth,
    Jwt,
    RateLimit,
    Burst,
    RateLimitBy,
}

/// The text serde shows for what a route item should be.
pub(crate) const ROUTE_EXPECTED: &str = "a route: a path string such as \"/hello\" or a table with `path` and optional `methods`, `auth`, `jwt`, `rate_limit`, `burst` and `rate_limit_by`";

impl<'de> Deserialize<'de> for RawRoute {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RouteVisitor;

        impl<'de> Visitor<'de> for RouteVisitor {
            type Value = RawRoute;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(ROUTE_EXPECTED)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawRoute, E> {
                Ok(RawRoute::Path(v.to_string()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<RawRoute, E> {
                Ok(RawRoute::Path(v))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRoute, A::Error> {
                fn set<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
                    map: &mut A,
                    slot: &mut Option<T>,
                    name: &'static str,
                ) -> Result<(), A::Error> {
                    if slot.is_some() {
                        return Err(de::Error::duplicate_field(name));
                    }
                    *slot = Some(map.next_value()?);
                    Ok(())
                }
                let mut path = None;
                let mut methods = None;
                let mut auth = None;
                let mut jwt = None;
                let mut rate_limit = None;
                let mut burst = None;
                let mut rate_limit_by = None;
                while let Some(key) = map.next_key::<RouteKey>()? {
                    match key {
                        RouteKey::Path => set(&mut map, &mut path, "path")?,
                        RouteKey::Methods => set(&mut map, &mut methods, "methods")?,
                        RouteKey::Auth => set(&mut map, &mut auth, "auth")?,
                        RouteKey::Jwt => set(&mut map, &mut jwt, "jwt")?,
                        RouteKey::RateLimit => set(&mut map, &mut rate_limit, "rate_limit")?,
                        RouteKey::Burst => set(&mut map, &mut burst, "burst")?,
                        RouteKey::RateLimitBy => set(&mut map, &mut rate_limit_by, "rate_limit_by")?,
                    }
                }
                let path = path.ok_or_else(|| de::Error::missing_field("path"))?;
                Ok(RawRoute::Table(Box::new(RawRouteTable {
                    path,
                    methods,
                    auth,
                    jwt,
                    rate_limit,
                    burst,
                    rate_limit_by,
                })))
            }
        }

        d.deserialize_any(RouteVisitor)
    }
}
