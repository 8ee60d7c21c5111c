//! `wisp ls`: list deployed functions.

use super::deploy::routes_text;
use crate::client::{Client, ServerArg};
use clap::Args;
use comfy_table::{Table, presets::NOTHING};
use reqwest::Method;
use serde_json::Value;

/// List the deployed functions.
#[derive(Args, Debug)]
pub struct LsArgs {
    /// Print JSON (the API's function objects) instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub async fn run(args: LsArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    let (_, answer) = client.json(client.request(Method::GET, "/v1/functions")).await?;
    let functions = answer["functions"].as_array().cloned().unwrap_or_default();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&Value::Array(functions))?);
        return Ok(());
    }
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.set_header([
        "NAME",
        "KIND",
        "RUNTIME",
        "LIVE",
        "MEMORY",
        "TIMEOUT",
        "ROUTES",
        "INSTANCES",
        "COLD/CALLS",
        "UPDATED",
    ]);
    for f in &functions {
        table.add_row([
            f["name"].as_str().unwrap_or("?").to_string(),
            f["kind"].as_str().unwrap_or("?").to_string(),
            runtime_text(&f["config"]),
            super::deploy::live_text(f),
            format!("{} MB", f["config"]["memory_mb"]),
            f["config"]["timeout"].as_str().unwrap_or("?").to_string(),
            routes_text(&f["config"]["routes"]),
            instances_text(f),
            format!("{}/{}", f["cold_starts"], f["invocations"]),
            f["updated_at"].as_str().unwrap_or("").to_string(),
        ]);
    }
    if functions.is_empty() {
        eprintln!("No functions deployed. Deploy an app with `wisp deploy DIR`.");
    }
    // Only worth saying when it applies to something listed.
    if functions.iter().any(|f| f["config"]["runtime"].is_string()) {
        for warning in answer["warnings"].as_array().into_iter().flatten() {
            eprintln!("warning: {}", warning.as_str().unwrap_or_default());
        }
    }
    println!("{}", table.trim_fmt());
    Ok(())
}

/// What is warm: a wasm function's loaded code and running invocations, a process
/// function's instances by state; `-` when the function is scaled to zero.
fn instances_text(f: &Value) -> String {
    let count = |state: &str| f["instances"][state].as_u64().unwrap_or(0);
    let (busy, idle, starting) = (count("busy"), count("idle"), count("starting"));
    if f["loaded"] != Value::Bool(true) && busy + idle + starting == 0 {
        return "-".to_string();
    }
    let mut text = if f["config"]["runtime"].is_string() {
        format!("{busy} busy, {idle} idle")
    } else {
        format!("loaded, {busy} busy")
    };
    if starting > 0 {
        text.push_str(&format!(", {starting} starting"));
    }
    text
}

/// `wasm`, or the native runtime with its handler (`python app.handler`).
fn runtime_text(config: &Value) -> String {
    let runtime = config["runtime"].as_str().unwrap_or("wasm");
    match config["handler"].as_str() {
        Some(handler) => format!("{runtime} {handler}"),
        None => runtime.to_string(),
    }
}
