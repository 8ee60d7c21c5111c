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
    /// Change a namespace's settings: its concurrency cap, monthly quota and budget,
    /// free tier and prices. Settings not given stay as they are.
    Set {
        name: String,
        #[command(flatten)]
        settings: Box<SettingArgs>,
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

/// `wisp ns set`'s settings; `none` removes a limit, `default` gives back the server's.
#[derive(Args, Debug)]
pub struct SettingArgs {
    /// Its cap on concurrent invocations; `default` for the server's.
    #[arg(long, value_name = "N|default")]
    max_concurrency: Option<String>,
    /// Invocations it may start per calendar month (UTC); `none` for no limit.
    #[arg(long, value_name = "N|none")]
    quota_requests: Option<String>,
    /// GB-seconds it may use per month; `none` for no limit.
    #[arg(long, value_name = "N|none")]
    quota_gb_seconds: Option<String>,
    /// Dollars it may spend per month past its free tier; `none` for no budget.
    #[arg(long, value_name = "DOLLARS|none")]
    budget: Option<String>,
    /// Bytes its buckets may hold together (`10GiB`); `none` for the server's
    /// --namespace-storage-quota.
    #[arg(long, value_name = "BYTES|none")]
    quota_storage: Option<String>,
    /// Record a warning when usage passes this percent of a limit; `none` for none.
    #[arg(long, value_name = "PERCENT|none")]
    warn_percent: Option<String>,
    /// Free requests per month; `default` for the server's.
    #[arg(long, value_name = "N|default")]
    free_requests: Option<String>,
    /// Free GB-seconds per month; `default` for the server's.
    #[arg(long, value_name = "N|default")]
    free_gb_seconds: Option<String>,
    /// Its price per million requests; `default` for the server's.
    #[arg(long, value_name = "DOLLARS|default")]
    price_per_million_requests: Option<String>,
    /// Its price per GB-second; `default` for the server's.
    #[arg(long, value_name = "DOLLARS|default")]
    price_per_gb_second: Option<String>,
}

impl SettingArgs {
    /// The settings as a JSON merge patch; a usage error when none is given or a number
    /// does not read (amounts of dollars are the server's to check).
    fn patch(&self) -> anyhow::Result<Value> {
        fn number(flag: &str, text: &str, unset: &str) -> anyhow::Result<Value> {
            if text == unset {
                return Ok(Value::Null);
            }
            text.parse::<u64>().map(Value::from).map_err(|_| {
                CliError::new(
                    Exit::Usage,
                    format!("--{flag}: `{text}` is not a whole number (or `{unset}`)"),
                )
                .into()
            })
        }
        fn dollars(text: &str, unset: &str) -> Value {
            if text == unset {
                Value::Null
            } else {
                Value::from(text)
            }
        }
        let mut patch = Map::new();
        let given = [
            (
                &self.max_concurrency,
                ["", "max_concurrency"],
                "max-concurrency",
                "default",
                true,
            ),
            (
                &self.quota_requests,
                ["quota", "requests"],
                "quota-requests",
                "none",
                true,
            ),
            (
                &self.quota_gb_seconds,
                ["quota", "gb_seconds"],
                "quota-gb-seconds",
                "none",
                true,
            ),
            (&self.budget, ["quota", "budget"], "budget", "none", false),
            (
                &self.warn_percent,
                ["quota", "warn_percent"],
                "warn-percent",
                "none",
                true,
            ),
            (
                &self.free_requests,
                ["free_tier", "requests"],
                "free-requests",
                "default",
                true,
            ),
            (
                &self.free_gb_seconds,
                ["free_tier", "gb_seconds"],
                "free-gb-seconds",
                "default",
                true,
            ),
            (
                &self.price_per_million_requests,
                ["prices", "per_million_requests"],
                "price-per-million-requests",
                "default",
                false,
            ),
            (
                &self.price_per_gb_second,
                ["prices", "per_gb_second"],
                "price-per-gb-second",
                "default",
                false,
            ),
        ];
        let mut any = false;
        for (value, path, flag, unset, whole) in given {
            let Some(text) = value else { continue };
            any = true;
            let value = if whole {
                number(flag, text, unset)?
            } else {
                dollars(text, unset)
            };
            if path[0].is_empty() {
                patch.insert(path[1].to_owned(), value);
            } else if let Some(group) = patch.entry(path[0]).or_insert_with(|| json!({})).as_object_mut() {
                group.insert(path[1].to_owned(), value);
            }
        }
        if let Some(text) = &self.quota_storage {
            any = true;
            let value = if text == "none" {
                Value::Null
            } else {
                wisp_core::size_text::parse(text)
                    .map(Value::from)
                    .map_err(|e| CliError::new(Exit::Usage, format!("--quota-storage: {e} (or `none`)")))?
            };
            if let Some(group) = patch.entry("quota").or_insert_with(|| json!({})).as_object_mut() {
                group.insert("storage_bytes".to_owned(), value);
            }
        }
        if !any {
            return Err(CliError::new(
                Exit::Usage,
                "give at least one setting to change (see `wisp ns set --help`)",
            )
            .into());
        }
        Ok(Value::Object(patch))
    }
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

/// The month's usage and what stops work, in a line.
fn describe_month(ns: &Value) -> String {
    let month = &ns["month"];
    let stopped = match month["stopped_by"].as_str() {
        Some(limit) => format!("; STOPPED: its monthly {limit} limit is reached"),
        None => String::new(),
    };
    format!(
        "this month: {} requests, {} GB-s, ${} past the free tier{stopped}",
        month["requests"],
        month["gb_seconds"].as_str().unwrap_or("?"),
        month["cost"].as_str().unwrap_or("?"),
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
            settings,
            server,
        } => {
            check(&name)?;
            let patch = settings.patch()?;
            let client = Client::new(&server)?;
            let (_, ns) = client
                .json(
                    client
                        .request(Method::PATCH, &format!("/v1/namespaces/{name}"))
                        .json(&patch),
                )
                .await?;
            println!("updated   namespace {}", describe(&ns));
            println!("          {}", describe_month(&ns));
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
