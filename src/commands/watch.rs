//! `wisp up --watch`: redeploys the app when its files change. Polls the manifest and
//! every function's source (a file, or a directory tree for native code) twice a
//! second, waits until they have been quiet for a moment (a build writes many files),
//! then deploys the app again through the same path as `wisp deploy`, printing what
//! changed and what failed. A failure is printed and the server keeps serving what it
//! had.

use super::deploy::{deploy_app, load_manifest};
use crate::client::Client;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How often the files are looked at.
const POLL: Duration = Duration::from_millis(500);
/// How long the files must stay unchanged before a redeploy.
const QUIET: Duration = Duration::from_millis(300);

/// Each watched file's modification time and size.
type Snapshot = BTreeMap<PathBuf, (SystemTime, u64)>;

/// Watches the app at `path` and redeploys it on change, until the task is dropped.
/// `data_dir`, the server's, is never watched: a source of `.` with the data directory
/// inside it would otherwise change with every write the server makes.
pub async fn watch(client: &Client, path: &Path, data_dir: &Path) {
    let data_dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let snapshot = |path: &Path| snapshot(path, &data_dir);
    let mut seen = snapshot(path);
    eprintln!("Watching {} for changes (Ctrl-C to stop)", path.display());
    loop {
        tokio::time::sleep(POLL).await;
        let mut now = snapshot(path);
        if now == seen {
            continue;
        }
        // Debounce: wait until a build has finished writing.
        loop {
            tokio::time::sleep(QUIET).await;
            let again = snapshot(path);
            if again == now {
                break;
            }
            now = again;
        }
        let changed = changes(&seen, &now);
        seen = now;
        eprintln!("Changed: {}", changed.join(", "));
        let result = match load_manifest(path) {
            Ok(manifest) => deploy_app(client, &manifest, false).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            eprintln!("error: {e:#}");
            eprintln!("The server keeps serving what it had; fix it and save again.");
        }
    }
}

/// The files of the app at `path`: its manifest and, as far as the manifest parses,
/// every function's source.
fn snapshot(path: &Path, data_dir: &Path) -> Snapshot {
    let manifest_path = if path.is_dir() {
        path.join("wisp.toml")
    } else {
        path.to_path_buf()
    };
    let mut files = Snapshot::new();
    add(&mut files, &manifest_path, data_dir);
    if let Ok(manifest) = wisp_manifest::load(path) {
        for function in &manifest.functions {
            add(&mut files, &function.source, data_dir);
        }
    }
    files
}

/// Adds a file, or every file under a directory (skipping hidden entries and the
/// server's data directory).
fn add(files: &mut Snapshot, path: &Path, data_dir: &Path) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if meta.is_file() {
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        files.insert(path.to_path_buf(), (modified, meta.len()));
        return;
    }
    if std::fs::canonicalize(path).is_ok_and(|p| p == data_dir) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with('.') {
            add(files, &entry.path(), data_dir);
        }
    }
}

/// The files added, removed or changed between two snapshots.
fn changes(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut changed: Vec<String> = after
        .iter()
        .filter(|(path, stat)| before.get(*path) != Some(stat))
        .map(|(path, _)| path.display().to_string())
        .collect();
    changed.extend(
        before
            .keys()
            .filter(|path| !after.contains_key(*path))
            .map(|path| format!("{} (removed)", path.display())),
    );
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_name_what_was_added_changed_and_removed() {
        let t = SystemTime::UNIX_EPOCH;
        let before = Snapshot::from([("a".into(), (t, 1)), ("b".into(), (t, 1))]);
        let after = Snapshot::from([("a".into(), (t, 2)), ("c".into(), (t, 1))]);
        assert_eq!(changes(&before, &after), ["a", "c", "b (removed)"]);
        assert!(changes(&after, &after).is_empty());
    }

    #[test]
    fn the_servers_data_dir_is_not_watched_even_inside_a_source() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("wisp.toml"),
            "[app]\nname = \"w\"\n[functions.f]\nruntime = \"python\"\nhandler = \"app.handler\"\nsource = \".\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("app.py"), "").unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/wisp.db"), "").unwrap();
        let files = snapshot(
            dir.path(),
            &std::fs::canonicalize(dir.path().join("data")).unwrap(),
        );
        assert!(files.keys().any(|p| p.ends_with("app.py")), "{files:?}");
        assert!(!files.keys().any(|p| p.ends_with("wisp.db")), "{files:?}");
    }
}
