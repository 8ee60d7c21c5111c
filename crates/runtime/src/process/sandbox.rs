//! The sandbox a process instance runs in, and the one place that sets it up: the
//! child's side of `fork`, before it execs the function's code.
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
//! - an unprivileged user (`nobody` by default) instead of root.

use super::cgroup::{Cgroups, InstanceCgroup};
use nix::sys::resource::{Resource, setrlimit};
use std::ffi::{CStr, CString, OsString};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
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
        Ok(Sandbox {
            user,
            cgroups: if root { Cgroups::detect() } else { None },
            mount_namespace,
        })
    }

    /// A sandbox with no isolation beyond process groups and rlimits (for tests of
    /// the fallbacks).
    pub fn minimal() -> Sandbox {
        Sandbox {
            user: None,
            cgroups: None,
            mount_namespace: false,
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
        format!("{user}; {cgroups}; {mounts}")
    }
}

/// `/var/task` and `/var/runtime` must exist to be mounted on; Wisp makes them
/// (empty) when it may.
fn mount_points_ready() -> bool {
    [TASK_ROOT, RUNTIME_ROOT]
        .iter()
        .all(|dir| std::fs::create_dir_all(dir).is_ok())
}

/// Everything the child needs to set itself up, prepared by the parent: the child
/// must not allocate between `fork` and `exec`.
pub struct ChildSetup {
    cgroup_procs: Vec<File>,
    rlimits: Vec<(Resource, u64)>,
    mounts: Option<Mounts>,
    cwd: CString,
    user: Option<SandboxUser>,
}

struct Mounts {
    tmp_options: CString,
    code: CString,
    runtime: Option<CString>,
}

/// What one instance's sandbox is made of.
pub struct Plan<'a> {
    pub sandbox: &'a Sandbox,
    /// The unpacked code on the host.
    pub code_dir: &'a Path,
    /// The bootstrap's directory on the host, for the python and node runtimes.
    pub runtime_dir: Option<&'a Path>,
    pub cgroup: Option<&'a InstanceCgroup>,
    pub memory_bytes: u64,
    /// Whether `RLIMIT_AS` may stand in for a memory cgroup (not for runtimes that
    /// reserve more address space than they use, like Node's V8).
    pub address_space_limit_ok: bool,
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

    /// Prepares the child's setup.
    pub fn child_setup(&self) -> io::Result<ChildSetup> {
        let cstring = |p: &Path| {
            CString::new(p.as_os_str().as_bytes())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
        };
        let mut rlimits = vec![
            (Resource::RLIMIT_NOFILE, MAX_OPEN_FILES),
            (Resource::RLIMIT_CORE, 0),
        ];
        let cgroups = self.sandbox.cgroups.as_ref();
        if !cgroups.is_some_and(Cgroups::limits_memory) && self.address_space_limit_ok {
            rlimits.push((Resource::RLIMIT_AS, self.memory_bytes));
        }
        // RLIMIT_NPROC counts every process of the user, so it only bounds an
        // instance when instances run as their own user; it still stops a fork bomb.
        if !cgroups.is_some_and(Cgroups::limits_pids) {
            rlimits.push((Resource::RLIMIT_NPROC, MAX_PROCESSES));
        }
        // Without privileges a limit cannot rise above the hard limit Wisp has.
        for (resource, limit) in &mut rlimits {
            if let Ok((_, hard)) = nix::sys::resource::getrlimit(*resource) {
                *limit = (*limit).min(hard);
            }
        }
        let (cwd, _) = self.paths();
        Ok(ChildSetup {
            cgroup_procs: match self.cgroup {
                Some(cgroup) => cgroup.procs_files()?,
                None => Vec::new(),
            },
            rlimits,
            mounts: if self.sandbox.mount_namespace {
                Some(Mounts {
                    tmp_options: CString::new(format!("size={}m,mode=1777", TMP_SIZE_MB))
                        .map_err(|_| io::Error::other("NUL in mount options"))?,
                    code: cstring(self.code_dir)?,
                    runtime: self.runtime_dir.map(cstring).transpose()?,
                })
            } else {
                None
            },
            cwd: cstring(&cwd)?,
            user: self.sandbox.user.clone(),
        })
    }
}

impl ChildSetup {
    /// Installs the setup on `command`: it runs in the child after `fork`.
    #[allow(unsafe_code)]
    pub fn install(self, command: &mut tokio::process::Command) {
        command.process_group(0);
        // SAFETY: the closure runs in the forked child, where only async-signal-safe
        // calls are allowed. It only makes system calls (write, setrlimit, unshare,
        // mount, chdir, setgroups, setgid, setuid, prctl) on data prepared by the
        // parent: every path is a `CString` made before the fork, and nix passes
        // `CStr`s to the kernel without allocating.
        unsafe {
            command.pre_exec(move || self.apply().map_err(io::Error::from));
        }
    }

    /// The child's side. Order matters: the cgroup and mounts need root, so they
    /// come before the switch to the sandbox user; the parent-death signal is reset
    /// by a change of credentials, so it comes last.
    fn apply(&self) -> nix::Result<()> {
        use nix::mount::{MsFlags, mount};
        for file in &self.cgroup_procs {
            // "0" moves the writing process itself.
            nix::unistd::write(file, b"0")?;
        }
        for &(resource, limit) in &self.rlimits {
            setrlimit(resource, limit, limit)?;
        }
        if let Some(mounts) = &self.mounts {
            const NONE: Option<&CStr> = None;
            use nix::sched::CloneFlags;
            nix::sched::unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID)?;
            mount(NONE, c"/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE)?;
            let bind_read_only = |source: &CStr, target: &CStr| -> nix::Result<()> {
                mount(
                    Some(source),
                    target,
                    NONE,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    NONE,
                )?;
                mount(
                    NONE,
                    target,
                    NONE,
                    MsFlags::MS_BIND
                        | MsFlags::MS_REMOUNT
                        | MsFlags::MS_RDONLY
                        | MsFlags::MS_NOSUID
                        | MsFlags::MS_NODEV,
                    NONE,
                )
            };
            bind_read_only(&mounts.code, c"/var/task")?;
            if let Some(runtime) = &mounts.runtime {
                bind_read_only(runtime, c"/var/runtime")?;
            }
            // Last: the data directory may itself be under /tmp.
            mount(
                Some(c"tmpfs"),
                c"/tmp",
                Some(c"tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(mounts.tmp_options.as_c_str()),
            )?;
            become_pid_namespace_init()?;
        }
        nix::unistd::chdir(self.cwd.as_c_str())?;
        if let Some(user) = &self.user {
            nix::unistd::setgroups(&[])?;
            nix::unistd::setgid(nix::unistd::Gid::from_raw(user.gid))?;
            nix::unistd::setuid(nix::unistd::Uid::from_raw(user.uid))?;
        }
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
        Ok(())
    }
}

/// Makes the rest of the instance run in the new PID namespace under an init of
/// its own. Called in the child after `unshare(CLONE_NEWPID)`, which only applies
/// to the children it forks next:
///
/// - this process (the one Wisp spawned and waits on) forks the namespace's init
///   and waits for it, then ends the same way it did;
/// - the init (PID 1 inside) forks again and reaps every process of the instance,
///   orphans included, until the runtime ends; its end ends the namespace, which
///   kills whatever is left;
/// - that last child returns, to go on with the setup and exec the runtime.
///
/// So every process an instance starts is reaped inside it, and none survives it,
/// even one that left the process group. Each waiting process closes every file
/// descriptor: it holds no pipe open, and std's exec-error pipe closes at once.
/// Only async-signal-safe calls are made.
#[allow(unsafe_code)]
fn become_pid_namespace_init() -> nix::Result<()> {
    use nix::sys::signal::Signal;
    use nix::sys::wait::{WaitStatus, waitpid};
    use nix::unistd::{ForkResult, Pid, fork};

    fn close_all_fds() {
        // SAFETY: close_range takes plain integers and touches only this process's fds.
        unsafe {
            nix::libc::syscall(nix::libc::SYS_close_range, 0u32, u32::MAX, 0u32);
        }
    }

    /// Ends this process as `status` ended `child`: same exit code, or the same signal.
    fn end_like(status: WaitStatus) -> ! {
        match status {
            WaitStatus::Signaled(_, signal, _) => {
                let _ = nix::sys::signal::kill(Pid::this(), signal);
                // SAFETY: _exit is async-signal-safe.
                unsafe { nix::libc::_exit(128 + signal as i32) }
            }
            WaitStatus::Exited(_, code) => unsafe { nix::libc::_exit(code) },
            _ => unsafe { nix::libc::_exit(1) },
        }
    }

    // SAFETY: in the forked child only async-signal-safe calls follow (waitpid, kill,
    // close_range, prctl, _exit); the grandchild returns to std's exec path.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => {
            close_all_fds();
            loop {
                match waitpid(child, None) {
                    Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => end_like(status),
                    Err(nix::errno::Errno::EINTR) | Ok(_) => continue,
                    Err(_) => unsafe { nix::libc::_exit(1) },
                }
            }
        }
        ForkResult::Child => {
            // The namespace's init: dies with the process Wisp waits on.
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            match unsafe { fork() }? {
                ForkResult::Parent { child: runtime } => {
                    close_all_fds();
                    loop {
                        match waitpid(None::<Pid>, None) {
                            Ok(status @ (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, ..)))
                                if pid == runtime =>
                            {
                                end_like(status)
                            }
                            Err(nix::errno::Errno::ECHILD) => unsafe { nix::libc::_exit(1) },
                            _ => continue,
                        }
                    }
                }
                ForkResult::Child => Ok(()),
            }
        }
    }
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
