//! The vocabulary of event-driven work: where an async invocation's outcome goes
//! ([`Destination`]), the triggers a function declares ([`Schedule`], [`QueueTrigger`])
//! and a queue's own settings ([`QueueConfig`]).
//!
//! Parsing and checking a schedule's expression lives in [`crate::schedule`].

use crate::limits::Limits;
use crate::name::{FunctionName, QueueName};
use crate::spec::duration_text;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// Where an async invocation's record goes when it succeeds (`on_success`) or has
/// failed for good (`on_failure`). Written `"queue:NAME"` or `"function:NAME"`, or as a
/// table `{ queue = "NAME" }` / `{ function = "NAME" }`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Destination {
    /// A message on one of the namespace's queues.
    Queue(QueueName),
    /// An async invocation of a function of the same namespace.
    Function(FunctionName),
}

impl Destination {
    /// Parses `queue:NAME` or `function:NAME`.
    pub fn parse(text: &str) -> Result<Destination, String> {
        let bad = |why: String| {
            format!("invalid destination `{text}`: {why}; write it as \"queue:NAME\" or \"function:NAME\"")
        };
        match text.split_once(':') {
            Some(("queue", name)) => QueueName::new(name)
                .map(Destination::Queue)
                .map_err(|e| bad(e.to_string())),
            Some(("function", name)) => FunctionName::new(name)
                .map(Destination::Function)
                .map_err(|e| bad(e.to_string())),
            Some((kind, _)) => Err(bad(format!("unknown destination type `{kind}`"))),
            None => Err(bad("it has no type".to_string())),
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Queue(q) => write!(f, "queue:{q}"),
            Destination::Function(name) => write!(f, "function:{name}"),
        }
    }
}

impl Serialize for Destination {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Destination {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Table(Table),
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            queue: Option<String>,
            function: Option<String>,
        }
        let text = match Raw::deserialize(d)? {
            Raw::Text(text) => text,
            Raw::Table(Table {
                queue: Some(q),
                function: None,
            }) => format!("queue:{q}"),
            Raw::Table(Table {
                queue: None,
                function: Some(f),
            }) => format!("function:{f}"),
            Raw::Table(_) => {
                return Err(serde::de::Error::custom(
                    "a destination table has exactly one of `queue` or `function`",
                ));
            }
        };
        Destination::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A cron trigger: the function runs at every slot of `expression` (a 5- or 6-field
/// cron expression, or `rate(5 minutes)`), read in `timezone` (an IANA name, UTC
/// when absent). Written as the expression alone or as a table.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Schedule {
    pub expression: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// After downtime, run the slots that were missed (oldest first, at most
    /// [`Limits::MAX_CATCH_UP_SLOTS`]) instead of skipping to the next one.
    #[serde(default, skip_serializing_if = "is_false")]
    pub catch_up: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Table(Table),
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            expression: String,
            #[serde(default)]
            timezone: Option<String>,
            #[serde(default)]
            catch_up: bool,
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Text(expression) => Schedule {
                expression,
                timezone: None,
                catch_up: false,
            },
            Raw::Table(t) => Schedule {
                expression: t.expression,
                timezone: t.timezone,
                catch_up: t.catch_up,
            },
        })
    }
}

impl Schedule {
    /// What identifies this schedule's persisted state (the last slot it ran): a
    /// changed expression or time zone starts afresh.
    pub fn key(&self) -> String {
        match &self.timezone {
            Some(tz) => format!("{} @ {tz}", self.expression),
            None => self.expression.clone(),
        }
    }
}

/// A queue trigger: the platform receives messages from `queue` and invokes the
/// function with SQS-shaped batches of up to `batch_size`, waiting at most
/// `max_batching_window` to fill one. Written as the queue's name alone or as a table.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct QueueTrigger {
    pub queue: QueueName,
    pub batch_size: u32,
    #[serde(with = "duration_text")]
    pub max_batching_window: Duration,
}

impl QueueTrigger {
    pub fn new(queue: QueueName) -> QueueTrigger {
        QueueTrigger {
            queue,
            batch_size: Limits::DEFAULT_BATCH_SIZE,
            max_batching_window: Duration::ZERO,
        }
    }
}

impl<'de> Deserialize<'de> for QueueTrigger {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(QueueName),
            Table(Table),
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            queue: QueueName,
            #[serde(default = "default_batch_size")]
            batch_size: u32,
            #[serde(default, with = "duration_text")]
            max_batching_window: Duration,
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Text(queue) => QueueTrigger::new(queue),
            Raw::Table(t) => QueueTrigger {
                queue: t.queue,
                batch_size: t.batch_size,
                max_batching_window: t.max_batching_window,
            },
        })
    }
}

fn default_batch_size() -> u32 {
    Limits::DEFAULT_BATCH_SIZE
}

/// A queue's settings (SQS's, by the same names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// How long a received message stays invisible to other receivers.
    #[serde(default = "default_visibility_timeout", with = "duration_text")]
    pub visibility_timeout: Duration,
    /// How long a message is kept before it is dropped.
    #[serde(default = "default_retention", with = "duration_text")]
    pub retention: Duration,
    /// After this many receives without a delete, the next receive moves the message
    /// to `dead_letter_queue` instead of delivering it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_receive_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_queue: Option<QueueName>,
}

fn default_visibility_timeout() -> Duration {
    Limits::DEFAULT_VISIBILITY_TIMEOUT
}

fn default_retention() -> Duration {
    Limits::DEFAULT_RETENTION
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            visibility_timeout: default_visibility_timeout(),
            retention: default_retention(),
            max_receive_count: None,
            dead_letter_queue: None,
        }
    }
}

/// A [`QueueConfig`] value out of bounds; `field` names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct QueueConfigError {
    pub field: &'static str,
    pub message: String,
}

impl QueueConfig {
    /// Checks every field against [`Limits`]. `name` is the queue's own name (a queue
    /// cannot be its own dead-letter queue).
    pub fn validate(&self, name: &QueueName) -> Result<(), QueueConfigError> {
        let fail = |field, message: String| Err(QueueConfigError { field, message });
        let fmt = |d: Duration| humantime::format_duration(d).to_string();
        if self.visibility_timeout > Limits::MAX_VISIBILITY_TIMEOUT {
            return fail(
                "visibility_timeout",
                format!(
                    "visibility_timeout `{}` is out of range: use 0s to {}",
                    fmt(self.visibility_timeout),
                    fmt(Limits::MAX_VISIBILITY_TIMEOUT)
                ),
            );
        }
        if self.retention < Limits::MIN_RETENTION || self.retention > Limits::MAX_RETENTION {
            return fail(
                "retention",
                format!(
                    "retention `{}` is out of range: use {} to {}",
                    fmt(self.retention),
                    fmt(Limits::MIN_RETENTION),
                    fmt(Limits::MAX_RETENTION)
                ),
            );
        }
        match (self.max_receive_count, &self.dead_letter_queue) {
            (Some(n), _) if !(1..=Limits::MAX_RECEIVE_COUNT).contains(&n) => fail(
                "max_receive_count",
                format!(
                    "max_receive_count = {n} is out of range: use 1 to {}",
                    Limits::MAX_RECEIVE_COUNT
                ),
            ),
            (Some(_), None) => fail(
                "dead_letter_queue",
                "max_receive_count needs a dead_letter_queue to move messages to (nothing is dropped)"
                    .to_string(),
            ),
            (None, Some(dlq)) => fail(
                "max_receive_count",
                format!(
                    "dead_letter_queue `{dlq}` needs max_receive_count: after how many receives to move a message"
                ),
            ),
            (_, Some(dlq)) if dlq == name => fail(
                "dead_letter_queue",
                format!("queue `{name}` cannot be its own dead-letter queue"),
            ),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_read_text_and_tables() {
        let d: Destination = serde_json::from_str(r#""queue:failed""#).unwrap();
        assert_eq!(d, Destination::Queue(QueueName::new("failed").unwrap()));
        let d: Destination = serde_json::from_str(r#"{"function":"audit"}"#).unwrap();
        assert_eq!(d.to_string(), "function:audit");
        assert_eq!(serde_json::to_value(&d).unwrap(), "function:audit");
        for bad in [
            r#""topic:x""#,
            r#""failed""#,
            r#""queue:Bad_Name""#,
            r#"{"queue":"a","function":"b"}"#,
        ] {
            let err = serde_json::from_str::<Destination>(bad).unwrap_err();
            assert!(err.to_string().contains("destination"), "{bad}: {err}");
        }
    }

    #[test]
    fn triggers_read_text_and_tables() {
        let t: QueueTrigger = serde_json::from_str(r#""jobs""#).unwrap();
        assert_eq!((t.batch_size, t.max_batching_window), (10, Duration::ZERO));
        let t: QueueTrigger =
            serde_json::from_str(r#"{"queue":"jobs","batch_size":5,"max_batching_window":"2s"}"#).unwrap();
        assert_eq!((t.batch_size, t.max_batching_window), (5, Duration::from_secs(2)));
        let s: Schedule = serde_json::from_str(r#""*/5 * * * *""#).unwrap();
        assert_eq!(s.key(), "*/5 * * * *");
        let s: Schedule = serde_json::from_str(
            r#"{"expression":"rate(5 minutes)","timezone":"Europe/Berlin","catch_up":true}"#,
        )
        .unwrap();
        assert!(s.catch_up);
        assert_eq!(s.key(), "rate(5 minutes) @ Europe/Berlin");
    }

    #[test]
    fn queue_config_is_checked() {
        let name = QueueName::new("jobs").unwrap();
        QueueConfig::default().validate(&name).unwrap();
        let c = QueueConfig {
            max_receive_count: Some(3),
            ..QueueConfig::default()
        };
        assert_eq!(c.validate(&name).unwrap_err().field, "dead_letter_queue");
        let c = QueueConfig {
            max_receive_count: Some(3),
            dead_letter_queue: Some(name.clone()),
            ..QueueConfig::default()
        };
        assert!(c.validate(&name).unwrap_err().message.contains("its own"));
        let c = QueueConfig {
            visibility_timeout: Duration::from_secs(86_400),
            ..QueueConfig::default()
        };
        assert_eq!(c.validate(&name).unwrap_err().field, "visibility_timeout");
    }
}
