//! The triggers a function declares besides its routes: cron schedules
//! ([`Schedule`]) and queue triggers ([`QueueTrigger`]).
//!
//! Parsing and checking a schedule's expression lives in [`crate::schedule`].

use crate::duration_text;
use crate::limits::Limits;
use crate::name::QueueName;
use serde::{Deserialize, Deserializer, Serialize};
use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
