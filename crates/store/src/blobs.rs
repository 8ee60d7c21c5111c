//! Object bytes in files ([`BlobDir`]): each object and each part of a multipart upload
//! is one immutable blob, named by a fresh id, written to a temporary file, fsynced and
//! renamed into place (and its directory fsynced) before any metadata names it. A blob
//! is never changed once written: an overwrite writes a new blob and swaps the
//! metadata, so a reader holding the old file reads the old object to its end, and a
//! reader never sees a mix. What no metadata names after a crash (a temporary file, a
//! blob written but never committed, a replaced blob not yet removed) goes at the next
//! start ([`BlobDir::sweep`]).
//!
//! Layout under the root: `tmp/ID` while written, `data/XX/ID` once durable (`XX`: the
//! id's last two characters, so that no directory holds millions of files).
//!
//! Writing hashes the bytes (MD5, S3's ETag) and writes them on the blocking pool, a
//! buffer of [`WRITE_BUFFER`] bytes at a time, so neither hashing nor file I/O runs on
//! the async threads and memory stays bounded whatever the object's size.

use md5::{Digest, Md5};
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// How many bytes a writer gathers before handing them to the blocking pool.
pub const WRITE_BUFFER: usize = 1024 * 1024;

/// The directory of blobs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct BlobDir {
    root: PathBuf,
}

/// A blob made durable: its id, size and MD5.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenBlob {
    pub id: String,
    pub size: u64,
    pub md5: [u8; 16],
}

/// What [`BlobDir::sweep`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub temporary: usize,
    pub orphaned: usize,
}

impl BlobDir {
    /// Opens (creating) the directory of blobs at `root`.
    pub fn open(root: &Path) -> io::Result<BlobDir> {
        std::fs::create_dir_all(root.join("tmp"))?;
        std::fs::create_dir_all(root.join("data"))?;
        Ok(BlobDir {
            root: root.to_path_buf(),
        })
    }

    /// Where blob `id` lives once durable.
    pub fn path(&self, id: &str) -> PathBuf {
        let shard = id.get(id.len().saturating_sub(2)..).unwrap_or("00");
        self.root.join("data").join(shard).join(id)
    }

    /// Starts a new blob.
    pub async fn create(&self) -> io::Result<BlobWriter> {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let tmp = self.root.join("tmp").join(&id);
        let path = tmp.clone();
        let file = blocking(move || File::create_new(&path)).await?;
        Ok(BlobWriter {
            dir: self.clone(),
            id,
            tmp,
            file: Some(file),
            md5: Some(Md5::new()),
            buffer: Vec::with_capacity(WRITE_BUFFER),
            size: 0,
            finished: false,
        })
    }

    /// Opens a durable blob for reading.
    pub async fn open_blob(&self, id: &str) -> io::Result<tokio::fs::File> {
        tokio::fs::File::open(self.path(id)).await
    }

    /// Removes a blob; one already gone is no error.
    pub async fn remove(&self, id: &str) -> io::Result<()> {
        match tokio::fs::remove_file(self.path(id)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Writes the blobs `ids` one after another into a new blob (a multipart upload's
    /// parts into its object), copying in the kernel where it can; its id and size.
    /// Its MD5 is not computed (a multipart ETag is made of the parts' MD5s).
    pub async fn concat(&self, ids: &[String]) -> io::Result<(String, u64)> {
        let mut writer = self.create().await?;
        let mut file = writer
            .file
            .take()
            .ok_or_else(|| io::Error::other("the blob is closed"))?;
        let sources: Vec<PathBuf> = ids.iter().map(|id| self.path(id)).collect();
        let (file, size) = blocking(move || {
            let mut size = 0;
            for source in sources {
                size += io::copy(&mut File::open(source)?, &mut file)?;
            }
            Ok((file, size))
        })
        .await?;
        writer.file = Some(file);
        writer.size = size;
        let written = writer.finish().await?;
        Ok((written.id, written.size))
    }

    /// Removes every temporary file and every blob not in `in_use`: run at start, before
    /// any write, with what the metadata names.
    pub async fn sweep(&self, in_use: HashSet<String>) -> io::Result<Swept> {
        let root = self.root.clone();
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
pub struct BlobWriter {
    dir: BlobDir,
    id: String,
    tmp: PathBuf,
    file: Option<File>,
    md5: Option<Md5>,
    buffer: Vec<u8>,
    size: u64,
    finished: bool,
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

    /// Hashes and writes the buffer on the blocking pool.
    async fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let (Some(mut file), Some(mut md5)) = (self.file.take(), self.md5.take()) else {
            return Err(io::Error::other("the blob is closed"));
        };
        let buffer = std::mem::replace(&mut self.buffer, Vec::with_capacity(WRITE_BUFFER));
        let (file, md5, mut buffer) = blocking(move || {
            md5.update(&buffer);
            file.write_all(&buffer)?;
            Ok((file, md5, buffer))
        })
        .await?;
        buffer.clear();
        self.buffer = buffer;
        self.file = Some(file);
        self.md5 = Some(md5);
        Ok(())
    }

    /// Makes the blob durable: writes what is buffered, fsyncs the file, renames it into
    /// place and fsyncs the directory.
    pub async fn finish(mut self) -> io::Result<WrittenBlob> {
        self.flush().await?;
        let (Some(file), Some(md5)) = (self.file.take(), self.md5.take()) else {
            return Err(io::Error::other("the blob is closed"));
        };
        let (tmp, path) = (self.tmp.clone(), self.dir.path(&self.id));
        let md5 = blocking(move || {
            file.sync_all()?;
            drop(file);
            let parent = path
                .parent()
                .ok_or_else(|| io::Error::other("a blob path has no parent"))?;
            std::fs::create_dir_all(parent)?;
            std::fs::rename(&tmp, &path)?;
            File::open(parent)?.sync_all()?;
            Ok(md5.finalize())
        })
        .await?;
        self.finished = true;
        Ok(WrittenBlob {
            id: self.id.clone(),
            size: self.size,
            md5: md5.into(),
        })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
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
        let mut w = dir.create().await?;
        let big = vec![7u8; WRITE_BUFFER + 10];
        w.write(b"hello ").await?;
        w.write(&big).await?;
        let a = w.finish().await?;
        assert_eq!(a.size, 6 + big.len() as u64);
        let mut md5 = Md5::new();
        md5.update(b"hello ");
        md5.update(&big);
        assert_eq!(a.md5, <[u8; 16]>::from(md5.finalize()));
        let mut w = dir.create().await?;
        w.write(b"world").await?;
        let b = w.finish().await?;
        let (ab, size) = dir.concat(&[a.id.clone(), b.id.clone()]).await?;
        let bytes = std::fs::read(dir.path(&ab))?;
        assert_eq!((bytes.len() as u64, size), (a.size + 5, a.size + 5));
        assert!(bytes.ends_with(b"world"));
        // An unfinished writer leaves nothing; a crash's leftovers go at the sweep.
        let mut w = dir.create().await?;
        w.write(b"gone").await?;
        drop(w);
        std::fs::write(temp.path().join("tmp").join("crashed"), b"x")?;
        let swept = dir.sweep([ab.clone()].into_iter().collect()).await?;
        assert_eq!(
            swept,
            Swept {
                temporary: 1,
                orphaned: 2
            }
        );
        assert!(dir.path(&ab).exists() && !dir.path(&a.id).exists());
        Ok(())
    }
}
