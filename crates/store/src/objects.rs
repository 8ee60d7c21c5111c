//! The [`Objects`] concern: buckets, the metadata of the objects they hold, multipart
//! uploads and their parts. The bytes are not here: each object and each part names a
//! blob ([`crate::BlobDir`]), written and made durable before its metadata is
//! committed, and removed only after the metadata that named it is gone.
//!
//! # Contract
//!
//! - An object's metadata changes whole: a put replaces the record (and so the blob
//!   it names) in one step; a reader sees the old record or the new one.
//! - A write carries the events it causes ([`PutObject::events`], the events of a
//!   delete), and a stored change never loses its events. SQLite records both in one
//!   transaction, so there is never an event for an object that was not stored either.
//!   A backend without transactions across concerns (JetStream) records the events first,
//!   deduplicated by id, and then the change by compare-and-set: a failure in between, or
//!   a conditional write another node wins after the events were recorded, leaves an
//!   event for an object that is not there (as an event for an object deleted since
//!   would be), never a stored object without its event.
//! - A bucket's byte count changes with its objects, and a put that would take the
//!   bucket past its quota, or the namespace past the limit the caller gives, stores
//!   nothing ([`ObjectWrite::OverQuota`]). On JetStream, a compare-and-set on the
//!   bucket's record revision keeps the count exact.
//! - What a write replaced or removed (the old record, the parts of a completed
//!   upload) is returned, so the caller removes those blobs once the write is durable.
//!   A crash before that leaves blobs no record names; [`Objects::blobs_in_use`] lets
//!   the start-up sweep find and remove them.

use crate::{NewEvent, Result, UnixMillis};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use wisp_core::{BucketName, Namespace, NotificationRule};

/// A bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    pub namespace: Namespace,
    pub name: BucketName,
    pub created_ms: UnixMillis,
    /// The most bytes its objects may hold together; `None`: no cap of its own.
    pub quota_bytes: Option<u64>,
    /// How many objects it holds, and their bytes.
    pub objects: u64,
    pub bytes: u64,
    /// Rules set through S3's bucket notification configuration.
    pub notifications: Vec<NotificationRule>,
}

/// An object's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub namespace: Namespace,
    pub bucket: BucketName,
    pub key: String,
    /// The blob holding its bytes.
    pub blob: String,
    pub size: u64,
    /// The ETag without quotes: the MD5 of the bytes in hex, or for a multipart upload
    /// the MD5 of the parts' MD5s followed by `-N`.
    pub etag: String,
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*`), names in lowercase.
    pub metadata: BTreeMap<String, String>,
    /// The HTTP headers it is served with ([`wisp_core::object::OBJECT_HEADERS`]:
    /// `cache-control`, `expires`, …), names in lowercase.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub modified_ms: UnixMillis,
}

/// A multipart upload in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadRecord {
    pub namespace: Namespace,
    pub bucket: BucketName,
    pub key: String,
    pub upload_id: String,
    pub created_ms: UnixMillis,
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// The headers the completed object is served with (as [`ObjectRecord::headers`]).
    pub headers: BTreeMap<String, String>,
}

/// One uploaded part of a multipart upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartRecord {
    pub upload_id: String,
    pub number: u32,
    pub blob: String,
    pub size: u64,
    /// The part's MD5 in hex.
    pub etag: String,
    pub modified_ms: UnixMillis,
}

/// What a put or a delete checks, against the object the key holds, before it changes
/// anything: inside the write's transaction, so no other write comes between.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Condition {
    #[default]
    None,
    /// Only if no object has the key (`If-None-Match: *`).
    Absent,
    /// Only if an object has the key, whatever its ETag (`If-Match: *`).
    Present,
    /// Only if the current object's ETag is this (`If-Match`), without quotes.
    EtagIs(String),
}

impl Condition {
    /// Whether the condition holds for `current`, the object the key holds now.
    pub fn holds(&self, current: Option<&ObjectRecord>) -> bool {
        match (self, current) {
            (Condition::None, _) => true,
            (Condition::Absent, current) => current.is_none(),
            (Condition::Present, current) => current.is_some(),
            (Condition::EtagIs(etag), Some(current)) => current.etag == *etag,
            (Condition::EtagIs(_), None) => false,
        }
    }
}

/// A put of an object's metadata, with the events it causes.
#[derive(Clone, Debug)]
pub struct PutObject {
    pub record: ObjectRecord,
    pub events: Vec<NewEvent>,
    pub condition: Condition,
    /// The most bytes the namespace's buckets may hold together after the put.
    pub namespace_limit: Option<u64>,
}

/// What a put did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectWrite {
    /// Stored; the record it replaced, whose blob the caller removes.
    Stored {
        replaced: Option<ObjectRecord>,
    },
    NoBucket,
    /// Not stored: it would take the bucket (or the namespace) past its quota.
    OverQuota(String),
    /// Not stored: the [`Condition`] does not hold.
    ConditionFailed,
}

/// What a delete did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectDeleted {
    /// Deleted; the record it removed, whose blob the caller removes.
    Deleted { removed: Box<ObjectRecord> },
    /// The key held nothing (whatever the condition): nothing changed.
    NotFound,
    /// Not deleted: the [`Condition`] does not hold for the object the key holds.
    ConditionFailed,
}

/// A listing's question: keys after `after` that start with `prefix`, at most
/// `max_keys` entries (objects and common prefixes together), keys that hold
/// `delimiter` after the prefix rolled up into common prefixes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub after: Option<String>,
    pub max_keys: u32,
}

/// A listing's answer, in key order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub objects: Vec<ObjectRecord>,
    pub common_prefixes: Vec<String>,
    /// Whether more follow; then `next` is where the next page starts after.
    pub truncated: bool,
    pub next: Option<String>,
}

/// What recording a part did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartWrite {
    /// Recorded; the part of the same number it replaced, whose blob the caller removes.
    Stored {
        replaced: Option<PartRecord>,
    },
    NoUpload,
}

/// What deleting a bucket did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BucketDeleted {
    /// Deleted, with the parts of its unfinished uploads, whose blobs the caller removes.
    Deleted {
        parts: Vec<PartRecord>,
    },
    NotEmpty,
    NotFound,
}

/// Buckets, object metadata and multipart uploads. See the module docs.
#[async_trait]
pub trait Objects: Send + Sync + 'static {
    /// Creates a bucket; `false` when the namespace has one of that name already.
    async fn create_bucket(&self, bucket: &BucketRecord) -> Result<bool>;

    async fn get_bucket(&self, namespace: &Namespace, name: &BucketName) -> Result<Option<BucketRecord>>;

    /// The buckets of `namespace` (of every namespace with `None`), by name.
    async fn list_buckets(&self, namespace: Option<&Namespace>) -> Result<Vec<BucketRecord>>;

    /// Deletes an empty bucket and its unfinished uploads.
    async fn delete_bucket(&self, namespace: &Namespace, name: &BucketName) -> Result<BucketDeleted>;

    /// Replaces a bucket's notification rules; `false` when there is no such bucket.
    async fn set_notifications(
        &self,
        namespace: &Namespace,
        name: &BucketName,
        rules: &[NotificationRule],
    ) -> Result<bool>;

    /// Stores an object's metadata with its events; see [`ObjectWrite`].
    async fn put_object(&self, put: PutObject) -> Result<ObjectWrite>;

    async fn get_object(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        key: &str,
    ) -> Result<Option<ObjectRecord>>;

    /// A page of a bucket's objects; `None` when there is no such bucket. Keys compare
    /// as bytes of UTF-8, as S3 orders them.
    async fn list_objects(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        query: &ListQuery,
    ) -> Result<Option<Listing>>;

    /// Deletes an object if `condition` holds for it; see [`ObjectDeleted`]. The
    /// `events` are recorded only when an object was deleted.
    async fn delete_object(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        key: &str,
        condition: Condition,
        events: Vec<NewEvent>,
    ) -> Result<ObjectDeleted>;

    /// Starts a multipart upload; `false` when there is no such bucket.
    async fn create_upload(&self, upload: &UploadRecord) -> Result<bool>;

    async fn get_upload(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        upload_id: &str,
    ) -> Result<Option<UploadRecord>>;

    /// Records a part, replacing an earlier part of the same number.
    async fn put_part(&self, part: &PartRecord) -> Result<PartWrite>;

    /// An upload's parts numbered above `after`, in order, at most `max`.
    async fn list_parts(&self, upload_id: &str, after: u32, max: u32) -> Result<Vec<PartRecord>>;

    /// A bucket's unfinished uploads whose keys start with `prefix`, by key and then
    /// by creation, after `(key, upload id)` when given, at most `max`.
    async fn list_uploads(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        prefix: &str,
        after: Option<(String, String)>,
        max: u32,
    ) -> Result<Vec<UploadRecord>>;

    /// Completes an upload: stores `put` (as [`Objects::put_object`]) and removes the
    /// upload with all its parts, which it returns. An upload that no longer exists
    /// stores nothing (`None`); neither does a put that is refused (the upload stays).
    async fn complete_upload(
        &self,
        upload_id: &str,
        put: PutObject,
    ) -> Result<Option<(ObjectWrite, Vec<PartRecord>)>>;

    /// Removes an upload and its parts (returned); `None` when there is no such upload.
    async fn abort_upload(
        &self,
        namespace: &Namespace,
        bucket: &BucketName,
        upload_id: &str,
    ) -> Result<Option<Vec<PartRecord>>>;

    /// Every blob an object or a part names: what the start-up sweep keeps.
    async fn blobs_in_use(&self) -> Result<Vec<String>>;

    /// The bytes a namespace's buckets hold together.
    async fn storage_used(&self, namespace: &Namespace) -> Result<u64>;
}
