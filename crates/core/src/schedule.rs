//! Schedules: reading a [`Schedule`]'s expression ([`ParsedSchedule::parse`]) and the
//! slot arithmetic a scheduler needs — the first slot after an instant
//! ([`ParsedSchedule::next_after`]) and what to run after a wake or a restart
//! ([`ParsedSchedule::plan`]).
//!
//! Everything here is pure: no I/O and no clock. Every instant is an argument in Unix
//! milliseconds ([`UnixMillis`](crate::wall::UnixMillis)), so the scheduler in the engine owns time and the
//! tests below use fixed instants.
//!
//! # Expressions
//!
//! - **Cron**, read by croner: 5 fields (`minute hour day-of-month month day-of-week`)
//!   or 6 with `second` first. Fields take `*`, values, ranges `a-b`, lists `a,b`, steps
//!   `*/n` and `a-b/n`; months `JAN`-`DEC`; days of the week `0`-`7` (0 and 7 are Sunday)
//!   or `SUN`-`SAT`; `L` (last day of the month, `5L` last Friday), `W` (`15W`, nearest
//!   weekday), `#` (`5#3`, third Friday), `?` (as `*`), and `@hourly`, `@daily`,
//!   `@weekly`, `@monthly`, `@yearly`. Names are case-insensitive. When both
//!   day-of-month and day-of-week are restricted, a day matching either runs (Vixie
//!   cron), unless day-of-week starts with `+` (both must match). There is no year
//!   field, and AWS's `cron(…)` form (minutes first, a year last) is refused with a
//!   rewrite hint.
//! - **Time zones**: a cron expression is read on the wall clock of the schedule's
//!   `timezone` (an IANA name, UTC when absent), daylight saving included. A time a
//!   spring-forward skips runs at the first instant after the gap (`30 2 * * *` in
//!   Europe/Berlin runs at 03:00 on that day); in an hour a fall-back repeats, a fixed
//!   time (`30 2 * * *`) runs once, at its first instant, and an interval
//!   (`*/15 * * * *`) runs in both.
//! - **Rate**, as EventBridge writes it: `rate(VALUE UNIT)` with a unit of `second`,
//!   `minute`, `hour` or `day`. Singular and plural are both accepted whatever the value
//!   (AWS insists on `1 minute` / `5 minutes`; a manifest written for AWS reads the same
//!   here). Seconds are allowed because 6-field cron allows them anyway. The period is
//!   1 second to [`Limits::MAX_RATE_PERIOD`]. Slots are the multiples of the period since
//!   the Unix epoch, so every node and every restart agrees on them (`rate(1 hour)` runs
//!   on the hour, `rate(1 day)` at 00:00 UTC); a `timezone` would change nothing and is
//!   refused rather than silently ignored.
//!
//! # Design
//!
//! Core otherwise depends on nothing heavy (DESIGN.md). croner, chrono and chrono-tz
//! are pure computation — chrono-tz compiles the IANA database into static tables and
//! reads no system files — and parsing here lets [`crate::FunctionConfig::validate`]
//! refuse a bad schedule at deploy, for the manifest and the API alike, instead of the
//! engine finding out at run time.
//!
//! A scheduler persists the last slot it dealt with and calls [`ParsedSchedule::plan`]
//! at start-up and at every wake. The plan never returns a slot at or before the last
//! one, so no slot runs twice; the newest slot at or before `now` runs (it is merely
//! late), and older missed slots are skipped and reported, or with `catch_up` run too
//! (the most recent [`Limits::MAX_CATCH_UP_SLOTS`], oldest first, the older rest
//! skipped). Skipped slots always come before fired ones, so a store that only lets
//! the last slot move forward can record the skip first and then each fired slot.
//!
//! Counting skipped slots is arithmetic for rates. For cron it walks croner slot by
//! slot (about half a microsecond each in release builds), so after long downtime of a
//! dense schedule — `* * * * * *` misses 31 million slots a year — the walk stops at
//! [`COUNT_LIMIT`] and [`Skipped::exact`] says the count is a lower bound; the first and
//! last skipped slots are always exact.

use crate::limits::Limits;
use crate::trigger::Schedule;
use crate::wall::UnixMillis;
use chrono::DateTime;
use chrono_tz::Tz;
use croner::Cron;
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};

/// How many missed cron slots [`ParsedSchedule::plan`] counts one by one before it
/// reports a lower bound.
pub const COUNT_LIMIT: u64 = 10_000;

/// What a schedule accepts, for error messages.
const ACCEPTED: &str = "write a cron expression such as `0 9 * * *` (5 fields, or 6 with seconds first) \
     or a rate such as `rate(5 minutes)`";

/// A [`Schedule`] whose expression and time zone have been read: it answers which
/// instants are its slots.
#[derive(Clone, Debug)]
pub struct ParsedSchedule {
    expression: String,
    rule: Rule,
}

#[derive(Clone, Debug)]
enum Rule {
    Cron { cron: Box<Cron>, tz: Tz },
    Rate { period: i64, value: u64, unit: Unit },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    Second,
    Minute,
    Hour,
    Day,
}

impl Unit {
    fn parse(text: &str) -> Option<Unit> {
        match text.to_ascii_lowercase().as_str() {
            "second" | "seconds" => Some(Unit::Second),
            "minute" | "minutes" => Some(Unit::Minute),
            "hour" | "hours" => Some(Unit::Hour),
            "day" | "days" => Some(Unit::Day),
            _ => None,
        }
    }

    fn millis(self) -> u64 {
        match self {
            Unit::Second => 1_000,
            Unit::Minute => 60_000,
            Unit::Hour => 3_600_000,
            Unit::Day => 86_400_000,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Second => "second",
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::Day => "day",
        }
    }
}

/// What a scheduler does now: run `fire`, record `skipped`, persist `watermark`, and
/// wake at `next`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Slots to run now, oldest first: the slot now due (the newest at or before
    /// `now`) and, with `catch_up`, the missed slots before it. Each is later than the
    /// `last_slot` the plan was made from.
    pub fire: Vec<UnixMillis>,
    /// Missed slots that will not run, all before the first of `fire`.
    pub skipped: Option<Skipped>,
    /// The first slot after both `now` and `last_slot`; `None` when the schedule has no
    /// further slot.
    pub next: Option<UnixMillis>,
    /// What to persist and pass back as `last_slot` next time: the newest slot in
    /// `fire`; `last_slot` when nothing is due; `now` for a new schedule, so that
    /// downtime before its first slot is noticed too.
    pub watermark: UnixMillis,
}

/// A run of consecutive missed slots that a plan skips.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The oldest skipped slot.
    pub first: UnixMillis,
    /// The newest skipped slot.
    pub last: UnixMillis,
    /// How many slots were skipped, `first` and `last` included.
    pub count: u64,
    /// False when `count` is a lower bound: a cron walk stops counting at
    /// [`COUNT_LIMIT`]. Rate counts are always exact.
    pub exact: bool,
}

/// Why a [`Schedule`] cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The expression is neither a valid cron expression nor a valid `rate(…)`.
    #[error("invalid schedule `{expression}`: {reason}")]
    Expression { expression: String, reason: String },
    /// The `timezone` is not an IANA time zone name.
    #[error(
        "unknown time zone `{timezone}` in schedule `{expression}`: use an IANA name such as \
         `Europe/Berlin`, `America/New_York` or `UTC`{}",
        did_you_mean(.suggestion)
    )]
    UnknownTimeZone {
        expression: String,
        timezone: String,
        suggestion: Option<&'static str>,
    },
    /// A `rate(…)` with a `timezone`.
    #[error(
        "schedule `{expression}` has time zone `{timezone}`, but a rate runs at multiples of its period \
         from the Unix epoch in every zone: remove `timezone`, or write a cron expression such as \
         `0 0 * * *` to run at a local time"
    )]
    TimeZoneWithRate { expression: String, timezone: String },
}

fn did_you_mean(suggestion: &Option<&'static str>) -> String {
    suggestion
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

impl ScheduleError {
    /// Whether the error is about the schedule's `timezone` rather than its expression.
    pub fn is_about_time_zone(&self) -> bool {
        !matches!(self, ScheduleError::Expression { .. })
    }
}

/// A cron pattern is refused when croner finds no slot after this instant,
/// 2000-01-01 UTC: it matches no date (February 30th).
const NEVER_CHECK_FROM: UnixMillis = 946_684_800_000;

impl ParsedSchedule {
    /// Reads `schedule.expression` and `schedule.timezone`. `catch_up` is the
    /// scheduler's business, passed to [`ParsedSchedule::plan`].
    pub fn parse(schedule: &Schedule) -> Result<ParsedSchedule, ScheduleError> {
        let expression = schedule.expression.trim();
        let invalid = |reason: String| ScheduleError::Expression {
            expression: schedule.expression.clone(),
            reason,
        };
        if expression.is_empty() {
            return Err(invalid(format!("it is empty; {ACCEPTED}")));
        }
        let rule = if let Some(inner) = strip_call(expression, "rate") {
            let rule = parse_rate(inner).map_err(invalid)?;
            if let Some(timezone) = &schedule.timezone {
                return Err(ScheduleError::TimeZoneWithRate {
                    expression: schedule.expression.clone(),
                    timezone: timezone.clone(),
                });
            }
            rule
        } else {
            let cron = parse_cron(expression).map_err(invalid)?;
            let tz = match &schedule.timezone {
                None => Tz::UTC,
                Some(name) => name.parse::<Tz>().map_err(|_| ScheduleError::UnknownTimeZone {
                    expression: schedule.expression.clone(),
                    timezone: name.clone(),
                    suggestion: closest_time_zone(name),
                })?,
            };
            Rule::Cron {
                cron: Box::new(cron),
                tz,
            }
        };
        let parsed = ParsedSchedule {
            expression: schedule.expression.clone(),
            rule,
        };
        if matches!(parsed.rule, Rule::Cron { .. }) && parsed.next_after(NEVER_CHECK_FROM).is_none() {
            return Err(invalid(
                "it matches no date (like `0 0 30 2 *`, February 30th); check the day-of-month and month fields"
                    .to_string(),
            ));
        }
        Ok(parsed)
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first slot strictly after `t`; `None` if there is none (or it lies beyond
    /// the year 5000, where croner stops looking).
    pub fn next_after(&self, t: UnixMillis) -> Option<UnixMillis> {
        match &self.rule {
            Rule::Rate { period, .. } => t.div_euclid(*period).checked_add(1)?.checked_mul(*period),
            Rule::Cron { cron, tz } => {
                // Slots are whole seconds: a slot in t's own second is at or before t,
                // and an exclusive search from that second skips exactly it.
                let from = at_second(t, tz)?;
                let slot = cron.find_next_occurrence(&from, false).ok()?;
                Some(slot.timestamp_millis())
            }
        }
    }

    /// The newest slot at or before `t`: the slot that is due at `t`.
    pub fn last_at_or_before(&self, t: UnixMillis) -> Option<UnixMillis> {
        match &self.rule {
            Rule::Rate { period, .. } => t.div_euclid(*period).checked_mul(*period),
            Rule::Cron { cron, tz } => {
                let from = at_second(t, tz)?;
                let slot = cron.find_previous_occurrence(&from, true).ok()?;
                Some(slot.timestamp_millis())
            }
        }
    }

    /// The newest slot strictly before `t`.
    fn last_before(&self, t: UnixMillis) -> Option<UnixMillis> {
        match &self.rule {
            Rule::Rate { period, .. } => t.checked_sub(1)?.div_euclid(*period).checked_mul(*period),
            // A slot in t's own second but before it is at or before t's second.
            Rule::Cron { .. } if t.rem_euclid(1000) != 0 => self.last_at_or_before(t),
            Rule::Cron { cron, tz } => {
                let from = at_second(t, tz)?;
                let slot = cron.find_previous_occurrence(&from, false).ok()?;
                Some(slot.timestamp_millis())
            }
        }
    }

    /// What to do at `now`, given the last slot already dealt with (`None` for a
    /// schedule never seen before). See the module's design notes; in short:
    ///
    /// - a new schedule has missed nothing: nothing fires, not even a slot exactly at
    ///   `now`, and `watermark` is `now`;
    /// - if `last_slot` is at or after `now` (a clock stepped back) or no slot has come
    ///   since, nothing fires and `next` is after `last_slot`, never at it;
    /// - otherwise the newest slot at or before `now` fires; the slots between
    ///   `last_slot` and it were missed: skipped, or with `catch_up` the most recent
    ///   [`Limits::MAX_CATCH_UP_SLOTS`] of them fire too (oldest first) and only older
    ///   ones are skipped.
    pub fn plan(&self, last_slot: Option<UnixMillis>, now: UnixMillis, catch_up: bool) -> Plan {
        let Some(last) = last_slot else {
            return Plan {
                fire: Vec::new(),
                skipped: None,
                next: self.next_after(now),
                watermark: now,
            };
        };
        let Some(current) = self.last_at_or_before(now).filter(|slot| *slot > last) else {
            return Plan {
                fire: Vec::new(),
                skipped: None,
                next: self.next_after(now.max(last)),
                watermark: last,
            };
        };
        // Newest first while collecting.
        let mut fire = vec![current];
        if catch_up {
            let cap = Limits::MAX_CATCH_UP_SLOTS as usize;
            while fire.len() <= cap {
                match fire.last().and_then(|oldest| self.last_before(*oldest)) {
                    Some(slot) if slot > last => fire.push(slot),
                    _ => break,
                }
            }
            fire.reverse();
        }
        let oldest_fired = fire.first().copied().unwrap_or(current);
        let skipped = self
            .last_before(oldest_fired)
            .filter(|newest| *newest > last)
            .and_then(|newest| self.skipped(last, newest));
        Plan {
            fire,
            skipped,
            next: self.next_after(now),
            watermark: current,
        }
    }

    /// The slots after `last` up to and including `newest` (itself a slot).
    fn skipped(&self, last: UnixMillis, newest: UnixMillis) -> Option<Skipped> {
        let first = self.next_after(last)?.min(newest);
        if let Rule::Rate { period, .. } = &self.rule {
            return Some(Skipped {
                first,
                last: newest,
                count: u64::try_from((newest - first) / period).ok()? + 1,
                exact: true,
            });
        }
        let (mut slot, mut count, mut exact) = (first, 1u64, true);
        while slot < newest {
            if count >= COUNT_LIMIT {
                exact = false;
                break;
            }
            match self.next_after(slot) {
                Some(next) if next <= newest => {
                    slot = next;
                    count += 1;
                }
                _ => break,
            }
        }
        Some(Skipped {
            first,
            last: newest,
            count,
            exact,
        })
    }

    /// The schedule in English, for the CLI and the dashboard: croner's description
    /// of a cron expression with its time zone (`At 09:00 (Europe/Berlin)`), or
    /// `Every 5 minutes`.
    pub fn describe(&self) -> String {
        match &self.rule {
            Rule::Cron { cron, tz } => {
                format!("{} ({})", cron.describe().trim_end_matches('.'), tz.name())
            }
            Rule::Rate { value: 1, unit, .. } => format!("Every {}", unit.name()),
            Rule::Rate { value, unit, .. } => format!("Every {value} {}s", unit.name()),
        }
    }
}

/// `t`'s whole second in `tz`.
fn at_second(t: UnixMillis, tz: &Tz) -> Option<DateTime<Tz>> {
    DateTime::from_timestamp(t.div_euclid(1000), 0).map(|utc| utc.with_timezone(tz))
}

/// The text between `name(` and `)`, `name` in any case.
fn strip_call<'a>(expression: &'a str, name: &str) -> Option<&'a str> {
    let open = expression.get(..name.len() + 1)?;
    if !open[..name.len()].eq_ignore_ascii_case(name) || !open.ends_with('(') {
        return None;
    }
    expression[name.len() + 1..].strip_suffix(')')
}

fn parse_rate(inner: &str) -> Result<Rule, String> {
    const FORM: &str = "write `rate(VALUE UNIT)` with a whole VALUE of at least 1 and a UNIT of \
                        second(s), minute(s), hour(s) or day(s), like `rate(5 minutes)`";
    let words: Vec<&str> = inner.split_whitespace().collect();
    let [value, unit] = words[..] else {
        return Err(format!("a rate has a value and a unit; {FORM}"));
    };
    let value = match value.parse::<u64>() {
        Ok(0) => return Err(format!("the value must be at least 1; {FORM}")),
        Ok(v) => v,
        Err(_) => return Err(format!("`{value}` is not a whole number; {FORM}")),
    };
    let unit = Unit::parse(unit).ok_or_else(|| format!("unknown unit `{unit}`; {FORM}"))?;
    let max = Limits::MAX_RATE_PERIOD.as_millis();
    match value.checked_mul(unit.millis()) {
        Some(ms) if u128::from(ms) <= max => Ok(Rule::Rate {
            period: i64::try_from(ms).map_err(|e| e.to_string())?,
            value,
            unit,
        }),
        _ => Err(format!(
            "the period is longer than {} days; write a cron expression for longer cycles",
            Limits::MAX_RATE_PERIOD.as_secs() / 86_400
        )),
    }
}

/// One cron field, for error messages.
struct Field {
    name: &'static str,
    accepts: &'static str,
}

const FIELDS: [Field; 6] = [
    Field {
        name: "second",
        accepts: "seconds are 0-59",
    },
    Field {
        name: "minute",
        accepts: "minutes are 0-59",
    },
    Field {
        name: "hour",
        accepts: "hours are 0-23",
    },
    Field {
        name: "day-of-month",
        accepts: "days of the month are 1-31, `L` (the last), `15W` (the weekday nearest the 15th) or `?`",
    },
    Field {
        name: "month",
        accepts: "months are 1-12 or JAN-DEC",
    },
    Field {
        name: "day-of-week",
        accepts: "days of the week are 0-7 or SUN-SAT (0 and 7 are Sunday), `5L` (the last Friday), \
                  `5#3` (the third Friday) or `?`",
    },
];

fn cron_parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

fn parse_cron(expression: &str) -> Result<Cron, String> {
    if let Some(inner) = strip_call(expression, "cron") {
        return Err(format!(
            "AWS's `cron(…)` form is not used here: {}",
            aws_hint(inner)
        ));
    }
    let parser = cron_parser();
    if expression.starts_with('@') {
        return parser.parse(expression).map_err(|_| {
            format!(
                "unknown nickname `{expression}`: use `@hourly`, `@daily`, `@weekly`, `@monthly` or `@yearly`"
            )
        });
    }
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let looks_aws = fields.len() == 6 && (fields[2] == "?" || fields[4] == "?");
    if !(5..=6).contains(&fields.len()) {
        let mut reason = format!(
            "a cron expression has 5 fields (minute hour day-of-month month day-of-week) or 6 (second first), not {}",
            fields.len()
        );
        if fields.len() == 7 {
            reason.push_str("; there is no year field");
        }
        return Err(reason);
    }
    let error = match parser.parse(expression) {
        Ok(cron) => return Ok(cron),
        Err(_) if looks_aws => {
            return Err(format!(
                "it looks like an AWS cron expression (minutes first, a year last): {}",
                aws_hint(expression)
            ));
        }
        Err(e) => e,
    };
    // Find the field at fault: the first that fails alone, every other field `*`.
    let names = &FIELDS[6 - fields.len()..];
    for (i, field) in names.iter().enumerate() {
        let probe: Vec<&str> = (0..fields.len())
            .map(|j| if i == j { fields[j] } else { "*" })
            .collect();
        if let Err(e) = parser.parse(&probe.join(" ")) {
            return Err(format!(
                "the {} field `{}` is invalid ({}): {}; a field is `*`, a value, a range `a-b`, a list `a,b` or a step `*/n`",
                field.name,
                fields[i],
                tidy(&e),
                field.accepts
            ));
        }
    }
    Err(format!("{}; {ACCEPTED}", tidy(&error)))
}

/// For an AWS cron expression (`minutes hours day-of-month month day-of-week year`):
/// how to write it here (without the year).
fn aws_hint(fields: &str) -> String {
    let fields: Vec<&str> = fields.split_whitespace().collect();
    let rewrite = match fields.get(..5) {
        Some(five) if fields.len() == 6 => format!("write `{}`", five.join(" ")),
        _ => "write the fields alone".to_string(),
    };
    format!(
        "{rewrite} (a 6th field here is seconds, first, and there is no year; \
         day-of-week numbers run from 0 for Sunday, not AWS's 1)"
    )
}

/// croner's message, in our style: lowercase, no trailing period.
fn tidy(e: &CronError) -> String {
    let text = match e {
        CronError::IllegalCharacters(_) => return "it has a character cron does not accept".to_string(),
        CronError::InvalidPattern(m) | CronError::ComponentError(m) => m.clone(),
        other => other.to_string(),
    };
    let text = text.trim().trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => "it is not a cron expression".to_string(),
    }
}

/// The time zone a typo was probably meant to be: the same name in another case, a
/// city alone (`Berlin`, `new york`), or a name a couple of edits away.
fn closest_time_zone(name: &str) -> Option<&'static str> {
    let wanted = name.trim().replace(' ', "_").to_ascii_lowercase();
    let names = || chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
    if let Some(exact) = names().find(|n| n.to_ascii_lowercase() == wanted) {
        return Some(exact);
    }
    if !wanted.contains('/')
        && let Some(city) = names().find(|n| {
            n.rsplit('/')
                .next()
                .is_some_and(|c| c.to_ascii_lowercase() == wanted)
        })
    {
        return Some(city);
    }
    let limit = (wanted.chars().count() / 4).clamp(1, 3);
    names()
        .map(|n| (edit_distance(&wanted, &n.to_ascii_lowercase()), n))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests;
