//! Run with
//!
//! ```not_rust
//! cargo build --release --target wasm32-wasip2
//! wisp up
//! curl localhost:8080/{{name}}/Ada     # Hello, Ada!
//! ```
//!
//! The `{{name}}` function: a `wasi:http/proxy` component written with `wstd`. Wisp calls it
//! for the routes declared in `wisp.toml` and hands it the HTTP request as it came; the body
//! streams both ways. It greets with the environment variable `GREETING` when set.

use wstd::http::{Body, Request, Response, Result};

#[wstd::http_server]
async fn main(req: Request<Body>) -> Result<Response<Body>> {
    let who = who(req.uri().path()).unwrap_or_else(|| "world".to_owned());
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".to_owned());
    // What goes to stderr (and stdout) is the function's log: `wisp logs {{name}}`.
    eprintln!("{} {}: greeting {who}", req.method(), req.uri().path());
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain; charset=utf-8")
        .body(format!("{greeting}, {who}!\n").into())?)
}

/// Who to greet: the segment after `/{{name}}/`, percent-decoded; `None` for `/{{name}}`.
fn who(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [.., "{{name}}", who] => Some(percent_decode(who)),
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
