//! Replays an Azure-shaped invocation trace (OrcBench's CSV) through the real [`Autoscaler`]
//! under several keep-alive policies with a simulated clock, and reports what Shahrad et al.
//! report: the per-function cold-start percentage, the memory held warm while idle, and the
//! cold-start latency added.
//!
//! Run with: `bench/keepalive/run.sh` (which generates and caches the trace), or
//! `keepalive-replay TRACE.csv [--policies fixed:10,adaptive:10] [--memory-mb 128]
//! [--wasm-cold-ms 1] [--python-cold-ms 60] [--max-rows N]`.
//!
//! The trace is streamed (a day of OrcBench at 5% scale is 1.7 GB): one pass, every policy
//! simulated side by side. Functions share nothing, so each function's pools replay on their
//! own: before an arrival, each pool first processes the finishes and the autoscaler
//! deadlines that come before it, in time order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{BufRead, BufReader};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use wisp_scaling::{Action, Autoscaler, KeepAlivePolicy, Verdict};

/// OrcBench writes its header without a newline, so the first row follows it on line 1.
const HEADER: &str = "Logical Time Clock (minutes), Function ID, Runtime (ms), Model";
const DEFAULT_POLICIES: &str = "fixed:1,fixed:5,fixed:10,fixed:20,fixed:60,adaptive:10";
const USAGE: &str = "usage: keepalive-replay TRACE.csv [--policies fixed:MIN,adaptive:MIN,...] \
[--memory-mb MB] [--wasm-cold-ms MS] [--python-cold-ms MS] [--max-rows N]";

struct Options {
    trace: String,
    /// (label, policy), in report order.
    policies: Vec<(String, KeepAlivePolicy)>,
    memory_mb: f64,
    wasm_cold_ms: f64,
    python_cold_ms: f64,
    max_rows: u64,
}

fn parse_options() -> Result<Options, String> {
    let mut trace = None;
    let mut options = Options {
        trace: String::new(),
        policies: parse_policies(DEFAULT_POLICIES)?,
        memory_mb: 128.0,
        wasm_cold_ms: 1.0,
        python_cold_ms: 60.0,
        max_rows: u64::MAX,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("`{name}` needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--policies" => options.policies = parse_policies(&value("--policies")?)?,
            "--memory-mb" => options.memory_mb = parse_number("--memory-mb", &value("--memory-mb")?)?,
            "--wasm-cold-ms" => {
                options.wasm_cold_ms = parse_number("--wasm-cold-ms", &value("--wasm-cold-ms")?)?
            }
            "--python-cold-ms" => {
                options.python_cold_ms = parse_number("--python-cold-ms", &value("--python-cold-ms")?)?
            }
            "--max-rows" => options.max_rows = parse_number("--max-rows", &value("--max-rows")?)? as u64,
            "-h" | "--help" => return Err(USAGE.to_string()),
            flag if flag.starts_with("--") => return Err(format!("unknown flag `{flag}`\n{USAGE}")),
            path if trace.is_none() => trace = Some(path.to_string()),
            extra => return Err(format!("unexpected argument `{extra}`\n{USAGE}")),
        }
    }
    options.trace = trace.ok_or(USAGE)?;
    Ok(options)
}

fn parse_number(flag: &str, value: &str) -> Result<f64, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| format!("invalid `{flag}` value `{value}`: use a non-negative number"))
}

/// "fixed:10,adaptive:10": policy names as [`KeepAlivePolicy::parse`] takes them, with the
/// fixed window (the adaptive fallback) in minutes.
fn parse_policies(list: &str) -> Result<Vec<(String, KeepAlivePolicy)>, String> {
    list.split(',')
        .map(|item| {
            let (name, minutes) = item
                .split_once(':')
                .ok_or_else(|| format!("invalid policy `{item}`: use NAME:MINUTES, e.g. `fixed:10`"))?;
            let minutes = parse_number("--policies", minutes)?;
            let policy = KeepAlivePolicy::parse(name, Duration::from_secs_f64(minutes * 60.0))?;
            Ok((format!("{name}-{minutes}min"), policy))
        })
        .collect()
}

/// One policy's pool for one function, and what it cost.
struct Pool {
    scaler: Autoscaler,
    /// End times of the invocations running.
    ends: BinaryHeap<Reverse<Duration>>,
    /// Up to when warm-and-idle time has been counted.
    counted_to: Duration,
    idle_warm: Duration,
    cold: u64,
    prewarms: u64,
}

impl Pool {
    fn new(policy: KeepAlivePolicy) -> Pool {
        Pool {
            scaler: Autoscaler::new(policy, 0, Duration::ZERO),
            ends: BinaryHeap::new(),
            counted_to: Duration::ZERO,
            idle_warm: Duration::ZERO,
            cold: 0,
            prewarms: 0,
        }
    }

    /// Counts warm-and-idle time up to `t`; call before every state change at `t`.
    fn count_to(&mut self, t: Duration) {
        if self.scaler.is_warm() && self.scaler.running() == 0 {
            self.idle_warm += t.saturating_sub(self.counted_to);
        }
        self.counted_to = self.counted_to.max(t);
    }

    /// Processes, in time order, the finishes at or before `to` and the deadlines before it.
    fn advance(&mut self, to: Duration) {
        loop {
            let finish = self.ends.peek().map(|end| end.0).filter(|&end| end <= to);
            let deadline = self.scaler.next_deadline().filter(|&at| at < to);
            match (finish, deadline) {
                (Some(end), deadline) if deadline.is_none_or(|at| end <= at) => {
                    self.count_to(end);
                    self.ends.pop();
                    self.scaler.on_finish(end);
                }
                (_, Some(at)) => {
                    self.count_to(at);
                    while let Some(action) = self.scaler.poll(at) {
                        if action == Action::Prewarm {
                            self.prewarms += 1;
                        }
                    }
                    assert_ne!(
                        self.scaler.next_deadline(),
                        Some(at),
                        "autoscaler made no progress at {at:?}"
                    );
                }
                _ => return,
            }
        }
    }

    fn arrive(&mut self, at: Duration, runtime: Duration) {
        self.advance(at);
        self.count_to(at);
        if self.scaler.on_start(at) {
            self.cold += 1;
        }
        self.ends.push(Reverse(at + runtime));
    }
}

struct Function {
    pools: Vec<Pool>,
    invocations: u64,
    last_arrival: Duration,
    /// Longest time between two arrivals.
    longest_gap: Duration,
}

/// FNV-1a: function ids are short and trusted, and this runs once per row.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

/// One trace row: arrival (minutes), function id, runtime (ms).
fn parse_row(line: &str) -> Option<(f64, &str, f64)> {
    let mut fields = line.split(',').map(str::trim);
    let minutes = fields
        .next()?
        .parse::<f64>()
        .ok()
        .filter(|m| m.is_finite() && *m >= 0.0)?;
    let id = fields.next().filter(|id| !id.is_empty())?;
    let runtime = fields.next()?.parse::<f64>().ok()?;
    // Runtimes are drawn from a normal distribution, so a few are negative: clamp to zero.
    let runtime = if runtime.is_finite() {
        runtime.max(0.0)
    } else {
        0.0
    };
    Some((minutes, id, runtime))
}

struct Replay {
    functions: Vec<Function>,
    rows: u64,
    horizon: Duration,
}

/// Replays the trace read from `reader` (named `name` in errors) under every policy.
fn replay(options: &Options, name: &str, mut reader: impl BufRead) -> Result<Replay, String> {
    let mut index: HashMap<Box<str>, usize, BuildHasherDefault<Fnv>> = HashMap::default();
    let mut functions: Vec<Function> = Vec::new();
    let mut line = String::new();
    let (mut line_no, mut rows) = (0u64, 0u64);
    let mut horizon = Duration::ZERO;
    while rows < options.max_rows {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|e| format!("cannot read `{name}`: {e}"))?;
        if read == 0 {
            break;
        }
        line_no += 1;
        let mut text = line.trim_end();
        if line_no == 1
            && let Some(rest) = text.strip_prefix(HEADER)
        {
            text = rest;
        }
        if text.is_empty() {
            continue;
        }
        let (minutes, id, runtime_ms) =
            parse_row(text).ok_or_else(|| format!("{name}:{line_no}: cannot parse row `{text}`"))?;
        let at = Duration::from_secs_f64(minutes * 60.0);
        let runtime = Duration::from_secs_f64(runtime_ms / 1000.0);
        let slot = match index.get(id) {
            Some(&slot) => slot,
            None => {
                index.insert(id.into(), functions.len());
                functions.push(Function {
                    pools: options
                        .policies
                        .iter()
                        .map(|(_, policy)| Pool::new(policy.clone()))
                        .collect(),
                    invocations: 0,
                    last_arrival: at,
                    longest_gap: Duration::ZERO,
                });
                functions.len() - 1
            }
        };
        let function = &mut functions[slot];
        if at < function.last_arrival {
            return Err(format!(
                "{name}:{line_no}: function `{id}` arrives at {minutes} min, before its previous arrival: \
                 the trace must be in time order (sort it with `sort -g`)"
            ));
        }
        function.longest_gap = function.longest_gap.max(at - function.last_arrival);
        function.last_arrival = at;
        function.invocations += 1;
        for pool in &mut function.pools {
            pool.arrive(at, runtime);
        }
        horizon = horizon.max(at);
        rows += 1;
    }
    // Count the warm tail up to the end of the trace, rounded up to a whole minute.
    let horizon = Duration::from_secs(horizon.as_secs().div_ceil(60) * 60);
    for pool in functions.iter_mut().flat_map(|f| f.pools.iter_mut()) {
        pool.advance(horizon);
        pool.count_to(horizon);
    }
    Ok(Replay {
        functions,
        rows,
        horizon,
    })
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

struct Summary {
    label: String,
    cold_p50: f64,
    cold_p75: f64,
    cold_p90: f64,
    cold: u64,
    prewarms: u64,
    waste_mbs: f64,
}

fn summarise(options: &Options, replay: &Replay) -> Vec<Summary> {
    options
        .policies
        .iter()
        .enumerate()
        .map(|(i, (label, _))| {
            let mut cold_pct: Vec<f64> = replay
                .functions
                .iter()
                .map(|f| 100.0 * f.pools[i].cold as f64 / f.invocations as f64)
                .collect();
            cold_pct.sort_by(f64::total_cmp);
            let pools = || replay.functions.iter().map(move |f| &f.pools[i]);
            let idle_secs: f64 = pools().map(|p| p.idle_warm.as_secs_f64()).sum();
            Summary {
                label: label.clone(),
                cold_p50: percentile(&cold_pct, 0.50),
                cold_p75: percentile(&cold_pct, 0.75),
                cold_p90: percentile(&cold_pct, 0.90),
                cold: pools().map(|p| p.cold).sum(),
                prewarms: pools().map(|p| p.prewarms).sum(),
                waste_mbs: idle_secs * options.memory_mb,
            }
        })
        .collect()
}

/// How the trace's functions are invoked, next to what Shahrad et al. report for Azure.
fn print_profile(replay: &Replay) {
    let hours = replay.horizon.as_secs_f64() / 3600.0;
    let n = replay.functions.len();
    let rarer_than = |per_hour: f64| {
        replay
            .functions
            .iter()
            .filter(|f| (f.invocations as f64) / hours <= per_hour)
            .count()
    };
    let mut gaps: Vec<f64> = replay
        .functions
        .iter()
        .map(|f| f.longest_gap.as_secs_f64() / 60.0)
        .collect();
    gaps.sort_by(f64::total_cmp);
    println!(
        "profile: functions invoked at most once an hour on average: {} of {n}, at most once a minute: {} \
         (Azure, per the paper: 45% and 81% of applications); longest gap between arrivals, \
         across functions: p50 {:.1} / max {:.1} min",
        rarer_than(1.0),
        rarer_than(60.0),
        percentile(&gaps, 0.5),
        percentile(&gaps, 1.0),
    );
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let replay = match File::open(&options.trace)
        .map_err(|e| format!("cannot open `{}`: {e}", options.trace))
        .and_then(|file| replay(&options, &options.trace, BufReader::with_capacity(1 << 20, file)))
    {
        Ok(replay) => replay,
        Err(message) => {
            eprintln!("keepalive-replay: {message}");
            return ExitCode::FAILURE;
        }
    };
    let elapsed = started.elapsed();
    let summaries = summarise(&options, &replay);
    let find = |label: &str| summaries.iter().find(|s| s.label == label);
    let reference = find("fixed-10min");

    println!(
        "trace: {} ({} invocations of {} functions over {} min), replayed under {} policies in {:.1} s",
        options.trace,
        replay.rows,
        replay.functions.len(),
        replay.horizon.as_secs() / 60,
        summaries.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "memory: {} MB per function (Wisp's default memory_mb), constant: the trace has no memory \
         column; waste = time warm while nothing runs × memory",
        options.memory_mb
    );
    println!(
        "cold-start cost: wasm {} ms (code reloaded from the disk cache), python {} ms (process start)",
        options.wasm_cold_ms, options.python_cold_ms
    );
    print_profile(&replay);
    println!();
    println!(
        "{:<16} {:>8} {:>8} {:>8} {:>11} {:>10} {:>14} {:>10} {:>12} {:>13}",
        "policy",
        "cold%p50",
        "cold%p75",
        "cold%p90",
        "cold starts",
        "prewarms",
        "waste MB·s",
        "waste %",
        "wasm cold s",
        "python cold s"
    );
    for s in &summaries {
        let normalised = reference.map_or(f64::NAN, |r| 100.0 * s.waste_mbs / r.waste_mbs);
        println!(
            "{:<16} {:>8.2} {:>8.2} {:>8.2} {:>11} {:>10} {:>14.0} {:>9.1}% {:>12.1} {:>13.1}",
            s.label,
            s.cold_p50,
            s.cold_p75,
            s.cold_p90,
            s.cold,
            s.prewarms,
            s.waste_mbs,
            normalised,
            s.cold as f64 * options.wasm_cold_ms / 1000.0,
            s.cold as f64 * options.python_cold_ms / 1000.0,
        );
    }
    println!(
        "(cold%pNN: percentile over functions of each function's cold-start %; waste % is relative to fixed-10min)"
    );

    for (i, (label, policy)) in options.policies.iter().enumerate() {
        let KeepAlivePolicy::Adaptive(config) = policy else {
            continue;
        };
        let windows: Vec<_> = replay
            .functions
            .iter()
            .map(|f| f.pools[i].scaler.windows())
            .collect();
        let minutes = |pick: fn(&wisp_scaling::Windows) -> Duration| {
            let mut values: Vec<f64> = windows.iter().map(|w| pick(w).as_secs_f64() / 60.0).collect();
            values.sort_by(f64::total_cmp);
            let at = |p| percentile(&values, p);
            format!("p50 {:.1} / p90 {:.1} / max {:.1} min", at(0.5), at(0.9), at(1.0))
        };
        println!(
            "{label} windows at the end, across functions: prewarm {}; keep-alive {}",
            minutes(|w| w.prewarm),
            minutes(|w| w.keep_alive)
        );
        let mut verdicts: HashMap<&str, usize> = HashMap::new();
        for function in &replay.functions {
            let verdict = match function.pools[i].scaler.histogram().map(|h| h.verdict(config)) {
                Some(Verdict::Representative) => "histogram",
                Some(Verdict::TooFewSamples) => "too few idle times",
                Some(Verdict::OutOfBounds) => "mostly out of bounds",
                Some(Verdict::Flat) => "flat histogram",
                None => "no histogram",
            };
            *verdicts.entry(verdict).or_default() += 1;
        }
        let mut verdicts: Vec<_> = verdicts.into_iter().collect();
        verdicts.sort();
        let verdicts: Vec<String> = verdicts.iter().map(|(v, n)| format!("{v}: {n}")).collect();
        println!("{label} windows at the end, by function: {}", verdicts.join(", "));
    }

    let (Some(fixed), Some(adaptive)) = (reference, find("adaptive-10min")) else {
        eprintln!("keepalive-replay: the RESULT line needs policies fixed:10 and adaptive:10");
        return ExitCode::FAILURE;
    };
    println!(
        "RESULT fixed_cold_pct={:.2} adaptive_cold_pct={:.2} fixed_waste_mbs={:.0} adaptive_waste_mbs={:.0}",
        fixed.cold_p75, adaptive.cold_p75, fixed.waste_mbs, adaptive.waste_mbs
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(policies: &str) -> Options {
        Options {
            trace: "test.csv".to_string(),
            policies: parse_policies(policies).unwrap(),
            memory_mb: 100.0,
            wasm_cold_ms: 1.0,
            python_cold_ms: 60.0,
            max_rows: u64::MAX,
        }
    }

    fn run(policies: &str, csv: &str) -> Result<Replay, String> {
        replay(&options(policies), "test.csv", csv.as_bytes())
    }

    #[test]
    fn reads_the_row_glued_to_the_header() {
        let csv = format!("{HEADER}0.5, f1, 100.0, 0-model\n2.0, f1, -3.0, 0-model\n");
        let replay = run("fixed:10", &csv).unwrap();
        assert_eq!(replay.rows, 2);
        assert_eq!(replay.functions.len(), 1);
        assert_eq!(replay.functions[0].invocations, 2);
        assert_eq!(replay.functions[0].longest_gap, Duration::from_secs(90));
    }

    #[test]
    fn rejects_rows_out_of_time_order_and_bad_rows() {
        let err = run("fixed:10", "5.0, f1, 1, m\n1.0, f2, 1, m\n0.5, f1, 1, m\n")
            .err()
            .unwrap();
        assert!(err.contains("test.csv:3"), "{err}");
        assert!(err.contains("time order"), "{err}");
        let err = run("fixed:10", "x, f1, 1, m\n").err().unwrap();
        assert!(err.contains("cannot parse row `x, f1, 1, m`"), "{err}");
    }

    #[test]
    fn counts_cold_starts_and_warm_idle_time() {
        // f1 arrives at 0, 5 and 20 minutes and runs 1 minute each; the trace ends at 20:00,
        // rounded up to 20 min. Fixed 10 min: cold at 0 (first) and 20 (idle 14 > 10).
        // Warm and idle: 1→5 (4 min), 6→16 (10 min): 14 min.
        let csv = "0, f1, 60000, m\n5, f1, 60000, m\n20, f1, 60000, m\n";
        let replay = run("fixed:10,fixed:20,fixed:0", csv).unwrap();
        let pools = &replay.functions[0].pools;
        assert_eq!(replay.horizon, Duration::from_secs(20 * 60));
        assert_eq!(
            (pools[0].cold, pools[0].idle_warm),
            (2, Duration::from_secs(14 * 60))
        );
        // Fixed 20 min: only the first is cold; idle 1→5 and 6→20 (18 min).
        assert_eq!(
            (pools[1].cold, pools[1].idle_warm),
            (1, Duration::from_secs(18 * 60))
        );
        // Fixed 0: every arrival is cold and nothing is held.
        assert_eq!((pools[2].cold, pools[2].idle_warm), (3, Duration::ZERO));
    }

    #[test]
    fn overlapping_invocations_are_warm() {
        let csv = "0, f1, 120000, m\n1, f1, 1000, m\n1.5, f1, 1000, m\n";
        let replay = run("fixed:0", csv).unwrap();
        assert_eq!(replay.functions[0].pools[0].cold, 1);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&values, 0.5), 2.0);
        assert_eq!(percentile(&values, 0.75), 3.0);
        assert_eq!(percentile(&values, 0.9), 4.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn policy_lists_parse() {
        let policies = parse_policies(DEFAULT_POLICIES).unwrap();
        let labels: Vec<_> = policies.iter().map(|(label, _)| label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "fixed-1min",
                "fixed-5min",
                "fixed-10min",
                "fixed-20min",
                "fixed-60min",
                "adaptive-10min"
            ]
        );
        assert!(
            parse_policies("lru:10")
                .unwrap_err()
                .contains("use `fixed` or `adaptive`")
        );
        assert!(parse_policies("fixed").unwrap_err().contains("NAME:MINUTES"));
    }
}
