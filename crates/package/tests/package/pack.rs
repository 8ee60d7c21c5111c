//! What `pack_dir` refuses, each error naming the path.

use std::fs;

use wisp_package::{PackError, UnpackLimits, pack_dir};

use crate::support::{file, link};

fn pack_err(dir: &std::path::Path, limits: &UnpackLimits) -> String {
    pack_dir(dir, limits).unwrap_err().to_string()
}

#[test]
fn refuses_a_path_that_is_not_a_directory() {
    let src = tempfile::tempdir().unwrap();
    file(src.path(), "bootstrap", b"x", 0o755);
    let path = src.path().join("bootstrap");
    let err = pack_dir(&path, &UnpackLimits::default()).unwrap_err();
    assert!(matches!(err, PackError::NotADirectory(_)));
    assert_eq!(
        err.to_string(),
        format!("`{}` is not a directory", path.display())
    );

    let missing = src.path().join("missing");
    let err = pack_err(&missing, &UnpackLimits::default());
    assert!(
        err.starts_with(&format!("failed to read `{}`: ", missing.display())),
        "{err}"
    );
}

#[test]
fn refuses_symlinks_that_point_outside_the_tree() {
    let src = tempfile::tempdir().unwrap();
    file(src.path(), "bootstrap", b"x", 0o755);
    link(src.path(), "lib", "/etc");
    let err = pack_err(src.path(), &UnpackLimits::default());
    let lib = src.path().join("lib");
    assert_eq!(
        err,
        format!(
            "`{}` is a symlink to `/etc`, outside the function's directory",
            lib.display()
        )
    );

    let src = tempfile::tempdir().unwrap();
    link(src.path(), "sub/up", "../../outside");
    let err = pack_err(src.path(), &UnpackLimits::default());
    let up = src.path().join("sub/up");
    assert_eq!(
        err,
        format!(
            "`{}` is a symlink to `../../outside`, outside the function's directory",
            up.display()
        )
    );
}

#[test]
fn refuses_trees_over_the_limits() {
    let src = tempfile::tempdir().unwrap();
    file(src.path(), "a", &[1; 600], 0o644);
    file(src.path(), "b/c", &[2; 600], 0o644);
    let limits = UnpackLimits {
        max_total_bytes: 1000,
        max_entries: 100,
    };
    let err = pack_err(src.path(), &limits);
    assert_eq!(
        err,
        format!(
            "`{}` holds more than 1000 bytes (the limit)",
            src.path().display()
        )
    );

    let limits = UnpackLimits {
        max_total_bytes: 10_000,
        max_entries: 2,
    };
    let err = pack_err(src.path(), &limits);
    assert_eq!(
        err,
        format!(
            "`{}` has more than 2 files and directories (the limit)",
            src.path().display()
        )
    );

    let limits = UnpackLimits {
        max_total_bytes: 1200,
        max_entries: 3,
    };
    pack_dir(src.path(), &limits).unwrap();
}

#[test]
fn refuses_names_unpack_would_read_differently() {
    let src = tempfile::tempdir().unwrap();
    file(src.path(), "a\\b", b"x", 0o644);
    let err = pack_err(src.path(), &UnpackLimits::default());
    let path = src.path().join("a\\b");
    assert_eq!(
        err,
        format!(
            "`{}` has a backslash in its name, which unzips as a directory separator",
            path.display()
        )
    );
}

#[test]
fn refuses_special_files() {
    let src = tempfile::tempdir().unwrap();
    let sock = src.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let err = pack_err(src.path(), &UnpackLimits::default());
    assert_eq!(
        err,
        format!(
            "`{}` is neither a file, a directory nor a symlink",
            sock.display()
        )
    );
}

#[test]
fn reports_unreadable_files_with_their_path() {
    let src = tempfile::tempdir().unwrap();
    file(src.path(), "secret", b"x", 0o000);
    if fs::read(src.path().join("secret")).is_ok() {
        // Root reads anything: nothing to test here.
        return;
    }
    let err = pack_err(src.path(), &UnpackLimits::default());
    let path = src.path().join("secret");
    assert!(
        err.starts_with(&format!("failed to read `{}`: ", path.display())),
        "{err}"
    );
}

#[test]
fn follows_a_symlinked_root_but_keeps_inner_symlinks() {
    let src = tempfile::tempdir().unwrap();
    file(src.path(), "real/bootstrap", b"x", 0o755);
    link(src.path(), "real/run", "bootstrap");
    link(src.path(), "alias", "real");
    let limits = UnpackLimits::default();
    let through_alias = pack_dir(&src.path().join("alias"), &limits).unwrap();
    assert_eq!(
        through_alias,
        pack_dir(&src.path().join("real"), &limits).unwrap()
    );
}
