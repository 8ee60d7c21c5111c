//! Managing namespaces, the tenants: create, list, change settings, delete (refused
//! while one holds functions or queues, unless forced).

use super::keys::namespace_not_found;
use crate::{Engine, EngineError};
use wisp_core::wall::now_ms;
use wisp_core::{ErrorCode, Limits, Namespace};
use wisp_store::{NamespaceRecord, NamespaceSettings};

fn invalid(detail: String) -> EngineError {
    EngineError::new(ErrorCode::InvalidConfig, detail)
}

/// How often a settings change retries when another change moved the namespace's
/// revision under it.
const CHANGE_TRIES: usize = 8;

impl Engine {
    fn check_settings(&self, settings: &NamespaceSettings) -> Result<(), EngineError> {
        if let Some(n) = settings.max_concurrency
            && !(1..=Limits::MAX_NAMESPACE_MAX_CONCURRENCY).contains(&n)
        {
            return Err(EngineError::new(
                ErrorCode::InvalidConfig,
                format!(
                    "max_concurrency: {n} is out of bounds; use 1 to {}",
                    Limits::MAX_NAMESPACE_MAX_CONCURRENCY
                ),
            ));
        }
        settings.quota.check().map_err(invalid)?;
        settings.free_tier.check().map_err(invalid)?;
        Ok(())
    }

    /// Creates a namespace.
    pub async fn create_namespace(
        &self,
        name: &Namespace,
        settings: &NamespaceSettings,
    ) -> Result<NamespaceRecord, EngineError> {
        self.check_settings(settings)?;
        if !self.store.create_namespace(name, settings, now_ms()).await? {
            return Err(EngineError::new(
                ErrorCode::NamespaceExists,
                format!("namespace `{name}` exists already"),
            ));
        }
        self.identity.reload(self.store.as_ref()).await?;
        self.reconcile_quotas().await?;
        self.namespace(name)
    }

    /// Every namespace, by name.
    pub fn namespaces(&self) -> Vec<NamespaceRecord> {
        let mut list: Vec<_> = self.identity.namespaces.load().values().cloned().collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// A namespace.
    pub fn namespace(&self, name: &Namespace) -> Result<NamespaceRecord, EngineError> {
        self.identity
            .namespace(name)
            .ok_or_else(|| namespace_not_found(name))
    }

    /// Changes a namespace's settings with `change`, retried when a concurrent change
    /// moved the namespace first (compare-and-set on its revision). A new cap on
    /// concurrency applies to invocations admitted from now on.
    pub async fn update_namespace(
        &self,
        name: &Namespace,
        change: impl Fn(&mut NamespaceSettings),
    ) -> Result<NamespaceRecord, EngineError> {
        for _ in 0..CHANGE_TRIES {
            let Some(current) = self.store.namespace(name).await? else {
                return Err(namespace_not_found(name));
            };
            let mut settings = current.settings.clone();
            change(&mut settings);
            self.check_settings(&settings)?;
            if let Some(updated) = self
                .store
                .update_namespace(name, &settings, current.revision)
                .await?
            {
                self.identity.reload(self.store.as_ref()).await?;
                self.forget_namespace_gate(name);
                // A raised quota admits from now on, a lowered one stops from now on.
                self.reconcile_quotas().await?;
                return Ok(updated);
            }
        }
        Err(EngineError::internal(format!(
            "namespace {name} kept changing under {CHANGE_TRIES} updates"
        )))
    }

    /// Deletes a namespace. Refused for `default`, and while it holds functions,
    /// queues or buckets unless `force`, which deletes them (and its keys) first.
    pub async fn delete_namespace(&self, name: &Namespace, force: bool) -> Result<(), EngineError> {
        if name.as_str() == Namespace::DEFAULT {
            return Err(EngineError::new(
                ErrorCode::InvalidRequest,
                "the `default` namespace cannot be deleted",
            ));
        }
        self.namespace(name)?;
        let functions = self.functions(name);
        let queues = self.store.list_queues(Some(name)).await?;
        let buckets = self.store.list_buckets(Some(name)).await?;
        let holds_something = !functions.is_empty() || !queues.is_empty() || !buckets.is_empty();
        if holds_something && !force {
            return Err(EngineError::new(
                ErrorCode::NamespaceNotEmpty,
                format!(
                    "namespace `{name}` holds {} function(s), {} queue(s) and {} bucket(s); delete them first, or delete with force to delete everything in it",
                    functions.len(),
                    queues.len(),
                    buckets.len()
                ),
            ));
        }
        for bucket in buckets {
            self.purge_bucket(name, &bucket.name).await?;
        }
        for function in functions {
            self.delete(name, &function.record.name).await?;
        }
        self.store.remove_namespace(name).await?;
        self.identity.reload(self.store.as_ref()).await?;
        // Its secrets went with it: no function of a namespace made again under the
        // name may find them in memory.
        self.secrets.reload(self.store.as_ref()).await?;
        self.forget_namespace_gate(name);
        Ok(())
    }
}
