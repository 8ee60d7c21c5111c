//! `/metrics`: invocations counted by outcome with duration histograms, in Prometheus'
//! text format (`promtool check metrics` accepts it) or OpenMetrics when asked; read
//! with an admin key (every namespace), another key with read rights (its own
//! namespace), or the metrics token (every namespace, and nothing else). A real
//! Prometheus scrapes it and a query answers the invocation count.

use crate::tenancy::create_key;
use crate::util::{bin, client, deploy_fixture, expect_problem, server, server_with};
use serde_json::{Value, json};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wisp_test_support::{TestServer, anonymous_client, keyed_client};

const TOKEN: &str = "metrics-token-0123456789abcdef0123456789";

/// Deploys http-kit as `kit` on `/kit/*rest`.
async fn deploy_kit(server: &TestServer) {
    let config = json!({ "kind": "http", "routes": ["/kit/*rest"] });
    deploy_fixture(server, "kit", "http-kit", config).await;
}

/// `GET /kit/ACTION`'s status.
async fn hit(server: &TestServer, action: &str) -> u16 {
    let url = server.at(&format!("/kit/{action}"));
    anonymous_client()
        .get(url)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `GET /metrics` with `client`: its status, content type and body.
async fn scrape(
    server: &TestServer,
    client: &reqwest::Client,
    accept: Option<&str>,
) -> (u16, String, String) {
    let mut request = client.get(server.at("/metrics"));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

/// The value of the sample `series` (name and labels, as written) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
}

/// The admin's scrape once `ready` accepts it (records are counted as invocations end,
/// a moment after they answer).
async fn scrape_when(server: &TestServer, ready: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let (status, _, text) = scrape(server, &client(), None).await;
        assert_eq!(status, 200, "{text}");
        if ready(&text) {
            return text;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "not ready:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const SUCCESS: &str =
    r#"wisp_invocations_total{namespace="default",function="kit",version="1",outcome="success"}"#;
const COUNT: &str =
    r#"wisp_invocation_duration_seconds_count{namespace="default",function="kit",version="1"}"#;

/// `promtool check metrics` on `text`: its exit success and output.
fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool must be installed (Debian's `prometheus` package; .ci/run installs it)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[tokio::test]
async fn invocations_are_counted_by_outcome_with_histograms_in_a_format_promtool_accepts() {
    let server = server();
    deploy_kit(&server).await;
    for _ in 0..3 {
        assert_eq!(hit(&server, "hello").await, 200);
    }
    assert_eq!(hit(&server, "trap").await, 502);
    let text = scrape_when(&server, |t| sample(t, COUNT) == Some(4.0)).await;
    assert_eq!(sample(&text, SUCCESS), Some(3.0), "{text}");
    // A trap is the function's error.
    let failed =
        r#"wisp_invocations_total{namespace="default",function="kit",version="1",outcome="function_error"}"#;
    assert_eq!(sample(&text, failed), Some(1.0), "{text}");
    let errors = r#"wisp_invocation_errors_total{namespace="default",function="kit",version="1"}"#;
    assert_eq!(sample(&text, errors), Some(1.0), "{text}");
    // Buckets are cumulative and end at +Inf with the count.
    let inf = r#"wisp_invocation_duration_seconds_bucket{namespace="default",function="kit",version="1",le="+Inf"}"#;
    assert_eq!(sample(&text, inf), Some(4.0), "{text}");
    assert!(
        text.contains("# TYPE wisp_invocation_duration_seconds histogram"),
        "{text}"
    );
    let cold = r#"wisp_cold_starts_total{namespace="default",function="kit",version="1"}"#;
    assert!(sample(&text, cold).is_some(), "{text}");
    for family in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "wisp_uptime_seconds",
        "wisp_concurrent_executions",
        "wisp_namespace_month_requests",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no {family}:\n{text}"
        );
    }
    // Nothing was dropped: the log queue only fills when the store falls behind.
    assert_eq!(sample(&text, "wisp_log_lines_dropped_total"), Some(0.0), "{text}");
    let (ok, said) = promtool(&text);
    assert!(
        ok,
        "promtool check metrics refused the exposition: {said}\n{text}"
    );
}

#[tokio::test]
async fn openmetrics_is_served_when_asked() {
    let server = server();
    deploy_kit(&server).await;
    assert_eq!(hit(&server, "hello").await, 200);
    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let (status, content_type, text) = scrape(&server, &client(), Some(accept)).await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE wisp_invocations counter\n"), "{text}");
    let (_, content_type, text) = scrape(&server, &client(), None).await;
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert!(!text.contains("# EOF"), "{text}");
}

#[tokio::test]
async fn metrics_need_a_key_and_a_namespace_key_reads_only_its_namespace() {
    let server = server_with(&["--metrics-token", TOKEN]);
    deploy_kit(&server).await;
    assert_eq!(hit(&server, "hello").await, 200);
    scrape_when(&server, |t| sample(t, SUCCESS) == Some(1.0)).await;

    let response = anonymous_client()
        .get(server.at("/metrics"))
        .send()
        .await
        .unwrap();
    expect_problem(response, 401, "unauthorized").await;
    let response = keyed_client("nope.nope")
        .get(server.at("/metrics"))
        .send()
        .await
        .unwrap();
    expect_problem(response, 401, "unauthorized").await;

    // Another namespace's read key sees its own namespace, not `default`'s functions,
    // nor the process.
    let created = client()
        .post(server.at("/v1/namespaces"))
        .json(&json!({ "name": "other" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let other = create_key(&server, "other", "read", None).await;
    let (status, _, text) = scrape(&server, &keyed_client(&other), None).await;
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains(r#"function="kit""#), "{text}");
    assert!(
        text.contains(r#"wisp_namespace_month_requests{namespace="other"} 0"#),
        "{text}"
    );
    assert!(!text.contains(r#"namespace="default""#), "{text}");
    assert!(!text.contains("process_open_fds"), "{text}");
    assert!(!text.contains("wisp_log_lines_dropped"), "{text}");

    // The metrics token reads every namespace, and nothing but /metrics.
    let (status, _, text) = scrape(&server, &keyed_client(TOKEN), None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(sample(&text, SUCCESS), Some(1.0), "{text}");
    let response = keyed_client(TOKEN)
        .get(server.at("/v1/functions"))
        .send()
        .await
        .unwrap();
    expect_problem(response, 401, "unauthorized").await;
}

#[test]
fn a_short_metrics_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--s3-listen",
            "off",
            "--metrics-token",
            "short",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--metrics-token") && stderr.contains("at least 32"),
        "{stderr}"
    );
}

/// A free port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Prometheus server (Debian's package) scraping `target` every second with the
/// metrics token; killed on drop.
struct Prometheus {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: std::net::SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: wisp\n    authorization:\n      credentials: {TOKEN}\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus must be installed (Debian's `prometheus` package; .ci/run installs it)");
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    /// The first value of an instant query, once there is one.
    async fn query(&self, query: &str) -> Option<f64> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let response = anonymous_client()
            .get(url)
            .query(&[("query", query)])
            .send()
            .await
            .ok()?;
        let body: Value = response.json().await.ok()?;
        body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_invocation_count() {
    let server = server_with(&["--metrics-token", TOKEN]);
    deploy_kit(&server).await;
    for _ in 0..5 {
        assert_eq!(hit(&server, "hello").await, 200);
    }
    let prometheus = Prometheus::start(server.addr());
    let query = r#"sum(wisp_invocations_total{function="kit",outcome="success"})"#;
    let started = Instant::now();
    loop {
        if prometheus.query(query).await == Some(5.0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Prometheus did not see 5 invocations: up = {:?}, count = {:?}",
            prometheus.query(r#"up{job="wisp"}"#).await,
            prometheus.query(query).await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The histogram reads as one: a quantile of the duration comes back.
    let p99 =
        r#"histogram_quantile(0.99, sum by (le) (wisp_invocation_duration_seconds_bucket{function="kit"}))"#;
    let value = prometheus.query(p99).await.expect("a p99 of the duration");
    assert!(value > 0.0 && value <= 900.0, "{value}");
}

/// Every metric name a PromQL text names (Wisp's and the process's).
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|token| token.starts_with("wisp_") || token.starts_with("process_"))
        .map(str::to_owned)
        .collect()
}

/// Every string under a `expr` or `query`/`definition` key of the dashboard.
fn queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    _ => queries(v, out),
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_grafana_dashboard_queries_only_metrics_wisp_exports() {
    let path = wisp_test_support::repo_root().join("deploy/grafana/wisp.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    queries(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "{exprs:?}");

    let server = server();
    let (_, _, text) = scrape(&server, &client(), None).await;
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let exported = |name: &str| {
        families.contains(&name)
            || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                name.strip_suffix(suffix)
                    .is_some_and(|base| families.contains(&base))
            })
    };
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(
            !names.is_empty() || expr.contains("prometheus"),
            "a query names no metric: {expr}"
        );
        for name in names {
            assert!(
                exported(&name),
                "the dashboard queries `{name}`, which Wisp does not export: {expr}"
            );
        }
    }
    // And the scrape config names the path Wisp serves.
    let config =
        std::fs::read_to_string(wisp_test_support::repo_root().join("deploy/prometheus.yml")).unwrap();
    assert!(config.contains("metrics_path: /metrics"), "{config}");
}

#[tokio::test]
async fn a_schedule_counts_its_runs_and_the_slots_it_missed_while_disabled() {
    let server = server();
    let config = json!({ "kind": "event", "schedule": "* * * * * *" });
    deploy_fixture(&server, "tick", "event-kit", config).await;
    let series =
        |name: &str| format!(r#"{name}{{namespace="default",function="tick",schedule="* * * * * *"}}"#);
    let text = scrape_when(&server, |t| {
        sample(t, &series("wisp_schedule_runs_total")) >= Some(2.0)
    })
    .await;
    let last = sample(&text, &series("wisp_schedule_last_run_timestamp_seconds")).expect("a last run");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - last).abs() < 10.0, "last run {last}, now {now}");
    assert_eq!(
        sample(&text, &series("wisp_schedule_missed_runs_total")),
        Some(0.0),
        "{text}"
    );

    // Disabled, its slots are missed, and counted.
    let disabled = client()
        .post(server.at("/v1/functions/tick/disable"))
        .send()
        .await
        .unwrap();
    assert!(
        disabled.status().is_success(),
        "{}",
        disabled.text().await.unwrap()
    );
    scrape_when(&server, |t| {
        sample(t, &series("wisp_schedule_missed_runs_total")) >= Some(1.0)
    })
    .await;
}
