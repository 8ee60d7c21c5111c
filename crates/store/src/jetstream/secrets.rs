//! The JetStream [`Secrets`]: bucket `{prefix}_secrets`, one entry per secret (KV key
//! `NAMESPACE.NAME`; both are labels of lowercase letters, digits and '-', so neither
//! holds a dot), `{sealed, created_ms, updated_ms}` as JSON. The record's revision is the
//! entry's KV revision: the bucket stream's sequence, shared by every secret and only
//! growing, across deletes too, as the trait's contract asks.
//!
//! A put reads the secret's entry, checks its [`SecretCondition`] against that revision,
//! and writes with a KV `create` (no secret) or `update` expecting the revision read: the
//! server refuses the write if another came between, and the put reads and checks again.
//! So the condition holds, or fails, against a record the server had when it decided.

use super::{JetStreamStore, MAX_CAS_ATTEMPTS, Written, contended, decode, encode, live_entries, live_entry};
use crate::{Result, SecretCondition, SecretPut, SecretRecord, Secrets, StoreError, UnixMillis};
use async_nats::jetstream::kv;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use wisp_core::{Namespace, SecretName};

/// A secret's entry, as stored; namespace and name are the key, the revision the entry's.
#[derive(Serialize, Deserialize)]
struct Stored {
    sealed: Vec<u8>,
    created_ms: UnixMillis,
    updated_ms: UnixMillis,
}

fn key_of(namespace: &Namespace, name: &SecretName) -> String {
    format!("{namespace}.{name}")
}

fn record(entry: &kv::Entry) -> Result<SecretRecord> {
    let stored: Stored = decode(entry)?;
    let corrupt = |what: String| {
        StoreError::Corrupt(format!(
            "entry `{}` of JetStream bucket `{}` has a bad {what}",
            entry.key, entry.bucket
        ))
    };
    let (namespace, name) = entry
        .key
        .split_once('.')
        .ok_or_else(|| corrupt("key (no `NAMESPACE.NAME`)".to_owned()))?;
    Ok(SecretRecord {
        namespace: Namespace::new(namespace).map_err(|e| corrupt(format!("namespace: {e}")))?,
        name: SecretName::new(name).map_err(|e| corrupt(format!("name: {e}")))?,
        sealed: stored.sealed,
        revision: entry.revision,
        created_ms: stored.created_ms,
        updated_ms: stored.updated_ms,
    })
}

#[async_trait]
impl Secrets for JetStreamStore {
    async fn put_secret(
        &self,
        namespace: &Namespace,
        name: &SecretName,
        sealed: Vec<u8>,
        condition: SecretCondition,
        now: UnixMillis,
    ) -> Result<SecretPut> {
        let what = format!("setting secret `{namespace}/{name}`");
        let key = key_of(namespace, name);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = live_entry(&self.secrets, &key, &what).await?;
            let revision = current.as_ref().map(|e| e.revision);
            if !condition.holds(revision) {
                return Ok(SecretPut::ConditionFailed { current: revision });
            }
            let written = match &current {
                None => {
                    let value = encode(
                        &Stored {
                            sealed: sealed.clone(),
                            created_ms: now,
                            updated_ms: now,
                        },
                        &what,
                    )?;
                    match super::create(&self.secrets, &key, value, &what).await? {
                        Written::Done(revision) => SecretPut::Created { revision },
                        Written::Raced => continue,
                    }
                }
                Some(entry) => {
                    let before: Stored = decode(entry)?;
                    let value = encode(
                        &Stored {
                            sealed: sealed.clone(),
                            created_ms: before.created_ms,
                            updated_ms: now,
                        },
                        &what,
                    )?;
                    match super::update(&self.secrets, &key, value, entry.revision, &what).await? {
                        Written::Done(revision) => SecretPut::Updated { revision },
                        Written::Raced => continue,
                    }
                }
            };
            return Ok(written);
        }
        Err(contended(what))
    }

    async fn get_secret(&self, namespace: &Namespace, name: &SecretName) -> Result<Option<SecretRecord>> {
        let what = format!("reading secret `{namespace}/{name}`");
        live_entry(&self.secrets, &key_of(namespace, name), &what)
            .await?
            .map(|entry| record(&entry))
            .transpose()
    }

    async fn list_secrets(&self, namespace: Option<&Namespace>) -> Result<Vec<SecretRecord>> {
        let (what, prefix) = match namespace {
            Some(ns) => (format!("listing the secrets of `{ns}`"), format!("{ns}.")),
            None => ("listing the secrets of every namespace".to_owned(), String::new()),
        };
        let entries = live_entries(&self.secrets, &prefix, &what).await?;
        let mut records = entries.iter().map(record).collect::<Result<Vec<_>>>()?;
        records.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(records)
    }

    /// A delete marker expecting the revision read, so it answers `true` only when it
    /// deleted a live secret.
    async fn delete_secret(&self, namespace: &Namespace, name: &SecretName) -> Result<bool> {
        let what = format!("deleting secret `{namespace}/{name}`");
        let key = key_of(namespace, name);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(entry) = live_entry(&self.secrets, &key, &what).await? else {
                return Ok(false);
            };
            match super::delete(&self.secrets, &key, entry.revision, &what).await? {
                Written::Done(_) => return Ok(true),
                Written::Raced => continue,
            }
        }
        Err(contended(what))
    }
}
