//! Grants: what a function version may use beyond its own code — key-value stores,
//! buckets (read, write or both), queues it may send to, functions it may invoke, and
//! outbound hosts ([`crate::OutboundHost`]). Nothing is granted by default; grants are
//! part of a version's configuration (`kv = ["cache"]`, `buckets = ["photos:read"]` in
//! `wisp.toml`), so changing them makes a new version.

use crate::BucketName;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// What a bucket grant allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BucketAccess {
    /// Get, head and list objects.
    Read,
    /// Put, copy into and delete objects (and multipart uploads).
    Write,
    /// Both.
    ReadWrite,
}

impl BucketAccess {
    pub fn reads(self) -> bool {
        matches!(self, BucketAccess::Read | BucketAccess::ReadWrite)
    }

    pub fn writes(self) -> bool {
        matches!(self, BucketAccess::Write | BucketAccess::ReadWrite)
    }
}

/// One bucket a function may use: `"photos"` (read and write), `"photos:read"`,
/// `"photos:write"` or `"photos:read-write"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketGrant {
    pub bucket: BucketName,
    pub access: BucketAccess,
}

/// A bucket grant that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid bucket grant `{text}`: {why}")]
pub struct BucketGrantError {
    text: String,
    why: String,
}

impl FromStr for BucketGrant {
    type Err = BucketGrantError;

    fn from_str(text: &str) -> Result<BucketGrant, BucketGrantError> {
        let error = |why: String| BucketGrantError {
            text: text.to_string(),
            why,
        };
        let (name, access) = match text.split_once(':') {
            None => (text, BucketAccess::ReadWrite),
            Some((name, "read")) => (name, BucketAccess::Read),
            Some((name, "write")) => (name, BucketAccess::Write),
            Some((name, "read-write")) => (name, BucketAccess::ReadWrite),
            Some((_, other)) => {
                return Err(error(format!(
                    "unknown access `{other}`: write BUCKET, BUCKET:read, BUCKET:write or BUCKET:read-write"
                )));
            }
        };
        let bucket = BucketName::new(name).map_err(|e| error(e.to_string()))?;
        Ok(BucketGrant { bucket, access })
    }
}

impl fmt::Display for BucketGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.access {
            BucketAccess::ReadWrite => write!(f, "{}", self.bucket),
            BucketAccess::Read => write!(f, "{}:read", self.bucket),
            BucketAccess::Write => write!(f, "{}:write", self.bucket),
        }
    }
}

impl Serialize for BucketGrant {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BucketGrant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<BucketGrant, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_grants_name_their_access() {
        let g: BucketGrant = "photos".parse().unwrap();
        assert_eq!(g.access, BucketAccess::ReadWrite);
        assert_eq!(g.to_string(), "photos");
        let g: BucketGrant = "photos:read".parse().unwrap();
        assert!(g.access.reads() && !g.access.writes());
        assert_eq!(g.to_string(), "photos:read");
        let g: BucketGrant = "photos:write".parse().unwrap();
        assert!(!g.access.reads() && g.access.writes());
        assert_eq!(
            "photos:read-write".parse::<BucketGrant>().unwrap().to_string(),
            "photos"
        );
        let e = "photos:all".parse::<BucketGrant>().unwrap_err().to_string();
        assert!(e.contains("unknown access `all`"), "{e}");
        let e = "Ph".parse::<BucketGrant>().unwrap_err().to_string();
        assert!(e.starts_with("invalid bucket grant `Ph`"), "{e}");
    }
}
