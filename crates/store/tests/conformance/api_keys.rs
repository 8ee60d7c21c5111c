//! Checks of API keys: creating once per id, listing, revoking once, recording uses
//! (forward only) and forgetting a namespace's keys.

use super::*;
use wisp_core::Role;
use wisp_store::{ApiKeyRecord, ApiKeys};

/// Key `id` of a namespace with `role`, created at `created_at`.
pub fn api_key(namespace: &Namespace, id: &str, role: Role, created_at: i64) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.to_owned(),
        namespace: namespace.clone(),
        role,
        name: Some(format!("key {id}")),
        secret_hash: format!("hash of {id}").into_bytes(),
        sealed_secret: format!("sealed {id}").into_bytes(),
        created_at,
        created_by: None,
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    }
}

/// The ids of `keys`, in order.
pub fn key_ids(keys: &[ApiKeyRecord]) -> Vec<&str> {
    keys.iter().map(|k| k.id.as_str()).collect()
}

pub async fn api_keys_create_once_and_list(store: &dyn ApiKeys) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    assert!(store.list_keys(None).await?.is_empty());
    assert_eq!(store.key("WKNONE").await?, None);

    // Every field round-trips.
    let full = ApiKeyRecord {
        created_by: Some("WKBOOT".to_owned()),
        expires_at: Some(T + 86_400_000),
        revoked_at: None,
        last_used_at: Some(T + 5),
        name: None,
        ..api_key(&default, "WKFULL", Role::Deploy, T + 1)
    };
    assert!(
        store
            .create_key(&api_key(&default, "WKBOOT", Role::Admin, T))
            .await?
    );
    assert!(store.create_key(&full).await?);
    assert_eq!(store.key("WKFULL").await?.as_ref(), Some(&full));
    // An id is unique across namespaces: a second create is refused and writes nothing.
    assert!(
        !store
            .create_key(&api_key(&other, "WKFULL", Role::Read, T + 9))
            .await?
    );
    assert_eq!(store.key("WKFULL").await?.as_ref(), Some(&full));

    // Ordered by created_at, then id; not by id alone nor by namespace.
    for key in [
        api_key(&other, "WKB", Role::Invoke, T + 2),
        api_key(&other, "WKA", Role::Read, T + 2),
        api_key(&default, "WKEARLY", Role::Read, T - 1),
    ] {
        assert!(store.create_key(&key).await?);
    }
    assert_eq!(
        key_ids(&store.list_keys(None).await?),
        ["WKEARLY", "WKBOOT", "WKFULL", "WKA", "WKB"]
    );
    assert_eq!(
        key_ids(&store.list_keys(Some(&default)).await?),
        ["WKEARLY", "WKBOOT", "WKFULL"]
    );
    assert_eq!(key_ids(&store.list_keys(Some(&other)).await?), ["WKA", "WKB"]);
    assert!(store.list_keys(Some(&ns("empty")?)).await?.is_empty());
    let roles: Vec<_> = store
        .list_keys(Some(&other))
        .await?
        .iter()
        .map(|k| k.role)
        .collect();
    assert_eq!(roles, [Role::Read, Role::Invoke]);
    Ok(())
}

pub async fn api_keys_revoke_keeps_the_first_time(store: &dyn ApiKeys) -> TestResult {
    let default = ns("default")?;
    assert!(
        store
            .create_key(&api_key(&default, "WKONE", Role::Deploy, T))
            .await?
    );
    assert!(
        store
            .create_key(&api_key(&default, "WKTWO", Role::Read, T))
            .await?
    );

    assert!(store.revoke_key("WKONE", T + 10).await?);
    assert!(!store.revoke_key("WKONE", T + 20).await?, "revoked twice");
    assert!(
        !store.revoke_key("WKNONE", T + 20).await?,
        "revoked a missing key"
    );
    let one = store.key("WKONE").await?.ok_or("a revoked key vanished")?;
    assert_eq!(one.revoked_at, Some(T + 10));
    // Nothing else of the record changed.
    assert_eq!(
        one,
        ApiKeyRecord {
            revoked_at: Some(T + 10),
            ..api_key(&default, "WKONE", Role::Deploy, T)
        }
    );
    assert_eq!(store.key("WKTWO").await?.and_then(|k| k.revoked_at), None);
    // Revoked keys are still listed.
    assert_eq!(
        key_ids(&store.list_keys(Some(&default)).await?),
        ["WKONE", "WKTWO"]
    );
    Ok(())
}

pub async fn api_keys_touch_only_moves_forward(store: &dyn ApiKeys) -> TestResult {
    let default = ns("default")?;
    assert!(
        store
            .create_key(&api_key(&default, "WKONE", Role::Invoke, T))
            .await?
    );
    assert!(
        store
            .create_key(&api_key(&default, "WKTWO", Role::Invoke, T))
            .await?
    );
    assert!(
        store
            .create_key(&api_key(&default, "WKIDLE", Role::Invoke, T))
            .await?
    );
    let last_used = async |id: &str| -> TestResult<Option<i64>> {
        Ok(store.key(id).await?.ok_or("a key vanished")?.last_used_at)
    };

    store.touch_keys(&[]).await?;
    // Unknown ids are skipped, not a failed batch; of one id twice, the later wins.
    store
        .touch_keys(&[
            ("WKONE".to_owned(), T + 100),
            ("WKGONE".to_owned(), T + 100),
            ("WKTWO".to_owned(), T + 50),
            ("WKTWO".to_owned(), T + 40),
        ])
        .await?;
    assert_eq!(last_used("WKONE").await?, Some(T + 100));
    assert_eq!(last_used("WKTWO").await?, Some(T + 50));
    assert_eq!(last_used("WKIDLE").await?, None);
    assert_eq!(store.key("WKGONE").await?, None, "a touch created a key");

    // An older time (a batch from a slower node) does not move it back.
    store
        .touch_keys(&[("WKONE".to_owned(), T + 60), ("WKTWO".to_owned(), T + 70)])
        .await?;
    assert_eq!(last_used("WKONE").await?, Some(T + 100));
    assert_eq!(last_used("WKTWO").await?, Some(T + 70));

    // A revoked key's record keeps its revocation when touched.
    assert!(store.revoke_key("WKONE", T + 150).await?);
    store.touch_keys(&[("WKONE".to_owned(), T + 200)]).await?;
    let one = store.key("WKONE").await?.ok_or("a key vanished")?;
    assert_eq!((one.revoked_at, one.last_used_at), (Some(T + 150), Some(T + 200)));
    Ok(())
}

pub async fn api_keys_forget_namespace_keys_leaves_others(store: &dyn ApiKeys) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    for key in [
        api_key(&default, "WKD1", Role::Admin, T),
        api_key(&other, "WKO1", Role::Deploy, T + 1),
        api_key(&other, "WKO2", Role::Read, T + 2),
    ] {
        assert!(store.create_key(&key).await?);
    }
    assert!(store.revoke_key("WKO2", T + 3).await?);

    store.forget_namespace_keys(&other).await?;
    assert!(store.list_keys(Some(&other)).await?.is_empty());
    assert_eq!(store.key("WKO1").await?, None);
    assert_eq!(
        store.key("WKO2").await?,
        None,
        "a revoked key outlived its namespace"
    );
    assert_eq!(key_ids(&store.list_keys(None).await?), ["WKD1"]);

    // Idempotent, and the ids are free again.
    store.forget_namespace_keys(&other).await?;
    store.forget_namespace_keys(&ns("empty")?).await?;
    assert!(
        store
            .create_key(&api_key(&other, "WKO1", Role::Read, T + 4))
            .await?
    );
    assert_eq!(key_ids(&store.list_keys(None).await?), ["WKD1", "WKO1"]);
    Ok(())
}
