//! The SQLite [`Objects`]: buckets (the `buckets` table, with their object and byte
//! counts), object metadata (`objects`, keyed by namespace, bucket and key, the key a
//! BLOB so that keys order as bytes, as S3 orders them), multipart uploads (`uploads`)
//! and their parts (`parts`). A write and the events it causes are one transaction.

use super::{OpError, SqliteStore, events};
use crate::{
    BucketDeleted, BucketRecord, Condition, ListQuery, Listing, NewEvent, ObjectDeleted, ObjectRecord,
    ObjectWrite, Objects, PartRecord, PartWrite, PutObject, Result, StoreError, UploadRecord,
};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::collections::BTreeMap;
use wisp_core::{BucketName, Namespace, NotificationRule};

const OBJECT_COLUMNS: &str =
    "namespace, bucket, key, blob, size, etag, content_type, metadata, modified_ms, headers";
const UPLOAD_COLUMNS: &str = "upload_id, namespace, bucket, key, created_ms, content_type, metadata, headers";

#[async_trait]
impl Objects for SqliteStore {
    async fn create_bucket(&self, bucket: &BucketRecord) -> Result<bool> {
        let b = bucket.clone();
        let what = format!("creating bucket `{}/{}`", b.namespace, b.name);
        self.write(what, move |conn| {
            let notifications = json(&b.notifications)?;
            let n = conn.execute(
                "INSERT INTO buckets (namespace, name, created_ms, quota_bytes, objects, bytes, notifications)
                 VALUES (?1, ?2, ?3, ?4, 0, 0, ?5) ON CONFLICT DO NOTHING",
                params![
                    b.namespace.as_str(),
                    b.name.as_str(),
                    b.created_ms,
                    b.quota_bytes.map(clamp),
                    notifications
                ],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn get_bucket(&self, namespace: &Namespace, name: &BucketName) -> Result<Option<BucketRecord>> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let what = format!("reading bucket `{namespace}/{name}`");
        self.read(what, move |conn| bucket(conn, &namespace, &name)).await
    }

    async fn list_buckets(&self, namespace: Option<&Namespace>) -> Result<Vec<BucketRecord>> {
        let namespace = namespace.cloned();
        self.read("listing buckets".into(), move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT namespace, name, created_ms, quota_bytes, objects, bytes, notifications FROM buckets
                 WHERE ?1 IS NULL OR namespace = ?1 ORDER BY namespace, name",
            )?;
            let rows = statement
                .query_map([namespace.as_ref().map(Namespace::as_str)], BucketRow::read)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(BucketRow::into_record).collect()
        })
        .await
    }

    async fn delete_bucket(&self, namespace: &Namespace, name: &BucketName) -> Result<BucketDeleted> {
        let (namespace, name) = (namespace.clone(), name.clone());
        let what = format!("deleting bucket `{namespace}/{name}`");
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(b) = bucket(&tx, &namespace, &name)? else {
                return Ok(BucketDeleted::NotFound);
            };
            if b.objects > 0 {
                return Ok(BucketDeleted::NotEmpty);
            }
            let ids: Vec<String> = tx
                .prepare_cached("SELECT upload_id FROM uploads WHERE namespace = ?1 AND bucket = ?2")?
                .query_map(params![namespace.as_str(), name.as_str()], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut parts = Vec::new();
            for id in ids {
                parts.extend(remove_upload(&tx, &id)?);
            }
            tx.execute(
                "DELETE FROM buckets WHERE namespace = ?1 AND name = ?2",
                params![namespace.as_str(), name.as_str()],
            )?;
            tx.commit()?;
            Ok(BucketDeleted::Deleted { parts })
        })
        .await
    }

    async fn set_notifications(
        &self,
        namespace: &Namespace,
        name: &BucketName,
        rules: &[NotificationRule],
    ) -> Result<bool> {
        let (namespace, name, rules) = (namespace.clone(), name.clone(), rules.to_vec());
        let what = format!("setting the notifications of bucket `{namespace}/{name}`");
        self.write(what, move |conn| {
            let n = conn.execute(
                "UPDATE buckets SET notifications = ?3 WHERE namespace = ?1 AND name = ?2",
                params![namespace.as_str(), name.as_str(), json(&rules)?],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn put_object(&self, put: PutObject) -> Result<ObjectWrite> {
        let what = format!(
            "storing object `{}` in bucket `{}/{}`",
            put.record.key, put.record.namespace, put.record.bucket
        );
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let written = put_in(&tx, &put)?;
            if matches!(written, ObjectWrite::Stored { .. }) {
                tx.commit()?;
            }
            Ok(written)
        })
        .await
    }

    async fn get_object(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        key: &str,
    ) -> Result<Option<ObjectRecord>> {
        let (namespace, bucket, key) = (namespace.clone(), bucket.clone(), key.to_string());
        let what = format!("reading object `{key}` of bucket `{namespace}/{bucket}`");
        self.read(what, move |conn| object(conn, &namespace, &bucket, &key))
            .await
    }

    async fn list_objects(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        query: &ListQuery,
    ) -> Result<Option<Listing>> {
        let (namespace, bucket, query) = (namespace.clone(), bucket.clone(), query.clone());
        let what = format!("listing bucket `{namespace}/{bucket}`");
        self.read(what, move |conn| {
            let tx = conn.transaction()?;
            if bucket_exists(&tx, &namespace, &bucket)?.is_none() {
                return Ok(None);
            }
            Ok(Some(list(&tx, &namespace, &bucket, &query)?))
        })
        .await
    }

    async fn delete_object(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        key: &str,
        condition: Condition,
        events: Vec<NewEvent>,
    ) -> Result<ObjectDeleted> {
        let (namespace, bucket, key) = (namespace.clone(), bucket.clone(), key.to_string());
        let what = format!("deleting object `{key}` of bucket `{namespace}/{bucket}`");
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(old) = object(&tx, &namespace, &bucket, &key)? else {
                return Ok(ObjectDeleted::NotFound);
            };
            if !condition.holds(Some(&old)) {
                return Ok(ObjectDeleted::ConditionFailed);
            }
            tx.execute(
                "DELETE FROM objects WHERE namespace = ?1 AND bucket = ?2 AND key = ?3",
                params![namespace.as_str(), bucket.as_str(), key.as_bytes()],
            )?;
            count(&tx, &namespace, &bucket, -1, -signed(old.size))?;
            for event in &events {
                events::insert(&tx, event)?;
            }
            tx.commit()?;
            Ok(ObjectDeleted::Deleted {
                removed: Box::new(old),
            })
        })
        .await
    }

    async fn create_upload(&self, upload: &UploadRecord) -> Result<bool> {
        let u = upload.clone();
        let what = format!("starting an upload to bucket `{}/{}`", u.namespace, u.bucket);
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if bucket_exists(&tx, &u.namespace, &u.bucket)?.is_none() {
                return Ok(false);
            }
            tx.execute(
                &format!("INSERT INTO uploads ({UPLOAD_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                params![
                    u.upload_id,
                    u.namespace.as_str(),
                    u.bucket.as_str(),
                    u.key.as_bytes(),
                    u.created_ms,
                    u.content_type,
                    json(&u.metadata)?,
                    json(&u.headers)?
                ],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn get_upload(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        upload_id: &str,
    ) -> Result<Option<UploadRecord>> {
        let (namespace, bucket, id) = (namespace.clone(), bucket.clone(), upload_id.to_string());
        let what = format!("reading upload `{id}`");
        self.read(what, move |conn| {
            let upload = upload(conn, &id)?;
            Ok(upload.filter(|u| u.namespace == namespace && u.bucket == bucket))
        })
        .await
    }

    async fn put_part(&self, part: &PartRecord) -> Result<PartWrite> {
        let p = part.clone();
        let what = format!("recording part {} of upload `{}`", p.number, p.upload_id);
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if upload(&tx, &p.upload_id)?.is_none() {
                return Ok(PartWrite::NoUpload);
            }
            let replaced = tx
                .prepare_cached(
                    "SELECT upload_id, number, blob, size, etag, modified_ms FROM parts
                     WHERE upload_id = ?1 AND number = ?2",
                )?
                .query_row(params![p.upload_id, p.number], read_part)
                .optional()?;
            tx.execute(
                "INSERT OR REPLACE INTO parts (upload_id, number, blob, size, etag, modified_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    p.upload_id,
                    p.number,
                    p.blob,
                    clamp(p.size),
                    p.etag,
                    p.modified_ms
                ],
            )?;
            tx.commit()?;
            Ok(PartWrite::Stored { replaced })
        })
        .await
    }

    async fn list_parts(&self, upload_id: &str, after: u32, max: u32) -> Result<Vec<PartRecord>> {
        let id = upload_id.to_string();
        let what = format!("listing the parts of upload `{id}`");
        self.read(what, move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT upload_id, number, blob, size, etag, modified_ms FROM parts
                     WHERE upload_id = ?1 AND number > ?2 ORDER BY number LIMIT ?3",
                )?
                .query_map(params![id, after, max], read_part)?
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn list_uploads(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        prefix: &str,
        after: Option<(String, String)>,
        max: u32,
    ) -> Result<Vec<UploadRecord>> {
        let (namespace, bucket, prefix) = (namespace.clone(), bucket.clone(), prefix.to_string());
        let what = format!("listing the uploads of bucket `{namespace}/{bucket}`");
        self.read(what, move |conn| {
            let (after_key, after_id) = after.unwrap_or_default();
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {UPLOAD_COLUMNS} FROM uploads
                 WHERE namespace = ?1 AND bucket = ?2 AND key >= ?3 AND (key > ?4 OR (key = ?4 AND upload_id > ?5))
                 ORDER BY key, created_ms, upload_id"
            ))?;
            let mut rows = statement.query(params![
                namespace.as_str(),
                bucket.as_str(),
                prefix.as_bytes(),
                after_key.as_bytes(),
                after_id
            ])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let u = read_upload(row)?;
                if !u.key.starts_with(&prefix) {
                    break;
                }
                out.push(u);
                if out.len() >= max as usize {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    async fn complete_upload(
        &self,
        upload_id: &str,
        put: PutObject,
    ) -> Result<Option<(ObjectWrite, Vec<PartRecord>)>> {
        let id = upload_id.to_string();
        let what = format!("completing upload `{id}`");
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if upload(&tx, &id)?.is_none() {
                return Ok(None);
            }
            let written = put_in(&tx, &put)?;
            if !matches!(written, ObjectWrite::Stored { .. }) {
                return Ok(Some((written, Vec::new())));
            }
            let parts = remove_upload(&tx, &id)?;
            tx.commit()?;
            Ok(Some((written, parts)))
        })
        .await
    }

    async fn abort_upload(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        upload_id: &str,
    ) -> Result<Option<Vec<PartRecord>>> {
        let (namespace, bucket, id) = (namespace.clone(), bucket.clone(), upload_id.to_string());
        let what = format!("aborting upload `{id}`");
        self.write(what, move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            match upload(&tx, &id)? {
                Some(u) if u.namespace == namespace && u.bucket == bucket => {}
                _ => return Ok(None),
            }
            let parts = remove_upload(&tx, &id)?;
            tx.commit()?;
            Ok(Some(parts))
        })
        .await
    }

    async fn blobs_in_use(&self) -> Result<Vec<String>> {
        self.read("listing the blobs in use".into(), |conn| {
            Ok(conn
                .prepare("SELECT blob FROM objects UNION ALL SELECT blob FROM parts")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn storage_used(&self, namespace: &Namespace) -> Result<u64> {
        let namespace = namespace.clone();
        let what = format!("summing the storage of namespace `{namespace}`");
        self.read(what, move |conn| {
            let bytes: i64 = conn
                .prepare_cached("SELECT coalesce(sum(bytes), 0) FROM buckets WHERE namespace = ?1")?
                .query_row([namespace.as_str()], |r| r.get(0))?;
            Ok(unsigned(bytes))
        })
        .await
    }
}

/// Stores `put` inside `tx` (which the caller commits only on `Stored`).
fn put_in(tx: &Transaction<'_>, put: &PutObject) -> Result<ObjectWrite, OpError> {
    let r = &put.record;
    let Some(b) = bucket(tx, &r.namespace, &r.bucket)? else {
        return Ok(ObjectWrite::NoBucket);
    };
    let old = object(tx, &r.namespace, &r.bucket, &r.key)?;
    if !put.condition.holds(old.as_ref()) {
        return Ok(ObjectWrite::ConditionFailed);
    }
    let freed = old.as_ref().map_or(0, |o| o.size);
    if let Some(quota) = b.quota_bytes
        && b.bytes.saturating_sub(freed).saturating_add(r.size) > quota
    {
        return Ok(ObjectWrite::OverQuota(format!(
            "bucket `{}` holds {} of its quota of {quota} bytes; this object of {} bytes does not fit",
            r.bucket, b.bytes, r.size
        )));
    }
    if let Some(limit) = put.namespace_limit {
        let used: i64 = tx
            .prepare_cached("SELECT coalesce(sum(bytes), 0) FROM buckets WHERE namespace = ?1")?
            .query_row([r.namespace.as_str()], |row| row.get(0))?;
        if unsigned(used).saturating_sub(freed).saturating_add(r.size) > limit {
            return Ok(ObjectWrite::OverQuota(format!(
                "namespace `{}` holds {} of its storage quota of {limit} bytes; this object of {} bytes does not fit",
                r.namespace,
                unsigned(used),
                r.size
            )));
        }
    }
    tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO objects ({OBJECT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))?
    .execute(params![
        r.namespace.as_str(),
        r.bucket.as_str(),
        r.key.as_bytes(),
        r.blob,
        clamp(r.size),
        r.etag,
        r.content_type,
        json(&r.metadata)?,
        r.modified_ms,
        json(&r.headers)?
    ])?;
    let added = if old.is_some() { 0 } else { 1 };
    count(tx, &r.namespace, &r.bucket, added, signed(r.size) - signed(freed))?;
    for event in &put.events {
        events::insert(tx, event)?;
    }
    Ok(ObjectWrite::Stored { replaced: old })
}

/// Changes a bucket's object and byte counts.
fn count(
    tx: &Transaction<'_>,
    namespace: &Namespace,
    bucket: &BucketName,
    objects: i64,
    bytes: i64,
) -> Result<(), OpError> {
    tx.prepare_cached(
        "UPDATE buckets SET objects = objects + ?3, bytes = max(bytes + ?4, 0) WHERE namespace = ?1 AND name = ?2",
    )?
    .execute(params![namespace.as_str(), bucket.as_str(), objects, bytes])?;
    Ok(())
}

/// Deletes an upload and its parts inside `tx`; the parts.
fn remove_upload(tx: &Transaction<'_>, id: &str) -> Result<Vec<PartRecord>, OpError> {
    let parts: Vec<PartRecord> = tx
        .prepare_cached(
            "DELETE FROM parts WHERE upload_id = ?1 RETURNING upload_id, number, blob, size, etag, modified_ms",
        )?
        .query_map([id], read_part)?
        .collect::<rusqlite::Result<_>>()?;
    tx.execute("DELETE FROM uploads WHERE upload_id = ?1", [id])?;
    Ok(parts)
}

/// The listing `query` asks for (see [`ListQuery`]): reads keys in order from a lower
/// bound, and past each common prefix jumps to the first key after all its keys.
fn list(
    conn: &Connection,
    namespace: &Namespace,
    bucket: &BucketName,
    query: &ListQuery,
) -> Result<Listing, OpError> {
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
        let at = find(rest, d)?;
        Some(key[..prefix.len() + at + d.len()].to_vec())
    };
    // The first key that may be listed (inclusive).
    let mut low: Vec<u8> = prefix.to_vec();
    if let Some(after) = query.after.as_deref().map(str::as_bytes) {
        let after_low = match common_prefix(after) {
            Some(cp) if cp == after => successor(&cp),
            _ => [after, &[0]].concat(),
        };
        low = low.max(after_low);
    }
    let mut out = Listing::default();
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {OBJECT_COLUMNS} FROM objects WHERE namespace = ?1 AND bucket = ?2 AND key >= ?3
         ORDER BY key LIMIT ?4"
    ))?;
    let mut last: Option<Vec<u8>> = None;
    'scan: loop {
        let want = (max + 1)
            .saturating_sub(out.objects.len() + out.common_prefixes.len())
            .max(1);
        let mut rows = statement.query(params![namespace.as_str(), bucket.as_str(), low, want as i64])?;
        let mut seen = 0;
        while let Some(row) = rows.next()? {
            seen += 1;
            let key: Vec<u8> = row.get(2)?;
            if !key.starts_with(prefix) {
                break 'scan;
            }
            let entries = out.objects.len() + out.common_prefixes.len();
            if entries >= max {
                out.truncated = max > 0;
                break 'scan;
            }
            if let Some(cp) = common_prefix(&key) {
                out.common_prefixes.push(text(cp.clone())?);
                low = successor(&cp);
                last = Some(cp);
                continue 'scan;
            }
            last = Some(key);
            out.objects.push(read_object(row)?);
        }
        if seen < want {
            break;
        }
        match &last {
            Some(key) => low = [key.as_slice(), &[0]].concat(),
            None => break,
        }
    }
    if out.truncated {
        out.next = last.map(text).transpose()?;
    }
    Ok(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The first byte string greater than every string that starts with `prefix`.
pub(super) fn successor(prefix: &[u8]) -> Vec<u8> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < 0xff {
            next.push(last + 1);
            return next;
        }
    }
    // All 0xff (never UTF-8): nothing is greater; an empty bound would list all.
    vec![0xff; prefix.len() + 1]
}

fn text(bytes: Vec<u8>) -> Result<String, OpError> {
    String::from_utf8(bytes)
        .map_err(|_| OpError::Store(StoreError::Corrupt("an object key is not UTF-8".into())))
}

fn bucket_exists(
    conn: &Connection,
    namespace: &Namespace,
    name: &BucketName,
) -> rusqlite::Result<Option<()>> {
    conn.prepare_cached("SELECT 1 FROM buckets WHERE namespace = ?1 AND name = ?2")?
        .query_row(params![namespace.as_str(), name.as_str()], |_| Ok(()))
        .optional()
}

fn bucket(
    conn: &Connection,
    namespace: &Namespace,
    name: &BucketName,
) -> Result<Option<BucketRecord>, OpError> {
    conn.prepare_cached(
        "SELECT namespace, name, created_ms, quota_bytes, objects, bytes, notifications FROM buckets
         WHERE namespace = ?1 AND name = ?2",
    )?
    .query_row(params![namespace.as_str(), name.as_str()], BucketRow::read)
    .optional()?
    .map(BucketRow::into_record)
    .transpose()
}

fn object(
    conn: &Connection,
    namespace: &Namespace,
    bucket: &BucketName,
    key: &str,
) -> Result<Option<ObjectRecord>, OpError> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {OBJECT_COLUMNS} FROM objects WHERE namespace = ?1 AND bucket = ?2 AND key = ?3"
        ))?
        .query_row(
            params![namespace.as_str(), bucket.as_str(), key.as_bytes()],
            |row| Ok(read_object(row)),
        )
        .optional()?;
    row.transpose()
}

fn upload(conn: &Connection, id: &str) -> Result<Option<UploadRecord>, OpError> {
    let row = conn
        .prepare_cached(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE upload_id = ?1"
        ))?
        .query_row([id], |row| Ok(read_upload(row)))
        .optional()?;
    row.transpose()
}

fn read_object(row: &rusqlite::Row<'_>) -> Result<ObjectRecord, OpError> {
    let namespace: String = row.get(0)?;
    let bucket: String = row.get(1)?;
    let metadata: String = row.get(7)?;
    let headers: String = row.get(9)?;
    Ok(ObjectRecord {
        namespace: namespace_of(&namespace)?,
        bucket: bucket_of(&bucket)?,
        key: text(row.get(2)?)?,
        blob: row.get(3)?,
        size: unsigned(row.get(4)?),
        etag: row.get(5)?,
        content_type: row.get(6)?,
        metadata: parse(&metadata)?,
        headers: parse(&headers)?,
        modified_ms: row.get(8)?,
    })
}

fn read_upload(row: &rusqlite::Row<'_>) -> Result<UploadRecord, OpError> {
    let namespace: String = row.get(1)?;
    let bucket: String = row.get(2)?;
    let metadata: String = row.get(6)?;
    let headers: String = row.get(7)?;
    Ok(UploadRecord {
        upload_id: row.get(0)?,
        namespace: namespace_of(&namespace)?,
        bucket: bucket_of(&bucket)?,
        key: text(row.get(3)?)?,
        created_ms: row.get(4)?,
        content_type: row.get(5)?,
        metadata: parse::<BTreeMap<String, String>>(&metadata)?,
        headers: parse::<BTreeMap<String, String>>(&headers)?,
    })
}

fn read_part(row: &rusqlite::Row<'_>) -> rusqlite::Result<PartRecord> {
    Ok(PartRecord {
        upload_id: row.get(0)?,
        number: row.get(1)?,
        blob: row.get(2)?,
        size: unsigned(row.get(3)?),
        etag: row.get(4)?,
        modified_ms: row.get(5)?,
    })
}

struct BucketRow {
    namespace: String,
    name: String,
    created_ms: i64,
    quota_bytes: Option<i64>,
    objects: i64,
    bytes: i64,
    notifications: String,
}

impl BucketRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<BucketRow> {
        Ok(BucketRow {
            namespace: row.get(0)?,
            name: row.get(1)?,
            created_ms: row.get(2)?,
            quota_bytes: row.get(3)?,
            objects: row.get(4)?,
            bytes: row.get(5)?,
            notifications: row.get(6)?,
        })
    }

    fn into_record(self) -> Result<BucketRecord, OpError> {
        Ok(BucketRecord {
            namespace: namespace_of(&self.namespace)?,
            name: bucket_of(&self.name)?,
            created_ms: self.created_ms,
            quota_bytes: self.quota_bytes.map(unsigned),
            objects: unsigned(self.objects),
            bytes: unsigned(self.bytes),
            notifications: parse(&self.notifications)?,
        })
    }
}

fn corrupt(message: String) -> OpError {
    OpError::Store(StoreError::Corrupt(message))
}

fn namespace_of(text: &str) -> Result<Namespace, OpError> {
    Namespace::new(text).map_err(|e| corrupt(format!("namespace: {e}")))
}

fn bucket_of(text: &str) -> Result<BucketName, OpError> {
    BucketName::new(text).map_err(|e| corrupt(format!("bucket: {e}")))
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, OpError> {
    serde_json::to_string(value).map_err(|e| OpError::Failed(format!("encoding: {e}")))
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, OpError> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("stored JSON: {e}")))
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn signed(n: u64) -> i64 {
    clamp(n)
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
