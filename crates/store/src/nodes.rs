//! The nodes serving a store ([`Nodes`]): each node's heartbeat with what it says about
//! itself ([`NodeRecord`]), and the check that every node seals with the same master key.

use crate::{Result, UnixMillis};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A node as its last heartbeat described it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node's name (letters, digits, `-` and `_`), kept across its restarts.
    pub name: String,
    /// Where it serves its API (`http://ADDR/`).
    pub url: String,
    /// The Wisp version it runs.
    pub version: String,
    /// When it started.
    pub started_ms: UnixMillis,
    /// When it last beat.
    pub seen_ms: UnixMillis,
    /// How busy it was then.
    pub load: NodeLoad,
}

/// How busy a node is, as its heartbeat says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// Invocations running (sync and async).
    pub in_flight: u64,
    /// Functions it serves.
    pub functions: u64,
    /// Instances held warm.
    pub warm_instances: u64,
}

/// The nodes serving a store.
///
/// Each node writes its record about every two seconds; the API lists them for
/// `wisp cluster status`. A node that stopped keeps its last record (its `seen_ms` says
/// when), and a node that starts again under the same name replaces it. With SQLite the
/// one node is the only one (its data directory is locked); with JetStream every node
/// sharing the store is listed.
#[async_trait]
pub trait Nodes: Send + Sync + 'static {
    /// Writes the node's record (`node.name`'s), replacing the one before.
    async fn heartbeat(&self, node: &NodeRecord) -> Result<()>;

    /// Every node seen at or after `seen_since`, by name.
    async fn list_nodes(&self, seen_since: UnixMillis) -> Result<Vec<NodeRecord>>;

    /// The store's master-key check: stores `check` when the store holds none yet (the
    /// first node's start) and returns what the store holds then, so a node whose master
    /// key differs from the others' finds out before it seals anything. Written once, by
    /// compare-and-set: two nodes starting together agree on one.
    async fn key_check(&self, check: &str) -> Result<String>;
}
