//! Checks of cron schedule state on its own: a schedule's last slot only moves forward,
//! each schedule of each function of each namespace apart, and forgetting a function's
//! schedules. (Advancing together with the event a slot fires is checked in `store`.)

use super::*;
use wisp_store::Schedules;

pub async fn schedules_advance_monotonically(store: &dyn Schedules) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    let (hello, world) = (func("hello")?, func("world")?);
    let (every_minute, hourly) = ("* * * * *", "0 * * * * @ Europe/Berlin");
    assert_eq!(
        store.schedule_last_slot(&default, &hello, every_minute).await?,
        None
    );

    assert!(
        store
            .advance_schedule(&default, &hello, every_minute, T, None)
            .await?
    );
    assert_eq!(
        store.schedule_last_slot(&default, &hello, every_minute).await?,
        Some(T)
    );
    // The same slot again, or an earlier one, records nothing.
    for slot in [T, T - 60_000] {
        assert!(
            !store
                .advance_schedule(&default, &hello, every_minute, slot, None)
                .await?
        );
    }
    assert_eq!(
        store.schedule_last_slot(&default, &hello, every_minute).await?,
        Some(T)
    );
    // Slots may be skipped: any later slot is a step forward.
    assert!(
        store
            .advance_schedule(&default, &hello, every_minute, T + 180_000, None)
            .await?
    );
    assert!(
        !store
            .advance_schedule(&default, &hello, every_minute, T + 120_000, None)
            .await?
    );
    assert_eq!(
        store.schedule_last_slot(&default, &hello, every_minute).await?,
        Some(T + 180_000)
    );

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
        store.schedule_last_slot(&other, &hello, every_minute).await?,
        Some(T)
    );
    assert_eq!(
        store.schedule_last_slot(&default, &hello, every_minute).await?,
        Some(T + 180_000)
    );
    Ok(())
}

pub async fn schedules_forget_function_touches_only_that_function(store: &dyn Schedules) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    let (one, two) = (func("one")?, func("two")?);
    let (every_minute, hourly) = ("* * * * *", "0 * * * *");
    for (namespace, function, key) in [
        (&default, &one, every_minute),
        (&default, &one, hourly),
        (&default, &two, every_minute),
        (&other, &one, every_minute),
    ] {
        assert!(store.advance_schedule(namespace, function, key, T, None).await?);
    }

    store.forget_function(&default, &one).await?;
    for key in [every_minute, hourly] {
        assert_eq!(
            store.schedule_last_slot(&default, &one, key).await?,
            None,
            "schedule `{key}` outlived its function"
        );
    }
    assert_eq!(
        store.schedule_last_slot(&default, &two, every_minute).await?,
        Some(T),
        "forgetting took another function's schedule"
    );
    assert_eq!(
        store.schedule_last_slot(&other, &one, every_minute).await?,
        Some(T),
        "forgetting crossed namespaces"
    );

    // Idempotent; a schedule advanced afterwards starts afresh, from any slot.
    store.forget_function(&default, &one).await?;
    assert!(
        store
            .advance_schedule(&default, &one, every_minute, T - 60_000, None)
            .await?
    );
    assert_eq!(
        store.schedule_last_slot(&default, &one, every_minute).await?,
        Some(T - 60_000)
    );
    Ok(())
}
