//! The JetStream [`Objects`]: bucket `{prefix}_objects` (atomic batch publish allowed on
//! its stream, as the registry's) holds every record:
//!
//! - `b.NAMESPACE.BUCKET`: a bucket, the whole [`BucketRecord`] with its object and byte
//!   counts (the bucket name's dots written as `=`, which no bucket name holds).
//! - `n.NAMESPACE`: the bytes the namespace's buckets hold together (`{bytes}`), what
//!   [`Objects::storage_used`] reads and a put's namespace limit is checked against.
//! - `o.NAMESPACE.BUCKET.HH.HH…`: an object's [`ObjectRecord`], its key as one lowercase
//!   hex token per byte (as the key-value entries' keys: any UTF-8, and a subject filter
//!   selects a byte prefix: the keys starting with `ab` are `….61.62` and `….61.62.>`).
//! - `u.ID`: a multipart upload in progress, by its id.
//! - `p.ID.NUMBER`: a part of upload `ID`.
//!
//! A put or a delete of an object commits the object's entry, its bucket's counts and the
//! namespace's bytes as one atomic batch, each message expecting the revision read, so the
//! counts stay exact and the [`Condition`] and the quotas are checked against the records
//! the batch replaces: a writer that came between (on any node) makes the batch refused
//! whole, and the write reads and decides again. Every object write of a namespace so
//! goes through `n.NAMESPACE` one at a time: a node sends its own one at a time (an
//! in-process lock per namespace, since racing batches are slow to refuse), and racing
//! nodes retry.
//!
//! A write's events are recorded first, through [`crate::Events::enqueue_events`]
//! (deduplicated by id, so a retry of the loop records them once), and only once the
//! write has been decided (condition and quotas hold at the revisions read): then the
//! object. A failure between leaves the events without the object (never an object whose
//! events are lost); so does a write that loses a race after recording them and is then
//! refused on the records it reads again (see `docs/cluster.md`).
//!
//! A part is recorded with its upload's entry written again unchanged (one batch
//! expecting both revisions), so that a part never lands in an upload a completion or an
//! abort removed meanwhile: those remove the upload's entry expecting the revision they
//! read, with the parts they read. The part entries are then purged by subject (`p.ID.>`,
//! one stream request); parts left by a failure there name a gone upload, and are not
//! listed or counted in use. Starting an upload writes its bucket's entry again unchanged
//! for the same reason (a bucket's deletion removes it with its uploads).
//!
//! Listing objects reads the last message of every key under the prefix's hex subject
//! (an ordered consumer with a subject filter: a listing costs every object under the
//! prefix, not the whole bucket), then sorts the keys as bytes and rolls up common
//! prefixes as SQLite does. Listing uploads reads every upload in progress in the store;
//! [`Objects::blobs_in_use`] reads every object and part.

use super::batch::{self, BatchEntry};
use super::{JetStreamStore, MAX_CAS_ATTEMPTS, backend, contended, decode, encode, is_key_token};
use crate::{
    BucketDeleted, BucketRecord, Condition, ListQuery, Listing, NewEvent, ObjectDeleted, ObjectRecord,
    ObjectWrite, Objects, PartRecord, PartWrite, PutObject, Result, StoreError, UnixMicros, UnixMillis,
    UploadRecord,
};
use async_nats::jetstream::{self, kv};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use wisp_core::{BucketName, Namespace, NotificationRule};

/// The bucket this concern keeps, and this process's writers by namespace.
#[derive(Clone)]
pub(super) struct Parts {
    kv: kv::Store,
    /// One lock per namespace that this process's object writes (puts, deletes, parts,
    /// completions) take in turn: they would all race on the namespace's `n.` entry (or
    /// an upload's), and racing atomic batches are slow to refuse, so a node sends one at
    /// a time. Only a speed-up: across nodes the batches' revisions decide.
    writers: Arc<Mutex<HashMap<Namespace, Arc<tokio::sync::Mutex<()>>>>>,
}

/// Opens (making it if it does not exist) bucket `{prefix}_objects`.
pub(super) async fn open(context: &jetstream::Context, prefix: &str) -> Result<Parts> {
    Ok(Parts {
        kv: batch::atomic_bucket(context, prefix, "objects").await?,
        writers: Arc::default(),
    })
}

/// The bytes a namespace's buckets hold together (entry `n.NAMESPACE`).
#[derive(Clone, Copy, Default, Serialize, Deserialize)]
struct NamespaceBytes {
    bytes: u64,
}

/// An [`UploadRecord`] as stored.
#[derive(Clone, Serialize, Deserialize)]
struct StoredUpload {
    namespace: Namespace,
    bucket: BucketName,
    key: String,
    upload_id: String,
    created_ms: UnixMillis,
    content_type: Option<String>,
    metadata: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
}

impl From<&UploadRecord> for StoredUpload {
    fn from(u: &UploadRecord) -> StoredUpload {
        StoredUpload {
            namespace: u.namespace.clone(),
            bucket: u.bucket.clone(),
            key: u.key.clone(),
            upload_id: u.upload_id.clone(),
            created_ms: u.created_ms,
            content_type: u.content_type.clone(),
            metadata: u.metadata.clone(),
            headers: u.headers.clone(),
        }
    }
}

impl From<StoredUpload> for UploadRecord {
    fn from(u: StoredUpload) -> UploadRecord {
        UploadRecord {
            namespace: u.namespace,
            bucket: u.bucket,
            key: u.key,
            upload_id: u.upload_id,
            created_ms: u.created_ms,
            content_type: u.content_type,
            metadata: u.metadata,
            headers: u.headers,
        }
    }
}

/// A [`PartRecord`] as stored.
#[derive(Clone, Serialize, Deserialize)]
struct StoredPart {
    upload_id: String,
    number: u32,
    blob: String,
    size: u64,
    etag: String,
    modified_ms: UnixMillis,
}

impl From<&PartRecord> for StoredPart {
    fn from(p: &PartRecord) -> StoredPart {
        StoredPart {
            upload_id: p.upload_id.clone(),
            number: p.number,
            blob: p.blob.clone(),
            size: p.size,
            etag: p.etag.clone(),
            modified_ms: p.modified_ms,
        }
    }
}

impl From<StoredPart> for PartRecord {
    fn from(p: StoredPart) -> PartRecord {
        PartRecord {
            upload_id: p.upload_id,
            number: p.number,
            blob: p.blob,
            size: p.size,
            etag: p.etag,
            modified_ms: p.modified_ms,
        }
    }
}

fn bucket_token(name: &BucketName) -> String {
    name.as_str().replace('.', "=")
}

fn bucket_key(namespace: &Namespace, name: &BucketName) -> String {
    format!("b.{namespace}.{}", bucket_token(name))
}

fn namespace_key(namespace: &Namespace) -> String {
    format!("n.{namespace}")
}

/// The KV key prefix of a bucket's objects, without the trailing dot.
fn objects_base(namespace: &Namespace, bucket: &BucketName) -> String {
    format!("o.{namespace}.{}", bucket_token(bucket))
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

/// The object key of the hex tokens after a bucket's base.
fn decode_key(tokens: &str) -> Result<String> {
    let mut bytes = Vec::new();
    for token in tokens.split('.').filter(|t| !t.is_empty()) {
        let byte = u8::from_str_radix(token, 16)
            .map_err(|_| StoreError::Corrupt(format!("an object key token `{token}` is not hex")))?;
        bytes.push(byte);
    }
    String::from_utf8(bytes).map_err(|_| StoreError::Corrupt("an object key is not UTF-8".into()))
}

fn object_key(namespace: &Namespace, bucket: &BucketName, key: &str) -> String {
    encode_key(&objects_base(namespace, bucket), key)
}

fn upload_key(id: &str) -> String {
    format!("u.{id}")
}

fn part_key(id: &str, number: u32) -> String {
    format!("p.{id}.{number}")
}

/// The revision to expect for `key` (`0`: no message) and its live entry.
async fn slot(kv: &kv::Store, key: &str, what: &str) -> Result<(u64, Option<kv::Entry>)> {
    match kv.entry(key).await.map_err(|e| backend(what, e))? {
        None => Ok((0, None)),
        Some(entry) if entry.operation == kv::Operation::Put => Ok((entry.revision, Some(entry))),
        Some(entry) => Ok((entry.revision, None)),
    }
}

/// [`slot`] with the live entry decoded.
async fn slot_of<T: serde::de::DeserializeOwned>(
    kv: &kv::Store,
    key: &str,
    what: &str,
) -> Result<(u64, Option<T>)> {
    let (revision, entry) = slot(kv, key, what).await?;
    Ok((revision, entry.as_ref().map(decode).transpose()?))
}

/// Decodes a scanned value of `key`.
fn decode_scanned<T: serde::de::DeserializeOwned>(kv: &kv::Store, key: &str, value: &[u8]) -> Result<T> {
    serde_json::from_slice(value)
        .map_err(|e| StoreError::Corrupt(format!("entry `{key}` of JetStream bucket `{}`: {e}", kv.name)))
}

/// What the records a put reads decide: the new bucket record and namespace bytes to
/// write, or the refusal.
fn decide_put(
    put: &PutObject,
    bucket: &BucketRecord,
    old: Option<&ObjectRecord>,
    used: u64,
) -> std::result::Result<(BucketRecord, NamespaceBytes), Box<ObjectWrite>> {
    let r = &put.record;
    if !put.condition.holds(old) {
        return Err(Box::new(ObjectWrite::ConditionFailed));
    }
    let freed = old.map_or(0, |o| o.size);
    if let Some(quota) = bucket.quota_bytes
        && bucket.bytes.saturating_sub(freed).saturating_add(r.size) > quota
    {
        return Err(Box::new(ObjectWrite::OverQuota(format!(
            "bucket `{}` holds {} of its quota of {quota} bytes; this object of {} bytes does not fit",
            r.bucket, bucket.bytes, r.size
        ))));
    }
    if let Some(limit) = put.namespace_limit
        && used.saturating_sub(freed).saturating_add(r.size) > limit
    {
        return Err(Box::new(ObjectWrite::OverQuota(format!(
            "namespace `{}` holds {used} of its storage quota of {limit} bytes; this object of {} bytes does not fit",
            r.namespace, r.size
        ))));
    }
    let mut counted = bucket.clone();
    if old.is_none() {
        counted.objects += 1;
    }
    counted.bytes = counted.bytes.saturating_sub(freed).saturating_add(r.size);
    let bytes = used.saturating_sub(freed).saturating_add(r.size);
    Ok((counted, NamespaceBytes { bytes }))
}

/// The listing `query` asks for (see [`ListQuery`]) out of `found`, every object under the
/// query's prefix as (key, value) sorted by key bytes: as SQLite's, keys at or after the
/// lower bound, each common prefix once and its keys skipped.
fn page(
    found: &[(String, Vec<u8>)],
    query: &ListQuery,
    decode: impl Fn(&str, &[u8]) -> Result<ObjectRecord>,
) -> Result<Listing> {
    let prefix = query.prefix.as_bytes();
    let delimiter = query
        .delimiter
        .as_deref()
        .filter(|d| !d.is_empty())
        .map(str::as_bytes);
    let max = query.max_keys as usize;
    let common_prefix = |key: &[u8]| -> Option<Vec<u8>> {
        let d = delimiter?;
        let rest = key.strip_prefix(prefix)?;
        let at = rest.windows(d.len()).position(|w| w == d)?;
        Some(key[..prefix.len() + at + d.len()].to_vec())
    };
    // Keys at or after `low` are listed, except those under `skip`.
    let mut low: Vec<u8> = prefix.to_vec();
    let mut skip: Option<Vec<u8>> = None;
    if let Some(after) = query.after.as_deref().map(str::as_bytes) {
        let after_low = match common_prefix(after) {
            Some(cp) if cp == after => {
                skip = Some(cp);
                after.to_vec()
            }
            _ => [after, &[0]].concat(),
        };
        low = low.max(after_low);
    }
    let mut out = Listing::default();
    let mut last: Option<Vec<u8>> = None;
    for (key, value) in found {
        let bytes = key.as_bytes();
        if bytes < low.as_slice() || !bytes.starts_with(prefix) {
            continue;
        }
        if skip.as_ref().is_some_and(|s| bytes.starts_with(s)) {
            continue;
        }
        if out.objects.len() + out.common_prefixes.len() >= max {
            out.truncated = max > 0;
            break;
        }
        if let Some(cp) = common_prefix(bytes) {
            out.common_prefixes.push(text(cp.clone())?);
            skip = Some(cp.clone());
            last = Some(cp);
            continue;
        }
        last = Some(bytes.to_vec());
        out.objects.push(decode(key, value)?);
    }
    if out.truncated {
        out.next = last.map(text).transpose()?;
    }
    Ok(out)
}

fn text(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|_| StoreError::Corrupt("an object key is not UTF-8".into()))
}

impl JetStreamStore {
    fn objects_kv(&self) -> &kv::Store {
        &self.objects.kv
    }

    /// Waits for this process's turn to write objects of `namespace` (see
    /// [`Parts::writers`]).
    async fn object_writer(&self, namespace: &Namespace) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut writers = self
                .objects
                .writers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(writers.entry(namespace.clone()).or_default())
        };
        lock.lock_owned().await
    }

    /// Commits `entries` to the objects bucket as one atomic batch: `true` when
    /// committed, `false` when one entry's revision was not the one expected.
    async fn objects_batch(&self, entries: &[BatchEntry], what: &str) -> Result<bool> {
        Ok(batch::commit(&self.context, self.objects_kv(), entries, what)
            .await?
            .is_some())
    }

    /// Records `events` (deduplicated by id: an event recorded already is skipped).
    async fn object_events(&self, events: &[NewEvent]) -> Result<()> {
        if !events.is_empty() {
            crate::Events::enqueue_events(self, events, UnixMicros::MIN).await?;
        }
        Ok(())
    }

    /// Every part of upload `id` (live entries), by number.
    async fn upload_parts(&self, id: &str, what: &str) -> Result<Vec<PartRecord>> {
        let kv = self.objects_kv();
        let mut parts = Vec::new();
        for (key, _, value) in super::scan_last(kv, vec![format!("p.{id}.*")], what).await? {
            parts.push(PartRecord::from(decode_scanned::<StoredPart>(kv, &key, &value)?));
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    /// Every upload in progress, with its entry's revision.
    async fn all_uploads(&self, what: &str) -> Result<Vec<(u64, StoredUpload)>> {
        let kv = self.objects_kv();
        let mut uploads = Vec::new();
        for (key, revision, value) in super::scan_last(kv, vec!["u.*".to_owned()], what).await? {
            uploads.push((revision, decode_scanned::<StoredUpload>(kv, &key, &value)?));
        }
        Ok(uploads)
    }

    /// Purges the part entries of uploads `ids`, gone already: a failure is only logged
    /// (the write that removed them has committed; parts of a gone upload are neither
    /// listed nor counted in use).
    async fn purge_parts(&self, ids: &[&str]) {
        for id in ids {
            let purged = self
                .objects_kv()
                .stream
                .purge()
                .filter(format!("{}p.{id}.>", self.objects_kv().prefix))
                .await;
            if let Err(e) = purged {
                tracing::warn!(upload = %id, error = %e, "purging the parts of a finished upload");
            }
        }
    }

    /// One attempt at storing `put`: reads the bucket, the object and the namespace's
    /// bytes, decides, records the events (once: `events_recorded` says whether an
    /// earlier attempt did), then commits the object, bucket and namespace entries as one
    /// batch, with `also` (an upload's removal) in it. `None`: raced, try again.
    async fn put_once(
        &self,
        put: &PutObject,
        also: Option<BatchEntry>,
        events_recorded: &mut bool,
        what: &str,
    ) -> Result<Option<ObjectWrite>> {
        let kv = self.objects_kv();
        let r = &put.record;
        let (bkey, okey, nkey) = (
            bucket_key(&r.namespace, &r.bucket),
            object_key(&r.namespace, &r.bucket, &r.key),
            namespace_key(&r.namespace),
        );
        let (brev, bucket) = slot_of::<BucketRecord>(kv, &bkey, what).await?;
        let Some(bucket) = bucket else {
            return Ok(Some(ObjectWrite::NoBucket));
        };
        let (orev, old) = slot_of::<ObjectRecord>(kv, &okey, what).await?;
        let (nrev, used) = slot_of::<NamespaceBytes>(kv, &nkey, what).await?;
        let (counted, bytes) = match decide_put(put, &bucket, old.as_ref(), used.unwrap_or_default().bytes) {
            Ok(decided) => decided,
            Err(refused) => return Ok(Some(*refused)),
        };
        if !*events_recorded {
            self.object_events(&put.events).await?;
            *events_recorded = true;
        }
        let mut entries: Vec<BatchEntry> = vec![
            (okey, orev, Some(encode(r, what)?)),
            (bkey, brev, Some(encode(&counted, what)?)),
            (nkey, nrev, Some(encode(&bytes, what)?)),
        ];
        entries.extend(also);
        if self.objects_batch(&entries, what).await? {
            Ok(Some(ObjectWrite::Stored { replaced: old }))
        } else {
            Ok(None)
        }
    }

    /// The live upload `id` and its entry's revision.
    async fn upload(&self, id: &str, what: &str) -> Result<Option<(u64, StoredUpload)>> {
        if !is_key_token(id) {
            return Ok(None);
        }
        match slot_of::<StoredUpload>(self.objects_kv(), &upload_key(id), what).await? {
            (revision, Some(upload)) => Ok(Some((revision, upload))),
            _ => Ok(None),
        }
    }
}

#[async_trait]
impl Objects for JetStreamStore {
    async fn create_bucket(&self, bucket: &BucketRecord) -> Result<bool> {
        let what = format!("creating bucket `{}/{}`", bucket.namespace, bucket.name);
        let record = BucketRecord {
            objects: 0,
            bytes: 0,
            ..bucket.clone()
        };
        let key = bucket_key(&bucket.namespace, &bucket.name);
        match super::create(self.objects_kv(), &key, encode(&record, &what)?, &what).await? {
            super::Written::Done(_) => Ok(true),
            super::Written::Raced => Ok(false),
        }
    }

    async fn get_bucket(&self, namespace: &Namespace, name: &BucketName) -> Result<Option<BucketRecord>> {
        let what = format!("reading bucket `{namespace}/{name}`");
        Ok(slot_of(self.objects_kv(), &bucket_key(namespace, name), &what)
            .await?
            .1)
    }

    async fn list_buckets(&self, namespace: Option<&Namespace>) -> Result<Vec<BucketRecord>> {
        let what = "listing buckets";
        let filter = match namespace {
            Some(namespace) => format!("b.{namespace}.*"),
            None => "b.*.*".to_owned(),
        };
        let kv = self.objects_kv();
        let mut buckets = Vec::new();
        for (key, _, value) in super::scan_last(kv, vec![filter], what).await? {
            buckets.push(decode_scanned::<BucketRecord>(kv, &key, &value)?);
        }
        buckets.sort_by(|a, b| {
            (a.namespace.as_str(), a.name.as_str()).cmp(&(b.namespace.as_str(), b.name.as_str()))
        });
        Ok(buckets)
    }

    async fn delete_bucket(&self, namespace: &Namespace, name: &BucketName) -> Result<BucketDeleted> {
        let what = format!("deleting bucket `{namespace}/{name}`");
        let kv = self.objects_kv();
        let key = bucket_key(namespace, name);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (revision, bucket) = slot_of::<BucketRecord>(kv, &key, &what).await?;
            let Some(bucket) = bucket else {
                return Ok(BucketDeleted::NotFound);
            };
            if bucket.objects > 0 {
                return Ok(BucketDeleted::NotEmpty);
            }
            let mut entries: Vec<BatchEntry> = vec![(key.clone(), revision, None)];
            let mut ids = Vec::new();
            let mut parts = Vec::new();
            for (upload_revision, upload) in self.all_uploads(&what).await? {
                if upload.namespace == *namespace && upload.bucket == *name {
                    parts.extend(self.upload_parts(&upload.upload_id, &what).await?);
                    entries.push((upload_key(&upload.upload_id), upload_revision, None));
                    ids.push(upload.upload_id);
                }
            }
            if self.objects_batch(&entries, &what).await? {
                self.purge_parts(&ids.iter().map(String::as_str).collect::<Vec<_>>())
                    .await;
                return Ok(BucketDeleted::Deleted { parts });
            }
        }
        Err(contended(what))
    }

    async fn set_notifications(
        &self,
        namespace: &Namespace,
        name: &BucketName,
        rules: &[NotificationRule],
    ) -> Result<bool> {
        let what = format!("setting the notifications of bucket `{namespace}/{name}`");
        let kv = self.objects_kv();
        let key = bucket_key(namespace, name);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (revision, bucket) = slot_of::<BucketRecord>(kv, &key, &what).await?;
            let Some(mut bucket) = bucket else {
                return Ok(false);
            };
            bucket.notifications = rules.to_vec();
            let value = encode(&bucket, &what)?;
            if let super::Written::Done(_) = super::update(kv, &key, value, revision, &what).await? {
                return Ok(true);
            }
        }
        Err(contended(what))
    }

    async fn put_object(&self, put: PutObject) -> Result<ObjectWrite> {
        let what = format!(
            "storing object `{}` in bucket `{}/{}`",
            put.record.key, put.record.namespace, put.record.bucket
        );
        let _turn = self.object_writer(&put.record.namespace).await;
        let mut events_recorded = false;
        for _ in 0..MAX_CAS_ATTEMPTS {
            if let Some(written) = self.put_once(&put, None, &mut events_recorded, &what).await? {
                return Ok(written);
            }
        }
        Err(contended(what))
    }

    async fn get_object(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        key: &str,
    ) -> Result<Option<ObjectRecord>> {
        let what = format!("reading object `{key}` of bucket `{namespace}/{bucket}`");
        Ok(
            slot_of(self.objects_kv(), &object_key(namespace, bucket, key), &what)
                .await?
                .1,
        )
    }

    async fn list_objects(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        query: &ListQuery,
    ) -> Result<Option<Listing>> {
        let what = format!("listing bucket `{namespace}/{bucket}`");
        let kv = self.objects_kv();
        if slot(kv, &bucket_key(namespace, bucket), &what).await?.1.is_none() {
            return Ok(None);
        }
        let base = objects_base(namespace, bucket);
        let under = encode_key(&base, &query.prefix);
        let filters = if query.prefix.is_empty() {
            vec![format!("{base}.>")]
        } else {
            vec![under.clone(), format!("{under}.>")]
        };
        let mut found = Vec::new();
        for (subject, _, value) in super::scan_last(kv, filters, &what).await? {
            let key = decode_key(subject.strip_prefix(base.as_str()).unwrap_or_default())?;
            found.push((key, value));
        }
        found.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let decode = |key: &str, value: &[u8]| {
            decode_scanned::<ObjectRecord>(kv, &object_key(namespace, bucket, key), value)
        };
        Ok(Some(page(&found, query, decode)?))
    }

    async fn delete_object(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        key: &str,
        condition: Condition,
        events: Vec<NewEvent>,
    ) -> Result<ObjectDeleted> {
        let what = format!("deleting object `{key}` of bucket `{namespace}/{bucket}`");
        let kv = self.objects_kv();
        let (bkey, okey, nkey) = (
            bucket_key(namespace, bucket),
            object_key(namespace, bucket, key),
            namespace_key(namespace),
        );
        let _turn = self.object_writer(namespace).await;
        let mut events_recorded = false;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (orev, old) = slot_of::<ObjectRecord>(kv, &okey, &what).await?;
            let Some(old) = old else {
                return Ok(ObjectDeleted::NotFound);
            };
            if !condition.holds(Some(&old)) {
                return Ok(ObjectDeleted::ConditionFailed);
            }
            let (brev, record) = slot_of::<BucketRecord>(kv, &bkey, &what).await?;
            let Some(mut record) = record else {
                return Err(StoreError::Corrupt(format!(
                    "{what}: the object's bucket has no entry `{bkey}`"
                )));
            };
            record.objects = record.objects.saturating_sub(1);
            record.bytes = record.bytes.saturating_sub(old.size);
            let (nrev, used) = slot_of::<NamespaceBytes>(kv, &nkey, &what).await?;
            let bytes = NamespaceBytes {
                bytes: used.unwrap_or_default().bytes.saturating_sub(old.size),
            };
            if !events_recorded {
                self.object_events(&events).await?;
                events_recorded = true;
            }
            let entries: Vec<BatchEntry> = vec![
                (okey.clone(), orev, None),
                (bkey.clone(), brev, Some(encode(&record, &what)?)),
                (nkey.clone(), nrev, Some(encode(&bytes, &what)?)),
            ];
            if self.objects_batch(&entries, &what).await? {
                return Ok(ObjectDeleted::Deleted {
                    removed: Box::new(old),
                });
            }
        }
        Err(contended(what))
    }

    async fn create_upload(&self, upload: &UploadRecord) -> Result<bool> {
        let what = format!(
            "starting an upload to bucket `{}/{}`",
            upload.namespace, upload.bucket
        );
        if !is_key_token(&upload.upload_id) {
            return Err(backend(
                &what,
                format!("invalid upload id `{}`", upload.upload_id),
            ));
        }
        let kv = self.objects_kv();
        let bkey = bucket_key(&upload.namespace, &upload.bucket);
        let ukey = upload_key(&upload.upload_id);
        let value = encode(&StoredUpload::from(upload), &what)?;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (brev, bucket) = slot(kv, &bkey, &what).await?;
            let Some(bucket) = bucket else {
                return Ok(false);
            };
            let (urev, existing) = slot(kv, &ukey, &what).await?;
            if existing.is_some() {
                return Err(backend(&what, format!("upload `{}` exists", upload.upload_id)));
            }
            let entries: Vec<BatchEntry> = vec![
                (bkey.clone(), brev, Some(bucket.value.to_vec())),
                (ukey.clone(), urev, Some(value.clone())),
            ];
            if self.objects_batch(&entries, &what).await? {
                return Ok(true);
            }
        }
        Err(contended(what))
    }

    async fn get_upload(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        upload_id: &str,
    ) -> Result<Option<UploadRecord>> {
        let what = format!("reading upload `{upload_id}`");
        Ok(self
            .upload(upload_id, &what)
            .await?
            .map(|(_, u)| UploadRecord::from(u))
            .filter(|u| u.namespace == *namespace && u.bucket == *bucket))
    }

    async fn put_part(&self, part: &PartRecord) -> Result<PartWrite> {
        let what = format!("recording part {} of upload `{}`", part.number, part.upload_id);
        if !is_key_token(&part.upload_id) {
            return Ok(PartWrite::NoUpload);
        }
        let kv = self.objects_kv();
        let ukey = upload_key(&part.upload_id);
        let pkey = part_key(&part.upload_id, part.number);
        let value = encode(&StoredPart::from(part), &what)?;
        let Some((_, upload)) = self.upload(&part.upload_id, &what).await? else {
            return Ok(PartWrite::NoUpload);
        };
        let _turn = self.object_writer(&upload.namespace).await;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (urev, upload) = slot(kv, &ukey, &what).await?;
            let Some(upload) = upload else {
                return Ok(PartWrite::NoUpload);
            };
            let (prev, replaced) = slot_of::<StoredPart>(kv, &pkey, &what).await?;
            let entries: Vec<BatchEntry> = vec![
                (ukey.clone(), urev, Some(upload.value.to_vec())),
                (pkey.clone(), prev, Some(value.clone())),
            ];
            if self.objects_batch(&entries, &what).await? {
                return Ok(PartWrite::Stored {
                    replaced: replaced.map(PartRecord::from),
                });
            }
        }
        Err(contended(what))
    }

    async fn list_parts(&self, upload_id: &str, after: u32, max: u32) -> Result<Vec<PartRecord>> {
        let what = format!("listing the parts of upload `{upload_id}`");
        if self.upload(upload_id, &what).await?.is_none() {
            return Ok(Vec::new());
        }
        let mut parts = self.upload_parts(upload_id, &what).await?;
        parts.retain(|p| p.number > after);
        parts.truncate(max as usize);
        Ok(parts)
    }

    async fn list_uploads(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        prefix: &str,
        after: Option<(String, String)>,
        max: u32,
    ) -> Result<Vec<UploadRecord>> {
        let what = format!("listing the uploads of bucket `{namespace}/{bucket}`");
        let (after_key, after_id) = after.unwrap_or_default();
        let mut uploads: Vec<StoredUpload> = self
            .all_uploads(&what)
            .await?
            .into_iter()
            .map(|(_, u)| u)
            .filter(|u| {
                u.namespace == *namespace
                    && u.bucket == *bucket
                    && u.key.starts_with(prefix)
                    && (u.key.as_bytes() > after_key.as_bytes()
                        || (u.key == after_key && u.upload_id > after_id))
            })
            .collect();
        uploads.sort_by(|a, b| {
            (a.key.as_bytes(), a.created_ms, a.upload_id.as_str()).cmp(&(
                b.key.as_bytes(),
                b.created_ms,
                b.upload_id.as_str(),
            ))
        });
        uploads.truncate(max as usize);
        Ok(uploads.into_iter().map(UploadRecord::from).collect())
    }

    async fn complete_upload(
        &self,
        upload_id: &str,
        put: PutObject,
    ) -> Result<Option<(ObjectWrite, Vec<PartRecord>)>> {
        let what = format!("completing upload `{upload_id}`");
        if !is_key_token(upload_id) {
            return Ok(None);
        }
        // The parts read with the upload's revision are its parts at the batch's commit: a
        // part recorded meanwhile changed that revision, which refuses the batch.
        let _turn = self.object_writer(&put.record.namespace).await;
        let mut events_recorded = false;
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some((revision, _)) = self.upload(upload_id, &what).await? else {
                return Ok(None);
            };
            let parts = self.upload_parts(upload_id, &what).await?;
            let removal = (upload_key(upload_id), revision, None);
            match self
                .put_once(&put, Some(removal), &mut events_recorded, &what)
                .await?
            {
                None => continue,
                Some(written @ ObjectWrite::Stored { .. }) => {
                    self.purge_parts(&[upload_id]).await;
                    return Ok(Some((written, parts)));
                }
                Some(refused) => return Ok(Some((refused, Vec::new()))),
            }
        }
        Err(contended(what))
    }

    async fn abort_upload(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        upload_id: &str,
    ) -> Result<Option<Vec<PartRecord>>> {
        let what = format!("aborting upload `{upload_id}`");
        for _ in 0..MAX_CAS_ATTEMPTS {
            let Some((revision, upload)) = self.upload(upload_id, &what).await? else {
                return Ok(None);
            };
            if upload.namespace != *namespace || upload.bucket != *bucket {
                return Ok(None);
            }
            let parts = self.upload_parts(upload_id, &what).await?;
            let entries: Vec<BatchEntry> = vec![(upload_key(upload_id), revision, None)];
            if self.objects_batch(&entries, &what).await? {
                self.purge_parts(&[upload_id]).await;
                return Ok(Some(parts));
            }
        }
        Err(contended(what))
    }

    async fn blobs_in_use(&self) -> Result<Vec<String>> {
        let what = "listing the blobs in use";
        let kv = self.objects_kv();
        let mut blobs = Vec::new();
        for (key, _, value) in super::scan_last(kv, vec!["o.>".to_owned()], what).await? {
            blobs.push(decode_scanned::<ObjectRecord>(kv, &key, &value)?.blob);
        }
        // Parts first, then the uploads: a part whose upload is gone by then is garbage
        // (a completion or an abort whose purge failed), and ids are never used again.
        let mut parts = Vec::new();
        for (key, _, value) in super::scan_last(kv, vec!["p.>".to_owned()], what).await? {
            parts.push(decode_scanned::<StoredPart>(kv, &key, &value)?);
        }
        let live: BTreeSet<String> = self
            .all_uploads(what)
            .await?
            .into_iter()
            .map(|(_, u)| u.upload_id)
            .collect();
        blobs.extend(
            parts
                .into_iter()
                .filter(|p| live.contains(&p.upload_id))
                .map(|p| p.blob),
        );
        Ok(blobs)
    }

    async fn storage_used(&self, namespace: &Namespace) -> Result<u64> {
        let what = format!("summing the storage of namespace `{namespace}`");
        let (_, used) =
            slot_of::<NamespaceBytes>(self.objects_kv(), &namespace_key(namespace), &what).await?;
        Ok(used.unwrap_or_default().bytes)
    }
}

#[cfg(test)]
mod tests {
    //! Against a real server: puts, conditions and counts, listings (checked against
    //! SQLite's on the same keys), multipart uploads, and what the shared suite cannot
    //! show: racing conditional puts and racing parts from two store handles.
    use super::*;
    use crate::{Events, SqliteStore};
    use wisp_test_support::nats::NatsServer;

    const T: UnixMillis = 1_700_000_000_000;

    async fn open() -> (NatsServer, JetStreamStore, JetStreamStore) {
        let server = NatsServer::start();
        let one = JetStreamStore::connect(&server.url, "test").await.unwrap();
        let two = JetStreamStore::connect(&server.url, "test").await.unwrap();
        (server, one, two)
    }

    fn ns() -> Namespace {
        Namespace::new("alpha").unwrap()
    }

    fn new_bucket(name: &str, quota_bytes: Option<u64>) -> BucketRecord {
        BucketRecord {
            namespace: ns(),
            name: BucketName::new(name).unwrap(),
            created_ms: T,
            quota_bytes,
            objects: 0,
            bytes: 0,
            notifications: Vec::new(),
        }
    }

    fn object(bucket: &str, key: &str, size: u64, blob: &str) -> ObjectRecord {
        ObjectRecord {
            namespace: ns(),
            bucket: BucketName::new(bucket).unwrap(),
            key: key.to_owned(),
            blob: blob.to_owned(),
            size,
            etag: format!("etag-{blob}"),
            content_type: None,
            metadata: BTreeMap::new(),
            headers: BTreeMap::new(),
            modified_ms: T,
        }
    }

    fn put(record: ObjectRecord, condition: Condition) -> PutObject {
        PutObject {
            record,
            events: Vec::new(),
            condition,
            namespace_limit: None,
        }
    }

    fn counts(bucket: Option<BucketRecord>) -> Option<(u64, u64)> {
        bucket.map(|b| (b.objects, b.bytes))
    }

    #[tokio::test]
    async fn puts_replace_whole_check_conditions_and_count() {
        let (_server, store, _) = open().await;
        let b = BucketName::new("my.photos").unwrap();
        assert!(
            store
                .create_bucket(&new_bucket("my.photos", Some(100)))
                .await
                .unwrap()
        );
        assert!(!store.create_bucket(&new_bucket("my.photos", None)).await.unwrap());
        let first = object("my.photos", "cat.jpg", 10, "b1");
        assert_eq!(
            store
                .put_object(put(first.clone(), Condition::Absent))
                .await
                .unwrap(),
            ObjectWrite::Stored { replaced: None }
        );
        assert_eq!(
            store
                .put_object(put(object("my.photos", "cat.jpg", 1, "b2"), Condition::Absent))
                .await
                .unwrap(),
            ObjectWrite::ConditionFailed
        );
        let second = object("my.photos", "cat.jpg", 30, "b2");
        assert_eq!(
            store
                .put_object(put(second.clone(), Condition::EtagIs("etag-b1".into())))
                .await
                .unwrap(),
            ObjectWrite::Stored {
                replaced: Some(first)
            }
        );
        assert_eq!(
            store.get_object(&ns(), &b, "cat.jpg").await.unwrap(),
            Some(second)
        );
        let over = store
            .put_object(put(object("my.photos", "dog.jpg", 71, "b3"), Condition::None))
            .await
            .unwrap();
        assert!(matches!(over, ObjectWrite::OverQuota(_)), "{over:?}");
        let limited = PutObject {
            namespace_limit: Some(50),
            ..put(object("my.photos", "dog.jpg", 21, "b3"), Condition::None)
        };
        assert!(
            matches!(store.put_object(limited).await.unwrap(), ObjectWrite::OverQuota(why) if why.contains("namespace"))
        );
        store
            .put_object(put(object("my.photos", "dog.jpg", 20, "b3"), Condition::None))
            .await
            .unwrap();
        assert_eq!(counts(store.get_bucket(&ns(), &b).await.unwrap()), Some((2, 50)));
        assert_eq!(store.storage_used(&ns()).await.unwrap(), 50);
        assert_eq!(
            store.delete_bucket(&ns(), &b).await.unwrap(),
            BucketDeleted::NotEmpty
        );
        let deleted = store
            .delete_object(&ns(), &b, "cat.jpg", Condition::EtagIs("etag-b1".into()), vec![])
            .await
            .unwrap();
        assert_eq!(deleted, ObjectDeleted::ConditionFailed);
        let deleted = store
            .delete_object(&ns(), &b, "cat.jpg", Condition::Present, vec![])
            .await
            .unwrap();
        assert!(matches!(deleted, ObjectDeleted::Deleted { removed } if removed.blob == "b2"));
        assert_eq!(
            store
                .delete_object(&ns(), &b, "cat.jpg", Condition::None, vec![])
                .await
                .unwrap(),
            ObjectDeleted::NotFound
        );
        assert_eq!(counts(store.get_bucket(&ns(), &b).await.unwrap()), Some((1, 20)));
        assert_eq!(store.storage_used(&ns()).await.unwrap(), 20);
        assert_eq!(store.blobs_in_use().await.unwrap(), ["b3"]);
        assert_eq!(
            store
                .put_object(put(object("nothere", "x", 1, "b9"), Condition::None))
                .await
                .unwrap(),
            ObjectWrite::NoBucket
        );
        let names: Vec<String> = store
            .list_buckets(None)
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.name.to_string())
            .collect();
        assert_eq!(names, ["my.photos"]);
    }

    /// Keys of any text up to S3's 1,024 bytes, listed in byte order.
    #[tokio::test]
    async fn keys_of_any_text_round_trip() {
        let (_server, store, _) = open().await;
        let b = BucketName::new("files").unwrap();
        store.create_bucket(&new_bucket("files", None)).await.unwrap();
        let long = "é".repeat(512);
        let keys = [long.as_str(), "a b/c.d", "*", ">", "a.b", "日本/語", "\u{1}"];
        for key in keys {
            store
                .put_object(put(object("files", key, 1, "x"), Condition::None))
                .await
                .unwrap();
            assert_eq!(
                store.get_object(&ns(), &b, key).await.unwrap().map(|o| o.key),
                Some(key.to_owned())
            );
        }
        let query = ListQuery {
            max_keys: 1000,
            ..ListQuery::default()
        };
        let listing = store.list_objects(&ns(), &b, &query).await.unwrap().unwrap();
        let mut sorted: Vec<&str> = keys.to_vec();
        sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let listed: Vec<&str> = listing.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(listed, sorted);
    }

    /// Every listing of a set of keys, by prefix, delimiter, start and page size, is the
    /// one SQLite gives on the same keys.
    #[tokio::test]
    async fn listings_are_sqlites() {
        let (_server, store, _) = open().await;
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(&dir.path().join("store.db")).unwrap();
        let b = BucketName::new("files").unwrap();
        let keys = [
            "a", "a/", "a/1", "a/2", "a/b/1", "a/b/2", "a//x", "ab", "b/1", "b/2/3", "c", "d/x/y", "d/z",
            "e", "é", "é/1", "z-z", "z/z",
        ];
        for s in [&store as &dyn Objects, &sqlite as &dyn Objects] {
            s.create_bucket(&new_bucket("files", None)).await.unwrap();
            for key in keys {
                s.put_object(put(object("files", key, 1, key), Condition::None))
                    .await
                    .unwrap();
            }
        }
        let mut asked = 0;
        for prefix in ["", "a", "a/", "a/b", "é", "q"] {
            for delimiter in [None, Some("/"), Some("b"), Some("//")] {
                for after in [
                    None,
                    Some("a"),
                    Some("a/"),
                    Some("a/b/"),
                    Some("b/1"),
                    Some("d/"),
                    Some("zz"),
                ] {
                    for max_keys in [0, 1, 2, 3, 1000] {
                        let query = ListQuery {
                            prefix: prefix.into(),
                            delimiter: delimiter.map(Into::into),
                            after: after.map(Into::into),
                            max_keys,
                        };
                        let mine = store.list_objects(&ns(), &b, &query).await.unwrap();
                        let theirs = sqlite.list_objects(&ns(), &b, &query).await.unwrap();
                        assert_eq!(mine, theirs, "{query:?}");
                        asked += 1;
                    }
                }
            }
        }
        assert_eq!(asked, 6 * 4 * 7 * 5);
    }

    /// Two nodes put the same key at once, each only if absent: one stores it, the other
    /// is refused; puts of distinct keys all count.
    #[tokio::test]
    async fn racing_conditional_puts_store_one() {
        let (_server, one, two) = open().await;
        one.create_bucket(&new_bucket("race", None)).await.unwrap();
        let b = BucketName::new("race").unwrap();
        for round in 0..5 {
            let key = format!("k{round}");
            let racers = (0..8).map(|i| {
                let store = if i % 2 == 0 { one.clone() } else { two.clone() };
                let record = object("race", &key, 1, &format!("{round}-{i}"));
                tokio::spawn(async move { store.put_object(put(record, Condition::Absent)).await })
            });
            let mut stored = 0;
            for racer in racers {
                match racer.await.unwrap().unwrap() {
                    ObjectWrite::Stored { replaced: None } => stored += 1,
                    ObjectWrite::ConditionFailed => {}
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(stored, 1, "round {round}");
        }
        // Racing replacements on one ETag: each replaces what the one before stored.
        let racers = (0..6).map(|i| {
            let store = if i % 2 == 0 { one.clone() } else { two.clone() };
            let b = b.clone();
            tokio::spawn(async move {
                loop {
                    let current = store.get_object(&ns(), &b, "k0").await.unwrap().unwrap();
                    let next = object("race", "k0", 1, &format!("r{i}"));
                    let condition = Condition::EtagIs(current.etag.clone());
                    match store.put_object(put(next, condition)).await.unwrap() {
                        ObjectWrite::Stored { replaced } => return replaced.unwrap().blob,
                        ObjectWrite::ConditionFailed => continue,
                        other => panic!("{other:?}"),
                    }
                }
            })
        });
        let mut replaced = BTreeSet::new();
        for racer in racers {
            assert!(replaced.insert(racer.await.unwrap()), "a version replaced twice");
        }
        assert_eq!(replaced.len(), 6);
        let racers = (0..10).map(|i| {
            let store = if i % 2 == 0 { one.clone() } else { two.clone() };
            let record = object("race", &format!("many/{i}"), 3, &format!("m{i}"));
            tokio::spawn(async move { store.put_object(put(record, Condition::None)).await })
        });
        for racer in racers {
            assert!(matches!(
                racer.await.unwrap().unwrap(),
                ObjectWrite::Stored { .. }
            ));
        }
        assert_eq!(counts(two.get_bucket(&ns(), &b).await.unwrap()), Some((15, 35)));
        assert_eq!(one.storage_used(&ns()).await.unwrap(), 35);
    }

    /// 128 puts of distinct keys at once from two nodes all store (each node sends its
    /// namespace's batches one at a time; the two nodes race), and count.
    #[tokio::test]
    async fn many_concurrent_puts_from_two_nodes_all_store() {
        let (_server, one, two) = open().await;
        one.create_bucket(&new_bucket("many", None)).await.unwrap();
        let racers: Vec<_> = (0..128)
            .map(|i| {
                let store = if i % 2 == 0 { one.clone() } else { two.clone() };
                let record = object("many", &format!("k{i}"), 2, &format!("m{i}"));
                tokio::spawn(async move { store.put_object(put(record, Condition::None)).await })
            })
            .collect();
        for racer in racers {
            assert!(matches!(
                racer.await.unwrap().unwrap(),
                ObjectWrite::Stored { replaced: None }
            ));
        }
        let b = BucketName::new("many").unwrap();
        assert_eq!(counts(one.get_bucket(&ns(), &b).await.unwrap()), Some((128, 256)));
        assert_eq!(two.storage_used(&ns()).await.unwrap(), 256);
    }

    fn event(id: &str) -> NewEvent {
        NewEvent {
            namespace: ns(),
            function: wisp_core::FunctionName::new("thumbs").unwrap(),
            id: id.to_owned(),
            payload: b"{}".to_vec(),
            idempotency_key: None,
            chain_depth: 0,
            source: "bucket:photos".into(),
            qualifier: None,
            trace: None,
            parent: None,
            created_us: T * 1000,
            run_at: T,
            lease: None,
        }
    }

    /// A write's events are recorded when it is, and not when it is refused; racing
    /// conditional puts carrying events record the winner's only.
    #[tokio::test]
    async fn events_are_recorded_with_their_write() {
        let (_server, one, two) = open().await;
        let b = BucketName::new("photos").unwrap();
        one.create_bucket(&new_bucket("photos", None)).await.unwrap();
        let with = |record, id: &str, condition| PutObject {
            events: vec![event(id)],
            ..put(record, condition)
        };
        one.put_object(with(object("photos", "a", 1, "b1"), "e1", Condition::None))
            .await
            .unwrap();
        assert!(one.get_event(&ns(), "e1").await.unwrap().is_some());
        let refused = one
            .put_object(with(object("photos", "a", 1, "b2"), "e2", Condition::Absent))
            .await
            .unwrap();
        assert_eq!(refused, ObjectWrite::ConditionFailed);
        assert!(one.get_event(&ns(), "e2").await.unwrap().is_none());
        let missing = one
            .delete_object(&ns(), &b, "nothing", Condition::None, vec![event("e3")])
            .await
            .unwrap();
        assert_eq!(missing, ObjectDeleted::NotFound);
        assert!(one.get_event(&ns(), "e3").await.unwrap().is_none());
        let deleted = two
            .delete_object(&ns(), &b, "a", Condition::None, vec![event("e4")])
            .await
            .unwrap();
        assert!(matches!(deleted, ObjectDeleted::Deleted { .. }));
        assert!(one.get_event(&ns(), "e4").await.unwrap().is_some());
        // Sequential conditional puts, so that none loses a race after recording its
        // event: exactly the stored one's event exists.
        for (i, store) in [&one, &two, &one].into_iter().enumerate() {
            let id = format!("c{i}");
            let written = store
                .put_object(with(object("photos", "c", 1, &id), &id, Condition::Absent))
                .await
                .unwrap();
            let recorded = one.get_event(&ns(), &id).await.unwrap().is_some();
            assert_eq!(recorded, matches!(written, ObjectWrite::Stored { .. }), "{id}");
        }
    }

    /// Three nodes, each connected to its own server of a three-server cluster, put the
    /// same key only if absent, ten rounds: one stores it each round, and the counts hold.
    #[tokio::test]
    async fn racing_conditional_puts_across_a_cluster() {
        let cluster = wisp_test_support::nats::NatsCluster::start(3);
        let mut stores = Vec::new();
        for i in 0..3 {
            let url = cluster.server_url(i);
            stores.push(JetStreamStore::connect(&url, "test").await.unwrap());
        }
        stores[0].create_bucket(&new_bucket("race", None)).await.unwrap();
        for round in 0..10 {
            let racers: Vec<_> = (0..6)
                .map(|i| {
                    let store = stores[i % 3].clone();
                    let record = object("race", &format!("k{round}"), 1, &format!("{round}-{i}"));
                    tokio::spawn(async move { store.put_object(put(record, Condition::Absent)).await })
                })
                .collect();
            let mut stored = 0;
            for racer in racers {
                match racer.await.unwrap().unwrap() {
                    ObjectWrite::Stored { replaced: None } => stored += 1,
                    ObjectWrite::ConditionFailed => {}
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(stored, 1, "round {round}");
        }
        let b = BucketName::new("race").unwrap();
        assert_eq!(
            counts(stores[2].get_bucket(&ns(), &b).await.unwrap()),
            Some((10, 10))
        );
        assert_eq!(stores[1].storage_used(&ns()).await.unwrap(), 10);
    }

    fn upload(id: &str, key: &str) -> UploadRecord {
        UploadRecord {
            namespace: ns(),
            bucket: BucketName::new("videos").unwrap(),
            key: key.into(),
            upload_id: id.into(),
            created_ms: T,
            content_type: None,
            metadata: BTreeMap::new(),
            headers: BTreeMap::new(),
        }
    }

    fn part(id: &str, number: u32, blob: &str) -> PartRecord {
        PartRecord {
            upload_id: id.into(),
            number,
            blob: blob.into(),
            size: 5,
            etag: format!("etag-{blob}"),
            modified_ms: T,
        }
    }

    /// Parts recorded from two nodes while another completes the upload: every part the
    /// completion does not return is refused (`NoUpload`), none is left behind.
    #[tokio::test]
    async fn parts_racing_a_completion_are_returned_or_refused() {
        let (_server, one, two) = open().await;
        let b = BucketName::new("videos").unwrap();
        one.create_bucket(&new_bucket("videos", None)).await.unwrap();
        assert!(one.create_upload(&upload("u1", "movie.mp4")).await.unwrap());
        one.put_part(&part("u1", 1, "p1")).await.unwrap();
        let writers = (2..30u32).map(|n| {
            let store = if n % 2 == 0 { one.clone() } else { two.clone() };
            tokio::spawn(async move { (n, store.put_part(&part("u1", n, &format!("p{n}"))).await.unwrap()) })
        });
        let writers: Vec<_> = writers.collect();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let (written, parts) = two
            .complete_upload(
                "u1",
                put(object("videos", "movie.mp4", 10, "joined"), Condition::None),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(written, ObjectWrite::Stored { replaced: None });
        let returned: BTreeSet<u32> = parts.iter().map(|p| p.number).collect();
        assert!(returned.contains(&1));
        for writer in writers {
            let (n, written) = writer.await.unwrap();
            match written {
                PartWrite::Stored { replaced: None } => assert!(returned.contains(&n), "part {n} lost"),
                PartWrite::NoUpload => assert!(!returned.contains(&n), "part {n} returned and refused"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(one.get_upload(&ns(), &b, "u1").await.unwrap(), None);
        assert_eq!(one.list_parts("u1", 0, 100).await.unwrap(), vec![]);
        assert_eq!(one.blobs_in_use().await.unwrap(), ["joined"]);
        // A refused completion leaves the upload; an abort returns its parts.
        assert!(one.create_upload(&upload("u2", "movie.mp4")).await.unwrap());
        one.put_part(&part("u2", 1, "q1")).await.unwrap();
        assert_eq!(
            one.complete_upload(
                "u2",
                put(object("videos", "movie.mp4", 1, "j2"), Condition::Absent)
            )
            .await
            .unwrap(),
            Some((ObjectWrite::ConditionFailed, vec![]))
        );
        assert_eq!(
            one.abort_upload(&ns(), &b, "u2").await.unwrap(),
            Some(vec![part("u2", 1, "q1")])
        );
        assert!(one.create_upload(&upload("u3", "x")).await.unwrap());
        one.put_part(&part("u3", 7, "r7")).await.unwrap();
        one.delete_object(&ns(), &b, "movie.mp4", Condition::None, vec![])
            .await
            .unwrap();
        assert_eq!(
            one.delete_bucket(&ns(), &b).await.unwrap(),
            BucketDeleted::Deleted {
                parts: vec![part("u3", 7, "r7")]
            }
        );
        assert!(!one.create_upload(&upload("u4", "x")).await.unwrap());
        assert_eq!(one.blobs_in_use().await.unwrap(), Vec::<String>::new());
    }
}
