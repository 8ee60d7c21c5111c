//! `wisp keys`: API keys (with an admin key) — create one (its secret is printed
//! once), list them, revoke one.

use crate::client::{Client, ServerArg};
use crate::exit::{CliError, Exit};
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::NOTHING};
use reqwest::Method;
use serde_json::{Map, Value};
use wisp_core::Role;

/// Manage API keys.
#[derive(Args, Debug)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a key in --namespace (default: the caller's); prints its token once.
    Create {
        /// What the key may do: admin (everything, every namespace), deploy (manage and
        /// read its namespace), invoke (invoke functions, send to queues), read (GET only).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// A name to recognise the key by.
        #[arg(long)]
        name: Option<String>,
        /// When the key stops working, from now: `30d`, `12h`.
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// Print the API's JSON (with the token) instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List keys: of --namespace, or of every namespace.
    Ls {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Revoke keys: refused from now on.
    Revoke {
        /// The key ids (`WK…`).
        #[arg(required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        server: ServerArg,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).map_err(|e| e.to_string())
}

pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::Create {
            role,
            name,
            expires,
            json,
            server,
        } => {
            let mut body = Map::new();
            body.insert("role".into(), role.as_str().into());
            if let Some(namespace) = &server.namespace {
                body.insert("namespace".into(), namespace.clone().into());
            }
            if let Some(name) = name {
                body.insert("name".into(), name.into());
            }
            if let Some(expires) = expires {
                wisp_core::duration_text::parse(&expires)
                    .map_err(|e| CliError::new(Exit::Usage, format!("--expires: {e}")))?;
                body.insert("expires_in".into(), expires.into());
            }
            let client = Client::new(&server)?;
            let (_, key) = client
                .json(client.request(Method::POST, "/v1/keys").json(&body))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&key)?);
                return Ok(());
            }
            eprintln!(
                "created {} key {} in namespace {}{}",
                key["role"].as_str().unwrap_or("?"),
                key["id"].as_str().unwrap_or("?"),
                key["namespace"].as_str().unwrap_or("?"),
                key["expires_at"]
                    .as_str()
                    .map(|at| format!(", expires {at}"))
                    .unwrap_or_default()
            );
            eprintln!("the token below is shown once; keep it safe (use it as --key or WISP_KEY):");
            println!("{}", key["token"].as_str().unwrap_or("?"));
            Ok(())
        }
        KeysCommand::Ls { json, server } => {
            let client = Client::new(&server)?;
            let mut request = client.request(Method::GET, "/v1/keys");
            if let Some(namespace) = &server.namespace {
                request = request.query(&[("namespace", namespace)]);
            }
            let (_, answer) = client.json(request).await?;
            let keys = answer["keys"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&Value::Array(keys))?);
                return Ok(());
            }
            let mut table = Table::new();
            table.load_style(NOTHING);
            table.set_header([
                "ID",
                "NAMESPACE",
                "ROLE",
                "NAME",
                "STATUS",
                "CREATED",
                "EXPIRES",
                "LAST USED",
            ]);
            let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
            for k in &keys {
                table.add_row([
                    text(&k["id"]),
                    text(&k["namespace"]),
                    text(&k["role"]),
                    text(&k["name"]),
                    text(&k["status"]),
                    text(&k["created_at"]),
                    text(&k["expires_at"]),
                    text(&k["last_used_at"]),
                ]);
            }
            println!("{}", table.trim_fmt());
            Ok(())
        }
        KeysCommand::Revoke { ids, server } => {
            let client = Client::new(&server)?;
            for id in ids {
                let (_, key) = client
                    .json(client.request(Method::DELETE, &format!("/v1/keys/{id}")))
                    .await?;
                println!(
                    "revoked   {} ({} key of {})",
                    key["id"].as_str().unwrap_or(&id),
                    key["role"].as_str().unwrap_or("?"),
                    key["namespace"].as_str().unwrap_or("?")
                );
            }
            Ok(())
        }
    }
}
