//! Fixture tests for `wisp.toml` (after Spin's `crates/manifest/tests/ui.rs`).
//!
//! - `tests/ui/valid/NAME.toml` must load; the manifest, as pretty JSON, must equal
//!   `NAME.json`. Fixtures are loaded by their path relative to the crate (cargo runs
//!   tests there), so `dir` and sources read `tests/ui/valid/…` on every machine.
//! - `tests/ui/invalid/NAME.toml` must fail; the rendered error, with the file
//!   shown by its name alone, must equal `NAME.err`.
//!
//! `BLESS=1 cargo test -p wisp-manifest --test ui` (re)writes the expectations;
//! review the diff before committing it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a failure is a test failure"
)]

use std::fs;
use std::path::{Path, PathBuf};

fn bless() -> bool {
    std::env::var_os("BLESS").is_some_and(|v| v != "0" && !v.is_empty())
}

/// The `*.toml` files of a fixture directory, sorted.
fn fixtures(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {dir}: {e}"))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {dir}");
    files
}

/// Compares `actual` with the expectation file, or writes it when blessing.
/// Returns a failure report, if any.
fn check(fixture: &Path, expected_path: &Path, actual: &str) -> Option<String> {
    if bless() {
        fs::write(expected_path, actual).unwrap();
        return None;
    }
    let Ok(expected) = fs::read_to_string(expected_path) else {
        return Some(format!(
            "{}: no {} yet; run with BLESS=1 to write it. Actual:\n{actual}",
            fixture.display(),
            expected_path.display()
        ));
    };
    (expected != actual).then(|| {
        format!(
            "{} differs from {} (- expected, + actual):\n{}",
            fixture.display(),
            expected_path.display(),
            diff(&expected, actual)
        )
    })
}

/// A line diff (longest common subsequence); fixtures are small.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        }
    }
    if expected.ends_with('\n') != actual.ends_with('\n') {
        out.push_str("(the final line break differs)\n");
    }
    out
}

fn finish(failures: Vec<String>) {
    if !failures.is_empty() {
        panic!("{} fixture(s) failed:\n\n{}", failures.len(), failures.join("\n"));
    }
}

#[test]
fn valid_manifests_parse() {
    let mut failures = Vec::new();
    for fixture in fixtures("tests/ui/valid") {
        match wisp_manifest::load(&fixture) {
            Ok(manifest) => {
                let json = serde_json::to_string_pretty(&manifest).unwrap() + "\n";
                failures.extend(check(&fixture, &fixture.with_extension("json"), &json));
            }
            Err(e) => failures.push(format!("{} should load but:\n{e}\n", fixture.display())),
        }
    }
    finish(failures);
}

#[test]
fn invalid_manifests_fail_with_a_located_error() {
    let mut failures = Vec::new();
    for fixture in fixtures("tests/ui/invalid") {
        let text = fs::read_to_string(&fixture).unwrap();
        let name = Path::new(fixture.file_name().unwrap());
        match wisp_manifest::parse(&text, name) {
            Ok(m) => failures.push(format!("{} should fail but parsed: {m:?}\n", fixture.display())),
            Err(e) => {
                assert!(e.line > 0 && e.column > 0, "{}: {e}", fixture.display());
                failures.extend(check(&fixture, &fixture.with_extension("err"), &format!("{e}\n")));
            }
        }
    }
    finish(failures);
}

#[test]
fn every_expectation_has_a_fixture() {
    for (dir, ext) in [("tests/ui/valid", "json"), ("tests/ui/invalid", "err")] {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == ext) {
                assert!(
                    path.with_extension("toml").exists(),
                    "{} has no fixture beside it; remove it",
                    path.display()
                );
            }
        }
    }
}

/// `docs/manifest.md` shows an error as the loader writes it; the quote is the
/// fixture's expectation (a quoted list of keys once drifted to 6 of 18), so a change
/// to the message must change the docs too.
#[test]
fn the_docs_quote_a_real_error() {
    let expected = fs::read_to_string("tests/ui/invalid/unknown_function_key.err")
        .unwrap()
        .replace("unknown_function_key.toml", "wisp.toml");
    let docs = fs::read_to_string("../../docs/manifest.md").unwrap();
    let section = docs
        .split("## Errors")
        .nth(1)
        .expect("docs/manifest.md has an `## Errors` section");
    let quoted = section
        .split("```text\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the Errors section quotes an error in a ```text block");
    assert_eq!(
        quoted, expected,
        "docs/manifest.md quotes an error the loader no longer writes; copy tests/ui/invalid/unknown_function_key.err"
    );
}
