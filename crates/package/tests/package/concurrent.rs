//! Unpackers racing for one destination all succeed and leave one complete directory.

use std::fs;
use std::sync::{Arc, Barrier};
use std::thread;

use wisp_package::{UnpackLimits, Unpacked, unpack};

use crate::support::{E, listing, zip_of};

fn many_files() -> Vec<u8> {
    let names: Vec<String> = (0..200).map(|i| format!("dir{}/file{i}.txt", i % 10)).collect();
    let data: Vec<Vec<u8>> = (0..200).map(|i| vec![b'x'; 100 + i]).collect();
    let mut entries = vec![("bootstrap", E::File(b"#!/bin/sh\n", 0o755))];
    entries.extend(
        names
            .iter()
            .zip(&data)
            .map(|(n, d)| (n.as_str(), E::File(d, 0o644))),
    );
    zip_of(&entries)
}

#[test]
fn racing_unpackers_of_one_archive_all_succeed() {
    let zip = Arc::new(many_files());
    let reference = tempfile::tempdir().unwrap();
    let expected_unpacked = unpack(&zip, &reference.path().join("code"), &UnpackLimits::default()).unwrap();
    let expected = listing(&reference.path().join("code"));

    for _ in 0..10 {
        let tmp = tempfile::tempdir().unwrap();
        let dest = Arc::new(tmp.path().join("code"));
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let (zip, dest, barrier) = (zip.clone(), dest.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    unpack(&zip, &dest, &UnpackLimits::default())
                })
            })
            .collect();
        for racer in racers {
            let unpacked: Unpacked = racer.join().unwrap().unwrap();
            assert_eq!(unpacked, expected_unpacked);
        }
        assert_eq!(listing(&dest), expected);
        let left: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["code"], "no temporary directory may be left behind");
    }
}

#[test]
fn unpacking_again_onto_a_finished_destination_succeeds() {
    let zip = many_files();
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("code");
    unpack(&zip, &dest, &UnpackLimits::default()).unwrap();
    let first = listing(&dest);
    unpack(&zip, &dest, &UnpackLimits::default()).unwrap();
    assert_eq!(listing(&dest), first);
    let left: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["code"]);
}
