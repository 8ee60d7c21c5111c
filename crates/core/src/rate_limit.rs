//! Rate limits of user routes as configurations write them — `rate_limit = "100/s"`
//! (or `/m`, `/h`), an optional `burst` and `rate_limit_by = "ip" | "key"` — and the
//! checked [`RateLimit`] the gateway enforces (GCRA, in the engine).
//!
//! The three keys sit on a route or on a function (shared by all its routes); they
//! are kept as written in [`crate::Route`] and [`crate::FunctionConfig`] so that a
//! bad value is refused by `validate` with the field's name, not by serde.

use std::fmt;
use std::time::Duration;

/// The largest count of a rate and the largest burst.
pub const MAX_RATE_COUNT: u32 = 1_000_000;

/// How often requests may come: `count` per `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Per,
}

/// The period of a [`Rate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Per {
    Second,
    Minute,
    Hour,
}

impl Per {
    pub fn duration(self) -> Duration {
        Duration::from_secs(match self {
            Per::Second => 1,
            Per::Minute => 60,
            Per::Hour => 3600,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Per::Second => "s",
            Per::Minute => "m",
            Per::Hour => "h",
        }
    }
}

impl Rate {
    /// Parses `"100/s"`, `"20/m"`, `"1000/h"`.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let bad = |why: &str| {
            format!(
                "invalid rate `{text}`: {why}; write a count per second, minute or hour, like \"100/s\", \"20/m\" or \"1000/h\""
            )
        };
        let Some((count, per)) = text.trim().split_once('/') else {
            return Err(bad("there is no `/`"));
        };
        let per = match per.trim() {
            "s" => Per::Second,
            "m" => Per::Minute,
            "h" => Per::Hour,
            other => return Err(bad(&format!("unknown period `{other}`"))),
        };
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| bad("the count is not a whole number"))?;
        if !(1..=MAX_RATE_COUNT).contains(&count) {
            return Err(bad(&format!("the count must be 1 to {MAX_RATE_COUNT}")));
        }
        Ok(Rate { count, per })
    }

    /// The time one request's allowance takes to come back (GCRA's emission interval).
    pub fn interval(self) -> Duration {
        self.per.duration() / self.count
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.per.as_str())
    }
}

/// Whose requests a limit counts together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RateLimitBy {
    /// The client's address (the TCP peer; IPv6 by its /64).
    #[default]
    Ip,
    /// The verified caller: the API key's id on `auth = "key"` routes, the JWT's
    /// `sub` on `auth = "jwt"` routes; the client's address on public routes.
    Key,
}

impl RateLimitBy {
    pub fn parse(text: &str) -> Result<RateLimitBy, String> {
        match text {
            "ip" => Ok(RateLimitBy::Ip),
            "key" => Ok(RateLimitBy::Key),
            other => Err(format!("unknown value \"{other}\"; use \"ip\" or \"key\"")),
        }
    }
}

/// A checked limit: `burst` requests at once, coming back at `rate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub rate: Rate,
    pub burst: u32,
    pub by: RateLimitBy,
}

/// Which of the three keys a [`RateLimitError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateKey {
    RateLimit,
    Burst,
    RateLimitBy,
}

impl RateKey {
    pub fn as_str(self) -> &'static str {
        match self {
            RateKey::RateLimit => "rate_limit",
            RateKey::Burst => "burst",
            RateKey::RateLimitBy => "rate_limit_by",
        }
    }
}

/// A refused rate limit setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitError {
    pub key: RateKey,
    pub message: String,
}

impl RateLimit {
    /// Checks the three keys as written; `None` when no `rate_limit` is set.
    pub fn from_parts(
        rate_limit: Option<&str>,
        burst: Option<u32>,
        by: Option<&str>,
    ) -> Result<Option<RateLimit>, RateLimitError> {
        let fail = |key, message: String| Err(RateLimitError { key, message });
        let Some(rate) = rate_limit else {
            if burst.is_some() {
                return fail(
                    RateKey::Burst,
                    "`burst` needs a `rate_limit` beside it, like `rate_limit = \"100/s\"`".into(),
                );
            }
            if by.is_some() {
                return fail(
                    RateKey::RateLimitBy,
                    "`rate_limit_by` needs a `rate_limit` beside it, like `rate_limit = \"100/s\"`".into(),
                );
            }
            return Ok(None);
        };
        let rate = match Rate::parse(rate) {
            Ok(rate) => rate,
            Err(e) => return fail(RateKey::RateLimit, e),
        };
        let burst = burst.unwrap_or(rate.count);
        if !(1..=MAX_RATE_COUNT).contains(&burst) {
            return fail(
                RateKey::Burst,
                format!("burst = {burst} is out of range: use 1 to {MAX_RATE_COUNT}"),
            );
        }
        let by = match by.map(RateLimitBy::parse).transpose() {
            Ok(by) => by.unwrap_or_default(),
            Err(e) => return fail(RateKey::RateLimitBy, e),
        };
        Ok(Some(RateLimit { rate, burst, by }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print() {
        let r = Rate::parse("100/s").unwrap();
        assert_eq!((r.count, r.per), (100, Per::Second));
        assert_eq!(r.interval(), Duration::from_millis(10));
        assert_eq!(r.to_string(), "100/s");
        assert_eq!(Rate::parse("3/h").unwrap().interval(), Duration::from_secs(1200));
        assert_eq!(Rate::parse(" 20 / m ").unwrap().to_string(), "20/m");
        for bad in ["100", "100/x", "0/s", "-1/s", "x/s", "10000001/s", "1.5/s", ""] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Rate::parse("100/x").unwrap_err(),
            "invalid rate `100/x`: unknown period `x`; write a count per second, minute or hour, like \"100/s\", \"20/m\" or \"1000/h\""
        );
    }

    #[test]
    fn limits_default_burst_and_key() {
        let l = RateLimit::from_parts(Some("5/m"), None, None).unwrap().unwrap();
        assert_eq!((l.burst, l.by), (5, RateLimitBy::Ip));
        let l = RateLimit::from_parts(Some("5/m"), Some(9), Some("key"))
            .unwrap()
            .unwrap();
        assert_eq!((l.burst, l.by), (9, RateLimitBy::Key));
        assert_eq!(RateLimit::from_parts(None, None, None), Ok(None));
        let e = RateLimit::from_parts(None, Some(3), None).unwrap_err();
        assert_eq!(e.key, RateKey::Burst);
        let e = RateLimit::from_parts(Some("5/m"), Some(0), None).unwrap_err();
        assert_eq!(e.key, RateKey::Burst);
        let e = RateLimit::from_parts(Some("5/m"), None, Some("user")).unwrap_err();
        assert_eq!(
            (e.key, e.message.as_str()),
            (
                RateKey::RateLimitBy,
                "unknown value \"user\"; use \"ip\" or \"key\""
            )
        );
    }
}
