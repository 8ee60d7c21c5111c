//! `wisp alarms`: the namespace's alarms — list them with their states (`wisp alarms`),
//! show one with its rule and its history, remove them. Alarms are written by `wisp
//! deploy` from wisp.toml's `[alarms.NAME]` (or `PUT /v1/alarms/{name}`); docs/alarms.md.

use crate::client::{Client, ServerArg};
use crate::exit::{CliError, Exit};
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::NOTHING};
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;
use wisp_core::{AlarmName, AlarmSpec};

/// List the alarms and their states (`wisp alarms`), show one with its history, or
/// remove them.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AlarmsArgs {
    #[command(subcommand)]
    pub command: Option<AlarmsCommand>,
    /// Print the API's alarm objects as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Subcommand, Debug)]
pub enum AlarmsCommand {
    /// List the alarms: each one's state, condition and since when (as `wisp alarms`).
    Ls {
        /// Print the API's alarm objects as JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Show an alarm: its state and why, its rule and actions, and its changes of
    /// state, newest first, with what went wrong carrying out their actions.
    Show {
        /// The alarm's name.
        name: String,
        /// Print the API's alarm object, history included, as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Delete alarms, with their history. One that wisp.toml declares comes back with
    /// the next `wisp deploy`: remove its `[alarms.NAME]` table too.
    Rm {
        /// The alarms to delete.
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        server: ServerArg,
    },
}

/// An alarm name from the command line, checked before any request is made.
fn alarm_name(name: &str) -> anyhow::Result<AlarmName> {
    AlarmName::new(name).map_err(|e| CliError::new(Exit::Usage, e.to_string()).into())
}

pub async fn run(args: AlarmsArgs) -> anyhow::Result<()> {
    match args.command {
        None => ls(&args.server, args.json).await,
        Some(AlarmsCommand::Ls { json, server }) => ls(&server, json).await,
        Some(AlarmsCommand::Show { name, json, server }) => {
            let name = alarm_name(&name)?;
            let client = Client::new(&server)?;
            let request = client.request(Method::GET, &format!("/v1/alarms/{name}"));
            let (_, alarm) = client.json(request).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&alarm)?);
            } else {
                print!("{}", show(&alarm));
            }
            Ok(())
        }
        Some(AlarmsCommand::Rm { names, server }) => {
            let names = names
                .iter()
                .map(|n| alarm_name(n))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let client = Client::new(&server)?;
            client.remove_each("/v1/alarms", "alarm", &names).await
        }
    }
}

async fn ls(server: &ServerArg, json: bool) -> anyhow::Result<()> {
    let client = Client::new(server)?;
    let (_, answer) = client.json(client.request(Method::GET, "/v1/alarms")).await?;
    let alarms = answer["alarms"].as_array().cloned().unwrap_or_default();
    if json {
        println!("{}", serde_json::to_string_pretty(&Value::Array(alarms))?);
        return Ok(());
    }
    if alarms.is_empty() {
        eprintln!(
            "No alarms. Declare one in wisp.toml as [alarms.NAME] and run `wisp deploy` (see docs/alarms.md)."
        );
        return Ok(());
    }
    println!("{}", table(&alarms).trim_fmt());
    Ok(())
}

/// One row per alarm: `NAME  STATE  CONDITION  SINCE`.
fn table(alarms: &[Value]) -> Table {
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.set_header(["NAME", "STATE", "CONDITION", "SINCE"]);
    for a in alarms {
        let text = |key: &str| a[key].as_str().unwrap_or("?").to_string();
        table.add_row([
            text("name"),
            text("state"),
            text("condition"),
            text("state_since"),
        ]);
    }
    table
}

/// `created    alarm api-errors           error_rate of function api > 0.05 for …`
pub fn describe_put(answer: &Value) -> String {
    let alarm = &answer["alarm"];
    format!(
        "{:<10} alarm {:<20} {}",
        answer["status"].as_str().unwrap_or("saved"),
        alarm["name"].as_str().unwrap_or("?"),
        alarm["condition"].as_str().unwrap_or_default(),
    )
}

/// The alarm of `GET /v1/alarms/{name}`: a heading with its state, its rule and
/// actions, then its history, newest first.
fn show(alarm: &Value) -> String {
    let text = |value: &Value| value.as_str().unwrap_or("?").to_string();
    // Read as core reads it, for its actions and its unit; a newer server's rule that
    // does not read is shown by its condition alone.
    let spec = serde_json::from_value::<AlarmSpec>(alarm["spec"].clone()).ok();
    let mut out = format!(
        "{} is {} since {}\n",
        text(&alarm["name"]),
        text(&alarm["state"]),
        text(&alarm["state_since"])
    );
    let mut line = |key: &str, value: String| out.push_str(&format!("  {key:<13} {value}\n"));
    line("reason", text(&alarm["reason"]));
    if alarm["judged"].is_object() {
        // The latest period, whether or not it changed the state.
        line(
            "last judged",
            format!(
                "{}: {}",
                text(&alarm["judged"]["at"]),
                text(&alarm["judged"]["reason"])
            ),
        );
    }
    line("condition", text(&alarm["condition"]));
    line("missing data", text(&alarm["spec"]["missing_data"]));
    if let Some(spec) = &spec {
        let actions: Vec<String> = spec
            .actions
            .iter()
            .map(|a| match a.on.as_slice() {
                [] => a.target.to_string(),
                on => {
                    let on: Vec<&str> = on.iter().map(|s| s.as_str()).collect();
                    format!("{} (on {})", a.target, on.join(", "))
                }
            })
            .collect();
        line(
            "actions",
            if actions.is_empty() {
                "none".to_string()
            } else {
                actions.join("; ")
            },
        );
        if let Some(description) = &spec.description {
            line("description", description.clone());
        }
    }
    line("namespace", text(&alarm["namespace"]));
    line(
        "created",
        format!(
            "{}, updated {}",
            text(&alarm["created_at"]),
            text(&alarm["updated_at"])
        ),
    );
    let history = alarm["history"].as_array().cloned().unwrap_or_default();
    if history.is_empty() {
        out.push_str("\nNo changes of state yet.\n");
        return out;
    }
    let kept = if alarm["transitions"].as_u64() > Some(history.len() as u64) {
        format!(", the latest {} of {}", history.len(), alarm["transitions"])
    } else {
        String::new()
    };
    out.push_str(&format!("\nHistory, newest first{kept}:\n"));
    let notified = alarm["notified"].as_u64().unwrap_or(0);
    let has_actions = spec.as_ref().is_some_and(|s| !s.actions.is_empty());
    for t in &history {
        let mut entry = format!(
            "  {}  {} → {}  {}",
            text(&t["at"]),
            text(&t["from"]),
            text(&t["to"]),
            text(&t["reason"])
        );
        if let Some(value) = t["value"].as_f64() {
            entry.push_str(&format!(" (value {})", value_text(spec.as_ref(), value)));
        }
        out.push_str(&entry);
        out.push('\n');
        if has_actions && t["seq"].as_u64().is_some_and(|seq| seq > notified) {
            out.push_str("      actions not carried out yet\n");
        }
        for error in t["action_errors"].as_array().into_iter().flatten() {
            out.push_str(&format!("      action failed: {}\n", text(error)));
        }
    }
    out
}

/// A datapoint in its metric's unit: a duration for duration metrics (`250ms`).
fn value_text(spec: Option<&AlarmSpec>, value: f64) -> String {
    // To the millisecond: `5m 123ms`, not `5m 123ms 456us 789ns`.
    let duration = Duration::try_from_secs_f64((value * 1000.0).round() / 1000.0).ok();
    match (spec, duration) {
        (Some(spec), Some(d)) if spec.metric.is_duration() => humantime::format_duration(d).to_string(),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alarm() -> Value {
        json!({
            "name": "api-slow",
            "namespace": "default",
            "state": "ALARM",
            "reason": "2 of the last 3 datapoints crossed the threshold",
            "state_since": "2026-12-04T13:02:00.000Z",
            "condition": "p99_duration of function api > 250ms for 2 of 3 periods of 1m",
            "spec": {
                "metric": "p99_duration", "function": "api", "comparison": ">", "threshold": 0.25,
                "period": "1m", "evaluation_periods": 3, "datapoints_to_alarm": 2,
                "missing_data": "not_breaching",
                "actions": [{"webhook": "https://hooks.example.com/w"}, {"function": "pager", "on": ["ALARM"]}]
            },
            "created_at": "2026-12-04T12:00:00.000Z",
            "updated_at": "2026-12-04T12:30:00.000Z",
            "transitions": 2,
            "notified": 1,
            "history": [
                {"seq": 2, "at": "2026-12-04T13:02:00.000Z", "from": "OK", "to": "ALARM",
                 "reason": "2 of the last 3 datapoints crossed the threshold", "value": 0.4, "action_errors": []},
                {"seq": 1, "at": "2026-12-04T12:01:00.000Z", "from": "INSUFFICIENT_DATA", "to": "OK",
                 "reason": "no datapoint crossed the threshold", "value": null,
                 "action_errors": ["webhook https://hooks.example.com/w: HTTP 500"]}
            ]
        })
    }

    #[test]
    fn an_alarm_shows_its_rule_and_history_newest_first() {
        let out = show(&alarm());
        assert!(
            out.starts_with("api-slow is ALARM since 2026-12-04T13:02:00.000Z\n"),
            "{out}"
        );
        assert!(out.contains("  missing data  not_breaching\n"), "{out}");
        assert!(
            out.contains("  actions       webhook https://hooks.example.com/w; function pager (on ALARM)\n"),
            "{out}"
        );
        let newer = out.find("OK → ALARM").unwrap();
        let older = out.find("INSUFFICIENT_DATA → OK").unwrap();
        assert!(newer < older, "{out}");
        assert!(out.contains("(value 400ms)"), "{out}");
        assert!(out.contains("      actions not carried out yet\n"), "{out}");
        assert!(
            out.contains("      action failed: webhook https://hooks.example.com/w: HTTP 500\n"),
            "{out}"
        );
        assert!(!out.contains("last judged"), "{out}");
        let mut fresh = alarm();
        fresh["history"] = json!([]);
        fresh["judged"] = json!({"at": "2026-12-04T13:05:00.000Z", "value": null, "state": "ALARM",
            "reason": "no data in the last 3 periods: no invocation of `api` ended"});
        let out = show(&fresh);
        assert!(out.ends_with("\nNo changes of state yet.\n"), "{out}");
        assert!(
            out.contains("  last judged   2026-12-04T13:05:00.000Z: no data in the last 3 periods: no invocation of `api` ended\n"),
            "{out}"
        );
    }

    #[test]
    fn an_alarm_is_a_row_and_a_put_is_a_line() {
        let rows = table(&[alarm()]).trim_fmt();
        assert!(rows.trim_start().starts_with("NAME"), "{rows}");
        assert!(rows.contains("api-slow") && rows.contains("ALARM"), "{rows}");
        let line = describe_put(&json!({"status": "unchanged", "alarm": alarm()}));
        assert!(
            line.starts_with("unchanged  alarm api-slow             p99_duration of function api"),
            "{line}"
        );
        assert!(alarm_name("Api_Slow").is_err());
    }
}
