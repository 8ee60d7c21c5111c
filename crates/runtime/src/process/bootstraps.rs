//! Wisp's own bootstraps for the `python` and `node` runtimes: small Runtime API
//! clients, standard library only, embedded in the binary and written to the data
//! directory at start-up (`DATA/runtimes/<language>-<hash>/`), where instances see
//! them as `LAMBDA_RUNTIME_DIR`.

use crate::LoadError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use wisp_core::FunctionRuntime;

const PYTHON: &str = include_str!("bootstraps/python.py");
const NODE: &str = include_str!("bootstraps/node.js");

/// The directories the interpreters are looked up in: the instances' own `PATH`.
const SEARCH_PATH: [&str; 3] = ["/usr/local/bin", "/usr/bin", "/bin"];

pub(crate) struct Bootstraps {
    python: PathBuf,
    node: PathBuf,
}

impl Bootstraps {
    /// Writes each bootstrap into a directory named after its content, so a new
    /// Wisp never changes the files an older instance is running.
    pub(crate) fn install(runtimes_dir: &Path) -> std::io::Result<Bootstraps> {
        Ok(Bootstraps {
            python: write(runtimes_dir, "python", "python.py", PYTHON)?,
            node: write(runtimes_dir, "node", "node.js", NODE)?,
        })
    }

    /// The interpreter, the bootstrap's directory and its file name for `runtime`.
    pub(crate) fn for_runtime(
        &self,
        runtime: FunctionRuntime,
    ) -> Result<(PathBuf, PathBuf, &'static str), LoadError> {
        let (dir, interpreter, script) = match runtime {
            FunctionRuntime::Python => (&self.python, "python3", "python.py"),
            FunctionRuntime::Node => (&self.node, "node", "node.js"),
            _ => {
                return Err(LoadError::Internal(format!(
                    "runtime `{runtime}` has no bootstrap"
                )));
            }
        };
        let found = SEARCH_PATH
            .iter()
            .map(|d| Path::new(d).join(interpreter))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                LoadError::InvalidCode(format!(
                    "runtime `{runtime}` needs `{interpreter}` on the server, and it is not in {}: install it, or deploy with runtime `process` and your own bootstrap",
                    SEARCH_PATH.join(", ")
                ))
            })?;
        Ok((found, dir.clone(), script))
    }
}

fn write(runtimes_dir: &Path, language: &str, file: &str, text: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let hash = hex::encode(Sha256::digest(text.as_bytes()));
    let dir = runtimes_dir.join(format!("{language}-{}", &hash[..12]));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(file);
    if std::fs::read(&path).ok().as_deref() != Some(text.as_bytes()) {
        let tmp = dir.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(&tmp, &path)?;
    }
    // Readable by the sandbox user through the bind mount.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}
