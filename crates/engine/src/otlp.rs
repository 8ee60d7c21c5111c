//! OTLP/HTTP export of invocation spans (`wisp serve --otlp-endpoint URL`): every
//! invocation record, once the log writer has stored it, is sent as one span to an
//! OpenTelemetry collector, Jaeger or Tempo (`POST {URL}/v1/traces`, OTLP/JSON).
//!
//! # Design
//!
//! The request path never sees the exporter. The log writer (`logs.rs`) hands each
//! batch of records it wrote to a [`SpanTap`], which does nothing until
//! [`Engine::export_spans`] starts an exporter; then it moves the batch into a bounded
//! channel, dropping (and counting) it when [`QUEUE_SPANS`] records already wait. One
//! task turns what waits into `ExportTraceServiceRequest`s of up to [`BATCH_SPANS`]
//! spans ([`spans`]) and POSTs each, retrying a failed POST (no connection, a timeout,
//! 429, 502, 503, 504: what the OTLP spec calls retryable) [`ATTEMPTS`] times with
//! growing pauses, then dropping it with a warning (at most one a minute). At shutdown,
//! once the log writer has written its last records, [`SpanTap::finish`] hands the
//! exporter an empty batch, its end, and waits up to [`FINISH_WITHIN`] for what is
//! left to be sent.
//!
//! The JSON is written from a few hand-written serde structs, and the POST is a plain
//! hyper HTTP/1.1 exchange over tokio-rustls, both already in the engine's graph. The
//! `opentelemetry-otlp` crate would bring `opentelemetry`, its SDK, `prost`,
//! `tonic` or `reqwest` and their trees (a large compile for this machine; see
//! DEPENDENCIES.md), to send one message type whose JSON form the OTLP spec fixes.
//! Spans come from the records alone, so what a collector shows is what
//! `wisp trace` shows.

mod spans;

use crate::Engine;
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use wisp_store::InvocationRecord;

/// Records waiting for export at most; more are dropped and counted.
const QUEUE_SPANS: usize = 16_384;
/// Spans per POST at most.
const BATCH_SPANS: usize = 512;
/// Tries of one POST before its spans are dropped.
const ATTEMPTS: u32 = 4;
/// The pause before the first retry; each further one is four times longer.
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// How long resolving, connecting and the TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the collector may take to answer once the request is sent.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a shutdown waits for the last spans to be sent.
pub(crate) const FINISH_WITHIN: Duration = Duration::from_secs(5);
/// The shortest time between two warnings about lost spans.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Where spans go: an `http://` or `https://` base URL (`http://localhost:4318`), to
/// which `/v1/traces` is added unless its path ends with it already (as the OTLP
/// exporter configuration's `OTEL_EXPORTER_OTLP_ENDPOINT` is read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpEndpoint {
    tls: bool,
    /// The host to connect to (an IPv6 address without brackets).
    host: String,
    port: u16,
    /// `Host:` as the URL wrote it.
    authority: String,
    /// The path POSTed to, ending in `/v1/traces`.
    path: String,
}

impl std::fmt::Display for OtlpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority, self.path)
    }
}

impl std::str::FromStr for OtlpEndpoint {
    type Err = String;

    /// Reads `--otlp-endpoint`: an `http://` or `https://` URL with a host, no
    /// userinfo, query or fragment. The error says what is wrong with it.
    fn from_str(text: &str) -> Result<OtlpEndpoint, String> {
        let text = text.trim();
        let hint = "use the collector's OTLP/HTTP address, such as http://localhost:4318";
        let Some((scheme, _)) = text.split_once("://") else {
            return Err(format!("`{text}` is not a URL: {hint}"));
        };
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            other => {
                return Err(format!(
                    "`{text}` has scheme `{other}`: OTLP/HTTP takes an http:// or https:// URL ({hint})"
                ));
            }
        };
        let uri: Uri = text
            .parse()
            .map_err(|e| format!("`{text}` is not a URL ({e}): {hint}"))?;
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        if authority.contains('@') {
            return Err(format!(
                "`{text}` has userinfo (`user@`), which OTLP/HTTP does not use"
            ));
        }
        if uri.query().is_some() || text.contains('#') {
            return Err(format!(
                "`{text}` has a query or fragment: give the base URL only ({hint})"
            ));
        }
        let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
            return Err(format!("`{text}` has no host: {hint}"));
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let base = uri.path().trim_end_matches('/');
        let path = if base.ends_with("/v1/traces") {
            base.to_string()
        } else {
            format!("{base}/v1/traces")
        };
        Ok(OtlpEndpoint {
            tls,
            host,
            port,
            authority: authority.to_string(),
            path,
        })
    }
}

/// Where the log writer hands the records it wrote (see the module docs): nothing
/// happens to them until an exporter is started.
#[derive(Clone, Default)]
pub(crate) struct SpanTap(Arc<OnceLock<Feed>>);

/// The sending side of a running exporter.
struct Feed {
    tx: mpsc::Sender<Vec<InvocationRecord>>,
    /// Records sent and not yet taken by the exporter.
    queued: Arc<AtomicUsize>,
    /// Records dropped because [`QUEUE_SPANS`] already waited.
    dropped: Arc<AtomicU64>,
    /// The exporter task, until [`SpanTap::finish`] waits for it.
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl SpanTap {
    /// Takes `records` for export when an exporter runs (leaving `records` empty), else
    /// leaves them. Called by the log writer after each batch; never waits.
    pub(crate) fn offer(&self, records: &mut Vec<InvocationRecord>) {
        let Some(feed) = self.0.get() else {
            return;
        };
        if records.is_empty() {
            return;
        }
        let n = records.len();
        if feed.queued.fetch_add(n, Ordering::Relaxed) + n > QUEUE_SPANS {
            feed.queued.fetch_sub(n, Ordering::Relaxed);
            feed.dropped.fetch_add(n as u64, Ordering::Relaxed);
            return;
        }
        if feed.tx.try_send(std::mem::take(records)).is_err() {
            feed.queued.fetch_sub(n, Ordering::Relaxed);
            feed.dropped.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

impl SpanTap {
    /// Ends the export: sends what was offered so far and stops the exporter, waiting
    /// at most `within`. Called once at shutdown, after the log writer's last batch;
    /// nothing offered after it is sent.
    pub(crate) async fn finish(&self, within: Duration) {
        let Some(feed) = self.0.get() else {
            return;
        };
        let task = feed
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(task) = task else {
            return;
        };
        let finished = tokio::time::timeout(within, async {
            // An empty batch is the end: the writer never offers one.
            if feed.tx.send(Vec::new()).await.is_ok() {
                let _ = task.await;
            }
        })
        .await;
        if finished.is_err() {
            tracing::warn!("the last invocation spans were not all sent within {within:?} of shutdown");
        }
    }
}

impl Engine {
    /// Exports every invocation record from now on as an OTLP span to `endpoint`
    /// (see [`crate::otlp`]). Once per engine: a second call is ignored. Must run
    /// inside a tokio runtime.
    pub fn export_spans(&self, endpoint: OtlpEndpoint) {
        // Batches, not records: the count of records is bounded by `queued`.
        let (tx, rx) = mpsc::channel(QUEUE_SPANS.div_ceil(BATCH_SPANS));
        let feed = Feed {
            tx,
            queued: Arc::default(),
            dropped: Arc::default(),
            task: std::sync::Mutex::new(None),
        };
        let (queued, dropped) = (feed.queued.clone(), feed.dropped.clone());
        if self.spans.0.set(feed).is_err() {
            return;
        }
        tracing::info!("exporting invocation spans to {endpoint} (OTLP/HTTP JSON)");
        let task = tokio::spawn(export(endpoint, rx, queued, dropped));
        if let Some(feed) = self.spans.0.get() {
            *feed
                .task
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task);
        }
    }
}

/// The exporter task: runs until every [`SpanTap`] is gone, or it is handed an empty
/// batch (the end).
async fn export(
    endpoint: OtlpEndpoint,
    mut rx: mpsc::Receiver<Vec<InvocationRecord>>,
    queued: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
) {
    let mut warnings = Warnings::default();
    let mut batches = Vec::new();
    let mut records = Vec::new();
    while rx.recv_many(&mut batches, 16).await > 0 {
        let end = batches.iter().any(Vec::is_empty);
        records.extend(batches.drain(..).flatten());
        queued.fetch_sub(records.len(), Ordering::Relaxed);
        for chunk in records.chunks(BATCH_SPANS) {
            let body = match serde_json::to_vec(&spans::request(chunk)) {
                Ok(body) => Bytes::from(body),
                Err(e) => {
                    warnings.lost(
                        chunk.len() as u64,
                        &format!("cannot write the spans as JSON: {e}"),
                    );
                    continue;
                }
            };
            if let Err(why) = post_with_retries(&endpoint, body).await {
                warnings.lost(
                    chunk.len() as u64,
                    &format!("exporting to {endpoint} failed: {why}"),
                );
            }
        }
        records.clear();
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            warnings.lost(lost, "the export queue was full");
        }
        if end {
            return;
        }
    }
}

/// Warnings about lost spans, at most one per [`WARN_EVERY`], counting the rest.
#[derive(Default)]
struct Warnings {
    last: Option<Instant>,
    unreported: u64,
}

impl Warnings {
    fn lost(&mut self, spans: u64, why: &str) {
        self.unreported += spans;
        if self.last.is_some_and(|at| at.elapsed() < WARN_EVERY) {
            return;
        }
        tracing::warn!(
            "dropped {} invocation spans: {why} (further losses are reported at most once a minute)",
            self.unreported
        );
        self.unreported = 0;
        self.last = Some(Instant::now());
    }
}

/// A POST that failed, and whether trying again may help.
#[derive(Debug)]
struct Failed {
    why: String,
    retry: bool,
}

/// POSTs `body`, retrying what may succeed later; the last failure's reason.
async fn post_with_retries(endpoint: &OtlpEndpoint, body: Bytes) -> Result<(), String> {
    let mut pause = FIRST_RETRY;
    let mut attempt = 1;
    loop {
        match post(endpoint, body.clone()).await {
            Ok(()) => return Ok(()),
            Err(Failed { why, retry }) if !retry || attempt >= ATTEMPTS => {
                return Err(format!("{why} (attempt {attempt} of {ATTEMPTS})"));
            }
            Err(Failed { why, .. }) => {
                tracing::debug!("exporting spans to {endpoint} failed, retrying in {pause:?}: {why}");
            }
        }
        tokio::time::sleep(pause).await;
        pause *= 4;
        attempt += 1;
    }
}

/// One POST of an export request over a new connection.
async fn post(endpoint: &OtlpEndpoint, body: Bytes) -> Result<(), Failed> {
    let retry = |why: String| Failed { why, retry: true };
    let connect = async {
        let stream = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|e| retry(format!("cannot connect: {e}")))?;
        let _ = stream.set_nodelay(true);
        Ok::<_, Failed>(stream)
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| retry(format!("no connection within {CONNECT_TIMEOUT:?}")))??;
    let request = Request::post(endpoint.path.as_str())
        .header(header::HOST, endpoint.authority.as_str())
        .header(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::USER_AGENT, concat!("wisp/", env!("CARGO_PKG_VERSION")))
        .body(Full::new(body))
        .map_err(|e| Failed {
            why: format!("cannot build the request: {e}"),
            retry: false,
        })?;
    if !endpoint.tls {
        return exchange(stream, request).await;
    }
    let config = crate::services::outbound::tls_config().map_err(|e| Failed {
        why: e.to_string(),
        retry: false,
    })?;
    let name = rustls_name(&endpoint.host)?;
    let handshake = tokio_rustls::TlsConnector::from(config).connect(name, stream);
    let tls = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
        .await
        .map_err(|_| retry(format!("no TLS handshake within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| retry(format!("TLS failed: {e}")))?;
    exchange(tls, request).await
}

fn rustls_name(host: &str) -> Result<tokio_rustls::rustls::pki_types::ServerName<'static>, Failed> {
    tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| Failed {
        why: format!("`{host}` is not a TLS server name: {e}"),
        retry: false,
    })
}

/// Sends `request` over `io` as HTTP/1.1; `Ok` on a 2xx answer.
async fn exchange<T>(io: T, request: Request<Full<Bytes>>) -> Result<(), Failed>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let retry = |why: String| Failed { why, retry: true };
    let answer = async {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| retry(format!("HTTP handshake failed: {e}")))?;
        tokio::spawn(connection);
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| retry(format!("the request failed: {e}")))?;
        let status = response.status();
        // A collector's partial-success body is not read; a refusal's says why.
        let detail = if status.is_success() {
            String::new()
        } else {
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
        };
        Ok::<_, Failed>((status, detail))
    };
    let (status, detail) = tokio::time::timeout(ANSWER_TIMEOUT, answer)
        .await
        .map_err(|_| retry(format!("no answer within {ANSWER_TIMEOUT:?}")))??;
    if status.is_success() {
        return Ok(());
    }
    Err(Failed {
        why: format!("the collector answered {status}: {}", detail.trim()),
        retry: matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_read_or_refused_with_a_reason() {
        let e: OtlpEndpoint = "http://localhost:4318".parse().unwrap();
        assert_eq!((e.tls, e.host.as_str(), e.port), (false, "localhost", 4318));
        assert_eq!(e.path, "/v1/traces");
        assert_eq!(e.to_string(), "http://localhost:4318/v1/traces");
        let e: OtlpEndpoint = "https://otel.example.com/base/".parse().unwrap();
        assert_eq!((e.tls, e.port, e.path.as_str()), (true, 443, "/base/v1/traces"));
        let e: OtlpEndpoint = "http://[::1]:4318/v1/traces".parse().unwrap();
        assert_eq!((e.host.as_str(), e.path.as_str()), ("::1", "/v1/traces"));
        assert_eq!(e.authority, "[::1]:4318");
        let refused = |text: &str| text.parse::<OtlpEndpoint>().unwrap_err();
        assert!(refused("localhost:4318").contains("is not a URL"));
        assert!(refused("grpc://localhost:4317").contains("scheme `grpc`"));
        assert!(refused("http://exa mple.com").contains("is not a URL"));
        assert!(refused("http://u:p@host:4318").contains("userinfo"));
        assert!(refused("http://host:4318/?x=1").contains("query"));
    }

    fn record(id: &str) -> InvocationRecord {
        InvocationRecord {
            namespace: wisp_core::Namespace::new("default").unwrap(),
            function: wisp_core::FunctionName::new("f").unwrap(),
            id: id.into(),
            version: wisp_core::VersionId("v".into()),
            version_number: 1,
            started_at: 0,
            cold: false,
            init_us: None,
            queue_us: 0,
            run_us: 0,
            error: None,
            memory_mb: 128,
            billed_ms: 1,
            reserved: false,
            trace: None,
            parent: None,
        }
    }

    #[tokio::test]
    async fn a_tap_without_an_exporter_keeps_the_records_and_a_full_one_drops_them() {
        let tap = SpanTap::default();
        let mut records = vec![record("a")];
        tap.offer(&mut records);
        assert_eq!(records.len(), 1, "no exporter: nothing taken");
        let (tx, mut rx) = mpsc::channel(1);
        let feed = Feed {
            tx,
            queued: Arc::default(),
            dropped: Arc::default(),
            task: std::sync::Mutex::new(None),
        };
        let (queued, dropped) = (feed.queued.clone(), feed.dropped.clone());
        assert!(tap.0.set(feed).is_ok());
        tap.offer(&mut records);
        assert!(records.is_empty());
        assert_eq!(queued.load(Ordering::Relaxed), 1);
        // The channel is full: the next batch is dropped and counted, not waited for.
        let mut more = vec![record("b"), record("c")];
        tap.offer(&mut more);
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
        assert_eq!(queued.load(Ordering::Relaxed), 1);
        assert_eq!(rx.recv().await.unwrap()[0].id, "a");
    }
}
