//! `wisp invoke`: run a function once and print its result, or (`--async`) queue
//! an async invocation and print its id.

use super::function_name;
use crate::client::{Client, ServerArg};
use crate::exit::{CliError, Exit};
use clap::Args;
use reqwest::Method;
use std::io::Write;

/// Invoke a function and print what it returns; with --async, queue the invocation
/// and print its id.
#[derive(Args, Debug)]
pub struct InvokeArgs {
    /// The function's name, optionally with a version or alias: NAME, NAME:7,
    /// NAME:beta.
    pub name: String,
    /// The payload: inline JSON, or @FILE to send a file's bytes as they are.
    #[arg(long, short = 'd', value_name = "JSON|@FILE")]
    pub data: Option<String>,
    /// Do not wait for the function: queue the invocation (retried on failure) and
    /// print its id; follow it with `wisp dlq show ID`.
    #[arg(long = "async")]
    pub is_async: bool,
    /// With --async: a key that makes a repeated invoke (within 24h) return the first
    /// one's id instead of running again.
    #[arg(long, value_name = "KEY", requires = "is_async")]
    pub idempotency_key: Option<String>,
    #[command(flatten)]
    pub server: ServerArg,
}

fn payload(data: Option<&str>) -> anyhow::Result<Vec<u8>> {
    match data {
        None => Ok(b"{}".to_vec()),
        Some(text) => match text.strip_prefix('@') {
            Some(path) => std::fs::read(path).map_err(|e| {
                CliError::new(Exit::Usage, format!("cannot read `{path}` for --data: {e}")).into()
            }),
            None => {
                serde_json::from_str::<serde_json::Value>(text).map_err(|e| {
                    CliError::new(Exit::Usage, format!("--data is not valid JSON: {e}"))
                        .hint("quote the JSON for your shell, e.g. --data '{\"name\":\"Ada\"}', or send a file with --data @file")
                })?;
                Ok(text.as_bytes().to_vec())
            }
        },
    }
}

pub async fn run(args: InvokeArgs) -> anyhow::Result<()> {
    let (name, qualifier) = match args.name.split_once(':') {
        Some((name, qualifier)) => (function_name(name)?, Some(qualifier)),
        None => (function_name(&args.name)?, None),
    };
    if let Some(qualifier) = qualifier
        && let Err(e) = qualifier.parse::<wisp_core::Qualifier>()
    {
        return Err(CliError::new(Exit::Usage, format!("`{}`: {e}", args.name)).into());
    }
    let name = match qualifier {
        Some(qualifier) => format!("{name}:{qualifier}"),
        None => name.to_string(),
    };
    let body = payload(args.data.as_deref())?;
    let client = Client::new(&args.server)?;
    let mut request = client
        .request(Method::POST, &format!("/v1/functions/{name}/invoke"))
        .header("content-type", "application/json")
        .body(body);
    if args.is_async {
        request = request.header("x-wisp-invocation-type", "event");
        if let Some(key) = &args.idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let (_, answer) = client.json(request).await?;
        println!("{}", answer["id"].as_str().unwrap_or_default());
        if answer["duplicate"] == serde_json::Value::Bool(true) {
            eprintln!(
                "note: an earlier invoke had the same idempotency key; this is its id and nothing new runs"
            );
        }
        return Ok(());
    }
    let response = client.send(request).await?;
    let is_problem = response
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/problem+json"));
    if is_problem {
        return Err(client.problem(&response).into());
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&response.body)?;
    if !response.body.ends_with(b"\n") && !response.body.is_empty() {
        stdout.write_all(b"\n")?;
    }
    if !response.status.is_success() {
        return Err(CliError::new(
            Exit::FunctionFailed,
            format!("the function answered HTTP {}", response.status.as_u16()),
        )
        .into());
    }
    Ok(())
}
