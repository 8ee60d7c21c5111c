//! The JetStream [`Nodes`]: bucket `{prefix}_nodes`, key `node.NAME` holding a node's
//! record as JSON (each heartbeat a put), key `store.key_check` the master-key check
//! (created once: the first `create` wins, every later node reads it).

use super::{JetStreamStore, Written, backend, create, decode, encode, live_entries, live_entry};
use crate::{NodeRecord, Nodes, Result, StoreError, UnixMillis};
use async_trait::async_trait;

const KEY_CHECK: &str = "store.key_check";

#[async_trait]
impl Nodes for JetStreamStore {
    async fn heartbeat(&self, node: &NodeRecord) -> Result<()> {
        let what = format!("recording the heartbeat of node `{}`", node.name);
        if !super::is_key_token(&node.name) {
            return Err(backend(&what, "a node name is letters, digits, '-' and '_'"));
        }
        let value = encode(node, &what)?;
        self.nodes
            .put(format!("node.{}", node.name), value.into())
            .await
            .map_err(|e| backend(&what, e))?;
        Ok(())
    }

    async fn list_nodes(&self, seen_since: UnixMillis) -> Result<Vec<NodeRecord>> {
        let mut nodes = Vec::new();
        for entry in live_entries(&self.nodes, "node.", "listing the nodes").await? {
            let node: NodeRecord = decode(&entry)?;
            if node.seen_ms >= seen_since {
                nodes.push(node);
            }
        }
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(nodes)
    }

    async fn key_check(&self, check: &str) -> Result<String> {
        let what = "checking the store's master key";
        let value = encode(&check, what)?;
        if let Written::Done(_) = create(&self.nodes, KEY_CHECK, value, what).await? {
            return Ok(check.to_owned());
        }
        let entry = live_entry(&self.nodes, KEY_CHECK, what)
            .await?
            .ok_or_else(|| StoreError::Backend(format!("{what}: the check was deleted while it was read")))?;
        decode(&entry)
    }
}
