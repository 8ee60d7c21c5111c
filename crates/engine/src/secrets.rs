//! Secrets: values a namespace keeps out of its functions' configurations, which a
//! function's `env` refers to by name (`DB_PASSWORD = { secret = "db" }`) and each of
//! its instances gets when it starts.
//!
//! # Design
//!
//! The store keeps each value only sealed ([`wisp_store::Secrets`]): ChaCha20-Poly1305
//! under the node's master key (the key file in the data directory, mode 0600, that
//! seals API key secrets too), with `wisp-secret:NAMESPACE/NAME` as the associated data,
//! so a sealed value copied onto another secret's row, or another namespace's, does not
//! open. The engine holds every namespace's values opened, in memory ([`SecretCache`]),
//! swapped whole on each change so that a read takes no lock: resolving a function's
//! references at an instance start is a hash lookup, never a store read or a decryption.
//!
//! A set or a delete here writes the store, then updates the cache. The whole cache is
//! loaded by one method, [`SecretCache::reload`], at start; a cluster's nodes will call
//! it when the store's watch says a secret changed elsewhere.
//!
//! Values never leave through a read API, and never reach a log: nothing here formats
//! one, and [`SecretInfo`] (what listing returns) has none to show.
//!
//! A version's services carry a [`NamespaceSecrets`] of its namespace, which reads the
//! cache at each call, so a secret set again reaches the next instance that starts
//! without a deploy; instances already running keep the value they started with.

use crate::{Engine, EngineError, MasterKey};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;
use wisp_core::{ErrorCode, FunctionConfig, Limits, Namespace, SecretName, UnixMillis};
use wisp_runtime::services::SecretValues;
use wisp_store::{SecretCondition, SecretPut, Store};

/// What setting a secret did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretSet {
    Created,
    Updated,
}

/// A secret as the API lists it: never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretInfo {
    pub name: SecretName,
    pub created_ms: UnixMillis,
    pub updated_ms: UnixMillis,
    pub revision: u64,
}

/// One opened value.
#[derive(Clone)]
struct Opened {
    value: Arc<str>,
}

type Snapshot = HashMap<Namespace, HashMap<String, Opened>>;

/// Every namespace's secrets, opened, in memory. See the module docs.
pub(crate) struct SecretCache {
    master: MasterKey,
    values: ArcSwap<Snapshot>,
    /// Held by each change and reload from its store call to its swap, so that a
    /// reload that read earlier never undoes a change made after.
    changes: tokio::sync::Mutex<()>,
}

/// The associated data a value is sealed with: binds it to its namespace and name.
fn bound_to(namespace: &Namespace, name: &SecretName) -> String {
    format!("wisp-secret:{namespace}/{name}")
}

impl SecretCache {
    pub(crate) fn new(master: MasterKey) -> SecretCache {
        SecretCache {
            master,
            values: ArcSwap::default(),
            changes: tokio::sync::Mutex::new(()),
        }
    }

    /// Loads every namespace's secrets from the store and swaps them in whole. A value
    /// that does not open (sealed under another master key) is left out and logged by
    /// name: instances that need it fail to start, saying it is missing.
    pub(crate) async fn reload(&self, store: &dyn Store) -> Result<(), EngineError> {
        let _one_at_a_time = self.changes.lock().await;
        let records = store.list_secrets(None).await?;
        let mut snapshot = Snapshot::new();
        for record in records {
            match self
                .master
                .open(&bound_to(&record.namespace, &record.name), &record.sealed)
            {
                Ok(value) => {
                    snapshot.entry(record.namespace).or_default().insert(
                        record.name.to_string(),
                        Opened {
                            value: Arc::from(value),
                        },
                    );
                }
                Err(e) => tracing::error!(
                    namespace = %record.namespace,
                    secret = %record.name,
                    "cannot open a secret: {e}"
                ),
            }
        }
        self.values.store(Arc::new(snapshot));
        Ok(())
    }

    /// Applies one change to the snapshot: a new value, or `None` for a deletion.
    fn apply(&self, namespace: &Namespace, name: &SecretName, value: Option<Arc<str>>) {
        self.values.rcu(|current| {
            let mut next = Snapshot::clone(current);
            match &value {
                Some(value) => {
                    next.entry(namespace.clone())
                        .or_default()
                        .insert(name.to_string(), Opened { value: value.clone() });
                }
                None => {
                    if let Some(secrets) = next.get_mut(namespace) {
                        secrets.remove(name.as_str());
                    }
                }
            }
            next
        });
    }

    /// Whether `namespace` has secret `name` (deploys check references with it).
    fn has(&self, namespace: &Namespace, name: &SecretName) -> bool {
        self.values
            .load()
            .get(namespace)
            .is_some_and(|secrets| secrets.contains_key(name.as_str()))
    }

    /// What a version of a function of `namespace` resolves its references through.
    pub(crate) fn for_namespace(self: &Arc<Self>, namespace: &Namespace) -> Arc<dyn SecretValues> {
        Arc::new(NamespaceSecrets {
            cache: self.clone(),
            namespace: namespace.clone(),
        })
    }
}

/// The secrets of one namespace, as a version's services read them.
struct NamespaceSecrets {
    cache: Arc<SecretCache>,
    namespace: Namespace,
}

impl SecretValues for NamespaceSecrets {
    fn value(&self, name: &str) -> Option<Arc<str>> {
        self.cache
            .values
            .load()
            .get(&self.namespace)
            .and_then(|secrets| secrets.get(name))
            .map(|opened| opened.value.clone())
    }
}

/// Refuses a value a secret may not hold.
fn check_value(name: &SecretName, value: &str) -> Result<(), EngineError> {
    if value.len() > Limits::MAX_SECRET_VALUE_BYTES {
        return Err(EngineError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the value of secret `{name}` is {} bytes; the limit is {} bytes",
                value.len(),
                Limits::MAX_SECRET_VALUE_BYTES
            ),
        ));
    }
    if value.contains('\0') {
        return Err(EngineError::new(
            ErrorCode::InvalidRequest,
            format!(
                "the value of secret `{name}` contains a NUL byte, which no environment variable can hold"
            ),
        ));
    }
    Ok(())
}

impl Engine {
    /// Sets secret `name` of `ns` to `value` (creating it, or replacing its value):
    /// sealed into the store, then opened in memory, where the next instance that starts
    /// with a reference to it finds it.
    pub async fn set_secret(
        &self,
        ns: &Namespace,
        name: &SecretName,
        value: &str,
    ) -> Result<SecretSet, EngineError> {
        check_value(name, value)?;
        let cache = &self.secrets;
        let sealed = cache
            .master
            .seal(&bound_to(ns, name), value)
            .map_err(|e| EngineError::internal(format!("sealing secret `{ns}/{name}`: {e}")))?;
        let _change = cache.changes.lock().await;
        let put = self
            .store
            .put_secret(ns, name, sealed, SecretCondition::Any, wisp_core::wall::now_ms())
            .await?;
        let set = match put {
            SecretPut::Created { .. } => SecretSet::Created,
            SecretPut::Updated { .. } => SecretSet::Updated,
            SecretPut::ConditionFailed { .. } => {
                return Err(EngineError::internal(format!(
                    "setting secret `{ns}/{name}` without a condition failed its condition"
                )));
            }
        };
        cache.apply(ns, name, Some(Arc::from(value)));
        tracing::info!(namespace = %ns, secret = %name, "secret {}", match set {
            SecretSet::Created => "created",
            SecretSet::Updated => "updated",
        });
        Ok(set)
    }

    /// The secrets of `ns`, by name: names and times, never values.
    pub async fn list_secrets(&self, ns: &Namespace) -> Result<Vec<SecretInfo>, EngineError> {
        Ok(self
            .store
            .list_secrets(Some(ns))
            .await?
            .into_iter()
            .map(|r| SecretInfo {
                name: r.name,
                created_ms: r.created_ms,
                updated_ms: r.updated_ms,
                revision: r.revision,
            })
            .collect())
    }

    /// Deletes secret `name` of `ns`; 404 `secret_not_found` when there is none.
    /// Functions that refer to it keep their running instances; new ones fail to start
    /// until it is set again.
    pub async fn delete_secret(&self, ns: &Namespace, name: &SecretName) -> Result<(), EngineError> {
        let cache = &self.secrets;
        let _change = cache.changes.lock().await;
        if !self.store.delete_secret(ns, name).await? {
            return Err(secret_not_found(name));
        }
        cache.apply(ns, name, None);
        tracing::info!(namespace = %ns, secret = %name, "secret deleted");
        Ok(())
    }

    /// Refuses a configuration whose `env` refers to a secret `ns` does not have:
    /// caught at deploy, where the author is, rather than at the first instance start.
    /// `function` prefixes the detail (an app's deploy names which function).
    pub(crate) fn check_secret_refs(
        &self,
        ns: &Namespace,
        config: &FunctionConfig,
        function: Option<&wisp_core::FunctionName>,
    ) -> Result<(), EngineError> {
        for (variable, secret) in config.secret_refs() {
            if !self.secrets.has(ns, secret) {
                let prefix = function.map(|f| format!("function `{f}`: ")).unwrap_or_default();
                return Err(EngineError::new(
                    ErrorCode::SecretNotFound,
                    format!(
                        "{prefix}env.{variable} refers to secret `{secret}`, which namespace `{ns}` does not have: \
                         set it first with `wisp secret set {secret}`"
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn secret_not_found(name: &SecretName) -> EngineError {
    EngineError::new(ErrorCode::SecretNotFound, format!("there is no secret `{name}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_seal_bound_to_their_namespace_and_name() {
        let master = MasterKey::generate().unwrap();
        let (default, other) = (
            Namespace::new("default").unwrap(),
            Namespace::new("other").unwrap(),
        );
        let (db, api) = (SecretName::new("db").unwrap(), SecretName::new("api").unwrap());
        let sealed = master.seal(&bound_to(&default, &db), "hunter2").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(master.open(&bound_to(&default, &db), &sealed).unwrap(), "hunter2");
        assert!(master.open(&bound_to(&default, &api), &sealed).is_err());
        assert!(master.open(&bound_to(&other, &db), &sealed).is_err());
    }

    #[test]
    fn the_cache_answers_per_namespace_and_follows_changes() {
        let cache = Arc::new(SecretCache::new(MasterKey::generate().unwrap()));
        let (default, other) = (
            Namespace::new("default").unwrap(),
            Namespace::new("other").unwrap(),
        );
        let db = SecretName::new("db").unwrap();
        let values = cache.for_namespace(&default);
        assert_eq!(values.value("db"), None);
        cache.apply(&default, &db, Some(Arc::from("one")));
        assert_eq!(values.value("db").as_deref(), Some("one"));
        assert_eq!(cache.for_namespace(&other).value("db"), None);
        cache.apply(&default, &db, Some(Arc::from("two")));
        assert_eq!(values.value("db").as_deref(), Some("two"));
        assert!(cache.has(&default, &db));
        cache.apply(&default, &db, None);
        assert_eq!(values.value("db"), None);
        assert!(!cache.has(&default, &db));
    }

    #[test]
    fn values_past_the_limit_or_with_nul_are_refused() {
        let db = SecretName::new("db").unwrap();
        assert!(check_value(&db, "").is_ok());
        let big = "x".repeat(Limits::MAX_SECRET_VALUE_BYTES + 1);
        assert_eq!(
            check_value(&db, &big).unwrap_err().code,
            ErrorCode::PayloadTooLarge
        );
        assert_eq!(
            check_value(&db, "a\0b").unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }
}
