//! An invocation's record held until its answer is judged. On the attempt path (the async
//! pipeline and the queue triggers) an http function's 5xx answer, or a body past the
//! limit, is the function's failure; but the runtime reports the guest's end without
//! seeing its answer, and may report it before the answer's head is read. A [`Verdict`]
//! writes the record once both are known: the runtime's report and the attempt's
//! judgement, in either order.

use crate::logs::LogSink;
use crate::metrics::VersionMetrics;
use std::sync::{Arc, Mutex, PoisonError};
use wisp_core::ErrorCode;
use wisp_store::InvocationRecord;

/// See the module docs.
pub(crate) struct Verdict {
    state: Mutex<State>,
    sink: LogSink,
    /// The version's counters, which count the record once it is judged.
    metrics: Arc<VersionMetrics>,
}

enum State {
    /// Neither is known.
    Open,
    /// The runtime reported; the record waits for the judgement.
    Finished(Box<InvocationRecord>),
    /// The attempt judged; the judgement waits for the record.
    Judged(Option<ErrorCode>),
    /// The record is written.
    Written,
}

impl Verdict {
    pub(crate) fn new(sink: LogSink, metrics: Arc<VersionMetrics>) -> Arc<Verdict> {
        Arc::new(Verdict {
            state: Mutex::new(State::Open),
            sink,
            metrics,
        })
    }

    /// The runtime's report of the guest's end.
    pub(crate) fn finished(&self, record: InvocationRecord) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut *state, State::Written) {
            State::Judged(error) => self.write(record, error),
            _ => *state = State::Finished(Box::new(record)),
        }
    }

    /// The attempt's judgement of the answer: `None` when it is the function's success
    /// (or was not read).
    fn judge(&self, error: Option<ErrorCode>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut *state, State::Written) {
            State::Finished(record) => self.write(*record, error),
            State::Open => *state = State::Judged(error),
            // Judged twice cannot happen ([`Judge`] is taken once); written is final.
            other => *state = other,
        }
    }

    fn write(&self, mut record: InvocationRecord, error: Option<ErrorCode>) {
        if record.error.is_none() {
            record.error = error.map(|code| code.as_str().to_string());
        }
        self.metrics.observe(&record);
        self.sink.record_invocation(record);
    }
}

/// The attempt's side of a [`Verdict`]: judged once, and on drop as a success when it
/// was not (an attempt that ended before its answer was read leaves the record as the
/// runtime reported it).
pub(crate) struct Judge(Option<Arc<Verdict>>);

impl Judge {
    pub(crate) fn new(verdict: Arc<Verdict>) -> Judge {
        Judge(Some(verdict))
    }

    pub(crate) fn judge(mut self, error: Option<ErrorCode>) {
        if let Some(verdict) = self.0.take() {
            verdict.judge(error);
        }
    }
}

impl Drop for Judge {
    fn drop(&mut self) {
        if let Some(verdict) = self.0.take() {
            verdict.judge(None);
        }
    }
}
