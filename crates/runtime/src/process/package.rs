//! A process function's code on disk: the uploaded zip unpacked once per code hash
//! under `DATA/functions/<code sha256>/`, the check that it holds what its runtime
//! starts (`bootstrap`, or the handler's module), and the count of function versions
//! using each directory, so that one no version uses any more is removed.

use crate::{FunctionSpec, LoadError};
use bytes::Bytes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use wisp_core::{FunctionConfig, FunctionRuntime};
use wisp_package::UnpackLimits;

/// Unpacks `code` for `spec` unless it already is, and returns its directory.
pub(crate) async fn unpack(
    functions_dir: &Path,
    spec: &FunctionSpec,
    code: Bytes,
) -> Result<PathBuf, LoadError> {
    let runtime = spec.config.runtime;
    if !wisp_package::is_zip(&code) {
        let what = if code.starts_with(b"\0asm") {
            "this is a WebAssembly binary: deploy it with runtime `wasm`"
        } else {
            "this upload is not a zip archive"
        };
        return Err(LoadError::InvalidCode(format!(
            "runtime `{runtime}` takes a .zip of the function's code ({}); {what}",
            entry_hint(&spec.config)
        )));
    }
    let dir = functions_dir.join(&spec.code_hash);
    if dir.is_dir() {
        return Ok(dir);
    }
    let dest = dir.clone();
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::PermissionsExt;
        wisp_package::unpack(&code, &dest, &UnpackLimits::default()).map_err(|e| {
            if e.is_invalid_code() {
                LoadError::InvalidCode(e.to_string())
            } else {
                LoadError::Internal(format!("cannot unpack the code into `{}`: {e}", dest.display()))
            }
        })?;
        // Readable by the sandbox user, through the read-only bind mount.
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| LoadError::Internal(format!("cannot open up `{}`: {e}", dest.display())))
    })
    .await
    .map_err(|e| LoadError::Internal(format!("unpacking panicked: {e}")))??;
    Ok(dir)
}

/// The unpacked code directories, with how many loaded function versions use each.
pub(crate) struct CodeDirs {
    root: PathBuf,
    users: Mutex<HashMap<String, usize>>,
}

/// One function version's use of a code directory; the last one to go removes it
/// (an unpacked copy is only a cache of the code in the store).
pub(crate) struct CodeLease {
    dirs: Arc<CodeDirs>,
    hash: String,
}

impl CodeDirs {
    pub(crate) fn new(root: PathBuf) -> Arc<CodeDirs> {
        Arc::new(CodeDirs {
            root,
            users: Mutex::new(HashMap::new()),
        })
    }

    /// Counts one more user of `hash`'s directory. Take it before looking for the
    /// directory: while a lease is held the directory is not removed.
    pub(crate) fn lease(self: &Arc<Self>, hash: &str) -> CodeLease {
        *self
            .users
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(hash.to_string())
            .or_insert(0) += 1;
        CodeLease {
            dirs: self.clone(),
            hash: hash.to_string(),
        }
    }
}

impl Drop for CodeLease {
    fn drop(&mut self) {
        let mut users = self.dirs.users.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(count) = users.get_mut(&self.hash) else {
            return;
        };
        *count -= 1;
        if *count > 0 {
            return;
        }
        users.remove(&self.hash);
        // Moved aside under the lock: a new lease finds no directory and unpacks
        // afresh, instead of racing the removal.
        let dir = self.dirs.root.join(&self.hash);
        let doomed = self.dirs.root.join(format!(
            ".removed-{}-{}",
            self.hash,
            uuid::Uuid::now_v7().simple()
        ));
        if std::fs::rename(&dir, &doomed).is_err() {
            return;
        }
        drop(users);
        super::in_background(move || {
            let _ = std::fs::remove_dir_all(&doomed);
        });
    }
}

fn entry_hint(config: &FunctionConfig) -> String {
    match config.runtime {
        FunctionRuntime::Process => "its root must hold an executable `bootstrap`".to_string(),
        _ => format!(
            "it must hold the module of handler `{}`",
            config.handler.as_deref().unwrap_or_default()
        ),
    }
}

/// Checks that the unpacked code holds what its runtime starts.
pub(crate) fn check_entry(dir: &Path, config: &FunctionConfig) -> Result<(), LoadError> {
    use std::os::unix::fs::PermissionsExt;
    let invalid = |message: String| Err(LoadError::InvalidCode(message));
    match config.runtime {
        FunctionRuntime::Process => match std::fs::metadata(dir.join("bootstrap")) {
            Err(_) => invalid(
                "the code has no `bootstrap` at the root of its zip: a process function runs the executable \
                 `bootstrap` (Lambda's custom-runtime convention; `cargo lambda build` and Go's `provided.al2` \
                 builds make one)"
                    .to_string(),
            ),
            Ok(m) if !m.is_file() => invalid("`bootstrap` must be a file, not a directory".to_string()),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => invalid(
                "`bootstrap` is not executable: set its executable bit (`chmod +x bootstrap`) before zipping"
                    .to_string(),
            ),
            Ok(_) => Ok(()),
        },
        FunctionRuntime::Python | FunctionRuntime::Node => {
            let handler = config.handler.as_deref().unwrap_or_default();
            let candidates = module_files(config.runtime, handler);
            if candidates.iter().any(|c| dir.join(c).exists()) {
                Ok(())
            } else {
                let names: Vec<String> = candidates.iter().map(|c| format!("`{}`", c.display())).collect();
                invalid(format!(
                    "handler `{handler}`: the code holds none of {}",
                    names.join(", ")
                ))
            }
        }
        FunctionRuntime::Wasm => Ok(()),
    }
}

/// The files a handler's module may be, as each runtime resolves it: Python
/// imports `a/b.c.fn` as module `a.b.c` (`a/b/c.py` or a package); Node requires
/// `a/b.fn` as `a/b.js`, `.mjs` or `.cjs`.
fn module_files(runtime: FunctionRuntime, handler: &str) -> Vec<PathBuf> {
    match runtime {
        FunctionRuntime::Python => {
            let module = handler.rsplit_once('.').map_or(handler, |(m, _)| m);
            let path = module.replace('.', "/");
            vec![
                PathBuf::from(format!("{path}.py")),
                PathBuf::from(format!("{path}/__init__.py")),
                PathBuf::from(format!("{path}.pyc")),
            ]
        }
        _ => {
            let (dir, file) = match handler.rsplit_once('/') {
                Some((dir, file)) => (format!("{dir}/"), file),
                None => (String::new(), handler),
            };
            let module = file.split_once('.').map_or(file, |(m, _)| m);
            ["js", "mjs", "cjs"]
                .iter()
                .map(|ext| PathBuf::from(format!("{dir}{module}.{ext}")))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_name_their_module_files() {
        let py = |h| module_files(FunctionRuntime::Python, h);
        assert_eq!(py("app.handler")[0], PathBuf::from("app.py"));
        assert_eq!(py("src/app.handler")[0], PathBuf::from("src/app.py"));
        assert_eq!(py("pkg.mod.handler")[1], PathBuf::from("pkg/mod/__init__.py"));
        let node = |h| module_files(FunctionRuntime::Node, h);
        assert_eq!(node("index.handler")[1], PathBuf::from("index.mjs"));
        assert_eq!(node("src/index.handler")[0], PathBuf::from("src/index.js"));
        assert_eq!(
            node("lib/index.nested.handler")[2],
            PathBuf::from("lib/index.cjs")
        );
    }
}
