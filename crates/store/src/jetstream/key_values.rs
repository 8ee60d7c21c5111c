//! The JetStream [`KeyValues`]: two buckets.
//!
//! - `{prefix}_kv_stores`: one entry per store (KV key `NAMESPACE.NAME`, both labels
//!   without dots), `{created_ms}` as JSON. The entry's revision when the store was made
//!   is the store's **generation**: a store deleted and made again gets a new one.
//! - `{prefix}_kv_entries`: one entry per key of every store, KV key
//!   `NAMESPACE.NAME.GENERATION.k.HH.HH…`, the user's key as one lowercase hex token per
//!   byte (user keys are any UTF-8; a KV key is tokens of `[-_A-Za-z0-9=]`). A token per
//!   byte lets a subject filter select a prefix of bytes: the keys starting with `ab` are
//!   `….k.61.62` and `….k.61.62.>`. The value is an envelope: one byte `0` (no expiry),
//!   or `1` and the expiry as 8 bytes of a big-endian i64, then the user's value.
//!
//! An entry's version is its KV revision (the entries bucket stream's sequence), so it
//! grows with every write to any store. Every conditional write is the server's
//! compare-and-set: a write reads the key's entry (live or expired), checks its
//! condition against the live version, and writes with KV `create` (no entry) or
//! `update` / `delete_expect_revision` on the revision it read; refused, it reads and
//! checks again. An expired entry is absent by the caller's clock and is written over
//! on its revision like any other.
//!
//! [`KeyValues::kv_list`] reads the last message of every key under the prefix (an
//! ordered consumer, values included, since the expiry is in the value), then sorts the
//! keys and keeps a page: a page costs every key under the prefix. Deleting a store
//! deletes its record, then purges its generation's subjects in one stream request.
//! [`KeyValues::sweep_expired`] scans every entry of every store.

use super::{JetStreamStore, MAX_CAS_ATTEMPTS, Written, backend, contended, live_entries, live_entry};
use crate::{
    KeyValues, KvCondition, KvDeleted, KvEntry, KvIncremented, KvPage, KvSet, KvSetMany, KvStoreRecord,
    KvWrite, Result, StoreError, UnixMillis,
};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use wisp_core::{KvStoreName, Namespace};

#[derive(Serialize, Deserialize)]
struct StoreValue {
    created_ms: UnixMillis,
}

fn store_key(namespace: &Namespace, name: &KvStoreName) -> String {
    format!("{namespace}.{name}")
}

/// The KV key prefix of a store generation's entries, without the trailing dot.
fn generation_key(namespace: &Namespace, name: &KvStoreName, generation: u64) -> String {
    format!("{namespace}.{name}.{generation}.k")
}

/// `base` followed by a hex token per byte of `key`.
fn encode_key(base: &str, key: &str) -> String {
    let mut out = String::with_capacity(base.len() + key.len() * 3);
    out.push_str(base);
    for byte in key.bytes() {
        let _ = write!(out, ".{byte:02x}");
    }
    out
}

/// The user's key from the tokens after the generation's `k`.
fn decode_key(tokens: &str) -> Result<String> {
    let mut bytes = Vec::new();
    for token in tokens.split('.').filter(|t| !t.is_empty()) {
        let byte = u8::from_str_radix(token, 16)
            .map_err(|_| StoreError::Corrupt(format!("a key-value key token `{token}` is not hex")))?;
        bytes.push(byte);
    }
    String::from_utf8(bytes).map_err(|_| StoreError::Corrupt("a key-value key is not UTF-8".into()))
}

fn envelope(value: &[u8], expires_ms: Option<UnixMillis>) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 9);
    match expires_ms {
        None => out.push(0),
        Some(at) => {
            out.push(1);
            out.extend_from_slice(&at.to_be_bytes());
        }
    }
    out.extend_from_slice(value);
    out
}

/// The value and expiry an envelope holds.
fn open_envelope(bytes: &[u8], what: impl std::fmt::Display) -> Result<(Vec<u8>, Option<UnixMillis>)> {
    match bytes.split_first() {
        Some((0, rest)) => Ok((rest.to_vec(), None)),
        Some((1, rest)) if rest.len() >= 8 => {
            let (at, value) = rest.split_at(8);
            let mut raw = [0; 8];
            raw.copy_from_slice(at);
            Ok((value.to_vec(), Some(UnixMillis::from_be_bytes(raw))))
        }
        _ => Err(StoreError::Corrupt(format!("{what}: not a key-value envelope"))),
    }
}

fn live_at(expires_ms: Option<UnixMillis>, now: UnixMillis) -> bool {
    expires_ms.is_none_or(|at| at > now)
}

/// A key's entry as read: its revision, and the live entry at `now` if it has not
/// expired.
struct Current {
    revision: Option<u64>,
    live: Option<KvEntry>,
}

impl Current {
    fn version(&self) -> Option<u64> {
        self.live.as_ref().map(|e| e.version)
    }
}

impl JetStreamStore {
    /// The store's generation; `None` when there is no such store.
    async fn kv_generation(&self, namespace: &Namespace, name: &KvStoreName) -> Result<Option<String>> {
        let what = format!("reading key-value store `{namespace}/{name}`");
        Ok(live_entry(&self.kv_stores, &store_key(namespace, name), &what)
            .await?
            .map(|entry| generation_key(namespace, name, entry.revision)))
    }

    async fn kv_current(&self, subject: &str, key: &str, now: UnixMillis, what: &str) -> Result<Current> {
        let Some(entry) = live_entry(&self.kv_entries, subject, what).await? else {
            return Ok(Current {
                revision: None,
                live: None,
            });
        };
        let (value, expires_ms) = open_envelope(&entry.value, what)?;
        let live = live_at(expires_ms, now).then(|| KvEntry {
            key: key.to_owned(),
            value,
            version: entry.revision,
            expires_ms,
        });
        Ok(Current {
            revision: Some(entry.revision),
            live,
        })
    }

    /// Writes `value` over the entry of `revision` (`None`: over no entry).
    async fn kv_write(
        &self,
        subject: &str,
        value: Vec<u8>,
        revision: Option<u64>,
        what: &str,
    ) -> Result<Written> {
        match revision {
            Some(revision) => super::update(&self.kv_entries, subject, value, revision, what).await,
            None => super::create(&self.kv_entries, subject, value, what).await,
        }
    }

    /// [`KeyValues::kv_set`] in the store generation `base`.
    async fn kv_set_in(&self, base: &str, write: &KvWrite, now: UnixMillis, what: &str) -> Result<KvSet> {
        let subject = encode_key(base, &write.key);
        let value = envelope(&write.value, write.ttl_expires_ms);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = self.kv_current(&subject, &write.key, now, what).await?;
            if !write.condition.holds(current.version()) {
                return Ok(KvSet::ConditionFailed {
                    current: current.version(),
                });
            }
            if let Written::Done(version) = self
                .kv_write(&subject, value.clone(), current.revision, what)
                .await?
            {
                return Ok(KvSet::Stored { version });
            }
        }
        Err(contended(what))
    }

    /// Deletes a key of the store generation `base` if `condition` holds.
    async fn kv_delete_in(
        &self,
        base: &str,
        key: &str,
        condition: KvCondition,
        now: UnixMillis,
        what: &str,
    ) -> Result<KvDeleted> {
        let subject = encode_key(base, key);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = self.kv_current(&subject, key, now, what).await?;
            let Some(revision) = current.revision else {
                return Ok(KvDeleted::NotFound);
            };
            let answer = match current.version() {
                // Expired: removed now, as it would have been by the sweep.
                None => KvDeleted::NotFound,
                Some(version) if !condition.holds(Some(version)) => {
                    return Ok(KvDeleted::ConditionFailed { current: version });
                }
                Some(_) => KvDeleted::Deleted,
            };
            if let Written::Done(_) = super::delete(&self.kv_entries, &subject, revision, what).await? {
                return Ok(answer);
            }
        }
        Err(contended(what))
    }

    /// The last message of every key of `filters` in the entries bucket, as (KV key,
    /// revision, envelope), skipping delete markers.
    async fn kv_scan(&self, filters: Vec<String>, what: &str) -> Result<Vec<(String, u64, Vec<u8>)>> {
        super::scan_last(&self.kv_entries, filters, what).await
    }
}

#[async_trait]
impl KeyValues for JetStreamStore {
    async fn create_kv_store(&self, record: &KvStoreRecord) -> Result<bool> {
        let what = format!("creating key-value store `{}/{}`", record.namespace, record.name);
        let value = super::encode(
            &StoreValue {
                created_ms: record.created_ms,
            },
            &what,
        )?;
        let key = store_key(&record.namespace, &record.name);
        Ok(matches!(
            super::create(&self.kv_stores, &key, value, &what).await?,
            Written::Done(_)
        ))
    }

    async fn get_kv_store(&self, namespace: &Namespace, name: &KvStoreName) -> Result<Option<KvStoreRecord>> {
        let what = format!("reading key-value store `{namespace}/{name}`");
        let Some(entry) = live_entry(&self.kv_stores, &store_key(namespace, name), &what).await? else {
            return Ok(None);
        };
        let value: StoreValue = super::decode(&entry)?;
        Ok(Some(KvStoreRecord {
            namespace: namespace.clone(),
            name: name.clone(),
            created_ms: value.created_ms,
        }))
    }

    async fn list_kv_stores(&self, namespace: Option<&Namespace>) -> Result<Vec<KvStoreRecord>> {
        let prefix = namespace.map(|ns| format!("{ns}.")).unwrap_or_default();
        let entries = live_entries(&self.kv_stores, &prefix, "listing key-value stores").await?;
        let mut records = Vec::with_capacity(entries.len());
        for entry in &entries {
            let value: StoreValue = super::decode(entry)?;
            let (ns, name) = entry.key.split_once('.').ok_or_else(|| {
                StoreError::Corrupt(format!("key-value store key `{}` has no dot", entry.key))
            })?;
            records.push(KvStoreRecord {
                namespace: Namespace::new(ns).map_err(|e| StoreError::Corrupt(format!("namespace: {e}")))?,
                name: KvStoreName::new(name)
                    .map_err(|e| StoreError::Corrupt(format!("key-value store: {e}")))?,
                created_ms: value.created_ms,
            });
        }
        records.sort_by(|a, b| {
            (a.namespace.as_str(), a.name.as_str()).cmp(&(b.namespace.as_str(), b.name.as_str()))
        });
        Ok(records)
    }

    async fn delete_kv_store(&self, namespace: &Namespace, name: &KvStoreName) -> Result<bool> {
        let what = format!("deleting key-value store `{namespace}/{name}`");
        let key = store_key(namespace, name);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(entry) = live_entry(&self.kv_stores, &key, &what).await? else {
                return Ok(false);
            };
            if let Written::Done(_) = super::delete(&self.kv_stores, &key, entry.revision, &what).await? {
                let generation = generation_key(namespace, name, entry.revision);
                self.kv_entries
                    .stream
                    .purge()
                    .filter(format!("{}{generation}.>", self.kv_entries.prefix))
                    .await
                    .map_err(|e| backend(&what, e))?;
                return Ok(true);
            }
        }
        Err(contended(what))
    }

    async fn kv_get(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        key: &str,
        now: UnixMillis,
    ) -> Result<Option<KvEntry>> {
        let what = format!("reading key `{key}` of key-value store `{namespace}/{store}`");
        let Some(base) = self.kv_generation(namespace, store).await? else {
            return Ok(None);
        };
        Ok(self
            .kv_current(&encode_key(&base, key), key, now, &what)
            .await?
            .live)
    }

    async fn kv_get_many(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        keys: &[String],
        now: UnixMillis,
    ) -> Result<Vec<Option<KvEntry>>> {
        let what = format!(
            "reading {} keys of key-value store `{namespace}/{store}`",
            keys.len()
        );
        let Some(base) = self.kv_generation(namespace, store).await? else {
            return Ok(vec![None; keys.len()]);
        };
        let mut entries = Vec::with_capacity(keys.len());
        for key in keys {
            entries.push(
                self.kv_current(&encode_key(&base, key), key, now, &what)
                    .await?
                    .live,
            );
        }
        Ok(entries)
    }

    async fn kv_set(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        write: KvWrite,
        now: UnixMillis,
    ) -> Result<KvSet> {
        let what = format!(
            "writing key `{}` of key-value store `{namespace}/{store}`",
            write.key
        );
        let Some(base) = self.kv_generation(namespace, store).await? else {
            return Ok(KvSet::NoStore);
        };
        self.kv_set_in(&base, &write, now, &what).await
    }

    async fn kv_set_many(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        writes: Vec<KvWrite>,
        now: UnixMillis,
    ) -> Result<KvSetMany> {
        let what = format!(
            "writing {} keys of key-value store `{namespace}/{store}`",
            writes.len()
        );
        let Some(base) = self.kv_generation(namespace, store).await? else {
            return Ok(KvSetMany::NoStore);
        };
        let mut versions = Vec::with_capacity(writes.len());
        for (index, write) in writes.iter().enumerate() {
            match self.kv_set_in(&base, write, now, &what).await? {
                KvSet::Stored { version } => versions.push(version),
                KvSet::ConditionFailed { current } => {
                    return Ok(KvSetMany::ConditionFailed { index, current });
                }
                KvSet::NoStore => return Ok(KvSetMany::NoStore),
            }
        }
        Ok(KvSetMany::Stored { versions })
    }

    async fn kv_delete(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        key: &str,
        condition: KvCondition,
        now: UnixMillis,
    ) -> Result<KvDeleted> {
        let what = format!("deleting key `{key}` of key-value store `{namespace}/{store}`");
        let Some(base) = self.kv_generation(namespace, store).await? else {
            return Ok(KvDeleted::NoStore);
        };
        self.kv_delete_in(&base, key, condition, now, &what).await
    }

    async fn kv_delete_many(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        keys: &[String],
        now: UnixMillis,
    ) -> Result<Option<u64>> {
        let what = format!(
            "deleting {} keys of key-value store `{namespace}/{store}`",
            keys.len()
        );
        let Some(base) = self.kv_generation(namespace, store).await? else {
            return Ok(None);
        };
        let mut deleted = 0;
        for key in keys {
            if self
                .kv_delete_in(&base, key, KvCondition::Any, now, &what)
                .await?
                == KvDeleted::Deleted
            {
                deleted += 1;
            }
        }
        Ok(Some(deleted))
    }

    async fn kv_increment(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        key: &str,
        delta: i64,
        now: UnixMillis,
    ) -> Result<KvIncremented> {
        let what = format!("incrementing key `{key}` of key-value store `{namespace}/{store}`");
        let Some(base) = self.kv_generation(namespace, store).await? else {
            return Ok(KvIncremented::NoStore);
        };
        let subject = encode_key(&base, key);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let current = self.kv_current(&subject, key, now, &what).await?;
            let (old, expires_ms) = match &current.live {
                None => (0, None),
                Some(e) => match std::str::from_utf8(&e.value)
                    .ok()
                    .and_then(|t| t.parse::<i64>().ok())
                {
                    Some(n) => (n, e.expires_ms),
                    None => return Ok(KvIncremented::NotANumber),
                },
            };
            let Some(value) = old.checked_add(delta) else {
                return Ok(KvIncremented::Overflow);
            };
            let bytes = envelope(value.to_string().as_bytes(), expires_ms);
            if let Written::Done(version) = self.kv_write(&subject, bytes, current.revision, &what).await? {
                return Ok(KvIncremented::Incremented { value, version });
            }
        }
        Err(contended(what))
    }

    async fn kv_list(
        &self,
        namespace: &Namespace,
        store: &KvStoreName,
        prefix: &str,
        after: Option<String>,
        limit: u32,
        now: UnixMillis,
    ) -> Result<KvPage> {
        let what = format!("listing key-value store `{namespace}/{store}`");
        let Some(base) = self.kv_generation(namespace, store).await? else {
            return Ok(KvPage::default());
        };
        let under = encode_key(&base, prefix);
        let found = self
            .kv_scan(vec![under.clone(), format!("{under}.>")], &what)
            .await?;
        let mut keys = Vec::new();
        for (subject, _, bytes) in found {
            let (_, expires_ms) = open_envelope(&bytes, &what)?;
            if !live_at(expires_ms, now) {
                continue;
            }
            let key = decode_key(subject.strip_prefix(base.as_str()).unwrap_or_default())?;
            if after
                .as_ref()
                .is_none_or(|after| key.as_bytes() > after.as_bytes())
            {
                keys.push(key);
            }
        }
        keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut next = None;
        if keys.len() > limit as usize {
            keys.truncate(limit as usize);
            next = keys.last().cloned();
        }
        Ok(KvPage { keys, next })
    }

    async fn sweep_expired(&self, now: UnixMillis, limit: u32) -> Result<u64> {
        let what = "sweeping expired key-value entries";
        let found = self.kv_scan(vec![">".to_owned()], what).await?;
        let mut swept = 0;
        for (subject, revision, bytes) in found {
            if swept >= u64::from(limit) {
                break;
            }
            let (_, expires_ms) = open_envelope(&bytes, what)?;
            if live_at(expires_ms, now) {
                continue;
            }
            // Refused: written again since the scan, so not expired any more.
            if let Written::Done(_) = super::delete(&self.kv_entries, &subject, revision, what).await? {
                swept += 1;
            }
        }
        Ok(swept)
    }
}
