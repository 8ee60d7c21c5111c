//! Deployed functions as the request path sees them: the store's record, a running
//! [`Version`] per kept version (its pool: loaded code, concurrency gate and
//! autoscaler; and the services its guests may call), and the aliases resolved to
//! those versions, so that picking the version an invocation runs is a map lookup
//! and, for a weighted alias, one atomic increment.

use crate::identity::function_credentials::{DepthGuard, FunctionCredential, FunctionGrants};
use crate::pool::{Pool, PoolContext, PoolStatus};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wisp_core::version::live;
use wisp_core::{
    AliasName, AliasTarget, FunctionConfig, FunctionName, FunctionRuntime, Namespace, Qualifier,
};
use wisp_runtime::{Function, Services};
use wisp_store::{FunctionRecord, VersionRecord};

/// A deployed function's namespace and name.
pub(crate) type FunctionKey = (Namespace, FunctionName);

/// Every deployed function, by namespace and name: the snapshot the engine swaps
/// whole on every change, and what triggers follow.
pub(crate) type Functions = HashMap<FunctionKey, Arc<Deployed>>;

/// A deployed function. See the module docs.
pub struct Deployed {
    pub record: FunctionRecord,
    /// A running version per kept version, by number.
    versions: BTreeMap<u32, Arc<Version>>,
    /// Its aliases, resolved to running versions.
    aliases: HashMap<AliasName, Arc<Alias>>,
    /// `live`, resolved (the same as in `aliases`): the request path's one read.
    live: Arc<Alias>,
}

/// A version that can run: its record, its pool and its services.
pub struct Version {
    pub namespace: Namespace,
    pub function: FunctionName,
    pub record: VersionRecord,
    pub(crate) pool: Arc<Pool>,
    /// What its guests may call, as its configuration grants; every invocation
    /// carries a clone.
    pub(crate) services: Services,
    /// Whether an alias points at it: only then does it keep `min_instances`.
    pub(crate) aliased: bool,
    /// Its number as the `X-Wisp-Version` header value (made once, cloned per answer).
    pub(crate) header: http::HeaderValue,
    /// The credential its native instances get in their environment (none for wasm).
    pub(crate) credential: Option<Arc<FunctionCredential>>,
}

/// An alias resolved: its target's versions, and the count of invocations it has
/// picked for (what spreads a weighted alias's traffic).
struct Alias {
    target: AliasTarget,
    main: Arc<Version>,
    additional: Option<Arc<Version>>,
    picked: AtomicU64,
}

impl Alias {
    fn pick(&self) -> &Arc<Version> {
        match &self.additional {
            None => &self.main,
            Some(additional) => {
                let n = self.picked.fetch_add(1, Ordering::Relaxed);
                if self.target.pick(n) == self.target.version {
                    &self.main
                } else {
                    additional
                }
            }
        }
    }
}

impl Deployed {
    /// A function whose versions load on their first invocation (a cold start), or
    /// ahead of it when they keep `min_instances` warm. `previous`, the same function
    /// as it was, lends the versions that are still there unchanged, so their pools
    /// (warm code, running invocations, counters) carry over.
    pub(crate) fn new(record: FunctionRecord, ctx: &PoolContext, previous: Option<&Deployed>) -> Deployed {
        Deployed::with_code(record, ctx, previous, None)
    }

    /// As [`Deployed::new`], with the code of the version `loaded` names already
    /// loaded (just compiled by a deploy).
    pub(crate) fn with_code(
        record: FunctionRecord,
        ctx: &PoolContext,
        previous: Option<&Deployed>,
        loaded: Option<(u32, Arc<dyn Function>)>,
    ) -> Deployed {
        let versions: BTreeMap<u32, Arc<Version>> = record
            .versions
            .iter()
            .map(|v| {
                let aliased = record.aliases_of(v.number).next().is_some();
                let reusable = previous
                    .and_then(|p| p.versions.get(&v.number))
                    .filter(|p| p.record == *v && p.aliased == aliased);
                let version = match reusable {
                    Some(version) => version.clone(),
                    None => {
                        // Code is lent only to a version an alias points to: one that
                        // none does drains and lets its code (and instances) go.
                        let code = loaded
                            .as_ref()
                            .filter(|(n, _)| *n == v.number)
                            .map(|(_, f)| f.clone())
                            .or_else(|| previous.filter(|_| aliased).and_then(|p| p.loaded_code(v)));
                        Arc::new(Version::new(&record, v.clone(), aliased, ctx, code))
                    }
                };
                (v.number, version)
            })
            .collect();
        let aliases: HashMap<AliasName, Arc<Alias>> = record
            .aliases
            .iter()
            .filter_map(|(name, target)| {
                let main = versions.get(&target.version)?.clone();
                let additional = match &target.additional {
                    Some(a) => Some(versions.get(&a.version)?.clone()),
                    None => None,
                };
                let alias = Alias {
                    target: target.clone(),
                    main,
                    additional,
                    picked: AtomicU64::new(0),
                };
                Some((name.clone(), Arc::new(alias)))
            })
            .collect();
        let live = resolve_live(&aliases, &versions, &record.name);
        Deployed {
            record,
            versions,
            aliases,
            live,
        }
    }

    /// Code already loaded for a version with the same content, to lend a new pool:
    /// switching back to earlier code compiles and loads nothing.
    fn loaded_code(&self, version: &VersionRecord) -> Option<Arc<dyn Function>> {
        self.versions
            .values()
            .filter(|v| v.record.id == version.id)
            .find_map(|v| v.pool.loaded())
    }

    /// The version an invocation of `live` runs (for a weighted alias, the next pick).
    pub(crate) fn live(&self) -> &Arc<Version> {
        self.live.pick()
    }

    /// The main version of `live`: whose configuration routes and triggers follow.
    pub fn live_version(&self) -> &Arc<Version> {
        &self.live.main
    }

    /// The configuration routes and triggers follow (`live`'s main version's).
    pub fn config(&self) -> &FunctionConfig {
        &self.live_version().record.config
    }

    /// The version an invocation naming `qualifier` runs, if there is one.
    pub(crate) fn resolve(&self, qualifier: &Qualifier) -> Option<&Arc<Version>> {
        match qualifier {
            Qualifier::Alias(alias) => self.aliases.get(alias).map(|a| a.pick()),
            Qualifier::Version(n) => self.versions.get(n),
            Qualifier::Latest => self.versions.values().next_back(),
        }
    }

    /// Every running version, oldest first.
    pub fn versions(&self) -> impl DoubleEndedIterator<Item = &Arc<Version>> {
        self.versions.values()
    }

    /// The running version numbered `number`.
    pub fn version(&self, number: u32) -> Option<&Arc<Version>> {
        self.versions.get(&number)
    }
}

/// `live` among the resolved aliases. The store never yields a record without it (nor
/// without a version); should one arrive anyway, its newest version stands in.
#[expect(
    clippy::expect_used,
    reason = "the store never yields a function without a version: it reports such a record as corrupt"
)]
fn resolve_live(
    aliases: &HashMap<AliasName, Arc<Alias>>,
    versions: &BTreeMap<u32, Arc<Version>>,
    name: &FunctionName,
) -> Arc<Alias> {
    if let Some(live) = aliases.get(&live()) {
        return live.clone();
    }
    tracing::error!(function = %name, "a deployed function has no `live` alias; serving its newest version");
    let (number, newest) = versions
        .iter()
        .next_back()
        .map(|(n, v)| (*n, v.clone()))
        .expect("a function keeps at least one version");
    Arc::new(Alias {
        target: AliasTarget::one(number),
        main: newest,
        additional: None,
        picked: AtomicU64::new(0),
    })
}

impl Version {
    fn new(
        function: &FunctionRecord,
        record: VersionRecord,
        aliased: bool,
        ctx: &PoolContext,
        loaded: Option<Arc<dyn Function>>,
    ) -> Version {
        let spec = ctx.spec(
            &function.namespace,
            &function.name,
            &record.id,
            record.code_hash.clone(),
            record.config.clone(),
        );
        // Its grants, and its namespace's secrets (see `PoolContext::spec`).
        let services = spec.services.clone();
        // Held while the version is deployed: what keeps its credential valid.
        let credential = (spec.config.runtime != FunctionRuntime::Wasm).then(|| {
            ctx.function_credentials.issue(
                &function.namespace,
                &function.name,
                &record.id,
                FunctionGrants::of(&function.name, &spec.config),
            )
        });
        // A version no alias points to keeps nothing warm: it drains, then scales to zero.
        let min_instances = if aliased { record.config.min_instances } else { 0 };
        let metrics = ctx
            .metrics
            .version(&function.namespace, &function.name, record.number);
        let pool = Pool::new(
            ctx.clone(),
            function.namespace.clone(),
            spec,
            record.number,
            min_instances,
            loaded,
            metrics,
        );
        Version {
            namespace: function.namespace.clone(),
            function: function.name.clone(),
            header: http::HeaderValue::from(record.number),
            record,
            pool,
            services,
            aliased,
            credential,
        }
    }

    /// Counts an event of `depth` as running on this version until the guard drops:
    /// writes made with its credential meanwhile cause events one hop deeper.
    pub(crate) fn running(&self, depth: u32) -> Option<DepthGuard> {
        self.credential.as_ref().map(|c| c.depths.enter(depth))
    }

    /// Its configuration.
    pub fn config(&self) -> &FunctionConfig {
        &self.record.config
    }

    /// The loaded code, if it is loaded.
    pub(crate) fn loaded(&self) -> Option<Arc<dyn Function>> {
        self.pool.loaded()
    }

    /// The reserved capacity it holds: `min_instances` when an alias points at it.
    pub(crate) fn min_instances(&self) -> u32 {
        if self.aliased {
            self.record.config.min_instances
        } else {
            0
        }
    }

    /// The pool's instances, queue and counters.
    pub fn status(&self) -> PoolStatus {
        self.pool.status()
    }
}
