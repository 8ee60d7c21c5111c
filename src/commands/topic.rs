//! `wisp topic`: the platform's pub/sub topics — list, create, remove, subscribe a
//! function, a queue or a webhook (with an SNS filter policy), list and remove
//! subscriptions, and publish.

use crate::client::{Client, ServerArg};
use crate::exit::{CliError, Exit};
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::NOTHING};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::io::Read;
use wisp_core::filter_policy::{FilterPolicy, PolicyScope};
use wisp_core::{QueueName, TopicName};

/// Manage topics, their subscriptions, and publish to them.
#[derive(Args, Debug)]
pub struct TopicArgs {
    #[command(subcommand)]
    pub command: TopicCommand,
}

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// List the topics.
    Ls {
        /// Print the API's topic objects as JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Create a topic (an existing one is left unchanged).
    Create {
        /// The topic's name (lowercase letters, digits and '-').
        name: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Delete topics, with their subscriptions and undelivered messages.
    Rm {
        /// The topics to delete.
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Subscribe a function, a queue or a webhook to a topic; prints the subscription's
    /// id.
    Subscribe {
        /// The topic's name.
        name: String,
        /// The function to invoke asynchronously with each message.
        #[arg(
            long,
            value_name = "F",
            required_unless_present_any = ["queue", "webhook"],
            conflicts_with_all = ["queue", "webhook"]
        )]
        function: Option<String>,
        /// The queue to send each message to.
        #[arg(long, value_name = "Q", conflicts_with = "webhook")]
        queue: Option<String>,
        /// The http:// or https:// URL to POST each message to (SNS's HTTP
        /// notification JSON; deliveries start at once, with no confirmation).
        #[arg(long, value_name = "URL")]
        webhook: Option<String>,
        /// An SNS filter policy (JSON): only matching messages are delivered.
        #[arg(long, value_name = "JSON")]
        filter_policy: Option<String>,
        /// What the filter policy looks at: MessageAttributes (default) or MessageBody.
        #[arg(long, value_name = "SCOPE", requires = "filter_policy")]
        filter_scope: Option<String>,
        /// Send the queue or webhook the bare message instead of the SNS notification
        /// JSON.
        #[arg(long, conflicts_with = "function")]
        raw: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List a topic's subscriptions.
    Subscriptions {
        /// The topic's name.
        name: String,
        /// Print the API's subscription objects as JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Remove a subscription, with its undelivered messages.
    Unsubscribe {
        /// The topic's name.
        name: String,
        /// The subscription's id (see `wisp topic subscriptions NAME`).
        id: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Publish a message; prints its id.
    Publish {
        /// The topic's name.
        name: String,
        /// The message text, or `-` to read it from standard input.
        #[arg(value_name = "MESSAGE|-")]
        message: String,
        /// A String attribute (repeatable).
        #[arg(long = "attr", value_name = "KEY=VALUE")]
        attrs: Vec<String>,
        /// A Number attribute (repeatable).
        #[arg(long = "number-attr", value_name = "KEY=N")]
        number_attrs: Vec<String>,
        #[command(flatten)]
        server: ServerArg,
    },
}

fn usage(text: impl Into<String>) -> anyhow::Error {
    CliError::new(Exit::Usage, text.into()).into()
}

/// A topic name from the command line, checked before any request is made.
fn topic_name(name: &str) -> anyhow::Result<TopicName> {
    TopicName::new(name).map_err(|e| usage(e.to_string()))
}

/// Who a subscription delivers to, from the command line.
#[derive(Clone, Copy, Debug)]
enum Subscriber<'a> {
    Function(&'a str),
    Queue(&'a str),
    Webhook(&'a str),
}

impl<'a> Subscriber<'a> {
    /// The one of `--function`, `--queue` and `--webhook` given (clap lets only one be).
    fn of(
        function: Option<&'a str>,
        queue: Option<&'a str>,
        webhook: Option<&'a str>,
    ) -> anyhow::Result<Self> {
        match (function, queue, webhook) {
            (Some(f), None, None) => Ok(Subscriber::Function(f)),
            (None, Some(q), None) => Ok(Subscriber::Queue(q)),
            (None, None, Some(w)) => Ok(Subscriber::Webhook(w)),
            _ => Err(usage(
                "name exactly one subscriber: --function F, --queue Q or --webhook URL",
            )),
        }
    }
}

/// The subscribe request's body, checked before any request is made.
fn subscription_body(
    endpoint: Subscriber<'_>,
    filter_policy: Option<&str>,
    filter_scope: Option<&str>,
    raw: bool,
) -> anyhow::Result<Value> {
    let mut body = Map::new();
    match endpoint {
        Subscriber::Function(f) => {
            body.insert("function".into(), super::function_name(f)?.to_string().into());
        }
        Subscriber::Queue(q) => {
            let q = QueueName::new(q).map_err(|e| usage(e.to_string()))?;
            body.insert("queue".into(), q.to_string().into());
        }
        Subscriber::Webhook(url) => {
            let scheme = url
                .split_once("://")
                .map(|(scheme, _)| scheme.to_ascii_lowercase());
            if !matches!(scheme.as_deref(), Some("http" | "https")) {
                return Err(usage(format!(
                    "--webhook `{url}`: use an http:// or https:// URL, like https://example.com/hook"
                )));
            }
            body.insert("webhook".into(), url.into());
        }
    }
    let scope = match filter_scope {
        None => PolicyScope::MessageAttributes,
        Some(text) => text
            .parse::<PolicyScope>()
            .map_err(|e| usage(format!("--filter-scope: {e}")))?,
    };
    if let Some(text) = filter_policy {
        let policy: Value =
            serde_json::from_str(text).map_err(|e| usage(format!("--filter-policy is not JSON: {e}")))?;
        FilterPolicy::parse(text, scope).map_err(|e| usage(format!("--filter-policy: {e}")))?;
        body.insert("filter_policy".into(), policy);
        body.insert("filter_policy_scope".into(), scope.as_str().into());
    }
    if raw {
        body.insert("raw_message_delivery".into(), true.into());
    }
    Ok(Value::Object(body))
}

/// `--attr k=v` and `--number-attr k=n` as the API's attributes.
fn attributes(strings: &[String], numbers: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut out = Map::new();
    for (flag, items, kind) in [("attr", strings, "String"), ("number-attr", numbers, "Number")] {
        for item in items {
            let Some((key, value)) = item.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                return Err(usage(format!("--{flag} `{item}`: write KEY=VALUE")));
            };
            if kind == "Number" && value.trim().parse::<f64>().is_err() {
                return Err(usage(format!("--{flag} `{item}`: `{value}` is not a number")));
            }
            out.insert(key.to_string(), json!({ "DataType": kind, "StringValue": value }));
        }
    }
    Ok(out)
}

pub async fn run(args: TopicArgs) -> anyhow::Result<()> {
    match args.command {
        TopicCommand::Ls { json, server } => {
            let client = Client::new(&server)?;
            let (_, answer) = client.json(client.request(Method::GET, "/v1/topics")).await?;
            let topics = answer["topics"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&Value::Array(topics))?);
                return Ok(());
            }
            let mut table = Table::new();
            table.load_style(NOTHING);
            table.set_header(["NAME", "ARN", "CREATED"]);
            for t in &topics {
                table.add_row([
                    t["name"].as_str().unwrap_or("?"),
                    t["arn"].as_str().unwrap_or("?"),
                    t["created_at"].as_str().unwrap_or("?"),
                ]);
            }
            if topics.is_empty() {
                eprintln!(
                    "No topics. Create one with `wisp topic create NAME` or in wisp.toml's [topics.NAME]."
                );
            }
            println!("{}", table.trim_fmt());
            Ok(())
        }
        TopicCommand::Create { name, server } => {
            let name = topic_name(&name)?;
            let client = Client::new(&server)?;
            let (_, answer) = client
                .json(client.request(Method::PUT, &format!("/v1/topics/{name}")))
                .await?;
            println!("{}", describe_put(&answer));
            Ok(())
        }
        TopicCommand::Rm { names, server } => {
            let names = names
                .iter()
                .map(|n| topic_name(n))
                .collect::<anyhow::Result<Vec<_>>>()?;
            Client::new(&server)?
                .remove_each("/v1/topics", "topic", &names)
                .await
        }
        TopicCommand::Subscribe {
            name,
            function,
            queue,
            webhook,
            filter_policy,
            filter_scope,
            raw,
            server,
        } => {
            let name = topic_name(&name)?;
            let body = subscription_body(
                Subscriber::of(function.as_deref(), queue.as_deref(), webhook.as_deref())?,
                filter_policy.as_deref(),
                filter_scope.as_deref(),
                raw,
            )?;
            let client = Client::new(&server)?;
            let request = client
                .request(Method::POST, &format!("/v1/topics/{name}/subscriptions"))
                .json(&body);
            let (status, answer) = client.json(request).await?;
            let text = if status.as_u16() == 201 {
                "subscribed"
            } else {
                "unchanged"
            };
            println!("{text:<10} {}", describe_subscription(&answer));
            Ok(())
        }
        TopicCommand::Subscriptions { name, json, server } => {
            let name = topic_name(&name)?;
            let client = Client::new(&server)?;
            let (_, answer) = client
                .json(client.request(Method::GET, &format!("/v1/topics/{name}/subscriptions")))
                .await?;
            let list = answer["subscriptions"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string_pretty(&Value::Array(list))?);
                return Ok(());
            }
            let mut table = Table::new();
            table.load_style(NOTHING);
            table.set_header(["ID", "ENDPOINT", "RAW", "FILTER"]);
            for s in &list {
                table.add_row([
                    s["id"].as_str().unwrap_or("?").to_string(),
                    endpoint_text(s),
                    s["raw_message_delivery"].to_string(),
                    filter_text(s),
                ]);
            }
            if list.is_empty() {
                eprintln!(
                    "No subscriptions of `{name}`. Add one with `wisp topic subscribe {name} --function F`."
                );
            }
            println!("{}", table.trim_fmt());
            Ok(())
        }
        TopicCommand::Unsubscribe { name, id, server } => {
            let name = topic_name(&name)?;
            if id.is_empty() || id.contains('/') {
                return Err(usage(format!("`{id}` is not a subscription id")));
            }
            let client = Client::new(&server)?;
            client
                .json(client.request(Method::DELETE, &format!("/v1/topics/{name}/subscriptions/{id}")))
                .await?;
            println!("removed subscription {id} of {name}");
            Ok(())
        }
        TopicCommand::Publish {
            name,
            message,
            attrs,
            number_attrs,
            server,
        } => {
            let name = topic_name(&name)?;
            let attributes = attributes(&attrs, &number_attrs)?;
            let message = if message == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| usage(format!("cannot read the message from standard input: {e}")))?;
                text
            } else {
                message
            };
            let mut body = json!({ "message": message });
            if !attributes.is_empty() {
                body["attributes"] = Value::Object(attributes);
            }
            let client = Client::new(&server)?;
            let request = client
                .request(Method::POST, &format!("/v1/topics/{name}/messages"))
                .json(&body);
            let (_, answer) = client.json(request).await?;
            println!("{}", answer["id"].as_str().unwrap_or_default());
            Ok(())
        }
    }
}

/// `created    topic orders`
pub fn describe_put(answer: &Value) -> String {
    format!(
        "{:<10} topic {}",
        answer["status"].as_str().unwrap_or("saved"),
        answer["topic"]["name"].as_str().unwrap_or("?"),
    )
}

/// `function resize`, `queue jobs` or `webhook https://…`.
fn endpoint_text(s: &Value) -> String {
    for kind in ["function", "queue", "webhook"] {
        if let Some(name) = s[kind].as_str() {
            return format!("{kind} {name}");
        }
    }
    "?".to_string()
}

/// The filter policy and its scope, or `-`.
fn filter_text(s: &Value) -> String {
    match &s["filter_policy"] {
        Value::Null => "-".to_string(),
        policy => match s["filter_policy_scope"].as_str() {
            Some("MessageBody") => format!("{policy} (body)"),
            _ => policy.to_string(),
        },
    }
}

/// `ID  queue jobs of orders, filter {…}`
pub fn describe_subscription(s: &Value) -> String {
    let mut text = format!(
        "subscription {} {} of {}",
        s["id"].as_str().unwrap_or("?"),
        endpoint_text(s),
        s["topic"].as_str().unwrap_or("?"),
    );
    if !s["filter_policy"].is_null() {
        text.push_str(&format!(", filter {}", filter_text(s)));
    }
    if s["raw_message_delivery"] == true {
        text.push_str(", raw");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_checked_before_any_request() {
        assert!(topic_name("Bad_Name").is_err());
        let body = subscription_body(
            Subscriber::Queue("jobs"),
            Some(r#"{"color": ["red"]}"#),
            None,
            true,
        )
        .unwrap();
        assert_eq!(
            body,
            json!({"queue": "jobs", "filter_policy": {"color": ["red"]},
                   "filter_policy_scope": "MessageAttributes", "raw_message_delivery": true})
        );
        let f = Subscriber::Function("f");
        let err = subscription_body(f, Some("{nope"), None, false).unwrap_err();
        assert!(err.to_string().contains("--filter-policy is not JSON"), "{err}");
        assert!(subscription_body(f, Some("{}"), Some("Body"), false).is_err());
        let hook = subscription_body(Subscriber::Webhook("https://example.com/h"), None, None, true).unwrap();
        assert_eq!(
            hook,
            json!({"webhook": "https://example.com/h", "raw_message_delivery": true})
        );
        let err =
            subscription_body(Subscriber::Webhook("ftp://example.com/h"), None, None, false).unwrap_err();
        assert!(err.to_string().contains("http:// or https://"), "{err}");
        assert!(Subscriber::of(Some("f"), Some("q"), None).is_err());
        let attrs = attributes(&["color=red".into()], &["size=20".into()]).unwrap();
        assert_eq!(attrs["size"], json!({"DataType": "Number", "StringValue": "20"}));
        assert!(attributes(&["nokey".into()], &[]).is_err());
        assert!(attributes(&[], &["size=big".into()]).is_err());
    }
}
