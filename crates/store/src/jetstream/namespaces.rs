//! The JetStream [`Namespaces`]: bucket `{prefix}_namespaces`, one entry per namespace
//! (key: its name), `{settings, created_at}` as JSON. The record's revision is the entry's
//! KV revision, so it grows with every write and never comes back after a delete.

use super::{JetStreamStore, MAX_CAS_ATTEMPTS, Written, contended, decode, encode, live_entries, live_entry};
use crate::{NamespaceRecord, NamespaceSettings, Namespaces, Result, StoreError, UnixMillis};
use async_nats::jetstream::kv;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use wisp_core::Namespace;

/// A namespace's entry, as stored; the name is the key and the revision the entry's.
#[derive(Serialize, Deserialize)]
struct Stored {
    settings: NamespaceSettings,
    created_at: UnixMillis,
}

#[async_trait]
impl Namespaces for JetStreamStore {
    /// A KV `create`: exactly one of two racing creates gets `true`.
    async fn create_namespace(
        &self,
        name: &Namespace,
        settings: &NamespaceSettings,
        created_at: UnixMillis,
    ) -> Result<bool> {
        let what = format!("creating namespace `{name}`");
        let value = encode(
            &Stored {
                settings: settings.clone(),
                created_at,
            },
            &what,
        )?;
        let written = super::create(&self.namespaces, name.as_str(), value, &what).await?;
        Ok(matches!(written, Written::Done(_)))
    }

    async fn namespace(&self, name: &Namespace) -> Result<Option<NamespaceRecord>> {
        let what = format!("reading namespace `{name}`");
        live_entry(&self.namespaces, name.as_str(), &what)
            .await?
            .map(|entry| record(&entry))
            .transpose()
    }

    async fn list_namespaces(&self) -> Result<Vec<NamespaceRecord>> {
        let entries = live_entries(&self.namespaces, "", "listing the namespaces").await?;
        let mut records = entries.iter().map(record).collect::<Result<Vec<_>>>()?;
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    /// Reads the entry (for `created_at`), and writes the new settings with a KV `update`
    /// expecting `revision`: the server refuses it if anything was written since, so this
    /// is one compare-and-set with no retry.
    async fn update_namespace(
        &self,
        name: &Namespace,
        settings: &NamespaceSettings,
        revision: u64,
    ) -> Result<Option<NamespaceRecord>> {
        let what = format!("updating namespace `{name}`");
        let Some(entry) = live_entry(&self.namespaces, name.as_str(), &what).await? else {
            return Ok(None);
        };
        if entry.revision != revision {
            return Ok(None);
        }
        let current: Stored = decode(&entry)?;
        let value = encode(
            &Stored {
                settings: settings.clone(),
                created_at: current.created_at,
            },
            &what,
        )?;
        match super::update(&self.namespaces, name.as_str(), value, revision, &what).await? {
            Written::Done(revision) => Ok(Some(NamespaceRecord {
                name: name.clone(),
                settings: settings.clone(),
                created_at: current.created_at,
                revision,
            })),
            Written::Raced => Ok(None),
        }
    }

    /// Puts a delete marker, expecting the revision it read, so it answers `true` only
    /// when it deleted a live record.
    async fn delete_namespace(&self, name: &Namespace) -> Result<bool> {
        let what = format!("deleting namespace `{name}`");
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(entry) = live_entry(&self.namespaces, name.as_str(), &what).await? else {
                return Ok(false);
            };
            match super::delete(&self.namespaces, name.as_str(), entry.revision, &what).await? {
                Written::Done(_) => return Ok(true),
                Written::Raced => continue,
            }
        }
        Err(contended(what))
    }
}

fn record(entry: &kv::Entry) -> Result<NamespaceRecord> {
    let stored: Stored = decode(entry)?;
    let name = Namespace::new(entry.key.as_str()).map_err(|e| {
        StoreError::Corrupt(format!(
            "JetStream bucket `{}` holds a bad namespace name: {e}",
            entry.bucket
        ))
    })?;
    Ok(NamespaceRecord {
        name,
        settings: stored.settings,
        created_at: stored.created_at,
        revision: entry.revision,
    })
}
