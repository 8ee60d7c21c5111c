//! `wisp deploy`: deploy every function of the app in a `wisp.toml`.

use crate::client::{Client, ServerArg};
use crate::exit::{CliError, Exit};
use anyhow::Context;
use clap::Args;
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use std::path::PathBuf;
use wisp_manifest::{FunctionManifest, Manifest};

/// Deploy the functions of an app (its wisp.toml) and say what changed.
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

/// Deploys every function of `manifest`, printing one line per function.
pub async fn deploy_app(client: &Client, manifest: &Manifest) -> anyhow::Result<()> {
    println!("Deploying app `{}` to {}", manifest.app, client.base());
    // Read every source first: a missing build fails before anything changes.
    let mut sources = Vec::with_capacity(manifest.functions.len());
    for function in &manifest.functions {
        sources.push(read_source(function)?);
    }
    let mut done: Vec<String> = Vec::new();
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
            let deployed = if done.is_empty() {
                "nothing was deployed".to_string()
            } else {
                format!("already deployed: {}", done.join(", "))
            };
            e.context(format!("deploying `{}` failed ({deployed})", function.name))
        })?;
        println!("  {}", describe(&answer));
        done.push(function.name.to_string());
    }
    report_strays(client, manifest).await;
    Ok(())
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

/// `created    hello   3fa2c1d9e0b1   /hello, GET /greet/:name`
pub fn describe(answer: &Value) -> String {
    let status = answer["status"].as_str().unwrap_or("deployed");
    let function = &answer["function"];
    let name = function["name"].as_str().unwrap_or("?");
    let version = function["version"].as_str().unwrap_or("");
    format!(
        "{status:<10} {name:<20} {:<12}  {}",
        &version[..version.len().min(12)],
        routes_text(&function["config"]["routes"])
    )
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
