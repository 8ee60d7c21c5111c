//! Run with
//!
//! ```not_rust
//! cargo build --release --target wasm32-wasip1
//! wisp up
//! wisp invoke {{name}} --data '{"name":"Ada"}'    # {"message":"Hello, Ada!"}
//! curl localhost:8080/{{name}}/Ada                # {"message":"Hello, Ada!"}
//! ```
//!
//! The `{{name}}` function: an event function. Wisp writes the event JSON to stdin and takes
//! the result from stdout; what goes to stderr is the function's log. Through a route the
//! event is an API Gateway v2 (HTTP API) event; invoked directly it is whatever JSON the
//! caller sent.

use std::io::{Read, Write};
use std::process::exit;

use serde_json::{Value, json};

fn main() {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("cannot read the event from stdin: {e}");
        exit(2);
    }
    // No payload at all counts as an empty event.
    let event: Value = if input.trim().is_empty() {
        json!({})
    } else {
        match serde_json::from_str(&input) {
            Ok(event) => event,
            Err(e) => {
                eprintln!("the event is not valid JSON: {e}");
                exit(2);
            }
        }
    };

    let who = who(&event).unwrap_or_else(|| "world".to_owned());
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".to_owned());
    eprintln!("greeting {who}");
    // Any JSON value answers; behind a route it becomes a `200 application/json` response
    // (or answer with `{"statusCode", "headers", "body"}` to choose them).
    let output = json!({ "message": format!("{greeting}, {who}!") });
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{output}").and_then(|()| stdout.flush()) {
        eprintln!("cannot write the result: {e}");
        exit(1);
    }
}

/// Who to greet: from the route, the query string or the JSON body of an HTTP event, or
/// from `name` of any other event.
fn who(event: &Value) -> Option<String> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    if event.get("requestContext").is_none() {
        return text(event.get("name"));
    }
    text(event.pointer("/pathParameters/who"))
        .or_else(|| text(event.pointer("/queryStringParameters/name")))
        .or_else(|| {
            let body: Value = serde_json::from_str(event.get("body")?.as_str()?).ok()?;
            text(body.get("name"))
        })
}
