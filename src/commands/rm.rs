//! `wisp rm`: delete functions.

use super::function_name;
use crate::client::{Client, ServerArg};
use clap::Args;
use reqwest::Method;

/// Delete functions, with their versions and logs.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// The functions to delete.
    #[arg(required = true)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub server: ServerArg,
}

pub async fn run(args: RmArgs) -> anyhow::Result<()> {
    let names = args
        .names
        .iter()
        .map(|n| function_name(n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let client = Client::new(&args.server)?;
    for name in names {
        client
            .json(client.request(Method::DELETE, &format!("/v1/functions/{name}")))
            .await?;
        println!("removed {name}");
    }
    Ok(())
}
