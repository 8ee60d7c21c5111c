//! Invocation answers waiting for the page an invoke redirects to (post, redirect, get:
//! reloading the page shows the answer again instead of invoking again). Each is kept
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
