//! `wisp invocations`: a function's recent invocations, cold or warm, with their times.

use super::function_name;
use crate::client::{Client, ServerArg};
use clap::Args;
use comfy_table::{Table, presets::NOTHING};
use reqwest::Method;
use serde_json::Value;

/// Print a function's recent invocations: cold or warm, init, queue and run time, and
/// how each ended; then the totals over those the server keeps.
#[derive(Args, Debug)]
pub struct InvocationsArgs {
    /// The function's name.
    pub name: String,
    /// Only cold starts.
    #[arg(long)]
    pub cold: bool,
    /// At most this many of the newest.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub async fn run(args: InvocationsArgs) -> anyhow::Result<()> {
    let name = function_name(&args.name)?;
    let client = Client::new(&args.server)?;
    let request = client
        .request(Method::GET, &format!("/v1/functions/{name}/invocations"))
        .query(&[("limit", args.limit.to_string()), ("cold", args.cold.to_string())]);
    let (_, answer) = client.json(request).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.set_header(["STARTED", "INVOCATION", "START", "INIT", "QUEUE", "RUN", "ERROR"]);
    for i in answer["invocations"].as_array().into_iter().flatten() {
        table.add_row([
            i["started_at"].as_str().unwrap_or("").to_string(),
            i["id"].as_str().unwrap_or("").to_string(),
            if i["cold"] == Value::Bool(true) {
                "cold"
            } else {
                "warm"
            }
            .to_string(),
            millis(&i["init_us"]),
            millis(&i["queue_us"]),
            millis(&i["run_us"]),
            i["error"].as_str().unwrap_or("").to_string(),
        ]);
    }
    println!("{}", table.trim_fmt());
    let s = &answer["summary"];
    println!(
        "{} invocations kept: {} cold starts (init p50 {}, p99 {}), {} errors",
        s["invocations"],
        s["cold_starts"],
        millis(&s["init_p50_us"]),
        millis(&s["init_p99_us"]),
        s["errors"]
    );
    Ok(())
}

/// Microseconds as milliseconds, `-` when absent.
fn millis(us: &Value) -> String {
    us.as_u64()
        .map_or_else(|| "-".to_string(), |us| format!("{:.2} ms", us as f64 / 1000.0))
}
