//! What invocations cost: the billed duration of a run, exact money, the price table,
//! and the cost of an amount of usage; and the UTC calendar month that free tiers,
//! quotas and budgets count in.
//!
//! Money is an integer number of picodollars (10⁻¹² $): Lambda's list prices
//! ($0.20 per million requests, $0.0000166667 per GB-second) are whole numbers of them,
//! so prices, sums and costs are exact, and a month of usage costs the same however it
//! is added up. Usage is kept as requests and megabyte-milliseconds (MB-ms: memory ×
//! billed time, both integers); a cost divides once, at the end, rounding half up to the
//! picodollar.

use chrono::{Datelike, TimeZone, Utc};
use std::time::Duration;

/// Picodollars in a dollar.
const PICO_PER_DOLLAR: i128 = 1_000_000_000_000;
/// MB-ms in a GB-second (Lambda counts 1 GB as 1024 MB).
pub const MB_MS_PER_GB_SECOND: u64 = 1024 * 1000;

/// An exact amount of US dollars.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i128);

/// A money amount that does not read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid amount `{text}`: {why}; write dollars as a decimal, e.g. 0.20 or 0.0000166667 (at most 12 decimals)"
)]
pub struct MoneyError {
    pub text: String,
    pub why: &'static str,
}

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_picodollars(pico: i128) -> Money {
        Money(pico)
    }

    pub const fn picodollars(self) -> i128 {
        self.0
    }

    /// Reads `0.20`, `$0.0000166667`, `12`: dollars, at most 12 decimals, not negative.
    pub fn parse(text: &str) -> Result<Money, MoneyError> {
        let bad = |why| MoneyError {
            text: text.to_owned(),
            why,
        };
        let digits = text.trim().strip_prefix('$').unwrap_or(text.trim());
        if digits.is_empty() {
            return Err(bad("it is empty"));
        }
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && fraction.is_empty() {
            return Err(bad("it has no digits"));
        }
        if !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(bad("only digits and one decimal point are allowed"));
        }
        if fraction.len() > 12 {
            return Err(bad("it has more than 12 decimals"));
        }
        if whole.len() > 15 {
            return Err(bad("it is too large"));
        }
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad("it is too large"))?
        };
        let mut pico: i128 = 0;
        for (i, b) in fraction.bytes().enumerate() {
            pico += i128::from(b - b'0') * 10i128.pow(11 - i as u32);
        }
        Ok(Money(whole * PICO_PER_DOLLAR + pico))
    }

    /// Rounded half up to whole cents.
    pub fn cents(self) -> i128 {
        let per_cent = PICO_PER_DOLLAR / 100;
        (self.0 + per_cent / 2).div_euclid(per_cent)
    }
}

impl std::ops::Add for Money {
    type Output = Money;
    fn add(self, other: Money) -> Money {
        Money(self.0 + other.0)
    }
}

impl std::ops::Sub for Money {
    type Output = Money;
    fn sub(self, other: Money) -> Money {
        Money(self.0 - other.0)
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, |a, b| a + b)
    }
}

/// `$0.20`, `$0.0000166667`, `-$1.50`: at least two decimals, no trailing zeros past them.
impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let per = PICO_PER_DOLLAR.unsigned_abs();
        let fraction = format!("{:012}", abs % per);
        let trimmed = fraction.trim_end_matches('0');
        let shown = if trimmed.len() < 2 {
            &fraction[..2]
        } else {
            trimmed
        };
        write!(f, "{sign}${}.{shown}", abs / per)
    }
}

impl serde::Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.to_string().trim_start_matches('$'))
    }
}

/// Reads a string of dollars (`"10.50"`) or a whole number of them (`10`); a JSON
/// fraction (`10.5`) is refused, because a float is not exact.
impl<'de> serde::Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        struct Dollars;
        impl serde::de::Visitor<'_> for Dollars {
            type Value = Money;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an amount of dollars as a string, e.g. \"10.50\"")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Money, E> {
                Money::parse(text).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Money, E> {
                Money::parse(&n.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Money, E> {
                Money::parse(&n.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Money, E> {
                Err(E::custom(format!(
                    "invalid amount {n}: write an amount with decimals as a string, e.g. \"{n}\", so it stays exact"
                )))
            }
        }
        d.deserialize_any(Dollars)
    }
}

/// The billed duration of a run, as Lambda bills: rounded up to the next millisecond,
/// and at least one.
pub fn billed_ms(run: Duration) -> u64 {
    let nanos = run.as_nanos();
    let ms = nanos.div_ceil(1_000_000);
    u64::try_from(ms.max(1)).unwrap_or(u64::MAX)
}

/// Memory × billed time, in MB-ms.
pub fn mb_ms(memory_mb: u32, billed_ms: u64) -> u64 {
    u64::from(memory_mb).saturating_mul(billed_ms)
}

/// GB-seconds of `mb_ms`, as text with up to 6 decimals (`0.128`, `400000`).
pub fn gb_seconds_text(mb_ms: u64) -> String {
    let micro = (u128::from(mb_ms) * 1_000_000 + u128::from(MB_MS_PER_GB_SECOND) / 2)
        / u128::from(MB_MS_PER_GB_SECOND);
    let text = format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// What requests and GB-seconds cost: on demand, and on reserved capacity
/// (`min_instances`, as Lambda's provisioned concurrency).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Prices {
    /// One request (Lambda: $0.20 per million).
    pub per_request: Money,
    /// One GB-second of billed time × configured memory, on demand (Lambda x86:
    /// $0.0000166667).
    pub per_gb_second: Money,
    /// One GB-second of reserved capacity held (`min_instances` × memory × time
    /// deployed), used or not (Lambda's provisioned concurrency: $0.0000041667).
    pub per_reserved_gb_second: Money,
    /// One GB-second of billed time served by reserved capacity (Lambda's provisioned
    /// duration: $0.0000097222).
    pub per_reserved_duration_gb_second: Money,
}

/// Usage in the units prices apply to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Used {
    pub requests: u64,
    /// Memory × billed time of every run, in MB-ms.
    pub mb_ms: u64,
    /// The part of `mb_ms` served by reserved capacity.
    pub reserved_mb_ms: u64,
    /// Reserved capacity held, in MB-ms.
    pub capacity_mb_ms: u64,
}

impl Used {
    /// Memory × billed time of runs on demand.
    pub fn on_demand_mb_ms(&self) -> u64 {
        self.mb_ms.saturating_sub(self.reserved_mb_ms)
    }
}

impl Prices {
    /// AWS Lambda's x86 list prices.
    pub const LAMBDA: Prices = Prices {
        per_request: Money(200_000),
        per_gb_second: Money(16_666_700),
        per_reserved_gb_second: Money(4_166_700),
        per_reserved_duration_gb_second: Money(9_722_200),
    };

    /// Prices from a price per million requests and a price per GB-second on demand,
    /// with Lambda's reserved prices.
    pub fn new(per_million_requests: Money, per_gb_second: Money) -> Prices {
        Prices {
            per_request: Money(per_million_requests.0 / 1_000_000),
            per_gb_second,
            ..Prices::LAMBDA
        }
    }

    /// The cost of `requests` and `mb_ms` on demand, rounded once, half up, to the
    /// picodollar.
    pub fn cost(&self, requests: u64, mb_ms: u64) -> Money {
        self.cost_of(Used {
            requests,
            mb_ms,
            ..Used::default()
        })
    }

    /// The cost of `used`: requests, runs on demand and on reserved capacity, and the
    /// capacity held; the GB-second terms summed exactly and divided once, half up.
    pub fn cost_of(&self, used: Used) -> Money {
        let requests = i128::from(used.requests) * self.per_request.0;
        let scaled = i128::from(used.on_demand_mb_ms()) * self.per_gb_second.0
            + i128::from(used.reserved_mb_ms) * self.per_reserved_duration_gb_second.0
            + i128::from(used.capacity_mb_ms) * self.per_reserved_gb_second.0;
        let divisor = i128::from(MB_MS_PER_GB_SECOND);
        Money(requests + (scaled + divisor / 2).div_euclid(divisor))
    }
}

impl Default for Prices {
    fn default() -> Prices {
        Prices::LAMBDA
    }
}

/// A namespace's own prices, each over the server's when set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PriceSettings {
    pub per_million_requests: Option<Money>,
    pub per_gb_second: Option<Money>,
    pub per_reserved_gb_second: Option<Money>,
    pub per_reserved_duration_gb_second: Option<Money>,
}

/// What a namespace uses free each month before it pays, each over the server's
/// default when set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FreeTier {
    pub requests: Option<u64>,
    pub gb_seconds: Option<u64>,
}

/// A namespace's limits per calendar month (UTC); `None`: no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quota {
    /// Invocations started.
    pub requests: Option<u64>,
    /// GB-seconds of billed time × memory.
    pub gb_seconds: Option<u64>,
    /// Spend: the month's cost past the free tier.
    pub budget: Option<Money>,
    /// A soft threshold, in percent of each limit, past which a warning is recorded
    /// once a month.
    pub warn_percent: Option<u8>,
    /// Bytes its buckets may hold together (not monthly: what is stored now); `None`:
    /// the server's `--namespace-storage-quota`.
    pub storage_bytes: Option<u64>,
}

/// The most a quota's `requests` may be.
pub const MAX_QUOTA_REQUESTS: u64 = 1_000_000_000_000;
/// The most a quota's or a free tier's `gb_seconds` may be.
pub const MAX_QUOTA_GB_SECONDS: u64 = 1_000_000_000_000;

impl Quota {
    /// Checks the limits are in bounds; the error says which is not and why.
    pub fn check(&self) -> Result<(), String> {
        if let Some(n) = self.requests
            && n > MAX_QUOTA_REQUESTS
        {
            return Err(format!(
                "quota.requests: {n} is out of bounds; use 0 to {MAX_QUOTA_REQUESTS}, or null for no limit"
            ));
        }
        if let Some(n) = self.gb_seconds
            && n > MAX_QUOTA_GB_SECONDS
        {
            return Err(format!(
                "quota.gb_seconds: {n} is out of bounds; use 0 to {MAX_QUOTA_GB_SECONDS}, or null for no limit"
            ));
        }
        if let Some(p) = self.warn_percent
            && !(1..=99).contains(&p)
        {
            return Err(format!(
                "quota.warn_percent: {p} is out of bounds; use 1 to 99, or null for no warning"
            ));
        }
        Ok(())
    }
}

impl FreeTier {
    /// Checks the amounts are in bounds.
    pub fn check(&self) -> Result<(), String> {
        for (name, n) in [("requests", self.requests), ("gb_seconds", self.gb_seconds)] {
            if let Some(n) = n
                && n > MAX_QUOTA_GB_SECONDS
            {
                return Err(format!(
                    "free_tier.{name}: {n} is out of bounds; use 0 to {MAX_QUOTA_GB_SECONDS}, or null for the server's default"
                ));
            }
        }
        Ok(())
    }
}

/// A limit of a [`Quota`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    Requests,
    GbSeconds,
    Budget,
}

impl Limit {
    pub const ALL: [Limit; 3] = [Limit::Requests, Limit::GbSeconds, Limit::Budget];

    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Requests => "requests",
            Limit::GbSeconds => "gb_seconds",
            Limit::Budget => "budget",
        }
    }
}

/// What a namespace pays and may use: prices, free tier and quota in force (its own
/// settings over the server's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    pub prices: Prices,
    pub free_requests: u64,
    pub free_gb_seconds: u64,
    pub quota: Quota,
}

impl Plan {
    /// The server's plan: its prices and free tier, no quota.
    pub const fn new(prices: Prices, free_requests: u64, free_gb_seconds: u64) -> Plan {
        Plan {
            prices,
            free_requests,
            free_gb_seconds,
            quota: Quota {
                requests: None,
                gb_seconds: None,
                budget: None,
                warn_percent: None,
                storage_bytes: None,
            },
        }
    }

    /// This plan with a namespace's own settings over it.
    pub fn with(&self, prices: &PriceSettings, free: &FreeTier, quota: &Quota) -> Plan {
        let server = self.prices;
        Plan {
            prices: Prices {
                per_request: prices
                    .per_million_requests
                    .map_or(server.per_request, |m| Money(m.0 / 1_000_000)),
                per_gb_second: prices.per_gb_second.unwrap_or(server.per_gb_second),
                per_reserved_gb_second: prices
                    .per_reserved_gb_second
                    .unwrap_or(server.per_reserved_gb_second),
                per_reserved_duration_gb_second: prices
                    .per_reserved_duration_gb_second
                    .unwrap_or(server.per_reserved_duration_gb_second),
            },
            free_requests: free.requests.unwrap_or(self.free_requests),
            free_gb_seconds: free.gb_seconds.unwrap_or(self.free_gb_seconds),
            quota: *quota,
        }
    }

    /// What a month's usage costs past the free tier. The free tier covers requests and
    /// on-demand GB-seconds, not reserved capacity or runs on it (as Lambda's).
    pub fn cost(&self, used: Used) -> Money {
        let free_mb_ms = self.free_gb_seconds.saturating_mul(MB_MS_PER_GB_SECOND);
        let on_demand = used.on_demand_mb_ms().saturating_sub(free_mb_ms);
        self.prices.cost_of(Used {
            requests: used.requests.saturating_sub(self.free_requests),
            mb_ms: on_demand + used.reserved_mb_ms,
            reserved_mb_ms: used.reserved_mb_ms,
            capacity_mb_ms: used.capacity_mb_ms,
        })
    }

    /// How much of `limit` the usage has taken, in per mille (1000: all of it), or
    /// `None` when the quota sets no such limit.
    pub fn taken(&self, limit: Limit, used: Used) -> Option<u64> {
        let per_mille = |used: u128, limit: u128| -> u64 {
            if limit == 0 {
                return 1000;
            }
            u64::try_from((used * 1000 / limit).min(1_000_000)).unwrap_or(1_000_000)
        };
        match limit {
            Limit::Requests => self
                .quota
                .requests
                .map(|n| per_mille(u128::from(used.requests), u128::from(n))),
            Limit::GbSeconds => self.quota.gb_seconds.map(|n| {
                per_mille(
                    u128::from(used.mb_ms),
                    u128::from(n) * u128::from(MB_MS_PER_GB_SECOND),
                )
            }),
            // A budget of 0 allows the free tier and nothing past it.
            Limit::Budget => self.quota.budget.map(|budget| {
                let cost = self.cost(used).0.max(0).unsigned_abs();
                match budget.0.max(0).unsigned_abs() {
                    0 if cost == 0 => 0,
                    budget => per_mille(cost, budget),
                }
            }),
        }
    }

    /// The first limit the usage has reached, if any: work stops at admission.
    pub fn exceeded(&self, used: Used) -> Option<Limit> {
        Limit::ALL
            .into_iter()
            .find(|&limit| self.taken(limit, used).is_some_and(|t| t >= 1000))
    }

    /// Whether the quota sets any limit at all.
    pub fn limits_anything(&self) -> bool {
        self.quota.requests.is_some() || self.quota.gb_seconds.is_some() || self.quota.budget.is_some()
    }
}

/// The UTC calendar month holding `at` (milliseconds since the epoch): its first
/// millisecond and the first millisecond of the next month.
pub fn month_of(at: i64) -> (i64, i64) {
    let Some(time) = Utc.timestamp_millis_opt(at).single() else {
        return (at, at);
    };
    let start = |year: i32, month: u32| {
        Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
            .single()
            .map_or(at, |t| t.timestamp_millis())
    };
    let (year, month) = (time.year(), time.month());
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    (start(year, month), start(next_year, next_month))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_billed_by_the_started_millisecond() {
        assert_eq!(billed_ms(Duration::ZERO), 1);
        assert_eq!(billed_ms(Duration::from_micros(1)), 1);
        assert_eq!(billed_ms(Duration::from_millis(5)), 5);
        assert_eq!(billed_ms(Duration::from_micros(5_001)), 6);
        assert_eq!(billed_ms(Duration::from_secs(900)), 900_000);
    }

    #[test]
    fn money_reads_and_writes_dollars_exactly() {
        assert_eq!(Money::parse("0.20").unwrap(), Money(200_000_000_000));
        assert_eq!(Money::parse("$0.0000166667").unwrap(), Money(16_666_700));
        assert_eq!(Money::parse("12").unwrap().to_string(), "$12.00");
        assert_eq!(Money::parse(".5").unwrap().to_string(), "$0.50");
        assert_eq!(Money(16_666_700).to_string(), "$0.0000166667");
        assert_eq!((Money::ZERO - Money::parse("1.5").unwrap()).to_string(), "-$1.50");
        for bad in [
            "",
            "$",
            ".",
            "-1",
            "1e3",
            "0.0000000000001",
            "1.2.3",
            "abc",
            "9999999999999999",
        ] {
            assert!(Money::parse(bad).is_err(), "{bad}");
        }
        let err = Money::parse("1,5").unwrap_err().to_string();
        assert!(err.contains("only digits and one decimal point"), "{err}");
    }

    #[test]
    fn lambdas_prices_cost_what_lambda_charges() {
        let prices = Prices::default();
        assert_eq!(
            prices,
            Prices::new(
                Money::parse("0.20").unwrap(),
                Money::parse("0.0000166667").unwrap()
            )
        );
        // A million requests of 128 MB for 100 ms: $0.20 + 12,500 GB-s × $0.0000166667.
        let mb_ms = mb_ms(128, 100) * 1_000_000;
        assert_eq!(gb_seconds_text(mb_ms), "12500");
        let cost = prices.cost(1_000_000, mb_ms);
        assert_eq!(cost.to_string(), "$0.40833375");
        assert_eq!(cost.cents(), 41);
    }

    #[test]
    fn ten_million_invocations_cost_the_same_summed_or_at_once() {
        let prices = Prices::default();
        let each = mb_ms(1536, 73);
        let total: u64 = (0..10_000_000u64).map(|_| each).sum();
        let at_once = prices.cost(10_000_000, total);
        // 10⁷ × 1536 MB × 73 ms = 1,095,000 GB-s → $18.25003650; + $2.00 of requests.
        assert_eq!(gb_seconds_text(total), "1095000");
        assert_eq!(at_once.to_string(), "$20.2500365");
        assert_eq!(at_once.cents(), 2025);
    }

    #[test]
    fn reserved_capacity_and_its_runs_cost_lambdas_provisioned_prices() {
        let prices = Prices::LAMBDA;
        // 2 instances of 1 GB held an hour: 7,200 GB-s × $0.0000041667 = $0.03000024.
        let held = Used {
            capacity_mb_ms: 2 * 1024 * 3_600_000,
            ..Used::default()
        };
        assert_eq!(prices.cost_of(held).to_string(), "$0.03000024");
        // A million 100 ms runs at 1 GB, all on that capacity: 100,000 GB-s at
        // $0.0000097222, plus $0.20 of requests.
        let runs = Used {
            requests: 1_000_000,
            mb_ms: 1024 * 100 * 1_000_000,
            reserved_mb_ms: 1024 * 100 * 1_000_000,
            capacity_mb_ms: 0,
        };
        assert_eq!(prices.cost_of(runs).to_string(), "$1.17222");
        // The free tier covers the requests, not the runs on reserved capacity.
        let plan = Plan::new(prices, 1_000_000, 400_000);
        assert_eq!(plan.cost(runs).to_string(), "$0.97222");
        assert_eq!(plan.cost(held), prices.cost_of(held));
    }

    #[test]
    fn months_are_utc_calendar_months() {
        // 2026-12-31T23:59:59.999Z and the month after it.
        let last = 1_798_761_599_999;
        let (start, end) = month_of(last);
        assert_eq!(start, 1_796_083_200_000); // 2026-12-01
        assert_eq!(end, 1_798_761_600_000); // 2027-01-01
        assert_eq!(month_of(end).0, end);
        // February of a leap year.
        let (feb, mar) = month_of(1_709_251_200_000 - 1); // 2024-02-29T23:59:59.999Z
        assert_eq!(mar - feb, 29 * 86_400_000);
    }
}
