//! `wisp dlq`: a function's dead letters — async invocations that failed for good —
//! listed, shown, run again (redrive) or dropped (purge).

use super::function_name;
use crate::client::{Client, ServerArg};
use crate::exit::{CliError, Exit};
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::NOTHING};
use reqwest::Method;
use serde_json::{Value, json};

/// List, inspect, redrive or purge a function's dead letters (async invocations that
/// failed for good).
#[derive(Args, Debug)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub command: DlqCommand,
}

#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// List a function's dead letters, newest first, with how many events are where.
    Ls {
        /// The function's name.
        function: String,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Show one async invocation (a dead letter or not): its payload, attempts,
    /// last error and why it failed.
    Show {
        /// The invocation id (`wisp dlq ls` lists them).
        id: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Run a function's dead letters again: all of them, or those given with --id.
    Redrive {
        /// The function's name.
        function: String,
        /// Only this dead letter (repeat for more).
        #[arg(long = "id", value_name = "ID")]
        ids: Vec<String>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Drop a function's dead letters: those given with --id, or all with --yes.
    Purge {
        /// The function's name.
        function: String,
        /// Only this dead letter (repeat for more).
        #[arg(long = "id", value_name = "ID")]
        ids: Vec<String>,
        /// Drop every dead letter of the function (needed when no --id is given).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        server: ServerArg,
    },
}

/// `{"ids": [...]}` when ids were given; no body (every dead letter) otherwise.
fn selection(request: reqwest::RequestBuilder, ids: &[String]) -> reqwest::RequestBuilder {
    if ids.is_empty() {
        request
    } else {
        request.json(&json!({ "ids": ids }))
    }
}

pub async fn run(args: DlqArgs) -> anyhow::Result<()> {
    match args.command {
        DlqCommand::Ls {
            function,
            limit,
            json,
            server,
        } => {
            let name = function_name(&function)?;
            let client = Client::new(&server)?;
            let request = client
                .request(Method::GET, &format!("/v1/functions/{name}/dlq"))
                .query(&[("limit", limit.to_string())]);
            let (_, answer) = client.json(request).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
                return Ok(());
            }
            let letters = answer["dead_letters"].as_array().cloned().unwrap_or_default();
            let mut table = Table::new();
            table.load_style(NOTHING);
            table.set_header(["ID", "CREATED", "ATTEMPTS", "FAILURE", "LAST ERROR"]);
            for e in &letters {
                table.add_row([
                    text(&e["id"]),
                    text(&e["created_at"]),
                    e["attempts"].to_string(),
                    text(&e["failure"]),
                    one_line(&text(&e["last_error"]), 60),
                ]);
            }
            if letters.is_empty() {
                eprintln!("`{name}` has no dead letters.");
            } else {
                println!("{}", table.trim_fmt());
            }
            let c = &answer["counts"];
            println!(
                "{} queued, {} running, {} succeeded (kept 24h), {} dead",
                c["queued"], c["running"], c["succeeded"], c["failed"]
            );
            Ok(())
        }
        DlqCommand::Show { id, json, server } => {
            if id.is_empty() || id.len() > 64 || id.contains('/') {
                return Err(
                    CliError::new(Exit::Usage, format!("`{id}` is not an invocation id"))
                        .hint("`wisp dlq ls FUNCTION` lists the ids of a function's dead letters")
                        .into(),
                );
            }
            let client = Client::new(&server)?;
            let (_, event) = client
                .json(client.request(Method::GET, &format!("/v1/invocations/{id}")))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&event)?);
            } else {
                print!("{}", describe_event(&event));
            }
            Ok(())
        }
        DlqCommand::Redrive {
            function,
            ids,
            server,
        } => {
            let name = function_name(&function)?;
            let client = Client::new(&server)?;
            let request = client.request(Method::POST, &format!("/v1/functions/{name}/dlq/redrive"));
            let (_, answer) = client.json(selection(request, &ids)).await?;
            let redriven = answer["redriven"].as_u64().unwrap_or(0);
            println!("redrove {redriven} dead {} of `{name}`", letters(redriven));
            missing(&ids, &answer["ids"], "redriven");
            Ok(())
        }
        DlqCommand::Purge {
            function,
            ids,
            yes,
            server,
        } => {
            let name = function_name(&function)?;
            if ids.is_empty() && !yes {
                return Err(CliError::new(
                    Exit::Usage,
                    format!("purging drops every dead letter of `{name}` for good; refusing without --yes"),
                )
                .hint(format!(
                    "add --yes to drop them all, or pick some with --id ID (`wisp dlq ls {name}` lists them)"
                ))
                .into());
            }
            let client = Client::new(&server)?;
            let request = client.request(Method::DELETE, &format!("/v1/functions/{name}/dlq"));
            let (_, answer) = client.json(selection(request, &ids)).await?;
            let purged = answer["purged"].as_u64().unwrap_or(0);
            println!("purged {purged} dead {} of `{name}`", letters(purged));
            if !ids.is_empty() && purged < ids.len() as u64 {
                eprintln!(
                    "note: {} of the given ids were not dead letters of `{name}`",
                    ids.len() as u64 - purged
                );
            }
            Ok(())
        }
    }
}

fn letters(n: u64) -> &'static str {
    if n == 1 { "letter" } else { "letters" }
}

/// Notes the given ids the server did not act on.
fn missing(ids: &[String], done: &Value, what: &str) {
    let done: Vec<&str> = done
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let missed: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| !done.contains(id))
        .collect();
    if !missed.is_empty() {
        eprintln!(
            "note: not {what} (not a dead letter of this function): {}",
            missed.join(", ")
        );
    }
}

/// A string field, or `-`.
fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| "-".to_string(), str::to_string)
}

/// The first line of `s`, cut to `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() > max || s.lines().nth(1).is_some() {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        line.to_string()
    }
}

/// An async invocation, for people: its facts, then the payload and the result.
fn describe_event(e: &Value) -> String {
    let mut out = String::new();
    let mut field = |label: &str, value: &Value| {
        let shown = match value {
            Value::Null => return,
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push_str(&format!("{label:<14}{shown}\n"));
    };
    field("id", &e["id"]);
    field("function", &e["function"]);
    field("status", &e["status"]);
    field("attempts", &e["attempts"]);
    field("source", &e["source"]);
    field("idempotency", &e["idempotency_key"]);
    field("created", &e["created_at"]);
    field("started", &e["started_at"]);
    field("updated", &e["updated_at"]);
    field("next attempt", &e["next_attempt_at"]);
    field("failure", &e["failure"]);
    field("last error", &e["last_error"]);
    let block = |label: &str, json: &Value, base64: &Value| -> Option<String> {
        let body = match (json, base64) {
            (Value::String(text), _) => text.clone(),
            (Value::Null, Value::String(b64)) => format!("(base64) {b64}"),
            (Value::Null, _) => return None,
            (value, _) => serde_json::to_string_pretty(value).unwrap_or_default(),
        };
        Some(format!("{label}:\n{}\n", indent(&body)))
    };
    if let Some(payload) = block("payload", &e["payload"], &e["payload_base64"]) {
        out.push_str(&payload);
    }
    if let Some(result) = block("result", &e["result"], &e["result_base64"]) {
        out.push_str(&result);
    }
    out
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_reads_as_facts_then_payload() {
        let e = json!({
            "id": "0193", "function": "kit", "status": "failed", "attempts": 3,
            "source": "api", "created_at": "2026-01-01T00:00:00.000Z",
            "failure": "retries_exhausted", "last_error": "function_error: trapped",
            "payload": {"action": "trap"}
        });
        let text = describe_event(&e);
        assert!(text.contains("status        failed\n"), "{text}");
        assert!(text.contains("attempts      3\n"), "{text}");
        assert!(text.contains("failure       retries_exhausted\n"), "{text}");
        assert!(
            text.contains("payload:\n  {\n    \"action\": \"trap\"\n  }\n"),
            "{text}"
        );
        assert!(!text.contains("result"), "{text}");
    }

    #[test]
    fn long_errors_are_cut_to_one_line() {
        assert_eq!(one_line("short", 10), "short");
        assert_eq!(one_line("two\nlines", 10), "two…");
        assert_eq!(one_line("abcdefghijkl", 5), "abcd…");
    }
}
