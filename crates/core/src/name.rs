//! Validated names for functions, queues, topics, key-value stores, secrets, aliases,
//! alarms and namespaces (DNS-label rules).

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("invalid {what} `{name}`: it must not be empty")]
    Empty { what: &'static str, name: String },
    #[error("invalid {what} `{name}`: it must be at most 63 characters")]
    TooLong { what: &'static str, name: String },
    #[error("invalid {what} `{name}`: use lowercase letters, digits and '-', starting with a letter")]
    BadCharacter { what: &'static str, name: String },
    #[error("invalid {what} `{name}`: it must not end with '-'")]
    TrailingHyphen { what: &'static str, name: String },
}

fn check_label(what: &'static str, name: &str) -> Result<(), NameError> {
    let owned = || name.to_string();
    if name.is_empty() {
        return Err(NameError::Empty { what, name: owned() });
    }
    if name.len() > 63 {
        return Err(NameError::TooLong { what, name: owned() });
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !first_ok
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(NameError::BadCharacter { what, name: owned() });
    }
    if name.ends_with('-') {
        return Err(NameError::TrailingHyphen { what, name: owned() });
    }
    Ok(())
}

macro_rules! label_type {
    ($(#[$doc:meta])* $ty:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $ty(String);

        impl $ty {
            /// Checks `name` against the DNS-label rules.
            pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
                let name = name.into();
                check_label($what, &name)?;
                Ok($ty(name))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::new(s)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $ty::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

label_type!(
    /// A function's name: 1–63 characters of `a-z`, `0-9` and `-`, starting with a letter.
    FunctionName,
    "function name"
);
label_type!(
    /// A queue's name: the same rules as a function's.
    QueueName,
    "queue name"
);
label_type!(
    /// A topic's name: the same rules as a queue's.
    TopicName,
    "topic name"
);
label_type!(
    /// A key-value store's name: the same rules as a function's.
    KvStoreName,
    "key-value store name"
);
label_type!(
    /// A secret's name: the same rules as a function's (`db`, `stripe-key`), so it is a
    /// key of any backend (a JetStream KV key, a Kubernetes Secret name) as written.
    SecretName,
    "secret name"
);
label_type!(
    /// An alias of a function's versions (`live`, `beta`): the same rules as a
    /// function's name, so it never reads as a version number.
    AliasName,
    "alias name"
);
label_type!(
    /// An alarm's name: the same rules as a function's.
    AlarmName,
    "alarm name"
);
label_type!(
    /// A tenant. Every resource belongs to one; a single node uses [`Namespace::DEFAULT`].
    Namespace,
    "namespace"
);

impl AliasName {
    /// `live`: the alias every function has.
    pub fn live() -> AliasName {
        AliasName(crate::version::LIVE.to_string())
    }
}

impl Namespace {
    /// The namespace of a single-node install.
    pub const DEFAULT: &'static str = "default";

    /// The `default` namespace.
    pub fn default_namespace() -> Namespace {
        Namespace(Self::DEFAULT.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "hello", "hello-world", "f1", &"a".repeat(63)] {
            assert!(FunctionName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_bad_names_with_the_reason() {
        let err = FunctionName::new("Foo_1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid function name `Foo_1`: use lowercase letters, digits and '-', starting with a letter"
        );
        assert!(matches!(FunctionName::new(""), Err(NameError::Empty { .. })));
        assert!(matches!(
            FunctionName::new("1abc"),
            Err(NameError::BadCharacter { .. })
        ));
        assert!(matches!(
            FunctionName::new("abc-"),
            Err(NameError::TrailingHyphen { .. })
        ));
        assert!(matches!(
            FunctionName::new("a".repeat(64)),
            Err(NameError::TooLong { .. })
        ));
        assert!(serde_json::from_str::<FunctionName>("\"UPPER\"").is_err());
    }

    #[test]
    fn kv_store_names_follow_the_same_rules() {
        assert!(KvStoreName::new("sessions-2").is_ok());
        assert_eq!(
            KvStoreName::new("Carts").unwrap_err().to_string(),
            "invalid key-value store name `Carts`: use lowercase letters, digits and '-', starting with a letter"
        );
    }
}
