//! Checks of alarms: a put creates, leaves an equal rule alone, or replaces the rule
//! keeping the state, history and mark; alarms belong to a namespace and list in order;
//! state changes are compare-and-set on the revision, numbered, and kept to the newest
//! [`ALARM_HISTORY_KEPT`]; notification marks only move forward; deleting is idempotent.

use super::*;
use wisp_core::{AlarmName, AlarmSpec, AlarmState};
use wisp_store::{ALARM_HISTORY_KEPT, AlarmPut, AlarmRecord, Alarms, StateChange};

pub fn alarm(name: &str) -> TestResult<AlarmName> {
    Ok(AlarmName::new(name)?)
}

/// A rule with every kind of field set (a duration, actions, a description), so each
/// check round-trips them all; rules differ by `threshold`.
pub fn spec(threshold: u32) -> TestResult<AlarmSpec> {
    let json = format!(
        r#"{{"metric":"errors","function":"api","threshold":{threshold},"comparison":">=",
            "period":"5m","evaluation_periods":3,"datapoints_to_alarm":2,"missing_data":"breaching",
            "actions":[{{"webhook":"https://example.com/hook"}},{{"queue":"pages","on":["ALARM"]}}],
            "description":"too many errors"}}"#
    );
    Ok(serde_json::from_str(&json)?)
}

/// A change to `to` at `at_ms`.
fn change(to: AlarmState, at_ms: i64) -> StateChange {
    StateChange {
        to,
        reason: format!("{to} at {at_ms}"),
        value: Some(0.25),
        at_ms,
    }
}

/// Records a change to `to`, which must land.
async fn set(
    store: &dyn Alarms,
    record: &AlarmRecord,
    to: AlarmState,
    at_ms: i64,
) -> TestResult<AlarmRecord> {
    let changed = store
        .set_alarm_state(
            &record.namespace,
            &record.name,
            record.revision,
            &change(to, at_ms),
        )
        .await?;
    Ok(changed.ok_or("a change on the current revision was refused")?)
}

/// An alarm that must exist.
async fn get(store: &dyn Alarms, namespace: &Namespace, name: &AlarmName) -> TestResult<AlarmRecord> {
    Ok(store.alarm(namespace, name).await?.ok_or("no alarm")?)
}

fn seqs<'a>(transitions: impl IntoIterator<Item = &'a wisp_store::AlarmTransition>) -> Vec<u64> {
    transitions.into_iter().map(|t| t.seq).collect()
}

pub async fn alarms_put_creates_then_updates_keeping_the_state(store: &dyn Alarms) -> TestResult {
    let (default, errors) = (ns("default")?, alarm("errors")?);
    let put = store.put_alarm(&default, &errors, &spec(1)?, T).await?;
    let AlarmPut::Created(created) = put else {
        return Err(format!("not created: {put:?}").into());
    };
    assert_eq!(
        (created.namespace.as_str(), created.name.as_str()),
        ("default", "errors")
    );
    assert_eq!(created.spec, spec(1)?);
    assert_eq!(created.state, AlarmState::InsufficientData);
    assert_eq!(created.reason, "not evaluated yet");
    assert_eq!(
        (created.state_since_ms, created.created_ms, created.updated_ms),
        (T, T, T)
    );
    assert!(created.history.is_empty());
    assert_eq!((created.transitions, created.notified), (0, 0));
    assert_eq!(store.alarm(&default, &errors).await?.as_ref(), Some(&created));

    // The same rule again writes nothing: not even the revision moves.
    let again = store.put_alarm(&default, &errors, &spec(1)?, T + 5).await?;
    assert_eq!(again, AlarmPut::Unchanged(created.clone()));

    let alarmed = set(store, &created, AlarmState::Alarm, T + 10).await?;
    assert!(store.mark_alarm_notified(&default, &errors, 1, &[]).await?);
    let marked = store.alarm(&default, &errors).await?.ok_or("no alarm")?;

    // A new rule replaces the old one and keeps the state, history and mark.
    let put = store.put_alarm(&default, &errors, &spec(2)?, T + 20).await?;
    let AlarmPut::Updated(updated) = put else {
        return Err(format!("not updated: {put:?}").into());
    };
    assert_eq!(updated.spec, spec(2)?);
    assert_eq!((updated.created_ms, updated.updated_ms), (T, T + 20));
    assert_eq!(
        (&updated.state, &updated.reason, updated.state_since_ms),
        (&AlarmState::Alarm, &alarmed.reason, T + 10)
    );
    assert_eq!(updated.history, marked.history);
    assert_eq!((updated.transitions, updated.notified), (1, 1));
    assert!(updated.revision > marked.revision, "an update kept the revision");
    assert_eq!(store.alarm(&default, &errors).await?.as_ref(), Some(&updated));
    Ok(())
}

pub async fn alarms_belong_to_a_namespace_and_list_in_order(store: &dyn Alarms) -> TestResult {
    let (alpha, beta) = (ns("alpha")?, ns("beta")?);
    assert!(store.list_alarms(None).await?.is_empty());
    for (namespace, name, threshold) in [
        (&beta, "errors", 1),
        (&alpha, "latency", 2),
        (&alpha, "errors", 3),
    ] {
        store
            .put_alarm(namespace, &alarm(name)?, &spec(threshold)?, T)
            .await?;
    }
    let names = |records: Vec<AlarmRecord>| {
        records
            .into_iter()
            .map(|r| format!("{}/{}", r.namespace, r.name))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.list_alarms(None).await?),
        ["alpha/errors", "alpha/latency", "beta/errors"]
    );
    assert_eq!(
        names(store.list_alarms(Some(&alpha)).await?),
        ["alpha/errors", "alpha/latency"]
    );
    assert!(store.list_alarms(Some(&ns("gamma")?)).await?.is_empty());

    // The same name in two namespaces is two alarms.
    let errors = alarm("errors")?;
    let in_alpha = store.alarm(&alpha, &errors).await?.ok_or("no alarm")?;
    let in_beta = store.alarm(&beta, &errors).await?.ok_or("no alarm")?;
    assert_eq!((in_alpha.spec, in_beta.spec), (spec(3)?, spec(1)?));
    assert_eq!(store.alarm(&beta, &alarm("latency")?).await?, None);
    let listed = store.list_alarms(Some(&beta)).await?;
    assert_eq!(listed.first(), store.alarm(&beta, &errors).await?.as_ref());
    Ok(())
}

pub async fn alarms_state_changes_are_compare_and_set(store: &dyn Alarms) -> TestResult {
    let (default, errors) = (ns("default")?, alarm("errors")?);
    let created = store
        .put_alarm(&default, &errors, &spec(1)?, T)
        .await?
        .record()
        .clone();

    let first = set(store, &created, AlarmState::Alarm, T + 10).await?;
    assert_eq!(
        (first.state, first.state_since_ms, first.transitions),
        (AlarmState::Alarm, T + 10, 1)
    );
    assert_eq!(first.reason, change(AlarmState::Alarm, T + 10).reason);
    assert!(first.revision > created.revision);
    let [t1] = first.history.as_slice() else {
        return Err(format!("one transition expected: {:?}", first.history).into());
    };
    assert_eq!(
        (t1.seq, t1.at_ms, t1.from, t1.to, t1.value),
        (
            1,
            T + 10,
            AlarmState::InsufficientData,
            AlarmState::Alarm,
            Some(0.25)
        )
    );
    assert!(t1.action_errors.is_empty());
    assert_eq!(store.alarm(&default, &errors).await?.as_ref(), Some(&first));

    // A second evaluator still holding the creation's revision records nothing.
    let stale = store
        .set_alarm_state(
            &default,
            &errors,
            created.revision,
            &change(AlarmState::Ok, T + 11),
        )
        .await?;
    assert_eq!(stale, None);
    assert_eq!(store.alarm(&default, &errors).await?.as_ref(), Some(&first));

    // The next change is numbered on, from the state it left.
    let second = set(store, &first, AlarmState::Ok, T + 20).await?;
    assert_eq!(seqs(&second.history), [1, 2]);
    assert_eq!(
        (second.history[1].from, second.history[1].to),
        (AlarmState::Alarm, AlarmState::Ok)
    );
    // A change to the state it has is a transition all the same.
    let third = set(store, &second, AlarmState::Ok, T + 30).await?;
    assert_eq!((third.transitions, third.state_since_ms), (3, T + 30));
    assert_eq!(
        (third.history[2].from, third.history[2].to),
        (AlarmState::Ok, AlarmState::Ok)
    );

    // A rule's update moves the revision, so an evaluation of the old rule is refused.
    let updated = store
        .put_alarm(&default, &errors, &spec(2)?, T + 40)
        .await?
        .record()
        .clone();
    let raced = store
        .set_alarm_state(
            &default,
            &errors,
            third.revision,
            &change(AlarmState::Alarm, T + 41),
        )
        .await?;
    assert_eq!(raced, None);
    assert_eq!(store.alarm(&default, &errors).await?.as_ref(), Some(&updated));

    // No alarm, no change.
    let missing = store
        .set_alarm_state(
            &default,
            &alarm("missing")?,
            updated.revision,
            &change(AlarmState::Alarm, T),
        )
        .await?;
    assert_eq!(missing, None);
    assert_eq!(store.alarm(&default, &alarm("missing")?).await?, None);
    Ok(())
}

pub async fn alarms_history_keeps_the_newest_transitions(store: &dyn Alarms) -> TestResult {
    let (default, errors) = (ns("default")?, alarm("errors")?);
    let mut record = store
        .put_alarm(&default, &errors, &spec(1)?, T)
        .await?
        .record()
        .clone();
    let total = ALARM_HISTORY_KEPT as u64 + 5;
    // Change `n` goes to ALARM when odd, to OK when even.
    let to = |n: u64| {
        if n % 2 == 1 {
            AlarmState::Alarm
        } else {
            AlarmState::Ok
        }
    };
    for n in 1..=total {
        record = set(store, &record, to(n), T + i64::try_from(n)?).await?;
    }
    assert_eq!(record.transitions, total);
    assert_eq!(seqs(&record.history), (6..=total).collect::<Vec<_>>());
    let last = record.history.last().ok_or("no history")?;
    assert_eq!(
        (last.from, last.to, last.at_ms),
        (to(total - 1), to(total), T + i64::try_from(total)?)
    );
    assert_eq!(store.alarm(&default, &errors).await?.as_ref(), Some(&record));

    // Marking a transition no longer held moves the mark all the same.
    assert!(
        store
            .mark_alarm_notified(&default, &errors, 3, &["dropped".to_owned()])
            .await?
    );
    let marked = store.alarm(&default, &errors).await?.ok_or("no alarm")?;
    assert_eq!(marked.notified, 3);
    assert_eq!(marked.history, record.history);
    assert_eq!(seqs(marked.unnotified()), (6..=total).collect::<Vec<_>>());
    Ok(())
}

pub async fn alarms_notification_marks_only_move_forward(store: &dyn Alarms) -> TestResult {
    let (default, errors) = (ns("default")?, alarm("errors")?);
    let mut record = store
        .put_alarm(&default, &errors, &spec(1)?, T)
        .await?
        .record()
        .clone();
    for (n, to) in [AlarmState::Alarm, AlarmState::Ok, AlarmState::Alarm]
        .into_iter()
        .enumerate()
    {
        record = set(store, &record, to, T + i64::try_from(n)?).await?;
    }
    assert_eq!(seqs(record.unnotified()), [1, 2, 3]);

    let failed = vec!["webhook https://example.com/hook: 503".to_owned()];
    assert!(store.mark_alarm_notified(&default, &errors, 2, &failed).await?);
    let marked = get(store, &default, &errors).await?;
    assert_eq!(marked.notified, 2);
    assert_eq!(marked.history[1].action_errors, failed);
    assert_eq!(seqs(marked.unnotified()), [3]);
    // The mark is not part of the state: the record's state and transitions stay.
    assert_eq!(
        (marked.state, marked.transitions),
        (record.state, record.transitions)
    );

    // Marking an earlier transition keeps the later mark, and still records its errors.
    let late = vec!["queue `pages`: there is no such queue".to_owned()];
    assert!(store.mark_alarm_notified(&default, &errors, 1, &late).await?);
    let marked = get(store, &default, &errors).await?;
    assert_eq!(marked.notified, 2);
    assert_eq!(marked.history[0].action_errors, late);
    assert_eq!(marked.history[1].action_errors, failed);

    // Marking again is idempotent.
    assert!(store.mark_alarm_notified(&default, &errors, 3, &[]).await?);
    let done = get(store, &default, &errors).await?;
    assert!(store.mark_alarm_notified(&default, &errors, 3, &[]).await?);
    assert_eq!(get(store, &default, &errors).await?.notified, 3);
    assert_eq!(get(store, &default, &errors).await?.history, done.history);
    assert_eq!(done.unnotified().count(), 0);

    // A transition not recorded yet, or an alarm that is gone, cannot be marked.
    assert!(!store.mark_alarm_notified(&default, &errors, 4, &[]).await?);
    assert_eq!(get(store, &default, &errors).await?.notified, 3);
    assert!(
        !store
            .mark_alarm_notified(&default, &alarm("missing")?, 1, &[])
            .await?
    );
    assert_eq!(store.alarm(&default, &alarm("missing")?).await?, None);

    // The next change is unnotified until marked.
    let next = set(
        store,
        &get(store, &default, &errors).await?,
        AlarmState::Ok,
        T + 10,
    )
    .await?;
    assert_eq!(seqs(next.unnotified()), [4]);
    assert!(next.history[3].action_errors.is_empty());
    Ok(())
}

pub async fn alarms_delete_is_idempotent_and_revisions_keep_growing(store: &dyn Alarms) -> TestResult {
    let (default, other, errors) = (ns("default")?, ns("other")?, alarm("errors")?);
    for namespace in [&default, &other] {
        store.put_alarm(namespace, &errors, &spec(1)?, T).await?;
    }
    let before = store.alarm(&default, &errors).await?.ok_or("no alarm")?;
    let before = set(store, &before, AlarmState::Alarm, T + 1).await?;

    assert!(store.delete_alarm(&default, &errors).await?);
    assert!(!store.delete_alarm(&default, &errors).await?, "deleted twice");
    assert_eq!(store.alarm(&default, &errors).await?, None);
    assert!(
        store.alarm(&other, &errors).await?.is_some(),
        "another namespace's went too"
    );

    // Made again: a new alarm, numbering from 1, under a revision it never had, so an
    // evaluator holding the old one records nothing.
    let put = store.put_alarm(&default, &errors, &spec(1)?, T + 5).await?;
    let AlarmPut::Created(again) = put else {
        return Err(format!("not created: {put:?}").into());
    };
    assert!(
        again.revision > before.revision,
        "{} after {}",
        again.revision,
        before.revision
    );
    assert_eq!((again.transitions, again.created_ms), (0, T + 5));
    let stale = store
        .set_alarm_state(&default, &errors, before.revision, &change(AlarmState::Ok, T + 6))
        .await?;
    assert_eq!(stale, None);
    let first = set(store, &again, AlarmState::Ok, T + 6).await?;
    assert_eq!(seqs(&first.history), [1]);
    Ok(())
}
