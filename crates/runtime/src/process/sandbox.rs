//! The sandbox a process instance runs in: what this machine allows
//! ([`Sandbox::detect`]) and what one instance gets ([`Plan`]). The shim
//! ([`super::shim`]) applies it in the instance's own process, before it execs the
//! function's code.
//!
//! Always: its own process group (so a timeout kills every process it started), an
//! environment made from scratch (nothing of the server's own), rlimits (open files,
//! core dumps), and a parent-death signal so no instance outlives the server.
//! When the kernel allows (Wisp runs as root):
//! - a cgroup capping memory and the number of processes ([`super::cgroup`]);
//!   otherwise `RLIMIT_AS` and `RLIMIT_NPROC` stand in;
//! - a private mount namespace: a fresh tmpfs on `/tmp`, the code bound read-only on
//!   `/var/task` and the runtime's bootstrap on `/var/runtime`, as on Lambda;
//!   otherwise the instance gets a private `TMPDIR` under the data directory;
//! - an unprivileged user (`nobody` by default) instead of root;
//! - a network namespace of its own that reaches only its Runtime API, Wisp's
//!   services and (through a proxy) its granted hosts ([`super::network`]); otherwise
//!   the instance shares the host's network, and `describe` says so.

use super::cgroup::Cgroups;
use nix::sys::resource::Resource;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Where the code is seen from inside a mount namespace (Lambda's `LAMBDA_TASK_ROOT`).
pub const TASK_ROOT: &str = "/var/task";
/// Where Wisp's bootstraps are seen from inside a mount namespace (`LAMBDA_RUNTIME_DIR`).
pub const RUNTIME_ROOT: &str = "/var/runtime";

/// The most files an instance may have open (Lambda's limit).
pub const MAX_OPEN_FILES: u64 = 1024;
/// The most processes and threads an instance may run (Lambda's limit).
pub const MAX_PROCESSES: u64 = 1024;
/// The size of an instance's private `/tmp` (Lambda's default ephemeral storage).
pub const TMP_SIZE_MB: u64 = 512;

/// The user instances run as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl SandboxUser {
    /// Looks a user up by name or numeric id.
    pub fn lookup(user: &str) -> Result<SandboxUser, String> {
        let found = match user.parse::<u32>() {
            Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
            Err(_) => nix::unistd::User::from_name(user),
        }
        .map_err(|e| format!("cannot look up user `{user}`: {e}"))?;
        match (found, user.parse::<u32>()) {
            (Some(u), _) => Ok(SandboxUser {
                name: u.name,
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
            }),
            // A numeric id need not have a passwd entry; its group is the same number.
            (None, Ok(uid)) => Ok(SandboxUser {
                name: uid.to_string(),
                uid,
                gid: uid,
            }),
            (None, Err(_)) => Err(format!("there is no user `{user}` on this machine")),
        }
    }
}

/// Which user to run instances as, as configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum UserChoice {
    /// `nobody` when Wisp runs as root; Wisp's own user otherwise.
    #[default]
    Default,
    /// Wisp's own user, even when that is root (not recommended).
    Same,
    /// This user (Wisp must run as root to switch to it).
    Named(String),
}

/// What the sandbox can do on this machine, found once at start-up.
#[derive(Clone, Debug)]
pub struct Sandbox {
    pub user: Option<SandboxUser>,
    pub cgroups: Option<Cgroups>,
    /// Whether instances get a private mount namespace (root only).
    pub mount_namespace: bool,
    /// Whether instances get a network namespace of their own (root only).
    pub network_namespace: bool,
}

impl Sandbox {
    /// Probes the machine. Root gets every isolation the kernel offers; anyone else
    /// gets process groups and rlimits.
    pub fn detect(user: &UserChoice) -> Result<Sandbox, String> {
        let root = nix::unistd::geteuid().is_root();
        let user = match user {
            UserChoice::Same => None,
            UserChoice::Default if root => Some(SandboxUser::lookup("nobody")?),
            UserChoice::Default => None,
            UserChoice::Named(name) => {
                let user = SandboxUser::lookup(name)?;
                if !root && user.uid != nix::unistd::geteuid().as_raw() {
                    return Err(format!(
                        "running functions as `{name}` needs Wisp to run as root; leave the sandbox user unset"
                    ));
                }
                Some(user)
            }
        };
        let mount_namespace = root && mount_points_ready();
        let network_namespace = root
            && super::network::probe()
                .inspect_err(|e| tracing::warn!("instances will share the host's network: {e}"))
                .is_ok();
        Ok(Sandbox {
            user,
            cgroups: if root { Cgroups::detect() } else { None },
            mount_namespace,
            network_namespace,
        })
    }

    /// A sandbox with no isolation beyond process groups and rlimits (for tests of
    /// the fallbacks).
    pub fn minimal() -> Sandbox {
        Sandbox {
            user: None,
            cgroups: None,
            mount_namespace: false,
            network_namespace: false,
        }
    }

    /// One line for the server log: what isolation instances get here.
    pub fn describe(&self) -> String {
        let user = match &self.user {
            Some(u) => format!("user {} ({})", u.name, u.uid),
            None => "Wisp's own user".to_string(),
        };
        let cgroups = match &self.cgroups {
            Some(c) => c.describe(),
            None => "no cgroups (RLIMIT_AS and RLIMIT_NPROC instead)".to_string(),
        };
        let mounts = if self.mount_namespace {
            "private mount namespace (/var/task, /tmp)"
        } else {
            "no mount namespace (private TMPDIR)"
        };
        let network = if self.network_namespace {
            "own network namespace (Runtime API, granted services and hosts only)"
        } else {
            "the host's network, NOT isolated (run Wisp as root to isolate it)"
        };
        format!("{user}; {cgroups}; {mounts}; {network}")
    }
}

/// `/var/task` and `/var/runtime` must exist to be mounted on; Wisp makes them
/// (empty) when it may.
fn mount_points_ready() -> bool {
    [TASK_ROOT, RUNTIME_ROOT]
        .iter()
        .all(|dir| std::fs::create_dir_all(dir).is_ok())
}

/// What one instance's sandbox is made of.
pub struct Plan<'a> {
    pub sandbox: &'a Sandbox,
    /// The unpacked code on the host.
    pub code_dir: &'a Path,
    /// The bootstrap's directory on the host, for the python and node runtimes.
    pub runtime_dir: Option<&'a Path>,
    pub memory_bytes: u64,
    /// Whether `RLIMIT_AS` may stand in for a memory cgroup (not for runtimes that
    /// reserve more address space than they use, like Node's V8).
    pub address_space_limit_ok: bool,
    /// The network namespace to join (its file), when the instance has one.
    pub network: Option<PathBuf>,
}

impl Plan<'_> {
    /// The task root and runtime dir as the child sees them.
    pub fn paths(&self) -> (PathBuf, Option<PathBuf>) {
        if self.sandbox.mount_namespace {
            (
                PathBuf::from(TASK_ROOT),
                self.runtime_dir.map(|_| PathBuf::from(RUNTIME_ROOT)),
            )
        } else {
            (
                self.code_dir.to_path_buf(),
                self.runtime_dir.map(Path::to_path_buf),
            )
        }
    }

    /// The sandbox part of the shim's instructions: rlimits, mounts, working
    /// directory and user.
    pub(crate) fn isolation(&self) -> Isolation {
        let cgroups = self.sandbox.cgroups.as_ref();
        let mut rlimits = vec![(Rlimit::OpenFiles, MAX_OPEN_FILES), (Rlimit::CoreSize, 0)];
        if !cgroups.is_some_and(Cgroups::limits_memory) && self.address_space_limit_ok {
            rlimits.push((Rlimit::AddressSpace, self.memory_bytes));
        }
        // RLIMIT_NPROC counts every process of the user, so it only bounds an
        // instance when instances run as their own user; it still stops a fork bomb.
        if !cgroups.is_some_and(Cgroups::limits_pids) {
            rlimits.push((Rlimit::Processes, MAX_PROCESSES));
        }
        let (cwd, _) = self.paths();
        Isolation {
            rlimits,
            mounts: self.sandbox.mount_namespace.then(|| Mounts {
                code: self.code_dir.to_path_buf(),
                runtime: self.runtime_dir.map(Path::to_path_buf),
                tmp_size_mb: TMP_SIZE_MB,
            }),
            cwd,
            user: self.sandbox.user.as_ref().map(|u| (u.uid, u.gid)),
            network: self.network.clone(),
        }
    }
}

/// The limits the shim sets with `setrlimit`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) enum Rlimit {
    OpenFiles,
    CoreSize,
    AddressSpace,
    Processes,
}

impl Rlimit {
    pub(crate) fn resource(self) -> Resource {
        match self {
            Rlimit::OpenFiles => Resource::RLIMIT_NOFILE,
            Rlimit::CoreSize => Resource::RLIMIT_CORE,
            Rlimit::AddressSpace => Resource::RLIMIT_AS,
            Rlimit::Processes => Resource::RLIMIT_NPROC,
        }
    }
}

/// How the shim isolates the runtime before it execs it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Isolation {
    pub rlimits: Vec<(Rlimit, u64)>,
    /// A private mount namespace (and PID namespace) with these mounts.
    pub mounts: Option<Mounts>,
    pub cwd: PathBuf,
    /// Switch to this uid and gid (dropping supplementary groups).
    pub user: Option<(u32, u32)>,
    /// Join this network namespace (its file) first.
    pub network: Option<PathBuf>,
}

/// The mounts of an instance's namespace.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Mounts {
    /// Bound read-only on `/var/task`.
    pub code: PathBuf,
    /// Bound read-only on `/var/runtime`.
    pub runtime: Option<PathBuf>,
    /// The size of the tmpfs on `/tmp`.
    pub tmp_size_mb: u64,
}

/// The environment an instance starts with: Lambda's, the function's own `env`,
/// and nothing of the server's.
pub fn base_env(tmp: &Path) -> Vec<(OsString, OsString)> {
    let pairs = [
        ("PATH", "/usr/local/bin:/usr/bin:/bin:/opt/bin"),
        ("LANG", "en_US.UTF-8"),
        ("TZ", ":UTC"),
        ("AWS_REGION", "local"),
        ("AWS_DEFAULT_REGION", "local"),
        ("AWS_EXECUTION_ENV", "Wisp"),
    ];
    let mut env: Vec<(OsString, OsString)> = pairs
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect();
    env.push(("TMPDIR".into(), tmp.as_os_str().to_owned()));
    env.push(("HOME".into(), tmp.as_os_str().to_owned()));
    env
}
