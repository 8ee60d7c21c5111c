//! `wisp audit`: the audit trail — who changed what, when, from where.

use crate::client::{Client, ServerArg};
use clap::Args;
use comfy_table::{Table, presets::NOTHING};
use reqwest::Method;
use serde_json::Value;

/// Show the audit trail, newest first: of --namespace, or (with an admin key) of every
/// namespace.
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// How many entries (1 to 1000).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    let request = client
        .request(Method::GET, "/v1/audit")
        .query(&[("limit", args.limit.to_string())]);
    let (_, answer) = client.json(request).await?;
    let entries = answer["entries"].as_array().cloned().unwrap_or_default();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&Value::Array(entries))?);
        return Ok(());
    }
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.set_header(["AT", "NAMESPACE", "KEY", "ACTION", "TARGET", "FROM", "DETAIL"]);
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    for e in &entries {
        table.add_row([
            text(&e["at"]),
            text(&e["namespace"]),
            text(&e["key_id"]),
            text(&e["action"]),
            text(&e["target"]),
            text(&e["source"]),
            text(&e["detail"]),
        ]);
    }
    println!("{}", table.trim_fmt());
    Ok(())
}
