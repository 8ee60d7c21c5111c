//! Atomic batches (ADR-50, nats-server ≥ 2.12): the buckets whose changes span several
//! entries ([`atomic_bucket`]) and the one way every concern commits such a change
//! ([`commit`]): all its entries, each with the revision it expects, or none.

use super::backend;
use crate::Result;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, kv};
use serde::Deserialize;
use std::collections::HashMap;

/// How many messages one atomic batch may hold (the server's default limit is 1,000).
pub(super) const MAX_BATCH: usize = 1_000;

/// One entry of a batch: its key, the revision it expects (`0`: never written, or only
/// deleted before), and its new value (`None`: a delete).
pub(super) type BatchEntry = (String, u64, Option<Vec<u8>>);

/// Opens bucket `{prefix}_{concern}` with atomic batch publish allowed on its stream,
/// making it if it does not exist.
///
/// Once `allow_atomic` is on, making the bucket again with KV's configuration is refused
/// as a different one, so a bucket that exists (another node's, or an earlier start's) is
/// opened as it is. A server before 2.12 ignores the field and would store a batch's
/// messages one by one: it is refused here rather than commit changes by halves.
pub(super) async fn atomic_bucket(
    context: &jetstream::Context,
    prefix: &str,
    concern: &str,
) -> Result<kv::Store> {
    let name = format!("{prefix}_{concern}");
    let store = match context.get_key_value(&name).await {
        Ok(store) => store,
        Err(_) => match super::bucket(context, prefix, concern).await {
            Ok(store) => store,
            // Made meanwhile by another node, which may have allowed atomic batches already.
            Err(e) => context.get_key_value(&name).await.map_err(|_| e)?,
        },
    };
    let what = format!("allowing atomic batches on the JetStream bucket `{name}`");
    let mut stream = context
        .get_stream(&store.stream_name)
        .await
        .map_err(|e| backend(&what, e))?;
    let info = stream.info().await.map_err(|e| backend(&what, e))?;
    if !info.config.allow_atomic_publish {
        let mut config = info.config.clone();
        config.allow_atomic_publish = true;
        let updated = context
            .update_stream(config)
            .await
            .map_err(|e| backend(&what, e))?;
        if !updated.config.allow_atomic_publish {
            return Err(backend(
                &what,
                "the server does not support atomic batch publish (nats-server 2.12 or newer is needed)",
            ));
        }
    }
    Ok(store)
}

/// Commits `entries` to bucket `kv` as one atomic batch: the new revision of each key, or
/// `None` when one entry's revision was not the one it expected (nothing is written then:
/// read again and decide again). No entries commit nothing.
pub(super) async fn commit(
    context: &jetstream::Context,
    kv: &kv::Store,
    entries: &[BatchEntry],
    what: &str,
) -> Result<Option<HashMap<String, u64>>> {
    if entries.is_empty() {
        return Ok(Some(HashMap::new()));
    }
    if entries.len() > MAX_BATCH {
        return Err(backend(
            what,
            format!(
                "{} entries change, more than one batch holds ({MAX_BATCH})",
                entries.len()
            ),
        ));
    }
    let client = context.client();
    let batch = uuid::Uuid::now_v7().simple().to_string();
    let prefix = kv.put_prefix.as_ref().unwrap_or(&kv.prefix);
    let count = entries.len();
    let mut reply = None;
    for (i, (key, expected, value)) in entries.iter().enumerate() {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Batch-Id", batch.as_str());
        headers.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
        headers.insert(
            "Nats-Expected-Last-Subject-Sequence",
            expected.to_string().as_str(),
        );
        if value.is_none() {
            headers.insert("KV-Operation", "DEL");
        }
        let payload = value.clone().unwrap_or_default().into();
        let subject = format!("{prefix}{key}");
        if i + 1 == count {
            headers.insert("Nats-Batch-Commit", "1");
            reply = Some(
                client
                    .request_with_headers(subject, headers, payload)
                    .await
                    .map_err(|e| backend(format!("{what}: committing"), e))?,
            );
        } else {
            client
                .publish_with_headers(subject, headers, payload)
                .await
                .map_err(|e| backend(format!("{what}: committing"), e))?;
        }
    }
    let Some(reply) = reply else {
        return Ok(Some(HashMap::new()));
    };
    let ack: BatchAck = serde_json::from_slice(&reply.payload)
        .map_err(|e| backend(format!("{what}: reading the commit's answer"), e))?;
    if let Some(error) = ack.error {
        // 10071 and 10164: wrong last sequence (another writer came between), with and
        // without the sequence in the description.
        if matches!(error.err_code, 10071 | 10164) {
            return Ok(None);
        }
        return Err(backend(
            format!("{what}: committing"),
            format!("{} (error {})", error.description, error.err_code),
        ));
    }
    if ack.count != Some(count as u64) {
        return Err(backend(
            format!("{what}: committing"),
            format!("the server committed {:?} of {count} messages", ack.count),
        ));
    }
    let first = ack.seq + 1 - count as u64;
    Ok(Some(
        entries
            .iter()
            .enumerate()
            .map(|(i, (key, _, _))| (key.clone(), first + i as u64))
            .collect(),
    ))
}

/// The server's answer to a batch's commit.
#[derive(Deserialize)]
struct BatchAck {
    #[serde(default)]
    error: Option<BatchError>,
    #[serde(default)]
    seq: u64,
    #[serde(default)]
    count: Option<u64>,
}

#[derive(Deserialize)]
struct BatchError {
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}
