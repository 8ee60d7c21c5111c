//! Run with
//!
//! ```not_rust
//! cargo run --release -- up examples/hello
//! curl localhost:8080/hello          # Hello, world!
//! curl localhost:8080/hello/Ada      # Hello, Ada!
//! ```
//!
//! The `hello` function: a `wasi:http/proxy` component written with `wstd`. Wisp calls it for
//! the routes `/hello` and `/hello/:name` declared in `wisp.toml`. It greets with the
//! environment variable `GREETING` when set, else `Hello`.

use wstd::http::{Body, Request, Response, Result};

#[wstd::http_server]
async fn main(req: Request<Body>) -> Result<Response<Body>> {
    let name = name_from_path(req.uri().path()).unwrap_or_else(|| "world".to_owned());
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".to_owned());
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(format!("{greeting}, {name}!\n").into())?)
}

/// The name in a path ending `/hello/NAME`, percent-decoded; `None` for `/hello`. Only the end
/// of the path counts, so a prefix in front of the route changes nothing.
fn name_from_path(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [.., "hello", name] => Some(percent_decode(name)),
        _ => None,
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
