//! What the management operations read and write: Lambda's runtimes mapped to Wisp's
//! and back, the `FunctionConfiguration` and `AliasConfiguration` documents, request
//! bodies, list pages, and engine errors as Lambda's exceptions.
//!
//! One Lambda function is one Wisp function: its `$LATEST` is Wisp's newest version,
//! its published versions Wisp's numbered ones, its aliases Wisp's (with `live`
//! among them). What Wisp does not keep (`Role`, `Description`, the exact Python or
//! Node.js release) is answered with fixed values, listed in `docs/api.md`.

use super::{LOCAL_ACCOUNT, LOCAL_REGION, LambdaError, Target, request_id, set_request_id};
use crate::body::{BodyError, read_limited};
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use wisp_core::{AdditionalVersion, AliasName, AliasTarget, ErrorCode, FunctionRuntime, Weight};
use wisp_engine::EngineError;
use wisp_store::{FunctionRecord, VersionRecord};

/// `Role` in every answer: Wisp runs no IAM, so the role a request names is not kept.
const ROLE: &str = "arn:aws:iam::000000000000:role/wisp";

/// Lambda's default `Timeout` when `CreateFunction` names none (Wisp's own is 30 s).
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// What Wisp runs, for the error that refuses another runtime.
const RUNTIMES: &str = "provided.al2023, provided.al2 or provided (a zip with an executable `bootstrap`), \
                        python3.x (a zip with the handler's module, run by the server's python3) or \
                        nodejs*.x (the same, run by the server's node)";

/// The Wisp runtime a Lambda `Runtime` names. Wisp's own names (`process`, `python`,
/// `node`, `wasm`) are taken too, so a `Runtime` read back can be sent again.
pub(super) fn runtime(text: &str) -> Result<FunctionRuntime, LambdaError> {
    match text {
        "provided" | "provided.al2" | "provided.al2023" => Ok(FunctionRuntime::Process),
        t if t.starts_with("python3.") => Ok(FunctionRuntime::Python),
        t if t.starts_with("nodejs") => Ok(FunctionRuntime::Node),
        t => FunctionRuntime::parse(t).ok_or_else(|| {
            LambdaError::invalid(format!(
                "Value {t} at 'runtime' is not a runtime Wisp runs: use {RUNTIMES}"
            ))
        }),
    }
}

/// The Lambda `Runtime` a Wisp runtime is shown as. Wisp does not keep which Python
/// or Node.js release a function was created for: the server's interpreter runs it.
pub(super) fn lambda_runtime(runtime: FunctionRuntime) -> &'static str {
    match runtime {
        FunctionRuntime::Process => "provided.al2023",
        FunctionRuntime::Python => "python3.12",
        FunctionRuntime::Node => "nodejs20.x",
        // Lambda has no such runtime: the honest name, which `runtime()` takes back.
        FunctionRuntime::Wasm => "wasm",
    }
}

/// A function's ARN as Wisp answers it, with a qualifier when one is shown.
pub(super) fn function_arn(name: &str, qualifier: Option<&str>) -> String {
    let mut arn = format!("arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT}:function:{name}");
    if let Some(q) = qualifier {
        arn.push(':');
        arn.push_str(q);
    }
    arn
}

/// Unix milliseconds as Lambda writes `LastModified`: `2026-12-04T04:48:15.000+0000`.
pub(super) fn last_modified(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string()
}

/// Lambda's `CodeSha256`: the SHA-256 of the uploaded bytes in base64, from Wisp's
/// hex code hash.
pub(super) fn code_sha256(code_hash: &str) -> String {
    match hex::decode(code_hash) {
        Ok(bytes) => base64::engine::general_purpose::STANDARD.encode(bytes),
        Err(_) => String::new(),
    }
}

/// The machine the server runs on, in Lambda's names.
fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "x86_64",
    }
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Environment {
    /// Lambda's strings; a Wisp secret reference reads and shows as `{"secret": NAME}`
    /// (never its value).
    #[serde(default)]
    pub(super) variables: Option<BTreeMap<String, wisp_core::EnvValue>>,
}

/// Lambda's `FunctionConfiguration`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct FunctionConfiguration {
    function_name: String,
    function_arn: String,
    runtime: &'static str,
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    handler: Option<String>,
    code_size: u64,
    description: &'static str,
    timeout: u64,
    memory_size: u32,
    last_modified: String,
    code_sha256: String,
    version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    environment: Option<Environment>,
    state: &'static str,
    last_update_status: &'static str,
    package_type: &'static str,
    architectures: [&'static str; 1],
    revision_id: String,
}

/// Which of a function's configurations a document shows.
pub(super) enum Shown<'a> {
    /// `$LATEST` (the newest version), its ARN unqualified.
    Latest,
    /// `$LATEST`, its ARN qualified with `:$LATEST` (as version lists show it).
    QualifiedLatest,
    /// A version, its ARN qualified with the qualifier that named it (its number, or
    /// an alias pointing at it).
    Version(&'a VersionRecord, &'a str),
}

impl FunctionConfiguration {
    pub(super) fn of(record: &FunctionRecord, shown: Shown<'_>) -> FunctionConfiguration {
        let name = record.name.as_str();
        let (version, label, arn) = match shown {
            Shown::Latest => (record.latest(), "$LATEST".to_string(), function_arn(name, None)),
            Shown::QualifiedLatest => (
                record.latest(),
                "$LATEST".to_string(),
                function_arn(name, Some("$LATEST")),
            ),
            Shown::Version(v, qualifier) => (v, v.number.to_string(), function_arn(name, Some(qualifier))),
        };
        let config = &version.config;
        FunctionConfiguration {
            function_name: name.to_string(),
            function_arn: arn,
            runtime: lambda_runtime(config.runtime),
            role: ROLE,
            handler: config.handler.clone(),
            code_size: version.code_size,
            description: "",
            // Lambda counts whole seconds: a Wisp timeout of 500ms shows as 1.
            timeout: config.timeout.as_millis().div_ceil(1000).max(1) as u64,
            memory_size: config.memory_mb,
            last_modified: last_modified(version.created_at),
            code_sha256: code_sha256(&version.code_hash),
            version: label,
            environment: (!config.env.is_empty()).then(|| Environment {
                variables: Some(config.env.clone()),
            }),
            state: "Active",
            last_update_status: "Successful",
            package_type: "Zip",
            architectures: [architecture()],
            revision_id: record.revision.to_string(),
        }
    }

    /// The version the document shows (`$LATEST` or a number).
    pub(super) fn version(&self) -> &str {
        &self.version
    }

    /// Its function's name.
    pub(super) fn name(&self) -> &str {
        &self.function_name
    }
}

/// Lambda's `AliasConfiguration`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AliasConfiguration {
    alias_arn: String,
    name: String,
    function_version: String,
    description: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    routing_config: Option<RoutingConfig>,
    revision_id: String,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RoutingConfig {
    #[serde(default)]
    pub(super) additional_version_weights: BTreeMap<String, f64>,
}

impl AliasConfiguration {
    pub(super) fn of(record: &FunctionRecord, alias: &AliasName, target: &AliasTarget) -> AliasConfiguration {
        AliasConfiguration {
            alias_arn: function_arn(record.name.as_str(), Some(alias.as_str())),
            name: alias.to_string(),
            function_version: target.version.to_string(),
            description: "",
            routing_config: target.additional.map(|a| RoutingConfig {
                additional_version_weights: BTreeMap::from([(a.version.to_string(), a.weight.share())]),
            }),
            revision_id: record.revision.to_string(),
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }
}

/// Where an alias points, from Lambda's `FunctionVersion` (`$LATEST` pins the newest
/// version: a Wisp alias names a number) and `AdditionalVersionWeights` (at most one
/// version: a Wisp alias splits between two).
pub(super) fn alias_target(
    record: &FunctionRecord,
    version: &str,
    weights: &BTreeMap<String, f64>,
) -> Result<AliasTarget, LambdaError> {
    let number = |text: &str, field: &str| -> Result<u32, LambdaError> {
        match text.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(LambdaError::invalid(format!(
                "Value {text} at '{field}' is not a version: use a published version number"
            ))),
        }
    };
    let main = if version == "$LATEST" {
        record.latest().number
    } else {
        number(version, "functionVersion")?
    };
    let additional = match weights.len() {
        0 => None,
        1 => {
            let (text, share) = weights.iter().next().map_or(("", 0.0), |(k, w)| (k.as_str(), *w));
            let weight = Weight::new(share).map_err(|e| {
                LambdaError::invalid(format!(
                    "Value {share} at 'routingConfig.additionalVersionWeights' failed: {e}"
                ))
            })?;
            Some(AdditionalVersion {
                version: number(text, "routingConfig.additionalVersionWeights")?,
                weight,
            })
        }
        n => {
            return Err(LambdaError::invalid(format!(
                "RoutingConfig names {n} additional versions: a Wisp alias routes to one \
                 additional version beside its main one"
            )));
        }
    };
    let target = AliasTarget {
        version: main,
        additional,
    };
    target.validate().map_err(LambdaError::invalid)?;
    Ok(target)
}

/// The first version of `target` that `record` does not keep: `ResourceNotFoundException`
/// naming it, as Lambda does.
pub(super) fn missing_version(
    record: &FunctionRecord,
    target: &AliasTarget,
    function: &Target,
) -> Option<LambdaError> {
    let missing = target.versions().find(|&n| record.version(n).is_none())?;
    let versioned = Target {
        qualifier: Some(missing.to_string()),
        ..function.clone()
    };
    Some(LambdaError::not_found(&versioned))
}

/// An engine error of a management operation, as Lambda names it.
pub(super) fn engine_error(e: EngineError, target: &Target) -> LambdaError {
    match e.code {
        ErrorCode::InvalidConfig
        | ErrorCode::InvalidCode
        | ErrorCode::InvalidRequest
        | ErrorCode::InvalidName
        | ErrorCode::ReservedRoute => LambdaError::invalid(e.detail),
        ErrorCode::RouteConflict => conflict(e.detail),
        ErrorCode::AliasNotFound => alias_not_found(target),
        _ => LambdaError::from_engine(e, target),
    }
}

pub(super) fn conflict(message: impl Into<String>) -> LambdaError {
    LambdaError::user(StatusCode::CONFLICT, "ResourceConflictException", message)
}

pub(super) fn alias_not_found(target: &Target) -> LambdaError {
    LambdaError::user(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        format!("Alias not found: {}", target.arn()),
    )
}

/// A `RevisionId` the request gave that is not the function's: someone changed it
/// since the caller read it. Checked when the request arrives (the change itself is
/// not conditional on it).
pub(super) fn check_revision(record: &FunctionRecord, given: Option<&str>) -> Result<(), LambdaError> {
    match given {
        Some(given) if given != record.revision.to_string() => Err(LambdaError::user(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailedException",
            format!(
                "The Revision Id provided does not match the latest Revision Id ({}). Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
                record.revision
            ),
        )),
        _ => Ok(()),
    }
}

/// Reads a request's JSON body (an empty one is `{}`), of at most `limit` bytes.
pub(super) async fn read_body<T: DeserializeOwned>(
    body: axum::body::Body,
    limit: usize,
    operation: &str,
) -> Result<T, LambdaError> {
    let bytes = match read_limited(body, limit).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge { limit }) => return Err(LambdaError::too_large(limit, operation)),
        Err(BodyError::Unreadable(e)) => {
            return Err(unparsable(format!("cannot read the request body: {e}")));
        }
    };
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(text)
        .map_err(|e| unparsable(format!("Could not parse request body into json: {e}")))
}

fn unparsable(message: String) -> LambdaError {
    LambdaError::user(StatusCode::BAD_REQUEST, "InvalidRequestContentException", message)
}

/// The query string, or `InvalidParameterValueException` saying what is wrong with it.
pub(super) fn query<T>(params: Result<Query<T>, QueryRejection>) -> Result<T, LambdaError> {
    params
        .map(|Query(p)| p)
        .map_err(|e| LambdaError::invalid(format!("the query string is malformed: {}", e.body_text())))
}

/// A Lambda `ZipFile`: base64 in the JSON body.
pub(super) fn decode_zip(text: &str) -> Result<bytes::Bytes, LambdaError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map(bytes::Bytes::from)
        .map_err(|e| LambdaError::invalid(format!("ZipFile is not base64: {e}")))
}

/// The query of a list operation: `Marker` and `MaxItems`, and `FunctionVersion`
/// (`ListFunctions`: `ALL`; `ListAliases`: a version number).
#[derive(Deserialize, Default)]
pub(super) struct ListParams {
    #[serde(rename = "Marker")]
    marker: Option<String>,
    #[serde(rename = "MaxItems")]
    max_items: Option<usize>,
    #[serde(rename = "FunctionVersion")]
    pub(super) function_version: Option<String>,
}

/// Lambda's page size when `MaxItems` is not given, and its largest.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 10_000;

impl ListParams {
    /// The page of `items` after the one whose key is the marker, and the marker of
    /// the next page when there is one (the last item's key).
    pub(super) fn page<T>(
        &self,
        items: Vec<T>,
        key: impl Fn(&T) -> String,
    ) -> Result<(Vec<T>, Option<String>), LambdaError> {
        let size = self.max_items.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&size) {
            return Err(LambdaError::invalid(format!(
                "Value {size} at 'maxItems' failed to satisfy constraint: Member must have value between 1 and {MAX_PAGE}"
            )));
        }
        let start = match self.marker.as_deref().filter(|m| !m.is_empty()) {
            None => 0,
            Some(marker) => {
                items.iter().position(|item| key(item) == marker).ok_or_else(|| {
                    LambdaError::invalid(format!(
                        "Marker {marker} names nothing in this list: start again without it"
                    ))
                })? + 1
            }
        };
        let rest = items.len().saturating_sub(start);
        let page: Vec<T> = items.into_iter().skip(start).take(size).collect();
        let next = if rest > size { page.last().map(&key) } else { None };
        Ok((page, next))
    }
}

/// A list operation's answer: the items under `key`, and `NextMarker` when more follow.
pub(super) fn listed<T: Serialize>(key: &str, items: Vec<T>, next: Option<String>) -> serde_json::Value {
    let mut body = serde_json::json!({ key: items });
    if let Some(next) = next {
        body["NextMarker"] = serde_json::json!(next);
    }
    body
}

/// A successful answer, with a request id as every Lambda answer has.
pub(super) fn answer(status: StatusCode, body: impl Serialize) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    set_request_id(response.headers_mut(), &request_id());
    response
}

/// An empty `204`, with a request id.
pub(super) fn no_content() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    set_request_id(response.headers_mut(), &request_id());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtimes_map_both_ways() {
        for (lambda, wisp) in [
            ("provided", FunctionRuntime::Process),
            ("provided.al2", FunctionRuntime::Process),
            ("provided.al2023", FunctionRuntime::Process),
            ("python3.12", FunctionRuntime::Python),
            ("python3.9", FunctionRuntime::Python),
            ("nodejs20.x", FunctionRuntime::Node),
            ("nodejs", FunctionRuntime::Node),
            ("wasm", FunctionRuntime::Wasm),
        ] {
            assert_eq!(runtime(lambda).ok(), Some(wisp), "{lambda}");
        }
        for runtime_name in FunctionRuntime::ALL {
            assert_eq!(runtime(lambda_runtime(runtime_name)).ok(), Some(runtime_name));
        }
        let e = runtime("java21").err().unwrap();
        assert_eq!(e.kind, "InvalidParameterValueException");
        assert!(
            e.message.contains("java21") && e.message.contains("provided.al2023"),
            "{}",
            e.message
        );
    }

    #[test]
    fn times_and_hashes_are_in_lambdas_forms() {
        assert_eq!(last_modified(1_796_359_695_123), "2026-12-04T04:48:15.123+0000");
        // The SHA-256 of nothing.
        assert_eq!(
            code_sha256("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn pages_follow_the_marker() {
        let items: Vec<u32> = (1..=5).collect();
        let paging = |marker: Option<&str>, max: Option<usize>| ListParams {
            marker: marker.map(String::from),
            max_items: max,
            function_version: None,
        };
        let key = |n: &u32| n.to_string();
        assert_eq!(
            paging(None, None).page(items.clone(), key).ok(),
            Some((items.clone(), None))
        );
        assert_eq!(
            paging(None, Some(2)).page(items.clone(), key).ok(),
            Some((vec![1, 2], Some("2".into())))
        );
        assert_eq!(
            paging(Some("2"), Some(2)).page(items.clone(), key).ok(),
            Some((vec![3, 4], Some("4".into())))
        );
        assert_eq!(
            paging(Some("4"), Some(2)).page(items.clone(), key).ok(),
            Some((vec![5], None))
        );
        assert!(paging(Some("9"), None).page(items.clone(), key).is_err());
        assert!(paging(None, Some(0)).page(items, key).is_err());
    }
}
