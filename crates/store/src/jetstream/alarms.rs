//! The JetStream [`Alarms`]: bucket `{prefix}_alarms`, one entry per alarm (KV key
//! `NAMESPACE.NAME`, both labels without dots), the whole [`AlarmRecord`] as JSON; its
//! `revision` is the entry's KV revision (what is stored in the field is ignored).
//!
//! Every change is one entry written whole, as the trait's contract has it:
//! [`Alarms::set_alarm_state`] writes with a KV `update` expecting the revision the
//! evaluator read (refused: `None`); [`Alarms::put_alarm`] and
//! [`Alarms::mark_alarm_notified`] read, change and write on the revision they read,
//! again when another writer came between, so neither undoes a concurrent change.

use super::{JetStreamStore, MAX_CAS_ATTEMPTS, Written, contended, decode, encode, live_entries, live_entry};
use crate::{AlarmPut, AlarmRecord, Alarms, Result, StateChange, UnixMillis};
use async_nats::jetstream::kv;
use async_trait::async_trait;
use wisp_core::{AlarmName, AlarmSpec, Namespace};

fn key_of(namespace: &Namespace, name: &AlarmName) -> String {
    format!("{namespace}.{name}")
}

fn record(entry: &kv::Entry) -> Result<AlarmRecord> {
    let mut record: AlarmRecord = decode(entry)?;
    record.revision = entry.revision;
    Ok(record)
}

impl JetStreamStore {
    /// Writes `record` over the entry of revision `revision` (`None`: over no entry, a
    /// create); returns it with its new revision, or `None` when another write came first.
    async fn save_alarm(
        &self,
        mut record: AlarmRecord,
        revision: Option<u64>,
        what: &str,
    ) -> Result<Option<AlarmRecord>> {
        let key = key_of(&record.namespace, &record.name);
        let value = encode(&record, what)?;
        let written = match revision {
            Some(revision) => super::update(&self.alarms, &key, value, revision, what).await?,
            None => super::create(&self.alarms, &key, value, what).await?,
        };
        match written {
            Written::Done(revision) => {
                record.revision = revision;
                Ok(Some(record))
            }
            Written::Raced => Ok(None),
        }
    }
}

#[async_trait]
impl Alarms for JetStreamStore {
    async fn put_alarm(
        &self,
        namespace: &Namespace,
        name: &AlarmName,
        spec: &AlarmSpec,
        now: UnixMillis,
    ) -> Result<AlarmPut> {
        let what = format!("putting alarm `{namespace}/{name}`");
        let key = key_of(namespace, name);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let put = match live_entry(&self.alarms, &key, &what).await? {
                Some(entry) => {
                    let mut current = record(&entry)?;
                    if current.spec == *spec {
                        return Ok(AlarmPut::Unchanged(current));
                    }
                    current.spec = spec.clone();
                    current.updated_ms = now;
                    self.save_alarm(current, Some(entry.revision), &what)
                        .await?
                        .map(AlarmPut::Updated)
                }
                None => {
                    let new = AlarmRecord::new(namespace.clone(), name.clone(), spec.clone(), now);
                    self.save_alarm(new, None, &what).await?.map(AlarmPut::Created)
                }
            };
            if let Some(put) = put {
                return Ok(put);
            }
        }
        Err(contended(what))
    }

    async fn alarm(&self, namespace: &Namespace, name: &AlarmName) -> Result<Option<AlarmRecord>> {
        let what = format!("reading alarm `{namespace}/{name}`");
        live_entry(&self.alarms, &key_of(namespace, name), &what)
            .await?
            .map(|entry| record(&entry))
            .transpose()
    }

    async fn list_alarms(&self, namespace: Option<&Namespace>) -> Result<Vec<AlarmRecord>> {
        let prefix = namespace.map(|ns| format!("{ns}.")).unwrap_or_default();
        let entries = live_entries(&self.alarms, &prefix, "listing alarms").await?;
        let mut records = entries.iter().map(record).collect::<Result<Vec<_>>>()?;
        records.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(records)
    }

    /// One KV `update` expecting `revision`: no retry, a refusal is the answer.
    async fn set_alarm_state(
        &self,
        namespace: &Namespace,
        name: &AlarmName,
        revision: u64,
        change: &StateChange,
    ) -> Result<Option<AlarmRecord>> {
        let what = format!("changing the state of alarm `{namespace}/{name}`");
        let Some(entry) = live_entry(&self.alarms, &key_of(namespace, name), &what).await? else {
            return Ok(None);
        };
        if entry.revision != revision {
            return Ok(None);
        }
        let mut current = record(&entry)?;
        current.apply(change.clone());
        self.save_alarm(current, Some(revision), &what).await
    }

    /// Writes only when the mark or the errors change, so marking again does not move
    /// the revision an evaluator may be about to compare.
    async fn mark_alarm_notified(
        &self,
        namespace: &Namespace,
        name: &AlarmName,
        seq: u64,
        errors: &[String],
    ) -> Result<bool> {
        let what = format!("marking transition {seq} of alarm `{namespace}/{name}` notified");
        let key = key_of(namespace, name);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(entry) = live_entry(&self.alarms, &key, &what).await? else {
                return Ok(false);
            };
            let mut current = record(&entry)?;
            if seq > current.transitions {
                return Ok(false);
            }
            if !current.mark_notified(seq, errors.to_vec()) {
                return Ok(true);
            }
            if self
                .save_alarm(current, Some(entry.revision), &what)
                .await?
                .is_some()
            {
                return Ok(true);
            }
        }
        Err(contended(what))
    }

    async fn delete_alarm(&self, namespace: &Namespace, name: &AlarmName) -> Result<bool> {
        let what = format!("deleting alarm `{namespace}/{name}`");
        let key = key_of(namespace, name);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some(entry) = live_entry(&self.alarms, &key, &what).await? else {
                return Ok(false);
            };
            if let Written::Done(_) = super::delete(&self.alarms, &key, entry.revision, &what).await? {
                return Ok(true);
            }
        }
        Err(contended(what))
    }
}
