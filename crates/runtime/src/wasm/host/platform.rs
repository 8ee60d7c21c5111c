//! `wisp:platform/functions@0.1.0` (the WIT is under `crates/runtime/wit/platform/`):
//! a guest's call to another function, in one host call, goes to the invocation's
//! [`FunctionCalls`] service with the invocation's [`CallSite`]; its answer and errors
//! map back onto the interface's records. Added to the component linker once, when the
//! runtime starts: a component that does not import it pays nothing.

use crate::CallSite;
use crate::services::{CallError, FunctionCalls};
use bytes::Bytes;
use std::sync::Arc;
use wasmtime::component::{HasData, Linker};

mod generated {
    wasmtime::component::bindgen!({
        path: "wit/platform",
        world: "wisp:platform/imports",
        imports: { default: async | trappable },
    });
}

use generated::wisp::platform::functions;

/// What the bindings reach of an invocation's state.
pub(crate) struct FunctionsView<'a> {
    pub(crate) calls: &'a Arc<dyn FunctionCalls>,
    pub(crate) site: &'a CallSite,
}

struct HasFunctions;

impl HasData for HasFunctions {
    type Data<'a> = FunctionsView<'a>;
}

/// Adds the interface to `linker`. Called once, when the runtime starts.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> FunctionsView<'_>,
) -> wasmtime::Result<()> {
    functions::add_to_linker::<T, HasFunctions>(linker, view)
}

fn wit_error(e: CallError) -> functions::CallError {
    functions::CallError {
        code: e.code.as_str().to_owned(),
        message: e.message,
    }
}

type Answer<T> = wasmtime::Result<Result<T, functions::CallError>>;

impl functions::Host for FunctionsView<'_> {
    async fn invoke(&mut self, name: String, payload: Vec<u8>) -> Answer<functions::Response> {
        let answer = self
            .calls
            .invoke(self.site.clone(), name, Bytes::from(payload))
            .await;
        Ok(answer
            .map(|answer| functions::Response {
                status: answer.status,
                content_type: answer.content_type,
                body: answer.body.into(),
            })
            .map_err(wit_error))
    }

    async fn invoke_async(&mut self, name: String, payload: Vec<u8>) -> Answer<String> {
        let answer = self
            .calls
            .invoke_async(self.site.clone(), name, Bytes::from(payload))
            .await;
        Ok(answer.map_err(wit_error))
    }
}
