//! HTTP route patterns: `/users/:id`, `/static/*`, with optional methods.
//!
//! Patterns are checked here so the manifest, the API and the router agree on one
//! grammar: a path starts with `/`; a segment is literal text, a parameter
//! `:name`, or — last only — a wildcard `*` (or `*name`) taking the rest of the path.

use crate::rate_limit::{RateLimit, RateLimitError};
use crate::route_auth::{AuthMode, JwtConfig};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Path prefixes Wisp keeps for itself; no user route may live under them.
pub const RESERVED_PREFIXES: &[&str] = &[
    "/v1",
    "/ui",
    "/metrics",
    "/2015-03-31",
    "/2018-06-01",
    "/2021-11-15",
];

/// The parameter name a bare trailing `*` binds (as API Gateway's `{proxy+}`).
pub const DEFAULT_WILDCARD_NAME: &str = "proxy";

/// A route of an HTTP trigger: a path pattern and the methods it answers
/// (empty means every method), who may call it and how often. Deserialises from a
/// table `{path, methods, auth, jwt, rate_limit, burst, rate_limit_by}` or, as a
/// shorthand for a public route of every method, from the path string alone. The
/// fields after `methods` are left out of the serialised form when unset, so
/// versions made before they existed keep their ids.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Route {
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "AuthMode::is_public")]
    pub auth: AuthMode,
    /// How tokens are verified when `auth` is `jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtConfig>,
    /// This route's own rate limit (`"100/s"`), in place of the function's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_by: Option<String>,
}

impl<'de> Deserialize<'de> for Route {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            path: String,
            #[serde(default)]
            methods: Vec<String>,
            #[serde(default)]
            auth: AuthMode,
            #[serde(default)]
            jwt: Option<JwtConfig>,
            #[serde(default)]
            rate_limit: Option<String>,
            #[serde(default)]
            burst: Option<u32>,
            #[serde(default)]
            rate_limit_by: Option<String>,
        }

        struct RouteVisitor;

        impl<'de> serde::de::Visitor<'de> for RouteVisitor {
            type Value = Route;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a route: a path string, or a table with `path` and optional `methods`, `auth`, `jwt`, `rate_limit`, `burst` and `rate_limit_by`",
                )
            }

            fn visit_str<E: serde::de::Error>(self, path: &str) -> Result<Route, E> {
                Ok(Route {
                    path: path.to_string(),
                    ..Route::default()
                })
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Route, A::Error> {
                let table = Table::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(Route {
                    path: table.path,
                    methods: table.methods,
                    auth: table.auth,
                    jwt: table.jwt,
                    rate_limit: table.rate_limit,
                    burst: table.burst,
                    rate_limit_by: table.rate_limit_by,
                })
            }
        }

        d.deserialize_any(RouteVisitor)
    }
}

/// Why a route was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("invalid route `{path}`: {reason}")]
    Invalid { path: String, reason: String },
    #[error("route `{path}` is reserved: Wisp serves `{prefix}` itself; pick another path")]
    Reserved { path: String, prefix: &'static str },
    #[error("invalid method `{method}` on route `{path}`: use an HTTP method such as GET or POST")]
    BadMethod { path: String, method: String },
}

/// One segment of a parsed pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    Literal(String),
    Param(String),
    Wildcard(String),
}

/// A checked path pattern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoutePattern {
    source: String,
    segments: Vec<Segment>,
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_literal_char(c: char) -> bool {
    // RFC 3986 pchar without percent-encoding and without the characters our
    // grammar or the router give meaning to (`:` leading, `*`, `{`, `}`).
    c.is_ascii_alphanumeric() || "-._~!$&'()+,;=@%".contains(c)
}

impl RoutePattern {
    /// Parses and checks a pattern, refusing reserved prefixes.
    pub fn parse(path: &str) -> Result<RoutePattern, RouteError> {
        let invalid = |reason: &str| RouteError::Invalid {
            path: path.to_string(),
            reason: reason.to_string(),
        };
        if !path.starts_with('/') {
            return Err(invalid("it must start with '/'"));
        }
        let mut segments = Vec::new();
        if path != "/" {
            let parts: Vec<&str> = path[1..].split('/').collect();
            let last = parts.len() - 1;
            for (i, part) in parts.iter().enumerate() {
                if part.is_empty() {
                    return Err(invalid("empty path segment (`//` or a trailing '/')"));
                }
                if let Some(name) = part.strip_prefix(':') {
                    if !is_ident(name) {
                        return Err(invalid(&format!(
                            "parameter `{part}` needs a name of letters, digits and '_'"
                        )));
                    }
                    segments.push(Segment::Param(name.to_string()));
                } else if let Some(name) = part.strip_prefix('*') {
                    if i != last {
                        return Err(invalid("a wildcard `*` may only be the last segment"));
                    }
                    let name = if name.is_empty() {
                        DEFAULT_WILDCARD_NAME
                    } else {
                        name
                    };
                    if !is_ident(name) {
                        return Err(invalid(&format!(
                            "wildcard `{part}` needs a name of letters, digits and '_'"
                        )));
                    }
                    segments.push(Segment::Wildcard(name.to_string()));
                } else if let Some(bad) = part.chars().find(|c| !is_literal_char(*c)) {
                    return Err(invalid(&format!("character `{bad}` is not allowed in a path")));
                } else {
                    segments.push(Segment::Literal(part.to_string()));
                }
            }
        }
        let mut names = std::collections::HashSet::new();
        for seg in &segments {
            if let Segment::Param(n) | Segment::Wildcard(n) = seg
                && !names.insert(n.as_str())
            {
                return Err(invalid(&format!("parameter `{n}` appears twice")));
            }
        }
        let pattern = RoutePattern {
            source: path.to_string(),
            segments,
        };
        if let Some(prefix) = pattern.reserved_prefix() {
            return Err(RouteError::Reserved {
                path: path.to_string(),
                prefix,
            });
        }
        Ok(pattern)
    }

    fn reserved_prefix(&self) -> Option<&'static str> {
        let Some(Segment::Literal(first)) = self.segments.first() else {
            return None;
        };
        RESERVED_PREFIXES
            .iter()
            .copied()
            .find(|prefix| prefix[1..] == *first)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The parsed segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The names of parameters and the wildcard, in order.
    pub fn param_names(&self) -> Vec<&str> {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param(n) | Segment::Wildcard(n) => Some(n.as_str()),
                Segment::Literal(_) => None,
            })
            .collect()
    }

    /// The pattern with parameter names erased: two routes with the same shape
    /// match exactly the same paths (`/users/:id` and `/users/:name`).
    pub fn shape(&self) -> String {
        let mut out = String::new();
        for seg in &self.segments {
            out.push('/');
            match seg {
                Segment::Literal(l) => out.push_str(l),
                Segment::Param(_) => out.push(':'),
                Segment::Wildcard(_) => out.push('*'),
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    /// The pattern in the syntax of the `matchit` router, with positional
    /// parameter names (`/users/{p0}`), so routes of the same shape share one entry.
    pub fn router_path(&self) -> String {
        let mut out = String::new();
        let mut n = 0;
        for seg in &self.segments {
            out.push('/');
            match seg {
                Segment::Literal(l) => out.push_str(l),
                Segment::Param(_) => {
                    out.push_str(&format!("{{p{n}}}"));
                    n += 1;
                }
                Segment::Wildcard(_) => {
                    out.push_str(&format!("{{*p{n}}}"));
                    n += 1;
                }
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }
}

impl RoutePattern {
    /// For a pattern ending in a wildcard, the router paths (as
    /// [`RoutePattern::router_path`] writes them) of the requests where the
    /// wildcard takes nothing: `/files/*` also answers `/files` and `/files/`, and
    /// `/*` answers `/`, as `wasmtime serve` and Spin's `/...` do. Empty for any other
    /// pattern.
    pub fn router_paths_without_rest(&self) -> Vec<String> {
        let Some((Segment::Wildcard(_), before)) = self.segments.split_last() else {
            return Vec::new();
        };
        let prefix = RoutePattern {
            source: String::new(),
            segments: before.to_vec(),
        }
        .router_path();
        if prefix == "/" {
            vec![prefix]
        } else {
            vec![format!("{prefix}/"), prefix]
        }
    }
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Route {
    /// Checks the path and normalises the methods (upper case, sorted, no duplicates).
    pub fn validate(&self) -> Result<(RoutePattern, Vec<String>), RouteError> {
        let pattern = RoutePattern::parse(&self.path)?;
        let methods = normalize_methods(&self.path, &self.methods)?;
        Ok((pattern, methods))
    }

    /// The route's own rate limit, checked.
    pub fn rate_limit(&self) -> Result<Option<RateLimit>, RateLimitError> {
        RateLimit::from_parts(
            self.rate_limit.as_deref(),
            self.burst,
            self.rate_limit_by.as_deref(),
        )
    }

    /// Whether two routes could answer the same request: same shape and a method in common.
    pub fn overlaps(a: (&RoutePattern, &[String]), b: (&RoutePattern, &[String])) -> bool {
        a.0.shape() == b.0.shape()
            && (a.1.is_empty() || b.1.is_empty() || a.1.iter().any(|m| b.1.contains(m)))
    }
}

/// Upper-cases, sorts and de-duplicates methods, refusing anything that is not an HTTP token.
pub fn normalize_methods(path: &str, methods: &[String]) -> Result<Vec<String>, RouteError> {
    let mut out = Vec::with_capacity(methods.len());
    for m in methods {
        if m.is_empty() || m.len() > 32 || !m.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(RouteError::BadMethod {
                path: path.to_string(),
                method: m.clone(),
            });
        }
        out.push(m.to_ascii_uppercase());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_params_and_wildcards() {
        let p = RoutePattern::parse("/users/:id/files/*").unwrap();
        assert_eq!(p.param_names(), vec!["id", "proxy"]);
        assert_eq!(p.shape(), "/users/:/files/*");
        assert_eq!(p.router_path(), "/users/{p0}/files/{*p1}");
        assert_eq!(RoutePattern::parse("/").unwrap().router_path(), "/");
        assert_eq!(
            RoutePattern::parse("/a/*rest").unwrap().param_names(),
            vec!["rest"]
        );
    }

    #[test]
    fn a_wildcard_also_answers_an_empty_rest() {
        let paths = |p: &str| RoutePattern::parse(p).unwrap().router_paths_without_rest();
        assert_eq!(paths("/*"), vec!["/"]);
        assert_eq!(paths("/files/*"), vec!["/files/", "/files"]);
        assert_eq!(paths("/u/:id/*rest"), vec!["/u/{p0}/", "/u/{p0}"]);
        assert!(paths("/files").is_empty());
        assert!(paths("/").is_empty());
    }

    #[test]
    fn refuses_bad_patterns() {
        for bad in [
            "hello", "/a//b", "/a/", "/:", "/a/*/b", "/a/{x}", "/:id/:id", "/a b",
        ] {
            assert!(RoutePattern::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn refuses_reserved_prefixes() {
        for bad in [
            "/v1",
            "/v1/x",
            "/ui/app",
            "/metrics",
            "/2015-03-31/functions",
            "/2018-06-01/runtime",
            "/2021-11-15/functions",
        ] {
            assert!(
                matches!(RoutePattern::parse(bad), Err(RouteError::Reserved { .. })),
                "{bad}"
            );
        }
        for ok in ["/v1x", "/v2/x", "/uix", "/metricsz", "/:version/x", "/*"] {
            assert!(RoutePattern::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn overlap_needs_same_shape_and_a_shared_method() {
        let a = RoutePattern::parse("/users/:id").unwrap();
        let b = RoutePattern::parse("/users/:name").unwrap();
        let get = vec!["GET".to_string()];
        let post = vec!["POST".to_string()];
        assert!(Route::overlaps((&a, &get), (&b, &get)));
        assert!(Route::overlaps((&a, &[]), (&b, &post)));
        assert!(!Route::overlaps((&a, &get), (&b, &post)));
        let c = RoutePattern::parse("/users/me").unwrap();
        assert!(!Route::overlaps((&a, &[]), (&c, &[])));
    }

    #[test]
    fn routes_deserialise_from_strings_and_tables() {
        let routes: Vec<Route> =
            serde_json::from_str(r#"["/a", {"path": "/b", "methods": ["GET"]}]"#).unwrap();
        assert_eq!(
            routes[0],
            Route {
                path: "/a".into(),
                ..Route::default()
            }
        );
        assert_eq!(routes[1].methods, vec!["GET"]);
        let err = serde_json::from_str::<Route>(r#"{"path": "/a", "verbs": []}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `verbs`"), "{err}");
        let err = serde_json::from_str::<Route>("3").unwrap_err();
        assert!(err.to_string().contains("a path string, or a table"), "{err}");
    }

    #[test]
    fn methods_are_normalised() {
        let m = normalize_methods("/", &["post".into(), "GET".into(), "get".into()]).unwrap();
        assert_eq!(m, vec!["GET", "POST"]);
        assert!(normalize_methods("/", &["G ET".into()]).is_err());
    }
}
