//! A directory packed and unpacked comes back the same, modes normalised; packing is
//! deterministic.

use std::fs::{self, File, FileTimes};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use wisp_package::{UnpackLimits, Unpacked, is_zip, pack_dir, unpack};

use crate::support::{E, file, link, listing, zip_of};

/// A function's directory: an executable bootstrap, nested dirs, internal symlinks, an empty
/// dir, and a top-level `.git` that packing skips.
fn function_dir(root: &std::path::Path) {
    file(root, "bootstrap", b"#!/bin/sh\necho hi\n", 0o755);
    file(root, "handler.py", b"def handler(e, c): return e\n", 0o600);
    file(root, "tool", b"private exe", 0o700);
    file(root, "lib/libfoo.so.1", b"ELF...", 0o644);
    link(root, "lib/libfoo.so", "libfoo.so.1");
    link(root, "bin/foo", "../lib/libfoo.so");
    file(root, "a/b/c/deep.txt", b"deep", 0o644);
    fs::create_dir_all(root.join("empty")).unwrap();
    file(root, ".git/HEAD", b"ref: refs/heads/main", 0o644);
    file(root, "vendor/.git/kept", b"not top-level", 0o644);
}

const EXPECTED: &[&str] = &[
    "a 755 dir",
    "a/b 755 dir",
    "a/b/c 755 dir",
    "a/b/c/deep.txt 644 file deep",
    "bin 755 dir",
    "bin/foo -> ../lib/libfoo.so",
    "bootstrap 755 file #!/bin/sh\necho hi\n",
    "empty 755 dir",
    "handler.py 644 file def handler(e, c): return e\n",
    "lib 755 dir",
    "lib/libfoo.so -> libfoo.so.1",
    "lib/libfoo.so.1 644 file ELF...",
    "tool 755 file private exe",
    "vendor 755 dir",
    "vendor/.git 755 dir",
    "vendor/.git/kept 644 file not top-level",
];

#[test]
fn round_trip_keeps_tree_modes_and_symlinks() {
    let src = tempfile::tempdir().unwrap();
    function_dir(src.path());
    let zip = pack_dir(src.path(), &UnpackLimits::default()).unwrap();
    assert!(is_zip(&zip));

    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("code");
    let unpacked = unpack(&zip, &dest, &UnpackLimits::default()).unwrap();
    assert_eq!(listing(&dest), EXPECTED);
    let contents = [
        "#!/bin/sh\necho hi\n",
        "def handler(e, c): return e\n",
        "private exe",
        "ELF...",
        "deep",
    ];
    let file_bytes: usize = contents.iter().map(|c| c.len()).sum::<usize>() + "not top-level".len();
    let link_bytes = "libfoo.so.1".len() + "../lib/libfoo.so".len();
    assert_eq!(
        unpacked,
        Unpacked {
            files: 6,
            total_bytes: (file_bytes + link_bytes) as u64
        }
    );
    assert_eq!(
        fs::read(dest.join("bin/foo")).unwrap(),
        b"ELF...",
        "the symlinks resolve"
    );
    assert_eq!(fs::metadata(&dest).unwrap().permissions().mode() & 0o7777, 0o755);
    let siblings: Vec<_> = fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(siblings, ["code"], "no temporary directory is left behind");
}

#[test]
fn packing_is_deterministic_whatever_the_mtimes_and_creation_order() {
    let src = tempfile::tempdir().unwrap();
    function_dir(src.path());
    let limits = UnpackLimits::default();
    let first = pack_dir(src.path(), &limits).unwrap();
    assert_eq!(pack_dir(src.path(), &limits).unwrap(), first);

    // Touch every file: still the same bytes.
    let later = SystemTime::now() + Duration::from_secs(86_400);
    for rel in [
        "bootstrap",
        "handler.py",
        "tool",
        "lib/libfoo.so.1",
        "a/b/c/deep.txt",
    ] {
        let f = File::options().write(true).open(src.path().join(rel)).unwrap();
        f.set_times(FileTimes::new().set_modified(later).set_accessed(later))
            .unwrap();
    }
    assert_eq!(pack_dir(src.path(), &limits).unwrap(), first);

    // The same tree made in another order elsewhere: the same bytes.
    let other = tempfile::tempdir().unwrap();
    fs::create_dir_all(other.path().join("empty")).unwrap();
    file(other.path(), "vendor/.git/kept", b"not top-level", 0o644);
    file(other.path(), "a/b/c/deep.txt", b"deep", 0o644);
    link(other.path(), "bin/foo", "../lib/libfoo.so");
    file(other.path(), "lib/libfoo.so.1", b"ELF...", 0o640);
    link(other.path(), "lib/libfoo.so", "libfoo.so.1");
    file(other.path(), "tool", b"private exe", 0o711);
    file(
        other.path(),
        "handler.py",
        b"def handler(e, c): return e\n",
        0o644,
    );
    file(other.path(), "bootstrap", b"#!/bin/sh\necho hi\n", 0o775);
    assert_eq!(pack_dir(other.path(), &limits).unwrap(), first);

    // A change is seen.
    file(other.path(), "bootstrap", b"#!/bin/sh\necho hello\n", 0o755);
    assert_ne!(pack_dir(other.path(), &limits).unwrap(), first);
}

#[test]
fn packed_entries_are_sorted_with_fixed_times_and_normalised_modes() {
    let src = tempfile::tempdir().unwrap();
    function_dir(src.path());
    let zip = pack_dir(src.path(), &UnpackLimits::default()).unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut names = Vec::new();
    for i in 0..archive.len() {
        let entry = archive.by_index(i).unwrap();
        assert_eq!(entry.last_modified().unwrap(), zip::DateTime::default());
        let mode = entry.unix_mode().unwrap() & 0o7777;
        names.push(format!("{} {mode:o}", entry.name().unwrap()));
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(names.contains(&"bootstrap 755".to_owned()), "{names:?}");
    assert!(names.contains(&"handler.py 644".to_owned()), "{names:?}");
    assert!(names.contains(&"empty/ 755".to_owned()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with(".git")), "{names:?}");
}

#[test]
fn an_empty_directory_packs_to_an_empty_archive_that_unpacks() {
    let src = tempfile::tempdir().unwrap();
    let zip = pack_dir(src.path(), &UnpackLimits::default()).unwrap();
    assert_eq!(zip.len(), 22, "just the end-of-central-directory record");
    assert!(is_zip(&zip));
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("code");
    let unpacked = unpack(&zip, &dest, &UnpackLimits::default()).unwrap();
    assert_eq!(
        unpacked,
        Unpacked {
            files: 0,
            total_bytes: 0
        }
    );
    assert!(listing(&dest).is_empty());
}

#[test]
fn unpack_normalises_modes_and_creates_implied_directories() {
    let zip = zip_of(&[
        ("./", E::Dir),
        ("setuid", E::Raw(0o104_755 << 16, b"s")),
        ("group-exec", E::File(b"g", 0o610)),
        ("private", E::File(b"p", 0o600)),
        ("no-mode", E::Raw(0, b"w")),
        ("sticky/", E::Raw(0o041_777 << 16, b"")),
        ("deep/er/file.txt", E::File(b"d", 0o644)),
        ("win\\lib.dll", E::File(b"l", 0o644)),
    ]);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("code");
    let unpacked = unpack(&zip, &dest, &UnpackLimits::default()).unwrap();
    assert_eq!(
        unpacked,
        Unpacked {
            files: 6,
            total_bytes: 6
        }
    );
    assert_eq!(
        listing(&dest),
        [
            "deep 755 dir",
            "deep/er 755 dir",
            "deep/er/file.txt 644 file d",
            "group-exec 755 file g",
            "no-mode 644 file w",
            "private 644 file p",
            "setuid 755 file s",
            "sticky 755 dir",
            "win 755 dir",
            "win/lib.dll 644 file l",
        ]
    );
}
