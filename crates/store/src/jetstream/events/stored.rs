//! The entries of the events bucket as stored: an event's record ([`Stored`]), its state
//! entry's key ([`State`]), an idempotency key's holder ([`Holder`]), and the one way an
//! event changes ([`change`]).

use crate::jetstream::batch::BatchEntry;
use crate::jetstream::encode;
use crate::{
    EventOutcome, EventRecord, EventStatus, Failure, NewEvent, Resolution, Result, StoreError, UnixMicros,
    UnixMillis,
};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use wisp_core::{FunctionName, Namespace, Qualifier};

/// Bytes kept in a record: as text when they are UTF-8 (payloads mostly are JSON), else
/// as hex.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Blob {
    Text(String),
    Hex(String),
}

impl Blob {
    pub(super) fn of(bytes: &[u8]) -> Blob {
        match std::str::from_utf8(bytes) {
            Ok(text) => Blob::Text(text.to_owned()),
            Err(_) => Blob::Hex(hex(bytes)),
        }
    }

    pub(super) fn bytes(&self) -> Option<Vec<u8>> {
        match self {
            Blob::Text(text) => Some(text.as_bytes().to_vec()),
            Blob::Hex(text) => unhex(text),
        }
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// An event id as one key token: itself when it is one (and has no `=`), else `=` and
/// its hex.
pub(super) fn id_token(id: &str) -> String {
    if !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        id.to_owned()
    } else {
        format!("={}", hex(id.as_bytes()))
    }
}

pub(super) fn id_of_token(token: &str) -> Option<String> {
    match token.strip_prefix('=') {
        Some(hex) => String::from_utf8(unhex(hex)?).ok(),
        None => Some(token.to_owned()),
    }
}

pub(super) fn record_key(id: &str) -> String {
    format!("ev.{}", id_token(id))
}

/// A time as 16 hex digits that sort as the numbers do (negative ones first).
pub(super) fn ordered(n: i64) -> String {
    format!("{:016x}", (n as u64) ^ (1 << 63))
}

pub(super) fn unordered(text: &str) -> Option<i64> {
    u64::from_str_radix(text, 16).ok().map(|n| (n ^ (1 << 63)) as i64)
}

pub(super) fn holder_key(namespace: &Namespace, function: &FunctionName, key: &str) -> String {
    let token = if key.len() <= 100 {
        format!("x{}", hex(key.as_bytes()))
    } else {
        format!("m{}", hex(&Md5::digest(key.as_bytes())))
    };
    format!("ik.{namespace}.{function}.{token}")
}

/// Who holds an idempotency key (`ik.…`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Holder {
    pub(super) id: String,
    pub(super) created_us: UnixMicros,
}

/// An event's record as stored (`ev.…`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Stored {
    pub(super) namespace: Namespace,
    pub(super) function: FunctionName,
    pub(super) id: String,
    pub(super) payload: Blob,
    pub(super) status: EventStatus,
    pub(super) leased_until: Option<UnixMillis>,
    /// The node holding the lease (while `leased_until` is set).
    pub(super) holder: Option<String>,
    pub(super) attempts: u32,
    pub(super) chain_depth: u32,
    pub(super) source: String,
    pub(super) qualifier: Option<String>,
    pub(super) idempotency_key: Option<String>,
    pub(super) created_us: UnixMicros,
    pub(super) first_run_us: Option<UnixMicros>,
    pub(super) run_at: UnixMillis,
    pub(super) updated_at: UnixMillis,
    pub(super) last_error: Option<String>,
    pub(super) held_ms: u64,
    pub(super) failure: Option<Failure>,
    pub(super) result: Option<Blob>,
    pub(super) trace: Option<String>,
    pub(super) parent: Option<String>,
    /// The key of its state entry (`st.…`).
    pub(super) state: String,
}

impl Stored {
    /// `event` as new ([`EventRecord::fresh`]), its lease held by `node`.
    pub(super) fn fresh(event: &NewEvent, node: &str) -> Stored {
        Stored {
            namespace: event.namespace.clone(),
            function: event.function.clone(),
            id: event.id.clone(),
            payload: Blob::of(&event.payload),
            status: EventStatus::Pending,
            leased_until: event.lease.map(|l| l.until),
            holder: event.lease.map(|_| node.to_owned()),
            attempts: 0,
            chain_depth: event.chain_depth,
            source: event.source.clone(),
            qualifier: event.qualifier.as_ref().map(ToString::to_string),
            idempotency_key: event.idempotency_key.clone(),
            created_us: event.created_us,
            first_run_us: event.lease.map(|l| l.started_us),
            run_at: event.run_at,
            updated_at: event.created_us.div_euclid(1000),
            last_error: None,
            held_ms: 0,
            failure: None,
            result: None,
            trace: event.trace.clone(),
            parent: event.parent.clone(),
            state: String::new(),
        }
    }

    /// A fresh key for its state entry, as it is now.
    pub(super) fn state_key(&self) -> String {
        let (status, holder) = match (self.status, self.leased_until, &self.holder) {
            (EventStatus::Pending, None, _) => ("q", "-"),
            (EventStatus::Pending, Some(_), holder) => ("r", holder.as_deref().unwrap_or("-")),
            (EventStatus::Succeeded, ..) => ("s", "-"),
            (EventStatus::Failed, ..) => ("f", "-"),
        };
        let unique = uuid::Uuid::now_v7().simple().to_string();
        format!(
            "st.{}.{}.{status}.{holder}.{}.{}.{}.{}",
            self.namespace,
            self.function,
            ordered(self.run_at),
            ordered(self.created_us),
            id_token(&self.id),
            unique.get(16..).unwrap_or(&unique),
        )
    }

    pub(super) fn pending_unleased(&self) -> bool {
        self.status == EventStatus::Pending && self.leased_until.is_none()
    }

    pub(super) fn record(&self) -> Result<EventRecord> {
        let corrupt = |what: String| {
            StoreError::Corrupt(format!(
                "event `{}` of `{}/{}` {what}",
                self.id, self.namespace, self.function
            ))
        };
        let qualifier = self
            .qualifier
            .as_ref()
            .map(|q| {
                q.parse::<Qualifier>()
                    .map_err(|e| corrupt(format!("has a bad qualifier `{q}`: {e}")))
            })
            .transpose()?;
        let payload = self
            .payload
            .bytes()
            .ok_or_else(|| corrupt("has a bad payload".to_owned()))?;
        let result = self
            .result
            .as_ref()
            .map(|r| r.bytes().ok_or_else(|| corrupt("has a bad result".to_owned())))
            .transpose()?;
        Ok(EventRecord {
            namespace: self.namespace.clone(),
            function: self.function.clone(),
            id: self.id.clone(),
            payload,
            status: self.status,
            leased_until: self.leased_until,
            attempts: self.attempts,
            chain_depth: self.chain_depth,
            source: self.source.clone(),
            qualifier,
            idempotency_key: self.idempotency_key.clone(),
            created_us: self.created_us,
            first_run_us: self.first_run_us,
            run_at: self.run_at,
            updated_at: self.updated_at,
            last_error: self.last_error.clone(),
            held_ms: self.held_ms,
            failure: self.failure,
            result,
            trace: self.trace.clone(),
            parent: self.parent.clone(),
        })
    }

    /// Applies `outcome` (to a pending event).
    pub(super) fn resolve(&mut self, outcome: &EventOutcome, now: UnixMillis) {
        self.leased_until = None;
        self.holder = None;
        self.updated_at = now;
        match &outcome.resolution {
            Resolution::Succeeded { result } => {
                self.status = EventStatus::Succeeded;
                self.result = Some(Blob::of(result));
                self.attempts = outcome.attempts;
            }
            Resolution::Retry { run_at, error } => {
                self.run_at = *run_at;
                self.last_error = Some(error.clone());
                self.attempts = outcome.attempts;
            }
            Resolution::Held {
                run_at,
                held_ms,
                error,
            } => {
                self.run_at = *run_at;
                self.last_error = Some(error.clone());
                self.held_ms = *held_ms;
            }
            Resolution::Failed {
                error,
                failure,
                result,
            } => {
                self.status = EventStatus::Failed;
                self.last_error = Some(error.clone());
                self.failure = Some(*failure);
                self.result = result.as_deref().map(Blob::of);
                self.attempts = outcome.attempts;
            }
        }
    }
}

/// A state entry's key, read back.
#[derive(Clone, Debug)]
pub(super) struct State {
    pub(super) key: String,
    pub(super) namespace: String,
    pub(super) function: String,
    pub(super) status: char,
    pub(super) run_at: UnixMillis,
    pub(super) created_us: UnixMicros,
    pub(super) id: String,
}

impl State {
    pub(super) fn parse(key: &str) -> Option<State> {
        let tokens: Vec<&str> = key.split('.').collect();
        let [
            "st",
            namespace,
            function,
            status,
            _holder,
            run_at,
            created_us,
            id,
            _unique,
        ] = tokens[..]
        else {
            return None;
        };
        let mut status_chars = status.chars();
        let (Some(status), None) = (status_chars.next(), status_chars.next()) else {
            return None;
        };
        Some(State {
            key: key.to_owned(),
            namespace: namespace.to_owned(),
            function: function.to_owned(),
            status,
            run_at: unordered(run_at)?,
            created_us: unordered(created_us)?,
            id: id_of_token(id)?,
        })
    }
}

/// The entries that change an event from `before` (its record, read at revision
/// `revision`; `None`: no record, `revision` being that of the key's delete marker or 0)
/// to `after` (`None`: deleted), with the new state entry right after the record.
pub(super) fn change(
    entries: &mut Vec<BatchEntry>,
    revision: u64,
    before: Option<&Stored>,
    after: Option<&mut Stored>,
    what: &str,
) -> Result<()> {
    let id = match (&before, &after) {
        (_, Some(after)) => after.id.clone(),
        (Some(before), None) => before.id.clone(),
        (None, None) => return Ok(()),
    };
    match after {
        Some(after) => {
            after.state = after.state_key();
            entries.push((record_key(&id), revision, Some(encode(&*after, what)?)));
            entries.push((after.state.clone(), 0, Some(Vec::new())));
        }
        None => entries.push((record_key(&id), revision, None)),
    }
    if let Some(before) = before {
        entries.push((before.state.clone(), revision + 1, None));
    }
    Ok(())
}
