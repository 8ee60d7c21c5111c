//! Alarms: rules over Wisp's metrics ([`wisp_core::AlarmSpec`]), kept in the store
//! ([`wisp_store::Alarms`]), and the task that evaluates them: at the end of each
//! alarm's period it takes a datapoint ([`measure`]), judges the state the latest
//! ones put the alarm in ([`judge`]), records a change by compare-and-set, and carries
//! out the change's actions ([`notify`]).
//!
//! The task keeps each alarm's datapoints in memory; they start again after a
//! restart (the state does not: it is the store's), so an alarm needs its
//! `evaluation_periods` again before it changes. The rules are read again whenever
//! the API changes one here and every [`RELOAD_EVERY`] besides. Counters are this
//! process's: on a cluster each node would judge its own share (see `docs/alarms.md`).

mod judge;
mod measure;
mod notify;

use crate::{Engine, EngineError};
use judge::Datapoint;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use wisp_core::alarm::ActionTarget;
use wisp_core::exposition::{Exposition, Kind};
use wisp_core::wall::now_ms;
use wisp_core::{AlarmName, AlarmSpec, AlarmState, ErrorCode, Namespace, UnixMillis};
use wisp_store::{AlarmPut, AlarmRecord, StateChange};

/// How often the task looks for periods that ended.
const TICK: Duration = Duration::from_millis(250);
/// How often the rules are read from the store again when nothing here changed them.
const RELOAD_EVERY: Duration = Duration::from_secs(10);

type Key = (Namespace, AlarmName);

/// What the engine holds for alarms: the task's wake-up, and each alarm's latest
/// judgement for the API.
#[derive(Default)]
pub(crate) struct AlarmBook {
    /// Wakes the task (a rule changed here, or a record must be read again).
    wake: Arc<tokio::sync::Notify>,
    judged: Mutex<HashMap<Key, Judged>>,
}

/// An alarm's latest judgement: what its last period's datapoint was, and what the
/// datapoints said, whether or not the state changed. Kept in memory only.
#[derive(Clone, Debug, PartialEq)]
pub struct Judged {
    /// The end of the period judged.
    pub at_ms: UnixMillis,
    /// The period's datapoint, if it had one.
    pub value: Option<f64>,
    pub state: AlarmState,
    pub reason: String,
}

/// One alarm as the task follows it.
struct Watch {
    record: AlarmRecord,
    /// The end of the last period evaluated, in ms since the Unix epoch.
    last_end: Option<UnixMillis>,
    /// The latest datapoints, oldest first, at most `evaluation_periods`.
    window: VecDeque<Datapoint>,
    /// Its function's counters at the last period's end.
    baseline: Option<measure::Baseline>,
}

fn alarm_not_found(name: &AlarmName) -> EngineError {
    EngineError::new(
        ErrorCode::AlarmNotFound,
        format!("there is no alarm named `{name}`"),
    )
}

impl Engine {
    /// Creates an alarm or replaces its rule, after checking the rule and that the
    /// functions, queues and topics its actions name exist (webhooks: that the URL is
    /// one). What the rule watches need not exist yet: until it does, the alarm has no
    /// data.
    pub async fn put_alarm(
        &self,
        ns: &Namespace,
        name: &AlarmName,
        spec: &AlarmSpec,
    ) -> Result<AlarmPut, EngineError> {
        spec.validate()
            .map_err(|e| EngineError::new(ErrorCode::InvalidRequest, e.to_string()))?;
        for (i, action) in spec.actions.iter().enumerate() {
            let named = |e: EngineError| EngineError::new(e.code, format!("actions[{i}]: {}", e.detail));
            match &action.target {
                ActionTarget::Webhook(url) => {
                    crate::topics::webhook::check_url(url).map_err(named)?;
                }
                ActionTarget::Function(f) => {
                    if self.function(ns, f).is_none() {
                        return Err(named(EngineError::function_not_found(f.as_str())));
                    }
                }
                ActionTarget::Queue(q) => {
                    self.queue(ns, q).await.map_err(named)?;
                }
                ActionTarget::Topic(t) => {
                    self.topic(ns, t).await.map_err(named)?;
                }
            }
        }
        let put = self.store.put_alarm(ns, name, spec, now_ms()).await?;
        self.alarms.wake.notify_one();
        Ok(put)
    }

    /// An alarm, with its state and history.
    pub async fn alarm(&self, ns: &Namespace, name: &AlarmName) -> Result<AlarmRecord, EngineError> {
        self.store
            .alarm(ns, name)
            .await?
            .ok_or_else(|| alarm_not_found(name))
    }

    /// A namespace's alarms, by name.
    pub async fn alarms(&self, ns: &Namespace) -> Result<Vec<AlarmRecord>, EngineError> {
        Ok(self.store.list_alarms(Some(ns)).await?)
    }

    /// Deletes an alarm; `alarm_not_found` when there is none. Actions of its changes
    /// still being carried out finish.
    pub async fn delete_alarm(&self, ns: &Namespace, name: &AlarmName) -> Result<(), EngineError> {
        if !self.store.delete_alarm(ns, name).await? {
            return Err(alarm_not_found(name));
        }
        self.alarms.wake.notify_one();
        Ok(())
    }

    /// An alarm's latest judgement, once it has had one since Wisp started or its rule
    /// last changed.
    pub fn alarm_judged(&self, ns: &Namespace, name: &AlarmName) -> Option<Judged> {
        self.alarms
            .judged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(ns.clone(), name.clone()))
            .cloned()
    }

    /// `wisp_alarm_state`: 1 for the state each alarm is in, 0 for the others.
    pub(crate) async fn write_alarm_metrics(
        &self,
        e: &mut Exposition,
        ns: Option<&Namespace>,
    ) -> Result<(), EngineError> {
        let alarms = self.store.list_alarms(ns).await?;
        e.family(
            "wisp_alarm_state",
            Kind::Gauge,
            "1 for the state each alarm is in (OK, ALARM or INSUFFICIENT_DATA), 0 for the others.",
        );
        for alarm in &alarms {
            for state in AlarmState::ALL {
                let labels = [
                    ("namespace", alarm.namespace.as_str()),
                    ("alarm", alarm.name.as_str()),
                    ("state", state.as_str()),
                ];
                e.gauge(
                    "wisp_alarm_state",
                    &labels,
                    f64::from(u8::from(alarm.state == state)),
                );
            }
        }
        Ok(())
    }

    /// Records `change` by compare-and-set on `seen`'s revision. When the revision moved
    /// but the rule did not (its actions were marked notified meanwhile), reads the
    /// record and tries once more, so a mark does not cost a period.
    async fn record_change(
        &self,
        ns: &Namespace,
        name: &AlarmName,
        seen: &mut AlarmRecord,
        change: &StateChange,
    ) -> wisp_store::Result<Option<AlarmRecord>> {
        if let Some(record) = self
            .store
            .set_alarm_state(ns, name, seen.revision, change)
            .await?
        {
            return Ok(Some(record));
        }
        match self.store.alarm(ns, name).await? {
            Some(now) if now.spec == seen.spec && now.state == seen.state => {
                *seen = now;
                self.store.set_alarm_state(ns, name, seen.revision, change).await
            }
            _ => Ok(None),
        }
    }

    /// Takes the datapoint of every alarm whose period ended, judges it, and records
    /// the changes; returns the records that changed.
    async fn evaluate(&self, watches: &mut HashMap<Key, Watch>) -> Vec<AlarmRecord> {
        let now = now_ms();
        let mut gauges = measure::Gauges::default();
        let mut changed = Vec::new();
        for ((ns, name), watch) in watches.iter_mut() {
            let spec = &watch.record.spec;
            let period = i64::try_from(spec.period.as_millis()).unwrap_or(i64::MAX).max(1);
            let end = now - now.rem_euclid(period);
            if watch.last_end == Some(end) {
                continue;
            }
            watch.last_end = Some(end);
            let Some(point) = measure::measure(self, ns, spec, &mut watch.baseline, &mut gauges, now).await
            else {
                continue;
            };
            let value = match point {
                Datapoint::Value(v) => Some(v),
                Datapoint::Missing(_) => None,
            };
            watch.window.push_back(point);
            while watch.window.len() > spec.evaluation_periods as usize {
                watch.window.pop_front();
            }
            let (state, reason) = judge::judge(spec, &watch.window, watch.record.state);
            let judged = Judged {
                at_ms: end,
                value,
                state,
                reason: reason.clone(),
            };
            self.alarms
                .judged
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert((ns.clone(), name.clone()), judged);
            if state == watch.record.state {
                continue;
            }
            let change = StateChange {
                to: state,
                reason,
                value,
                at_ms: end,
            };
            match self.record_change(ns, name, &mut watch.record, &change).await {
                Ok(Some(record)) => {
                    tracing::info!("alarm `{name}` of namespace `{ns}` is {state}: {}", change.reason);
                    watch.record = record.clone();
                    changed.push(record);
                }
                // Its rule changed, or another evaluator moved it: read it again.
                Ok(None) => self.alarms.wake.notify_one(),
                Err(e) => tracing::warn!("cannot record alarm `{name}`'s change to {state}: {e}"),
            }
        }
        changed
    }
}

/// Brings the watches in line with the store's records: a rule that changed starts
/// its datapoints again; an alarm gone is dropped.
fn sync(watches: &mut HashMap<Key, Watch>, records: Vec<AlarmRecord>, judged: &Mutex<HashMap<Key, Judged>>) {
    let mut judged = judged.lock().unwrap_or_else(PoisonError::into_inner);
    let mut seen = HashSet::with_capacity(records.len());
    for record in records {
        let key = (record.namespace.clone(), record.name.clone());
        seen.insert(key.clone());
        match watches.get_mut(&key) {
            Some(watch) if watch.record.spec == record.spec => watch.record = record,
            _ => {
                judged.remove(&key);
                watches.insert(
                    key,
                    Watch {
                        record,
                        last_end: None,
                        window: VecDeque::new(),
                        baseline: None,
                    },
                );
            }
        }
    }
    watches.retain(|key, _| seen.contains(key));
    judged.retain(|key, _| seen.contains(key));
}

/// Starts the task that evaluates alarms and carries out their actions.
pub(crate) fn start(engine: &Arc<Engine>) {
    let me = Arc::downgrade(engine);
    let wake = engine.alarms.wake.clone();
    tokio::spawn(async move {
        let mut watches: HashMap<Key, Watch> = HashMap::new();
        // Alarms whose changes' actions are being carried out, one task each.
        let mut notifying: HashSet<Key> = HashSet::new();
        let mut deliveries: JoinSet<Key> = JoinSet::new();
        let mut reload_at = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = wake.notified() => reload_at = Instant::now(),
                Some(done) = deliveries.join_next() => {
                    if let Ok(key) = done {
                        notifying.remove(&key);
                    }
                    // Changes recorded while it ran are carried out next.
                    reload_at = Instant::now();
                }
            }
            let Some(engine) = me.upgrade() else { return };
            let mut to_notify = Vec::new();
            if Instant::now() >= reload_at {
                reload_at = Instant::now() + RELOAD_EVERY;
                match engine.store.list_alarms(None).await {
                    Ok(records) => {
                        sync(&mut watches, records, &engine.alarms.judged);
                        to_notify.extend(
                            watches
                                .values()
                                .filter(|w| w.record.notified < w.record.transitions)
                                .map(|w| w.record.clone()),
                        );
                    }
                    Err(e) => tracing::warn!("cannot read the alarms: {e}"),
                }
            }
            to_notify.extend(engine.evaluate(&mut watches).await);
            drop(engine);
            for record in to_notify {
                let key = (record.namespace.clone(), record.name.clone());
                if notifying.insert(key.clone()) {
                    let me = me.clone();
                    deliveries.spawn(async move {
                        notify::notify(me, record).await;
                        key
                    });
                }
            }
        }
    });
}
