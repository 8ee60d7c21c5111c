//! Who is on the other end of a Runtime API connection.
//!
//! Each instance's Runtime API listens on a loopback port, and any process on the
//! machine can connect to a loopback port. When the instance has a cgroup, a
//! connection is served only if its socket belongs to a process in that cgroup:
//! the kernel's socket table (`/proc/net/tcp`) names the socket's inode, and the
//! instance's processes' open files (`/proc/PID/fd`) must hold it. So another
//! instance cannot take this one's events or answer for it.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Checks connections against the processes of one instance.
#[derive(Clone, Debug)]
pub(crate) struct PeerCheck {
    /// The instance's `cgroup.procs` files.
    pub procs: Vec<PathBuf>,
}

impl PeerCheck {
    /// Whether the connection from `peer` to `local` comes from the instance.
    pub(crate) fn allows(&self, local: SocketAddr, peer: SocketAddr) -> bool {
        let Some(inode) = socket_inode(local, peer) else {
            return false;
        };
        let wanted = format!("socket:[{inode}]");
        self.pids().iter().any(|pid| holds(pid, &wanted))
    }

    fn pids(&self) -> Vec<String> {
        let mut pids: Vec<String> = self
            .procs
            .iter()
            .filter_map(|p| fs::read_to_string(p).ok())
            .flat_map(|text| text.lines().map(str::to_string).collect::<Vec<_>>())
            .collect();
        pids.sort();
        pids.dedup();
        pids
    }
}

/// Whether process `pid` has `link` (`socket:[N]`) among its open files.
fn holds(pid: &str, link: &str) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == link))
}

/// The inode of the client socket `peer` → `local`, from `/proc/net/tcp`.
fn socket_inode(local: SocketAddr, peer: SocketAddr) -> Option<u64> {
    let (SocketAddr::V4(local), SocketAddr::V4(peer)) = (local, peer) else {
        return None;
    };
    let hex = |addr: std::net::SocketAddrV4| {
        format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(addr.ip().octets()),
            addr.port()
        )
    };
    let (want_local, want_remote) = (hex(peer), hex(local));
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&want_local.as_str()) && fields.get(2) == Some(&want_remote.as_str()))
            .then(|| fields.get(9)?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_inode_of_a_loopback_client_and_its_owner() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server_side, peer) = listener.accept().unwrap();
        let local = listener.local_addr().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        let inode = socket_inode(local, peer).unwrap();
        assert!(holds(
            &std::process::id().to_string(),
            &format!("socket:[{inode}]")
        ));
        assert!(!holds("1", &format!("socket:[{inode}]")));
    }
}
