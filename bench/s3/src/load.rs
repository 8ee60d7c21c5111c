//! `load`: CONCURRENCY workers, each on its own keep-alive connection, issue signed PUTs or
//! GETs of SIZE bytes back to back for SECONDS, and one line sums them up:
//! `rps=N p50_us=N p99_us=N errors=N`.
//!
//! - PUT overwrites a rotating set of keys, `put-{SIZE}-w{worker}-{0..32}`: distinct keys
//!   would fill the disk (1 MiB at 1 GB/s is 5 GB per run) and measure directory growth.
//!   The body is random, generated once and shared by every request.
//! - GET first uploads `get-{SIZE}-{0..4×CONCURRENCY}`, then the workers read them round robin.
//! - Every response is checked: status 200, and for GET a body of exactly SIZE bytes.
//!   Anything else counts as an error; the command prints its line, then fails.
//! - The first [`WARMUP`] is not measured (connections opened, server caches warm). A
//!   request counts when it completes inside the measured window; rps = count / SECONDS.

use crate::client::{self, Endpoint, Full};
use anyhow::{Result, bail, ensure};
use bytes::Bytes;
use http::{Method, StatusCode};
use hyper::client::conn::http1::SendRequest;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const WARMUP: Duration = Duration::from_millis(500);
/// Keys each PUT worker rotates over.
const PUT_SLOTS: usize = 32;
/// Objects per worker a GET run reads.
const GET_KEYS_PER_WORKER: usize = 4;
/// Error messages kept for the report.
const KEEP_ERRORS: usize = 3;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put,
    Get,
}

impl std::str::FromStr for Op {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "put" => Ok(Self::Put),
            "get" => Ok(Self::Get),
            other => bail!("invalid operation `{other}`: use put or get"),
        }
    }
}

pub struct Load {
    pub endpoint: Endpoint,
    pub bucket: String,
    pub size: usize,
    pub concurrency: usize,
    pub seconds: f64,
    pub op: Op,
}

/// What one worker saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    messages: Vec<String>,
}

impl Tally {
    fn error(&mut self, message: String) {
        self.errors += 1;
        if self.messages.len() < KEEP_ERRORS {
            self.messages.push(message);
        }
    }
}

/// One worker's view of the run: what to send and when to stop.
struct Plan {
    load: Arc<Load>,
    body: Bytes,
    start: Instant,
    end: Instant,
}

pub async fn run(load: Load) -> Result<()> {
    ensure!(load.concurrency > 0, "concurrency must be at least 1");
    ensure!(load.seconds > 0.0, "seconds must be positive");
    load.endpoint.ensure_bucket(&load.bucket).await?;
    let body = client::random_bytes(load.size)?;
    let load = Arc::new(load);
    if load.op == Op::Get {
        preload(&load, &body).await?;
    }

    let start = Instant::now() + WARMUP;
    let end = start + Duration::from_secs_f64(load.seconds);
    let workers: Vec<_> = (0..load.concurrency)
        .map(|id| {
            let plan = Plan {
                load: load.clone(),
                body: body.clone(),
                start,
                end,
            };
            tokio::spawn(worker(id, plan))
        })
        .collect();
    let mut total = Tally::default();
    for worker in workers {
        let tally = worker.await?;
        total.latencies_us.extend(tally.latencies_us);
        total.errors += tally.errors;
        for message in tally.messages {
            if total.messages.len() < KEEP_ERRORS {
                total.messages.push(message);
            }
        }
    }

    total.latencies_us.sort_unstable();
    let rps = total.latencies_us.len() as f64 / load.seconds;
    println!(
        "rps={rps:.0} p50_us={} p99_us={} errors={}",
        percentile(&total.latencies_us, 50),
        percentile(&total.latencies_us, 99),
        total.errors
    );
    if total.errors > 0 {
        bail!(
            "{} requests failed; first: {}",
            total.errors,
            total.messages.join(" | ")
        );
    }
    Ok(())
}

/// Nearest-rank percentile of sorted samples (0 when there are none).
fn percentile(sorted: &[u32], p: usize) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

fn get_key(size: usize, index: usize) -> String {
    format!("get-{size}-{index}")
}

/// Uploads the objects a GET run reads, one connection per worker.
async fn preload(load: &Arc<Load>, body: &Bytes) -> Result<()> {
    let keys = load.concurrency * GET_KEYS_PER_WORKER;
    let tasks: Vec<_> = (0..load.concurrency)
        .map(|id| {
            let load = load.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let mut signer = load.endpoint.signer();
                let mut conn = load.endpoint.connect::<Full>().await?;
                for index in (id..keys).step_by(load.concurrency) {
                    let path = format!("/{}/{}", load.bucket, get_key(load.size, index));
                    let request =
                        load.endpoint
                            .request(&mut signer, Method::PUT, &path, Full::new(body.clone()))?;
                    let response = client::send(&mut conn, request).await?;
                    if response.status() != StatusCode::OK {
                        bail!(
                            "PUT {path} answered {}: {}",
                            response.status(),
                            client::text(response).await
                        );
                    }
                    client::drain(response).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

async fn worker(id: usize, plan: Plan) -> Tally {
    let load = &*plan.load;
    let mut tally = Tally::default();
    let mut signer = load.endpoint.signer();
    let mut conn: Option<SendRequest<Full>> = None;
    let get_keys = load.concurrency * GET_KEYS_PER_WORKER;
    // Workers start at different GET keys so they do not read the same file in lockstep.
    let mut n = id * GET_KEYS_PER_WORKER;
    while Instant::now() < plan.end {
        let sender = match &mut conn {
            Some(sender) => sender,
            None => match load.endpoint.connect().await {
                Ok(sender) => conn.insert(sender),
                Err(err) => {
                    tally.error(format!("{err:#}"));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let (method, path, body) = match load.op {
            Op::Put => (
                Method::PUT,
                format!("/{}/put-{}-w{id}-{}", load.bucket, load.size, n % PUT_SLOTS),
                Full::new(plan.body.clone()),
            ),
            Op::Get => (
                Method::GET,
                format!("/{}/{}", load.bucket, get_key(load.size, n % get_keys)),
                Full::new(Bytes::new()),
            ),
        };
        n += 1;
        let sent = Instant::now();
        match exchange(load, &mut signer, sender, method, &path, body).await {
            Ok(()) => {
                let done = Instant::now();
                if done >= plan.start && done < plan.end {
                    let micros = done.duration_since(sent).as_micros();
                    tally.latencies_us.push(u32::try_from(micros).unwrap_or(u32::MAX));
                }
            }
            Err(err) => {
                tally.error(format!("{path}: {err:#}"));
                // The connection may be mid-response: start afresh.
                conn = None;
            }
        }
    }
    tally
}

/// One request and its checked response, read to the end.
async fn exchange(
    load: &Load,
    signer: &mut crate::sigv4::Signer,
    sender: &mut SendRequest<Full>,
    method: Method,
    path: &str,
    body: Full,
) -> Result<()> {
    let request = load.endpoint.request(signer, method, path, body)?;
    let response = client::send(sender, request).await?;
    if response.status() != StatusCode::OK {
        bail!("status {}: {}", response.status(), client::text(response).await);
    }
    let length = client::drain(response).await?;
    if load.op == Op::Get && length != load.size as u64 {
        bail!("body of {length} bytes, expected {}", load.size);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&samples, 50), 50);
        assert_eq!(percentile(&samples, 99), 99);
        assert_eq!(percentile(&[7], 99), 7);
        assert_eq!(percentile(&[], 50), 0);
    }
}
