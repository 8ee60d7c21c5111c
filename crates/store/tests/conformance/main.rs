//! The conformance suite every store backend must pass, one concern at a time.
//!
//! Each check is a plain async function over one concern's trait, in that concern's
//! module: [`registry`] (`&dyn Registry`), [`records`] (`&dyn Records`), [`events`]
//! (`&dyn Events`), [`queues`] (`&dyn Queues`), [`schedules`] (`&dyn Schedules`),
//! [`namespaces`] (`&dyn Namespaces`), [`api_keys`] (`&dyn ApiKeys`), [`audit`]
//! (`&dyn Audit`), [`objects`] (`&dyn Store`: a write's events are read back),
//! [`key_values`] (`&dyn KeyValues`), [`secrets`] (`&dyn Secrets`), [`topics`]
//! (`&dyn Topics`), [`alarms`] (`&dyn Alarms`), [`nodes`] (`&dyn Nodes`) and [`usage`]
//! (`&dyn RecordsAndUsage`: usage is written by appending invocation records, and
//! survives forgetting and trimming them). Checks that need several concerns together take `&dyn Store` and
//! live in [`store`]: removing a function, or a namespace (its alarms too), from every
//! concern, outcomes whose follow-ups land in queues, schedules that fire events, usage
//! that outlives a removed function and namespace. Durable work runs on a fake clock (every time is passed
//! explicitly, from [`T`]).
//!
//! # How a backend joins
//!
//! Write a function that opens a fresh, empty store and returns
//! `TestResult<(guard, store)>` (the guard, a temp dir or a server, lives as long as the
//! test), and invoke [`conformance!`] with it and the concerns the backend implements so
//! far, e.g. `conformance!(jetstream_conformance, jetstream::open, [registry, events]);`.
//! That declares a module per backend with a module per concern, and one `#[tokio::test]`
//! per check (`jetstream_conformance::events::events_claim_respects_run_at_leases_and_limit`).
//! The `store` concern needs every trait implemented. A check a backend cannot share
//! (reopening a file, a smaller trim) lives beside its invocation, as the `sqlite` module
//! at the bottom shows. A new check is added to its concern's module and to that
//! concern's list in [`conformance!`].

use std::error::Error;
use wisp_core::{FunctionConfig, FunctionName, Kind, Namespace, VersionId};
use wisp_store::{NewEvent, PublishOptions, VersionRecord};

type TestResult<T = ()> = Result<T, Box<dyn Error>>;

fn ns(name: &str) -> TestResult<Namespace> {
    Ok(Namespace::new(name)?)
}

fn func(name: &str) -> TestResult<FunctionName> {
    Ok(FunctionName::new(name)?)
}

/// A stand-in for the SHA-256 the API computes: unique per content, which is all a
/// store relies on.
fn hash_of(code: &[u8]) -> String {
    code.iter().map(|b| format!("{b:02x}")).collect()
}

/// A version `id` of `code` whose config differs by `memory_mb`.
fn version(id: &str, code: &[u8], memory_mb: u32, created_at: i64) -> VersionRecord {
    let mut config = FunctionConfig::new(Kind::Http);
    config.memory_mb = memory_mb;
    config
        .env
        .insert("GREETING".into(), format!("hello from {id}").into());
    VersionRecord {
        number: 0,
        id: VersionId(id.to_owned()),
        code_hash: hash_of(code),
        code_size: code.len() as u64,
        config,
        created_at,
    }
}

/// The fake clock's start, in milliseconds.
const T: i64 = 1_700_000_000_000;
/// The same instant in microseconds.
const T_US: i64 = T * 1_000;

/// Event `id` of a function, created at `created_us`, due at `run_at`.
fn event(namespace: &Namespace, function: &FunctionName, id: &str, created_us: i64, run_at: i64) -> NewEvent {
    NewEvent {
        namespace: namespace.clone(),
        function: function.clone(),
        id: id.to_owned(),
        payload: format!("payload of {id}").into_bytes(),
        idempotency_key: None,
        chain_depth: 0,
        source: "api".to_owned(),
        qualifier: None,
        trace: None,
        parent: None,
        created_us,
        run_at,
        lease: None,
    }
}

mod alarms;
mod api_keys;
mod audit;
mod events;
mod key_values;
mod namespaces;
mod nodes;
mod objects;
mod queues;
mod records;
mod registry;
mod schedules;
mod secrets;
mod store;
mod topics;
mod usage;

/// Declares, for a backend, one module per concern it names and in each one
/// `#[tokio::test]` per check of that concern. `$open` is a function returning
/// `TestResult<(guard, store)>`; the guard (a temp dir, a server) lives as long as the
/// test. Concerns: `registry`, `records`, `events`, `queues`, `schedules`, `namespaces`,
/// `api_keys`, `audit`, `usage` (needs `Records` too), `objects` (needs `Events` too),
/// `key_values`, `secrets`, `topics`, `alarms`, `nodes`, and `store` (the checks across
/// concerns).
macro_rules! conformance {
    ($backend:ident, $open:path, [$($concern:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(conformance!(@concern $concern, $open);)*
        }
    };
    (@concern registry, $open:path) => {
        conformance!(@checks registry, $open, [
            deploy_created_published_unchanged,
            versions_are_numbered_and_immutable,
            old_versions_are_pruned_unless_aliased,
            aliases_and_disabling_change_by_compare_and_set,
            a_publish_may_leave_live_alone,
            an_app_deploys_whole_or_not_at_all,
            code_is_deduplicated_per_namespace,
            get_and_list_are_ordered_and_isolated,
            delete_removes_unused_code_and_keeps_shared,
        ]);
    };
    (@concern records, $open:path) => {
        conformance!(@checks records, $open, [
            logs_batch_limit_and_filter,
            logs_are_trimmed_to_the_newest,
            logs_filter_by_version_time_and_text,
            logs_follow_after_a_cursor,
            logs_are_trimmed_by_age_and_size,
            invocations_batch_limit_and_filter,
            invocations_are_trimmed_to_the_newest,
            invocation_summary_totals_and_percentiles,
            trace_invocations_cross_functions_oldest_first,
            records_forget_function_touches_only_that_function,
        ]);
    };
    (@concern events, $open:path) => {
        conformance!(@checks events, $open, [
            events_enqueue_dedupes_ids_and_idempotency_keys,
            events_claim_respects_run_at_leases_and_limit,
            events_write_records_leased_events_with_outcomes,
            events_complete_applies_each_resolution_with_follow_ups,
            events_release_leases_and_next_due,
            events_held_leases_are_listed_and_released_as_listed,
            events_get_list_and_counts,
            events_browse_pages_a_functions_events_newest_first,
            events_redrive_and_purge_touch_only_dead_letters,
            events_sweep_drops_only_old_successes,
            events_failure_round_trips,
            events_forget_function_touches_only_that_function,
            events_held_by_a_quota_wait_and_are_released,
        ]);
    };
    (@concern queues, $open:path) => {
        conformance!(@checks queues, $open, [
            queues_put_get_list_delete,
            queues_receive_hides_messages_until_the_visibility_timeout,
            queues_change_visibility_by_receipt,
            queues_dead_letter_after_max_receives_and_redrive,
            queues_without_their_dead_letter_queue_deliver_again,
            queues_retention_delay_stats_and_purge,
            queue_operations_on_a_missing_queue,
        ]);
    };
    (@concern objects, $open:path) => {
        conformance!(@checks objects, $open, [
            objects_buckets_belong_to_a_namespace,
            objects_put_replaces_whole_and_checks_conditions,
            objects_deletes_check_their_conditions,
            objects_quotas_refuse_what_does_not_fit,
            objects_list_by_prefix_and_delimiter_in_pages,
            objects_events_commit_with_their_write,
            objects_multipart_uploads_complete_and_abort,
        ]);
    };
    (@concern key_values, $open:path) => {
        conformance!(@checks key_values, $open, [
            kv_stores_belong_to_a_namespace,
            kv_set_get_delete_with_increasing_versions,
            kv_conditions_compare_and_set,
            kv_entries_expire,
            kv_increments_count_from_zero,
            kv_list_by_prefix_in_pages,
            kv_batches_stop_at_the_first_failed_condition,
            kv_deleting_a_store_deletes_its_entries,
        ]);
    };
    (@concern secrets, $open:path) => {
        conformance!(@checks secrets, $open, [
            secrets_belong_to_a_namespace,
            secrets_put_creates_then_updates_with_growing_revisions,
            secrets_conditions_compare_and_set,
        ]);
    };
    (@concern topics, $open:path) => {
        conformance!(@checks topics, $open, [
            topics_belong_to_a_namespace,
            topics_subscribe_is_idempotent_per_endpoint,
            topics_publish_creates_one_delivery_per_subscription_given,
            topics_leases_hide_deliveries_until_they_expire,
            topics_ack_removes_a_delivery,
            topics_retry_reschedules_and_counts_attempts,
            topics_postpone_reschedules_without_counting,
            topics_dead_letters_are_listed_per_subscription,
            topics_deleting_a_topic_removes_its_deliveries,
            topics_due_deliveries_come_in_due_order,
        ]);
    };
    (@concern alarms, $open:path) => {
        conformance!(@checks alarms, $open, [
            alarms_put_creates_then_updates_keeping_the_state,
            alarms_belong_to_a_namespace_and_list_in_order,
            alarms_state_changes_are_compare_and_set,
            alarms_history_keeps_the_newest_transitions,
            alarms_notification_marks_only_move_forward,
            alarms_delete_is_idempotent_and_revisions_keep_growing,
        ]);
    };
    (@concern nodes, $open:path) => {
        conformance!(@checks nodes, $open, [
            nodes_heartbeats_replace_and_list_by_name,
            nodes_key_check_is_written_once,
        ]);
    };
    (@concern schedules, $open:path) => {
        conformance!(@checks schedules, $open, [
            schedules_advance_monotonically,
            schedules_forget_function_touches_only_that_function,
        ]);
    };
    (@concern namespaces, $open:path) => {
        conformance!(@checks namespaces, $open, [
            namespaces_create_once_and_list_by_name,
            namespaces_update_is_compare_and_set,
            namespaces_delete_and_create_again,
        ]);
    };
    (@concern api_keys, $open:path) => {
        conformance!(@checks api_keys, $open, [
            api_keys_create_once_and_list,
            api_keys_revoke_keeps_the_first_time,
            api_keys_touch_only_moves_forward,
            api_keys_forget_namespace_keys_leaves_others,
        ]);
    };
    (@concern audit, $open:path) => {
        conformance!(@checks audit, $open, [
            audit_skips_duplicate_ids,
            audit_is_newest_first_paged_and_filtered,
        ]);
    };
    (@concern usage, $open:path) => {
        conformance!(@checks usage, $open, [
            usage_sums_every_grouping,
            usage_counts_each_invocation_once,
            usage_filters_and_bounds,
            usage_survives_forget_function_and_trimming,
            usage_counts_reserved_runs_and_capacity_held,
        ]);
    };
    (@concern store, $open:path) => {
        conformance!(@checks store, $open, [
            remove_function_removes_unused_code_and_keeps_shared,
            remove_function_removes_events_and_schedules,
            delete_function_touches_only_the_registry,
            outcome_follow_up_messages_land_in_queues,
            schedules_advance_monotonically_with_their_event,
            remove_namespace_removes_only_its_contents_and_keeps_the_audit,
            usage_survives_remove_function_and_remove_namespace,
            remove_namespace_removes_its_key_value_stores,
            remove_namespace_removes_its_secrets,
            remove_namespace_removes_its_topics,
        ]);
    };
    (@checks $concern:ident, $open:path, [$($check:ident),* $(,)?]) => {
        mod $concern {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() -> TestResult {
                    let (_guard, store) = $open()?;
                    crate::$concern::$check(&store).await
                }
            )*
        }
    };
}

conformance!(
    sqlite_conformance,
    sqlite::open,
    [
        registry, records, events, queues, schedules, namespaces, api_keys, audit, usage, objects,
        key_values, secrets, topics, alarms, nodes, store
    ]
);

conformance!(
    jetstream_conformance,
    jetstream::open,
    [
        registry, records, events, queues, schedules, namespaces, api_keys, audit, usage, objects,
        key_values, secrets, topics, alarms, nodes, store
    ]
);

mod jetstream;

mod sqlite {
    use super::*;
    use tempfile::TempDir;
    use wisp_store::{
        InvocationQuery, InvocationRecord, LogLine, LogQuery, LogStream, Records, Registry, SqliteStore,
    };

    pub fn open() -> TestResult<(TempDir, SqliteStore)> {
        let dir = TempDir::new()?;
        let store = SqliteStore::open(&dir.path().join("wisp.db"))?;
        Ok((dir, store))
    }

    fn line(function: &FunctionName, n: usize) -> TestResult<LogLine> {
        Ok(LogLine {
            namespace: ns("default")?,
            function: function.clone(),
            invocation_id: format!("inv-{n}"),
            time: i64::try_from(n)?,
            stream: LogStream::Stderr,
            line: format!("line {n}"),
            version: 1,
            cursor: 0,
        })
    }

    fn record(function: &FunctionName, n: usize) -> TestResult<InvocationRecord> {
        Ok(InvocationRecord {
            namespace: ns("default")?,
            function: function.clone(),
            id: format!("inv-{n}"),
            version: VersionId("v1".into()),
            version_number: 1,
            started_at: i64::try_from(n)?,
            cold: n == 0,
            init_us: (n == 0).then_some(1_234),
            queue_us: 0,
            run_us: 10,
            error: None,
            memory_mb: 128,
            billed_ms: 1,
            reserved: false,
            trace: None,
            parent: None,
        })
    }

    #[tokio::test]
    async fn reopening_the_file_finds_everything() -> TestResult {
        let dir = TempDir::new()?;
        // A data directory that does not exist yet, two levels down.
        let path = dir.path().join("data/state").join("wisp.db");
        let (default, hello) = (ns("default")?, func("hello")?);
        let v1 = version("v1", b"persistent code", 512, 42);
        let (record, lines, invocations) = {
            let store = SqliteStore::open(&path)?;
            store
                .deploy(
                    &default,
                    &hello,
                    Some("app"),
                    &v1,
                    b"persistent code",
                    PublishOptions::default(),
                )
                .await?;
            store.append_logs(&[line(&hello, 1)?, line(&hello, 2)?]).await?;
            store
                .append_invocations(&[record(&hello, 0)?, record(&hello, 1)?])
                .await?;
            let record = store.get_function(&default, &hello).await?;
            let lines = store.logs(&default, &hello, &LogQuery::default()).await?;
            let invocations = store
                .invocations(&default, &hello, &InvocationQuery::default())
                .await?;
            (record, lines, invocations)
        };
        assert!(record.is_some());
        assert_eq!(lines.len(), 2);
        assert_eq!(invocations.len(), 2);

        let store = SqliteStore::open(&path)?;
        assert_eq!(store.get_function(&default, &hello).await?, record);
        assert_eq!(store.list_functions(None).await?.len(), 1);
        assert_eq!(
            store.get_code(&default, &v1.code_hash).await?.as_deref(),
            Some(&b"persistent code"[..])
        );
        assert_eq!(store.logs(&default, &hello, &LogQuery::default()).await?, lines);
        assert_eq!(
            store
                .invocations(&default, &hello, &InvocationQuery::default())
                .await?,
            invocations
        );
        assert_eq!(
            store
                .deploy(
                    &default,
                    &hello,
                    Some("app"),
                    &v1,
                    b"persistent code",
                    PublishOptions::default()
                )
                .await?
                .0,
            wisp_store::DeployOutcome::Unchanged { version: 1 }
        );
        Ok(())
    }

    #[tokio::test]
    async fn trim_count_is_configurable() -> TestResult {
        let (_dir, store) = open()?;
        let store = store.with_log_lines_kept(3);
        let (default, a, b) = (ns("default")?, func("a")?, func("b")?);
        let batch = [
            line(&a, 0)?,
            line(&b, 0)?,
            line(&a, 1)?,
            line(&a, 2)?,
            line(&a, 3)?,
            line(&a, 4)?,
        ];
        store.append_logs(&batch).await?;
        let all = LogQuery {
            invocation_id: None,
            limit: 100,
            ..LogQuery::default()
        };
        let texts = |lines: Vec<LogLine>| lines.into_iter().map(|l| l.line).collect::<Vec<_>>();
        assert_eq!(
            texts(store.logs(&default, &a, &all).await?),
            ["line 2", "line 3", "line 4"]
        );
        assert_eq!(texts(store.logs(&default, &b, &all).await?), ["line 0"]);
        store.append_logs(&[line(&a, 5)?]).await?;
        assert_eq!(
            texts(store.logs(&default, &a, &all).await?),
            ["line 3", "line 4", "line 5"]
        );
        Ok(())
    }

    #[tokio::test]
    async fn invocation_trim_count_is_configurable() -> TestResult {
        let (_dir, store) = open()?;
        let store = store.with_invocations_kept(3);
        let (default, a, b) = (ns("default")?, func("a")?, func("b")?);
        let batch = [
            record(&a, 0)?,
            record(&b, 0)?,
            record(&a, 1)?,
            record(&a, 2)?,
            record(&a, 3)?,
            record(&a, 4)?,
        ];
        store.append_invocations(&batch).await?;
        let all = InvocationQuery {
            limit: 100,
            cold_only: false,
        };
        let ids = |records: Vec<InvocationRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.invocations(&default, &a, &all).await?),
            ["inv-2", "inv-3", "inv-4"]
        );
        assert_eq!(ids(store.invocations(&default, &b, &all).await?), ["inv-0"]);
        store.append_invocations(&[record(&a, 5)?]).await?;
        assert_eq!(
            ids(store.invocations(&default, &a, &all).await?),
            ["inv-3", "inv-4", "inv-5"]
        );
        // The only cold start of `a` was trimmed away, and the summary agrees.
        let summary = store.invocation_summary(&default, &a).await?;
        assert_eq!((summary.invocations, summary.cold_starts), (3, 0));
        assert_eq!(summary.init_p50_us, None);
        Ok(())
    }

    /// The trim cuts by each function's count of rows, so every other way rows come and
    /// go must keep that count: lines dropped for their age, a function forgotten, a
    /// record appended twice. A count left too high would trim rows it should keep.
    #[tokio::test]
    async fn trimming_after_other_deletes_keeps_the_newest() -> TestResult {
        let (_dir, store) = open()?;
        let store = store.with_log_lines_kept(3).with_invocations_kept(3);
        let (default, a) = (ns("default")?, func("a")?);
        let all = LogQuery {
            invocation_id: None,
            limit: 100,
            ..LogQuery::default()
        };
        let texts = |lines: Vec<LogLine>| lines.into_iter().map(|l| l.line).collect::<Vec<_>>();
        store
            .append_logs(&[line(&a, 0)?, line(&a, 1)?, line(&a, 2)?])
            .await?;
        // Lines 0 and 1 are older than time 2: the retention sweep drops them.
        assert_eq!(store.trim_logs(&default, &a, 2, u64::MAX).await?, 2);
        store.append_logs(&[line(&a, 3)?, line(&a, 4)?]).await?;
        assert_eq!(
            texts(store.logs(&default, &a, &all).await?),
            ["line 2", "line 3", "line 4"]
        );

        let every = InvocationQuery {
            limit: 100,
            cold_only: false,
        };
        let ids = |records: Vec<InvocationRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
        store
            .append_invocations(&[record(&a, 0)?, record(&a, 1)?, record(&a, 2)?])
            .await?;
        store.forget_function(&default, &a).await?;
        assert_eq!(texts(store.logs(&default, &a, &all).await?), Vec::<String>::new());
        store
            .append_invocations(&[record(&a, 3)?, record(&a, 4)?])
            .await?;
        // A batch appended again is skipped, and not counted either.
        store.append_invocations(&[record(&a, 4)?]).await?;
        assert_eq!(
            ids(store.invocations(&default, &a, &every).await?),
            ["inv-3", "inv-4"]
        );
        store.append_invocations(&[record(&a, 5)?]).await?;
        assert_eq!(
            ids(store.invocations(&default, &a, &every).await?),
            ["inv-3", "inv-4", "inv-5"]
        );
        store.append_logs(&[line(&a, 5)?]).await?;
        assert_eq!(texts(store.logs(&default, &a, &all).await?), ["line 5"]);
        Ok(())
    }

    #[tokio::test]
    async fn audit_trim_count_is_configurable() -> TestResult {
        use wisp_store::{Audit, AuditEntry, AuditQuery};
        let (_dir, store) = open()?;
        let store = store.with_audit_entries_kept(3);
        let (default, other) = (ns("default")?, ns("other")?);
        let entry = |namespace: &Namespace, n: i64| AuditEntry {
            id: format!("e{n}"),
            at: T + n,
            namespace: namespace.clone(),
            key_id: None,
            action: "queue.create".to_owned(),
            target: "jobs".to_owned(),
            source: None,
            detail: None,
        };
        // The cap is over every namespace, and drops the first appended.
        store
            .append_audit(&[entry(&default, 0), entry(&other, 1), entry(&default, 2)])
            .await?;
        store
            .append_audit(&[entry(&other, 3), entry(&default, 4)])
            .await?;
        let ids = |entries: Vec<AuditEntry>| entries.into_iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.audit(&AuditQuery::default()).await?),
            ["e4", "e3", "e2"]
        );
        // A trimmed id is no longer kept, so it is appended again (and trims another).
        store.append_audit(&[entry(&default, 0)]).await?;
        assert_eq!(
            ids(store.audit(&AuditQuery::default()).await?),
            ["e4", "e3", "e0"]
        );
        Ok(())
    }

    /// SQLite writes a batch in one transaction: a failed condition stores none of it,
    /// not even the writes before the failed one (which the contract allows to stay).
    #[tokio::test]
    async fn kv_batches_are_all_or_nothing() -> TestResult {
        use wisp_core::KvStoreName;
        use wisp_store::{KeyValues, KvCondition, KvSetMany, KvStoreRecord, KvWrite};
        let (_dir, store) = open()?;
        let (default, name) = (ns("default")?, KvStoreName::new("batch")?);
        let record = KvStoreRecord {
            namespace: default.clone(),
            name: name.clone(),
            created_ms: T,
        };
        assert!(store.create_kv_store(&record).await?);
        let write = |key: &str, condition| KvWrite {
            key: key.to_owned(),
            value: b"v".to_vec(),
            ttl_expires_ms: None,
            condition,
        };
        let outcome = store
            .kv_set_many(
                &default,
                &name,
                vec![write("a", KvCondition::Any), write("b", KvCondition::Version(7))],
                T,
            )
            .await?;
        assert_eq!(
            outcome,
            KvSetMany::ConditionFailed {
                index: 1,
                current: None
            }
        );
        assert_eq!(store.kv_get(&default, &name, "a", T).await?, None);
        Ok(())
    }

    #[tokio::test]
    async fn open_refuses_a_directory() -> TestResult {
        let dir = TempDir::new()?;
        let err = SqliteStore::open(dir.path())
            .err()
            .ok_or("opened a directory as a database")?;
        let message = err.to_string();
        assert!(message.contains(&dir.path().display().to_string()), "{message}");
        Ok(())
    }
}
