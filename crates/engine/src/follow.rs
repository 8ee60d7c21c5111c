//! Follows the registry changes other nodes make to a store several nodes share
//! ([`wisp_store::Registry::watch_functions`]): each function a change names is read
//! again and served as it now is, so a deploy on one node is served by every node within
//! moments. A store only this process writes has nothing to follow.

use crate::Engine;
use crate::registry::Deployed;
use futures::StreamExt;
use std::sync::{Arc, Weak};
use std::time::Duration;
use wisp_core::{FunctionName, Namespace};
use wisp_store::FunctionRecord;

/// How long to wait before watching again after the watch failed or ended.
const REWATCH: Duration = Duration::from_secs(1);

/// Starts following the store's changes, while the engine lives.
pub(crate) fn start(engine: &Arc<Engine>) {
    let store = engine.store.clone();
    let weak = Arc::downgrade(engine);
    tokio::spawn(async move {
        loop {
            let mut watch = match store.watch_functions().await {
                Ok(Some(watch)) => watch,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!("cannot watch the registry for other nodes' changes: {e}");
                    tokio::time::sleep(REWATCH).await;
                    continue;
                }
            };
            // What changed before the watch began (since start-up, or while it was down).
            if !reload_all(&weak).await {
                return;
            }
            while let Some(change) = watch.next().await {
                let Some(engine) = weak.upgrade() else { return };
                match change {
                    Ok((namespace, name)) => {
                        if let Err(e) = engine.reload_function(&namespace, &name).await {
                            tracing::warn!(
                                "cannot read `{namespace}/{name}` after another node changed it: {e}"
                            );
                        }
                    }
                    Err(e) => {
                        tracing::warn!("the watch of the registry failed; watching again: {e}");
                        break;
                    }
                }
            }
            tokio::time::sleep(REWATCH).await;
        }
    });
}

/// Reads every function again; `false` once the engine is gone.
async fn reload_all(weak: &Weak<Engine>) -> bool {
    let Some(engine) = weak.upgrade() else {
        return false;
    };
    if let Err(e) = engine.reload_functions().await {
        tracing::warn!("cannot read the registry again: {e}");
    }
    true
}

impl Engine {
    /// Serves `namespace/name` as the store now has it (or no longer, when it is gone),
    /// unless the engine serves that revision already (its own change, watched back).
    pub(crate) async fn reload_function(
        &self,
        namespace: &Namespace,
        name: &FunctionName,
    ) -> Result<(), crate::EngineError> {
        let _guard = self.changes.lock().await;
        let record = self.store.get_function(namespace, name).await?;
        let functions = self.functions.load_full();
        let key = (namespace.clone(), name.clone());
        let current = functions.get(&key);
        if current.map(|c| c.record.revision) == record.as_ref().map(|r| r.revision) {
            return Ok(());
        }
        let mut next = (*functions).clone();
        let deployed = record.map(|record| self.deployed(record, current.map(AsRef::as_ref)));
        match &deployed {
            Some(deployed) => next.insert(key, deployed.clone()),
            None => next.remove(&key),
        };
        self.publish(next);
        self.after_follow(deployed.into_iter()).await;
        Ok(())
    }

    /// Serves every function as the store now has it: those it no longer has stop, those
    /// whose revision moved are served anew (their unchanged versions keep their pools).
    pub(crate) async fn reload_functions(&self) -> Result<(), crate::EngineError> {
        let _guard = self.changes.lock().await;
        let records = self.store.list_functions(None).await?;
        let functions = self.functions.load_full();
        let mut changed = Vec::new();
        let mut next = crate::registry::Functions::with_capacity(records.len());
        for record in records {
            let key = (record.namespace.clone(), record.name.clone());
            let current = functions.get(&key);
            let deployed = match current {
                Some(current) if current.record.revision == record.revision => current.clone(),
                _ => {
                    let deployed = self.deployed(record, current.map(AsRef::as_ref));
                    changed.push(deployed.clone());
                    deployed
                }
            };
            next.insert(key, deployed);
        }
        if changed.is_empty() && next.len() == functions.len() {
            return Ok(());
        }
        self.publish(next);
        self.after_follow(changed.into_iter()).await;
        Ok(())
    }

    fn deployed(&self, record: FunctionRecord, previous: Option<&Deployed>) -> Arc<Deployed> {
        Arc::new(Deployed::new(record, &self.pools, previous))
    }

    /// What a change another node made leaves to do here: warm the `min_instances` of
    /// what changed, and forget compiled code no version uses any more.
    async fn after_follow(&self, changed: impl Iterator<Item = Arc<Deployed>>) {
        for deployed in changed {
            for version in deployed.versions() {
                version.pool.drive(self.pools.clock.now());
            }
        }
        self.retain_artifacts().await;
    }
}
