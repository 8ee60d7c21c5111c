//! The audit trail: who (which key) changed what (deploys, deletes, queues, keys,
//! namespaces), when and from where, kept in the store ([`wisp_store::Audit`]).

use crate::{Caller, Engine, EngineError};
use wisp_core::Namespace;
use wisp_core::wall::now_ms;
use wisp_store::{AuditEntry, AuditQuery};

/// One change to record.
pub struct AuditRecord<'a> {
    /// Who: `None` for the server itself.
    pub by: Option<&'a Caller>,
    /// The namespace acted on.
    pub namespace: &'a Namespace,
    /// What, as `resource.verb`: `function.deploy`, `key.revoke`, …
    pub action: &'static str,
    /// The resource's name or id.
    pub target: &'a str,
    pub detail: Option<String>,
    /// The client's address.
    pub source: Option<String>,
}

impl Engine {
    /// Records a change that was made. A store failure here does not undo the change:
    /// it is logged as an error, with the entry, so the trail can be mended.
    pub async fn audit(&self, record: AuditRecord<'_>) {
        let entry = AuditEntry {
            id: uuid::Uuid::now_v7().to_string(),
            at: now_ms(),
            namespace: record.namespace.clone(),
            key_id: record.by.map(|c| c.key_id.clone()),
            action: record.action.to_owned(),
            target: record.target.to_owned(),
            source: record.source,
            detail: record.detail,
        };
        if let Err(e) = self.store.append_audit(std::slice::from_ref(&entry)).await {
            tracing::error!(?entry, "cannot record an audit entry: {e}");
        }
    }

    /// Audit entries, newest first.
    pub async fn audit_entries(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, EngineError> {
        Ok(self.store.audit(query).await?)
    }
}
