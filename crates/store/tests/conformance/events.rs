//! Checks of async invocation events: enqueueing (ids and idempotency keys),
//! claiming, completing (with each [`Failure`]), leases, the dead-letter operations, the
//! sweep and forgetting a function's events.
//!
//! Every time is explicit (a fake clock starting at [`T`]), so the store's behaviour
//! over time is tested without sleeping.

use super::*;
use wisp_core::ErrorCode;
use wisp_store::{
    Enqueued, EventBacklog, EventCounts, EventOutcome, EventQuery, EventRecord, EventStatus, Events, Failure,
    FollowUp, HeldLease, Lease, NewEvent, Resolution,
};

/// A lease long enough never to matter.
pub const LEASE: i64 = T + 3_600_000;

fn keyed(event: NewEvent, key: &str) -> NewEvent {
    NewEvent {
        idempotency_key: Some(key.to_owned()),
        ..event
    }
}

fn dup(id: &str) -> Enqueued {
    Enqueued::Duplicate { id: id.to_owned() }
}

fn ids(records: &[EventRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

pub fn outcome(record: &EventRecord, resolution: Resolution, follow_ups: Vec<FollowUp>) -> EventOutcome {
    EventOutcome {
        namespace: record.namespace.clone(),
        id: record.id.clone(),
        attempts: record.attempts + 1,
        resolution,
        follow_ups,
    }
}

fn failed(why: &str) -> Resolution {
    Resolution::Failed {
        error: format!("function_error: {why}"),
        failure: Failure::RetriesExhausted,
        result: None,
    }
}

pub async fn get(store: &dyn Events, namespace: &Namespace, id: &str) -> TestResult<EventRecord> {
    Ok(store
        .get_event(namespace, id)
        .await?
        .ok_or_else(|| format!("event `{id}` is missing"))?)
}

/// Claims everything due at `now` and fails it for good: dead letters to work with.
pub async fn fail_all_due(store: &dyn Events, now: i64) -> TestResult<Vec<EventRecord>> {
    let claimed = store.claim_events(now, now * 1_000, LEASE, 100).await?;
    let outcomes: Vec<EventOutcome> = claimed
        .iter()
        .map(|r| outcome(r, failed(&r.id), vec![]))
        .collect();
    store.complete_events(&outcomes, now).await?;
    Ok(claimed)
}

pub async fn events_enqueue_dedupes_ids_and_idempotency_keys(store: &dyn Events) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    let (hello, world) = (func("hello")?, func("world")?);
    assert!(store.enqueue_events(&[], T_US).await?.is_empty());

    // A repeated id, within one batch and across batches, is recorded once.
    let a = event(&default, &hello, "a", T_US, T);
    let b = NewEvent {
        chain_depth: 3,
        source: "destination:world".to_owned(),
        qualifier: Some("beta".parse()?),
        trace: Some("1-5759e988-bd862e3fe1be46a994272793".to_owned()),
        ..event(&default, &hello, "b", T_US + 1, T + 5)
    };
    let changed_a = NewEvent {
        payload: b"another payload".to_vec(),
        ..a.clone()
    };
    let results = store
        .enqueue_events(&[a.clone(), b.clone(), changed_a.clone()], T_US)
        .await?;
    assert_eq!(results, [Enqueued::New, Enqueued::New, dup("a")]);
    assert_eq!(store.enqueue_events(&[changed_a], T_US).await?, [dup("a")]);

    let stored = get(store, &default, "a").await?;
    assert_eq!(stored.payload, a.payload, "a duplicate overwrote the event");
    assert_eq!(
        (stored.namespace.clone(), stored.function.clone(), stored.status),
        (default.clone(), hello.clone(), EventStatus::Pending)
    );
    assert_eq!(
        (stored.attempts, stored.chain_depth, stored.source.as_str()),
        (0, 0, "api")
    );
    assert_eq!((stored.created_us, stored.run_at), (T_US, T));
    assert_eq!((stored.leased_until, stored.first_run_us), (None, None));
    assert_eq!(
        (stored.last_error, stored.failure, stored.result),
        (None, None, None)
    );
    assert_eq!(stored.idempotency_key, None);
    let stored_b = get(store, &default, "b").await?;
    assert_eq!(
        (stored_b.chain_depth, stored_b.source.as_str()),
        (3, "destination:world")
    );
    assert_eq!(stored_b.trace, b.trace, "the trace is carried with the event");
    assert_eq!(stored.trace, None);
    assert_eq!(stored_b.run_at, T + 5);
    assert_eq!(
        stored_b.qualifier,
        Some("beta".parse()?),
        "the qualifier did not round-trip"
    );
    assert_eq!(stored.qualifier, None);
    assert_eq!(
        store.get_event(&other, "a").await?,
        None,
        "an event was found under another namespace"
    );

    // An idempotency key dedupes per function and namespace, within the window.
    let since = T_US - 1_000;
    let k1 = keyed(event(&default, &hello, "k1", T_US + 10, T), "order-7");
    assert_eq!(store.enqueue_events(&[k1], since).await?, [Enqueued::New]);
    let results = store
        .enqueue_events(
            &[
                keyed(event(&default, &hello, "k1-again", T_US + 20, T), "order-7"),
                keyed(event(&default, &world, "k1-world", T_US + 20, T), "order-7"),
                keyed(event(&other, &hello, "k1-other", T_US + 20, T), "order-7"),
                // The same key twice in one batch.
                keyed(event(&default, &hello, "k2", T_US + 30, T), "order-8"),
                keyed(event(&default, &hello, "k2-again", T_US + 31, T), "order-8"),
            ],
            since,
        )
        .await?;
    assert_eq!(
        results,
        [dup("k1"), Enqueued::New, Enqueued::New, Enqueued::New, dup("k2")]
    );
    assert_eq!(store.get_event(&default, "k1-again").await?, None);
    assert_eq!(store.get_event(&default, "k2-again").await?, None);
    assert_eq!(
        get(store, &default, "k1").await?.idempotency_key.as_deref(),
        Some("order-7")
    );
    // A repeated id with a key is a duplicate of itself, whoever holds the key.
    let again = keyed(event(&default, &hello, "k1-world", T_US + 40, T), "order-7");
    assert_eq!(store.enqueue_events(&[again], since).await?, [dup("k1-world")]);

    // Outside the window the older event gives its key up to the new one.
    let later = T_US + 11;
    let k1_later = keyed(event(&default, &hello, "k1-later", T_US + 50, T), "order-7");
    assert_eq!(store.enqueue_events(&[k1_later], later).await?, [Enqueued::New]);
    assert_eq!(get(store, &default, "k1").await?.idempotency_key, None);
    assert_eq!(
        get(store, &default, "k1-later").await?.idempotency_key.as_deref(),
        Some("order-7")
    );
    let yet_again = keyed(event(&default, &hello, "k1-third", T_US + 60, T), "order-7");
    assert_eq!(
        store.enqueue_events(&[yet_again], later).await?,
        [dup("k1-later")]
    );
    // Exactly at the window's edge still counts as inside it.
    let edge = keyed(event(&default, &hello, "k1-edge", T_US + 70, T), "order-7");
    assert_eq!(store.enqueue_events(&[edge], T_US + 50).await?, [dup("k1-later")]);
    Ok(())
}

pub async fn events_claim_respects_run_at_leases_and_limit(store: &dyn Events) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    let hello = func("hello")?;
    assert!(store.claim_events(T, T_US, LEASE, 10).await?.is_empty());
    store
        .enqueue_events(
            &[
                event(&default, &hello, "late", T_US, T + 30),
                event(&default, &hello, "early", T_US + 1, T + 10),
                event(&other, &hello, "middle", T_US + 2, T + 20),
                event(&default, &hello, "future", T_US + 3, T + 100),
                // Due at the same time as `middle`, created after it.
                event(&default, &hello, "middle-2", T_US + 4, T + 20),
            ],
            T_US,
        )
        .await?;

    assert!(
        store
            .claim_events(T + 9, T_US + 9_000, LEASE, 10)
            .await?
            .is_empty()
    );
    assert!(store.claim_events(T + 50, T_US, LEASE, 0).await?.is_empty());
    let now_us = (T + 50) * 1_000 + 7;
    let first = store.claim_events(T + 50, now_us, T + 1_000, 3).await?;
    assert_eq!(
        ids(&first),
        ["early", "middle", "middle-2"],
        "oldest run_at first, then oldest created"
    );
    for record in &first {
        assert_eq!(record.leased_until, Some(T + 1_000));
        assert_eq!(record.first_run_us, Some(now_us));
        assert_eq!(record.status, EventStatus::Pending);
        assert_eq!(record, &get(store, &record.namespace, &record.id).await?);
    }
    assert_eq!(first[1].namespace, other, "claims span namespaces");

    // Leased events are not claimed again; the future one is not due yet.
    let second = store.claim_events(T + 50, now_us, T + 1_000, 10).await?;
    assert_eq!(ids(&second), ["late"]);
    assert!(
        store
            .claim_events(T + 99, now_us, T + 1_000, 10)
            .await?
            .is_empty()
    );
    let third = store.claim_events(T + 100, now_us, T + 1_000, 10).await?;
    assert_eq!(ids(&third), ["future"]);
    // A lease that ran out is not claimed either: only a restart releases leases.
    assert!(
        store
            .claim_events(T + 5_000, now_us, T + 9_000, 10)
            .await?
            .is_empty()
    );
    Ok(())
}

/// The writer's transaction: the outcomes of finished runs and new events together,
/// some new events claimed as they are written.
pub async fn events_write_records_leased_events_with_outcomes(store: &dyn Events) -> TestResult {
    let default = ns("default")?;
    let hello = func("hello")?;
    assert!(store.write_events(&[], T_US, &[], T).await?.is_empty());
    let lease = Lease {
        until: T + 1_000,
        started_us: T_US + 40,
    };
    let running = NewEvent {
        lease: Some(lease),
        ..event(&default, &hello, "running", T_US, T)
    };
    let waiting = event(&default, &hello, "waiting", T_US + 1, T);
    let results = store
        .write_events(&[running.clone(), waiting.clone()], T_US, &[], T)
        .await?;
    assert_eq!(results, [Enqueued::New, Enqueued::New]);
    // Written as the engine runs it, with no claim of its own.
    let stored = get(store, &default, "running").await?;
    assert_eq!(stored, EventRecord::fresh(running.clone()));
    assert_eq!(stored.leased_until, Some(T + 1_000));
    assert_eq!(stored.first_run_us, Some(T_US + 40));
    assert_eq!(
        get(store, &default, "waiting").await?,
        EventRecord::fresh(waiting.clone())
    );
    let claimed = store.claim_events(T + 10, T_US + 10_000, LEASE, 10).await?;
    assert_eq!(ids(&claimed), ["waiting"], "a leased event is not claimed again");

    // Its outcome goes with the next batch; a duplicate in that batch takes no lease.
    let next = NewEvent {
        lease: Some(lease),
        ..event(&default, &hello, "next", T_US + 2, T + 5)
    };
    let again = NewEvent {
        lease: Some(lease),
        ..running.clone()
    };
    let done = outcome(
        &stored,
        Resolution::Succeeded {
            result: b"ok".to_vec(),
        },
        vec![],
    );
    let results = store
        .write_events(&[next.clone(), again], T_US, &[done], T + 20)
        .await?;
    assert_eq!(results, [Enqueued::New, dup("running")]);
    let finished = get(store, &default, "running").await?;
    assert_eq!(finished.status, EventStatus::Succeeded);
    assert_eq!(finished.leased_until, None);
    assert_eq!(finished.result.as_deref(), Some(&b"ok"[..]));
    assert_eq!(get(store, &default, "next").await?, EventRecord::fresh(next));

    // A restart releases the leases written with events, like a claim's.
    assert_eq!(store.release_event_leases().await?, 2);
    let claimed = store.claim_events(T + 30, T_US + 30_000, LEASE, 10).await?;
    assert_eq!(ids(&claimed), ["waiting", "next"]);
    Ok(())
}

/// Each resolution, and follow-up events. (Follow-up messages, which land in queues, are
/// checked in `store`.)
pub async fn events_complete_applies_each_resolution_with_follow_ups(store: &dyn Events) -> TestResult {
    let default = ns("default")?;
    let (hello, audit) = (func("hello")?, func("audit")?);
    store
        .enqueue_events(
            &[
                event(&default, &hello, "ok", T_US, T),
                event(&default, &hello, "again", T_US + 1, T),
                event(&default, &hello, "dead", T_US + 2, T),
            ],
            T_US,
        )
        .await?;
    let claimed = store.claim_events(T + 1, T_US + 1_000, LEASE, 10).await?;
    let [ok, again, dead] = &claimed[..] else {
        return Err(format!("claimed {:?}", ids(&claimed)).into());
    };

    let on_success = event(&default, &audit, "audit-ok", T_US + 2_000, T + 2);
    let now = T + 2;
    let outcomes = [
        outcome(
            ok,
            Resolution::Succeeded {
                result: b"200 OK".to_vec(),
            },
            vec![FollowUp::Event(on_success.clone())],
        ),
        outcome(
            again,
            Resolution::Retry {
                run_at: T + 500,
                error: "timeout: ran past 30s".to_owned(),
            },
            vec![],
        ),
        outcome(
            dead,
            Resolution::Failed {
                error: "function_error: boom".to_owned(),
                failure: Failure::RetriesExhausted,
                result: Some(br#"{"errorMessage":"boom"}"#.to_vec()),
            },
            vec![],
        ),
        // An event that is gone: skipped, and so are its follow-ups.
        EventOutcome {
            namespace: default.clone(),
            id: "purged".to_owned(),
            attempts: 1,
            resolution: Resolution::Succeeded { result: vec![] },
            follow_ups: vec![FollowUp::Event(event(&default, &audit, "audit-purged", T_US, T))],
        },
    ];
    store.complete_events(&outcomes, now).await?;

    let ok = get(store, &default, "ok").await?;
    assert_eq!(ok.status, EventStatus::Succeeded);
    assert_eq!(ok.result.as_deref(), Some(&b"200 OK"[..]));
    assert_eq!((ok.leased_until, ok.attempts, ok.updated_at), (None, 1, now));
    assert_eq!(ok.first_run_us, Some(T_US + 1_000));
    let follow = get(store, &default, "audit-ok").await?;
    assert_eq!(
        (follow.function, follow.status, follow.payload),
        (audit.clone(), EventStatus::Pending, on_success.payload)
    );
    assert_eq!(store.get_event(&default, "audit-purged").await?, None);
    assert_eq!(store.get_event(&default, "purged").await?, None);

    let retried = get(store, &default, "again").await?;
    assert_eq!(retried.status, EventStatus::Pending);
    assert_eq!(
        (retried.leased_until, retried.run_at, retried.attempts),
        (None, T + 500, 1)
    );
    assert_eq!(retried.last_error.as_deref(), Some("timeout: ran past 30s"));
    assert_eq!((retried.failure, retried.result), (None, None));

    let dead = get(store, &default, "dead").await?;
    assert_eq!(dead.status, EventStatus::Failed);
    assert_eq!(dead.leased_until, None);
    assert_eq!(dead.last_error.as_deref(), Some("function_error: boom"));
    assert_eq!(dead.failure, Some(Failure::RetriesExhausted));
    assert_eq!(dead.result.as_deref(), Some(&br#"{"errorMessage":"boom"}"#[..]));

    // The retry runs again when due, keeping the time it first ran.
    let due = store.claim_events(T + 499, T_US + 499_000, LEASE, 10).await?;
    assert_eq!(ids(&due), ["audit-ok"]);
    let rerun = store.claim_events(T + 500, T_US + 500_000, LEASE, 10).await?;
    assert_eq!(ids(&rerun), ["again"]);
    assert_eq!(rerun[0].first_run_us, Some(T_US + 1_000));
    assert_eq!(rerun[0].attempts, 1);

    // An outcome repeated for an event already resolved changes nothing and sends
    // nothing (a batch written again after an error).
    let repeat = EventOutcome {
        follow_ups: vec![FollowUp::Event(event(
            &default,
            &audit,
            "audit-twice",
            T_US + 600_000,
            T + 600,
        ))],
        ..outcomes[0].clone()
    };
    store.complete_events(&[repeat], T + 600).await?;
    assert_eq!(get(store, &default, "ok").await?.updated_at, now);
    assert_eq!(
        store.get_event(&default, "audit-twice").await?,
        None,
        "a repeated outcome sent again"
    );
    store.complete_events(&[], T + 600).await?;
    Ok(())
}

/// A live node's leases are listed, and each is released only while it is as listed (an
/// event resolved, or claimed again, meanwhile is left alone).
pub async fn events_held_leases_are_listed_and_released_as_listed(store: &dyn Events) -> TestResult {
    let (default, hello) = (ns("default")?, func("hello")?);
    assert_eq!(store.held_leases().await?, []);
    assert_eq!(store.release_leases(&[]).await?, 0);
    store
        .enqueue_events(
            &[
                event(&default, &hello, "a", T_US, T),
                event(&default, &hello, "b", T_US + 1, T),
                event(&default, &hello, "c", T_US + 2, T + 50),
            ],
            T_US,
        )
        .await?;
    let claimed = store.claim_events(T + 10, T_US + 10_000, LEASE, 10).await?;
    assert_eq!(ids(&claimed), ["a", "b"]);
    let held = |id: &str, leased_until| HeldLease {
        id: id.to_owned(),
        leased_until,
    };
    let mut leases = store.held_leases().await?;
    leases.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(leases, [held("a", LEASE), held("b", LEASE)]);

    // `b` ends: its lease is gone, and releasing it as listed changes nothing.
    let done = outcome(&claimed[1], Resolution::Succeeded { result: vec![] }, vec![]);
    store.complete_events(&[done], T + 20).await?;
    assert_eq!(store.held_leases().await?, [held("a", LEASE)]);
    assert_eq!(
        store
            .release_leases(&[held("a", LEASE + 1), held("b", LEASE)])
            .await?,
        0,
        "another lease's end, or an event that ended"
    );
    assert_eq!(get(store, &default, "b").await?.status, EventStatus::Succeeded);

    assert_eq!(store.release_leases(&[held("a", LEASE)]).await?, 1);
    assert_eq!(store.release_leases(&[held("a", LEASE)]).await?, 0);
    let a = get(store, &default, "a").await?;
    assert_eq!((a.status, a.leased_until), (EventStatus::Pending, None));
    assert_eq!(a.first_run_us, Some(T_US + 10_000), "its first run is kept");
    assert_eq!(store.held_leases().await?, []);

    // Claimed again: the old listing no longer names its lease.
    let again = store.claim_events(T + 30, T_US + 30_000, LEASE + 5, 10).await?;
    assert_eq!(ids(&again), ["a"]);
    assert_eq!(store.release_leases(&[held("a", LEASE)]).await?, 0);
    assert_eq!(store.held_leases().await?, [held("a", LEASE + 5)]);
    Ok(())
}

pub async fn events_release_leases_and_next_due(store: &dyn Events) -> TestResult {
    let (default, hello) = (ns("default")?, func("hello")?);
    assert_eq!(store.next_event_due().await?, None);
    assert_eq!(store.release_event_leases().await?, 0);
    store
        .enqueue_events(
            &[
                event(&default, &hello, "a", T_US, T + 10),
                event(&default, &hello, "b", T_US + 1, T + 20),
                event(&default, &hello, "c", T_US + 2, T + 30),
            ],
            T_US,
        )
        .await?;
    assert_eq!(store.next_event_due().await?, Some(T + 10));
    let claimed = store.claim_events(T + 20, T_US + 20_000, LEASE, 2).await?;
    assert_eq!(ids(&claimed), ["a", "b"]);
    assert_eq!(
        store.next_event_due().await?,
        Some(T + 30),
        "a leased event is not due"
    );
    // `b` ends; `a` was running when the process stopped.
    store
        .complete_events(
            &[outcome(
                &claimed[1],
                Resolution::Succeeded { result: vec![] },
                vec![],
            )],
            T + 21,
        )
        .await?;

    assert_eq!(store.release_event_leases().await?, 1);
    assert_eq!(store.release_event_leases().await?, 0);
    let a = get(store, &default, "a").await?;
    assert_eq!((a.status, a.leased_until), (EventStatus::Pending, None));
    assert_eq!(a.first_run_us, Some(T_US + 20_000));
    assert_eq!(store.next_event_due().await?, Some(T + 10));
    let reclaimed = store.claim_events(T + 40, T_US + 40_000, LEASE, 10).await?;
    assert_eq!(ids(&reclaimed), ["a", "c"]);
    assert_eq!(reclaimed[0].first_run_us, Some(T_US + 20_000));
    assert_eq!(store.next_event_due().await?, None);
    Ok(())
}

pub async fn events_get_list_and_counts(store: &dyn Events) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    let (hello, world) = (func("hello")?, func("world")?);
    assert_eq!(
        store.event_counts(&default, &hello).await?,
        EventCounts::default()
    );
    assert!(
        store
            .list_events(&default, &hello, EventStatus::Pending, 10)
            .await?
            .is_empty()
    );
    // Enqueued out of creation order, so the order below is the store's doing.
    let mut batch = Vec::new();
    for (n, id) in ["p2", "p0", "p1", "s0", "s1", "f0", "r0"].iter().enumerate() {
        let created = match *id {
            "p0" => 0,
            "p1" => 1,
            "p2" => 2,
            _ => 10 + i64::try_from(n)?,
        };
        batch.push(event(&default, &hello, id, T_US + created, T));
    }
    batch.push(event(&default, &world, "w0", T_US, T));
    batch.push(event(&other, &hello, "o0", T_US, T));
    store.enqueue_events(&batch, T_US).await?;
    // Run them all, and end each as its name says: p* retried, s* succeeded, f0
    // failed for good, r0 still running.
    let claimed = store.claim_events(T, T_US, LEASE, 100).await?;
    let mut outcomes = Vec::new();
    for record in &claimed {
        let resolution = match record.id.as_str() {
            "s0" | "s1" => Resolution::Succeeded { result: vec![] },
            "f0" => failed("f0"),
            "p0" | "p1" | "p2" | "w0" | "o0" => Resolution::Retry {
                run_at: T + 1_000,
                error: "throttled".to_owned(),
            },
            _ => continue, // r0 stays running
        };
        outcomes.push(outcome(record, resolution, vec![]));
    }
    store.complete_events(&outcomes, T + 1).await?;

    assert_eq!(
        store.event_counts(&default, &hello).await?,
        EventCounts {
            queued: 3,
            running: 1,
            succeeded: 2,
            failed: 1,
        }
    );
    assert_eq!(
        store.event_counts(&other, &hello).await?,
        EventCounts {
            queued: 1,
            ..EventCounts::default()
        }
    );
    // The backlog of every function in one read: succeeded events are left out, the
    // oldest pending is the earliest created (p0, at T_US), in milliseconds.
    let backlog = |namespace: &Namespace, function: &FunctionName, queued, running, failed| EventBacklog {
        namespace: namespace.clone(),
        function: function.clone(),
        queued,
        running,
        failed,
        oldest_pending_ms: Some(T_US / 1000),
    };
    assert_eq!(
        store.event_backlog(None).await?,
        [
            backlog(&default, &hello, 3, 1, 1),
            backlog(&default, &world, 1, 0, 0),
            backlog(&other, &hello, 1, 0, 0),
        ]
    );
    assert_eq!(
        store.event_backlog(Some(&other)).await?,
        [backlog(&other, &hello, 1, 0, 0)]
    );
    assert!(store.event_backlog(Some(&ns("nobody")?)).await?.is_empty());
    let pending = store
        .list_events(&default, &hello, EventStatus::Pending, 10)
        .await?;
    assert_eq!(ids(&pending), ["r0", "p2", "p1", "p0"], "newest created first");
    assert_eq!(
        ids(&store
            .list_events(&default, &hello, EventStatus::Pending, 2)
            .await?),
        ["r0", "p2"]
    );
    let succeeded = store
        .list_events(&default, &hello, EventStatus::Succeeded, 10)
        .await?;
    assert_eq!(ids(&succeeded), ["s1", "s0"]);
    let dead = store
        .list_events(&default, &hello, EventStatus::Failed, 10)
        .await?;
    assert_eq!(ids(&dead), ["f0"]);
    assert_eq!(
        dead[0],
        get(store, &default, "f0").await?,
        "list and get disagree"
    );
    assert_eq!(
        ids(&store
            .list_events(&default, &world, EventStatus::Pending, 10)
            .await?),
        ["w0"]
    );
    assert_eq!(store.get_event(&other, "p0").await?, None);
    Ok(())
}

/// A function's events of one status a page at a time: newest first, ties of one
/// microsecond by id, never another function's, status's or namespace's.
pub async fn events_browse_pages_a_functions_events_newest_first(store: &dyn Events) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    let (hello, world) = (func("hello")?, func("world")?);
    let query = |function: &FunctionName, status, before: Option<&EventRecord>, limit| EventQuery {
        namespace: default.clone(),
        function: function.clone(),
        status,
        before: before.map(|e| (e.created_us, e.id.clone())),
        limit,
    };
    let pending = EventStatus::Pending;
    assert!(
        store
            .browse_events(&query(&hello, pending, None, 10))
            .await?
            .is_empty()
    );
    store
        .enqueue_events(
            &[
                event(&default, &hello, "h1", T_US + 1, T),
                event(&default, &world, "w2", T_US + 2, T + 60_000),
                event(&default, &hello, "h3a", T_US + 3, T + 60_000),
                event(&default, &hello, "h3b", T_US + 3, T + 60_000),
                event(&default, &hello, "h4", T_US + 4, T + 60_000),
                event(&other, &hello, "o5", T_US + 5, T),
            ],
            T_US,
        )
        .await?;
    // h1 and o5 are due: one fails for good (h1), the other namespace's is left alone.
    let claimed = store.claim_events(T, T_US, LEASE, 100).await?;
    let h1: Vec<_> = claimed.iter().filter(|e| e.id == "h1").collect();
    store
        .complete_events(&[outcome(h1[0], failed("h1"), vec![])], T + 1)
        .await?;

    let all = store.browse_events(&query(&hello, pending, None, 10)).await?;
    assert_eq!(ids(&all), ["h4", "h3b", "h3a"]);
    assert_eq!(
        all[0],
        get(store, &default, "h4").await?,
        "browse and get disagree"
    );
    // Pages of two, each starting after the last of the one before, split the tie.
    let first = store.browse_events(&query(&hello, pending, None, 2)).await?;
    assert_eq!(ids(&first), ["h4", "h3b"]);
    let second = store
        .browse_events(&query(&hello, pending, first.last(), 2))
        .await?;
    assert_eq!(ids(&second), ["h3a"]);
    assert!(
        store
            .browse_events(&query(&hello, pending, second.last(), 2))
            .await?
            .is_empty()
    );
    let dead = store
        .browse_events(&query(&hello, EventStatus::Failed, None, 10))
        .await?;
    assert_eq!(ids(&dead), ["h1"]);
    assert_eq!(
        ids(&store.browse_events(&query(&world, pending, None, 10)).await?),
        ["w2"]
    );
    assert!(
        store
            .browse_events(&query(&world, EventStatus::Succeeded, None, 10))
            .await?
            .is_empty()
    );
    let others = store
        .browse_events(&EventQuery {
            namespace: other,
            ..query(&hello, pending, None, 10)
        })
        .await?;
    assert_eq!(ids(&others), ["o5"]);
    Ok(())
}

pub async fn events_redrive_and_purge_touch_only_dead_letters(store: &dyn Events) -> TestResult {
    let default = ns("default")?;
    let (hello, world) = (func("hello")?, func("world")?);
    store
        .enqueue_events(
            &[
                event(&default, &hello, "d1", T_US, T),
                event(&default, &hello, "d2", T_US + 1, T),
                event(&default, &hello, "d3", T_US + 2, T),
                event(&default, &world, "w1", T_US + 3, T),
            ],
            T_US,
        )
        .await?;
    fail_all_due(store, T).await?;
    store
        .enqueue_events(
            &[
                event(&default, &hello, "ok", T_US + 4, T + 1),
                event(&default, &hello, "waiting", T_US + 5, T + 50_000),
            ],
            T_US,
        )
        .await?;
    let ok = store.claim_events(T + 1, T_US + 1_000, LEASE, 10).await?;
    store
        .complete_events(
            &[outcome(&ok[0], Resolution::Succeeded { result: vec![] }, vec![])],
            T + 2,
        )
        .await?;

    // Only the named dead letters of this function come back.
    let named: Vec<String> = ["d1", "ok", "waiting", "w1", "nope"].map(str::to_owned).to_vec();
    let now = T + 10_000;
    let redriven = store
        .redrive_events(&default, &hello, Some(&named), now, now * 1_000)
        .await?;
    assert_eq!(redriven, ["d1"]);
    let d1 = get(store, &default, "d1").await?;
    assert_eq!(
        (d1.status, d1.attempts, d1.leased_until),
        (EventStatus::Pending, 0, None)
    );
    assert_eq!((d1.created_us, d1.run_at), (now * 1_000, now));
    assert_eq!(d1.failure, None);
    assert_eq!(
        d1.last_error.as_deref(),
        Some("function_error: d1"),
        "redrive lost the last error"
    );
    assert_eq!(get(store, &default, "ok").await?.status, EventStatus::Succeeded);
    assert_eq!(get(store, &default, "w1").await?.status, EventStatus::Failed);
    assert_eq!(
        store.event_counts(&default, &hello).await?,
        EventCounts {
            queued: 2,
            running: 0,
            succeeded: 1,
            failed: 2,
        }
    );
    // It runs again as a fresh event would, with its first run measured afresh.
    let rerun = store.claim_events(now, now * 1_000 + 5, LEASE, 10).await?;
    assert_eq!(ids(&rerun), ["d1"]);
    assert_eq!(rerun[0].first_run_us, Some(now * 1_000 + 5));

    let all = store
        .redrive_events(&default, &hello, None, now, now * 1_000)
        .await?;
    assert_eq!(sorted(all), ["d2", "d3"]);
    assert!(
        store
            .redrive_events(&default, &hello, None, now, now * 1_000)
            .await?
            .is_empty()
    );

    // Dead again, then purged: by id, then the rest.
    fail_all_due(store, now).await?;
    let dead = store
        .list_events(&default, &hello, EventStatus::Failed, 10)
        .await?;
    assert_eq!(dead.len(), 2);
    assert_eq!(store.purge_events(&default, &hello, Some(&named)).await?, 0);
    let d2 = ["d2".to_owned(), "ok".to_owned()];
    assert_eq!(store.purge_events(&default, &hello, Some(&d2)).await?, 1);
    assert_eq!(store.get_event(&default, "d2").await?, None);
    // `d1` is still running (claimed above): not a dead letter.
    assert_eq!(store.purge_events(&default, &hello, None).await?, 1);
    assert_eq!(store.purge_events(&default, &hello, None).await?, 0);
    assert_eq!(
        store.event_counts(&default, &hello).await?,
        EventCounts {
            queued: 1,
            running: 1,
            succeeded: 1,
            failed: 0,
        }
    );
    assert_eq!(
        get(store, &default, "w1").await?.status,
        EventStatus::Failed,
        "purge crossed functions"
    );
    Ok(())
}

pub async fn events_sweep_drops_only_old_successes(store: &dyn Events) -> TestResult {
    let (default, hello) = (ns("default")?, func("hello")?);
    store
        .enqueue_events(
            &[
                keyed(event(&default, &hello, "old-ok", T_US, T), "key-1"),
                event(&default, &hello, "new-ok", T_US + 100, T),
                event(&default, &hello, "old-dead", T_US + 1, T),
            ],
            T_US,
        )
        .await?;
    let claimed = store.claim_events(T, T_US, LEASE, 10).await?;
    let outcomes: Vec<EventOutcome> = claimed
        .iter()
        .map(|r| {
            let resolution = if r.id.ends_with("ok") {
                Resolution::Succeeded { result: vec![] }
            } else {
                failed(&r.id)
            };
            outcome(r, resolution, vec![])
        })
        .collect();
    store.complete_events(&outcomes, T + 1).await?;
    store
        .enqueue_events(
            &[event(&default, &hello, "old-pending", T_US + 2, T + 60_000)],
            T_US,
        )
        .await?;

    assert_eq!(store.sweep_events(T_US).await?, 0, "the bound is exclusive");
    assert_eq!(store.sweep_events(T_US + 50).await?, 1);
    assert_eq!(store.get_event(&default, "old-ok").await?, None);
    for kept in ["new-ok", "old-dead", "old-pending"] {
        get(store, &default, kept).await?;
    }
    // A swept event's key is free again, whatever the window.
    let reuse = keyed(event(&default, &hello, "reuse", T_US + 200, T), "key-1");
    assert_eq!(store.enqueue_events(&[reuse], 0).await?, [Enqueued::New]);
    assert_eq!(store.sweep_events(T_US + 1_000).await?, 1);
    Ok(())
}

/// Every [`Failure`] is written with its outcome and read back by `get_event` and
/// `list_events`; a redrive clears it.
pub async fn events_failure_round_trips(store: &dyn Events) -> TestResult {
    let (default, hello) = (ns("default")?, func("hello")?);
    let batch: Vec<NewEvent> = Failure::ALL
        .iter()
        .enumerate()
        .map(|(n, failure)| -> TestResult<NewEvent> {
            Ok(event(
                &default,
                &hello,
                failure.as_str(),
                T_US + i64::try_from(n)?,
                T,
            ))
        })
        .collect::<TestResult<_>>()?;
    store.enqueue_events(&batch, T_US).await?;
    let claimed = store.claim_events(T, T_US, LEASE, 10).await?;
    assert_eq!(claimed.len(), Failure::ALL.len());
    let outcomes: Vec<EventOutcome> = claimed
        .iter()
        .map(|record| -> TestResult<EventOutcome> {
            let failure = Failure::parse(&record.id).ok_or("an event id that names no failure")?;
            let resolution = Resolution::Failed {
                error: format!("function_error: {failure}"),
                failure,
                result: None,
            };
            Ok(outcome(record, resolution, vec![]))
        })
        .collect::<TestResult<_>>()?;
    store.complete_events(&outcomes, T + 1).await?;

    for failure in Failure::ALL {
        let record = get(store, &default, failure.as_str()).await?;
        assert_eq!(record.failure, Some(failure), "{failure} did not round-trip");
    }
    let listed = store
        .list_events(&default, &hello, EventStatus::Failed, 10)
        .await?;
    assert_eq!(listed.len(), Failure::ALL.len());
    for record in &listed {
        assert_eq!(record.failure.map(Failure::as_str), Some(record.id.as_str()));
    }
    let redriven = store
        .redrive_events(&default, &hello, None, T + 2, T_US + 2_000)
        .await?;
    assert_eq!(redriven.len(), Failure::ALL.len());
    for failure in Failure::ALL {
        assert_eq!(get(store, &default, failure.as_str()).await?.failure, None);
    }
    Ok(())
}

/// Forgetting a function's events drops every one of them, whatever its status, and
/// nothing of another function or namespace; the outcome of a run that was in flight is
/// skipped afterwards, with its follow-ups.
pub async fn events_forget_function_touches_only_that_function(store: &dyn Events) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    let (one, two) = (func("one")?, func("two")?);
    store
        .enqueue_events(
            &[
                event(&default, &one, "one-dead", T_US, T),
                event(&default, &one, "one-ok", T_US + 1, T),
                event(&default, &one, "one-running", T_US + 2, T),
                event(&default, &one, "one-waiting", T_US + 3, T + 60_000),
                event(&default, &two, "two-waiting", T_US + 4, T + 60_000),
                event(&other, &one, "other-one-waiting", T_US + 5, T + 30_000),
            ],
            T_US,
        )
        .await?;
    let claimed = store.claim_events(T, T_US, LEASE, 10).await?;
    assert_eq!(ids(&claimed), ["one-dead", "one-ok", "one-running"]);
    let running = claimed[2].clone();
    store
        .complete_events(
            &[
                outcome(&claimed[0], failed("one-dead"), vec![]),
                outcome(&claimed[1], Resolution::Succeeded { result: vec![] }, vec![]),
            ],
            T + 1,
        )
        .await?;
    assert_eq!(
        store.event_counts(&default, &one).await?,
        EventCounts {
            queued: 1,
            running: 1,
            succeeded: 1,
            failed: 1,
        }
    );

    store.forget_function(&default, &one).await?;
    for gone in ["one-dead", "one-ok", "one-running", "one-waiting"] {
        assert_eq!(
            store.get_event(&default, gone).await?,
            None,
            "{gone} outlived its function"
        );
    }
    assert_eq!(store.event_counts(&default, &one).await?, EventCounts::default());
    for status in [EventStatus::Pending, EventStatus::Succeeded, EventStatus::Failed] {
        assert!(store.list_events(&default, &one, status, 10).await?.is_empty());
    }
    get(store, &default, "two-waiting").await?;
    get(store, &other, "other-one-waiting").await?;
    assert_eq!(
        store.next_event_due().await?,
        Some(T + 30_000),
        "forgetting crossed namespaces"
    );

    // The run that was in flight ends: its outcome finds no event, and sends nothing.
    let late = outcome(
        &running,
        Resolution::Succeeded { result: vec![] },
        vec![FollowUp::Event(event(
            &default,
            &two,
            "two-late",
            T_US + 6,
            T + 2,
        ))],
    );
    store.complete_events(&[late], T + 2).await?;
    assert_eq!(store.get_event(&default, "one-running").await?, None);
    assert_eq!(store.get_event(&default, "two-late").await?, None);

    // Idempotent.
    store.forget_function(&default, &one).await?;
    assert_eq!(
        store.event_counts(&default, &two).await?,
        EventCounts {
            queued: 1,
            ..EventCounts::default()
        }
    );
    Ok(())
}

/// A held event: released, not run, its attempts unchanged and its hold kept as a
/// total; releasing the namespace's held events makes only those due now.
pub async fn events_held_by_a_quota_wait_and_are_released(store: &dyn Events) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    let hello = func("hello")?;
    store
        .enqueue_events(
            &[
                event(&default, &hello, "held", T_US, T),
                event(&default, &hello, "retried", T_US + 1, T),
                event(&other, &hello, "elsewhere", T_US + 2, T),
            ],
            T_US,
        )
        .await?;
    let claimed = store.claim_events(T + 1, T_US + 1_000, LEASE, 10).await?;
    let [held, retried, elsewhere] = &claimed[..] else {
        return Err(format!("claimed {:?}", ids(&claimed)).into());
    };
    let hold = |record: &EventRecord, held_ms| {
        outcome(
            record,
            Resolution::Held {
                run_at: T + 30_000,
                held_ms,
                error: "quota_exceeded: held".to_owned(),
            },
            vec![],
        )
    };
    let outcomes = [
        hold(held, 30_000),
        outcome(
            retried,
            Resolution::Retry {
                run_at: T + 30_000,
                error: "timeout: ran past 30s".to_owned(),
            },
            vec![],
        ),
        hold(elsewhere, 30_000),
    ];
    store.complete_events(&outcomes, T + 2).await?;
    // Written twice (a batch retried after an error): the total stays.
    store.complete_events(&outcomes[..1], T + 2).await?;
    let record = get(store, &default, "held").await?;
    assert_eq!(record.status, EventStatus::Pending);
    assert_eq!(record.leased_until, None);
    assert_eq!(record.attempts, held.attempts, "a hold counted an attempt");
    assert_eq!(record.held_ms, 30_000);
    assert_eq!(record.run_at, T + 30_000);
    assert_eq!(record.last_error.as_deref(), Some("quota_exceeded: held"));
    // Its age leaves the hold out.
    assert_eq!(record.age_us(T_US + 40_000_000), 10_000_000);

    assert_eq!(
        store
            .release_held_events(&default, None, ErrorCode::QuotaExceeded, T + 3)
            .await?,
        1
    );
    let released = get(store, &default, "held").await?;
    assert_eq!(released.run_at, T + 3);
    assert_eq!(released.held_ms, 3, "the hold not served was kept");
    assert_eq!(
        get(store, &default, "retried").await?.run_at,
        T + 30_000,
        "a retry was released"
    );
    assert_eq!(
        get(store, &other, "elsewhere").await?.run_at,
        T + 30_000,
        "another namespace was released"
    );
    assert_eq!(
        store
            .release_held_events(&default, None, ErrorCode::QuotaExceeded, T + 4)
            .await?,
        0,
        "released twice"
    );
    let due = store.claim_events(T + 3, T_US + 3_000, LEASE, 10).await?;
    assert_eq!(ids(&due), ["held"]);
    assert_eq!(due[0].held_ms, 3, "a claim dropped the hold");
    Ok(())
}
