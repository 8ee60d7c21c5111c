//! `wisp versions`, `wisp alias`, `wisp rollback`, `wisp disable` and `wisp enable`: a
//! function's versions, the aliases that point at them, and its lifecycle.

use super::function_name;
use crate::client::{Client, ServerArg};
use crate::exit::{CliError, Exit};
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::NOTHING};
use reqwest::Method;
use serde_json::{Value, json};

/// List a function's versions, newest first, with the aliases pointing at each.
#[derive(Args, Debug)]
pub struct VersionsArgs {
    /// The function's name.
    pub name: String,
    /// Print JSON (the API's version objects) instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub async fn versions(args: VersionsArgs) -> anyhow::Result<()> {
    let name = function_name(&args.name)?;
    let client = Client::new(&args.server)?;
    let path = format!("/v1/functions/{name}/versions");
    let (_, answer) = client.json(client.request(Method::GET, &path)).await?;
    let versions = answer["versions"].as_array().cloned().unwrap_or_default();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&Value::Array(versions))?);
        return Ok(());
    }
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.set_header([
        "VERSION",
        "ID",
        "KIND",
        "MEMORY",
        "ALIASES",
        "COLD/CALLS",
        "CREATED",
    ]);
    for v in &versions {
        let id = v["version_id"].as_str().unwrap_or("");
        let aliases: Vec<&str> = v["aliases"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        table.add_row([
            v["version"].to_string(),
            id[..id.len().min(12)].to_string(),
            v["kind"].as_str().unwrap_or("?").to_string(),
            format!("{} MB", v["memory_mb"]),
            if aliases.is_empty() {
                "-".to_string()
            } else {
                aliases.join(", ")
            },
            format!("{}/{}", v["cold_starts"], v["invocations"]),
            v["created_at"].as_str().unwrap_or("").to_string(),
        ]);
    }
    println!("{}", table.trim_fmt());
    Ok(())
}

/// Point aliases at a function's versions: `live` is what its routes and triggers
/// run; others are invoked as NAME:ALIAS.
#[derive(Args, Debug)]
pub struct AliasArgs {
    #[command(subcommand)]
    pub command: AliasCommand,
}

#[derive(Subcommand, Debug)]
pub enum AliasCommand {
    /// Create or move an alias: `wisp alias set hello live 7 --weight 8=0.1` sends 10%
    /// of `live`'s traffic to version 8 and the rest to 7.
    Set {
        /// The function's name.
        name: String,
        /// The alias (`live`, or any name of lowercase letters, digits and '-').
        alias: String,
        /// The version it points at.
        #[arg(value_name = "VERSION", id = "target_version")]
        version: u32,
        /// A second version and the share of the traffic it takes, from 0 to 1.
        #[arg(long, value_name = "VERSION=WEIGHT")]
        weight: Option<String>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Delete an alias (not `live`).
    Rm {
        name: String,
        alias: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List a function's aliases.
    Ls {
        name: String,
        #[command(flatten)]
        server: ServerArg,
    },
}

fn usage(message: String) -> anyhow::Error {
    CliError::new(Exit::Usage, message).into()
}

/// An alias name from the command line, checked before any request is made.
fn alias_name(alias: &str) -> anyhow::Result<wisp_core::AliasName> {
    wisp_core::AliasName::new(alias).map_err(|e| usage(e.to_string()))
}

/// `8=0.1` as the API's additional version.
fn parse_weight(text: &str) -> anyhow::Result<Value> {
    let bad = || {
        usage(format!(
            "--weight `{text}`: write VERSION=WEIGHT, e.g. 8=0.1 (a share from 0 to 1)"
        ))
    };
    let (version, weight) = text.split_once('=').ok_or_else(bad)?;
    let version: u32 = version.trim().parse().map_err(|_| bad())?;
    let weight: f64 = weight.trim().parse().map_err(|_| bad())?;
    if !(0.0..=1.0).contains(&weight) {
        return Err(usage(format!(
            "--weight `{text}`: the weight is a share of the traffic from 0 to 1"
        )));
    }
    Ok(json!({ "version": version, "weight": weight }))
}

pub async fn alias(args: AliasArgs) -> anyhow::Result<()> {
    match args.command {
        AliasCommand::Set {
            name,
            alias,
            version,
            weight,
            server,
        } => {
            let name = function_name(&name)?;
            let alias = alias_name(&alias)?;
            let mut body = json!({ "version": version });
            if let Some(weight) = weight {
                body["additional"] = parse_weight(&weight)?;
            }
            let client = Client::new(&server)?;
            let path = format!("/v1/functions/{name}/aliases/{alias}");
            let (_, answer) = client
                .json(client.request(Method::PUT, &path).json(&body))
                .await?;
            println!("{name}:{alias} → {}", target_text(&answer["alias"]));
        }
        AliasCommand::Rm { name, alias, server } => {
            let name = function_name(&name)?;
            let alias = alias_name(&alias)?;
            let client = Client::new(&server)?;
            let path = format!("/v1/functions/{name}/aliases/{alias}");
            client.json(client.request(Method::DELETE, &path)).await?;
            println!("removed {name}:{alias}");
        }
        AliasCommand::Ls { name, server } => {
            let name = function_name(&name)?;
            let client = Client::new(&server)?;
            let path = format!("/v1/functions/{name}/aliases");
            let (_, answer) = client.json(client.request(Method::GET, &path)).await?;
            for alias in answer["aliases"].as_array().into_iter().flatten() {
                println!(
                    "{:<12} {}",
                    alias["name"].as_str().unwrap_or("?"),
                    target_text(alias)
                );
            }
        }
    }
    Ok(())
}

/// Where an alias points: `7`, or `7 + 8 at 10%`.
pub fn target_text(target: &Value) -> String {
    let mut text = target["version"].to_string();
    if let Some(additional) = target["additional"].as_object() {
        let weight = additional["weight"].as_f64().unwrap_or(0.0) * 100.0;
        text.push_str(&format!(" + {} at {weight}%", additional["version"]));
    }
    text
}

/// Move `live` back at once: to the version before the one it runs, to its main
/// version alone when it splits traffic, or to --to N.
#[derive(Args, Debug)]
pub struct RollbackArgs {
    /// The function's name.
    pub name: String,
    /// The version to move `live` to.
    #[arg(long, value_name = "N")]
    pub to: Option<u32>,
    #[command(flatten)]
    pub server: ServerArg,
}

pub async fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let name = function_name(&args.name)?;
    let client = Client::new(&args.server)?;
    let path = format!("/v1/functions/{name}/rollback");
    let mut request = client.request(Method::POST, &path);
    if let Some(to) = args.to {
        request = request.json(&json!({ "to": to }));
    }
    let (_, answer) = client.json(request).await?;
    println!("{name}: live → {}", super::deploy::live_text(&answer));
    Ok(())
}

/// Disable or enable a function. A disabled function runs nothing: calls are refused
/// (409 function_disabled), async events and queue messages wait, schedules skip.
#[derive(Args, Debug)]
pub struct SwitchArgs {
    /// The function's name.
    pub name: String,
    #[command(flatten)]
    pub server: ServerArg,
}

pub async fn switch(args: SwitchArgs, disabled: bool) -> anyhow::Result<()> {
    let name = function_name(&args.name)?;
    let client = Client::new(&args.server)?;
    let action = if disabled { "disable" } else { "enable" };
    let path = format!("/v1/functions/{name}/{action}");
    client.json(client.request(Method::POST, &path)).await?;
    println!("{name}: {action}d");
    Ok(())
}
