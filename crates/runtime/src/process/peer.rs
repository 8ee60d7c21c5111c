//! Who is on the other end of a Runtime API connection.
//!
//! Each instance's Runtime API listens on a loopback port, and any process on the
//! machine can connect to a loopback port. When the instance has a cgroup, a
//! connection is served only if its socket belongs to a process in that cgroup:
//! the kernel (asked over `sock_diag` netlink) names the socket's inode, and the
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

/// The inode of the client socket `peer` → `local`, asked of the kernel with one
/// exact `sock_diag` lookup over netlink (reading `/proc/net/tcp` instead walks the
/// whole socket table: milliseconds with a few thousand sockets in TIME_WAIT).
fn socket_inode(local: SocketAddr, peer: SocketAddr) -> Option<u64> {
    use nix::sys::socket::{
        AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto, socket,
    };
    let (SocketAddr::V4(local), SocketAddr::V4(peer)) = (local, peer) else {
        return None;
    };
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLM_F_REQUEST: u16 = 1;
    const NLMSG_ERROR: u16 = 2;
    const AF_INET: u8 = 2;
    const IPPROTO_TCP: u8 = 6;
    // struct nlmsghdr (16 bytes) + struct inet_diag_req_v2 (56 bytes).
    let mut request = Vec::with_capacity(72);
    request.extend_from_slice(&72u32.to_ne_bytes());
    request.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    request.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    request.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    request.extend_from_slice(&[AF_INET, IPPROTO_TCP, 0, 0]);
    request.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    // struct inet_diag_sockid: the client's side is the source.
    request.extend_from_slice(&peer.port().to_be_bytes());
    request.extend_from_slice(&local.port().to_be_bytes());
    let mut address = |ip: std::net::Ipv4Addr| {
        request.extend_from_slice(&ip.octets());
        request.extend_from_slice(&[0; 12]);
    };
    address(*peer.ip());
    address(*local.ip());
    request.extend_from_slice(&0u32.to_ne_bytes()); // interface
    request.extend_from_slice(&[0xff; 8]); // INET_DIAG_NOCOOKIE
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )
    .ok()?;
    use std::os::fd::AsRawFd;
    sendto(
        fd.as_raw_fd(),
        &request,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )
    .ok()?;
    let mut answer = [0u8; 512];
    let n = recv(fd.as_raw_fd(), &mut answer, MsgFlags::empty()).ok()?;
    let answer = &answer[..n];
    let kind = u16::from_ne_bytes(answer.get(4..6)?.try_into().ok()?);
    if kind == NLMSG_ERROR {
        return None;
    }
    // struct inet_diag_msg after the header: 4 bytes, the sockid (48), expires,
    // rqueue, wqueue, uid (16), then the inode.
    let inode = answer.get(16 + 4 + 48 + 16..16 + 4 + 48 + 20)?;
    Some(u64::from(u32::from_ne_bytes(inode.try_into().ok()?)))
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
