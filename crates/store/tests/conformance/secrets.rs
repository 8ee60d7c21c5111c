//! Checks of secrets: secrets belong to a namespace, puts create then update with
//! revisions that only grow (across a delete too) and keep the creation time, conditions
//! compare and set, listing is ordered and carries the sealed bytes as given.

use super::*;
use wisp_core::SecretName;
use wisp_store::{SecretCondition, SecretPut, Secrets};

fn secret(name: &str) -> TestResult<SecretName> {
    Ok(SecretName::new(name)?)
}

fn revision(put: SecretPut) -> TestResult<u64> {
    match put {
        SecretPut::Created { revision } | SecretPut::Updated { revision } => Ok(revision),
        other => Err(format!("not stored: {other:?}").into()),
    }
}

pub async fn secrets_belong_to_a_namespace(store: &dyn Secrets) -> TestResult {
    let (alpha, beta) = (ns("alpha")?, ns("beta")?);
    let db = secret("db")?;
    let put = |namespace: Namespace, name: SecretName, sealed: &'static [u8]| async move {
        store
            .put_secret(&namespace, &name, sealed.to_vec(), SecretCondition::Any, T)
            .await
    };
    assert!(matches!(
        put(alpha.clone(), db.clone(), b"sealed-a").await?,
        SecretPut::Created { .. }
    ));
    assert!(matches!(
        put(beta.clone(), db.clone(), b"sealed-b").await?,
        SecretPut::Created { .. }
    ));
    put(alpha.clone(), secret("api-key")?, b"sealed-k").await?;

    let got = store.get_secret(&alpha, &db).await?.ok_or("no secret")?;
    assert_eq!(
        (got.sealed.as_slice(), got.namespace.as_str()),
        (&b"sealed-a"[..], "alpha")
    );
    assert_eq!(
        store.get_secret(&beta, &db).await?.ok_or("no secret")?.sealed,
        b"sealed-b"
    );
    assert!(store.get_secret(&beta, &secret("api-key")?).await?.is_none());

    let names = |records: Vec<wisp_store::SecretRecord>| {
        records
            .into_iter()
            .map(|r| format!("{}/{}", r.namespace, r.name))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.list_secrets(Some(&alpha)).await?),
        ["alpha/api-key", "alpha/db"]
    );
    assert_eq!(
        names(store.list_secrets(None).await?),
        ["alpha/api-key", "alpha/db", "beta/db"]
    );

    assert!(store.delete_secret(&alpha, &db).await?);
    assert!(!store.delete_secret(&alpha, &db).await?, "deleted twice");
    assert!(store.get_secret(&alpha, &db).await?.is_none());
    assert!(
        store.get_secret(&beta, &db).await?.is_some(),
        "another namespace's went too"
    );
    Ok(())
}

pub async fn secrets_put_creates_then_updates_with_growing_revisions(store: &dyn Secrets) -> TestResult {
    let default = ns("default")?;
    let db = secret("db")?;
    let first = store
        .put_secret(&default, &db, b"one".to_vec(), SecretCondition::Any, T)
        .await?;
    let SecretPut::Created { revision: r1 } = first else {
        return Err(format!("not created: {first:?}").into());
    };
    let second = store
        .put_secret(&default, &db, b"two".to_vec(), SecretCondition::Any, T + 5)
        .await?;
    let SecretPut::Updated { revision: r2 } = second else {
        return Err(format!("not updated: {second:?}").into());
    };
    assert!(r2 > r1, "{r2} after {r1}");
    let got = store.get_secret(&default, &db).await?.ok_or("no secret")?;
    assert_eq!(
        (
            got.sealed.as_slice(),
            got.revision,
            got.created_ms,
            got.updated_ms
        ),
        (&b"two"[..], r2, T, T + 5)
    );
    // Another secret's put moves on from the same sequence.
    let r3 = revision(
        store
            .put_secret(
                &default,
                &secret("other")?,
                b"x".to_vec(),
                SecretCondition::Any,
                T,
            )
            .await?,
    )?;
    assert!(r3 > r2);
    // Deleted and set again: a new secret, with a revision it never had.
    assert!(store.delete_secret(&default, &db).await?);
    let again = store
        .put_secret(&default, &db, b"three".to_vec(), SecretCondition::Any, T + 9)
        .await?;
    let SecretPut::Created { revision: r4 } = again else {
        return Err(format!("not created: {again:?}").into());
    };
    assert!(r4 > r3);
    let got = store.get_secret(&default, &db).await?.ok_or("no secret")?;
    assert_eq!((got.created_ms, got.updated_ms), (T + 9, T + 9));
    Ok(())
}

pub async fn secrets_conditions_compare_and_set(store: &dyn Secrets) -> TestResult {
    let default = ns("default")?;
    let db = secret("db")?;
    let put = |sealed: &'static [u8], condition| {
        let (default, db) = (default.clone(), db.clone());
        async move {
            store
                .put_secret(&default, &db, sealed.to_vec(), condition, T)
                .await
        }
    };
    assert_eq!(
        put(b"x", SecretCondition::Revision(1)).await?,
        SecretPut::ConditionFailed { current: None }
    );
    assert!(
        store.get_secret(&default, &db).await?.is_none(),
        "a failed put stored"
    );
    let r1 = revision(put(b"one", SecretCondition::Absent).await?)?;
    assert_eq!(
        put(b"x", SecretCondition::Absent).await?,
        SecretPut::ConditionFailed { current: Some(r1) }
    );
    assert_eq!(
        put(b"x", SecretCondition::Revision(r1 + 1000)).await?,
        SecretPut::ConditionFailed { current: Some(r1) }
    );
    let r2 = revision(put(b"two", SecretCondition::Revision(r1)).await?)?;
    // The revision read before is spent: a second writer with it loses.
    assert_eq!(
        put(b"lost", SecretCondition::Revision(r1)).await?,
        SecretPut::ConditionFailed { current: Some(r2) }
    );
    let got = store.get_secret(&default, &db).await?.ok_or("no secret")?;
    assert_eq!((got.sealed.as_slice(), got.revision), (&b"two"[..], r2));
    Ok(())
}
