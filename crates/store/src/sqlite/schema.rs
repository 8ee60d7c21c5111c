//! The SQLite schema and connection setup: the migrations (applied with
//! `rusqlite_migration` when the store opens) and the pragmas every connection gets.
//!
//! Every table carries a `namespace` column from migration 1 on, so tenancy never
//! needs a migration that rewrites a table. Migrations are append-only: never edit
//! one that has shipped; add the next one to [`MIGRATION_LIST`].

use crate::{Result, StoreError};
use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};
use std::path::Path;
use std::time::Duration;

/// How long a statement waits for another connection's lock before it fails with
/// `SQLITE_BUSY`. The store has one writer, so waits are short; this only has to
/// cover a checkpoint or a second process (a backup, the CLI) touching the file.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migration 1: functions, immutable versions, code blobs and logs.
const SCHEMA_1: &str = "
CREATE TABLE code (
    namespace  TEXT    NOT NULL,
    hash       TEXT    NOT NULL,
    data       BLOB    NOT NULL,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, hash)
) STRICT;

CREATE TABLE versions (
    namespace  TEXT    NOT NULL,
    function   TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    code_hash  TEXT    NOT NULL,
    config     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, function, id),
    FOREIGN KEY (namespace, code_hash) REFERENCES code (namespace, hash)
) STRICT;

-- Deleting a function asks, per code blob, whether any version still uses it.
CREATE INDEX versions_by_code ON versions (namespace, code_hash);

CREATE TABLE functions (
    namespace  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    app        TEXT,
    version    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, name),
    FOREIGN KEY (namespace, name, version) REFERENCES versions (namespace, function, id)
) STRICT;

-- No foreign key to `functions`: a log batch may arrive after its function was
-- deleted, and one late line must not fail the whole batch.
CREATE TABLE logs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace     TEXT    NOT NULL,
    function      TEXT    NOT NULL,
    invocation_id TEXT    NOT NULL,
    time          INTEGER NOT NULL,
    stream        TEXT    NOT NULL CHECK (stream IN ('stdout', 'stderr')),
    line          TEXT    NOT NULL
) STRICT;

CREATE INDEX logs_by_function ON logs (namespace, function, id);
CREATE INDEX logs_by_invocation ON logs (invocation_id);
";

/// Migration 2: one record per invocation.
///
/// `invocation_id` is the engine's id; the row `id` gives the order records were
/// appended in, as for `logs`. No foreign key to `functions`, for the same reason as
/// `logs`. Durations are microseconds and never negative; the store clamps the
/// (absurd) values past `i64::MAX` rather than fail a batch.
const SCHEMA_2: &str = "
CREATE TABLE invocations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace     TEXT    NOT NULL,
    function      TEXT    NOT NULL,
    invocation_id TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    started_at    INTEGER NOT NULL,
    cold          INTEGER NOT NULL CHECK (cold IN (0, 1)),
    init_us       INTEGER CHECK (init_us >= 0),
    queue_us      INTEGER NOT NULL CHECK (queue_us >= 0),
    run_us        INTEGER NOT NULL CHECK (run_us >= 0),
    error         TEXT
) STRICT;

CREATE INDEX invocations_by_function ON invocations (namespace, function, id);
";

/// Migration 3: durable work. Async invocation events (pending, running under a
/// lease, succeeded or dead letters), platform queues and their messages, and the last
/// slot each cron schedule reached.
///
/// No foreign keys to `functions` or `queues`, as for `logs`: an event or a message
/// written while its function or queue goes away must not fail the batch it is in;
/// `remove_function` and `delete_queue` remove what belongs to them.
///
/// `events.id` (the event id, UUID v7 text) is unique across namespaces; lookups still
/// name the namespace. Times are Unix milliseconds except the `_us` columns
/// (microseconds, which order events created in the same millisecond).
///
/// `messages.seq` is the rowid: a new row gets one more than the largest present, so
/// ordering by it is sending order among the messages a queue holds (what FIFO-ish
/// delivery needs); no `AUTOINCREMENT`, since no one remembers a deleted `seq`.
const SCHEMA_3: &str = "
CREATE TABLE events (
    id              TEXT    NOT NULL PRIMARY KEY,
    namespace       TEXT    NOT NULL,
    function        TEXT    NOT NULL,
    payload         BLOB    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    leased_until    INTEGER,
    attempts        INTEGER NOT NULL CHECK (attempts >= 0),
    chain_depth     INTEGER NOT NULL CHECK (chain_depth >= 0),
    source          TEXT    NOT NULL,
    idempotency_key TEXT,
    created_us      INTEGER NOT NULL,
    first_run_us    INTEGER,
    run_at          INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_error      TEXT,
    failure         TEXT,
    result          BLOB
) STRICT;

-- Claiming: what is due, oldest first. Partial, so running, succeeded and dead events
-- (the bulk of the table) cost the claim nothing.
CREATE INDEX events_due ON events (run_at, created_us)
    WHERE status = 'pending' AND leased_until IS NULL;
-- Listing a function's events by status, newest first; counting them.
CREATE INDEX events_by_function ON events (namespace, function, status, created_us);
-- One live event per idempotency key and function.
CREATE UNIQUE INDEX events_by_idempotency_key ON events (namespace, function, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Sweeping old successes.
CREATE INDEX events_succeeded ON events (created_us) WHERE status = 'succeeded';
-- Releasing leases at start-up without reading the whole table.
CREATE INDEX events_leased ON events (leased_until) WHERE leased_until IS NOT NULL;

CREATE TABLE queues (
    namespace  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    config     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
) STRICT;

CREATE TABLE messages (
    seq               INTEGER PRIMARY KEY,
    id                TEXT    NOT NULL,
    namespace         TEXT    NOT NULL,
    queue             TEXT    NOT NULL,
    body              TEXT    NOT NULL,
    sent_at           INTEGER NOT NULL,
    visible_at        INTEGER NOT NULL,
    receive_count     INTEGER NOT NULL CHECK (receive_count >= 0),
    first_received_at INTEGER,
    receipt_handle    TEXT,
    chain_depth       INTEGER NOT NULL CHECK (chain_depth >= 0),
    source_queue      TEXT
) STRICT;

-- Receiving (visible ones, in (visible_at, seq) order: the index's own order, as a
-- rowid table's index ends with the rowid), stats, the next visible time.
CREATE INDEX messages_by_visibility ON messages (namespace, queue, visible_at);
-- Dropping messages past retention.
CREATE INDEX messages_by_age ON messages (namespace, queue, sent_at);
-- Deleting and changing visibility by receipt handle.
CREATE UNIQUE INDEX messages_by_receipt ON messages (receipt_handle)
    WHERE receipt_handle IS NOT NULL;

CREATE TABLE schedules (
    namespace    TEXT    NOT NULL,
    function     TEXT    NOT NULL,
    schedule_key TEXT    NOT NULL,
    last_slot    INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (namespace, function, schedule_key)
) STRICT;
";

/// Migration 4: identity and tenancy. Namespaces and their settings, API keys, and the
/// audit log.
///
/// No foreign keys between these or to the other tables, as elsewhere: a key or an
/// audit entry may name a namespace without a record (`default` before namespaces were
/// made, a namespace since removed), and audit entries outlive what they describe.
///
/// `revisions` holds the last revision handed out per table (only `namespaces` so far):
/// a namespace's revision comes from it, so a namespace made again under a name never
/// gets back a revision it had, and a compare-and-set with a revision read before the
/// delete fails, as with a JetStream KV bucket's revisions.
///
/// `api_keys.role` has no CHECK, so a role added later needs no migration; a row whose
/// role does not parse is corrupt. `audit.seq` is the order of appending, which the cap
/// drops the first of (`AUTOINCREMENT`, as for `logs`); reading orders by `at`, then `id`.
const SCHEMA_4: &str = "
CREATE TABLE namespaces (
    name       TEXT    NOT NULL PRIMARY KEY,
    settings   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    revision   INTEGER NOT NULL CHECK (revision > 0)
) STRICT;

CREATE TABLE revisions (
    name TEXT    NOT NULL PRIMARY KEY,
    last INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id            TEXT    NOT NULL PRIMARY KEY,
    namespace     TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    name          TEXT,
    secret_hash   BLOB    NOT NULL,
    sealed_secret BLOB    NOT NULL,
    created_at    INTEGER NOT NULL,
    created_by    TEXT,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    last_used_at  INTEGER
) STRICT;

-- Listing keys, all or of one namespace, in (created_at, id) order; forgetting a
-- namespace's keys.
CREATE INDEX api_keys_by_age ON api_keys (created_at, id);
CREATE INDEX api_keys_by_namespace ON api_keys (namespace, created_at, id);

CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT    NOT NULL UNIQUE,
    at        INTEGER NOT NULL,
    namespace TEXT    NOT NULL,
    key_id    TEXT,
    action    TEXT    NOT NULL,
    target    TEXT    NOT NULL,
    source    TEXT,
    detail    TEXT
) STRICT;

-- Reading newest first, all or of one namespace.
CREATE INDEX audit_by_time ON audit (at, id);
CREATE INDEX audit_by_namespace ON audit (namespace, at, id);
";

/// Migration 5: metering. Each invocation record's memory and billed duration (`0` in
/// the rows written before), and the `usage` rollup.
///
/// `invocations_by_invocation` finds a record appended again (a retried batch), which
/// is skipped; not `UNIQUE`, since older Wisps recorded a batch twice when it was
/// appended twice, and a migration must not fail on a file they wrote.
///
/// `usage` has one row per namespace, function, version and hour (the start of the UTC
/// hour, Unix milliseconds), added to as records are appended and never deleted: what
/// was used stays billable after its records are trimmed or forgotten. It starts empty:
/// the records kept before this migration are not counted (they carry no billed
/// duration, and the trimmed ones are gone). `usage_by_hour` serves queries that name no
/// namespace.
const SCHEMA_5: &str = "
ALTER TABLE invocations ADD COLUMN memory_mb INTEGER NOT NULL DEFAULT 0 CHECK (memory_mb >= 0);
ALTER TABLE invocations ADD COLUMN billed_ms INTEGER NOT NULL DEFAULT 0 CHECK (billed_ms >= 0);

CREATE INDEX invocations_by_invocation ON invocations (namespace, function, invocation_id);

CREATE TABLE usage (
    namespace TEXT    NOT NULL,
    function  TEXT    NOT NULL,
    version   TEXT    NOT NULL,
    hour      INTEGER NOT NULL,
    requests  INTEGER NOT NULL CHECK (requests >= 0),
    errors    INTEGER NOT NULL CHECK (errors >= 0),
    billed_ms INTEGER NOT NULL CHECK (billed_ms >= 0),
    mb_ms     INTEGER NOT NULL CHECK (mb_ms >= 0),
    PRIMARY KEY (namespace, function, version, hour)
) STRICT, WITHOUT ROWID;

CREATE INDEX usage_by_hour ON usage (hour);
";

/// Version 6: the time a quota held an event back, which its age does not count.
const SCHEMA_6: &str = "
ALTER TABLE events ADD COLUMN held_ms INTEGER NOT NULL DEFAULT 0 CHECK (held_ms >= 0);
";

/// Version 7: reserved capacity. An invocation record says whether it ran on reserved
/// capacity; usage counts the MB-ms of those runs, and the capacity held.
const SCHEMA_7: &str = "
ALTER TABLE invocations ADD COLUMN reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved IN (0, 1));
ALTER TABLE usage ADD COLUMN reserved_mb_ms INTEGER NOT NULL DEFAULT 0 CHECK (reserved_mb_ms >= 0);
ALTER TABLE usage ADD COLUMN capacity_mb_ms INTEGER NOT NULL DEFAULT 0 CHECK (capacity_mb_ms >= 0);
";

/// Every migration, oldest first.
/// Version 8: numbered versions and aliases. A function's versions are numbered 1, 2, …
/// (their content id stays, and may repeat); aliases point at one version or two with a
/// weight, `live` being what the function served; a function may be disabled; its
/// revision moves on every change (compare-and-set). Invocation records say which
/// number ran. `functions` and `versions` are rebuilt (SQLite cannot change a primary
/// key): `functions` is copied aside, both dropped, and both made again.
const SCHEMA_8: &str = "
CREATE TABLE functions_7 AS SELECT * FROM functions;
DROP TABLE functions;

CREATE TABLE versions_8 (
    namespace  TEXT    NOT NULL,
    function   TEXT    NOT NULL,
    number     INTEGER NOT NULL CHECK (number > 0),
    id         TEXT    NOT NULL,
    code_hash  TEXT    NOT NULL,
    config     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, function, number),
    FOREIGN KEY (namespace, code_hash) REFERENCES code (namespace, hash)
) STRICT;
INSERT INTO versions_8 (namespace, function, number, id, code_hash, config, created_at)
    SELECT namespace, function,
           ROW_NUMBER() OVER (PARTITION BY namespace, function ORDER BY created_at, id),
           id, code_hash, config, created_at
    FROM versions;
DROP TABLE versions;
ALTER TABLE versions_8 RENAME TO versions;
CREATE INDEX versions_by_code ON versions (namespace, code_hash);

CREATE TABLE functions (
    namespace    TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    app          TEXT,
    disabled     INTEGER NOT NULL CHECK (disabled IN (0, 1)),
    -- The number the next version gets: numbers are never reused.
    next_version INTEGER NOT NULL CHECK (next_version > 0),
    revision     INTEGER NOT NULL CHECK (revision > 0),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
) STRICT;
INSERT INTO functions (namespace, name, app, disabled, next_version, revision, created_at, updated_at)
    SELECT f.namespace, f.name, f.app, 0,
           1 + (SELECT COALESCE(MAX(number), 0) FROM versions v
                WHERE v.namespace = f.namespace AND v.function = f.name),
           1, f.created_at, f.updated_at
    FROM functions_7 f;

CREATE TABLE aliases (
    namespace          TEXT    NOT NULL,
    function           TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    version            INTEGER NOT NULL,
    additional_version INTEGER,
    -- Millionths of the traffic.
    additional_weight  INTEGER CHECK (additional_weight BETWEEN 0 AND 1000000),
    PRIMARY KEY (namespace, function, name),
    CHECK ((additional_version IS NULL) = (additional_weight IS NULL)),
    FOREIGN KEY (namespace, function) REFERENCES functions (namespace, name),
    FOREIGN KEY (namespace, function, version) REFERENCES versions (namespace, function, number),
    FOREIGN KEY (namespace, function, additional_version) REFERENCES versions (namespace, function, number)
) STRICT;
INSERT INTO aliases (namespace, function, name, version)
    SELECT f.namespace, f.name, 'live', MAX(v.number)
    FROM functions_7 f
    JOIN versions v ON v.namespace = f.namespace AND v.function = f.name AND v.id = f.version
    GROUP BY f.namespace, f.name;
DROP TABLE functions_7;

ALTER TABLE invocations ADD COLUMN version_number INTEGER NOT NULL DEFAULT 0 CHECK (version_number >= 0);
UPDATE invocations SET version_number = COALESCE(
    (SELECT MAX(v.number) FROM versions v
     WHERE v.namespace = invocations.namespace AND v.function = invocations.function
       AND v.id = invocations.version), 0);
";

/// Version 9: an async event may name the version or alias it runs.
const SCHEMA_9: &str = "
ALTER TABLE events ADD COLUMN qualifier TEXT;
";

/// Object storage: buckets with their counts, object metadata (keys as BLOBs, so they
/// order as bytes), multipart uploads and their parts.
const SCHEMA_10: &str = "
CREATE TABLE buckets (
    namespace     TEXT NOT NULL,
    name          TEXT NOT NULL,
    created_ms    INTEGER NOT NULL,
    quota_bytes   INTEGER,
    objects       INTEGER NOT NULL DEFAULT 0,
    bytes         INTEGER NOT NULL DEFAULT 0,
    notifications TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (namespace, name)
) WITHOUT ROWID;
CREATE TABLE objects (
    namespace    TEXT NOT NULL,
    bucket       TEXT NOT NULL,
    key          BLOB NOT NULL,
    blob         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    etag         TEXT NOT NULL,
    content_type TEXT,
    metadata     TEXT NOT NULL,
    modified_ms  INTEGER NOT NULL,
    headers      TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (namespace, bucket, key)
) WITHOUT ROWID;
CREATE TABLE uploads (
    upload_id    TEXT PRIMARY KEY,
    namespace    TEXT NOT NULL,
    bucket       TEXT NOT NULL,
    key          BLOB NOT NULL,
    created_ms   INTEGER NOT NULL,
    content_type TEXT,
    metadata     TEXT NOT NULL,
    headers      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX uploads_by_key ON uploads (namespace, bucket, key, created_ms);
CREATE TABLE parts (
    upload_id   TEXT NOT NULL,
    number      INTEGER NOT NULL,
    blob        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    etag        TEXT NOT NULL,
    modified_ms INTEGER NOT NULL,
    PRIMARY KEY (upload_id, number)
) WITHOUT ROWID;
";

/// Key-value stores, each with the last version it gave (every write takes the next),
/// and their entries (keys as BLOBs, so they order as bytes), indexed by expiry for the
/// sweep.
const SCHEMA_11: &str = "
CREATE TABLE kv_stores (
    namespace    TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    created_ms   INTEGER NOT NULL,
    last_version INTEGER NOT NULL CHECK (last_version >= 0),
    PRIMARY KEY (namespace, name)
) STRICT, WITHOUT ROWID;
CREATE TABLE kv_entries (
    namespace  TEXT    NOT NULL,
    store      TEXT    NOT NULL,
    key        BLOB    NOT NULL,
    value      BLOB    NOT NULL,
    version    INTEGER NOT NULL CHECK (version > 0),
    expires_ms INTEGER,
    PRIMARY KEY (namespace, store, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX kv_entries_by_expiry ON kv_entries (expires_ms) WHERE expires_ms IS NOT NULL;
";

/// Secrets: each namespace's, by name, the value sealed by the engine (never in the
/// clear), with the revision of its last put (from `revisions`, row `secrets`) and its
/// times.
const SCHEMA_12: &str = "
CREATE TABLE secrets (
    namespace  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    sealed     BLOB    NOT NULL,
    revision   INTEGER NOT NULL CHECK (revision > 0),
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
) STRICT, WITHOUT ROWID;
";

/// Topics: each namespace's, by name; their subscriptions (by a store-given id, one per
/// topic and endpoint, the endpoint as JSON); the messages published to them, kept while
/// a delivery needs them; and one delivery per message and subscription, pending (due at
/// `due_ms`, which a claim moves to the end of its lease) or dead (`dead_ms` set).
const SCHEMA_13: &str = "
CREATE TABLE topics (
    namespace  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
) STRICT, WITHOUT ROWID;
CREATE TABLE topic_subscriptions (
    id            TEXT    NOT NULL PRIMARY KEY,
    namespace     TEXT    NOT NULL,
    topic         TEXT    NOT NULL,
    endpoint      TEXT    NOT NULL,
    filter_policy TEXT,
    filter_scope  TEXT,
    raw_delivery  INTEGER NOT NULL,
    created_ms    INTEGER NOT NULL,
    UNIQUE (namespace, topic, endpoint)
) STRICT;
CREATE TABLE topic_messages (
    namespace    TEXT    NOT NULL,
    topic        TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    attributes   TEXT    NOT NULL,
    published_ms INTEGER NOT NULL,
    chain_depth  INTEGER NOT NULL,
    PRIMARY KEY (namespace, topic, id)
) STRICT, WITHOUT ROWID;
CREATE TABLE topic_deliveries (
    id           TEXT    NOT NULL PRIMARY KEY,
    subscription TEXT    NOT NULL,
    namespace    TEXT    NOT NULL,
    topic        TEXT    NOT NULL,
    message      TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    due_ms       INTEGER NOT NULL,
    dead_ms      INTEGER,
    dead_reason  TEXT,
    UNIQUE (subscription, message)
) STRICT;
CREATE INDEX topic_deliveries_due ON topic_deliveries (due_ms, id) WHERE dead_ms IS NULL;
CREATE INDEX topic_deliveries_dead ON topic_deliveries (subscription, dead_ms, id)
    WHERE dead_ms IS NOT NULL;
CREATE INDEX topic_deliveries_by_message ON topic_deliveries (namespace, topic, message);
";

/// Version 14: the trace root (X-Ray's `1-<8 hex>-<24 hex>`) an event, a queue or topic
/// message, or an invocation is part of; `NULL` for what was written before, or started
/// no trace of its own (an event or message: its invocation starts one).
const SCHEMA_14: &str = "
ALTER TABLE events ADD COLUMN trace TEXT;
ALTER TABLE messages ADD COLUMN trace TEXT;
ALTER TABLE topic_messages ADD COLUMN trace TEXT;
ALTER TABLE invocations ADD COLUMN trace TEXT;
";

/// Version 15: the invocation that caused an event, a queue or topic message, or an
/// invocation (its parent in a trace's tree); `NULL` for what was written before, or
/// what no invocation caused. Invocations by trace, oldest first, for
/// `GET /v1/traces/{root}`.
const SCHEMA_15: &str = "
ALTER TABLE events ADD COLUMN parent TEXT;
ALTER TABLE messages ADD COLUMN parent TEXT;
ALTER TABLE topic_messages ADD COLUMN parent TEXT;
ALTER TABLE invocations ADD COLUMN parent TEXT;
CREATE INDEX invocations_by_trace ON invocations (namespace, trace, started_at) WHERE trace IS NOT NULL;
";

/// Version 16: the number of the version that wrote a log line (`0`: a note Wisp
/// wrote outside a run, or a line written before), for `GET …/logs?version=`.
const SCHEMA_16: &str = "
ALTER TABLE logs ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
";

/// Version 17: alarms, each namespace's, by name: the whole record (rule, state,
/// latest transitions, notification mark) as JSON without its revision, changed whole,
/// and the revision of its last write (from `revisions`, row `alarms`).
const SCHEMA_17: &str = "
CREATE TABLE alarms (
    namespace TEXT    NOT NULL,
    name      TEXT    NOT NULL,
    record    TEXT    NOT NULL,
    revision  INTEGER NOT NULL CHECK (revision > 0),
    PRIMARY KEY (namespace, name)
) STRICT, WITHOUT ROWID;
";

/// Version 18: the nodes serving the store (one, on SQLite: see `Nodes`), each one's
/// record of its last heartbeat as JSON; and `store_keys`, the store's own settings by
/// name (`key_check`: the master-key check every node must match).
const SCHEMA_18: &str = "
CREATE TABLE nodes (
    name    TEXT    NOT NULL PRIMARY KEY,
    record  TEXT    NOT NULL,
    seen_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE store_keys (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
";

/// Version 19: how many rows each function has in `logs` and in `invocations`, written
/// in the transaction of every insert and delete of those rows, so that trimming a
/// function to its newest N deletes the rows beyond N from the oldest end without
/// walking the N it keeps. Counted once here from the rows the file holds.
const SCHEMA_19: &str = "
CREATE TABLE row_counts (
    tbl       TEXT    NOT NULL CHECK (tbl IN ('logs', 'invocations')),
    namespace TEXT    NOT NULL,
    function  TEXT    NOT NULL,
    rows      INTEGER NOT NULL CHECK (rows >= 0),
    PRIMARY KEY (tbl, namespace, function)
) STRICT, WITHOUT ROWID;

INSERT INTO row_counts (tbl, namespace, function, rows)
    SELECT 'logs', namespace, function, count(*) FROM logs GROUP BY namespace, function;
INSERT INTO row_counts (tbl, namespace, function, rows)
    SELECT 'invocations', namespace, function, count(*) FROM invocations GROUP BY namespace, function;
";

const MIGRATION_LIST: &[M<'static>] = &[
    M::up(SCHEMA_1),
    M::up(SCHEMA_2),
    M::up(SCHEMA_3),
    M::up(SCHEMA_4),
    M::up(SCHEMA_5),
    M::up(SCHEMA_6),
    M::up(SCHEMA_7),
    M::up(SCHEMA_8),
    M::up(SCHEMA_9),
    M::up(SCHEMA_10),
    M::up(SCHEMA_11),
    M::up(SCHEMA_12),
    M::up(SCHEMA_13),
    M::up(SCHEMA_14),
    M::up(SCHEMA_15),
    M::up(SCHEMA_16),
    M::up(SCHEMA_17),
    M::up(SCHEMA_18),
    M::up(SCHEMA_19),
];

pub(super) const MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATION_LIST);

fn failed(path: &Path, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("{what} `{}`: {e}", path.display()))
}

/// Opens the writer connection: switches the file to WAL, applies pending
/// migrations and sets the per-connection pragmas.
pub(super) fn open_writer(path: &Path) -> Result<Connection> {
    let mut conn = Connection::open(path).map_err(|e| failed(path, "opening the database", e))?;
    configure(&conn).map_err(|e| failed(path, "configuring the database", e))?;
    // WAL is a property of the file: set once here, readers inherit it.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| failed(path, "switching to WAL mode", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(failed(
            path,
            "switching to WAL mode",
            format!("sqlite kept journal mode `{mode}`"),
        ));
    }
    MIGRATIONS
        .to_latest(&mut conn)
        .map_err(|e| failed(path, "migrating the schema of", e))?;
    Ok(conn)
}

/// Opens a read-only connection on a database that [`open_writer`] has set up.
pub(super) fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| failed(path, "opening the database", e))?;
    configure(&conn)
        .and_then(|()| conn.pragma_update(None, "query_only", true))
        .map_err(|e| failed(path, "configuring the database", e))?;
    Ok(conn)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // NORMAL is durable across a process crash in WAL mode; only an OS crash or
    // power loss can drop the last commits, and it never corrupts the file.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // One plan per statement, whatever its parameters: without it SQLite re-prepares a
    // cached statement whenever a bound `LIMIT`/`OFFSET` value changes (the event
    // claim, every trim), which perf measured at a fifth of the server's CPU.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() -> Result<(), Box<dyn std::error::Error>> {
        MIGRATIONS.validate()?;
        Ok(())
    }
}
