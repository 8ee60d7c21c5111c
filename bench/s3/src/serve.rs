//! `serve-s3s-fs`: the reference. `s3s_fs::FileSystem`, the file backend that ships with the
//! protocol crate Wisp's listener is built on, behind s3s's own `S3Service` with
//! `SimpleAuth` (so it verifies every SigV4 signature, as Wisp does), served by hyper the
//! way the `s3s-fs` binary serves it: auto HTTP/1 + HTTP/2, one task per connection.

use anyhow::{Context as _, Result, anyhow};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use std::path::Path;

pub async fn run(root: &Path, addr: &str, access_key: &str, secret: &str) -> Result<()> {
    std::fs::create_dir_all(root).with_context(|| format!("failed to create `{}`", root.display()))?;
    // s3s_fs::Error implements Debug only.
    let fs = s3s_fs::FileSystem::new(root)
        .map_err(|err| anyhow!("failed to open `{}`: {err:?}", root.display()))?;
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(access_key, secret));
    let service = builder.build();

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to bind {addr}"))?;
    eprintln!("Serving S3 on http://{}/", listener.local_addr()?);
    let http = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: say so and keep serving.
                eprintln!("accept failed: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = http
            .serve_connection(TokioIo::new(stream), service.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}
