//! The table of HTTP routes of all deployed functions, rebuilt on every deploy and
//! swapped in whole, so lookups on the request path take no lock.
//!
//! Routes of the same shape (`/users/:id`, `/users/:name`) share one router entry;
//! each entry lists its targets by method, so `GET /items` and `POST /items` may go
//! to different functions.

use crate::registry::Deployed;
use std::sync::Arc;
use wisp_core::{Route, RoutePattern};

/// One function's route.
pub(crate) struct Target {
    pub(crate) function: Arc<Deployed>,
    pub(crate) pattern: RoutePattern,
    /// Empty: every method.
    pub(crate) methods: Vec<String>,
    /// Parameter names, in the order the router numbers them.
    pub(crate) params: Vec<String>,
}

#[derive(Default)]
pub(crate) struct RouteTable {
    router: matchit::Router<usize>,
    entries: Vec<Vec<Target>>,
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
    ) -> Result<RouteTable, Conflict> {
        let mut table = RouteTable::default();
        for function in functions {
            for route in &function.record.version.config.routes {
                // Configs were validated at deploy; a route failing now is skipped, not fatal.
                let Ok((pattern, methods)) = route.validate() else {
                    tracing::warn!(function = %function.record.name, path = %route.path, "skipping invalid route");
                    continue;
                };
                table.insert(function, pattern, methods)?;
            }
        }
        Ok(table)
    }

    fn insert(
        &mut self,
        function: &Arc<Deployed>,
        pattern: RoutePattern,
        methods: Vec<String>,
    ) -> Result<(), Conflict> {
        let describe = |p: &RoutePattern, m: &[String]| {
            if m.is_empty() {
                p.to_string()
            } else {
                format!("{} {}", m.join(","), p)
            }
        };
        let router_path = pattern.router_path();
        let index = match self.router.at(&router_path) {
            // `at` with a router path finds the entry of the same shape when one exists.
            Ok(found) if self.entries[*found.value][0].pattern.shape() == pattern.shape() => *found.value,
            _ => {
                let index = self.entries.len();
                self.router.insert(router_path, index).map_err(|e| Conflict {
                    route: describe(&pattern, &methods),
                    other_function: String::new(),
                    other_route: e.to_string(),
                })?;
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
        });
        Ok(())
    }

    /// Finds the target for a request.
    pub(crate) fn lookup(&self, method: &str, path: &str) -> Lookup<'_> {
        let Ok(found) = self.router.at(path) else {
            return Lookup::NotFound;
        };
        let entry = &self.entries[*found.value];
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
        let params = found
            .params
            .iter()
            .zip(&target.params)
            .map(|((_, value), name)| (name.clone(), value.to_string()))
            .collect();
        Lookup::Found { target, params }
    }

    /// Whether there are no routes at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_core::{FunctionConfig, FunctionName, Kind, Namespace, VersionId};
    use wisp_store::{FunctionRecord, VersionRecord};

    fn function(name: &str, routes: &[(&str, &[&str])]) -> Arc<Deployed> {
        let mut config = FunctionConfig::new(Kind::Http);
        config.routes = routes
            .iter()
            .map(|(path, methods)| Route {
                path: path.to_string(),
                methods: methods.iter().map(|m| m.to_string()).collect(),
            })
            .collect();
        Arc::new(Deployed::new(
            FunctionRecord {
                namespace: Namespace::default_namespace(),
                name: FunctionName::new(name).unwrap(),
                app: None,
                version: VersionRecord {
                    id: VersionId("v".into()),
                    code_hash: "00".into(),
                    code_size: 0,
                    config,
                    created_at: 0,
                },
                created_at: 0,
                updated_at: 0,
            },
            &crate::pool::testing::unused_context(),
        ))
    }

    fn found(table: &RouteTable, method: &str, path: &str) -> Option<(String, Vec<(String, String)>)> {
        match table.lookup(method, path) {
            Lookup::Found { target, params } => Some((target.function.record.name.to_string(), params)),
            _ => None,
        }
    }

    #[test]
    fn lookups_pick_by_path_then_method_and_name_parameters() {
        let table = RouteTable::build(&[
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

    #[test]
    fn overlapping_routes_of_different_functions_conflict() {
        let conflict = RouteTable::build(&[
            function("a", &[("/users/:id", &["GET"])]),
            function("b", &[("/users/:name", &[])]),
        ])
        .err()
        .unwrap();
        assert_eq!(conflict.other_function, "a");
        assert!(
            RouteTable::build(&[
                function("a", &[("/x", &["GET"])]),
                function("b", &[("/x", &["POST"])])
            ])
            .is_ok()
        );
    }
}
