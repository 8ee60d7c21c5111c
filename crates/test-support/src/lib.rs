//! Test scaffolding (never shipped): [`TestServer`] runs the real `wisp` binary on
//! port 0, reads the address it prints, and kills it on drop; [`fixture`] finds the
//! committed guest `.wasm` files; [`deploy`] uploads a function through the API.
//! [`nats::NatsServer`] runs a real `nats-server` with JetStream for the store's tests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test scaffolding: a failure is a test failure"
)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod nats;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The path of a committed guest: `tests/fixtures/NAME.wasm`.
pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(format!("{name}.wasm"))
}

/// The bytes of a committed guest.
pub fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("cannot read fixture {name}: {e}"))
}

/// The admin key every [`TestServer`] starts with (`--bootstrap-key`), which
/// [`http_client`] sends: tests act as the operator unless they say otherwise.
pub const TEST_ADMIN_KEY: &str = "WKTESTADMINKEY2345.test-admin-secret-0123456789-abcdefghijk";

/// A running `wisp` process that printed `Serving HTTP on http://ADDR/` (or `Serving
/// HTTPS on https://ADDR/`).
pub struct TestServer {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` (`https://…` when it serves TLS)
    pub url: String,
    /// `http://127.0.0.1:PORT` of its S3 listener (`None` with `--s3-listen off`).
    pub s3_url: Option<String>,
    /// The data directory (owned by the server unless given).
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    /// How it was started, to start it again ([`TestServer::crash_and_restart`]).
    bin: PathBuf,
    args: Vec<String>,
    /// Whether it starts with [`TEST_ADMIN_KEY`] (else it makes its own admin key).
    seeded: bool,
}

/// How long a server may take to print its address (a debug build deploying an app
/// compiles guests first).
const STARTUP: Duration = Duration::from_secs(120);

impl TestServer {
    /// `wisp serve` on port 0 with a fresh data directory.
    pub fn serve(bin: &Path) -> TestServer {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("data");
        let mut server = TestServer::spawn(bin, &["serve"], &dir);
        server._temp = Some(temp);
        server
    }

    /// `wisp serve EXTRA…` on port 0 with a fresh data directory.
    pub fn serve_with(bin: &Path, extra: &[&str]) -> TestServer {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("data");
        let args: Vec<&str> = std::iter::once("serve").chain(extra.iter().copied()).collect();
        let mut server = TestServer::spawn(bin, &args, &dir);
        server._temp = Some(temp);
        server
    }

    /// `wisp serve` on port 0 with a fresh data directory, making its own admin key
    /// (into `DATA_DIR/admin.key`) as a first start does, not [`TEST_ADMIN_KEY`].
    pub fn serve_unseeded(bin: &Path) -> TestServer {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("data");
        let mut server = TestServer::try_spawn(bin, &["serve"], &dir, STARTUP, false)
            .unwrap_or_else(|stderr| panic!("wisp did not print its address; stderr:\n{stderr}"));
        server._temp = Some(temp);
        server
    }

    /// `wisp serve` on port 0 with the given data directory (to restart on it).
    pub fn serve_in(bin: &Path, data_dir: &Path) -> TestServer {
        TestServer::spawn(bin, &["serve"], data_dir)
    }

    /// `wisp ARGS… --listen 127.0.0.1:0 --data-dir DIR`, waiting for the address line.
    pub fn spawn(bin: &Path, args: &[&str], data_dir: &Path) -> TestServer {
        TestServer::try_spawn(bin, args, data_dir, STARTUP, true)
            .unwrap_or_else(|stderr| panic!("wisp did not print its address; stderr:\n{stderr}"))
    }

    /// Like [`TestServer::spawn`], but a server that exits or stays silent for
    /// `startup` is an error carrying its stderr.
    fn try_spawn(
        bin: &Path,
        args: &[&str],
        data_dir: &Path,
        startup: Duration,
        seeded: bool,
    ) -> Result<TestServer, String> {
        let mut command = Command::new(bin);
        if seeded {
            command.env("WISP_BOOTSTRAP_KEY", TEST_ADMIN_KEY);
        } else {
            command.env_remove("WISP_BOOTSTRAP_KEY");
        }
        let mut child = command
            .args(args)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir)
            .env_remove("WISP_LISTEN")
            .env_remove("WISP_DATA_DIR")
            .env("WISP_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let pipe = child.stderr.take().unwrap();
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(pipe);
                let mut line = String::new();
                let mut tx = Some(tx);
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    let line_trimmed = line.trim();
                    if let Some(rest) = line_trimmed
                        .strip_prefix("Serving HTTP on ")
                        .or_else(|| line_trimmed.strip_prefix("Serving HTTPS on "))
                        && let Some(tx) = tx.take()
                    {
                        let _ = tx.send(rest.trim_end_matches('/').to_string());
                    }
                    stderr.lock().unwrap().push_str(&line);
                    line.clear();
                }
            });
        }
        {
            let mut pipe = child.stdout.take().unwrap();
            let stdout = stdout.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    stdout
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let url = match rx.recv_timeout(startup) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                // The pipe closes a moment after the exit: let the reader catch up.
                std::thread::sleep(Duration::from_millis(20));
                return Err(stderr.lock().unwrap().clone());
            }
        };
        // `wisp serve` announces its S3 listener before its main one.
        let s3_url = stderr.lock().unwrap().lines().find_map(|line| {
            let rest = line.trim().strip_prefix("Serving S3 on ")?;
            Some(rest.trim_end_matches('/').to_string())
        });
        Ok(TestServer {
            child: Some(child),
            url,
            s3_url,
            data_dir: data_dir.to_path_buf(),
            _temp: None,
            stderr,
            stdout,
            bin: bin.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            seeded,
        })
    }

    /// A crash and a restart: kills the server with SIGKILL (no drain, nothing
    /// flushed), waits for it to exit, and starts it again with the same arguments on
    /// the same data directory, on a fresh port (`url` changes; `stderr` starts over).
    /// Returns how long the restart took, from the kill to the address line.
    ///
    /// A start that fails because the killed process's lock on the data directory is
    /// not released yet is retried for up to 10 s.
    pub fn crash_and_restart(&mut self) -> Duration {
        let started = Instant::now();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let mut tries = 0;
        let mut fresh = loop {
            tries += 1;
            match TestServer::try_spawn(&self.bin, &args, &self.data_dir, STARTUP, self.seeded) {
                Ok(server) => break server,
                Err(stderr)
                    if stderr.contains("in use by another Wisp server")
                        && started.elapsed() < Duration::from_secs(10) =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(stderr) => panic!("wisp did not restart (try {tries}); stderr:\n{stderr}"),
            }
        };
        fresh._temp = self._temp.take();
        *self = fresh; // the old value holds no process any more: its drop does nothing
        started.elapsed()
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        let authority = self.url.split_once("://").map_or(self.url.as_str(), |(_, a)| a);
        authority.parse().unwrap()
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (up to 10 s) until the server's stderr contains `needle`, and returns the
    /// stderr either way. The server's output is read by a thread, so a line it logged
    /// before answering a request may arrive here a moment after the answer.
    pub fn stderr_containing(&self, needle: &str) -> String {
        wait_for(|| self.stderr(), needle)
    }

    /// Like [`TestServer::stderr_containing`], for stdout.
    pub fn stdout_containing(&self, needle: &str) -> String {
        wait_for(|| self.stdout(), needle)
    }

    /// What the server wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`) to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the server to exit (at most `timeout`) and returns its status.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                started.elapsed() < timeout,
                "server did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A `wisp` command pointed at this server (`WISP_SERVER`), with the test admin
    /// key (`WISP_KEY`) for a seeded server, and for an unseeded one its data directory
    /// (`WISP_DATA_DIR`), whose `admin.key` the CLI reads.
    pub fn cli(&self, bin: &Path) -> Command {
        let mut command = Command::new(bin);
        command
            .env("WISP_SERVER", &self.url)
            .env_remove("WISP_NAMESPACE")
            .stdin(Stdio::null());
        if self.seeded {
            command
                .env("WISP_KEY", TEST_ADMIN_KEY)
                .env_remove("WISP_DATA_DIR");
        } else {
            command
                .env_remove("WISP_KEY")
                .env("WISP_DATA_DIR", &self.data_dir);
        }
        command
    }
}

fn wait_for(read: impl Fn() -> String, needle: &str) -> String {
    let started = Instant::now();
    loop {
        let text = read();
        if text.contains(needle) || started.elapsed() > Duration::from_secs(10) {
            return text;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Deploys `code` as function `name` with `config` (JSON) through the API.
pub async fn deploy(
    client: &reqwest::Client,
    server: &TestServer,
    name: &str,
    config: serde_json::Value,
    code: Vec<u8>,
) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .part(
            "config",
            reqwest::multipart::Part::bytes(serde_json::to_vec(&config).unwrap())
                .mime_str("application/json")
                .unwrap(),
        )
        .part(
            "code",
            reqwest::multipart::Part::bytes(code).file_name("code.wasm"),
        );
    client
        .put(server.at(&format!("/v1/functions/{name}")))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// An HTTP client for tests that sends [`TEST_ADMIN_KEY`] with every request (and
/// installs the process's TLS crypto provider first: reqwest is built without one of
/// its own).
pub fn http_client() -> reqwest::Client {
    keyed_client(TEST_ADMIN_KEY)
}

/// An HTTP client that sends `token` as its bearer key with every request.
pub fn keyed_client(token: &str) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// An HTTP client that sends no credentials.
pub fn anonymous_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
