//! Content addressing: code hashes and version ids.

use sha2::{Digest, Sha256};
use wisp_core::{FunctionConfig, VersionId};

/// Hex SHA-256 of the code.
pub fn code_hash(code: &[u8]) -> String {
    hex::encode(Sha256::digest(code))
}

/// A version's id: SHA-256 over the code hash and the canonical configuration, so
/// the same code and configuration always make the same version.
pub fn version_id(code_hash: &str, config: &FunctionConfig) -> VersionId {
    let mut hasher = Sha256::new();
    hasher.update(b"wisp-version-1\0");
    hasher.update(code_hash.as_bytes());
    hasher.update(b"\0");
    // serde_json writes struct fields in declaration order and BTreeMap keys sorted:
    // the encoding of a validated config is canonical.
    hasher.update(serde_json::to_vec(config).unwrap_or_default());
    VersionId(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_core::Kind;

    #[test]
    fn versions_follow_code_and_config() {
        let a = FunctionConfig::new(Kind::Http);
        let mut b = a.clone();
        b.memory_mb = 64;
        let h = code_hash(b"code");
        assert_eq!(version_id(&h, &a), version_id(&h, &a.clone()));
        assert_ne!(version_id(&h, &a), version_id(&h, &b));
        assert_ne!(version_id(&h, &a), version_id(&code_hash(b"other"), &a));
        assert_eq!(version_id(&h, &a).0.len(), 64);
    }
}
