//! Outbound HTTP from wasm functions under their grants (`"outbound": [...]`): a granted
//! loopback server is reached; no grant, however wide, reaches a private, loopback or
//! metadata address through a name, a mapped form or a redirect. Every destination here
//! is on loopback or refused before any packet leaves.

use crate::util::{client, deploy_fixture, http_config, server};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Where the test upstream's `/redirect` points: the cloud metadata address.
const METADATA: &str = "http://169.254.169.254/latest/meta-data/";

/// A loopback origin: `/redirect` answers `302` to [`METADATA`]; anything else `200`
/// with `upstream saw <request line> host=<Host header>`.
async fn upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let line = head.lines().next().unwrap_or_default().to_string();
                let host = head
                    .lines()
                    .find_map(|l| l.strip_prefix("host: ").or_else(|| l.strip_prefix("Host: ")))
                    .unwrap_or_default()
                    .to_string();
                let response = if line.starts_with("GET /redirect ") {
                    format!("HTTP/1.1 302 Found\r\nlocation: {METADATA}\r\ncontent-length: 0\r\n\r\n")
                } else {
                    let body = format!("upstream saw {line} host={host}");
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len())
                };
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

/// A listener that must never be reached.
fn trap() -> (std::net::TcpListener, u16) {
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let port = trap.local_addr().unwrap().port();
    (trap, port)
}

fn assert_untouched(trap: &std::net::TcpListener) {
    match trap.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("a refused request reached the trap: {other:?}"),
    }
}

fn encode(url: &str) -> String {
    url.replace('%', "%25")
        .replace(':', "%3A")
        .replace('/', "%2F")
        .replace('[', "%5B")
        .replace(']', "%5D")
        .replace('?', "%3F")
}

/// `/PREFIX/fetch?url=URL` on the fixture: its status and JSON answer.
async fn fetch(server: &wisp_test_support::TestServer, prefix: &str, url: &str) -> (u16, Value) {
    let r = client()
        .get(server.at(&format!("/{prefix}/fetch?url={}", encode(url))))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let answer = serde_json::from_str(&text).unwrap_or_else(|_| json!({ "text": text }));
    (status, answer)
}

async fn assert_refused(server: &wisp_test_support::TestServer, prefix: &str, url: &str, error: &str) {
    let (status, answer) = fetch(server, prefix, url).await;
    assert_eq!(status, 502, "{url}: {answer}");
    let text = answer["error"].as_str().unwrap_or_default();
    assert!(text.contains(error), "{url}: expected {error}, got {answer}");
}

fn granted(prefix: &str, outbound: Value) -> Value {
    let mut config = http_config(json!([format!("/{prefix}/*")]));
    config["outbound"] = outbound;
    config
}

#[tokio::test]
async fn a_granted_loopback_server_is_reached() {
    let port = upstream().await;
    let (trap, trap_port) = trap();
    let server = server();
    deploy_fixture(
        &server,
        "kit",
        "http-kit",
        granted("kit", json!([format!("http://127.0.0.1:{port}")])),
    )
    .await;

    let (status, answer) = fetch(&server, "kit", &format!("http://127.0.0.1:{port}/hello?x=1")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(
        answer["body"],
        format!("upstream saw GET /hello?x=1 HTTP/1.1 host=127.0.0.1:{port}"),
        "{answer}"
    );

    // Another port of the same address, or the same port by name, is not granted.
    assert_refused(
        &server,
        "kit",
        &format!("http://127.0.0.1:{trap_port}/"),
        "HttpRequestDenied",
    )
    .await;
    assert_refused(
        &server,
        "kit",
        &format!("http://localhost:{port}/"),
        "HttpRequestDenied",
    )
    .await;
    assert_refused(
        &server,
        "kit",
        &format!("https://127.0.0.1:{port}/"),
        "HttpRequestDenied",
    )
    .await;
    assert_untouched(&trap);
}

#[tokio::test]
async fn wide_grants_never_reach_loopback_private_or_metadata_addresses() {
    let port = upstream().await;
    let (trap, trap_port) = trap();
    let server = server();
    let grants = json!(["http://*:*", "https://*:*", format!("http://127.0.0.1:{port}")]);
    deploy_fixture(&server, "wide", "http-kit", granted("wide", grants)).await;

    for url in [
        format!("http://127.0.0.1:{trap_port}/"),
        format!("http://[::1]:{trap_port}/"),
        format!("http://[::ffff:127.0.0.1]:{trap_port}/"),
        // A name that resolves to loopback (`localhost` in /etc/hosts).
        format!("http://localhost:{trap_port}/"),
        "http://10.0.0.1/".to_string(),
        "http://172.16.0.1/".to_string(),
        "http://192.168.1.1/".to_string(),
        "https://192.168.1.1/".to_string(),
        METADATA.to_string(),
        "http://[fd00::1]/".to_string(),
        "http://0.0.0.0/".to_string(),
        "http://100.64.0.1/".to_string(),
    ] {
        assert_refused(&server, "wide", &url, "DestinationIpProhibited").await;
    }
    assert_untouched(&trap);

    // A granted server's redirect reaches the guest as it is (the host follows none);
    // the guest's own follow-up is a new request, refused like any other.
    let (status, answer) = fetch(&server, "wide", &format!("http://127.0.0.1:{port}/redirect")).await;
    assert_eq!((status, &answer["status"]), (200, &json!(302)), "{answer}");
    assert_refused(&server, "wide", METADATA, "DestinationIpProhibited").await;

    // The literal grant still reaches its own server.
    let (_, answer) = fetch(&server, "wide", &format!("http://127.0.0.1:{port}/ok")).await;
    assert_eq!(answer["status"], 200, "{answer}");
}

#[tokio::test]
async fn bad_outbound_hosts_are_refused_at_deploy() {
    let server = server();
    let config = granted("bad", json!(["https://example.com/path"]));
    let response = wisp_test_support::deploy(
        &client(),
        &server,
        "bad",
        config,
        wisp_test_support::fixture_bytes("http-kit"),
    )
    .await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("outbound host `https://example.com/path` must not have a path"),
        "{text}"
    );
}
