//! Object bytes in files ([`BlobDir`]): each object and each part of a multipart upload
//! is one immutable blob, named by a fresh id, written to a temporary file, renamed
//! into place, and fsynced with its directory before any metadata names it. A blob
//! is never changed once written: an overwrite writes a new blob and swaps the
//! metadata, so a reader holding the old file reads the old object to its end, and a
//! reader never sees a mix. What no metadata names after a crash (a temporary file, a
//! blob written but never committed, a replaced blob not yet removed) goes at the next
//! start ([`BlobDir::sweep`]).
//!
//! Layout under the root: `tmp/ID` while written, `data/XX/ID` once durable (`XX`: the
//! id's last two characters, so that no directory holds millions of files).
//!
//! With a home ([`BlobHome`], [`BlobDir::with_home`]: the JetStream object store when
//! nodes share a NATS store) the directory is this node's cache of the home: a blob is
//! put in the home before [`BlobWriter::finish`] returns (so no metadata ever names a
//! blob the home lacks), fetched into the directory the first time this node opens it,
//! and removed from both. A blob never changes, so a cached copy never goes stale.
//!
//! Writing hashes the bytes (MD5, S3's ETag) and writes them on the blocking pool, a
//! buffer of [`WRITE_BUFFER`] bytes at a time, so neither hashing nor file I/O runs on
//! the async threads and memory stays bounded whatever the object's size.

use md5::{Digest, Md5};
use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How many bytes a writer gathers before handing them to the blocking pool.
pub const WRITE_BUFFER: usize = 256 * 1024;

/// How old a blob in the home must be before [`BlobDir::sweep`] removes it when no
/// metadata names it: another node may have put it and not yet committed the metadata
/// that names it.
pub const HOME_SWEEP_GRACE: Duration = Duration::from_secs(60 * 60);

/// Where blobs live beyond this node (shared by every node of a cluster); the
/// [`BlobDir`] is a cache of it. Blobs are named by their ids and never change once put.
/// Every method may take as long as moving the blob's bytes over the network.
#[async_trait::async_trait]
pub trait BlobHome: Send + Sync {
    /// Stores the finished, durable local file `path` as blob `id`; when it returns,
    /// every node can fetch the blob.
    async fn put(&self, id: &str, path: &Path) -> io::Result<()>;

    /// Writes blob `id` into the new file `path` (which the caller syncs and renames);
    /// an error of kind [`io::ErrorKind::NotFound`] when the home has no such blob.
    async fn fetch(&self, id: &str, path: &Path) -> io::Result<()>;

    /// Removes blob `id`; one already gone is no error.
    async fn delete(&self, id: &str) -> io::Result<()>;

    /// Every blob of the home, with when it was put.
    async fn list(&self) -> io::Result<Vec<(String, SystemTime)>>;
}

/// The directory of blobs, with its home if it has one. Cheap to clone.
#[derive(Clone)]
pub struct BlobDir {
    root: PathBuf,
    home: Option<Arc<dyn BlobHome>>,
}

impl fmt::Debug for BlobDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobDir")
            .field("root", &self.root)
            .field("home", &self.home.is_some())
            .finish()
    }
}

/// A blob made durable: its id, size and MD5.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenBlob {
    pub id: String,
    pub size: u64,
    pub md5: [u8; 16],
}

/// What [`BlobDir::sweep`] removed: local temporary files and blobs, and blobs of the
/// home.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub temporary: usize,
    pub orphaned: usize,
    pub home: usize,
}

impl BlobDir {
    /// Opens (creating) the directory of blobs at `root`.
    pub fn open(root: &Path) -> io::Result<BlobDir> {
        std::fs::create_dir_all(root.join("tmp"))?;
        std::fs::create_dir_all(root.join("data"))?;
        Ok(BlobDir {
            root: root.to_path_buf(),
            home: None,
        })
    }

    /// This directory as the local cache of `home`: blobs are put there when written,
    /// fetched from there when missing here, and removed from both.
    pub fn with_home(mut self, home: Arc<dyn BlobHome>) -> BlobDir {
        self.home = Some(home);
        self
    }

    /// Where blob `id` lives once durable.
    pub fn path(&self, id: &str) -> PathBuf {
        let shard = id.get(id.len().saturating_sub(2)..).unwrap_or("00");
        self.root.join("data").join(shard).join(id)
    }

    /// Starts a new blob (its file is created with its first bytes).
    pub fn create(&self) -> BlobWriter {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let tmp = self.root.join("tmp").join(&id);
        BlobWriter {
            dir: self.clone(),
            id,
            tmp,
            state: Some(Written {
                file: None,
                md5: Md5::new(),
            }),
            in_flight: None,
            buffer: Vec::with_capacity(WRITE_BUFFER),
            size: 0,
            finished: false,
        }
    }

    /// Opens a durable blob for reading, first fetching it from the home when this node
    /// has no copy. An error of kind [`io::ErrorKind::NotFound`] when there is no such
    /// blob.
    pub async fn open_blob(&self, id: &str) -> io::Result<tokio::fs::File> {
        let path = self.path(id);
        match tokio::fs::File::open(&path).await {
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.home.is_some() => {
                self.fetch(id).await?;
                tokio::fs::File::open(&path).await
            }
            opened => opened,
        }
    }

    /// Copies blob `id` from the home into place: into a temporary file of its own,
    /// synced, then renamed, so a reader never sees part of it and two fetches of one
    /// blob at once each leave a whole copy (the same bytes) in place.
    async fn fetch(&self, id: &str) -> io::Result<()> {
        let Some(home) = &self.home else {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("no blob `{id}`")));
        };
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{id}.{}", uuid::Uuid::now_v7().simple()));
        if let Err(e) = home.fetch(id, &tmp).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        let path = self.path(id);
        let placed = blocking({
            let tmp = tmp.clone();
            move || {
                File::open(&tmp)?.sync_all()?;
                place(&tmp, &path)
            }
        })
        .await;
        if placed.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        placed
    }

    /// Removes a blob, here and from the home; one already gone is no error.
    pub async fn remove(&self, id: &str) -> io::Result<()> {
        match tokio::fs::remove_file(self.path(id)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        match &self.home {
            Some(home) => home.delete(id).await,
            None => Ok(()),
        }
    }

    /// Writes the blobs `ids` one after another into a new blob (a multipart upload's
    /// parts into its object), copying in the kernel where it can; its id and size.
    /// Its MD5 is not computed (a multipart ETag is made of the parts' MD5s).
    /// With a home, parts this node has no copy of are fetched first, and the new blob is
    /// put in the home.
    pub async fn concat(&self, ids: &[String]) -> io::Result<(String, u64)> {
        if self.home.is_some() {
            for id in ids {
                if !tokio::fs::try_exists(self.path(id)).await? {
                    self.fetch(id).await?;
                }
            }
        }
        let mut writer = self.create();
        let sources: Vec<PathBuf> = ids.iter().map(|id| self.path(id)).collect();
        let tmp = writer.tmp.clone();
        let (file, size) = blocking(move || {
            let mut file = File::create_new(&tmp)?;
            let mut size = 0;
            for source in sources {
                size += io::copy(&mut File::open(source)?, &mut file)?;
            }
            Ok((file, size))
        })
        .await?;
        if let Some(state) = &mut writer.state {
            state.file = Some(file);
        }
        writer.size = size;
        let written = writer.finish().await?;
        Ok((written.id, written.size))
    }

    /// Removes every temporary file and every blob not in `in_use`: run at start, before
    /// any write, with what the metadata names. In the home it removes only the blobs
    /// not in use that are older than [`HOME_SWEEP_GRACE`]: a younger one may be another
    /// node's, written but not yet named by the metadata it is about to commit.
    pub async fn sweep(&self, in_use: HashSet<String>) -> io::Result<Swept> {
        self.sweep_with_grace(in_use, HOME_SWEEP_GRACE).await
    }

    /// [`BlobDir::sweep`], sparing in the home the blobs put less than `grace` ago.
    pub async fn sweep_with_grace(&self, in_use: HashSet<String>, grace: Duration) -> io::Result<Swept> {
        let mut swept = self.sweep_local(&in_use).await?;
        if let Some(home) = &self.home {
            let now = SystemTime::now();
            for (id, put) in home.list().await? {
                let old = now.duration_since(put).is_ok_and(|age| age >= grace);
                if old && !in_use.contains(&id) {
                    home.delete(&id).await?;
                    swept.home += 1;
                }
            }
        }
        Ok(swept)
    }

    /// The local part of the sweep.
    async fn sweep_local(&self, in_use: &HashSet<String>) -> io::Result<Swept> {
        let root = self.root.clone();
        let in_use = in_use.clone();
        blocking(move || {
            let mut swept = Swept::default();
            for entry in std::fs::read_dir(root.join("tmp"))? {
                std::fs::remove_file(entry?.path())?;
                swept.temporary += 1;
            }
            for shard in std::fs::read_dir(root.join("data"))? {
                let shard = shard?;
                if !shard.file_type()?.is_dir() {
                    continue;
                }
                for entry in std::fs::read_dir(shard.path())? {
                    let entry = entry?;
                    let name = entry.file_name();
                    if !name.to_str().is_some_and(|n| in_use.contains(n)) {
                        std::fs::remove_file(entry.path())?;
                        swept.orphaned += 1;
                    }
                }
            }
            Ok(swept)
        })
        .await
    }
}

/// A blob being written. Dropped unfinished, its temporary file is removed.
///
/// The file is created with the first buffer written (an object of one buffer is
/// created, hashed, written, fsynced and renamed in one trip to the blocking pool), and
/// a full buffer is hashed and written while the next one fills: the trip of buffer
/// *n* overlaps receiving buffer *n + 1*.
pub struct BlobWriter {
    dir: BlobDir,
    id: String,
    tmp: PathBuf,
    /// The file and the hash so far, when no write is in flight.
    state: Option<Written>,
    /// The write in flight: it hands the file and hash back, and its buffer to reuse.
    in_flight: Option<WriteInFlight>,
    buffer: Vec<u8>,
    size: u64,
    finished: bool,
}

/// A buffer being hashed and written on the blocking pool.
type WriteInFlight = tokio::task::JoinHandle<io::Result<(Written, Vec<u8>)>>;

/// What the blocking side holds between writes.
struct Written {
    file: Option<File>,
    md5: Md5,
}

impl Written {
    /// Hashes and appends `bytes`, creating the file at `tmp` on the first write.
    fn append(&mut self, tmp: &Path, bytes: &[u8]) -> io::Result<()> {
        self.md5.update(bytes);
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(File::create_new(tmp)?),
        };
        file.write_all(bytes)
    }
}

impl BlobWriter {
    /// Appends bytes.
    pub async fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let room = WRITE_BUFFER - self.buffer.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.buffer.extend_from_slice(now);
            self.size += now.len() as u64;
            bytes = later;
            if self.buffer.len() == WRITE_BUFFER {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// The bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Waits for the write in flight, if any: the state it hands back.
    async fn settle(&mut self) -> io::Result<Written> {
        if let Some(write) = self.in_flight.take() {
            let (state, mut spare) = write
                .await
                .map_err(|e| io::Error::other(format!("a blob task failed: {e}")))??;
            spare.clear();
            if self.buffer.capacity() < WRITE_BUFFER {
                self.buffer = spare;
            }
            return Ok(state);
        }
        self.state
            .take()
            .ok_or_else(|| io::Error::other("the blob is closed"))
    }

    /// Hands the full buffer to the blocking pool and goes on filling another.
    async fn flush(&mut self) -> io::Result<()> {
        let mut state = self.settle().await?;
        let buffer = std::mem::replace(&mut self.buffer, Vec::with_capacity(WRITE_BUFFER));
        let tmp = self.tmp.clone();
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            state.append(&tmp, &buffer)?;
            Ok((state, buffer))
        }));
        Ok(())
    }

    /// Makes the blob durable: writes what is buffered, renames the file into place,
    /// and fsyncs it and its directory.
    pub async fn finish(mut self) -> io::Result<WrittenBlob> {
        let mut state = self.settle().await?;
        let buffer = std::mem::take(&mut self.buffer);
        let (tmp, path) = (self.tmp.clone(), self.dir.path(&self.id));
        let md5 = blocking(move || {
            state.append(&tmp, &buffer)?;
            let file = state
                .file
                .take()
                .ok_or_else(|| io::Error::other("the blob has no file"))?;
            // Renamed before it is synced: nothing names the blob until both the file
            // and its directory entry are durable (the caller commits metadata after
            // this returns), and a blob a crash leaves unnamed is swept at start. One
            // journal commit then makes both durable (the file's fsync carries the
            // rename; the directory's finds little left to do).
            rename(&tmp, &path)?;
            file.sync_all()?;
            drop(file);
            sync_parent(&path)?;
            Ok(state.md5.finalize())
        })
        .await?;
        self.finished = true;
        if let Some(home) = &self.dir.home {
            let path = self.dir.path(&self.id);
            if let Err(e) = home.put(&self.id, &path).await {
                // Never named: removed now rather than at the next sweep.
                let _ = tokio::fs::remove_file(&path).await;
                return Err(e);
            }
        }
        Ok(WrittenBlob {
            id: self.id.clone(),
            size: self.size,
            md5: md5.into(),
        })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let tmp = std::mem::take(&mut self.tmp);
        match (self.in_flight.take(), tokio::runtime::Handle::try_current()) {
            // A write in flight may still create the file: remove it once it is done.
            (Some(write), Ok(runtime)) => {
                runtime.spawn(async move {
                    let _ = write.await;
                    let _ = tokio::fs::remove_file(tmp).await;
                });
            }
            // (Without a runtime a write in flight cannot finish later: the file stays
            // a temporary one, which the next start's sweep removes.)
            _ => {
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }
}

/// Renames `tmp` to the blob path `path`, making its shard's directory on its first blob.
fn rename(tmp: &Path, path: &Path) -> io::Result<()> {
    if let Err(e) = std::fs::rename(tmp, path) {
        if e.kind() != io::ErrorKind::NotFound {
            return Err(e);
        }
        let parent = path
            .parent()
            .ok_or_else(|| io::Error::other("a blob path has no parent"))?;
        std::fs::create_dir_all(parent)?;
        std::fs::rename(tmp, path)?;
    }
    Ok(())
}

/// Fsyncs the directory holding `path`.
fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = path
        .parent()
        .ok_or_else(|| io::Error::other("a blob path has no parent"))?;
    File::open(parent)?.sync_all()
}

/// Renames the synced file `tmp` into place at `path` and makes the rename durable.
fn place(tmp: &Path, path: &Path) -> io::Result<()> {
    rename(tmp, path)?;
    sync_parent(path)
}

async fn blocking<T: Send + 'static>(op: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(op)
        .await
        .map_err(|e| io::Error::other(format!("a blob task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_are_written_hashed_concatenated_and_swept() -> io::Result<()> {
        let temp = tempfile::tempdir()?;
        let dir = BlobDir::open(temp.path())?;
        let mut w = dir.create();
        let big = vec![7u8; WRITE_BUFFER + 10];
        w.write(b"hello ").await?;
        w.write(&big).await?;
        let a = w.finish().await?;
        assert_eq!(a.size, 6 + big.len() as u64);
        let mut md5 = Md5::new();
        md5.update(b"hello ");
        md5.update(&big);
        assert_eq!(a.md5, <[u8; 16]>::from(md5.finalize()));
        let mut w = dir.create();
        w.write(b"world").await?;
        let b = w.finish().await?;
        let (ab, size) = dir.concat(&[a.id.clone(), b.id.clone()]).await?;
        let bytes = std::fs::read(dir.path(&ab))?;
        assert_eq!((bytes.len() as u64, size), (a.size + 5, a.size + 5));
        assert!(bytes.ends_with(b"world"));
        // An unfinished writer leaves nothing; a crash's leftovers go at the sweep.
        let mut w = dir.create();
        w.write(b"gone").await?;
        drop(w);
        std::fs::write(temp.path().join("tmp").join("crashed"), b"x")?;
        let swept = dir.sweep([ab.clone()].into_iter().collect()).await?;
        assert_eq!(
            swept,
            Swept {
                temporary: 1,
                orphaned: 2,
                home: 0
            }
        );
        assert!(dir.path(&ab).exists() && !dir.path(&a.id).exists());
        Ok(())
    }
}
