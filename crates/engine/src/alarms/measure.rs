//! An alarm's datapoint for the period that just ended: from its function's counters
//! (what was counted since the last period's end, per version), or from the gauges the
//! store holds (dead letters, async backlog, queues; read once per namespace per
//! evaluation, however many alarms watch them), or from the namespace's month of usage.

use super::judge::Datapoint;
use crate::Engine;
use crate::metrics::{Tally, quota_used};
use std::collections::HashMap;
use wisp_core::alarm::AlarmSubject;
use wisp_core::{AlarmMetric, AlarmSpec, Namespace, UnixMillis};
use wisp_store::{EventBacklog, QueueDepth};

/// A function's counters at the last period's end, per version number.
pub(super) type Baseline = HashMap<u32, Tally>;

/// The store's gauges, read on first use in one evaluation.
#[derive(Default)]
pub(super) struct Gauges {
    backlog: HashMap<Namespace, Result<Vec<EventBacklog>, String>>,
    queues: HashMap<Namespace, Result<Vec<QueueDepth>, String>>,
}

impl Gauges {
    async fn backlog(&mut self, engine: &Engine, ns: &Namespace) -> &Result<Vec<EventBacklog>, String> {
        if !self.backlog.contains_key(ns) {
            let read = engine
                .store
                .event_backlog(Some(ns))
                .await
                .map_err(|e| format!("cannot read the async backlog: {e}"));
            self.backlog.insert(ns.clone(), read);
        }
        &self.backlog[ns]
    }

    async fn queues(
        &mut self,
        engine: &Engine,
        ns: &Namespace,
        now: UnixMillis,
    ) -> &Result<Vec<QueueDepth>, String> {
        if !self.queues.contains_key(ns) {
            let read = engine
                .store
                .queue_depths(Some(ns), now)
                .await
                .map_err(|e| format!("cannot read the queues: {e}"));
            self.queues.insert(ns.clone(), read);
        }
        &self.queues[ns]
    }
}

/// The datapoint of `spec` in namespace `ns` for the period ending `now`. `None` the
/// first time a function's counters are read (`baseline` is `None`): they become the
/// baseline, and the next period's datapoint counts from them.
pub(super) async fn measure(
    engine: &Engine,
    ns: &Namespace,
    spec: &AlarmSpec,
    baseline: &mut Option<Baseline>,
    gauges: &mut Gauges,
    now: UnixMillis,
) -> Option<Datapoint> {
    let missing = |why: String| Some(Datapoint::Missing(why));
    match spec.metric.subject() {
        AlarmSubject::Function => {
            let function = spec.function.as_ref()?;
            if engine.function(ns, function).is_none() {
                *baseline = None;
                return missing(format!("function `{function}` is not deployed"));
            }
            match spec.metric {
                AlarmMetric::DeadLetters | AlarmMetric::AsyncBacklog => {
                    let rows = match gauges.backlog(engine, ns).await {
                        Ok(rows) => rows,
                        Err(why) => return missing(why.clone()),
                    };
                    let row = rows.iter().find(|b| &b.function == function);
                    let value = match spec.metric {
                        AlarmMetric::DeadLetters => row.map_or(0, |b| b.failed),
                        _ => row.map_or(0, |b| b.queued),
                    };
                    Some(Datapoint::Value(value as f64))
                }
                metric => {
                    let now_tallies: Baseline = engine.metrics.tallies(ns, function).into_iter().collect();
                    // The first read is the baseline: no datapoint yet.
                    let before = baseline.replace(now_tallies.clone())?;
                    let mut counted = Tally::default();
                    for (number, tally) in &now_tallies {
                        counted.add(&tally.since(&before.get(number).copied().unwrap_or_default()));
                    }
                    let none_ended = || format!("no invocation of `{function}` ended");
                    let value = match metric {
                        AlarmMetric::ErrorRate if counted.ended == 0 => return missing(none_ended()),
                        AlarmMetric::ErrorRate => counted.errors as f64 / counted.ended as f64,
                        AlarmMetric::Errors => counted.errors as f64,
                        AlarmMetric::Invocations => counted.ended as f64,
                        AlarmMetric::Throttles => counted.throttled as f64,
                        _ => match metric.quantile().and_then(|q| counted.duration_quantile(q)) {
                            Some(seconds) => seconds,
                            None => return missing(none_ended()),
                        },
                    };
                    Some(Datapoint::Value(value))
                }
            }
        }
        AlarmSubject::Queue => {
            let queue = spec.queue.as_ref()?;
            let rows = match gauges.queues(engine, ns, now).await {
                Ok(rows) => rows,
                Err(why) => return missing(why.clone()),
            };
            let Some(row) = rows.iter().find(|q| &q.queue == queue) else {
                return missing(format!("there is no queue `{queue}`"));
            };
            let value = match spec.metric {
                AlarmMetric::QueueAge => row
                    .oldest_sent_ms
                    .map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0),
                _ => (row.stats.visible + row.stats.delayed) as f64,
            };
            Some(Datapoint::Value(value))
        }
        AlarmSubject::Namespace => {
            let (used, _) = engine.month_usage(ns);
            let fractions = quota_used(&engine.plan(ns), used);
            match fractions.iter().map(|(_, f)| *f).reduce(f64::max) {
                Some(most) => Some(Datapoint::Value(most)),
                None => missing(format!("namespace `{ns}` sets no quota")),
            }
        }
    }
}
