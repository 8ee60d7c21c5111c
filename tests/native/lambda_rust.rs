//! A native function written with AWS's own `lambda_runtime` crate, unmodified:
//! the tests zip this binary as `bootstrap` and run it under Wisp's Runtime API.
//!
//! The event's `action` picks what it does: `echo` (the default) answers with the
//! event and what the function sees of its context; `fail` returns an error of type
//! `FixtureError`; `exit` ends the process mid-invocation; `sleep` waits `ms`. With `--in-process N` it times its own handler instead.

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[derive(Debug)]
struct FixtureError(String);

impl From<FixtureError> for Diagnostic {
    fn from(e: FixtureError) -> Diagnostic {
        Diagnostic {
            error_type: "FixtureError".to_string(),
            error_message: e.0,
        }
    }
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, FixtureError> {
    let (payload, context) = event.into_parts();
    match payload["action"].as_str().unwrap_or("echo") {
        "fail" => Err(FixtureError(format!(
            "refused order {}",
            payload["order"].as_i64().unwrap_or(0)
        ))),
        "exit" => std::process::exit(3),
        "sleep" => {
            let ms = payload["ms"].as_u64().unwrap_or(100);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            Ok(json!({ "slept_ms": ms }))
        }
        _ => Ok(json!({
            "event": payload,
            "request_id": context.request_id,
            "function_arn": context.invoked_function_arn,
            "deadline_ms": context.deadline,
            "function_name": context.env_config.function_name,
            "memory_mb": context.env_config.memory,
            "log_stream": context.env_config.log_stream,
        })),
    }
}

// One invocation at a time per instance: a multi-threaded runtime buys nothing and
// its cross-thread wake-ups cost ~80 µs per invocation (bench/lambda).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // `--in-process N`: run the handler N times directly and print the mean time per
    // call (bench/lambda compares Wisp's warm invocation against this).
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, n] = args.as_slice()
        && flag == "--in-process"
    {
        let n: u32 = n.parse()?;
        let started = std::time::Instant::now();
        for i in 0..n {
            let event = LambdaEvent::new(json!({ "order": i }), lambda_runtime::Context::default());
            std::hint::black_box(handle(event).await.map_err(|e| e.0)?);
        }
        println!("{:.3}", started.elapsed().as_secs_f64() * 1e6 / f64::from(n));
        return Ok(());
    }
    lambda_runtime::run(service_fn(handle)).await
}
