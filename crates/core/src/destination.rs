//! Where an async invocation's outcome goes: [`Destination`], a function's
//! `on_success` and `on_failure`.

use crate::name::{FunctionName, QueueName};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

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
}
