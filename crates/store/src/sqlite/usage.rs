//! The SQLite [`Usage`]: reads the `usage` table, one row per namespace, function,
//! version and hour, which [`super::records`] adds to as invocation records are appended.
//! Grouping is SQL's `GROUP BY` over those rows.

use super::{OpError, SqliteStore};
use crate::usage::{DAY_MS, hour_of};
use crate::{CapacityHeld, Result, StoreError, Usage, UsageGrouping, UsageQuery, UsageRow};
use async_trait::async_trait;
use rusqlite::params;
use wisp_core::{FunctionName, Namespace, VersionId};

/// The query for `query`'s filters and grouping. Parameters: `?1` the namespace, `?2`
/// the function, `?3` the first hour, `?4` the exclusive end. Only the filters given
/// appear in the text, rather than `?1 IS NULL OR …`, so each query searches the
/// primary key (a namespace given) or `usage_by_hour`; the unit tests check the plans.
pub(super) fn query_sql(namespace: bool, function: bool, group_by: UsageGrouping) -> String {
    let mut conditions = Vec::new();
    if namespace {
        conditions.push("namespace = ?1");
    }
    if function {
        conditions.push("function = ?2");
    }
    conditions.push("hour >= ?3 AND hour < ?4");
    let day = format!("(hour - (hour % {DAY_MS} + {DAY_MS}) % {DAY_MS})");
    let (function, version, period) = match group_by {
        UsageGrouping::Namespace => ("NULL", "NULL", "NULL".to_owned()),
        UsageGrouping::Function => ("function", "NULL", "NULL".to_owned()),
        UsageGrouping::Version => ("function", "version", "NULL".to_owned()),
        UsageGrouping::Day => ("NULL", "NULL", day),
        UsageGrouping::Hour => ("NULL", "NULL", "hour".to_owned()),
    };
    // Grouping by a NULL constant would be no grouping at all, so only real columns.
    let groups = ["namespace", function, version, period.as_str()]
        .into_iter()
        .filter(|column| *column != "NULL")
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT namespace, {function}, {version}, {period},
                sum(requests), sum(errors), sum(billed_ms), sum(mb_ms),
                sum(reserved_mb_ms), sum(capacity_mb_ms)
         FROM usage WHERE {}
         GROUP BY {groups} ORDER BY {groups}",
        conditions.join(" AND ")
    )
}

#[async_trait]
impl Usage for SqliteStore {
    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>> {
        let query = query.clone();
        let what = match &query.namespace {
            Some(ns) => format!("reading the usage of `{ns}`"),
            None => "reading the usage of every namespace".to_owned(),
        };
        self.read(what, move |conn| {
            let sql = query_sql(
                query.namespace.is_some(),
                query.function.is_some(),
                query.group_by,
            );
            conn.prepare_cached(&sql)?
                .query_map(
                    params![
                        query.namespace.as_ref().map(Namespace::as_str),
                        query.function.as_ref().map(FunctionName::as_str),
                        hour_of(query.from),
                        query.to,
                    ],
                    SumsRow::read,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?
                .into_iter()
                .map(SumsRow::into_row)
                .collect()
        })
        .await
    }

    async fn add_capacity(&self, held: &[CapacityHeld]) -> Result<()> {
        if held.is_empty() {
            return Ok(());
        }
        let held = held.to_vec();
        let what = format!("recording reserved capacity of {} versions", held.len());
        self.write(what, move |conn| {
            let tx = conn.transaction()?;
            {
                let mut add = tx.prepare_cached(
                    "INSERT INTO usage (namespace, function, version, hour, requests, errors, billed_ms,
                                        mb_ms, capacity_mb_ms)
                     VALUES (?1, ?2, ?3, ?4, 0, 0, 0, 0, ?5)
                     ON CONFLICT (namespace, function, version, hour) DO UPDATE SET
                         capacity_mb_ms = CASE WHEN capacity_mb_ms > 9223372036854775807 - excluded.capacity_mb_ms
                             THEN 9223372036854775807 ELSE capacity_mb_ms + excluded.capacity_mb_ms END",
                )?;
                for h in &held {
                    add.execute(params![
                        h.namespace.as_str(),
                        h.function.as_str(),
                        h.version.0,
                        hour_of(h.hour),
                        i64::try_from(h.mb_ms).unwrap_or(i64::MAX),
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

/// One group as SQLite returns it, before its names and sums are checked.
struct SumsRow {
    namespace: String,
    function: Option<String>,
    version: Option<String>,
    period: Option<i64>,
    sums: [i64; 6],
}

impl SumsRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<SumsRow> {
        Ok(SumsRow {
            namespace: row.get(0)?,
            function: row.get(1)?,
            version: row.get(2)?,
            period: row.get(3)?,
            sums: [
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
                row.get(7)?,
                row.get(8)?,
                row.get(9)?,
            ],
        })
    }

    fn into_row(self) -> Result<UsageRow, OpError> {
        let corrupt = |what: String| OpError::Store(StoreError::Corrupt(format!("a usage row has {what}")));
        let namespace = Namespace::new(self.namespace.as_str())
            .map_err(|e| corrupt(format!("an invalid namespace: {e}")))?;
        let function = self
            .function
            .map(|f| FunctionName::new(f.as_str()))
            .transpose()
            .map_err(|e| corrupt(format!("an invalid function name: {e}")))?;
        let [requests, errors, billed_ms, mb_ms, reserved_mb_ms, capacity_mb_ms] =
            self.sums.map(u64::try_from);
        let sum = |name: &str, value: Result<u64, std::num::TryFromIntError>| {
            value.map_err(|_| corrupt(format!("a negative {name} in `{namespace}`")))
        };
        Ok(UsageRow {
            requests: sum("requests", requests)?,
            errors: sum("errors", errors)?,
            billed_ms: sum("billed_ms", billed_ms)?,
            mb_ms: sum("mb_ms", mb_ms)?,
            reserved_mb_ms: sum("reserved_mb_ms", reserved_mb_ms)?,
            capacity_mb_ms: sum("capacity_mb_ms", capacity_mb_ms)?,
            namespace,
            function,
            version: self.version.map(VersionId),
            period: self.period,
        })
    }
}
