//! The main listener against hostile and ordinary clients: slow headers, connection
//! floods, oversized headers, TLS with a certificate swapped on SIGHUP, and a drain that
//! loses no request of keep-alive clients.
//!
//! The "served" signal is the `404 route_not_found` of an unrouted path: it needs no key
//! and no function.

use crate::util::{bin, client, expect_problem};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use wisp_test_support::TestServer;

const SERVED: &str = "/nothing-here";

/// A connection to `server` from the loopback address `from` (127.0.0.0/8 is all
/// loopback), so that tests can be several clients.
async fn connect_from(from: &str, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))?;
    socket.connect(server).await
}

/// Reads one HTTP/1.1 response (head and a `content-length` body); `None` when the
/// connection ends before it is complete.
async fn read_response(stream: &mut TcpStream) -> Option<(String, String)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if data.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&data[end + 4..end + 4 + length]).to_string();
                return Some((head, body));
            }
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

fn request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: wisp\r\n\r\n")
}

/// Lifts the test process's soft open-file limit to its hard limit; returns it.
fn raise_open_files() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if hard > soft {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
    hard
}

/// Slowloris: today's listener held 8,000 half-sent headers for 70 s+, and 20,000 ran it
/// out of descriptors so that `accept` failed for everyone. Now one address gets its
/// share of connections (the rest are answered 503 at once), the ones it holds are closed
/// at the header timeout, and a normal client is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_held_off_and_closed_within_the_header_timeout() {
    let hard = raise_open_files();
    // The test process needs a descriptor per slow connection, plus its own.
    let wanted = 20_000u64;
    let count = wanted.min(hard.saturating_sub(1_024));
    if count < 2_000 {
        println!("skipped: the open-file hard limit ({hard}) is too low to open slow connections");
        return;
    }
    if count < wanted {
        println!("the open-file hard limit is {hard}: opening {count} slow connections, not {wanted}");
    }
    let server = TestServer::serve_with(bin(), &["--header-timeout", "2s"]);
    let addr = server.addr();
    let header_timeout = Duration::from_secs(2);
    let written = Arc::new(AtomicUsize::new(0));
    let epoch = Instant::now();

    let flood = {
        let written = written.clone();
        tokio::spawn(async move {
            let permits = Arc::new(tokio::sync::Semaphore::new(1_000));
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..count {
                let permit = permits.clone().acquire_owned().await.unwrap();
                let written = written.clone();
                tasks.spawn(async move {
                    let Ok(mut stream) = connect_from("127.0.0.2", addr).await else {
                        return None;
                    };
                    drop(permit);
                    let sent = Instant::now();
                    if stream
                        .write_all(b"GET / HTTP/1.1\r\nHost: wisp\r\nX-Slow: ")
                        .await
                        .is_err()
                    {
                        return None;
                    }
                    written.fetch_add(1, Ordering::Relaxed);
                    // Read until the server closes: a refusal's 503, or nothing.
                    let mut answer = Vec::new();
                    let _ =
                        tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
                    let refused = answer.starts_with(b"HTTP/1.1 503");
                    Some((sent - epoch, sent.elapsed(), refused))
                });
            }
            tasks.join_all().await
        })
    };

    // A normal client, from another address, while the flood is on.
    while written.load(Ordering::Relaxed) < (count as usize) / 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let response = client()
        .get(server.at(SERVED))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    expect_problem(response, 404, "route_not_found").await;

    let results = flood.await.unwrap();
    let opened: Vec<_> = results.into_iter().flatten().collect();
    let refused = opened.iter().filter(|(_, _, refused)| *refused).count();
    // Held: open until the header timeout closed them (the others were refused, some
    // with a reset that lost the 503 when refusals came faster than they are answered).
    let held: Vec<_> = opened
        .iter()
        .filter(|(_, open, refused)| !refused && *open >= header_timeout / 2)
        .map(|(start, open, _)| (*start, *start + *open))
        .collect();
    let longest = held
        .iter()
        .map(|(start, end)| *end - *start)
        .max()
        .unwrap_or_default();
    // The most held at once, as the client saw it (a little more than the server did:
    // the client's view of each starts before the accept and ends after the close).
    let mut edges: Vec<(Duration, i64)> = held
        .iter()
        .flat_map(|(start, end)| [(*start, 1), (*end, -1)])
        .collect();
    edges.sort();
    let at_once = edges
        .iter()
        .scan(0i64, |open, (_, step)| {
            *open += step;
            Some(*open)
        })
        .max()
        .unwrap_or(0);
    println!(
        "{} of {count} slow connections opened: {refused} answered 503, {} held (at most {at_once} at once) until closed within {longest:?}, {} reset; the normal client was served in {took:?}",
        opened.len(),
        held.len(),
        opened.len() - refused - held.len()
    );
    assert!(
        opened.len() as u64 >= count * 9 / 10,
        "only {} of {count} slow connections could be opened",
        opened.len()
    );
    assert!(refused > 0, "one address was never refused past its share");
    // The default share: a quarter of the default cap of 10,000.
    assert!(
        at_once > 0 && at_once <= 3_000,
        "{at_once} slow connections were held at once, not the share of 2,500"
    );
    assert!(
        longest < header_timeout + Duration::from_secs(5),
        "a slow connection was held {longest:?}, past the header timeout of {header_timeout:?}"
    );
    assert!(
        took < Duration::from_secs(5),
        "a trickling header was held {took:?}"
    );
}

#[tokio::test]
async fn oversized_headers_are_refused_431() {
    let server = TestServer::serve_with(bin(), &["--max-header-bytes", "16KiB"]);
    let addr = server.addr();
    let with_header = |size: usize| {
        format!(
            "GET {SERVED} HTTP/1.1\r\nHost: wisp\r\nX-Big: {}\r\n\r\n",
            "a".repeat(size)
        )
    };

    let mut fits = TcpStream::connect(addr).await.unwrap();
    fits.write_all(with_header(8 * 1024).as_bytes()).await.unwrap();
    let (head, _) = read_response(&mut fits).await.unwrap();
    assert!(head.starts_with("http/1.1 404"), "{head}");

    let mut too_big = TcpStream::connect(addr).await.unwrap();
    too_big
        .write_all(with_header(32 * 1024).as_bytes())
        .await
        .unwrap();
    let mut answer = vec![0u8; 64];
    let n = too_big.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

pub(crate) fn write_cert(dir: &Path) -> reqwest::Certificate {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let pem = certified.cert.pem();
    std::fs::write(dir.join("cert.pem"), &pem).unwrap();
    std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
    reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()
}

fn trusting(cert: &reqwest::Certificate) -> reqwest::Client {
    let _ = client(); // installs the crypto provider
    reqwest::Client::builder()
        .tls_certs_only([cert.clone()])
        .build()
        .unwrap()
}

#[tokio::test]
async fn tls_serves_https_and_h2_and_takes_a_new_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_cert(dir.path());
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let server = TestServer::serve_with(
        bin(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);
    assert!(
        server
            .stderr_containing("Serving HTTPS on https://")
            .contains("Serving HTTPS on https://")
    );

    let response = trusting(&first).get(server.at(SERVED)).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2, "h2 by ALPN");
    expect_problem(response, 404, "route_not_found").await;
    let http1 = reqwest::Client::builder()
        .tls_certs_only([first.clone()])
        .http1_only()
        .build()
        .unwrap();
    let response = http1.get(server.at(SERVED)).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    expect_problem(response, 404, "route_not_found").await;

    // A new pair in place, then SIGHUP: new connections see the new certificate.
    let second = write_cert(dir.path());
    server.signal("HUP");
    server.stderr_containing("reloaded the TLS certificate");
    let response = trusting(&second).get(server.at(SERVED)).send().await.unwrap();
    expect_problem(response, 404, "route_not_found").await;
    assert!(
        trusting(&first).get(server.at(SERVED)).send().await.is_err(),
        "the old certificate is still served"
    );

    // A bad pair is logged and the one in use kept.
    std::fs::write(&key, "not a key\n").unwrap();
    server.signal("HUP");
    let stderr = server.stderr_containing("kept the TLS certificate in use");
    assert!(stderr.contains("key.pem"), "{stderr}");
    let response = trusting(&second).get(server.at(SERVED)).send().await.unwrap();
    expect_problem(response, 404, "route_not_found").await;
}

#[test]
fn bad_tls_files_fail_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_cert(dir.path());
    let data = dir.path().join("data");
    let serve = |args: &[&str]| {
        Command::new(bin())
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()])
            .args(args)
            .env_remove("WISP_TLS_CERT")
            .env_remove("WISP_TLS_KEY")
            .output()
            .unwrap()
    };
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let missing = dir.path().join("missing.pem");

    let out = serve(&[
        "--tls-cert",
        missing.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("TLS certificate file") && stderr.contains("missing.pem"),
        "{stderr}"
    );

    // A certificate given as the key.
    let out = serve(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        cert.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("TLS key file") && stderr.contains("cert.pem"),
        "{stderr}"
    );

    // One without the other is a usage error.
    let out = serve(&["--tls-cert", cert.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--tls-key"), "{stderr}");
}

/// What one keep-alive client saw through a drain.
#[derive(Debug, Default)]
struct Seen {
    answered: usize,
    /// Answers that said `Connection: close`.
    closing: usize,
    /// Requests that got no complete answer (a reset or an empty reply).
    lost: Vec<String>,
    /// Whether its last answer said `Connection: close` before its reconnect was refused.
    ended_cleanly: bool,
}

/// A client that sends requests back to back on one connection, reconnecting when told
/// to close, until a connection is refused.
async fn keep_alive_client(addr: SocketAddr) -> Seen {
    let mut seen = Seen::default();
    let mut last_closed = false;
    loop {
        let mut stream = match TcpStream::connect(addr).await {
            Ok(stream) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                seen.ended_cleanly = last_closed;
                return seen;
            }
            Err(e) => {
                seen.lost.push(format!("connect: {e}"));
                return seen;
            }
        };
        loop {
            if let Err(e) = stream.write_all(request(SERVED).as_bytes()).await {
                seen.lost.push(format!("write: {e}"));
                return seen;
            }
            let Some((head, _)) = read_response(&mut stream).await else {
                seen.lost.push("no complete response".to_string());
                return seen;
            };
            seen.answered += 1;
            last_closed = head.contains("\r\nconnection: close");
            if last_closed {
                seen.closing += 1;
                break;
            }
        }
    }
}

/// `wrk -c16` against a server that got SIGTERM saw 16 read errors: requests sent into
/// connections the server was closing. Now in-flight requests are answered with
/// `Connection: close`, idle connections are closed only when no request is on its way,
/// and a reconnect is refused before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_loses_no_request_of_keep_alive_clients() {
    let mut server = TestServer::serve(bin());
    let addr = server.addr();

    // An idle keep-alive connection: closed by the drain.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(request(SERVED).as_bytes()).await.unwrap();
    read_response(&mut idle).await.unwrap();

    let clients: Vec<_> = (0..16).map(|_| tokio::spawn(keep_alive_client(addr))).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let term = Instant::now();
    server.signal("TERM");
    let mut seen = Vec::new();
    for client in clients {
        seen.push(client.await.unwrap());
    }
    assert_eq!(
        idle.read(&mut [0u8; 16]).await.unwrap_or(0),
        0,
        "the idle connection is closed"
    );
    let status = server.wait(Duration::from_secs(10));
    let stopped = term.elapsed();
    assert!(status.success(), "{status:?}");
    println!("drained in {stopped:?}: {seen:?}");

    let lost: Vec<_> = seen.iter().flat_map(|s| s.lost.iter()).collect();
    assert!(lost.is_empty(), "requests lost in the drain: {lost:?}");
    assert!(seen.iter().all(|s| s.answered > 0));
    assert!(
        seen.iter().all(|s| s.ended_cleanly),
        "every client was told `Connection: close` and then refused: {seen:?}"
    );
    assert!(stopped < Duration::from_secs(5), "the drain took {stopped:?}");
}
