//! Dashboard sessions: a cookie value naming an API key and when the session ends,
//! signed with HMAC-SHA256 under a key derived from the master key; and each session's
//! CSRF token. The key is checked again on every request, so a revoked or expired key
//! ends its sessions at once; the cookie never holds the key's secret.

use super::{Caller, unauthorized};
use crate::{Engine, EngineError};
use ring::hmac;
use std::time::Duration;
use wisp_core::UnixMillis;
use wisp_core::wall::now_ms;

/// What the session MAC key is derived for.
const SESSION_PURPOSE: &str = "wisp dashboard session v1";
/// What the CSRF MAC key is derived for.
const CSRF_PURPOSE: &str = "wisp dashboard csrf v1";

fn mac(engine: &Engine, purpose: &str, data: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &engine.identity.master.derive(purpose));
    hex::encode(hmac::sign(&key, data.as_bytes()).as_ref())
}

fn verify(engine: &Engine, purpose: &str, data: &str, tag: &str) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &engine.identity.master.derive(purpose));
    hex::decode(tag).is_ok_and(|tag| hmac::verify(&key, data.as_bytes(), &tag).is_ok())
}

impl Engine {
    /// A session for `caller` (who logged in with its key) that ends after `ttl`: the
    /// cookie value `<key id>.<ends, ms>.<mac>`.
    pub fn start_session(&self, caller: &Caller, ttl: Duration) -> String {
        let ends: UnixMillis = now_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let data = format!("{}.{ends}", caller.key_id);
        let tag = mac(self, SESSION_PURPOSE, &data);
        format!("{data}.{tag}")
    }

    /// The caller a session cookie names: `unauthorized` when its MAC does not check,
    /// it has ended, or its key is gone, revoked or expired.
    pub fn session(&self, value: &str) -> Result<Caller, EngineError> {
        let bad = || unauthorized("the session is not valid: log in again".to_owned());
        let (data, tag) = value.rsplit_once('.').ok_or_else(bad)?;
        if !verify(self, SESSION_PURPOSE, data, tag) {
            return Err(bad());
        }
        let (key_id, ends) = data.split_once('.').ok_or_else(bad)?;
        let ends: UnixMillis = ends.parse().map_err(|_| bad())?;
        let now = now_ms();
        if now >= ends {
            return Err(unauthorized("the session has ended: log in again".to_owned()));
        }
        let keys = self.identity.keys.load();
        let entry = keys.get(key_id).ok_or_else(bad)?;
        entry.live(key_id, now)?;
        entry.used.fetch_max(now, std::sync::atomic::Ordering::Relaxed);
        Ok(entry.caller(key_id))
    }

    /// The CSRF token of a session: what its forms carry, and what a POST must carry.
    pub fn csrf_token(&self, session: &str) -> String {
        mac(self, CSRF_PURPOSE, session)
    }

    /// Whether `token` is `session`'s CSRF token (compared in constant time).
    pub fn is_csrf_token(&self, session: &str, token: &str) -> bool {
        verify(self, CSRF_PURPOSE, session, token)
    }
}
