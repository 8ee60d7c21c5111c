//! `wisp logs`: a function's recent log lines, filtered; with `-f`, followed as they are
//! written (server-sent events from `GET /v1/functions/{name}/logs?follow=true`) until
//! Ctrl-C, reconnecting from the last line seen when the connection drops.

use super::function_name;
use crate::client::{Client, ServerArg};
use crate::exit::{CliError, Exit};
use clap::Args;
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;

/// Print a function's recent log lines (what it wrote to stdout and stderr); with
/// `--follow`, keep printing new ones as they are written, until Ctrl-C.
#[derive(Args, Debug)]
#[command(disable_version_flag = true)] // `--version` is the filter here, not Wisp's
pub struct LogsArgs {
    /// The function's name.
    pub name: String,
    /// Keep printing lines as they are written, until Ctrl-C.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the lines of this invocation.
    #[arg(long, value_name = "ID")]
    pub invocation: Option<String>,
    /// Only the lines written by this version number.
    #[arg(long, value_name = "NUMBER")]
    pub version: Option<u32>,
    /// Only lines written at or after this time: RFC 3339 (`2026-01-02T03:04:05Z`) or a
    /// duration ago (`10m`, `2h`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only lines written at or before this time (as `--since`).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only lines holding this text (case-sensitive).
    #[arg(long, value_name = "TEXT")]
    pub contains: Option<String>,
    /// At most this many of the newest lines (with `--follow`: before the new ones).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print each line as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

/// How long to wait before reconnecting a followed log, at first and at most.
const RECONNECT_FIRST: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

pub async fn run(args: LogsArgs) -> anyhow::Result<()> {
    let name = function_name(&args.name)?;
    let client = Client::new(&args.server)?;
    let mut query = vec![("limit", args.limit.to_string())];
    let filters = [
        ("invocation", args.invocation.clone()),
        ("version", args.version.map(|v| v.to_string())),
        ("since", args.since.clone()),
        ("until", args.until.clone()),
        ("contains", args.contains.clone()),
    ];
    query.extend(filters.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    let path = format!("/v1/functions/{name}/logs");
    if !args.follow {
        let (_, answer) = client
            .json(client.request(Method::GET, &path).query(&query))
            .await?;
        for line in answer["lines"].as_array().into_iter().flatten() {
            print_line(line, args.json);
        }
        return Ok(());
    }
    query.push(("follow", "true".into()));
    tokio::select! {
        followed = follow(&client, &path, &query, args.json) => followed,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Prints the followed log until the server ends it (the function was deleted) or a
/// reconnect is refused; a dropped connection is resumed after the last line printed.
async fn follow(client: &Client, path: &str, query: &[(&str, String)], json: bool) -> anyhow::Result<()> {
    let mut last_id: Option<String> = None;
    let mut connected = false;
    let mut wait = RECONNECT_FIRST;
    loop {
        let mut request = client.request(Method::GET, path).query(query);
        if let Some(id) = &last_id {
            request = request.header("last-event-id", id);
        }
        let mut response = match client.stream(request).await {
            Ok(response) => response,
            // Down for a moment (a restart): try again. A refusal is final.
            Err(e) if connected && is_unreachable(&e) => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RECONNECT_MAX);
                continue;
            }
            Err(e) => return Err(e),
        };
        (connected, wait) = (true, RECONNECT_FIRST);
        let mut events = SseParser::default();
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                // Ended or dropped without an `end` event: resume.
                Ok(None) | Err(_) => break,
            };
            for event in events.push(&chunk) {
                match event.kind.as_str() {
                    "end" => return Ok(()),
                    "error" => {
                        return Err(CliError::new(
                            Exit::Failure,
                            format!("the server stopped following the log: {}", event.data),
                        )
                        .into());
                    }
                    _ => {}
                }
                if let Ok(line) = serde_json::from_str::<Value>(&event.data) {
                    print_line(&line, json);
                }
                if event.id.is_some() {
                    last_id = event.id;
                }
            }
        }
        // Without a cursor (no line yet), it starts over: nothing was printed.
        tokio::time::sleep(wait).await;
    }
}

fn is_unreachable(e: &anyhow::Error) -> bool {
    e.downcast_ref::<CliError>()
        .is_some_and(|e| e.exit == Exit::Unreachable)
}

fn print_line(line: &Value, json: bool) {
    if json {
        println!("{line}");
        return;
    }
    println!(
        "{} {} {:<6} {}",
        line["time"].as_str().unwrap_or(""),
        line["invocation_id"].as_str().unwrap_or(""),
        line["stream"].as_str().unwrap_or(""),
        line["line"].as_str().unwrap_or("")
    );
}

/// One server-sent event: its `event:` (empty for a plain message), `id:` and `data:`.
#[derive(Debug, Default, PartialEq, Eq)]
struct SseEvent {
    kind: String,
    id: Option<String>,
    data: String,
}

/// Server-sent events from a byte stream, as the HTML standard parses them: lines
/// ending in LF, CRLF or CR; a blank line dispatches; `:` lines are comments;
/// `data:` lines join with newlines. Enough for Wisp's own streams (no `retry:`).
#[derive(Default)]
struct SseParser {
    buffer: Vec<u8>,
    event: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// Feeds bytes, returning the events they complete.
    fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n' || b == b'\r') {
            // A CR at the very end may be the first half of a CRLF: wait for more.
            if self.buffer[end] == b'\r' && end + 1 == self.buffer.len() {
                break;
            }
            let skip = if self.buffer[end] == b'\r' && self.buffer.get(end + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            let line: Vec<u8> = self.buffer.drain(..end + skip).take(end).collect();
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                let event = std::mem::take(&mut self.event);
                if std::mem::take(&mut self.has_data) {
                    events.push(event);
                }
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line.as_ref(), ""),
            };
            match field {
                "" => {} // a comment (keep-alive)
                "event" => self.event.kind = value.to_string(),
                "id" => self.event.id = Some(value.to_string()),
                "data" => {
                    if self.has_data {
                        self.event.data.push('\n');
                    }
                    self.event.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_across_chunks_and_line_endings() {
        let mut parser = SseParser::default();
        assert!(parser.push(b": keep-alive\n\nid: 7\nda").is_empty());
        let events = parser.push(b"ta: {\"line\":\"a\"}\r\n\r\nevent: end\rdata: x\ndata: y\n\n");
        assert_eq!(
            events,
            [
                SseEvent {
                    kind: String::new(),
                    id: Some("7".into()),
                    data: "{\"line\":\"a\"}".into()
                },
                SseEvent {
                    kind: "end".into(),
                    id: None,
                    data: "x\ny".into()
                }
            ]
        );
        // A CR split from its LF by a chunk boundary ends one line, not two.
        assert!(parser.push(b"data: z\r").is_empty());
        assert_eq!(parser.push(b"\n\r\n").len(), 1);
    }
}
