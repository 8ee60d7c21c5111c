//! `wisp trace ROOT`: the invocations one request caused (`GET /v1/traces/{root}`),
//! drawn as a tree from the records alone: each invocation indented under its parent
//! (the invocation that called it or sent what it ran for), one line each.

use crate::client::{Client, ServerArg};
use crate::exit::{CliError, Exit};
use clap::Args;
use reqwest::Method;
use serde_json::Value;
use std::collections::HashMap;

/// Print a trace's invocations as a tree: who called or caused whom, when each started
/// (from the first), how long it ran, cold or warm, and how it ended.
#[derive(Args, Debug)]
pub struct TraceArgs {
    /// The trace root, X-Ray's `1-<8 hex>-<24 hex>` (`trace` in an invocation's record,
    /// `Root=` of the `X-Amzn-Trace-Id` a function sees).
    pub root: String,
    /// Print the API's JSON instead of the tree.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub async fn run(args: TraceArgs) -> anyhow::Result<()> {
    if !wisp_core::trace::is_root(&args.root) {
        return Err(CliError::new(
            Exit::Usage,
            format!(
                "`{}` is not a trace root: use X-Ray's form `1-<8 hex digits>-<24 hex digits>`",
                args.root
            ),
        )
        .into());
    }
    let client = Client::new(&args.server)?;
    let path = format!("/v1/traces/{}", args.root);
    let (_, answer) = client.json(client.request(Method::GET, &path)).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let invocations = answer["invocations"].as_array().cloned().unwrap_or_default();
    for line in tree(&invocations) {
        println!("{line}");
    }
    Ok(())
}

/// The tree's lines: each invocation (oldest first among its siblings) followed by
/// those it caused, indented two spaces a level. An invocation whose parent is not in
/// the trace's records (not recorded, trimmed, or none) is a root.
fn tree(invocations: &[Value]) -> Vec<String> {
    let id = |i: &Value| i["id"].as_str().unwrap_or_default().to_owned();
    // An async invocation's attempts share an id: what it caused hangs off the first.
    let mut first: HashMap<String, usize> = HashMap::new();
    for (n, i) in invocations.iter().enumerate() {
        first.entry(id(i)).or_insert(n);
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); invocations.len()];
    let mut roots = Vec::new();
    for (n, i) in invocations.iter().enumerate() {
        match i["parent"].as_str().and_then(|p| first.get(p)) {
            Some(&p) if p != n => children[p].push(n),
            _ => roots.push(n),
        }
    }
    let start = invocations
        .iter()
        .filter_map(|i| i["started_ms"].as_i64())
        .min()
        .unwrap_or(0);
    let mut lines = Vec::new();
    let mut shown = vec![false; invocations.len()];
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&n| (n, 0)).collect();
    // A cycle in the parents (a corrupt record) leaves some unreached: shown as roots.
    while let Some((n, depth)) = stack
        .pop()
        .or_else(|| shown.iter().position(|s| !s).map(|n| (n, 0)))
    {
        if std::mem::replace(&mut shown[n], true) {
            continue;
        }
        lines.push(format!("{}{}", "  ".repeat(depth), line(&invocations[n], start)));
        stack.extend(children[n].iter().rev().map(|&c| (c, depth + 1)));
    }
    lines
}

/// `FUNCTION vVERSION ID +STARTms RUNms cold|warm [ERROR]`.
fn line(i: &Value, start: i64) -> String {
    let offset = i["started_ms"].as_i64().map_or(0, |ms| ms - start);
    let run = i["run_us"].as_u64().unwrap_or(0) as f64 / 1000.0;
    let cold = if i["cold"] == Value::Bool(true) {
        "cold"
    } else {
        "warm"
    };
    let mut line = format!(
        "{} v{} {} +{offset}ms {run:.2}ms {cold}",
        i["function"].as_str().unwrap_or("-"),
        i["version"],
        i["id"].as_str().unwrap_or("-"),
    );
    if let Some(error) = i["error"].as_str() {
        line.push_str(&format!(" error: {error}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(id: &str, function: &str, parent: Option<&str>, started_ms: i64) -> Value {
        json!({
            "id": id, "function": function, "version": 1, "parent": parent,
            "started_ms": started_ms, "run_us": 1500, "cold": started_ms == 1000, "error": null,
        })
    }

    #[test]
    fn children_are_indented_under_their_parent() {
        let lines = tree(&[
            record("a", "chain-a", None, 1000),
            record("b", "chain-b", Some("a"), 1002),
            record("c", "chain-c", Some("b"), 1003),
            record("e", "event-kit", Some("a"), 1004),
            // Its parent is not among the records: a root.
            record("x", "orphan", Some("gone"), 1005),
        ]);
        assert_eq!(
            lines,
            [
                "chain-a v1 a +0ms 1.50ms cold",
                "  chain-b v1 b +2ms 1.50ms warm",
                "    chain-c v1 c +3ms 1.50ms warm",
                "  event-kit v1 e +4ms 1.50ms warm",
                "orphan v1 x +5ms 1.50ms warm",
            ]
        );
    }

    #[test]
    fn a_cycle_is_shown_once_each() {
        let mut failed = record("q", "q", Some("p"), 1001);
        failed["error"] = json!("timeout");
        let lines = tree(&[record("p", "p", Some("q"), 1000), failed]);
        assert_eq!(
            lines,
            [
                "p v1 p +0ms 1.50ms cold",
                "  q v1 q +1ms 1.50ms warm error: timeout"
            ]
        );
    }
}
