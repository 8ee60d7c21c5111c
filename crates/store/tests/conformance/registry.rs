//! Checks of the registry: deploys (created, published, unchanged), numbered immutable
//! versions, pruning, aliases and disabling by compare-and-set, code deduplicated per
//! namespace, reading and listing, and deleting a function's registry data.

use super::*;
use std::time::Duration;
use wisp_core::version::live;
use wisp_core::{AdditionalVersion, AliasName, AliasTarget, Weight};
use wisp_store::{AppFunction, DeployOutcome, FunctionChange, FunctionRecord, Registry, Updated};

/// Sleeps long enough for the store's millisecond clock to move.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

/// Deploys with the default options (keep 10, move `live`).
async fn deploy(
    store: &dyn Registry,
    namespace: &Namespace,
    name: &FunctionName,
    app: Option<&str>,
    version: &VersionRecord,
    code: &[u8],
) -> TestResult<(DeployOutcome, FunctionRecord)> {
    Ok(store
        .deploy(namespace, name, app, version, code, PublishOptions::default())
        .await?)
}

fn numbers(record: &FunctionRecord) -> Vec<u32> {
    record.versions.iter().map(|v| v.number).collect()
}

pub async fn deploy_created_published_unchanged(store: &dyn Registry) -> TestResult {
    let (default, hello) = (ns("default")?, func("hello")?);
    let v1 = version("v1", b"code one", 128, 1_000);
    let (outcome, first) = deploy(store, &default, &hello, Some("shop"), &v1, b"code one").await?;
    assert_eq!(outcome, DeployOutcome::Created { version: 1 });
    assert_eq!(
        store.get_function(&default, &hello).await?.as_ref(),
        Some(&first),
        "deploy and get disagree"
    );
    assert_eq!(first.namespace, default);
    assert_eq!(first.name, hello);
    assert_eq!(first.app.as_deref(), Some("shop"));
    assert!(!first.disabled);
    assert_eq!(
        first.versions,
        [VersionRecord {
            number: 1,
            ..v1.clone()
        }]
    );
    assert_eq!(first.live(), &AliasTarget::one(1));
    assert_eq!(first.aliases.len(), 1, "a new function has `live` alone");
    assert_eq!(first.created_at, first.updated_at);
    assert!(first.created_at > 0);

    tick().await;
    let (outcome, same) = deploy(store, &default, &hello, Some("shop"), &v1, b"code one").await?;
    assert_eq!(outcome, DeployOutcome::Unchanged { version: 1 });
    assert_eq!(same, first, "an unchanged deploy must not touch the record");

    // Another app taking over the same version: recorded, but not a new version.
    tick().await;
    let (outcome, moved) = deploy(store, &default, &hello, Some("store"), &v1, b"code one").await?;
    assert_eq!(outcome, DeployOutcome::Unchanged { version: 1 });
    assert_eq!(moved.app.as_deref(), Some("store"));
    assert_eq!(
        moved.updated_at, first.updated_at,
        "updated_at moved on an unchanged deploy"
    );
    assert_ne!(
        moved.revision, first.revision,
        "the record changed but its revision did not"
    );
    let (outcome, bare) = deploy(store, &default, &hello, None, &v1, b"code one").await?;
    assert_eq!(outcome, DeployOutcome::Unchanged { version: 1 });
    assert_eq!(bare.app, None);

    tick().await;
    let v2 = version("v2", b"code two", 256, 2_000);
    let (outcome, second) = deploy(store, &default, &hello, Some("shop"), &v2, b"code two").await?;
    assert_eq!(
        outcome,
        DeployOutcome::Published {
            version: 2,
            previous: AliasTarget::one(1)
        }
    );
    assert_eq!(numbers(&second), [1, 2], "the first version was not kept");
    assert_eq!(second.live_version(), &VersionRecord { number: 2, ..v2 });
    assert_eq!(second.app.as_deref(), Some("shop"));
    assert_eq!(second.created_at, first.created_at);
    assert!(
        second.updated_at > first.updated_at,
        "a publish must move updated_at"
    );
    Ok(())
}

pub async fn versions_are_numbered_and_immutable(store: &dyn Registry) -> TestResult {
    let (default, hello) = (ns("default")?, func("hello")?);
    let v1 = version("v1", b"code one", 128, 1_000);
    let v2 = version("v2", b"code two", 256, 2_000);
    deploy(store, &default, &hello, None, &v1, b"code one").await?;
    deploy(store, &default, &hello, None, &v2, b"code two").await?;

    // Deployed back to the first code and config: a new number with the same content
    // id, as Lambda publishes; version 1 stays as it was.
    let again = VersionRecord {
        created_at: 9_000,
        ..v1.clone()
    };
    let (outcome, record) = deploy(store, &default, &hello, None, &again, b"code one").await?;
    assert_eq!(outcome.version(), 3);
    assert_eq!(numbers(&record), [1, 2, 3]);
    assert_eq!(
        record.version(1),
        Some(&VersionRecord {
            number: 1,
            ..v1.clone()
        })
    );
    assert_eq!(record.version(3), Some(&VersionRecord { number: 3, ..again }));
    assert_eq!(record.live(), &AliasTarget::one(3));
    assert_eq!(
        store.get_code(&default, &v1.code_hash).await?.as_deref(),
        Some(&b"code one"[..])
    );
    Ok(())
}

pub async fn old_versions_are_pruned_unless_aliased(store: &dyn Registry) -> TestResult {
    let (default, hello) = (ns("default")?, func("hello")?);
    let keep_two = PublishOptions {
        keep_versions: 2,
        move_live: true,
    };
    let codes: [&[u8]; 5] = [b"code 1", b"code 2", b"code 3", b"code 4", b"code 5"];
    let (_, first) = store
        .deploy(
            &default,
            &hello,
            None,
            &version("v1", codes[0], 128, 1),
            codes[0],
            keep_two,
        )
        .await?;
    let stable = AliasName::new("stable")?;
    let change = FunctionChange::SetAlias(stable.clone(), AliasTarget::one(1));
    let Updated::Done(_) = store
        .update_function(&default, &hello, first.revision, &change)
        .await?
    else {
        return Err("setting an alias failed".into());
    };
    let mut record = first;
    for (n, code) in codes.iter().enumerate().skip(1) {
        let v = version(&format!("v{}", n + 1), code, 128, n as i64 + 1);
        record = store.deploy(&default, &hello, None, &v, code, keep_two).await?.1;
    }
    // The newest two, and 1, which `stable` points to.
    assert_eq!(numbers(&record), [1, 4, 5]);
    assert_eq!(record.aliases[&stable], AliasTarget::one(1));
    assert_eq!(store.get_function(&default, &hello).await?, Some(record));
    for (code, kept) in codes.iter().zip([true, false, false, true, true]) {
        assert_eq!(
            store.has_code(&default, &hash_of(code)).await?,
            kept,
            "the code of a pruned version must go with it, and only that"
        );
    }
    // Numbers are never reused.
    let (outcome, _) = store
        .deploy(
            &default,
            &hello,
            None,
            &version("v6", b"code 6", 128, 9),
            b"code 6",
            keep_two,
        )
        .await?;
    assert_eq!(outcome.version(), 6);
    Ok(())
}

pub async fn aliases_and_disabling_change_by_compare_and_set(store: &dyn Registry) -> TestResult {
    let (default, hello) = (ns("default")?, func("hello")?);
    deploy(
        store,
        &default,
        &hello,
        None,
        &version("v1", b"one", 128, 1),
        b"one",
    )
    .await?;
    let (_, record) = deploy(
        store,
        &default,
        &hello,
        None,
        &version("v2", b"two", 128, 2),
        b"two",
    )
    .await?;
    let beta = AliasName::new("beta")?;
    let split = AliasTarget {
        version: 1,
        additional: Some(AdditionalVersion {
            version: 2,
            weight: Weight::new(0.1)?,
        }),
    };
    let set = FunctionChange::SetAlias(beta.clone(), split.clone());
    let Updated::Done(after) = store
        .update_function(&default, &hello, record.revision, &set)
        .await?
    else {
        return Err("setting an alias failed".into());
    };
    assert_eq!(after.aliases[&beta], split);
    assert_ne!(after.revision, record.revision);
    assert_eq!(
        store.get_function(&default, &hello).await?.as_ref(),
        Some(&*after)
    );

    // The revision read before is stale now: nothing is written.
    let disable = FunctionChange::SetDisabled(true);
    assert_eq!(
        store
            .update_function(&default, &hello, record.revision, &disable)
            .await?,
        Updated::Stale
    );
    assert!(
        !store
            .get_function(&default, &hello)
            .await?
            .ok_or("gone")?
            .disabled
    );
    let Updated::Done(disabled) = store
        .update_function(&default, &hello, after.revision, &disable)
        .await?
    else {
        return Err("disabling failed".into());
    };
    assert!(disabled.disabled);

    let r = disabled.revision;
    let to_missing = FunctionChange::SetAlias(live(), AliasTarget::one(9));
    assert_eq!(
        store.update_function(&default, &hello, r, &to_missing).await?,
        Updated::NoVersion(9)
    );
    let split_to_missing = FunctionChange::SetAlias(
        beta.clone(),
        AliasTarget {
            version: 1,
            additional: Some(AdditionalVersion {
                version: 7,
                weight: Weight::new(0.5)?,
            }),
        },
    );
    assert_eq!(
        store
            .update_function(&default, &hello, r, &split_to_missing)
            .await?,
        Updated::NoVersion(7)
    );
    let delete_live = FunctionChange::DeleteAlias(live());
    assert_eq!(
        store.update_function(&default, &hello, r, &delete_live).await?,
        Updated::NoAlias
    );
    let delete_none = FunctionChange::DeleteAlias(AliasName::new("none")?);
    assert_eq!(
        store.update_function(&default, &hello, r, &delete_none).await?,
        Updated::NoAlias
    );
    assert_eq!(
        store
            .update_function(&default, &func("nobody")?, r, &disable)
            .await?,
        Updated::NoFunction
    );
    let unchanged = store.get_function(&default, &hello).await?.ok_or("gone")?;
    assert_eq!(unchanged, *disabled, "a refused change wrote something");

    let delete_beta = FunctionChange::DeleteAlias(beta.clone());
    let Updated::Done(deleted) = store.update_function(&default, &hello, r, &delete_beta).await? else {
        return Err("deleting an alias failed".into());
    };
    assert!(!deleted.aliases.contains_key(&beta));
    let rollback = FunctionChange::SetAlias(live(), AliasTarget::one(1));
    let Updated::Done(back) = store
        .update_function(&default, &hello, deleted.revision, &rollback)
        .await?
    else {
        return Err("moving live failed".into());
    };
    assert_eq!(back.live_version().number, 1);
    Ok(())
}

pub async fn an_app_deploys_whole_or_not_at_all(store: &dyn Registry) -> TestResult {
    let default = ns("default")?;
    let (a, b, old) = (func("a")?, func("b")?, func("old")?);
    deploy(
        store,
        &default,
        &old,
        Some("shop"),
        &version("old-1", b"old", 128, 1),
        b"old",
    )
    .await?;
    let item = |name: &FunctionName, id: &str, code: &[u8], size: u64| AppFunction {
        name: name.clone(),
        version: VersionRecord {
            code_size: size,
            ..version(id, code, 128, 2)
        },
        code: std::sync::Arc::from(code),
    };
    // `b` names code that is not stored and was not sent: nothing of the app is written.
    let broken = [item(&a, "a-1", b"code a", 6), item(&b, "b-1", b"", 9)];
    let removed = [old.clone()];
    assert!(
        store
            .deploy_app(&default, "shop", &broken, &removed, PublishOptions::default())
            .await
            .is_err()
    );
    assert_eq!(
        store.get_function(&default, &a).await?,
        None,
        "half an app was written"
    );
    assert!(
        store.get_function(&default, &old).await?.is_some(),
        "a failed app deploy removed a function"
    );
    assert!(!store.has_code(&default, &hash_of(b"code a")).await?);

    let shared: std::sync::Arc<[u8]> = std::sync::Arc::from(&b"shared"[..]);
    let items = [
        AppFunction {
            code: shared.clone(),
            ..item(&a, "a-1", b"shared", 6)
        },
        AppFunction {
            code: shared,
            ..item(&b, "b-1", b"shared", 6)
        },
    ];
    let done = store
        .deploy_app(&default, "shop", &items, &removed, PublishOptions::default())
        .await?;
    assert_eq!(done.len(), 2);
    assert_eq!(done[0].0, DeployOutcome::Created { version: 1 });
    assert_eq!(done[1].1.name, b);
    assert_eq!(done[1].1.app.as_deref(), Some("shop"));
    assert_eq!(
        store.get_function(&default, &old).await?,
        None,
        "the pruned function stayed"
    );
    assert!(!store.has_code(&default, &hash_of(b"old")).await?);
    let again = store
        .deploy_app(&default, "shop", &items, &[], PublishOptions::default())
        .await?;
    assert_eq!(again[0].0, DeployOutcome::Unchanged { version: 1 });
    Ok(())
}

pub async fn a_publish_may_leave_live_alone(store: &dyn Registry) -> TestResult {
    let (default, hello) = (ns("default")?, func("hello")?);
    deploy(
        store,
        &default,
        &hello,
        None,
        &version("v1", b"one", 128, 1),
        b"one",
    )
    .await?;
    let publish_only = PublishOptions {
        keep_versions: 10,
        move_live: false,
    };
    let (outcome, record) = store
        .deploy(
            &default,
            &hello,
            None,
            &version("v2", b"two", 128, 2),
            b"two",
            publish_only,
        )
        .await?;
    assert_eq!(
        outcome,
        DeployOutcome::Published {
            version: 2,
            previous: AliasTarget::one(1)
        }
    );
    assert_eq!(record.live(), &AliasTarget::one(1));
    assert_eq!(record.latest().number, 2);
    Ok(())
}

pub async fn code_is_deduplicated_per_namespace(store: &dyn Registry) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    let (a, b) = (func("a")?, func("b")?);
    let code = b"shared code";
    let hash = hash_of(code);
    assert!(!store.has_code(&default, &hash).await?);
    assert_eq!(store.get_code(&default, &hash).await?, None);

    deploy(store, &default, &a, None, &version("va", code, 128, 1), code).await?;
    assert!(store.has_code(&default, &hash).await?);
    assert!(
        !store.has_code(&other, &hash).await?,
        "code leaked into another namespace"
    );
    assert_eq!(store.get_code(&other, &hash).await?, None);

    // A caller that saw `has_code` may skip the upload: the stored blob is used.
    let (outcome, b_record) = deploy(store, &default, &b, None, &version("vb", code, 256, 2), b"").await?;
    assert_eq!(outcome, DeployOutcome::Created { version: 1 });
    assert_eq!(store.get_code(&default, &hash).await?.as_deref(), Some(&code[..]));
    assert_eq!(b_record.latest().code_hash, hash);
    assert_eq!(b_record.latest().code_size, code.len() as u64);
    Ok(())
}

pub async fn get_and_list_are_ordered_and_isolated(store: &dyn Registry) -> TestResult {
    let (alpha, beta) = (ns("alpha")?, ns("beta")?);
    let hello = func("hello")?;
    // Deployed out of order, so the order below is the store's doing.
    for (namespace, name, code) in [
        (&beta, "hello", &b"beta hello"[..]),
        (&alpha, "zeta", b"alpha zeta"),
        (&alpha, "hello", b"alpha hello"),
        (&beta, "api", b"beta api"),
        (&alpha, "aardvark", b"alpha aardvark"),
    ] {
        let v = version(&format!("{namespace}-{name}"), code, 128, 1);
        deploy(store, namespace, &func(name)?, Some(namespace.as_str()), &v, code).await?;
    }

    let names = |records: &[FunctionRecord]| -> Vec<String> {
        records
            .iter()
            .map(|r| format!("{}/{}", r.namespace, r.name))
            .collect()
    };
    let in_alpha = store.list_functions(Some(&alpha)).await?;
    assert_eq!(names(&in_alpha), ["alpha/aardvark", "alpha/hello", "alpha/zeta"]);
    let everywhere = store.list_functions(None).await?;
    assert_eq!(
        names(&everywhere),
        [
            "alpha/aardvark",
            "alpha/hello",
            "alpha/zeta",
            "beta/api",
            "beta/hello"
        ]
    );
    assert!(store.list_functions(Some(&ns("gamma")?)).await?.is_empty());

    let a = store
        .get_function(&alpha, &hello)
        .await?
        .ok_or("alpha/hello is missing")?;
    let b = store
        .get_function(&beta, &hello)
        .await?
        .ok_or("beta/hello is missing")?;
    assert_eq!(a.latest().id.0, "alpha-hello");
    assert_eq!(b.latest().id.0, "beta-hello");
    assert_eq!(a.app.as_deref(), Some("alpha"));
    assert_eq!(store.get_function(&alpha, &func("api")?).await?, None);
    let listed = everywhere
        .iter()
        .find(|r| r.namespace == alpha && r.name == hello);
    assert_eq!(listed, Some(&a), "list and get disagree");

    assert!(store.delete_function(&alpha, &hello).await?);
    assert_eq!(store.get_function(&alpha, &hello).await?, None);
    assert_eq!(
        store.get_function(&beta, &hello).await?,
        Some(b),
        "delete crossed namespaces"
    );
    Ok(())
}

/// The registry part of deleting a function: the function, its versions and the code no
/// other version uses go; shared code stays. (What `remove_function` also drops is checked
/// per concern and in `store`.)
pub async fn delete_removes_unused_code_and_keeps_shared(store: &dyn Registry) -> TestResult {
    let default = ns("default")?;
    let (one, two) = (func("one")?, func("two")?);
    let (shared, own) = (&b"shared"[..], &b"own"[..]);
    deploy(
        store,
        &default,
        &one,
        None,
        &version("one-1", shared, 128, 1),
        shared,
    )
    .await?;
    deploy(store, &default, &one, None, &version("one-2", own, 128, 2), own).await?;
    deploy(
        store,
        &default,
        &two,
        None,
        &version("two-1", shared, 256, 3),
        shared,
    )
    .await?;

    assert!(store.delete_function(&default, &one).await?);
    assert_eq!(store.get_function(&default, &one).await?, None);
    assert!(
        !store.has_code(&default, &hash_of(own)).await?,
        "unused code was kept"
    );
    assert!(
        store.has_code(&default, &hash_of(shared)).await?,
        "shared code was deleted"
    );
    assert!(store.get_function(&default, &two).await?.is_some());
    assert!(!store.delete_function(&default, &one).await?, "deleted twice");

    // Its versions went too: deploying again starts from scratch.
    let (outcome, _) = deploy(store, &default, &one, None, &version("one-2", own, 128, 2), own).await?;
    assert_eq!(outcome, DeployOutcome::Created { version: 1 });

    assert!(store.delete_function(&default, &two).await?);
    assert!(!store.has_code(&default, &hash_of(shared)).await?);
    assert!(store.has_code(&default, &hash_of(own)).await?);
    Ok(())
}
