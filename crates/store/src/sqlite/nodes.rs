//! The SQLite [`Nodes`]: table `nodes` (migration 18), one row per node name with its
//! record as JSON; the key check is row `key_check` of `store_keys`.

use super::{OpError, SqliteStore, StoreError};
use crate::{NodeRecord, Nodes, Result, UnixMillis};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

#[async_trait]
impl Nodes for SqliteStore {
    async fn heartbeat(&self, node: &NodeRecord) -> Result<()> {
        let what = format!("recording the heartbeat of node `{}`", node.name);
        let record = serde_json::to_string(node).map_err(|e| StoreError::Backend(format!("{what}: {e}")))?;
        let (name, seen) = (node.name.clone(), node.seen_ms);
        self.write(what, move |conn| {
            conn.prepare_cached(
                "INSERT INTO nodes (name, record, seen_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET record = excluded.record, seen_ms = excluded.seen_ms",
            )?
            .execute(params![name, record, seen])?;
            Ok(())
        })
        .await
    }

    async fn list_nodes(&self, seen_since: UnixMillis) -> Result<Vec<NodeRecord>> {
        self.read("listing the nodes".to_owned(), move |conn| {
            let mut statement =
                conn.prepare_cached("SELECT name, record FROM nodes WHERE seen_ms >= ?1 ORDER BY name")?;
            let rows = statement.query_map([seen_since], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?;
            let mut nodes = Vec::new();
            for row in rows {
                let (name, record) = row?;
                let node = serde_json::from_str(&record).map_err(|e| {
                    OpError::Store(StoreError::Corrupt(format!("the record of node `{name}`: {e}")))
                })?;
                nodes.push(node);
            }
            Ok(nodes)
        })
        .await
    }

    async fn key_check(&self, check: &str) -> Result<String> {
        let check = check.to_owned();
        self.write("checking the store's master key".to_owned(), move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let stored: Option<String> = tx
                .prepare_cached("SELECT value FROM store_keys WHERE name = 'key_check'")?
                .query_row([], |row| row.get(0))
                .optional()?;
            let held = match stored {
                Some(stored) => stored,
                None => {
                    tx.prepare_cached("INSERT INTO store_keys (name, value) VALUES ('key_check', ?1)")?
                        .execute([&check])?;
                    check
                }
            };
            tx.commit()?;
            Ok(held)
        })
        .await
    }
}
