//! `/v1/kv`: key-value stores through Wisp's own API — create, list, show and delete a
//! namespace's stores; get, head, put (with compare-and-set and a time to live), delete,
//! increment and list their keys; and batches of gets, sets or deletes. The CLI's
//! `wisp kv` uses it, and native functions reach the same routes on the S3 listener
//! ([`services`]) with the credential they find in `WISP_TOKEN`. `docs/kv.md` is the
//! reference.
//!
//! Keys may hold `/`, so a key is the rest of the path after `keys/` (one form only:
//! `/v1/kv/{store}/keys/{*key}`). A key's version is its `ETag` (`"7"`), which writes
//! name in `If-Match`. Every handler checks the caller's grant of the store
//! ([`Caller::check_kv_grant`](wisp_engine::Caller::check_kv_grant)): a person's key
//! passes (the auth layer checked its role), a function's credential only for the
//! stores its version is granted. Creating and deleting stores is for people only.

use super::functions::{EngineState, query_params};
use super::json::{read_fields, read_json};
use crate::auth::Scope;
use crate::body::{BodyError, read_limited};
use crate::problem::ApiError;
use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use wisp_core::wall::rfc3339_ms;
use wisp_core::{ErrorCode, KvStoreName, Limits};
use wisp_engine::{Engine, KvCondition, KvEntry, KvStoreRecord};

/// The prefix every key-value route is under.
pub(crate) const PREFIX: &str = "/v1/kv";

/// The request header a write's time to live is given in (`30s`, `1h`, or seconds).
const TTL_HEADER: &str = "wisp-ttl";

/// The response header that says when an entry expires (RFC 3339).
const EXPIRES_HEADER: &str = "wisp-expires-at";

/// A key listing's page when no `limit` is given.
const DEFAULT_LIMIT: u32 = 100;

/// The key-value routes.
pub(super) fn router() -> Router<Arc<Engine>> {
    Router::new()
        .route("/v1/kv", get(list_stores))
        .route("/v1/kv/{store}", get(show).put(create).delete(delete))
        .route("/v1/kv/{store}/keys", get(list_keys))
        .route(
            "/v1/kv/{store}/keys/{*key}",
            get(get_key)
                .head(head_key)
                .put(put_key)
                .delete(delete_key)
                // `put_key` reads the value itself, up to `Limits::MAX_KV_VALUE_BYTES`.
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/kv/{store}/increment/{*key}", post(increment))
        .route("/v1/kv/{store}/batch", post(batch))
}

fn bad_request(detail: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, detail)
}

/// A store's name from the path, checked, and the caller's grant of it.
fn granted(scope: &Scope, name: &str) -> Result<KvStoreName, ApiError> {
    let store = KvStoreName::new(name).map_err(|e| ApiError::new(ErrorCode::InvalidName, e.to_string()))?;
    scope.caller.check_kv_grant(&store)?;
    Ok(store)
}

/// 403 for a function's credential: stores are made and removed by people (or
/// `wisp deploy`), never by the functions that use them.
fn people_only(scope: &Scope, what: &str) -> Result<(), ApiError> {
    match &scope.caller.grants {
        Some(grants) => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "function `{}` may not {what} key-value stores: declare them as `[kv.NAME]` in wisp.toml",
                grants.function
            ),
        )),
        None => Ok(()),
    }
}

fn store_not_found(store: &KvStoreName) -> ApiError {
    ApiError::new(
        ErrorCode::KvStoreNotFound,
        format!("no key-value store named `{store}`"),
    )
}

fn key_not_found(store: &KvStoreName, key: &str) -> ApiError {
    ApiError::new(
        ErrorCode::KvKeyNotFound,
        format!("key `{key}` of store `{store}` holds nothing"),
    )
}

/// A store as the API shows it.
#[derive(Serialize)]
struct StoreView {
    name: String,
    created_at: String,
}

impl StoreView {
    fn new(record: KvStoreRecord) -> StoreView {
        StoreView {
            name: record.name.to_string(),
            created_at: rfc3339_ms(record.created_ms),
        }
    }
}

async fn list_stores(scope: Scope, State(engine): EngineState) -> Result<Json<Value>, ApiError> {
    let stores: Vec<StoreView> = engine
        .list_kv_stores(&scope.namespace)
        .await?
        .into_iter()
        // A function sees the stores it is granted only.
        .filter(|r| scope.caller.check_kv_grant(&r.name).is_ok())
        .map(StoreView::new)
        .collect();
    Ok(Json(json!({ "stores": stores })))
}

async fn show(
    scope: Scope,
    State(engine): EngineState,
    Path(store): Path<String>,
) -> Result<Json<StoreView>, ApiError> {
    let store = granted(&scope, &store)?;
    let record = engine
        .list_kv_stores(&scope.namespace)
        .await?
        .into_iter()
        .find(|r| r.name == store)
        .ok_or_else(|| store_not_found(&store))?;
    Ok(Json(StoreView::new(record)))
}

async fn create(
    scope: Scope,
    State(engine): EngineState,
    Path(store): Path<String>,
) -> Result<Response, ApiError> {
    people_only(&scope, "create")?;
    let store = granted(&scope, &store)?;
    let record = engine.create_kv_store(&scope.namespace, &store).await?;
    scope.audit(&engine, "kv.create", store.as_str(), None).await;
    Ok((StatusCode::CREATED, Json(StoreView::new(record))).into_response())
}

async fn delete(
    scope: Scope,
    State(engine): EngineState,
    Path(store): Path<String>,
) -> Result<StatusCode, ApiError> {
    people_only(&scope, "delete")?;
    let store = granted(&scope, &store)?;
    engine.delete_kv_store(&scope.namespace, &store).await?;
    scope.audit(&engine, "kv.delete", store.as_str(), None).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    #[serde(default)]
    prefix: String,
    after: Option<String>,
    limit: Option<u32>,
}

const LIST_TAKES: &str = "`prefix`, `after` (a listing's `next`) and `limit` (1 to 1000, 100 when not given)";

async fn list_keys(
    scope: Scope,
    State(engine): EngineState,
    Path(store): Path<String>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let store = granted(&scope, &store)?;
    let Query(params) = query_params(params, LIST_TAKES)?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=Limits::MAX_KEYS).contains(&limit) {
        return Err(bad_request(format!(
            "`limit` must be 1 to {} (it is {limit})",
            Limits::MAX_KEYS
        )));
    }
    let after = params.after.filter(|a| !a.is_empty());
    let page = engine
        .kv_list(
            &scope.namespace,
            &store,
            &params.prefix,
            after.as_deref(),
            limit as usize,
        )
        .await?;
    Ok(Json(json!({ "keys": page.keys, "next": page.next })))
}

/// A header's value as text.
fn text(headers: &HeaderMap, name: &HeaderName) -> Result<Option<String>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map(|t| t.trim().to_string())
                .map_err(|_| bad_request(format!("the `{name}` header is not visible ASCII")))
        })
        .transpose()
}

/// A version as `If-Match` names it: `"7"` (or `7`, or `W/"7"`).
fn parse_version(header: &str, value: &str) -> Result<u64, ApiError> {
    let bare = value.strip_prefix("W/").unwrap_or(value).trim_matches('"');
    bare.parse::<u64>().map_err(|_| {
        bad_request(format!(
            "`{header}: {value}`: name one version of the key, as its ETag gives it (`{header}: \"7\"`)"
        ))
    })
}

/// What a write's `If-Match` / `If-None-Match` ask of the key: `If-Match: "7"` (only
/// if it holds version 7) or `If-None-Match: *` (only if it holds nothing). A delete
/// takes `If-Match` alone, and `*` there (it holds something) is what a delete asks
/// anyway.
fn write_condition(headers: &HeaderMap, delete: bool) -> Result<KvCondition, ApiError> {
    let if_match = text(headers, &header::IF_MATCH)?;
    let if_none_match = text(headers, &header::IF_NONE_MATCH)?;
    match (if_match, if_none_match) {
        (None, None) => Ok(KvCondition::Any),
        (Some(_), Some(_)) => Err(bad_request(
            "a write takes `If-Match` or `If-None-Match`, not both",
        )),
        (None, Some(_)) if delete => Err(bad_request(
            "a delete takes `If-Match: \"VERSION\"`, not `If-None-Match`",
        )),
        (None, Some(v)) if v == "*" => Ok(KvCondition::Absent),
        (None, Some(v)) => Err(bad_request(format!(
            "`If-None-Match: {v}` on a write: a write takes only `If-None-Match: *` (only if the key holds nothing)"
        ))),
        (Some(v), None) if v == "*" && delete => Ok(KvCondition::Any),
        (Some(v), None) if v == "*" => Err(bad_request(
            "`If-Match: *` on a write: name the version the key must hold (`If-Match: \"7\"`), or send no condition",
        )),
        (Some(v), None) if v.contains(',') => Err(bad_request(format!("`If-Match: {v}`: name one version"))),
        (Some(v), None) => Ok(KvCondition::Version(parse_version("If-Match", &v)?)),
    }
}

/// A time to live: humantime text (`30s`, `1h 30m`) or a whole number of seconds.
fn parse_ttl(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let ttl = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        value
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|e| format!("invalid time to live `{value}`: {e}"))?
    } else {
        wisp_core::duration_text::parse(value).map_err(|e| format!("{e} (or a whole number of seconds)"))?
    };
    if ttl.is_zero() {
        return Err(format!(
            "invalid time to live `{value}`: it must be more than zero (leave it out for an entry that never expires)"
        ));
    }
    Ok(ttl)
}

/// The `Wisp-TTL` header of a write.
fn ttl_header(headers: &HeaderMap) -> Result<Option<Duration>, ApiError> {
    let name = HeaderName::from_static(TTL_HEADER);
    text(headers, &name)?
        .map(|v| parse_ttl(&v).map_err(|e| bad_request(format!("`Wisp-TTL: {v}`: {e}"))))
        .transpose()
}

/// `ETag: "VERSION"`.
fn etag(version: u64, headers: &mut HeaderMap) {
    if let Ok(value) = HeaderValue::from_str(&format!("\"{version}\"")) {
        headers.insert(header::ETAG, value);
    }
}

/// The headers that describe an entry: type, length, ETag and expiry.
fn entry_headers(entry: &KvEntry, headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.value.len()));
    etag(entry.version, headers);
    if let Some(at) = entry.expires_ms
        && let Ok(value) = HeaderValue::from_str(&rfc3339_ms(at))
    {
        headers.insert(HeaderName::from_static(EXPIRES_HEADER), value);
    }
}

/// Whether a read's `If-None-Match` names the entry (`*`, or its version among those
/// listed): then it is answered `304` without the value.
fn unchanged(headers: &HeaderMap, entry: &KvEntry) -> bool {
    let Some(value) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value.split(',').map(str::trim).any(|tag| {
        tag == "*"
            || tag
                .strip_prefix("W/")
                .unwrap_or(tag)
                .trim_matches('"')
                .parse::<u64>()
                .is_ok_and(|v| v == entry.version)
    })
}

/// A live entry, or 404 `kv_key_not_found` (404 `kv_store_not_found` without the store).
async fn read_entry(
    scope: &Scope,
    engine: &Engine,
    store: &KvStoreName,
    key: &str,
) -> Result<KvEntry, ApiError> {
    engine
        .kv_get(&scope.namespace, store, key)
        .await?
        .ok_or_else(|| key_not_found(store, key))
}

fn not_modified(entry: &KvEntry) -> Response {
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    etag(entry.version, response.headers_mut());
    response
}

async fn get_key(
    scope: Scope,
    State(engine): EngineState,
    Path((store, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let store = granted(&scope, &store)?;
    let entry = read_entry(&scope, &engine, &store, &key).await?;
    if unchanged(&headers, &entry) {
        return Ok(not_modified(&entry));
    }
    let mut out = HeaderMap::new();
    entry_headers(&entry, &mut out);
    let mut response = Response::new(axum::body::Body::from(entry.value));
    response.headers_mut().extend(out);
    Ok(response)
}

async fn head_key(
    scope: Scope,
    State(engine): EngineState,
    Path((store, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let store = granted(&scope, &store)?;
    let entry = read_entry(&scope, &engine, &store, &key).await?;
    if unchanged(&headers, &entry) {
        return Ok(not_modified(&entry));
    }
    let mut response = Response::new(axum::body::Body::empty());
    entry_headers(&entry, response.headers_mut());
    Ok(response)
}

/// A write's answer: `{"version": N}` with the ETag.
fn written(status: StatusCode, version: u64) -> Response {
    let mut response = (status, Json(json!({ "version": version }))).into_response();
    etag(version, response.headers_mut());
    response
}

async fn put_key(
    scope: Scope,
    State(engine): EngineState,
    Path((store, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let store = granted(&scope, &store)?;
    let condition = write_condition(&headers, false)?;
    let ttl = ttl_header(&headers)?;
    let value = match read_limited(body, Limits::MAX_KV_VALUE_BYTES).await {
        Ok(bytes) => bytes.to_vec(),
        Err(BodyError::TooLarge { limit }) => {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "the value for key `{key}` is larger than {limit} bytes: a key-value store's values are at most {limit} bytes"
                ),
            ));
        }
        Err(BodyError::Unreadable(e)) => {
            return Err(bad_request(format!("cannot read the request body: {e}")));
        }
    };
    let version = engine
        .kv_set(&scope.namespace, &store, &key, value, ttl, condition)
        .await?;
    // Only a create-only write knows the key held nothing before.
    let status = if condition == KvCondition::Absent {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(written(status, version))
}

async fn delete_key(
    scope: Scope,
    State(engine): EngineState,
    Path((store, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let store = granted(&scope, &store)?;
    let condition = write_condition(&headers, true)?;
    if engine
        .kv_delete(&scope.namespace, &store, &key, condition)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(key_not_found(&store, &key))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncrementIn {
    by: Option<i64>,
}

const INCREMENT_TAKES: &str = "`{\"by\": 5}` (optional; an empty body adds 1)";

async fn increment(
    scope: Scope,
    State(engine): EngineState,
    Path((store, key)): Path<(String, String)>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let store = granted(&scope, &store)?;
    let by = match read_json(&engine, body, INCREMENT_TAKES).await? {
        None => None,
        Some(value) => {
            read_fields::<IncrementIn>(value, INCREMENT_TAKES)
                .map_err(|e| bad_request(format!("invalid increment: {e}; send {INCREMENT_TAKES}")))?
                .by
        }
    };
    let (value, version) = engine
        .kv_increment(&scope.namespace, &store, &key, by.unwrap_or(1))
        .await?;
    let mut response = Json(json!({ "value": value, "version": version })).into_response();
    etag(version, response.headers_mut());
    Ok(response)
}

/// How a batch's values are written in JSON.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
enum Encoding {
    /// As text: a value that is not UTF-8 is answered in base64 (and says so).
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "base64")]
    Base64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchIn {
    get: Option<Vec<String>>,
    set: Option<BTreeMap<String, String>>,
    delete: Option<Vec<String>>,
    ttl: Option<String>,
    #[serde(default)]
    encoding: Encoding,
}

const BATCH_TAKES: &str = "one of `{\"get\": [KEY, …]}`, `{\"set\": {KEY: VALUE, …}, \"ttl\": \"30s\"}` \
    or `{\"delete\": [KEY, …]}`, with `\"encoding\": \"base64\"` for values in base64 (up to 100 keys)";

/// A batch read's entry: `value` is `null` when the key holds nothing.
#[derive(Serialize)]
struct EntryView {
    key: String,
    value: Option<String>,
    /// `base64` when `value` is in base64; absent when it is the text itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
}

impl EntryView {
    fn new(key: String, entry: Option<KvEntry>, encoding: Encoding) -> EntryView {
        let Some(entry) = entry else {
            return EntryView {
                key,
                value: None,
                encoding: None,
                version: None,
                expires_at: None,
            };
        };
        let (value, encoding) = match encoding {
            Encoding::Base64 => (BASE64.encode(&entry.value), Some("base64")),
            Encoding::Utf8 => match String::from_utf8(entry.value) {
                Ok(text) => (text, None),
                Err(e) => (BASE64.encode(e.as_bytes()), Some("base64")),
            },
        };
        EntryView {
            key,
            value: Some(value),
            encoding,
            version: Some(entry.version),
            expires_at: entry.expires_ms.map(rfc3339_ms),
        }
    }
}

async fn batch(
    scope: Scope,
    State(engine): EngineState,
    Path(store): Path<String>,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let store = granted(&scope, &store)?;
    let Some(value) = read_json(&engine, body, BATCH_TAKES).await? else {
        return Err(bad_request(format!("a batch needs a body: send {BATCH_TAKES}")));
    };
    let batch: BatchIn = read_fields(value, BATCH_TAKES)
        .map_err(|e| bad_request(format!("invalid batch: {e}; send {BATCH_TAKES}")))?;
    let ns = &scope.namespace;
    if batch.ttl.is_some() && batch.set.is_none() {
        return Err(bad_request("`ttl` goes with `set` only"));
    }
    match (batch.get, batch.set, batch.delete) {
        (Some(keys), None, None) => {
            let entries = engine.kv_get_many(ns, &store, &keys).await?;
            let entries: Vec<EntryView> = keys
                .into_iter()
                .zip(entries)
                .map(|(key, entry)| EntryView::new(key, entry, batch.encoding))
                .collect();
            Ok(Json(json!({ "entries": entries })))
        }
        (None, Some(set), None) => {
            let ttl = batch
                .ttl
                .as_deref()
                .map(|t| parse_ttl(t).map_err(|e| bad_request(format!("`ttl`: {e}"))))
                .transpose()?;
            let mut writes = Vec::with_capacity(set.len());
            for (key, value) in set {
                let bytes = match batch.encoding {
                    Encoding::Utf8 => value.into_bytes(),
                    Encoding::Base64 => BASE64
                        .decode(value.as_bytes())
                        .map_err(|e| bad_request(format!("the value for key `{key}` is not base64: {e}")))?,
                };
                writes.push((key, bytes));
            }
            let keys: Vec<String> = writes.iter().map(|(k, _)| k.clone()).collect();
            let versions = engine.kv_set_many(ns, &store, writes, ttl).await?;
            let versions: BTreeMap<String, u64> = keys.into_iter().zip(versions).collect();
            Ok(Json(json!({ "versions": versions })))
        }
        (None, None, Some(keys)) => {
            let deleted = engine.kv_delete_many(ns, &store, &keys).await?;
            Ok(Json(json!({ "deleted": deleted })))
        }
        _ => Err(bad_request(format!("a batch does one thing: send {BATCH_TAKES}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_core::{FunctionConfig, FunctionName, Namespace, Role};
    use wisp_engine::{Caller, FunctionGrants};

    /// A person's key (`None`), or function `cart`'s credential granted `stores`.
    fn scope(stores: Option<&[&str]>) -> Scope {
        let grants = stores.map(|stores| {
            let config: FunctionConfig =
                serde_json::from_value(json!({ "kind": "event", "kv": stores })).unwrap();
            Arc::new(FunctionGrants::of(&FunctionName::new("cart").unwrap(), &config))
        });
        let namespace = Namespace::new("default").unwrap();
        Scope {
            caller: Caller {
                key_id: "WFAAAAAAAAAAAAAAAA".into(),
                namespace: namespace.clone(),
                role: Role::Deploy,
                grants,
                call_depth: None,
            },
            namespace,
            source: None,
        }
    }

    #[test]
    fn a_functions_credential_reaches_its_granted_stores_only() {
        let function = scope(Some(&["cache"]));
        assert!(granted(&function, "cache").is_ok());
        let e = granted(&function, "carts").unwrap_err().0;
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert!(
            e.detail.contains("function `cart`") && e.detail.contains("`carts`"),
            "{}",
            e.detail
        );
        let e = people_only(&function, "create").unwrap_err().0;
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert!(e.detail.contains("[kv.NAME]"), "{}", e.detail);

        let person = scope(None);
        assert!(granted(&person, "carts").is_ok());
        assert!(people_only(&person, "create").is_ok());
        let e = granted(&person, "Carts").unwrap_err().0;
        assert_eq!(e.code, ErrorCode::InvalidName);
    }

    fn condition(pairs: &[(HeaderName, &'static str)], delete: bool) -> Result<KvCondition, String> {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name.clone(), HeaderValue::from_static(value));
        }
        write_condition(&headers, delete).map_err(|e| e.0.detail)
    }

    #[test]
    fn writes_take_one_condition() {
        assert_eq!(condition(&[], false), Ok(KvCondition::Any));
        assert_eq!(
            condition(&[(header::IF_NONE_MATCH, "*")], false),
            Ok(KvCondition::Absent)
        );
        assert_eq!(
            condition(&[(header::IF_MATCH, "\"7\"")], false),
            Ok(KvCondition::Version(7))
        );
        assert_eq!(
            condition(&[(header::IF_MATCH, "W/\"7\"")], false),
            Ok(KvCondition::Version(7))
        );
        assert_eq!(condition(&[(header::IF_MATCH, "*")], true), Ok(KvCondition::Any));
        for (pairs, delete) in [
            (vec![(header::IF_MATCH, "\"abc\"")], false),
            (vec![(header::IF_MATCH, "*")], false),
            (vec![(header::IF_MATCH, "\"1\", \"2\"")], false),
            (vec![(header::IF_NONE_MATCH, "\"1\"")], false),
            (vec![(header::IF_NONE_MATCH, "*")], true),
            (
                vec![(header::IF_MATCH, "\"1\""), (header::IF_NONE_MATCH, "*")],
                false,
            ),
        ] {
            assert!(condition(&pairs, delete).is_err(), "{pairs:?}");
        }
        let e = condition(&[(header::IF_MATCH, "\"abc\"")], false).unwrap_err();
        assert!(e.contains("`If-Match: \"abc\"`"), "{e}");
    }

    #[test]
    fn ttls_are_text_or_seconds() {
        assert_eq!(parse_ttl("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("0s").is_err());
        let e = parse_ttl("soon").unwrap_err();
        assert!(e.contains("soon") && e.contains("seconds"), "{e}");
    }

    #[test]
    fn reads_answer_unchanged_for_their_version() {
        let entry = KvEntry {
            key: "k".into(),
            value: b"v".to_vec(),
            version: 7,
            expires_ms: None,
        };
        let with = |v: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static(v));
            unchanged(&headers, &entry)
        };
        assert!(with("\"7\""));
        assert!(with("\"3\", \"7\""));
        assert!(with("*"));
        assert!(!with("\"8\""));
        assert!(!unchanged(&HeaderMap::new(), &entry));
    }

    #[test]
    fn batch_entries_fall_back_to_base64() {
        let entry = |value: &[u8]| {
            Some(KvEntry {
                key: "k".into(),
                value: value.to_vec(),
                version: 1,
                expires_ms: None,
            })
        };
        let text = serde_json::to_value(EntryView::new("k".into(), entry(b"hi"), Encoding::Utf8)).unwrap();
        assert_eq!(text, json!({"key": "k", "value": "hi", "version": 1}));
        let bytes = serde_json::to_value(EntryView::new("k".into(), entry(&[0xff]), Encoding::Utf8)).unwrap();
        assert_eq!(
            bytes,
            json!({"key": "k", "value": "/w==", "encoding": "base64", "version": 1})
        );
        let none = serde_json::to_value(EntryView::new("k".into(), None, Encoding::Base64)).unwrap();
        assert_eq!(none, json!({"key": "k", "value": null}));
    }
}
