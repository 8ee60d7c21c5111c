//! Invocation answers waiting for the page an invoke redirects to (post, redirect, get:
//! reloading the page shows the answer again instead of invoking again), and a new API
//! key's token waiting for the keys page, which [`take`]s it (shown once). Each is kept
//! for [`KEPT_FOR`], for the key that asked only, at most [`KEPT`] at once, the oldest
//! dropped first. In memory: a restart forgets them, which costs only the display.

use std::collections::VecDeque;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long an answer waits to be shown.
const KEPT_FOR: Duration = Duration::from_secs(300);
/// How many answers wait at most.
const KEPT: usize = 256;

/// An invocation's answer and the payload that asked for it.
#[derive(Clone)]
pub(super) struct Shown {
    pub status: String,
    pub body: String,
    pub payload: String,
    /// The end of the run's log, when there was a run to show it of.
    pub log: Option<String>,
}

struct Waiting {
    id: String,
    key_id: String,
    at: Instant,
    shown: Shown,
}

static WAITING: LazyLock<Mutex<VecDeque<Waiting>>> = LazyLock::new(Mutex::default);

/// Keeps `shown` for the key `key_id`; the id to show it by.
pub(super) fn keep(key_id: &str, shown: Shown) -> String {
    let mut bytes = [0u8; 16];
    // A random id; should the system's randomness fail, the time still tells them apart.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        bytes = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
            .to_le_bytes();
    }
    let id = hex::encode(bytes);
    let mut waiting = WAITING.lock().unwrap_or_else(PoisonError::into_inner);
    waiting.retain(|w| w.at.elapsed() < KEPT_FOR);
    while waiting.len() >= KEPT {
        waiting.pop_front();
    }
    waiting.push_back(Waiting {
        id: id.clone(),
        key_id: key_id.to_owned(),
        at: Instant::now(),
        shown,
    });
    id
}

/// The answer kept as `id` for the key `key_id`, if it is still kept.
pub(super) fn find(key_id: &str, id: &str) -> Option<Shown> {
    let waiting = WAITING.lock().unwrap_or_else(PoisonError::into_inner);
    waiting
        .iter()
        .find(|w| w.id == id && w.key_id == key_id && w.at.elapsed() < KEPT_FOR)
        .map(|w| w.shown.clone())
}

/// As [`find`], and forgotten: what is shown once (a new key's token), so that a
/// reload of the page does not show it again.
pub(super) fn take(key_id: &str, id: &str) -> Option<Shown> {
    let mut waiting = WAITING.lock().unwrap_or_else(PoisonError::into_inner);
    let at = waiting
        .iter()
        .position(|w| w.id == id && w.key_id == key_id && w.at.elapsed() < KEPT_FOR)?;
    waiting.remove(at).map(|w| w.shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_answer_is_shown_once_and_to_its_key_only() {
        let shown = || Shown {
            status: "s".to_owned(),
            body: "b".to_owned(),
            payload: "p".to_owned(),
            log: None,
        };
        let id = keep("WKONE", shown());
        assert!(take("WKTWO", &id).is_none(), "another key's");
        assert!(find("WKONE", &id).is_some(), "found, not taken");
        assert_eq!(take("WKONE", &id).map(|s| s.body).as_deref(), Some("b"));
        assert!(take("WKONE", &id).is_none() && find("WKONE", &id).is_none());
    }
}
