//! The JetStream [`Audit`]: stream `{prefix}_audit`, one message per entry on subject
//! `{prefix}.audit.{namespace}`, the entry as JSON, its id as the message id
//! (`Nats-Msg-Id`).
//!
//! - Duplicates: the stream's duplicate window ([`DUPLICATE_WINDOW`]) drops a message whose
//!   id it has seen within the window, whatever its body, so the first write of an id wins
//!   and a retried batch appends nothing twice. An id written again after the window is
//!   appended again: the trait allows exactly this ("a backend may only spot duplicates
//!   within a window").
//! - The cap: the stream keeps at most [`AUDIT_ENTRIES_KEPT`] messages and discards the
//!   oldest (`DiscardPolicy::Old`), which is the first appended, as the trait says.
//! - A batch is one publish per entry, all sent before their acknowledgements are awaited;
//!   a failure midway may keep part of the batch, which the trait allows (SQLite gives one
//!   transaction).
//! - Reading: entries are kept in the order they were appended, but read newest by `at`
//!   (the caller's clock, which differs between nodes and batches), so a query reads every
//!   kept entry of its namespace (or of all) through an ordered consumer and keeps the
//!   newest `limit` before its cursor. That is a scan of up to [`AUDIT_ENTRIES_KEPT`]
//!   entries per page: acceptable for the API's rare reads, not for anything hot; an index
//!   by time (a KV bucket of pages, or subjects per hour) is left for when it matters.

use super::{JetStreamStore, backend};
use crate::{AUDIT_ENTRIES_KEPT, Audit, AuditEntry, AuditQuery, Result, StoreError};
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};
use async_trait::async_trait;
use futures::StreamExt;
use std::time::Duration;

/// How many entries a query returns when its limit is `0` (as on SQLite).
const DEFAULT_LIMIT: usize = 100;

/// How long the stream remembers message ids to drop duplicates (the server's default,
/// written down): a retried batch comes within seconds.
pub(super) const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Opens stream `{prefix}_audit`, making it if it does not exist.
pub(super) async fn open_stream(context: &jetstream::Context, prefix: &str) -> Result<stream::Stream> {
    let name = format!("{prefix}_audit");
    context
        .get_or_create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{prefix}.audit.*")],
            max_messages: i64::try_from(AUDIT_ENTRIES_KEPT).unwrap_or(i64::MAX),
            discard: stream::DiscardPolicy::Old,
            duplicate_window: DUPLICATE_WINDOW,
            ..stream::Config::default()
        })
        .await
        .map_err(|e| backend(format!("opening the JetStream stream `{name}`"), e))
}

#[async_trait]
impl Audit for JetStreamStore {
    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let what = format!("appending audit entries (a batch of {})", entries.len());
        let mut acks = Vec::with_capacity(entries.len());
        for entry in entries {
            let payload = serde_json::to_vec(entry).map_err(|e| backend(&what, e))?;
            let subject = format!("{}.audit.{}", self.prefix, entry.namespace);
            let publish = PublishMessage::build()
                .payload(payload.into())
                .message_id(&entry.id);
            let ack = self
                .context
                .send_publish(subject, publish)
                .await
                .map_err(|e| backend(&what, e))?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(|e| backend(&what, e))?;
        }
        Ok(())
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let what = match &query.namespace {
            Some(ns) => format!("reading the audit entries of `{ns}`"),
            None => "reading the audit entries of every namespace".to_owned(),
        };
        let limit = match query.limit {
            0 => DEFAULT_LIMIT,
            n => n,
        };
        let filter_subject = match &query.namespace {
            Some(ns) => format!("{}.audit.{ns}", self.prefix),
            None => format!("{}.audit.*", self.prefix),
        };
        let consumer = self
            .audit
            .create_consumer(pull::OrderedConfig {
                filter_subject,
                deliver_policy: DeliverPolicy::All,
                ..pull::OrderedConfig::default()
            })
            .await
            .map_err(|e| backend(&what, e))?;
        let mut newest = Newest::new(limit);
        if consumer.cached_info().num_pending == 0 {
            return Ok(newest.into_entries());
        }
        let mut messages = consumer.messages().await.map_err(|e| backend(&what, e))?;
        while let Some(message) = messages.next().await {
            let message = message.map_err(|e| backend(&what, e))?;
            let entry: AuditEntry = serde_json::from_slice(&message.payload)
                .map_err(|e| StoreError::Corrupt(format!("an audit entry on `{}`: {e}", message.subject)))?;
            if is_before(&entry, query) {
                newest.push(entry);
            }
            let pending = message.info().map_err(|e| backend(&what, e))?.pending;
            if pending == 0 {
                break;
            }
        }
        Ok(newest.into_entries())
    }
}

/// Whether `entry` comes after the query's cursor in newest-first order.
fn is_before(entry: &AuditEntry, query: &AuditQuery) -> bool {
    match (query.before, &query.before_id) {
        (None, _) => true,
        (Some(before), None) => entry.at < before,
        (Some(before), Some(id)) => (entry.at, entry.id.as_str()) < (before, id.as_str()),
    }
}

/// The newest `limit` entries of those pushed, by `at` then id, descending; what is
/// older than those is dropped as it goes, so a scan holds about twice `limit` entries.
struct Newest {
    limit: usize,
    entries: Vec<AuditEntry>,
}

impl Newest {
    fn new(limit: usize) -> Newest {
        Newest {
            limit,
            entries: Vec::new(),
        }
    }

    fn push(&mut self, entry: AuditEntry) {
        self.entries.push(entry);
        if self.entries.len() >= self.limit.saturating_mul(2).max(1024) {
            self.trim();
        }
    }

    fn trim(&mut self) {
        self.entries
            .sort_by(|a, b| (b.at, b.id.as_str()).cmp(&(a.at, a.id.as_str())));
        self.entries.truncate(self.limit);
    }

    fn into_entries(mut self) -> Vec<AuditEntry> {
        self.trim();
        self.entries
    }
}
