//! Checks of the registry: deploys (created, updated, unchanged), immutable versions,
//! code deduplicated per namespace, reading and listing, and deleting a function's
//! registry data.

use super::*;
use std::time::Duration;
use wisp_store::{DeployOutcome, Registry};

/// Sleeps long enough for the store's millisecond clock to move.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

pub async fn deploy_created_updated_unchanged(store: &dyn Registry) -> TestResult {
    let (default, hello) = (ns("default")?, func("hello")?);
    let v1 = version("v1", b"code one", 128, 1_000);
    let outcome = store
        .deploy(&default, &hello, Some("shop"), &v1, b"code one")
        .await?;
    assert_eq!(outcome, DeployOutcome::Created);

    let first = store
        .get_function(&default, &hello)
        .await?
        .ok_or("deployed function is missing")?;
    assert_eq!(first.namespace, default);
    assert_eq!(first.name, hello);
    assert_eq!(first.app.as_deref(), Some("shop"));
    assert_eq!(first.version, v1);
    assert_eq!(first.created_at, first.updated_at);
    assert!(first.created_at > 0);

    tick().await;
    let outcome = store
        .deploy(&default, &hello, Some("shop"), &v1, b"code one")
        .await?;
    assert_eq!(outcome, DeployOutcome::Unchanged);
    let same = store
        .get_function(&default, &hello)
        .await?
        .ok_or("function vanished")?;
    assert_eq!(same, first, "an unchanged deploy must not touch the record");

    // Another app taking over the same version: recorded, but not a new deployment.
    tick().await;
    let outcome = store
        .deploy(&default, &hello, Some("store"), &v1, b"code one")
        .await?;
    assert_eq!(outcome, DeployOutcome::Unchanged);
    let moved = store
        .get_function(&default, &hello)
        .await?
        .ok_or("function vanished")?;
    assert_eq!(moved.app.as_deref(), Some("store"));
    assert_eq!(
        moved.updated_at, first.updated_at,
        "updated_at moved on an unchanged deploy"
    );
    let outcome = store.deploy(&default, &hello, None, &v1, b"code one").await?;
    assert_eq!(outcome, DeployOutcome::Unchanged);
    let bare = store
        .get_function(&default, &hello)
        .await?
        .ok_or("function vanished")?;
    assert_eq!(bare.app, None);

    tick().await;
    let v2 = version("v2", b"code two", 256, 2_000);
    let outcome = store
        .deploy(&default, &hello, Some("shop"), &v2, b"code two")
        .await?;
    assert_eq!(
        outcome,
        DeployOutcome::Updated {
            previous: v1.id.clone()
        }
    );
    let second = store
        .get_function(&default, &hello)
        .await?
        .ok_or("function vanished")?;
    assert_eq!(second.version, v2);
    assert_eq!(second.app.as_deref(), Some("shop"));
    assert_eq!(second.created_at, first.created_at);
    assert!(
        second.updated_at > first.updated_at,
        "an update must move updated_at"
    );
    Ok(())
}

pub async fn versions_are_immutable(store: &dyn Registry) -> TestResult {
    let (default, hello) = (ns("default")?, func("hello")?);
    let v1 = version("v1", b"code one", 128, 1_000);
    let v2 = version("v2", b"code two", 256, 2_000);
    store.deploy(&default, &hello, None, &v1, b"code one").await?;
    store.deploy(&default, &hello, None, &v2, b"code two").await?;

    // A rollback: the CLI deploys v1 again, later, so its record carries a new time.
    let again = VersionRecord {
        created_at: 9_000,
        ..v1.clone()
    };
    let outcome = store.deploy(&default, &hello, None, &again, b"code one").await?;
    assert_eq!(
        outcome,
        DeployOutcome::Updated {
            previous: v2.id.clone()
        }
    );
    let serving = store
        .get_function(&default, &hello)
        .await?
        .ok_or("function vanished")?;
    assert_eq!(
        serving.version, v1,
        "the stored version must win over the re-deployed record"
    );
    assert_eq!(
        store.get_code(&default, &v1.code_hash).await?.as_deref(),
        Some(&b"code one"[..])
    );
    Ok(())
}

pub async fn code_is_deduplicated_per_namespace(store: &dyn Registry) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    let (a, b) = (func("a")?, func("b")?);
    let code = b"shared code";
    let hash = hash_of(code);
    assert!(!store.has_code(&default, &hash).await?);
    assert_eq!(store.get_code(&default, &hash).await?, None);

    store
        .deploy(&default, &a, None, &version("va", code, 128, 1), code)
        .await?;
    assert!(store.has_code(&default, &hash).await?);
    assert!(
        !store.has_code(&other, &hash).await?,
        "code leaked into another namespace"
    );
    assert_eq!(store.get_code(&other, &hash).await?, None);

    // A caller that saw `has_code` may skip the upload: the stored blob is used.
    let outcome = store
        .deploy(&default, &b, None, &version("vb", code, 256, 2), b"")
        .await?;
    assert_eq!(outcome, DeployOutcome::Created);
    assert_eq!(store.get_code(&default, &hash).await?.as_deref(), Some(&code[..]));
    let b_record = store.get_function(&default, &b).await?.ok_or("b is missing")?;
    assert_eq!(b_record.version.code_hash, hash);
    assert_eq!(b_record.version.code_size, code.len() as u64);
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
        store
            .deploy(namespace, &func(name)?, Some(namespace.as_str()), &v, code)
            .await?;
    }

    let names = |records: &[wisp_store::FunctionRecord]| -> Vec<String> {
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
    assert_eq!(a.version.id.0, "alpha-hello");
    assert_eq!(b.version.id.0, "beta-hello");
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
    store
        .deploy(&default, &one, None, &version("one-1", shared, 128, 1), shared)
        .await?;
    store
        .deploy(&default, &one, None, &version("one-2", own, 128, 2), own)
        .await?;
    store
        .deploy(&default, &two, None, &version("two-1", shared, 256, 3), shared)
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
    let outcome = store
        .deploy(&default, &one, None, &version("one-2", own, 128, 2), own)
        .await?;
    assert_eq!(outcome, DeployOutcome::Created);

    assert!(store.delete_function(&default, &two).await?);
    assert!(!store.has_code(&default, &hash_of(shared)).await?);
    assert!(store.has_code(&default, &hash_of(own)).await?);
    Ok(())
}
