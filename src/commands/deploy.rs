//! `wisp deploy`: create the buckets and key-value stores of the app in a `wisp.toml`
//! that are missing, create or update its queues, then deploy its functions (whose
//! triggers, destinations and grants may name those buckets, stores and queues).
//! Then its topics are created when missing and their subscriptions added when
//! missing (subscribers must exist first), and its alarms created or updated (last:
//! their actions may name any of these). Buckets and stores are never changed or
//! deleted here: they hold data; topics, subscriptions and alarms are never deleted
//! either.

use crate::client::{Client, ServerArg};
use crate::exit::{CliError, Exit};
use anyhow::Context;
use clap::Args;
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use std::path::PathBuf;
use wisp_core::ErrorCode;
use wisp_manifest::{
    AlarmManifest, BucketManifest, FunctionManifest, KvStoreManifest, Manifest, QueueManifest, TopicManifest,
};

/// Deploy an app (its wisp.toml): its missing buckets and key-value stores, its
/// queues, then all of its functions in one step (all or nothing); say what changed.
#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The app's directory, or its wisp.toml.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Also delete the functions of this app that wisp.toml no longer has.
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub async fn run(args: DeployArgs) -> anyhow::Result<()> {
    let manifest = load_manifest(&args.path)?;
    let client = Client::new(&args.server)?;
    deploy_app(&client, &manifest, args.prune).await
}

/// Print what `wisp deploy` would create, publish and delete, changing nothing.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// The app's directory, or its wisp.toml.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Plan `wisp deploy --prune`: list as deleted the app's functions wisp.toml no
    /// longer has.
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub async fn plan(args: PlanArgs) -> anyhow::Result<()> {
    let manifest = load_manifest(&args.path)?;
    let client = Client::new(&args.server)?;
    println!("Plan for app `{}` on {}", manifest.app, client.base());
    let (_, answer) = put_app(&client, &manifest, args.prune, true).await?;
    let mut changes = 0;
    for f in answer["functions"].as_array().into_iter().flatten() {
        let name = f["name"].as_str().unwrap_or("?");
        let line = match f["status"].as_str() {
            Some("created") => format!("create     {name}"),
            Some("published") => format!("publish    {name} (version {})", f["version"]),
            _ => {
                println!("  unchanged  {name} (version {})", f["version"]);
                continue;
            }
        };
        changes += 1;
        println!("  {line}");
    }
    for name in answer["removed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if args.prune {
            changes += 1;
            println!("  delete     {name}");
        } else {
            println!("  stray      {name} (no longer in wisp.toml; `wisp deploy --prune` deletes it)");
        }
    }
    println!(
        "{changes} change(s); nothing was changed (run `wisp deploy{}` to apply)",
        if args.prune { " --prune" } else { "" }
    );
    Ok(())
}

/// Loads a manifest, turning its error into a usage error that shows the location.
pub fn load_manifest(path: &std::path::Path) -> anyhow::Result<Manifest> {
    wisp_manifest::load(path).map_err(|e| {
        CliError::new(Exit::Usage, e.to_string())
            .hint("see docs/manifest.md for the keys of wisp.toml")
            .into()
    })
}

/// Deploys `manifest`: its buckets and key-value stores (created when missing, left
/// as they are when present), its queues (each dead-letter queue before the queues
/// that use it), then every function in one request, then its topics and their
/// subscriptions (created when missing), then its alarms (created or updated),
/// printing one line per bucket, store, queue, function, topic, subscription and alarm.
/// With `prune`, the app's functions the manifest no longer has are deleted; buckets
/// and stores never are.
pub async fn deploy_app(client: &Client, manifest: &Manifest, prune: bool) -> anyhow::Result<()> {
    println!("Deploying app `{}` to {}", manifest.app, client.base());
    // Read every source first: a missing build fails before anything changes.
    let mut sources = Vec::with_capacity(manifest.functions.len());
    for function in &manifest.functions {
        sources.push(read_source(function)?);
    }
    let mut done: Vec<String> = Vec::new();
    for bucket in &manifest.buckets {
        let created = put_bucket(client, bucket).await.map_err(|e| {
            e.context(format!(
                "creating bucket `{}` failed ({})",
                bucket.name,
                so_far(&done)
            ))
        })?;
        if created {
            let line = format!("{:<10} bucket {}", "created", bucket.name);
            match bucket.quota_bytes {
                Some(q) => println!("  {line:<37} quota {}", wisp_core::size_text::format(q)),
                None => println!("  {line}"),
            }
            done.push(format!("bucket {}", bucket.name));
        } else {
            println!("  {:<10} bucket {}", "unchanged", bucket.name);
        }
    }
    for store in &manifest.kv {
        let created = put_kv_store(client, store).await.map_err(|e| {
            e.context(format!(
                "creating key-value store `{}` failed ({})",
                store.name,
                so_far(&done)
            ))
        })?;
        if created {
            println!("  {:<10} kv store {}", "created", store.name);
            done.push(format!("kv store {}", store.name));
        } else {
            println!("  {:<10} kv store {}", "unchanged", store.name);
        }
    }
    for queue in queue_order(&manifest.queues) {
        let request = client
            .request(Method::PUT, &format!("/v1/queues/{}", queue.name))
            .json(&queue.config);
        let (_, answer) = client.json(request).await.map_err(|e| {
            e.context(format!(
                "creating queue `{}` failed ({})",
                queue.name,
                so_far(&done)
            ))
        })?;
        println!("  {}", super::queue::describe_put(&answer));
        done.push(format!("queue {}", queue.name));
    }
    let (_, answer) = put_app_with(client, manifest, sources, prune, false)
        .await
        .map_err(|e| {
            let queues = if done.is_empty() {
                String::new()
            } else {
                format!("; {}", so_far(&done))
            };
            e.context(format!(
                "deploying the functions of `{}` failed: none of them changed{queues}",
                manifest.app
            ))
        })?;
    for f in answer["functions"].as_array().into_iter().flatten() {
        println!("  {}", describe_app_function(f));
    }
    // Topics after the functions and queues their subscriptions name.
    for topic in &manifest.topics {
        put_topic(client, topic).await.map_err(|e| {
            e.context(format!(
                "creating topic `{}` failed (the functions, queues, buckets and stores are deployed)",
                topic.name
            ))
        })?;
    }
    for alarm in &manifest.alarms {
        put_alarm(client, alarm).await.map_err(|e| {
            e.context(format!(
                "saving alarm `{}` failed (the functions, queues, topics, buckets and stores are deployed)",
                alarm.name
            ))
        })?;
    }
    let removed: Vec<&str> = answer["removed"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if prune {
        for name in &removed {
            println!("  {:<10} {name}", "deleted");
        }
    } else if !removed.is_empty() {
        println!(
            "Still deployed but no longer in wisp.toml: {} (delete with `wisp deploy --prune`, or `wisp rm {}`)",
            removed.join(", "),
            removed.join(" ")
        );
    }
    Ok(())
}

/// `PUT /v1/topics/{topic}`, then `POST` each subscription it declares: the server
/// answers an existing subscription (same endpoint and filter) unchanged, and refuses
/// one whose filter differs. Nothing is ever deleted here.
async fn put_topic(client: &Client, topic: &TopicManifest) -> anyhow::Result<()> {
    let (_, answer) = client
        .json(client.request(Method::PUT, &format!("/v1/topics/{}", topic.name)))
        .await?;
    println!("  {}", super::topic::describe_put(&answer));
    for subscription in &topic.subscriptions {
        let request = client
            .request(Method::POST, &format!("/v1/topics/{}/subscriptions", topic.name))
            .json(subscription);
        let (status, answer) = client.json(request).await?;
        let text = if status == reqwest::StatusCode::CREATED {
            "created"
        } else {
            "unchanged"
        };
        println!("  {text:<10} {}", super::topic::describe_subscription(&answer));
    }
    Ok(())
}

/// `PUT /v1/alarms/{alarm}` with its rule: the server answers `created`, `updated` or
/// `unchanged` (the same rule). An alarm the manifest no longer has is left as it is.
async fn put_alarm(client: &Client, alarm: &AlarmManifest) -> anyhow::Result<()> {
    let request = client
        .request(Method::PUT, &format!("/v1/alarms/{}", alarm.name))
        .json(&alarm.spec);
    let (_, answer) = client.json(request).await?;
    println!("  {}", super::alarms::describe_put(&answer));
    Ok(())
}

/// `PUT /v1/buckets/{bucket}`: true when the bucket was created, false when it
/// exists already (as it is: its quota is not changed).
async fn put_bucket(client: &Client, bucket: &BucketManifest) -> anyhow::Result<bool> {
    let mut request = client.request(Method::PUT, &format!("/v1/buckets/{}", bucket.name));
    if let Some(quota) = bucket.quota_bytes {
        request = request.json(&serde_json::json!({ "quota_bytes": quota }));
    }
    let response = client.send(request).await?;
    if response.status.is_success() {
        return Ok(true);
    }
    let exists = response.status == reqwest::StatusCode::CONFLICT
        && serde_json::from_slice::<Value>(&response.body)
            .is_ok_and(|p| p["code"] == ErrorCode::BucketExists.as_str());
    if exists {
        return Ok(false);
    }
    Err(client.problem(&response).into())
}

/// `PUT /v1/kv/{store}`: true when the store was created, false when it exists
/// already (as it is, with its keys).
async fn put_kv_store(client: &Client, store: &KvStoreManifest) -> anyhow::Result<bool> {
    let request = client.request(Method::PUT, &format!("/v1/kv/{}", store.name));
    let response = client.send(request).await?;
    if response.status.is_success() {
        return Ok(true);
    }
    let exists = response.status == reqwest::StatusCode::CONFLICT
        && serde_json::from_slice::<Value>(&response.body)
            .is_ok_and(|p| p["code"] == ErrorCode::KvStoreExists.as_str());
    if exists {
        return Ok(false);
    }
    Err(client.problem(&response).into())
}

/// `PUT /v1/apps/{app}` with the manifest's functions, reading their sources.
async fn put_app(
    client: &Client,
    manifest: &Manifest,
    prune: bool,
    dry_run: bool,
) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    let mut sources = Vec::with_capacity(manifest.functions.len());
    for function in &manifest.functions {
        sources.push(read_source(function)?);
    }
    put_app_with(client, manifest, sources, prune, dry_run).await
}

/// `PUT /v1/apps/{app}`: one `manifest` part naming each function's code by its
/// SHA-256, and one `code` part per distinct code (an app of many functions sharing
/// one `.wasm` uploads it once).
async fn put_app_with(
    client: &Client,
    manifest: &Manifest,
    sources: Vec<Vec<u8>>,
    prune: bool,
    dry_run: bool,
) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    use sha2::Digest;
    let mut entries = Vec::with_capacity(sources.len());
    let mut codes: Vec<(String, Vec<u8>, bool)> = Vec::new();
    for (function, code) in manifest.functions.iter().zip(sources) {
        let hash = hex::encode(sha2::Sha256::digest(&code));
        entries.push(serde_json::json!({
            "name": function.name.as_str(),
            "config": function.config,
            "code": hash,
        }));
        if !codes.iter().any(|(h, _, _)| *h == hash) {
            codes.push((hash, code, function.config.runtime.is_process()));
        }
    }
    let body = serde_json::json!({ "functions": entries, "prune": prune, "dry_run": dry_run });
    let mut form = Form::new().part(
        "manifest",
        Part::bytes(serde_json::to_vec(&body).context("cannot encode the app")?)
            .mime_str("application/json")?,
    );
    for (hash, code, zip) in codes {
        let (ext, mime) = if zip {
            ("zip", "application/zip")
        } else {
            ("wasm", "application/wasm")
        };
        form = form.part(
            "code",
            Part::bytes(code)
                .file_name(format!("{hash}.{ext}"))
                .mime_str(mime)?,
        );
    }
    let request = client
        .request(Method::PUT, &format!("/v1/apps/{}", manifest.app))
        .multipart(form);
    client.json(request).await
}

/// `published  hello   v3   /hello, GET /greet/:name`
fn describe_app_function(f: &Value) -> String {
    let status = f["status"].as_str().unwrap_or("deployed");
    let name = f["name"].as_str().unwrap_or("?");
    let version = format!("v{}", f["version"]);
    format!(
        "{status:<10} {name:<20} {version:<5}  {}",
        routes_text(&f["routes"])
    )
}

/// What a failed deploy had done before it failed.
fn so_far(done: &[String]) -> String {
    if done.is_empty() {
        "nothing was deployed".to_string()
    } else {
        format!("already deployed: {}", done.join(", "))
    }
}

/// The manifest's queues in an order the server accepts: a queue whose
/// `dead_letter_queue` is another queue of the manifest comes after it; otherwise
/// the file's order. (A cycle of dead-letter queues keeps the file's order, and the
/// server says what is wrong.)
fn queue_order(queues: &[QueueManifest]) -> Vec<&QueueManifest> {
    let mut placed: Vec<&QueueManifest> = Vec::with_capacity(queues.len());
    let mut left: Vec<&QueueManifest> = queues.iter().collect();
    while !left.is_empty() {
        let ready = |q: &&QueueManifest| match &q.config.dead_letter_queue {
            None => true,
            Some(dlq) => {
                placed.iter().any(|p| &p.name == dlq) || !queues.iter().any(|other| &other.name == dlq)
            }
        };
        let (now, later): (Vec<_>, Vec<_>) = left.iter().partition(|q| ready(q));
        if now.is_empty() {
            placed.extend(later);
            break;
        }
        placed.extend(now);
        left = later;
    }
    placed
}

/// The code to upload for `function`: a `.wasm` file as it is; for process
/// runtimes a `.zip` as it is, or a directory zipped (deterministically, so an
/// unchanged directory deploys as `unchanged`).
fn read_source(function: &FunctionManifest) -> anyhow::Result<Vec<u8>> {
    let source = &function.source;
    let fail = |e: String| -> anyhow::Error {
        CliError::new(
            Exit::Usage,
            format!(
                "cannot read `{}`, the source of function `{}`: {e}",
                source.display(),
                function.name
            ),
        )
        .hint("build the function first, or fix `source` in wisp.toml (paths are relative to it)")
        .into()
    };
    if function.config.runtime.is_process() && source.is_dir() {
        return wisp_package::pack_dir(source, &wisp_package::UnpackLimits::default())
            .map_err(|e| fail(e.to_string()));
    }
    std::fs::read(source).map_err(|e| fail(e.to_string()))
}

/// Where `live` points: `7`, or `7 + 8 at 10%` when it splits traffic; `(disabled)`
/// after it when the function is.
pub fn live_text(function: &Value) -> String {
    let mut text = super::versions::target_text(&function["aliases"]["live"]);
    if function["disabled"] == Value::Bool(true) {
        text.push_str(" (disabled)");
    }
    text
}

/// Routes as `GET,POST /path`, comma-separated; `-` when there are none.
pub fn routes_text(routes: &Value) -> String {
    let Some(routes) = routes.as_array().filter(|r| !r.is_empty()) else {
        return "-".to_string();
    };
    routes
        .iter()
        .map(|r| {
            let path = r["path"].as_str().unwrap_or("?");
            match r["methods"].as_array() {
                Some(methods) if !methods.is_empty() => {
                    let m: Vec<&str> = methods.iter().filter_map(Value::as_str).collect();
                    format!("{} {path}", m.join(","))
                }
                _ => path.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_core::{QueueConfig, QueueName};

    fn queue(name: &str, dlq: Option<&str>) -> QueueManifest {
        QueueManifest {
            name: QueueName::new(name).unwrap(),
            config: QueueConfig {
                max_receive_count: dlq.map(|_| 3),
                dead_letter_queue: dlq.map(|d| QueueName::new(d).unwrap()),
                ..QueueConfig::default()
            },
        }
    }

    fn names(queues: &[QueueManifest]) -> Vec<&str> {
        queue_order(queues).iter().map(|q| q.name.as_str()).collect()
    }

    #[test]
    fn dead_letter_queues_are_created_first() {
        let queues = [
            queue("orders", Some("orders-dlq")),
            queue("retry", Some("orders")),
            queue("orders-dlq", None),
            queue("elsewhere", Some("made-by-hand")),
        ];
        assert_eq!(names(&queues), ["orders-dlq", "elsewhere", "orders", "retry"]);
        let cycle = [queue("a", Some("b")), queue("b", Some("a")), queue("c", None)];
        assert_eq!(names(&cycle), ["c", "a", "b"]);
    }
}
