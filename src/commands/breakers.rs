//! `wisp breakers`: the circuit breakers of the namespace (`GET /v1/breakers`), one row
//! per caller → callee pair with its state and the calls its window holds.

use crate::client::{Client, ServerArg};
use clap::Args;
use comfy_table::{Table, presets::NOTHING};
use reqwest::Method;
use serde_json::Value;

/// List the circuit breakers: who calls whom, open or closed, and recent failures.
#[derive(Args, Debug)]
pub struct BreakersArgs {
    /// Print the API's breaker objects as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub async fn run(args: BreakersArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    let (_, answer) = client.json(client.request(Method::GET, "/v1/breakers")).await?;
    let breakers = answer["breakers"].as_array().cloned().unwrap_or_default();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&Value::Array(breakers))?);
        return Ok(());
    }
    if breakers.is_empty() {
        eprintln!(
            "No circuit breakers yet: one is made on the first guarded call (a function calling another, a destination, a topic delivery)."
        );
        return Ok(());
    }
    println!("{}", table(&breakers).trim_fmt());
    Ok(())
}

/// One row per breaker: `CALLER  CALLEE  STATE  FAILURES/CALLS  UNTIL`.
fn table(breakers: &[Value]) -> Table {
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.set_header(["CALLER", "CALLEE", "STATE", "FAILED", "HALF-OPEN AT"]);
    for b in breakers {
        let text = |key: &str| b[key].as_str().unwrap_or("-").to_string();
        table.add_row([
            text("caller"),
            text("callee"),
            text("state"),
            format!("{}/{}", b["failures"], b["calls"]),
            text("half_open_at"),
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_breaker_is_a_row() {
        let rows = table(&[json!({
            "caller": "topic:default/orders",
            "callee": "webhook:http://127.0.0.1:9/h",
            "state": "open",
            "calls": 10,
            "failures": 10,
            "half_open_at": "2026-12-04T13:00:05.000Z"
        })])
        .trim_fmt();
        assert!(rows.contains("topic:default/orders"), "{rows}");
        assert!(rows.contains("open"), "{rows}");
        assert!(rows.contains("10/10"), "{rows}");
    }
}
