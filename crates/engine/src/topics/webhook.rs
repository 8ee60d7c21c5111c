//! Webhook subscribers: the URL a subscription may name ([`check_url`]) and the POST
//! that delivers one message to it ([`post`]), in the shape SNS gives HTTP/S
//! endpoints; [`send`] is the POST itself, which alarms' webhooks use too.
//!
//! Each POST passes the engine's outbound policy built from the webhook's own origin
//! alone, so a webhook reaches nothing its URL does not name: a host name is resolved
//! there and refused if it leads to a private, loopback or metadata address, while a
//! URL that names such an address literally (`http://127.0.0.1:9000/hook`) is taken
//! at its word, as an outbound grant naming it would be. There is no subscription
//! confirmation handshake: deliveries start at once.

use super::{notification, topic_arn};
use crate::EngineError;
use crate::services::outbound::OutboundPolicy;
use http::{Method, Request, Uri, header};
use std::time::Duration;
use wisp_core::ErrorCode;
use wisp_core::OutboundHost;
use wisp_runtime::body;
use wisp_runtime::services::{OutboundError, OutboundHttp, OutboundRequest};
use wisp_store::{SubscriptionRecord, TopicMessage};

/// The longest webhook URL a subscription takes.
pub const MAX_URL_LEN: usize = 2048;
/// How long resolving, connecting and the TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the answer's head may take once the request is sent.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

fn bad(detail: impl Into<String>) -> EngineError {
    EngineError::new(ErrorCode::InvalidRequest, detail)
}

/// Checks a webhook URL: `http://` or `https://`, a host, no userinfo or fragment.
/// Returns the outbound grant of its origin (`scheme://host:port`), the only
/// destination a POST to it may reach.
pub(crate) fn check_url(url: &str) -> Result<OutboundHost, EngineError> {
    if url.len() > MAX_URL_LEN {
        return Err(bad(format!(
            "the webhook URL is {} characters; at most {MAX_URL_LEN}",
            url.len()
        )));
    }
    // The scheme is looked at first: `Uri` would call a URL without one malformed.
    let Some((scheme, _)) = url.split_once("://") else {
        return Err(bad(format!(
            "webhook `{url}` has no scheme: use `https://host/path` or `http://host/path`"
        )));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(bad(format!(
            "webhook `{url}` has unsupported scheme `{scheme}`: a webhook is an `http://` or `https://` URL"
        )));
    }
    let uri: Uri = url.parse().map_err(|e| {
        bad(format!(
            "webhook `{url}` is not a URL ({e}): use `https://host/path`"
        ))
    })?;
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    if authority.contains('@') {
        return Err(bad(format!(
            "webhook `{url}` has userinfo (`user@`): put credentials in the path or query instead"
        )));
    }
    if url.contains('#') {
        return Err(bad(format!("webhook `{url}` has a fragment (`#…`): remove it")));
    }
    let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
        return Err(bad(format!("webhook `{url}` has no host")));
    };
    let port = match uri.port_u16() {
        Some(port) => port,
        None if scheme == "https" => 443,
        None => 80,
    };
    format!("{scheme}://{host}:{port}")
        .parse::<OutboundHost>()
        .map_err(|e| bad(format!("webhook `{url}`: {e}")))
}

/// A failed POST: why, for the delivery's last error.
#[derive(Debug)]
pub(crate) struct Failed(pub String);

/// POSTs `message` to the subscription's webhook `url`; `Ok` on a 2xx answer.
pub(crate) async fn post(
    url: &str,
    subscription: &SubscriptionRecord,
    message: &TopicMessage,
) -> Result<(), Failed> {
    let subscription_arn = format!("{}:{}", topic_arn(&message.topic), subscription.id);
    let payload = if subscription.raw_message_delivery {
        message.body.clone()
    } else {
        let mut value = notification(message);
        if let Some(fields) = value.as_object_mut() {
            // SNS leaves Subject out of an HTTP notification that has none.
            fields.retain(|key, v| key != "Subject" || !v.is_null());
        }
        value.to_string()
    };
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header(header::CONTENT_TYPE, "text/plain; charset=UTF-8")
        .header(header::USER_AGENT, "Wisp-Topics/1")
        .header("x-amz-sns-message-type", "Notification")
        .header("x-amz-sns-message-id", message.id.as_str())
        .header("x-amz-sns-topic-arn", topic_arn(&message.topic))
        .header("x-amz-sns-subscription-arn", subscription_arn);
    if subscription.raw_message_delivery {
        builder = builder.header("x-amz-sns-rawdelivery", "true");
    }
    let request = builder
        .body(body::full(payload))
        .map_err(|e| Failed(format!("cannot build the request to `{url}`: {e}")))?;
    send(url, request).await
}

/// Sends `request` to webhook `url` (which it was built for), through the outbound
/// policy of the URL's own origin; `Ok` on a 2xx answer. Alarms' webhooks are sent
/// this way too.
pub(crate) async fn send(url: &str, request: Request<wisp_runtime::Body>) -> Result<(), Failed> {
    let grant = check_url(url).map_err(|e| Failed(e.detail))?;
    let policy = OutboundPolicy::new(&[grant]);
    let sent = policy
        .send(OutboundRequest {
            site: None,
            request,
            connect_timeout: Some(CONNECT_TIMEOUT),
            first_byte_timeout: Some(ANSWER_TIMEOUT),
            between_bytes_timeout: Some(ANSWER_TIMEOUT),
        })
        .await;
    match sent {
        Ok(response) if response.status().is_success() => Ok(()),
        // The answer's body is not read: dropping it closes the connection.
        Ok(response) => Err(Failed(format!("webhook `{url}` answered {}", response.status()))),
        Err(OutboundError::DestinationIpProhibited) => Err(Failed(format!(
            "webhook `{url}`: its host resolves only to private, loopback or link-local addresses, \
             which a webhook reaches only when its URL names the address itself"
        ))),
        Err(OutboundError::Denied) => Err(Failed(format!("webhook `{url}` was refused"))),
        Err(OutboundError::Failed(why)) => Err(Failed(format!("webhook `{url}`: {why}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let grant = check_url("http://127.0.0.1:9000/hook?x=1").unwrap();
        assert!(grant.allows("http", "127.0.0.1", 9000));
        assert!(!grant.allows("http", "127.0.0.1", 9001));
        let grant = check_url("https://example.com/hook").unwrap();
        assert!(grant.allows("https", "example.com", 443));
        assert!(check_url("http://[::1]:8080/").is_ok());
        let detail = |url: &str| check_url(url).unwrap_err().detail;
        assert!(detail("ftp://example.com/x").contains("unsupported scheme `ftp`"));
        assert!(detail("example.com/hook").contains("no scheme"));
        assert!(detail("http://exa mple.com/").contains("is not a URL"));
        let empty = detail("https:///hook");
        assert!(
            empty.contains("is not a URL") || empty.contains("no host"),
            "{empty}"
        );
        assert!(detail("https://user:pw@example.com/").contains("userinfo"));
        assert!(detail("https://example.com/#top").contains("fragment"));
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(detail(&long).contains("at most"));
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_before_connecting() {
        let namespace = wisp_core::Namespace::new("default").unwrap();
        let topic = wisp_core::TopicName::new("orders").unwrap();
        let url = "http://localhost:9/hook";
        let subscription = SubscriptionRecord {
            id: "s1".into(),
            namespace: namespace.clone(),
            topic: topic.clone(),
            endpoint: wisp_store::Endpoint::Webhook(url.into()),
            filter: None,
            raw_message_delivery: false,
            created_ms: 0,
        };
        let message = TopicMessage {
            id: "m1".into(),
            namespace,
            topic,
            body: "hi".into(),
            attributes: Default::default(),
            published_ms: 0,
            chain_depth: 0,
            trace: None,
            parent: None,
        };
        let Failed(why) = post(url, &subscription, &message).await.unwrap_err();
        assert!(why.contains("private, loopback"), "{why}");
    }
}
