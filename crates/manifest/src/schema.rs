//! The shape of `wisp.toml` as serde types: every key the manifest accepts, with
//! its span, before any value is checked.
//!
//! Unknown keys are refused here (`deny_unknown_fields`); types are checked here;
//! values (names, limits, routes) are checked in [`crate::validate`]. Values that
//! core parses itself (`kind`, `timeout`) are kept as text so their errors are the
//! manifest's own and point at the value.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use toml::Spanned;

/// The whole document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawManifest {
    pub app: Option<Spanned<RawApp>>,
    pub functions: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawFunction>>>>,
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
    #[serde(default)]
    pub env: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
}

/// One item of `routes`: a path string, or a table with `path` and optional `methods`.
#[derive(Debug)]
pub(crate) enum RawRoute {
    Path(String),
    Table {
        path: Spanned<String>,
        methods: Option<Spanned<Vec<Spanned<String>>>>,
    },
}

impl RawRoute {
    /// The path and where it is written (`item` is the span of the whole route item).
    pub fn path(&self, item: &Range<usize>) -> (&str, Range<usize>) {
        match self {
            RawRoute::Path(path) => (path, item.clone()),
            RawRoute::Table { path, .. } => (path.get_ref(), path.span()),
        }
    }

    /// The methods as written, each with its span.
    pub fn methods(&self) -> &[Spanned<String>] {
        match self {
            RawRoute::Table {
                methods: Some(methods),
                ..
            } => methods.get_ref(),
            _ => &[],
        }
    }

    /// Where the methods array is written, if it is.
    pub fn methods_span(&self) -> Option<Range<usize>> {
        match self {
            RawRoute::Table {
                methods: Some(methods),
                ..
            } => Some(methods.span()),
            _ => None,
        }
    }
}

/// The keys of a route table; an unknown one fails in the key's own span.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum RouteKey {
    Path,
    Methods,
}

/// The text serde shows for what a route item should be.
pub(crate) const ROUTE_EXPECTED: &str =
    "a route: a path string such as \"/hello\" or a table with `path` and optional `methods`";

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
                let mut path = None;
                let mut methods = None;
                while let Some(key) = map.next_key::<RouteKey>()? {
                    match key {
                        RouteKey::Path if path.is_some() => {
                            return Err(de::Error::duplicate_field("path"));
                        }
                        RouteKey::Path => path = Some(map.next_value()?),
                        RouteKey::Methods if methods.is_some() => {
                            return Err(de::Error::duplicate_field("methods"));
                        }
                        RouteKey::Methods => methods = Some(map.next_value()?),
                    }
                }
                let path = path.ok_or_else(|| de::Error::missing_field("path"))?;
                Ok(RawRoute::Table { path, methods })
            }
        }

        d.deserialize_any(RouteVisitor)
    }
}
