//! `wisp.toml`: the declarative manifest of an app — its name, its functions, each
//! with its source (a `.wasm` file, or for native runtimes a directory or `.zip`), a
//! kind, a runtime, limits, environment, HTTP routes (with their auth and rate
//! limits), async settings and triggers (schedules, queues, storage), and the
//! queues, buckets, key-value stores, topics and alarms it declares.
//!
//! [`load`] reads a manifest from disk, [`parse`] reads one from text; both return
//! a [`Manifest`] whose functions carry a [`FunctionConfig`] already checked by
//! core (the same check the HTTP API runs), or a [`ManifestError`] that names the
//! file, line and column of the offending key or value. The format is documented
//! in `docs/manifest.md`.
//!
//! Reading happens in three steps: TOML syntax (toml's parser; its errors, and
//! serde's, are reworded in `diagnose`), the schema (`schema`: serde types with
//! spans, unknown keys refused), and values (`validate`). `error` owns
//! [`ManifestError`] and its rendering.

mod access;
mod diagnose;
mod error;
mod schema;
mod validate;

pub use error::{ErrorKind, Excerpt, ManifestError};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use wisp_core::{
    AlarmName, AlarmSpec, BucketName, FunctionConfig, FunctionName, KvStoreName, QueueConfig, QueueName,
    TopicName,
};

/// The file name [`load`] looks for in a directory.
pub const MANIFEST_FILE: &str = "wisp.toml";

/// A checked manifest. (Not `Eq`: an alarm's threshold is an `f64`.)
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Manifest {
    /// The app's name (DNS-label rules, as function names).
    pub app: String,
    /// The directory the manifest is in; sources are resolved against it.
    pub dir: PathBuf,
    /// The functions, in the order they first appear in the file.
    pub functions: Vec<FunctionManifest>,
    /// The queues of `[queues.NAME]`, in the order they first appear in the file.
    /// Left out of the serialised form when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<QueueManifest>,
    /// The buckets of `[buckets.NAME]`, in the order they first appear in the file.
    /// Left out of the serialised form when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<BucketManifest>,
    /// The key-value stores of `[kv.NAME]`, in the order they first appear in the
    /// file. Left out of the serialised form when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kv: Vec<KvStoreManifest>,
    /// The topics of `[topics.NAME]`, in the order they first appear in the file.
    /// Left out of the serialised form when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<TopicManifest>,
    /// The alarms of `[alarms.NAME]`, in the order they first appear in the file.
    /// Left out of the serialised form when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<AlarmManifest>,
}

/// One alarm of a manifest: created or updated by `wisp deploy` (`PUT
/// /v1/alarms/{name}` with `spec` as the body), never deleted by it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlarmManifest {
    pub name: AlarmName,
    /// The rule, checked by [`AlarmSpec::validate`]. The functions, queues and topics
    /// it names need not be declared in this manifest: they may be another app's.
    pub spec: AlarmSpec,
}

/// One topic of a manifest: created by `wisp deploy` when missing, with its
/// subscriptions added when missing; neither is ever deleted by it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopicManifest {
    pub name: TopicName,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<SubscriptionManifest>,
}

/// One subscription of a topic, as `POST /v1/topics/{name}/subscriptions` takes it
/// (its serialised form is that request's body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubscriptionManifest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueName>,
    /// An `http://` or `https://` URL POSTed each message (checked fully by the server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
    /// The filter policy as a JSON object (checked with core's `FilterPolicy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_policy: Option<serde_json::Value>,
    /// `MessageAttributes` or `MessageBody`, with a filter policy only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_policy_scope: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub raw_message_delivery: bool,
}

/// One key-value store of a manifest: created by `wisp deploy` when missing, never
/// deleted by it (a store holds data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KvStoreManifest {
    pub name: KvStoreName,
}

/// One bucket of a manifest: created by `wisp deploy` when missing, never changed
/// or deleted by it (a bucket holds data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BucketManifest {
    pub name: BucketName,
    /// The bucket's own quota, in bytes; `None` leaves it to the server's limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
}

/// One queue of a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueManifest {
    pub name: QueueName,
    /// The configuration, checked by [`QueueConfig::validate`], with every default filled in.
    pub config: QueueConfig,
}

/// One function of a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FunctionManifest {
    pub name: FunctionName,
    /// The `.wasm` file, or for process runtimes a directory or `.zip`, resolved
    /// against [`Manifest::dir`]; not checked to exist.
    pub source: PathBuf,
    /// The configuration, validated and canonical (methods upper-cased and sorted).
    pub config: FunctionConfig,
}

impl Manifest {
    /// The function called `name`, if the manifest declares it.
    pub fn function(&self, name: &str) -> Option<&FunctionManifest> {
        self.functions.iter().find(|f| f.name.as_str() == name)
    }

    /// The queue called `name`, if the manifest declares it.
    pub fn queue(&self, name: &str) -> Option<&QueueManifest> {
        self.queues.iter().find(|q| q.name.as_str() == name)
    }

    /// The bucket called `name`, if the manifest declares it.
    pub fn bucket(&self, name: &str) -> Option<&BucketManifest> {
        self.buckets.iter().find(|b| b.name.as_str() == name)
    }

    /// The key-value store called `name`, if the manifest declares it.
    pub fn kv_store(&self, name: &str) -> Option<&KvStoreManifest> {
        self.kv.iter().find(|s| s.name.as_str() == name)
    }

    /// The alarm called `name`, if the manifest declares it.
    pub fn alarm(&self, name: &str) -> Option<&AlarmManifest> {
        self.alarms.iter().find(|a| a.name.as_str() == name)
    }
}

/// Reads and checks the manifest at `path`: a `wisp.toml` (or any file), or a
/// directory holding a `wisp.toml`.
pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
    let is_dir = path.is_dir();
    let file = if is_dir {
        path.join(MANIFEST_FILE)
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|e| {
        let (kind, message) = match e.kind() {
            std::io::ErrorKind::NotFound if is_dir => (
                ErrorKind::NotFound,
                format!(
                    "no {MANIFEST_FILE} in `{}`: create one, see docs/manifest.md",
                    path.display()
                ),
            ),
            std::io::ErrorKind::NotFound => (
                ErrorKind::NotFound,
                format!(
                    "`{}` does not exist: give the path of a {MANIFEST_FILE} or of the directory holding one (see docs/manifest.md)",
                    path.display()
                ),
            ),
            std::io::ErrorKind::InvalidData => (
                ErrorKind::Io,
                format!("`{}` is not UTF-8 text", file.display()),
            ),
            _ => (
                ErrorKind::Io,
                format!("failed to read `{}`: {e}", file.display()),
            ),
        };
        ManifestError::whole_file(&file, kind, message)
    })?;
    parse(&text, &file)
}

/// Checks the manifest `text`, read from `file` (used for error locations and as
/// the base of relative paths: [`Manifest::dir`] is `file`'s parent). The only I/O
/// is what the manifest asks for: the JWKS files and environment variables its
/// routes' `jwt` tables name ([`parse_with`] takes them from elsewhere).
pub fn parse(text: &str, file: &Path) -> Result<Manifest, ManifestError> {
    parse_with(text, file, &System)
}

/// [`parse`], reading what the manifest names through `inputs`.
pub fn parse_with(text: &str, file: &Path, inputs: &dyn Inputs) -> Result<Manifest, ManifestError> {
    let doc = toml::de::DeTable::parse(text).map_err(|e| diagnose::syntax_error(&e, file, text))?;
    let raw = schema::RawManifest::deserialize(toml::de::Deserializer::from(doc.clone()))
        .map_err(|e| diagnose::schema_error(&e, doc.get_ref(), file, text))?;
    validate::manifest(raw, text, file, inputs)
}

/// What a manifest may name outside itself: a route's `jwt.secret_env` (an
/// environment variable) and `jwt.jwks` (a file, resolved against the manifest's
/// directory). Read when the manifest is loaded, so the values go to the server
/// inline, as the API takes them.
pub trait Inputs {
    /// The environment variable `name`, if set (and UTF-8).
    fn env(&self, name: &str) -> Option<String>;
    /// The text of the file at `path`.
    fn read(&self, path: &Path) -> std::io::Result<String>;
}

/// The process's environment and file system.
pub struct System;

impl Inputs for System {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use wisp_core::Kind;

    const HELLO: &str = r#"
[app]
name = "hello"

[functions.hello]
source = "wasm/hello.wasm"
kind = "http"
routes = ["/hello"]
"#;

    #[test]
    fn parses_a_minimal_manifest_with_defaults() {
        let m = parse(HELLO, Path::new("app/wisp.toml")).unwrap();
        assert_eq!(m.app, "hello");
        assert_eq!(m.dir, PathBuf::from("app"));
        let f = m.function("hello").unwrap();
        assert_eq!(f.source, PathBuf::from("app/wasm/hello.wasm"));
        assert_eq!(f.config.kind, Kind::Http);
        assert_eq!(f.config.memory_mb, 128);
        assert_eq!(f.config.timeout, Duration::from_secs(30));
        assert_eq!(f.config.routes[0].path, "/hello");
    }

    #[test]
    fn errors_carry_their_location() {
        let text = HELLO.replace("kind = \"http\"", "kind = \"http\"\nmemroy_mb = 1");
        let err = parse(&text, Path::new("wisp.toml")).unwrap_err();
        assert_eq!((err.line, err.column), (8, 1));
        assert_eq!(err.kind, ErrorKind::Schema);
        assert!(
            err.message
                .starts_with("unknown key `memroy_mb` in function `hello`; expected one of"),
            "{err}"
        );
    }

    #[test]
    fn functions_keep_the_order_of_the_file() {
        let text = r#"
[app]
name = "order"
[functions.zeta]
source = "z.wasm"
kind = "event"
[functions.alpha]
source = "a.wasm"
kind = "event"
"#;
        let m = parse(text, Path::new("wisp.toml")).unwrap();
        let names: Vec<_> = m.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha"]);
    }

    #[test]
    fn load_accepts_a_directory_and_says_when_there_is_no_manifest() {
        let dir = std::env::temp_dir().join(format!("wisp-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = load(&dir).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(
            err.to_string(),
            format!(
                "no wisp.toml in `{}`: create one, see docs/manifest.md",
                dir.display()
            )
        );
        std::fs::write(dir.join(MANIFEST_FILE), HELLO).unwrap();
        let m = load(&dir).unwrap();
        assert_eq!(m.dir, dir);
        assert_eq!(m.functions[0].source, dir.join("wasm/hello.wasm"));
        let missing = load(&dir.join("nope.toml")).unwrap_err();
        assert_eq!(missing.kind, ErrorKind::NotFound);
        assert!(missing.message.contains("nope.toml` does not exist"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A prefix or suffix past the longest object key is refused at the value; the
    /// fixtures would hold a line of a thousand characters, so it is tested here.
    #[test]
    fn storage_prefixes_and_suffixes_hold_at_most_a_keys_bytes() {
        let with = |table: &str| HELLO.replace("routes = [\"/hello\"]", &format!("storage = {table}"));
        let longest = "k".repeat(1024);
        let text = with(&format!(
            "{{ bucket = \"photos\", prefix = \"{longest}\", suffix = \"{longest}\" }}"
        ));
        let m = parse(&text, Path::new("wisp.toml")).unwrap();
        assert_eq!(m.functions[0].config.storage[0].prefix.len(), 1024);
        for key in ["prefix", "suffix"] {
            let text = with(&format!(
                "[\"photos\", {{ bucket = \"photos\", events = [\"ObjectRemoved:*\"], {key} = \"{longest}k\" }}]"
            ));
            let err = parse(&text, Path::new("wisp.toml")).unwrap_err();
            let column = text.lines().nth(7).unwrap().find(&format!("{key} = ")).unwrap() + key.len() + 4;
            assert_eq!((err.line, err.column), (8, column), "{err}");
            assert_eq!(
                err.message,
                format!(
                    "function `hello`: storage trigger `photos`: the {key} is 1025 bytes long; \
                     it may hold at most 1024 bytes, the longest object key"
                )
            );
        }
    }

    /// An alarm is core's `AlarmSpec`, read by the keys of `PUT /v1/alarms/{name}`; what it
    /// names need not be declared here (`pager` is another app's), and each error points at
    /// the value it is about: serde's at the value, core's at the key it names.
    #[test]
    fn alarms_read_as_the_api_takes_them() {
        let table = r#"
[alarms.api-errors]
metric = "error_rate"
function = "hello"
threshold = 0.05
evaluation_periods = 3
datapoints_to_alarm = 2
missing_data = "not_breaching"
actions = [{ webhook = "https://hooks.example.com/wisp" }, { function = "pager", on = ["ALARM"] }]
"#;
        let m = parse(&format!("{HELLO}{table}"), Path::new("wisp.toml")).unwrap();
        let alarm = m.alarm("api-errors").unwrap();
        assert_eq!(
            alarm.spec.condition(),
            "error_rate of function hello > 0.05 for 2 of 3 periods of 1m"
        );
        assert_eq!(alarm.spec.actions[1].target.to_string(), "function pager");
        let json = serde_json::to_value(&alarm.spec).unwrap();
        let again: AlarmSpec = serde_json::from_value(json).unwrap();
        assert_eq!(again, alarm.spec);

        let line = |text: &str, needle: &str| {
            let at = text.find(needle).unwrap();
            let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            (text[..at].matches('\n').count() + 1, at - line_start + 1)
        };
        let cases = [
            (
                "threshold = 0.05",
                "threshold = 5",
                "5\n",
                "alarm `api-errors`: threshold: error_rate is a fraction",
            ),
            (
                "metric = \"error_rate\"",
                "metric = \"latency\"",
                "\"latency\"",
                "invalid value `latency` for `metric` in alarm `api-errors`: expected one of",
            ),
            (
                "missing_data",
                "colour = 1\nmissing_data",
                "colour",
                "unknown key `colour` in alarm `api-errors`",
            ),
            (
                "function = \"hello\"\n",
                "",
                "\"error_rate\"",
                "name it with `function`",
            ),
        ];
        for (from, to, at, message) in cases {
            let text = format!("{HELLO}{}", table.replacen(from, to, 1));
            let err = parse(&text, Path::new("wisp.toml")).unwrap_err();
            assert!(err.message.contains(message), "{err}");
            assert_eq!((err.line, err.column), line(&text, at), "{err}");
        }
    }

    /// Inputs from a table, for the keys a manifest reads from outside itself.
    struct Fake;

    impl Inputs for Fake {
        fn env(&self, name: &str) -> Option<String> {
            (name == "JWT_SECRET").then(|| "s".repeat(32))
        }

        fn read(&self, path: &Path) -> std::io::Result<String> {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no {}", path.display()),
            ))
        }
    }

    #[test]
    fn jwt_secrets_come_from_the_environment() {
        let text = HELLO.replace(
            "routes = [\"/hello\"]",
            "routes = [{ path = \"/hello\", auth = \"jwt\", jwt = { issuer = \"i\", audience = \"a\", secret_env = \"JWT_SECRET\" } }]",
        );
        let m = parse_with(&text, Path::new("app/wisp.toml"), &Fake).unwrap();
        let jwt = m.functions[0].config.routes[0].jwt.as_ref().unwrap();
        assert_eq!(jwt.secret.as_deref(), Some("s".repeat(32).as_str()));
        assert_eq!(jwt.audience, vec!["a"]);
        let text = text.replace("JWT_SECRET", "OTHER");
        let err = parse_with(&text, Path::new("app/wisp.toml"), &Fake).unwrap_err();
        assert!(err.message.contains("`OTHER` is not set"), "{err}");
        let text = HELLO.replace(
            "routes = [\"/hello\"]",
            "routes = [{ path = \"/hello\", auth = \"jwt\", jwt = { issuer = \"i\", audience = \"a\", jwks = \"k.json\" } }]",
        );
        let err = parse_with(&text, Path::new("app/wisp.toml"), &Fake).unwrap_err();
        assert!(
            err.message.contains("cannot read the JWKS file `app/k.json`"),
            "{err}"
        );
    }
}
