//! An instance's network: a network namespace of its own, whose only interface is a
//! loopback with three listeners that Wisp serves from outside the namespace:
//!
//! - [`RUNTIME_API_PORT`]: the instance's Runtime API;
//! - [`SERVICES_PORT`]: Wisp's services for functions (S3 and `/v1/kv`), each
//!   connection forwarded to the services listener (Wisp's S3 listener);
//! - [`PROXY_PORT`]: an HTTP proxy (`HTTPS_PROXY`) that reaches only the hosts the
//!   function is granted ([`super::proxy`]).
//!
//! Nothing else is reachable from inside: not Wisp's control API, not another port of
//! the host, not the outside. Making a network namespace takes root
//! ([`probe`]); without it an instance shares the host's network, which the sandbox's
//! description says at start.
//!
//! The namespace is made on a thread of its own (`unshare(CLONE_NEWNET)` moves only
//! the calling thread), which brings the loopback up, binds the listeners (a socket
//! stays in the namespace it was made in) and opens the namespace as a file before it
//! ends. The shim joins the namespace through that file (`/proc/<wisp>/fd/<n>`); the
//! listeners and the file keep it alive until the instance is dropped. A few are made
//! ahead of need ([`SpareNetworks`]), as shims are.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The Runtime API's port inside the namespace (`AWS_LAMBDA_RUNTIME_API`).
pub const RUNTIME_API_PORT: u16 = 9001;
/// The forwarded services port inside the namespace (`AWS_ENDPOINT_URL_S3`).
pub const SERVICES_PORT: u16 = 9002;
/// The outbound proxy's port inside the namespace (`HTTPS_PROXY`).
pub const PROXY_PORT: u16 = 9003;

/// One instance's network namespace and its listeners.
pub(crate) struct InstanceNetwork {
    pub namespace: OwnedFd,
    pub runtime_api: TcpListener,
    pub services: TcpListener,
    pub proxy: TcpListener,
}

impl InstanceNetwork {
    /// Makes a namespace with its listeners. Blocks for a few hundred microseconds:
    /// call it from a blocking context.
    pub(crate) fn create() -> io::Result<InstanceNetwork> {
        std::thread::Builder::new()
            .name("wisp-netns".into())
            .spawn(make_namespace)?
            .join()
            .map_err(|_| io::Error::other("the thread making a network namespace panicked"))?
    }

    /// The file the shim opens to join the namespace.
    pub(crate) fn path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.namespace.as_raw_fd()
        ))
    }

    /// An address inside the namespace, as the instance sees it.
    pub(crate) fn inside(port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }
}

/// Namespaces made ahead of need: making one takes about 2 ms (most of it the
/// kernel's), which a cold start should not pay. [`SpareNetworks::take`] hands out a
/// waiting one (or makes one when none waits) and tops the spares up in the background.
pub(crate) struct SpareNetworks {
    ready: usize,
    waiting: Mutex<Vec<InstanceNetwork>>,
    refilling: AtomicBool,
}

impl SpareNetworks {
    pub(crate) fn new(ready: usize) -> Arc<SpareNetworks> {
        Arc::new(SpareNetworks {
            ready,
            waiting: Mutex::new(Vec::new()),
            refilling: AtomicBool::new(false),
        })
    }

    /// A namespace for a new instance. Blocks only when none was waiting.
    pub(crate) async fn take(self: &Arc<Self>) -> io::Result<InstanceNetwork> {
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner).pop();
        self.refill();
        match waiting {
            Some(network) => Ok(network),
            None => tokio::task::spawn_blocking(InstanceNetwork::create)
                .await
                .map_err(io::Error::other)?,
        }
    }

    /// Makes the first spares (in the background when there is a runtime).
    pub(crate) fn prime(self: &Arc<Self>) {
        self.refill();
    }

    /// Tops the spares up on the blocking pool, one at a time.
    fn refill(self: &Arc<Self>) {
        if self.ready == 0 || self.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let spares = self.clone();
        super::in_background(move || {
            while spares
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len()
                < spares.ready
            {
                match InstanceNetwork::create() {
                    Ok(network) => spares
                        .waiting
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(network),
                    Err(e) => {
                        tracing::warn!("cannot make a spare network namespace: {e}");
                        break;
                    }
                }
            }
            spares.refilling.store(false, Ordering::Release);
        });
    }
}

/// Whether this machine lets Wisp make network namespaces (root, and a kernel with
/// them).
pub fn probe() -> Result<(), String> {
    InstanceNetwork::create()
        .map(drop)
        .map_err(|e| format!("cannot make a network namespace: {e}"))
}

/// Runs on a thread of its own, which ends with it (and leaves the namespace then).
fn make_namespace() -> io::Result<InstanceNetwork> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
    loopback_up()?;
    let bind = |port: u16| -> io::Result<TcpListener> {
        let listener = TcpListener::bind(InstanceNetwork::inside(port))?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    };
    let runtime_api = bind(RUNTIME_API_PORT)?;
    let services = bind(SERVICES_PORT)?;
    let proxy = bind(PROXY_PORT)?;
    let namespace = OwnedFd::from(std::fs::File::open("/proc/thread-self/ns/net")?);
    Ok(InstanceNetwork {
        namespace,
        runtime_api,
        services,
        proxy,
    })
}

/// Brings the namespace's loopback interface up (a new namespace has it down).
#[expect(
    unsafe_code,
    reason = "SIOCGIFFLAGS/SIOCSIFFLAGS ioctls on a socket of our own"
)]
fn loopback_up() -> io::Result<()> {
    use nix::libc;
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
    let socket = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)?;
    // SAFETY: `ifreq` is plain data; all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: a valid socket and a valid `ifreq` naming an interface; the kernel writes
    // only the flags.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe {
        request.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: as above; the kernel reads the name and the flags.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Forwards every connection made to `listener` (inside a namespace) to `target`
/// (Wisp's services listener, outside), until the task is aborted.
pub(crate) async fn forward(listener: tokio::net::TcpListener, target: SocketAddr) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next() => continue,
        };
        let mut inside = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("services forward: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        connections.spawn(async move {
            let _ = inside.set_nodelay(true);
            match tokio::net::TcpStream::connect(target).await {
                Ok(mut outside) => {
                    let _ = outside.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
                }
                Err(e) => tracing::warn!("services forward: cannot reach {target}: {e}"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs only where network namespaces can be made (as root).
    #[tokio::test]
    async fn a_namespace_reaches_only_its_own_listeners() {
        if probe().is_err() {
            eprintln!("skipped: network namespaces need root");
            return;
        }
        let network = tokio::task::spawn_blocking(InstanceNetwork::create)
            .await
            .unwrap()
            .unwrap();
        assert!(network.path().exists());
        // The host cannot connect to the namespace's loopback: it is another network.
        let host = TcpListener::bind("127.0.0.1:0").unwrap();
        let host_port = host.local_addr().unwrap().port();
        // From inside, the host's listener is not there.
        let path = network.path();
        let reached = std::thread::spawn(move || {
            let ns = std::fs::File::open(path).unwrap();
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let host = std::net::TcpStream::connect(("127.0.0.1", host_port)).is_ok();
            let own = std::net::TcpStream::connect(("127.0.0.1", RUNTIME_API_PORT)).is_ok();
            (host, own)
        })
        .join()
        .unwrap();
        assert_eq!(reached, (false, true), "(the host's port, the namespace's own)");
    }
}
