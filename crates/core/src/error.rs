//! The one table of API error codes: code → HTTP status → title.
//!
//! Every error Wisp answers over HTTP is `application/problem+json` carrying one of
//! these codes. The codes are stable: clients and the CLI match on them.

use serde::{Deserialize, Serialize};

macro_rules! error_codes {
    ($($variant:ident => ($code:literal, $status:literal, $title:literal),)*) => {
        /// A stable, machine-readable error code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            /// Every code, in table order (for docs and tests).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it appears in the `code` member of a problem document.
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The HTTP status this code is answered with.
            pub const fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// A short, human-readable summary (the problem document's `title`).
            pub const fn title(self) -> &'static str {
                match self { $(ErrorCode::$variant => $title,)* }
            }

            /// Looks a code up by its string form.
            pub fn parse(code: &str) -> Option<ErrorCode> {
                match code { $($code => Some(ErrorCode::$variant),)* _ => None }
            }
        }
    };
}

error_codes! {
    InvalidRequest => ("invalid_request", 400, "The request is malformed"),
    InvalidName => ("invalid_name", 400, "The name is not valid"),
    InvalidConfig => ("invalid_config", 400, "The configuration is not valid"),
    InvalidCode => ("invalid_code", 400, "The function code is not valid"),
    ReservedRoute => ("reserved_route", 400, "The route is reserved by Wisp"),
    Unauthorized => ("unauthorized", 401, "The request carries no valid credentials"),
    Forbidden => ("forbidden", 403, "The key's role does not allow this"),
    FunctionNotFound => ("function_not_found", 404, "No such function"),
    VersionNotFound => ("version_not_found", 404, "No such version of the function"),
    AliasNotFound => ("alias_not_found", 404, "No such alias of the function"),
    RouteNotFound => ("route_not_found", 404, "No route matches the request"),
    NotFound => ("not_found", 404, "No such resource"),
    QueueNotFound => ("queue_not_found", 404, "No such queue"),
    TopicNotFound => ("topic_not_found", 404, "No such topic"),
    InvocationNotFound => ("invocation_not_found", 404, "No such invocation"),
    NamespaceNotFound => ("namespace_not_found", 404, "No such namespace"),
    KeyNotFound => ("key_not_found", 404, "No such API key"),
    BucketNotFound => ("bucket_not_found", 404, "No such bucket"),
    ObjectNotFound => ("object_not_found", 404, "No such object or upload"),
    KvStoreNotFound => ("kv_store_not_found", 404, "No such key-value store"),
    KvKeyNotFound => ("kv_key_not_found", 404, "No such key in the key-value store"),
    SecretNotFound => ("secret_not_found", 404, "No such secret"),
    TraceNotFound => ("trace_not_found", 404, "No invocation records carry the trace"),
    AlarmNotFound => ("alarm_not_found", 404, "No such alarm"),
    MethodNotAllowed => ("method_not_allowed", 405, "The method is not allowed here"),
    FunctionDisabled => ("function_disabled", 409, "The function is disabled"),
    RouteConflict => ("route_conflict", 409, "The route is already taken"),
    QueueInUse => ("queue_in_use", 409, "The queue is still used"),
    NamespaceExists => ("namespace_exists", 409, "The namespace exists already"),
    NamespaceNotEmpty => ("namespace_not_empty", 409, "The namespace still holds resources"),
    BucketExists => ("bucket_exists", 409, "The bucket exists already"),
    BucketNotEmpty => ("bucket_not_empty", 409, "The bucket still holds objects"),
    KvStoreExists => ("kv_store_exists", 409, "The key-value store exists already"),
    KvNotANumber => ("kv_not_a_number", 409, "The key does not hold an integer the increment fits"),
    PreconditionFailed => ("precondition_failed", 412, "A precondition of the request does not hold"),
    PayloadTooLarge => ("payload_too_large", 413, "The request body is too large"),
    UnsupportedMediaType => ("unsupported_media_type", 415, "The content type is not supported"),
    RangeNotSatisfiable => ("range_not_satisfiable", 416, "The range is not satisfiable"),
    Throttled => ("throttled", 429, "Too many invocations are running or waiting; retry later"),
    RateLimited => ("rate_limited", 429, "The route's rate limit is spent; retry later"),
    QuotaExceeded => ("quota_exceeded", 429, "The namespace's monthly quota or budget is spent"),
    StorageQuotaExceeded => ("storage_quota_exceeded", 403, "The bucket or namespace holds as many bytes as its quota allows"),
    InvalidResponse => ("invalid_response", 502, "The function returned an invalid response"),
    FunctionError => ("function_error", 502, "The function failed"),
    OutOfMemory => ("out_of_memory", 502, "The function ran out of memory"),
    ResponseTooLarge => ("response_too_large", 502, "The function's response is too large"),
    Timeout => ("timeout", 504, "The function timed out"),
    Internal => ("internal", 500, "Internal server error"),
    Overloaded => ("overloaded", 503, "The server is at its connection limit; retry later"),
    CircuitOpen => ("circuit_open", 503, "The circuit breaker to the callee is open; retry later"),
    StoreUnavailable => ("store_unavailable", 503, "The store cannot be reached now; retry later"),
    LoopDetected => ("loop_detected", 508, "The chain of function calls is too deep; a function is calling itself in a loop"),
}

impl ErrorCode {
    /// The problem document's `type`: a URN naming the code (there is no web page
    /// per error; `docs/api.md` lists them all).
    pub fn type_uri(self) -> String {
        format!("urn:wisp:error:{}", self.as_str())
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/api.md`'s table of codes is the one users read: it must list every code
    /// with its status, and nothing else.
    #[test]
    fn the_api_reference_lists_every_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let listed: Vec<(String, u16)> = doc
            .lines()
            .filter_map(|line| {
                let mut cells = line.split('|').map(str::trim).skip(1);
                let code = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                let status = cells.next()?.parse().ok()?;
                Some((code.to_string(), status))
            })
            .collect();
        let expected: Vec<(String, u16)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.as_str().to_string(), c.status()))
            .collect();
        assert_eq!(
            listed, expected,
            "docs/api.md's table of error codes is out of date"
        );
    }

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate code {code}");
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert!((400..600).contains(&code.status()));
        }
    }
}
