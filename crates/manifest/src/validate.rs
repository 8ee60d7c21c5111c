//! From the schema types to a [`Manifest`]: checks every value and points at the
//! one that is wrong.
//!
//! Function configuration is checked by [`FunctionConfig::validate`], the same
//! check the HTTP API runs, so both refuse the same things with the same words;
//! this module only maps its [`ConfigField`] back to a span. Queues are checked by
//! [`QueueConfig::validate`] the same way, and alarms by [`AlarmSpec::validate`]. What
//! only a manifest has — the app name, `source`, routes across functions — is checked
//! here.
//!
//! Names a manifest refers to but does not declare (a trigger's or destination's
//! queue, a dead-letter queue, a destination function, a storage trigger's bucket, an
//! alarm's function, queue or action) are not refused: queues, buckets, functions and
//! topics of the namespace are shared between apps, so they may exist already.

use crate::access;
use crate::error::{ErrorKind, ManifestError};
use crate::schema::{
    RawBucket, RawDestination, RawEnvSecret, RawFunction, RawManifest, RawQueue, RawQueueTrigger, RawRoute,
    RawSchedule, RawSize, RawStorageTrigger, RawSubscription, TextOrTable,
};
use crate::{
    AlarmManifest, BucketManifest, FunctionManifest, Inputs, KvStoreManifest, Manifest, QueueManifest,
    SubscriptionManifest, TopicManifest,
};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use toml::Spanned;
use wisp_core::KvStoreName;
use wisp_core::duration_text;
use wisp_core::object::MAX_KEY_BYTES;
use wisp_core::route::normalize_methods;
use wisp_core::{ActionTarget, AlarmName, AlarmSpec};
use wisp_core::{
    BucketName, ConfigError, ConfigField, Destination, EventPattern, FunctionConfig, FunctionName,
    FunctionRuntime, Kind, Limits, NameError, ParsedSchedule, QueueConfig, QueueName, QueueTrigger, Route,
    RoutePattern, Schedule, StorageTrigger,
};
use wisp_core::{EnvValue, FilterPolicy, PolicyScope, SecretName, TopicName};

/// Builds errors located in one file, and reads what the file names.
pub(crate) struct At<'a> {
    file: &'a Path,
    text: &'a str,
    pub(crate) inputs: &'a dyn Inputs,
}

impl At<'_> {
    pub(crate) fn err(&self, span: Range<usize>, kind: ErrorKind, message: String) -> ManifestError {
        ManifestError::at(self.file, self.text, span, kind, message)
    }

    /// The manifest's directory, which relative paths in it are resolved against.
    pub(crate) fn dir(&self) -> PathBuf {
        dir_of(self.file)
    }
}

/// A route of a function already accepted, kept to find conflicts across functions.
struct Taken {
    function: FunctionName,
    pattern: RoutePattern,
    methods: Vec<String>,
}

pub(crate) fn manifest(
    raw: RawManifest,
    text: &str,
    file: &Path,
    inputs: &dyn Inputs,
) -> Result<Manifest, ManifestError> {
    let at = At { file, text, inputs };
    let Some(app) = raw.app else {
        return Err(at.err(
            0..0,
            ErrorKind::Schema,
            "missing table `[app]`: add `[app]` with `name = \"my-app\"`".to_string(),
        ));
    };
    let app_span = app.span();
    let name = &app.get_ref().name;
    FunctionName::new(name.get_ref().as_str())
        .map_err(|e| at.err(name.span(), ErrorKind::Invalid, app_name_error(e)))?;
    let app = name.get_ref().clone();

    let (functions_span, functions) = match raw.functions {
        Some(f) => (f.span(), f.into_inner()),
        None => (app_span, BTreeMap::new()),
    };
    if functions.is_empty() {
        return Err(at.err(
            functions_span,
            ErrorKind::Invalid,
            format!("app `{app}` has no functions: add a `[functions.NAME]` table"),
        ));
    }
    // The order of the file, not of the map.
    let mut functions: Vec<_> = functions.into_iter().collect();
    functions.sort_by_key(|(key, _)| key.span().start);

    let dir = dir_of(file);
    let mut taken: Vec<Taken> = Vec::new();
    let mut out = Vec::with_capacity(functions.len());
    for (key, raw) in functions {
        let name = FunctionName::new(key.get_ref().as_str())
            .map_err(|e| at.err(key.span(), ErrorKind::Invalid, e.to_string()))?;
        let header = raw.span();
        let raw = raw.into_inner();
        let config = function_config(&at, &name, &raw, header.clone())?;
        let source = check_source(&at, &name, &raw.source, config.runtime)?;
        // `config.routes` are `raw.routes` in the same order, checked and canonical.
        for (route, item) in config.routes.iter().zip(&raw.routes) {
            let Ok((pattern, methods)) = route.validate() else {
                continue; // config.validate() accepted every route
            };
            if let Some(other) = taken
                .iter()
                .find(|t| Route::overlaps((&t.pattern, &t.methods), (&pattern, &methods)))
            {
                let span = item.get_ref().path(&item.span()).1;
                return Err(at.err(
                    span,
                    ErrorKind::Conflict,
                    format!(
                        "function `{name}`: route `{pattern}` conflicts with route `{}` of function `{}`: both take {}",
                        other.pattern,
                        other.function,
                        shared_methods(&methods, &other.methods)
                    ),
                ));
            }
            taken.push(Taken {
                function: name.clone(),
                pattern,
                methods,
            });
        }
        out.push(FunctionManifest {
            name,
            source: resolve(&dir, Path::new(source)),
            config,
        });
    }
    let mut queues: Vec<_> = raw
        .queues
        .map(Spanned::into_inner)
        .unwrap_or_default()
        .into_iter()
        .collect();
    queues.sort_by_key(|(key, _)| key.span().start);
    let mut declared = Vec::with_capacity(queues.len());
    for (key, raw) in queues {
        let name = QueueName::new(key.get_ref().as_str())
            .map_err(|e| at.err(key.span(), ErrorKind::Invalid, e.to_string()))?;
        let config = queue_config(&at, &name, raw.get_ref(), raw.span())?;
        declared.push(QueueManifest { name, config });
    }
    let mut buckets: Vec<_> = raw
        .buckets
        .map(Spanned::into_inner)
        .unwrap_or_default()
        .into_iter()
        .collect();
    buckets.sort_by_key(|(key, _)| key.span().start);
    let mut bucket_list = Vec::with_capacity(buckets.len());
    for (key, raw) in buckets {
        let name = BucketName::new(key.get_ref().as_str())
            .map_err(|e| at.err(key.span(), ErrorKind::Invalid, e.to_string()))?;
        let quota_bytes = bucket_quota(&at, &name, raw.get_ref())?;
        bucket_list.push(BucketManifest { name, quota_bytes });
    }
    let mut stores: Vec<_> = raw
        .kv
        .map(Spanned::into_inner)
        .unwrap_or_default()
        .into_keys()
        .collect();
    stores.sort_by_key(|key| key.span().start);
    let mut kv = Vec::with_capacity(stores.len());
    for key in stores {
        let name = KvStoreName::new(key.get_ref().as_str())
            .map_err(|e| at.err(key.span(), ErrorKind::Invalid, e.to_string()))?;
        kv.push(KvStoreManifest { name });
    }
    let mut topic_list: Vec<_> = raw
        .topics
        .map(Spanned::into_inner)
        .unwrap_or_default()
        .into_iter()
        .collect();
    topic_list.sort_by_key(|(key, _)| key.span().start);
    let mut topics = Vec::with_capacity(topic_list.len());
    for (key, raw) in topic_list {
        let name = TopicName::new(key.get_ref().as_str())
            .map_err(|e| at.err(key.span(), ErrorKind::Invalid, e.to_string()))?;
        let mut subscriptions = Vec::new();
        for item in &raw.get_ref().subscriptions {
            subscriptions.push(subscription(&at, &name, item.get_ref(), item.span())?);
        }
        topics.push(TopicManifest { name, subscriptions });
    }
    let mut alarm_list: Vec<_> = raw
        .alarms
        .map(Spanned::into_inner)
        .unwrap_or_default()
        .into_iter()
        .collect();
    alarm_list.sort_by_key(|(key, _)| key.span().start);
    let mut alarms = Vec::with_capacity(alarm_list.len());
    for (key, raw) in alarm_list {
        let name = AlarmName::new(key.get_ref().as_str())
            .map_err(|e| at.err(key.span(), ErrorKind::Invalid, e.to_string()))?;
        let header = raw.span();
        let spec = raw.into_inner();
        alarm_spec(&at, &name, &spec, header)?;
        alarms.push(AlarmManifest { name, spec });
    }
    Ok(Manifest {
        app,
        dir,
        functions: out,
        queues: declared,
        buckets: bucket_list,
        kv,
        topics,
        alarms,
    })
}

/// `[alarms.NAME]`: core's check, and each webhook action's URL as a subscription's
/// is checked. An error points at the value of the key it names, or else (a missing
/// `function` or `queue`) at `metric`, which needs it.
fn alarm_spec(
    at: &At<'_>,
    name: &AlarmName,
    spec: &AlarmSpec,
    header: Range<usize>,
) -> Result<(), ManifestError> {
    let span = |key: &str, item: Option<usize>| alarm_value_span(at.text, name, key, item);
    spec.validate().map_err(|e| {
        let span = span(e.field, None)
            .or_else(|| span("metric", None))
            .unwrap_or_else(|| header.clone());
        at.err(span, ErrorKind::Invalid, format!("alarm `{name}`: {e}"))
    })?;
    for (i, action) in spec.actions.iter().enumerate() {
        if let ActionTarget::Webhook(url) = &action.target {
            webhook_url(url).map_err(|e| {
                let span = span("actions", Some(i)).unwrap_or_else(|| header.clone());
                at.err(
                    span,
                    ErrorKind::Invalid,
                    format!("alarm `{name}`: actions[{i}]: {e}"),
                )
            })?;
        }
    }
    Ok(())
}

/// Where `[alarms.NAME]`'s `key` (or item `item` of its array) is written. serde read
/// the whole table as one `AlarmSpec` with one span, so the key's span is looked up in
/// the document, parsed again: only on this error path.
fn alarm_value_span(text: &str, alarm: &AlarmName, key: &str, item: Option<usize>) -> Option<Range<usize>> {
    use toml::de::{DeTable, DeValue};
    fn get<'a, 'i>(table: &'a DeTable<'i>, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        table.iter().find(|(k, _)| k.get_ref() == key).map(|(_, v)| v)
    }
    let doc = DeTable::parse(text).ok()?;
    let DeValue::Table(alarms) = get(doc.get_ref(), "alarms")?.get_ref() else {
        return None;
    };
    let DeValue::Table(table) = get(alarms, alarm.as_str())?.get_ref() else {
        return None;
    };
    let value = get(table, key)?;
    match (item, value.get_ref()) {
        (None, _) => Some(value.span()),
        (Some(i), DeValue::Array(items)) => items.get(i).map(Spanned::span),
        (Some(_), _) => Some(value.span()),
    }
}

/// One item of `subscriptions` in `[topics.NAME]`: one endpoint, and a filter policy
/// core accepts.
fn subscription(
    at: &At<'_>,
    topic: &TopicName,
    raw: &RawSubscription,
    span: Range<usize>,
) -> Result<SubscriptionManifest, ManifestError> {
    let invalid = |span, text: String| at.err(span, ErrorKind::Invalid, format!("topic `{topic}`: {text}"));
    let (function, queue, webhook) = match (&raw.function, &raw.queue, &raw.webhook) {
        (Some(f), None, None) => (
            Some(FunctionName::new(f.get_ref()).map_err(|e| invalid(f.span(), e.to_string()))?),
            None,
            None,
        ),
        (None, Some(q), None) => (
            None,
            Some(QueueName::new(q.get_ref()).map_err(|e| invalid(q.span(), e.to_string()))?),
            None,
        ),
        (None, None, Some(w)) => (
            None,
            None,
            Some(webhook_url(w.get_ref()).map_err(|e| invalid(w.span(), e))?),
        ),
        _ => {
            return Err(invalid(
                span,
                "a subscription has exactly one of `function`, `queue` or `webhook`, like `{ queue = \"jobs\" }`"
                    .to_string(),
            ));
        }
    };
    let scope = match &raw.filter_policy_scope {
        None => PolicyScope::MessageAttributes,
        Some(text) => text
            .get_ref()
            .parse::<PolicyScope>()
            .map_err(|e| invalid(text.span(), format!("filter_policy_scope: {e}")))?,
    };
    let filter_policy = match &raw.filter_policy {
        None => None,
        Some(policy) => {
            let value = match policy.get_ref() {
                toml::Value::String(text) => serde_json::from_str::<serde_json::Value>(text)
                    .map_err(|e| invalid(policy.span(), format!("filter_policy is not JSON: {e}")))?,
                other => serde_json::to_value(other).map_err(|e| invalid(policy.span(), e.to_string()))?,
            };
            FilterPolicy::parse(&value.to_string(), scope)
                .map_err(|e| invalid(policy.span(), e.to_string()))?;
            Some(value)
        }
    };
    if let (Some(s), None) = (&raw.filter_policy_scope, &raw.filter_policy) {
        return Err(invalid(
            s.span(),
            "filter_policy_scope needs a filter_policy".to_string(),
        ));
    }
    let raw_message_delivery = raw.raw.as_ref().is_some_and(|r| *r.get_ref());
    if let (Some(r), Some(_)) = (&raw.raw, &function) {
        return Err(invalid(
            r.span(),
            "`raw` applies to queue and webhook subscriptions only".to_string(),
        ));
    }
    Ok(SubscriptionManifest {
        function,
        queue,
        webhook,
        filter_policy_scope: filter_policy.as_ref().map(|_| scope.as_str().to_string()),
        filter_policy,
        raw_message_delivery,
    })
}

/// A subscription's `webhook`: an `http://` or `https://` URL with a host (the server
/// checks the rest when it subscribes it).
fn webhook_url(url: &str) -> Result<String, String> {
    let rest = match url.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            rest
        }
        Some((scheme, _)) => {
            return Err(format!(
                "webhook `{url}` has unsupported scheme `{scheme}`: a webhook is an `http://` or `https://` URL"
            ));
        }
        None => return Err(format!("webhook `{url}` is not a URL: use `https://host/path`")),
    };
    if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
        return Err(format!("webhook `{url}` has no host"));
    }
    Ok(url.to_string())
}

/// `quota` of `[buckets.NAME]`: at least one byte, as the API requires.
fn bucket_quota(at: &At<'_>, name: &BucketName, raw: &RawBucket) -> Result<Option<u64>, ManifestError> {
    let Some(quota) = &raw.quota else {
        return Ok(None);
    };
    let bytes = match quota.get_ref() {
        RawSize::Bytes(n) => u64::try_from(*n).map_err(|_| format!("quota = {n} is not a number of bytes")),
        RawSize::Text(text) => wisp_core::size_text::parse(text),
    };
    bytes
        .and_then(|n| match n {
            0 => Err("quota must be at least 1 byte (leave it out for no quota of its own)".to_string()),
            n => Ok(n),
        })
        .map(Some)
        .map_err(|e| at.err(quota.span(), ErrorKind::Invalid, format!("bucket `{name}`: {e}")))
}

/// `[queues.NAME]`: builds the configuration and runs core's check over it.
fn queue_config(
    at: &At<'_>,
    name: &QueueName,
    raw: &RawQueue,
    header: Range<usize>,
) -> Result<QueueConfig, ManifestError> {
    let duration = |value: &Spanned<String>| {
        duration_text::parse(value.get_ref())
            .map_err(|e| at.err(value.span(), ErrorKind::Invalid, format!("queue `{name}`: {e}")))
    };
    let mut config = QueueConfig::default();
    if let Some(value) = &raw.visibility_timeout {
        config.visibility_timeout = duration(value)?;
    }
    if let Some(value) = &raw.retention {
        config.retention = duration(value)?;
    }
    if let Some(count) = &raw.max_receive_count {
        config.max_receive_count = Some(u32::try_from(*count.get_ref()).map_err(|_| {
            at.err(
                count.span(),
                ErrorKind::Invalid,
                format!(
                    "queue `{name}`: max_receive_count = {} is out of range: use 1 to {}",
                    count.get_ref(),
                    Limits::MAX_RECEIVE_COUNT
                ),
            )
        })?);
    }
    if let Some(dlq) = &raw.dead_letter_queue {
        config.dead_letter_queue = Some(
            QueueName::new(dlq.get_ref().as_str())
                .map_err(|e| at.err(dlq.span(), ErrorKind::Invalid, format!("queue `{name}`: {e}")))?,
        );
    }
    config.validate(name).map_err(|e| {
        let span = |field: &str| match field {
            "visibility_timeout" => raw.visibility_timeout.as_ref().map(Spanned::span),
            "retention" => raw.retention.as_ref().map(Spanned::span),
            "max_receive_count" => raw.max_receive_count.as_ref().map(Spanned::span),
            "dead_letter_queue" => raw.dead_letter_queue.as_ref().map(Spanned::span),
            _ => None,
        };
        // A key that is missing is pointed at through the one that needs it.
        let other = match e.field {
            "max_receive_count" => "dead_letter_queue",
            _ => "max_receive_count",
        };
        let span = span(e.field).or_else(|| span(other)).unwrap_or(header);
        at.err(span, ErrorKind::Invalid, format!("queue `{name}`: {}", e.message))
    })?;
    Ok(config)
}

/// The methods two overlapping routes both take, for the conflict message
/// (an empty list is every method).
fn shared_methods(a: &[String], b: &[String]) -> String {
    let shared: Vec<&str> = match (a.is_empty(), b.is_empty()) {
        (true, true) => return "every method".to_string(),
        (true, false) => b.iter().map(String::as_str).collect(),
        (false, true) => a.iter().map(String::as_str).collect(),
        (false, false) => a.iter().filter(|m| b.contains(m)).map(String::as_str).collect(),
    };
    shared.join(", ")
}

/// Core's name error, worded for the app rather than a function.
fn app_name_error(e: NameError) -> String {
    const WHAT: &str = "app name";
    match e {
        NameError::Empty { name, .. } => NameError::Empty { what: WHAT, name },
        NameError::TooLong { name, .. } => NameError::TooLong { what: WHAT, name },
        NameError::BadCharacter { name, .. } => NameError::BadCharacter { what: WHAT, name },
        NameError::TrailingHyphen { name, .. } => NameError::TrailingHyphen { what: WHAT, name },
    }
    .to_string()
}

/// `source` must be a path (not a URL): to a `.wasm` file for wasm functions, to a
/// directory or a `.zip` for process runtimes. Whether it exists is for the deploy
/// command to find out.
fn check_source<'a>(
    at: &At<'_>,
    function: &FunctionName,
    source: &'a Spanned<String>,
    runtime: FunctionRuntime,
) -> Result<&'a str, ManifestError> {
    let text = source.get_ref().as_str();
    let extension = Path::new(text).extension();
    let problem = if text.contains("://") {
        Some("URLs are not supported; give a path")
    } else if text.contains('\0') {
        Some("it contains a NUL byte")
    } else if runtime == FunctionRuntime::Wasm && extension.is_none_or(|e| e != "wasm") {
        Some("give the path of a `.wasm` file (or set `runtime` for native code)")
    } else if runtime.is_process() && extension.is_some_and(|e| e == "wasm") {
        Some("runtime `process`, `python` and `node` take a directory or a `.zip`, not a `.wasm` file")
    } else {
        None
    };
    match problem {
        None => Ok(text),
        Some(problem) => Err(at.err(
            source.span(),
            ErrorKind::Invalid,
            format!(
                "invalid source `{text}` in function `{function}`: {problem}, relative to the manifest's directory or absolute"
            ),
        )),
    }
}

/// Builds the function's configuration and runs core's check over it.
fn function_config(
    at: &At<'_>,
    name: &FunctionName,
    raw: &RawFunction,
    header: Range<usize>,
) -> Result<FunctionConfig, ManifestError> {
    let runtime = match &raw.runtime {
        None => FunctionRuntime::Wasm,
        Some(runtime) => FunctionRuntime::parse(runtime.get_ref()).ok_or_else(|| {
            at.err(
                runtime.span(),
                ErrorKind::Invalid,
                format!(
                    "invalid runtime `{}` in function `{name}`: use `wasm`, `process`, `python` or `node`",
                    runtime.get_ref()
                ),
            )
        })?,
    };
    let kind = match raw.kind.as_ref().map(|k| (k.get_ref().as_str(), k.span())) {
        Some(("http", _)) => Kind::Http,
        Some(("event", _)) => Kind::Event,
        Some((other, span)) => {
            return Err(at.err(
                span,
                ErrorKind::Invalid,
                format!("invalid kind `{other}` in function `{name}`: use `http` or `event`"),
            ));
        }
        None if runtime.is_process() => Kind::Event,
        None => {
            return Err(at.err(
                header,
                ErrorKind::Schema,
                format!(
                    "missing key `kind` in function `{name}`: add `kind = \"http\"` or `kind = \"event\"`"
                ),
            ));
        }
    };
    let mut config = FunctionConfig::new(kind);
    config.runtime = runtime;
    config.handler = raw.handler.as_ref().map(|h| h.get_ref().clone());
    if let Some(memory) = &raw.memory_mb {
        // Core's words for core's bound; a value that does not even fit a u32 is
        // out of the same range.
        config.memory_mb = u32::try_from(*memory.get_ref()).map_err(|_| {
            at.err(
                memory.span(),
                ErrorKind::Invalid,
                format!(
                    "function `{name}`: memory_mb = {} is out of range: use {} to {}",
                    memory.get_ref(),
                    Limits::MIN_MEMORY_MB,
                    Limits::MAX_MEMORY_MB
                ),
            )
        })?;
    }
    if let Some(timeout) = &raw.timeout {
        config.timeout = duration_text::parse(timeout.get_ref()).map_err(|e| {
            at.err(
                timeout.span(),
                ErrorKind::Invalid,
                format!("function `{name}`: {e}"),
            )
        })?;
    }
    let whole = |field: &Option<Spanned<i128>>,
                 key: &str,
                 min: u32,
                 max: u32|
     -> Result<Option<u32>, ManifestError> {
        let Some(value) = field else { return Ok(None) };
        u32::try_from(*value.get_ref()).map(Some).map_err(|_| {
            at.err(
                value.span(),
                ErrorKind::Invalid,
                format!(
                    "function `{name}`: {key} = {} is out of range: use {min} to {max}",
                    value.get_ref()
                ),
            )
        })
    };
    if let Some(n) = whole(
        &raw.max_concurrency,
        "max_concurrency",
        1,
        Limits::MAX_CONCURRENCY,
    )? {
        config.max_concurrency = n;
    }
    if let Some(n) = whole(&raw.min_instances, "min_instances", 0, Limits::MAX_CONCURRENCY)? {
        config.min_instances = n;
    }
    if let Some(n) = whole(&raw.max_queue, "max_queue", 0, Limits::MAX_QUEUE)? {
        config.max_queue = n;
    }
    if let Some(timeout) = &raw.queue_timeout {
        config.queue_timeout = duration_text::parse(timeout.get_ref()).map_err(|e| {
            at.err(
                timeout.span(),
                ErrorKind::Invalid,
                format!("function `{name}`: {e}"),
            )
        })?;
    }
    if let Some(n) = whole(&raw.max_retries, "max_retries", 0, Limits::MAX_RETRIES)? {
        config.max_retries = n;
    }
    if let Some(age) = &raw.max_event_age {
        config.max_event_age = duration_text::parse(age.get_ref())
            .map_err(|e| at.err(age.span(), ErrorKind::Invalid, format!("function `{name}`: {e}")))?;
    }
    config.on_success = destination(at, name, raw.on_success.as_ref())?;
    config.on_failure = destination(at, name, raw.on_failure.as_ref())?;
    if let Some(schedule) = &raw.schedule {
        config.schedule = schedule
            .get_ref()
            .items(schedule.span())
            .into_iter()
            .map(|(item, _)| schedule_of(item))
            .collect();
    }
    if let Some(queue) = &raw.queue {
        for (item, span) in queue.get_ref().items(queue.span()) {
            config.queue.push(trigger(at, name, item, span)?);
        }
    }
    if let Some(storage) = &raw.storage {
        for (item, span) in storage.get_ref().items(storage.span()) {
            config.storage.push(storage_trigger(at, name, item, span)?);
        }
    }
    config.env = env(at, name, &raw.env)?;
    access::function_rate_limit(at, name, raw, &mut config)?;
    config.kv = grants(at, name, "kv", &raw.kv)?;
    config.buckets = grants(at, name, "buckets", &raw.buckets)?;
    config.queues = grants(at, name, "queues", &raw.queues)?;
    config.invoke = grants(at, name, "invoke", &raw.invoke)?;
    config.outbound = grants(at, name, "outbound", &raw.outbound)?;
    config.topics = grants(at, name, "topics", &raw.topics)?;
    config.breaker = raw.breaker.as_ref().map(|b| *b.get_ref());
    config.logs = raw.logs.as_ref().map(|l| *l.get_ref());
    config.routes = Vec::with_capacity(raw.routes.len());
    for (i, item) in raw.routes.iter().enumerate() {
        let mut route = Route {
            path: item.get_ref().path(&item.span()).0.to_string(),
            methods: item
                .get_ref()
                .methods()
                .iter()
                .map(|m| m.get_ref().clone())
                .collect(),
            ..Route::default()
        };
        if let Some(table) = item.get_ref().table() {
            access::route_access(at, name, i, table, &mut route)?;
        }
        config.routes.push(route);
    }
    config
        .validate_named(name)
        .map_err(|e| config_error(at, name, raw, header, e))
}

/// `on_success` / `on_failure`, parsed by core; an error points at the name.
fn destination(
    at: &At<'_>,
    function: &FunctionName,
    raw: Option<&Spanned<TextOrTable<RawDestination>>>,
) -> Result<Option<Destination>, ManifestError> {
    let Some(raw) = raw else { return Ok(None) };
    let (text, span) = match raw.get_ref() {
        TextOrTable::Text(text) => (text.clone(), raw.span()),
        TextOrTable::Table(RawDestination {
            queue: Some(queue),
            function: None,
        }) => (format!("queue:{}", queue.get_ref()), queue.span()),
        TextOrTable::Table(RawDestination {
            queue: None,
            function: Some(target),
        }) => (format!("function:{}", target.get_ref()), target.span()),
        TextOrTable::Table(_) => {
            return Err(at.err(
                raw.span(),
                ErrorKind::Invalid,
                format!(
                    "function `{function}`: a destination table has exactly one of `queue` or `function`, \
                     like `{{ queue = \"failed\" }}`"
                ),
            ));
        }
    };
    Destination::parse(&text)
        .map(Some)
        .map_err(|e| at.err(span, ErrorKind::Invalid, format!("function `{function}`: {e}")))
}

/// A schedule item as core's [`Schedule`]; core checks it.
fn schedule_of(item: &TextOrTable<RawSchedule>) -> Schedule {
    match item {
        TextOrTable::Text(expression) => Schedule {
            expression: expression.clone(),
            timezone: None,
            catch_up: false,
        },
        TextOrTable::Table(table) => Schedule {
            expression: table.expression.get_ref().clone(),
            timezone: table.timezone.as_ref().map(|tz| tz.get_ref().clone()),
            catch_up: table.catch_up.as_ref().is_some_and(|c| *c.get_ref()),
        },
    }
}

/// A queue trigger item as core's [`QueueTrigger`]; core checks its bounds.
fn trigger(
    at: &At<'_>,
    function: &FunctionName,
    item: &TextOrTable<RawQueueTrigger>,
    span: Range<usize>,
) -> Result<QueueTrigger, ManifestError> {
    let (queue, queue_span) = match item {
        TextOrTable::Text(queue) => (queue.as_str(), span),
        TextOrTable::Table(table) => (table.queue.get_ref().as_str(), table.queue.span()),
    };
    let queue = QueueName::new(queue).map_err(|e| {
        at.err(
            queue_span,
            ErrorKind::Invalid,
            format!("function `{function}`: {e}"),
        )
    })?;
    let mut trigger = QueueTrigger::new(queue);
    let TextOrTable::Table(table) = item else {
        return Ok(trigger);
    };
    if let Some(size) = &table.batch_size {
        trigger.batch_size = u32::try_from(*size.get_ref()).map_err(|_| {
            at.err(
                size.span(),
                ErrorKind::Invalid,
                format!(
                    "function `{function}`: queue trigger `{}`: batch_size = {} is out of range: use 1 to {}",
                    trigger.queue,
                    size.get_ref(),
                    Limits::MAX_BATCH_SIZE
                ),
            )
        })?;
    }
    if let Some(window) = &table.max_batching_window {
        trigger.max_batching_window = duration_text::parse(window.get_ref()).map_err(|e| {
            at.err(
                window.span(),
                ErrorKind::Invalid,
                format!("function `{function}`: {e}"),
            )
        })?;
    }
    Ok(trigger)
}

/// One list of grants (`kv = [...]`), each parsed by its own type; a bad one points at
/// itself. A grant may name what the manifest does not declare (a store or bucket made
/// through the API), so names are checked for form only.
/// The `env` table as core's values; a bad secret name points at itself.
fn env(
    at: &At<'_>,
    function: &FunctionName,
    raw: &BTreeMap<Spanned<String>, Spanned<TextOrTable<RawEnvSecret>>>,
) -> Result<BTreeMap<String, EnvValue>, ManifestError> {
    let mut env = BTreeMap::new();
    for (key, value) in raw {
        let value = match value.get_ref() {
            TextOrTable::Text(text) => EnvValue::Text(text.clone()),
            TextOrTable::Table(RawEnvSecret { secret }) => EnvValue::Secret {
                secret: SecretName::new(secret.get_ref().as_str()).map_err(|e| {
                    at.err(
                        secret.span(),
                        ErrorKind::Invalid,
                        format!("function `{function}`: env.{}: {e}", key.get_ref()),
                    )
                })?,
            },
        };
        env.insert(key.get_ref().clone(), value);
    }
    Ok(env)
}

fn grants<T>(
    at: &At<'_>,
    function: &FunctionName,
    field: &str,
    list: &[Spanned<String>],
) -> Result<Vec<T>, ManifestError>
where
    T: std::str::FromStr + Ord,
    T::Err: std::fmt::Display,
{
    let mut parsed = Vec::with_capacity(list.len());
    for item in list {
        let grant = item.get_ref().parse::<T>().map_err(|e| {
            at.err(
                item.span(),
                ErrorKind::Invalid,
                format!("function `{function}`: {field}: {e}"),
            )
        })?;
        parsed.push(grant);
    }
    // Canonical: the same grants in another order or repeated make the same version.
    parsed.sort();
    parsed.dedup();
    Ok(parsed)
}

/// A storage trigger item as core's [`StorageTrigger`]; a bad bucket name or event
/// points at itself, and core checks the rest.
fn storage_trigger(
    at: &At<'_>,
    function: &FunctionName,
    item: &TextOrTable<RawStorageTrigger>,
    span: Range<usize>,
) -> Result<StorageTrigger, ManifestError> {
    let (bucket, bucket_span) = match item {
        TextOrTable::Text(bucket) => (bucket.as_str(), span),
        TextOrTable::Table(table) => (table.bucket.get_ref().as_str(), table.bucket.span()),
    };
    let bucket = BucketName::new(bucket).map_err(|e| {
        at.err(
            bucket_span,
            ErrorKind::Invalid,
            format!("function `{function}`: {e}"),
        )
    })?;
    let mut trigger = StorageTrigger::new(bucket);
    let TextOrTable::Table(table) = item else {
        return Ok(trigger);
    };
    if let Some(events) = &table.events {
        // An empty list stays empty for core to refuse: it is not "every event".
        trigger.events = events
            .get_ref()
            .iter()
            .map(|event| {
                EventPattern::new(event.get_ref()).map_err(|e| {
                    at.err(
                        event.span(),
                        ErrorKind::Invalid,
                        format!("function `{function}`: storage trigger `{}`: {e}", trigger.bucket),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
    }
    let text = |value: &Option<Spanned<String>>| value.as_ref().map(|v| v.get_ref().clone());
    trigger.prefix = text(&table.prefix).unwrap_or_default();
    trigger.suffix = text(&table.suffix).unwrap_or_default();
    Ok(trigger)
}

/// Where `schedule[i]` is wrong: its time zone or its expression.
fn schedule_span(raw: &RawFunction, i: usize) -> Option<Range<usize>> {
    let schedule = raw.schedule.as_ref()?;
    let items = schedule.get_ref().items(schedule.span());
    let (item, span) = items.into_iter().nth(i)?;
    let TextOrTable::Table(table) = item else {
        return Some(span);
    };
    let about_time_zone = ParsedSchedule::parse(&schedule_of(item)).is_err_and(|e| e.is_about_time_zone());
    match &table.timezone {
        Some(tz) if about_time_zone => Some(tz.span()),
        _ => Some(table.expression.span()),
    }
}

/// Where `queue[i]` is wrong: a bound, or else (declared twice) the queue's name.
fn trigger_span(raw: &RawFunction, i: usize) -> Option<Range<usize>> {
    let queue = raw.queue.as_ref()?;
    let items = queue.get_ref().items(queue.span());
    let (item, span) = items.into_iter().nth(i)?;
    let TextOrTable::Table(table) = item else {
        return Some(span);
    };
    let size_bad = table
        .batch_size
        .as_ref()
        .filter(|s| !(1..=i128::from(Limits::MAX_BATCH_SIZE)).contains(s.get_ref()))
        .map(Spanned::span);
    let window_bad = table
        .max_batching_window
        .as_ref()
        .filter(|w| duration_text::parse(w.get_ref()).is_ok_and(|d| d > Limits::MAX_BATCHING_WINDOW))
        .map(Spanned::span);
    Some(size_bad.or(window_bad).unwrap_or_else(|| table.queue.span()))
}

/// Where `storage[i]` is wrong: empty `events`, a prefix or suffix too long, or else
/// (declared twice) the bucket's name. Core checks in that order.
fn storage_span(raw: &RawFunction, i: usize) -> Option<Range<usize>> {
    let storage = raw.storage.as_ref()?;
    let items = storage.get_ref().items(storage.span());
    let (item, span) = items.into_iter().nth(i)?;
    let TextOrTable::Table(table) = item else {
        return Some(span);
    };
    let events_bad = table
        .events
        .as_ref()
        .filter(|e| e.get_ref().is_empty())
        .map(Spanned::span);
    let too_long = |value: &Option<Spanned<String>>| {
        value
            .as_ref()
            .filter(|v| v.get_ref().len() > MAX_KEY_BYTES)
            .map(Spanned::span)
    };
    Some(
        events_bad
            .or_else(|| too_long(&table.prefix))
            .or_else(|| too_long(&table.suffix))
            .unwrap_or_else(|| table.bucket.span()),
    )
}

/// Points a [`ConfigError`] at the key or value it is about.
fn config_error(
    at: &At<'_>,
    name: &FunctionName,
    raw: &RawFunction,
    header: Range<usize>,
    e: ConfigError,
) -> ManifestError {
    let route = |i: usize| raw.routes.get(i);
    let mut kind = ErrorKind::Invalid;
    let span = match &e.field {
        ConfigField::Kind => raw.kind.as_ref().map(Spanned::span),
        ConfigField::Runtime => raw.runtime.as_ref().map(Spanned::span),
        ConfigField::Handler => raw.handler.as_ref().map(Spanned::span),
        ConfigField::MemoryMb => raw.memory_mb.as_ref().map(Spanned::span),
        ConfigField::Timeout => raw.timeout.as_ref().map(Spanned::span),
        ConfigField::MaxConcurrency => raw.max_concurrency.as_ref().map(Spanned::span),
        ConfigField::MinInstances => raw.min_instances.as_ref().map(Spanned::span),
        ConfigField::MaxQueue => raw.max_queue.as_ref().map(Spanned::span),
        ConfigField::QueueTimeout => raw.queue_timeout.as_ref().map(Spanned::span),
        ConfigField::EnvKey(k) => raw.env.keys().find(|key| key.get_ref() == k).map(Spanned::span),
        ConfigField::EnvValue(k) => raw
            .env
            .iter()
            .find(|(key, _)| key.get_ref() == k)
            .map(|(_, v)| v.span()),
        ConfigField::RoutePath(i) => route(*i).map(|item| {
            let (path, span) = item.get_ref().path(&item.span());
            // A path that is fine alone can only be refused for a conflict.
            if RoutePattern::parse(path).is_ok() {
                kind = ErrorKind::Conflict;
            }
            span
        }),
        ConfigField::RouteMethods(i) => route(*i).map(bad_method_span),
        ConfigField::MaxRetries => raw.max_retries.as_ref().map(Spanned::span),
        ConfigField::MaxEventAge => raw.max_event_age.as_ref().map(Spanned::span),
        ConfigField::OnSuccess => raw.on_success.as_ref().map(Spanned::span),
        ConfigField::OnFailure => raw.on_failure.as_ref().map(Spanned::span),
        ConfigField::Schedule(i) => schedule_span(raw, *i),
        ConfigField::Queue(i) => trigger_span(raw, *i),
        ConfigField::Storage(i) => storage_span(raw, *i),
        ConfigField::Breaker(_) => raw.breaker.as_ref().map(Spanned::span),
        ConfigField::Logs(_) => raw.logs.as_ref().map(Spanned::span),
        ConfigField::RouteAuth(_)
        | ConfigField::RouteJwt(..)
        | ConfigField::RouteRate(..)
        | ConfigField::Rate(_) => {
            // These messages do not name their key: say which.
            let span = access::span(raw, &e.field).unwrap_or(header);
            return at.err(
                span,
                kind,
                format!("function `{name}`: {}: {}", e.field, e.message),
            );
        }
    }
    .unwrap_or(header);
    at.err(span, kind, format!("function `{name}`: {}", e.message))
}

/// The first method core refuses, or the methods array, or the route.
fn bad_method_span(item: &Spanned<RawRoute>) -> Range<usize> {
    let route = item.get_ref();
    let (path, _) = route.path(&item.span());
    route
        .methods()
        .iter()
        .find(|m| normalize_methods(path, std::slice::from_ref(m.get_ref())).is_err())
        .map(Spanned::span)
        .or_else(|| route.methods_span())
        .unwrap_or_else(|| item.span())
}

/// The manifest's directory: `file`'s parent, `.` for a bare file name.
pub(crate) fn dir_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `dir` joined with `source`, without `.` components (`./wasm/a.wasm` → `wasm/a.wasm`).
/// `..` is kept: removing it lexically would be wrong across symlinks.
pub(crate) fn resolve(dir: &Path, source: &Path) -> PathBuf {
    let joined: PathBuf = dir
        .join(source)
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    if joined.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_resolve_against_the_manifest_dir() {
        assert_eq!(
            resolve(Path::new("."), Path::new("./wasm/a.wasm")),
            PathBuf::from("wasm/a.wasm")
        );
        assert_eq!(
            resolve(Path::new("app"), Path::new("../a.wasm")),
            PathBuf::from("app/../a.wasm")
        );
        assert_eq!(
            resolve(Path::new("app"), Path::new("/abs/a.wasm")),
            PathBuf::from("/abs/a.wasm")
        );
        assert_eq!(dir_of(Path::new("wisp.toml")), PathBuf::from("."));
        assert_eq!(dir_of(Path::new("a/b/wisp.toml")), PathBuf::from("a/b"));
    }

    #[test]
    fn app_names_are_called_app_names() {
        let Err(e) = FunctionName::new("My App") else {
            panic!("`My App` should be refused");
        };
        assert_eq!(
            app_name_error(e),
            "invalid app name `My App`: use lowercase letters, digits and '-', starting with a letter"
        );
    }
}
