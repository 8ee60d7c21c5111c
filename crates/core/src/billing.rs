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

/// What requests and GB-seconds cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Prices {
    /// One request (Lambda: $0.20 per million).
    pub per_request: Money,
    /// One GB-second of billed time × configured memory (Lambda x86: $0.0000166667).
    pub per_gb_second: Money,
}

impl Prices {
    /// AWS Lambda's x86 list prices.
    pub const LAMBDA: Prices = Prices {
        per_request: Money(200_000),
        per_gb_second: Money(16_666_700),
    };

    /// Prices from a price per million requests and a price per GB-second.
    pub fn new(per_million_requests: Money, per_gb_second: Money) -> Prices {
        Prices {
            per_request: Money(per_million_requests.0 / 1_000_000),
            per_gb_second,
        }
    }

    /// The cost of `requests` and `mb_ms`, rounded once, half up, to the picodollar.
    pub fn cost(&self, requests: u64, mb_ms: u64) -> Money {
        let requests = i128::from(requests) * self.per_request.0;
        let divisor = i128::from(MB_MS_PER_GB_SECOND);
        let compute = (i128::from(mb_ms) * self.per_gb_second.0 + divisor / 2).div_euclid(divisor);
        Money(requests + compute)
    }
}

impl Default for Prices {
    fn default() -> Prices {
        Prices::LAMBDA
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
