//! The breaker's state machine, its window and its registry, over made-up times.

use super::*;
use std::sync::Barrier;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Opens at half of 4 calls over 10 s (1 s buckets), open 5 s, one probe.
fn config() -> BreakerConfig {
    BreakerConfig {
        failure_rate: 0.5,
        window: secs(10),
        min_calls: 4,
        open_for: secs(5),
        half_open_probes: 1,
    }
}

fn function(name: &str) -> Endpoint {
    Endpoint::Function {
        namespace: Namespace::new("ns").unwrap(),
        name: FunctionName::new(name).unwrap(),
    }
}

fn key(caller: &str, callee: &str) -> BreakerKey {
    BreakerKey {
        caller: function(caller),
        callee: function(callee),
    }
}

fn breaker(config: BreakerConfig) -> Arc<Breaker> {
    Arc::new(Breaker::new(config))
}

fn call(b: &Arc<Breaker>, now: Duration, ok: bool) {
    let permit = b.admit(now).expect("admitted");
    if ok {
        permit.success(now);
    } else {
        permit.failure(now);
    }
}

fn view(b: &Breaker, now: Duration) -> BreakerView {
    b.view(now, 1_000_000 + wisp_core::wall::millis(now))
}

/// Opens `b` (of [`config`]) at `at`.
fn open(b: &Arc<Breaker>, at: Duration) {
    for _ in 0..4 {
        call(b, at, false);
    }
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn stays_closed_under_min_calls() {
    let b = breaker(config());
    for _ in 0..3 {
        call(&b, secs(1), false);
    }
    let v = view(&b, secs(1));
    assert_eq!((v.state, v.calls, v.failures), (BreakerState::Closed, 3, 3));
    assert!(b.admit(secs(1)).is_ok());
}

#[test]
fn opens_at_the_failure_rate_and_not_below() {
    let b = breaker(config());
    call(&b, secs(1), true);
    call(&b, secs(1), true);
    call(&b, secs(1), true);
    call(&b, secs(1), false);
    // 1 of 4: below the rate.
    assert_eq!(b.state(), BreakerState::Closed);
    call(&b, secs(1), false);
    // 2 of 5.
    assert_eq!(b.state(), BreakerState::Closed);
    call(&b, secs(1), false);
    // 3 of 6: at the rate.
    assert_eq!(b.state(), BreakerState::Open);
    let v = view(&b, secs(1));
    assert_eq!(v.transitions, 1);
    // The calls that opened it, until they leave the window.
    assert_eq!((v.calls, v.failures), (6, 3));
    assert_eq!(view(&b, secs(11)).calls, 0);
    assert_eq!(v.opened_at, Some(1_001_000));
    assert_eq!(v.half_open_at, Some(1_006_000));
    assert_eq!(
        v.last_transition,
        Some(TransitionView {
            from: BreakerState::Closed,
            to: BreakerState::Open,
            at: 1_001_000
        })
    );
}

#[test]
fn a_success_can_bring_the_window_to_min_calls() {
    let b = breaker(BreakerConfig {
        failure_rate: 0.5,
        ..config()
    });
    call(&b, secs(1), false);
    call(&b, secs(1), false);
    call(&b, secs(1), true);
    assert_eq!(b.state(), BreakerState::Closed);
    // 2 of 4 once the fourth call, a success, is in.
    call(&b, secs(1), true);
    assert_eq!(b.state(), BreakerState::Open);
}

#[test]
fn open_answers_at_once_with_retry_after() {
    let b = breaker(config());
    open(&b, secs(1));
    assert_eq!(b.admit(secs(3)).unwrap_err(), Open { retry_after: secs(3) });
    assert_eq!(b.admit(ms(5_999)).unwrap_err(), Open { retry_after: ms(1) });
    // Asking does not move anything.
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(view(&b, secs(3)).transitions, 1);

    let e = Open {
        retry_after: ms(2_001),
    }
    .into_error(&key("a", "b"));
    assert_eq!(e.code, ErrorCode::CircuitOpen);
    assert_eq!(e.code.status(), 503);
    assert_eq!(e.retry_after, Some(3));
    assert!(
        e.detail.contains("function:ns/a to function:ns/b"),
        "{}",
        e.detail
    );
    let e = Open { retry_after: ms(1) }.into_error(&key("a", "b"));
    assert_eq!(e.retry_after, Some(1));
    assert_eq!(
        Open {
            retry_after: ms(1_500)
        }
        .to_string(),
        "the circuit is open; retry after 1s 500ms"
    );
}

#[test]
fn half_open_after_open_for() {
    let b = breaker(config());
    open(&b, secs(1));
    let probe = b.admit(secs(6)).unwrap();
    assert!(probe.is_probe());
    assert_eq!(b.state(), BreakerState::HalfOpen);
    let v = view(&b, secs(6));
    assert_eq!(v.probes_in_flight, 1);
    assert_eq!(v.opened_at, Some(1_001_000));
    assert_eq!(v.half_open_at, None);
    probe.release();
}

#[test]
fn half_open_admits_only_its_probes() {
    let b = breaker(BreakerConfig {
        half_open_probes: 2,
        ..config()
    });
    open(&b, secs(1));
    let first = b.admit(secs(6)).unwrap();
    let second = b.admit(secs(6)).unwrap();
    assert!(first.is_probe() && second.is_probe());
    assert_eq!(b.admit(secs(7)).unwrap_err(), Open { retry_after: secs(5) });
    // A released probe frees its slot and decides nothing.
    first.release();
    assert_eq!(b.state(), BreakerState::HalfOpen);
    let third = b.admit(secs(7)).unwrap();
    assert_eq!(view(&b, secs(7)).probes_in_flight, 2);
    third.release();
    second.release();
}

#[test]
fn a_probe_success_closes_with_an_empty_window() {
    let b = breaker(config());
    open(&b, secs(1));
    b.admit(secs(6)).unwrap().success(secs(6));
    assert_eq!(b.state(), BreakerState::Closed);
    let v = view(&b, secs(6));
    assert_eq!((v.calls, v.failures, v.transitions), (0, 0, 3));
    assert_eq!((v.opened_at, v.probes_in_flight), (None, 0));
    assert_eq!(
        v.last_transition.map(|t| (t.from, t.to)),
        Some((BreakerState::HalfOpen, BreakerState::Closed))
    );
    // The failures from before it opened are gone: three more do not open it.
    let p = b.admit(secs(6)).unwrap();
    assert!(!p.is_probe());
    p.failure(secs(6));
    call(&b, secs(6), false);
    call(&b, secs(6), false);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[test]
fn a_probe_failure_opens_again_for_a_fresh_open_for() {
    let b = breaker(config());
    open(&b, secs(1));
    b.admit(secs(6)).unwrap().failure(secs(7));
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(b.admit(ms(11_500)).unwrap_err(), Open { retry_after: ms(500) });
    let v = view(&b, secs(8));
    assert_eq!((v.transitions, v.opened_at), (3, Some(1_007_000)));
    assert!(b.admit(secs(12)).unwrap().is_probe());
}

#[test]
fn the_window_slides_and_forgets_old_failures() {
    // Three failures in the first second, the fourth 9.5 s later: still in the
    // window (slots 0 to 9), so it opens.
    let b = breaker(config());
    for _ in 0..3 {
        call(&b, ms(500), false);
    }
    call(&b, ms(9_500), false);
    assert_eq!(b.state(), BreakerState::Open);

    // The fourth 10.5 s later: the first second's slot has left the window.
    let b = breaker(config());
    for _ in 0..3 {
        call(&b, ms(500), false);
    }
    call(&b, ms(10_500), false);
    assert_eq!(b.state(), BreakerState::Closed);
    let v = view(&b, ms(10_500));
    assert_eq!((v.calls, v.failures), (1, 1));
    // And later the view forgets that one too.
    assert_eq!(view(&b, secs(21)).calls, 0);
    // A bucket's slot coming round again starts it empty.
    call(&b, ms(20_500), true);
    assert_eq!(
        (view(&b, ms(20_500)).calls, view(&b, ms(20_500)).failures),
        (1, 0)
    );
}

#[test]
fn a_report_dated_before_the_window_counts_nothing() {
    let b = breaker(config());
    call(&b, ms(12_500), false);
    // Admitted long ago, reported dated then: the bucket for slot 2 holds slot 12.
    let p = b.admit(ms(2_500)).unwrap();
    p.failure(ms(2_500));
    let v = view(&b, ms(12_500));
    assert_eq!((v.calls, v.failures), (1, 1));
    // Slightly out of order (threads read the clock before they lock) still counts.
    call(&b, ms(12_400), true);
    assert_eq!(view(&b, ms(12_500)).calls, 2);
}

#[test]
fn outcomes_about_a_past_state_change_nothing() {
    let b = breaker(config());
    let late = b.admit(secs(1)).unwrap();
    open(&b, secs(1));
    // Admitted while closed, reported while open: ignored (open_for does not restart).
    late.failure(secs(4));
    assert_eq!(b.admit(secs(4)).unwrap_err(), Open { retry_after: secs(2) });
    let late = b.admit(secs(1));
    assert!(late.is_err());

    // Two probes; the first closes, the second's failure is about half-open.
    let b = breaker(BreakerConfig {
        half_open_probes: 2,
        min_calls: 1,
        ..config()
    });
    call(&b, secs(1), false);
    assert_eq!(b.state(), BreakerState::Open);
    let first = b.admit(secs(6)).unwrap();
    let second = b.admit(secs(6)).unwrap();
    first.success(secs(6));
    second.failure(secs(6));
    assert_eq!(b.state(), BreakerState::Closed);
    assert_eq!(view(&b, secs(6)).calls, 0);
}

#[test]
fn a_dropped_permit_counts_as_a_failure() {
    let b = breaker(BreakerConfig {
        min_calls: 2,
        failure_rate: 0.6,
        ..config()
    });
    drop(b.admit(secs(1)).unwrap());
    let v = view(&b, secs(1));
    assert_eq!((v.calls, v.failures), (1, 1));
    // Dated at the latest time the breaker knows, so it is in the window.
    // 1 of 2 failed: below the rate; the second drop makes it 2 of 3.
    call(&b, secs(3), true);
    assert_eq!(b.state(), BreakerState::Closed);
    drop(b.admit(secs(3)).unwrap());
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(view(&b, secs(3)).opened_at, Some(1_003_000));

    // A dropped probe opens it again.
    let probe = b.admit(secs(8)).unwrap();
    drop(probe);
    assert_eq!(b.state(), BreakerState::Open);
    assert_eq!(view(&b, secs(8)).transitions, 3);

    // A released permit counts nothing.
    let b = breaker(BreakerConfig {
        min_calls: 1,
        ..config()
    });
    b.admit(secs(1)).unwrap().release();
    assert_eq!((b.state(), view(&b, secs(1)).calls), (BreakerState::Closed, 0));
}

#[test]
fn many_threads_count_every_call() {
    let b = breaker(BreakerConfig {
        min_calls: 1_000_000,
        ..config()
    });
    std::thread::scope(|s| {
        for t in 0..8 {
            let b = &b;
            s.spawn(move || {
                for i in 0..1_000 {
                    call(b, secs(1), (i + t) % 4 != 0);
                }
            });
        }
    });
    let v = view(&b, secs(1));
    assert_eq!(
        (v.state, v.calls, v.failures),
        (BreakerState::Closed, 8_000, 2_000)
    );
}

#[test]
fn many_threads_failing_open_it_once() {
    let b = breaker(BreakerConfig {
        min_calls: 100,
        ..config()
    });
    let refused = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            let (b, refused) = (&b, &refused);
            s.spawn(move || {
                for _ in 0..500 {
                    match b.admit(secs(1)) {
                        Ok(p) => p.failure(secs(1)),
                        Err(open) => {
                            assert_eq!(open.retry_after, secs(5));
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    let v = view(&b, secs(1));
    assert_eq!((v.state, v.transitions), (BreakerState::Open, 1));
    // At least the 100 failures it takes went through; most of the rest were
    // refused (a few may slip past the instant it opened).
    assert!(refused.load(Ordering::Relaxed) >= 3_000, "{refused:?}");
    assert!(b.admit(secs(2)).is_err());
}

#[test]
fn many_threads_get_only_the_probes_half_open_allows() {
    let b = breaker(BreakerConfig {
        half_open_probes: 3,
        ..config()
    });
    open(&b, secs(1));
    let start = Barrier::new(16);
    let permits: Vec<Option<Permit>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                let (b, start) = (&b, &start);
                s.spawn(move || {
                    start.wait();
                    b.admit(secs(6)).ok()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let probes: Vec<Permit> = permits.into_iter().flatten().collect();
    assert_eq!(probes.len(), 3);
    assert!(probes.iter().all(Permit::is_probe));
    assert_eq!(view(&b, secs(6)).probes_in_flight, 3);
    for p in probes {
        p.release();
    }
    assert_eq!(view(&b, secs(6)).probes_in_flight, 0);
    assert_eq!(b.state(), BreakerState::HalfOpen);
}

#[test]
fn the_registry_keeps_one_breaker_per_pair() {
    let breakers = Breakers::new();
    let (ab, ac) = (key("a", "b"), key("a", "c"));
    let b1 = breakers.breaker(&ab, &config());
    assert!(Arc::ptr_eq(&b1, &breakers.breaker(&ab, &config())));
    assert!(!Arc::ptr_eq(&b1, &breakers.breaker(&ac, &config())));
    assert_eq!(breakers.len(), 2);

    // The pair's settings follow the caller's.
    let looser = BreakerConfig {
        min_calls: 8,
        ..config()
    };
    breakers.breaker(&ab, &looser);
    assert_eq!(b1.config(), looser);

    for _ in 0..8 {
        breakers.admit(&ab, &looser, secs(1)).unwrap().failure(secs(1));
    }
    let listed = breakers.list(|k| k.callee == function("b"), secs(2), 5_000);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, ab);
    assert_eq!(listed[0].1.state, BreakerState::Open);
    assert_eq!(listed[0].1.opened_at, Some(4_000));
    let all = breakers.list(|_| true, secs(2), 5_000);
    assert_eq!(
        all.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        vec![ab.clone(), ac.clone()]
    );

    // Pruning keeps the open one and the one still held.
    drop(b1);
    let held = breakers.breaker(&ac, &config());
    breakers.breaker(&key("x", "y"), &config());
    breakers.prune(secs(2));
    assert_eq!(breakers.len(), 2);
    drop(held);
    breakers.prune(secs(2));
    assert_eq!(breakers.len(), 1);
    breakers.retain(|k| k.caller != function("a"));
    assert!(breakers.is_empty());
}

#[test]
fn keys_and_views_serialize_for_the_api() {
    let k = BreakerKey {
        caller: Endpoint::Topic {
            namespace: Namespace::new("ns").unwrap(),
            name: "orders".into(),
        },
        callee: Endpoint::Webhook("https://example.com/hook".into()),
    };
    assert_eq!(
        serde_json::to_value(&k).unwrap(),
        serde_json::json!({"caller": "topic:ns/orders", "callee": "webhook:https://example.com/hook"})
    );
    assert_eq!(
        k.to_string(),
        "topic:ns/orders → webhook:https://example.com/hook"
    );
    assert_eq!(k.caller.namespace().map(Namespace::as_str), Some("ns"));
    assert_eq!(k.callee.namespace(), None);
    let queue = Endpoint::Queue {
        namespace: Namespace::new("ns").unwrap(),
        name: QueueName::new("jobs").unwrap(),
    };
    assert_eq!(queue.to_string(), "queue:ns/jobs");

    let b = breaker(config());
    open(&b, secs(1));
    let _probe = b.admit(secs(6)).unwrap();
    let json = serde_json::to_value(view(&b, secs(6))).unwrap();
    assert_eq!(json["state"], "half_open");
    assert_eq!(json["probes_in_flight"], 1);
    assert_eq!(json["last_transition"]["from"], "open");
    assert_eq!(json["config"]["open_for"], "5s");
}

/// Not a test: how long admitting through a closed breaker and reporting a
/// success take. Run with
/// `cargo test --release -p wisp-engine --lib breaker::tests::cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn cost() {
    let b = breaker(BreakerConfig::DEFAULT);
    let n = 2_000_000u32;
    let start = std::time::Instant::now();
    for i in 0..n {
        let p = b.admit(Duration::from_micros(u64::from(i))).unwrap();
        std::hint::black_box(&p);
        p.release();
    }
    let admit = start.elapsed() / n;
    let start = std::time::Instant::now();
    for i in 0..n {
        let now = Duration::from_micros(u64::from(i));
        b.admit(now).unwrap().success(now);
    }
    let full = start.elapsed() / n;
    let breakers = Breakers::new();
    let k = key("a", "b");
    let start = std::time::Instant::now();
    for i in 0..n {
        let now = Duration::from_micros(u64::from(i));
        breakers
            .admit(&k, &BreakerConfig::DEFAULT, now)
            .unwrap()
            .success(now);
    }
    let registry = start.elapsed() / n;
    println!(
        "closed admit + release: {admit:?}; admit + success: {full:?}; through the registry: {registry:?}"
    );
}
