//! Routes are per namespace: each namespace has its own [`RouteTable`], and a
//! request reaches one of them by its host or its path.
//!
//! - `Host: N.<domain>`, when the server has a domain (`wisp serve --domain`): `N`;
//! - else a path starting `/@N/`: `N`, with the prefix stripped before matching (as
//!   API Gateway strips a base path mapping);
//! - else `default`, at the root, so a single-tenant server's routes are where they
//!   always were.
//!
//! A namespace without routes and one that does not exist are both "no route":
//! nothing tells them apart. The default namespace's table is a field of its own,
//! so the hot path (a default route, no domain) hashes no name.

use super::rate::Limiter;
use super::routes::{Conflict, Limiters, RouteTable};
use crate::registry::Deployed;
use http::request::Parts;
use std::collections::HashMap;
use std::sync::Arc;
use wisp_core::Namespace;

/// Every namespace's routes.
#[derive(Default)]
pub(crate) struct Tables {
    pub(crate) default: RouteTable,
    others: HashMap<String, RouteTable>,
    /// The limiters the tables hold, by owner, for the next build to take over.
    pub(crate) limiters: HashMap<super::routes::LimiterKey, Arc<Limiter>>,
}

/// Where a request goes.
pub(crate) struct Resolved<'a> {
    pub(crate) table: Option<&'a RouteTable>,
    pub(crate) is_default: bool,
    /// The length of the `/@N` prefix to strip from the path, if it names the namespace.
    pub(crate) prefix: Option<usize>,
}

impl Tables {
    /// Builds every namespace's table from `functions`, taking over the limiters of
    /// `previous` for versions still deployed. A conflict names the namespace.
    pub(crate) fn build<'a>(
        functions: impl IntoIterator<Item = &'a Arc<Deployed>>,
        previous: &Tables,
    ) -> Result<Tables, (Namespace, Conflict)> {
        let mut by_namespace: HashMap<&Namespace, Vec<&Arc<Deployed>>> = HashMap::new();
        for function in functions {
            by_namespace
                .entry(&function.record.namespace)
                .or_default()
                .push(function);
        }
        let mut limiters = Limiters {
            previous: previous.limiters.clone(),
            built: HashMap::new(),
        };
        let mut tables = Tables::default();
        for (namespace, functions) in by_namespace {
            let table = RouteTable::build(functions, &mut limiters).map_err(|c| (namespace.clone(), c))?;
            if namespace.as_str() == Namespace::DEFAULT {
                tables.default = table;
            } else if !table.is_empty() {
                tables.others.insert(namespace.to_string(), table);
            }
        }
        tables.limiters = limiters.built;
        Ok(tables)
    }

    /// Every limiter the tables hold.
    pub(crate) fn limiters(&self) -> impl Iterator<Item = &Arc<Limiter>> {
        self.limiters.values()
    }

    fn named(&self, namespace: &str) -> Option<&RouteTable> {
        if namespace == Namespace::DEFAULT {
            Some(&self.default)
        } else {
            self.others.get(namespace)
        }
    }

    /// The table a request is for (`None`: a namespace without routes).
    pub(crate) fn resolve(&self, domain: Option<&str>, parts: &Parts) -> Resolved<'_> {
        if let Some(namespace) = domain.and_then(|d| subdomain(parts, d)) {
            return Resolved {
                table: self.named(namespace),
                is_default: false,
                prefix: None,
            };
        }
        let path = parts.uri.path();
        if let Some(rest) = path.strip_prefix("/@") {
            let name = rest.split('/').next().unwrap_or_default();
            return Resolved {
                table: self.named(name),
                is_default: false,
                prefix: Some(2 + name.len()),
            };
        }
        Resolved {
            table: Some(&self.default),
            is_default: true,
            prefix: None,
        }
    }
}

/// `N` when the request's host is `N.<domain>` (one label, any port, any case).
fn subdomain<'p>(parts: &'p Parts, domain: &str) -> Option<&'p str> {
    let host = match parts.uri.host() {
        Some(host) => host,
        None => parts.headers.get(http::header::HOST)?.to_str().ok()?,
    };
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let host = host.strip_suffix('.').unwrap_or(host);
    let cut = host.len().checked_sub(domain.len() + 1)?;
    let (label, rest) = host.split_at(cut);
    (rest.as_bytes().first() == Some(&b'.')
        && rest[1..].eq_ignore_ascii_case(domain)
        && !label.is_empty()
        && !label.contains('.'))
    .then_some(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(host: Option<&str>, path: &str) -> Parts {
        let mut b = http::Request::builder().uri(path);
        if let Some(host) = host {
            b = b.header("host", host);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn hosts_name_namespaces_under_the_domain_only() {
        let sub = |host| subdomain(&parts(Some(host), "/"), "example.com").map(str::to_string);
        assert_eq!(sub("team.example.com").as_deref(), Some("team"));
        assert_eq!(sub("team.example.com:8080").as_deref(), Some("team"));
        assert_eq!(sub("Team.EXAMPLE.com.").as_deref(), Some("Team"));
        assert_eq!(sub("example.com"), None);
        assert_eq!(sub("a.b.example.com"), None);
        assert_eq!(sub("teamexample.com"), None);
        assert_eq!(sub("team.example.org"), None);
        assert_eq!(sub(".example.com"), None);
        assert_eq!(subdomain(&parts(None, "/"), "example.com"), None);
    }

    #[test]
    fn paths_and_hosts_pick_tables() {
        let tables = Tables::default();
        let r = tables.resolve(None, &parts(Some("team.example.com"), "/hello"));
        assert!(r.is_default && r.prefix.is_none() && r.table.is_some());
        let r = tables.resolve(Some("example.com"), &parts(Some("team.example.com"), "/@x/hello"));
        assert!(!r.is_default && r.table.is_none() && r.prefix.is_none());
        let r = tables.resolve(None, &parts(None, "/@team/hello"));
        assert_eq!(
            (r.is_default, r.prefix, r.table.is_none()),
            (false, Some(6), true)
        );
        // `/@default` is the default namespace by name.
        let r = tables.resolve(None, &parts(None, "/@default"));
        assert_eq!((r.prefix, r.table.is_some()), (Some(9), true));
        let r = tables.resolve(Some("example.com"), &parts(Some("example.com"), "/hello"));
        assert!(r.is_default);
    }

    #[test]
    fn namespaces_have_their_own_routes_and_limiters_outlive_other_deploys() {
        use super::super::routes::tests::function_in;
        let hello = |ns: &str| function_in(ns, "hello", &[("/hello", &[])], Some("5/s"));
        let (a, b) = (hello("team"), hello("other"));
        let tables = Tables::build([&a, &b, &hello("default")], &Tables::default()).unwrap();
        for ns in ["team", "other"] {
            let path = format!("/@{ns}/hello");
            let r = tables.resolve(None, &parts(None, &path));
            let table = r.table.unwrap();
            let found = match table.lookup("GET", "/hello") {
                super::super::routes::Lookup::Found { target, .. } => {
                    target.function.record.namespace.to_string()
                }
                _ => String::new(),
            };
            assert_eq!(found, ns);
        }
        assert!(
            tables
                .resolve(None, &parts(None, "/@nobody/hello"))
                .table
                .is_none()
        );
        // A rebuild (another deploy) keeps the limiters of unchanged versions.
        let before = tables
            .limiters
            .values()
            .map(Arc::as_ptr)
            .collect::<std::collections::HashSet<_>>();
        let again = Tables::build([&a, &b], &tables).unwrap();
        assert_eq!(again.limiters.len(), 2);
        assert!(again.limiters.values().all(|l| before.contains(&Arc::as_ptr(l))));
    }
}
