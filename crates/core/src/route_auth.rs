//! Who may call a route: `auth = "public" | "key" | "jwt"` and the `jwt` table
//! (issuer, audience, and an HS256 `secret` or a JWKS of RS256/ES256 keys), as the
//! API takes them, checked here; the gateway verifies tokens (in the engine).
//!
//! A JWKS is kept as the JSON it was given in and read by [`jwks_keys`], which both
//! the check here and the gateway use, so what is accepted at deploy is exactly
//! what verifies requests.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a configuration shows instead of an HS256 secret.
pub const REDACTED: &str = "(redacted)";

/// The shortest HS256 secret accepted: RFC 7518 §3.2 wants a key as long as the hash.
pub const MIN_SECRET_BYTES: usize = 32;

/// A route's authentication.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AuthMode {
    /// Anyone may call it (the default).
    #[default]
    Public,
    /// A Wisp API key with invoke rights in the function's namespace, as a bearer token.
    Key,
    /// A JWT verified against the route's `jwt` table, as a bearer token.
    Jwt,
    /// A value that is none of these, kept so that `validate` can refuse it with
    /// the field's name; never in a validated configuration.
    Unknown(String),
}

impl AuthMode {
    pub fn as_str(&self) -> &str {
        match self {
            AuthMode::Public => "public",
            AuthMode::Key => "key",
            AuthMode::Jwt => "jwt",
            AuthMode::Unknown(other) => other,
        }
    }

    pub fn parse(text: &str) -> AuthMode {
        match text {
            "public" => AuthMode::Public,
            "key" => AuthMode::Key,
            "jwt" => AuthMode::Jwt,
            other => AuthMode::Unknown(other.to_string()),
        }
    }

    pub fn is_public(&self) -> bool {
        *self == AuthMode::Public
    }
}

impl Serialize for AuthMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AuthMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| AuthMode::parse(&s))
    }
}

/// How a route's JWTs are verified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The `iss` a token must carry.
    pub issuer: String,
    /// The `aud` values accepted (a token's `aud` must name one). One string or a list.
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// An HS256 shared secret. Never shown back by the API ([`REDACTED`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// A JSON Web Key Set (`{"keys": [...]}`) of RS256 and ES256 public keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// A refused `jwt` table: `key` names the key in it (empty: the table as a whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtError {
    pub key: &'static str,
    pub message: String,
}

impl JwtConfig {
    /// Checks the table: an issuer, an audience, and exactly one of a long enough
    /// secret or a JWKS with a usable key.
    pub fn check(&self) -> Result<(), JwtError> {
        let fail = |key, message: String| Err(JwtError { key, message });
        if self.issuer.trim().is_empty() {
            return fail(
                "issuer",
                "the issuer is empty: give the `iss` tokens carry".into(),
            );
        }
        if self.audience.is_empty() || self.audience.iter().any(|a| a.trim().is_empty()) {
            return fail(
                "audience",
                "give the audience (`aud`) tokens must carry: a string or a list of strings".into(),
            );
        }
        match (&self.secret, &self.jwks) {
            (None, None) => fail(
                "",
                "give the keys that sign tokens: an HS256 `secret` or a `jwks`".into(),
            ),
            (Some(_), Some(_)) => fail(
                "",
                "give either an HS256 `secret` or a `jwks`, not both".into(),
            ),
            (Some(secret), None) if secret.len() < MIN_SECRET_BYTES => fail(
                "secret",
                format!(
                    "the HS256 secret is {} bytes; use at least {MIN_SECRET_BYTES} (RFC 7518 §3.2)",
                    secret.len()
                ),
            ),
            (Some(_), None) => Ok(()),
            (None, Some(jwks)) => match jwks_keys(jwks) {
                Ok(keys) if keys.is_empty() => fail(
                    "jwks",
                    "the JWKS has no usable key: Wisp verifies with RSA keys (RS256) and EC P-256 keys (ES256) whose `use` is \"sig\" or absent".into(),
                ),
                Ok(_) => Ok(()),
                Err(e) => fail("jwks", e),
            },
        }
    }

    /// The table with its secret replaced by [`REDACTED`].
    pub fn redacted(&self) -> JwtConfig {
        JwtConfig {
            secret: self.secret.as_ref().map(|_| REDACTED.to_string()),
            ..self.clone()
        }
    }
}

/// A public key of a JWKS that Wisp verifies with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwkKey {
    pub kid: Option<String>,
    pub key: JwkKind,
}

/// The key material, base64url as the JWK carries it (checked to decode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwkKind {
    /// RS256.
    Rsa { n: String, e: String },
    /// ES256 (P-256).
    Ec { x: String, y: String },
}

/// The usable keys of a JWKS, skipping keys of other types, curves, algorithms or
/// uses; an error when the JSON is not a JWKS or a usable-looking key is malformed.
pub fn jwks_keys(jwks: &Value) -> Result<Vec<JwkKey>, String> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("the JWKS is not a JSON Web Key Set: expected an object with a `keys` array")?;
    let mut usable = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let text = |name: &str| key.get(name).and_then(Value::as_str);
        if text("use").is_some_and(|u| u != "sig") {
            continue;
        }
        let b64 = |name: &str, len: Option<usize>| -> Result<String, String> {
            let value = text(name).ok_or_else(|| format!("key {i} of the JWKS has no `{name}`"))?;
            let bytes = URL_SAFE_NO_PAD
                .decode(value)
                .map_err(|_| format!("`{name}` of key {i} of the JWKS is not base64url"))?;
            if len.is_some_and(|len| bytes.len() != len) {
                return Err(format!(
                    "`{name}` of key {i} of the JWKS is not a P-256 coordinate"
                ));
            }
            Ok(value.to_string())
        };
        let kind = match (text("kty"), text("alg")) {
            (Some("RSA"), None | Some("RS256")) => JwkKind::Rsa {
                n: b64("n", None)?,
                e: b64("e", None)?,
            },
            (Some("EC"), None | Some("ES256")) if text("crv") == Some("P-256") => JwkKind::Ec {
                x: b64("x", Some(32))?,
                y: b64("y", Some(32))?,
            },
            _ => continue,
        };
        usable.push(JwkKey {
            kid: text("kid").map(str::to_string),
            key: kind,
        });
    }
    Ok(usable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(secret: Option<&str>, jwks: Option<Value>) -> JwtConfig {
        JwtConfig {
            issuer: "https://issuer".into(),
            audience: vec!["api".into()],
            secret: secret.map(Into::into),
            jwks,
        }
    }

    #[test]
    fn auth_modes_read_any_text_and_keep_the_unknown() {
        let m: AuthMode = serde_json::from_str("\"jwt\"").unwrap();
        assert_eq!(m, AuthMode::Jwt);
        let m: AuthMode = serde_json::from_str("\"jwks\"").unwrap();
        assert_eq!(m, AuthMode::Unknown("jwks".into()));
        assert_eq!(serde_json::to_string(&AuthMode::Key).unwrap(), "\"key\"");
    }

    #[test]
    fn audience_is_one_or_many() {
        let c: JwtConfig = serde_json::from_str(r#"{"issuer":"i","audience":"a","secret":"s"}"#).unwrap();
        assert_eq!(c.audience, vec!["a"]);
        let c: JwtConfig =
            serde_json::from_str(r#"{"issuer":"i","audience":["a","b"],"secret":"s"}"#).unwrap();
        assert_eq!(c.audience, vec!["a", "b"]);
    }

    #[test]
    fn tables_need_one_kind_of_key() {
        let secret = "0123456789abcdef0123456789abcdef";
        config(Some(secret), None).check().unwrap();
        assert_eq!(config(None, None).check().unwrap_err().key, "");
        assert_eq!(
            config(Some(secret), Some(json!({"keys": []})))
                .check()
                .unwrap_err()
                .key,
            ""
        );
        let e = config(Some("short"), None).check().unwrap_err();
        assert_eq!(e.key, "secret");
        let e = config(None, Some(json!({"keys": [{"kty": "oct", "k": "AAAA"}]})))
            .check()
            .unwrap_err();
        assert_eq!(e.key, "jwks");
        assert!(
            e.message.starts_with("the JWKS has no usable key"),
            "{}",
            e.message
        );
        let e = config(None, Some(json!([1]))).check().unwrap_err();
        assert!(e.message.contains("not a JSON Web Key Set"), "{}", e.message);
        let redacted = config(Some(secret), None).redacted();
        assert_eq!(redacted.secret.as_deref(), Some(REDACTED));
    }

    #[test]
    fn jwks_keep_rsa_and_p256_signing_keys() {
        let p = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "crv": "P-256", "x": p, "y": p},
            {"kty": "EC", "crv": "P-384", "x": p, "y": p},
        ]});
        let keys = jwks_keys(&jwks).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].kid.as_deref(), Some("r"));
        assert!(matches!(keys[1].key, JwkKind::Ec { .. }));
        let bad = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "AQAB", "y": p}]});
        assert!(jwks_keys(&bad).unwrap_err().contains("not a P-256 coordinate"));
    }
}
