//! HTTP routes to `event` functions speak Lambda's API Gateway HTTP API payload
//! format 2.0: the request becomes the documented event JSON, and the function's
//! output is read back as `{statusCode, headers, cookies, body, isBase64Encoded}`,
//! or — when it is any other JSON value — as a `200 application/json` response
//! holding that value, exactly as Lambda does.
//!
//! The shapes are written out here rather than taken from `aws_lambda_events`: its
//! v2 request struct also carries v1-authorizer fields (`httpMethod`, `type`, …) that
//! would be serialised into every event, which Lambda never sends.

use crate::EngineError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use wisp_core::ErrorCode;
use wisp_runtime::{Body, body};

/// The client's address, put in request extensions by the server.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    version: &'static str,
    route_key: &'a str,
    raw_path: &'a str,
    raw_query_string: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cookies: Vec<String>,
    headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    query_string_parameters: BTreeMap<String, String>,
    request_context: RequestContext<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    path_parameters: BTreeMap<String, String>,
    is_base64_encoded: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext<'a> {
    account_id: &'a str,
    api_id: &'a str,
    domain_name: String,
    domain_prefix: String,
    http: HttpContext<'a>,
    request_id: &'a str,
    route_key: &'a str,
    stage: &'static str,
    time: String,
    time_epoch: i64,
    /// A JWT route's verified claims, as API Gateway's JWT authorizer passes them.
    #[serde(skip_serializing_if = "Option::is_none")]
    authorizer: Option<&'a Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpContext<'a> {
    method: &'a str,
    path: &'a str,
    protocol: String,
    source_ip: String,
    user_agent: String,
}

/// Everything about a request that goes into the event, besides its body.
pub(crate) struct RequestInfo<'a> {
    pub(crate) parts: &'a http::request::Parts,
    /// `"GET /greet/{name}"`, in API Gateway's route syntax.
    pub(crate) route_key: &'a str,
    pub(crate) path_parameters: Vec<(String, String)>,
    pub(crate) request_id: &'a str,
    pub(crate) namespace: &'a str,
    /// `{"jwt": {"claims": …, "scopes": …}}` on a JWT route.
    pub(crate) authorizer: Option<&'a Value>,
}

/// API Gateway's route key for a pattern: `:id` → `{id}`, trailing `*` → `{proxy+}`.
pub(crate) fn route_key(method: Option<&str>, pattern: &wisp_core::RoutePattern) -> String {
    use wisp_core::route::Segment;
    let mut path = String::new();
    for segment in pattern.segments() {
        path.push('/');
        match segment {
            Segment::Literal(l) => path.push_str(l),
            Segment::Param(p) => path.push_str(&format!("{{{p}}}")),
            Segment::Wildcard(p) => path.push_str(&format!("{{{p}+}}")),
        }
    }
    if path.is_empty() {
        path.push('/');
    }
    format!("{} {path}", method.unwrap_or("ANY"))
}

fn is_textual(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return true };
    let ct = ct.to_ascii_lowercase();
    ct.starts_with("text/")
        || ct.contains("json")
        || ct.contains("xml")
        || ct.contains("javascript")
        || ct.starts_with("application/x-www-form-urlencoded")
}

/// Builds the event JSON for a request.
pub(crate) fn event(info: &RequestInfo<'_>, body: &Bytes) -> Vec<u8> {
    let parts = info.parts;
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == http::header::COOKIE {
            cookies.extend(
                value
                    .split(';')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        headers
            .entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let raw_query = parts.uri.query().unwrap_or("");
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(raw_query.as_bytes()) {
        query
            .entry(k.into_owned())
            .and_modify(|existing| {
                existing.push(',');
                existing.push_str(&v);
            })
            .or_insert_with(|| v.into_owned());
    }
    let path_parameters = info
        .path_parameters
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned(),
            )
        })
        .collect();
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let (body, is_base64_encoded) = if body.is_empty() {
        (None, false)
    } else {
        match std::str::from_utf8(body) {
            Ok(text) if is_textual(content_type) => (Some(text.to_string()), false),
            _ => (Some(BASE64.encode(body)), true),
        }
    };
    let domain_name = headers
        .get("host")
        .cloned()
        .unwrap_or_else(|| "localhost".to_string());
    let domain_prefix = domain_name.split('.').next().unwrap_or_default().to_string();
    let now = chrono::Utc::now();
    let event = Event {
        version: "2.0",
        route_key: info.route_key,
        raw_path: parts.uri.path(),
        raw_query_string: raw_query,
        cookies,
        query_string_parameters: query,
        request_context: RequestContext {
            account_id: "000000000000",
            api_id: info.namespace,
            domain_name,
            domain_prefix,
            http: HttpContext {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                protocol: format!("{:?}", parts.version),
                source_ip: parts
                    .extensions
                    .get::<ClientAddr>()
                    .map(|a| a.0.ip().to_string())
                    .unwrap_or_default(),
                user_agent: headers.get("user-agent").cloned().unwrap_or_default(),
            },
            request_id: info.request_id,
            route_key: info.route_key,
            stage: "$default",
            time: now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            time_epoch: now.timestamp_millis(),
            authorizer: info.authorizer,
        },
        headers,
        body,
        path_parameters,
        is_base64_encoded,
    };
    serde_json::to_vec(&event).unwrap_or_default()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StructuredResponse {
    status_code: Value,
    #[serde(default)]
    headers: BTreeMap<String, Value>,
    #[serde(default)]
    cookies: Vec<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: bool,
}

fn invalid(detail: impl Into<String>) -> EngineError {
    EngineError::new(ErrorCode::InvalidResponse, detail)
}

/// Reads a function's output back as an HTTP response.
pub(crate) fn response(output: Bytes) -> Result<Response<Body>, EngineError> {
    if output.iter().all(u8::is_ascii_whitespace) {
        return Ok(Response::new(body::empty()));
    }
    let value: Value = serde_json::from_slice(&output).map_err(|e| {
        invalid(format!(
            "the function's output is not JSON ({e}); write a JSON value or an API Gateway response object"
        ))
    })?;
    let is_structured = matches!(&value, Value::Object(map) if map.contains_key("statusCode"));
    if !is_structured {
        let mut response = Response::new(body::full(output));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(response);
    }
    let parsed: StructuredResponse = serde_json::from_value(value)
        .map_err(|e| invalid(format!("the function's API Gateway response is malformed: {e}")))?;
    let status = parsed
        .status_code
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .and_then(|n| StatusCode::from_u16(n).ok())
        .ok_or_else(|| {
            invalid(format!(
                "`statusCode` {} is not an HTTP status",
                parsed.status_code
            ))
        })?;
    let mut headers = HeaderMap::new();
    for (name, value) in parsed.headers {
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => return Err(invalid(format!("header `{name}` has a non-scalar value {other}"))),
        };
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("`{name}` is not a valid header name")))?;
        let header_value = HeaderValue::from_str(&text)
            .map_err(|_| invalid(format!("header `{name}` has an invalid value")))?;
        headers.append(header_name, header_value);
    }
    for cookie in parsed.cookies {
        let value = HeaderValue::from_str(&cookie).map_err(|_| invalid("a cookie has an invalid value"))?;
        headers.append(http::header::SET_COOKIE, value);
    }
    let bytes = match parsed.body {
        None => Bytes::new(),
        Some(text) if parsed.is_base64_encoded => {
            BASE64.decode(text.as_bytes()).map(Bytes::from).map_err(|e| {
                invalid(format!(
                    "`body` is not valid base64 although `isBase64Encoded` is true: {e}"
                ))
            })?
        }
        Some(text) => Bytes::from(text),
    };
    if !bytes.is_empty() && !headers.contains_key(http::header::CONTENT_TYPE) {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let mut response = Response::new(body::full(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn text(r: Response<Body>) -> String {
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn bare_values_are_200_json() {
        let r = response(Bytes::from_static(b"\"hi\"")).unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(text(r).await, "\"hi\"");
        let r = response(Bytes::from_static(b"{\"a\":1}")).unwrap();
        assert_eq!(text(r).await, "{\"a\":1}");
    }

    #[tokio::test]
    async fn structured_responses_are_honoured() {
        let out = br#"{"statusCode":201,"headers":{"x-a":"b","content-type":"text/plain"},"cookies":["a=1"],"body":"made"}"#;
        let r = response(Bytes::from_static(out)).unwrap();
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["x-a"], "b");
        assert_eq!(r.headers()["set-cookie"], "a=1");
        assert_eq!(text(r).await, "made");
        let out = br#"{"statusCode":200,"body":"AAEC/w==","isBase64Encoded":true}"#;
        let r = response(Bytes::from_static(out)).unwrap();
        assert_eq!(
            r.into_body().collect().await.unwrap().to_bytes().as_ref(),
            &[0, 1, 2, 255]
        );
    }

    #[test]
    fn bad_output_is_invalid_response() {
        for bad in [
            &b"not json"[..],
            br#"{"statusCode":"x"}"#,
            br#"{"statusCode":99999}"#,
            br#"{"statusCode":200,"body":"!","isBase64Encoded":true}"#,
        ] {
            let err = response(Bytes::copy_from_slice(bad)).unwrap_err();
            assert_eq!(
                err.code,
                ErrorCode::InvalidResponse,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn route_keys_use_api_gateway_syntax() {
        let p = wisp_core::RoutePattern::parse("/users/:id/files/*").unwrap();
        assert_eq!(route_key(Some("GET"), &p), "GET /users/{id}/files/{proxy+}");
        assert_eq!(
            route_key(None, &wisp_core::RoutePattern::parse("/").unwrap()),
            "ANY /"
        );
    }

    #[test]
    fn events_have_the_v2_shape() {
        let req = http::Request::builder()
            .method("POST")
            .uri("/users/a%20b?x=1&x=2&y=3")
            .header("host", "api.example.com")
            .header("cookie", "a=1; b=2")
            .header("content-type", "application/json")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let info = RequestInfo {
            parts: &parts,
            route_key: "POST /users/{id}",
            path_parameters: vec![("id".into(), "a%20b".into())],
            request_id: "req-1",
            namespace: "default",
            authorizer: None,
        };
        let event: Value = serde_json::from_slice(&event(&info, &Bytes::from_static(b"{\"k\":1}"))).unwrap();
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["rawPath"], "/users/a%20b");
        assert_eq!(event["rawQueryString"], "x=1&x=2&y=3");
        assert_eq!(event["queryStringParameters"]["x"], "1,2");
        assert_eq!(event["pathParameters"]["id"], "a b");
        assert_eq!(event["cookies"], serde_json::json!(["a=1", "b=2"]));
        assert!(event["headers"].get("cookie").is_none());
        assert_eq!(event["requestContext"]["http"]["method"], "POST");
        assert_eq!(event["requestContext"]["domainName"], "api.example.com");
        assert_eq!(event["body"], "{\"k\":1}");
        assert_eq!(event["isBase64Encoded"], false);
        assert!(event.get("httpMethod").is_none());
    }
}
