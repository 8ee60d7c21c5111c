//! The connection caps: how many connections the listener holds open at once, in all and
//! per client address, and the polite refusal of one over a cap (a `503 overloaded`
//! with `Retry-After: 1`, then close) so that the listener never stops accepting.
//!
//! The cap is kept below the process's open-file limit ([`raise_open_file_limit`] lifts
//! the soft limit to the hard one at start), with headroom for the store, the runtimes
//! and the refusals themselves: a server that runs out of descriptors fails `accept` for
//! everyone, which is what the cap is there to prevent.

use bytes::Bytes;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use wisp_core::ErrorCode;

use super::tls::Tls;

/// How long a refused connection is given to take its answer (and, with TLS, to shake
/// hands first) before it is closed.
const REFUSAL_TIME: Duration = Duration::from_secs(2);

/// How often a refusal is logged at most (with the count since the last line).
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The descriptors kept back from the connection cap: a quarter of the limit, at least
/// this many.
const MIN_HEADROOM: u64 = 256;

/// Lifts the soft open-file limit to the hard one and returns the limit now in force
/// (`None` when it cannot be read).
pub fn raise_open_file_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    // An unlimited hard limit is still bounded by the kernel's nr_open (2^20 by default).
    let wanted = hard.min(1 << 20);
    if wanted > soft && setrlimit(Resource::RLIMIT_NOFILE, wanted, hard).is_ok() {
        return Some(wanted);
    }
    Some(soft)
}

/// The most connections an open-file limit of `limit` leaves room for.
pub fn connections_allowed_by(limit: u64) -> usize {
    let headroom = (limit / 4).max(MIN_HEADROOM);
    usize::try_from(limit.saturating_sub(headroom))
        .unwrap_or(usize::MAX)
        .max(1)
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The listener holds its cap of connections.
    Full,
    /// The client's address holds its share.
    ShareUsed,
}

/// The counts of open connections, and the caps they are held to.
pub struct ConnectionLimits {
    max: usize,
    per_ip: usize,
    open: Mutex<Open>,
    /// Refused connections that are being answered (each holds a descriptor); past
    /// its permits a refused connection is answered with one write and closed at once.
    answering: Arc<Semaphore>,
    /// The refusal: a complete HTTP/1.1 response.
    answer: Bytes,
    log: Mutex<RefusalLog>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_client: HashMap<Client, usize>,
}

struct RefusalLog {
    since: Option<Instant>,
    count: u64,
}

/// The key a client's share is counted under: its IPv4 address, or its IPv6 /64 (one
/// host usually holds a whole /64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Client(IpAddr);

impl Client {
    fn of(ip: IpAddr) -> Client {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                Client(IpAddr::V6(bits.into()))
            }
            v4 => Client(v4),
        }
    }
}

/// One open connection's place under the caps; dropping it frees the place.
pub struct Permit {
    limits: Arc<ConnectionLimits>,
    client: Client,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.by_client.remove(&self.client);
            }
        }
    }
}

impl ConnectionLimits {
    /// At most `max` connections, `per_ip` of them from one client address.
    pub fn new(max: usize, per_ip: usize) -> Arc<ConnectionLimits> {
        let max = max.max(1);
        Arc::new(ConnectionLimits {
            max,
            per_ip: per_ip.clamp(1, max),
            open: Mutex::new(Open::default()),
            answering: Arc::new(Semaphore::new((max / 8).clamp(16, 512))),
            answer: overloaded_response(),
            log: Mutex::new(RefusalLog {
                since: None,
                count: 0,
            }),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn per_ip(&self) -> usize {
        self.per_ip
    }

    /// A place for a connection from `ip`, or why there is none.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let client = Client::of(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.max {
            return Err(Refusal::Full);
        }
        let mine = open.by_client.entry(client).or_insert(0);
        if *mine >= self.per_ip {
            return Err(Refusal::ShareUsed);
        }
        *mine += 1;
        open.total += 1;
        Ok(Permit {
            limits: self.clone(),
            client,
        })
    }

    /// How many connections are open.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).total
    }

    /// Answers a refused connection `503 overloaded` and closes it, without holding up
    /// the accept loop: in a task of its own while there are permits for that, else with
    /// one non-blocking write (plain HTTP) or none (TLS, which needs a handshake first).
    pub fn refuse(&self, stream: TcpStream, ip: IpAddr, why: Refusal, tls: Option<&Tls>) {
        self.log_refusal(ip, why);
        let Ok(permit) = self.answering.clone().try_acquire_owned() else {
            if tls.is_none() {
                // What the client sent already is read away, so that the close is a FIN
                // behind the answer rather than a reset that may destroy it.
                let mut sink = [0u8; 4096];
                for _ in 0..4 {
                    if !matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {
                        break;
                    }
                }
                let _ = stream.try_write(&self.answer);
            }
            return;
        };
        let answer = self.answer.clone();
        let acceptor = tls.map(Tls::refusal_acceptor);
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(REFUSAL_TIME, async move {
                match acceptor {
                    None => answer_and_close(stream, &answer).await,
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            answer_and_close(stream, &answer).await;
                        }
                    }
                }
            })
            .await;
        });
    }

    fn log_refusal(&self, ip: IpAddr, why: Refusal) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.count += 1;
        if log.since.is_some_and(|since| since.elapsed() < LOG_EVERY) {
            return;
        }
        let count = std::mem::take(&mut log.count);
        log.since = Some(Instant::now());
        drop(log);
        match why {
            Refusal::Full => tracing::warn!(
                "refusing connections (503 overloaded): {} are open, the cap (--max-connections); {count} refused since the last report, the latest from {ip}",
                self.max
            ),
            Refusal::ShareUsed => tracing::warn!(
                "refusing connections (503 overloaded): {ip} holds its share of {} connections (--max-connections-per-ip); {count} refused since the last report",
                self.per_ip
            ),
        }
    }
}

/// Writes the answer, ends the write side, and reads what the client sends until it
/// closes: closing with its request unread would reset the connection, and a reset can
/// destroy the answer before the client reads it.
async fn answer_and_close<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, answer: &[u8]) {
    if stream.write_all(answer).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 1024];
    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
}

/// `HTTP/1.1 503` with a problem document whose code is `overloaded`.
fn overloaded_response() -> Bytes {
    let code = ErrorCode::Overloaded;
    let doc = serde_json::json!({
        "type": code.type_uri(),
        "title": code.title(),
        "status": code.status(),
        "detail": "the server holds as many connections as it allows; retry in a moment",
        "code": code.as_str(),
    })
    .to_string();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        crate::problem::PROBLEM_JSON,
        doc.len()
    );
    Bytes::from(head + &doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caps_hold_in_all_and_per_client() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = limits.try_acquire(a).unwrap();
        let _a2 = limits.try_acquire(a).unwrap();
        assert_eq!(limits.try_acquire(a).err(), Some(Refusal::ShareUsed));
        let _b1 = limits.try_acquire(b).unwrap();
        assert_eq!(limits.try_acquire(b).err(), Some(Refusal::Full));
        drop(a1);
        assert_eq!(limits.open(), 2);
        assert!(limits.try_acquire(a).is_ok());
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_and_a_mapped_v4_as_v4() {
        let limits = ConnectionLimits::new(10, 1);
        let _one = limits.try_acquire("2001:db8::1".parse().unwrap()).unwrap();
        assert_eq!(
            limits.try_acquire("2001:db8::2".parse().unwrap()).err(),
            Some(Refusal::ShareUsed)
        );
        assert!(limits.try_acquire("2001:db8:0:1::1".parse().unwrap()).is_ok());
        let _v4 = limits.try_acquire("10.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(
            limits.try_acquire("::ffff:10.0.0.1".parse().unwrap()).err(),
            Some(Refusal::ShareUsed)
        );
    }

    #[test]
    fn the_cap_leaves_headroom_below_the_file_limit() {
        assert_eq!(connections_allowed_by(1024), 768);
        assert_eq!(connections_allowed_by(20_000), 15_000);
        assert_eq!(connections_allowed_by(100), 1);
    }

    #[test]
    fn the_refusal_is_a_complete_503_problem() {
        let answer = overloaded_response();
        let text = std::str::from_utf8(&answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert!(head.contains("\r\nretry-after: 1") && head.contains("\r\nconnection: close"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let doc: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(doc["code"], "overloaded");
        assert_eq!(doc["status"], 503);
    }
}
