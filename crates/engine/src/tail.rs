//! Lambda's `LogType: Tail`: the end of one invocation's output, with a `REPORT` line,
//! handed to whoever asked for it before the invocation ran.

use std::fmt::Write;
use std::time::Duration;
use tokio::sync::oneshot;
use wisp_runtime::Logs;
use wisp_store::InvocationRecord;

/// How much of the end of an invocation's log a tail holds: Lambda's 4 KB.
pub const TAIL_BYTES: usize = 4096;

/// Asks for the tail of one invocation: the [`TailSender`] goes with the invocation
/// (`Engine::invoke`, `Engine::call`), the [`LogTail`] is awaited once it has run.
pub fn log_tail() -> (TailSender, LogTail) {
    let (tx, rx) = oneshot::channel();
    (TailSender(tx), LogTail(rx))
}

/// Where an invocation sends its tail when it finishes.
pub struct TailSender(oneshot::Sender<String>);

/// The tail of an invocation, once it has finished.
pub struct LogTail(oneshot::Receiver<String>);

impl TailSender {
    pub(crate) fn send(self, logs: &Logs, record: &InvocationRecord) {
        let _ = self.0.send(tail_text(logs, record));
    }
}

/// How long a tail is waited for once the answer is in: a guest may work on after
/// answering, and its run ends (and its tail comes) only then.
pub const TAIL_WAIT: Duration = Duration::from_millis(500);

impl LogTail {
    /// The tail, if the invocation finishes within [`TAIL_WAIT`] of this call; `None`
    /// if it does not, or never ran.
    pub async fn when_finished(self) -> Option<String> {
        tokio::time::timeout(TAIL_WAIT, self.0).await.ok()?.ok()
    }
}

/// The output as the log keeps it (stdout's lines, then stderr's), the note of dropped
/// output, and Lambda's `REPORT` line unless the runtime wrote one; its last
/// [`TAIL_BYTES`], cut at a character.
fn tail_text(logs: &Logs, record: &InvocationRecord) -> String {
    let mut text = String::new();
    for bytes in [&logs.stdout, &logs.stderr] {
        let output = String::from_utf8_lossy(bytes);
        text.push_str(&output);
        if !output.is_empty() && !output.ends_with('\n') {
            text.push('\n');
        }
    }
    if logs.truncated {
        text.push_str(crate::logs::DROPPED_NOTE);
        text.push('\n');
    }
    // A native function's runtime closes its log with its own (with the peak memory).
    if !text.contains(&format!("REPORT RequestId: {}\t", record.id)) {
        report(&mut text, record);
    }
    last_bytes(text, TAIL_BYTES)
}

/// Lambda's `REPORT` line for a run whose runtime writes none (wasm).
fn report(text: &mut String, record: &InvocationRecord) {
    let ms = |us: u64| us as f64 / 1000.0;
    let _ = write!(
        text,
        "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB",
        record.id,
        ms(record.run_us),
        record.billed_ms,
        record.memory_mb
    );
    if let Some(init) = record.init_us.filter(|_| record.cold) {
        let _ = write!(text, "\tInit Duration: {:.2} ms", ms(init));
    }
    text.push('\n');
}

/// The last `n` bytes of `text`, or fewer so as to start at a character.
fn last_bytes(text: String, n: usize) -> String {
    let Some(mut start) = text.len().checked_sub(n) else {
        return text;
    };
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_is_the_end_of_the_output_and_a_report() {
        let record = InvocationRecord {
            namespace: wisp_core::Namespace::new("default").unwrap(),
            function: wisp_core::FunctionName::new("f").unwrap(),
            id: "inv-1".into(),
            version: wisp_core::VersionId("v".into()),
            version_number: 1,
            started_at: 0,
            cold: true,
            init_us: Some(2_000),
            queue_us: 0,
            run_us: 12_345,
            error: None,
            memory_mb: 128,
            billed_ms: 13,
            reserved: false,
            trace: None,
            parent: None,
        };
        let logs = Logs {
            stdout: "out 1\nout 2".into(),
            stderr: "err 1\n".into(),
            truncated: false,
        };
        assert_eq!(
            tail_text(&logs, &record),
            "out 1\nout 2\nerr 1\nREPORT RequestId: inv-1\tDuration: 12.35 ms\tBilled Duration: 13 ms\
             \tMemory Size: 128 MB\tInit Duration: 2.00 ms\n"
        );
        // A runtime's own REPORT line is not written twice.
        let native = Logs {
            stderr: "hi\nREPORT RequestId: inv-1\tDuration: 0.50 ms\tMax Memory Used: 9 MB\n".into(),
            ..Logs::default()
        };
        assert_eq!(
            tail_text(&native, &record),
            "hi\nREPORT RequestId: inv-1\tDuration: 0.50 ms\tMax Memory Used: 9 MB\n"
        );
        // Only the end is kept, cut where a character starts.
        let long = Logs {
            stdout: "é".repeat(TAIL_BYTES).into(),
            ..Logs::default()
        };
        let tail = tail_text(&long, &record);
        assert!(
            tail.len() <= TAIL_BYTES && tail.len() > TAIL_BYTES - 4,
            "{}",
            tail.len()
        );
        assert!(tail.starts_with('é') && tail.ends_with(" ms\n"));
    }
}
