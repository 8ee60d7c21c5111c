//! The instance shim: the first process of every instance, which sandboxes itself
//! and then becomes the function's runtime.
//!
//! Wisp starts it (`posix_spawn` of the `wisp` binary with [`SHIM_ARG`], cheap: no
//! copy of Wisp's address space) with the `cgroup.procs` files of the instance's
//! cgroups as arguments. The shim joins them at once — moving a process between
//! cgroups waits for an RCU grace period (~20 ms here), so Wisp keeps a few shims
//! started ahead of need ([`super::spawner`]) — and then reads its [`ShimSpec`]
//! (JSON) on stdin. Then, in order:
//!
//! 1. the instance's network namespace, when it has one ([`super::network`]); rlimits;
//! 2. with a mount namespace: `unshare(CLONE_NEWNS | CLONE_NEWPID)`, the code bound
//!    read-only on `/var/task` (and the bootstrap on `/var/runtime`), a tmpfs on
//!    `/tmp`; then the shim forks the PID namespace's init, which forks the runtime
//!    and reaps every process of the instance until the runtime ends (the shim and
//!    the init then end the way the runtime did);
//! 3. in the runtime's process: the working directory, the sandbox user, a
//!    parent-death signal, and `exec` of the runtime with its environment.
//!
//! Failures are written to stderr (the instance's log) and end the shim with
//! status 127, which Wisp reports as the instance's exit.

use super::sandbox::Isolation;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

/// The shim's exit status when it could not set up or exec the runtime (as a
/// shell's for a command it cannot run).
pub const EXEC_FAILED: i32 = 127;

/// The first argument that makes the `wisp` binary run as a shim.
pub const SHIM_ARG: &str = "__instance-shim";

/// What the shim is told to run, and how.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ShimSpec {
    pub program: PathBuf,
    pub args: Vec<PathBuf>,
    pub env: Vec<(OsString, OsString)>,
    pub isolation: Isolation,
}

/// The shim's `main`: call it first thing in `main` when the first argument is
/// [`SHIM_ARG`]. Never returns.
pub fn main() -> ! {
    let error = match run() {
        Ok(never) => match never {},
        Err(e) => e,
    };
    eprintln!("wisp instance shim: {error}");
    std::process::exit(EXEC_FAILED)
}

fn run() -> Result<Infallible, String> {
    // Gone with Wisp, even before it hands over any work.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| format!("prctl: {e}"))?;
    if nix::unistd::getppid() == Pid::from_raw(1) {
        return Err("Wisp is gone".to_string());
    }
    for procs in std::env::args_os().skip(2) {
        std::fs::write(&procs, "0")
            .map_err(|e| format!("cannot join the cgroup {}: {e}", procs.display()))?;
    }
    let mut text = Vec::new();
    std::io::stdin()
        .read_to_end(&mut text)
        .map_err(|e| format!("cannot read the instance's spec: {e}"))?;
    if text.is_empty() {
        // Wisp let go of an unused shim.
        std::process::exit(0);
    }
    let spec: ShimSpec = serde_json::from_slice(&text).map_err(|e| format!("bad spec: {e}"))?;
    let null = std::fs::File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    nix::unistd::dup2_stdin(&null).map_err(|e| format!("dup2: {e}"))?;
    drop(null);
    let isolation = &spec.isolation;
    if let Some(network) = &isolation.network {
        let namespace = std::fs::File::open(network)
            .map_err(|e| format!("cannot open the network namespace {}: {e}", network.display()))?;
        nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("cannot join the network namespace: {e}"))?;
    }
    for &(limit, value) in &isolation.rlimits {
        let resource = limit.resource();
        // Without privileges a limit cannot rise above the hard limit Wisp has.
        let hard = nix::sys::resource::getrlimit(resource).map_or(value, |(_, hard)| hard);
        let value = value.min(hard);
        nix::sys::resource::setrlimit(resource, value, value)
            .map_err(|e| format!("setrlimit {limit:?}: {e}"))?;
    }
    if let Some(mounts) = &isolation.mounts {
        namespaces(mounts)?;
        become_pid_namespace_init()?;
    }
    std::env::set_current_dir(&isolation.cwd)
        .map_err(|e| format!("cannot enter {}: {e}", isolation.cwd.display()))?;
    if let Some((uid, gid)) = isolation.user {
        nix::unistd::setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
        nix::unistd::setgid(nix::unistd::Gid::from_raw(gid)).map_err(|e| format!("setgid {gid}: {e}"))?;
        nix::unistd::setuid(nix::unistd::Uid::from_raw(uid)).map_err(|e| format!("setuid {uid}: {e}"))?;
    }
    // A change of credentials clears the parent-death signal: set it again.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| format!("prctl: {e}"))?;
    let error = std::process::Command::new(&spec.program)
        .args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .exec();
    Err(format!(
        "cannot start the runtime `{}`: {error}",
        spec.program.display()
    ))
}

/// A mount and PID namespace of the instance's own, with its mounts.
fn namespaces(mounts: &super::sandbox::Mounts) -> Result<(), String> {
    use nix::mount::{MsFlags, mount};
    use nix::sched::CloneFlags;
    const NONE: Option<&str> = None;
    nix::sched::unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID)
        .map_err(|e| format!("unshare: {e}"))?;
    mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE)
        .map_err(|e| format!("making / private: {e}"))?;
    let bind_read_only = |source: &std::path::Path, target: &str| -> Result<(), String> {
        mount(
            Some(source),
            target,
            NONE,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            NONE,
        )
        .map_err(|e| format!("binding {} on {target}: {e}", source.display()))?;
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
        .map_err(|e| format!("making {target} read-only: {e}"))
    };
    bind_read_only(&mounts.code, super::sandbox::TASK_ROOT)?;
    if let Some(runtime) = &mounts.runtime {
        bind_read_only(runtime, super::sandbox::RUNTIME_ROOT)?;
    }
    // Last: the data directory may itself be under /tmp.
    let options = format!("size={}m,mode=1777", mounts.tmp_size_mb);
    mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(|e| format!("mounting /tmp: {e}"))
}

/// After `unshare(CLONE_NEWPID)`, which applies to the children a process forks next:
/// this process (the one Wisp waits on) forks the namespace's init and waits for it;
/// the init (PID 1 inside) forks the runtime and reaps every process of the instance,
/// orphans included, until the runtime ends; its end ends the namespace, which kills
/// whatever is left. Only the runtime's process returns.
#[expect(
    unsafe_code,
    reason = "fork in the single-threaded shim, before it execs the runtime"
)]
fn become_pid_namespace_init() -> Result<(), String> {
    // SAFETY: the shim is single-threaded, so the child of `fork` may do anything.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Parent { child } => end_like(wait_for(Some(child), child)),
        ForkResult::Child => {
            // The namespace's init: dies with the shim.
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| format!("prctl: {e}"))?;
            // SAFETY: as above.
            match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
                ForkResult::Parent { child: runtime } => end_like(wait_for(None, runtime)),
                ForkResult::Child => Ok(()),
            }
        }
    }
}

/// Waits (reaping every child when `only` is `None`) until `target` ends.
fn wait_for(only: Option<Pid>, target: Pid) -> WaitStatus {
    loop {
        match waitpid(only, None) {
            Ok(status @ (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, ..))) if pid == target => {
                return status;
            }
            Err(nix::errno::Errno::ECHILD) => return WaitStatus::Exited(target, 127),
            _ => {}
        }
    }
}

/// Ends this process as `status` ended its child: same exit code, or the same signal.
fn end_like(status: WaitStatus) -> ! {
    if let WaitStatus::Signaled(_, signal, _) = status {
        let _ = nix::sys::signal::kill(Pid::this(), signal);
        std::process::exit(128 + signal as i32);
    }
    match status {
        WaitStatus::Exited(_, code) => std::process::exit(code),
        _ => std::process::exit(1),
    }
}
