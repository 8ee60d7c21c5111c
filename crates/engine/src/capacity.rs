//! Reserved capacity held: a function version with `min_instances` that an alias points
//! at holds `min_instances × memory_mb` from the moment an alias points at it (a deploy,
//! an alias change, or the engine's start) until none does or the function is deleted, and is billed for it whether it runs or not,
//! as Lambda bills provisioned concurrency. Measured here against the registry's
//! changes, and written to the store's usage rollup about once a second.

use crate::registry::Functions;
use crate::{Engine, EngineError};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use wisp_core::wall::now_ms;
use wisp_core::{FunctionName, Namespace, UnixMillis, VersionId};
use wisp_store::{CapacityHeld, HOUR_MS, hour_of};

type Key = (Namespace, FunctionName, VersionId);

/// See the module docs.
#[derive(Default)]
pub(crate) struct CapacityMeter {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Versions holding capacity: the MB held, and since when it is not yet accrued.
    held: HashMap<Key, (u64, UnixMillis)>,
    /// Accrued and not yet written: MB-ms per version and hour.
    pending: BTreeMap<(Key, UnixMillis), u64>,
}

impl State {
    /// Adds `mb` held over `[from, to)` to the pending hours it spans.
    fn accrue(&mut self, key: &Key, mb: u64, mut from: UnixMillis, to: UnixMillis) {
        while from < to {
            let hour = hour_of(from);
            let end = to.min(hour + HOUR_MS);
            let ms = u64::try_from(end - from).unwrap_or(0);
            *self.pending.entry((key.clone(), hour)).or_default() += mb.saturating_mul(ms);
            from = end;
        }
    }
}

impl CapacityMeter {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Accrues what every version held up to `now`, then follows `functions`: a version
    /// no longer there stops holding now, a new one starts now.
    pub(crate) fn sync(&self, now: UnixMillis, functions: &Functions) {
        let mut state = self.state();
        let held: Vec<(Key, u64, UnixMillis)> = state
            .held
            .iter()
            .map(|(key, &(mb, since))| (key.clone(), mb, since))
            .collect();
        for (key, mb, since) in held {
            state.accrue(&key, mb, since, now);
        }
        let wanted: HashMap<Key, u64> = functions
            .values()
            .flat_map(|d| d.versions())
            .filter(|v| v.min_instances() > 0)
            .map(|v| {
                let key = (v.namespace.clone(), v.function.clone(), v.record.id.clone());
                let mb = u64::from(v.min_instances()) * u64::from(v.config().memory_mb);
                // Two numbers with one content id hold one key: their capacity adds up.
                (key, mb)
            })
            .fold(HashMap::new(), |mut wanted, (key, mb)| {
                *wanted.entry(key).or_default() += mb;
                wanted
            });
        state.held.retain(|key, _| wanted.contains_key(key));
        for (key, mb) in wanted {
            state.held.insert(key, (mb, now));
        }
    }

    /// Takes what is accrued and not yet written.
    fn take(&self) -> Vec<CapacityHeld> {
        std::mem::take(&mut self.state().pending)
            .into_iter()
            .filter(|(_, mb_ms)| *mb_ms > 0)
            .map(|(((namespace, function, version), hour), mb_ms)| CapacityHeld {
                namespace,
                function,
                version,
                hour,
                mb_ms,
            })
            .collect()
    }

    /// Puts back what could not be written, to try again.
    fn put_back(&self, held: Vec<CapacityHeld>) {
        let mut state = self.state();
        for h in held {
            let key = ((h.namespace, h.function, h.version), h.hour);
            *state.pending.entry(key).or_default() += h.mb_ms;
        }
    }
}

impl Engine {
    /// Accrues reserved capacity up to now and writes it to the store.
    pub(crate) async fn flush_capacity(&self) -> Result<(), EngineError> {
        self.capacity.sync(now_ms(), &self.functions.load());
        let held = self.capacity.take();
        if held.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.store.add_capacity(&held).await {
            self.capacity.put_back(held);
            return Err(e.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_split_by_the_hours_it_spans() {
        let mut state = State::default();
        let key = (
            Namespace::default_namespace(),
            FunctionName::new("warm").unwrap(),
            VersionId("v1".to_owned()),
        );
        // 256 MB from 10 s before an hour to 5 s past it.
        let hour = 1_700_002_800_000;
        state.accrue(&key, 256, hour - 10_000, hour + 5_000);
        assert_eq!(state.pending[&(key.clone(), hour - HOUR_MS)], 256 * 10_000);
        assert_eq!(state.pending[&(key.clone(), hour)], 256 * 5_000);
        state.accrue(&key, 256, hour + 5_000, hour + 5_000);
        assert_eq!(state.pending.len(), 2, "an empty span accrues nothing");
    }
}
