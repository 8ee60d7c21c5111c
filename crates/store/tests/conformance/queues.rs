//! Checks of platform queues: their records, sending and receiving under visibility
//! timeouts, receipt handles, dead-letter moves and redrives, retention, delays,
//! stats, purges, and what each operation does with a queue that does not exist.

use super::*;
use std::time::Duration;
use wisp_core::{QueueConfig, QueueName};
use wisp_store::{NewMessage, QueueDepth, QueueStats, Queues, ReceivedMessage, StoreError};

pub fn queue(name: &str) -> TestResult<QueueName> {
    Ok(QueueName::new(name)?)
}

/// A trace root, as messages and events carry it.
const TRACE: &str = "1-5759e988-bd862e3fe1be46a994272793";

pub fn message(id: &str) -> NewMessage {
    NewMessage {
        id: id.to_owned(),
        body: format!("body of {id}"),
        delay_ms: 0,
        chain_depth: 0,
        trace: None,
        parent: None,
    }
}

fn delayed(id: &str, delay_ms: u64) -> NewMessage {
    NewMessage {
        delay_ms,
        ..message(id)
    }
}

fn ids(messages: &[ReceivedMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.id.as_str()).collect()
}

pub fn stats(visible: u64, in_flight: u64, delayed: u64) -> QueueStats {
    QueueStats {
        visible,
        in_flight,
        delayed,
    }
}

/// A queue that moves a message to `dlq` on the receive after its `max`th.
fn with_dead_letters(max: u32, dlq: &QueueName) -> QueueConfig {
    QueueConfig {
        max_receive_count: Some(max),
        dead_letter_queue: Some(dlq.clone()),
        ..QueueConfig::default()
    }
}

fn is_not_found(result: Result<impl std::fmt::Debug, StoreError>, name: &QueueName) -> bool {
    matches!(result, Err(StoreError::QueueNotFound(ref q)) if q == name)
}

pub async fn queues_put_get_list_delete(store: &dyn Queues) -> TestResult {
    let (alpha, beta) = (ns("alpha")?, ns("beta")?);
    let jobs = queue("jobs")?;
    assert_eq!(store.get_queue(&alpha, &jobs).await?, None);
    assert!(store.list_queues(None).await?.is_empty());

    let config = QueueConfig {
        visibility_timeout: Duration::from_secs(45),
        retention: Duration::from_secs(3_600),
        ..QueueConfig::default()
    };
    assert!(store.put_queue(&alpha, &jobs, &config, T).await?);
    let created = store.get_queue(&alpha, &jobs).await?.ok_or("jobs is missing")?;
    assert_eq!(
        (created.namespace.clone(), created.name.clone()),
        (alpha.clone(), jobs.clone())
    );
    assert_eq!(created.config, config);
    assert_eq!((created.created_at, created.updated_at), (T, T));

    // The same config again changes nothing; another one is an update.
    assert!(!store.put_queue(&alpha, &jobs, &config, T + 1).await?);
    assert_eq!(store.get_queue(&alpha, &jobs).await?.as_ref(), Some(&created));
    let dlq = queue("jobs-dlq")?;
    let changed = with_dead_letters(3, &dlq);
    assert!(!store.put_queue(&alpha, &jobs, &changed, T + 2).await?);
    let updated = store.get_queue(&alpha, &jobs).await?.ok_or("jobs vanished")?;
    assert_eq!(updated.config, changed);
    assert_eq!((updated.created_at, updated.updated_at), (T, T + 2));

    // Put out of order, so the order below is the store's doing.
    for (namespace, name) in [(&beta, "b"), (&alpha, "zeta"), (&beta, "a"), (&alpha, "alpha")] {
        store
            .put_queue(namespace, &queue(name)?, &QueueConfig::default(), T)
            .await?;
    }
    let names = |records: Vec<wisp_store::QueueRecord>| -> Vec<String> {
        records
            .iter()
            .map(|r| format!("{}/{}", r.namespace, r.name))
            .collect()
    };
    assert_eq!(
        names(store.list_queues(Some(&alpha)).await?),
        ["alpha/alpha", "alpha/jobs", "alpha/zeta"]
    );
    assert_eq!(
        names(store.list_queues(None).await?),
        ["alpha/alpha", "alpha/jobs", "alpha/zeta", "beta/a", "beta/b"]
    );
    let listed = store.list_queues(Some(&alpha)).await?;
    assert_eq!(listed.get(1), Some(&updated), "list and get disagree");

    // Deleting takes the messages with it: a queue made again under the name is empty.
    store.send_messages(&alpha, &jobs, &[message("m1")], T).await?;
    assert!(store.delete_queue(&alpha, &jobs).await?);
    assert!(!store.delete_queue(&alpha, &jobs).await?);
    assert_eq!(store.get_queue(&alpha, &jobs).await?, None);
    assert!(store.put_queue(&alpha, &jobs, &config, T + 3).await?);
    assert_eq!(
        store.queue_stats(&alpha, &jobs, T + 3).await?,
        QueueStats::default()
    );
    assert_eq!(store.next_message_visible(&alpha, &jobs).await?, None);
    assert!(store.get_queue(&beta, &jobs).await?.is_none());
    Ok(())
}

pub async fn queues_receive_hides_messages_until_the_visibility_timeout(store: &dyn Queues) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    let jobs = queue("jobs")?;
    store
        .put_queue(&default, &jobs, &QueueConfig::default(), T)
        .await?;
    store.put_queue(&other, &jobs, &QueueConfig::default(), T).await?;
    let received = store.receive_messages(&default, &jobs, 10, 1_000, T).await?;
    assert!(received.messages.is_empty() && received.dead_lettered.is_empty());

    let sent = [
        message("m1"),
        NewMessage {
            chain_depth: 4,
            trace: Some(TRACE.to_owned()),
            ..message("m2")
        },
        message("m3"),
    ];
    store.send_messages(&default, &jobs, &sent, T).await?;
    store.send_messages(&default, &jobs, &[], T).await?;
    store.send_messages(&other, &jobs, &[message("o1")], T).await?;
    assert_eq!(store.next_message_visible(&default, &jobs).await?, Some(T));

    let first = store.receive_messages(&default, &jobs, 2, 1_000, T + 5).await?;
    assert_eq!(ids(&first.messages), ["m1", "m2"], "oldest first");
    let m2 = &first.messages[1];
    assert_eq!(m2.body, "body of m2");
    assert_eq!((m2.sent_at, m2.first_received_at), (T, T + 5));
    assert_eq!((m2.receive_count, m2.chain_depth), (1, 4));
    assert_eq!(
        m2.trace.as_deref(),
        Some(TRACE),
        "the trace is carried with the message"
    );
    assert_eq!(first.messages[0].trace, None);
    assert_ne!(first.messages[0].receipt_handle, m2.receipt_handle);

    let second = store
        .receive_messages(&default, &jobs, 10, 1_000, T + 500)
        .await?;
    assert_eq!(ids(&second.messages), ["m3"]);
    assert!(
        store
            .receive_messages(&default, &jobs, 10, 1_000, T + 1_004)
            .await?
            .messages
            .is_empty(),
        "a message came back before its visibility timeout"
    );
    assert_eq!(
        store.next_message_visible(&default, &jobs).await?,
        Some(T + 1_005)
    );

    // Past the timeout they come back: counted again, with new receipts.
    let third = store
        .receive_messages(&default, &jobs, 10, 2_000, T + 1_005)
        .await?;
    assert_eq!(ids(&third.messages), ["m1", "m2"]);
    let m2_again = &third.messages[1];
    assert_eq!((m2_again.receive_count, m2_again.first_received_at), (2, T + 5));
    assert_ne!(m2_again.receipt_handle, m2.receipt_handle);

    // The first receipts are stale now; the current ones work once.
    let stale = vec![
        first.messages[0].receipt_handle.clone(),
        m2.receipt_handle.clone(),
    ];
    assert!(
        !store
            .change_visibility(&default, &jobs, &m2.receipt_handle, T)
            .await?
    );
    assert_eq!(
        store.delete_messages(&default, &jobs, &stale).await?,
        [false, false]
    );
    let current = vec![
        third.messages[0].receipt_handle.clone(),
        "not-a-receipt".to_owned(),
        m2_again.receipt_handle.clone(),
    ];
    assert_eq!(
        store.delete_messages(&default, &jobs, &current).await?,
        [true, false, true]
    );
    assert_eq!(
        store.delete_messages(&default, &jobs, &current).await?,
        [false, false, false]
    );
    assert!(store.delete_messages(&default, &jobs, &[]).await?.is_empty());
    assert_eq!(
        store.queue_stats(&default, &jobs, T + 1_005).await?,
        stats(0, 1, 0)
    );
    // A receipt of another queue, or of the same queue name elsewhere, deletes nothing.
    let theirs = store.receive_messages(&other, &jobs, 10, 1_000, T).await?;
    let their_receipt = vec![theirs.messages[0].receipt_handle.clone()];
    let m3_receipt = vec![second.messages[0].receipt_handle.clone()];
    assert_eq!(
        store.delete_messages(&default, &jobs, &their_receipt).await?,
        [false]
    );
    assert_eq!(store.delete_messages(&other, &jobs, &m3_receipt).await?, [false]);
    assert_eq!(
        store.delete_messages(&other, &jobs, &their_receipt).await?,
        [true]
    );

    // A zero visibility timeout leaves a message visible, but one receive gets it once.
    store
        .send_messages(&other, &jobs, &[message("o2"), message("o3")], T)
        .await?;
    let zero = store.receive_messages(&other, &jobs, 10, 0, T + 10).await?;
    assert_eq!(ids(&zero.messages), ["o2", "o3"]);
    let zero_again = store.receive_messages(&other, &jobs, 10, 0, T + 10).await?;
    assert_eq!(ids(&zero_again.messages), ["o2", "o3"]);
    assert!(zero_again.messages.iter().all(|m| m.receive_count == 2));
    Ok(())
}

pub async fn queues_change_visibility_by_receipt(store: &dyn Queues) -> TestResult {
    let default = ns("default")?;
    let jobs = queue("jobs")?;
    store
        .put_queue(&default, &jobs, &QueueConfig::default(), T)
        .await?;
    store
        .send_messages(&default, &jobs, &[message("m1"), message("m2")], T)
        .await?;
    let received = store.receive_messages(&default, &jobs, 10, 30_000, T).await?;
    let [m1, m2] = &received.messages[..] else {
        return Err(format!("received {:?}", ids(&received.messages)).into());
    };

    // Released at once (a function that gives a message back) ...
    assert!(
        store
            .change_visibility(&default, &jobs, &m1.receipt_handle, T + 1)
            .await?
    );
    // ... or kept longer (one that needs more time).
    assert!(
        store
            .change_visibility(&default, &jobs, &m2.receipt_handle, T + 90_000)
            .await?
    );
    assert_eq!(store.queue_stats(&default, &jobs, T + 1).await?, stats(1, 1, 0));
    assert_eq!(store.next_message_visible(&default, &jobs).await?, Some(T + 1));
    let again = store.receive_messages(&default, &jobs, 10, 30_000, T + 1).await?;
    assert_eq!(ids(&again.messages), ["m1"]);
    assert_eq!(again.messages[0].receive_count, 2);
    // When its first timeout would have ended, the extended one is still hidden.
    assert!(
        store
            .receive_messages(&default, &jobs, 10, 30_000, T + 30_000)
            .await?
            .messages
            .is_empty()
    );
    // The receipt it changed is still the current one.
    assert_eq!(
        store
            .delete_messages(&default, &jobs, std::slice::from_ref(&m2.receipt_handle))
            .await?,
        [true]
    );
    assert!(
        !store
            .change_visibility(&default, &jobs, &m2.receipt_handle, T)
            .await?
    );
    assert!(
        !store
            .change_visibility(
                &default,
                &queue("elsewhere")?,
                &again.messages[0].receipt_handle,
                T
            )
            .await?
    );
    Ok(())
}

pub async fn queues_dead_letter_after_max_receives_and_redrive(store: &dyn Queues) -> TestResult {
    let default = ns("default")?;
    let (jobs, dlq) = (queue("jobs")?, queue("jobs-dlq")?);
    store
        .put_queue(&default, &dlq, &QueueConfig::default(), T)
        .await?;
    store
        .put_queue(&default, &jobs, &with_dead_letters(2, &dlq), T)
        .await?;
    store
        .send_messages(&default, &jobs, &[message("poison")], T)
        .await?;
    for (n, now) in [(1, T), (2, T + 10)] {
        let got = store.receive_messages(&default, &jobs, 1, 10, now).await?;
        assert_eq!(ids(&got.messages), ["poison"]);
        assert_eq!(got.messages[0].receive_count, n);
    }
    // A good message behind it: the receive that moves the poison one still fills up.
    store
        .send_messages(&default, &jobs, &[message("good")], T + 20)
        .await?;
    let third = store.receive_messages(&default, &jobs, 1, 10, T + 20).await?;
    assert_eq!(third.dead_lettered, ["poison"]);
    assert_eq!(ids(&third.messages), ["good"]);
    assert_eq!(store.queue_stats(&default, &jobs, T + 20).await?, stats(0, 1, 0));
    assert_eq!(store.queue_stats(&default, &dlq, T + 20).await?, stats(1, 0, 0));

    // In the dead-letter queue it starts over, sent when it was first sent.
    let dead = store.receive_messages(&default, &dlq, 10, 1_000, T + 20).await?;
    assert_eq!(ids(&dead.messages), ["poison"]);
    assert_eq!((dead.messages[0].receive_count, dead.messages[0].sent_at), (1, T));
    assert_eq!(dead.messages[0].body, "body of poison");

    // A redrive puts it back where it came from, visible now, count reset.
    assert_eq!(store.redrive_queue(&default, &dlq, T + 100).await?, 1);
    assert_eq!(
        store.queue_stats(&default, &dlq, T + 100).await?,
        QueueStats::default()
    );
    assert_eq!(store.redrive_queue(&default, &dlq, T + 100).await?, 0);
    let back = store.receive_messages(&default, &jobs, 10, 10, T + 100).await?;
    // `good` has been visible since T + 30, `poison` only since the redrive.
    assert_eq!(ids(&back.messages), ["good", "poison"]);
    assert_eq!(back.messages[1].receive_count, 1);
    assert_eq!(back.messages[1].first_received_at, T + 100);
    assert!(back.dead_lettered.is_empty());
    // The stale receipt from the dead-letter queue no longer deletes it.
    let stale = vec![dead.messages[0].receipt_handle.clone()];
    assert_eq!(store.delete_messages(&default, &dlq, &stale).await?, [false]);

    // Messages sent to the dead-letter queue directly have nowhere to go back to, and
    // neither do those whose queue is gone.
    store
        .send_messages(&default, &dlq, &[message("direct")], T + 200)
        .await?;
    let mut moved = Vec::new();
    for now in [T + 200, T + 300] {
        moved.extend(
            store
                .receive_messages(&default, &jobs, 10, 10, now)
                .await?
                .dead_lettered,
        );
    }
    assert_eq!(sorted(moved), ["good", "poison"]);
    assert!(store.delete_queue(&default, &jobs).await?);
    assert_eq!(store.redrive_queue(&default, &dlq, T + 500).await?, 0);
    assert_eq!(store.queue_stats(&default, &dlq, T + 500).await?, stats(3, 0, 0));

    // With a zero visibility timeout, the read that refills the slot of a moved
    // message must not deliver a message this receive delivered already.
    let (quick, quick_dlq) = (queue("quick")?, queue("quick-dlq")?);
    store
        .put_queue(&default, &quick_dlq, &QueueConfig::default(), T)
        .await?;
    store
        .put_queue(&default, &quick, &with_dead_letters(1, &quick_dlq), T)
        .await?;
    store.send_messages(&default, &quick, &[message("p")], T).await?;
    store.receive_messages(&default, &quick, 10, 0, T).await?;
    store
        .send_messages(&default, &quick, &[message("g")], T + 1)
        .await?;
    let got = store.receive_messages(&default, &quick, 10, 0, T + 2).await?;
    assert_eq!(got.dead_lettered, ["p"]);
    assert_eq!(ids(&got.messages), ["g"]);
    Ok(())
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

pub async fn queues_without_their_dead_letter_queue_deliver_again(store: &dyn Queues) -> TestResult {
    let default = ns("default")?;
    let (jobs, dlq) = (queue("jobs")?, queue("never-made")?);
    store
        .put_queue(&default, &jobs, &with_dead_letters(1, &dlq), T)
        .await?;
    store.send_messages(&default, &jobs, &[message("m")], T).await?;
    for (n, now) in [(1, T), (2, T + 10), (3, T + 20)] {
        let got = store.receive_messages(&default, &jobs, 10, 10, now).await?;
        assert!(got.dead_lettered.is_empty());
        assert_eq!(ids(&got.messages), ["m"]);
        assert_eq!(got.messages[0].receive_count, n);
    }
    Ok(())
}

pub async fn queues_retention_delay_stats_and_purge(store: &dyn Queues) -> TestResult {
    let default = ns("default")?;
    let jobs = queue("jobs")?;
    let config = QueueConfig {
        retention: Duration::from_secs(60),
        ..QueueConfig::default()
    };
    store.put_queue(&default, &jobs, &config, T).await?;
    store
        .send_messages(&default, &jobs, &[message("now"), delayed("later", 5_000)], T)
        .await?;
    assert_eq!(store.queue_stats(&default, &jobs, T).await?, stats(1, 0, 1));
    assert_eq!(store.next_message_visible(&default, &jobs).await?, Some(T));

    let got = store.receive_messages(&default, &jobs, 10, 30_000, T).await?;
    assert_eq!(
        ids(&got.messages),
        ["now"],
        "a delayed message was delivered early"
    );
    assert_eq!(store.queue_stats(&default, &jobs, T).await?, stats(0, 1, 1));
    // Every queue's counts in one read, an empty queue's too, with the oldest's send time.
    let idle = queue("idle")?;
    store
        .put_queue(&default, &idle, &QueueConfig::default(), T)
        .await?;
    let depth = |queue: &QueueName, stats, oldest_sent_ms| QueueDepth {
        namespace: default.clone(),
        queue: queue.clone(),
        stats,
        oldest_sent_ms,
    };
    let expected = [
        depth(&idle, stats(0, 0, 0), None),
        depth(&jobs, stats(0, 1, 1), Some(T)),
    ];
    assert_eq!(store.queue_depths(None, T).await?, expected);
    assert_eq!(store.queue_depths(Some(&default), T).await?, expected);
    assert!(store.queue_depths(Some(&ns("other")?), T).await?.is_empty());
    assert!(store.delete_queue(&default, &idle).await?);
    assert_eq!(
        store.next_message_visible(&default, &jobs).await?,
        Some(T + 5_000)
    );
    assert!(
        store
            .receive_messages(&default, &jobs, 10, 30_000, T + 4_999)
            .await?
            .messages
            .is_empty()
    );
    assert_eq!(
        store.queue_stats(&default, &jobs, T + 5_000).await?,
        stats(1, 1, 0)
    );
    let got = store
        .receive_messages(&default, &jobs, 10, 30_000, T + 5_000)
        .await?;
    assert_eq!(ids(&got.messages), ["later"]);
    assert_eq!(got.messages[0].sent_at, T);

    assert_eq!(store.purge_queue(&default, &jobs).await?, 2);

    // Past retention (counted from sending, not receiving) a message is dropped.
    store
        .send_messages(&default, &jobs, &[message("old")], T + 100_000)
        .await?;
    store
        .send_messages(&default, &jobs, &[message("young")], T + 150_000)
        .await?;
    let got = store
        .receive_messages(&default, &jobs, 10, 30_000, T + 160_000)
        .await?;
    assert_eq!(
        ids(&got.messages),
        ["old", "young"],
        "exactly at its retention a message is kept"
    );
    let got = store
        .receive_messages(&default, &jobs, 10, 30_000, T + 190_000)
        .await?;
    assert_eq!(ids(&got.messages), ["young"], "an expired message was delivered");
    assert_eq!(
        store.queue_stats(&default, &jobs, T + 190_000).await?,
        stats(0, 1, 0)
    );

    store
        .send_messages(&default, &jobs, &[message("a"), delayed("b", 1_000)], T + 190_000)
        .await?;
    assert_eq!(store.purge_queue(&default, &jobs).await?, 3);
    assert_eq!(store.purge_queue(&default, &jobs).await?, 0);
    assert_eq!(
        store.queue_stats(&default, &jobs, T + 190_000).await?,
        QueueStats::default()
    );
    assert_eq!(store.next_message_visible(&default, &jobs).await?, None);
    Ok(())
}

pub async fn queue_operations_on_a_missing_queue(store: &dyn Queues) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    let jobs = queue("jobs")?;
    // The same name in another namespace does not count.
    store.put_queue(&other, &jobs, &QueueConfig::default(), T).await?;

    let send = store.send_messages(&default, &jobs, &[message("m")], T).await;
    assert!(is_not_found(send, &jobs));
    let receive = store.receive_messages(&default, &jobs, 1, 1_000, T).await;
    assert!(is_not_found(receive, &jobs));
    assert!(is_not_found(store.queue_stats(&default, &jobs, T).await, &jobs));
    assert!(is_not_found(store.purge_queue(&default, &jobs).await, &jobs));
    assert!(is_not_found(store.redrive_queue(&default, &jobs, T).await, &jobs));
    let err = store
        .send_messages(&default, &jobs, &[], T)
        .await
        .err()
        .ok_or("sent to a missing queue")?;
    assert_eq!(err.to_string(), "there is no queue `jobs`");

    // Receipts of a missing queue are stale, like any unknown receipt.
    let receipts = vec!["r".to_owned()];
    assert_eq!(store.delete_messages(&default, &jobs, &receipts).await?, [false]);
    assert!(!store.change_visibility(&default, &jobs, "r", T).await?);
    assert_eq!(store.next_message_visible(&default, &jobs).await?, None);
    assert!(!store.delete_queue(&default, &jobs).await?);
    assert_eq!(store.queue_stats(&other, &jobs, T).await?, QueueStats::default());
    Ok(())
}
