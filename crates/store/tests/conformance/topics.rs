//! Checks of topics: topics belong to a namespace, a subscription is unique per topic and
//! endpoint, a publish stores one delivery per matched subscription (once per message
//! id), deliveries are claimed in due order under leases, and acks, retries and dead
//! letters settle them; deleting a subscription or a topic takes its deliveries along.

use super::*;
use std::collections::BTreeMap;
use wisp_core::{QueueName, TopicName};
use wisp_store::{
    Delivery, Endpoint, FilterScope, NewSubscription, Publication, PublishOutcome, Subscribed,
    SubscriptionFilter, SubscriptionRecord, TopicMessage, TopicRecord, Topics,
};

/// How long a claim leases its deliveries in these checks.
const LEASE_MS: i64 = 30_000;

pub fn topic(name: &str) -> TestResult<TopicName> {
    Ok(TopicName::new(name)?)
}

/// Creates topic `name` of `namespace`.
pub async fn create(store: &dyn Topics, namespace: &Namespace, name: &str) -> TestResult<TopicName> {
    let name = topic(name)?;
    let record = TopicRecord {
        namespace: namespace.clone(),
        name: name.clone(),
        created_ms: T,
    };
    assert!(store.create_topic(&record).await?, "topic existed");
    Ok(name)
}

/// Subscribes `endpoint` to a topic, expecting a new subscription.
pub async fn subscribe(
    store: &dyn Topics,
    namespace: &Namespace,
    topic: &TopicName,
    endpoint: Endpoint,
) -> TestResult<SubscriptionRecord> {
    let new = NewSubscription {
        namespace: namespace.clone(),
        topic: topic.clone(),
        endpoint,
        filter: None,
        raw_message_delivery: false,
        created_ms: T,
    };
    match store.subscribe(&new).await? {
        Subscribed::Created(record) => Ok(record),
        other => Err(format!("not subscribed: {other:?}").into()),
    }
}

/// Message `id` of a topic, published at `published_ms`.
pub fn message(namespace: &Namespace, topic: &TopicName, id: &str, published_ms: i64) -> TopicMessage {
    let mut attributes = BTreeMap::new();
    attributes.insert(
        "kind".to_owned(),
        serde_json::json!({"DataType": "String", "StringValue": "order"}),
    );
    TopicMessage {
        id: id.to_owned(),
        namespace: namespace.clone(),
        topic: topic.clone(),
        body: format!("body of {id}"),
        attributes,
        published_ms,
        chain_depth: 2,
        trace: Some(format!("1-5759e988-{:0>24}", id.len())),
        parent: Some(format!("inv-{id}")),
    }
}

pub fn to(message: TopicMessage, subscriptions: &[&SubscriptionRecord]) -> Publication {
    Publication {
        message,
        subscriptions: subscriptions.iter().map(|s| s.id.clone()).collect(),
    }
}

/// The claimed deliveries as `message id → subscription id` pairs, in order.
fn pairs(deliveries: &[Delivery]) -> Vec<(String, String)> {
    deliveries
        .iter()
        .map(|d| (d.message.id.clone(), d.subscription.id.clone()))
        .collect()
}

fn queue(name: &str) -> TestResult<Endpoint> {
    Ok(Endpoint::Queue(QueueName::new(name)?))
}

pub async fn topics_belong_to_a_namespace(store: &dyn Topics) -> TestResult {
    let (alpha, beta) = (ns("alpha")?, ns("beta")?);
    let orders = create(store, &alpha, "orders").await?;
    create(store, &beta, "orders").await?;
    create(store, &alpha, "audit").await?;
    let again = TopicRecord {
        namespace: alpha.clone(),
        name: orders.clone(),
        created_ms: T + 5,
    };
    assert!(!store.create_topic(&again).await?, "created twice");
    let got = store.get_topic(&alpha, &orders).await?.ok_or("no topic")?;
    assert_eq!(got.created_ms, T, "a second create changed the record");
    assert!(store.get_topic(&beta, &topic("audit")?).await?.is_none());

    let names = |records: Vec<TopicRecord>| {
        records
            .into_iter()
            .map(|r| format!("{}/{}", r.namespace, r.name))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.list_topics(Some(&alpha)).await?),
        ["alpha/audit", "alpha/orders"]
    );
    assert_eq!(
        names(store.list_topics(None).await?),
        ["alpha/audit", "alpha/orders", "beta/orders"]
    );
    assert!(store.delete_topic(&alpha, &orders).await?);
    assert!(!store.delete_topic(&alpha, &orders).await?, "deleted twice");
    assert!(
        store.get_topic(&beta, &orders).await?.is_some(),
        "another namespace's went too"
    );
    Ok(())
}

pub async fn topics_subscribe_is_idempotent_per_endpoint(store: &dyn Topics) -> TestResult {
    let default = ns("default")?;
    let orders = create(store, &default, "orders").await?;
    let filtered = NewSubscription {
        namespace: default.clone(),
        topic: orders.clone(),
        endpoint: Endpoint::Webhook("https://example.com/hook".to_owned()),
        filter: Some(SubscriptionFilter {
            policy: r#"{"kind":["order"]}"#.to_owned(),
            scope: FilterScope::MessageBody,
        }),
        raw_message_delivery: true,
        created_ms: T,
    };
    let Subscribed::Created(first) = store.subscribe(&filtered).await? else {
        return Err("not created".into());
    };
    assert_eq!(
        (&first.endpoint, &first.filter, first.raw_message_delivery),
        (&filtered.endpoint, &filtered.filter, true)
    );
    assert_eq!(store.get_subscription(&first.id).await?.as_ref(), Some(&first));

    // The same endpoint again, even with another filter: the existing subscription.
    let mut other_filter = filtered.clone();
    other_filter.filter = None;
    other_filter.created_ms = T + 1;
    assert_eq!(
        store.subscribe(&other_filter).await?,
        Subscribed::Existing(first.clone())
    );
    // Another endpoint, or the same one on another topic: new subscriptions.
    let function = subscribe(store, &default, &orders, Endpoint::Function(func("resize")?)).await?;
    let audit = create(store, &default, "audit").await?;
    let mut elsewhere = filtered.clone();
    elsewhere.topic = audit.clone();
    assert!(matches!(
        store.subscribe(&elsewhere).await?,
        Subscribed::Created(_)
    ));
    let mut missing = filtered.clone();
    missing.topic = topic("missing")?;
    assert_eq!(store.subscribe(&missing).await?, Subscribed::TopicNotFound);

    let ids = store
        .list_subscriptions(&default, &orders)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect::<Vec<_>>();
    assert_eq!(ids, [first.id.clone(), function.id.clone()]);
    assert_ne!(first.id, function.id);

    assert!(store.unsubscribe(&first.id).await?);
    assert!(!store.unsubscribe(&first.id).await?, "unsubscribed twice");
    assert!(store.get_subscription(&first.id).await?.is_none());
    assert_eq!(store.list_subscriptions(&default, &orders).await?, [function]);
    Ok(())
}

pub async fn topics_publish_creates_one_delivery_per_subscription_given(store: &dyn Topics) -> TestResult {
    let default = ns("default")?;
    let orders = create(store, &default, "orders").await?;
    let audit = create(store, &default, "audit").await?;
    let a = subscribe(store, &default, &orders, queue("a")?).await?;
    let b = subscribe(store, &default, &orders, queue("b")?).await?;
    let c = subscribe(store, &default, &orders, queue("c")?).await?;
    let elsewhere = subscribe(store, &default, &audit, queue("a")?).await?;

    // `c` did not match; a subscription of another topic, an unknown id and a repeat
    // are skipped.
    let mut publication = to(message(&default, &orders, "m1", T), &[&a, &b, &elsewhere, &a]);
    publication.subscriptions.push("no-such-subscription".to_owned());
    assert_eq!(
        store.publish(&publication).await?,
        PublishOutcome::Published { deliveries: 2 }
    );
    // The same id again is a duplicate, whatever it names.
    assert_eq!(
        store
            .publish(&to(message(&default, &orders, "m1", T), &[&c]))
            .await?,
        PublishOutcome::Duplicate
    );
    let missing = message(&default, &topic("missing")?, "m2", T);
    assert_eq!(
        store.publish(&to(missing, &[&a])).await?,
        PublishOutcome::TopicNotFound
    );

    let claimed = store.due_deliveries(T, 10, T + LEASE_MS).await?;
    let mut got = pairs(&claimed);
    got.sort();
    let mut want = vec![("m1".to_owned(), a.id.clone()), ("m1".to_owned(), b.id.clone())];
    want.sort();
    assert_eq!(got, want);
    let delivery = claimed.first().ok_or("nothing claimed")?;
    assert_eq!(delivery.message, message(&default, &orders, "m1", T));
    assert_eq!((delivery.attempts, delivery.last_error.as_deref()), (0, None));
    assert_eq!((delivery.due_ms, delivery.lease_until), (T, T + LEASE_MS));

    // A batch: an outcome per publication, in order.
    let outcomes = store
        .publish_many(&[
            to(message(&default, &orders, "m3", T + 1), &[&c]),
            to(message(&default, &orders, "m1", T + 1), &[&c]),
            to(message(&default, &audit, "m3", T + 1), &[&elsewhere]),
            to(message(&default, &orders, "m4", T + 1), &[]),
        ])
        .await?;
    assert_eq!(
        outcomes,
        [
            PublishOutcome::Published { deliveries: 1 },
            PublishOutcome::Duplicate,
            PublishOutcome::Published { deliveries: 1 },
            PublishOutcome::Published { deliveries: 0 },
        ]
    );
    let claimed = store.due_deliveries(T + 1, 10, T + LEASE_MS).await?;
    let mut got = pairs(&claimed);
    got.sort();
    let mut want = vec![
        ("m3".to_owned(), c.id.clone()),
        ("m3".to_owned(), elsewhere.id.clone()),
    ];
    want.sort();
    assert_eq!(got, want);
    Ok(())
}

pub async fn topics_leases_hide_deliveries_until_they_expire(store: &dyn Topics) -> TestResult {
    let default = ns("default")?;
    let orders = create(store, &default, "orders").await?;
    let a = subscribe(store, &default, &orders, queue("a")?).await?;
    store
        .publish(&to(message(&default, &orders, "m1", T), &[&a]))
        .await?;
    store
        .publish(&to(message(&default, &orders, "m2", T + 10), &[&a]))
        .await?;

    // Not due before it is published.
    assert!(store.due_deliveries(T - 1, 10, T + LEASE_MS).await?.is_empty());
    // The limit holds, earliest first.
    let first = store.due_deliveries(T + 10, 1, T + LEASE_MS).await?;
    assert_eq!(pairs(&first), [("m1".to_owned(), a.id.clone())]);
    let second = store.due_deliveries(T + 10, 10, T + 100).await?;
    assert_eq!(pairs(&second), [("m2".to_owned(), a.id.clone())]);
    // Both leased: nothing due until a lease runs out.
    assert!(store.due_deliveries(T + 99, 10, T + LEASE_MS).await?.is_empty());
    // m2's lease ends first; its delivery is handed out again, same id.
    let again = store.due_deliveries(T + 100, 10, T + 2 * LEASE_MS).await?;
    assert_eq!(pairs(&again), pairs(&second));
    assert_eq!(again.first().map(|d| &d.id), second.first().map(|d| &d.id));
    assert_eq!(again.first().map(|d| (d.due_ms, d.attempts)), Some((T + 100, 0)));
    let expired = store.due_deliveries(T + LEASE_MS, 10, T + 3 * LEASE_MS).await?;
    assert_eq!(pairs(&expired), pairs(&first));
    Ok(())
}

pub async fn topics_ack_removes_a_delivery(store: &dyn Topics) -> TestResult {
    let default = ns("default")?;
    let orders = create(store, &default, "orders").await?;
    let (a, b) = (
        subscribe(store, &default, &orders, queue("a")?).await?,
        subscribe(store, &default, &orders, queue("b")?).await?,
    );
    store
        .publish(&to(message(&default, &orders, "m1", T), &[&a, &b]))
        .await?;
    let claimed = store.due_deliveries(T, 10, T + 100).await?;
    assert_eq!(claimed.len(), 2);
    for delivery in &claimed {
        assert!(store.ack_delivery(&delivery.id).await?);
        assert!(!store.ack_delivery(&delivery.id).await?, "acked twice");
    }
    // Acked, so never due again, however long the lease is past.
    assert!(
        store
            .due_deliveries(T + LEASE_MS * 10, 10, T + LEASE_MS * 11)
            .await?
            .is_empty()
    );
    // A gone delivery can be neither retried nor dead-lettered.
    let id = &claimed.first().ok_or("nothing claimed")?.id;
    assert!(!store.retry_delivery(id, T, "late").await?);
    assert!(!store.dead_letter_delivery(id, "late", T).await?);
    Ok(())
}

pub async fn topics_retry_reschedules_and_counts_attempts(store: &dyn Topics) -> TestResult {
    let default = ns("default")?;
    let orders = create(store, &default, "orders").await?;
    let a = subscribe(store, &default, &orders, queue("a")?).await?;
    store
        .publish(&to(message(&default, &orders, "m1", T), &[&a]))
        .await?;
    let id = store
        .due_deliveries(T, 10, T + LEASE_MS)
        .await?
        .first()
        .ok_or("nothing claimed")?
        .id
        .clone();
    // Rescheduled before the lease ends: the retry time wins.
    assert!(
        store
            .retry_delivery(&id, T + 1_000, "503 from the webhook")
            .await?
    );
    assert!(store.due_deliveries(T + 999, 10, T + LEASE_MS).await?.is_empty());
    let claimed = store.due_deliveries(T + 1_000, 10, T + 2_000).await?;
    let delivery = claimed.first().ok_or("not due again")?;
    assert_eq!(
        (
            delivery.id.as_str(),
            delivery.attempts,
            delivery.last_error.as_deref(),
            delivery.due_ms
        ),
        (id.as_str(), 1, Some("503 from the webhook"), T + 1_000)
    );
    assert!(store.retry_delivery(&id, T + 5_000, "timed out").await?);
    let claimed = store.due_deliveries(T + 5_000, 10, T + 6_000).await?;
    let delivery = claimed.first().ok_or("not due again")?;
    assert_eq!(
        (delivery.attempts, delivery.last_error.as_deref()),
        (2, Some("timed out"))
    );
    Ok(())
}

pub async fn topics_postpone_reschedules_without_counting(store: &dyn Topics) -> TestResult {
    let default = ns("default")?;
    let orders = create(store, &default, "orders").await?;
    let a = subscribe(store, &default, &orders, queue("a")?).await?;
    store
        .publish(&to(message(&default, &orders, "m1", T), &[&a]))
        .await?;
    let id = store
        .due_deliveries(T, 10, T + LEASE_MS)
        .await?
        .first()
        .ok_or("nothing claimed")?
        .id
        .clone();
    assert!(store.retry_delivery(&id, T + 1_000, "500").await?);
    store.due_deliveries(T + 1_000, 10, T + LEASE_MS).await?;
    // Postponed before the lease ends: due then, attempts and error as they were.
    assert!(store.postpone_delivery(&id, T + 3_000).await?);
    assert!(
        store
            .due_deliveries(T + 2_999, 10, T + LEASE_MS)
            .await?
            .is_empty()
    );
    let claimed = store.due_deliveries(T + 3_000, 10, T + 4_000).await?;
    let delivery = claimed.first().ok_or("not due again")?;
    assert_eq!(
        (delivery.attempts, delivery.last_error.as_deref(), delivery.due_ms),
        (1, Some("500"), T + 3_000)
    );
    // A dead or gone delivery is not postponed.
    assert!(store.dead_letter_delivery(&id, "gave up", T + 3_000).await?);
    assert!(!store.postpone_delivery(&id, T + 5_000).await?);
    assert!(!store.postpone_delivery("no-such-delivery", T + 5_000).await?);
    Ok(())
}

pub async fn topics_dead_letters_are_listed_per_subscription(store: &dyn Topics) -> TestResult {
    let default = ns("default")?;
    let orders = create(store, &default, "orders").await?;
    let (a, b) = (
        subscribe(store, &default, &orders, queue("a")?).await?,
        subscribe(store, &default, &orders, queue("b")?).await?,
    );
    store
        .publish(&to(message(&default, &orders, "m1", T), &[&a, &b]))
        .await?;
    store
        .publish(&to(message(&default, &orders, "m2", T + 1), &[&a]))
        .await?;
    let claimed = store.due_deliveries(T + 1, 10, T + 100).await?;
    let of = |message: &str, subscription: &SubscriptionRecord| {
        claimed
            .iter()
            .find(|d| d.message.id == message && d.subscription.id == subscription.id)
            .map(|d| d.id.clone())
            .ok_or("no such delivery")
    };
    let (m1a, m2a, m1b) = (of("m1", &a)?, of("m2", &a)?, of("m1", &b)?);
    assert!(store.retry_delivery(&m2a, T + 2, "500").await?);
    assert!(
        store
            .dead_letter_delivery(&m2a, "too many attempts", T + 10)
            .await?
    );
    assert!(store.dead_letter_delivery(&m1a, "gone", T + 20).await?);
    assert!(
        !store.dead_letter_delivery(&m1a, "gone", T + 30).await?,
        "died twice"
    );
    assert!(
        !store.retry_delivery(&m1a, T + 40, "late").await?,
        "a dead letter was retried"
    );
    assert!(!store.ack_delivery(&m1a).await?, "a dead letter was acked");

    let dead = store.list_dead_deliveries(&a.id).await?;
    let summary = dead
        .iter()
        .map(|d| {
            (
                d.message.id.as_str(),
                d.reason.as_str(),
                d.dead_ms,
                d.attempts,
                d.last_error.as_deref(),
            )
        })
        .collect::<Vec<_>>();
    assert_eq!(
        summary,
        [
            ("m2", "too many attempts", T + 10, 1, Some("500")),
            ("m1", "gone", T + 20, 0, None)
        ]
    );
    assert!(dead.iter().all(|d| d.subscription_id == a.id));
    assert_eq!(
        dead.last().map(|d| &d.message),
        Some(&message(&default, &orders, "m1", T))
    );
    assert!(store.list_dead_deliveries(&b.id).await?.is_empty());
    // Dead letters are never due; b's delivery of the same message still is.
    let again = store.due_deliveries(T + 1_000, 10, T + 2_000).await?;
    assert_eq!(again.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), [m1b]);
    // The message stays held while its dead letter is: publishing it again is a duplicate.
    assert_eq!(
        store
            .publish(&to(message(&default, &orders, "m2", T + 3), &[&a]))
            .await?,
        PublishOutcome::Duplicate
    );
    // Unsubscribing drops the subscription's dead letters too.
    assert!(store.unsubscribe(&a.id).await?);
    assert!(store.list_dead_deliveries(&a.id).await?.is_empty());
    Ok(())
}

pub async fn topics_deleting_a_topic_removes_its_deliveries(store: &dyn Topics) -> TestResult {
    let default = ns("default")?;
    let orders = create(store, &default, "orders").await?;
    let audit = create(store, &default, "audit").await?;
    let a = subscribe(store, &default, &orders, queue("a")?).await?;
    let kept = subscribe(store, &default, &audit, queue("a")?).await?;
    store
        .publish(&to(message(&default, &orders, "m1", T), &[&a]))
        .await?;
    store
        .publish(&to(message(&default, &orders, "m2", T), &[&a]))
        .await?;
    store
        .publish(&to(message(&default, &audit, "m3", T), &[&kept]))
        .await?;
    let claimed = store.due_deliveries(T, 1, T + 100).await?;
    let m1 = claimed.first().ok_or("nothing claimed")?;
    assert!(store.dead_letter_delivery(&m1.id, "bad", T).await?);

    assert!(store.delete_topic(&default, &orders).await?);
    assert!(store.get_subscription(&a.id).await?.is_none());
    assert!(store.list_subscriptions(&default, &orders).await?.is_empty());
    assert!(store.list_dead_deliveries(&a.id).await?.is_empty());
    let left = store.due_deliveries(T + LEASE_MS, 10, T + 2 * LEASE_MS).await?;
    assert_eq!(pairs(&left), [("m3".to_owned(), kept.id.clone())]);

    // Made again, the topic starts empty: its old message ids are new again.
    let orders = create(store, &default, "orders").await?;
    let a = subscribe(store, &default, &orders, queue("a")?).await?;
    assert_eq!(
        store
            .publish(&to(message(&default, &orders, "m1", T), &[&a]))
            .await?,
        PublishOutcome::Published { deliveries: 1 }
    );
    Ok(())
}

pub async fn topics_due_deliveries_come_in_due_order(store: &dyn Topics) -> TestResult {
    let default = ns("default")?;
    let orders = create(store, &default, "orders").await?;
    let audit = create(store, &default, "audit").await?;
    let a = subscribe(store, &default, &orders, queue("a")?).await?;
    let b = subscribe(store, &default, &audit, queue("b")?).await?;
    // Published out of order, across topics.
    for (id, at, topic, subscription) in [
        ("m3", 30, &audit, &b),
        ("m1", 10, &orders, &a),
        ("m4", 40, &orders, &a),
        ("m2", 20, &audit, &b),
    ] {
        store
            .publish(&to(message(&default, topic, id, T + at), &[subscription]))
            .await?;
    }
    // A retry moves a delivery back in line by its new due time.
    let first = store.due_deliveries(T + 10, 1, T + 1_000).await?;
    let m1 = first.first().ok_or("m1 not due")?;
    assert_eq!(m1.message.id, "m1");
    assert!(store.retry_delivery(&m1.id, T + 35, "later").await?);

    let order = store
        .due_deliveries(T + 100, 10, T + 1_000)
        .await?
        .iter()
        .map(|d| (d.message.id.clone(), d.due_ms))
        .collect::<Vec<_>>();
    let want = [("m2", 20), ("m3", 30), ("m1", 35), ("m4", 40)].map(|(id, at)| (id.to_owned(), T + at));
    assert_eq!(order, want);
    Ok(())
}
