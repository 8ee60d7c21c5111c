//! Alarm rules ([`AlarmSpec`]): a metric of a function, a queue or a namespace,
//! compared with a threshold once per period, that moves between [`AlarmState`]s when
//! enough of the last periods breach it, and the [`AlarmAction`]s a change of state
//! starts. `[alarms.NAME]` in a `wisp.toml` and `PUT /v1/alarms/{name}` take the same
//! keys; [`AlarmSpec::validate`] checks the values, naming the field.
//!
//! The engine evaluates them (`wisp_engine`'s `alarms` module); this is only the rule.

use crate::duration_text;
use crate::name::{FunctionName, QueueName, TopicName};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// The state of an alarm, written as CloudWatch writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AlarmState {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "ALARM")]
    Alarm,
    #[serde(rename = "INSUFFICIENT_DATA")]
    InsufficientData,
}

impl AlarmState {
    pub const ALL: [AlarmState; 3] = [AlarmState::Ok, AlarmState::Alarm, AlarmState::InsufficientData];

    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }

    /// The state named as [`AlarmState::as_str`] gives it.
    pub fn parse(text: &str) -> Option<AlarmState> {
        AlarmState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for AlarmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an alarm watches, and in what unit its threshold is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmMetric {
    /// A function's invocations that ended in an error, as a fraction (0 to 1) of those
    /// that ended in the period. No data when none ended.
    ErrorRate,
    /// A function's invocations that ended in an error, in the period.
    Errors,
    /// A function's invocations that ended, in the period.
    Invocations,
    /// A function's invocations refused for want of a slot, in the period.
    Throttles,
    /// The 50th, 90th or 99th percentile of a function's durations in the period, in
    /// seconds (estimated from the duration histogram, as Prometheus'
    /// `histogram_quantile` does). No data when none ended.
    P50Duration,
    P90Duration,
    P99Duration,
    /// A function's async dead letters kept (its DLQ's size), at the period's end.
    DeadLetters,
    /// Async events of a function waiting to run, at the period's end.
    AsyncBacklog,
    /// Messages waiting on a queue (visible and delayed), at the period's end.
    QueueDepth,
    /// Age of the oldest message waiting on a queue, in seconds (0 when none waits),
    /// at the period's end.
    QueueAge,
    /// The largest fraction (0 to 1, and past 1 once over) of a namespace's monthly
    /// quota used, over the limits it sets (requests, GB-seconds, budget). No data
    /// when it sets none.
    QuotaUse,
}

/// What an [`AlarmMetric`] is measured on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlarmSubject {
    Function,
    Queue,
    Namespace,
}

impl AlarmMetric {
    pub const ALL: [AlarmMetric; 12] = [
        AlarmMetric::ErrorRate,
        AlarmMetric::Errors,
        AlarmMetric::Invocations,
        AlarmMetric::Throttles,
        AlarmMetric::P50Duration,
        AlarmMetric::P90Duration,
        AlarmMetric::P99Duration,
        AlarmMetric::DeadLetters,
        AlarmMetric::AsyncBacklog,
        AlarmMetric::QueueDepth,
        AlarmMetric::QueueAge,
        AlarmMetric::QuotaUse,
    ];

    /// The name written in a rule (`error_rate`).
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmMetric::ErrorRate => "error_rate",
            AlarmMetric::Errors => "errors",
            AlarmMetric::Invocations => "invocations",
            AlarmMetric::Throttles => "throttles",
            AlarmMetric::P50Duration => "p50_duration",
            AlarmMetric::P90Duration => "p90_duration",
            AlarmMetric::P99Duration => "p99_duration",
            AlarmMetric::DeadLetters => "dead_letters",
            AlarmMetric::AsyncBacklog => "async_backlog",
            AlarmMetric::QueueDepth => "queue_depth",
            AlarmMetric::QueueAge => "queue_age",
            AlarmMetric::QuotaUse => "quota_use",
        }
    }

    /// What it is measured on: a rule names a `function`, a `queue`, or neither.
    pub fn subject(self) -> AlarmSubject {
        match self {
            AlarmMetric::QueueDepth | AlarmMetric::QueueAge => AlarmSubject::Queue,
            AlarmMetric::QuotaUse => AlarmSubject::Namespace,
            _ => AlarmSubject::Function,
        }
    }

    /// Whether its values are durations in seconds (a threshold may be written as
    /// duration text, `"250ms"`).
    pub fn is_duration(self) -> bool {
        matches!(
            self,
            AlarmMetric::P50Duration
                | AlarmMetric::P90Duration
                | AlarmMetric::P99Duration
                | AlarmMetric::QueueAge
        )
    }

    /// Whether its values are fractions (0 to 1).
    pub fn is_ratio(self) -> bool {
        matches!(self, AlarmMetric::ErrorRate | AlarmMetric::QuotaUse)
    }

    /// For a percentile metric, the quantile (0.5, 0.9, 0.99).
    pub fn quantile(self) -> Option<f64> {
        match self {
            AlarmMetric::P50Duration => Some(0.5),
            AlarmMetric::P90Duration => Some(0.9),
            AlarmMetric::P99Duration => Some(0.99),
            _ => None,
        }
    }
}

impl fmt::Display for AlarmMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a datapoint is compared with the threshold: it breaches when
/// `value <comparison> threshold` holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Comparison {
    #[default]
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

impl Comparison {
    /// `>`, `>=`, `<` or `<=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
        }
    }

    /// Whether `value` breaches `threshold`.
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Greater => value > threshold,
            Comparison::GreaterOrEqual => value >= threshold,
            Comparison::Less => value < threshold,
            Comparison::LessOrEqual => value <= threshold,
        }
    }
}

impl Serialize for Comparison {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Comparison {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        [
            Comparison::Greater,
            Comparison::GreaterOrEqual,
            Comparison::Less,
            Comparison::LessOrEqual,
        ]
        .into_iter()
        .find(|c| c.as_str() == text.trim())
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid comparison `{text}`: use \">\", \">=\", \"<\" or \"<=\""
            ))
        })
    }
}

/// What a period without a datapoint counts as (CloudWatch's `TreatMissingData`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingData {
    /// Not counted; when every period lacks data, the alarm is INSUFFICIENT_DATA.
    #[default]
    Missing,
    /// Not counted; when every period lacks data, the alarm keeps its state.
    Ignore,
    /// Counted as breaching.
    Breaching,
    /// Counted as not breaching.
    NotBreaching,
}

/// Where an action sends a change of state: written `{ webhook = "https://…" }`,
/// `{ function = "pager" }`, `{ queue = "alerts" }` or `{ topic = "ops" }`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionTarget {
    /// An HTTP(S) POST of the change as JSON, retried.
    Webhook(String),
    /// An async invocation of a function of the alarm's namespace, with the change as
    /// its event.
    Function(FunctionName),
    /// A message on a queue of the alarm's namespace.
    Queue(QueueName),
    /// A message published to a topic of the alarm's namespace.
    Topic(TopicName),
}

impl fmt::Display for ActionTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionTarget::Webhook(url) => write!(f, "webhook {url}"),
            ActionTarget::Function(name) => write!(f, "function {name}"),
            ActionTarget::Queue(name) => write!(f, "queue {name}"),
            ActionTarget::Topic(name) => write!(f, "topic {name}"),
        }
    }
}

/// One action: where it goes, and on entering which states (every change when
/// `on` is empty).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct AlarmAction {
    #[serde(flatten)]
    pub target: ActionTarget,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub on: Vec<AlarmState>,
}

impl AlarmAction {
    /// Whether it runs when the alarm enters `state`.
    pub fn runs_on(&self, state: AlarmState) -> bool {
        self.on.is_empty() || self.on.contains(&state)
    }
}

impl<'de> Deserialize<'de> for AlarmAction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            webhook: Option<String>,
            function: Option<FunctionName>,
            queue: Option<QueueName>,
            topic: Option<TopicName>,
            #[serde(default)]
            on: Vec<AlarmState>,
        }
        let t = Table::deserialize(d)?;
        let mut targets = Vec::new();
        targets.extend(t.webhook.map(ActionTarget::Webhook));
        targets.extend(t.function.map(ActionTarget::Function));
        targets.extend(t.queue.map(ActionTarget::Queue));
        targets.extend(t.topic.map(ActionTarget::Topic));
        if targets.len() != 1 {
            return Err(serde::de::Error::custom(
                "an action has exactly one of `webhook`, `function`, `queue` or `topic`",
            ));
        }
        Ok(AlarmAction {
            target: targets.remove(0),
            on: t.on,
        })
    }
}

/// A threshold: a number in the metric's unit, or for a duration metric, duration
/// text (`"250ms"`), kept in seconds.
fn threshold<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(f64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Number(n) => Ok(n),
        Raw::Text(text) => duration_text::parse(&text).map(|d| d.as_secs_f64()).map_err(|e| {
            serde::de::Error::custom(format!(
                "{e} (a threshold is a number, or a duration for duration metrics)"
            ))
        }),
    }
}

fn one() -> u32 {
    1
}

fn default_period() -> Duration {
    Duration::from_secs(60)
}

/// An alarm's rule: see the module docs. `docs/alarms.md` is the reference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmSpec {
    pub metric: AlarmMetric,
    /// The function a function metric is of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionName>,
    /// The queue a queue metric is of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueName>,
    #[serde(default)]
    pub comparison: Comparison,
    /// In the metric's unit: a fraction for ratios, seconds for durations (or duration
    /// text), a count otherwise.
    #[serde(deserialize_with = "threshold")]
    pub threshold: f64,
    /// How long each datapoint covers; periods end on multiples of it since the Unix
    /// epoch.
    #[serde(default = "default_period", with = "duration_text")]
    pub period: Duration,
    /// How many of the latest periods are looked at.
    #[serde(default = "one")]
    pub evaluation_periods: u32,
    /// How many of those must breach for ALARM (`evaluation_periods` when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapoints_to_alarm: Option<u32>,
    #[serde(default)]
    pub missing_data: MissingData,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<AlarmAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An [`AlarmSpec`] value that is wrong; `field` names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct AlarmSpecError {
    pub field: &'static str,
    pub message: String,
}

impl AlarmSpec {
    /// The shortest period.
    pub const MIN_PERIOD: Duration = Duration::from_secs(1);
    /// The longest period.
    pub const MAX_PERIOD: Duration = Duration::from_secs(24 * 3600);
    /// The most periods an alarm looks at.
    pub const MAX_EVALUATION_PERIODS: u32 = 100;
    /// The most actions an alarm has.
    pub const MAX_ACTIONS: usize = 10;
    /// The longest description, in bytes.
    pub const MAX_DESCRIPTION: usize = 1024;

    /// How many breaching periods make ALARM.
    pub fn datapoints(&self) -> u32 {
        self.datapoints_to_alarm.unwrap_or(self.evaluation_periods)
    }

    /// Checks every value, and that the metric's subject is named (and nothing else).
    pub fn validate(&self) -> Result<(), AlarmSpecError> {
        let err = |field: &'static str, message: String| Err(AlarmSpecError { field, message });
        let metric = self.metric;
        match metric.subject() {
            AlarmSubject::Function if self.function.is_none() => {
                return err(
                    "function",
                    format!("metric `{metric}` is a function's: name it with `function`"),
                );
            }
            AlarmSubject::Queue if self.queue.is_none() => {
                return err(
                    "queue",
                    format!("metric `{metric}` is a queue's: name it with `queue`"),
                );
            }
            _ => {}
        }
        if metric.subject() != AlarmSubject::Function && self.function.is_some() {
            return err(
                "function",
                format!("metric `{metric}` is not a function's: remove `function`"),
            );
        }
        if metric.subject() != AlarmSubject::Queue && self.queue.is_some() {
            return err(
                "queue",
                format!("metric `{metric}` is not a queue's: remove `queue`"),
            );
        }
        if !self.threshold.is_finite() || self.threshold < 0.0 {
            return err(
                "threshold",
                format!("threshold {} must be a number of at least 0", self.threshold),
            );
        }
        if metric == AlarmMetric::ErrorRate && self.threshold > 1.0 {
            return err(
                "threshold",
                format!(
                    "error_rate is a fraction from 0 to 1: threshold {} would never be crossed (5% is 0.05)",
                    self.threshold
                ),
            );
        }
        let fmt = |d: Duration| humantime::format_duration(d).to_string();
        if self.period < Self::MIN_PERIOD || self.period > Self::MAX_PERIOD || self.period.subsec_nanos() != 0
        {
            return err(
                "period",
                format!(
                    "period `{}` must be whole seconds from {} to {}",
                    fmt(self.period),
                    fmt(Self::MIN_PERIOD),
                    fmt(Self::MAX_PERIOD)
                ),
            );
        }
        if !(1..=Self::MAX_EVALUATION_PERIODS).contains(&self.evaluation_periods) {
            return err(
                "evaluation_periods",
                format!(
                    "evaluation_periods {} is out of range: use 1 to {}",
                    self.evaluation_periods,
                    Self::MAX_EVALUATION_PERIODS
                ),
            );
        }
        if let Some(m) = self.datapoints_to_alarm
            && !(1..=self.evaluation_periods).contains(&m)
        {
            return err(
                "datapoints_to_alarm",
                format!(
                    "datapoints_to_alarm {m} is out of range: use 1 to evaluation_periods ({})",
                    self.evaluation_periods
                ),
            );
        }
        if self.actions.len() > Self::MAX_ACTIONS {
            return err(
                "actions",
                format!(
                    "{} actions; an alarm has at most {}",
                    self.actions.len(),
                    Self::MAX_ACTIONS
                ),
            );
        }
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.len() > Self::MAX_DESCRIPTION)
        {
            return err(
                "description",
                format!("the description is longer than {} bytes", Self::MAX_DESCRIPTION),
            );
        }
        Ok(())
    }

    /// The rule as one line: `error_rate of function api > 0.05 for 3 of 3 periods of 1m`.
    pub fn condition(&self) -> String {
        let subject = match (&self.function, &self.queue) {
            (Some(f), _) => format!(" of function {f}"),
            (_, Some(q)) => format!(" of queue {q}"),
            _ => String::new(),
        };
        let threshold = if self.metric.is_duration() {
            humantime::format_duration(Duration::from_secs_f64(self.threshold.max(0.0))).to_string()
        } else {
            self.threshold.to_string()
        };
        format!(
            "{}{subject} {} {threshold} for {} of {} periods of {}",
            self.metric,
            self.comparison.as_str(),
            self.datapoints(),
            self.evaluation_periods,
            humantime::format_duration(self.period)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<AlarmSpec, String> {
        let spec: AlarmSpec = serde_json::from_str(json).map_err(|e| e.to_string())?;
        spec.validate().map_err(|e| e.to_string())?;
        Ok(spec)
    }

    #[test]
    fn a_rule_reads_its_defaults_and_round_trips() {
        let s = spec(r#"{"metric":"error_rate","function":"api","threshold":0.05}"#).unwrap();
        assert_eq!(s.comparison, Comparison::Greater);
        assert_eq!(s.period, Duration::from_secs(60));
        assert_eq!((s.evaluation_periods, s.datapoints()), (1, 1));
        assert_eq!(s.missing_data, MissingData::Missing);
        assert_eq!(
            s.condition(),
            "error_rate of function api > 0.05 for 1 of 1 periods of 1m"
        );
        let again: AlarmSpec = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(again, s);
    }

    #[test]
    fn durations_take_text_and_actions_take_one_target() {
        let s = spec(
            r#"{"metric":"p99_duration","function":"api","threshold":"250ms","comparison":">=",
                "period":"10s","evaluation_periods":5,"datapoints_to_alarm":3,"missing_data":"not_breaching",
                "actions":[{"webhook":"https://example.com/hook"},{"function":"pager","on":["ALARM"]}]}"#,
        )
        .unwrap();
        assert_eq!(s.threshold, 0.25);
        assert_eq!(s.datapoints(), 3);
        assert!(s.actions[0].runs_on(AlarmState::Ok));
        assert!(s.actions[1].runs_on(AlarmState::Alarm));
        assert!(!s.actions[1].runs_on(AlarmState::Ok));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json["actions"][1],
            serde_json::json!({"function": "pager", "on": ["ALARM"]})
        );
        assert_eq!(json["threshold"], 0.25);
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        let cases = [
            (
                r#"{"metric":"error_rate","threshold":0.1}"#,
                "name it with `function`",
            ),
            (r#"{"metric":"queue_age","threshold":5}"#, "name it with `queue`"),
            (
                r#"{"metric":"quota_use","function":"a","threshold":0.8}"#,
                "remove `function`",
            ),
            (
                r#"{"metric":"error_rate","function":"a","threshold":5}"#,
                "fraction from 0 to 1",
            ),
            (
                r#"{"metric":"errors","function":"a","threshold":-1}"#,
                "at least 0",
            ),
            (
                r#"{"metric":"errors","function":"a","threshold":1,"period":"500ms"}"#,
                "whole seconds",
            ),
            (
                r#"{"metric":"errors","function":"a","threshold":1,"period":"2d"}"#,
                "whole seconds from 1s to 1day",
            ),
            (
                r#"{"metric":"errors","function":"a","threshold":1,"evaluation_periods":0}"#,
                "use 1 to 100",
            ),
            (
                r#"{"metric":"errors","function":"a","threshold":1,"evaluation_periods":2,"datapoints_to_alarm":3}"#,
                "use 1 to evaluation_periods (2)",
            ),
            (
                r#"{"metric":"errors","function":"a","threshold":1,"comparison":"=="}"#,
                "invalid comparison",
            ),
            (
                r#"{"metric":"latency","function":"a","threshold":1}"#,
                "unknown variant",
            ),
            (
                r#"{"metric":"errors","function":"a","threshold":"soon"}"#,
                "invalid duration",
            ),
            (
                r#"{"metric":"errors","function":"a","threshold":1,"actions":[{"webhook":"x","queue":"q"}]}"#,
                "exactly one of",
            ),
            (
                r#"{"metric":"errors","function":"a","threshold":1,"actions":[{"queue":"q","on":["FIRING"]}]}"#,
                "unknown variant",
            ),
            (
                r#"{"metric":"errors","function":"a","threshold":1,"color":"red"}"#,
                "unknown field",
            ),
        ];
        for (json, expected) in cases {
            let e = spec(json).unwrap_err();
            assert!(e.contains(expected), "{json}: {e}");
        }
    }

    #[test]
    fn comparisons_breach_as_written() {
        assert!(Comparison::Greater.breaches(2.0, 1.0));
        assert!(!Comparison::Greater.breaches(1.0, 1.0));
        assert!(Comparison::GreaterOrEqual.breaches(1.0, 1.0));
        assert!(Comparison::Less.breaches(0.5, 1.0));
        assert!(Comparison::LessOrEqual.breaches(1.0, 1.0));
        assert_eq!(
            AlarmState::parse("INSUFFICIENT_DATA"),
            Some(AlarmState::InsufficientData)
        );
    }
}
