//! The leases this node holds and runs: the events it has taken (from their claim or
//! write until their outcome is written), and the check that frees the leases it holds
//! without running them.
//!
//! A claim, or a write of new events leased at once, whose commit happened but whose
//! answer was lost (a store server killed mid-commit: the node saw an error) leaves
//! events leased to this node, which never heard it got them; alive, it would never run
//! them, and nobody else would until its restart. So every [`CHECK_EVERY`] the node lists
//! its leases ([`wisp_store::Events::held_leases`]) and releases those it has not been
//! running at two looks in a row, each on the lease it saw
//! ([`wisp_store::Events::release_leases`]): the events run again, at least once, never
//! lost. Two looks, so that an event between its commit and its entry here (a claim
//! waiting for room to run) is never taken for one.

use crate::Engine;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use wisp_store::{HeldLease, Store};

/// How often the node looks for leases it holds without running them.
const CHECK_EVERY: Duration = Duration::from_secs(10);

/// The ids of the events this node has taken and not yet written the outcome of.
#[derive(Default)]
pub(super) struct Taken {
    ids: Mutex<HashSet<String>>,
}

impl Taken {
    pub(super) fn add<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut taken = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        taken.extend(ids.into_iter().map(str::to_owned));
    }

    pub(super) fn remove<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut taken = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            taken.remove(id);
        }
    }

    /// Those of `leases` whose events are not taken here.
    fn untaken(&self, leases: Vec<HeldLease>) -> HashSet<HeldLease> {
        let taken = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        leases.into_iter().filter(|l| !taken.contains(&l.id)).collect()
    }
}

/// Frees, every [`CHECK_EVERY`], the leases this node held without running their events
/// at the look before and still does; wakes the dispatcher when it freed some. Ends once
/// the engine is gone.
pub(super) async fn check(engine: Weak<Engine>, store: Arc<dyn Store>, taken: Arc<Taken>, wake: Arc<Notify>) {
    let mut suspects: HashSet<HeldLease> = HashSet::new();
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        if engine.strong_count() == 0 {
            break;
        }
        let leases = match store.held_leases().await {
            Ok(leases) => leases,
            Err(e) => {
                tracing::debug!("listing this node's leases of async events failed: {e}");
                continue;
            }
        };
        let untaken = taken.untaken(leases);
        let (orphans, first_seen): (HashSet<HeldLease>, HashSet<HeldLease>) =
            untaken.into_iter().partition(|l| suspects.contains(l));
        suspects = first_seen;
        let orphans: Vec<HeldLease> = orphans.into_iter().collect();
        if orphans.is_empty() {
            continue;
        }
        match store.release_leases(&orphans).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(
                    "{n} async events were leased to this node but not running here (a claim or write \
                     whose answer was lost); they run again"
                );
                wake.notify_one();
            }
            Err(e) => {
                tracing::warn!("releasing {} leases of async events failed: {e}", orphans.len());
                suspects.extend(orphans);
            }
        }
    }
}
