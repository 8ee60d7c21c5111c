//! Control groups for process instances: one cgroup per instance capping its memory
//! and its number of processes, and the way to kill everything in it.
//!
//! Both cgroup v1 (a hierarchy per controller, as on the machines Wisp is tested on)
//! and v2 (one unified hierarchy, where the controllers must be delegated to Wisp's
//! own cgroup) are used when writable; when neither is, [`Cgroups::detect`] says so
//! and the sandbox falls back to rlimits.
//!
//! Layout: `<controller root>/<Wisp's own cgroup>/wisp-<pid>/<instance id>/`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where instance cgroups are made, found once at start-up.
#[derive(Clone, Debug)]
pub enum Cgroups {
    /// cgroup v1: the `memory` and `pids` hierarchies (either may be missing).
    V1 {
        memory: Option<PathBuf>,
        pids: Option<PathBuf>,
    },
    /// cgroup v2: the unified hierarchy with `memory` and `pids` delegated.
    V2 { parent: PathBuf },
}

impl Cgroups {
    /// Finds writable cgroup hierarchies for this process and makes Wisp's parent
    /// cgroups in them. `None` when no controller Wisp needs is writable (not root,
    /// read-only `/sys/fs/cgroup`, controllers not delegated).
    pub fn detect() -> Option<Cgroups> {
        let own = fs::read_to_string("/proc/self/cgroup").ok()?;
        let mounts = fs::read_to_string("/proc/self/mountinfo").ok()?;
        let group_name = format!("wisp-{}", std::process::id());
        let v1 = |controller: &str| -> Option<PathBuf> {
            let mount = v1_mount(&mounts, controller)?;
            let own_path = own_path(&own, |list| list.split(',').any(|c| c == controller))?;
            let own_dir = mount.join(own_path.trim_start_matches('/'));
            sweep_stale(&own_dir);
            let parent = own_dir.join(&group_name);
            make_parent(&parent).ok()?;
            Some(parent)
        };
        let memory = v1("memory");
        let pids = v1("pids");
        if memory.is_some() || pids.is_some() {
            return Some(Cgroups::V1 { memory, pids });
        }
        let mount = v2_mount(&mounts)?;
        let own_path = own_path(&own, str::is_empty)?;
        let own_dir = mount.join(own_path.trim_start_matches('/'));
        let delegated = fs::read_to_string(own_dir.join("cgroup.subtree_control")).ok()?;
        let has = |c: &str| delegated.split_whitespace().any(|d| d == c);
        if !(has("memory") && has("pids")) {
            return None;
        }
        sweep_stale(&own_dir);
        let parent = own_dir.join(&group_name);
        make_parent(&parent).ok()?;
        fs::write(parent.join("cgroup.subtree_control"), "+memory +pids").ok()?;
        Some(Cgroups::V2 { parent })
    }

    /// Whether memory is capped by a cgroup (else the sandbox uses `RLIMIT_AS`).
    pub fn limits_memory(&self) -> bool {
        match self {
            Cgroups::V1 { memory, .. } => memory.is_some(),
            Cgroups::V2 { .. } => true,
        }
    }

    /// Whether processes are counted by a cgroup (else the sandbox uses `RLIMIT_NPROC`).
    pub fn limits_pids(&self) -> bool {
        match self {
            Cgroups::V1 { pids, .. } => pids.is_some(),
            Cgroups::V2 { .. } => true,
        }
    }

    /// A short description for the server log.
    pub fn describe(&self) -> String {
        match self {
            Cgroups::V1 { memory, pids } => {
                let mut controllers = Vec::new();
                if memory.is_some() {
                    controllers.push("memory");
                }
                if pids.is_some() {
                    controllers.push("pids");
                }
                format!("cgroup v1 ({})", controllers.join(", "))
            }
            Cgroups::V2 { .. } => "cgroup v2 (memory, pids)".to_string(),
        }
    }

    /// Makes the cgroup of one instance, capping its processes. Its memory is
    /// capped once the instance's function is known ([`InstanceCgroup::limit_memory`]).
    pub fn create(&self, instance: &str, max_pids: u64) -> io::Result<InstanceCgroup> {
        let mut cgroup = InstanceCgroup {
            dirs: Vec::new(),
            memory: None,
            v2: matches!(self, Cgroups::V2 { .. }),
        };
        let made = (|| {
            match self {
                Cgroups::V1 { memory, pids } => {
                    if let Some(root) = memory {
                        let dir = root.join(instance);
                        fs::create_dir(&dir)?;
                        cgroup.dirs.push(dir.clone());
                        cgroup.memory = Some(dir);
                    }
                    if let Some(root) = pids {
                        let dir = root.join(instance);
                        fs::create_dir(&dir)?;
                        cgroup.dirs.push(dir.clone());
                        fs::write(dir.join("pids.max"), max_pids.to_string())?;
                    }
                }
                Cgroups::V2 { parent } => {
                    let dir = parent.join(instance);
                    fs::create_dir(&dir)?;
                    cgroup.dirs.push(dir.clone());
                    cgroup.memory = Some(dir.clone());
                    fs::write(dir.join("pids.max"), max_pids.to_string())?;
                }
            }
            Ok(())
        })();
        match made {
            Ok(()) => Ok(cgroup),
            Err(e) => {
                cgroup.kill_all_and_remove();
                Err(e)
            }
        }
    }

    /// Removes Wisp's parent cgroups (at shutdown, once every instance is gone).
    pub fn remove(&self) {
        let parents = match self {
            Cgroups::V1 { memory, pids } => vec![memory.clone(), pids.clone()],
            Cgroups::V2 { parent } => vec![Some(parent.clone())],
        };
        for parent in parents.into_iter().flatten() {
            // Instance cgroups whose processes are gone are empty and can go.
            if let Ok(entries) = fs::read_dir(&parent) {
                for entry in entries.flatten().filter(|e| e.path().is_dir()) {
                    let _ = fs::remove_dir(entry.path());
                }
            }
            let _ = fs::remove_dir(parent);
        }
    }
}

/// The cgroup directories of one instance (one per v1 hierarchy, or one v2 group).
#[derive(Debug)]
pub struct InstanceCgroup {
    dirs: Vec<PathBuf>,
    /// The directory with the memory controller's files.
    memory: Option<PathBuf>,
    v2: bool,
}

impl InstanceCgroup {
    /// Caps the instance's memory (and swap) at `bytes`.
    pub fn limit_memory(&self, bytes: u64) -> io::Result<()> {
        let Some(dir) = &self.memory else {
            return Ok(());
        };
        if self.v2 {
            fs::write(dir.join("memory.max"), bytes.to_string())?;
            let _ = fs::write(dir.join("memory.swap.max"), "0");
        } else {
            fs::write(dir.join("memory.limit_in_bytes"), bytes.to_string())?;
            // No swapping past the limit, where the kernel accounts swap.
            let _ = fs::write(dir.join("memory.memsw.limit_in_bytes"), bytes.to_string());
        }
        Ok(())
    }

    /// The `cgroup.procs` files (which list the instance's processes).
    pub fn procs_paths(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|dir| dir.join("cgroup.procs")).collect()
    }

    /// How many times the kernel's OOM killer has struck in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let (file, key) = if self.v2 {
            ("memory.events", "oom_kill")
        } else {
            ("memory.oom_control", "oom_kill")
        };
        self.dirs
            .iter()
            .filter_map(|dir| fs::read_to_string(dir.join(file)).ok())
            .flat_map(|text| {
                text.lines()
                    .filter_map(|line| line.strip_prefix(key)?.trim().parse::<u64>().ok())
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    /// The memory the instance has used at most, in bytes, when the kernel says.
    pub fn peak_memory(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        self.dirs
            .iter()
            .find_map(|dir| fs::read_to_string(dir.join(file)).ok()?.trim().parse().ok())
    }

    /// The processes in the cgroup now.
    fn pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .dirs
            .iter()
            .filter_map(|dir| fs::read_to_string(dir.join("cgroup.procs")).ok())
            .flat_map(|text| {
                text.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// SIGKILLs every process in the cgroup until none is left (a fork bomb keeps
    /// forking while it is being killed; the pids limit bounds how long that lasts),
    /// then removes the cgroup. Blocking: call from the blocking pool.
    pub fn kill_all_and_remove(self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        for round in 0..200 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(if round < 10 { 1 } else { 10 }));
        }
        // A killed process leaves the cgroup once the kernel has torn it down.
        for dir in &self.dirs {
            for _ in 0..100 {
                match fs::remove_dir(dir) {
                    Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    _ => break,
                }
            }
        }
    }
}

/// Removes the cgroups of Wisp processes that are gone (killed, or crashed), killing
/// anything still in them.
fn sweep_stale(own_dir: &Path) {
    let Ok(entries) = fs::read_dir(own_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("wisp-")) else {
            continue;
        };
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        if let Ok(instances) = fs::read_dir(entry.path()) {
            for instance in instances.flatten().filter(|e| e.path().is_dir()) {
                InstanceCgroup {
                    dirs: vec![instance.path()],
                    memory: None,
                    v2: false,
                }
                .kill_all_and_remove();
            }
        }
        let _ = fs::remove_dir(entry.path());
    }
}

fn make_parent(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// The path of this process's cgroup in the hierarchy whose controller list
/// satisfies `matches` (`/proc/self/cgroup`: `ID:CONTROLLERS:PATH`).
fn own_path(proc_cgroup: &str, matches: impl Fn(&str) -> bool) -> Option<String> {
    proc_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        matches(controllers).then(|| path.to_string())
    })
}

/// Where the v1 hierarchy of `controller` is mounted, from `/proc/self/mountinfo`.
fn v1_mount(mountinfo: &str, controller: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut right = right.split_whitespace();
        if right.next()? != "cgroup" {
            return None;
        }
        let options = right.nth(1)?;
        let mount_point = left.split_whitespace().nth(4)?;
        options
            .split(',')
            .any(|o| o == controller)
            .then(|| PathBuf::from(mount_point))
    })
}

/// Where the v2 hierarchy is mounted.
fn v2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        Some(PathBuf::from(left.split_whitespace().nth(4)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
34 30 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 30 0:34 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_hierarchies_and_own_paths() {
        assert_eq!(
            v1_mount(MOUNTINFO, "memory"),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
        assert_eq!(
            v1_mount(MOUNTINFO, "pids"),
            Some(PathBuf::from("/sys/fs/cgroup/pids"))
        );
        assert_eq!(v1_mount(MOUNTINFO, "cpu"), None);
        assert_eq!(v2_mount(MOUNTINFO), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        let own = "8:pids:/\n4:memory:/process_api/a8d8\n0::/user.slice\n";
        assert_eq!(
            own_path(own, |c| c == "memory").as_deref(),
            Some("/process_api/a8d8")
        );
        assert_eq!(own_path(own, str::is_empty).as_deref(), Some("/user.slice"));
    }
}
