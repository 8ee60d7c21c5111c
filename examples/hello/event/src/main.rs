//! Run with
//!
//! ```not_rust
//! cargo run --release -- up examples/hello
//! curl localhost:8080/greet/Ada
//! cargo run --release -- invoke greet --data '{"name":"Ada"}'
//! ```
//!
//! The `greet` function: an event function. Wisp writes the event JSON to stdin and takes
//! the result from stdout; what goes to stderr ends up in the function's logs. Called through
//! the route `/greet/:name`, the event is an API Gateway v2 (HTTP API) event; invoked directly,
//! it is whatever JSON the caller sent.

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

    let name = name_of(&event).unwrap_or_else(|| "world".to_owned());
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".to_owned());
    let output = json!({ "message": format!("{greeting}, {name}!") });
    eprintln!("greeted {name}");
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{output}").and_then(|()| stdout.flush()) {
        eprintln!("cannot write the result: {e}");
        exit(1);
    }
}

/// The name to greet: from the route, the query string or the JSON body of an HTTP event,
/// or from `name` of any other event.
fn name_of(event: &Value) -> Option<String> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    if event.get("requestContext").is_none() {
        return text(event.get("name"));
    }
    text(event.pointer("/pathParameters/name"))
        .or_else(|| text(event.pointer("/queryStringParameters/name")))
        .or_else(|| {
            let body: Value = serde_json::from_str(event.get("body")?.as_str()?).ok()?;
            text(body.get("name"))
        })
}
