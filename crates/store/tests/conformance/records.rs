//! Checks of what invocations leave behind: log lines and invocation records, appended
//! in batches, read back newest last, trimmed per function, summarised, and forgotten per
//! function.

use super::*;
use wisp_store::{
    INVOCATIONS_KEPT_PER_FUNCTION, InvocationQuery, InvocationRecord, InvocationSummary,
    LOG_LINES_KEPT_PER_FUNCTION, LogLine, LogQuery, LogStream, Records, TRACE_INVOCATIONS_MAX,
};

pub fn log_line(
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
        version: 1,
        cursor: 0,
    })
}

pub fn texts(lines: &[LogLine]) -> Vec<String> {
    lines.iter().map(|l| l.line.clone()).collect()
}

fn numbered(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| format!("line {n}")).collect()
}

pub async fn logs_batch_limit_and_filter(store: &dyn Records) -> TestResult {
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
    let mut appended = batch
        .iter()
        .find(|l| l.line == "line 50")
        .cloned()
        .ok_or("no line 50")?;
    assert_ne!(first.cursor, 0, "the store gives each line its cursor");
    appended.cursor = first.cursor;
    assert_eq!(first, &appended);

    let five = LogQuery {
        invocation_id: None,
        limit: 5,
        ..LogQuery::default()
    };
    assert_eq!(
        texts(&store.logs(&default, &hello, &five).await?),
        numbered(145..150)
    );
    let all = LogQuery {
        invocation_id: None,
        limit: 1_000,
        ..LogQuery::default()
    };
    assert_eq!(
        texts(&store.logs(&default, &hello, &all).await?),
        numbered(0..150)
    );

    let inv_a = LogQuery {
        invocation_id: Some("inv-a".into()),
        limit: 1_000,
        ..LogQuery::default()
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
        ..LogQuery::default()
    };
    assert_eq!(
        texts(&store.logs(&default, &hello, &last_two).await?),
        ["line 144", "line 147"]
    );
    let elsewhere = LogQuery {
        invocation_id: Some("inv-w".into()),
        limit: 0,
        ..LogQuery::default()
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
        ..LogQuery::default()
    };
    assert_eq!(
        texts(&store.logs(&default, &hello, &two).await?),
        ["line 149", "line 150"]
    );
    Ok(())
}

pub async fn logs_are_trimmed_to_the_newest(store: &dyn Records) -> TestResult {
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
        ..LogQuery::default()
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

pub async fn logs_filter_by_version_time_and_text(store: &dyn Records) -> TestResult {
    let (default, hello) = (ns("default")?, func("hello")?);
    // Lines 0..20: version 1 up to 9, version 2 from 10; times 1_700_000_000_000 + n.
    let batch: Vec<LogLine> = (0..20)
        .map(|n| {
            let mut line = log_line(&default, &hello, if n < 10 { "inv-a" } else { "inv-b" }, n)?;
            line.version = if n < 10 { 1 } else { 2 };
            Ok(line)
        })
        .collect::<TestResult<_>>()?;
    store.append_logs(&batch).await?;
    let query = |f: fn(&mut LogQuery)| {
        let mut q = LogQuery::default();
        f(&mut q);
        q
    };
    let v2 = store
        .logs(&default, &hello, &query(|q| q.version = Some(2)))
        .await?;
    assert_eq!(texts(&v2), numbered(10..20));
    assert!(v2.iter().all(|l| l.version == 2));
    let window = query(|q| {
        q.since = Some(1_700_000_000_005);
        q.until = Some(1_700_000_000_007);
    });
    assert_eq!(
        texts(&store.logs(&default, &hello, &window).await?),
        numbered(5..8)
    );
    let text = query(|q| q.contains = Some("line 1".into()));
    assert_eq!(
        texts(&store.logs(&default, &hello, &text).await?),
        [
            "line 1", "line 10", "line 11", "line 12", "line 13", "line 14", "line 15", "line 16", "line 17",
            "line 18", "line 19"
        ]
    );
    // A substring, not a pattern: `%` and `_` are plain text.
    let pattern = query(|q| q.contains = Some("line%".into()));
    assert!(store.logs(&default, &hello, &pattern).await?.is_empty());
    let all_of_them = query(|q| {
        q.version = Some(2);
        q.invocation_id = Some("inv-b".into());
        q.contains = Some("9".into());
    });
    assert_eq!(
        texts(&store.logs(&default, &hello, &all_of_them).await?),
        ["line 19"]
    );
    let none = query(|q| {
        q.version = Some(1);
        q.invocation_id = Some("inv-b".into());
    });
    assert!(store.logs(&default, &hello, &none).await?.is_empty());
    Ok(())
}

pub async fn logs_follow_after_a_cursor(store: &dyn Records) -> TestResult {
    let (default, hello) = (ns("default")?, func("hello")?);
    let first: Vec<LogLine> = (0..5)
        .map(|n| log_line(&default, &hello, "inv", n))
        .collect::<TestResult<_>>()?;
    store.append_logs(&first).await?;
    let lines = store.logs(&default, &hello, &LogQuery::default()).await?;
    let cursors: Vec<u64> = lines.iter().map(|l| l.cursor).collect();
    assert!(cursors.iter().all(|&c| c > 0), "{cursors:?}");
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]),
        "cursors grow: {cursors:?}"
    );

    // From the start, in pages: the oldest after the cursor, not the newest.
    let page = LogQuery {
        after: Some(0),
        limit: 2,
        ..LogQuery::default()
    };
    assert_eq!(
        texts(&store.logs(&default, &hello, &page).await?),
        ["line 0", "line 1"]
    );
    let after_two = LogQuery {
        after: Some(cursors[1]),
        limit: 2,
        ..LogQuery::default()
    };
    assert_eq!(
        texts(&store.logs(&default, &hello, &after_two).await?),
        ["line 2", "line 3"]
    );
    let last = *cursors.last().ok_or("no lines")?;
    let after_last = LogQuery {
        after: Some(last),
        ..LogQuery::default()
    };
    assert!(store.logs(&default, &hello, &after_last).await?.is_empty());

    // A line written later is after every earlier cursor, filters still apply.
    store
        .append_logs(&[
            log_line(&default, &hello, "inv", 5)?,
            log_line(&default, &hello, "other", 6)?,
        ])
        .await?;
    let new = store.logs(&default, &hello, &after_last).await?;
    assert_eq!(texts(&new), ["line 5", "line 6"]);
    assert!(new[0].cursor > last);
    let new_of_inv = LogQuery {
        after: Some(last),
        invocation_id: Some("other".into()),
        ..LogQuery::default()
    };
    assert_eq!(
        texts(&store.logs(&default, &hello, &new_of_inv).await?),
        ["line 6"]
    );

    // A cursor is never reused, even once the newest line is gone.
    store.forget_function(&default, &hello).await?;
    store
        .append_logs(&[log_line(&default, &hello, "inv", 7)?])
        .await?;
    let again = store.logs(&default, &hello, &LogQuery::default()).await?;
    assert!(again[0].cursor > new[1].cursor, "a cursor was reused");
    Ok(())
}

pub async fn logs_are_trimmed_by_age_and_size(store: &dyn Records) -> TestResult {
    let default = ns("default")?;
    let (hello, other) = (func("hello")?, func("other")?);
    // Line n is `line n` (6 or 7 bytes) at time 1_700_000_000_000 + n.
    let batch: Vec<LogLine> = (0..20)
        .flat_map(|n| {
            [
                log_line(&default, &hello, "inv", n),
                log_line(&default, &other, "inv", n),
            ]
        })
        .collect::<TestResult<_>>()?;
    store.append_logs(&batch).await?;
    let all = LogQuery {
        limit: 1_000,
        ..LogQuery::default()
    };

    // By age: the lines before the cut go, the one at it stays.
    let dropped = store
        .trim_logs(&default, &hello, 1_700_000_000_005, u64::MAX)
        .await?;
    assert_eq!(dropped, 5);
    assert_eq!(texts(&store.logs(&default, &hello, &all).await?), numbered(5..20));
    assert_eq!(
        store.logs(&default, &other, &all).await?.len(),
        20,
        "trimming one function touched another"
    );
    // Idempotent.
    assert_eq!(
        store
            .trim_logs(&default, &hello, 1_700_000_000_005, u64::MAX)
            .await?,
        0
    );

    // By size: `line 17`..`line 19` are 21 bytes; a limit of 27 keeps them and not
    // `line 16` (it would cross the limit).
    let dropped = store.trim_logs(&default, &hello, 0, 27).await?;
    assert_eq!(dropped, 12);
    assert_eq!(
        texts(&store.logs(&default, &hello, &all).await?),
        numbered(17..20)
    );
    assert_eq!(
        store.trim_logs(&default, &hello, 0, 21).await?,
        0,
        "exactly at the limit stays"
    );
    assert_eq!(store.trim_logs(&default, &hello, 0, 0).await?, 3);
    assert!(store.logs(&default, &hello, &all).await?.is_empty());
    assert_eq!(store.trim_logs(&default, &hello, i64::MAX, 0).await?, 0);
    assert_eq!(store.logs(&default, &other, &all).await?.len(), 20);
    Ok(())
}

/// Invocation `n` of a function: every third is a cold start, every fifth failed.
pub fn invocation(namespace: &Namespace, function: &FunctionName, n: usize) -> TestResult<InvocationRecord> {
    let cold = n.is_multiple_of(3);
    let n64 = u64::try_from(n)?;
    Ok(InvocationRecord {
        namespace: namespace.clone(),
        function: function.clone(),
        id: format!("inv-{n}"),
        version: VersionId(format!("v{}", n / 10)),
        version_number: 1,
        started_at: 1_700_000_000_000 + i64::try_from(n)?,
        cold,
        init_us: cold.then_some(5_000 + n64),
        queue_us: n64 % 7,
        run_us: 100 + n64,
        error: n.is_multiple_of(5).then(|| "timeout".to_owned()),
        memory_mb: 128 * (1 + u32::try_from(n % 2)?),
        billed_ms: (100 + n64).div_ceil(1_000),
        reserved: n.is_multiple_of(4),
        // Every other one in a trace of its own: the root is carried as given.
        trace: n.is_multiple_of(2).then(|| format!("1-5759e988-{n:024x}")),
        // One in four caused by the one before it.
        parent: (n % 4 == 1).then(|| format!("inv-{}", n - 1)),
    })
}

pub fn ids(records: &[InvocationRecord]) -> Vec<String> {
    records.iter().map(|r| r.id.clone()).collect()
}

fn numbered_invocations(range: impl Iterator<Item = usize>) -> Vec<String> {
    range.map(|n| format!("inv-{n}")).collect()
}

pub async fn invocations_batch_limit_and_filter(store: &dyn Records) -> TestResult {
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

pub async fn invocations_are_trimmed_to_the_newest(store: &dyn Records) -> TestResult {
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

pub async fn invocation_summary_totals_and_percentiles(store: &dyn Records) -> TestResult {
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

/// A trace's records: those of one namespace with that root, across its functions,
/// oldest first by `started_at` (not by appending), with their parents; capped.
pub async fn trace_invocations_cross_functions_oldest_first(store: &dyn Records) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    let (hello, world) = (func("hello")?, func("world")?);
    const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";
    assert!(store.trace_invocations(&default, ROOT).await?.is_empty());
    let traced = |namespace: &Namespace, function: &FunctionName, n: usize, parent: Option<&str>| {
        invocation(namespace, function, n).map(|r| InvocationRecord {
            trace: Some(ROOT.to_owned()),
            parent: parent.map(str::to_owned),
            ..r
        })
    };
    // Appended as invocations end: the callee's record before its caller's.
    let batch = [
        traced(&default, &world, 2, Some("inv-1"))?,
        traced(&default, &hello, 1, None)?,
        // Another namespace's record with the same root is not this trace's.
        traced(&other, &hello, 3, None)?,
        // Another root, and none.
        invocation(&default, &hello, 4)?,
        invocation(&default, &hello, 5)?,
    ];
    store.append_invocations(&batch).await?;
    store
        .append_invocations(&[traced(&default, &hello, 6, Some("inv-2"))?])
        .await?;
    let found = store.trace_invocations(&default, ROOT).await?;
    assert_eq!(ids(&found), ["inv-1", "inv-2", "inv-6"]);
    assert_eq!(found[0], batch[1], "a record reads back as appended");
    assert_eq!(found[1].function, world);
    assert_eq!(found[1].parent.as_deref(), Some("inv-1"));
    assert_eq!(found[2].parent.as_deref(), Some("inv-2"));
    assert_eq!(ids(&store.trace_invocations(&other, ROOT).await?), ["inv-3"]);
    assert!(
        store
            .trace_invocations(&default, "1-5759e988-000000000000000000000000")
            .await?
            .is_empty()
    );

    // Capped at the oldest TRACE_INVOCATIONS_MAX.
    let crowd = func("crowd")?;
    let many = (0..TRACE_INVOCATIONS_MAX + 5)
        .map(|n| traced(&default, &crowd, 10_000 + n, None))
        .collect::<TestResult<Vec<_>>>()?;
    store.append_invocations(&many).await?;
    let capped = store.trace_invocations(&default, ROOT).await?;
    assert_eq!(capped.len(), TRACE_INVOCATIONS_MAX);
    assert_eq!(ids(&capped[..3]), ["inv-1", "inv-2", "inv-6"]);
    Ok(())
}

pub async fn records_forget_function_touches_only_that_function(store: &dyn Records) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    let (one, two) = (func("one")?, func("two")?);
    // Records need no deployed function.
    store
        .append_logs(&[
            log_line(&default, &one, "i1", 0)?,
            log_line(&default, &two, "i2", 1)?,
            log_line(&other, &one, "i3", 2)?,
        ])
        .await?;
    store
        .append_invocations(&[
            invocation(&default, &one, 0)?,
            invocation(&default, &two, 1)?,
            invocation(&other, &one, 4)?,
        ])
        .await?;

    store.forget_function(&default, &one).await?;
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
        "forgetting took another function's invocations"
    );
    assert_eq!(
        texts(&store.logs(&default, &two, &LogQuery::default()).await?),
        ["line 1"],
        "forgetting took another function's logs"
    );
    assert_eq!(
        texts(&store.logs(&other, &one, &LogQuery::default()).await?),
        ["line 2"],
        "forgetting crossed namespaces"
    );
    assert_eq!(
        ids(&store
            .invocations(&other, &one, &InvocationQuery::default())
            .await?),
        ["inv-4"],
        "forgetting crossed namespaces"
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
    assert_eq!(
        ids(&store
            .invocations(&default, &one, &InvocationQuery::default())
            .await?),
        ["inv-2"]
    );
    // Idempotent, and again only that function's.
    store.forget_function(&default, &one).await?;
    store.forget_function(&default, &one).await?;
    assert!(
        store
            .invocations(&default, &one, &InvocationQuery::default())
            .await?
            .is_empty()
    );
    assert_eq!(store.invocation_summary(&default, &two).await?.invocations, 2);
    Ok(())
}
