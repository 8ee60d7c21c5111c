//! Storage events: which functions a write on an object notifies (storage triggers of
//! the namespace's functions, as their `live` version declares them, and the bucket's
//! notification rules), and the S3 event notification each gets, in AWS's shape.

use crate::{Cause, Engine};
use serde_json::json;
use wisp_core::wall::now_us;
use wisp_core::{FunctionName, StorageEvent};
use wisp_store::{BucketRecord, NewEvent, ObjectRecord};

impl Engine {
    /// The async events a write of `event` on `key` causes, one per subscriber, each
    /// carrying the write's `cause` (its depth, trace and parent). `record`: the object written
    /// (`None` for a delete).
    pub(super) fn storage_events(
        &self,
        bucket: &BucketRecord,
        event: StorageEvent,
        key: &str,
        record: Option<&ObjectRecord>,
        cause: &Cause,
    ) -> Vec<NewEvent> {
        let mut subscribers: Vec<(FunctionName, String)> = Vec::new();
        for deployed in self.functions.load().values() {
            if deployed.record.namespace != bucket.namespace {
                continue;
            }
            for (i, trigger) in deployed.config().storage.iter().enumerate() {
                if trigger.bucket == bucket.name && trigger.matches(event, key) {
                    subscribers.push((deployed.record.name.clone(), format!("wisp.toml#storage-{i}")));
                }
            }
        }
        for rule in &bucket.notifications {
            if rule.matches(event, key) {
                subscribers.push((rule.function.clone(), rule.id.clone()));
            }
        }
        if subscribers.is_empty() {
            return Vec::new();
        }
        let now = now_us();
        let time = chrono::DateTime::from_timestamp_micros(now)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let sequencer = format!("{now:016X}");
        subscribers
            .into_iter()
            .map(|(function, configuration)| {
                let id = uuid::Uuid::now_v7().to_string();
                let mut object = json!({"key": encode_key(key), "sequencer": sequencer});
                if let Some(r) = record {
                    object["size"] = json!(r.size);
                    object["eTag"] = json!(r.etag);
                }
                let payload = json!({"Records": [{
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": "us-east-1",
                    "eventTime": time,
                    "eventName": event.name(),
                    "userIdentity": {"principalId": bucket.namespace.as_str()},
                    "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                    "responseElements": {"x-amz-request-id": id, "x-amz-id-2": "wisp"},
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "configurationId": configuration,
                        "bucket": {
                            "name": bucket.name.as_str(),
                            "ownerIdentity": {"principalId": bucket.namespace.as_str()},
                            "arn": format!("arn:aws:s3:::{}", bucket.name),
                        },
                        "object": object,
                    },
                }]});
                NewEvent {
                    namespace: bucket.namespace.clone(),
                    function,
                    id,
                    payload: payload.to_string().into_bytes(),
                    idempotency_key: None,
                    chain_depth: cause.depth,
                    source: format!("storage:{}", bucket.name),
                    qualifier: None,
                    trace: cause.trace.clone(),
                    parent: cause.parent.clone(),
                    created_us: now,
                    run_at: now.div_euclid(1000),
                    lease: None,
                }
            })
            .collect()
    }
}

/// A key as S3 writes it in a notification: URL-encoded with spaces as `+` and `/`
/// kept (handlers decode it with `unquote_plus`).
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode_key;

    #[test]
    fn keys_are_encoded_as_s3_notifications_write_them() {
        assert_eq!(encode_key("in/My Photo+1.jpg"), "in/My+Photo%2B1.jpg");
        assert_eq!(encode_key("ü"), "%C3%BC");
    }
}
