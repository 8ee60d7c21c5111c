//! Invocation records as OTLP spans: `ExportTraceServiceRequest` in OTLP/JSON (the
//! protobuf JSON mapping the OTLP spec fixes: lowerCamelCase fields, trace and span ids
//! in hex, 64-bit integers as decimal strings, enums as numbers), written out with
//! serde from the few structs below rather than from `opentelemetry-proto`'s generated
//! types (see the parent module for why).
//!
//! One span per record: named for the function, in the record's trace (its X-Ray
//! root's 128 bits), its span id the invocation's (`wisp_core::trace::span_id`, the
//! one its guest saw in `traceparent`), its parent the span of the invocation that
//! caused it. One resource per function (`service.name` = the function,
//! `service.namespace` = its namespace), as the OpenTelemetry Lambda layers name a
//! function's spans.

use serde::Serialize;
use std::collections::BTreeMap;
use wisp_core::trace;
use wisp_store::InvocationRecord;

/// `SPAN_KIND_SERVER`: an invocation serves a request, event or message.
const KIND_SERVER: u8 = 2;
/// `STATUS_CODE_ERROR`.
const STATUS_ERROR: u8 = 2;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExportTraceServiceRequest<'a> {
    resource_spans: Vec<ResourceSpans<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    resource: Resource<'a>,
    scope_spans: [ScopeSpans<'a>; 1],
}

#[derive(Serialize)]
struct Resource<'a> {
    attributes: Vec<KeyValue<'a>>,
}

#[derive(Serialize)]
struct ScopeSpans<'a> {
    scope: Scope,
    spans: Vec<Span<'a>>,
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Span<'a> {
    trace_id: String,
    span_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<String>,
    name: &'a str,
    kind: u8,
    start_time_unix_nano: String,
    end_time_unix_nano: String,
    attributes: Vec<KeyValue<'a>>,
    /// Left out (`STATUS_CODE_UNSET`) for a run that did not fail, as the
    /// specification asks of instrumentation.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status<'a>>,
}

#[derive(Serialize)]
struct Status<'a> {
    code: u8,
    message: &'a str,
}

#[derive(Serialize)]
struct KeyValue<'a> {
    key: &'static str,
    value: AnyValue<'a>,
}

#[derive(Serialize)]
enum AnyValue<'a> {
    #[serde(rename = "stringValue")]
    String(&'a str),
    #[serde(rename = "boolValue")]
    Bool(bool),
    /// An int64, as a decimal string.
    #[serde(rename = "intValue")]
    Int(String),
}

fn kv<'a>(key: &'static str, value: AnyValue<'a>) -> KeyValue<'a> {
    KeyValue { key, value }
}

fn hex(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The export request carrying `records`, one resource per function.
pub(crate) fn request(records: &[InvocationRecord]) -> ExportTraceServiceRequest<'_> {
    let mut by_function: BTreeMap<(&str, &str), Vec<Span<'_>>> = BTreeMap::new();
    for record in records {
        by_function
            .entry((record.namespace.as_str(), record.function.as_str()))
            .or_default()
            .push(span(record));
    }
    let resource_spans = by_function
        .into_iter()
        .map(|((namespace, function), spans)| ResourceSpans {
            resource: Resource {
                attributes: vec![
                    kv("service.name", AnyValue::String(function)),
                    kv("service.namespace", AnyValue::String(namespace)),
                    kv("faas.name", AnyValue::String(function)),
                    kv("cloud.provider", AnyValue::String("wisp")),
                ],
            },
            scope_spans: [ScopeSpans {
                scope: Scope {
                    name: "wisp",
                    version: env!("CARGO_PKG_VERSION"),
                },
                spans,
            }],
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// The span of one invocation record.
fn span(record: &InvocationRecord) -> Span<'_> {
    // Records always carry their root now; one written otherwise gets the root its
    // invocation would have started.
    let trace_id = record
        .trace
        .as_deref()
        .and_then(trace::trace_id)
        .or_else(|| trace::trace_id(&trace::new_root(&record.id)))
        .unwrap_or([b'0'; 32]);
    let start_ns = u128::try_from(record.started_at).unwrap_or(0) * 1_000_000;
    // From arrival to the end of the run: the queue wait, the init of a cold start and
    // the run. (A native function's run time counts its instance's start already, so
    // its cold spans end late by that much.)
    let took_us = record.queue_us + record.init_us.unwrap_or(0) + record.run_us;
    let end_ns = start_ns + u128::from(took_us) * 1_000;
    let mut attributes = vec![
        kv("faas.invocation_id", AnyValue::String(&record.id)),
        kv("faas.name", AnyValue::String(record.function.as_str())),
        kv("faas.version", AnyValue::Int(record.version_number.to_string())),
        kv("faas.coldstart", AnyValue::Bool(record.cold)),
        kv("wisp.namespace", AnyValue::String(record.namespace.as_str())),
        kv("wisp.function", AnyValue::String(record.function.as_str())),
        kv("wisp.version_id", AnyValue::String(&record.version.0)),
        kv("wisp.queue_us", AnyValue::Int(record.queue_us.to_string())),
        kv("wisp.run_us", AnyValue::Int(record.run_us.to_string())),
        kv("wisp.billed_ms", AnyValue::Int(record.billed_ms.to_string())),
        kv("wisp.memory_mb", AnyValue::Int(record.memory_mb.to_string())),
    ];
    if let Some(init) = record.init_us {
        attributes.push(kv("wisp.init_us", AnyValue::Int(init.to_string())));
    }
    if let Some(code) = &record.error {
        attributes.push(kv("wisp.error_code", AnyValue::String(code)));
        attributes.push(kv("error.type", AnyValue::String(code)));
    }
    Span {
        trace_id: hex(&trace_id),
        span_id: hex(&trace::span_id(&record.id)),
        parent_span_id: record.parent.as_deref().map(|p| hex(&trace::span_id(p))),
        name: record.function.as_str(),
        kind: KIND_SERVER,
        start_time_unix_nano: start_ns.to_string(),
        end_time_unix_nano: end_ns.to_string(),
        attributes,
        status: record.error.as_deref().map(|message| Status {
            code: STATUS_ERROR,
            message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use wisp_core::{FunctionName, Namespace};

    fn record(function: &str, id: &str, parent: Option<&str>) -> InvocationRecord {
        InvocationRecord {
            namespace: Namespace::new("default").unwrap(),
            function: FunctionName::new(function).unwrap(),
            id: id.into(),
            version: wisp_core::VersionId("v-1".into()),
            version_number: 3,
            started_at: 1_700_000_000_123,
            cold: true,
            init_us: Some(2_000),
            queue_us: 500,
            run_us: 7_500,
            error: None,
            memory_mb: 128,
            billed_ms: 8,
            reserved: false,
            trace: Some("1-4bf92f35-77b34da6a3ce929d0e0e4736".into()),
            parent: parent.map(Into::into),
        }
    }

    #[test]
    fn records_become_spans_in_otlp_json() {
        let caller = "0190f6a2-7b3c-7def-8123-456789abcdef";
        let callee = "0190f6a2-7b3c-7def-9999-000000000001";
        let mut failed = record("callee", callee, Some(caller));
        failed.error = Some("function_error".into());
        failed.cold = false;
        failed.init_us = None;
        let records = [record("caller", caller, None), failed];
        let json = serde_json::to_value(request(&records)).unwrap();
        let resources = json["resourceSpans"].as_array().unwrap();
        assert_eq!(resources.len(), 2, "{json}");
        // Functions in name order: callee, caller.
        let callee_resource = &resources[0];
        assert_eq!(
            callee_resource["resource"]["attributes"][0],
            json!({"key": "service.name", "value": {"stringValue": "callee"}})
        );
        let scope = &callee_resource["scopeSpans"][0];
        assert_eq!(scope["scope"]["name"], "wisp");
        let span = &scope["spans"][0];
        assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span["spanId"], "9999000000000001");
        assert_eq!(span["parentSpanId"], "8123456789abcdef");
        assert_eq!(span["name"], "callee");
        assert_eq!(span["kind"], 2);
        assert_eq!(span["startTimeUnixNano"], "1700000000123000000");
        // 500 µs queued and 7,500 µs run.
        assert_eq!(span["endTimeUnixNano"], "1700000000131000000");
        assert_eq!(span["status"], json!({"code": 2, "message": "function_error"}));
        let attribute = |span: &Value, key: &str| {
            span["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["key"] == key)
                .map(|a| a["value"].clone())
        };
        assert_eq!(
            attribute(span, "faas.invocation_id"),
            Some(json!({"stringValue": callee}))
        );
        assert_eq!(
            attribute(span, "faas.coldstart"),
            Some(json!({"boolValue": false}))
        );
        assert_eq!(attribute(span, "faas.version"), Some(json!({"intValue": "3"})));
        assert_eq!(
            attribute(span, "wisp.error_code"),
            Some(json!({"stringValue": "function_error"}))
        );
        let caller_span = &resources[1]["scopeSpans"][0]["spans"][0];
        assert_eq!(caller_span["spanId"], "8123456789abcdef");
        assert!(caller_span.get("parentSpanId").is_none(), "{caller_span}");
        assert!(caller_span.get("status").is_none(), "{caller_span}");
        // 500 µs queued, 2,000 µs init, 7,500 µs run.
        assert_eq!(caller_span["endTimeUnixNano"], "1700000000133000000");
        assert_eq!(
            attribute(caller_span, "faas.coldstart"),
            Some(json!({"boolValue": true}))
        );
    }
}
