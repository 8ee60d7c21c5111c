//! Metering's read side: the usage the store rolled up from invocation records
//! ([`wisp_store::Usage`]); the prices it is costed at are each namespace's plan
//! ([`crate::quota`]).

use crate::{Engine, EngineError};
use wisp_store::{UsageQuery, UsageRow};

impl Engine {
    /// Usage rolled up per the query's grouping.
    pub async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, EngineError> {
        Ok(self.store.usage(query).await?)
    }
}
