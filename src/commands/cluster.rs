//! `wisp cluster`: the nodes serving the store (`GET /v1/cluster`, admin keys).

use crate::client::{Client, ServerArg};
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::NOTHING};
use reqwest::Method;
use serde_json::Value;
use wisp_core::wall::{now_ms, rfc3339_ms};

/// The nodes serving the store (one, with SQLite; every node sharing NATS with a NATS store).
#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// List the nodes seen in the last day: whether each is up (a heartbeat in the last
    /// 10 s), its address, version, load and when it started; and how schedules fire
    /// (no leader: every node up, each slot once).
    Status {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let ClusterCommand::Status { json, server } = args.command;
    let client = Client::new(&server)?;
    let (_, answer) = client.json(client.request(Method::GET, "/v1/cluster")).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let nodes = answer["nodes"].as_array().cloned().unwrap_or_default();
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.set_header([
        "NODE",
        "STATE",
        "URL",
        "VERSION",
        "IN FLIGHT",
        "FUNCTIONS",
        "WARM",
        "STARTED",
        "LAST SEEN",
    ]);
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let number = |v: &Value| v.as_u64().map_or_else(|| "-".to_owned(), |n| n.to_string());
    let time = |v: &Value| v.as_i64().map_or_else(|| "-".to_owned(), rfc3339_ms);
    let now = now_ms();
    for node in &nodes {
        let mut name = text(&node["name"]);
        if node["this"].as_bool() == Some(true) {
            name.push_str(" (this)");
        }
        let state = if node["up"].as_bool() == Some(true) {
            "up"
        } else {
            "gone"
        };
        let seen = node["seen_ms"].as_i64().map_or_else(
            || "-".to_owned(),
            |ms| format!("{}s ago", (now - ms).max(0) / 1000),
        );
        table.add_row([
            name,
            state.to_owned(),
            text(&node["url"]),
            text(&node["version"]),
            number(&node["load"]["in_flight"]),
            number(&node["load"]["functions"]),
            number(&node["load"]["warm_instances"]),
            time(&node["started_ms"]),
            seen,
        ]);
    }
    println!("{}", table.trim_fmt());
    let up = nodes.iter().filter(|n| n["up"].as_bool() == Some(true)).count();
    println!("{up} of {} nodes up", nodes.len());
    // The "schedule leader": there is none to show, by design (docs/cluster.md).
    println!("schedules: no leader; every node up fires each slot once, by compare-and-set");
    Ok(())
}
