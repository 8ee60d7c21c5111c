//! Archives `unpack` must refuse, each with its message, and with nothing written anywhere:
//! not the destination, not a temporary directory, not beside or above it.

use std::fs;

use wisp_package::{UnpackError, UnpackLimits, unpack};

use crate::support::{E, header_offsets, listing, patch, zip_of};

/// Unpacks `zip` into `<tmp>/outer/parent/code`, expecting a refusal that is the code's fault,
/// and checks that nothing under `<tmp>` changed.
fn refused_with(zip: &[u8], limits: &UnpackLimits) -> UnpackError {
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path().join("outer/parent");
    fs::create_dir_all(&parent).unwrap();
    let before = listing(tmp.path());
    let err = unpack(zip, &parent.join("code"), limits).unwrap_err();
    assert!(err.is_invalid_code(), "{err}");
    assert_eq!(
        listing(tmp.path()),
        before,
        "nothing may be written when refusing: {err}"
    );
    err
}

fn refused(zip: &[u8]) -> String {
    refused_with(zip, &UnpackLimits::default()).to_string()
}

/// A zip holding a harmless file first, then `name` as a file.
fn with_file_named(name: &str) -> Vec<u8> {
    zip_of(&[
        ("ok.txt", E::File(b"fine", 0o644)),
        (name, E::File(b"#!/bin/sh\nrm -rf ~\n", 0o755)),
    ])
}

#[test]
fn refuses_names_that_escape_or_are_malformed() {
    let cases = [
        (
            "../evil.sh",
            "zip entry `../evil.sh` escapes the function's directory",
        ),
        (
            "a/../../evil.sh",
            "zip entry `a/../../evil.sh` escapes the function's directory",
        ),
        (
            "a/../b.sh",
            "zip entry `a/../b.sh` escapes the function's directory",
        ),
        (
            "..\\..\\evil.sh",
            "zip entry `..\\..\\evil.sh` escapes the function's directory",
        ),
        (
            "a\\..\\..\\evil.sh",
            "zip entry `a\\..\\..\\evil.sh` escapes the function's directory",
        ),
        ("/tmp/evil.sh", "zip entry `/tmp/evil.sh` has an absolute path"),
        (
            "\\tmp\\evil.sh",
            "zip entry `\\tmp\\evil.sh` has an absolute path",
        ),
        (
            "C:\\evil.sh",
            "zip entry `C:\\evil.sh` starts with a Windows drive prefix",
        ),
        (
            "c:/evil.sh",
            "zip entry `c:/evil.sh` starts with a Windows drive prefix",
        ),
        ("a\0b", "zip entry `a\\u{0}b` contains a NUL byte"),
        ("", "zip entry `` has an empty name"),
        (".", "zip entry `.` has an empty name"),
    ];
    for (name, expected) in cases {
        assert_eq!(refused(&with_file_named(name)), expected, "entry {name:?}");
    }
    let long = "x".repeat(256);
    assert_eq!(
        refused(&with_file_named(&long)),
        format!("zip entry `{long}` has a name too long for the file system")
    );
}

#[test]
fn refuses_symlinks_that_lead_outside() {
    let cases: [(&[(&str, E<'_>)], &str); 5] = [
        (
            &[("lib", E::Symlink("/etc"))],
            "zip entry `lib` is a symlink to `/etc`, outside the function's directory",
        ),
        (
            &[("a/up", E::Symlink("../../x"))],
            "zip entry `a/up` is a symlink to `../../x`, outside the function's directory",
        ),
        (
            &[("up", E::Symlink("..\\secret"))],
            "zip entry `up` is a symlink to `../secret`, outside the function's directory",
        ),
        (
            // Each lexically inside, but `root/..` is the function's parent at run time.
            &[
                ("a/b/root", E::Symlink("../..")),
                ("escape", E::Symlink("a/b/root/..")),
            ],
            "zip entry `escape` is a symlink to `a/b/root/..`, outside the function's directory",
        ),
        (
            &[("a", E::Symlink("b/x")), ("b", E::Symlink("a/y"))],
            "zip entry `a` is a symlink to `b/x`, which loops or goes through too many symlinks",
        ),
    ];
    for (entries, expected) in cases {
        assert_eq!(refused(&zip_of(entries)), expected);
    }
    let empty_target = zip_of(&[("l", E::Symlink(""))]);
    assert_eq!(
        refused(&empty_target),
        "zip entry `l` is a symlink with an empty, malformed or too long target"
    );
}

#[test]
fn refuses_entries_written_through_a_symlink() {
    let link_first = zip_of(&[("lib", E::Symlink("sub")), ("lib/evil.sh", E::File(b"x", 0o755))]);
    assert_eq!(
        refused(&link_first),
        "zip entry `lib/evil.sh` would be written through the symlink `lib`"
    );
    let link_last = zip_of(&[("lib/evil.sh", E::File(b"x", 0o755)), ("lib", E::Symlink("sub"))]);
    assert_eq!(
        refused(&link_last),
        "zip entry `lib/evil.sh` would be written through the symlink `lib`"
    );
    let dir_under_link = zip_of(&[("lib", E::Symlink(".")), ("lib/", E::Dir)]);
    assert_eq!(
        refused(&dir_under_link),
        "zip entry `lib/` appears more than once"
    );
}

#[test]
fn refuses_duplicates_and_entries_under_files() {
    // The zip crate's writer refuses duplicate names, so rename `b.txt` to `a.txt` in the bytes.
    let mut exact = zip_of(&[
        ("a.txt", E::File(b"one", 0o644)),
        ("b.txt", E::File(b"two", 0o644)),
    ]);
    patch(&mut exact, b"b.txt", b"a.txt");
    assert_eq!(refused(&exact), "zip entry `a.txt` appears more than once");

    let normalised = zip_of(&[
        ("a.txt", E::File(b"one", 0o644)),
        ("./a.txt", E::File(b"two", 0o644)),
    ]);
    assert_eq!(refused(&normalised), "zip entry `./a.txt` appears more than once");
    let file_and_dir = zip_of(&[("a", E::File(b"one", 0o644)), ("a/", E::Dir)]);
    assert_eq!(refused(&file_and_dir), "zip entry `a/` appears more than once");
    let under_file = zip_of(&[("a", E::File(b"one", 0o644)), ("a/b", E::File(b"two", 0o644))]);
    assert_eq!(
        refused(&under_file),
        "zip entry `a/b` is inside `a`, which is a file"
    );
}

#[test]
fn refuses_special_files() {
    let fifo = zip_of(&[("fifo", E::Raw(0o010_644 << 16, b""))]);
    assert_eq!(
        refused(&fifo),
        "zip entry `fifo` is neither a file, a directory nor a symlink"
    );
    let device = zip_of(&[("dev", E::Raw(0o020_644 << 16, b""))]);
    assert_eq!(
        refused(&device),
        "zip entry `dev` is neither a file, a directory nor a symlink"
    );
}

#[test]
fn refuses_more_entries_than_the_limit_counting_implied_directories() {
    let limits = UnpackLimits {
        max_total_bytes: 1 << 20,
        max_entries: 3,
    };
    let four = zip_of(&[
        ("a", E::File(b"", 0o644)),
        ("b", E::File(b"", 0o644)),
        ("c", E::File(b"", 0o644)),
        ("d", E::File(b"", 0o644)),
    ]);
    let err = refused_with(&four, &limits);
    assert_eq!(
        err.to_string(),
        "the code has more than 3 files and directories (the limit)"
    );
    let deep = zip_of(&[("a/b/c/d", E::File(b"", 0o644))]);
    assert!(matches!(
        refused_with(&deep, &limits),
        UnpackError::TooManyEntries { limit: 3 }
    ));
}

#[test]
fn refuses_archives_that_unpack_past_the_size_limit() {
    let limits = UnpackLimits {
        max_total_bytes: 1000,
        max_entries: 100,
    };
    let one_big = zip_of(&[("big", E::File(&[7; 2000], 0o644))]);
    assert_eq!(
        refused_with(&one_big, &limits).to_string(),
        "the code unpacks to more than 1000 bytes (the limit)"
    );
    let many_small = zip_of(&[
        ("a", E::File(&[1; 400], 0o644)),
        ("b", E::File(&[2; 400], 0o644)),
        ("c", E::File(&[3; 400], 0o644)),
    ]);
    assert!(matches!(
        refused_with(&many_small, &limits),
        UnpackError::TooLarge { limit: 1000 }
    ));
}

#[test]
fn refuses_zip_bombs() {
    const MIB: usize = 1 << 20;
    let limits = UnpackLimits {
        max_total_bytes: MIB as u64,
        max_entries: 100,
    };
    let zeros = vec![0u8; 8 * MIB];
    let honest = zip_of(&[
        ("ok.txt", E::File(b"fine", 0o644)),
        ("bomb", E::File(&zeros, 0o644)),
    ]);
    assert!(
        honest.len() < 64 * 1024,
        "8 MiB of zeros deflates to {} bytes",
        honest.len()
    );
    assert!(matches!(
        refused_with(&honest, &limits),
        UnpackError::TooLarge { .. }
    ));

    // The same, with headers claiming the bomb inflates to 100 bytes: not trusted.
    let mut lying = honest.clone();
    let (local, central) = header_offsets(&lying);
    for at in [local[1] + 22, central[1] + 24] {
        lying[at..at + 4].copy_from_slice(&100u32.to_le_bytes());
    }
    let err = refused_with(&lying, &limits);
    assert!(matches!(err, UnpackError::InvalidArchive(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the code is not a valid zip archive: entry `bomb`: file is larger than its declared uncompressed size"
    );
}

#[test]
fn refuses_what_is_not_a_valid_zip() {
    let err = refused(b"#!/bin/sh\necho not a zip\n");
    assert!(err.starts_with("the code is not a valid zip archive: "), "{err}");

    let good = zip_of(&[
        ("a.txt", E::File(&[b'a'; 5000], 0o644)),
        ("b.txt", E::File(&[b'b'; 5000], 0o644)),
    ]);
    let err = refused(&good[..good.len() / 2]);
    assert!(err.starts_with("the code is not a valid zip archive: "), "{err}");

    // A corrupt second entry: the first was already written to the temporary directory,
    // which must be removed.
    let mut corrupt = good.clone();
    let (local, _) = header_offsets(&corrupt);
    let data = local[1] + 30 + "b.txt".len();
    for byte in &mut corrupt[data..data + 8] {
        *byte ^= 0x55;
    }
    let err = refused(&corrupt);
    assert!(
        err.starts_with("the code is not a valid zip archive: entry `b.txt`: "),
        "{err}"
    );
}

#[test]
fn refuses_unsupported_compression() {
    let mut zip = zip_of(&[("a.txt", E::File(b"hello", 0o644))]);
    let (local, central) = header_offsets(&zip);
    for at in [local[0] + 8, central[0] + 10] {
        zip[at..at + 2].copy_from_slice(&12u16.to_le_bytes()); // bzip2
    }
    let err = refused(&zip);
    assert_eq!(
        err,
        "the code uses a zip feature that is not supported: entry `a.txt` is compressed with Bzip2 \
         (use deflate or store)"
    );
}

#[test]
fn local_failures_are_not_the_codes_fault() {
    let zip = zip_of(&[("a.txt", E::File(b"hello", 0o644))]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("missing-parent/code");
    let err = unpack(&zip, &dest, &UnpackLimits::default()).unwrap_err();
    assert!(matches!(err, UnpackError::Io { .. }), "{err:?}");
    assert!(!err.is_invalid_code());
}
