//! Unpacks an uploaded zip into a new directory, refusing anything that could write outside it
//! or exhaust the disk.
//!
//! The whole archive is checked first (names, types, duplicates, symlink targets, declared
//! sizes) from its central directory, before any byte is written. Then it is written into a
//! sibling temporary directory, counting the bytes really inflated, and renamed into place.

use std::collections::HashSet;
use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Cursor, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use zip::{CompressionMethod, ZipArchive};

use crate::entry_path::{self, NameProblem};
use crate::error::{EntryError, UnpackError};
use crate::limits::{Budget, CopyError, UnpackLimits, Unpacked};
use crate::tree::{Kind, NodeKind, Tree, TreeError};

type Archive<'a> = ZipArchive<Cursor<&'a [u8]>>;

const S_IFMT: u32 = 0o170_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;

/// Unpacks `zip` into the new directory `dest` (which must not exist; its parent must).
///
/// Writes into a sibling temporary directory first and renames it into place, so `dest` either
/// appears complete or not at all. When several unpackers race for the same `dest`, the losers'
/// renames fail because `dest` exists; they clean up and return success, as `dest` now holds
/// the same code. (So does a call whose `dest` already existed as a directory: the archive is
/// still fully checked, but what `dest` holds is left alone.)
///
/// Refuses, naming the entry and writing nothing outside `dest`: names that are empty, absolute,
/// contain `..`, NUL or a Windows drive prefix; symlinks whose target is absolute or resolves
/// outside the root; entries under a symlink or a file; duplicates; special files; more than
/// `max_entries` nodes; more than `max_total_bytes` of contents (counted as inflated, not as
/// declared); corrupt, encrypted or unsupported archives.
///
/// Files become 0755 if any executable bit was set, else 0644; directories 0755; never
/// setuid, setgid or sticky. Directories only implied by file paths are created.
pub fn unpack(zip: &[u8], dest: &Path, limits: &UnpackLimits) -> Result<Unpacked, UnpackError> {
    let mut archive = ZipArchive::new(Cursor::new(zip)).map_err(|e| UnpackError::from_zip(e, None))?;
    let tree = plan(&mut archive, zip, limits)?;

    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if dest.file_name().is_none() {
        let source = io::Error::new(io::ErrorKind::InvalidInput, "the destination has no file name");
        return Err(UnpackError::Io {
            path: dest.to_owned(),
            source,
        });
    }
    let tmp = tempfile::Builder::new()
        .prefix(".wisp-unpack-")
        .tempdir_in(parent)
        .map_err(UnpackError::io(parent))?;
    let unpacked = write(&mut archive, &tree, tmp.path(), limits)?;
    fs::set_permissions(tmp.path(), Permissions::from_mode(0o755)).map_err(UnpackError::io(tmp.path()))?;

    match fs::rename(tmp.path(), dest) {
        Ok(()) => {
            // Now at `dest`: nothing left to clean up.
            let _ = tmp.keep();
            Ok(unpacked)
        }
        Err(e) if lost_race(&e, dest) => Ok(unpacked), // `tmp` is removed on drop.
        Err(e) => Err(UnpackError::io(dest)(e)),
    }
}

/// Whether a failed rename means another unpacker put `dest` in place first.
fn lost_race(err: &io::Error, dest: &Path) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty
    ) && fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir())
}

/// Checks the whole archive and returns the tree to write.
fn plan(archive: &mut Archive<'_>, raw: &[u8], limits: &UnpackLimits) -> Result<Tree, UnpackError> {
    if archive.has_duplicate_names() {
        return Err(
            match first_duplicate_name(raw, archive.central_directory_start()) {
                Some(name) => EntryError::Duplicate {
                    entry: entry_path::shown(&name),
                }
                .into(),
                None => UnpackError::InvalidArchive("two entries have the same name".into()),
            },
        );
    }
    if archive.len() > limits.max_entries {
        return Err(UnpackError::TooManyEntries {
            limit: limits.max_entries,
        });
    }
    let mut tree = Tree::new(limits.max_entries);
    let mut declared_bytes = 0u64;
    for index in 0..archive.len() {
        let entry = archive
            .by_index_data(index)
            .map_err(|e| UnpackError::from_zip(e, None))?;
        let name = entry
            .name()
            .map_err(|e| UnpackError::from_zip(e, None))?
            .into_owned();
        let mode = entry.unix_mode();
        let (encrypted, compression) = (entry.encrypted(), entry.compression());
        declared_bytes = declared_bytes.saturating_add(entry.size());
        drop(entry);

        let shown = entry_path::shown(&name);
        let bad_name = |problem| EntryError::BadName {
            entry: shown.clone(),
            problem,
        };
        let path = entry_path::parse_entry_name(&name).map_err(bad_name)?;
        if encrypted {
            return Err(UnpackError::Unsupported(format!("entry `{shown}` is encrypted")));
        }
        if !matches!(
            compression,
            CompressionMethod::Stored | CompressionMethod::Deflated
        ) {
            return Err(UnpackError::Unsupported(format!(
                "entry `{shown}` is compressed with {compression} (use deflate or store)"
            )));
        }
        let is_dir_name = name.ends_with(['/', '\\']);
        let kind = match mode.map(|m| m & S_IFMT) {
            Some(S_IFLNK) => Kind::Symlink(read_target(archive, index, &name)?),
            Some(S_IFDIR) => Kind::Dir,
            None | Some(0 | S_IFREG) if is_dir_name => Kind::Dir,
            None | Some(0 | S_IFREG) => Kind::File,
            Some(_) => return Err(EntryError::UnsupportedType { entry: shown }.into()),
        };
        if path.is_root() {
            // `./` names the function's directory itself: nothing to create.
            if kind == Kind::Dir {
                continue;
            }
            return Err(bad_name(NameProblem::Empty).into());
        }
        tree.insert(&path, kind, index, &name).map_err(|e| match e {
            TreeError::TooManyEntries => UnpackError::TooManyEntries {
                limit: limits.max_entries,
            },
            TreeError::Entry(e) => e.into(),
        })?;
    }
    // An early refusal only: the real bytes are counted again while writing.
    if declared_bytes > limits.max_total_bytes {
        return Err(UnpackError::TooLarge {
            limit: limits.max_total_bytes,
        });
    }
    tree.check_symlinks()?;
    Ok(tree)
}

/// Reads a symlink entry's target (its contents), normalised.
fn read_target(archive: &mut Archive<'_>, index: usize, name: &str) -> Result<String, UnpackError> {
    let file = archive
        .by_index(index)
        .map_err(|e| UnpackError::from_zip(e, Some(name)))?;
    let mut bytes = Vec::new();
    file.take(4096)
        .read_to_end(&mut bytes)
        .map_err(|e| UnpackError::from_zip(e.into(), Some(name)))?;
    let malformed = || EntryError::BadSymlinkTarget {
        entry: entry_path::shown(name),
    };
    let target = String::from_utf8(bytes).map_err(|_| malformed())?;
    Ok(entry_path::normalize_target(&target).map_err(|p| EntryError::link(p, name, &target))?)
}

/// Writes the tree under `root`: directories and files in tree order (parents first), then
/// symlinks, so no file is ever written through one.
fn write(
    archive: &mut Archive<'_>,
    tree: &Tree,
    root: &Path,
    limits: &UnpackLimits,
) -> Result<Unpacked, UnpackError> {
    let too_large = || UnpackError::TooLarge {
        limit: limits.max_total_bytes,
    };
    let mut budget = Budget::new(limits.max_total_bytes);
    let mut files = 0;
    let mut links = Vec::new();
    for (id, node) in tree.nodes() {
        let path = root.join(tree.path(id));
        match &node.kind {
            NodeKind::Root => {}
            NodeKind::ImpliedDir | NodeKind::Entry(Kind::Dir) => {
                fs::create_dir(&path).map_err(UnpackError::io(&path))?;
                fs::set_permissions(&path, Permissions::from_mode(0o755)).map_err(UnpackError::io(&path))?;
            }
            NodeKind::Entry(Kind::File) => {
                let mut entry = archive
                    .by_index(node.entry)
                    .map_err(|e| UnpackError::from_zip(e, None))?;
                let name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
                let mode = if entry.unix_mode().is_some_and(|m| m & 0o111 != 0) {
                    0o755
                } else {
                    0o644
                };
                let mut out = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(UnpackError::io(&path))?;
                budget.copy(&mut entry, &mut out).map_err(|e| match e {
                    CopyError::Read(e) => UnpackError::from_zip(e.into(), Some(&name)),
                    CopyError::Write(e) => UnpackError::io(&path)(e),
                    CopyError::OverBudget => too_large(),
                })?;
                out.set_permissions(Permissions::from_mode(mode))
                    .map_err(UnpackError::io(&path))?;
                files += 1;
            }
            NodeKind::Entry(Kind::Symlink(target)) => links.push((path, target)),
        }
    }
    for (path, target) in links {
        budget.charge(target.len() as u64).map_err(|_| too_large())?;
        std::os::unix::fs::symlink(target, &path).map_err(UnpackError::io(&path))?;
    }
    Ok(Unpacked {
        files,
        total_bytes: budget.used(),
    })
}

/// The first name the central directory holds twice. The zip crate indexes entries by name, so
/// it can only tell that there are duplicates; this walks the raw headers to name one.
fn first_duplicate_name(zip: &[u8], central_directory_start: u64) -> Option<String> {
    const HEADER_LEN: usize = 46;
    let field = |at: usize| usize::from(u16::from_le_bytes([zip[at], zip[at + 1]]));
    let mut seen = HashSet::new();
    let mut pos = usize::try_from(central_directory_start).ok()?;
    while zip.get(pos..pos + HEADER_LEN)?.starts_with(b"PK\x01\x02") {
        let (name_len, extra_len, comment_len) = (field(pos + 28), field(pos + 30), field(pos + 32));
        let name = zip.get(pos + HEADER_LEN..pos + HEADER_LEN + name_len)?;
        if !seen.insert(name) {
            return Some(String::from_utf8_lossy(name).into_owned());
        }
        pos += HEADER_LEN + name_len + extra_len + comment_len;
    }
    None
}
