//! JWT verification for `auth = "jwt"` routes, built once per route table from the
//! route's `jwt` table (an HS256 secret, or the RS256/ES256 keys of a JWKS).
//!
//! The key decides the algorithm, never the token: a secret verifies HS256 only, an
//! RSA key RS256 only, a P-256 key ES256 only, so `alg: none` and algorithm
//! confusion (an HS256 token "signed" with an RSA public key) are refused. Tokens
//! must carry `exp`, `iss` and `aud`; `exp` and `nbf` are checked with
//! [`LEEWAY_SECS`] of leeway for clock skew.

use super::access::AuthFailure;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use wisp_core::JwtConfig;
use wisp_core::route_auth::{JwkKind, jwks_keys};

/// Seconds of clock skew allowed on `exp` and `nbf`.
pub(crate) const LEEWAY_SECS: u64 = 30;

/// A route's verifier.
pub(crate) struct Verifier {
    keys: Vec<Key>,
    /// The validation of each algorithm the keys use.
    validations: Vec<(Algorithm, Validation)>,
}

struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// A verified token.
pub(crate) struct Verified<'t> {
    pub(crate) claims: Map<String, Value>,
    /// The token's payload as sent: base64url JSON, exactly what was signed.
    pub(crate) payload: &'t str,
}

impl Verified<'_> {
    /// The `sub` claim, if it is a string.
    pub(crate) fn subject(&self) -> Option<&str> {
        self.claims.get("sub").and_then(Value::as_str)
    }
}

impl Verifier {
    /// Builds the verifier of a checked `jwt` table.
    pub(crate) fn new(config: &JwtConfig) -> Result<Verifier, String> {
        let mut keys = Vec::new();
        if let Some(secret) = &config.secret {
            keys.push(Key {
                kid: None,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.as_bytes()),
            });
        }
        if let Some(jwks) = &config.jwks {
            for jwk in jwks_keys(jwks)? {
                let (alg, key) = match &jwk.key {
                    JwkKind::Rsa { n, e } => (Algorithm::RS256, DecodingKey::from_rsa_components(n, e)),
                    JwkKind::Ec { x, y } => (Algorithm::ES256, DecodingKey::from_ec_components(x, y)),
                };
                let key = key.map_err(|e| format!("a key of the JWKS is unusable: {e}"))?;
                keys.push(Key {
                    kid: jwk.kid,
                    alg,
                    key,
                });
            }
        }
        if keys.is_empty() {
            return Err("no key verifies tokens".into());
        }
        let mut validations: Vec<(Algorithm, Validation)> = Vec::new();
        for key in &keys {
            if validations.iter().any(|(alg, _)| *alg == key.alg) {
                continue;
            }
            let mut v = Validation::new(key.alg);
            v.leeway = LEEWAY_SECS;
            v.validate_nbf = true;
            v.set_issuer(&[&config.issuer]);
            v.set_audience(&config.audience);
            v.set_required_spec_claims(&["exp", "iss", "aud"]);
            validations.push((key.alg, v));
        }
        Ok(Verifier { keys, validations })
    }

    /// Verifies `token`: its key (by `kid`, or the only one), its algorithm against
    /// the key's, its signature and its claims.
    pub(crate) fn verify<'t>(&self, token: &'t str) -> Result<Verified<'t>, AuthFailure> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            AuthFailure::invalid_token(
                "the token is not a JWT with a supported algorithm (HS256, RS256 or ES256)",
            )
        })?;
        let key = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid.as_str()))
                .or_else(|| match self.keys.as_slice() {
                    // A lone secret has no kid to match: a token naming one still uses it.
                    [only] if only.kid.is_none() && only.alg == Algorithm::HS256 => Some(only),
                    _ => None,
                }),
            None => match self.keys.as_slice() {
                [only] => Some(only),
                _ => None,
            },
        }
        .ok_or_else(|| AuthFailure::invalid_token("no key of this route matches the token's `kid`"))?;
        if header.alg != key.alg {
            return Err(AuthFailure::invalid_token(format!(
                "the token is signed with {:?}; this route's key takes {:?}",
                header.alg, key.alg
            )));
        }
        let validation = self
            .validations
            .iter()
            .find(|(alg, _)| *alg == key.alg)
            .map(|(_, v)| v)
            .ok_or_else(|| AuthFailure::invalid_token("no validation for the token's algorithm"))?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, validation)
            .map_err(|e| AuthFailure::invalid_token(describe(e.kind())))?;
        let payload = token.split('.').nth(1).unwrap_or_default();
        Ok(Verified {
            claims: data.claims,
            payload,
        })
    }
}

fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (`nbf`)".into(),
        ErrorKind::InvalidIssuer => "the token's issuer (`iss`) is not accepted here".into(),
        ErrorKind::InvalidAudience => "the token's audience (`aud`) is not accepted here".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}` claim"),
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not match this route's key".into(),
        _ => "the token is malformed".into(),
    }
}

/// The claims as API Gateway's JWT authorizer passes them: every value as text
/// (strings as they are, anything else as JSON), and the scopes of `scope` (a
/// space-separated string) or `scp` (a list).
pub(crate) fn authorizer(claims: &Map<String, Value>) -> Value {
    let text: Map<String, Value> = claims
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), Value::String(v))
        })
        .collect();
    let scopes: Option<Vec<Value>> = match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(s)), _) => Some(s.split_whitespace().map(|s| Value::String(s.into())).collect()),
        (_, Some(Value::Array(list))) => Some(list.clone()),
        _ => None,
    };
    serde_json::json!({ "jwt": { "claims": text, "scopes": scopes } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn config() -> JwtConfig {
        JwtConfig {
            issuer: "https://issuer".into(),
            audience: vec!["api".into(), "web".into()],
            secret: Some(SECRET.into()),
            jwks: None,
        }
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn claims() -> Value {
        json!({"sub": "ada", "iss": "https://issuer", "aud": "web", "exp": now() + 600, "scope": "read write"})
    }

    fn hs(claims: &Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn refused(v: &Verifier, token: &str) -> String {
        match v.verify(token) {
            Ok(_) => panic!("{token} was accepted"),
            Err(e) => e.description,
        }
    }

    #[test]
    fn good_tokens_pass_with_their_claims() {
        let v = Verifier::new(&config()).unwrap();
        let token = hs(&claims());
        let ok = v.verify(&token).unwrap();
        assert_eq!(ok.subject(), Some("ada"));
        assert_eq!(ok.payload, token.split('.').nth(1).unwrap());
        let a = authorizer(&ok.claims);
        assert_eq!(a["jwt"]["claims"]["sub"], "ada");
        assert!(a["jwt"]["claims"]["exp"].is_string());
        assert_eq!(a["jwt"]["scopes"], json!(["read", "write"]));
    }

    #[test]
    fn bad_tokens_are_refused_with_a_reason() {
        let v = Verifier::new(&config()).unwrap();
        let with = |f: &dyn Fn(&mut Value)| {
            let mut c = claims();
            f(&mut c);
            hs(&c)
        };
        assert_eq!(
            refused(&v, &with(&|c| c["exp"] = json!(now() - 120))),
            "the token has expired"
        );
        // Within the leeway, an expired token still passes.
        assert!(v.verify(&with(&|c| c["exp"] = json!(now() - 5))).is_ok());
        assert_eq!(
            refused(&v, &with(&|c| c["nbf"] = json!(now() + 300))),
            "the token is not valid yet (`nbf`)"
        );
        assert_eq!(
            refused(&v, &with(&|c| c["aud"] = json!("other"))),
            "the token's audience (`aud`) is not accepted here"
        );
        assert_eq!(
            refused(&v, &with(&|c| c["iss"] = json!("https://evil"))),
            "the token's issuer (`iss`) is not accepted here"
        );
        assert_eq!(
            refused(
                &v,
                &with(&|c| c.as_object_mut().unwrap().remove("aud").map(drop).unwrap())
            ),
            "the token has no `aud` claim"
        );
        let other = encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(b"another secret of thirty-two bytes!!"),
        )
        .unwrap();
        assert_eq!(refused(&v, &other), "the token's signature does not verify");
        assert!(refused(&v, "not.a.jwt").contains("not a JWT"));
        // `alg: none`, unsigned.
        let b64 = |v: &Value| {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&claims())
        );
        assert!(refused(&v, &none).contains("not a JWT with a supported algorithm"));
        // HS384 with the right secret is still not this route's algorithm.
        let hs384 = encode(
            &Header::new(Algorithm::HS384),
            &claims(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(refused(&v, &hs384).contains("signed with HS384"));
    }
}
