//! Unit tests of the SQLite backend for what the shared conformance suite cannot
//! see: pragmas, corrupt rows, error messages, refused input, lock recovery and
//! migrating a database an older Wisp wrote.

use super::*;
use crate::{
    DeployOutcome, EventOutcome, EventStatus, Events, Failure, FollowUp, InvocationQuery, InvocationRecord,
    LogLine, LogQuery, NewEvent, PublishOptions, Queues, Records, Registry, Resolution, Schedules, Store,
    VersionRecord,
};
use rusqlite::params;
use std::error::Error;
use tempfile::TempDir;
use wisp_core::{FunctionConfig, FunctionName, Kind, Namespace, QueueConfig, QueueName, VersionId};

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
        number: 0,
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
        .deploy(
            &ns,
            &name,
            None,
            &version("v1", "abc", 3),
            b"abc",
            PublishOptions::default(),
        )
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
    assert!(message.contains("version 1"), "{message}");
    assert!(store.list_functions(None).await.is_err());
    Ok(())
}

#[tokio::test]
async fn a_missing_version_is_corrupt_not_absent() -> TestResult {
    let (_dir, store) = open()?;
    let (ns, name) = names()?;
    store
        .deploy(
            &ns,
            &name,
            None,
            &version("v1", "abc", 3),
            b"abc",
            PublishOptions::default(),
        )
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
            .contains("function `default/hello` has no version"),
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
        version: 1,
        cursor: 0,
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
        .deploy(
            &ns,
            &name,
            Some("app"),
            &version("v1", "abc", 3),
            b"",
            PublishOptions::default(),
        )
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
async fn deploying_back_to_earlier_content_reuses_its_stored_code() -> TestResult {
    let (_dir, store) = open()?;
    let (ns, name) = names()?;
    let publish = PublishOptions::default();
    store
        .deploy(&ns, &name, None, &version("v1", "aaa", 3), b"aaa", publish)
        .await?;
    store
        .deploy(&ns, &name, None, &version("v2", "bbb", 3), b"bbb", publish)
        .await?;
    // The caller skipped the upload: `has_code` said the blob is stored.
    let (outcome, record) = store
        .deploy(&ns, &name, None, &version("v1", "aaa", 3), b"", publish)
        .await?;
    assert_eq!(outcome.version(), 3);
    assert_eq!(record.live_version().code_hash, "aaa");
    assert_eq!(count(&store, "code")?, 2);
    assert_eq!(count(&store, "versions")?, 3);
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
    let (outcome, _) = store
        .deploy(
            &ns,
            &name,
            None,
            &version("v1", "abc", 3),
            b"abc",
            PublishOptions::default(),
        )
        .await?;
    assert_eq!(outcome, DeployOutcome::Created { version: 1 });
    Ok(())
}

/// A database file as a Wisp that knew only the migrations up to `version` left it (WAL),
/// for an upgrade test to fill with the rows of that time.
fn database_at_version(path: &Path, version: usize) -> TestResult<Connection> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    schema::MIGRATIONS.to_version(&mut conn, version)?;
    Ok(conn)
}

fn invocation(ns: &Namespace, name: &FunctionName, id: &str) -> InvocationRecord {
    InvocationRecord {
        namespace: ns.clone(),
        function: name.clone(),
        id: id.to_owned(),
        version: VersionId("v1".into()),
        version_number: 1,
        started_at: 1_700_000_000_000,
        cold: true,
        init_us: Some(2_500),
        queue_us: 10,
        run_us: 300,
        error: None,
        memory_mb: 128,
        billed_ms: 1,
        reserved: false,
        trace: Some("1-5759e988-bd862e3fe1be46a994272793".to_owned()),
        parent: None,
    }
}

#[tokio::test]
async fn a_version_1_database_gains_invocations_and_keeps_its_data() -> TestResult {
    let dir = TempDir::new()?;
    let path = dir.path().join("wisp.db");
    // The file as a Wisp with only migration 1 left it: WAL, a deployed function,
    // a log line.
    {
        let conn = database_at_version(&path, 1)?;
        conn.pragma_update(None, "foreign_keys", true)?;
        let config = serde_json::to_string(&FunctionConfig::new(Kind::Event))?;
        conn.execute_batch(&format!(
            "INSERT INTO code VALUES ('default', 'abc', x'616263', 3, 5);
             INSERT INTO versions VALUES ('default', 'hello', 'v0', 'abc', '{config}', 6);
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
    assert_eq!(user_version, 19, "not migrated to the latest schema");

    let record = store
        .get_function(&ns, &name)
        .await?
        .ok_or("the v1 function is gone")?;
    assert_eq!(record.app.as_deref(), Some("shop"));
    // Versions numbered by age; `live` is the one the function served.
    assert_eq!(
        record.versions,
        [
            VersionRecord {
                number: 1,
                created_at: 6,
                ..version("v0", "abc", 3)
            },
            VersionRecord {
                number: 2,
                ..version("v1", "abc", 3)
            }
        ]
    );
    assert_eq!(record.live(), &wisp_core::AliasTarget::one(2));
    assert!(!record.disabled);
    let (outcome, _) = store
        .deploy(
            &ns,
            &name,
            None,
            &version("v2", "abc", 3),
            b"",
            PublishOptions::default(),
        )
        .await?;
    assert_eq!(outcome.version(), 3, "the next number follows the migrated ones");
    assert_eq!((record.created_at, record.updated_at), (8, 9));
    assert_eq!(store.get_code(&ns, "abc").await?.as_deref(), Some(&b"abc"[..]));
    let lines = store.logs(&ns, &name, &LogQuery::default()).await?;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].line, "from v1");
    assert_eq!(lines[0].version, 0, "a line from before versions were recorded");

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
    for table in ["events", "queues", "messages", "schedules"] {
        assert_eq!(count(&store, table)?, 0, "migration 3 left rows in `{table}`");
    }
    for table in ["namespaces", "revisions", "api_keys", "audit"] {
        assert_eq!(count(&store, table)?, 0, "migration 4 left rows in `{table}`");
    }
    assert!(store.remove_function(&ns, &name).await?);
    assert_eq!(count(&store, "invocations")?, 0);
    assert_eq!(count(&store, "logs")?, 0);
    Ok(())
}

#[tokio::test]
async fn a_version_18_database_counts_its_rows_and_trims_by_them() -> TestResult {
    let dir = TempDir::new()?;
    let path = dir.path().join("wisp.db");
    // Five lines of `hello` and one of `other`, written before rows were counted.
    {
        let conn = database_at_version(&path, 18)?;
        for (function, n) in [
            ("hello", 0),
            ("hello", 1),
            ("other", 0),
            ("hello", 2),
            ("hello", 3),
            ("hello", 4),
        ] {
            conn.execute(
                "INSERT INTO logs (namespace, function, invocation_id, time, stream, line, version)
                 VALUES ('default', ?1, 'inv', ?2, 'stdout', ?3, 1)",
                params![function, n, format!("line {n}")],
            )?;
        }
    }
    let store = SqliteStore::open(&path)?.with_log_lines_kept(3);
    let counted = |function: &str| -> TestResult<i64> {
        let conn = store.conns.reader.lock().map_err(|e| e.to_string())?;
        Ok(conn.query_row(
            "SELECT rows FROM row_counts WHERE tbl = 'logs' AND namespace = 'default' AND function = ?1",
            params![function],
            |row| row.get(0),
        )?)
    };
    assert_eq!((counted("hello")?, counted("other")?), (5, 1));

    let (ns, name) = names()?;
    let line = LogLine {
        namespace: ns.clone(),
        function: name.clone(),
        invocation_id: "inv".into(),
        time: 5,
        stream: crate::LogStream::Stdout,
        line: "line 5".into(),
        version: 1,
        cursor: 0,
    };
    store.append_logs(&[line]).await?;
    let all = LogQuery {
        invocation_id: None,
        limit: 100,
        ..LogQuery::default()
    };
    let lines: Vec<String> = store
        .logs(&ns, &name, &all)
        .await?
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert_eq!(lines, ["line 3", "line 4", "line 5"]);
    assert_eq!(counted("hello")?, 3);
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

/// Records an older Wisp wrote (before migration 5) read back with no memory and no
/// billed duration, are not in usage, and still dedupe a retried batch.
#[tokio::test]
async fn a_version_4_database_reads_old_records_as_unbilled() -> TestResult {
    use crate::{Usage, UsageGrouping, UsageQuery};
    let dir = TempDir::new()?;
    let path = dir.path().join("wisp.db");
    {
        let conn = database_at_version(&path, 4)?;
        conn.execute_batch(
            "INSERT INTO invocations
                 (namespace, function, invocation_id, version, started_at, cold, init_us, queue_us,
                  run_us, error)
             VALUES ('default', 'hello', 'inv-old', 'v1', 1700000000000, 1, 2500, 10, 300, NULL);",
        )?;
    }
    let store = SqliteStore::open(&path)?;
    let (ns, name) = names()?;
    let old = InvocationRecord {
        memory_mb: 0,
        billed_ms: 0,
        // No version `v1` was ever stored: its number is unknown.
        version_number: 0,
        trace: None,
        ..invocation(&ns, &name, "inv-old")
    };
    assert_eq!(
        store.invocations(&ns, &name, &InvocationQuery::default()).await?,
        [old]
    );
    let query = UsageQuery {
        namespace: None,
        function: None,
        from: 0,
        to: i64::MAX,
        group_by: UsageGrouping::Version,
    };
    assert!(store.usage(&query).await?.is_empty(), "old records were counted");
    // The old record is kept, so appending it again (now billed) is a duplicate.
    store
        .append_invocations(&[invocation(&ns, &name, "inv-old")])
        .await?;
    assert_eq!(count(&store, "invocations")?, 1);
    assert!(store.usage(&query).await?.is_empty());
    Ok(())
}

/// What an older Wisp (before migration 14) stored reads back with no trace: events,
/// queue messages, topic messages and invocation records; new ones keep theirs.
#[tokio::test]
async fn a_version_13_database_reads_old_work_without_a_trace() -> TestResult {
    let dir = TempDir::new()?;
    let path = dir.path().join("wisp.db");
    {
        let conn = database_at_version(&path, 13)?;
        conn.execute_batch(
            "INSERT INTO events (id, namespace, function, payload, status, attempts, chain_depth, source,
                                 created_us, run_at, updated_at)
                 VALUES ('ev-old', 'default', 'hello', x'', 'pending', 0, 2, 'api', 1000000, 1000, 1000);
             INSERT INTO queues VALUES ('default', 'jobs', '{}', 1, 1);
             INSERT INTO messages (id, namespace, queue, body, sent_at, visible_at, receive_count,
                                   chain_depth)
                 VALUES ('msg-old', 'default', 'jobs', 'old', 1000, 1000, 0, 1);
             INSERT INTO topic_messages VALUES ('default', 'orders', 'tm-old', 'old', '{}', 1000, 0);
             INSERT INTO invocations
                 (namespace, function, invocation_id, version, started_at, cold, init_us, queue_us,
                  run_us, error, memory_mb, billed_ms, reserved, version_number)
             VALUES ('default', 'hello', 'inv-old', 'v1', 1700000000000, 1, 2500, 10, 300, NULL, 128, 1,
                     0, 1);",
        )?;
    }
    let store = SqliteStore::open(&path)?;
    let (ns, name) = names()?;
    let event = store
        .get_event(&ns, "ev-old")
        .await?
        .ok_or("the old event is gone")?;
    assert_eq!((event.chain_depth, event.trace), (2, None));
    let jobs = QueueName::new("jobs")?;
    let received = store.receive_messages(&ns, &jobs, 10, 1_000, 2_000).await?;
    let traces: Vec<_> = received
        .messages
        .iter()
        .map(|m| (m.id.as_str(), m.trace.clone()))
        .collect();
    assert_eq!(traces, [("msg-old", None)]);
    let untraced: i64 = store.conns.reader.lock().map_err(|e| e.to_string())?.query_row(
        "SELECT count(*) FROM topic_messages WHERE trace IS NULL",
        [],
        |row| row.get(0),
    )?;
    assert_eq!(untraced, 1);
    let old = InvocationRecord {
        trace: None,
        ..invocation(&ns, &name, "inv-old")
    };
    assert_eq!(
        store.invocations(&ns, &name, &InvocationQuery::default()).await?,
        [old]
    );
    // A record appended now keeps its trace beside the old one.
    let new = invocation(&ns, &name, "inv-new");
    store.append_invocations(std::slice::from_ref(&new)).await?;
    let records = store.invocations(&ns, &name, &InvocationQuery::default()).await?;
    assert_eq!(records.last(), Some(&new));
    Ok(())
}

#[test]
fn usage_queries_use_their_indexes() -> TestResult {
    use crate::UsageGrouping;
    for namespace in [false, true] {
        for function in [false, true] {
            for group_by in [
                UsageGrouping::Namespace,
                UsageGrouping::Function,
                UsageGrouping::Version,
                UsageGrouping::Day,
                UsageGrouping::Hour,
            ] {
                let sql = usage::query_sql(namespace, function, group_by);
                let plan = plan(&sql)?;
                let what = format!("usage (namespace {namespace}, function {function}, {group_by:?})");
                let index = if namespace {
                    "USING PRIMARY KEY"
                } else {
                    "USING INDEX usage_by_hour"
                };
                assert!(
                    plan.contains(index),
                    "the {what} query does not search {index}:\n{plan}"
                );
                assert!(
                    !plan.contains("SCAN usage"),
                    "the {what} query scans usage:\n{plan}"
                );
            }
        }
    }
    // A retried batch finds its records by index, not by reading the function's.
    let plan =
        plan("SELECT 1 FROM invocations WHERE namespace = ?1 AND function = ?2 AND invocation_id = ?3")?;
    assert!(
        plan.contains("USING COVERING INDEX invocations_by_invocation"),
        "{plan}"
    );
    Ok(())
}

// ---- durable work ----

/// The plan SQLite picks for `sql` on a fresh, migrated database (no statistics, as
/// on a new install): one line per step.
fn plan(sql: &str) -> TestResult<String> {
    let mut conn = Connection::open_in_memory()?;
    schema::MIGRATIONS.to_latest(&mut conn)?;
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    let nulls = std::iter::repeat_n(rusqlite::types::Null, stmt.parameter_count());
    let lines = stmt
        .query_map(rusqlite::params_from_iter(nulls), |row| row.get::<_, String>(3))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(lines.join("\n"))
}

#[test]
fn work_queries_use_their_indexes() -> TestResult {
    for (what, sql, index) in [
        ("claim", events::CLAIM, "events_due"),
        ("next due", events::NEXT_DUE, "events_due"),
        ("key holder", events::KEY_HOLDER, "events_by_idempotency_key"),
        ("release", events::RELEASE, "events_leased"),
        ("sweep", events::SWEEP, "events_succeeded"),
        ("receive", queues::VISIBLE, "messages_by_visibility"),
        ("expire", queues::EXPIRE, "messages_by_age"),
        ("trace", records::TRACE, "invocations_by_trace"),
    ] {
        let plan = plan(sql)?;
        assert!(
            plan.contains(&format!("USING INDEX {index} "))
                || plan.ends_with(&format!("USING INDEX {index}")),
            "the {what} query does not use {index}:\n{plan}"
        );
        assert!(!plan.contains("SCAN"), "the {what} query scans a table:\n{plan}");
        // The claim and the receive read their rows in the index's order and stop at
        // the limit, instead of sorting every due event or visible message first.
        assert!(!plan.contains("TEMP B-TREE"), "the {what} query sorts:\n{plan}");
    }
    Ok(())
}

#[test]
fn browsing_events_reads_an_index_in_its_order() -> TestResult {
    for (what, sql) in [("first", events::BROWSE_FIRST), ("after", events::BROWSE_AFTER)] {
        let plan = plan(sql)?;
        assert!(
            plan.contains("USING INDEX events_by_function"),
            "the {what} browse query does not use events_by_function:\n{plan}"
        );
        assert!(
            !plan.contains("SCAN"),
            "the {what} browse query scans a table:\n{plan}"
        );
        // Only ties of one microsecond are sorted, not the function's events.
        assert!(
            !plan.contains("TEMP B-TREE FOR ORDER BY"),
            "the {what} browse query sorts:\n{plan}"
        );
    }
    Ok(())
}

#[test]
fn identity_reads_use_their_indexes() -> TestResult {
    let mut cases = vec![
        (
            "the keys".to_owned(),
            api_keys::list_sql(false),
            "api_keys_by_age",
        ),
        (
            "a namespace's keys".to_owned(),
            api_keys::list_sql(true),
            "api_keys_by_namespace",
        ),
    ];
    for namespace in [false, true] {
        for (before, before_id) in [(false, false), (true, false), (true, true)] {
            let what = format!("audit (namespace {namespace}, before {before}, before_id {before_id})");
            let index = if namespace {
                "audit_by_namespace"
            } else {
                "audit_by_time"
            };
            cases.push((what, audit::query_sql(namespace, before, before_id), index));
        }
    }
    for (what, sql, index) in cases {
        let plan = plan(&sql)?;
        assert!(
            plan.contains(&format!("USING INDEX {index}")),
            "the {what} query does not use {index}:\n{plan}"
        );
        // Listed in the index's order, stopping at the limit, rather than sorted whole.
        assert!(!plan.contains("TEMP B-TREE"), "the {what} query sorts:\n{plan}");
    }
    Ok(())
}

fn new_event(id: &str, function: &str, payload: Vec<u8>) -> TestResult<NewEvent> {
    Ok(NewEvent {
        namespace: Namespace::new("default")?,
        function: FunctionName::new(function)?,
        id: id.to_owned(),
        payload,
        idempotency_key: None,
        chain_depth: 0,
        source: "api".to_owned(),
        qualifier: None,
        trace: None,
        parent: None,
        created_us: 1_000_000,
        run_at: 1_000,
        lease: None,
    })
}

/// A trigger that refuses events of the function `audit`, as a full disk or a bug
/// would refuse a write in the middle of a transaction.
const REFUSE_AUDIT_EVENTS: &str = "
    CREATE TRIGGER refuse_audit BEFORE INSERT ON events WHEN NEW.function = 'audit'
    BEGIN SELECT RAISE(ABORT, 'audit events are refused'); END;";

#[tokio::test]
async fn an_enqueue_batch_is_all_or_nothing() -> TestResult {
    let (_dir, store) = open()?;
    tamper(&store, REFUSE_AUDIT_EVENTS)?;
    let batch = [
        new_event("first", "hello", vec![1])?,
        new_event("refused", "audit", vec![2])?,
    ];
    let err = store
        .enqueue_events(&batch, 0)
        .await
        .err()
        .ok_or("a refused event was accepted")?;
    let message = err.to_string();
    assert!(
        message.contains("recording async events (a batch of 2)"),
        "{message}"
    );
    assert!(message.contains("audit events are refused"), "{message}");
    assert_eq!(count(&store, "events")?, 0, "half a batch was recorded");
    Ok(())
}

#[tokio::test]
async fn a_failing_follow_up_undoes_the_whole_batch_of_outcomes() -> TestResult {
    let (_dir, store) = open()?;
    let (ns, _) = names()?;
    store
        .enqueue_events(
            &[new_event("a", "hello", vec![])?, new_event("b", "hello", vec![])?],
            0,
        )
        .await?;
    let claimed = store.claim_events(1_000, 1_000_000, 9_000, 10).await?;
    assert_eq!(claimed.len(), 2);
    tamper(&store, REFUSE_AUDIT_EVENTS)?;
    let outcomes = [
        EventOutcome {
            namespace: ns.clone(),
            id: "a".to_owned(),
            attempts: 1,
            resolution: Resolution::Failed {
                error: "function_error: boom".to_owned(),
                failure: Failure::RetriesExhausted,
                result: None,
            },
            follow_ups: vec![],
        },
        EventOutcome {
            namespace: ns.clone(),
            id: "b".to_owned(),
            attempts: 1,
            resolution: Resolution::Succeeded { result: vec![] },
            follow_ups: vec![FollowUp::Event(new_event("b-audit", "audit", vec![])?)],
        },
    ];
    let err = store
        .complete_events(&outcomes, 2_000)
        .await
        .err()
        .ok_or("a refused follow-up was accepted")?;
    assert!(
        err.to_string()
            .contains("recording async outcomes (a batch of 2)"),
        "{err}"
    );
    for id in ["a", "b"] {
        let event = store.get_event(&ns, id).await?.ok_or("an event vanished")?;
        assert_eq!(
            (event.status, event.leased_until, event.attempts),
            (EventStatus::Pending, Some(9_000), 0),
            "an outcome was applied without its batch"
        );
    }
    // Written again (as the engine's completer does), the batch goes through whole.
    tamper(&store, "DROP TRIGGER refuse_audit")?;
    store.complete_events(&outcomes, 2_000).await?;
    assert_eq!(count(&store, "events")?, 3);
    Ok(())
}

#[tokio::test]
async fn a_schedule_does_not_advance_without_its_event() -> TestResult {
    let (_dir, store) = open()?;
    let ns = Namespace::new("default")?;
    let audit = FunctionName::new("audit")?;
    tamper(&store, REFUSE_AUDIT_EVENTS)?;
    let fired = new_event("slot", "audit", vec![])?;
    let err = store
        .advance_schedule(&ns, &audit, "* * * * *", 60_000, Some(&fired))
        .await
        .err()
        .ok_or("a refused event was accepted")?;
    assert!(
        err.to_string().contains("advancing schedule `* * * * *`"),
        "{err}"
    );
    assert_eq!(store.schedule_last_slot(&ns, &audit, "* * * * *").await?, None);
    assert_eq!(count(&store, "schedules")?, 0);
    Ok(())
}

#[tokio::test]
async fn a_queue_config_that_does_not_parse_is_corrupt() -> TestResult {
    let (_dir, store) = open()?;
    let ns = Namespace::new("default")?;
    let jobs = QueueName::new("jobs")?;
    store.put_queue(&ns, &jobs, &QueueConfig::default(), 1).await?;
    tamper(
        &store,
        r#"UPDATE queues SET config = '{"visibility_timeout": 3}'"#,
    )?;
    for err in [
        store.get_queue(&ns, &jobs).await.err(),
        store.receive_messages(&ns, &jobs, 1, 1, 1).await.err(),
    ] {
        let err = err.ok_or("a corrupt config was read")?;
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains("the config of queue `default/jobs` does not parse"),
            "{err}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_failure_that_does_not_parse_is_corrupt() -> TestResult {
    let (_dir, store) = open()?;
    let (ns, name) = names()?;
    store
        .enqueue_events(&[new_event("dead", "hello", vec![])?], 0)
        .await?;
    store.claim_events(1_000, 1_000_000, 9_000, 10).await?;
    let outcome = EventOutcome {
        namespace: ns.clone(),
        id: "dead".to_owned(),
        attempts: 1,
        resolution: Resolution::Failed {
            error: "function_error: boom".to_owned(),
            failure: Failure::LoopDetected,
            result: None,
        },
        follow_ups: vec![],
    };
    store.complete_events(&[outcome], 2_000).await?;
    // Stored as its stable string, in the column that held strings before the type.
    let stored: String = {
        let conn = store.conns.reader.lock().map_err(|e| e.to_string())?;
        conn.query_row("SELECT failure FROM events", [], |row| row.get(0))?
    };
    assert_eq!(stored, "loop_detected");

    tamper(&store, "UPDATE events SET failure = 'gremlins'")?;
    let err = store
        .get_event(&ns, "dead")
        .await
        .err()
        .ok_or("read an unknown failure")?;
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("event `dead` of `default/hello` has the unknown failure `gremlins`"),
        "{err}"
    );
    let listed = store.list_events(&ns, &name, EventStatus::Failed, 10).await;
    assert!(matches!(listed, Err(StoreError::Corrupt(_))), "{listed:?}");
    Ok(())
}

/// `remove_function` is one call per concern, the registry last: a failure midway
/// leaves the function registered, and calling it again finishes the job.
#[tokio::test]
async fn a_remove_that_fails_midway_can_be_retried() -> TestResult {
    let (_dir, store) = open()?;
    let (ns, name) = names()?;
    store
        .deploy(
            &ns,
            &name,
            None,
            &version("v1", "abc", 3),
            b"abc",
            PublishOptions::default(),
        )
        .await?;
    store
        .enqueue_events(&[new_event("e", "hello", vec![])?], 0)
        .await?;
    store
        .advance_schedule(&ns, &name, "* * * * *", 60_000, None)
        .await?;
    store
        .append_invocations(&[invocation(&ns, &name, "inv-1")])
        .await?;
    tamper(
        &store,
        "CREATE TRIGGER keep_invocations BEFORE DELETE ON invocations
         BEGIN SELECT RAISE(ABORT, 'invocations are kept'); END;",
    )?;
    let err = store
        .remove_function(&ns, &name)
        .await
        .err()
        .ok_or("removed despite the trigger")?;
    assert!(
        err.to_string()
            .contains("forgetting the logs and invocation records of `default/hello`: invocations are kept"),
        "{err}"
    );
    // The concerns before the failing one are done; the registry still has it.
    assert_eq!(count(&store, "schedules")?, 0);
    assert_eq!(count(&store, "events")?, 0);
    assert_eq!(count(&store, "invocations")?, 1);
    assert!(store.get_function(&ns, &name).await?.is_some());

    tamper(&store, "DROP TRIGGER keep_invocations")?;
    assert!(store.remove_function(&ns, &name).await?);
    assert_eq!(count(&store, "invocations")?, 0);
    assert_eq!(store.get_function(&ns, &name).await?, None);
    assert!(!store.has_code(&ns, "abc").await?);
    assert!(!store.remove_function(&ns, &name).await?);
    Ok(())
}

/// Write throughput through the trait, as the engine's writer drives it: each
/// transaction records a batch of new events, claimed as they are written (as fresh
/// events are when there is room to run them), and the outcomes of the previous
/// batch, on a two-worker runtime. Not a check (timing depends on the machine); run
/// it with
/// `cargo test --release -p wisp-store --lib write_throughput -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn write_throughput() -> TestResult {
    const EVENTS: usize = 64 * 1_000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        for keyed in [false, true] {
            for batch in [1, 8, 64, 256] {
                let (_dir, store) = open()?;
                let events = (0..EVENTS)
                    .map(|n| {
                        let mut event =
                            new_event(&uuid::Uuid::now_v7().to_string(), "hello", vec![b'x'; 100])?;
                        event.created_us += i64::try_from(n)?;
                        event.idempotency_key = keyed.then(|| format!("key-{n}"));
                        event.lease = Some(crate::Lease {
                            until: 10_000_000,
                            started_us: event.created_us,
                        });
                        Ok(event)
                    })
                    .collect::<TestResult<Vec<_>>>()?;
                let outcome = |event: &NewEvent| EventOutcome {
                    namespace: event.namespace.clone(),
                    id: event.id.clone(),
                    attempts: 1,
                    resolution: Resolution::Succeeded {
                        result: b"{\"ok\":true}".to_vec(),
                    },
                    follow_ups: Vec::new(),
                };
                let (start, cpu_start) = (std::time::Instant::now(), cpu_seconds());
                let mut previous: &[NewEvent] = &[];
                for chunk in events.chunks(batch) {
                    let outcomes: Vec<_> = previous.iter().map(outcome).collect();
                    store.write_events(chunk, 0, &outcomes, 2_000).await?;
                    previous = chunk;
                }
                let elapsed = start.elapsed().as_secs_f64();
                let cpu = cpu_seconds().zip(cpu_start).map(|(end, start)| end - start);
                println!(
                    "batches of {batch:>3}{}: {:>6.0} events/s of wall time, {:>6.0} per CPU second, \
                     {:>4.0} µs per transaction ({EVENTS} events in {elapsed:.2}s, {:.2} CPU seconds)",
                    if keyed { ", every event keyed" } else { "" },
                    EVENTS as f64 / elapsed,
                    cpu.map_or(f64::NAN, |cpu| EVENTS as f64 / cpu),
                    elapsed * 1e6 / (EVENTS / batch) as f64,
                    cpu.unwrap_or(f64::NAN),
                );
            }
        }
        Ok(())
    })
}

/// CPU time (user and system) this process has used, from `/proc/self/stat` (Linux),
/// in seconds at the usual 100 ticks a second. Wall time alone misleads on a machine
/// that is busy with other work.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |n: usize| fields.get(n)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}
