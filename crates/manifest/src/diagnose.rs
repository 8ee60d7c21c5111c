//! Turns toml's errors into the manifest's own: syntax errors keep toml's words;
//! schema errors from serde (`unknown field`, `missing field`, `invalid type`) are
//! reworded in TOML's terms and told where they are (`in function `hello``).
//!
//! serde errors carry a byte span but not the key path, so the path is found by
//! looking the span up in the parsed document ([`DeTable`], which keeps every
//! key's and value's span). The reworded messages depend on serde's fixed wording
//! (`serde::de::Error`'s default methods); anything else passes through with its
//! location added.

use crate::error::{ErrorKind, ManifestError};
use crate::schema::{
    DESTINATION_EXPECTED, QUEUE_TRIGGER_EXPECTED, ROUTE_EXPECTED, SCHEDULE_EXPECTED, SIZE_EXPECTED,
    STORAGE_TRIGGER_EXPECTED,
};
use std::ops::Range;
use std::path::Path;
use toml::de::{DeTable, DeValue};

/// A TOML syntax error.
pub(crate) fn syntax_error(err: &toml::de::Error, file: &Path, text: &str) -> ManifestError {
    let span = err.span().unwrap_or(0..0);
    let mut message = err.message().trim().to_string();
    if message == "duplicate key"
        && let Some(key) = text.get(span.clone()).filter(|k| !k.is_empty())
    {
        message = format!("duplicate key `{key}`: a key may be defined only once");
    }
    ManifestError::at(
        file,
        text,
        span,
        ErrorKind::Syntax,
        format!("invalid TOML: {message}"),
    )
}

/// A serde error met while reading the document into the schema types.
pub(crate) fn schema_error(
    err: &toml::de::Error,
    doc: &DeTable<'_>,
    file: &Path,
    text: &str,
) -> ManifestError {
    let span = err.span().unwrap_or(0..0);
    let found = find(doc, &span);
    let (path, value) = match &found {
        Some((path, value)) => (path.as_slice(), *value),
        None => (&[][..], None),
    };
    let message = match struct_given_array(path) {
        // `[[app]]`, `[[functions.NAME]]` or `[[queues.NAME]]`: serde reads a struct from an array
        // element by element, and would complain about the first element.
        Some(table) => format!(
            "invalid type for {}: expected {}, found an array",
            value_subject(table),
            expected_for(table).unwrap_or("a table")
        ),
        None => reword(err.message(), path, value),
    };
    ManifestError::at(file, text, span, ErrorKind::Schema, message)
}

/// One step of a key path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A path with the span of the thing it names and the value there (none for a key).
type Candidate<'a, 'i> = (usize, Vec<Seg>, Option<&'a DeValue<'i>>);

/// The key path of the smallest key or value whose span holds `target` (the
/// deeper one on a tie: an array-of-tables item shares its header with the array).
fn find<'a, 'i>(doc: &'a DeTable<'i>, target: &Range<usize>) -> Option<(Vec<Seg>, Option<&'a DeValue<'i>>)> {
    let mut best: Option<Candidate<'a, 'i>> = None;
    walk_table(doc, &mut Vec::new(), target, &mut best);
    best.map(|(_, path, value)| (path, value))
}

fn consider<'a, 'i>(
    span: Range<usize>,
    path: &[Seg],
    value: Option<&'a DeValue<'i>>,
    target: &Range<usize>,
    best: &mut Option<Candidate<'a, 'i>>,
) {
    if span.start > target.start || target.end > span.end {
        return;
    }
    let len = span.len();
    let better = match best {
        None => true,
        Some((best_len, best_path, _)) => {
            len < *best_len || (len == *best_len && path.len() > best_path.len())
        }
    };
    if better {
        *best = Some((len, path.to_vec(), value));
    }
}

fn walk_table<'a, 'i>(
    table: &'a DeTable<'i>,
    path: &mut Vec<Seg>,
    target: &Range<usize>,
    best: &mut Option<Candidate<'a, 'i>>,
) {
    for (key, value) in table.iter() {
        path.push(Seg::Key(key.get_ref().to_string()));
        consider(key.span(), path, None, target, best);
        consider(value.span(), path, Some(value.get_ref()), target, best);
        walk_value(value.get_ref(), path, target, best);
        path.pop();
    }
}

fn walk_value<'a, 'i>(
    value: &'a DeValue<'i>,
    path: &mut Vec<Seg>,
    target: &Range<usize>,
    best: &mut Option<Candidate<'a, 'i>>,
) {
    match value {
        DeValue::Table(table) => walk_table(table, path, target, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                consider(item.span(), path, Some(item.get_ref()), target, best);
                walk_value(item.get_ref(), path, target, best);
                path.pop();
            }
        }
        _ => {}
    }
}

/// The path of a table the schema reads as a struct, when `path` goes through an
/// array there instead.
fn struct_given_array(path: &[Seg]) -> Option<&[Seg]> {
    match path {
        [Seg::Key(app), Seg::Index(_), ..] if app == "app" => Some(&path[..1]),
        [Seg::Key(t), Seg::Key(_), Seg::Index(_), ..]
            if t == "functions"
                || t == "queues"
                || t == "buckets"
                || t == "kv"
                || t == "topics"
                || t == "alarms" =>
        {
            Some(&path[..2])
        }
        _ => None,
    }
}

/// `routes[0].methods`, with keys that are not bare TOML keys quoted.
fn render(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let bare = !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if bare {
                    out.push_str(k);
                } else {
                    out.push_str(&format!("{k:?}"));
                }
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn key(seg: &Seg) -> Option<&str> {
    match seg {
        Seg::Key(k) => Some(k),
        Seg::Index(_) => None,
    }
}

/// Where a table is, for "unknown key `x` {here}" and "missing key `x` {here}".
fn table_context(path: &[Seg]) -> String {
    match path {
        [] => "at the top level".to_string(),
        [Seg::Key(app)] if app == "app" => "in [app]".to_string(),
        [Seg::Key(functions), Seg::Key(f)] if functions == "functions" => {
            format!("in function `{f}`")
        }
        [Seg::Key(functions), Seg::Key(f), rest @ ..] if functions == "functions" => {
            format!("in `{}` of function `{f}`", render(rest))
        }
        [Seg::Key(queues), Seg::Key(q)] if queues == "queues" => format!("in queue `{q}`"),
        [Seg::Key(buckets), Seg::Key(b)] if buckets == "buckets" => format!("in bucket `{b}`"),
        [Seg::Key(kv), Seg::Key(s)] if kv == "kv" => format!("in key-value store `{s}`"),
        [Seg::Key(topics), Seg::Key(t)] if topics == "topics" => format!("in topic `{t}`"),
        [Seg::Key(topics), Seg::Key(t), rest @ ..] if topics == "topics" => {
            format!("in `{}` of topic `{t}`", render(rest))
        }
        [Seg::Key(alarms), Seg::Key(a)] if alarms == "alarms" => format!("in alarm `{a}`"),
        [Seg::Key(alarms), Seg::Key(a), rest @ ..] if alarms == "alarms" => {
            format!("in `{}` of alarm `{a}`", render(rest))
        }
        _ => format!("in `{}`", render(path)),
    }
}

/// What a value is, for "invalid type for {subject}".
fn value_subject(path: &[Seg]) -> String {
    match path {
        [Seg::Key(functions), Seg::Key(f)] if functions == "functions" => {
            format!("function `{f}`")
        }
        [Seg::Key(functions), Seg::Key(f), rest @ ..] if functions == "functions" => {
            format!("`{}` in function `{f}`", render(rest))
        }
        [Seg::Key(app), rest @ ..] if app == "app" && !rest.is_empty() => {
            format!("`{}` in [app]", render(rest))
        }
        [Seg::Key(queues), Seg::Key(q)] if queues == "queues" => format!("queue `{q}`"),
        [Seg::Key(queues), Seg::Key(q), rest @ ..] if queues == "queues" => {
            format!("`{}` in queue `{q}`", render(rest))
        }
        [Seg::Key(buckets), Seg::Key(b)] if buckets == "buckets" => format!("bucket `{b}`"),
        [Seg::Key(buckets), Seg::Key(b), rest @ ..] if buckets == "buckets" => {
            format!("`{}` in bucket `{b}`", render(rest))
        }
        [Seg::Key(kv), Seg::Key(s)] if kv == "kv" => format!("key-value store `{s}`"),
        [Seg::Key(kv), Seg::Key(s), rest @ ..] if kv == "kv" => {
            format!("`{}` in key-value store `{s}`", render(rest))
        }
        [Seg::Key(topics), Seg::Key(t)] if topics == "topics" => format!("topic `{t}`"),
        [Seg::Key(topics), Seg::Key(t), rest @ ..] if topics == "topics" => {
            format!("`{}` in topic `{t}`", render(rest))
        }
        [Seg::Key(alarms), Seg::Key(a)] if alarms == "alarms" => format!("alarm `{a}`"),
        [Seg::Key(alarms), Seg::Key(a), rest @ ..] if alarms == "alarms" => {
            format!("`{}` in alarm `{a}`", render(rest))
        }
        _ => format!("`{}`", render(path)),
    }
}

/// What a value should be, in the manifest's words, where that says more than serde's.
fn expected_for(path: &[Seg]) -> Option<&'static str> {
    if let [Seg::Key(functions), Seg::Key(_), rest @ ..] = path
        && functions == "functions"
        && let Some(expected) = expected_for_event_key(rest)
    {
        return Some(expected);
    }
    if let [Seg::Key(queues), rest @ ..] = path
        && queues == "queues"
    {
        return match rest {
            [] => Some("a table of queues"),
            [_] => Some("a table"),
            [_, Seg::Key(key)] => match key.as_str() {
                "visibility_timeout" | "retention" => Some("a duration string such as \"30s\" or \"4d\""),
                "max_receive_count" => Some("a whole number"),
                "dead_letter_queue" => Some("a queue name"),
                _ => None,
            },
            _ => None,
        };
    }
    if let [Seg::Key(buckets), rest @ ..] = path
        && buckets == "buckets"
    {
        return match rest {
            [] => Some("a table of buckets"),
            [_] => Some("a table"),
            [_, Seg::Key(key)] if key == "quota" => Some(SIZE_EXPECTED),
            _ => None,
        };
    }
    if let [Seg::Key(kv), rest @ ..] = path
        && kv == "kv"
    {
        return match rest {
            [] => Some("a table of key-value stores (`[kv.NAME]`)"),
            [_] => Some("a table (`[kv.NAME]`, empty)"),
            _ => None,
        };
    }
    if let [Seg::Key(topics), rest @ ..] = path
        && topics == "topics"
    {
        return match rest {
            [] => Some("a table of topics (`[topics.NAME]`)"),
            [_] => Some("a table"),
            [_, Seg::Key(key)] if key == "subscriptions" => {
                Some("an array of subscriptions such as `[{ queue = \"jobs\" }]`")
            }
            [_, _, Seg::Index(_)] => Some("a table such as `{ function = \"f\" }` or `{ queue = \"q\" }`"),
            [_, _, Seg::Index(_), Seg::Key(key)] => match key.as_str() {
                "function" => Some("a function name"),
                "queue" => Some("a queue name"),
                "filter_policy" => Some("a filter policy: a table, or its JSON text"),
                "filter_policy_scope" => Some("\"MessageAttributes\" or \"MessageBody\""),
                "raw" => Some("true or false"),
                _ => None,
            },
            _ => None,
        };
    }
    if let [Seg::Key(alarms), rest @ ..] = path
        && alarms == "alarms"
    {
        return expected_for_alarm(rest);
    }
    let in_function = matches!(path, [Seg::Key(f), Seg::Key(_), _, ..] if f == "functions");
    let leaf = path.last().and_then(key);
    let parent = path.len().checked_sub(2).and_then(|i| key(&path[i]));
    match (path, leaf) {
        ([Seg::Key(a)], _) if a == "app" => Some("a table with `name`"),
        ([Seg::Key(f)], _) if f == "functions" => Some("a table of functions"),
        ([Seg::Key(f), Seg::Key(_)], _) if f == "functions" => Some("a table"),
        (_, Some("source")) if in_function => Some("a path, as a string"),
        (_, Some("runtime")) if in_function => Some("\"wasm\", \"process\", \"python\" or \"node\""),
        (_, Some("handler")) if in_function => Some("a handler string such as \"app.handler\""),
        (_, Some("kind")) if in_function => Some("\"http\" or \"event\""),
        (_, Some("memory_mb")) if in_function => Some("a whole number of megabytes"),
        (_, Some("timeout")) if in_function => Some("a duration string such as \"3s\" or \"500ms\""),
        (_, Some("max_concurrency" | "min_instances" | "max_queue")) if in_function => Some("a whole number"),
        (_, Some("queue_timeout")) if in_function => Some("a duration string such as \"10s\""),
        (_, Some("env")) if in_function => Some("a table of strings"),
        (_, Some("routes")) if in_function => Some("an array of routes"),
        (_, Some("methods")) if in_function => Some("an array of method names such as [\"GET\", \"POST\"]"),
        (_, Some("path")) if in_function => Some("a path string such as \"/hello\""),
        (_, None) if in_function && parent == Some("routes") => Some(ROUTE_EXPECTED),
        (_, None) if in_function && parent == Some("methods") => Some("a method name such as \"GET\""),
        (_, Some(_)) if in_function && parent == Some("env") => Some("a string"),
        _ => None,
    }
}

/// The keys of `[alarms]` (`rest` is the path inside it). Values core reads as names
/// (metrics, states) are told by serde's own list of them.
fn expected_for_alarm(rest: &[Seg]) -> Option<&'static str> {
    let keys: Vec<&str> = rest.iter().skip(1).filter_map(key).collect();
    let item = matches!(rest.last(), Some(Seg::Index(_)));
    match (rest, keys.as_slice(), item) {
        ([], _, _) => Some("a table of alarms (`[alarms.NAME]`)"),
        ([_], _, _) => Some("a table"),
        (_, ["metric"], _) => Some("a metric name such as \"error_rate\""),
        (_, ["function"], _) => Some("a function name"),
        (_, ["queue"], _) => Some("a queue name"),
        (_, ["comparison"], _) => Some("\">\", \">=\", \"<\" or \"<=\""),
        (_, ["threshold"], _) => {
            Some("a number, or for a duration metric a duration string such as \"250ms\"")
        }
        (_, ["period"], _) => Some("a duration string such as \"1m\""),
        (_, ["evaluation_periods" | "datapoints_to_alarm"], _) => Some("a whole number"),
        (_, ["missing_data"], _) => Some("\"missing\", \"ignore\", \"breaching\" or \"not_breaching\""),
        (_, ["actions"], false) => Some("an array of actions such as `[{ webhook = \"https://…\" }]`"),
        (_, ["actions"], true) => Some(
            "an action: a table with one of `webhook`, `function`, `queue` or `topic`, and optional `on`",
        ),
        (_, ["actions", "webhook"], _) => Some("a URL string"),
        (_, ["actions", "function"], _) => Some("a function name"),
        (_, ["actions", "queue"], _) => Some("a queue name"),
        (_, ["actions", "topic"], _) => Some("a topic name"),
        (_, ["actions", "on"], false) => Some("an array of states such as [\"ALARM\", \"OK\"]"),
        (_, ["actions", "on"], true) => Some("\"OK\", \"ALARM\" or \"INSUFFICIENT_DATA\""),
        (_, ["description"], _) => Some("a string"),
        _ => None,
    }
}

/// The async and trigger keys of a function (`rest` is the path inside it), whose
/// names recur at different depths (`queue` is a trigger, and a key of one).
fn expected_for_event_key(rest: &[Seg]) -> Option<&'static str> {
    let k = |seg: &Seg| key(seg).unwrap_or_default().to_string();
    let keys: Vec<String> = rest
        .iter()
        .filter(|seg| matches!(seg, Seg::Key(_)))
        .map(k)
        .collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let item = matches!(rest.last(), Some(Seg::Index(_)));
    match (keys.as_slice(), item) {
        (["max_retries"], _) => Some("a whole number"),
        (["max_event_age"], _) => Some("a duration string such as \"1h\""),
        (["on_success" | "on_failure"], _) => Some(DESTINATION_EXPECTED),
        (["on_success" | "on_failure", "queue"], _) => Some("a queue name"),
        (["on_success" | "on_failure", "function"], _) => Some("a function name"),
        (["schedule"], false) => Some(
            "a schedule (a cron expression or rate such as \"0 9 * * *\", or a table with `expression`), \
             or an array of them",
        ),
        (["schedule"], true) => Some(SCHEDULE_EXPECTED),
        (["schedule", "expression"], _) => Some("a cron expression or rate, as a string"),
        (["schedule", "timezone"], _) => Some("an IANA time zone name such as \"Europe/Berlin\""),
        (["schedule", "catch_up"], _) => Some("true or false"),
        (["queue"], false) => {
            Some("a queue trigger (a queue name, or a table with `queue`), or an array of them")
        }
        (["queue"], true) => Some(QUEUE_TRIGGER_EXPECTED),
        (["queue", "queue"], _) => Some("a queue name"),
        (["queue", "batch_size"], _) => Some("a whole number"),
        (["queue", "max_batching_window"], _) => Some("a duration string such as \"2s\""),
        (["storage"], false) => {
            Some("a storage trigger (a bucket name, or a table with `bucket`), or an array of them")
        }
        (["storage"], true) => Some(STORAGE_TRIGGER_EXPECTED),
        (["storage", "bucket"], _) => Some("a bucket name"),
        (["storage", "events"], false) => Some("an array of event names such as [\"ObjectCreated:*\"]"),
        (["storage", "events"], true) => Some("an event name such as \"ObjectCreated:*\""),
        (["storage", "prefix" | "suffix"], _) => Some("a string"),
        _ => None,
    }
}

/// serde's name for an expected type, in TOML's terms.
fn toml_expected(serde: &str) -> String {
    match serde {
        "a sequence" => "an array".to_string(),
        "a map" => "a table".to_string(),
        "i64" | "u32" | "u64" | "i32" => "an integer".to_string(),
        s if s.starts_with("struct ") => "a table".to_string(),
        s => s.to_string(),
    }
}

/// What was written, from the document itself (serde would call a datetime a map).
fn found_text(value: Option<&DeValue<'_>>, serde: &str) -> String {
    match value {
        Some(DeValue::Table(_)) => "a table".to_string(),
        Some(DeValue::Array(_)) => "an array".to_string(),
        Some(DeValue::String(s)) => format!("string {s:?}"),
        Some(DeValue::Integer(i)) => format!("integer `{i}`"),
        Some(DeValue::Float(x)) => format!("float `{x}`"),
        Some(DeValue::Boolean(b)) => format!("boolean `{b}`"),
        Some(DeValue::Datetime(d)) => format!("datetime `{d}`"),
        None => match serde {
            "map" => "a table".to_string(),
            "sequence" => "an array".to_string(),
            s => s.to_string(),
        },
    }
}

/// A hint for a missing required key.
fn missing_hint(key: &str) -> &'static str {
    match key {
        "source" => ": add `source = \"path/to/code.wasm\"`",
        "kind" => ": add `kind = \"http\"` or `kind = \"event\"`",
        "name" => ": add `name = \"my-app\"`",
        "path" => ": add `path = \"/some/path\"`",
        "expression" => ": add `expression = \"0 9 * * *\"`",
        "queue" => ": add `queue = \"NAME\"`",
        "bucket" => ": add `bucket = \"NAME\"`",
        _ => "",
    }
}

/// The expected key closest to a typo'd one, if it is close: serde lists the
/// keys in backticks (`` `a`, `b` ``), so they are every other piece between them.
fn suggest<'a>(typo: &str, expected: &'a str) -> Option<&'a str> {
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|k| (edit_distance(typo, k), k))
        .filter(|(d, _)| *d <= 2 && d * 3 <= typo.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Edit distance counting an adjacent swap as one edit (`memroy` → `memory`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

fn reword(message: &str, path: &[Seg], value: Option<&DeValue<'_>>) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        // The error's span is the key itself.
        let (parent, name) = match path.split_last() {
            Some((Seg::Key(k), parent)) => (parent, k.clone()),
            _ => (path, rest.split('`').next().unwrap_or_default().to_string()),
        };
        let here = table_context(parent);
        return match rest.rsplit_once(", expected ") {
            Some((_, expected)) => {
                let hint = suggest(&name, expected)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                format!("unknown key `{name}` {here}; expected {expected}{hint}")
            }
            None => format!("unknown key `{name}` {here}"),
        };
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.trim_end_matches('`');
        return format!(
            "missing key `{name}` {}{}",
            table_context(path),
            missing_hint(name)
        );
    }
    for (prefix, what) in [
        ("invalid type: ", "invalid type"),
        ("invalid value: ", "invalid value"),
    ] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((found, expected)) = rest.rsplit_once(", expected ")
        {
            let expected = expected_for(path)
                .map(str::to_string)
                .unwrap_or_else(|| toml_expected(expected));
            return format!(
                "{what} for {}: expected {expected}, found {}",
                value_subject(path),
                found_text(value, found)
            );
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && let Some((written, expected)) = rest.split_once("`, expected ")
    {
        // A name core reads as an enum (`metric = "latency"`, `on = ["FIRING"]`).
        let hint = suggest(written, expected)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        return format!(
            "invalid value `{written}` for {}: expected {expected}{hint}",
            value_subject(path)
        );
    }
    if message.starts_with("data did not match any variant of untagged enum")
        && let Some(expected) = expected_for(path)
    {
        // serde's words name a private type; say what the value may be.
        return format!(
            "invalid type for {}: expected {expected}, found {}",
            value_subject(path),
            found_text(value, "")
        );
    }
    if let Some(rest) = message.strip_prefix("duplicate field `") {
        let name = rest.trim_end_matches('`');
        return format!("duplicate key `{name}` {}", table_context(path));
    }
    if path.is_empty() {
        message.to_string()
    } else {
        format!("invalid value for {}: {message}", value_subject(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_at(text: &str, needle: &str) -> String {
        let doc = DeTable::parse(text).unwrap();
        let start = text.find(needle).unwrap();
        let (path, _) = find(doc.get_ref(), &(start..start + needle.len())).unwrap();
        render(&path)
    }

    #[test]
    fn finds_the_key_path_of_a_span() {
        let text = "[functions.a]\nsource = 'x'\nenv = { \"A B\" = 1 }\n[[functions.a.routes]]\npath = 3\n";
        assert_eq!(path_at(text, "'x'"), "functions.a.source");
        assert_eq!(path_at(text, "1"), "functions.a.env.\"A B\"");
        assert_eq!(path_at(text, "3"), "functions.a.routes[0].path");
        assert_eq!(path_at(text, "[[functions.a.routes]]"), "functions.a.routes[0]");
        assert_eq!(path_at(text, "[functions.a]"), "functions.a");
    }

    #[test]
    fn suggests_close_keys_only() {
        let keys = "one of `source`, `kind`, `memory_mb`, `timeout`, `env`, `routes`";
        assert_eq!(suggest("memroy_mb", keys), Some("memory_mb"));
        assert_eq!(suggest("timout", keys), Some("timeout"));
        assert_eq!(suggest("route", keys), Some("routes"));
        assert_eq!(suggest("version", keys), None);
        assert_eq!(suggest("e", keys), None);
        assert_eq!(edit_distance("ab", "ba"), 1);
    }

    #[test]
    fn contexts_read_naturally() {
        let f = |p: &[&str]| {
            p.iter()
                .map(|s| match s.parse() {
                    Ok(i) => Seg::Index(i),
                    Err(_) => Seg::Key(s.to_string()),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(table_context(&f(&[])), "at the top level");
        assert_eq!(table_context(&f(&["app"])), "in [app]");
        assert_eq!(table_context(&f(&["functions", "a"])), "in function `a`");
        assert_eq!(
            table_context(&f(&["functions", "a", "routes", "1"])),
            "in `routes[1]` of function `a`"
        );
        assert_eq!(
            value_subject(&f(&["functions", "a", "memory_mb"])),
            "`memory_mb` in function `a`"
        );
        assert_eq!(value_subject(&f(&["app", "name"])), "`name` in [app]");
        assert_eq!(table_context(&f(&["queues", "jobs"])), "in queue `jobs`");
        assert_eq!(
            value_subject(&f(&["queues", "jobs", "retention"])),
            "`retention` in queue `jobs`"
        );
        assert_eq!(table_context(&f(&["alarms", "slow"])), "in alarm `slow`");
        assert_eq!(
            table_context(&f(&["alarms", "slow", "actions", "1"])),
            "in `actions[1]` of alarm `slow`"
        );
        assert_eq!(
            expected_for(&f(&["alarms", "slow", "actions", "0", "on", "1"])),
            Some("\"OK\", \"ALARM\" or \"INSUFFICIENT_DATA\"")
        );
    }

    #[test]
    fn trigger_keys_are_told_apart_by_depth() {
        let f = |p: &[&str]| {
            p.iter()
                .map(|s| match s.parse() {
                    Ok(i) => Seg::Index(i),
                    Err(_) => Seg::Key(s.to_string()),
                })
                .collect::<Vec<_>>()
        };
        let expected = |p: &[&str]| expected_for(&f(p));
        assert_eq!(
            expected(&["functions", "a", "queue", "0"]),
            Some(QUEUE_TRIGGER_EXPECTED)
        );
        assert_eq!(
            expected(&["functions", "a", "queue", "queue"]),
            Some("a queue name")
        );
        assert_eq!(
            expected(&["functions", "a", "queue", "1", "queue"]),
            Some("a queue name")
        );
        assert_eq!(
            expected(&["functions", "a", "storage", "1"]),
            Some(STORAGE_TRIGGER_EXPECTED)
        );
        assert_eq!(
            expected(&["functions", "a", "storage", "0", "events"]),
            Some("an array of event names such as [\"ObjectCreated:*\"]")
        );
        assert_eq!(
            expected(&["functions", "a", "storage", "events", "2"]),
            Some("an event name such as \"ObjectCreated:*\"")
        );
        assert_eq!(
            expected(&["functions", "a", "storage", "bucket"]),
            Some("a bucket name")
        );
        assert_eq!(
            expected(&["functions", "a", "on_failure", "function"]),
            Some("a function name")
        );
        assert_eq!(
            expected(&["functions", "a", "schedule", "2", "catch_up"]),
            Some("true or false")
        );
        assert_eq!(
            expected(&["queues", "jobs", "max_receive_count"]),
            Some("a whole number")
        );
    }
}
