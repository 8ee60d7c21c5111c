//! The home of object bytes when nodes share a JetStream store ([`JetStreamBlobs`], a
//! [`BlobHome`]): the object store `{prefix}_blobs`, one object per blob, named by the
//! blob's id. Each node's [`crate::BlobDir`] caches it.

use super::JetStreamStore;
use crate::Result;
use crate::blobs::BlobHome;
use async_nats::jetstream::{self, object_store};
use futures::TryStreamExt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::io::AsyncWriteExt;

/// The blobs of one store in its JetStream object store. Cheap to clone.
#[derive(Clone)]
struct JetStreamBlobs {
    store: object_store::ObjectStore,
    name: String,
}

impl JetStreamStore {
    /// The shared home of object bytes: give it to each node's blob directory
    /// ([`crate::BlobDir::with_home`]) so that an object written through one node reads
    /// through every other.
    pub fn blob_home(&self) -> Arc<dyn BlobHome> {
        Arc::new(JetStreamBlobs {
            store: self.blobs.clone(),
            name: format!("{}_blobs", self.prefix),
        })
    }
}

/// Opens the object store `{prefix}_blobs`, making it if it does not exist.
pub(super) async fn open(context: &jetstream::Context, prefix: &str) -> Result<object_store::ObjectStore> {
    super::object_store(context, &format!("{prefix}_blobs")).await
}

impl JetStreamBlobs {
    fn error(&self, what: impl std::fmt::Display, e: impl std::fmt::Display) -> io::Error {
        io::Error::other(format!(
            "{what} in the JetStream object store `{}`: {e}",
            self.name
        ))
    }
}

#[async_trait::async_trait]
impl BlobHome for JetStreamBlobs {
    async fn put(&self, id: &str, path: &Path) -> io::Result<()> {
        let mut file = tokio::fs::File::open(path).await?;
        self.store
            .put(id, &mut file)
            .await
            .map_err(|e| self.error(format_args!("putting blob `{id}`"), e))?;
        Ok(())
    }

    async fn fetch(&self, id: &str, path: &Path) -> io::Result<()> {
        let mut object = match self.store.get(id).await {
            Ok(object) => object,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    self.error(format_args!("fetching blob `{id}`"), "no such blob"),
                ));
            }
            Err(e) => return Err(self.error(format_args!("fetching blob `{id}`"), e)),
        };
        let mut file = tokio::fs::File::create_new(path).await?;
        tokio::io::copy(&mut object, &mut file).await?;
        file.flush().await
    }

    async fn delete(&self, id: &str) -> io::Result<()> {
        match self.store.delete(id).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.error(format_args!("deleting blob `{id}`"), e)),
        }
    }

    async fn list(&self) -> io::Result<Vec<(String, SystemTime)>> {
        let listing = |e: &dyn std::fmt::Display| self.error("listing blobs", e);
        let infos: Vec<object_store::ObjectInfo> = self
            .store
            .list()
            .await
            .map_err(|e| listing(&e))?
            .try_collect()
            .await
            .map_err(|e| listing(&e))?;
        // One without a time (never, for a blob put by a node) counts as put just now,
        // so the sweep spares it.
        let now = SystemTime::now();
        Ok(infos
            .into_iter()
            .filter(|info| !info.deleted)
            .map(|info| (info.name, info.modified.map_or(now, SystemTime::from)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    //! Two nodes' blob directories over one home on a real nats-server: what one writes the
    //! other reads, concatenates and removes, and the sweep spares young and used blobs.
    use super::*;
    use crate::BlobDir;
    use std::collections::HashSet;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    use wisp_test_support::nats::NatsServer;

    async fn write(dir: &BlobDir, bytes: &[u8]) -> String {
        let mut w = dir.create();
        w.write(bytes).await.unwrap();
        w.finish().await.unwrap().id
    }

    async fn read(dir: &BlobDir, id: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut file = dir.open_blob(id).await.unwrap();
        file.read_to_end(&mut bytes).await.unwrap();
        bytes
    }

    #[tokio::test]
    async fn blob_dirs_sharing_a_home_read_concat_remove_and_sweep_each_others_blobs() {
        let nats = NatsServer::start();
        let store = JetStreamStore::connect(&nats.url, "blobs").await.unwrap();
        let (ta, tb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = BlobDir::open(ta.path()).unwrap().with_home(store.blob_home());
        let b = BlobDir::open(tb.path()).unwrap().with_home(store.blob_home());

        // Written through A, read through B (fetched once, then from B's cache).
        let big = vec![3u8; crate::blobs::WRITE_BUFFER * 2 + 7];
        let one = write(&a, &big).await;
        assert!(!b.path(&one).exists());
        let (first, second) = tokio::join!(read(&b, &one), read(&b, &one));
        assert!(first == big && second == big);
        assert!(b.path(&one).exists());

        // Parts written on different nodes, concatenated on a third that has neither.
        let two = write(&b, b"tail").await;
        let tc = tempfile::tempdir().unwrap();
        let c = BlobDir::open(tc.path()).unwrap().with_home(store.blob_home());
        let (joined, size) = c.concat(&[one.clone(), two.clone()]).await.unwrap();
        assert_eq!(size, big.len() as u64 + 4);
        let mut expected = big.clone();
        expected.extend_from_slice(b"tail");
        assert_eq!(read(&a, &joined).await, expected);

        // Removed through A: gone for a node that never cached it.
        a.remove(&two).await.unwrap();
        a.remove(&two).await.unwrap();
        let td = tempfile::tempdir().unwrap();
        let d = BlobDir::open(td.path()).unwrap().with_home(store.blob_home());
        let err = d.open_blob(&two).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");

        // The sweep spares blobs in use, and young ones whatever the metadata says.
        let in_use: HashSet<String> = [joined.clone()].into_iter().collect();
        let swept = d.sweep(in_use.clone()).await.unwrap();
        assert_eq!(swept.home, 0);
        let swept = d.sweep_with_grace(in_use, Duration::ZERO).await.unwrap();
        assert_eq!(swept.home, 1);
        let left: Vec<String> = store
            .blob_home()
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(left, vec![joined.clone()]);
        let err = d.open_blob(&one).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        assert_eq!(read(&d, &joined).await, expected);
    }
}
