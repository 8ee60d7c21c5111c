//! The services context: what the platform offers a running guest beyond its own
//! code: outbound HTTP (which reaches the platform address's routes too), key-value
//! stores, secrets and calls to other functions.
//!
//! # Design
//!
//! The engine builds one [`Services`] per function version, from what that version
//! is granted, and hands it to the runtime with every [`Invocation`](crate::Invocation).
//! The runtime's host bindings (`wasm/host/`) call it and know nothing of what is
//! behind it: the implementations live in the engine (`engine/src/services/`), over
//! the store, so the runtime never depends on the store. Each service is a trait here
//! in the runtime's own types, so neither side sees the other's internals (the
//! engine never sees a wasmtime type; the runtime never sees a grant).
//!
//! Cloning a [`Services`] is a few reference-count increments: it is cloned into
//! every invocation.

use crate::CallSite;
use crate::body::Body;
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use wisp_core::ErrorCode;

/// Every service a guest may call, as granted to its function version.
#[derive(Clone)]
pub struct Services {
    outbound_http: Arc<dyn OutboundHttp>,
    key_values: Arc<dyn KeyValues>,
    secret_values: Arc<dyn SecretValues>,
    function_calls: Arc<dyn FunctionCalls>,
}

impl Services {
    /// Outbound HTTP through `outbound_http`; every other service refuses until given
    /// (`with_…`).
    pub fn new(outbound_http: Arc<dyn OutboundHttp>) -> Services {
        Services {
            outbound_http,
            key_values: Arc::new(DenyAll),
            secret_values: Arc::new(DenyAll),
            function_calls: Arc::new(DenyAll),
        }
    }

    /// The same services, with key-value stores opened through `key_values`.
    pub fn with_key_values(mut self, key_values: Arc<dyn KeyValues>) -> Services {
        self.key_values = key_values;
        self
    }

    /// Opens the key-value stores a guest names.
    pub fn key_values(&self) -> &Arc<dyn KeyValues> {
        &self.key_values
    }

    /// The same services, with the secrets of the function's namespace read through
    /// `secret_values`.
    pub fn with_secret_values(mut self, secret_values: Arc<dyn SecretValues>) -> Services {
        self.secret_values = secret_values;
        self
    }

    /// The values of the secrets a function's environment refers to.
    pub fn secret_values(&self) -> &Arc<dyn SecretValues> {
        &self.secret_values
    }

    /// The same services, with calls to other functions made through `function_calls`.
    pub fn with_function_calls(mut self, function_calls: Arc<dyn FunctionCalls>) -> Services {
        self.function_calls = function_calls;
        self
    }

    /// Makes a guest's calls to other functions (`wisp:platform/functions`).
    pub fn function_calls(&self) -> &Arc<dyn FunctionCalls> {
        &self.function_calls
    }

    /// Nothing granted: every service refuses (what a function gets by default, and
    /// what tests of a runtime alone use).
    pub fn none() -> Services {
        Services::new(Arc::new(DenyAll))
    }

    /// Sends a guest's outgoing HTTP requests.
    pub fn outbound_http(&self) -> &Arc<dyn OutboundHttp> {
        &self.outbound_http
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").finish_non_exhaustive()
    }
}

/// A future a service answers with.
pub type ServiceFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// An HTTP request a guest sends, with the timeouts it asked for (`None`: the
/// service's own bound).
pub struct OutboundRequest {
    pub request: http::Request<Body>,
    /// The invocation sending it (`None`: a native instance's proxy, which cannot tell).
    pub site: Option<CallSite>,
    pub connect_timeout: Option<Duration>,
    pub first_byte_timeout: Option<Duration>,
    pub between_bytes_timeout: Option<Duration>,
}

/// Why an outgoing request got no response. The host bindings map each onto the
/// guest interface's own error (for `wasi:http`, its `error-code`).
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The function is not granted this destination (`HTTP-request-denied`).
    #[error("the function may not send this request")]
    Denied,
    /// The destination resolved to an address functions may never reach
    /// (`destination-IP-prohibited`).
    #[error("the destination's address is prohibited")]
    DestinationIpProhibited,
    /// Anything else (`internal-error`, with this text).
    #[error("{0}")]
    Failed(String),
}

/// Sends the outgoing HTTP requests of a guest. Called from a guest's host call, on
/// the invocation's task, once per request; the answer is awaited under the
/// invocation's deadline.
pub trait OutboundHttp: Send + Sync + 'static {
    fn send(&self, request: OutboundRequest) -> ServiceFuture<Result<http::Response<Body>, OutboundError>>;

    /// Opens a TCP connection to `authority` (`host:port`) for a tunnel (an HTTP
    /// `CONNECT` through the proxy a native function's instance gets), held to the same
    /// grants and address rules as [`send`](OutboundHttp::send). `scheme_hint` is the
    /// scheme the tunnel is known to carry; `None` (what a proxy knows) lets a grant of
    /// either scheme cover its port. Called once per tunnel, from the proxy's task.
    /// Refuses by default.
    fn connect(
        &self,
        authority: &str,
        scheme_hint: Option<&str>,
    ) -> ServiceFuture<Result<tokio::net::TcpStream, OutboundError>> {
        let _ = (authority, scheme_hint);
        Box::pin(async { Err(OutboundError::Denied) })
    }
}

/// Refuses everything.
struct DenyAll;

impl OutboundHttp for DenyAll {
    fn send(&self, _request: OutboundRequest) -> ServiceFuture<Result<http::Response<Body>, OutboundError>> {
        Box::pin(async { Err(OutboundError::Denied) })
    }
}

impl KeyValues for DenyAll {
    fn open(&self, _name: &str) -> ServiceFuture<Result<Arc<dyn KvBucket>, KvError>> {
        Box::pin(async { Err(KvError::AccessDenied) })
    }
}

impl FunctionCalls for DenyAll {
    fn invoke(
        &self,
        _site: CallSite,
        name: String,
        _payload: Bytes,
    ) -> ServiceFuture<Result<CallAnswer, CallError>> {
        Box::pin(async move { Err(CallError::denied(&name)) })
    }

    fn invoke_async(
        &self,
        _site: CallSite,
        name: String,
        _payload: Bytes,
    ) -> ServiceFuture<Result<String, CallError>> {
        Box::pin(async move { Err(CallError::denied(&name)) })
    }
}

impl SecretValues for DenyAll {
    fn value(&self, _name: &str) -> Option<Arc<str>> {
        None
    }
}

/// The current values of the secrets of a function's namespace. Called when an instance
/// starts (a process instance; a wasm instance, which is one per invocation), once per
/// secret its environment refers to: a lookup in memory that never blocks. `None` when
/// there is no such secret (the instance must not start: see `crate::env`).
pub trait SecretValues: Send + Sync + 'static {
    fn value(&self, name: &str) -> Option<Arc<str>>;
}

/// Why a key-value call failed. The host bindings map each onto the guest interface's
/// own error (for `wasi:keyvalue`, its `error`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The function is not granted the store (`access-denied`).
    #[error("the function may not use this key-value store")]
    AccessDenied,
    /// The function is granted the store, but there is no such store
    /// (`no-such-store`).
    #[error("no such key-value store")]
    NoSuchStore,
    /// Anything else, said so that the guest's author can act on it (`other`).
    #[error("{0}")]
    Other(String),
}

/// The version a key's entry had when it was read, for a compare-and-set: opaque to
/// the runtime, compared by the service alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvVersion(pub u64);

/// A key's value with the version it was read at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvVersioned {
    pub value: Vec<u8>,
    pub version: KvVersion,
}

/// What a batch read found: each key with its value, `None` for a key that holds
/// nothing, in the order asked.
pub type KvFound = Vec<Option<(String, Vec<u8>)>>;

/// A page of a store's keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvKeys {
    pub keys: Vec<String>,
    /// What to pass for the next page; `None` when there are no more keys.
    pub cursor: Option<String>,
}

/// What a compare-and-set did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvSwap {
    /// The value was written.
    Swapped,
    /// Nothing was written: the key no longer holds the version it was read at.
    Changed,
}

/// Opens the key-value stores of a guest's function by name. Called from a guest's
/// host call (`wasi:keyvalue/store.open`), on the invocation's task, once per store a
/// guest opens; the answer is awaited under the invocation's deadline.
pub trait KeyValues: Send + Sync + 'static {
    /// The store named `name`: [`KvError::AccessDenied`] when the function is not
    /// granted it, [`KvError::NoSuchStore`] when it is granted but does not exist.
    fn open(&self, name: &str) -> ServiceFuture<Result<Arc<dyn KvBucket>, KvError>>;
}

/// One opened key-value store. Each method is one call a guest made, on the
/// invocation's task, awaited under its deadline; each may take a store round trip.
/// Keys, values and batches past the platform's limits are refused with
/// [`KvError::Other`] saying which.
pub trait KvBucket: Send + Sync + 'static {
    /// The key's value; `None` when it holds nothing.
    fn get(&self, key: String) -> ServiceFuture<Result<Option<Vec<u8>>, KvError>>;
    /// Sets the key's value, whatever it held.
    fn set(&self, key: String, value: Vec<u8>) -> ServiceFuture<Result<(), KvError>>;
    /// Deletes the key; nothing happens when it holds nothing.
    fn delete(&self, key: String) -> ServiceFuture<Result<(), KvError>>;
    /// Whether the key holds a value.
    fn exists(&self, key: String) -> ServiceFuture<Result<bool, KvError>>;
    /// A page of the store's keys in byte order, after `cursor` (`None`: the first).
    fn list_keys(&self, cursor: Option<String>) -> ServiceFuture<Result<KvKeys, KvError>>;
    /// Adds `delta` to the integer the key holds as decimal text (nothing holds 0),
    /// atomically; the sum.
    fn increment(&self, key: String, delta: i64) -> ServiceFuture<Result<i64, KvError>>;
    /// Each key with its value, `None` for one that holds nothing, in order.
    fn get_many(&self, keys: Vec<String>) -> ServiceFuture<Result<KvFound, KvError>>;
    /// Sets each key's value; not all or nothing.
    fn set_many(&self, entries: Vec<(String, Vec<u8>)>) -> ServiceFuture<Result<(), KvError>>;
    /// Deletes each key; not all or nothing.
    fn delete_many(&self, keys: Vec<String>) -> ServiceFuture<Result<(), KvError>>;
    /// The first half of a compare-and-set: the key's value with its version, `None`
    /// when it holds nothing.
    fn read_versioned(&self, key: String) -> ServiceFuture<Result<Option<KvVersioned>, KvError>>;
    /// The second half: writes `value` only if the key still has `expected` (`None`:
    /// still holds nothing), checked in the same step as the write.
    fn write_if(
        &self,
        key: String,
        value: Vec<u8>,
        expected: Option<KvVersion>,
    ) -> ServiceFuture<Result<KvSwap, KvError>>;
}

/// A callee's answer to a guest's call: an `http` function's status, type and body; an
/// `event` function's output with status 200.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallAnswer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// Why a guest's call got no answer: Wisp's error code (as its API names it) and what
/// happened, for the guest's author.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CallError {
    pub code: ErrorCode,
    pub message: String,
}

impl CallError {
    /// The refusal of a call the function is not granted.
    pub fn denied(name: &str) -> CallError {
        CallError {
            code: ErrorCode::Forbidden,
            message: format!(
                "the function is not granted to invoke `{name}` (grant it in the caller's `invoke` list)"
            ),
        }
    }
}

/// Calls from a guest to other functions of its namespace (`wisp:platform/functions`).
/// Called from a guest's host call, on the invocation's task, with the invocation's
/// [`CallSite`] (its deadline, chain depth and trace); the answer is awaited under the
/// invocation's deadline. `name` is as the guest gave it: `NAME` or `NAME:QUALIFIER`.
pub trait FunctionCalls: Send + Sync + 'static {
    /// Runs the callee with `payload` and answers what it answered.
    fn invoke(
        &self,
        site: CallSite,
        name: String,
        payload: Bytes,
    ) -> ServiceFuture<Result<CallAnswer, CallError>>;
    /// Queues `payload` for the callee; the event's id.
    fn invoke_async(
        &self,
        site: CallSite,
        name: String,
        payload: Bytes,
    ) -> ServiceFuture<Result<String, CallError>>;
}
