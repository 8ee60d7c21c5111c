//! Destination records in Lambda's shape: what an `on_success` or `on_failure`
//! destination receives about an async invocation (`requestContext`,
//! `requestPayload`, `responseContext`, `responsePayload`).

use serde_json::{Value, json};
use wisp_core::{FunctionName, Qualifier};

/// Why the record was sent: Lambda's `requestContext.condition`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Condition {
    Success,
    RetriesExhausted,
    EventAgeExceeded,
    /// The event chain reached `Limits::MAX_CHAIN_DEPTH` hops.
    RecursiveLoop,
}

impl Condition {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Condition::Success => "Success",
            Condition::RetriesExhausted => "RetriesExhausted",
            Condition::EventAgeExceeded => "EventAgeExceeded",
            Condition::RecursiveLoop => "RecursiveInvocationDetected",
        }
    }
}

/// The ARN a function is known by in Lambda-shaped documents (the same one the
/// process runtime gives its instances).
pub(crate) fn function_arn(name: &FunctionName) -> String {
    format!("arn:aws:lambda:local:000000000000:function:{name}")
}

/// JSON as it is, anything else as a string (lossy UTF-8).
pub(crate) fn payload_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// What a destination is told about one event.
pub(crate) struct Record<'a> {
    pub function: &'a FunctionName,
    /// What the event named to run: `None` is the `live` alias.
    pub qualifier: Option<&'a Qualifier>,
    pub event_id: &'a str,
    pub condition: Condition,
    pub attempts: u32,
    pub request: &'a [u8],
    /// The function's answer, or its error document.
    pub response: Option<&'a [u8]>,
    /// Lambda's `functionError` (`Handled`/`Unhandled`), for a failed invocation.
    pub function_error: Option<&'a str>,
    /// The number of the version that ran it last.
    pub version: u32,
    pub timestamp_ms: i64,
}

impl Record<'_> {
    pub(crate) fn to_json(&self) -> Vec<u8> {
        let timestamp = wisp_core::wall::rfc3339_ms(self.timestamp_ms);
        let qualifier = self.qualifier.cloned().unwrap_or_else(Qualifier::live);
        let mut response_context = json!({
            "statusCode": 200,
            // A string, as Lambda's `$LATEST` or `7` is, and the number the sync
            // Invoke's `X-Amz-Executed-Version` gives.
            "executedVersion": self.version.to_string(),
        });
        if let Some(error) = self.function_error {
            response_context["functionError"] = Value::String(error.to_string());
        }
        let mut record = json!({
            "version": "1.0",
            "timestamp": timestamp,
            "requestContext": {
                "requestId": self.event_id,
                "functionArn": format!("{}:{qualifier}", function_arn(self.function)),
                "condition": self.condition.as_str(),
                "approximateInvokeCount": self.attempts,
            },
            "requestPayload": payload_value(self.request),
            "responseContext": response_context,
        });
        if let Some(response) = self.response {
            record["responsePayload"] = payload_value(response);
        }
        serde_json::to_vec(&record).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_record_has_lambdas_shape() {
        let f = FunctionName::new("orders").unwrap();
        let record = Record {
            function: &f,
            qualifier: None,
            event_id: "e-1",
            condition: Condition::RetriesExhausted,
            attempts: 3,
            request: br#"{"order":7}"#,
            response: Some(br#"{"errorType":"Boom","errorMessage":"no"}"#),
            function_error: Some("Unhandled"),
            version: 3,
            timestamp_ms: 1_700_000_000_123,
        };
        let v: Value = serde_json::from_slice(&record.to_json()).unwrap();
        assert_eq!(v["version"], "1.0");
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["requestContext"]["requestId"], "e-1");
        assert_eq!(v["requestContext"]["condition"], "RetriesExhausted");
        assert_eq!(v["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(
            v["requestContext"]["functionArn"],
            "arn:aws:lambda:local:000000000000:function:orders:live"
        );
        assert_eq!(v["responseContext"]["executedVersion"], "3");
        assert_eq!(v["requestPayload"]["order"], 7);
        assert_eq!(v["responseContext"]["functionError"], "Unhandled");
        assert_eq!(v["responsePayload"]["errorType"], "Boom");

        // An event that named a version or an alias: its ARN is qualified by it.
        let pinned = Qualifier::Version(2);
        let v: Value = serde_json::from_slice(
            &Record {
                qualifier: Some(&pinned),
                version: 2,
                ..record
            }
            .to_json(),
        )
        .unwrap();
        assert_eq!(
            v["requestContext"]["functionArn"],
            "arn:aws:lambda:local:000000000000:function:orders:2"
        );
    }

    #[test]
    fn text_payloads_stay_text() {
        assert_eq!(payload_value(b"plain"), Value::String("plain".into()));
        assert_eq!(payload_value(b"[1]"), json!([1]));
    }
}
