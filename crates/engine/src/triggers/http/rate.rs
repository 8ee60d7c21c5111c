//! Rate limits of user routes: one keyed GCRA limiter (`governor`) per limited
//! route, or per function when the limit is the function's, held by the route table.
//!
//! # Design
//!
//! A limiter lives as long as the version of the function that declares it: a table
//! rebuilt for another function's deploy takes the limiters of unchanged versions
//! over, so only a redeploy of the function itself (a new version) starts its limits
//! afresh. Clients are counted by address (IPv6 by its /64, since one host holds a
//! whole /64) or by the verified caller. Keys whose allowance has come back in full
//! are swept every [`SWEEP_EVERY`], so memory is bounded by the clients seen within
//! one replenish period, however many addresses send.
//!
//! The headers follow the IETF draft `RateLimit-Limit` / `RateLimit-Remaining` /
//! `RateLimit-Reset`, with GCRA's meaning: the limit is the burst, the remaining
//! count is what may be sent at once now, and the reset is the seconds until the
//! whole burst is available again (rounded up). A refused request also gets
//! `Retry-After`: the seconds until one request will pass (rounded up).

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;
use wisp_core::{ErrorCode, RateLimit};

use crate::EngineError;

/// How often idle clients are swept from every limiter.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Whose requests a limiter counts together.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Client {
    Ip(IpAddr),
    Caller(Box<str>),
}

impl Client {
    /// The client at `ip`: an IPv6 address counts by its /64, an IPv4-mapped one as IPv4.
    pub(crate) fn ip(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(_) => Client::Ip(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::Ip(IpAddr::V4(v4)),
                None => {
                    let masked = u128::from(v6) & !((1u128 << 64) - 1);
                    Client::Ip(IpAddr::V6(masked.into()))
                }
            },
        }
    }
}

/// A route's (or a function's) limiter.
pub(crate) struct Limiter<C: Clock = DefaultClock> {
    pub(crate) limit: RateLimit,
    inner: RateLimiter<Client, DefaultKeyedStateStore<Client>, C, StateInformationMiddleware>,
}

impl Limiter {
    pub(crate) fn new(limit: RateLimit) -> Limiter {
        Limiter::with_clock(limit, DefaultClock::default())
    }
}

/// What a check answers with: whether the request passes, and the headers' values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) limit: u32,
    pub(crate) remaining: u32,
    /// Seconds until the whole burst is available again.
    pub(crate) reset: u64,
    /// For a refused request: seconds until one will pass.
    pub(crate) retry_after: Option<u64>,
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Decision {
    /// A request let through with `remaining` more allowed at once now.
    pub(crate) fn allowed(limit: RateLimit, remaining: u32) -> Decision {
        let used = limit.burst.saturating_sub(remaining);
        Decision {
            limit: limit.burst,
            remaining,
            reset: ceil_secs(limit.rate.interval() * used),
            retry_after: None,
        }
    }

    /// A request refused, the next one passing in `wait`.
    pub(crate) fn refused(limit: RateLimit, wait: Duration) -> Decision {
        let full = wait + limit.rate.interval() * limit.burst.saturating_sub(1);
        Decision {
            limit: limit.burst,
            remaining: 0,
            reset: ceil_secs(full),
            retry_after: Some(ceil_secs(wait).max(1)),
        }
    }

    /// Adds the `RateLimit-*` headers.
    pub(crate) fn write(&self, headers: &mut HeaderMap) {
        const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
        const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
        const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
        headers.insert(LIMIT, HeaderValue::from(self.limit));
        headers.insert(REMAINING, HeaderValue::from(self.remaining));
        headers.insert(RESET, HeaderValue::from(self.reset));
    }

    /// The `rate_limited` error of a refused request.
    pub(crate) fn error(&self, limit: RateLimit) -> EngineError {
        let wait = self.retry_after.unwrap_or(1);
        let mut e = EngineError::new(
            ErrorCode::RateLimited,
            format!(
                "this route allows {} requests (a burst of {}) per client; retry in {wait} s",
                limit.rate, limit.burst
            ),
        );
        e.retry_after = Some(u32::try_from(wait).unwrap_or(u32::MAX));
        self.write(e.headers_mut());
        e
    }
}

impl<C: Clock> Limiter<C> {
    pub(crate) fn with_clock(limit: RateLimit, clock: C) -> Limiter<C> {
        let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
        // A rate's interval is at least 1 h / 1 000 000, never zero; the fallback is
        // for the type only.
        let quota = Quota::with_period(limit.rate.interval())
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst);
        let inner = RateLimiter::new(quota, DefaultKeyedStateStore::default(), clock);
        Limiter { limit, inner }
    }

    /// Counts one request of `client`.
    pub(crate) fn check(&self, client: &Client) -> Result<Decision, Decision> {
        match self.inner.check_key(client) {
            Ok(snapshot) => Ok(Decision::allowed(self.limit, snapshot.remaining_burst_capacity())),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.inner.clock().now());
                Err(Decision::refused(self.limit, wait))
            }
        }
    }

    /// Forgets clients whose allowance has come back in full.
    pub(crate) fn sweep(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }

    /// How many clients it remembers.
    #[cfg(test)]
    pub(crate) fn clients(&self) -> usize {
        self.inner.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use wisp_core::{Rate, RateLimitBy};

    fn limit(rate: &str, burst: u32) -> RateLimit {
        RateLimit {
            rate: Rate::parse(rate).unwrap(),
            burst,
            by: RateLimitBy::Ip,
        }
    }

    #[test]
    fn header_maths_round_up() {
        // 10/s: one request comes back every 100 ms.
        let l = limit("10/s", 5);
        assert_eq!(
            Decision::allowed(l, 4),
            Decision {
                limit: 5,
                remaining: 4,
                reset: 1,
                retry_after: None
            }
        );
        assert_eq!(Decision::allowed(l, 5).reset, 0);
        let d = Decision::refused(l, Duration::from_millis(30));
        assert_eq!((d.remaining, d.retry_after, d.reset), (0, Some(1), 1));
        // 1/m with a burst of 3: full again 2 min after the next one comes back.
        let l = limit("1/m", 3);
        let d = Decision::refused(l, Duration::from_secs(59) + Duration::from_millis(1));
        assert_eq!((d.retry_after, d.reset), (Some(60), 180));
        assert_eq!(Decision::allowed(l, 1).reset, 120);
        let mut headers = HeaderMap::new();
        d.write(&mut headers);
        assert_eq!(headers["ratelimit-limit"], "3");
        assert_eq!(headers["ratelimit-remaining"], "0");
        assert_eq!(headers["ratelimit-reset"], "180");
        let e = d.error(l);
        assert_eq!((e.code, e.retry_after), (ErrorCode::RateLimited, Some(60)));
    }

    #[test]
    fn a_burst_passes_then_the_rate_and_clients_are_apart() {
        let clock = FakeRelativeClock::default();
        let limiter = Limiter::with_clock(limit("2/s", 3), clock.clone());
        let a = Client::ip("127.0.0.1".parse().unwrap());
        let b = Client::ip("127.0.0.2".parse().unwrap());
        let remaining: Vec<u32> = (0..3).map(|_| limiter.check(&a).unwrap().remaining).collect();
        assert_eq!(remaining, vec![2, 1, 0]);
        let refused = limiter.check(&a).unwrap_err();
        assert_eq!(refused.retry_after, Some(1));
        assert!(limiter.check(&b).is_ok(), "another client has its own allowance");
        clock.advance(Duration::from_millis(500));
        assert_eq!(limiter.check(&a).unwrap().remaining, 0);
        assert!(limiter.check(&a).is_err());
        // Idle clients are forgotten once their allowance is whole again.
        assert_eq!(limiter.clients(), 2);
        clock.advance(Duration::from_secs(2));
        limiter.sweep();
        assert_eq!(limiter.clients(), 0);
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let one = Client::ip("2001:db8:1:2:aaaa::1".parse().unwrap());
        let two = Client::ip("2001:db8:1:2:bbbb::9".parse().unwrap());
        let other = Client::ip("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(one, two);
        assert_ne!(one, other);
        assert_eq!(
            Client::ip("::ffff:10.0.0.1".parse().unwrap()),
            Client::ip("10.0.0.1".parse().unwrap())
        );
    }
}
