//! The docs are true of the tree: what they state about the code is checked here, so
//! a change to one fails until the other follows.

use std::collections::BTreeSet;
use std::path::Path;

/// The Wisp crates a package's `[dependencies]` name (not dev-dependencies: tests may
/// wire anything), by their short names (`wisp-engine` → `engine`).
fn wisp_dependencies(manifest: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    doc.get("dependencies")
        .and_then(|d| d.as_table())
        .map(|deps| {
            deps.keys()
                .filter_map(|k| k.strip_prefix("wisp-"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `docs/architecture.md`'s table of crates says what each may depend on; each
/// crate's `Cargo.toml` must depend on exactly those of Wisp's crates.
#[test]
fn the_architecture_table_matches_the_dependencies() {
    let root = wisp_test_support::repo_root();
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let mut seen = 0;
    for line in doc.lines().filter(|l| l.starts_with("| `wisp")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let package = cells[1].split('`').nth(1).unwrap();
        let manifest = match package {
            "wisp" => root.join("Cargo.toml"),
            other => root
                .join("crates")
                .join(other.strip_prefix("wisp-").unwrap())
                .join("Cargo.toml"),
        };
        let documented: BTreeSet<String> = match cells[cells.len() - 2] {
            "—" => BTreeSet::new(),
            list => list.split(", ").map(str::to_string).collect(),
        };
        assert_eq!(
            documented,
            wisp_dependencies(&manifest),
            "docs/architecture.md says `{package}` depends on {documented:?}; its Cargo.toml differs"
        );
        seen += 1;
    }
    let crates = std::fs::read_dir(root.join("crates")).unwrap().count();
    assert_eq!(seen, crates + 1, "every crate and the binary have a row");
}
