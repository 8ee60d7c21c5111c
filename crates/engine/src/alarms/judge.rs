//! Judging an alarm's state from its latest datapoints: CloudWatch's "M out of N",
//! with periods that had no datapoint treated as the rule's `missing_data` says.

use std::collections::VecDeque;
use wisp_core::alarm::MissingData;
use wisp_core::{AlarmSpec, AlarmState};

/// One period's datapoint: a value, or why there was none.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Datapoint {
    Value(f64),
    Missing(String),
}

/// The state the latest datapoints (oldest first, at most `evaluation_periods`) put
/// an alarm in, and why. ALARM as soon as enough of them breach; anything else only
/// once there are `evaluation_periods` of them (a new alarm stays INSUFFICIENT_DATA
/// until then); `current` is also kept when the rule ignores missing data and every
/// period lacked it.
pub(crate) fn judge(
    spec: &AlarmSpec,
    window: &VecDeque<Datapoint>,
    current: AlarmState,
) -> (AlarmState, String) {
    let needed = spec.datapoints() as usize;
    let breaches = |v: f64| spec.comparison.breaches(v, spec.threshold);
    let (mut breaching, mut present) = (0usize, 0usize);
    for point in window {
        match (point, spec.missing_data) {
            (Datapoint::Value(v), _) => {
                present += 1;
                breaching += usize::from(breaches(*v));
            }
            (Datapoint::Missing(_), MissingData::Breaching) => {
                present += 1;
                breaching += 1;
            }
            (Datapoint::Missing(_), MissingData::NotBreaching) => present += 1,
            (Datapoint::Missing(_), MissingData::Missing | MissingData::Ignore) => {}
        }
    }
    let seen = window
        .iter()
        .map(|p| match p {
            Datapoint::Value(v) => show(spec, *v),
            Datapoint::Missing(_) => "no data".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let of = format!(
        "of the last {} datapoints ({seen}) {} {}",
        window.len(),
        spec.comparison.as_str(),
        show(spec, spec.threshold)
    );
    if breaching >= needed {
        return (AlarmState::Alarm, format!("{breaching} {of}: ALARM at {needed}"));
    }
    let periods = spec.evaluation_periods as usize;
    if window.len() < periods {
        let more = periods - window.len();
        return (
            current,
            format!("{breaching} {of}: {more} more period(s) before OK can be judged"),
        );
    }
    if present == 0 {
        let why = window
            .iter()
            .rev()
            .find_map(|p| match p {
                Datapoint::Missing(why) => Some(why.as_str()),
                Datapoint::Value(_) => None,
            })
            .unwrap_or("no data");
        return match spec.missing_data {
            MissingData::Ignore => (
                current,
                format!("no data in the last {} periods ({why}): state kept", window.len()),
            ),
            _ => (
                AlarmState::InsufficientData,
                format!("no data in the last {} periods: {why}", window.len()),
            ),
        };
    }
    (AlarmState::Ok, format!("{breaching} {of}: ALARM needs {needed}"))
}

/// A value as a reason shows it: up to four decimals, durations in seconds with `s`.
pub(crate) fn show(spec: &AlarmSpec, value: f64) -> String {
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if spec.metric.is_duration() {
        format!("{text}s")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> AlarmSpec {
        let json = format!(r#"{{"metric":"error_rate","function":"api","threshold":0.1{extra}}}"#);
        serde_json::from_str(&json).unwrap()
    }

    fn window(points: &[Option<f64>]) -> VecDeque<Datapoint> {
        points
            .iter()
            .map(|p| match p {
                Some(v) => Datapoint::Value(*v),
                None => Datapoint::Missing("no invocation ended".into()),
            })
            .collect()
    }

    #[test]
    fn m_of_n_breaching_periods_make_alarm() {
        let s = spec(r#","evaluation_periods":3,"datapoints_to_alarm":2"#);
        let (state, why) = judge(&s, &window(&[Some(0.5), Some(0.0), Some(0.25)]), AlarmState::Ok);
        assert_eq!(state, AlarmState::Alarm);
        assert_eq!(why, "2 of the last 3 datapoints (0.5, 0, 0.25) > 0.1: ALARM at 2");
        let (state, why) = judge(&s, &window(&[Some(0.5), Some(0.0), Some(0.0)]), AlarmState::Alarm);
        assert_eq!(state, AlarmState::Ok);
        assert!(why.ends_with("ALARM needs 2"), "{why}");
    }

    #[test]
    fn missing_data_is_treated_as_the_rule_says() {
        let gaps = window(&[None, None]);
        let two = r#","evaluation_periods":2"#;
        let (state, why) = judge(&spec(two), &gaps, AlarmState::Ok);
        assert_eq!(state, AlarmState::InsufficientData);
        assert_eq!(why, "no data in the last 2 periods: no invocation ended");
        let ignore = spec(&format!(r#"{two},"missing_data":"ignore""#));
        assert_eq!(judge(&ignore, &gaps, AlarmState::Alarm).0, AlarmState::Alarm);
        let breaching = spec(&format!(r#"{two},"missing_data":"breaching""#));
        assert_eq!(judge(&breaching, &gaps, AlarmState::Ok).0, AlarmState::Alarm);
        let not = spec(&format!(r#"{two},"missing_data":"not_breaching""#));
        assert_eq!(judge(&not, &gaps, AlarmState::Alarm).0, AlarmState::Ok);
        // Too few periods yet: only ALARM may be judged.
        let (state, why) = judge(&spec(two), &window(&[Some(0.0)]), AlarmState::InsufficientData);
        assert_eq!(state, AlarmState::InsufficientData);
        assert!(why.ends_with("1 more period(s) before OK can be judged"), "{why}");
        let (state, _) = judge(
            &spec(r#","evaluation_periods":2,"datapoints_to_alarm":1"#),
            &window(&[Some(1.0)]),
            AlarmState::Ok,
        );
        assert_eq!(state, AlarmState::Alarm);
        // With `missing`, the periods that have data decide.
        let (state, _) = judge(&spec(two), &window(&[None, Some(1.0)]), AlarmState::Ok);
        assert_eq!(state, AlarmState::Ok, "one breach of the two needed");
    }

    #[test]
    fn durations_show_in_seconds() {
        let s: AlarmSpec =
            serde_json::from_str(r#"{"metric":"p99_duration","function":"a","threshold":"250ms"}"#).unwrap();
        let (state, why) = judge(&s, &window(&[Some(0.3)]), AlarmState::Ok);
        assert_eq!(state, AlarmState::Alarm);
        assert_eq!(why, "1 of the last 1 datapoints (0.3s) > 0.25s: ALARM at 1");
    }
}
