//! Deployed functions as the request path sees them: the store's record plus the
//! loaded code, loaded lazily on the first invocation (a cold start).

use std::sync::Arc;
use std::time::Instant;
use tokio::sync::OnceCell;
use wisp_runtime::{Function, FunctionSpec, Runtime};
use wisp_store::{FunctionRecord, Store};

use crate::EngineError;

/// A function version that is serving.
pub struct Deployed {
    pub record: FunctionRecord,
    loaded: OnceCell<Arc<dyn Function>>,
}

impl Deployed {
    pub(crate) fn new(record: FunctionRecord) -> Deployed {
        Deployed {
            record,
            loaded: OnceCell::new(),
        }
    }

    pub(crate) fn with_function(record: FunctionRecord, function: Arc<dyn Function>) -> Deployed {
        Deployed {
            record,
            loaded: OnceCell::new_with(Some(function)),
        }
    }

    /// The loaded code, if it is loaded.
    pub(crate) fn loaded(&self) -> Option<&Arc<dyn Function>> {
        self.loaded.get()
    }

    /// Whether the code is loaded (the function is warm).
    pub fn is_loaded(&self) -> bool {
        self.loaded.initialized()
    }

    pub(crate) fn spec(&self) -> FunctionSpec {
        FunctionSpec {
            name: self.record.name.to_string(),
            code_hash: self.record.version.code_hash.clone(),
            config: self.record.version.config.clone(),
        }
    }

    /// The loaded code, loading it on first use: from the artifact cache, or by
    /// compiling the stored code when the cache has no usable artifact.
    pub(crate) async fn function(
        &self,
        runtime: &dyn Runtime,
        store: &dyn Store,
    ) -> Result<&Arc<dyn Function>, EngineError> {
        if let Some(function) = self.loaded.get() {
            return Ok(function);
        }
        self.loaded
            .get_or_try_init(|| async {
                let started = Instant::now();
                let name = &self.record.name;
                if let Some(function) = runtime.load(self.spec()).await? {
                    tracing::info!(function = %name, "loaded `{name}` from the artifact cache in {:?}", started.elapsed());
                    return Ok(function);
                }
                let code = store
                    .get_code(&self.record.namespace, &self.record.version.code_hash)
                    .await?
                    .ok_or_else(|| {
                        EngineError::new(
                            wisp_core::ErrorCode::Internal,
                            format!("the code of `{name}` is missing from the store"),
                        )
                    })?;
                let function = runtime.compile(self.spec(), code.into()).await?;
                tracing::info!(function = %name, "compiled `{name}` in {:?}", started.elapsed());
                Ok(function)
            })
            .await
    }
}
