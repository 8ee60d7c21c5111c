//! Run with
//!
//! ```not_rust
//! cargo run --release -- up examples/thumbnails
//! cargo run --release -- object put photos cat.jpg path/to/cat.jpg
//! ```
//!
//! The `thumbnail` function: a `wasi:http/proxy` component invoked (asynchronously, as
//! `POST /`) with the S3 event notification of each object created in the `photos` bucket.
//! For each record it reads the photo through Wisp's platform address, decodes it (PNG or
//! JPEG, with the `image` crate), scales it down to fit 128 × 128 keeping its aspect ratio,
//! writes the PNG to the `thumbs` bucket under the photo's key + `.png`, records a [`Meta`]
//! under the photo's key in the `meta` store and publishes it to the `thumbnails` topic.
//!
//! A photo that is not a PNG or JPEG fails the invocation (`500`, the reason in its
//! `last_error` and its logs) and leaves no thumbnail behind. Every step can run again
//! with the same outcome, so a retried or repeated event does no harm.

use image::{GenericImageView, ImageFormat};
use serde_json::{Value, json};
use std::io::Cursor;
use thumbnails_common::{self as common, Meta};
use wstd::http::{Body, Error, Request, Response, Result};

/// The box a thumbnail fits in, in pixels.
const THUMB_SIZE: u32 = 128;

#[wstd::http_server]
async fn main(mut req: Request<Body>) -> Result<Response<Body>> {
    let event: Value = match req.body_mut().json().await {
        Ok(event) => event,
        Err(e) => return common::failure(&e.context("the event is not JSON")),
    };
    let mut made = Vec::new();
    for record in event["Records"].as_array().map(Vec::as_slice).unwrap_or_default() {
        match thumbnail(record).await {
            Ok(Some(meta)) => made.push(meta),
            Ok(None) => {}
            Err(e) => return common::failure(&e),
        }
    }
    common::json_response(200, &json!({ "thumbnails": made }))
}

/// Makes the thumbnail of the object one S3 event record names; `None` for a record that is
/// not an object creation in `photos` (or whose object is gone already).
async fn thumbnail(record: &Value) -> Result<Option<Meta>> {
    let event_name = record["eventName"].as_str().unwrap_or_default();
    let bucket = record["s3"]["bucket"]["name"].as_str().unwrap_or_default();
    if !event_name.starts_with("ObjectCreated:") || bucket != common::PHOTOS {
        return Ok(None);
    }
    // S3 writes the key URL-encoded, with `+` for a space.
    let key = common::decode(record["s3"]["object"]["key"].as_str().unwrap_or_default(), true);
    let Some(photo) = common::get_object(bucket, &key).await? else {
        eprintln!("{bucket}/{key} is gone: nothing to do");
        return Ok(None);
    };
    let (thumb, meta) = make_thumbnail(&key, &photo)?;
    common::put_object(common::THUMBS, &meta.thumb_key, thumb, "image/png").await?;
    common::put_meta(&common::meta_store()?, &meta)?;
    let message = serde_json::to_string(&meta)?;
    common::publish(common::TOPIC, &message, &[("format", &meta.format)]).await?;
    eprintln!(
        "{key}: {}x{} {} -> {}x{} png, {} bytes",
        meta.width, meta.height, meta.format, meta.thumb_width, meta.thumb_height, meta.thumb_bytes
    );
    Ok(Some(meta))
}

/// The PNG thumbnail of the photo `key` (its bytes), and its [`Meta`].
fn make_thumbnail(key: &str, photo: &[u8]) -> Result<(Vec<u8>, Meta)> {
    let format = match image::guess_format(photo) {
        Ok(format @ (ImageFormat::Png | ImageFormat::Jpeg)) => format,
        _ => {
            return Err(Error::msg(format!(
                "`{key}` is not a PNG or JPEG image ({} bytes starting {:02x?})",
                photo.len(),
                &photo[..photo.len().min(8)]
            )));
        }
    };
    let image = image::load_from_memory_with_format(photo, format)
        .map_err(|e| Error::msg(format!("`{key}` does not decode as {format:?}: {e}")))?;
    let (width, height) = image.dimensions();
    // `thumbnail` keeps the aspect ratio; a photo that fits already is only re-encoded
    // (`thumbnail` would scale it up).
    let thumb = if width > THUMB_SIZE || height > THUMB_SIZE {
        image.thumbnail(THUMB_SIZE, THUMB_SIZE)
    } else {
        image
    };
    let mut png = Vec::new();
    thumb
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| Error::msg(format!("encoding the thumbnail of `{key}` failed: {e}")))?;
    let meta = Meta {
        key: key.to_owned(),
        thumb_key: common::thumb_key(key),
        format: if format == ImageFormat::Png { "png" } else { "jpeg" }.to_owned(),
        width,
        height,
        thumb_width: thumb.width(),
        thumb_height: thumb.height(),
        bytes: photo.len() as u64,
        thumb_bytes: png.len() as u64,
        created_at_ms: common::now_ms(),
    };
    Ok((png, meta))
}
