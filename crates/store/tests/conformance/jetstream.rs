//! The JetStream backend's part of the suite: [`open`] starts a real `nats-server` with
//! JetStream (`wisp_test_support::nats`) for each test and opens a store on it; the checks
//! it cannot share with SQLite live here.

use super::*;
use std::future::Future;
use wisp_store::{JetStreamStore, NamespaceSettings, Namespaces};
use wisp_test_support::nats::NatsServer;

/// What a test holds while it uses a [`JetStreamStore`]: the server, and the runtime the
/// store's connection runs on.
///
/// The conformance macro opens a store without `.await`, inside the test's own runtime,
/// which cannot block on a future; so the connection is made, and its background task
/// runs, on a runtime of its own (the client works from any runtime: it talks to that
/// task over channels). Dropped, it stops that runtime, then kills the server.
pub struct Guard {
    runtime: Option<tokio::runtime::Runtime>,
    pub server: NatsServer,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Guard {
    /// Runs `future` to its end on the guard's runtime, from a thread of its own.
    pub fn block_on<F: Future + Send>(&self, future: F) -> F::Output
    where
        F::Output: Send,
    {
        let handle = self.runtime.as_ref().map(|r| r.handle().clone());
        std::thread::scope(|scope| {
            scope
                .spawn(move || match handle {
                    Some(handle) => handle.block_on(future),
                    None => unreachable!("the runtime lives as long as the guard"),
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

/// A fresh server and an empty store on it (buckets `test_…`).
pub fn open() -> TestResult<(Guard, JetStreamStore)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let guard = Guard {
        runtime: Some(runtime),
        server: NatsServer::start(),
    };
    let store = guard.block_on(JetStreamStore::connect(&guard.server.url, "test"))?;
    Ok((guard, store))
}

/// Stores with different prefixes share a server and nothing else; a store opened again
/// with the same prefix (another node) finds what the first wrote, and opening does not
/// disturb buckets that exist.
#[tokio::test]
async fn prefixes_separate_stores_and_reopening_finds_the_records() -> TestResult {
    let (guard, first) = open()?;
    let url = guard.server.url.clone();
    let (other, again) = guard.block_on(async {
        let other = JetStreamStore::connect(&url, "other").await?;
        let again = JetStreamStore::connect(&url, "test").await?;
        Ok::<_, wisp_store::StoreError>((other, again))
    })?;
    let default = ns("default")?;
    assert!(
        first
            .create_namespace(&default, &NamespaceSettings::default(), T)
            .await?
    );
    assert_eq!(other.namespace(&default).await?, None);
    assert!(other.list_namespaces().await?.is_empty());
    let record = first.namespace(&default).await?.ok_or("not created")?;
    assert_eq!(again.namespace(&default).await?, Some(record.clone()));
    // A second node's stale revision loses to the first node's update.
    let updated = first
        .update_namespace(&default, &NamespaceSettings::default(), record.revision)
        .await?
        .ok_or("refused")?;
    assert_eq!(
        again
            .update_namespace(&default, &NamespaceSettings::default(), record.revision)
            .await?,
        None
    );
    assert_eq!(again.namespace(&default).await?, Some(updated));
    Ok(())
}

/// A prefix that cannot name a bucket is refused with the reason.
#[tokio::test]
async fn a_bad_prefix_is_refused() -> TestResult {
    let (guard, _store) = open()?;
    let url = guard.server.url.clone();
    let error = guard
        .block_on(JetStreamStore::connect(&url, "no.dots"))
        .err()
        .ok_or("opened a store with prefix `no.dots`")?;
    assert!(error.to_string().contains("no.dots"), "{error}");
    Ok(())
}

/// Two writers racing on one record: of many concurrent creates exactly one wins, and of
/// concurrent revokes of one key exactly one returns `true` (the server's compare-and-set,
/// not a read-then-write window).
#[tokio::test]
async fn racing_creates_and_revokes_have_one_winner() -> TestResult {
    use wisp_core::Role;
    use wisp_store::{ApiKeyRecord, ApiKeys};
    let (_guard, store) = open()?;
    let default = ns("default")?;
    let creates = (0..8).map(|n| {
        let (store, default) = (store.clone(), default.clone());
        tokio::spawn(async move {
            store
                .create_namespace(&default, &NamespaceSettings::default(), T + n)
                .await
        })
    });
    let mut won = 0;
    for create in creates {
        won += usize::from(create.await??);
    }
    assert_eq!(won, 1, "{won} creates of one namespace returned true");

    let key = ApiKeyRecord {
        id: "WKRACE".to_owned(),
        namespace: default.clone(),
        role: Role::Read,
        name: None,
        secret_hash: b"hash".to_vec(),
        sealed_secret: b"sealed".to_vec(),
        created_at: T,
        created_by: None,
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    };
    assert!(store.create_key(&key).await?);
    let revokes = (0..8).map(|n| {
        let store = store.clone();
        tokio::spawn(async move { store.revoke_key("WKRACE", T + 10 + n).await })
    });
    let mut won = 0;
    for revoke in revokes {
        won += usize::from(revoke.await??);
    }
    assert_eq!(won, 1, "{won} revokes of one key returned true");
    Ok(())
}

/// The audit log is read by scanning its stream and keeping the newest entries as it
/// goes: with more entries than that keeps at once (1,024), appended out of time order,
/// paging through every one still yields each once, newest first.
#[tokio::test]
async fn audit_pages_through_a_long_stream_out_of_time_order() -> TestResult {
    use wisp_store::{Audit, AuditEntry, AuditQuery};
    let (_guard, store) = open()?;
    let (default, other) = (ns("default")?, ns("other")?);
    const N: i64 = 2_500;
    // Times run backwards and repeat (five entries a millisecond), across two namespaces.
    let entries: Vec<AuditEntry> = (0..N)
        .map(|n| AuditEntry {
            id: format!("e{n:05}"),
            at: T + (N - n) / 5,
            namespace: if n % 2 == 0 {
                default.clone()
            } else {
                other.clone()
            },
            key_id: None,
            action: "function.deploy".to_owned(),
            target: "f".to_owned(),
            source: None,
            detail: None,
        })
        .collect();
    for batch in entries.chunks(500) {
        store.append_audit(batch).await?;
    }
    let mut expected: Vec<(i64, String)> = entries.iter().map(|e| (e.at, e.id.clone())).collect();
    expected.sort_by(|a, b| b.cmp(a));

    let mut read = Vec::new();
    let mut cursor: Option<(i64, String)> = None;
    loop {
        let page = store
            .audit(&AuditQuery {
                namespace: None,
                before: cursor.as_ref().map(|(at, _)| *at),
                before_id: cursor.as_ref().map(|(_, id)| id.clone()),
                limit: 700,
            })
            .await?;
        let Some(last) = page.last() else { break };
        cursor = Some((last.at, last.id.clone()));
        read.extend(page.into_iter().map(|e| (e.at, e.id)));
    }
    assert_eq!(read.len(), expected.len());
    assert!(
        read == expected,
        "the pages are not every entry, newest first, once"
    );

    let others = store
        .audit(&AuditQuery {
            namespace: Some(other.clone()),
            limit: 5_000,
            ..AuditQuery::default()
        })
        .await?;
    assert_eq!(others.len(), 1_250);
    assert!(others.iter().all(|e| e.namespace == other));
    Ok(())
}
