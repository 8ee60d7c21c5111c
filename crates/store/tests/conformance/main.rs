//! The conformance suite every [`Store`] backend must pass.
//!
//! Each check in [`suite`] is a plain async function over `&dyn Store`, so a backend
//! joins by invoking [`conformance!`] with a function that opens a fresh, empty store
//! (see the `sqlite` module at the bottom). Checks a backend cannot share (reopening
//! a file, a smaller log or invocation trim) live beside that backend's invocation.
//!
//! [`suite`] holds the registry, log and invocation checks and re-exports those of
//! durable work from [`events`], [`queues`] and [`schedules`], which run on a fake
//! clock (every time is passed explicitly).

use std::error::Error;
use wisp_core::{FunctionConfig, FunctionName, Kind, Namespace, VersionId};
use wisp_store::{Store, VersionRecord};

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
    config.env.insert("GREETING".into(), format!("hello from {id}"));
    VersionRecord {
        id: VersionId(id.to_owned()),
        code_hash: hash_of(code),
        code_size: code.len() as u64,
        config,
        created_at,
    }
}

mod events;
mod queues;
mod schedules;

mod suite {
    use super::*;
    pub use crate::events::*;
    pub use crate::queues::*;
    pub use crate::schedules::*;
    use std::time::Duration;
    use wisp_store::{
        DeployOutcome, INVOCATIONS_KEPT_PER_FUNCTION, InvocationQuery, InvocationRecord, InvocationSummary,
        LOG_LINES_KEPT_PER_FUNCTION, LogLine, LogQuery, LogStream,
    };

    /// Sleeps long enough for the store's millisecond clock to move.
    async fn tick() {
        tokio::time::sleep(Duration::from_millis(3)).await;
    }

    pub async fn deploy_created_updated_unchanged(store: &dyn Store) -> TestResult {
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

    pub async fn versions_are_immutable(store: &dyn Store) -> TestResult {
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

    pub async fn code_is_deduplicated_per_namespace(store: &dyn Store) -> TestResult {
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

    pub async fn get_and_list_are_ordered_and_isolated(store: &dyn Store) -> TestResult {
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

    pub async fn delete_removes_unused_code_and_keeps_shared(store: &dyn Store) -> TestResult {
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
        store.append_logs(&[log_line(&default, &one, "i1", 0)?]).await?;
        store
            .append_invocations(&[invocation(&default, &one, 0)?, invocation(&default, &two, 1)?])
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
        let left = store.logs(&default, &one, &LogQuery::default()).await?;
        assert!(left.is_empty(), "logs outlived their function: {left:?}");
        let left = store
            .invocations(&default, &one, &InvocationQuery::default())
            .await?;
        assert!(left.is_empty(), "invocations outlived their function: {left:?}");
        assert_eq!(
            store.invocation_summary(&default, &one).await?,
            InvocationSummary::default()
        );
        assert_eq!(
            ids(&store
                .invocations(&default, &two, &InvocationQuery::default())
                .await?),
            ["inv-1"],
            "delete took another function's invocations"
        );
        // A batch in flight when the function went: accepted, not a failed batch.
        store
            .append_invocations(&[invocation(&default, &one, 2)?, invocation(&default, &two, 3)?])
            .await?;
        assert_eq!(
            ids(&store
                .invocations(&default, &two, &InvocationQuery::default())
                .await?),
            ["inv-1", "inv-3"]
        );
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

    fn log_line(
        namespace: &Namespace,
        function: &FunctionName,
        invocation: &str,
        n: usize,
    ) -> TestResult<LogLine> {
        Ok(LogLine {
            namespace: namespace.clone(),
            function: function.clone(),
            invocation_id: invocation.to_owned(),
            time: 1_700_000_000_000 + i64::try_from(n)?,
            stream: if n.is_multiple_of(2) {
                LogStream::Stdout
            } else {
                LogStream::Stderr
            },
            line: format!("line {n}"),
        })
    }

    fn texts(lines: &[LogLine]) -> Vec<String> {
        lines.iter().map(|l| l.line.clone()).collect()
    }

    fn numbered(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|n| format!("line {n}")).collect()
    }

    pub async fn logs_batch_limit_and_filter(store: &dyn Store) -> TestResult {
        let (default, other) = (ns("default")?, ns("other")?);
        let (hello, world) = (func("hello")?, func("world")?);
        store.append_logs(&[]).await?;
        assert!(
            store
                .logs(&default, &hello, &LogQuery::default())
                .await?
                .is_empty()
        );

        // One batch, interleaving two invocations, another function and another
        // namespace with the same function name.
        let mut batch = Vec::new();
        for n in 0..150_usize {
            let invocation = if n.is_multiple_of(3) { "inv-a" } else { "inv-b" };
            batch.push(log_line(&default, &hello, invocation, n)?);
            if n < 5 {
                batch.push(log_line(&default, &world, "inv-w", 1_000 + n)?);
                batch.push(log_line(&other, &hello, "inv-o", 2_000 + n)?);
            }
        }
        store.append_logs(&batch).await?;

        let newest = store.logs(&default, &hello, &LogQuery::default()).await?;
        assert_eq!(texts(&newest), numbered(50..150), "limit 0 means the newest 100");
        let first = &newest[0];
        assert_eq!(
            first,
            &batch
                .iter()
                .find(|l| l.line == "line 50")
                .cloned()
                .ok_or("no line 50")?
        );

        let five = LogQuery {
            invocation_id: None,
            limit: 5,
        };
        assert_eq!(
            texts(&store.logs(&default, &hello, &five).await?),
            numbered(145..150)
        );
        let all = LogQuery {
            invocation_id: None,
            limit: 1_000,
        };
        assert_eq!(
            texts(&store.logs(&default, &hello, &all).await?),
            numbered(0..150)
        );

        let inv_a = LogQuery {
            invocation_id: Some("inv-a".into()),
            limit: 1_000,
        };
        let lines = store.logs(&default, &hello, &inv_a).await?;
        let expected: Vec<String> = (0..150)
            .filter(|n: &usize| n.is_multiple_of(3))
            .map(|n| format!("line {n}"))
            .collect();
        assert_eq!(texts(&lines), expected);
        let last_two = LogQuery {
            invocation_id: Some("inv-a".into()),
            limit: 2,
        };
        assert_eq!(
            texts(&store.logs(&default, &hello, &last_two).await?),
            ["line 144", "line 147"]
        );
        let elsewhere = LogQuery {
            invocation_id: Some("inv-w".into()),
            limit: 0,
        };
        assert!(store.logs(&default, &hello, &elsewhere).await?.is_empty());

        assert_eq!(
            texts(&store.logs(&default, &world, &five).await?),
            numbered(1_000..1_005)
        );
        let theirs = store.logs(&other, &hello, &LogQuery::default()).await?;
        assert_eq!(texts(&theirs), numbered(2_000..2_005));
        assert!(
            theirs
                .iter()
                .all(|l| l.namespace == other && l.invocation_id == "inv-o")
        );

        // A later batch lands after the earlier one.
        store
            .append_logs(&[log_line(&default, &hello, "inv-c", 150)?])
            .await?;
        let two = LogQuery {
            invocation_id: None,
            limit: 2,
        };
        assert_eq!(
            texts(&store.logs(&default, &hello, &two).await?),
            ["line 149", "line 150"]
        );
        Ok(())
    }

    pub async fn logs_are_trimmed_to_the_newest(store: &dyn Store) -> TestResult {
        let default = ns("default")?;
        let (busy, quiet) = (func("busy")?, func("quiet")?);
        let kept = LOG_LINES_KEPT_PER_FUNCTION;
        store.append_logs(&[log_line(&default, &quiet, "q", 0)?]).await?;
        // Two batches: the first exactly fills the quota, the second pushes 25 out.
        let first: Vec<LogLine> = (0..kept)
            .map(|n| log_line(&default, &busy, "inv", n))
            .collect::<TestResult<_>>()?;
        store.append_logs(&first).await?;
        let second: Vec<LogLine> = (kept..kept + 25)
            .map(|n| log_line(&default, &busy, "inv", n))
            .collect::<TestResult<_>>()?;
        store.append_logs(&second).await?;

        let everything = LogQuery {
            invocation_id: None,
            limit: kept * 2,
        };
        let lines = store.logs(&default, &busy, &everything).await?;
        assert_eq!(lines.len(), kept);
        assert_eq!(lines[0].line, "line 25");
        assert_eq!(lines[kept - 1].line, format!("line {}", kept + 24));
        let quiet_lines = store.logs(&default, &quiet, &everything).await?;
        assert_eq!(
            texts(&quiet_lines),
            ["line 0"],
            "trimming one function touched another"
        );
        Ok(())
    }

    /// Invocation `n` of a function: every third is a cold start, every fifth failed.
    fn invocation(namespace: &Namespace, function: &FunctionName, n: usize) -> TestResult<InvocationRecord> {
        let cold = n.is_multiple_of(3);
        let n64 = u64::try_from(n)?;
        Ok(InvocationRecord {
            namespace: namespace.clone(),
            function: function.clone(),
            id: format!("inv-{n}"),
            version: VersionId(format!("v{}", n / 10)),
            started_at: 1_700_000_000_000 + i64::try_from(n)?,
            cold,
            init_us: cold.then_some(5_000 + n64),
            queue_us: n64 % 7,
            run_us: 100 + n64,
            error: n.is_multiple_of(5).then(|| "timeout".to_owned()),
        })
    }

    fn ids(records: &[InvocationRecord]) -> Vec<String> {
        records.iter().map(|r| r.id.clone()).collect()
    }

    fn numbered_invocations(range: impl Iterator<Item = usize>) -> Vec<String> {
        range.map(|n| format!("inv-{n}")).collect()
    }

    pub async fn invocations_batch_limit_and_filter(store: &dyn Store) -> TestResult {
        let (default, other) = (ns("default")?, ns("other")?);
        let (hello, world) = (func("hello")?, func("world")?);
        store.append_invocations(&[]).await?;
        assert!(
            store
                .invocations(&default, &hello, &InvocationQuery::default())
                .await?
                .is_empty()
        );

        // One batch interleaving another function and another namespace with the same
        // function name. None of them is deployed: records need no function.
        let mut batch = Vec::new();
        for n in 0..150_usize {
            batch.push(invocation(&default, &hello, n)?);
            if n < 5 {
                batch.push(invocation(&default, &world, 1_000 + n)?);
                batch.push(invocation(&other, &hello, 2_000 + n)?);
            }
        }
        store.append_invocations(&batch).await?;

        let newest = store
            .invocations(&default, &hello, &InvocationQuery::default())
            .await?;
        assert_eq!(
            ids(&newest),
            numbered_invocations(50..150),
            "limit 0 means the newest 100"
        );
        let expected: Vec<InvocationRecord> = batch[..]
            .iter()
            .filter(|r| r.namespace == default && r.function == hello)
            .skip(50)
            .cloned()
            .collect();
        assert_eq!(newest, expected, "records do not read back as written");
        // Both shapes of an outcome and of a start survive the round trip.
        assert!(
            newest
                .iter()
                .any(|r| r.cold && r.init_us.is_some() && r.error.is_some())
        );
        assert!(
            newest
                .iter()
                .any(|r| !r.cold && r.init_us.is_none() && r.error.is_none())
        );

        let five = InvocationQuery {
            limit: 5,
            cold_only: false,
        };
        assert_eq!(
            ids(&store.invocations(&default, &hello, &five).await?),
            numbered_invocations(145..150)
        );
        let all = InvocationQuery {
            limit: 1_000,
            cold_only: false,
        };
        assert_eq!(
            ids(&store.invocations(&default, &hello, &all).await?),
            numbered_invocations(0..150)
        );

        let cold = InvocationQuery {
            limit: 1_000,
            cold_only: true,
        };
        let colds = store.invocations(&default, &hello, &cold).await?;
        assert_eq!(
            ids(&colds),
            numbered_invocations((0..150).filter(|n: &usize| n.is_multiple_of(3)))
        );
        assert!(colds.iter().all(|r| r.cold));
        let last_two_cold = InvocationQuery {
            limit: 2,
            cold_only: true,
        };
        assert_eq!(
            ids(&store.invocations(&default, &hello, &last_two_cold).await?),
            ["inv-144", "inv-147"],
            "the limit counts cold starts, not records"
        );

        assert_eq!(
            ids(&store.invocations(&default, &world, &five).await?),
            numbered_invocations(1_000..1_005)
        );
        let theirs = store
            .invocations(&other, &hello, &InvocationQuery::default())
            .await?;
        assert_eq!(ids(&theirs), numbered_invocations(2_000..2_005));
        assert!(theirs.iter().all(|r| r.namespace == other && r.function == hello));
        assert!(
            store
                .invocations(&ns("gamma")?, &hello, &InvocationQuery::default())
                .await?
                .is_empty()
        );

        // A later batch lands after the earlier one, whatever its `started_at`.
        let late = InvocationRecord {
            started_at: 1,
            ..invocation(&default, &hello, 150)?
        };
        store.append_invocations(&[late]).await?;
        let two = InvocationQuery {
            limit: 2,
            cold_only: false,
        };
        assert_eq!(
            ids(&store.invocations(&default, &hello, &two).await?),
            ["inv-149", "inv-150"]
        );
        Ok(())
    }

    pub async fn invocations_are_trimmed_to_the_newest(store: &dyn Store) -> TestResult {
        let default = ns("default")?;
        let (busy, quiet) = (func("busy")?, func("quiet")?);
        let kept = INVOCATIONS_KEPT_PER_FUNCTION;
        store
            .append_invocations(&[invocation(&default, &quiet, 0)?])
            .await?;
        // Two batches: the first exactly fills the quota, the second pushes 25 out.
        let first: Vec<InvocationRecord> = (0..kept)
            .map(|n| invocation(&default, &busy, n))
            .collect::<TestResult<_>>()?;
        store.append_invocations(&first).await?;
        let second: Vec<InvocationRecord> = (kept..kept + 25)
            .map(|n| invocation(&default, &busy, n))
            .collect::<TestResult<_>>()?;
        store.append_invocations(&second).await?;

        let everything = InvocationQuery {
            limit: kept * 2,
            cold_only: false,
        };
        let records = store.invocations(&default, &busy, &everything).await?;
        assert_eq!(records.len(), kept);
        assert_eq!(records[0].id, "inv-25");
        assert_eq!(records[kept - 1].id, format!("inv-{}", kept + 24));
        let summary = store.invocation_summary(&default, &busy).await?;
        assert_eq!(
            summary.invocations,
            u64::try_from(kept)?,
            "the summary counts dropped records"
        );
        assert_eq!(
            ids(&store.invocations(&default, &quiet, &everything).await?),
            ["inv-0"],
            "trimming one function touched another"
        );
        Ok(())
    }

    pub async fn invocation_summary_totals_and_percentiles(store: &dyn Store) -> TestResult {
        let (default, other) = (ns("default")?, ns("other")?);
        let (hello, world) = (func("hello")?, func("world")?);
        assert_eq!(
            store.invocation_summary(&default, &hello).await?,
            InvocationSummary::default()
        );

        // 100 cold starts with init times 1..=100 ms, appended out of order, then 50
        // warm invocations of which 10 failed.
        let mut batch = Vec::new();
        for n in 0..100_u64 {
            let init = (n * 37) % 100 + 1;
            batch.push(InvocationRecord {
                cold: true,
                init_us: Some(init * 1_000),
                error: None,
                ..invocation(&default, &hello, usize::try_from(n)?)?
            });
        }
        for n in 100..150_usize {
            batch.push(InvocationRecord {
                cold: false,
                init_us: None,
                error: (n < 110).then(|| "function_error".to_owned()),
                ..invocation(&default, &hello, n)?
            });
        }
        // Noise elsewhere that must not count.
        batch.push(invocation(&default, &world, 0)?);
        batch.push(invocation(&other, &hello, 0)?);
        store.append_invocations(&batch).await?;

        let summary = store.invocation_summary(&default, &hello).await?;
        assert_eq!(
            summary,
            InvocationSummary {
                invocations: 150,
                cold_starts: 100,
                errors: 10,
                init_p50_us: Some(50_000),
                init_p99_us: Some(99_000),
            }
        );

        // A cold start without an init time (the engine could not measure it) counts as
        // a cold start but not in the percentiles.
        let unmeasured = InvocationRecord {
            cold: true,
            init_us: None,
            error: None,
            ..invocation(&default, &world, 1)?
        };
        store.append_invocations(&[unmeasured]).await?;
        let world_summary = store.invocation_summary(&default, &world).await?;
        assert_eq!(
            world_summary,
            InvocationSummary {
                invocations: 2,
                cold_starts: 2,
                errors: 1,
                init_p50_us: Some(5_000),
                init_p99_us: Some(5_000),
            }
        );
        Ok(())
    }
}

/// Declares one `#[tokio::test]` per check of the suite for a backend. `$open` is
/// a function returning `TestResult<(guard, store)>`; the guard (a temp dir, a
/// server) lives as long as the test.
macro_rules! conformance {
    ($backend:ident, $open:path) => {
        conformance!(@tests $backend, $open, [
            deploy_created_updated_unchanged,
            versions_are_immutable,
            code_is_deduplicated_per_namespace,
            get_and_list_are_ordered_and_isolated,
            delete_removes_unused_code_and_keeps_shared,
            logs_batch_limit_and_filter,
            logs_are_trimmed_to_the_newest,
            invocations_batch_limit_and_filter,
            invocations_are_trimmed_to_the_newest,
            invocation_summary_totals_and_percentiles,
            events_enqueue_dedupes_ids_and_idempotency_keys,
            events_claim_respects_run_at_leases_and_limit,
            events_write_records_leased_events_with_outcomes,
            events_complete_applies_each_resolution_with_follow_ups,
            events_release_leases_and_next_due,
            events_get_list_and_counts,
            events_redrive_and_purge_touch_only_dead_letters,
            events_sweep_drops_only_old_successes,
            delete_function_removes_events_and_schedules,
            queues_put_get_list_delete,
            queues_receive_hides_messages_until_the_visibility_timeout,
            queues_change_visibility_by_receipt,
            queues_dead_letter_after_max_receives_and_redrive,
            queues_without_their_dead_letter_queue_deliver_again,
            queues_retention_delay_stats_and_purge,
            queue_operations_on_a_missing_queue,
            schedules_advance_monotonically_with_their_event,
        ]);
    };
    (@tests $backend:ident, $open:path, [$($check:ident),* $(,)?]) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() -> TestResult {
                    let (_guard, store) = $open()?;
                    suite::$check(&store).await
                }
            )*
        }
    };
}

conformance!(sqlite_conformance, sqlite::open);

mod sqlite {
    use super::*;
    use tempfile::TempDir;
    use wisp_store::{InvocationQuery, InvocationRecord, LogLine, LogQuery, LogStream, SqliteStore};

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
        })
    }

    fn record(function: &FunctionName, n: usize) -> TestResult<InvocationRecord> {
        Ok(InvocationRecord {
            namespace: ns("default")?,
            function: function.clone(),
            id: format!("inv-{n}"),
            version: VersionId("v1".into()),
            started_at: i64::try_from(n)?,
            cold: n == 0,
            init_us: (n == 0).then_some(1_234),
            queue_us: 0,
            run_us: 10,
            error: None,
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
                .deploy(&default, &hello, Some("app"), &v1, b"persistent code")
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
                .deploy(&default, &hello, Some("app"), &v1, b"persistent code")
                .await?,
            wisp_store::DeployOutcome::Unchanged
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
