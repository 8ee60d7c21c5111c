//! `wisp secret`: the namespace's secrets — set one (from stdin by default), list their
//! names, remove one. No command prints a value: the server has no way to read one
//! back.

use crate::client::{Client, ServerArg};
use crate::exit::{CliError, Exit};
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::NOTHING};
use reqwest::Method;
use serde_json::Value;
use std::io::Read;
use wisp_core::{Limits, SecretName};

/// Manage secrets: values a function's `env` refers to (`DB_PASSWORD = { secret = "db" }`),
/// stored encrypted, never shown again.
#[derive(Args, Debug)]
pub struct SecretArgs {
    #[command(subcommand)]
    pub command: SecretCommand,
}

#[derive(Subcommand, Debug)]
pub enum SecretCommand {
    /// Set a secret's value, creating it or replacing its value. New instances of the
    /// functions that refer to it get the new value; no deploy is needed.
    ///
    /// Leave VALUE out and pipe the value in, so it stays out of your shell history:
    /// `wisp secret set db < password.txt`, or type it and end with Ctrl-D. One final
    /// newline of what is read from stdin is dropped.
    Set {
        /// The secret's name (lowercase letters, digits and '-').
        name: String,
        /// The value. Prefer stdin: a value given here is kept in your shell history.
        value: Option<String>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List the secrets' names, with when each was created and last set (never values).
    Ls {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Delete secrets. Functions that refer to one fail to start new instances until it
    /// is set again.
    Rm {
        /// The secrets to delete.
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        server: ServerArg,
    },
}

/// A secret name from the command line, checked before any request is made.
fn secret_name(name: &str) -> anyhow::Result<SecretName> {
    SecretName::new(name).map_err(|e| CliError::new(Exit::Usage, e.to_string()).into())
}

/// Reads the value from stdin, dropping one final newline (`echo` adds one).
fn value_from_stdin() -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    // One byte past the limit is enough to know it is too large.
    std::io::stdin()
        .take(Limits::MAX_SECRET_VALUE_BYTES as u64 + 3)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::new(Exit::Usage, format!("cannot read the value from stdin: {e}")))?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    String::from_utf8(bytes).map_err(|_| {
        CliError::new(Exit::Usage, "the value read from stdin is not UTF-8 text")
            .hint("a secret is an environment variable's value: encode binary data, e.g. with base64")
            .into()
    })
}

pub async fn run(args: SecretArgs) -> anyhow::Result<()> {
    match args.command {
        SecretCommand::Set { name, value, server } => {
            let name = secret_name(&name)?;
            let value = match value {
                Some(value) => value,
                None => value_from_stdin()?,
            };
            if value.len() > Limits::MAX_SECRET_VALUE_BYTES {
                return Err(CliError::new(
                    Exit::Usage,
                    format!(
                        "the value is {} bytes; a secret holds at most {} bytes",
                        value.len(),
                        Limits::MAX_SECRET_VALUE_BYTES
                    ),
                )
                .into());
            }
            let client = Client::new(&server)?;
            let request = client
                .request(Method::PUT, &format!("/v1/secrets/{name}"))
                .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(value);
            let (_, answer) = client.json(request).await?;
            let status = answer["status"].as_str().unwrap_or("set");
            println!("{status} secret {name}");
            Ok(())
        }
        SecretCommand::Ls { json, server } => ls(&server, json).await,
        SecretCommand::Rm { names, server } => {
            let names = names
                .iter()
                .map(|n| secret_name(n))
                .collect::<anyhow::Result<Vec<_>>>()?;
            Client::new(&server)?
                .remove_each("/v1/secrets", "secret", &names)
                .await
        }
    }
}

async fn ls(server: &ServerArg, json: bool) -> anyhow::Result<()> {
    let client = Client::new(server)?;
    let (_, answer) = client.json(client.request(Method::GET, "/v1/secrets")).await?;
    let secrets = answer["secrets"].as_array().cloned().unwrap_or_default();
    if json {
        println!("{}", serde_json::to_string_pretty(&Value::Array(secrets))?);
        return Ok(());
    }
    if secrets.is_empty() {
        eprintln!("No secrets. Set one with `wisp secret set NAME` (the value read from stdin).");
        return Ok(());
    }
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.set_header(["NAME", "CREATED", "UPDATED"]);
    for s in &secrets {
        let text = |key: &str| s[key].as_str().unwrap_or("?").to_string();
        table.add_row([text("name"), text("created_at"), text("updated_at")]);
    }
    println!("{}", table.trim_fmt());
    Ok(())
}
