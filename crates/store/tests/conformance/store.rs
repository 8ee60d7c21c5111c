//! Checks that need several concerns together: removing a function from every concern
//! ([`Store::remove_function`]), removing everything a namespace holds
//! ([`Store::remove_namespace`]), outcomes whose follow-up messages land in queues, and
//! schedules that advance with the event their slot fires. A backend passes these once it
//! implements every concern.

use super::*;
use crate::alarms::{alarm, spec as alarm_spec};
use crate::api_keys::{api_key, key_ids};
use crate::audit::{audit_entry, audit_ids};
use crate::events::{LEASE, fail_all_due, get, outcome};
use crate::queues::{message, queue, stats};
use crate::records::{ids, invocation, log_line, texts};
use wisp_core::{QueueConfig, Role};
// Methods of every concern are called through `&dyn Store`, whose supertraits need no
// import.
use wisp_store::{
    AuditQuery, DeployOutcome, EventCounts, EventOutcome, EventStatus, FollowUp, InvocationQuery,
    InvocationSummary, LogQuery, NamespaceSettings, NewMessage, Resolution, Store,
};

/// Removing a function drops its registry data, as `delete_function` does, and its logs
/// and invocation records.
pub async fn remove_function_removes_unused_code_and_keeps_shared(store: &dyn Store) -> TestResult {
    let default = ns("default")?;
    let (one, two) = (func("one")?, func("two")?);
    let (shared, own) = (&b"shared"[..], &b"own"[..]);
    store
        .deploy(
            &default,
            &one,
            None,
            &version("one-1", shared, 128, 1),
            shared,
            PublishOptions::default(),
        )
        .await?;
    store
        .deploy(
            &default,
            &one,
            None,
            &version("one-2", own, 128, 2),
            own,
            PublishOptions::default(),
        )
        .await?;
    store
        .deploy(
            &default,
            &two,
            None,
            &version("two-1", shared, 256, 3),
            shared,
            PublishOptions::default(),
        )
        .await?;
    store.append_logs(&[log_line(&default, &one, "i1", 0)?]).await?;
    store
        .append_invocations(&[invocation(&default, &one, 0)?, invocation(&default, &two, 1)?])
        .await?;

    assert!(store.remove_function(&default, &one).await?);
    assert_eq!(store.get_function(&default, &one).await?, None);
    assert!(
        !store.has_code(&default, &hash_of(own)).await?,
        "unused code was kept"
    );
    assert!(
        store.has_code(&default, &hash_of(shared)).await?,
        "shared code was deleted"
    );
    assert!(store.get_function(&default, &two).await?.is_some());
    let left = store.logs(&default, &one, &LogQuery::default()).await?;
    assert!(left.is_empty(), "logs outlived their function: {left:?}");
    let left = store
        .invocations(&default, &one, &InvocationQuery::default())
        .await?;
    assert!(left.is_empty(), "invocations outlived their function: {left:?}");
    assert_eq!(
        store.invocation_summary(&default, &one).await?,
        InvocationSummary::default()
    );
    assert_eq!(
        ids(&store
            .invocations(&default, &two, &InvocationQuery::default())
            .await?),
        ["inv-1"],
        "remove took another function's invocations"
    );
    // A batch in flight when the function went: accepted, not a failed batch.
    store
        .append_invocations(&[invocation(&default, &one, 2)?, invocation(&default, &two, 3)?])
        .await?;
    assert_eq!(
        ids(&store
            .invocations(&default, &two, &InvocationQuery::default())
            .await?),
        ["inv-1", "inv-3"]
    );
    assert!(!store.remove_function(&default, &one).await?, "deleted twice");

    // Its versions went too: deploying again starts from scratch.
    let (outcome, _) = store
        .deploy(
            &default,
            &one,
            None,
            &version("one-2", own, 128, 2),
            own,
            PublishOptions::default(),
        )
        .await?;
    assert_eq!(outcome, DeployOutcome::Created { version: 1 });

    assert!(store.remove_function(&default, &two).await?);
    assert!(!store.has_code(&default, &hash_of(shared)).await?);
    assert!(store.has_code(&default, &hash_of(own)).await?);
    Ok(())
}

/// Removing a function drops its events (pending and dead letters, and those its
/// schedules fired) and its schedule state.
pub async fn remove_function_removes_events_and_schedules(store: &dyn Store) -> TestResult {
    let default = ns("default")?;
    let (one, two) = (func("one")?, func("two")?);
    for (name, code) in [(&one, &b"one"[..]), (&two, b"two")] {
        let v = version(&format!("{name}-1"), code, 128, 1);
        store
            .deploy(&default, name, None, &v, code, PublishOptions::default())
            .await?;
    }
    store
        .enqueue_events(
            &[
                event(&default, &one, "one-dead", T_US, T),
                event(&default, &one, "one-waiting", T_US + 1, T + 60_000),
                event(&default, &two, "two-waiting", T_US + 2, T + 60_000),
            ],
            T_US,
        )
        .await?;
    fail_all_due(store, T).await?;
    let fired = event(&default, &one, "one-cron", T_US + 3, T + 60_000);
    assert!(
        store
            .advance_schedule(&default, &one, "* * * * *", T, Some(&fired))
            .await?
    );
    assert!(
        store
            .advance_schedule(&default, &two, "* * * * *", T, None)
            .await?
    );

    assert!(store.remove_function(&default, &one).await?);
    for gone in ["one-dead", "one-waiting", "one-cron"] {
        assert_eq!(
            store.get_event(&default, gone).await?,
            None,
            "{gone} outlived its function"
        );
    }
    assert_eq!(store.event_counts(&default, &one).await?, EventCounts::default());
    assert_eq!(store.schedule_last_slot(&default, &one, "* * * * *").await?, None);
    assert_eq!(store.next_event_due().await?, Some(T + 60_000));
    get(store, &default, "two-waiting").await?;
    assert_eq!(
        store.schedule_last_slot(&default, &two, "* * * * *").await?,
        Some(T),
        "remove took another function's schedule"
    );
    Ok(())
}

/// `delete_function` alone touches only the registry; `remove_function` then drops the
/// rest, and says the function no longer existed.
pub async fn delete_function_touches_only_the_registry(store: &dyn Store) -> TestResult {
    let (default, one) = (ns("default")?, func("one")?);
    let code = &b"one"[..];
    store
        .deploy(
            &default,
            &one,
            None,
            &version("one-1", code, 128, 1),
            code,
            PublishOptions::default(),
        )
        .await?;
    store.append_logs(&[log_line(&default, &one, "i1", 0)?]).await?;
    store
        .append_invocations(&[invocation(&default, &one, 0)?])
        .await?;
    store
        .enqueue_events(&[event(&default, &one, "one-waiting", T_US, T + 60_000)], T_US)
        .await?;
    assert!(
        store
            .advance_schedule(&default, &one, "* * * * *", T, None)
            .await?
    );

    assert!(store.delete_function(&default, &one).await?);
    assert_eq!(store.get_function(&default, &one).await?, None);
    assert!(!store.has_code(&default, &hash_of(code)).await?);
    assert_eq!(
        texts(&store.logs(&default, &one, &LogQuery::default()).await?),
        ["line 0"]
    );
    assert_eq!(
        ids(&store
            .invocations(&default, &one, &InvocationQuery::default())
            .await?),
        ["inv-0"]
    );
    get(store, &default, "one-waiting").await?;
    assert_eq!(
        store.schedule_last_slot(&default, &one, "* * * * *").await?,
        Some(T)
    );

    assert!(
        !store.remove_function(&default, &one).await?,
        "the function was deleted already"
    );
    assert!(store.logs(&default, &one, &LogQuery::default()).await?.is_empty());
    assert_eq!(
        store.invocation_summary(&default, &one).await?,
        InvocationSummary::default()
    );
    assert_eq!(store.get_event(&default, "one-waiting").await?, None);
    assert_eq!(store.schedule_last_slot(&default, &one, "* * * * *").await?, None);
    Ok(())
}

/// Follow-up messages of an outcome land in their queue, once; one to a queue that does
/// not exist is dropped; an outcome that is skipped sends nothing.
pub async fn outcome_follow_up_messages_land_in_queues(store: &dyn Store) -> TestResult {
    let default = ns("default")?;
    let hello = func("hello")?;
    let results = queue("results")?;
    let missing = queue("missing")?;
    store
        .put_queue(&default, &results, &QueueConfig::default(), T)
        .await?;
    store
        .enqueue_events(&[event(&default, &hello, "ok", T_US, T)], T_US)
        .await?;
    let claimed = store.claim_events(T + 1, T_US + 1_000, LEASE, 10).await?;
    let [ok] = &claimed[..] else {
        return Err(format!("claimed {} events", claimed.len()).into());
    };

    let note = NewMessage {
        id: "msg-ok".to_owned(),
        body: r#"{"ok":true}"#.to_owned(),
        delay_ms: 0,
        chain_depth: 1,
        trace: Some("1-5759e988-bd862e3fe1be46a994272793".to_owned()),
        parent: Some("inv-sender".to_owned()),
    };
    let now = T + 2;
    let outcomes = [
        outcome(
            ok,
            Resolution::Succeeded {
                result: b"200 OK".to_vec(),
            },
            vec![
                FollowUp::Message {
                    namespace: default.clone(),
                    queue: results.clone(),
                    message: note.clone(),
                },
                // A destination queue that is gone: dropped, not an error.
                FollowUp::Message {
                    namespace: default.clone(),
                    queue: missing.clone(),
                    message: note.clone(),
                },
            ],
        ),
        // An event that is gone: skipped, and so are its follow-ups.
        EventOutcome {
            namespace: default.clone(),
            id: "purged".to_owned(),
            attempts: 1,
            resolution: Resolution::Succeeded { result: vec![] },
            follow_ups: vec![FollowUp::Message {
                namespace: default.clone(),
                queue: results.clone(),
                message: message("msg-purged"),
            }],
        },
    ];
    store.complete_events(&outcomes, now).await?;

    assert_eq!(get(store, &default, "ok").await?.status, EventStatus::Succeeded);
    let received = store.receive_messages(&default, &results, 10, 1_000, now).await?;
    assert_eq!(received.messages.len(), 1);
    let message = &received.messages[0];
    assert_eq!(
        (message.id.as_str(), message.body.as_str()),
        ("msg-ok", note.body.as_str())
    );
    assert_eq!((message.sent_at, message.chain_depth), (now, 1));
    assert_eq!(message.trace, note.trace, "a follow-up message keeps its trace");
    assert_eq!(store.get_queue(&default, &missing).await?, None);

    // An outcome repeated for an event already resolved changes nothing and sends
    // nothing (a batch written again after an error).
    let repeat = EventOutcome {
        follow_ups: vec![FollowUp::Message {
            namespace: default.clone(),
            queue: results.clone(),
            message: NewMessage {
                id: "msg-twice".to_owned(),
                ..note
            },
        }],
        ..outcomes[0].clone()
    };
    store.complete_events(&[repeat], T + 600).await?;
    assert_eq!(get(store, &default, "ok").await?.updated_at, now);
    assert_eq!(
        store.queue_stats(&default, &results, T + 600).await?,
        stats(0, 1, 0),
        "a repeated outcome sent again"
    );
    Ok(())
}

/// A schedule's slot moves together with the event it fires.
pub async fn schedules_advance_monotonically_with_their_event(store: &dyn Store) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    let (hello, world) = (func("hello")?, func("world")?);
    let (every_minute, hourly) = ("* * * * *", "0 * * * * @ Europe/Berlin");
    assert_eq!(
        store.schedule_last_slot(&default, &hello, every_minute).await?,
        None
    );

    let fired = NewEvent {
        source: format!("schedule:{every_minute}"),
        qualifier: None,
        ..event(&default, &hello, "slot-1", T_US, T)
    };
    assert!(
        store
            .advance_schedule(&default, &hello, every_minute, T, Some(&fired))
            .await?
    );
    assert_eq!(
        store.schedule_last_slot(&default, &hello, every_minute).await?,
        Some(T)
    );
    let recorded = store
        .get_event(&default, "slot-1")
        .await?
        .ok_or("the slot's event is missing")?;
    assert_eq!(recorded.status, EventStatus::Pending);
    assert_eq!(recorded.source, fired.source);

    // The same slot again, or an earlier one, records nothing: not even its event.
    for slot in [T, T - 60_000] {
        let again = event(&default, &hello, &format!("again-{slot}"), T_US, slot);
        assert!(
            !store
                .advance_schedule(&default, &hello, every_minute, slot, Some(&again))
                .await?
        );
        assert_eq!(store.get_event(&default, &again.id).await?, None);
    }
    assert_eq!(
        store.schedule_last_slot(&default, &hello, every_minute).await?,
        Some(T)
    );

    // A skipped slot moves the schedule without an event.
    assert!(
        store
            .advance_schedule(&default, &hello, every_minute, T + 60_000, None)
            .await?
    );
    assert_eq!(
        store.schedule_last_slot(&default, &hello, every_minute).await?,
        Some(T + 60_000)
    );
    let next = event(&default, &hello, "slot-3", T_US + 120_000_000, T + 120_000);
    assert!(
        store
            .advance_schedule(&default, &hello, every_minute, T + 120_000, Some(&next))
            .await?
    );
    assert!(store.get_event(&default, "slot-3").await?.is_some());

    // Each schedule of each function of each namespace has its own state.
    assert_eq!(store.schedule_last_slot(&default, &hello, hourly).await?, None);
    assert_eq!(
        store.schedule_last_slot(&default, &world, every_minute).await?,
        None
    );
    assert_eq!(
        store.schedule_last_slot(&other, &hello, every_minute).await?,
        None
    );
    assert!(store.advance_schedule(&default, &hello, hourly, T, None).await?);
    assert!(
        store
            .advance_schedule(&other, &hello, every_minute, T, None)
            .await?
    );
    assert_eq!(store.schedule_last_slot(&default, &hello, hourly).await?, Some(T));
    assert_eq!(
        store.schedule_last_slot(&default, &hello, every_minute).await?,
        Some(T + 120_000)
    );
    Ok(())
}

/// Removing a namespace drops its functions (with their events and records), its queues
/// (with their messages), its keys and its record; another namespace keeps all of its, and
/// the audit log keeps the entries of both.
pub async fn remove_namespace_removes_only_its_contents_and_keeps_the_audit(store: &dyn Store) -> TestResult {
    let (gone, kept) = (ns("gone")?, ns("kept")?);
    let (hello, jobs) = (func("hello")?, queue("jobs")?);
    for namespace in [&gone, &kept] {
        assert!(
            store
                .create_namespace(namespace, &NamespaceSettings::default(), T)
                .await?
        );
        for name in [&hello, &func("other")?] {
            let v = version(&format!("{name}-1"), name.as_str().as_bytes(), 128, 1);
            store
                .deploy(
                    namespace,
                    name,
                    None,
                    &v,
                    name.as_str().as_bytes(),
                    PublishOptions::default(),
                )
                .await?;
        }
        store
            .append_invocations(&[invocation(namespace, &hello, 0)?])
            .await?;
        let id = format!("{namespace}-event");
        store
            .enqueue_events(&[event(namespace, &hello, &id, T_US, T)], T_US)
            .await?;
        for name in [&jobs, &queue("more")?] {
            store
                .put_queue(namespace, name, &QueueConfig::default(), T)
                .await?;
        }
        store
            .send_messages(namespace, &jobs, &[message(&format!("{namespace}-m"))], T)
            .await?;
        store
            .put_alarm(namespace, &alarm("errors")?, &alarm_spec(1)?, T)
            .await?;
        let key = api_key(namespace, &format!("WK{namespace}"), Role::Deploy, T);
        assert!(store.create_key(&key).await?);
        store
            .append_audit(&[audit_entry(namespace, &format!("{namespace}-deploy"), T)])
            .await?;
    }

    assert!(store.remove_namespace(&gone).await?);
    assert_eq!(store.namespace(&gone).await?, None);
    assert!(store.list_functions(Some(&gone)).await?.is_empty());
    assert!(store.list_queues(Some(&gone)).await?.is_empty());
    assert!(store.list_keys(Some(&gone)).await?.is_empty());
    assert!(store.list_alarms(Some(&gone)).await?.is_empty());
    assert_eq!(store.get_event(&gone, "gone-event").await?, None);
    let left = store
        .invocations(&gone, &hello, &InvocationQuery::default())
        .await?;
    assert!(left.is_empty(), "invocations outlived their namespace: {left:?}");

    // The other namespace keeps everything.
    assert!(store.namespace(&kept).await?.is_some());
    assert_eq!(store.list_functions(Some(&kept)).await?.len(), 2);
    assert_eq!(store.list_queues(Some(&kept)).await?.len(), 2);
    assert_eq!(store.queue_stats(&kept, &jobs, T).await?, stats(1, 0, 0));
    assert_eq!(key_ids(&store.list_keys(None).await?), ["WKkept"]);
    let alarms = store.list_alarms(None).await?;
    assert_eq!(
        alarms
            .iter()
            .map(|a| format!("{}/{}", a.namespace, a.name))
            .collect::<Vec<_>>(),
        ["kept/errors"]
    );
    assert!(store.get_event(&kept, "kept-event").await?.is_some());
    assert_eq!(
        ids(&store
            .invocations(&kept, &hello, &InvocationQuery::default())
            .await?),
        ["inv-0"]
    );
    // The audit log keeps the entries of both.
    assert_eq!(
        audit_ids(&store.audit(&AuditQuery::default()).await?),
        ["kept-deploy", "gone-deploy"]
    );

    // Again: nothing left to remove and no record, so `false`.
    assert!(!store.remove_namespace(&gone).await?);
    // A namespace used without a record loses its contents all the same.
    let unrecorded = ns("unrecorded")?;
    store
        .put_queue(&unrecorded, &jobs, &QueueConfig::default(), T)
        .await?;
    assert!(!store.remove_namespace(&unrecorded).await?);
    assert!(store.list_queues(Some(&unrecorded)).await?.is_empty());
    Ok(())
}

/// Usage is billable after what it counted is gone: removing a function, or its whole
/// namespace, keeps it (unlike the records it was counted from).
pub async fn usage_survives_remove_function_and_remove_namespace(store: &dyn Store) -> TestResult {
    use crate::usage::{H, query, sample};
    use wisp_store::{HOUR_MS, UsageGrouping};
    let (default, other, hello) = (ns("default")?, ns("other")?, func("hello")?);
    let code = &b"metered"[..];
    for namespace in [&default, &other] {
        store
            .deploy(
                namespace,
                &hello,
                None,
                &version("v1", code, 128, 1),
                code,
                PublishOptions::default(),
            )
            .await?;
    }
    store.append_invocations(&sample()?).await?;
    let all = query(None, None, H, H + 3 * HOUR_MS, UsageGrouping::Version)?;
    let before = store.usage(&all).await?;
    assert_eq!(before.len(), 4);

    assert!(store.remove_function(&default, &hello).await?);
    assert!(
        store
            .invocations(&default, &hello, &InvocationQuery::default())
            .await?
            .is_empty()
    );
    store
        .create_namespace(&other, &NamespaceSettings::default(), T)
        .await?;
    store.remove_namespace(&other).await?;
    assert!(
        store
            .invocations(&other, &hello, &InvocationQuery::default())
            .await?
            .is_empty()
    );
    assert_eq!(store.usage(&all).await?, before, "removing forgot usage");
    Ok(())
}

pub async fn remove_namespace_removes_its_key_value_stores(store: &dyn Store) -> TestResult {
    use wisp_core::KvStoreName;
    use wisp_store::{KvCondition, KvSet, KvStoreRecord, KvWrite};
    let (gone, kept) = (ns("gone")?, ns("kept")?);
    let name = KvStoreName::new("cache")?;
    for namespace in [&gone, &kept] {
        let record = KvStoreRecord {
            namespace: namespace.clone(),
            name: name.clone(),
            created_ms: T,
        };
        assert!(store.create_kv_store(&record).await?);
        let write = KvWrite {
            key: "k".to_owned(),
            value: b"v".to_vec(),
            ttl_expires_ms: None,
            condition: KvCondition::Any,
        };
        assert!(matches!(
            store.kv_set(namespace, &name, write, T).await?,
            KvSet::Stored { .. }
        ));
    }
    // A namespace used before it had a record loses its contents too.
    assert!(!store.remove_namespace(&gone).await?);
    assert!(store.list_kv_stores(Some(&gone)).await?.is_empty());
    assert_eq!(store.kv_get(&gone, &name, "k", T).await?, None);
    assert!(store.get_kv_store(&kept, &name).await?.is_some());
    assert!(store.kv_get(&kept, &name, "k", T).await?.is_some());
    Ok(())
}

/// Removing a namespace removes its secrets, and only its.
pub async fn remove_namespace_removes_its_secrets(store: &dyn Store) -> TestResult {
    use wisp_core::SecretName;
    use wisp_store::SecretCondition;
    let (gone, kept) = (ns("gone")?, ns("kept")?);
    let name = SecretName::new("db")?;
    for namespace in [&gone, &kept] {
        store
            .put_secret(namespace, &name, b"sealed".to_vec(), SecretCondition::Any, T)
            .await?;
    }
    assert!(!store.remove_namespace(&gone).await?);
    assert!(store.list_secrets(Some(&gone)).await?.is_empty());
    assert!(store.get_secret(&kept, &name).await?.is_some());
    Ok(())
}

pub async fn remove_namespace_removes_its_topics(store: &dyn Store) -> TestResult {
    use crate::topics::{create, message, subscribe, to};
    use wisp_store::Endpoint;
    let (gone, kept) = (ns("gone")?, ns("kept")?);
    let mut subscriptions = Vec::new();
    for namespace in [&gone, &kept] {
        let orders = create(store, namespace, "orders").await?;
        let subscription = subscribe(store, namespace, &orders, Endpoint::Function(func("handle")?)).await?;
        store
            .publish(&to(message(namespace, &orders, "m1", T), &[&subscription]))
            .await?;
        subscriptions.push(subscription);
    }
    assert!(!store.remove_namespace(&gone).await?);
    assert!(store.list_topics(Some(&gone)).await?.is_empty());
    let [gone_sub, kept_sub] = subscriptions.as_slice() else {
        return Err("two subscriptions".into());
    };
    assert!(store.get_subscription(&gone_sub.id).await?.is_none());
    let left = store.due_deliveries(T, 10, T + 1_000).await?;
    assert_eq!(
        left.iter()
            .map(|d| d.subscription.id.as_str())
            .collect::<Vec<_>>(),
        [kept_sub.id.as_str()]
    );
    assert_eq!(store.list_topics(None).await?.len(), 1);
    Ok(())
}
