//! Starting instance shims, and keeping a few started ahead of need.
//!
//! A shim is the `wisp` binary started with [`super::shim::SHIM_ARG`]: spawned with
//! `posix_spawn` (no copy of Wisp's large address space), its own process group,
//! stdout and stderr piped (they become the instance's), its cgroup made and joined
//! before any work is known. Joining a cgroup costs an RCU grace period, so the
//! spawner keeps [`Spawner::ready`] shims waiting, each already in its cgroup, and
//! starts a replacement in the background whenever one is taken: a cold start then
//! only pays for its namespaces, its `exec` and its runtime's init.

use super::cgroup::{Cgroups, InstanceCgroup};
use super::sandbox::MAX_PROCESSES;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::process::{Child, ChildStdin, Command};

/// How to start a shim: the program (the `wisp` binary) and its first arguments.
#[derive(Clone, Debug)]
pub struct ShimCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl ShimCommand {
    /// This very binary, which must call [`super::shim::main`] when its first
    /// argument is [`super::shim::SHIM_ARG`].
    pub fn current_exe() -> std::io::Result<ShimCommand> {
        Ok(ShimCommand {
            program: std::env::current_exe()?,
            args: vec![super::shim::SHIM_ARG.to_string()],
        })
    }
}

/// A started shim, waiting for its spec on stdin.
pub(crate) struct Shim {
    pub id: String,
    pub child: Child,
    pub stdin: ChildStdin,
    pub cgroup: Option<InstanceCgroup>,
}

impl Shim {
    /// Stops a shim that will not be used, and removes its cgroup.
    fn discard(mut self) {
        let _ = self.child.start_kill();
        if let Some(cgroup) = self.cgroup.take() {
            super::in_background(move || cgroup.kill_all_and_remove());
        }
    }
}

/// Starts shims; see the module docs.
pub(crate) struct Spawner {
    command: ShimCommand,
    cgroups: Option<Cgroups>,
    /// How many started shims to keep waiting.
    ready: usize,
    waiting: Mutex<Vec<Shim>>,
    refilling: AtomicBool,
}

impl Spawner {
    pub(crate) fn new(command: ShimCommand, cgroups: Option<Cgroups>, ready: usize) -> Arc<Spawner> {
        Arc::new(Spawner {
            command,
            cgroups,
            ready,
            waiting: Mutex::new(Vec::new()),
            refilling: AtomicBool::new(false),
        })
    }

    /// A shim for a new instance: a waiting one if there is one, else a new one.
    pub(crate) fn take(self: &Arc<Self>) -> std::io::Result<Shim> {
        let waiting = {
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            let mut found = None;
            while let Some(mut shim) = waiting.pop() {
                if matches!(shim.child.try_wait(), Ok(None)) {
                    found = Some(shim);
                    break;
                }
                shim.discard();
            }
            found
        };
        self.refill();
        match waiting {
            Some(shim) => Ok(shim),
            None => self.start(),
        }
    }

    /// Tops the waiting shims up, in the background.
    pub(crate) fn refill(self: &Arc<Self>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.ready == 0 || self.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let spawner = self.clone();
        handle.spawn(async move {
            loop {
                let missing = spawner
                    .waiting
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len()
                    < spawner.ready;
                if !missing {
                    break;
                }
                match spawner.start() {
                    Ok(shim) => spawner
                        .waiting
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(shim),
                    Err(e) => {
                        tracing::warn!("cannot start a spare instance shim: {e}");
                        break;
                    }
                }
                // Let the shim join its cgroup before starting the next one.
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            spawner.refilling.store(false, Ordering::Release);
        });
    }

    /// Starts one shim now. Spawns from the calling (async) thread, which lives as
    /// long as the runtime: the shim's parent-death signal is tied to it.
    fn start(&self) -> std::io::Result<Shim> {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let cgroup = match &self.cgroups {
            Some(cgroups) => Some(cgroups.create(&id, MAX_PROCESSES)?),
            None => None,
        };
        let mut command = Command::new(&self.command.program);
        command
            .args(&self.command.args)
            .args(cgroup.iter().flat_map(InstanceCgroup::procs_paths))
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                if let Some(cgroup) = cgroup {
                    cgroup.kill_all_and_remove();
                }
                return Err(e);
            }
        };
        let Some(stdin) = child.stdin.take() else {
            return Err(std::io::Error::other("the shim has no stdin"));
        };
        Ok(Shim {
            id,
            child,
            stdin,
            cgroup,
        })
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        let waiting = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(PoisonError::into_inner));
        for shim in waiting {
            shim.discard();
        }
    }
}
