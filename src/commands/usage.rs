//! `wisp usage`: what a namespace's invocations used and cost, over a period.

use crate::client::{Client, ServerArg};
use clap::Args;
use comfy_table::{Table, presets::NOTHING};
use reqwest::Method;
use serde_json::Value;

/// Show usage and its cost: requests, errors, billed time and GB-seconds, by function
/// (or version, day, hour), this calendar month unless --from/--to say otherwise.
#[derive(Args, Debug)]
pub struct UsageArgs {
    /// The first day or time (YYYY-MM-DD or RFC 3339, UTC).
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// The day or time after the last (exclusive).
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// Rows per `namespace`, `function`, `version`, `day` or `hour`.
    #[arg(long, default_value = "function", value_parser = ["namespace", "function", "version", "day", "hour"])]
    pub by: String,
    /// Only this function.
    #[arg(long, value_name = "NAME")]
    pub function: Option<String>,
    /// Print the API's JSON.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV (a header row, then one row per group; no total row).
    #[arg(long)]
    pub csv: bool,
    #[command(flatten)]
    pub server: ServerArg,
}

pub async fn run(args: UsageArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    let mut query = vec![("group_by", args.by.clone())];
    for (name, value) in [
        ("from", &args.from),
        ("to", &args.to),
        ("function", &args.function),
    ] {
        if let Some(value) = value {
            query.push((name, value.clone()));
        }
    }
    let (_, answer) = client
        .json(client.request(Method::GET, "/v1/usage").query(&query))
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let rows = answer["rows"].as_array().cloned().unwrap_or_default();
    let key = |r: &Value| -> String {
        let text = |k: &str| r[k].as_str().map(str::to_string);
        match args.by.as_str() {
            "namespace" => text("namespace"),
            "function" => text("function"),
            "version" => text("function")
                .zip(text("version"))
                .map(|(f, v)| format!("{f}@{}", &v[..v.len().min(12)])),
            _ => text("period"),
        }
        .unwrap_or_else(|| "-".to_string())
    };
    let cells = |r: &Value| {
        [
            r["requests"].to_string(),
            r["errors"].to_string(),
            r["billed_ms"].to_string(),
            r["gb_seconds"].as_str().unwrap_or("0").to_string(),
            r["cost"].as_str().map(|c| format!("${c}")).unwrap_or_default(),
            r["reserved_gb_seconds"].as_str().unwrap_or("0").to_string(),
            r["capacity_gb_seconds"].as_str().unwrap_or("0").to_string(),
        ]
    };
    let header = [
        args.by.to_uppercase(),
        "REQUESTS".into(),
        "ERRORS".into(),
        "BILLED MS".into(),
        "GB-S".into(),
        "COST".into(),
        "RESERVED GB-S".into(),
        "CAPACITY GB-S".into(),
    ];
    if args.csv {
        println!("{}", header.join(",").to_lowercase().replace(' ', "_"));
        for r in &rows {
            let mut line = vec![key(r)];
            line.extend(
                cells(r)
                    .into_iter()
                    .map(|c| c.trim_start_matches('$').to_string()),
            );
            println!("{}", line.join(","));
        }
        return Ok(());
    }
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.set_header(header);
    for r in &rows {
        let mut row = vec![key(r)];
        row.extend(cells(r));
        table.add_row(row);
    }
    let mut total = vec!["TOTAL".to_string()];
    total.extend(cells(&answer["total"]));
    table.add_row(total);
    println!("{}", table.trim_fmt());
    eprintln!(
        "{} to {}; prices: ${} per request, ${} per GB-s",
        answer["from"].as_str().unwrap_or("?"),
        answer["to"].as_str().unwrap_or("?"),
        answer["prices"]["per_request"].as_str().unwrap_or("?"),
        answer["prices"]["per_gb_second"].as_str().unwrap_or("?")
    );
    if rows.is_empty() {
        eprintln!("No usage in this period.");
    }
    Ok(())
}
