//! Zips made by Info-ZIP's `zip` (what users upload) unpack, and ours unzip with `unzip`. Skipped
//! when the tools are not installed.

use std::fs;
use std::process::Command;

use wisp_package::{UnpackLimits, pack_dir, unpack};

use crate::support::{file, link, listing};

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn function_dir(root: &std::path::Path) {
    file(root, "bootstrap", b"#!/bin/sh\necho hi\n", 0o755);
    file(root, "lib/libfoo.so.1", b"ELF...", 0o644);
    link(root, "lib/libfoo.so", "libfoo.so.1");
}

const EXPECTED: &[&str] = &[
    "bootstrap 755 file #!/bin/sh\necho hi\n",
    "lib 755 dir",
    "lib/libfoo.so -> libfoo.so.1",
    "lib/libfoo.so.1 644 file ELF...",
];

#[test]
fn unpacks_what_info_zip_makes() {
    if !have("zip") {
        eprintln!("skipped: `zip` is not installed");
        return;
    }
    let src = tempfile::tempdir().unwrap();
    function_dir(src.path());
    let out = tempfile::tempdir().unwrap();
    let zip_path = out.path().join("code.zip");
    let status = Command::new("zip")
        .args(["-q", "-r", "-y", "-X"])
        .arg(&zip_path)
        .arg(".")
        .current_dir(src.path())
        .status()
        .unwrap();
    assert!(status.success());
    let dest = out.path().join("code");
    unpack(&fs::read(&zip_path).unwrap(), &dest, &UnpackLimits::default()).unwrap();
    assert_eq!(listing(&dest), EXPECTED);
}

#[test]
fn info_zip_unzips_what_we_make() {
    if !have("unzip") {
        eprintln!("skipped: `unzip` is not installed");
        return;
    }
    let src = tempfile::tempdir().unwrap();
    function_dir(src.path());
    let out = tempfile::tempdir().unwrap();
    let zip_path = out.path().join("code.zip");
    fs::write(&zip_path, pack_dir(src.path(), &UnpackLimits::default()).unwrap()).unwrap();
    let dest = out.path().join("code");
    let status = Command::new("unzip")
        .arg("-q")
        .arg(&zip_path)
        .arg("-d")
        .arg(&dest)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(listing(&dest), EXPECTED);
}
