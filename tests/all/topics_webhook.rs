//! Webhook subscribers end to end: SNS's HTTP notification (body and `x-amz-sns-*`
//! headers) and raw delivery to a loopback receiver, retries until it answers 2xx, a
//! name that resolves to loopback refused, and bad URLs refused at subscribe.

use crate::util::{client, expect_problem, server};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wisp_test_support::TestServer;

/// One request a [`Receiver`] got.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub path: String,
    /// Lowercased names.
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub at: Instant,
    /// What the receiver answered.
    pub status: u16,
}

/// A loopback HTTP receiver that records each request and answers it `status` (a
/// status it can change as it goes; 0: no answer at all), closing the connection
/// after each.
pub(crate) struct Receiver {
    pub port: u16,
    pub status: Arc<AtomicU16>,
    pub got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub(crate) async fn start(status: u16) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let status = Arc::new(AtomicU16::new(status));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (answer, record) = (status.clone(), got.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (answer, record) = (answer.clone(), record.clone());
                tokio::spawn(async move {
                    let Some(mut request) = read_request(&mut stream).await else {
                        return;
                    };
                    let status = answer.load(Ordering::SeqCst);
                    request.status = status;
                    record.lock().unwrap().push(request);
                    if status == 0 {
                        // Never answers: holds the connection open a minute.
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        return;
                    }
                    let response =
                        format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        Receiver { port, status, got }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (up to `within`) until `ready` holds of what was received; returns it.
    pub(crate) async fn until(&self, within: Duration, ready: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if ready(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver never got what was awaited; it got {got:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Reads one HTTP/1.1 request with a `content-length` body.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.lines();
    let path = lines.next()?.split_whitespace().nth(1)?.to_string();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = data[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Received {
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
        status: 0,
    })
}

/// `method path` with `body`, asserting `status`; the answer's JSON.
pub(crate) async fn call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Value,
    status: u16,
) -> Value {
    let r = client()
        .request(method.clone(), server.at(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let got = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{method} {path}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Creates topic `name`.
pub(crate) async fn create_topic(server: &TestServer, name: &str) {
    let r = client()
        .put(server.at(&format!("/v1/topics/{name}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn a_webhook_gets_the_sns_notification_and_a_raw_webhook_the_message() {
    let server = server();
    let receiver = Receiver::start(200).await;
    create_topic(&server, "orders").await;
    let post = reqwest::Method::POST;
    let hook = call(
        &server,
        post.clone(),
        "/v1/topics/orders/subscriptions",
        json!({"webhook": receiver.url("/hook?k=1")}),
        201,
    )
    .await;
    assert_eq!(hook["webhook"], receiver.url("/hook?k=1"), "{hook}");
    let raw = call(
        &server,
        post.clone(),
        "/v1/topics/orders/subscriptions",
        json!({"webhook": receiver.url("/raw"), "raw_message_delivery": true,
               "filter_policy": {"color": ["red"]}}),
        201,
    )
    .await;
    let published = call(
        &server,
        post.clone(),
        "/v1/topics/orders/messages",
        json!({"message": "{\"id\": 7}", "attributes": {"color": {"DataType": "String", "StringValue": "red"}}}),
        201,
    )
    .await;
    let id = published["id"].as_str().unwrap();

    let got = receiver
        .until(Duration::from_secs(10), |got| got.len() >= 2)
        .await;
    let notified = got.iter().find(|r| r.path == "/hook?k=1").unwrap();
    let arn = "arn:aws:sns:local:000000000000:orders";
    let h = &notified.headers;
    assert_eq!(h["x-amz-sns-message-type"], "Notification", "{h:?}");
    assert_eq!(h["x-amz-sns-message-id"], id, "{h:?}");
    assert_eq!(h["x-amz-sns-topic-arn"], arn, "{h:?}");
    assert_eq!(
        h["x-amz-sns-subscription-arn"],
        format!("{arn}:{}", hook["id"].as_str().unwrap()),
        "{h:?}"
    );
    assert!(h["content-type"].starts_with("text/plain"), "{h:?}");
    let body: Value = serde_json::from_str(&notified.body).unwrap();
    assert_eq!(body["Type"], "Notification", "{body}");
    assert_eq!(body["MessageId"], id, "{body}");
    assert_eq!(body["TopicArn"], arn, "{body}");
    assert_eq!(body["Message"], "{\"id\": 7}", "{body}");
    assert!(body["Timestamp"].as_str().unwrap().ends_with('Z'), "{body}");
    assert_eq!(
        body["MessageAttributes"]["color"],
        json!({"Type": "String", "Value": "red"}),
        "{body}"
    );
    assert!(body.get("Subject").is_none(), "{body}");

    let raw_got = got.iter().find(|r| r.path == "/raw").unwrap();
    assert_eq!(raw_got.body, "{\"id\": 7}");
    assert_eq!(raw_got.headers["x-amz-sns-message-id"], id);
    assert_eq!(
        raw_got.headers["x-amz-sns-subscription-arn"],
        format!("{arn}:{}", raw["id"].as_str().unwrap())
    );
    // Delivered once each: nothing comes again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), 2, "{:#?}", receiver.received());
}

#[tokio::test]
async fn a_webhook_that_fails_is_retried_until_it_answers_2xx() {
    let server = server();
    let receiver = Receiver::start(500).await;
    create_topic(&server, "orders").await;
    let post = reqwest::Method::POST;
    let sub = call(
        &server,
        post.clone(),
        "/v1/topics/orders/subscriptions",
        json!({"webhook": receiver.url("/hook")}),
        201,
    )
    .await;
    call(
        &server,
        post,
        "/v1/topics/orders/messages",
        json!({"message": "hello"}),
        201,
    )
    .await;
    // Two failures (500), then it recovers: the third attempt lands, about 1 s + 2 s
    // of backoff after the first.
    receiver
        .until(Duration::from_secs(10), |got| got.len() >= 2)
        .await;
    receiver.status.store(204, Ordering::SeqCst);
    let got = receiver
        .until(Duration::from_secs(10), |got| got.len() >= 3)
        .await;
    let ids: Vec<&str> = got
        .iter()
        .map(|r| r.headers["x-amz-sns-message-id"].as_str())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert!(got[1].at - got[0].at >= Duration::from_millis(900), "{got:#?}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.received().len(), 3, "{:#?}", receiver.received());
    let path = format!(
        "/v1/topics/orders/subscriptions/{}/dead-letters",
        sub["id"].as_str().unwrap()
    );
    let dead = crate::util::get_json(&server, &path).await;
    assert_eq!(dead["dead_letters"], json!([]), "{dead}");
}

#[tokio::test]
async fn a_webhook_host_that_resolves_to_loopback_is_never_reached() {
    let server = server();
    let receiver = Receiver::start(200).await;
    create_topic(&server, "orders").await;
    // `localhost` names no address: it resolves to loopback, which a webhook reaches
    // only when its URL names the address itself.
    let url = format!("http://localhost:{}/hook", receiver.port);
    call(
        &server,
        reqwest::Method::POST,
        "/v1/topics/orders/subscriptions",
        json!({"webhook": url}),
        201,
    )
    .await;
    call(
        &server,
        reqwest::Method::POST,
        "/v1/topics/orders/messages",
        json!({"message": "hello"}),
        201,
    )
    .await;
    // The first attempt and a retry a second later have both been refused by now.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(receiver.received().is_empty(), "{:#?}", receiver.received());
}

#[tokio::test]
async fn a_bad_webhook_url_is_refused_at_subscribe() {
    let server = server();
    create_topic(&server, "orders").await;
    for (url, says) in [
        ("ftp://example.com/drop", "unsupported scheme `ftp`"),
        ("example.com/hook", "no scheme"),
        ("http://exa mple.com/", "is not a URL"),
        ("https://user:secret@example.com/hook", "userinfo"),
    ] {
        let r = client()
            .post(server.at("/v1/topics/orders/subscriptions"))
            .json(&json!({"webhook": url}))
            .send()
            .await
            .unwrap();
        let problem = expect_problem(r, 400, "invalid_request").await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{url}: {detail}");
    }
    let listed = crate::util::get_json(&server, "/v1/topics/orders/subscriptions").await;
    assert_eq!(listed["subscriptions"], json!([]), "{listed}");
}
