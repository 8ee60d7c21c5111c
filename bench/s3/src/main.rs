//! `wisp-bench-s3`: the tools of `bench/s3/run.sh`, one binary with three subcommands.
//!
//! ```text
//! wisp-bench-s3 serve-s3s-fs ROOT ADDR ACCESS_KEY SECRET
//! wisp-bench-s3 load ENDPOINT ACCESS_KEY SECRET BUCKET SIZE CONCURRENCY SECONDS put|get
//! wisp-bench-s3 put-big ENDPOINT ACCESS_KEY SECRET BUCKET BYTES
//! ```
//!
//! SIZE and BYTES are bytes, or a number with `k`, `m` or `g` (KiB, MiB, GiB).
//! Run with `cargo run --release -p wisp-bench-s3 -- load http://127.0.0.1:9000 KEY SECRET bench 4k 16 5 put`.

mod client;
mod load;
mod put_big;
mod serve;
mod sigv4;

use anyhow::{Context as _, Result, bail};
use client::Endpoint;
use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage:
  wisp-bench-s3 serve-s3s-fs ROOT ADDR ACCESS_KEY SECRET
  wisp-bench-s3 load ENDPOINT ACCESS_KEY SECRET BUCKET SIZE CONCURRENCY SECONDS put|get
  wisp-bench-s3 put-big ENDPOINT ACCESS_KEY SECRET BUCKET BYTES";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wisp-bench-s3: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &[&str]) -> Result<()> {
    match args {
        ["serve-s3s-fs", root, addr, access, secret] => {
            serve::run(Path::new(root), addr, access, secret).await
        }
        [
            "load",
            endpoint,
            access,
            secret,
            bucket,
            size,
            concurrency,
            seconds,
            op,
        ] => {
            load::run(load::Load {
                endpoint: Endpoint::new(endpoint, access, secret)?,
                bucket: (*bucket).to_owned(),
                size: usize::try_from(parse_size(size)?)?,
                concurrency: concurrency
                    .parse()
                    .with_context(|| format!("invalid concurrency `{concurrency}`"))?,
                seconds: parse_seconds(seconds)?,
                op: op.parse()?,
            })
            .await
        }
        ["put-big", endpoint, access, secret, bucket, bytes] => {
            put_big::run(
                &Endpoint::new(endpoint, access, secret)?,
                bucket,
                parse_size(bytes)?,
            )
            .await
        }
        _ => bail!("{USAGE}"),
    }
}

/// `4096`, `4k`, `1m`, `1g` (powers of 1024; `KiB`-style suffixes too).
fn parse_size(s: &str) -> Result<u64> {
    let lower = s.to_ascii_lowercase();
    let trimmed = lower.trim_end_matches("ib").trim_end_matches('b');
    let (digits, shift) = match trimmed.as_bytes().last() {
        Some(b'k') => (&trimmed[..trimmed.len() - 1], 10),
        Some(b'm') => (&trimmed[..trimmed.len() - 1], 20),
        Some(b'g') => (&trimmed[..trimmed.len() - 1], 30),
        _ => (trimmed, 0),
    };
    let n: u64 = digits
        .parse()
        .with_context(|| format!("invalid size `{s}`: use bytes or 4k, 1m, 1g"))?;
    n.checked_shl(shift)
        .filter(|v| v >> shift == n)
        .with_context(|| format!("size `{s}` is too large"))
}

/// `5`, `5s`, `0.5`.
fn parse_seconds(s: &str) -> Result<f64> {
    let seconds: f64 = s
        .trim_end_matches('s')
        .parse()
        .with_context(|| format!("invalid duration `{s}`: use seconds"))?;
    if !(seconds.is_finite() && seconds > 0.0) {
        bail!("invalid duration `{s}`: must be positive");
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("4k").unwrap(), 4096);
        assert_eq!(parse_size("4KiB").unwrap(), 4096);
        assert_eq!(parse_size("1m").unwrap(), 1 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert!(parse_size("x").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_seconds("5s").unwrap(), 5.0);
        assert_eq!(parse_seconds("0.5").unwrap(), 0.5);
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
    }
}
