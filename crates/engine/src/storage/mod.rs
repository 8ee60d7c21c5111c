//! Object storage: buckets and objects of a namespace, served to the S3 listener, the
//! `/v1` API and (later) guests. This module owns the operations; [`objects`] puts,
//! reads, copies, lists and deletes objects, [`multipart`] runs multipart uploads and
//! [`notify`] turns a write into the S3 event notifications its subscribers get.
//!
//! # Design
//!
//! Bytes stream from the request into a blob file and from a blob file into the
//! response: an object is never held whole in memory. A write makes its blob durable
//! first ([`wisp_store::BlobDir`]), then commits the metadata together with the
//! events it causes ([`wisp_store::Objects`]), then removes the blob it replaced. A
//! failure before the commit removes the new blob; a crash leaves at most an orphan,
//! which the sweep at start removes ([`Engine::sweep_blobs`]).

mod multipart;
mod notify;
mod objects;

pub use objects::{ByteRange, ByteStream, ObjectInfo, ObjectPut, ObjectRead, ReadConditions};

use crate::Engine;
use std::collections::HashSet;
use wisp_core::{BucketName, Namespace, NotificationRule, ObjectError};
use wisp_store::{BlobDir, BucketDeleted, BucketRecord, Condition, ObjectDeleted, StoreError};

/// Where object storage keeps its bytes. (Where functions reach the S3 listener is the
/// process runtime's to say: it depends on the instance's network.)
#[derive(Clone, Debug)]
pub struct StorageConfig {
    pub blobs: BlobDir,
}

fn store_error(e: StoreError) -> ObjectError {
    ObjectError::Internal(e.to_string())
}

fn io_error(what: &str, e: std::io::Error) -> ObjectError {
    ObjectError::Internal(format!("{what}: {e}"))
}

impl From<ObjectError> for crate::EngineError {
    fn from(e: ObjectError) -> Self {
        match e {
            ObjectError::Internal(cause) => crate::EngineError::internal(cause),
            e => crate::EngineError::new(e.code(), e.to_string()),
        }
    }
}

impl Engine {
    /// Removes what no metadata names from the blob directory (temporary files of
    /// writes a crash cut short, blobs written but never committed, replaced blobs not
    /// yet removed): called once at start, before any write.
    pub(crate) async fn sweep_blobs(&self) -> Result<(), crate::EngineError> {
        let in_use: HashSet<String> = self.store.blobs_in_use().await?.into_iter().collect();
        let swept = self
            .storage
            .blobs
            .sweep(in_use)
            .await
            .map_err(|e| crate::EngineError::internal(format!("sweeping the object directory: {e}")))?;
        if swept.temporary + swept.orphaned > 0 {
            tracing::info!(
                "object storage: removed {} unfinished and {} orphaned blob(s) left by an earlier run",
                swept.temporary,
                swept.orphaned
            );
        }
        Ok(())
    }

    /// Creates a bucket in `namespace`.
    pub async fn create_bucket(
        &self,
        namespace: &Namespace,
        name: &BucketName,
        quota_bytes: Option<u64>,
    ) -> Result<BucketRecord, ObjectError> {
        let record = BucketRecord {
            namespace: namespace.clone(),
            name: name.clone(),
            created_ms: wisp_core::wall::now_ms(),
            quota_bytes,
            objects: 0,
            bytes: 0,
            notifications: Vec::new(),
        };
        if !self.store.create_bucket(&record).await.map_err(store_error)? {
            return Err(ObjectError::BucketExists(name.to_string()));
        }
        Ok(record)
    }

    /// A bucket of `namespace`.
    pub async fn bucket(
        &self,
        namespace: &Namespace,
        name: &BucketName,
    ) -> Result<BucketRecord, ObjectError> {
        self.store
            .get_bucket(namespace, name)
            .await
            .map_err(store_error)?
            .ok_or_else(|| ObjectError::NoSuchBucket(name.to_string()))
    }

    /// The buckets of `namespace`, by name.
    pub async fn buckets(&self, namespace: &Namespace) -> Result<Vec<BucketRecord>, ObjectError> {
        self.store
            .list_buckets(Some(namespace))
            .await
            .map_err(store_error)
    }

    /// Deletes an empty bucket (and its unfinished uploads).
    pub async fn delete_bucket(&self, namespace: &Namespace, name: &BucketName) -> Result<(), ObjectError> {
        match self
            .store
            .delete_bucket(namespace, name)
            .await
            .map_err(store_error)?
        {
            BucketDeleted::Deleted { parts } => {
                self.remove_blobs(parts.into_iter().map(|p| p.blob)).await;
                Ok(())
            }
            BucketDeleted::NotEmpty => Err(ObjectError::BucketNotEmpty(name.to_string())),
            BucketDeleted::NotFound => Err(ObjectError::NoSuchBucket(name.to_string())),
        }
    }

    /// Deletes a bucket with everything in it (a namespace deleted with force). Its
    /// objects go without events: nothing of the namespace is left to receive them.
    pub(crate) async fn purge_bucket(
        &self,
        namespace: &Namespace,
        name: &BucketName,
    ) -> Result<(), ObjectError> {
        loop {
            let query = wisp_store::ListQuery {
                max_keys: wisp_core::Limits::MAX_KEYS,
                ..Default::default()
            };
            let page = self.list_objects(namespace, name, query).await?;
            for object in &page.objects {
                if let ObjectDeleted::Deleted { removed } = self
                    .store
                    .delete_object(namespace, name, &object.key, Condition::None, Vec::new())
                    .await
                    .map_err(store_error)?
                {
                    self.remove_blobs([removed.blob]).await;
                }
            }
            if page.objects.is_empty() {
                break;
            }
        }
        self.delete_bucket(namespace, name).await
    }

    /// Replaces a bucket's notification rules. Every rule must name a function of the
    /// namespace (as S3 validates each destination).
    pub async fn set_bucket_notifications(
        &self,
        namespace: &Namespace,
        name: &BucketName,
        rules: Vec<NotificationRule>,
    ) -> Result<(), ObjectError> {
        for rule in &rules {
            if self.function(namespace, &rule.function).is_none() {
                return Err(ObjectError::InvalidArgument(format!(
                    "Unable to validate the following destination configurations: rule `{}` names function `{}`, \
                     which namespace `{namespace}` does not have",
                    rule.id, rule.function
                )));
            }
            if rule.events.is_empty() {
                return Err(ObjectError::InvalidArgument(format!(
                    "rule `{}` names no events",
                    rule.id
                )));
            }
        }
        if !self
            .store
            .set_notifications(namespace, name, &rules)
            .await
            .map_err(store_error)?
        {
            return Err(ObjectError::NoSuchBucket(name.to_string()));
        }
        Ok(())
    }

    /// The chain depth a write by `caller` gives the events it causes: one hop past the
    /// invocation making it (a wasm guest at the platform address), past the deepest
    /// event the caller's function version is running (a function credential), or 0 (a
    /// person's key).
    pub fn write_depth(&self, caller: &crate::Caller) -> u32 {
        if let Some(depth) = caller.call_depth {
            return depth.saturating_add(1);
        }
        match self.function_credentials.get(&caller.key_id) {
            Some(credential) => credential.depths.deepest().saturating_add(1),
            None => 0,
        }
    }

    /// The most bytes a namespace's buckets may hold together: its own quota, else the
    /// server's.
    pub(crate) fn storage_limit(&self, namespace: &Namespace) -> Option<u64> {
        self.identity
            .storage_quota(namespace)
            .or(self.limits.namespace_storage_bytes)
    }

    /// [`Engine::remove_blobs`] in the background, not holding up an answer.
    pub(crate) fn discard_blobs(&self, blobs: impl IntoIterator<Item = String>) {
        let blobs: Vec<String> = blobs.into_iter().collect();
        if blobs.is_empty() {
            return;
        }
        let dir = self.storage.blobs.clone();
        tokio::spawn(async move {
            for blob in blobs {
                if let Err(e) = dir.remove(&blob).await {
                    tracing::warn!(
                        "object storage: cannot remove blob {blob} (the next start removes it): {e}"
                    );
                }
            }
        });
    }

    /// Removes blobs no metadata names any more; a failure is logged (the next start's
    /// sweep removes what is left).
    async fn remove_blobs(&self, blobs: impl IntoIterator<Item = String>) {
        for blob in blobs {
            if let Err(e) = self.storage.blobs.remove(&blob).await {
                tracing::warn!("object storage: cannot remove blob {blob} (the next start removes it): {e}");
            }
        }
    }
}
