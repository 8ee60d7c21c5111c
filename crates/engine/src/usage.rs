//! Metering's read side: the usage the store rolled up from invocation records
//! ([`wisp_store::Usage`]), and the prices it is costed at.

use crate::{Engine, EngineError};
use std::sync::Arc;
use wisp_core::billing::Prices;
use wisp_store::{UsageQuery, UsageRow};

impl Engine {
    /// Usage rolled up per the query's grouping.
    pub async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, EngineError> {
        Ok(self.store.usage(query).await?)
    }

    /// The prices usage is costed at.
    pub fn prices(&self) -> Prices {
        **self.prices.load()
    }

    /// Sets the prices (the server's `--price-*` flags).
    pub fn set_prices(&self, prices: Prices) {
        self.prices.store(Arc::new(prices));
    }
}
