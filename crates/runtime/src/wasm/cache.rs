//! The on-disk cache of compiled code.
//!
//! Artifacts are wasmtime's precompiled form (`.cwasm`), keyed by the code's hash
//! under a directory named for the engine's compatibility hash, so an artifact built
//! by another wasmtime version or engine configuration is never even looked at.
//! Each artifact has a CRC-32 sidecar written after it; an artifact whose checksum
//! does not match (truncated, corrupt, half-written) is removed and recompiled rather
//! than handed to `deserialize`, which must only ever see bytes this engine produced.
//!
//! # Design
//!
//! Loading is on the cold-start path, so it avoids copies: the file is memory-mapped
//! to check its checksum (CRC-32 runs at several GB/s; it guards against accidents —
//! whoever can write the data directory can also rewrite a checksum, so a
//! cryptographic hash would buy nothing), then `deserialize_file` maps it again
//! (sharing the page cache) instead of copying it into fresh memory.

use super::Artifact;
use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::component::Component;
use wasmtime::{Engine, Module, Precompiled};

/// See the module docs.
pub struct ArtifactCache {
    dir: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl ArtifactCache {
    /// Opens (creating) the cache for `engine` under `root`.
    pub fn open(root: &Path, engine: &Engine) -> io::Result<ArtifactCache> {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let dir = root.join(format!("{:016x}", hasher.finish()));
        std::fs::create_dir_all(&dir)?;
        Ok(ArtifactCache { dir })
    }

    /// The directory holding this engine's artifacts.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the artifact for `code_hash`.
    pub fn artifact_path(&self, code_hash: &str) -> PathBuf {
        self.dir.join(format!("{code_hash}.cwasm"))
    }

    fn checksum_path(&self, code_hash: &str) -> PathBuf {
        self.dir.join(format!("{code_hash}.crc32"))
    }

    /// Saves an artifact atomically: artifact first, then its checksum.
    pub fn save(&self, code_hash: &str, bytes: &[u8]) -> io::Result<()> {
        check_hash(code_hash)?;
        write_atomically(&self.artifact_path(code_hash), bytes)?;
        let sum = format!("{:08x}", crc32fast::hash(bytes));
        write_atomically(&self.checksum_path(code_hash), sum.as_bytes())
    }

    /// Loads the artifact for `code_hash`, or `None` if it is missing or unusable
    /// (an unusable one is removed so the next save replaces it).
    pub(crate) fn load(&self, engine: &Engine, code_hash: &str) -> Option<Artifact> {
        check_hash(code_hash).ok()?;
        let path = self.artifact_path(code_hash);
        let expected = std::fs::read_to_string(self.checksum_path(code_hash)).ok()?;
        let kind = match checked_kind(&path, expected.trim()) {
            Ok(kind) => kind,
            Err(e) => {
                tracing::warn!(path = %path.display(), "cached artifact {e}; recompiling");
                self.remove(code_hash);
                return None;
            }
        };
        let loaded = match kind {
            Precompiled::Component => self
                .deserialize_component_file(engine, &path)
                .map(Artifact::Component),
            Precompiled::Module => self.deserialize_module_file(engine, &path).map(Artifact::Module),
        };
        match loaded {
            Ok(artifact) => Some(artifact),
            Err(e) => {
                tracing::warn!(path = %path.display(), "cached artifact is unusable ({e:#}); recompiling");
                self.remove(code_hash);
                None
            }
        }
    }

    /// Removes every artifact (and its checksum) whose code hash is not in `keep`.
    /// Returns how many artifacts went. Temporary files of a save in flight are left.
    pub fn retain(&self, keep: &std::collections::HashSet<String>) -> io::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let (Some(stem), Some(ext)) = (
                path.file_stem().and_then(|s| s.to_str()),
                path.extension().and_then(|e| e.to_str()),
            ) else {
                continue;
            };
            if (ext == "cwasm" || ext == "crc32") && !keep.contains(stem) {
                std::fs::remove_file(&path)?;
                removed += usize::from(ext == "cwasm");
            }
        }
        Ok(removed)
    }

    fn remove(&self, code_hash: &str) {
        let _ = std::fs::remove_file(self.checksum_path(code_hash));
        let _ = std::fs::remove_file(self.artifact_path(code_hash));
    }

    /// Deserializes bytes this engine has just produced.
    #[expect(
        unsafe_code,
        reason = "wasmtime requires the bytes to come from `Engine::precompile_*` of a compatible engine: callers pass only bytes this engine just produced"
    )]
    pub(crate) fn deserialize_component(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
        // SAFETY: see the `expect` reason above.
        unsafe { Component::deserialize(engine, bytes) }
    }

    /// Deserializes bytes this engine has just produced.
    #[expect(
        unsafe_code,
        reason = "wasmtime requires the bytes to come from `Engine::precompile_*` of a compatible engine: callers pass only bytes this engine just produced"
    )]
    pub(crate) fn deserialize_module(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Module> {
        // SAFETY: see the `expect` reason above.
        unsafe { Module::deserialize(engine, bytes) }
    }

    #[expect(
        unsafe_code,
        reason = "the file was written by `save` from this engine's output (the directory is keyed by the engine's compatibility hash) and has just passed its checksum; files are replaced only by atomic rename, never modified in place"
    )]
    fn deserialize_component_file(&self, engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
        // SAFETY: see the `expect` reason above.
        unsafe { Component::deserialize_file(engine, path) }
    }

    #[expect(
        unsafe_code,
        reason = "the file was written by `save` from this engine's output (the directory is keyed by the engine's compatibility hash) and has just passed its checksum; files are replaced only by atomic rename, never modified in place"
    )]
    fn deserialize_module_file(&self, engine: &Engine, path: &Path) -> wasmtime::Result<Module> {
        // SAFETY: see the `expect` reason above.
        unsafe { Module::deserialize_file(engine, path) }
    }
}

/// Checks an artifact file against its checksum without copying it, and tells
/// whether it holds a component or a module.
#[expect(
    unsafe_code,
    reason = "memory-maps a cache file read-only; cache files are replaced only by atomic rename, never truncated or written in place, so the mapping stays valid"
)]
fn checked_kind(path: &Path, expected: &str) -> Result<Precompiled, String> {
    let file = File::open(path).map_err(|e| format!("cannot be opened: {e}"))?;
    // SAFETY: see the `expect` reason above.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("cannot be mapped: {e}"))?;
    if format!("{:08x}", crc32fast::hash(&map)) != expected {
        return Err("fails its checksum".into());
    }
    Engine::detect_precompiled(&map).ok_or_else(|| "is not a precompiled artifact".to_string())
}

/// Code hashes name files: accept only hex so no hash can name a path elsewhere.
fn check_hash(code_hash: &str) -> io::Result<()> {
    if code_hash.is_empty() || code_hash.len() > 128 || !code_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid code hash `{code_hash}`"),
        ));
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        Engine::default()
    }

    fn event_kit() -> Vec<u8> {
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/event-kit.wasm"))
            .unwrap()
    }

    #[test]
    fn round_trips_a_compiled_module() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = ArtifactCache::open(dir.path(), &engine).unwrap();
        let hash = "ab12";
        assert!(cache.load(&engine, hash).is_none(), "empty cache");
        let bytes = engine.precompile_module(&event_kit()).unwrap();
        cache.save(hash, &bytes).unwrap();
        assert!(matches!(cache.load(&engine, hash), Some(Artifact::Module(_))));
    }

    #[test]
    fn refuses_corrupt_and_foreign_artifacts_and_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = ArtifactCache::open(dir.path(), &engine).unwrap();
        let bytes = engine.precompile_module(&event_kit()).unwrap();

        // Corrupt: the bytes no longer match their checksum.
        cache.save("01", &bytes).unwrap();
        let mut corrupt = bytes.clone();
        corrupt[bytes.len() / 2] ^= 0xff;
        std::fs::write(cache.artifact_path("01"), &corrupt).unwrap();
        assert!(cache.load(&engine, "01").is_none());
        assert!(
            !cache.artifact_path("01").exists(),
            "a corrupt artifact is removed"
        );

        // Foreign: checksummed, but not something this engine produced.
        cache.save("02", b"\x7fELF not really").unwrap();
        assert!(cache.load(&engine, "02").is_none());
        assert!(!cache.artifact_path("02").exists());

        // An artifact without its checksum (a crash between the two writes) is not trusted.
        std::fs::write(cache.artifact_path("03"), &bytes).unwrap();
        assert!(cache.load(&engine, "03").is_none());
    }

    #[test]
    fn engines_with_other_settings_use_other_directories() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let other = Engine::new(&config).unwrap();
        let a = ArtifactCache::open(dir.path(), &engine()).unwrap();
        let b = ArtifactCache::open(dir.path(), &other).unwrap();
        assert_ne!(a.dir(), b.dir());
    }

    #[test]
    fn hashes_cannot_name_paths() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::open(dir.path(), &engine()).unwrap();
        assert!(cache.save("../escape", b"x").is_err());
        assert!(cache.load(&engine(), "../escape").is_none());
    }
}
