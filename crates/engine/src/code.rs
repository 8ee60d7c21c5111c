//! A function version's code as it was uploaded, read back from the store: for
//! changes that publish a new version of the same code (Lambda's
//! `UpdateFunctionConfiguration` in the server), which must deploy its bytes again.

use crate::{Engine, EngineError};
use bytes::Bytes;
use wisp_core::Namespace;

impl Engine {
    /// The code with hex SHA-256 `code_hash` in `namespace`, or `None` when the store
    /// keeps none (no kept version of the namespace uses it). Reads the store on
    /// every call: not for the request path.
    pub async fn code(&self, namespace: &Namespace, code_hash: &str) -> Result<Option<Bytes>, EngineError> {
        Ok(self.store.get_code(namespace, code_hash).await?.map(Bytes::from))
    }
}
