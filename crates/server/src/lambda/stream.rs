//! Lambda's `InvokeWithResponseStream`
//! (`POST /2021-11-15/functions/{name}/response-streaming-invocations`): the function's
//! answer goes out as it is made, in AWS's event stream (`application/vnd.amazon.eventstream`),
//! one `PayloadChunk` event per piece of the answer and an `InvokeComplete` event at the
//! end, which carries the function's failure (`ErrorCode`, `ErrorDetails`) and the end of
//! its log (`LogResult`, with `X-Amz-Log-Type: Tail`). boto3's
//! `invoke_with_response_stream` and the other SDKs read it.
//!
//! The request is checked as `Invoke`'s is (the same grant, names, qualifiers,
//! `X-Amz-Client-Context`); `X-Amz-Invocation-Type` is `RequestResponse` or `DryRun`.
//! An http function's body streams frame by frame; an event function's answer (a wasm
//! command's stdout, a native runtime's response) is one chunk.

use super::{BASE64, Checked, InvokeRequest, LambdaError, dry_run, function_failure, run_of, tag_run};
use crate::auth::Scope;
use crate::platform::PlatformCall;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use serde_json::{Map, Value};
use std::convert::Infallible;
use std::sync::Arc;
use wisp_engine::Engine;

/// The path of `InvokeWithResponseStream` (its API's version date, then the function).
pub(crate) const PATH: &str = "/2021-11-15/functions/{name}/response-streaming-invocations";

/// The most a `PayloadChunk` carries: a larger piece of the answer goes in several.
const MAX_CHUNK: usize = 1 << 20;

/// The content type of an AWS event stream.
const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// `InvokeWithResponseStream` with a key (the control listener).
pub(super) async fn invoke(
    scope: Scope,
    State(engine): State<Arc<Engine>>,
    request: InvokeRequest,
) -> Result<Response, LambdaError> {
    invoke_as(scope, engine, None, request).await
}

/// [`invoke`] on the services endpoint: a function's call, as `Invoke`'s there is.
pub(super) async fn invoke_from_function(
    scope: Scope,
    State(engine): State<Arc<Engine>>,
    platform: Option<axum::Extension<PlatformCall>>,
    request: InvokeRequest,
) -> Result<Response, LambdaError> {
    let from = super::caller_of(&scope, &engine, platform, &request.headers);
    invoke_as(scope, engine, from, request).await
}

async fn invoke_as(
    scope: Scope,
    engine: Arc<Engine>,
    from: Option<wisp_engine::CallFrom>,
    request: InvokeRequest,
) -> Result<Response, LambdaError> {
    if let Some(refusal) = request.not_served() {
        return Ok(refusal);
    }
    let mut checked = Checked::read(scope, &engine, request, true).await?;
    if checked.kind == super::InvocationType::DryRun {
        return Ok(dry_run());
    }
    let (sender, tail) = checked.wants_tail.then(wisp_engine::log_tail).unzip();
    // The version that ran and the invocation's id, from its answer or its failure.
    let ((id, version), answer) = match checked.run(&engine, from.as_ref(), sender).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            (run_of(&parts.headers), Ok(body))
        }
        Err(e) => match function_failure(&e) {
            // The function failed before it answered: a stream that says only that.
            Some(report) => (
                (e.invocation_id.clone(), e.version().map(HeaderValue::from)),
                Err(report),
            ),
            None => return Err(LambdaError::from_engine(e, &checked.target)),
        },
    };
    let mut response = Response::new(axum::body::Body::from_stream(events(answer, tail)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(EVENT_STREAM));
    tag_run(headers, id, version);
    Ok(response)
}

/// The events of an answer: its body's pieces as `PayloadChunk`s as they come, then
/// `InvokeComplete` with the failure, if any (`report`, or the body breaking off), and
/// the log's end when `tail` waits for it.
fn events(
    answer: Result<wisp_engine::Body, wisp_engine::ErrorReport>,
    tail: Option<wisp_engine::LogTail>,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send {
    enum State {
        Streaming(wisp_engine::Body),
        Failed((String, String)),
        Done,
    }
    let first = match answer {
        Ok(body) => State::Streaming(body),
        Err(report) => State::Failed((report.error_type, report.error_message)),
    };
    futures::stream::unfold((first, tail), |(state, tail)| async move {
        let failure = match state {
            State::Streaming(mut body) => loop {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data()
                            && !data.is_empty()
                        {
                            let events = if data.len() <= MAX_CHUNK {
                                payload_chunk(&data)
                            } else {
                                let mut events = BytesMut::new();
                                for piece in data.chunks(MAX_CHUNK) {
                                    events.put(payload_chunk(piece));
                                }
                                events.freeze()
                            };
                            return Some((Ok(events), (State::Streaming(body), tail)));
                        }
                    }
                    None => break None,
                    Some(Err(e)) => {
                        break Some((
                            "Runtime.InvalidResponse".to_string(),
                            format!("the function's answer broke off: {e}"),
                        ));
                    }
                }
            },
            State::Failed(failure) => Some(failure),
            State::Done => return None,
        };
        let log = match tail {
            Some(tail) => tail.when_finished().await,
            None => None,
        };
        Some((Ok(invoke_complete(failure, log.as_deref())), (State::Done, None)))
    })
}

/// A `PayloadChunk` event carrying `data`.
fn payload_chunk(data: &[u8]) -> Bytes {
    message(
        &[
            (":event-type", "PayloadChunk"),
            (":content-type", "application/octet-stream"),
            (":message-type", "event"),
        ],
        data,
    )
}

/// The `InvokeComplete` event: `failure` as `ErrorCode` and `ErrorDetails`, `log` (the
/// run's log's end) base64 as `LogResult`.
fn invoke_complete(failure: Option<(String, String)>, log: Option<&str>) -> Bytes {
    let mut fields = Map::new();
    if let Some((code, details)) = failure {
        fields.insert("ErrorCode".into(), Value::String(code));
        fields.insert("ErrorDetails".into(), Value::String(details));
    }
    if let Some(log) = log {
        fields.insert("LogResult".into(), Value::String(BASE64.encode(log)));
    }
    message(
        &[
            (":event-type", "InvokeComplete"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        Value::Object(fields).to_string().as_bytes(),
    )
}

/// One message of AWS's event stream: its prelude (total length, headers' length, and
/// their CRC-32), its headers (all strings here), its payload, and the CRC-32 of all
/// before it. Lengths are big-endian. The headers are this module's constants and a
/// payload at most [`MAX_CHUNK`], so every length fits its field.
fn message(headers: &[(&'static str, &'static str)], payload: &[u8]) -> Bytes {
    /// Header value type 7: a string, with a 2-byte length.
    const STRING: u8 = 7;
    let fit = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let mut encoded = BytesMut::new();
    for (name, value) in headers {
        encoded.put_u8(u8::try_from(name.len()).unwrap_or(u8::MAX));
        encoded.put_slice(name.as_bytes());
        encoded.put_u8(STRING);
        encoded.put_u16(u16::try_from(value.len()).unwrap_or(u16::MAX));
        encoded.put_slice(value.as_bytes());
    }
    // The prelude (12 bytes) and the message's CRC (4) around headers and payload.
    let total = 12 + encoded.len() + payload.len() + 4;
    let mut out = BytesMut::with_capacity(total);
    out.put_u32(fit(total));
    out.put_u32(fit(encoded.len()));
    let prelude_crc = crc32fast::hash(&out);
    out.put_u32(prelude_crc);
    out.put_slice(&encoded);
    out.put_slice(payload);
    let crc = crc32fast::hash(&out);
    out.put_u32(crc);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one message back: its headers and payload, checking both CRCs.
    fn decode(bytes: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
        let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let (total, headers_len) = (word(0), word(4));
        assert_eq!(total, bytes.len());
        assert_eq!(word(8) as u32, crc32fast::hash(&bytes[..8]));
        assert_eq!(word(total - 4) as u32, crc32fast::hash(&bytes[..total - 4]));
        let mut headers = Vec::new();
        let mut at = 12;
        while at < 12 + headers_len {
            let name_len = bytes[at] as usize;
            let name = String::from_utf8(bytes[at + 1..at + 1 + name_len].to_vec()).unwrap();
            at += 1 + name_len;
            assert_eq!(bytes[at], 7);
            let value_len = u16::from_be_bytes([bytes[at + 1], bytes[at + 2]]) as usize;
            let value = String::from_utf8(bytes[at + 3..at + 3 + value_len].to_vec()).unwrap();
            at += 3 + value_len;
            headers.push((name, value));
        }
        (headers, bytes[12 + headers_len..total - 4].to_vec())
    }

    #[test]
    fn events_are_framed_as_aws_event_stream_messages() {
        let (headers, payload) = decode(&payload_chunk(b"chunk 0\n"));
        assert_eq!(
            headers,
            [
                (":event-type".to_string(), "PayloadChunk".to_string()),
                (":content-type".into(), "application/octet-stream".into()),
                (":message-type".into(), "event".into()),
            ]
        );
        assert_eq!(payload, b"chunk 0\n");
        let complete = invoke_complete(Some(("Runtime.ExitError".into(), "trap".into())), Some("log"));
        let (headers, payload) = decode(&complete);
        assert_eq!(headers[0].1, "InvokeComplete");
        let fields: Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            fields,
            serde_json::json!({"ErrorCode": "Runtime.ExitError", "ErrorDetails": "trap", "LogResult": "bG9n"})
        );
        assert_eq!(decode(&invoke_complete(None, None)).1, b"{}");
    }
}
