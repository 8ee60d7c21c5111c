//! Checks of namespace records: creating once, listing by name, updating by
//! compare-and-set on the revision, deleting.

use super::*;
use wisp_core::billing::{FreeTier, Money, PriceSettings, Quota};
use wisp_store::{NamespaceSettings, Namespaces};

/// Settings with every kind of field set, so each check round-trips them all.
fn capped(max_concurrency: u32) -> NamespaceSettings {
    NamespaceSettings {
        max_concurrency: Some(max_concurrency),
        quota: Quota {
            requests: Some(u64::from(max_concurrency) * 1_000),
            gb_seconds: None,
            budget: Money::parse("12.345678901234").ok(),
            warn_percent: Some(80),
            storage_bytes: Some(1 << 30),
        },
        free_tier: FreeTier {
            requests: Some(0),
            gb_seconds: None,
        },
        prices: PriceSettings {
            per_million_requests: None,
            per_gb_second: Money::parse("0.0000133334").ok(),
            per_reserved_gb_second: None,
            per_reserved_duration_gb_second: Money::parse("0.000005").ok(),
        },
    }
}

pub async fn namespaces_create_once_and_list_by_name(store: &dyn Namespaces) -> TestResult {
    let (zeta, alpha, mid) = (ns("zeta")?, ns("alpha")?, ns("mid")?);
    assert!(store.list_namespaces().await?.is_empty());
    assert_eq!(store.namespace(&alpha).await?, None);

    assert!(
        store
            .create_namespace(&zeta, &NamespaceSettings::default(), T)
            .await?
    );
    assert!(store.create_namespace(&alpha, &capped(10), T + 1).await?);
    assert!(store.create_namespace(&mid, &capped(20), T + 2).await?);
    // A second create is refused and changes nothing, whatever its settings.
    let before = store.namespace(&alpha).await?.ok_or("`alpha` was not created")?;
    assert!(!store.create_namespace(&alpha, &capped(99), T + 3).await?);
    assert_eq!(store.namespace(&alpha).await?.as_ref(), Some(&before));

    assert_eq!(before.name, alpha);
    assert_eq!(before.settings, capped(10));
    assert_eq!(before.created_at, T + 1);
    let listed = store.list_namespaces().await?;
    let names: Vec<_> = listed.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["alpha", "mid", "zeta"]);
    assert_eq!(listed[2].settings, NamespaceSettings::default());
    assert_eq!(listed[0], before);
    Ok(())
}

pub async fn namespaces_update_is_compare_and_set(store: &dyn Namespaces) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    assert!(store.create_namespace(&default, &capped(10), T).await?);
    assert!(store.create_namespace(&other, &capped(10), T).await?);
    let first = store.namespace(&default).await?.ok_or("not created")?;

    let updated = store
        .update_namespace(&default, &capped(20), first.revision)
        .await?
        .ok_or("an update with the current revision was refused")?;
    assert_eq!(updated.settings, capped(20));
    assert_eq!(updated.created_at, T, "an update moved created_at");
    assert!(updated.revision > first.revision, "the revision did not grow");
    assert_eq!(store.namespace(&default).await?.as_ref(), Some(&updated));

    // A writer still holding the first revision is told, and writes nothing.
    assert_eq!(
        store
            .update_namespace(&default, &capped(30), first.revision)
            .await?,
        None
    );
    assert_eq!(store.namespace(&default).await?.as_ref(), Some(&updated));
    // Writing the same settings again still moves the revision.
    let again = store
        .update_namespace(&default, &capped(20), updated.revision)
        .await?
        .ok_or("a repeated update was refused")?;
    assert!(again.revision > updated.revision);
    // Back to the default cap.
    let cleared = store
        .update_namespace(&default, &NamespaceSettings::default(), again.revision)
        .await?
        .ok_or("clearing the cap was refused")?;
    assert_eq!(cleared.settings.max_concurrency, None);
    // The other namespace was not touched.
    assert_eq!(
        store.namespace(&other).await?.map(|r| r.settings),
        Some(capped(10))
    );

    // A missing namespace is not updated, nor created.
    let missing = ns("missing")?;
    assert_eq!(store.update_namespace(&missing, &capped(1), 1).await?, None);
    assert_eq!(store.namespace(&missing).await?, None);
    Ok(())
}

pub async fn namespaces_delete_and_create_again(store: &dyn Namespaces) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    assert!(store.create_namespace(&default, &capped(10), T).await?);
    assert!(store.create_namespace(&other, &capped(10), T).await?);
    let old = store.namespace(&default).await?.ok_or("not created")?;

    assert!(store.delete_namespace(&default).await?);
    assert_eq!(store.namespace(&default).await?, None);
    assert!(!store.delete_namespace(&default).await?, "deleted twice");
    let names: Vec<_> = store
        .list_namespaces()
        .await?
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, [other]);

    // Made again, it starts afresh, and a revision read before the delete is stale.
    assert!(store.create_namespace(&default, &capped(5), T + 1).await?);
    let new = store.namespace(&default).await?.ok_or("not created again")?;
    assert_eq!((new.settings.clone(), new.created_at), (capped(5), T + 1));
    assert!(new.revision > old.revision, "a revision came back after a delete");
    assert_eq!(
        store.update_namespace(&default, &capped(1), old.revision).await?,
        None
    );
    Ok(())
}
