//! The JetStream [`ApiKeys`]: bucket `{prefix}_api_keys`, one entry per key (KV key: the
//! key's id, unique across namespaces), the rest of the record as JSON.
//!
//! Creating is a KV `create` (create-if-absent); revoking and touching read the entry and
//! write it back with a KV `update` expecting the revision read, retried when another
//! writer (a revoke, another node's touch) came between: the compare-and-set the trait
//! asks for. A touch batch is one such write per key, so a failure midway keeps the keys
//! touched before it (which the trait allows).

use super::{
    JetStreamStore, MAX_CAS_ATTEMPTS, Written, contended, decode, encode, is_key_token, live_entries,
    live_entry,
};
use crate::{ApiKeyRecord, ApiKeys, Result, StoreError, UnixMillis};
use async_nats::jetstream::kv;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use wisp_core::{Namespace, Role};

/// A key's entry, as stored; the id is the KV key.
#[derive(Serialize, Deserialize)]
struct Stored {
    namespace: String,
    role: String,
    name: Option<String>,
    secret_hash: Vec<u8>,
    sealed_secret: Vec<u8>,
    created_at: UnixMillis,
    created_by: Option<String>,
    expires_at: Option<UnixMillis>,
    revoked_at: Option<UnixMillis>,
    last_used_at: Option<UnixMillis>,
}

impl Stored {
    fn of(key: &ApiKeyRecord) -> Stored {
        Stored {
            namespace: key.namespace.as_str().to_owned(),
            role: key.role.as_str().to_owned(),
            name: key.name.clone(),
            secret_hash: key.secret_hash.clone(),
            sealed_secret: key.sealed_secret.clone(),
            created_at: key.created_at,
            created_by: key.created_by.clone(),
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
            last_used_at: key.last_used_at,
        }
    }

    fn into_record(self, id: String) -> Result<ApiKeyRecord> {
        let corrupt = |what: String| StoreError::Corrupt(format!("API key `{id}` has a bad {what}"));
        let namespace =
            Namespace::new(self.namespace.as_str()).map_err(|e| corrupt(format!("namespace: {e}")))?;
        let role = Role::parse(&self.role).map_err(|e| corrupt(format!("role: {e}")))?;
        Ok(ApiKeyRecord {
            id,
            namespace,
            role,
            name: self.name,
            secret_hash: self.secret_hash,
            sealed_secret: self.sealed_secret,
            created_at: self.created_at,
            created_by: self.created_by,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            last_used_at: self.last_used_at,
        })
    }
}

fn record(entry: &kv::Entry) -> Result<ApiKeyRecord> {
    decode::<Stored>(entry)?.into_record(entry.key.clone())
}

impl JetStreamStore {
    /// The live entry of key `id`; `None` for an id that cannot name a KV key (no key was
    /// ever created under it).
    async fn key_entry(&self, id: &str, what: &str) -> Result<Option<kv::Entry>> {
        if !is_key_token(id) {
            return Ok(None);
        }
        live_entry(&self.api_keys, id, what).await
    }

    /// Reads key `id`, lets `change` decide (`None`: leave it, and answer `false`), and
    /// writes the changed record expecting the revision read, again until no other writer
    /// came between. Returns whether it wrote.
    async fn change_key(
        &self,
        id: &str,
        what: &str,
        change: impl Fn(&mut Stored) -> bool + Send + Sync,
    ) -> Result<bool> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(entry) = self.key_entry(id, what).await? else {
                return Ok(false);
            };
            let mut stored: Stored = decode(&entry)?;
            if !change(&mut stored) {
                return Ok(false);
            }
            let value = encode(&stored, what)?;
            match super::update(&self.api_keys, id, value, entry.revision, what).await? {
                Written::Done(_) => return Ok(true),
                Written::Raced => continue,
            }
        }
        Err(contended(what))
    }
}

#[async_trait]
impl ApiKeys for JetStreamStore {
    async fn create_key(&self, key: &ApiKeyRecord) -> Result<bool> {
        let what = format!("creating API key `{}` of `{}`", key.id, key.namespace);
        if !is_key_token(&key.id) {
            return Err(StoreError::Backend(format!(
                "{what}: an id is letters, digits, '-', '_' and '='"
            )));
        }
        let value = encode(&Stored::of(key), &what)?;
        let written = super::create(&self.api_keys, &key.id, value, &what).await?;
        Ok(matches!(written, Written::Done(_)))
    }

    async fn key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        let what = format!("reading API key `{id}`");
        self.key_entry(id, &what)
            .await?
            .map(|entry| record(&entry))
            .transpose()
    }

    /// Reads every key's entry: one request per key. The engine calls this about once a
    /// second per node; a watch-fed copy would replace it when key counts grow.
    async fn list_keys(&self, namespace: Option<&Namespace>) -> Result<Vec<ApiKeyRecord>> {
        let what = match namespace {
            Some(ns) => format!("listing the API keys of `{ns}`"),
            None => "listing the API keys of every namespace".to_owned(),
        };
        let entries = live_entries(&self.api_keys, "", &what).await?;
        let mut keys = Vec::with_capacity(entries.len());
        for entry in &entries {
            let key = record(entry)?;
            if namespace.is_none_or(|ns| *ns == key.namespace) {
                keys.push(key);
            }
        }
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(keys)
    }

    async fn revoke_key(&self, id: &str, at: UnixMillis) -> Result<bool> {
        let what = format!("revoking API key `{id}`");
        self.change_key(id, &what, |stored| {
            if stored.revoked_at.is_some() {
                return false;
            }
            stored.revoked_at = Some(at);
            true
        })
        .await
    }

    async fn touch_keys(&self, used: &[(String, UnixMillis)]) -> Result<()> {
        // Of one id twice in a batch the later time wins; one write per key.
        let mut latest = BTreeMap::new();
        for (id, at) in used {
            let time = latest.entry(id.as_str()).or_insert(*at);
            *time = (*time).max(*at);
        }
        for (id, at) in latest {
            let what = format!("recording the use of API key `{id}`");
            self.change_key(id, &what, |stored| {
                if stored.last_used_at.is_some_and(|last| last >= at) {
                    return false;
                }
                stored.last_used_at = Some(at);
                true
            })
            .await?;
        }
        Ok(())
    }

    /// Deletes each of the namespace's keys with a delete marker expecting the revision
    /// listed; a key changed since (a touch) is read and deleted again.
    async fn forget_namespace_keys(&self, namespace: &Namespace) -> Result<()> {
        for key in self.list_keys(Some(namespace)).await? {
            let what = format!("forgetting API key `{}` of `{namespace}`", key.id);
            let mut deleted = false;
            for _ in 0..MAX_CAS_ATTEMPTS {
                let Some(entry) = self.key_entry(&key.id, &what).await? else {
                    deleted = true;
                    break;
                };
                // Deleted and made again in another namespace meanwhile: not ours.
                if record(&entry)?.namespace != *namespace {
                    deleted = true;
                    break;
                }
                if let Written::Done(_) =
                    super::delete(&self.api_keys, &key.id, entry.revision, &what).await?
                {
                    deleted = true;
                    break;
                }
            }
            if !deleted {
                return Err(contended(what));
            }
        }
        Ok(())
    }
}
