//! `put-big`: one PUT of BYTES bytes whose body is generated as it is sent (1 MiB of
//! random bytes repeated), never held whole, with `Content-Length` set. Prints
//! `seconds=N`. `run.sh` samples the server's memory meanwhile: a server that buffers the
//! object grows by its size, one that streams it to disk by a few buffers.

use crate::client::{self, Endpoint, Generated};
use anyhow::{Result, bail};
use http::{Method, StatusCode};
use std::time::Instant;

const CHUNK: usize = 1 << 20;

pub async fn run(endpoint: &Endpoint, bucket: &str, bytes: u64) -> Result<()> {
    endpoint.ensure_bucket(bucket).await?;
    let chunk = client::random_bytes(CHUNK)?;
    let mut signer = endpoint.signer();
    let mut conn = endpoint.connect::<Generated>().await?;
    let path = format!("/{bucket}/big-{bytes}");
    let request = endpoint.request(&mut signer, Method::PUT, &path, Generated::new(chunk, bytes))?;
    let started = Instant::now();
    let response = client::send(&mut conn, request).await?;
    if response.status() != StatusCode::OK {
        bail!(
            "PUT {path} answered {}: {}",
            response.status(),
            client::text(response).await
        );
    }
    client::drain(response).await?;
    println!("seconds={:.3}", started.elapsed().as_secs_f64());
    Ok(())
}
