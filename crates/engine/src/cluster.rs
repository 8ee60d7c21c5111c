//! This node among the nodes serving the store: its heartbeat (every [`HEARTBEAT`], with
//! its load), whether it reaches the store (what `/v1/health` reports), and the nodes
//! the store knows (`GET /v1/cluster`, `wisp cluster status`).

use crate::{Engine, EngineError};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use wisp_core::wall::now_ms;
use wisp_store::{NodeLoad, NodeRecord, UnixMillis};

/// How often a node writes its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// A node whose last heartbeat is older than this is listed as gone: it stopped, or
/// lost the store.
pub const GONE_AFTER: Duration = Duration::from_secs(10);

/// How long `GET /v1/cluster` keeps listing a node that is gone.
const LISTED_FOR: Duration = Duration::from_secs(24 * 3600);

/// Who this node is, as it tells the other nodes.
#[derive(Clone, Debug)]
pub struct NodeIdentity {
    /// Kept across restarts (the data directory keeps it).
    pub name: String,
    /// Where it serves its API.
    pub url: String,
}

/// This node's membership: who it is, how many nodes are up, and how its last writes to
/// the store went.
pub(crate) struct Membership {
    me: OnceLock<(NodeIdentity, UnixMillis)>,
    /// The nodes up at the last heartbeat (this one included; at least 1); the pools
    /// share it, for their share of `max_concurrency`.
    up: Arc<AtomicUsize>,
    /// When the last heartbeat was written (0: none yet).
    last_ok_ms: AtomicI64,
    /// Since when every heartbeat was written (0: the last one failed, or none yet).
    ok_since_ms: AtomicI64,
    /// The error of the last heartbeat, when it failed.
    last_error: Mutex<Option<String>>,
    /// The nodes gone whose leases were released, with the heartbeat they went after.
    released: Mutex<HashSet<(String, UnixMillis)>>,
}

impl Membership {
    /// A node not joined yet, alone: `up` (which it keeps current) says 1.
    pub(crate) fn new(up: Arc<AtomicUsize>) -> Membership {
        up.store(1, Ordering::Relaxed);
        Membership {
            me: OnceLock::new(),
            up,
            last_ok_ms: AtomicI64::new(0),
            ok_since_ms: AtomicI64::new(0),
            last_error: Mutex::new(None),
            released: Mutex::new(HashSet::new()),
        }
    }
}

/// Whether this node reaches its store, as its heartbeats found.
#[derive(Clone, Debug, Serialize)]
pub struct StoreHealth {
    /// A heartbeat was written within [`GONE_AFTER`] (or none was due yet).
    pub reachable: bool,
    /// When the last heartbeat was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_ok_ms: Option<UnixMillis>,
    /// Why the last heartbeat failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A node as `GET /v1/cluster` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterNode {
    #[serde(flatten)]
    pub record: NodeRecord,
    /// Its heartbeat is recent ([`GONE_AFTER`]).
    pub up: bool,
    /// It is the node that answered.
    pub this: bool,
}

impl Engine {
    /// Makes this node one of the store's nodes under `identity`: writes its heartbeat now
    /// and every [`HEARTBEAT`] after, while the engine lives. Call once, after start.
    pub async fn join(self: &Arc<Self>, identity: NodeIdentity) -> Result<(), EngineError> {
        let started = now_ms();
        if self.membership.me.set((identity, started)).is_err() {
            return Err(EngineError::internal("the node joined twice"));
        }
        self.heartbeat().await?;
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(HEARTBEAT);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(engine) = weak.upgrade() else { return };
                if let Err(e) = engine.heartbeat().await {
                    tracing::warn!(
                        "cannot write this node's heartbeat to the store: {}",
                        e.with_cause()
                    );
                }
                // Secrets other nodes set reach this node's functions within a heartbeat
                // (alone, no other node sets them: nothing to read).
                if engine.membership.up.load(Ordering::Relaxed) > 1
                    && let Err(e) = engine.secrets.reload(engine.store.as_ref()).await
                {
                    tracing::warn!("cannot read the secrets again: {}", e.with_cause());
                }
            }
        });
        Ok(())
    }

    /// Writes this node's record with its load now, noting how it went.
    async fn heartbeat(&self) -> Result<(), EngineError> {
        let Some((identity, started_ms)) = self.membership.me.get() else {
            return Ok(());
        };
        let now = now_ms();
        let record = NodeRecord {
            name: identity.name.clone(),
            url: identity.url.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_ms: *started_ms,
            seen_ms: now,
            load: self.load(),
        };
        let written = self.store.heartbeat(&record).await;
        let failed = written.as_ref().err().map(ToString::to_string);
        if failed.is_none() {
            self.membership.last_ok_ms.store(now, Ordering::Relaxed);
            let _ =
                self.membership
                    .ok_since_ms
                    .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        } else {
            self.membership.ok_since_ms.store(0, Ordering::Relaxed);
        }
        *self
            .membership
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = failed;
        written?;
        let since = now - GONE_AFTER.as_millis() as i64;
        let nodes = self.store.list_nodes(now - LISTED_FOR.as_millis() as i64).await?;
        let mut up = nodes.iter().filter(|n| n.seen_ms >= since).count().max(1);
        // Only a node that reached the store for the whole window judges others gone:
        // after an outage of the store (a NATS server's streams electing new leaders)
        // every node's heartbeat is old, and none is gone for it.
        let ok_since = self.membership.ok_since_ms.load(Ordering::Relaxed);
        if ok_since > 0 && ok_since <= since {
            for gone in nodes.iter().filter(|n| n.seen_ms < since) {
                self.release_leases_of(gone).await;
            }
        } else {
            up = up.max(self.membership.up.load(Ordering::Relaxed));
        }
        if self.membership.up.swap(up, Ordering::Relaxed) != up {
            tracing::info!("{up} nodes serve the store; each holds its share of the concurrency caps");
            // The next invocations make gates with the new shares.
            self.forget_namespace_gates();
        }
        Ok(())
    }

    /// Frees the async events node `gone` held leases on, once per time it went (its last
    /// heartbeat): it stopped, so they run again here or on another node.
    async fn release_leases_of(&self, gone: &NodeRecord) {
        let mark = (gone.name.clone(), gone.seen_ms);
        if self
            .membership
            .released
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&mark)
        {
            return;
        }
        match self.store.release_node_leases(&gone.name).await {
            Ok(released) => {
                if released > 0 {
                    tracing::info!(
                        "node `{}` is gone (no heartbeat for {} s): {released} async events it was running run again",
                        gone.name,
                        GONE_AFTER.as_secs()
                    );
                    self.pipeline.wake();
                }
                self.membership
                    .released
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(mark);
            }
            Err(e) => tracing::warn!(
                "cannot release the leases of node `{}`, which is gone: {e}",
                gone.name
            ),
        }
    }

    /// This node's share of a cap the cluster holds together: the cap divided by the nodes
    /// up, rounded up (so the cluster may run up to one more per node than the cap).
    pub(crate) fn cluster_share(&self, cap: u32) -> u32 {
        let up = self.membership.up.load(Ordering::Relaxed).max(1) as u32;
        cap.div_ceil(up).max(1)
    }

    /// What this node runs now.
    fn load(&self) -> NodeLoad {
        let functions = self.functions.load();
        let mut load = NodeLoad {
            functions: functions.len() as u64,
            ..NodeLoad::default()
        };
        for version in functions.values().flat_map(|f| f.versions()) {
            let status = version.pool.status();
            load.in_flight += status.instances.busy as u64;
            load.warm_instances += (status.instances.busy + status.instances.idle) as u64;
        }
        load
    }

    /// Whether this node reaches its store: its last heartbeat was written within
    /// [`GONE_AFTER`]. A node that has not joined reports reachable.
    pub fn store_health(&self) -> StoreHealth {
        let last_ok = self.membership.last_ok_ms.load(Ordering::Relaxed);
        let error = self
            .membership
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let joined = self.membership.me.get().is_some();
        let fresh = now_ms() - last_ok <= GONE_AFTER.as_millis() as i64;
        StoreHealth {
            reachable: !joined || (fresh && error.is_none()),
            last_ok_ms: (last_ok > 0).then_some(last_ok),
            error,
        }
    }

    /// This node's name, once it joined.
    pub fn node_name(&self) -> Option<&str> {
        self.membership
            .me
            .get()
            .map(|(identity, _)| identity.name.as_str())
    }

    /// The nodes the store knows, seen within the last day, by name.
    pub async fn cluster(&self) -> Result<Vec<ClusterNode>, EngineError> {
        let now = now_ms();
        let since = now - LISTED_FOR.as_millis() as i64;
        let this = self.node_name();
        Ok(self
            .store
            .list_nodes(since)
            .await?
            .into_iter()
            .map(|record| ClusterNode {
                up: now - record.seen_ms <= GONE_AFTER.as_millis() as i64,
                this: Some(record.name.as_str()) == this,
                record,
            })
            .collect())
    }
}

/// Checks that `master` is the master key the store's other nodes seal with (the first
/// node to start records a check derived from its key; every later one compares), so a
/// node started with another `master.key` stops before it seals or opens anything.
pub async fn check_master_key(
    store: &dyn wisp_store::Store,
    master: &crate::MasterKey,
) -> Result<(), EngineError> {
    let check = hex::encode(master.derive("wisp store master-key check"));
    let held = store.key_check(&check).await?;
    if held == check {
        Ok(())
    } else {
        Err(EngineError::new(
            wisp_core::ErrorCode::Internal,
            "this node's master key is not the one the store was started with: every node sharing a store needs the same `master.key` (copy it from the data directory of a node that serves the store)",
        ))
    }
}
