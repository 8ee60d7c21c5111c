//! `wisp-bench-kv`: the measuring half of `bench/kv/run.sh` (which starts `wisp serve`,
//! creates the store and deploys kv-kit first).
//!
//! ```text
//! wisp-bench-kv ADDR DB SECONDS ROUNDS N
//! ```
//!
//! In each of ROUNDS rounds, for SECONDS each (after a 0.5 s warm-up), at c=16: kv-kit's
//! bench route on the server at ADDR (store `bench`, key `k`) making 0, 1 and N gets, then
//! 1 and N sets, per invocation; and this process's own [`wisp_store::SqliteStore`] (at DB,
//! created) answering `kv_get` and `kv_set` of the same key and value. Rows are rotated
//! from round to round; the report takes each row's median. See `bench/kv/README.md` for
//! how the per-call costs are derived.

mod direct;
mod guest;
mod load;

use anyhow::{Context as _, Result, bail, ensure};
use direct::Direct;
use guest::Guest;
use load::Rate;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

const USAGE: &str = "usage: wisp-bench-kv ADDR DB SECONDS ROUNDS N";
/// The store and key both sides use; run.sh creates the store on the server.
const STORE: &str = "bench";
const KEY: &str = "k";
/// Bytes of the value both sides write and read.
const VALUE_BYTES: usize = 64;
/// The issue's floor: a guest's call costs at most this much over the direct call.
const FLOOR_US: f64 = 20.0;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Get,
    Set,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Get => "get",
            Op::Set => "set",
        })
    }
}

/// One measurement of a round.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Row {
    /// Invocations making `n` calls each (`n` = 0: the store opened, nothing else).
    Guest { op: Op, n: usize },
    /// Store calls made by this process.
    Direct(Op),
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Row::Guest { n: 0, .. } => write!(f, "guest open only, n=0"),
            Row::Guest { op, n } => write!(f, "guest {op} n={n}"),
            Row::Direct(op) => write!(f, "direct {op}"),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        [addr, db, seconds, rounds, n] => run(addr, Path::new(db), seconds, rounds, n).await,
        _ => Err(anyhow::anyhow!("{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wisp-bench-kv: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(addr: &str, db: &Path, seconds: &str, rounds: &str, n: &str) -> Result<()> {
    let seconds: f64 = seconds
        .trim_end_matches('s')
        .parse()
        .with_context(|| format!("invalid duration `{seconds}`: use seconds"))?;
    ensure!(
        seconds.is_finite() && seconds > 0.0,
        "the duration must be positive"
    );
    let rounds: usize = rounds
        .parse()
        .with_context(|| format!("invalid rounds `{rounds}`"))?;
    let n: usize = n.parse().with_context(|| format!("invalid N `{n}`"))?;
    ensure!(rounds > 0 && n > 1, "ROUNDS must be at least 1 and N at least 2");

    let guest = Arc::new(Guest::new(addr, STORE, KEY, VALUE_BYTES));
    // The key exists before anything reads it, on both sides.
    guest.once(Op::Set, 1).await?;
    guest.once(Op::Get, 1).await?;
    let direct = Arc::new(Direct::open(db, STORE, KEY, vec![b'v'; VALUE_BYTES]).await?);

    let rows = [
        Row::Guest { op: Op::Get, n: 0 },
        Row::Guest { op: Op::Get, n: 1 },
        Row::Guest { op: Op::Get, n },
        Row::Guest { op: Op::Set, n: 1 },
        Row::Guest { op: Op::Set, n },
        Row::Direct(Op::Get),
        Row::Direct(Op::Set),
    ];
    let mut samples: HashMap<Row, Vec<Rate>> = HashMap::new();
    for round in 0..rounds {
        // Each round starts one row later, so no row always runs first (or last).
        for i in 0..rows.len() {
            let row = rows[(i + round) % rows.len()];
            let rate = match row {
                Row::Guest { op, n } => guest.rate(op, n, seconds).await,
                Row::Direct(op) => direct.rate(op, seconds).await,
            }
            .with_context(|| format!("{row}, round {}", round + 1))?;
            eprintln!(
                "  round {} {:<22} {:>9.0} /s  p50 {:>6} us",
                round + 1,
                row.to_string(),
                rate.per_s,
                rate.p50_us
            );
            samples.entry(row).or_default().push(rate);
        }
    }
    let median = |row: Row| -> Rate {
        let mut rates = samples[&row].clone();
        rates.sort_by(|a, b| a.per_s.total_cmp(&b.per_s));
        rates[(rates.len() - 1) / 2]
    };
    // The spread behind the medians: each round's own extra cost per call.
    for op in [Op::Get, Op::Set] {
        let extras: Vec<String> = (0..rounds)
            .map(|round| {
                let rate = |row: Row| samples[&row][round].per_s;
                let invocation = |calls: usize| 1.0 / rate(Row::Guest { op, n: calls });
                let base = 1.0 / rate(Row::Guest { op: Op::Get, n: 0 });
                let guest_us = (invocation(n) - base) / n as f64 * 1e6;
                format!("{:.2}", guest_us - 1e6 / rate(Row::Direct(op)))
            })
            .collect();
        eprintln!("  extra {op} us, round by round: {}", extras.join(" "));
    }
    report(&rows, &median, seconds, rounds, n)
}

/// Prints the table, the per-call costs and the floor's verdict, then the RESULT line.
fn report(rows: &[Row], median: &dyn Fn(Row) -> Rate, seconds: f64, rounds: usize, n: usize) -> Result<()> {
    println!();
    println!(
        "kv: wasi:keyvalue get/set of one {VALUE_BYTES}-byte value by kv-kit's bench route, c=16 keep-alive\n    \
         connections; direct: SqliteStore::kv_get/kv_set in the bench's process, c=16 tasks;\n    \
         {seconds} s per row after a 0.5 s warm-up, median of {rounds} rounds"
    );
    println!("{:<24} {:>12} {:>12} {:>9}", "", "calls/s", "kv ops/s", "p50 us");
    for &row in rows {
        let rate = median(row);
        let (calls, ops) = match row {
            Row::Guest { n, .. } => (
                format!("{:.0}", rate.per_s),
                format!("{:.0}", rate.per_s * n as f64),
            ),
            Row::Direct(_) => ("-".to_string(), format!("{:.0}", rate.per_s)),
        };
        println!("{:<24} {calls:>12} {ops:>12} {:>9}", row.to_string(), rate.p50_us);
    }

    // Wall microseconds per call at saturation: what one more call adds to an invocation,
    // against one direct call.
    let base = median(Row::Guest { op: Op::Get, n: 0 }).per_s;
    let per_call = |op: Op, calls: usize| {
        let rate = median(Row::Guest { op, n: calls }).per_s;
        (1.0 / rate - 1.0 / base) / calls as f64 * 1e6
    };
    println!(
        "{:<24} {:>12} {:>12} {:>9} {:>9} {:>13}",
        "per call, wall us",
        format!("guest n={n}"),
        "guest n=1",
        "direct",
        "extra",
        "guest/direct"
    );
    let mut extra = HashMap::new();
    for op in [Op::Get, Op::Set] {
        let guest_us = per_call(op, n);
        let direct_us = 1e6 / median(Row::Direct(op)).per_s;
        extra.insert(op, guest_us - direct_us);
        println!(
            "{:<24} {guest_us:>12.2} {:>12.2} {direct_us:>9.2} {:>9.2} {:>13.2}",
            op.to_string(),
            per_call(op, 1),
            guest_us - direct_us,
            guest_us / direct_us
        );
    }
    let verdict = |op: Op| {
        let us = extra[&op];
        format!("{op} {} ({us:+.2} us)", if us <= FLOOR_US { "yes" } else { "NO" })
    };
    println!(
        "floor, a guest call <= direct + {FLOOR_US} us: {}, {}",
        verdict(Op::Get),
        verdict(Op::Set)
    );
    let ops = |row: Row, calls: usize| median(row).per_s * calls as f64;
    let result = format!(
        "RESULT guest_get_per_s={:.0} guest_set_per_s={:.0} direct_get_per_s={:.0} direct_set_per_s={:.0} \
         extra_get_us={:.2} extra_set_us={:.2}",
        ops(Row::Guest { op: Op::Get, n }, n),
        ops(Row::Guest { op: Op::Set, n }, n),
        ops(Row::Direct(Op::Get), 1),
        ops(Row::Direct(Op::Set), 1),
        extra[&Op::Get],
        extra[&Op::Set]
    );
    if !result
        .split(' ')
        .all(|field| !field.contains("NaN") && !field.contains("inf"))
    {
        bail!("a rate was zero: {result}");
    }
    println!("{result}");
    Ok(())
}
