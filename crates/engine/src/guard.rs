//! The engine's circuit breakers in use: every function-to-function call and every
//! destination or subscription delivery asks [`Engine::guard`] for a permit on its
//! caller → callee breaker before it calls, and reports the outcome on the permit at
//! [`Engine::breaker_now`]. The breaker's settings are the callee function's
//! `breaker` (the defaults for queues, topics and webhooks). The API lists a
//! namespace's breakers ([`Engine::breakers`]).

use crate::breaker::{BreakerKey, BreakerView, Endpoint, Permit};
use crate::{Engine, EngineError};
use std::time::Duration;
use wisp_core::{BreakerConfig, Namespace};

impl Engine {
    /// A permit to call `callee` from `caller`, or `circuit_open` (with `Retry-After`)
    /// when its breaker is open: then nothing may be called, and a caller that must
    /// deliver (an async delivery) waits `retry_after` and asks again, counting no
    /// attempt.
    pub(crate) fn guard(&self, caller: Endpoint, callee: Endpoint) -> Result<Permit, EngineError> {
        let config = self.breaker_config(&callee);
        let key = BreakerKey { caller, callee };
        self.breakers
            .admit(&key, &config, self.breaker_now())
            .map_err(|open| open.into_error(&key))
    }

    /// The time permits are reported at (the engine's monotonic clock).
    pub(crate) fn breaker_now(&self) -> Duration {
        self.pools.clock.now()
    }

    /// The settings of breakers into `callee`: a function's own `breaker`, else the
    /// defaults.
    fn breaker_config(&self, callee: &Endpoint) -> BreakerConfig {
        match callee {
            Endpoint::Function { namespace, name } => self
                .function(namespace, name)
                .and_then(|f| f.live().record.config.breaker)
                .unwrap_or_default(),
            _ => BreakerConfig::DEFAULT,
        }
    }

    /// The breakers whose caller is in `namespace`, sorted by key, as the API shows
    /// them now.
    pub fn breakers(&self, namespace: &Namespace) -> Vec<(BreakerKey, BreakerView)> {
        self.breakers.list(
            |key| key.caller.namespace() == Some(namespace),
            self.breaker_now(),
            wisp_core::wall::now_ms(),
        )
    }
}
