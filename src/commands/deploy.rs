//! `wisp deploy`: create or update the queues of the app in a `wisp.toml`, then
//! deploy its functions (whose triggers and destinations may name those queues).

use crate::client::{Client, ServerArg};
use crate::exit::{CliError, Exit};
use anyhow::Context;
use clap::Args;
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use std::path::PathBuf;
use wisp_manifest::{FunctionManifest, Manifest, QueueManifest};

/// Deploy an app (its wisp.toml): its queues, then its functions; say what changed.
#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The app's directory, or its wisp.toml.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    #[command(flatten)]
    pub server: ServerArg,
}

pub async fn run(args: DeployArgs) -> anyhow::Result<()> {
    let manifest = load_manifest(&args.path)?;
    let client = Client::new(&args.server)?;
    deploy_app(&client, &manifest).await
}

/// Loads a manifest, turning its error into a usage error that shows the location.
pub fn load_manifest(path: &std::path::Path) -> anyhow::Result<Manifest> {
    wisp_manifest::load(path).map_err(|e| {
        CliError::new(Exit::Usage, e.to_string())
            .hint("see docs/manifest.md for the keys of wisp.toml")
            .into()
    })
}

/// Deploys `manifest`: its queues (each dead-letter queue before the queues that
/// use it), then every function, printing one line per queue and function.
pub async fn deploy_app(client: &Client, manifest: &Manifest) -> anyhow::Result<()> {
    println!("Deploying app `{}` to {}", manifest.app, client.base());
    // Read every source first: a missing build fails before anything changes.
    let mut sources = Vec::with_capacity(manifest.functions.len());
    for function in &manifest.functions {
        sources.push(read_source(function)?);
    }
    let mut done: Vec<String> = Vec::new();
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
    for (function, code) in manifest.functions.iter().zip(sources) {
        let config = serde_json::to_vec(&function.config).context("cannot encode the configuration")?;
        let (file_name, mime) = if function.config.runtime.is_process() {
            ("code.zip", "application/zip")
        } else {
            ("code.wasm", "application/wasm")
        };
        let form = Form::new()
            .part("config", Part::bytes(config).mime_str("application/json")?)
            .part("code", Part::bytes(code).file_name(file_name).mime_str(mime)?)
            .text("app", manifest.app.clone());
        let request = client
            .request(Method::PUT, &format!("/v1/functions/{}", function.name))
            .multipart(form);
        let (_, answer) = client.json(request).await.map_err(|e| {
            e.context(format!(
                "deploying `{}` failed ({})",
                function.name,
                so_far(&done)
            ))
        })?;
        println!("  {}", describe(&answer));
        done.push(function.name.to_string());
    }
    report_strays(client, manifest).await;
    Ok(())
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

/// `published  hello   v3   /hello, GET /greet/:name`
pub fn describe(answer: &Value) -> String {
    let status = answer["status"].as_str().unwrap_or("deployed");
    let function = &answer["function"];
    let name = function["name"].as_str().unwrap_or("?");
    let version = format!("v{}", answer["version"]);
    format!(
        "{status:<10} {name:<20} {version:<5}  {}",
        routes_text(&function["config"]["routes"])
    )
}

/// Where `live` points: `7`, or `7 + 8 at 10%` when it splits traffic; `(disabled)`
/// after it when the function is.
pub fn live_text(function: &Value) -> String {
    let live = &function["aliases"]["live"];
    let mut text = live["version"].to_string();
    if let Some(additional) = live["additional"].as_object() {
        let weight = additional["weight"].as_f64().unwrap_or(0.0) * 100.0;
        text.push_str(&format!(" + {} at {weight}%", additional["version"]));
    }
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

/// Mentions functions deployed earlier from this app that its manifest no longer has.
async fn report_strays(client: &Client, manifest: &Manifest) {
    let Ok((_, list)) = client.json(client.request(Method::GET, "/v1/functions")).await else {
        return;
    };
    let strays: Vec<&str> = list["functions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["app"].as_str() == Some(manifest.app.as_str()))
        .filter_map(|f| f["name"].as_str())
        .filter(|name| !manifest.functions.iter().any(|f| f.name.as_str() == *name))
        .collect();
    if !strays.is_empty() {
        println!(
            "Still deployed but no longer in wisp.toml: {} (remove with `wisp rm {}`)",
            strays.join(", "),
            strays.join(" ")
        );
    }
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
