//! Deployed functions as the request path sees them: the store's record, the
//! version's pool (its loaded code, concurrency gate and autoscaler) and the
//! services its guests may call.

use crate::pool::{Pool, PoolContext, PoolStatus};
use crate::services;
use std::collections::HashMap;
use std::sync::Arc;
use wisp_core::{FunctionName, Namespace};
use wisp_runtime::{Function, FunctionSpec, Services};
use wisp_store::FunctionRecord;

/// A deployed function's namespace and name.
pub(crate) type FunctionKey = (Namespace, FunctionName);

/// Every deployed function, by namespace and name: the snapshot the engine swaps
/// whole on every deploy and delete, and what triggers follow.
pub(crate) type Functions = HashMap<FunctionKey, Arc<Deployed>>;

/// A function version that is serving.
pub struct Deployed {
    pub record: FunctionRecord,
    pub(crate) pool: Arc<Pool>,
    /// What its guests may call, as its configuration grants; every invocation
    /// carries a clone.
    pub(crate) services: Services,
}

impl Deployed {
    /// A version whose code loads on its first invocation (a cold start), or ahead of
    /// it when it keeps `min_instances` warm.
    pub(crate) fn new(record: FunctionRecord, ctx: &PoolContext) -> Deployed {
        Deployed::with_code(record, ctx, None)
    }

    /// A version whose code is loaded already (just deployed).
    pub(crate) fn with_code(
        record: FunctionRecord,
        ctx: &PoolContext,
        loaded: Option<Arc<dyn Function>>,
    ) -> Deployed {
        let spec = FunctionSpec {
            name: record.name.to_string(),
            code_hash: record.version.code_hash.clone(),
            config: record.version.config.clone(),
        };
        let services = services::for_function(&spec.config);
        let pool = Pool::new(ctx.clone(), record.namespace.clone(), spec, loaded);
        Deployed {
            record,
            pool,
            services,
        }
    }

    /// The loaded code, if it is loaded.
    pub(crate) fn loaded(&self) -> Option<Arc<dyn Function>> {
        self.pool.loaded()
    }

    /// The pool's instances, queue and counters.
    pub fn status(&self) -> PoolStatus {
        self.pool.status()
    }
}
