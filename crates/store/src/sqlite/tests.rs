//! Unit tests of the SQLite backend for what the shared conformance suite cannot
//! see: pragmas, corrupt rows, error messages, refused input and lock recovery.

use super::*;
use rusqlite::params;
use std::error::Error;
use tempfile::TempDir;
use wisp_core::{FunctionConfig, Kind, VersionId};

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
