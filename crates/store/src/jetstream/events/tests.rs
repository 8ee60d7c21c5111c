//! What the shared suite cannot show: nodes racing to record one id or one key, to
//! claim one event, and a node releasing only its own leases; and how long a batch of
//! new events takes to write.
use super::*;
use std::collections::{BTreeMap, BTreeSet};
use wisp_test_support::nats::NatsServer;

const T: i64 = 1_700_000_000_000;
const T_US: i64 = T * 1_000;

/// Two nodes on one server and prefix.
async fn nodes() -> (NatsServer, JetStreamStore, JetStreamStore) {
    let server = NatsServer::start();
    let a = JetStreamStore::connect(&server.url, "test").await.unwrap();
    let b = JetStreamStore::connect(&server.url, "test").await.unwrap();
    (server, a.with_node("a").unwrap(), b.with_node("b").unwrap())
}

fn event(id: &str, created_us: i64) -> NewEvent {
    NewEvent {
        namespace: Namespace::new("default").unwrap(),
        function: FunctionName::new("hello").unwrap(),
        id: id.to_owned(),
        payload: format!("{{\"id\":\"{id}\"}}").into_bytes(),
        idempotency_key: None,
        chain_depth: 0,
        source: "api".to_owned(),
        qualifier: None,
        trace: None,
        parent: None,
        created_us,
        run_at: T,
        lease: None,
    }
}

/// Four writers on two nodes write the same 40 ids and, each under ids of its own, the
/// same 10 idempotency keys: each id is new once, and each key is held by one event,
/// which every other writer is told of.
#[tokio::test]
async fn racing_nodes_record_each_id_and_each_key_once() {
    let (_server, a, b) = nodes().await;
    let writers = (0..4).map(|n| {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move {
            let mut events: Vec<NewEvent> = (0..40).map(|i| event(&format!("e{i}"), T_US + i)).collect();
            events.extend((0..10).map(|k| NewEvent {
                idempotency_key: Some(format!("key-{k}")),
                ..event(&format!("w{n}-k{k}"), T_US + 100 + k)
            }));
            let answers = store.enqueue_events(&events, T_US).await.unwrap();
            events.into_iter().map(|e| e.id).zip(answers).collect::<Vec<_>>()
        })
    });
    let mut new_ids = Vec::new();
    let mut named: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for writer in writers {
        for (id, answer) in writer.await.unwrap() {
            match answer {
                Enqueued::New => new_ids.push(id),
                Enqueued::Duplicate { id: holder } if id.starts_with('w') => {
                    named.entry(id[3..].to_owned()).or_default().insert(holder);
                }
                Enqueued::Duplicate { id: same } => assert_eq!(same, id),
            }
        }
    }
    let unique: BTreeSet<&String> = new_ids.iter().collect();
    assert_eq!((new_ids.len(), unique.len()), (50, 50), "{new_ids:?}");
    for k in 0..10 {
        let winners: Vec<&String> = new_ids
            .iter()
            .filter(|id| id.ends_with(&format!("-k{k}")))
            .collect();
        assert_eq!(winners.len(), 1, "key-{k}: {winners:?}");
        let told = &named[&format!("k{k}")];
        assert_eq!(told.iter().collect::<Vec<_>>(), winners, "key-{k}");
    }
    let counts = a
        .event_counts(
            &Namespace::new("default").unwrap(),
            &FunctionName::new("hello").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(counts.queued, 50);
}

/// Four claimers on two nodes take each of 100 due events exactly once, each under its
/// own node's lease; a node's restart releases its leases and none of the other's.
#[tokio::test]
async fn racing_claims_take_each_event_once_and_restarts_release_their_own() {
    let (_server, a, b) = nodes().await;
    let events: Vec<NewEvent> = (0..100).map(|i| event(&format!("e{i:03}"), T_US + i)).collect();
    a.enqueue_events(&events, T_US).await.unwrap();
    let claimers = (0..4).map(|n| {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let claimed = store.claim_events(T, T_US, T + 60_000, 7).await.unwrap();
                if claimed.is_empty() {
                    return (store.node().to_owned(), ids);
                }
                ids.extend(claimed.into_iter().map(|e| e.id));
            }
        })
    });
    let mut all = Vec::new();
    let mut by_a = 0;
    for claimer in claimers {
        let (node, ids) = claimer.await.unwrap();
        if node == "a" {
            by_a += ids.len();
        }
        all.extend(ids);
    }
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (100, 100));

    // Each node lists its own leases, and cannot release the other's.
    let (held_a, held_b) = (a.held_leases().await.unwrap(), b.held_leases().await.unwrap());
    assert_eq!((held_a.len(), held_b.len()), (by_a, 100 - by_a));
    assert_eq!(a.release_leases(&held_b).await.unwrap(), 0);
    assert_eq!(a.release_event_leases().await.unwrap(), by_a as u64);
    let (ns, hello) = (
        Namespace::new("default").unwrap(),
        FunctionName::new("hello").unwrap(),
    );
    let counts = b.event_counts(&ns, &hello).await.unwrap();
    assert_eq!((counts.queued, counts.running), (by_a as u64, 100 - by_a as u64));
    // B's leases, freed by A once B is gone (as a node does when B's heartbeat stops).
    assert_eq!(a.release_node_leases(b.node()).await.unwrap(), 100 - by_a as u64);
    assert_eq!(b.release_event_leases().await.unwrap(), 0);
    assert_eq!(a.release_event_leases().await.unwrap(), 0);
    assert_eq!(a.release_node_leases("no-such-node").await.unwrap(), 0);
    assert_eq!(a.release_node_leases("not a token").await.unwrap(), 0);
}

/// How long `write_events` of a batch of 256 new events takes against a local server:
/// the median of 20 batches. Run with `cargo nextest run -p wisp-store
/// write_events_timing --run-ignored only --no-capture`.
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn write_events_timing() {
    let (_server, a, _b) = nodes().await;
    let mut times = Vec::new();
    for batch in 0..20 {
        let events: Vec<NewEvent> = (0..256)
            .map(|i| event(&uuid::Uuid::now_v7().to_string(), T_US + batch * 1_000 + i))
            .collect();
        let started = std::time::Instant::now();
        let answers = a.write_events(&events, T_US, &[], T).await.unwrap();
        times.push(started.elapsed());
        assert!(answers.iter().all(|a| *a == Enqueued::New));
    }
    times.sort();
    println!(
        "write_events of 256 new events: median {:?}, min {:?}, max {:?}",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
}

/// An outcome's follow-ups are written before it: a message to a queue and an event. A
/// call that failed after writing them (here: the message already sent, the event already
/// recorded) and is made again stores neither twice; the outcome written a third time sends
/// nothing; a follow-up to a queue that does not exist is dropped.
#[tokio::test]
async fn follow_ups_are_written_once_before_their_outcome() {
    use crate::{NewMessage, Queues, Resolution};
    use wisp_core::{QueueConfig, QueueName};
    let (_server, a, b) = nodes().await;
    let ns = Namespace::new("default").unwrap();
    let jobs = QueueName::new("jobs").unwrap();
    assert!(a.put_queue(&ns, &jobs, &QueueConfig::default(), T).await.unwrap());
    a.enqueue_events(&[event("run", T_US)], T_US).await.unwrap();
    let claimed = a.claim_events(T, T_US, T + 60_000, 1).await.unwrap();
    let message = NewMessage {
        id: "message-1".to_owned(),
        body: "done".to_owned(),
        delay_ms: 0,
        chain_depth: 1,
        trace: None,
        parent: Some("run".to_owned()),
    };
    let follow_up = event("follow-up", T_US + 1);
    let outcome = EventOutcome {
        namespace: ns.clone(),
        id: claimed[0].id.clone(),
        attempts: 1,
        resolution: Resolution::Succeeded {
            result: b"ok".to_vec(),
        },
        follow_ups: vec![
            FollowUp::Message {
                namespace: ns.clone(),
                queue: jobs.clone(),
                message: message.clone(),
            },
            FollowUp::Message {
                namespace: ns.clone(),
                queue: QueueName::new("gone").unwrap(),
                message: NewMessage {
                    id: "message-2".to_owned(),
                    ..message.clone()
                },
            },
            FollowUp::Event(follow_up.clone()),
        ],
    };
    // The first try got as far as its follow-ups.
    a.send_messages(&ns, &jobs, std::slice::from_ref(&message), T)
        .await
        .unwrap();
    a.enqueue_events(std::slice::from_ref(&follow_up), T_US)
        .await
        .unwrap();
    // The retry, on another node, and a third write of the same outcome.
    b.complete_events(std::slice::from_ref(&outcome), T + 1)
        .await
        .unwrap();
    b.complete_events(std::slice::from_ref(&outcome), T + 2)
        .await
        .unwrap();
    let stats = a.queue_stats(&ns, &jobs, T + 3).await.unwrap();
    assert_eq!(stats.visible, 1, "{stats:?}");
    let done = a.get_event(&ns, "run").await.unwrap().unwrap();
    assert_eq!((done.status, done.updated_at), (EventStatus::Succeeded, T + 1));
    let counts = a
        .event_counts(&ns, &FunctionName::new("hello").unwrap())
        .await
        .unwrap();
    assert_eq!((counts.queued, counts.succeeded), (1, 1));
}
