//! `wisp ns`: namespaces, the tenants (with an admin key) — create, list, show,
//! change settings, remove.

use crate::client::{Client, ServerArg};
use crate::exit::{CliError, Exit};
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::NOTHING};
use reqwest::Method;
use serde_json::{Map, Value, json};
use wisp_core::Namespace;

/// Manage namespaces.
#[derive(Args, Debug)]
pub struct NsArgs {
    #[command(subcommand)]
    pub command: NsCommand,
}

#[derive(Subcommand, Debug)]
pub enum NsCommand {
    /// Create a namespace.
    Create {
        /// Its name (lowercase letters, digits and '-').
        name: String,
        /// Invocations that may run at once across its functions (default: the server's
        /// --namespace-max-concurrency).
        #[arg(long, value_name = "N")]
        max_concurrency: Option<u32>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List the namespaces.
    Ls {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Show a namespace as JSON.
    Show {
        name: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Change a namespace's settings.
    Set {
        name: String,
        /// Its cap on concurrent invocations; `default` for the server's.
        #[arg(long, value_name = "N|default")]
        max_concurrency: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Remove a namespace: refused while it holds functions or queues, unless --force,
    /// which deletes everything in it (functions, queues, keys).
    Rm {
        name: String,
        /// Delete everything the namespace holds with it.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        server: ServerArg,
    },
}

fn check(name: &str) -> anyhow::Result<()> {
    Namespace::new(name)
        .map(drop)
        .map_err(|e| CliError::new(Exit::Usage, e.to_string()).into())
}

fn describe(ns: &Value) -> String {
    format!(
        "{} (max_concurrency {}{}, {} functions)",
        ns["name"].as_str().unwrap_or("?"),
        ns["max_concurrency"],
        if ns["max_concurrency_is_default"] == json!(true) {
            ", the server's default"
        } else {
            ""
        },
        ns["functions"]
    )
}

pub async fn run(args: NsArgs) -> anyhow::Result<()> {
    match args.command {
        NsCommand::Create {
            name,
            max_concurrency,
            server,
        } => {
            check(&name)?;
            let mut body = Map::new();
            body.insert("name".into(), name.into());
            if let Some(n) = max_concurrency {
                body.insert("max_concurrency".into(), n.into());
            }
            let client = Client::new(&server)?;
            let (_, ns) = client
                .json(client.request(Method::POST, "/v1/namespaces").json(&body))
                .await?;
            println!("created   namespace {}", describe(&ns));
            Ok(())
        }
        NsCommand::Ls { json, server } => {
            let client = Client::new(&server)?;
            let (_, answer) = client.json(client.request(Method::GET, "/v1/namespaces")).await?;
            let list = answer["namespaces"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&Value::Array(list))?);
                return Ok(());
            }
            let mut table = Table::new();
            table.load_style(NOTHING);
            table.set_header(["NAME", "FUNCTIONS", "MAX CONCURRENCY", "CREATED"]);
            for ns in &list {
                let cap = if ns["max_concurrency_is_default"] == json!(true) {
                    format!("{} (default)", ns["max_concurrency"])
                } else {
                    ns["max_concurrency"].to_string()
                };
                table.add_row([
                    ns["name"].as_str().unwrap_or("?").to_string(),
                    ns["functions"].to_string(),
                    cap,
                    ns["created_at"].as_str().unwrap_or("?").to_string(),
                ]);
            }
            println!("{}", table.trim_fmt());
            Ok(())
        }
        NsCommand::Show { name, server } => {
            check(&name)?;
            let client = Client::new(&server)?;
            let (_, ns) = client
                .json(client.request(Method::GET, &format!("/v1/namespaces/{name}")))
                .await?;
            println!("{}", serde_json::to_string_pretty(&ns)?);
            Ok(())
        }
        NsCommand::Set {
            name,
            max_concurrency,
            server,
        } => {
            check(&name)?;
            let cap = match max_concurrency.as_str() {
                "default" => Value::Null,
                n => n.parse::<u32>().map(Value::from).map_err(|_| {
                    CliError::new(
                        Exit::Usage,
                        format!("--max-concurrency: `{n}` is not a number (or `default`)"),
                    )
                })?,
            };
            let client = Client::new(&server)?;
            let (_, ns) = client
                .json(
                    client
                        .request(Method::PATCH, &format!("/v1/namespaces/{name}"))
                        .json(&json!({ "max_concurrency": cap })),
                )
                .await?;
            println!("updated   namespace {}", describe(&ns));
            Ok(())
        }
        NsCommand::Rm { name, force, server } => {
            check(&name)?;
            let client = Client::new(&server)?;
            let mut request = client.request(Method::DELETE, &format!("/v1/namespaces/{name}"));
            if force {
                request = request.query(&[("force", "true")]);
            }
            client.json(request).await?;
            println!("removed   namespace {name}");
            Ok(())
        }
    }
}
