//! Who may call a user route and how often: a route's [`Access`] (its auth and its
//! limiter), checked on the request path before the function is admitted, so a
//! refused request takes no slot and runs nothing.
//!
//! Refusals follow RFC 6750: 401 `unauthorized` with `WWW-Authenticate: Bearer
//! realm="wisp"` (and `error="invalid_token"` with a description when a token was
//! sent but is not good), 403 `forbidden` with `error="insufficient_scope"` for a
//! key whose role may not invoke.

use super::jwt::{Verified, Verifier};
use super::rate::Limiter;
use crate::{Engine, EngineError};
use http::{HeaderMap, HeaderValue, header};
use std::sync::Arc;
use wisp_core::{ErrorCode, Namespace, Permission, Role};

/// The header that carries a JWT route's verified claims to an http function:
/// the token's payload, base64url JSON. Removed from every request first, so a
/// client can never send its own.
pub const JWT_CLAIMS_HEADER: &str = "x-wisp-jwt-claims";

/// A route's auth and limiter, built with the route table.
pub(crate) struct Access {
    pub(crate) auth: Auth,
    pub(crate) limiter: Option<Arc<Limiter>>,
}

pub(crate) enum Auth {
    Public,
    Key,
    Jwt(Arc<Verifier>),
}

/// The verified caller of a request.
pub(crate) enum Caller<'t> {
    Anyone,
    /// An API key, by its id.
    Key(String),
    Jwt(Verified<'t>),
}

impl Caller<'_> {
    /// Who a `rate_limit_by = "key"` limit counts: the key's id or the token's `sub`.
    pub(crate) fn identity(&self) -> Option<&str> {
        match self {
            Caller::Anyone => None,
            Caller::Key(id) => Some(id),
            Caller::Jwt(verified) => verified.subject(),
        }
    }
}

/// Why a request was refused by a route's auth.
#[derive(Debug)]
pub(crate) struct AuthFailure {
    pub(crate) code: ErrorCode,
    /// RFC 6750's `error` attribute, if one applies.
    pub(crate) error: Option<&'static str>,
    pub(crate) description: String,
}

impl AuthFailure {
    /// No bearer credentials at all: RFC 6750 §3.1 wants no `error` attribute.
    fn missing(description: impl Into<String>) -> AuthFailure {
        AuthFailure {
            code: ErrorCode::Unauthorized,
            error: None,
            description: description.into(),
        }
    }

    pub(crate) fn invalid_token(description: impl Into<String>) -> AuthFailure {
        AuthFailure {
            code: ErrorCode::Unauthorized,
            error: Some("invalid_token"),
            description: description.into(),
        }
    }

    fn invalid_request(description: impl Into<String>) -> AuthFailure {
        AuthFailure {
            code: ErrorCode::Unauthorized,
            error: Some("invalid_request"),
            description: description.into(),
        }
    }

    fn insufficient_scope(description: impl Into<String>) -> AuthFailure {
        AuthFailure {
            code: ErrorCode::Forbidden,
            error: Some("insufficient_scope"),
            description: description.into(),
        }
    }

    pub(crate) fn into_error(self) -> EngineError {
        let mut challenge = String::from("Bearer realm=\"wisp\"");
        if let Some(error) = self.error {
            // The description is ours: no quotes or backslashes to escape.
            let description = self.description.replace(['"', '\\'], "'");
            challenge.push_str(&format!(
                ", error=\"{error}\", error_description=\"{description}\""
            ));
        }
        let mut e = EngineError::new(self.code, self.description);
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            e.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        e
    }
}

/// The bearer token of a request.
fn bearer(headers: &HeaderMap) -> Result<&str, AuthFailure> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(AuthFailure::missing(
            "this route needs an `Authorization: Bearer <token>` header",
        ));
    };
    let value = value
        .to_str()
        .map_err(|_| AuthFailure::invalid_request("the Authorization header is not text"))?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::missing(
            "this route takes bearer tokens: send `Authorization: Bearer <token>`",
        ));
    }
    let token = token.trim();
    // RFC 6750's b64token.
    let is_token = !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
    if !is_token {
        return Err(AuthFailure::invalid_request(
            "the Authorization header holds no bearer token",
        ));
    }
    Ok(token)
}

impl Access {
    /// Checks the request's credentials against the route's auth.
    pub(crate) fn authenticate<'h>(
        &self,
        engine: &Engine,
        headers: &'h HeaderMap,
        namespace: &Namespace,
    ) -> Result<Caller<'h>, EngineError> {
        match &self.auth {
            Auth::Public => Ok(Caller::Anyone),
            Auth::Key => {
                let token = bearer(headers).map_err(AuthFailure::into_error)?;
                authorize_key(engine, token, namespace)
                    .map(Caller::Key)
                    .map_err(AuthFailure::into_error)
            }
            Auth::Jwt(verifier) => {
                let token = bearer(headers).map_err(AuthFailure::into_error)?;
                verifier
                    .verify(token)
                    .map(Caller::Jwt)
                    .map_err(AuthFailure::into_error)
            }
        }
    }
}

/// The id of the API key `token`, if it may invoke functions of `namespace`.
///
/// The one place the gateway asks the identity layer about a key.
fn authorize_key(engine: &Engine, token: &str, namespace: &Namespace) -> Result<String, AuthFailure> {
    let caller = engine
        .authenticate(token)
        .map_err(|e| AuthFailure::invalid_token(e.detail))?;
    may_invoke(&caller.namespace, caller.role, namespace)?;
    Ok(caller.key_id)
}

/// Whether a key of `role` in `key_namespace` may invoke a function of
/// `namespace`. A key of another namespace is answered like a bad key, so a
/// namespace's existence is not revealed.
fn may_invoke(key_namespace: &Namespace, role: Role, namespace: &Namespace) -> Result<(), AuthFailure> {
    if role == Role::Admin {
        return Ok(());
    }
    if key_namespace != namespace {
        return Err(AuthFailure::invalid_token("the API key is not valid"));
    }
    if !role.allows(Permission::Invoke) {
        return Err(AuthFailure::insufficient_scope(format!(
            "a key with role `{role}` may not invoke functions"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(name: &str) -> Namespace {
        Namespace::new(name).unwrap()
    }

    #[test]
    fn keys_invoke_in_their_namespace_and_admins_anywhere() {
        assert!(may_invoke(&ns("a"), Role::Invoke, &ns("a")).is_ok());
        assert!(may_invoke(&ns("a"), Role::Deploy, &ns("a")).is_ok());
        assert!(may_invoke(&ns("a"), Role::Admin, &ns("b")).is_ok());
        let other = may_invoke(&ns("a"), Role::Invoke, &ns("b")).unwrap_err();
        assert_eq!(
            (other.code, other.error),
            (ErrorCode::Unauthorized, Some("invalid_token"))
        );
        let read = may_invoke(&ns("a"), Role::Read, &ns("a")).unwrap_err();
        assert_eq!(
            (read.code, read.error),
            (ErrorCode::Forbidden, Some("insufficient_scope"))
        );
    }

    #[test]
    fn bearer_tokens_are_read_per_rfc_6750() {
        let headers = |value: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(v) = value {
                h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            }
            h
        };
        assert_eq!(bearer(&headers(Some("Bearer abc.def"))).unwrap(), "abc.def");
        assert_eq!(bearer(&headers(Some("bearer  abc"))).unwrap(), "abc");
        assert_eq!(bearer(&headers(None)).unwrap_err().error, None);
        assert_eq!(bearer(&headers(Some("Basic dXNlcg=="))).unwrap_err().error, None);
        assert_eq!(
            bearer(&headers(Some("Bearer"))).unwrap_err().error,
            Some("invalid_request")
        );
        assert_eq!(
            bearer(&headers(Some("Bearer a b"))).unwrap_err().error,
            Some("invalid_request")
        );
        let e = AuthFailure::invalid_token("the token has expired").into_error();
        assert_eq!(
            e.headers.as_ref().unwrap()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"wisp\", error=\"invalid_token\", error_description=\"the token has expired\""
        );
        let e = AuthFailure::missing("no").into_error();
        assert_eq!(
            e.headers.as_ref().unwrap()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"wisp\""
        );
    }
}
