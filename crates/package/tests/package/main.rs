//! Integration tests of `wisp-package` on real files and real zips, in one binary so they link
//! once: packing and round trips, determinism, the archives `unpack` must refuse, and racing
//! unpackers.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod concurrent;
mod interop;
mod pack;
mod refusals;
mod round_trip;
mod support;
