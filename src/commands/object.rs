//! `wisp object`: the objects of a bucket — list, put (a file or stdin), get (to a file
//! or stdout) and remove.
//!
//! Bytes stream both ways: a put reads the file as it sends it and a get writes each
//! chunk as it arrives, so an object of any size passes in constant memory. A transfer
//! over [`PROGRESS_OVER`] bytes shows a progress bar when stderr is a terminal.

use super::bucket::bucket_name;
use crate::client::{Client, ServerArg};
use crate::exit::{CliError, Exit};
use anyhow::Context;
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::NOTHING};
use indicatif::{ProgressBar, ProgressStyle};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde_json::Value;
use std::io::IsTerminal;
use std::path::Path;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::io::ReaderStream;
use wisp_core::BucketName;
use wisp_core::size_text;

/// Transfers larger than this show a progress bar (on a terminal).
const PROGRESS_OVER: u64 = 8 * 1024 * 1024;

/// How much of a file one chunk of an upload holds.
const CHUNK: usize = 256 * 1024;

/// What a key keeps unescaped in a URL path: `/` separates its segments there too.
const KEY_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Manage the objects of a bucket.
#[derive(Args, Debug)]
pub struct ObjectArgs {
    #[command(subcommand)]
    pub command: ObjectCommand,
}

#[derive(Subcommand, Debug)]
pub enum ObjectCommand {
    /// List a bucket's objects (every one, page after page, unless --limit).
    Ls {
        /// The bucket.
        bucket: String,
        /// Only keys that start with this.
        prefix: Option<String>,
        /// At most this many objects.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Print the API's object descriptions as JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Store a file (or stdin) as an object, replacing what the key held.
    Put {
        /// The bucket.
        bucket: String,
        /// The object's key (`2024/cat.jpg`).
        #[arg(value_name = "KEY")]
        object: String,
        /// The file to upload, or - for stdin.
        #[arg(value_name = "FILE|-")]
        file: String,
        /// The object's content type; guessed from the key's (or file's) extension
        /// when not given, else application/octet-stream.
        #[arg(long, value_name = "TYPE")]
        content_type: Option<String>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Download an object to a file, or to stdout.
    Get {
        /// The bucket.
        bucket: String,
        /// The object's key.
        #[arg(value_name = "KEY")]
        object: String,
        /// Where to write it: a file (replaced), or - for stdout (the default).
        #[arg(value_name = "FILE|-", default_value = "-")]
        file: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Delete objects (a key that holds nothing is no error).
    Rm {
        /// The bucket.
        bucket: String,
        /// The keys to delete.
        #[arg(required = true)]
        keys: Vec<String>,
        #[command(flatten)]
        server: ServerArg,
    },
}

/// An object key from the command line, checked before any request is made.
fn object_key(key: &str) -> anyhow::Result<&str> {
    wisp_core::object::check_key(key).map_err(|e| CliError::new(Exit::Usage, e.to_string()))?;
    Ok(key)
}

/// The API path of an object.
fn object_path(bucket: &BucketName, key: &str) -> String {
    format!(
        "/v1/buckets/{bucket}/objects/{}",
        utf8_percent_encode(key, KEY_ESCAPES)
    )
}

pub async fn run(args: ObjectArgs) -> anyhow::Result<()> {
    match args.command {
        ObjectCommand::Ls {
            bucket,
            prefix,
            limit,
            json,
            server,
        } => {
            ls(
                &server,
                &bucket_name(&bucket)?,
                prefix.unwrap_or_default(),
                limit,
                json,
            )
            .await
        }
        ObjectCommand::Put {
            bucket,
            object: key,
            file,
            content_type,
            server,
        } => {
            let bucket = bucket_name(&bucket)?;
            let key = object_key(&key)?;
            let content_type = content_type
                .or_else(|| guess_type(key))
                .or_else(|| guess_type(&file))
                .unwrap_or_else(|| "application/octet-stream".into());
            put(&server, &bucket, key, &file, &content_type).await
        }
        ObjectCommand::Get {
            bucket,
            object: key,
            file,
            server,
        } => get(&server, &bucket_name(&bucket)?, object_key(&key)?, &file).await,
        ObjectCommand::Rm { bucket, keys, server } => {
            let bucket = bucket_name(&bucket)?;
            let keys = keys
                .iter()
                .map(|k| object_key(k))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let client = Client::new(&server)?;
            for key in keys {
                client
                    .json(client.request(Method::DELETE, &object_path(&bucket, key)))
                    .await?;
                println!("removed {bucket}/{key}");
            }
            Ok(())
        }
    }
}

async fn ls(
    server: &ServerArg,
    bucket: &BucketName,
    prefix: String,
    limit: Option<u64>,
    json: bool,
) -> anyhow::Result<()> {
    let client = Client::new(server)?;
    let objects = client
        .pages(
            &format!("/v1/buckets/{bucket}/objects"),
            "objects",
            &prefix,
            limit,
        )
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&Value::Array(objects))?);
        return Ok(());
    }
    let mut table = Table::new();
    table.load_style(NOTHING);
    table.set_header(["KEY", "SIZE", "MODIFIED", "CONTENT TYPE"]);
    for o in &objects {
        table.add_row([
            o["key"].as_str().unwrap_or("?").to_string(),
            o["size"].as_u64().map_or_else(|| "?".into(), size_text::format),
            o["modified_at"].as_str().unwrap_or("").to_string(),
            o["content_type"].as_str().unwrap_or("-").to_string(),
        ]);
    }
    if objects.is_empty() {
        if prefix.is_empty() {
            eprintln!("No objects in `{bucket}`. Add one with `wisp object put {bucket} KEY FILE`.");
        } else {
            eprintln!("No objects in `{bucket}` under `{prefix}`.");
        }
    }
    println!("{}", table.trim_fmt());
    Ok(())
}

async fn put(
    server: &ServerArg,
    bucket: &BucketName,
    key: &str,
    file: &str,
    content_type: &str,
) -> anyhow::Result<()> {
    let client = Client::new(server)?;
    // A refusal (no such bucket, a key that may not write) comes before the upload: a
    // server that refuses mid-body closes the connection under the client's feet.
    client
        .json(client.request(Method::GET, &format!("/v1/buckets/{bucket}")))
        .await?;
    let mut request = client
        .request(Method::PUT, &object_path(bucket, key))
        .header(CONTENT_TYPE, content_type);
    let progress;
    if file == "-" {
        progress = ProgressBar::hidden();
        let stdin = ReaderStream::with_capacity(tokio::io::stdin(), CHUNK);
        request = request.body(reqwest::Body::wrap_stream(stdin));
    } else {
        let opened = tokio::fs::File::open(file)
            .await
            .map_err(|e| CliError::new(Exit::Usage, format!("cannot read `{file}`: {e}")))?;
        let metadata = opened
            .metadata()
            .await
            .with_context(|| format!("cannot read `{file}`"))?;
        if !metadata.is_file() {
            return Err(CliError::new(Exit::Usage, format!("`{file}` is not a file")).into());
        }
        let size = metadata.len();
        progress = progress_bar(Some(size), "uploading");
        let reader = progress.wrap_async_read(opened);
        request = request
            .header(CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(ReaderStream::with_capacity(
                reader, CHUNK,
            )));
    }
    let answer = client.json(request).await;
    progress.finish_and_clear();
    let (_, object) = answer?;
    println!(
        "uploaded {bucket}/{key} ({}, {})",
        object["size"]
            .as_u64()
            .map_or_else(|| "?".into(), size_text::format),
        object["content_type"].as_str().unwrap_or(content_type)
    );
    Ok(())
}

async fn get(server: &ServerArg, bucket: &BucketName, key: &str, file: &str) -> anyhow::Result<()> {
    let client = Client::new(server)?;
    let mut response = client
        .stream(client.request(Method::GET, &object_path(bucket, key)))
        .await?;
    let length = response.content_length();
    let progress = progress_bar(length, "downloading");
    if file == "-" {
        let mut out = progress.wrap_async_write(tokio::io::stdout());
        let copied = copy(&mut response, &mut out).await;
        progress.finish_and_clear();
        return copied;
    }
    let path = Path::new(file);
    let created = tokio::fs::File::create(path)
        .await
        .map_err(|e| CliError::new(Exit::Usage, format!("cannot write `{file}`: {e}")))?;
    let mut out = progress.wrap_async_write(created);
    let copied = copy(&mut response, &mut out).await;
    progress.finish_and_clear();
    if let Err(e) = copied {
        // A partial download is not the object: leave nothing that looks like it.
        let _ = tokio::fs::remove_file(path).await;
        return Err(e);
    }
    let size = length.map_or_else(String::new, |n| format!(" ({})", size_text::format(n)));
    eprintln!("downloaded {bucket}/{key} to {file}{size}");
    Ok(())
}

/// Writes a response's body to `out` chunk by chunk.
async fn copy(response: &mut reqwest::Response, out: &mut (impl AsyncWrite + Unpin)) -> anyhow::Result<()> {
    while let Some(chunk) = response
        .chunk()
        .await
        .context("the download broke off before the end of the object")?
    {
        out.write_all(&chunk).await.context("cannot write the object")?;
    }
    out.flush().await.context("cannot write the object")?;
    Ok(())
}

/// A progress bar for a transfer of `size` bytes: drawn only when the size is known, over
/// [`PROGRESS_OVER`], and stderr is a terminal; hidden otherwise.
fn progress_bar(size: Option<u64>, verb: &'static str) -> ProgressBar {
    match size {
        Some(size) if size > PROGRESS_OVER && std::io::stderr().is_terminal() => {
            let style = ProgressStyle::with_template(
                "{msg} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            ProgressBar::new(size).with_style(style).with_message(verb)
        }
        _ => ProgressBar::hidden(),
    }
}

/// The content type a name's extension suggests, for the few common ones.
fn guess_type(name: &str) -> Option<String> {
    let extension = Path::new(name).extension()?.to_str()?.to_ascii_lowercase();
    let guessed = match extension.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "json" => "application/json",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        "wasm" => "application/wasm",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        _ => return None,
    };
    Some(guessed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: ObjectCommand,
    }

    #[test]
    fn the_arguments_are_well_formed() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from(["object", "get", "photos", "a/cat.jpg"]);
        let ObjectCommand::Get { object, file, .. } = cli.command else {
            panic!("not a get");
        };
        assert_eq!((object.as_str(), file.as_str()), ("a/cat.jpg", "-"));
    }

    #[test]
    fn types_are_guessed_from_common_extensions() {
        assert_eq!(guess_type("cat.JPG").as_deref(), Some("image/jpeg"));
        assert_eq!(guess_type("a/b/data.json").as_deref(), Some("application/json"));
        assert_eq!(guess_type("notes"), None);
        assert_eq!(guess_type("-"), None);
        assert_eq!(guess_type("archive.xyz"), None);
    }

    #[test]
    fn keys_keep_their_slashes_in_the_path() {
        let bucket = BucketName::new("photos").unwrap();
        assert_eq!(
            object_path(&bucket, "2024/summer cat?.jpg"),
            "/v1/buckets/photos/objects/2024/summer%20cat%3F.jpg"
        );
        assert_eq!(
            object_path(&bucket, "ü#%"),
            "/v1/buckets/photos/objects/%C3%BC%23%25"
        );
    }

    #[test]
    fn empty_keys_are_refused_before_any_request() {
        assert!(object_key("").is_err());
        assert_eq!(object_key("a").unwrap(), "a");
    }
}
