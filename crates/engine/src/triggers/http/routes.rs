//! The table of HTTP routes of one namespace's functions, rebuilt on every deploy
//! and swapped in whole (with the other namespaces' tables, [`super::namespaces`]),
//! so lookups on the request path take no lock. Each route carries its [`Access`]:
//! its auth, built into a verifier here, and its rate limiter.
//!
//! Routes of the same shape (`/users/:id`, `/users/:name`) share one router entry;
//! each entry lists its targets by method, so `GET /items` and `POST /items` may go
//! to different functions. A trailing wildcard also answers the path without a rest
//! (`/*` answers `/`; `/files/*` answers `/files` and `/files/`): those paths are
//! added after every declared route, unless a route declares the very same path, so
//! an explicit `/files` wins over `/files/*`, which wins over `/*`.

use super::access::{Access, Auth};
use super::jwt::Verifier;
use super::rate::Limiter;
use crate::registry::Deployed;
use std::collections::HashMap;
use std::sync::Arc;
use wisp_core::{AuthMode, FunctionName, Namespace, Route, RoutePattern, VersionId};

/// One function's route.
pub(crate) struct Target {
    pub(crate) function: Arc<Deployed>,
    pub(crate) pattern: RoutePattern,
    /// Empty: every method.
    pub(crate) methods: Vec<String>,
    /// Parameter names, in the order the router numbers them.
    pub(crate) params: Vec<String>,
    pub(crate) access: Access,
}

/// A limiter's owner: a version of a function, and the route whose own limit it
/// enforces (`None`: the function's limit, shared by its routes).
pub(crate) type LimiterKey = (Namespace, FunctionName, VersionId, Option<usize>);

/// The limiters of the tables being built, taking over those of the tables they
/// replace for versions that are still deployed.
#[derive(Default)]
pub(crate) struct Limiters {
    pub(crate) previous: HashMap<LimiterKey, Arc<Limiter>>,
    pub(crate) built: HashMap<LimiterKey, Arc<Limiter>>,
}

impl Limiters {
    /// The limiter of route `index` of `function`, if it or the function has a limit.
    fn of(&mut self, function: &Deployed, index: usize, route: &Route) -> Option<Arc<Limiter>> {
        let config = function.config();
        let (limit, scope) = match route.rate_limit() {
            Ok(Some(limit)) => (limit, Some(index)),
            _ => (config.rate_limit().ok().flatten()?, None),
        };
        let record = &function.record;
        let key = (
            record.namespace.clone(),
            record.name.clone(),
            function.live_version().record.id.clone(),
            scope,
        );
        let limiter = self
            .built
            .get(&key)
            .or_else(|| self.previous.get(&key))
            .cloned()
            .unwrap_or_else(|| Arc::new(Limiter::new(limit)));
        self.built.insert(key, limiter.clone());
        Some(limiter)
    }
}

#[derive(Default)]
pub(crate) struct RouteTable {
    router: matchit::Router<Slot>,
    /// What the router holds, by router path (the router itself only matches).
    slots: HashMap<String, Slot>,
    entries: Vec<Vec<Target>>,
}

/// What a router path leads to.
#[derive(Clone, Copy)]
struct Slot {
    /// The entry of the routes of this shape.
    entry: usize,
    /// The path is a wildcard route's prefix: the wildcard takes nothing.
    rest_is_empty: bool,
}

/// The outcome of a lookup.
pub(crate) enum Lookup<'a> {
    Found {
        target: &'a Target,
        params: Vec<(String, String)>,
    },
    MethodNotAllowed {
        allow: String,
    },
    NotFound,
}

/// Two routes of different functions that would answer the same request.
#[derive(Debug)]
pub(crate) struct Conflict {
    pub(crate) route: String,
    pub(crate) other_function: String,
    pub(crate) other_route: String,
}

impl RouteTable {
    /// Builds the table for `functions`, refusing overlapping routes.
    pub(crate) fn build<'a>(
        functions: impl IntoIterator<Item = &'a Arc<Deployed>>,
        limiters: &mut Limiters,
    ) -> Result<RouteTable, Conflict> {
        let mut table = RouteTable::default();
        let mut without_rest = Vec::new();
        for function in functions {
            for (index, route) in function.config().routes.iter().enumerate() {
                // Configs were validated at deploy; a route failing now is skipped, not fatal.
                let Ok((pattern, methods)) = route.validate() else {
                    tracing::warn!(function = %function.record.name, path = %route.path, "skipping invalid route");
                    continue;
                };
                let auth = match (&route.auth, &route.jwt) {
                    (AuthMode::Public, _) => Auth::Public,
                    (AuthMode::Key, _) => Auth::Key,
                    (AuthMode::Jwt, Some(jwt)) => match Verifier::new(jwt) {
                        Ok(verifier) => Auth::Jwt(Arc::new(verifier)),
                        Err(e) => {
                            tracing::warn!(function = %function.record.name, path = %route.path, "skipping a route whose keys do not load: {e}");
                            continue;
                        }
                    },
                    _ => {
                        tracing::warn!(function = %function.record.name, path = %route.path, "skipping a route of unknown auth");
                        continue;
                    }
                };
                let access = Access {
                    auth,
                    limiter: limiters.of(function, index, route),
                };
                let paths = pattern.router_paths_without_rest();
                let entry = table.insert(function, pattern, methods, access)?;
                without_rest.extend(paths.into_iter().map(|path| (path, entry)));
            }
        }
        // After every declared route, so a declared path wins over a wildcard's prefix.
        for (path, entry) in without_rest {
            if table.slots.contains_key(&path) {
                continue;
            }
            let slot = Slot {
                entry,
                rest_is_empty: true,
            };
            // A wildcard's prefix belongs to one shape, so it can only meet itself
            // (routes of that shape in other functions) or a declared route, both
            // skipped above; if the router refuses it anyway, the route serves on
            // without it.
            match table.router.insert(path.clone(), slot) {
                Ok(()) => {
                    table.slots.insert(path, slot);
                }
                Err(e) => tracing::debug!("a wildcard route does not answer its prefix: {e}"),
            }
        }
        Ok(table)
    }

    fn insert(
        &mut self,
        function: &Arc<Deployed>,
        pattern: RoutePattern,
        methods: Vec<String>,
        access: Access,
    ) -> Result<usize, Conflict> {
        let describe = |p: &RoutePattern, m: &[String]| {
            if m.is_empty() {
                p.to_string()
            } else {
                format!("{} {}", m.join(","), p)
            }
        };
        let router_path = pattern.router_path();
        let index = match self.slots.get(&router_path) {
            // Routes of the same shape share one entry.
            Some(slot) => slot.entry,
            None => {
                let index = self.entries.len();
                let slot = Slot {
                    entry: index,
                    rest_is_empty: false,
                };
                self.router
                    .insert(router_path.clone(), slot)
                    .map_err(|e| Conflict {
                        route: describe(&pattern, &methods),
                        other_function: String::new(),
                        other_route: e.to_string(),
                    })?;
                self.slots.insert(router_path, slot);
                self.entries.push(Vec::new());
                index
            }
        };
        let entry = &mut self.entries[index];
        if let Some(other) = entry
            .iter()
            .find(|t| Route::overlaps((&t.pattern, &t.methods), (&pattern, &methods)))
        {
            return Err(Conflict {
                route: describe(&pattern, &methods),
                other_function: other.function.record.name.to_string(),
                other_route: describe(&other.pattern, &other.methods),
            });
        }
        let params = pattern.param_names().into_iter().map(str::to_string).collect();
        entry.push(Target {
            function: function.clone(),
            pattern,
            methods,
            params,
            access,
        });
        Ok(index)
    }

    /// Finds the target for a request.
    pub(crate) fn lookup(&self, method: &str, path: &str) -> Lookup<'_> {
        let Ok(found) = self.router.at(path) else {
            return Lookup::NotFound;
        };
        let Slot { entry, rest_is_empty } = *found.value;
        let entry = &self.entries[entry];
        let Some(target) = entry
            .iter()
            .find(|t| t.methods.is_empty() || t.methods.iter().any(|m| m == method))
        else {
            let mut allow: Vec<&str> = entry
                .iter()
                .flat_map(|t| t.methods.iter().map(String::as_str))
                .collect();
            allow.sort();
            allow.dedup();
            return Lookup::MethodNotAllowed {
                allow: allow.join(", "),
            };
        };
        // The router names parameters p0, p1, … in order; give them the target's names.
        let mut params: Vec<(String, String)> = found
            .params
            .iter()
            .zip(&target.params)
            .map(|((_, value), name)| (name.clone(), value.to_string()))
            .collect();
        if rest_is_empty && let Some(wildcard) = target.params.last() {
            params.push((wildcard.clone(), String::new()));
        }
        Lookup::Found { target, params }
    }

    /// Whether there are no routes at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use wisp_core::{FunctionConfig, Kind};
    use wisp_store::{FunctionRecord, VersionRecord};

    fn function(name: &str, routes: &[(&str, &[&str])]) -> Arc<Deployed> {
        function_in(Namespace::DEFAULT, name, routes, None)
    }

    pub(crate) fn function_in(
        namespace: &str,
        name: &str,
        routes: &[(&str, &[&str])],
        rate_limit: Option<&str>,
    ) -> Arc<Deployed> {
        let mut config = FunctionConfig::new(Kind::Http);
        config.rate_limit = rate_limit.map(str::to_string);
        config.routes = routes
            .iter()
            .map(|(path, methods)| Route {
                path: path.to_string(),
                methods: methods.iter().map(|m| m.to_string()).collect(),
                ..Route::default()
            })
            .collect();
        Arc::new(Deployed::new(
            FunctionRecord {
                namespace: Namespace::new(namespace).unwrap(),
                name: FunctionName::new(name).unwrap(),
                app: None,
                disabled: false,
                versions: vec![VersionRecord {
                    number: 1,
                    id: VersionId("v".into()),
                    code_hash: "00".into(),
                    code_size: 0,
                    config,
                    created_at: 0,
                }],
                aliases: [(wisp_core::version::live(), wisp_core::AliasTarget::one(1))].into(),
                revision: 1,
                created_at: 0,
                updated_at: 0,
            },
            &crate::pool::testing::unused_context(),
            None,
        ))
    }

    fn build(functions: &[Arc<Deployed>]) -> Result<RouteTable, Conflict> {
        RouteTable::build(functions, &mut Limiters::default())
    }

    fn found(table: &RouteTable, method: &str, path: &str) -> Option<(String, Vec<(String, String)>)> {
        match table.lookup(method, path) {
            Lookup::Found { target, params } => Some((target.function.record.name.to_string(), params)),
            _ => None,
        }
    }

    #[test]
    fn lookups_pick_by_path_then_method_and_name_parameters() {
        let table = build(&[
            function("reader", &[("/users/:id", &["GET"])]),
            function("writer", &[("/users/:uid", &["POST", "PUT"])]),
            function("me", &[("/users/me", &[])]),
            function("files", &[("/files/*", &[])]),
        ])
        .unwrap();
        let (name, params) = found(&table, "GET", "/users/7").unwrap();
        assert_eq!(
            (name.as_str(), params),
            ("reader", vec![("id".into(), "7".into())])
        );
        let (name, params) = found(&table, "PUT", "/users/7").unwrap();
        assert_eq!(
            (name.as_str(), params),
            ("writer", vec![("uid".into(), "7".into())])
        );
        assert_eq!(found(&table, "DELETE", "/users/me").unwrap().0, "me");
        let (_, params) = found(&table, "GET", "/files/a/b.txt").unwrap();
        assert_eq!(params, vec![("proxy".into(), "a/b.txt".into())]);
        assert!(
            matches!(table.lookup("DELETE", "/users/7"), Lookup::MethodNotAllowed { allow } if allow == "GET, POST, PUT")
        );
        assert!(matches!(table.lookup("GET", "/nothing"), Lookup::NotFound));
    }

    /// Regression: a component deployed with `routes = ["/*"]` answered
    /// `route_not_found` at `/`, where `wasmtime serve` runs it.
    #[test]
    fn a_wildcard_answers_its_prefix_unless_a_route_names_it() {
        let table = build(&[
            function("site", &[("/*", &[])]),
            function("files", &[("/files/*", &["GET"])]),
            function("index", &[("/docs", &[])]),
            function("docs", &[("/docs/*", &[])]),
        ])
        .unwrap();
        let (name, params) = found(&table, "GET", "/").unwrap();
        assert_eq!(
            (name.as_str(), params),
            ("site", vec![("proxy".into(), "".into())])
        );
        assert_eq!(found(&table, "GET", "/anything/else").unwrap().0, "site");
        for path in ["/files", "/files/", "/files/a.txt"] {
            assert_eq!(found(&table, "GET", path).unwrap().0, "files", "{path}");
        }
        assert!(matches!(
            table.lookup("POST", "/files"),
            Lookup::MethodNotAllowed { allow } if allow == "GET"
        ));
        // An explicit route wins over a wildcard's empty rest.
        assert_eq!(found(&table, "GET", "/docs").unwrap().0, "index");
        assert_eq!(found(&table, "GET", "/docs/").unwrap().0, "docs");
        assert_eq!(found(&table, "GET", "/docs/x").unwrap().0, "docs");
    }

    #[test]
    fn overlapping_routes_of_different_functions_conflict() {
        let conflict = build(&[
            function("a", &[("/users/:id", &["GET"])]),
            function("b", &[("/users/:name", &[])]),
        ])
        .err()
        .unwrap();
        assert_eq!(conflict.other_function, "a");
        assert!(
            build(&[
                function("a", &[("/x", &["GET"])]),
                function("b", &[("/x", &["POST"])])
            ])
            .is_ok()
        );
    }
}
