//! Reading a request body whole, up to a limit: the one way the control API's
//! handlers take a body they need in full (an invoke's payload, a JSON document).

use bytes::Bytes;
use http_body_util::BodyExt;
use wisp_engine::BoxError;
use wisp_engine::body::{BodyTooLarge, read_to_bytes};

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// More than the limit arrived (the rest is not read).
    TooLarge { limit: usize },
    /// The client's stream failed.
    Unreadable(String),
}

/// Reads `body` whole, failing past `limit` bytes.
pub(crate) async fn read_limited(body: axum::body::Body, limit: usize) -> Result<Bytes, BodyError> {
    let body = body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync();
    read_to_bytes(body, limit).await.map_err(|e| {
        if e.is::<BodyTooLarge>() {
            BodyError::TooLarge { limit }
        } else {
            BodyError::Unreadable(e.to_string())
        }
    })
}
