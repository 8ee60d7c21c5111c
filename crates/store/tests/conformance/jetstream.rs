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
    #[expect(
        clippy::expect_used,
        reason = "a test that cannot start a thread cannot run; it fails saying so"
    )]
    pub fn block_on<F: Future + Send>(&self, future: F) -> F::Output
    where
        F::Output: Send,
    {
        let handle = self.runtime.as_ref().map(|r| r.handle().clone());
        // A thread with room for the store's opening, whose futures are large in debug
        // builds (2 MiB overflowed now and then).
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .stack_size(16 * 1024 * 1024)
                .spawn_scoped(scope, move || match handle {
                    Some(handle) => handle.block_on(future),
                    None => unreachable!("the runtime lives as long as the guard"),
                })
                .expect("a thread for the test")
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

/// Key-value writers racing on one counter: every increment counts once (each is a KV
/// update on the revision it read, retried when refused), and keys of any text, up to the
/// largest the engine allows, are stored, read and listed by prefix as written.
#[tokio::test]
async fn kv_racing_increments_count_once_and_keys_may_be_any_text() -> TestResult {
    use wisp_core::{KvStoreName, Limits};
    use wisp_store::{KeyValues, KvCondition, KvIncremented, KvSet, KvStoreRecord, KvWrite};
    let (_guard, store) = open()?;
    let default = ns("default")?;
    let counters = KvStoreName::new("counters")?;
    let record = KvStoreRecord {
        namespace: default.clone(),
        name: counters.clone(),
        created_ms: T,
    };
    assert!(store.create_kv_store(&record).await?);
    let tasks = (0..8).map(|_| {
        let (store, default, counters) = (store.clone(), default.clone(), counters.clone());
        tokio::spawn(async move {
            for _ in 0..10 {
                let done = store.kv_increment(&default, &counters, "hits", 1, T).await?;
                assert!(matches!(done, KvIncremented::Incremented { .. }), "{done:?}");
            }
            Ok::<_, wisp_store::StoreError>(())
        })
    });
    for task in tasks {
        task.await??;
    }
    let hits = store
        .kv_get(&default, &counters, "hits", T)
        .await?
        .ok_or("no counter")?;
    assert_eq!(hits.value, b"80");

    let long = "é".repeat(Limits::MAX_KV_KEY_BYTES / 2);
    let keys = ["", "a.b", "a*", "a>", "a b", "ä/日本", long.as_str()];
    for key in keys {
        let write = KvWrite {
            key: key.to_owned(),
            value: key.as_bytes().to_vec(),
            ttl_expires_ms: None,
            condition: KvCondition::Absent,
        };
        let set = store.kv_set(&default, &counters, write, T).await?;
        assert!(matches!(set, KvSet::Stored { .. }), "{key:?}: {set:?}");
        let entry = store
            .kv_get(&default, &counters, key, T)
            .await?
            .ok_or("not stored")?;
        assert_eq!(entry.value, key.as_bytes());
    }
    let listed = store.kv_list(&default, &counters, "a", None, 100, T).await?;
    assert_eq!(listed.keys, ["a b", "a*", "a.b", "a>"]);
    let all = store.kv_list(&default, &counters, "", None, 100, T).await?;
    assert_eq!(
        all.keys,
        ["", "a b", "a*", "a.b", "a>", "hits", "ä/日本", long.as_str()]
    );
    Ok(())
}

/// A value of the largest size the engine allows, with its envelope, is more than the
/// server's default `max_payload` (1 MiB): refused there with an error, stored on a server
/// configured with `max_payload: 2MB` (what docs/cluster.md asks of a cluster).
#[tokio::test]
async fn kv_the_largest_value_needs_a_larger_max_payload() -> TestResult {
    use wisp_core::{KvStoreName, Limits};
    use wisp_store::{KeyValues, KvCondition, KvStoreRecord, KvWrite};
    let default = ns("default")?;
    let name = KvStoreName::new("big")?;
    let write = KvWrite {
        key: "k".to_owned(),
        value: vec![7; Limits::MAX_KV_VALUE_BYTES],
        ttl_expires_ms: None,
        condition: KvCondition::Any,
    };
    let record = KvStoreRecord {
        namespace: default.clone(),
        name: name.clone(),
        created_ms: T,
    };

    let (_guard, store) = open()?;
    assert!(store.create_kv_store(&record).await?);
    let refused = store
        .kv_set(&default, &name, write.clone(), T)
        .await
        .err()
        .ok_or("a value past max_payload was stored")?;
    assert!(refused.to_string().contains("payload"), "{refused}");

    let dir = tempfile::TempDir::new()?;
    let config = dir.path().join("nats.conf");
    std::fs::write(&config, "max_payload: 2MB\n")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut child = std::process::Command::new(wisp_test_support::nats::nats_server_binary())
        .arg("-c")
        .arg(&config)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path().join("jetstream"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let result = async {
        let url = format!("nats://127.0.0.1:{port}");
        let mut tries = 0;
        let big = loop {
            match JetStreamStore::connect(&url, "big").await {
                Ok(store) => break store,
                Err(_) if tries < 150 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        assert!(big.create_kv_store(&record).await?);
        big.kv_set(&default, &name, write.clone(), T).await?;
        let entry = big.kv_get(&default, &name, "k", T).await?.ok_or("not stored")?;
        assert_eq!(entry.value.len(), Limits::MAX_KV_VALUE_BYTES);
        Ok::<_, Box<dyn Error>>(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}
