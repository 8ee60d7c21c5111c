//! Unit tests of the SQLite backend for what the shared conformance suite cannot
//! see: pragmas, corrupt rows, error messages, refused input, lock recovery and
//! migrating a database an older Wisp wrote.

use super::*;
use rusqlite::params;
use std::error::Error;
use tempfile::TempDir;
use wisp_core::{FunctionConfig, Kind, VersionId};

use crate::{InvocationQuery, InvocationRecord};

type TestResult<T = ()> = Result<T, Box<dyn Error>>;

fn open() -> TestResult<(TempDir, SqliteStore)> {
    let dir = TempDir::new()?;
    let store = SqliteStore::open(&dir.path().join("wisp.db"))?;
    Ok((dir, store))
}

fn names() -> TestResult<(Namespace, FunctionName)> {
    Ok((Namespace::new("default")?, FunctionName::new("hello")?))
}

fn version(id: &str, code_hash: &str, code_size: u64) -> VersionRecord {
    VersionRecord {
        id: VersionId(id.to_owned()),
        code_hash: code_hash.to_owned(),
        code_size,
        config: FunctionConfig::new(Kind::Event),
        created_at: 7,
    }
}

/// Runs raw SQL on the writer, as a tool or a bug outside the store might.
fn tamper(store: &SqliteStore, sql: &str) -> TestResult {
    let conn = store.conns.writer.lock().map_err(|e| e.to_string())?;
    conn.execute_batch(sql)?;
    Ok(())
}

fn count(store: &SqliteStore, table: &str) -> TestResult<i64> {
    let conn = store.conns.reader.lock().map_err(|e| e.to_string())?;
    Ok(conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get(0))?)
}

#[test]
fn connections_have_the_pragmas() -> TestResult {
    let (_dir, store) = open()?;
    let writer = store.conns.writer.lock().map_err(|e| e.to_string())?;
    let pragma = |conn: &Connection, name: &str| -> rusqlite::Result<String> {
        conn.query_row(&format!("PRAGMA {name}"), [], |row| {
            row.get::<_, rusqlite::types::Value>(0).map(|v| match v {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
        })
    };
    assert_eq!(pragma(&writer, "journal_mode")?, "wal");
    assert_eq!(
        pragma(&writer, "synchronous")?,
        "1",
        "synchronous should be NORMAL"
    );
    assert_eq!(pragma(&writer, "foreign_keys")?, "1");
    assert_eq!(
        pragma(&writer, "busy_timeout")?,
        schema::BUSY_TIMEOUT.as_millis().to_string()
    );
    assert_eq!(pragma(&writer, "query_only")?, "0");
    let reader = store.conns.reader.lock().map_err(|e| e.to_string())?;
    assert_eq!(pragma(&reader, "journal_mode")?, "wal");
    assert_eq!(pragma(&reader, "foreign_keys")?, "1");
    assert_eq!(pragma(&reader, "query_only")?, "1");
    Ok(())
}

#[tokio::test]
async fn a_config_that_does_not_parse_is_corrupt() -> TestResult {
    let (_dir, store) = open()?;
    let (ns, name) = names()?;
    store
        .deploy(&ns, &name, None, &version("v1", "abc", 3), b"abc")
        .await?;
    tamper(
        &store,
        "UPDATE versions SET config = '{\"kind\":\"carrier-pigeon\"}'",
    )?;

    let err = store
        .get_function(&ns, &name)
        .await
        .err()
        .ok_or("read a corrupt config")?;
    let StoreError::Corrupt(message) = &err else {
        return Err(format!("expected Corrupt, got {err:?}").into());
    };
    assert!(message.contains("`default/hello`"), "{message}");
    assert!(message.contains("`v1`"), "{message}");
    assert!(store.list_functions(None).await.is_err());
    Ok(())
}

#[tokio::test]
async fn a_missing_version_is_corrupt_not_absent() -> TestResult {
    let (_dir, store) = open()?;
    let (ns, name) = names()?;
    store
        .deploy(&ns, &name, None, &version("v1", "abc", 3), b"abc")
        .await?;
    tamper(
        &store,
        "PRAGMA foreign_keys = OFF; DELETE FROM versions; PRAGMA foreign_keys = ON;",
    )?;
    let err = store
        .get_function(&ns, &name)
        .await
        .err()
        .ok_or("read a dangling function")?;
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("serves version `v1`, which is not stored"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn backend_errors_name_the_operation() -> TestResult {
    let (_dir, store) = open()?;
    let (ns, name) = names()?;
    tamper(&store, "DROP TABLE logs")?;
    let line = LogLine {
        namespace: ns.clone(),
        function: name.clone(),
        invocation_id: "inv".into(),
        time: 1,
        stream: crate::LogStream::Stdout,
        line: "hi".into(),
    };
    let err = store
        .append_logs(&[line])
        .await
        .err()
        .ok_or("wrote to a dropped table")?;
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "storage backend failed: appending log lines (a batch of 1): no such table: logs"
    );
    let err = store
        .logs(&ns, &name, &LogQuery::default())
        .await
        .err()
        .ok_or("read a dropped table")?;
    assert!(
        err.to_string()
            .starts_with("storage backend failed: reading the logs of `default/hello`: "),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn deploy_refuses_code_of_the_wrong_size_and_writes_nothing() -> TestResult {
    let (_dir, store) = open()?;
    let (ns, name) = names()?;
    // A caller that skipped the upload, but the blob is not there (a delete raced it).
    let err = store
        .deploy(&ns, &name, Some("app"), &version("v1", "abc", 3), b"")
        .await
        .err()
        .ok_or("stored an empty blob under a hash of 3 bytes")?;
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("refusing to store 0 bytes as code `abc`"),
        "{err}"
    );
    assert_eq!(store.get_function(&ns, &name).await?, None);
    assert!(!store.has_code(&ns, "abc").await?);
    assert_eq!(count(&store, "versions")?, 0);
    Ok(())
}

#[tokio::test]
async fn redeploying_a_stored_version_ignores_other_code() -> TestResult {
    let (_dir, store) = open()?;
    let (ns, name) = names()?;
    store
        .deploy(&ns, &name, None, &version("v1", "aaa", 3), b"aaa")
        .await?;
    store
        .deploy(&ns, &name, None, &version("v2", "bbb", 3), b"bbb")
        .await?;
    // Same id, other code: a caller bug. The stored version wins and no orphan
    // blob is left behind.
    let outcome = store
        .deploy(&ns, &name, None, &version("v1", "ccc", 3), b"ccc")
        .await?;
    assert_eq!(
        outcome,
        DeployOutcome::Updated {
            previous: VersionId("v2".into())
        }
    );
    let record = store.get_function(&ns, &name).await?.ok_or("function vanished")?;
    assert_eq!(record.version.code_hash, "aaa");
    assert!(!store.has_code(&ns, "ccc").await?);
    assert_eq!(count(&store, "code")?, 2);
    Ok(())
}

#[tokio::test]
async fn a_newer_schema_is_refused() -> TestResult {
    let dir = TempDir::new()?;
    let path = dir.path().join("wisp.db");
    drop(SqliteStore::open(&path)?);
    Connection::open(&path)?.pragma_update(None, "user_version", 99)?;
    let err = SqliteStore::open(&path)
        .err()
        .ok_or("opened a database from the future")?;
    assert!(err.to_string().contains("migrating the schema of"), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_panic_in_an_operation_does_not_break_the_store() -> TestResult {
    let (_dir, store) = open()?;
    let (ns, name) = names()?;
    let err = store
        .run(Access::Write, "panicking".into(), |conn| -> Result<(), OpError> {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO code (namespace, hash, data, size, created_at) VALUES (?1, ?2, ?3, 1, 1)",
                params!["default", "half-done", b"x".as_slice()],
            )?;
            panic!("a bug in the middle of a transaction");
        })
        .await
        .err()
        .ok_or("a panic became success")?;
    assert!(
        err.to_string()
            .contains("panicking: the store's worker task failed"),
        "{err}"
    );
    // The poisoned writer still works, and the half-done transaction rolled back.
    assert!(store.conns.writer.is_poisoned());
    assert!(!store.has_code(&ns, "half-done").await?);
    let outcome = store
        .deploy(&ns, &name, None, &version("v1", "abc", 3), b"abc")
        .await?;
    assert_eq!(outcome, DeployOutcome::Created);
    Ok(())
}

fn invocation(ns: &Namespace, name: &FunctionName, id: &str) -> InvocationRecord {
    InvocationRecord {
        namespace: ns.clone(),
        function: name.clone(),
        id: id.to_owned(),
        version: VersionId("v1".into()),
        started_at: 1_700_000_000_000,
        cold: true,
        init_us: Some(2_500),
        queue_us: 10,
        run_us: 300,
        error: None,
    }
}

#[tokio::test]
async fn a_version_1_database_gains_invocations_and_keeps_its_data() -> TestResult {
    let dir = TempDir::new()?;
    let path = dir.path().join("wisp.db");
    // The file as a Wisp with only migration 1 left it: WAL, a deployed function,
    // a log line.
    {
        let mut conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        schema::MIGRATIONS.to_version(&mut conn, 1)?;
        let config = serde_json::to_string(&FunctionConfig::new(Kind::Event))?;
        conn.execute_batch(&format!(
            "INSERT INTO code VALUES ('default', 'abc', x'616263', 3, 5);
             INSERT INTO versions VALUES ('default', 'hello', 'v1', 'abc', '{config}', 7);
             INSERT INTO functions VALUES ('default', 'hello', 'shop', 'v1', 8, 9);
             INSERT INTO logs (namespace, function, invocation_id, time, stream, line)
                 VALUES ('default', 'hello', 'inv-old', 10, 'stdout', 'from v1');"
        ))?;
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'invocations'",
            [],
            |row| row.get(0),
        )?;
        assert_eq!(tables, 0, "the fixture is not a version 1 database");
    }

    let store = SqliteStore::open(&path)?;
    let (ns, name) = names()?;
    let user_version: i64 = store.conns.reader.lock().map_err(|e| e.to_string())?.query_row(
        "PRAGMA user_version",
        [],
        |row| row.get(0),
    )?;
    assert_eq!(user_version, 2);

    let record = store
        .get_function(&ns, &name)
        .await?
        .ok_or("the v1 function is gone")?;
    assert_eq!(record.app.as_deref(), Some("shop"));
    assert_eq!(record.version, version("v1", "abc", 3));
    assert_eq!((record.created_at, record.updated_at), (8, 9));
    assert_eq!(store.get_code(&ns, "abc").await?.as_deref(), Some(&b"abc"[..]));
    let lines = store.logs(&ns, &name, &LogQuery::default()).await?;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].line, "from v1");

    let fresh = invocation(&ns, &name, "inv-new");
    store.append_invocations(std::slice::from_ref(&fresh)).await?;
    assert_eq!(
        store.invocations(&ns, &name, &InvocationQuery::default()).await?,
        [fresh]
    );
    // Reopening a migrated file applies nothing twice.
    drop(store);
    let store = SqliteStore::open(&path)?;
    assert_eq!(count(&store, "invocations")?, 1);
    assert!(store.delete_function(&ns, &name).await?);
    assert_eq!(count(&store, "invocations")?, 0);
    assert_eq!(count(&store, "logs")?, 0);
    Ok(())
}

#[tokio::test]
async fn durations_past_i64_are_clamped_not_refused() -> TestResult {
    let (_dir, store) = open()?;
    let (ns, name) = names()?;
    let absurd = InvocationRecord {
        init_us: Some(u64::MAX),
        run_us: u64::MAX,
        ..invocation(&ns, &name, "inv-absurd")
    };
    // One nonsense record must not lose the rest of its batch.
    store
        .append_invocations(&[invocation(&ns, &name, "inv-ok"), absurd])
        .await?;
    let records = store.invocations(&ns, &name, &InvocationQuery::default()).await?;
    assert_eq!(records.len(), 2);
    let clamped = i64::MAX.cast_unsigned();
    assert_eq!(records[1].run_us, clamped);
    assert_eq!(records[1].init_us, Some(clamped));
    assert_eq!(
        store.invocation_summary(&ns, &name).await?.init_p99_us,
        Some(clamped)
    );
    Ok(())
}

#[tokio::test]
async fn a_negative_duration_is_corrupt() -> TestResult {
    let (_dir, store) = open()?;
    let (ns, name) = names()?;
    store
        .append_invocations(&[invocation(&ns, &name, "inv-1")])
        .await?;
    tamper(
        &store,
        "PRAGMA ignore_check_constraints = ON;
         UPDATE invocations SET init_us = -1;
         PRAGMA ignore_check_constraints = OFF;",
    )?;
    let err = store
        .invocations(&ns, &name, &InvocationQuery::default())
        .await
        .err()
        .ok_or("read a negative init time")?;
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("invocation `inv-1` of `default/hello` has a negative init_us `-1`"),
        "{err}"
    );
    let err = store
        .invocation_summary(&ns, &name)
        .await
        .err()
        .ok_or("summarised a negative init time")?;
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn invocation_errors_name_the_operation() -> TestResult {
    let (_dir, store) = open()?;
    let (ns, name) = names()?;
    tamper(&store, "DROP TABLE invocations")?;
    let err = store
        .append_invocations(&[invocation(&ns, &name, "inv-1")])
        .await
        .err()
        .ok_or("wrote to a dropped table")?;
    assert_eq!(
        err.to_string(),
        "storage backend failed: appending invocation records (a batch of 1): no such table: invocations"
    );
    let err = store
        .invocations(&ns, &name, &InvocationQuery::default())
        .await
        .err()
        .ok_or("read a dropped table")?;
    assert!(
        err.to_string()
            .starts_with("storage backend failed: reading the invocations of `default/hello`: "),
        "{err}"
    );
    let err = store
        .invocation_summary(&ns, &name)
        .await
        .err()
        .ok_or("summarised a dropped table")?;
    assert!(
        err.to_string()
            .starts_with("storage backend failed: summarising the invocations of `default/hello`: "),
        "{err}"
    );
    // An empty batch never reaches the database, so the missing table cannot fail it.
    store.append_invocations(&[]).await?;
    Ok(())
}
