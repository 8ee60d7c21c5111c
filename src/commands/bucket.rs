//! `wisp bucket`: the namespace's buckets of object storage — list, create (with an
//! optional quota) and remove. `wisp object` handles what they hold.

use crate::client::{Client, ServerArg};
use crate::exit::{CliError, Exit};
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::NOTHING};
use reqwest::Method;
use serde_json::{Value, json};
use wisp_core::BucketName;
use wisp_core::size_text;

/// Manage buckets (object storage, also served as S3 by `wisp serve --s3-listen`).
#[derive(Args, Debug)]
pub struct BucketArgs {
    #[command(subcommand)]
    pub command: BucketCommand,
}

#[derive(Subcommand, Debug)]
pub enum BucketCommand {
    /// List the buckets, with the objects and bytes each holds.
    Ls {
        /// Print the API's bucket objects as JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Create a bucket.
    Create {
        /// The bucket's name: 3 to 63 of lowercase letters, digits, '.' and '-'.
        name: String,
        /// The most bytes its objects may hold together (`10GiB`, `500MiB`, bytes).
        #[arg(long, value_name = "BYTES", value_parser = size_text::parse)]
        quota: Option<u64>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Delete empty buckets.
    Rm {
        /// The buckets to delete.
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        server: ServerArg,
    },
}

/// A bucket name from the command line, checked before any request is made.
pub fn bucket_name(name: &str) -> anyhow::Result<BucketName> {
    BucketName::new(name).map_err(|e| {
        CliError::new(Exit::Usage, e.to_string())
            .hint("a bucket name is 3 to 63 of lowercase letters, digits, '.' and '-', such as `photos`")
            .into()
    })
}

pub async fn run(args: BucketArgs) -> anyhow::Result<()> {
    match args.command {
        BucketCommand::Ls { json, server } => ls(&server, json).await,
        BucketCommand::Create { name, quota, server } => {
            let name = bucket_name(&name)?;
            if quota == Some(0) {
                return Err(CliError::new(Exit::Usage, "--quota must be at least 1 byte")
                    .hint("leave --quota out for a bucket without a quota of its own")
                    .into());
            }
            let client = Client::new(&server)?;
            let mut request = client.request(Method::PUT, &format!("/v1/buckets/{name}"));
            if let Some(quota) = quota {
                request = request.json(&json!({ "quota_bytes": quota }));
            }
            client.json(request).await?;
            match quota {
                Some(q) => println!("created bucket {name} (quota {})", size_text::format(q)),
                None => println!("created bucket {name}"),
            }
            Ok(())
        }
        BucketCommand::Rm { names, server } => {
            let names = names
                .iter()
                .map(|n| bucket_name(n))
                .collect::<anyhow::Result<Vec<_>>>()?;
            Client::new(&server)?
                .remove_each("/v1/buckets", "bucket", &names)
                .await
        }
    }
}

async fn ls(server: &ServerArg, json: bool) -> anyhow::Result<()> {
    let client = Client::new(server)?;
    let (_, answer) = client.json(client.request(Method::GET, "/v1/buckets")).await?;
    let buckets = answer["buckets"].as_array().cloned().unwrap_or_default();
    if json {
        println!("{}", serde_json::to_string_pretty(&Value::Array(buckets))?);
        return Ok(());
    }
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.set_header(["NAME", "OBJECTS", "SIZE", "QUOTA", "CREATED"]);
    for b in &buckets {
        table.add_row([
            b["name"].as_str().unwrap_or("?").to_string(),
            b["objects"].to_string(),
            b["bytes"].as_u64().map_or_else(|| "?".into(), size_text::format),
            b["quota_bytes"]
                .as_u64()
                .map_or_else(|| "-".into(), size_text::format),
            b["created_at"].as_str().unwrap_or("").to_string(),
        ]);
    }
    if buckets.is_empty() {
        eprintln!("No buckets. Create one with `wisp bucket create NAME`.");
    }
    println!("{}", table.trim_fmt());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: BucketCommand,
    }

    #[test]
    fn the_arguments_are_well_formed() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from(["bucket", "create", "photos", "--quota", "10GiB"]);
        let BucketCommand::Create { quota, .. } = cli.command else {
            panic!("not a create");
        };
        assert_eq!(quota, Some(10 << 30));
    }

    #[test]
    fn bucket_names_are_checked_before_any_request() {
        let e = bucket_name("Bad_Name").unwrap_err().to_string();
        assert!(e.contains("bucket name `Bad_Name`"), "{e}");
        assert!(bucket_name("photos").is_ok());
    }
}
