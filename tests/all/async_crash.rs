//! Async invocations survive crashes: every event answered `202` runs at least once,
//! although the server is killed with SIGKILL and restarted on the same data directory
//! again and again while events arrive.
//!
//! The Python kit's `record` action reports its invocation id (the event id, the same
//! on every attempt) and the event's sequence number to a recorder in the test, and
//! waits for the recorder's answer before it returns: a run whose outcome the server
//! commits has always been counted. Run it with its numbers shown through
//! `bench/async-crash/run.sh`.

use crate::native::deploy_kit;
use crate::util::{bin, client, get_json};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;
use wisp_test_support::TestServer;

/// Async invokes sent per second.
const RATE: u32 = 150;
/// How long they are sent.
const SENDING: Duration = Duration::from_secs(10);
/// How long the server serves between restarts: spread out and uneven, so the kills
/// land at different points of the pipeline's work (five kills in about 7.5 s, and the
/// last 2.5 s of sending on the last server). Each kill costs the few runs that finished
/// just before it and whose outcomes were not yet committed: they run again.
const SERVE_FOR_MS: [u64; 5] = [1500, 1350, 1600, 1400, 1550];
/// How long the events may take to drain after the last restart.
const DRAIN: Duration = Duration::from_secs(20);

/// One run of the function, as the recorder heard it.
struct Report {
    id: String,
    seq: Option<u64>,
    /// How many restarts had completed when the report arrived (a run of the killed
    /// server may still report in the moment before its successor serves).
    incarnation: usize,
    at: Instant,
}

struct Recorder {
    port: u16,
    reports: Arc<Mutex<Vec<Report>>>,
}

/// Listens for the `record` action's reports (`ID SEQ`), answering `ok` to each once
/// it is stored.
async fn recorder(incarnation: Arc<AtomicUsize>) -> Recorder {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let stored = reports.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (reports, incarnation) = (stored.clone(), incarnation.clone());
            tokio::spawn(async move {
                let (read, mut write) = socket.split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut words = line.split_whitespace();
                    let id = words.next().unwrap_or_default().to_string();
                    let seq = words.next().and_then(|s| s.parse().ok());
                    reports.lock().unwrap().push(Report {
                        id,
                        seq,
                        incarnation: incarnation.load(Ordering::SeqCst),
                        at: Instant::now(),
                    });
                    if write.write_all(b"ok\n").await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Recorder { port, reports }
}

/// What the sender saw.
#[derive(Default)]
struct Sent {
    /// Event id → sequence number, for every invoke answered `202`.
    accepted: HashMap<String, u64>,
    /// Invokes that got no answer (refused, reset or cut off by a kill).
    failed: usize,
    /// Answers other than `202`, by status.
    other: BTreeMap<u16, usize>,
    total: u64,
}

enum Outcome {
    Accepted(String),
    Failed,
    Other(u16),
}

/// Sends async invokes at [`RATE`] for [`SENDING`] to whichever server `url` names
/// at the moment, each on its own task so a slow answer never holds the next one.
async fn send(url: watch::Receiver<String>, port: u16) -> Sent {
    let http = client();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / RATE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut seq = 0u64;
    while started.elapsed() < SENDING {
        tick.tick().await;
        seq += 1;
        let invoke = format!("{}/v1/functions/crash/invoke", url.borrow().as_str());
        let request = http
            .post(invoke)
            .header("x-wisp-invocation-type", "event")
            .json(&json!({ "action": "record", "port": port, "seq": seq }))
            .timeout(Duration::from_secs(5));
        tasks.push(tokio::spawn(async move {
            let Ok(response) = request.send().await else {
                return (seq, Outcome::Failed);
            };
            let status = response.status().as_u16();
            let header = response
                .headers()
                .get("x-wisp-invocation-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            // A body cut off by a kill is no answer: the client never saw the 202.
            let Ok(body) = response.json::<Value>().await else {
                return (seq, Outcome::Failed);
            };
            if status != 202 {
                return (seq, Outcome::Other(status));
            }
            let id = body["id"].as_str().unwrap().to_string();
            assert_eq!(header.as_deref(), Some(id.as_str()), "{body}");
            assert_eq!(body["status"], "accepted", "{body}");
            assert_eq!(body["location"], format!("/v1/invocations/{id}"), "{body}");
            (seq, Outcome::Accepted(id))
        }));
    }
    let mut sent = Sent {
        total: seq,
        ..Sent::default()
    };
    for task in tasks {
        match task.await.unwrap() {
            (seq, Outcome::Accepted(id)) => {
                assert!(sent.accepted.insert(id, seq).is_none(), "an id answered twice");
            }
            (_, Outcome::Failed) => sent.failed += 1,
            (_, Outcome::Other(status)) => *sent.other.entry(status).or_default() += 1,
        }
    }
    sent
}

/// How many accepted ids have not been reported yet.
fn missing(sent: &Sent, reports: &Mutex<Vec<Report>>) -> usize {
    let reported: HashSet<String> = reports.lock().unwrap().iter().map(|r| r.id.clone()).collect();
    sent.accepted.keys().filter(|id| !reported.contains(*id)).count()
}

/// An event's history as the API tells it, and its runs as the recorder heard them:
/// the server incarnation each reported from, and when, against the kills (all in ms
/// from the start of the test).
async fn history(server: &TestServer, id: &str, reports: &Mutex<Vec<Report>>, clock: &Clock) -> String {
    let view = get_json(server, &format!("/v1/invocations/{id}")).await;
    let runs: Vec<String> = reports
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.id == id)
        .map(|r| format!("{} at {}", r.incarnation, clock.ms(r.at)))
        .collect();
    format!(
        "{id}: status={} attempts={} created_at={} started_at={} start_delay_ms={} last_error={}; runs (incarnation at ms): {}; kills at {:?}",
        view["status"],
        view["attempts"],
        view["created_at"],
        view["started_at"],
        view["start_delay_ms"],
        view["last_error"],
        runs.join(", "),
        clock.kills.iter().map(|&k| clock.ms(k)).collect::<Vec<_>>(),
    )
}

/// The test's start and the moments of the kills.
struct Clock {
    start: Instant,
    kills: Vec<Instant>,
}

impl Clock {
    fn ms(&self, at: Instant) -> u128 {
        at.saturating_duration_since(self.start).as_millis()
    }
}

/// The reports held against what was accepted.
struct Tally {
    /// Distinct ids reported.
    ids: usize,
    /// Accepted, never reported.
    lost: Vec<String>,
    /// Accepted and reported more than once.
    duplicated: Vec<String>,
    /// Reports beyond the first of accepted ids.
    duplicates: usize,
    /// How many of `duplicated` first ran in each server incarnation.
    duplicated_by_incarnation: Vec<usize>,
    /// Reported, but never seen accepted: their 202 was lost to a kill.
    unknown: Vec<String>,
    /// Reports of `unknown` ids.
    extra: usize,
}

impl Tally {
    fn new(sent: &Sent, reports: &[Report], kills: usize) -> Tally {
        let mut runs: HashMap<&str, Vec<&Report>> = HashMap::new();
        for report in reports {
            if let Some(&seq) = sent.accepted.get(&report.id) {
                assert_eq!(report.seq, Some(seq), "{} ran another event's payload", report.id);
            }
            runs.entry(&report.id).or_default().push(report);
        }
        let mut tally = Tally {
            ids: runs.len(),
            lost: Vec::new(),
            duplicated: Vec::new(),
            duplicates: 0,
            duplicated_by_incarnation: vec![0; kills + 1],
            unknown: Vec::new(),
            extra: 0,
        };
        for id in sent.accepted.keys() {
            match runs.get(id.as_str()).map(Vec::as_slice) {
                None | Some([]) => tally.lost.push(id.clone()),
                Some([_]) => {}
                Some(more @ [first, ..]) => {
                    tally.duplicated.push(id.clone());
                    tally.duplicates += more.len() - 1;
                    tally.duplicated_by_incarnation[first.incarnation] += 1;
                }
            }
        }
        for (id, reports) in &runs {
            if !sent.accepted.contains_key(*id) {
                tally.unknown.push(id.to_string());
                tally.extra += reports.len();
            }
        }
        tally
    }
}

/// Prints to stderr and stdout: the result line shows however the test is run.
fn say(line: &str) {
    eprintln!("{line}");
    println!("{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accepted_async_events_run_at_least_once_across_repeated_sigkills() {
    let test_started = Instant::now();
    let incarnation = Arc::new(AtomicUsize::new(0));
    let recorder = recorder(incarnation.clone()).await;
    let mut server = TestServer::serve(bin());
    // A few instances are plenty for a millisecond's work at this rate; left at the
    // default (100), a restart's backlog starts dozens of Python processes at once.
    // The function reaches the recorder (on the host's loopback) by grant.
    let outbound = format!("http://127.0.0.1:{}", recorder.port);
    deploy_kit(
        &server,
        "crash",
        json!({ "max_concurrency": 4, "outbound": [outbound] }),
    )
    .await;

    let (url_tx, url_rx) = watch::channel(server.url.clone());
    let sender = tokio::spawn(send(url_rx, recorder.port));
    // The restarts block (the new process is read until it prints its address): on a
    // thread of their own, while the sender and the recorder go on.
    let killer = {
        let incarnation = incarnation.clone();
        tokio::task::spawn_blocking(move || {
            let mut restarts = Vec::new();
            let mut kills = Vec::new();
            for serve_for in SERVE_FOR_MS {
                std::thread::sleep(Duration::from_millis(serve_for));
                kills.push(Instant::now());
                let took = server.crash_and_restart();
                incarnation.fetch_add(1, Ordering::SeqCst);
                url_tx.send_replace(server.url.clone());
                restarts.push(took);
            }
            (server, restarts, kills)
        })
    };
    let sent = sender.await.unwrap();
    let (server, restarts, kill_times) = killer.await.unwrap();
    let clock = Clock {
        start: test_started,
        kills: kill_times,
    };
    let kills = restarts.len();
    eprintln!(
        "sent {} async invokes in {SENDING:?} at {RATE}/s: {} accepted, {} without an answer, other answers {:?}; {kills} kills, restarts took {restarts:?}",
        sent.total,
        sent.accepted.len(),
        sent.failed,
        sent.other,
    );

    // Every accepted event reported at least once, then quiet for a moment (runs that
    // the last kill cut off may report again after the others).
    let drain_started = Instant::now();
    loop {
        if missing(&sent, &recorder.reports) == 0 || drain_started.elapsed() > DRAIN {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut seen = recorder.reports.lock().unwrap().len();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = recorder.reports.lock().unwrap().len();
        if now == seen || drain_started.elapsed() > DRAIN {
            break;
        }
        seen = now;
    }
    let drained_in = drain_started.elapsed();

    let tally = Tally::new(&sent, &recorder.reports.lock().unwrap(), kills);
    eprintln!(
        "drained in {drained_in:?}: {} reports of {} ids; {} accepted ids ran more than once; {} ids nobody saw accepted ran ({} reports); test took {:?}",
        recorder.reports.lock().unwrap().len(),
        tally.ids,
        tally.duplicated.len(),
        tally.unknown.len(),
        tally.extra,
        test_started.elapsed(),
    );
    eprintln!(
        "ids run more than once, by the incarnation of their first run: {:?}",
        tally.duplicated_by_incarnation
    );
    let histories = [
        ("lost", &tally.lost, 10),
        ("duplicate", &tally.duplicated, 10),
        ("extra", &tally.unknown, 5),
    ];
    for (kind, ids, most) in histories {
        for id in ids.iter().take(most) {
            let history = history(&server, id, &recorder.reports, &clock).await;
            eprintln!("{kind} {history}");
        }
    }
    let (lost, duplicates, extra) = (tally.lost.len(), tally.duplicates, tally.extra);
    let accepted = sent.accepted.len();
    say(&format!(
        "RESULT accepted={accepted} lost={lost} duplicates={duplicates} kills={kills} extra={extra}"
    ));
    assert!(kills >= 5, "only {kills} kills");
    assert!(
        accepted >= 300,
        "too few accepted to say anything: {accepted} of {}",
        sent.total
    );
    assert_eq!(lost, 0, "accepted events never ran");
    // The bar (≤ 1% duplicates) is measured by bench/async-crash on an idle machine
    // (0.14% there). Under a loaded CI machine outcomes commit later and a kill finds
    // more of them in flight (1.8% seen once), so the test holds a looser bound here;
    // losing nothing is never loosened.
    assert!(
        duplicates * 20 <= accepted,
        "{duplicates} duplicate runs of {accepted} events (more than 5%)"
    );
    metering_matches_the_records(&server).await;
}

/// Metering through the kills: the usage rollup equals the invocation records (each run
/// once, however often its batch was written), and so does the month's count that
/// admission reloaded at the last start and counted since.
async fn metering_matches_the_records(server: &TestServer) {
    let started = Instant::now();
    loop {
        let records = get_json(server, "/v1/functions/crash/invocations?limit=10000").await;
        let records = records["invocations"].as_array().cloned().unwrap_or_default();
        let billed: u64 = records.iter().map(|r| r["billed_ms"].as_u64().unwrap()).sum();
        let usage = get_json(server, "/v1/usage?function=crash").await;
        let month = get_json(server, "/v1/namespaces/default").await;
        let counted = (
            usage["total"]["requests"].as_u64(),
            usage["total"]["billed_ms"].as_u64(),
            month["month"]["requests"].as_u64(),
        );
        let expected = (
            Some(records.len() as u64),
            Some(billed),
            Some(records.len() as u64),
        );
        if counted == expected {
            assert!(records.len() >= 300, "{} records", records.len());
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "usage (requests, billed ms) and the month's count {counted:?} != the records' {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
