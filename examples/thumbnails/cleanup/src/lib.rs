//! Run with
//!
//! ```not_rust
//! cargo run --release -- up examples/thumbnails
//! cargo run --release -- invoke cleanup --data '{"max_age_seconds": 0}'   # everything, now
//! ```
//!
//! The `cleanup` function: a `wasi:http/proxy` component run by its schedule (Wisp posts
//! the scheduled event to `/`) or invoked directly. It deletes each thumbnail older than the
//! maximum age, its object in `thumbs` and then its record in the `meta` store (in that
//! order, so a failure half-way leaves a record that the next run finds again). The photos
//! themselves stay in `photos`.
//!
//! The maximum age is the event's `max_age_seconds` when it has one, else the environment
//! variable `MAX_AGE` (`7d`, `12h`, `30m`, `45s`, or a number of seconds), else 7 days. It
//! answers `{"max_age_seconds", "deleted": [keys], "kept"}`.

use serde_json::{Value, json};
use thumbnails_common as common;
use wstd::http::{Body, Error, Request, Response, Result};

/// The maximum age without `MAX_AGE` or `max_age_seconds`: a week.
const DEFAULT_MAX_AGE_SECONDS: u64 = 7 * 24 * 60 * 60;

#[wstd::http_server]
async fn main(mut req: Request<Body>) -> Result<Response<Body>> {
    let body = req.body_mut().contents().await?.to_vec();
    // A scheduled event, an empty body or one that is not JSON: no override.
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match cleanup(&event).await {
        Ok(answer) => common::json_response(200, &answer),
        Err(e) => common::failure(&e),
    }
}

async fn cleanup(event: &Value) -> Result<Value> {
    let max_age_seconds = match event.get("max_age_seconds") {
        Some(value) => value.as_u64().ok_or_else(|| {
            Error::msg(format!(
                "max_age_seconds must be a whole number of seconds, not {value}"
            ))
        })?,
        None => match std::env::var("MAX_AGE") {
            Ok(text) => parse_age(&text)?,
            Err(_) => DEFAULT_MAX_AGE_SECONDS,
        },
    };
    let cutoff_ms = common::now_ms().saturating_sub(max_age_seconds.saturating_mul(1000));
    let store = common::meta_store()?;
    let mut deleted = Vec::new();
    let mut kept = 0;
    for meta in common::all_meta(&store)? {
        // `<=`: with a maximum age of 0, a thumbnail made in this very millisecond goes too.
        if meta.created_at_ms <= cutoff_ms {
            common::delete_object(common::THUMBS, &meta.thumb_key).await?;
            common::delete_meta(&store, &meta.key)?;
            deleted.push(meta.key);
        } else {
            kept += 1;
        }
    }
    eprintln!(
        "deleted {} thumbnail(s) older than {max_age_seconds}s, kept {kept}",
        deleted.len()
    );
    Ok(json!({ "max_age_seconds": max_age_seconds, "deleted": deleted, "kept": kept }))
}

/// Seconds from `7d`, `12h`, `30m`, `45s` or `3600`.
fn parse_age(text: &str) -> Result<u64> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((at, unit)) if unit.is_ascii_alphabetic() => (&text[..at], unit),
        _ => (text, 's'),
    };
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 60 * 60,
        'd' => 24 * 60 * 60,
        _ => 0,
    };
    match number.trim().parse::<u64>() {
        Ok(n) if scale > 0 => Ok(n.saturating_mul(scale)),
        _ => Err(Error::msg(format!(
            "MAX_AGE `{text}` is not an age: write a whole number with s, m, h or d (`7d`)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_age;

    #[test]
    fn ages_read_with_their_units() {
        assert_eq!(parse_age("7d").unwrap(), 604_800);
        assert_eq!(parse_age("12h").unwrap(), 43_200);
        assert_eq!(parse_age(" 30m ").unwrap(), 1_800);
        assert_eq!(parse_age("3600").unwrap(), 3_600);
        assert!(parse_age("7w").is_err());
        assert!(parse_age("d").is_err());
    }
}
