//! `wisp queue`: the platform's queues — list, create or update, remove, send,
//! receive, purge, and redrive a dead-letter queue.

use crate::client::{Client, ServerArg};
use crate::exit::{CliError, Exit};
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::NOTHING};
use reqwest::Method;
use serde_json::{Map, Value, json};
use wisp_core::QueueName;

/// Manage queues and their messages.
#[derive(Args, Debug)]
pub struct QueueArgs {
    #[command(subcommand)]
    pub command: QueueCommand,
}

#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// List the queues, with the messages each holds.
    Ls {
        /// Print the API's queue objects as JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Create a queue, or set an existing queue's settings (unset ones get their defaults).
    Create {
        /// The queue's name (lowercase letters, digits and '-').
        name: String,
        /// How long a received message stays invisible to other receivers (default 30s).
        #[arg(long, value_name = "DURATION")]
        visibility_timeout: Option<String>,
        /// How long a message is kept (default 4d).
        #[arg(long, value_name = "DURATION")]
        retention: Option<String>,
        /// After this many receives without a delete, move a message to --dead-letter-queue.
        #[arg(long, value_name = "N", requires = "dead_letter_queue")]
        max_receive_count: Option<u32>,
        /// The queue that takes messages received --max-receive-count times (it must exist).
        #[arg(long, value_name = "QUEUE", requires = "max_receive_count")]
        dead_letter_queue: Option<String>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Delete queues, with their messages.
    Rm {
        /// The queues to delete.
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Send a message; prints its id.
    Send {
        /// The queue's name.
        name: String,
        /// The message: text, or @FILE to send a file's contents (UTF-8).
        #[arg(value_name = "BODY|@FILE")]
        body: String,
        /// Keep the message invisible this long first.
        #[arg(long, value_name = "DURATION")]
        delay: Option<String>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Receive messages: each stays invisible for the visibility timeout, then comes
    /// back unless it was deleted (--delete deletes what is printed).
    Receive {
        /// The queue's name.
        name: String,
        /// At most this many messages (1 to 100).
        #[arg(long, default_value_t = 1)]
        max: usize,
        /// Keep them invisible this long instead of the queue's visibility timeout.
        #[arg(long, value_name = "DURATION")]
        visibility_timeout: Option<String>,
        /// Delete the messages once printed (receive and acknowledge).
        #[arg(long)]
        delete: bool,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Drop every message of a queue.
    Purge {
        /// The queue's name.
        name: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Move a dead-letter queue's messages back to the queues they came from.
    Redrive {
        /// The dead-letter queue's name.
        name: String,
        #[command(flatten)]
        server: ServerArg,
    },
}

/// A queue name from the command line, checked before any request is made.
fn queue_name(name: &str) -> anyhow::Result<QueueName> {
    QueueName::new(name).map_err(|e| CliError::new(Exit::Usage, e.to_string()).into())
}

/// A duration flag, checked as the server will read it.
fn duration(flag: &str, text: &str) -> anyhow::Result<String> {
    wisp_core::duration_text::parse(text)
        .map(|_| text.to_string())
        .map_err(|e| CliError::new(Exit::Usage, format!("--{flag}: {e}")).into())
}

pub async fn run(args: QueueArgs) -> anyhow::Result<()> {
    match args.command {
        QueueCommand::Ls { json, server } => ls(&server, json).await,
        QueueCommand::Create {
            name,
            visibility_timeout,
            retention,
            max_receive_count,
            dead_letter_queue,
            server,
        } => {
            let name = queue_name(&name)?;
            let mut config = Map::new();
            if let Some(v) = visibility_timeout {
                config.insert(
                    "visibility_timeout".into(),
                    duration("visibility-timeout", &v)?.into(),
                );
            }
            if let Some(v) = retention {
                config.insert("retention".into(), duration("retention", &v)?.into());
            }
            if let Some(n) = max_receive_count {
                config.insert("max_receive_count".into(), n.into());
            }
            if let Some(q) = dead_letter_queue {
                config.insert("dead_letter_queue".into(), queue_name(&q)?.to_string().into());
            }
            let client = Client::new(&server)?;
            let request = client
                .request(Method::PUT, &format!("/v1/queues/{name}"))
                .json(&Value::Object(config));
            let (_, answer) = client.json(request).await?;
            println!("{}", describe_put(&answer));
            Ok(())
        }
        QueueCommand::Rm { names, server } => {
            let names = names
                .iter()
                .map(|n| queue_name(n))
                .collect::<anyhow::Result<Vec<_>>>()?;
            Client::new(&server)?
                .remove_each("/v1/queues", "queue", &names)
                .await
        }
        QueueCommand::Send {
            name,
            body,
            delay,
            server,
        } => {
            let name = queue_name(&name)?;
            let body = match body.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path).map_err(|e| {
                    CliError::new(Exit::Usage, format!("cannot read `{path}` as the message: {e}"))
                        .hint("a message is UTF-8 text; send binary data base64-encoded")
                })?,
                None => body,
            };
            let mut message = json!({ "body": body });
            if let Some(d) = delay {
                message["delay"] = duration("delay", &d)?.into();
            }
            let client = Client::new(&server)?;
            let request = client
                .request(Method::POST, &format!("/v1/queues/{name}/messages"))
                .json(&message);
            let (_, answer) = client.json(request).await?;
            println!("{}", answer["id"].as_str().unwrap_or_default());
            Ok(())
        }
        QueueCommand::Receive {
            name,
            max,
            visibility_timeout,
            delete,
            json,
            server,
        } => {
            let name = queue_name(&name)?;
            let mut params = json!({ "max": max });
            if let Some(v) = visibility_timeout {
                params["visibility_timeout"] = duration("visibility-timeout", &v)?.into();
            }
            let client = Client::new(&server)?;
            let request = client
                .request(Method::POST, &format!("/v1/queues/{name}/receive"))
                .json(&params);
            let (_, answer) = client.json(request).await?;
            let messages = answer["messages"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                for m in &messages {
                    print!("{}", describe_message(m));
                }
                if messages.is_empty() {
                    eprintln!("No message of `{name}` is visible now.");
                }
            }
            if let Some(n) = answer["dead_lettered"]
                .as_array()
                .map(Vec::len)
                .filter(|n| *n > 0)
            {
                eprintln!("note: {n} messages past max_receive_count moved to the dead-letter queue");
            }
            if delete && !messages.is_empty() {
                let receipts: Vec<&Value> = messages.iter().map(|m| &m["receipt_handle"]).collect();
                let request = client
                    .request(Method::POST, &format!("/v1/queues/{name}/delete"))
                    .json(&json!({ "receipts": receipts }));
                let (_, answer) = client.json(request).await?;
                if let Some(stale) = answer["stale"].as_array().filter(|s| !s.is_empty()) {
                    eprintln!(
                        "note: {} messages were not deleted: their visibility timeout ran out and they were received again",
                        stale.len()
                    );
                }
            }
            Ok(())
        }
        QueueCommand::Purge { name, server } => {
            let name = queue_name(&name)?;
            let client = Client::new(&server)?;
            let (_, answer) = client
                .json(client.request(Method::POST, &format!("/v1/queues/{name}/purge")))
                .await?;
            println!("purged {} messages from {name}", answer["purged"]);
            Ok(())
        }
        QueueCommand::Redrive { name, server } => {
            let name = queue_name(&name)?;
            let client = Client::new(&server)?;
            let (_, answer) = client
                .json(client.request(Method::POST, &format!("/v1/queues/{name}/redrive")))
                .await?;
            println!(
                "moved {} messages from {name} back to the queues they came from",
                answer["redriven"]
            );
            Ok(())
        }
    }
}

async fn ls(server: &ServerArg, json: bool) -> anyhow::Result<()> {
    let client = Client::new(server)?;
    let (_, answer) = client.json(client.request(Method::GET, "/v1/queues")).await?;
    let queues = answer["queues"].as_array().cloned().unwrap_or_default();
    if json {
        println!("{}", serde_json::to_string_pretty(&Value::Array(queues))?);
        return Ok(());
    }
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.set_header([
        "NAME",
        "VISIBLE",
        "IN FLIGHT",
        "DELAYED",
        "VISIBILITY",
        "RETENTION",
        "DEAD LETTERS",
    ]);
    for q in &queues {
        let config = &q["config"];
        table.add_row([
            q["name"].as_str().unwrap_or("?").to_string(),
            q["messages"]["visible"].to_string(),
            q["messages"]["in_flight"].to_string(),
            q["messages"]["delayed"].to_string(),
            config["visibility_timeout"].as_str().unwrap_or("?").to_string(),
            config["retention"].as_str().unwrap_or("?").to_string(),
            dead_letters_text(config),
        ]);
    }
    if queues.is_empty() {
        eprintln!("No queues. Create one with `wisp queue create NAME` or in wisp.toml's [queues.NAME].");
    }
    println!("{}", table.trim_fmt());
    Ok(())
}

/// `orders-dlq after 3 receives`, or `-`.
fn dead_letters_text(config: &Value) -> String {
    match (
        config["dead_letter_queue"].as_str(),
        config["max_receive_count"].as_u64(),
    ) {
        (Some(q), Some(n)) => format!("{q} after {n} receives"),
        _ => "-".to_string(),
    }
}

/// `created    orders   visibility 30s, retention 4days, dead letters to …`
pub fn describe_put(answer: &Value) -> String {
    let status = answer["status"].as_str().unwrap_or("saved");
    let queue = &answer["queue"];
    let config = &queue["config"];
    let mut text = format!(
        "{status:<10} queue {:<20} visibility {}, retention {}",
        queue["name"].as_str().unwrap_or("?"),
        config["visibility_timeout"].as_str().unwrap_or("?"),
        config["retention"].as_str().unwrap_or("?"),
    );
    if let (Some(q), Some(n)) = (
        config["dead_letter_queue"].as_str(),
        config["max_receive_count"].as_u64(),
    ) {
        text.push_str(&format!(", to {q} after {n} receives"));
    }
    text
}

/// A received message: a header line with what identifies it, then its body.
fn describe_message(m: &Value) -> String {
    let body = m["body"].as_str().unwrap_or_default();
    let mut text = format!(
        "message {} (receive {}, sent {})\n  receipt: {}\n",
        m["id"].as_str().unwrap_or("?"),
        m["receive_count"],
        m["sent_at"].as_str().unwrap_or("?"),
        m["receipt_handle"].as_str().unwrap_or("?"),
    );
    text.push_str(body);
    if !body.ends_with('\n') {
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_and_messages_read_well() {
        let answer = json!({"status": "created", "queue": {"name": "orders", "config": {
            "visibility_timeout": "30s", "retention": "4days",
            "max_receive_count": 3, "dead_letter_queue": "orders-dlq"}}});
        assert_eq!(
            describe_put(&answer),
            "created    queue orders               visibility 30s, retention 4days, to orders-dlq after 3 receives"
        );
        let m = json!({"id": "m1", "receive_count": 2, "sent_at": "t", "receipt_handle": "r1", "body": "hi"});
        assert_eq!(
            describe_message(&m),
            "message m1 (receive 2, sent t)\n  receipt: r1\nhi\n"
        );
    }

    #[test]
    fn flags_are_checked_before_any_request() {
        assert!(queue_name("Bad_Name").is_err());
        assert!(
            duration("delay", "soon")
                .unwrap_err()
                .to_string()
                .contains("--delay: invalid duration")
        );
        assert_eq!(duration("delay", "5s").unwrap(), "5s");
    }
}
