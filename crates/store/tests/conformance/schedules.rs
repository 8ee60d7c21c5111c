//! Checks of cron schedule state: a schedule's last slot only moves forward, and
//! moves together with the event its slot fires.

use super::*;
use crate::events::{T, T_US, event};
use wisp_store::EventStatus;

pub async fn schedules_advance_monotonically_with_their_event(store: &dyn Store) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    let (hello, world) = (func("hello")?, func("world")?);
    let (every_minute, hourly) = ("* * * * *", "0 * * * * @ Europe/Berlin");
    assert_eq!(
        store.schedule_last_slot(&default, &hello, every_minute).await?,
        None
    );

    let fired = wisp_store::NewEvent {
        source: format!("schedule:{every_minute}"),
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
