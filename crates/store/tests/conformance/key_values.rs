//! Checks of key-value stores: stores per namespace, entries that are set, read and
//! deleted with versions that increase, compare-and-set on a version or on absence, entries
//! that expire (and the sweep), increments, listings by prefix in pages, batches that stop
//! at the first failed condition, and stores whose deletion takes their entries.

use super::*;
use wisp_core::KvStoreName;
use wisp_store::{
    KeyValues, KvCondition, KvDeleted, KvEntry, KvIncremented, KvSet, KvSetMany, KvStoreRecord, KvWrite,
};

fn kv(name: &str) -> TestResult<KvStoreName> {
    Ok(KvStoreName::new(name)?)
}

/// Creates store `name` in `namespace`.
async fn create(store: &dyn KeyValues, namespace: &Namespace, name: &str) -> TestResult<KvStoreName> {
    let name = kv(name)?;
    let record = KvStoreRecord {
        namespace: namespace.clone(),
        name: name.clone(),
        created_ms: T,
    };
    assert!(store.create_kv_store(&record).await?);
    Ok(name)
}

fn write(key: &str, value: &str, condition: KvCondition) -> KvWrite {
    KvWrite {
        key: key.to_owned(),
        value: value.as_bytes().to_vec(),
        ttl_expires_ms: None,
        condition,
    }
}

fn stored(set: KvSet) -> TestResult<u64> {
    match set {
        KvSet::Stored { version } => Ok(version),
        other => Err(format!("not stored: {other:?}").into()),
    }
}

fn value(entry: Option<KvEntry>) -> Option<String> {
    entry.map(|e| String::from_utf8_lossy(&e.value).into_owned())
}

pub async fn kv_stores_belong_to_a_namespace(store: &dyn KeyValues) -> TestResult {
    let (alpha, beta) = (ns("alpha")?, ns("beta")?);
    let carts = create(store, &alpha, "carts").await?;
    let record = KvStoreRecord {
        namespace: alpha.clone(),
        name: carts.clone(),
        created_ms: T + 1,
    };
    assert!(!store.create_kv_store(&record).await?, "created twice");
    create(store, &beta, "carts").await?;
    create(store, &alpha, "a-first").await?;

    let got = store.get_kv_store(&alpha, &carts).await?.ok_or("no store")?;
    assert_eq!(got.created_ms, T, "the second create changed the record");
    assert_eq!(store.get_kv_store(&alpha, &kv("nope")?).await?, None);
    let names = |records: Vec<KvStoreRecord>| {
        records
            .into_iter()
            .map(|r| format!("{}/{}", r.namespace, r.name))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.list_kv_stores(Some(&alpha)).await?),
        ["alpha/a-first", "alpha/carts"]
    );
    assert_eq!(
        names(store.list_kv_stores(None).await?),
        ["alpha/a-first", "alpha/carts", "beta/carts"]
    );

    // Entries of one namespace's store are not another's.
    stored(
        store
            .kv_set(&alpha, &carts, write("k", "alpha", KvCondition::Any), T)
            .await?,
    )?;
    assert_eq!(store.kv_get(&beta, &carts, "k", T).await?, None);
    stored(
        store
            .kv_set(&beta, &carts, write("k", "beta", KvCondition::Any), T)
            .await?,
    )?;
    assert_eq!(
        value(store.kv_get(&alpha, &carts, "k", T).await?).as_deref(),
        Some("alpha")
    );

    // A store that does not exist holds nothing and takes nothing.
    let nope = kv("nope")?;
    assert_eq!(
        store
            .kv_set(&alpha, &nope, write("k", "v", KvCondition::Any), T)
            .await?,
        KvSet::NoStore
    );
    assert_eq!(store.kv_get(&alpha, &nope, "k", T).await?, None);
    assert_eq!(
        store.kv_delete(&alpha, &nope, "k", KvCondition::Any, T).await?,
        KvDeleted::NoStore
    );
    assert_eq!(store.kv_delete_many(&alpha, &nope, &["k".into()], T).await?, None);
    assert_eq!(
        store.kv_increment(&alpha, &nope, "n", 1, T).await?,
        KvIncremented::NoStore
    );
    assert_eq!(
        store
            .kv_set_many(&alpha, &nope, vec![write("k", "v", KvCondition::Any)], T)
            .await?,
        KvSetMany::NoStore
    );
    assert!(
        store
            .kv_list(&alpha, &nope, "", None, 10, T)
            .await?
            .keys
            .is_empty()
    );
    Ok(())
}

pub async fn kv_set_get_delete_with_increasing_versions(store: &dyn KeyValues) -> TestResult {
    let default = ns("default")?;
    let s = create(store, &default, "cache").await?;
    assert_eq!(store.kv_get(&default, &s, "greeting", T).await?, None);

    let v1 = stored(
        store
            .kv_set(&default, &s, write("greeting", "hello", KvCondition::Any), T)
            .await?,
    )?;
    let entry = store
        .kv_get(&default, &s, "greeting", T)
        .await?
        .ok_or("not stored")?;
    assert_eq!(
        entry,
        KvEntry {
            key: "greeting".into(),
            value: b"hello".to_vec(),
            version: v1,
            expires_ms: None,
        }
    );
    let v2 = stored(
        store
            .kv_set(&default, &s, write("greeting", "hi", KvCondition::Any), T)
            .await?,
    )?;
    let v3 = stored(
        store
            .kv_set(&default, &s, write("other", "x", KvCondition::Any), T)
            .await?,
    )?;
    assert!(v1 < v2 && v2 < v3, "versions do not increase: {v1}, {v2}, {v3}");

    let many = store
        .kv_get_many(
            &default,
            &s,
            &["other".into(), "missing".into(), "greeting".into()],
            T,
        )
        .await?;
    let values: Vec<_> = many.into_iter().map(value).collect();
    assert_eq!(values, [Some("x".into()), None, Some("hi".into())]);

    assert_eq!(
        store
            .kv_delete(&default, &s, "greeting", KvCondition::Any, T)
            .await?,
        KvDeleted::Deleted
    );
    assert_eq!(store.kv_get(&default, &s, "greeting", T).await?, None);
    assert_eq!(
        store
            .kv_delete(&default, &s, "greeting", KvCondition::Any, T)
            .await?,
        KvDeleted::NotFound
    );
    // A key written again after a delete gets a version larger than any before.
    let v4 = stored(
        store
            .kv_set(&default, &s, write("greeting", "back", KvCondition::Any), T)
            .await?,
    )?;
    assert!(v4 > v3, "{v4} after {v3}");

    let deleted = store
        .kv_delete_many(
            &default,
            &s,
            &["greeting".into(), "other".into(), "missing".into()],
            T,
        )
        .await?;
    assert_eq!(deleted, Some(2));
    assert!(
        store
            .kv_list(&default, &s, "", None, 10, T)
            .await?
            .keys
            .is_empty()
    );
    Ok(())
}

pub async fn kv_conditions_compare_and_set(store: &dyn KeyValues) -> TestResult {
    let default = ns("default")?;
    let s = create(store, &default, "locks").await?;
    let v1 = stored(
        store
            .kv_set(&default, &s, write("lock", "a", KvCondition::Absent), T)
            .await?,
    )?;
    assert_eq!(
        store
            .kv_set(&default, &s, write("lock", "b", KvCondition::Absent), T)
            .await?,
        KvSet::ConditionFailed { current: Some(v1) }
    );
    assert_eq!(
        store
            .kv_set(
                &default,
                &s,
                write("lock", "b", KvCondition::Version(v1 + 100)),
                T
            )
            .await?,
        KvSet::ConditionFailed { current: Some(v1) }
    );
    assert_eq!(
        store
            .kv_set(&default, &s, write("free", "b", KvCondition::Version(v1)), T)
            .await?,
        KvSet::ConditionFailed { current: None }
    );
    assert_eq!(
        value(store.kv_get(&default, &s, "lock", T).await?).as_deref(),
        Some("a")
    );
    assert_eq!(store.kv_get(&default, &s, "free", T).await?, None);

    let v2 = stored(
        store
            .kv_set(&default, &s, write("lock", "b", KvCondition::Version(v1)), T)
            .await?,
    )?;
    assert!(v2 > v1);
    // The old version no longer matches, for a write or a delete.
    assert_eq!(
        store
            .kv_set(&default, &s, write("lock", "c", KvCondition::Version(v1)), T)
            .await?,
        KvSet::ConditionFailed { current: Some(v2) }
    );
    assert_eq!(
        store
            .kv_delete(&default, &s, "lock", KvCondition::Version(v1), T)
            .await?,
        KvDeleted::ConditionFailed { current: v2 }
    );
    assert_eq!(
        store
            .kv_delete(&default, &s, "lock", KvCondition::Absent, T)
            .await?,
        KvDeleted::ConditionFailed { current: v2 }
    );
    assert_eq!(
        store
            .kv_delete(&default, &s, "lock", KvCondition::Version(v2), T)
            .await?,
        KvDeleted::Deleted
    );
    assert_eq!(
        store
            .kv_delete(&default, &s, "lock", KvCondition::Version(v2), T)
            .await?,
        KvDeleted::NotFound
    );
    Ok(())
}

pub async fn kv_entries_expire(store: &dyn KeyValues) -> TestResult {
    let default = ns("default")?;
    let s = create(store, &default, "sessions").await?;
    let at = T + 1_000;
    let mut w = write("session", "alice", KvCondition::Any);
    w.ttl_expires_ms = Some(at);
    let v1 = stored(store.kv_set(&default, &s, w, T).await?)?;
    let mut forever = write("forever", "x", KvCondition::Any);
    forever.ttl_expires_ms = None;
    stored(store.kv_set(&default, &s, forever, T).await?)?;

    let before = store
        .kv_get(&default, &s, "session", at - 1)
        .await?
        .ok_or("expired early")?;
    assert_eq!(before.expires_ms, Some(at));
    assert_eq!(
        store.kv_list(&default, &s, "", None, 10, at - 1).await?.keys,
        ["forever", "session"]
    );
    for now in [at, at + 1] {
        assert_eq!(
            store.kv_get(&default, &s, "session", now).await?,
            None,
            "present at {now}"
        );
        assert_eq!(
            store.kv_get_many(&default, &s, &["session".into()], now).await?,
            [None]
        );
        assert_eq!(
            store.kv_list(&default, &s, "", None, 10, now).await?.keys,
            ["forever"]
        );
    }
    // Writes see an expired key as absent.
    assert_eq!(
        store
            .kv_delete(&default, &s, "session", KvCondition::Any, at)
            .await?,
        KvDeleted::NotFound
    );
    let mut again = write("session", "bob", KvCondition::Absent);
    again.ttl_expires_ms = Some(at + 1_000);
    let v2 = stored(store.kv_set(&default, &s, again, at).await?)?;
    assert!(v2 > v1);
    // A write without an expiry clears the earlier one.
    stored(
        store
            .kv_set(
                &default,
                &s,
                write("session", "carol", KvCondition::Version(v2)),
                at,
            )
            .await?,
    )?;
    let entry = store
        .kv_get(&default, &s, "session", at + 5_000)
        .await?
        .ok_or("expired")?;
    assert_eq!((entry.value.as_slice(), entry.expires_ms), (&b"carol"[..], None));

    // The sweep removes what has expired by its time, up to its limit, and nothing else.
    for (i, expires) in [at, at + 10, at + 20, at + 10_000].into_iter().enumerate() {
        let mut w = write(&format!("temp-{i}"), "t", KvCondition::Any);
        w.ttl_expires_ms = Some(expires);
        stored(store.kv_set(&default, &s, w, T).await?)?;
    }
    assert_eq!(store.sweep_expired(at + 20, 2).await?, 2);
    assert_eq!(store.sweep_expired(at + 20, 10).await?, 1);
    assert_eq!(store.sweep_expired(at + 20, 10).await?, 0);
    assert_eq!(
        store.kv_list(&default, &s, "temp-", None, 10, T).await?.keys,
        ["temp-3"],
        "the sweep removed the wrong entries"
    );
    assert_eq!(
        store
            .kv_get(&default, &s, "forever", at + 20)
            .await?
            .map(|e| e.value),
        Some(b"x".to_vec())
    );
    Ok(())
}

pub async fn kv_increments_count_from_zero(store: &dyn KeyValues) -> TestResult {
    let default = ns("default")?;
    let s = create(store, &default, "counters").await?;
    let KvIncremented::Incremented {
        value: first,
        version: v1,
    } = store.kv_increment(&default, &s, "hits", 5, T).await?
    else {
        return Err("the first increment failed".into());
    };
    assert_eq!(first, 5);
    let KvIncremented::Incremented {
        value: second,
        version: v2,
    } = store.kv_increment(&default, &s, "hits", -7, T).await?
    else {
        return Err("the second increment failed".into());
    };
    assert_eq!(second, -2);
    assert!(v2 > v1);
    let entry = store.kv_get(&default, &s, "hits", T).await?.ok_or("no counter")?;
    assert_eq!((entry.value.as_slice(), entry.version), (&b"-2"[..], v2));

    // A number written by a set counts on.
    stored(
        store
            .kv_set(&default, &s, write("n", "41", KvCondition::Any), T)
            .await?,
    )?;
    assert!(matches!(
        store.kv_increment(&default, &s, "n", 1, T).await?,
        KvIncremented::Incremented { value: 42, .. }
    ));
    assert_eq!(
        value(store.kv_get(&default, &s, "n", T).await?).as_deref(),
        Some("42")
    );

    for not_a_number in ["forty-two", "4.2", "", "99999999999999999999"] {
        stored(
            store
                .kv_set(&default, &s, write("text", not_a_number, KvCondition::Any), T)
                .await?,
        )?;
        let before = store.kv_get(&default, &s, "text", T).await?;
        assert_eq!(
            store.kv_increment(&default, &s, "text", 1, T).await?,
            KvIncremented::NotANumber,
            "{not_a_number:?}"
        );
        assert_eq!(store.kv_get(&default, &s, "text", T).await?, before, "changed");
    }

    stored(
        store
            .kv_set(
                &default,
                &s,
                write("big", &i64::MAX.to_string(), KvCondition::Any),
                T,
            )
            .await?,
    )?;
    let before = store.kv_get(&default, &s, "big", T).await?;
    assert_eq!(
        store.kv_increment(&default, &s, "big", 1, T).await?,
        KvIncremented::Overflow
    );
    assert_eq!(store.kv_get(&default, &s, "big", T).await?, before, "changed");
    assert!(matches!(
        store.kv_increment(&default, &s, "big", -1, T).await?,
        KvIncremented::Incremented { value, .. } if value == i64::MAX - 1
    ));

    // An increment keeps the entry's expiry, and counts from zero once it has passed.
    let mut w = write("window", "10", KvCondition::Any);
    w.ttl_expires_ms = Some(T + 100);
    stored(store.kv_set(&default, &s, w, T).await?)?;
    store.kv_increment(&default, &s, "window", 1, T).await?;
    let entry = store.kv_get(&default, &s, "window", T).await?.ok_or("gone")?;
    assert_eq!(
        (entry.value.as_slice(), entry.expires_ms),
        (&b"11"[..], Some(T + 100))
    );
    assert!(matches!(
        store.kv_increment(&default, &s, "window", 1, T + 100).await?,
        KvIncremented::Incremented { value: 1, .. }
    ));
    Ok(())
}

pub async fn kv_list_by_prefix_in_pages(store: &dyn KeyValues) -> TestResult {
    let default = ns("default")?;
    let s = create(store, &default, "catalog").await?;
    // "é" is after "z" as bytes of UTF-8; "user/" keys around "user0" and "usex".
    for key in [
        "user/b", "user/a", "user/é", "user/z", "user0", "usex", "admin", "user/",
    ] {
        stored(
            store
                .kv_set(&default, &s, write(key, "v", KvCondition::Any), T)
                .await?,
        )?;
    }
    let all = store.kv_list(&default, &s, "", None, 100, T).await?;
    assert_eq!(
        all.keys,
        [
            "admin", "user/", "user/a", "user/b", "user/z", "user/é", "user0", "usex"
        ]
    );
    assert_eq!(all.next, None);

    let first = store.kv_list(&default, &s, "user/", None, 2, T).await?;
    assert_eq!(first.keys, ["user/", "user/a"]);
    assert_eq!(first.next.as_deref(), Some("user/a"));
    let second = store.kv_list(&default, &s, "user/", first.next, 2, T).await?;
    assert_eq!(second.keys, ["user/b", "user/z"]);
    let third = store.kv_list(&default, &s, "user/", second.next, 2, T).await?;
    assert_eq!(third.keys, ["user/é"]);
    assert_eq!(third.next, None);

    // `after` need not be a key, nor start with the prefix.
    let page = store
        .kv_list(&default, &s, "user/", Some("user/c".into()), 10, T)
        .await?;
    assert_eq!(page.keys, ["user/z", "user/é"]);
    let page = store
        .kv_list(&default, &s, "user/", Some("a".into()), 1, T)
        .await?;
    assert_eq!(page.keys, ["user/"]);
    assert!(
        store
            .kv_list(&default, &s, "nothing", None, 10, T)
            .await?
            .keys
            .is_empty()
    );
    Ok(())
}

pub async fn kv_batches_stop_at_the_first_failed_condition(store: &dyn KeyValues) -> TestResult {
    let default = ns("default")?;
    let s = create(store, &default, "batch").await?;
    let KvSetMany::Stored { versions } = store
        .kv_set_many(
            &default,
            &s,
            vec![
                write("a", "1", KvCondition::Absent),
                write("b", "1", KvCondition::Any),
                write("a", "2", KvCondition::Any),
            ],
            T,
        )
        .await?
    else {
        return Err("the batch was not stored".into());
    };
    assert_eq!(versions.len(), 3);
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    let b = store.kv_get(&default, &s, "b", T).await?.ok_or("no b")?;
    assert_eq!(b.version, versions[1]);
    assert_eq!(
        value(store.kv_get(&default, &s, "a", T).await?).as_deref(),
        Some("2")
    );

    let failed = store
        .kv_set_many(
            &default,
            &s,
            vec![
                write("c", "1", KvCondition::Any),
                write("b", "2", KvCondition::Version(b.version + 100)),
                write("d", "1", KvCondition::Any),
            ],
            T,
        )
        .await?;
    assert_eq!(
        failed,
        KvSetMany::ConditionFailed {
            index: 1,
            current: Some(b.version)
        }
    );
    // What follows the failed write is not stored, and the failed one changed nothing.
    assert_eq!(store.kv_get(&default, &s, "b", T).await?, Some(b));
    assert_eq!(store.kv_get(&default, &s, "d", T).await?, None);
    Ok(())
}

pub async fn kv_deleting_a_store_deletes_its_entries(store: &dyn KeyValues) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    let s = create(store, &default, "doomed").await?;
    let kept = create(store, &other, "doomed").await?;
    for key in ["a", "b"] {
        stored(
            store
                .kv_set(&default, &s, write(key, "v", KvCondition::Any), T)
                .await?,
        )?;
        stored(
            store
                .kv_set(&other, &kept, write(key, "kept", KvCondition::Any), T)
                .await?,
        )?;
    }
    assert!(store.delete_kv_store(&default, &s).await?);
    assert!(!store.delete_kv_store(&default, &s).await?);
    assert_eq!(store.get_kv_store(&default, &s).await?, None);

    // Made again, it is empty.
    create(store, &default, "doomed").await?;
    assert_eq!(store.kv_get(&default, &s, "a", T).await?, None);
    assert!(
        store
            .kv_list(&default, &s, "", None, 10, T)
            .await?
            .keys
            .is_empty()
    );
    assert_eq!(
        store.kv_list(&other, &kept, "", None, 10, T).await?.keys,
        ["a", "b"]
    );
    Ok(())
}
