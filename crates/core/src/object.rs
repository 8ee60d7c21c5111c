//! Object storage's vocabulary: bucket names and object keys with S3's rules, the
//! event names an upload or a delete produces, the storage trigger a function declares
//! (bucket, events, prefix, suffix), the HTTP headers an object keeps
//! ([`OBJECT_HEADERS`]), and [`ObjectError`], what an object operation refuses with,
//! named as S3 names it.

use crate::{ErrorCode, UnixMillis};
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// The longest object key S3 accepts, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// A bucket's name, by S3's rules for new buckets: 3 to 63 characters of lowercase
/// letters, digits, `.` and `-`, starting and ending with a letter or digit, no `..`,
/// not shaped like an IPv4 address, not starting `xn--` nor ending `-s3alias`.
/// Buckets belong to a namespace: two namespaces may each have a bucket `photos`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct BucketName(String);

impl BucketName {
    pub fn new(name: &str) -> Result<BucketName, ObjectError> {
        let bad = |why: &str| {
            Err(ObjectError::InvalidBucketName(format!(
                "bucket name `{name}` {why}"
            )))
        };
        if !(3..=63).contains(&name.len()) {
            return bad("must be 3 to 63 characters long");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            return bad("may hold only lowercase letters, digits, `.` and `-`");
        }
        let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if !edge(name.as_bytes()[0]) || !edge(name.as_bytes()[name.len() - 1]) {
            return bad("must start and end with a letter or a digit");
        }
        if name.contains("..") {
            return bad("may not hold two dots in a row");
        }
        if name.parse::<std::net::Ipv4Addr>().is_ok() {
            return bad("may not be shaped like an IP address");
        }
        if name.starts_with("xn--") || name.ends_with("-s3alias") || name.ends_with("--ol-s3") {
            return bad("uses a prefix or suffix S3 reserves");
        }
        Ok(BucketName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BucketName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for BucketName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        BucketName::new(&text).map_err(serde::de::Error::custom)
    }
}

/// The HTTP headers an object keeps when a write gives them and answers with on every
/// read, as S3 does: stored by these lowercase names, values as given (`expires` an
/// HTTP date, `Tue, 14 Nov 2023 22:13:20 GMT`).
pub const OBJECT_HEADERS: [&str; 5] = [
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];

/// Checks an object key: 1 to [`MAX_KEY_BYTES`] bytes.
pub fn check_key(key: &str) -> Result<(), ObjectError> {
    if key.is_empty() {
        return Err(ObjectError::InvalidKey("an object key may not be empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(ObjectError::KeyTooLong { bytes: key.len() });
    }
    Ok(())
}

/// What happened to an object, as S3 names its notification events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StorageEvent {
    Put,
    Copy,
    CompleteMultipartUpload,
    Delete,
}

impl StorageEvent {
    /// The event's name in a notification (`eventName`, without S3's `s3:` prefix).
    pub fn name(self) -> &'static str {
        match self {
            StorageEvent::Put => "ObjectCreated:Put",
            StorageEvent::Copy => "ObjectCreated:Copy",
            StorageEvent::CompleteMultipartUpload => "ObjectCreated:CompleteMultipartUpload",
            StorageEvent::Delete => "ObjectRemoved:Delete",
        }
    }
}

/// An event name a subscription asks for: a whole name (`ObjectCreated:Put`) or a
/// family (`ObjectCreated:*`, `ObjectRemoved:*`), with or without S3's `s3:` prefix.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EventPattern(String);

const EVENT_NAMES: &[&str] = &[
    "ObjectCreated:*",
    "ObjectCreated:Put",
    "ObjectCreated:Post",
    "ObjectCreated:Copy",
    "ObjectCreated:CompleteMultipartUpload",
    "ObjectRemoved:*",
    "ObjectRemoved:Delete",
    "ObjectRemoved:DeleteMarkerCreated",
];

impl EventPattern {
    pub fn new(text: &str) -> Result<EventPattern, String> {
        let bare = text.strip_prefix("s3:").unwrap_or(text);
        match EVENT_NAMES.iter().find(|n| **n == bare) {
            Some(name) => Ok(EventPattern((*name).to_string())),
            None => Err(format!(
                "unknown storage event `{text}`: use one of {}",
                EVENT_NAMES.join(", ")
            )),
        }
    }

    /// `ObjectCreated:*` (what a trigger that names no events gets).
    pub fn created() -> EventPattern {
        EventPattern("ObjectCreated:*".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, event: StorageEvent) -> bool {
        match self.0.strip_suffix('*') {
            Some(family) => event.name().starts_with(family),
            None => self.0 == event.name(),
        }
    }
}

impl<'de> Deserialize<'de> for EventPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        EventPattern::new(&text).map_err(serde::de::Error::custom)
    }
}

/// A storage trigger: the function is invoked asynchronously, with an S3 notification,
/// for each event in `events` on an object of `bucket` whose key starts with `prefix`
/// and ends with `suffix`. Written as the bucket's name alone or as a table.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct StorageTrigger {
    pub bucket: BucketName,
    pub events: Vec<EventPattern>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub suffix: String,
}

impl StorageTrigger {
    pub fn new(bucket: BucketName) -> StorageTrigger {
        StorageTrigger {
            bucket,
            events: vec![EventPattern::created()],
            prefix: String::new(),
            suffix: String::new(),
        }
    }

    /// Whether `event` on `key` (of this trigger's bucket) is one it asks for.
    pub fn matches(&self, event: StorageEvent, key: &str) -> bool {
        self.events.iter().any(|p| p.matches(event))
            && key.starts_with(&self.prefix)
            && key.ends_with(&self.suffix)
    }
}

impl<'de> Deserialize<'de> for StorageTrigger {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            bucket: BucketName,
            /// Absent: `ObjectCreated:*`; an empty list stays empty (and is refused by
            /// the configuration's check).
            events: Option<Vec<EventPattern>>,
            #[serde(default)]
            prefix: String,
            #[serde(default)]
            suffix: String,
        }
        struct TextOrTable;
        impl<'de> serde::de::Visitor<'de> for TextOrTable {
            type Value = StorageTrigger;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a bucket name, or a table with `bucket` and optional `events`, `prefix` and `suffix`",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StorageTrigger, E> {
                BucketName::new(v).map(StorageTrigger::new).map_err(E::custom)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<StorageTrigger, A::Error> {
                let t = Table::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(StorageTrigger {
                    bucket: t.bucket,
                    events: t.events.unwrap_or_else(|| vec![EventPattern::created()]),
                    prefix: t.prefix,
                    suffix: t.suffix,
                })
            }
        }
        d.deserialize_any(TextOrTable)
    }
}

/// A bucket's notification rule, set through S3's `PutBucketNotificationConfiguration`
/// (a `LambdaFunctionConfiguration`): events on the bucket's objects invoke `function`
/// of the bucket's namespace, as a storage trigger in its `wisp.toml` would.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRule {
    /// The rule's id (S3's `Id`; generated when the request gives none).
    pub id: String,
    pub function: crate::FunctionName,
    pub events: Vec<EventPattern>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub suffix: String,
}

impl NotificationRule {
    /// Whether `event` on `key` is one this rule asks for.
    pub fn matches(&self, event: StorageEvent, key: &str) -> bool {
        self.events.iter().any(|p| p.matches(event))
            && key.starts_with(&self.prefix)
            && key.ends_with(&self.suffix)
    }
}

/// Why an object operation was refused. [`ObjectError::s3_code`] is the code S3
/// answers with; [`ObjectError::code`] the one Wisp's own API answers with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    #[error("{0}")]
    InvalidBucketName(String),
    #[error("{0}")]
    InvalidKey(String),
    #[error("the object key is {bytes} bytes long; a key holds at most {MAX_KEY_BYTES} bytes")]
    KeyTooLong { bytes: usize },
    #[error("no bucket `{0}`")]
    NoSuchBucket(String),
    #[error("no object `{0}`")]
    NoSuchKey(String),
    #[error("no multipart upload `{0}`")]
    NoSuchUpload(String),
    #[error("the bucket `{0}` exists already")]
    BucketExists(String),
    #[error("the bucket `{0}` is not empty: delete its objects first")]
    BucketNotEmpty(String),
    #[error("a precondition of the request does not hold")]
    PreconditionFailed,
    /// A conditional read's `If-None-Match` / `If-Modified-Since` found the object
    /// unchanged; the answer (304) still carries its validators.
    #[error("the object was not modified")]
    NotModified { etag: String, modified_ms: UnixMillis },
    #[error("the range is not satisfiable: the object is {size} bytes long")]
    InvalidRange { size: u64 },
    #[error("the object is larger than {max} bytes, the most an object may hold")]
    EntityTooLarge { max: u64 },
    #[error("part {part} is {size} bytes; every part but the last must be at least {min} bytes")]
    EntityTooSmall { part: u32, size: u64, min: u64 },
    #[error("{0}")]
    InvalidPart(String),
    #[error("the parts must be listed in ascending order of part number")]
    InvalidPartOrder,
    #[error("the body's MD5 is not the Content-MD5 the request declared")]
    BadDigest,
    #[error("the body ended before its declared length")]
    IncompleteBody,
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Internal(String),
}

impl ObjectError {
    /// The code S3 answers this with.
    pub fn s3_code(&self) -> &'static str {
        match self {
            ObjectError::InvalidBucketName(_) => "InvalidBucketName",
            ObjectError::InvalidKey(_) => "InvalidArgument",
            ObjectError::KeyTooLong { .. } => "KeyTooLongError",
            ObjectError::NoSuchBucket(_) => "NoSuchBucket",
            ObjectError::NoSuchKey(_) => "NoSuchKey",
            ObjectError::NoSuchUpload(_) => "NoSuchUpload",
            ObjectError::BucketExists(_) => "BucketAlreadyOwnedByYou",
            ObjectError::BucketNotEmpty(_) => "BucketNotEmpty",
            ObjectError::PreconditionFailed => "PreconditionFailed",
            ObjectError::NotModified { .. } => "NotModified",
            ObjectError::InvalidRange { .. } => "InvalidRange",
            ObjectError::EntityTooLarge { .. } => "EntityTooLarge",
            ObjectError::EntityTooSmall { .. } => "EntityTooSmall",
            ObjectError::InvalidPart(_) => "InvalidPart",
            ObjectError::InvalidPartOrder => "InvalidPartOrder",
            ObjectError::BadDigest => "BadDigest",
            ObjectError::IncompleteBody => "IncompleteBody",
            ObjectError::QuotaExceeded(_) => "QuotaExceeded",
            ObjectError::InvalidArgument(_) => "InvalidArgument",
            ObjectError::Internal(_) => "InternalError",
        }
    }

    /// The code Wisp's own API answers this with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ObjectError::InvalidBucketName(_) => ErrorCode::InvalidName,
            ObjectError::InvalidKey(_)
            | ObjectError::KeyTooLong { .. }
            | ObjectError::EntityTooSmall { .. }
            | ObjectError::InvalidPart(_)
            | ObjectError::InvalidPartOrder
            | ObjectError::BadDigest
            | ObjectError::IncompleteBody
            | ObjectError::InvalidArgument(_) => ErrorCode::InvalidRequest,
            ObjectError::NoSuchBucket(_) => ErrorCode::BucketNotFound,
            ObjectError::NoSuchKey(_) | ObjectError::NoSuchUpload(_) => ErrorCode::ObjectNotFound,
            ObjectError::BucketExists(_) => ErrorCode::BucketExists,
            ObjectError::BucketNotEmpty(_) => ErrorCode::BucketNotEmpty,
            ObjectError::PreconditionFailed | ObjectError::NotModified { .. } => {
                ErrorCode::PreconditionFailed
            }
            ObjectError::InvalidRange { .. } => ErrorCode::RangeNotSatisfiable,
            ObjectError::EntityTooLarge { .. } => ErrorCode::PayloadTooLarge,
            ObjectError::QuotaExceeded(_) => ErrorCode::StorageQuotaExceeded,
            ObjectError::Internal(_) => ErrorCode::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3s_rules() {
        for good in ["abc", "my-bucket.v2", "a".repeat(63).as_str(), "1photos"] {
            assert!(BucketName::new(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "My-Bucket",
            "under_score",
            "-start",
            "end-",
            "a..b",
            "192.168.1.1",
            "xn--abc",
            "abc-s3alias",
        ] {
            let e = BucketName::new(bad).unwrap_err();
            assert_eq!(e.s3_code(), "InvalidBucketName", "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn keys_hold_one_to_1024_bytes() {
        assert!(check_key("a").is_ok());
        assert!(check_key(&"k".repeat(1024)).is_ok());
        assert_eq!(
            check_key(&"k".repeat(1025)),
            Err(ObjectError::KeyTooLong { bytes: 1025 })
        );
        assert!(check_key("").is_err());
    }

    #[test]
    fn triggers_match_events_prefixes_and_suffixes() {
        let t: StorageTrigger = serde_json::from_str(r#""photos""#).unwrap();
        assert!(t.matches(StorageEvent::Put, "a.jpg"));
        assert!(t.matches(StorageEvent::CompleteMultipartUpload, "a.jpg"));
        assert!(!t.matches(StorageEvent::Delete, "a.jpg"));
        let t: StorageTrigger = serde_json::from_str(
            r#"{"bucket":"photos","events":["s3:ObjectRemoved:*","ObjectCreated:Copy"],"prefix":"in/","suffix":".jpg"}"#,
        )
        .unwrap();
        assert!(t.matches(StorageEvent::Delete, "in/a.jpg"));
        assert!(t.matches(StorageEvent::Copy, "in/a.jpg"));
        assert!(!t.matches(StorageEvent::Put, "in/a.jpg"));
        assert!(!t.matches(StorageEvent::Delete, "out/a.jpg"));
        assert!(!t.matches(StorageEvent::Delete, "in/a.png"));
        let e = serde_json::from_str::<StorageTrigger>(r#"{"bucket":"photos","events":["Created"]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown storage event `Created`"), "{e}");
    }
}
