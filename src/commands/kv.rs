//! `wisp kv`: the namespace's key-value stores and their keys — list, create and drop
//! stores; get, set (with a time to live and compare-and-set), remove, increment and
//! list keys. `docs/kv.md` describes the API it calls (`/v1/kv`).

use crate::client::{Client, ServerArg};
use crate::exit::{CliError, Exit};
use anyhow::Context;
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::NOTHING};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use tokio::io::AsyncReadExt;
use wisp_core::{KvStoreName, Limits};

/// What a key keeps unescaped in a URL path: `/` separates its segments there too.
const KEY_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Manage key-value stores and their keys.
#[derive(Args, Debug)]
pub struct KvArgs {
    #[command(subcommand)]
    pub command: KvCommand,
}

#[derive(Subcommand, Debug)]
pub enum KvCommand {
    /// List the key-value stores, or with STORE the keys of one (every one, page
    /// after page, unless --limit).
    Ls {
        /// The store whose keys to list.
        store: Option<String>,
        /// Only keys that start with this.
        #[arg(long, value_name = "PREFIX", requires = "store")]
        prefix: Option<String>,
        /// At most this many keys.
        #[arg(long, value_name = "N", requires = "store")]
        limit: Option<u64>,
        /// Print JSON (the stores' descriptions, or the keys) instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Create a key-value store.
    Create {
        /// The store's name: lowercase letters, digits and '-', starting with a letter.
        name: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Delete key-value stores, with every key they hold.
    #[command(alias = "rm-store")]
    Drop {
        /// The stores to delete.
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Print a key's value (its bytes as they are; on a terminal, with a line end after
    /// a value without one) to stdout.
    Get {
        /// The store.
        store: String,
        /// The key.
        #[arg(value_name = "KEY")]
        entry: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Set a key's value.
    Set {
        /// The store.
        store: String,
        /// The key.
        #[arg(value_name = "KEY")]
        entry: String,
        /// The value, or - to read it from stdin.
        #[arg(value_name = "VALUE|-", allow_hyphen_values = true)]
        value: String,
        /// Expire the entry after this long (`30s`, `1h`, or seconds); without it the
        /// entry never expires.
        #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
        ttl: Option<String>,
        /// Only if the key holds this version (compare-and-set).
        #[arg(long, value_name = "N", conflicts_with = "if_absent")]
        if_version: Option<u64>,
        /// Only if the key holds nothing.
        #[arg(long)]
        if_absent: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Remove keys (a key that holds nothing is an error).
    Rm {
        /// The store.
        store: String,
        /// The keys to remove.
        #[arg(required = true)]
        keys: Vec<String>,
        /// Only if the key holds this version.
        #[arg(long, value_name = "N")]
        if_version: Option<u64>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Add to the integer a key holds (nothing counts as 0); print the sum.
    Incr {
        /// The store.
        store: String,
        /// The key.
        #[arg(value_name = "KEY")]
        entry: String,
        /// What to add (negative subtracts).
        #[arg(long, default_value_t = 1, allow_hyphen_values = true)]
        by: i64,
        #[command(flatten)]
        server: ServerArg,
    },
}

/// A store name from the command line, checked before any request is made.
fn store_name(name: &str) -> anyhow::Result<KvStoreName> {
    KvStoreName::new(name).map_err(|e| {
        CliError::new(Exit::Usage, e.to_string())
            .hint("a key-value store's name is lowercase letters, digits and '-', starting with a letter, such as `sessions`")
            .into()
    })
}

/// A key from the command line, checked before any request is made.
fn key_arg(key: &str) -> anyhow::Result<&str> {
    if key.is_empty() || key.len() > Limits::MAX_KV_KEY_BYTES {
        return Err(CliError::new(
            Exit::Usage,
            format!(
                "invalid key `{key}`: a key is 1 to {} bytes",
                Limits::MAX_KV_KEY_BYTES
            ),
        )
        .into());
    }
    Ok(key)
}

/// A time to live: `30s`, `1h 30m`, or a whole number of seconds.
fn parse_ttl(text: &str) -> Result<String, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u64>() {
            Ok(0) | Err(_) => Err(format!("invalid time to live `{text}`: give more than 0 seconds")),
            Ok(_) => Ok(text.to_string()),
        };
    }
    match wisp_core::duration_text::parse(text)? {
        d if d.is_zero() => Err(format!(
            "invalid time to live `{text}`: it must be more than zero"
        )),
        _ => Ok(text.to_string()),
    }
}

/// The API path of a key.
fn key_path(store: &KvStoreName, key: &str) -> String {
    format!("/v1/kv/{store}/keys/{}", utf8_percent_encode(key, KEY_ESCAPES))
}

pub async fn run(args: KvArgs) -> anyhow::Result<()> {
    match args.command {
        KvCommand::Ls {
            store,
            prefix,
            limit,
            json,
            server,
        } => match store {
            None => ls_stores(&server, json).await,
            Some(store) => {
                ls_keys(
                    &server,
                    &store_name(&store)?,
                    prefix.unwrap_or_default(),
                    limit,
                    json,
                )
                .await
            }
        },
        KvCommand::Create { name, server } => {
            let name = store_name(&name)?;
            let client = Client::new(&server)?;
            client
                .json(client.request(Method::PUT, &format!("/v1/kv/{name}")))
                .await?;
            println!("created key-value store {name}");
            Ok(())
        }
        KvCommand::Drop { names, server } => {
            let names = names
                .iter()
                .map(|n| store_name(n))
                .collect::<anyhow::Result<Vec<_>>>()?;
            Client::new(&server)?
                .remove_each("/v1/kv", "key-value store", &names)
                .await
        }
        KvCommand::Get {
            store,
            entry: key,
            server,
        } => {
            let store = store_name(&store)?;
            let key = key_arg(&key)?;
            let client = Client::new(&server)?;
            let response = client
                .stream(client.request(Method::GET, &key_path(&store, key)))
                .await?;
            let value = response
                .bytes()
                .await
                .context("the answer broke off before the end of the value")?;
            let mut out = std::io::stdout().lock();
            out.write_all(&value).context("cannot write the value")?;
            // On a terminal, the prompt goes on a line of its own; a pipe or a file gets
            // the bytes as they are.
            if out.is_terminal() && value.last().is_some_and(|&b| b != b'\n') {
                out.write_all(b"\n").context("cannot write the value")?;
            }
            out.flush().context("cannot write the value")?;
            Ok(())
        }
        KvCommand::Set {
            store,
            entry: key,
            value,
            ttl,
            if_version,
            if_absent,
            server,
        } => {
            let store = store_name(&store)?;
            let key = key_arg(&key)?;
            let value = if value == "-" {
                let mut bytes = Vec::new();
                tokio::io::stdin()
                    .take(Limits::MAX_KV_VALUE_BYTES as u64 + 1)
                    .read_to_end(&mut bytes)
                    .await
                    .context("cannot read the value from stdin")?;
                bytes
            } else {
                value.into_bytes()
            };
            let client = Client::new(&server)?;
            let mut request = client.request(Method::PUT, &key_path(&store, key)).body(value);
            if let Some(ttl) = &ttl {
                request = request.header("wisp-ttl", ttl);
            }
            if let Some(version) = if_version {
                request = request.header(reqwest::header::IF_MATCH, format!("\"{version}\""));
            }
            if if_absent {
                request = request.header(reqwest::header::IF_NONE_MATCH, "*");
            }
            let (_, answer) = client.json(request).await?;
            let expiry = ttl.map_or_else(String::new, |t| format!(", expires in {t}"));
            println!("set {store}/{key} (version {}{expiry})", answer["version"]);
            Ok(())
        }
        KvCommand::Rm {
            store,
            keys,
            if_version,
            server,
        } => {
            let store = store_name(&store)?;
            let keys = keys
                .iter()
                .map(|k| key_arg(k))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let client = Client::new(&server)?;
            for key in keys {
                let mut request = client.request(Method::DELETE, &key_path(&store, key));
                if let Some(version) = if_version {
                    request = request.header(reqwest::header::IF_MATCH, format!("\"{version}\""));
                }
                client.json(request).await?;
                println!("removed {store}/{key}");
            }
            Ok(())
        }
        KvCommand::Incr {
            store,
            entry: key,
            by,
            server,
        } => {
            let store = store_name(&store)?;
            let key = key_arg(&key)?;
            let client = Client::new(&server)?;
            let path = format!(
                "/v1/kv/{store}/increment/{}",
                utf8_percent_encode(key, KEY_ESCAPES)
            );
            let request = client.request(Method::POST, &path).json(&json!({ "by": by }));
            let (_, answer) = client.json(request).await?;
            println!("{}", answer["value"]);
            Ok(())
        }
    }
}

async fn ls_stores(server: &ServerArg, json: bool) -> anyhow::Result<()> {
    let client = Client::new(server)?;
    let (_, answer) = client.json(client.request(Method::GET, "/v1/kv")).await?;
    let stores = answer["stores"].as_array().cloned().unwrap_or_default();
    if json {
        println!("{}", serde_json::to_string_pretty(&Value::Array(stores))?);
        return Ok(());
    }
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.set_header(["NAME", "CREATED"]);
    for s in &stores {
        table.add_row([
            s["name"].as_str().unwrap_or("?").to_string(),
            s["created_at"].as_str().unwrap_or("").to_string(),
        ]);
    }
    if stores.is_empty() {
        eprintln!("No key-value stores. Create one with `wisp kv create NAME`.");
    }
    println!("{}", table.trim_fmt());
    Ok(())
}

async fn ls_keys(
    server: &ServerArg,
    store: &KvStoreName,
    prefix: String,
    limit: Option<u64>,
    json: bool,
) -> anyhow::Result<()> {
    let client = Client::new(server)?;
    let keys = client
        .pages(&format!("/v1/kv/{store}/keys"), "keys", &prefix, limit)
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&Value::Array(keys))?);
        return Ok(());
    }
    if keys.is_empty() {
        if prefix.is_empty() {
            eprintln!("No keys in `{store}`. Set one with `wisp kv set {store} KEY VALUE`.");
        } else {
            eprintln!("No keys in `{store}` under `{prefix}`.");
        }
    }
    let mut out = std::io::stdout().lock();
    for key in &keys {
        writeln!(out, "{}", key.as_str().unwrap_or("?")).context("cannot write the keys")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: KvCommand,
    }

    #[test]
    fn the_arguments_are_well_formed() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from(["kv", "set", "cache", "a/b", "-", "--ttl", "30s", "--if-absent"]);
        let KvCommand::Set {
            entry: key,
            value,
            ttl,
            if_absent,
            ..
        } = cli.command
        else {
            panic!("not a set");
        };
        assert_eq!((key.as_str(), value.as_str()), ("a/b", "-"));
        assert_eq!(ttl.as_deref(), Some("30s"));
        assert!(if_absent);
        assert!(
            Cli::try_parse_from(["kv", "set", "c", "k", "v", "--if-absent", "--if-version", "3"]).is_err()
        );
        assert!(Cli::try_parse_from(["kv", "set", "c", "k", "v", "--ttl", "soon"]).is_err());
        assert!(Cli::try_parse_from(["kv", "ls", "--prefix", "a"]).is_err());
        let cli = Cli::parse_from(["kv", "incr", "c", "n", "--by", "-2"]);
        assert!(matches!(cli.command, KvCommand::Incr { by: -2, .. }));
        let cli = Cli::parse_from(["kv", "rm-store", "c"]);
        assert!(matches!(cli.command, KvCommand::Drop { .. }));
    }

    #[test]
    fn names_and_keys_are_checked_before_any_request() {
        let e = store_name("Bad_Name").unwrap_err().to_string();
        assert!(e.contains("key-value store name `Bad_Name`"), "{e}");
        assert!(key_arg("").is_err());
        assert!(key_arg(&"k".repeat(Limits::MAX_KV_KEY_BYTES + 1)).is_err());
        assert_eq!(
            key_path(&store_name("c").unwrap(), "a b/c"),
            "/v1/kv/c/keys/a%20b/c"
        );
    }
}
