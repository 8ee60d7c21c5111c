//! Checks of the usage rollup: what `append_invocations` counts (once per invocation id),
//! the sums of every grouping, the filters and hour bounds, and that usage outlives the
//! records it was counted from (forgotten or trimmed).

use super::*;
use wisp_store::{
    CapacityHeld, DAY_MS, HOUR_MS, INVOCATIONS_KEPT_PER_FUNCTION, InvocationRecord, Records, Usage,
    UsageGrouping, UsageQuery, UsageRow, hour_of,
};

/// What the usage checks call: appending records and reading their rollup.
pub trait RecordsAndUsage: Records + Usage {}

impl<S: Records + Usage> RecordsAndUsage for S {}

/// The hour of [`T`], where the checks' invocations start.
pub const H: i64 = 1_699_999_200_000;

/// Invocation `id` of a version, started at `started_at`, billed `billed_ms` at
/// `memory_mb`, failed or not.
#[expect(
    clippy::too_many_arguments,
    reason = "a test helper naming every field that counts"
)]
pub fn billed(
    namespace: &Namespace,
    function: &FunctionName,
    version: &str,
    id: &str,
    started_at: i64,
    memory_mb: u32,
    billed_ms: u64,
    failed: bool,
) -> InvocationRecord {
    InvocationRecord {
        namespace: namespace.clone(),
        function: function.clone(),
        id: id.to_owned(),
        version: VersionId(version.to_owned()),
        version_number: 1,
        started_at,
        cold: false,
        init_us: None,
        queue_us: 0,
        run_us: billed_ms * 1_000,
        error: failed.then(|| "function_error".to_owned()),
        memory_mb,
        billed_ms,
        reserved: false,
        trace: None,
        parent: None,
    }
}

/// A usage row: `(namespace, function, version, period)` and the four sums.
pub fn row(
    namespace: &str,
    function: Option<&str>,
    version: Option<&str>,
    period: Option<i64>,
    [requests, errors, billed_ms, mb_ms]: [u64; 4],
) -> TestResult<UsageRow> {
    Ok(UsageRow {
        namespace: ns(namespace)?,
        function: function.map(func).transpose()?,
        version: version.map(|v| VersionId(v.to_owned())),
        period,
        requests,
        errors,
        billed_ms,
        mb_ms,
        reserved_mb_ms: 0,
        capacity_mb_ms: 0,
    })
}

pub fn query(
    namespace: Option<&str>,
    function: Option<&str>,
    from: i64,
    to: i64,
    group_by: UsageGrouping,
) -> TestResult<UsageQuery> {
    Ok(UsageQuery {
        namespace: namespace.map(ns).transpose()?,
        function: function.map(func).transpose()?,
        from,
        to,
        group_by,
    })
}

/// Five invocations over two namespaces, two functions, two versions, three hours and two
/// UTC days (the hour after `H + HOUR_MS` starts a new day).
pub fn sample() -> TestResult<Vec<InvocationRecord>> {
    let (default, other) = (ns("default")?, ns("other")?);
    let (hello, world) = (func("hello")?, func("world")?);
    Ok(vec![
        billed(&default, &hello, "v1", "inv-1", H + 10, 128, 5, false),
        billed(&default, &hello, "v1", "inv-2", H + 20, 128, 7, true),
        billed(&default, &hello, "v2", "inv-3", H + HOUR_MS + 5, 256, 10, false),
        billed(
            &default,
            &world,
            "v1",
            "inv-4",
            H + 2 * HOUR_MS + 1,
            512,
            1,
            false,
        ),
        billed(&other, &hello, "v1", "inv-5", H + 30, 1_024, 3, true),
    ])
}

pub async fn usage_sums_every_grouping(store: &dyn RecordsAndUsage) -> TestResult {
    assert_eq!(hour_of(T), H, "the fixture's hour");
    let day = H - 22 * HOUR_MS;
    assert_eq!(day % DAY_MS, 0, "the fixture's day");
    let all = |group_by| query(None, None, H, H + 3 * HOUR_MS, group_by);
    assert!(store.usage(&all(UsageGrouping::Namespace)?).await?.is_empty());

    store.append_invocations(&sample()?).await?;
    assert_eq!(
        store.usage(&all(UsageGrouping::Namespace)?).await?,
        [
            row("default", None, None, None, [4, 1, 23, 4_608])?,
            row("other", None, None, None, [1, 1, 3, 3_072])?,
        ]
    );
    assert_eq!(
        store.usage(&all(UsageGrouping::Function)?).await?,
        [
            row("default", Some("hello"), None, None, [3, 1, 22, 4_096])?,
            row("default", Some("world"), None, None, [1, 0, 1, 512])?,
            row("other", Some("hello"), None, None, [1, 1, 3, 3_072])?,
        ]
    );
    assert_eq!(
        store.usage(&all(UsageGrouping::Version)?).await?,
        [
            row("default", Some("hello"), Some("v1"), None, [2, 1, 12, 1_536])?,
            row("default", Some("hello"), Some("v2"), None, [1, 0, 10, 2_560])?,
            row("default", Some("world"), Some("v1"), None, [1, 0, 1, 512])?,
            row("other", Some("hello"), Some("v1"), None, [1, 1, 3, 3_072])?,
        ]
    );
    assert_eq!(
        store.usage(&all(UsageGrouping::Hour)?).await?,
        [
            row("default", None, None, Some(H), [2, 1, 12, 1_536])?,
            row("default", None, None, Some(H + HOUR_MS), [1, 0, 10, 2_560])?,
            row("default", None, None, Some(H + 2 * HOUR_MS), [1, 0, 1, 512])?,
            row("other", None, None, Some(H), [1, 1, 3, 3_072])?,
        ]
    );
    assert_eq!(
        store.usage(&all(UsageGrouping::Day)?).await?,
        [
            row("default", None, None, Some(day), [3, 1, 22, 4_096])?,
            row("default", None, None, Some(day + DAY_MS), [1, 0, 1, 512])?,
            row("other", None, None, Some(day), [1, 1, 3, 3_072])?,
        ]
    );
    Ok(())
}

pub async fn usage_counts_each_invocation_once(store: &dyn RecordsAndUsage) -> TestResult {
    let (default, hello) = (ns("default")?, func("hello")?);
    let batch = sample()?;
    store.append_invocations(&batch).await?;
    // The retry of a batch whose first try succeeded, and the same run (invocation id
    // and start) twice in one batch, whatever else the copy says: neither a second
    // record nor counted twice.
    store.append_invocations(&batch).await?;
    let changed = billed(&default, &hello, "v1", "inv-1", H + 10, 4_096, 900, true);
    let new = billed(&default, &hello, "v1", "inv-6", H + 40, 128, 2, false);
    store.append_invocations(&[changed, new.clone(), new]).await?;
    let total = query(
        Some("default"),
        Some("hello"),
        H,
        H + 3 * HOUR_MS,
        UsageGrouping::Namespace,
    )?;
    assert_eq!(
        store.usage(&total).await?,
        [row("default", None, None, None, [4, 1, 24, 4_352])?]
    );
    let records = store
        .invocations(&default, &hello, &wisp_store::InvocationQuery::default())
        .await?;
    assert_eq!(records.len(), 4, "a re-appended record was recorded again");
    // What was appended reads back, with its memory and billed duration.
    assert_eq!(records[0], batch[0]);
    // Another attempt of the same invocation (same id, a later start) is another run.
    let retry = billed(&default, &hello, "v1", "inv-1", H + 20, 128, 5, true);
    store.append_invocations(&[retry]).await?;
    assert_eq!(
        store.usage(&total).await?,
        [row("default", None, None, None, [5, 2, 29, 4_992])?]
    );
    Ok(())
}

pub async fn usage_filters_and_bounds(store: &dyn RecordsAndUsage) -> TestResult {
    store.append_invocations(&sample()?).await?;
    let end = H + 3 * HOUR_MS;
    assert_eq!(
        store
            .usage(&query(
                Some("default"),
                Some("hello"),
                H,
                end,
                UsageGrouping::Function
            )?)
            .await?,
        [row("default", Some("hello"), None, None, [3, 1, 22, 4_096])?],
        "another function or namespace counted"
    );
    assert_eq!(
        store
            .usage(&query(None, Some("hello"), H, end, UsageGrouping::Function)?)
            .await?,
        [
            row("default", Some("hello"), None, None, [3, 1, 22, 4_096])?,
            row("other", Some("hello"), None, None, [1, 1, 3, 3_072])?,
        ],
        "a function filter without a namespace spans namespaces"
    );
    assert_eq!(
        store
            .usage(&query(Some("other"), None, H, end, UsageGrouping::Function)?)
            .await?,
        [row("other", Some("hello"), None, None, [1, 1, 3, 3_072])?]
    );
    assert!(
        store
            .usage(&query(Some("gamma"), None, H, end, UsageGrouping::Namespace)?)
            .await?
            .is_empty()
    );
    // `from` is floored to its hour; `to` is exclusive.
    let second_hour = query(
        Some("default"),
        None,
        H + HOUR_MS + HOUR_MS / 2,
        H + 2 * HOUR_MS,
        UsageGrouping::Hour,
    )?;
    assert_eq!(
        store.usage(&second_hour).await?,
        [row("default", None, None, Some(H + HOUR_MS), [1, 0, 10, 2_560])?]
    );
    // An hour that starts before `to` counts whole.
    let into_the_third = query(
        Some("default"),
        None,
        H + HOUR_MS,
        H + 2 * HOUR_MS + 1,
        UsageGrouping::Hour,
    )?;
    assert_eq!(
        store.usage(&into_the_third).await?,
        [
            row("default", None, None, Some(H + HOUR_MS), [1, 0, 10, 2_560])?,
            row("default", None, None, Some(H + 2 * HOUR_MS), [1, 0, 1, 512])?,
        ]
    );
    for (from, to) in [(H + 3 * HOUR_MS, H + 4 * HOUR_MS), (H - HOUR_MS, H), (H, H)] {
        assert!(
            store
                .usage(&query(None, None, from, to, UsageGrouping::Hour)?)
                .await?
                .is_empty(),
            "hours outside [{from}, {to}) counted"
        );
    }
    Ok(())
}

pub async fn usage_survives_forget_function_and_trimming(store: &dyn RecordsAndUsage) -> TestResult {
    let (default, busy) = (ns("default")?, func("busy")?);
    store.append_invocations(&sample()?).await?;
    let all = query(None, None, H, H + 3 * HOUR_MS, UsageGrouping::Function)?;
    let before = store.usage(&all).await?;
    store.forget_function(&default, &func("hello")?).await?;
    assert_eq!(
        store.usage(&all).await?,
        before,
        "forgetting a function forgot its usage"
    );

    // More records than a function keeps: the trimmed ones stay counted.
    let kept = INVOCATIONS_KEPT_PER_FUNCTION;
    let batch: Vec<InvocationRecord> = (0..kept + 3)
        .map(|n| billed(&default, &busy, "v1", &format!("busy-{n}"), H + 50, 128, 2, false))
        .collect();
    store.append_invocations(&batch).await?;
    let n = u64::try_from(kept + 3)?;
    let busy_only = query(
        Some("default"),
        Some("busy"),
        H,
        H + HOUR_MS,
        UsageGrouping::Function,
    )?;
    assert_eq!(
        store.usage(&busy_only).await?,
        [row("default", Some("busy"), None, None, [n, 0, 2 * n, 256 * n])?]
    );
    Ok(())
}

/// Runs on reserved capacity are counted apart (and in `mb_ms`); capacity held adds to
/// its hours' rows, making a row for an hour without invocations.
pub async fn usage_counts_reserved_runs_and_capacity_held(store: &dyn RecordsAndUsage) -> TestResult {
    let (default, warm) = (ns("default")?, func("warm")?);
    let mut on_reserved = billed(&default, &warm, "v1", "r1", H + 10, 1024, 100, false);
    on_reserved.reserved = true;
    let on_demand = billed(&default, &warm, "v1", "d1", H + 20, 1024, 50, false);
    store.append_invocations(&[on_reserved, on_demand]).await?;
    let held = |hour, mb_ms| CapacityHeld {
        namespace: default.clone(),
        function: warm.clone(),
        version: VersionId("v1".to_owned()),
        hour,
        mb_ms,
    };
    store.add_capacity(&[held(H, 2048 * 1_000)]).await?;
    store
        .add_capacity(&[held(H, 2048 * 500), held(H + HOUR_MS, 2048 * 250)])
        .await?;
    store.add_capacity(&[]).await?;
    let rows = store
        .usage(&query(
            Some("default"),
            None,
            H,
            H + 2 * HOUR_MS,
            UsageGrouping::Hour,
        )?)
        .await?;
    let mut first = row("default", None, None, Some(H), [2, 0, 150, 1024 * 150])?;
    first.reserved_mb_ms = 1024 * 100;
    first.capacity_mb_ms = 2048 * 1_500;
    let mut second = row("default", None, None, Some(H + HOUR_MS), [0, 0, 0, 0])?;
    second.capacity_mb_ms = 2048 * 250;
    assert_eq!(rows, [first, second]);
    Ok(())
}
