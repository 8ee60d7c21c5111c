//! A wasm guest's calls to other functions through `wisp:platform/functions`: one host
//! call each, held to what Lambda's Invoke at the platform address holds them to — the
//! caller's `invoke` grant (checked first, so an ungranted caller learns nothing of the
//! callee), the callee's existence, and the engine's payload limits, loop guard,
//! deadline and breaker — and answered with the callee's answer read whole.

use super::platform::Guest;
use crate::calls::CallFrom;
use crate::{Engine, EngineError, InvokeOptions};
use bytes::Bytes;
use std::sync::{Arc, OnceLock, Weak};
use wisp_core::{ErrorCode, FunctionName, Qualifier};
use wisp_runtime::services::{CallAnswer, CallError, FunctionCalls, ServiceFuture};
use wisp_runtime::{CallSite, body};

/// The engine, once it exists: versions' services are built while it is being made,
/// and hold it weakly (it holds them).
pub(crate) type EngineCell = Arc<OnceLock<Weak<Engine>>>;

/// One function version's calls.
pub(crate) struct GuestCalls {
    engine: EngineCell,
    guest: Guest,
}

impl GuestCalls {
    pub(crate) fn new(guest: Guest, engine: &EngineCell) -> Arc<GuestCalls> {
        Arc::new(GuestCalls {
            engine: engine.clone(),
            guest,
        })
    }

    /// Checks a call of `target` (`NAME` or `NAME:QUALIFIER`): the engine, who calls and
    /// whom, or why not. The payload's limit is the engine's to check, as for any invoke.
    fn prepare(
        &self,
        site: CallSite,
        target: &str,
    ) -> Result<(Arc<Engine>, CallFrom, FunctionName, Option<Qualifier>), CallError> {
        let (name, qualifier) = parse_target(target)?;
        self.guest.caller.check_invoke_grant(&name).map_err(call_error)?;
        let engine = self.engine.get().and_then(Weak::upgrade).ok_or_else(|| {
            call_error(EngineError::new(
                ErrorCode::Overloaded,
                "the engine is not running (it is starting or shutting down)",
            ))
        })?;
        // Before the breaker is asked, as Lambda's Invoke checks it: a call to no function
        // leaves no breaker behind.
        if engine.function(&self.guest.caller.namespace, &name).is_none() {
            return Err(call_error(EngineError::function_not_found(name.as_str())));
        }
        Ok((engine, self.guest.call_from(site), name, qualifier))
    }
}

impl FunctionCalls for GuestCalls {
    fn invoke(
        &self,
        site: CallSite,
        name: String,
        payload: Bytes,
    ) -> ServiceFuture<Result<CallAnswer, CallError>> {
        let prepared = self.prepare(site, &name);
        Box::pin(async move {
            let (engine, from, name, qualifier) = prepared?;
            let response = engine
                .call(
                    &from,
                    &name,
                    payload,
                    InvokeOptions {
                        qualifier,
                        ..InvokeOptions::default()
                    },
                )
                .await
                .map_err(call_error)?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let limit = engine.limits().max_response_body;
            let body = body::read_to_bytes(response.into_body(), limit)
                .await
                .map_err(|e| CallError {
                    code: ErrorCode::ResponseTooLarge,
                    message: format!("reading `{name}`'s answer failed: {e}"),
                })?;
            Ok(CallAnswer {
                status,
                content_type,
                body,
            })
        })
    }

    fn invoke_async(
        &self,
        site: CallSite,
        name: String,
        payload: Bytes,
    ) -> ServiceFuture<Result<String, CallError>> {
        let prepared = self.prepare(site, &name);
        Box::pin(async move {
            let (engine, from, name, qualifier) = prepared?;
            let accepted = engine
                .call_async(&from, &name, qualifier, payload)
                .await
                .map_err(call_error)?;
            Ok(accepted.id)
        })
    }
}

/// `NAME` or `NAME:QUALIFIER`, checked as Lambda's Invoke checks them.
fn parse_target(target: &str) -> Result<(FunctionName, Option<Qualifier>), CallError> {
    let invalid = |message: String| CallError {
        code: ErrorCode::InvalidRequest,
        message,
    };
    let (name, qualifier) = match target.split_once(':') {
        Some((name, qualifier)) => (name, Some(qualifier)),
        None => (target, None),
    };
    let name = FunctionName::new(name).map_err(|e| {
        invalid(format!(
            "`{target}` names no function: {e} (Wisp function names are DNS labels)"
        ))
    })?;
    let qualifier = qualifier
        .map(|q| {
            q.parse::<Qualifier>().map_err(|e| {
                invalid(format!(
                    "invalid qualifier `{q}` in `{target}`: {e}; name a version number, an alias or $LATEST"
                ))
            })
        })
        .transpose()?;
    Ok((name, qualifier))
}

/// An engine error as the guest sees it: its code, and the callee's own error message
/// when it failed in Lambda's shape.
fn call_error(e: EngineError) -> CallError {
    // Answered here: an internal error's cause goes to the server's log.
    e.log();
    let message = match (&e.report, e.code) {
        (Some(report), _) => format!("{}: {}", report.error_type, report.error_message),
        (None, ErrorCode::Internal) => "the service failed; see the Wisp server's log".to_owned(),
        (None, _) => e.detail,
    };
    CallError {
        code: e.code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_names_with_an_optional_qualifier() {
        let (name, qualifier) = parse_target("resize").unwrap();
        assert_eq!(name.as_str(), "resize");
        assert!(qualifier.is_none());
        let (name, qualifier) = parse_target("resize:prod").unwrap();
        assert_eq!(name.as_str(), "resize");
        assert_eq!(qualifier.unwrap().to_string(), "prod");
        for bad in ["", "Resize", "a/b", "resize:", "resize:a:b", ":prod"] {
            let e = parse_target(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{bad}: {e}");
        }
    }
}
