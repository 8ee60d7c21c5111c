//! Run with
//!
//! ```not_rust
//! cargo run --release -- up examples/thumbnails
//! curl localhost:8080/thumbs                                            # public
//! curl -H "Authorization: Bearer $(cat .wisp/admin.key)" localhost:8080/thumbs/cat.jpg -o cat.png
//! ```
//!
//! The `api` function: a `wasi:http/proxy` component answering two routes (`wisp.toml`):
//!
//! - `GET /thumbs` (public): every photo's [`Meta`](thumbnails_common::Meta) from the `meta`
//!   store, as `{"thumbnails": [...]}`, in key order;
//! - `GET /thumbs/*key` (`auth = "key"`: Wisp checks the API key before the request gets
//!   here): the PNG thumbnail of the photo `key`, read from the `thumbs` bucket; `404` when
//!   there is none.

use serde_json::json;
use thumbnails_common as common;
use wstd::http::{Body, Request, Response, Result};

#[wstd::http_server]
async fn main(req: Request<Body>) -> Result<Response<Body>> {
    let path = req.uri().path().to_owned();
    let answer = match path.strip_prefix("/thumbs") {
        Some("" | "/") => list(),
        Some(rest) => match rest.strip_prefix('/') {
            Some(key) => serve(&common::decode(key, false)).await,
            None => not_found(&path),
        },
        None => not_found(&path),
    };
    answer.or_else(|e| common::failure(&e))
}

/// `GET /thumbs`: the records of the `meta` store.
fn list() -> Result<Response<Body>> {
    let metas = common::all_meta(&common::meta_store()?)?;
    common::json_response(200, &json!({ "thumbnails": metas }))
}

/// `GET /thumbs/KEY`: the thumbnail of the photo `key`.
async fn serve(key: &str) -> Result<Response<Body>> {
    let Some(png) = common::get_object(common::THUMBS, &common::thumb_key(key)).await? else {
        return common::json_response(404, &json!({ "error": format!("no thumbnail of `{key}`") }));
    };
    Ok(Response::builder()
        .status(200)
        .header("content-type", "image/png")
        .header("content-length", png.len())
        .header("cache-control", "private, max-age=60")
        .body(Body::from(png))?)
}

fn not_found(path: &str) -> Result<Response<Body>> {
    common::json_response(404, &json!({ "error": format!("no route `{path}`") }))
}
