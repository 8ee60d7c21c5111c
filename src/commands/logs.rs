//! `wisp logs`: a function's recent log lines.

use super::function_name;
use crate::client::{Client, ServerArg};
use clap::Args;
use reqwest::Method;

/// Print a function's recent log lines (what it wrote to stdout and stderr).
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The function's name.
    pub name: String,
    /// Only the lines of this invocation.
    #[arg(long, value_name = "ID")]
    pub invocation: Option<String>,
    /// At most this many of the newest lines.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[command(flatten)]
    pub server: ServerArg,
}

pub async fn run(args: LogsArgs) -> anyhow::Result<()> {
    let name = function_name(&args.name)?;
    let client = Client::new(&args.server)?;
    let mut request = client
        .request(Method::GET, &format!("/v1/functions/{name}/logs"))
        .query(&[("limit", args.limit.to_string())]);
    if let Some(id) = &args.invocation {
        request = request.query(&[("invocation", id)]);
    }
    let (_, answer) = client.json(request).await?;
    for line in answer["lines"].as_array().into_iter().flatten() {
        println!(
            "{} {} {:<6} {}",
            line["time"].as_str().unwrap_or(""),
            line["invocation_id"].as_str().unwrap_or(""),
            line["stream"].as_str().unwrap_or(""),
            line["line"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
