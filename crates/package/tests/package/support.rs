//! Helpers: build trees on disk, craft zips entry by entry (hostile ones too), and list what a
//! directory holds.

use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// One entry of a crafted zip.
pub enum E<'a> {
    /// A file with its unix permissions.
    File(&'a [u8], u32),
    Dir,
    Symlink(&'a str),
    /// Any external attributes (file type and mode in the high 16 bits) with contents.
    Raw(u32, &'a [u8]),
}

/// A zip of `entries`, written as given: the zip crate's writer does not sanitise names.
pub fn zip_of(entries: &[(&str, E<'_>)]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, entry) in entries {
        match entry {
            E::File(data, mode) => {
                zip.start_file(*name, options.unix_permissions(*mode)).unwrap();
                zip.write_all(data).unwrap();
            }
            E::Dir => zip.add_directory(*name, options).unwrap(),
            E::Symlink(target) => zip.add_symlink(*name, *target, options).unwrap(),
            E::Raw(attributes, data) => {
                zip.start_file(*name, options.external_attributes(*attributes))
                    .unwrap();
                zip.write_all(data).unwrap();
            }
        }
    }
    zip.finish().unwrap().into_inner()
}

/// Replaces every occurrence of `from` with `to` (same length) in `bytes`: renames entries in
/// both the local headers and the central directory.
pub fn patch(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut found = 0;
    for i in 0..=bytes.len() - from.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            found += 1;
        }
    }
    assert!(found > 0, "nothing to patch");
}

/// Offsets of the local file headers and central directory headers of a crafted zip.
pub fn header_offsets(bytes: &[u8]) -> (Vec<usize>, Vec<usize>) {
    let find = |magic: &[u8]| -> Vec<usize> {
        (0..bytes.len().saturating_sub(4))
            .filter(|&i| &bytes[i..i + 4] == magic)
            .collect()
    };
    (find(b"PK\x03\x04"), find(b"PK\x01\x02"))
}

/// Writes a file with `mode`.
pub fn file(root: &Path, rel: &str, data: &[u8], mode: u32) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, data).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn link(root: &Path, rel: &str, target: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    symlink(target, path).unwrap();
}

/// Every path under `root`, sorted, with what it is: `path 755 file <contents>`,
/// `path 755 dir`, `path -> target`.
pub fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let rel = path.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
        let meta = fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            out.push(format!("{rel} -> {}", fs::read_link(&path).unwrap().display()));
        } else if meta.is_dir() {
            out.push(format!("{rel} {mode:o} dir"));
            walk(root, &path, out);
        } else {
            let data = fs::read(&path).unwrap();
            out.push(format!("{rel} {mode:o} file {}", String::from_utf8_lossy(&data)));
        }
    }
}
