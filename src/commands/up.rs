//! `wisp up`: serve and deploy an app in one process, for local work; with `--watch`,
//! redeploy it when its files change ([`super::watch`]).

use super::deploy::{deploy_app, load_manifest};
use super::serve::{ServeArgs, init_logging};
use crate::client::{Client, ServerArg};
use crate::node::{Node, shutdown_signal};
use clap::Args;
use std::path::PathBuf;

/// Run a server and deploy the app in DIR to it.
#[derive(Args, Debug)]
pub struct UpArgs {
    /// The app's directory, or its wisp.toml.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Redeploy the app when its wisp.toml or a function's source changes.
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    pub serve: ServeArgs,
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    // A broken manifest fails before the server starts.
    let manifest = load_manifest(&args.dir)?;
    if args.serve.tls_cert.is_some() {
        anyhow::bail!(
            "`wisp up` serves plain HTTP for local work; for HTTPS run `wisp serve --tls-cert FILE --tls-key FILE` and `wisp deploy`"
        );
    }
    init_logging();
    let node = Node::start(args.serve.node_config()).await?;
    let addr = node.addr();
    let s3_line = node.s3_serving_line();
    let dashboard_line = node.dashboard_line(&args.serve.data_dir);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let signal = shutdown_signal();
    let server = tokio::spawn(node.serve(async move {
        tokio::select! {
            () = signal => {}
            _ = stopped => {}
        }
    }));
    let client = Client::new(&ServerArg::local(
        format!("http://{addr}"),
        args.serve.data_dir.clone(),
    ))?;
    if let Err(e) = deploy_app(&client, &manifest, false).await {
        let _ = stop.send(());
        let _ = server.await;
        return Err(e);
    }
    if let Some(line) = s3_line {
        eprintln!("{line}");
    }
    eprintln!("Serving HTTP on http://{addr}/");
    eprintln!("{dashboard_line}");
    let watcher = args.watch.then(|| {
        let (path, data_dir) = (args.dir.clone(), args.serve.data_dir.clone());
        tokio::spawn(async move { super::watch::watch(&client, &path, &data_dir).await })
    });
    server.await??;
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    drop(stop);
    Ok(())
}
