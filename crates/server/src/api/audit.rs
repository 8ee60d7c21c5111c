//! `/v1/audit`: the audit trail — who changed what, when, from where. A key reads its
//! own namespace's; an admin key reads every namespace's unless it names one
//! (`Wisp-Namespace`, or `?namespace=`).

use super::functions::EngineState;
use crate::auth::Scope;
use crate::problem::ApiError;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wisp_core::wall::rfc3339_ms;
use wisp_core::{ErrorCode, Namespace, Role};
use wisp_store::{AuditEntry, AuditQuery};

/// Entries answered when the query does not say.
const DEFAULT_LIMIT: usize = 100;
/// Most entries one answer holds.
const MAX_LIMIT: usize = 1000;

#[derive(Serialize)]
struct EntryView {
    id: String,
    at: String,
    namespace: String,
    key_id: Option<String>,
    action: String,
    target: String,
    source: Option<String>,
    detail: Option<String>,
}

impl EntryView {
    fn new(e: AuditEntry) -> EntryView {
        EntryView {
            id: e.id,
            at: rfc3339_ms(e.at),
            namespace: e.namespace.to_string(),
            key_id: e.key_id,
            action: e.action,
            target: e.target,
            source: e.source,
            detail: e.detail,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Params {
    namespace: Option<String>,
    limit: Option<usize>,
    /// Entries strictly older than this (milliseconds since the epoch), for paging.
    before: Option<i64>,
    /// With `before`: entries at exactly `before` whose id sorts below this one count
    /// as older too (the last entry of a page gives both).
    before_id: Option<String>,
}

pub(super) async fn list(
    scope: Scope,
    State(engine): EngineState,
    headers: HeaderMap,
    params: Result<Query<Params>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!(
                "bad query: {}; parameters: namespace, limit (1 to {MAX_LIMIT}), before, before_id",
                e.body_text()
            ),
        )
    })?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("limit: {limit} is out of bounds; use 1 to {MAX_LIMIT}"),
        ));
    }
    let named = params
        .namespace
        .map(|n| Namespace::new(&n).map_err(|e| ApiError::new(ErrorCode::InvalidName, e.to_string())))
        .transpose()?;
    let namespace = if scope.caller.role != Role::Admin {
        match named {
            Some(n) if n != scope.namespace => {
                return Err(ApiError::new(
                    ErrorCode::NamespaceNotFound,
                    format!("there is no namespace `{n}`"),
                ));
            }
            _ => Some(scope.namespace.clone()),
        }
    } else {
        named.or_else(|| scope.namespace_or_all(&headers))
    };
    let entries = engine
        .audit_entries(&AuditQuery {
            namespace,
            before: params.before,
            before_id: params.before_id,
            limit,
        })
        .await?;
    let list: Vec<EntryView> = entries.into_iter().map(EntryView::new).collect();
    Ok(Json(json!({ "entries": list })))
}
