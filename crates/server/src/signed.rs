//! Requests signed with AWS Signature V4, on the Lambda-compatible paths: the body is
//! read whole (it is part of what is signed), the signature is checked with the
//! secret of the key whose id is the access key id ([`crate::sigv4`]), and the body
//! is put back for the handler.

use crate::auth::Refusal;
use crate::body::{BodyError, read_limited};
use crate::sigv4;
use axum::extract::Request;
use std::time::SystemTime;
use wisp_core::ErrorCode;
use wisp_engine::{Caller, Engine, EngineError};

/// Whose keys sign requests where they are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keys {
    /// People's keys (the control listener).
    People,
    /// People's keys and functions' credentials (the services functions call).
    Services,
}

/// The caller a signed request names, and the request with its body put back.
pub(crate) async fn caller(
    engine: &Engine,
    request: Request,
    keys: Keys,
) -> Result<(Caller, Request), Refusal> {
    let (parts, body) = request.into_parts();
    // Code uploads (CreateFunction, UpdateFunctionCode) carry a base64 zip; everything
    // else is held to the invoke payload's limit.
    let uploads_code = parts.method != http::Method::GET && !parts.uri.path().ends_with("/invocations");
    let (limit, operation) = if uploads_code {
        // Base64 is 4/3 of the zip, plus the JSON around it.
        (engine.limits().max_code_size / 3 * 4 + 64 * 1024, "this")
    } else {
        (engine.limits().max_request_body, "the InvokeFunction")
    };
    let bytes = match read_limited(body, limit).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge { limit }) => {
            return Err(Refusal::new(
                ErrorCode::PayloadTooLarge,
                format!("Request must be smaller than {limit} bytes for {operation} operation"),
                "RequestEntityTooLargeException",
            ));
        }
        Err(BodyError::Unreadable(e)) => {
            return Err(Refusal::new(
                ErrorCode::InvalidRequest,
                format!("cannot read the request body: {e}"),
                "InvalidRequestContentException",
            ));
        }
    };
    let mut found: Option<Result<Caller, EngineError>> = None;
    let verified = sigv4::verify(&parts, &bytes, SystemTime::now(), |credential| {
        let secret = match keys {
            Keys::People => engine.signing_secret(&credential.access_key_id),
            Keys::Services => engine.service_signing_secret(&credential.access_key_id),
        };
        match secret {
            Ok((caller, secret)) => {
                found = Some(Ok(caller));
                Some(secret)
            }
            Err(e) => {
                found = Some(Err(e));
                None
            }
        }
    });
    match (verified, found) {
        (Ok(_), Some(Ok(caller))) => Ok((caller, Request::from_parts(parts, axum::body::Body::from(bytes)))),
        // The key is unknown, revoked or expired: say which.
        (_, Some(Err(e))) if e.code == ErrorCode::Unauthorized => Err(Refusal::new(
            ErrorCode::Unauthorized,
            e.detail,
            "UnrecognizedClientException",
        )),
        (_, Some(Err(e))) => {
            e.log();
            Err(Refusal::new(e.code, e.detail, "ServiceException"))
        }
        (Err(e), _) => Err(Refusal::new(
            ErrorCode::Unauthorized,
            e.to_string(),
            e.aws_error_type(),
        )),
        (Ok(_), None) => Err(Refusal::new(
            ErrorCode::Internal,
            "the signature was checked without a key",
            "ServiceException",
        )),
    }
}
