//! Zips a directory deterministically, so the same tree always gives the same bytes (the
//! platform hashes code to tell unchanged deploys apart).
//!
//! Deterministic means: entries sorted by name, the fixed DOS timestamp 1980-01-01, modes
//! reduced to 0755 (executables, directories) or 0644, deflate at a fixed level, no extra
//! fields. The bytes are stable for one version of the zip crate and its deflate backend.

use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::entry_path::{self, NameProblem, RelPath};
use crate::error::{EntryError, PackError};
use crate::limits::{Budget, CopyError, UnpackLimits};
use crate::tree::{Kind, Tree, TreeError};

const DEFLATE_LEVEL: i64 = 6;

/// One file, directory or symlink found under the directory.
struct Found {
    rel: RelPath,
    path: PathBuf,
    kind: Kind,
    executable: bool,
}

/// Zips the directory `dir` deterministically: entries sorted by path, fixed timestamps
/// (1980-01-01), unix modes kept as 0755 for executables and directories and 0644 otherwise,
/// deflate. The same tree always gives the same bytes.
///
/// Symlinks whose target stays inside the tree are stored as symlinks; one pointing outside it is
/// an error naming it. Nothing is skipped except the top-level [`SKIPPED_DIRS`]. Fails if `dir` is
/// not a directory, a file can't be read, a name can't be stored (not UTF-8, or one [`crate::unpack`]
/// Top-level directories `pack_dir` leaves out: version control, and a Wisp data
/// directory (`wisp up` run in the app's own directory keeps its data there).
pub const SKIPPED_DIRS: [&str; 2] = [".git", ".wisp"];

/// would read differently, such as a backslash), or the tree is over `limits`.
pub fn pack_dir(dir: &Path, limits: &UnpackLimits) -> Result<Vec<u8>, PackError> {
    let meta = fs::metadata(dir).map_err(PackError::read(dir))?;
    if !meta.is_dir() {
        return Err(PackError::NotADirectory(dir.to_owned()));
    }
    let mut found = walk(dir, limits)?;
    found.sort_by_cached_key(zip_name);

    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let base = SimpleFileOptions::default()
        .last_modified_time(DateTime::default())
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(DEFLATE_LEVEL));
    let mut budget = Budget::new(limits.max_total_bytes);
    let too_large = || PackError::TooLarge {
        dir: dir.to_owned(),
        limit: limits.max_total_bytes,
    };
    for f in &found {
        let name = zip_name(f);
        match &f.kind {
            Kind::Dir => zip.add_directory(name, base.unix_permissions(0o755))?,
            Kind::Symlink(target) => {
                budget.charge(target.len() as u64).map_err(|_| too_large())?;
                zip.add_symlink(name, target, base.unix_permissions(0o777))?;
            }
            Kind::File => {
                let mut file = fs::File::open(&f.path).map_err(PackError::read(&f.path))?;
                let size = file.metadata().map_err(PackError::read(&f.path))?.len();
                let mode = if f.executable { 0o755 } else { 0o644 };
                let options = base
                    .unix_permissions(mode)
                    .large_file(size >= u64::from(u32::MAX));
                zip.start_file(name, options)?;
                budget.copy(&mut file, &mut zip).map_err(|e| match e {
                    CopyError::Read(e) => PackError::read(&f.path)(e),
                    CopyError::Write(e) => PackError::Zip(e.into()),
                    CopyError::OverBudget => too_large(),
                })?;
            }
        }
    }
    let mut out = zip.finish()?;
    out.flush().map_err(|e| PackError::Zip(e.into()))?;
    Ok(out.into_inner())
}

/// The entry's name in the zip: directories end with `/`.
fn zip_name(f: &Found) -> String {
    match f.kind {
        Kind::Dir => format!("{}/", f.rel.as_str()),
        _ => f.rel.as_str().to_owned(),
    }
}

/// Walks `dir` without following symlinks, building the tree (which refuses what unpacking
/// would refuse) and checking the limits as it goes.
fn walk(dir: &Path, limits: &UnpackLimits) -> Result<Vec<Found>, PackError> {
    let mut tree = Tree::new(limits.max_entries);
    let mut found: Vec<Found> = Vec::new();
    let mut declared_bytes = 0u64;
    let mut pending = vec![(dir.to_owned(), String::new())];
    while let Some((abs, rel)) = pending.pop() {
        let entries = fs::read_dir(&abs).map_err(PackError::read(&abs))?;
        for entry in entries {
            let entry = entry.map_err(PackError::read(&abs))?;
            let path = entry.path();
            let file_type = entry.file_type().map_err(PackError::read(&path))?;
            let name = entry.file_name();
            let name = name
                .to_str()
                .ok_or_else(|| PackError::NonUtf8Name(path.clone()))?;
            if rel.is_empty() && SKIPPED_DIRS.contains(&name) && file_type.is_dir() {
                continue;
            }
            let rel_name = if rel.is_empty() {
                name.to_owned()
            } else {
                format!("{rel}/{name}")
            };
            let shown = path.display().to_string();
            let bad_name = |problem| EntryError::BadName {
                entry: entry_path::shown(&shown),
                problem,
            };
            let rel_path = entry_path::parse_entry_name(&rel_name).map_err(bad_name)?;
            if name.contains('\\') || rel_path.as_str() != rel_name {
                return Err(bad_name(NameProblem::Backslash).into());
            }

            let (kind, executable) = if file_type.is_dir() {
                pending.push((path.clone(), rel_name));
                (Kind::Dir, true)
            } else if file_type.is_symlink() {
                let target = fs::read_link(&path).map_err(PackError::read(&path))?;
                let bad_target = || EntryError::BadSymlinkTarget {
                    entry: entry_path::shown(&shown),
                };
                let target = target.to_str().ok_or_else(bad_target)?;
                let stored = entry_path::normalize_target(target)
                    .map_err(|problem| EntryError::link(problem, &shown, target))?;
                if stored != target {
                    return Err(bad_target().into());
                }
                declared_bytes += target.len() as u64;
                (Kind::Symlink(stored), false)
            } else if file_type.is_file() {
                let meta = entry.metadata().map_err(PackError::read(&path))?;
                declared_bytes = declared_bytes.saturating_add(meta.len());
                (Kind::File, meta.permissions().mode() & 0o111 != 0)
            } else {
                return Err(EntryError::UnsupportedType {
                    entry: entry_path::shown(&shown),
                }
                .into());
            };
            if declared_bytes > limits.max_total_bytes {
                return Err(PackError::TooLarge {
                    dir: dir.to_owned(),
                    limit: limits.max_total_bytes,
                });
            }
            let number = found.len();
            tree.insert(&rel_path, kind.clone(), number, &shown)
                .map_err(|e| match e {
                    TreeError::TooManyEntries => PackError::TooManyEntries {
                        dir: dir.to_owned(),
                        limit: limits.max_entries,
                    },
                    TreeError::Entry(e) => e.into(),
                })?;
            found.push(Found {
                rel: rel_path,
                path,
                kind,
                executable,
            });
        }
    }
    tree.check_symlinks()?;
    Ok(found)
}
