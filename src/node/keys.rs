//! The data directory's key files: `master.key` (seals API key secrets in the store)
//! and `admin.key` (the admin key of the first start, where the local CLI finds it).
//! Both are written with mode 0600, readable by Wisp's user alone.

use super::NodeError;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use wisp_engine::{Engine, MasterKey};

/// The file the first start's admin key is written to.
pub const ADMIN_KEY_FILE: &str = "admin.key";
const MASTER_KEY_FILE: &str = "master.key";

fn identity(what: impl std::fmt::Display) -> NodeError {
    NodeError::Identity(what.to_string())
}

/// Writes `text` to a new file readable by its owner alone; refuses to overwrite.
fn write_private(path: &Path, text: &str) -> Result<(), NodeError> {
    let mut file = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| identity(format!("cannot create `{}`: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| identity(format!("cannot write `{}`: {e}", path.display())))
}

/// The node's master key: read from the data directory, or made and written there on
/// the first start. Every node sharing a store must have the same one.
pub fn master_key(dir: &Path) -> Result<MasterKey, NodeError> {
    let path = dir.join(MASTER_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => MasterKey::from_text(&text).ok_or_else(|| {
            identity(format!(
                "`{}` is not a master key (64 hex digits); restore it from a backup: without it no API key can sign AWS requests",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = MasterKey::generate().map_err(identity)?;
            write_private(&path, &format!("{}\n", key.to_text()))?;
            Ok(key)
        }
        Err(e) => Err(identity(format!("cannot read `{}`: {e}", path.display()))),
    }
}

/// Readies the `default` namespace, and on a store without keys creates the admin
/// key (`given`, or a fresh one) and writes its token to `admin.key`.
pub async fn bootstrap(engine: &Engine, dir: &Path, given: Option<&str>) -> Result<(), NodeError> {
    let Some(key) = engine
        .bootstrap(given)
        .await
        .map_err(|e| identity(e.with_cause()))?
    else {
        return Ok(());
    };
    let path = dir.join(ADMIN_KEY_FILE);
    // A file left from an earlier store would hold a key this store does not know.
    if path.exists() {
        std::fs::remove_file(&path)
            .map_err(|e| identity(format!("cannot replace `{}`: {e}", path.display())))?;
    }
    write_private(&path, &format!("{}\n", key.token))?;
    tracing::info!(
        key = %key.record.id,
        "created the admin API key; its token is in {} (mode 0600): the CLI on this machine finds it there",
        path.display()
    );
    Ok(())
}
