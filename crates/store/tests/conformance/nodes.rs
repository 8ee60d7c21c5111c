//! Checks of nodes: a heartbeat replaces the node's record, listing is by name and leaves
//! out nodes not seen since the time asked, and the master-key check is written once.

use super::*;
use wisp_store::{NodeLoad, NodeRecord, Nodes};

fn node(name: &str, seen_ms: i64, in_flight: u64) -> NodeRecord {
    NodeRecord {
        name: name.to_owned(),
        url: format!("http://{name}.local:8080/"),
        version: "0.1.0".to_owned(),
        started_ms: T,
        seen_ms,
        load: NodeLoad {
            in_flight,
            functions: 3,
            warm_instances: 2,
        },
    }
}

pub async fn nodes_heartbeats_replace_and_list_by_name(store: &dyn Nodes) -> TestResult {
    assert_eq!(store.list_nodes(0).await?, vec![]);
    store.heartbeat(&node("node-b", T + 1_000, 1)).await?;
    store.heartbeat(&node("node-a", T + 1_000, 0)).await?;
    store.heartbeat(&node("node-b", T + 3_000, 7)).await?;
    assert_eq!(
        store.list_nodes(0).await?,
        vec![node("node-a", T + 1_000, 0), node("node-b", T + 3_000, 7)]
    );
    // A node not seen since the time asked is left out (it stopped, or lost the store).
    assert_eq!(
        store.list_nodes(T + 2_000).await?,
        vec![node("node-b", T + 3_000, 7)]
    );
    assert_eq!(store.list_nodes(T + 3_000).await?.len(), 1);
    assert_eq!(store.list_nodes(T + 3_001).await?, vec![]);
    Ok(())
}

pub async fn nodes_key_check_is_written_once(store: &dyn Nodes) -> TestResult {
    assert_eq!(store.key_check("first").await?, "first");
    // Every later node reads the first one's check, whatever its own.
    assert_eq!(store.key_check("second").await?, "first");
    assert_eq!(store.key_check("first").await?, "first");
    Ok(())
}
