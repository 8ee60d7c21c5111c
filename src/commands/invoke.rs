//! `wisp invoke`: run a function once and print its result.

use super::function_name;
use crate::client::{Client, ServerArg, problem_error};
use crate::exit::{CliError, Exit};
use clap::Args;
use reqwest::Method;
use std::io::Write;

/// Invoke a function synchronously and print what it returns.
#[derive(Args, Debug)]
pub struct InvokeArgs {
    /// The function's name.
    pub name: String,
    /// The payload: inline JSON, or @FILE to send a file's bytes as they are.
    #[arg(long, short = 'd', value_name = "JSON|@FILE")]
    pub data: Option<String>,
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
    let name = function_name(&args.name)?;
    let body = payload(args.data.as_deref())?;
    let client = Client::new(&args.server)?;
    let request = client
        .request(Method::POST, &format!("/v1/functions/{name}/invoke"))
        .header("content-type", "application/json")
        .body(body);
    let response = client.send(request).await?;
    let is_problem = response
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/problem+json"));
    if is_problem {
        return Err(problem_error(&response).into());
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
