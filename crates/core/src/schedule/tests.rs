//! Fixed instants only: every expectation is written out in UTC.

use super::*;
use chrono::{TimeZone, Utc};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> UnixMillis {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .unwrap()
        .timestamp_millis()
}

fn parse(expression: &str, timezone: Option<&str>) -> Result<ParsedSchedule, ScheduleError> {
    ParsedSchedule::parse(&Schedule {
        expression: expression.to_string(),
        timezone: timezone.map(str::to_string),
        catch_up: false,
    })
}

fn cron(expression: &str) -> ParsedSchedule {
    parse(expression, None).unwrap()
}

fn zoned(expression: &str, tz: &str) -> ParsedSchedule {
    parse(expression, Some(tz)).unwrap()
}

/// The first `n` slots after `t`.
fn slots(s: &ParsedSchedule, mut t: UnixMillis, n: usize) -> Vec<UnixMillis> {
    (0..n)
        .map(|_| {
            t = s.next_after(t).unwrap();
            t
        })
        .collect()
}

fn message(expression: &str, timezone: Option<&str>) -> String {
    parse(expression, timezone).unwrap_err().to_string()
}

const MINUTE: i64 = 60_000;

#[test]
fn five_fields_with_steps() {
    let s = cron("*/5 * * * *");
    assert_eq!(
        slots(&s, utc(2024, 1, 1, 0, 2, 30), 3),
        [
            utc(2024, 1, 1, 0, 5, 0),
            utc(2024, 1, 1, 0, 10, 0),
            utc(2024, 1, 1, 0, 15, 0)
        ]
    );
    assert_eq!(s.expression(), "*/5 * * * *");
}

#[test]
fn six_fields_start_with_seconds() {
    let s = cron("*/15 * * * * *");
    assert_eq!(
        slots(&s, utc(2024, 1, 1, 0, 0, 0), 5),
        [
            utc(2024, 1, 1, 0, 0, 15),
            utc(2024, 1, 1, 0, 0, 30),
            utc(2024, 1, 1, 0, 0, 45),
            utc(2024, 1, 1, 0, 1, 0),
            utc(2024, 1, 1, 0, 1, 15),
        ]
    );
    let s = cron("30 0 12 * * *");
    assert_eq!(
        slots(&s, utc(2024, 1, 1, 12, 0, 30), 1),
        [utc(2024, 1, 2, 12, 0, 30)]
    );
}

#[test]
fn ranges_lists_and_stepped_ranges() {
    let s = cron("0 9-17/4 * * *");
    assert_eq!(
        slots(&s, utc(2024, 1, 1, 0, 0, 0), 4),
        [
            utc(2024, 1, 1, 9, 0, 0),
            utc(2024, 1, 1, 13, 0, 0),
            utc(2024, 1, 1, 17, 0, 0),
            utc(2024, 1, 2, 9, 0, 0),
        ]
    );
    let s = cron("15 0 1,15 * *");
    assert_eq!(
        slots(&s, utc(2024, 1, 1, 0, 15, 0), 3),
        [
            utc(2024, 1, 15, 0, 15, 0),
            utc(2024, 2, 1, 0, 15, 0),
            utc(2024, 2, 15, 0, 15, 0)
        ]
    );
}

#[test]
fn day_and_month_names() {
    // Friday 2024-01-05, after noon: the next weekday noon is Monday.
    let s = cron("0 12 * * MON-FRI");
    assert_eq!(
        slots(&s, utc(2024, 1, 5, 13, 0, 0), 2),
        [utc(2024, 1, 8, 12, 0, 0), utc(2024, 1, 9, 12, 0, 0)]
    );
    // Lowercase names; 7 is Sunday as well as 0.
    let weekend = cron("0 8 * * sat,sun");
    assert_eq!(
        slots(&weekend, utc(2024, 1, 1, 0, 0, 0), 2),
        [utc(2024, 1, 6, 8, 0, 0), utc(2024, 1, 7, 8, 0, 0)]
    );
    assert_eq!(
        slots(&cron("0 8 * * 7"), utc(2024, 1, 1, 0, 0, 0), 1),
        [utc(2024, 1, 7, 8, 0, 0)]
    );
    assert_eq!(
        slots(&cron("0 0 1 jul,DEC *"), utc(2024, 1, 1, 0, 0, 0), 2),
        [utc(2024, 7, 1, 0, 0, 0), utc(2024, 12, 1, 0, 0, 0)]
    );
}

#[test]
fn last_nth_and_nicknames() {
    assert_eq!(
        slots(&cron("0 0 L * *"), utc(2024, 2, 1, 0, 0, 0), 2),
        [utc(2024, 2, 29, 0, 0, 0), utc(2024, 3, 31, 0, 0, 0)]
    );
    // The third Friday of January 2024 is the 19th.
    assert_eq!(
        slots(&cron("0 10 ? * 5#3"), utc(2024, 1, 1, 0, 0, 0), 1),
        [utc(2024, 1, 19, 10, 0, 0)]
    );
    assert_eq!(
        slots(&cron("@daily"), utc(2024, 1, 1, 0, 0, 0), 1),
        [utc(2024, 1, 2, 0, 0, 0)]
    );
    // Either day field matches, unless day-of-week starts with `+`.
    assert_eq!(
        slots(&cron("0 0 13 * FRI"), utc(2024, 1, 1, 0, 0, 0), 2),
        [utc(2024, 1, 5, 0, 0, 0), utc(2024, 1, 12, 0, 0, 0)]
    );
    assert_eq!(
        slots(&cron("0 0 13 * +FRI"), utc(2024, 1, 1, 0, 0, 0), 1),
        [utc(2024, 9, 13, 0, 0, 0)]
    );
}

#[test]
fn next_after_is_strict_and_whole_seconds_count() {
    let s = cron("0 * * * *");
    let slot = utc(2024, 1, 1, 10, 0, 0);
    assert_eq!(s.next_after(slot - 1), Some(slot));
    assert_eq!(s.next_after(slot), Some(slot + 60 * MINUTE));
    assert_eq!(s.next_after(slot + 1), Some(slot + 60 * MINUTE));
    assert_eq!(s.last_at_or_before(slot), Some(slot));
    assert_eq!(s.last_at_or_before(slot + 999), Some(slot));
    assert_eq!(s.last_at_or_before(slot - 1), Some(slot - 60 * MINUTE));
    assert_eq!(s.last_before(slot), Some(slot - 60 * MINUTE));
    assert_eq!(s.last_before(slot + 1), Some(slot));
    let r = cron("rate(1 hour)");
    assert_eq!(r.next_after(slot - 1), Some(slot));
    assert_eq!(r.next_after(slot), Some(slot + 60 * MINUTE));
    assert_eq!(r.last_at_or_before(slot + 1), Some(slot));
    assert_eq!(r.last_before(slot), Some(slot - 60 * MINUTE));
    assert_eq!(r.last_before(slot + 1), Some(slot));
}

#[test]
fn rates_are_aligned_to_the_epoch() {
    let s = cron("rate(5 minutes)");
    assert_eq!(
        slots(&s, utc(2024, 1, 1, 0, 2, 30), 2),
        [utc(2024, 1, 1, 0, 5, 0), utc(2024, 1, 1, 0, 10, 0)]
    );
    // 2024-01-01 is day 19723 since the epoch, an odd one: two-day slots fall on even days.
    let s = cron("rate(2 days)");
    assert_eq!(
        slots(&s, utc(2024, 1, 1, 0, 0, 0), 2),
        [utc(2024, 1, 2, 0, 0, 0), utc(2024, 1, 4, 0, 0, 0)]
    );
    assert_eq!(s.next_after(-1), Some(0));
    assert_eq!(s.last_at_or_before(-1), Some(-2 * 86_400_000));
    // Singular and plural either way, any case, spaces around.
    for same in [
        "rate(1 minute)",
        "rate(1 minutes)",
        "RATE( 1 Minute )",
        "rate(60 seconds)",
    ] {
        assert_eq!(
            slots(&cron(same), utc(2024, 1, 1, 0, 0, 1), 1),
            [utc(2024, 1, 1, 0, 1, 0)],
            "{same}"
        );
    }
    assert_eq!(
        slots(&cron("rate(90 second)"), utc(2024, 1, 1, 0, 0, 0), 2),
        [utc(2024, 1, 1, 0, 1, 30), utc(2024, 1, 1, 0, 3, 0)]
    );
    // An extreme instant has no next slot rather than an overflow.
    assert_eq!(cron("rate(1 day)").next_after(i64::MAX - 1), None);
}

#[test]
fn berlin_spring_forward_runs_a_skipped_time_after_the_gap() {
    // 2024-03-31 02:00 CET jumps to 03:00 CEST (01:00 UTC): 02:30 does not exist.
    let s = zoned("30 2 * * *", "Europe/Berlin");
    let slots = slots(&s, utc(2024, 3, 30, 12, 0, 0), 3);
    assert_eq!(
        slots,
        [
            utc(2024, 3, 31, 1, 0, 0), // 03:00 CEST, the first instant after the gap
            utc(2024, 4, 1, 0, 30, 0), // 02:30 CEST
            utc(2024, 4, 2, 0, 30, 0),
        ]
    );
    assert_eq!(s.last_at_or_before(utc(2024, 3, 31, 12, 0, 0)), Some(slots[0]));
    assert_eq!(s.last_before(slots[1]), Some(slots[0]));
    // The day before, 02:30 CET is 01:30 UTC.
    assert_eq!(s.last_before(slots[0]), Some(utc(2024, 3, 30, 1, 30, 0)));
    // An interval just loses the hour that does not exist.
    let hourly = zoned("0 * * * *", "Europe/Berlin");
    assert_eq!(
        hourly.next_after(utc(2024, 3, 31, 0, 30, 0)),
        Some(utc(2024, 3, 31, 1, 0, 0))
    );
}

#[test]
fn berlin_fall_back_runs_a_fixed_time_once_and_intervals_twice() {
    // 2024-10-27 03:00 CEST falls back to 02:00 CET (01:00 UTC): 02:xx happens twice.
    let s = zoned("30 2 * * *", "Europe/Berlin");
    assert_eq!(
        slots(&s, utc(2024, 10, 26, 12, 0, 0), 2),
        [utc(2024, 10, 27, 0, 30, 0), utc(2024, 10, 28, 1, 30, 0)]
    );
    let s = zoned("*/30 2 * * *", "Europe/Berlin");
    assert_eq!(
        slots(&s, utc(2024, 10, 26, 12, 0, 0), 5),
        [
            utc(2024, 10, 27, 0, 0, 0),
            utc(2024, 10, 27, 0, 30, 0),
            utc(2024, 10, 27, 1, 0, 0),
            utc(2024, 10, 27, 1, 30, 0),
            utc(2024, 10, 28, 1, 0, 0),
        ]
    );
}

#[test]
fn new_york_nine_am_follows_daylight_saving() {
    let s = zoned("0 9 * * *", "America/New_York");
    // DST starts 2024-03-10 and ends 2024-11-03.
    assert_eq!(
        slots(&s, utc(2024, 3, 9, 0, 0, 0), 3),
        [
            utc(2024, 3, 9, 14, 0, 0),
            utc(2024, 3, 10, 13, 0, 0),
            utc(2024, 3, 11, 13, 0, 0)
        ]
    );
    assert_eq!(
        slots(&s, utc(2024, 11, 2, 0, 0, 0), 3),
        [
            utc(2024, 11, 2, 13, 0, 0),
            utc(2024, 11, 3, 14, 0, 0),
            utc(2024, 11, 4, 14, 0, 0)
        ]
    );
}

/// Forward and backward searches agree on every slot, across both transitions.
#[test]
fn forward_and_backward_agree_across_transitions() {
    for (expression, tz, from) in [
        ("*/20 * * * *", "Europe/Berlin", utc(2024, 3, 30, 22, 0, 0)),
        ("*/20 * * * *", "Europe/Berlin", utc(2024, 10, 26, 22, 0, 0)),
        ("30 2 * * *", "Europe/Berlin", utc(2024, 3, 28, 0, 0, 0)),
        ("30 2 * * *", "Europe/Berlin", utc(2024, 10, 24, 0, 0, 0)),
        ("0 9 * * *", "America/New_York", utc(2024, 3, 8, 0, 0, 0)),
        ("15 1 * * *", "America/New_York", utc(2024, 11, 1, 0, 0, 0)),
    ] {
        let s = zoned(expression, tz);
        let all = slots(&s, from, 24);
        for pair in all.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!(a < b, "{expression} {tz}: {a} !< {b}");
            assert_eq!(s.next_after(a), Some(b), "{expression} {tz} after {a}");
            assert_eq!(s.last_before(b), Some(a), "{expression} {tz} before {b}");
            assert_eq!(s.last_at_or_before(b - 1), Some(a), "{expression} {tz}");
            assert_eq!(s.last_at_or_before(b), Some(b), "{expression} {tz}");
        }
    }
}

#[test]
fn a_new_schedule_has_missed_nothing() {
    let s = cron("*/5 * * * *");
    let now = utc(2024, 1, 1, 10, 3, 0);
    let plan = s.plan(None, now, true);
    assert_eq!(
        plan,
        Plan {
            fire: vec![],
            skipped: None,
            next: Some(utc(2024, 1, 1, 10, 5, 0)),
            watermark: now,
        }
    );
    // Not even a slot exactly now.
    let now = utc(2024, 1, 1, 10, 5, 0);
    let plan = s.plan(None, now, false);
    assert!(plan.fire.is_empty());
    assert_eq!(plan.next, Some(utc(2024, 1, 1, 10, 10, 0)));
    assert_eq!(plan.watermark, now);
}

#[test]
fn a_due_slot_fires_once() {
    let s = cron("*/5 * * * *");
    let last = utc(2024, 1, 1, 10, 0, 0);
    // Woken a little late.
    let plan = s.plan(Some(last), utc(2024, 1, 1, 10, 5, 0) + 250, false);
    assert_eq!(
        plan,
        Plan {
            fire: vec![utc(2024, 1, 1, 10, 5, 0)],
            skipped: None,
            next: Some(utc(2024, 1, 1, 10, 10, 0)),
            watermark: utc(2024, 1, 1, 10, 5, 0),
        }
    );
    // Woken again before the next slot: nothing.
    let again = s.plan(Some(plan.watermark), utc(2024, 1, 1, 10, 7, 0), false);
    assert_eq!(
        again,
        Plan {
            fire: vec![],
            skipped: None,
            next: Some(utc(2024, 1, 1, 10, 10, 0)),
            watermark: plan.watermark,
        }
    );
    // A clock stepped back: nothing, and the next slot is after the last one.
    let back = s.plan(Some(plan.watermark), utc(2024, 1, 1, 10, 1, 0), false);
    assert!(back.fire.is_empty());
    assert_eq!(back.next, Some(utc(2024, 1, 1, 10, 10, 0)));
    assert_eq!(back.watermark, plan.watermark);
}

#[test]
fn missed_slots_are_skipped_without_catch_up() {
    let s = cron("*/5 * * * *");
    let plan = s.plan(Some(utc(2024, 1, 1, 10, 0, 0)), utc(2024, 1, 1, 10, 31, 0), false);
    assert_eq!(
        plan,
        Plan {
            fire: vec![utc(2024, 1, 1, 10, 30, 0)],
            skipped: Some(Skipped {
                first: utc(2024, 1, 1, 10, 5, 0),
                last: utc(2024, 1, 1, 10, 25, 0),
                count: 5,
                exact: true,
            }),
            next: Some(utc(2024, 1, 1, 10, 35, 0)),
            watermark: utc(2024, 1, 1, 10, 30, 0),
        }
    );
    // The same with a rate.
    let r = cron("rate(5 minutes)");
    assert_eq!(
        r.plan(Some(utc(2024, 1, 1, 10, 0, 0)), utc(2024, 1, 1, 10, 31, 0), false),
        plan
    );
}

#[test]
fn missed_slots_fire_oldest_first_with_catch_up() {
    let s = cron("*/5 * * * *");
    let plan = s.plan(Some(utc(2024, 1, 1, 10, 0, 0)), utc(2024, 1, 1, 10, 31, 0), true);
    let expected: Vec<_> = (1..=6).map(|i| utc(2024, 1, 1, 10, 5 * i, 0)).collect();
    assert_eq!(plan.fire, expected);
    assert_eq!(plan.skipped, None);
    assert_eq!(plan.watermark, utc(2024, 1, 1, 10, 30, 0));
    assert_eq!(plan.next, Some(utc(2024, 1, 1, 10, 35, 0)));
    let r = cron("rate(5 minutes)");
    assert_eq!(
        r.plan(Some(utc(2024, 1, 1, 10, 0, 0)), utc(2024, 1, 1, 10, 31, 0), true),
        plan
    );
}

#[test]
fn catch_up_runs_the_most_recent_slots_up_to_the_cap() {
    let start = utc(2024, 1, 1, 0, 0, 0);
    let now = start + 300 * MINUTE;
    let cap = Limits::MAX_CATCH_UP_SLOTS as i64;
    for s in [cron("* * * * *"), cron("rate(1 minute)")] {
        let plan = s.plan(Some(start), now, true);
        // Slots 1..=299 were missed, 300 is due: the last `cap` missed ones and 300 fire.
        let fire: Vec<_> = (300 - cap..=300).map(|i| start + i * MINUTE).collect();
        assert_eq!(plan.fire, fire, "{}", s.expression());
        assert_eq!(
            plan.skipped,
            Some(Skipped {
                first: start + MINUTE,
                last: start + (299 - cap) * MINUTE,
                count: 299 - cap as u64,
                exact: true,
            }),
            "{}",
            s.expression()
        );
        assert_eq!(plan.watermark, now);
    }
}

#[test]
fn catch_up_fires_both_runs_of_a_repeated_hour() {
    let s = zoned("*/30 2 * * *", "Europe/Berlin");
    let plan = s.plan(
        Some(utc(2024, 10, 26, 12, 0, 0)),
        utc(2024, 10, 27, 2, 0, 0),
        true,
    );
    assert_eq!(
        plan.fire,
        [
            utc(2024, 10, 27, 0, 0, 0),
            utc(2024, 10, 27, 0, 30, 0),
            utc(2024, 10, 27, 1, 0, 0),
            utc(2024, 10, 27, 1, 30, 0),
        ]
    );
    assert_eq!(plan.skipped, None);
}

#[test]
fn a_year_of_downtime_counts_cheaply() {
    let last = utc(2023, 1, 1, 0, 0, 0);
    let now = utc(2024, 1, 1, 0, 0, 0) + 500;
    let started = std::time::Instant::now();
    let plan = cron("* * * * * *").plan(Some(last), now, false);
    assert_eq!(plan.fire, [utc(2024, 1, 1, 0, 0, 0)]);
    assert_eq!(
        plan.skipped,
        Some(Skipped {
            first: last + 1000,
            last: utc(2023, 12, 31, 23, 59, 59),
            count: COUNT_LIMIT,
            exact: false,
        })
    );
    // With catch-up the cap still holds.
    let plan = cron("* * * * * *").plan(Some(last), now, true);
    assert_eq!(plan.fire.len(), Limits::MAX_CATCH_UP_SLOTS as usize + 1);
    assert_eq!(
        plan.skipped.map(|s| (s.first, s.exact)),
        Some((last + 1000, false))
    );
    // A rate counts exactly, at once.
    let plan = cron("rate(1 second)").plan(Some(last), now, false);
    assert_eq!(
        plan.skipped,
        Some(Skipped {
            first: last + 1000,
            last: utc(2023, 12, 31, 23, 59, 59),
            count: 365 * 86_400 - 1,
            exact: true,
        })
    );
    // Generous even for an unoptimised build; an uncapped walk would take minutes.
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn descriptions() {
    assert_eq!(cron("rate(5 minutes)").describe(), "Every 5 minutes");
    assert_eq!(cron("rate(1 day)").describe(), "Every day");
    let d = zoned("0 9 * * MON-FRI", "Europe/Berlin").describe();
    assert!(
        d.starts_with("At 09:00") && d.ends_with(" (Europe/Berlin)"),
        "{d}"
    );
    assert!(d.contains("Monday"), "{d}");
    assert!(cron("*/5 * * * *").describe().ends_with(" (UTC)"));
}

#[test]
fn bad_expressions_say_what_is_wrong_and_what_is_accepted() {
    let cases = [
        (
            "",
            "invalid schedule ``: it is empty; write a cron expression such as `0 9 * * *`",
        ),
        (
            "* * *",
            "a cron expression has 5 fields (minute hour day-of-month month day-of-week) or 6 (second first), not 3",
        ),
        ("0 0 0 1 1 * 2030", "not 7; there is no year field"),
        (
            "61 * * * *",
            "the minute field `61` is invalid (number out of bounds): minutes are 0-59; a field is `*`",
        ),
        (
            "0 25 * * *",
            "the hour field `25` is invalid (number out of bounds): hours are 0-23",
        ),
        (
            "0 0 * * XYZ",
            "the day-of-week field `XYZ` is invalid (it has a character cron does not accept): days of the week are 0-7 or SUN-SAT",
        ),
        ("0 0 * 13 *", "the month field `13` is invalid"),
        (
            "*/0 * * * *",
            "the minute field `*/0` is invalid (step cannot be zero)",
        ),
        ("5-1 * * * *", "the minute field `5-1` is invalid"),
        ("60 * * * * *", "the second field `60` is invalid"),
        (
            "0 0 30 2 *",
            "it matches no date (like `0 0 30 2 *`, February 30th)",
        ),
        ("@reboot", "unknown nickname `@reboot`: use `@hourly`, `@daily`"),
        (
            "0 12 * * ? *",
            "it looks like an AWS cron expression (minutes first, a year last): write `0 12 * * ?`",
        ),
        (
            "cron(0 18 ? * MON-FRI *)",
            "AWS's `cron(…)` form is not used here: write `0 18 ? * MON-FRI` (a 6th field here is seconds, first, and there is no year; day-of-week numbers run from 0 for Sunday, not AWS's 1)",
        ),
        (
            "rate(0 minutes)",
            "invalid schedule `rate(0 minutes)`: the value must be at least 1; write `rate(VALUE UNIT)`",
        ),
        ("rate(five minutes)", "`five` is not a whole number"),
        ("rate(-1 minutes)", "`-1` is not a whole number"),
        (
            "rate(5 fortnights)",
            "unknown unit `fortnights`; write `rate(VALUE UNIT)` with a whole VALUE of at least 1 and a UNIT of second(s), minute(s), hour(s) or day(s)",
        ),
        ("rate(5)", "a rate has a value and a unit"),
        (
            "rate(366 days)",
            "the period is longer than 365 days; write a cron expression for longer cycles",
        ),
        (
            "rate(99999999999999999 days)",
            "the period is longer than 365 days",
        ),
    ];
    for (expression, expected) in cases {
        let e = parse(expression, None).unwrap_err();
        assert!(!e.is_about_time_zone(), "{expression}");
        let text = e.to_string();
        assert!(
            text.contains(expected),
            "{expression}:\n  got {text}\n  want {expected}"
        );
        assert!(
            text.starts_with(&format!("invalid schedule `{expression}`: ")),
            "{text}"
        );
    }
}

#[test]
fn bad_time_zones_suggest_the_right_one() {
    assert_eq!(
        message("0 9 * * *", Some("Europe/Berln")),
        "unknown time zone `Europe/Berln` in schedule `0 9 * * *`: use an IANA name such as `Europe/Berlin`, \
         `America/New_York` or `UTC` (did you mean `Europe/Berlin`?)"
    );
    for (typo, meant) in [
        ("europe/berlin", "Europe/Berlin"),
        ("Berlin", "Europe/Berlin"),
        ("new york", "America/New_York"),
        ("America/NewYork", "America/New_York"),
    ] {
        let e = parse("0 9 * * *", Some(typo)).unwrap_err();
        assert!(e.is_about_time_zone());
        assert!(
            e.to_string().ends_with(&format!("(did you mean `{meant}`?)")),
            "{typo}: {e}"
        );
    }
    let e = message("0 9 * * *", Some("Mars/Olympus_Mons"));
    assert!(e.ends_with("or `UTC`"), "{e}");
    // UTC and the zone database's aliases are fine.
    for fine in ["UTC", "Etc/UTC", "Asia/Kolkata", "US/Eastern"] {
        parse("0 9 * * *", Some(fine)).unwrap();
    }
}

#[test]
fn a_rate_has_no_time_zone() {
    let e = parse("rate(1 day)", Some("Europe/Berlin")).unwrap_err();
    assert!(e.is_about_time_zone());
    assert_eq!(
        e.to_string(),
        "schedule `rate(1 day)` has time zone `Europe/Berlin`, but a rate runs at multiples of its period \
         from the Unix epoch in every zone: remove `timezone`, or write a cron expression such as \
         `0 0 * * *` to run at a local time"
    );
    // A bad rate is reported before its time zone.
    assert!(message("rate(0 days)", Some("Europe/Berlin")).contains("at least 1"));
}
