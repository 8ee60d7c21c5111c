//! The dashboard's topic pages: every topic of the namespace with its subscription
//! count (`/ui/topics`), and one topic (`/ui/topics/NAME`) with its subscriptions —
//! endpoint, filter policy, dead letters, and the circuit breaker of its deliveries
//! when the engine has one — and publishing a message, as the API allows.

use super::paging::{PageQuery, Pager};
use super::{Chrome, Page, Viewer};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use wisp_core::filter_policy::MessageAttribute;
use wisp_core::wall::rfc3339_ms;
use wisp_core::{Namespace, TopicName};
use wisp_engine::Engine;
use wisp_engine::breaker::{BreakerState, Endpoint as BreakerEndpoint};
use wisp_store::{Endpoint, SubscriptionRecord};

pub(super) fn topic_name(name: &str) -> Result<TopicName, Page> {
    TopicName::new(name).map_err(|e| Page::error(StatusCode::BAD_REQUEST, "Bad name", &e.to_string()))
}

struct TopicRow {
    name: String,
    subscriptions: usize,
    created: String,
}

#[derive(Template)]
#[template(path = "ui/topics.html")]
struct TopicsPage {
    chrome: Option<Chrome>,
    namespace: String,
    rows: Vec<TopicRow>,
    pager: Pager,
}

pub(super) async fn list(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Query(query): Query<PageQuery>,
) -> Result<Page, Page> {
    viewer.must(Method::GET, "/v1/topics")?;
    let ns = &viewer.namespace;
    let mut topics = engine.list_topics(ns).await?;
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let (shown, pager) = Pager::cut(topics, query.page, "/ui/topics");
    let mut rows = Vec::with_capacity(shown.len());
    for topic in shown {
        rows.push(TopicRow {
            subscriptions: engine.list_subscriptions(ns, &topic.name).await?.len(),
            name: topic.name.to_string(),
            created: rfc3339_ms(topic.created_ms),
        });
    }
    Ok(Page::ok(&TopicsPage {
        chrome: Some(viewer.chrome("topics")),
        namespace: ns.to_string(),
        rows,
        pager,
    }))
}

struct SubscriptionRow {
    id: String,
    /// `function`, `queue` or `webhook`.
    kind: &'static str,
    target: String,
    /// The dashboard page of the target, for a function or a queue.
    link: Option<String>,
    filter: Option<String>,
    scope: &'static str,
    raw: bool,
    dead_letters: usize,
    /// The state of the breaker from the topic to the endpoint, if deliveries made one.
    breaker: Option<&'static str>,
    created: String,
}

#[derive(Template)]
#[template(path = "ui/topic.html")]
struct TopicPage {
    chrome: Option<Chrome>,
    csrf: String,
    name: String,
    arn: String,
    created: String,
    rows: Vec<SubscriptionRow>,
    /// Whether the key may see breakers (`GET /v1/breakers`).
    breakers_shown: bool,
    can_publish: bool,
    done: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Done {
    published: Option<String>,
}

/// The breaker a subscription's deliveries go through: from the topic to its endpoint.
fn breaker_callee(ns: &Namespace, subscription: &SubscriptionRecord) -> BreakerEndpoint {
    let namespace = ns.clone();
    match &subscription.endpoint {
        Endpoint::Function(name) => BreakerEndpoint::Function {
            namespace,
            name: name.clone(),
        },
        Endpoint::Queue(name) => BreakerEndpoint::Queue {
            namespace,
            name: name.clone(),
        },
        Endpoint::Webhook(url) => BreakerEndpoint::Webhook(url.clone()),
    }
}

fn state_text(state: BreakerState) -> &'static str {
    match state {
        BreakerState::Closed => "closed",
        BreakerState::Open => "open",
        BreakerState::HalfOpen => "half-open",
    }
}

pub(super) async fn show(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    Query(done): Query<Done>,
) -> Result<Page, Page> {
    let name = topic_name(&name)?;
    let api = format!("/v1/topics/{name}");
    viewer.must(Method::GET, &api)?;
    viewer.must(Method::GET, &format!("{api}/subscriptions"))?;
    let ns = &viewer.namespace;
    let topic = engine.topic(ns, &name).await?;
    let breakers_shown = viewer.may(Method::GET, "/v1/breakers");
    let breakers = if breakers_shown {
        engine.breakers(ns)
    } else {
        Vec::new()
    };
    let caller = BreakerEndpoint::Topic {
        namespace: ns.clone(),
        name: name.to_string(),
    };
    let mut rows = Vec::new();
    for s in engine.list_subscriptions(ns, &name).await? {
        let callee = breaker_callee(ns, &s);
        let breaker = breakers
            .iter()
            .find(|(key, _)| key.caller == caller && key.callee == callee)
            .map(|(_, view)| state_text(view.state));
        let dead_letters = engine.subscription_dead_letters(ns, &name, &s.id).await?.len();
        let (kind, target, link) = match &s.endpoint {
            Endpoint::Function(f) => ("function", f.to_string(), Some(format!("/ui/functions/{f}"))),
            Endpoint::Queue(q) => ("queue", q.to_string(), Some(format!("/ui/queues/{q}"))),
            Endpoint::Webhook(url) => ("webhook", url.clone(), None),
        };
        rows.push(SubscriptionRow {
            kind,
            target,
            link,
            filter: s.filter.as_ref().map(|f| f.policy.clone()),
            scope: s.filter.as_ref().map_or("", |f| f.scope.as_str()),
            raw: s.raw_message_delivery,
            dead_letters,
            breaker,
            created: rfc3339_ms(s.created_ms),
            id: s.id,
        });
    }
    Ok(Page::ok(&TopicPage {
        chrome: Some(viewer.chrome("topics")),
        csrf: viewer.csrf.clone(),
        arn: format!("arn:aws:sns:local:000000000000:{name}"),
        created: rfc3339_ms(topic.created_ms),
        name: name.to_string(),
        rows,
        breakers_shown,
        can_publish: viewer.may(Method::POST, &format!("{api}/messages")),
        done: done.published.map(|id| format!("Message {id} published.")),
    }))
}

#[derive(Deserialize)]
pub(super) struct PublishForm {
    message: String,
    /// A JSON object as the API's `attributes`; empty: none.
    #[serde(default)]
    attributes: String,
}

/// The form's attributes: the API's shape (`{"name": {"DataType": "String",
/// "StringValue": "v"}}`), or a plain string or number standing for a `String` or a
/// `Number` attribute.
fn attributes(text: &str) -> Result<BTreeMap<String, MessageAttribute>, String> {
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let serde_json::Value::Object(map) = value else {
        return Err("they must be a JSON object of attributes by name".to_owned());
    };
    let mut out = BTreeMap::new();
    for (name, value) in map {
        let attribute = match value {
            serde_json::Value::String(text) => MessageAttribute::string(text),
            serde_json::Value::Number(n) => MessageAttribute::number(n.to_string()),
            other => serde_json::from_value(other).map_err(|e| format!("attribute `{name}`: {e}"))?,
        };
        out.insert(name, attribute);
    }
    Ok(out)
}

/// Publishes one message, as `POST /v1/topics/NAME/messages` does.
pub(super) async fn publish(
    viewer: Viewer,
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, Page> {
    let form: PublishForm = viewer.accept(&body)?;
    let name = topic_name(&name)?;
    viewer.must(Method::POST, &format!("/v1/topics/{name}/messages"))?;
    viewer.caller.check_topic_grant(&name)?;
    let attributes = attributes(&form.attributes).map_err(|e| {
        Page::error(
            StatusCode::BAD_REQUEST,
            "Bad attributes",
            &format!("The attributes do not read: {e}."),
        )
    })?;
    let cause = engine.write_cause(&viewer.caller, None, None);
    let id = engine
        .publish_message(&viewer.namespace, &name, form.message, attributes, cause)
        .await?;
    Ok(Redirect::to(&format!("/ui/topics/{name}?published={id}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_read_the_apis_shape_or_plain_values() {
        assert!(attributes("  ").unwrap().is_empty());
        let read = attributes(
            r#"{"color": "red", "size": 20, "k": {"DataType": "String.Array", "StringValue": "[\"a\"]"}}"#,
        )
        .unwrap();
        assert_eq!(read["color"], MessageAttribute::string("red"));
        assert_eq!(read["size"], MessageAttribute::number("20"));
        assert_eq!(read["k"].data_type, "String.Array");
        assert!(attributes("[1]").unwrap_err().contains("JSON object"));
        assert!(attributes("{").unwrap_err().starts_with("not JSON"));
        assert!(
            attributes(r#"{"a": true}"#)
                .unwrap_err()
                .starts_with("attribute `a`")
        );
    }
}
