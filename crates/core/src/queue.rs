//! A queue's own settings ([`QueueConfig`]): the platform resource that queue
//! triggers read from and destinations send to.

use crate::duration_text;
use crate::limits::Limits;
use crate::name::QueueName;
use serde::{Deserialize, Serialize};
use std::time::Duration;

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
