//! A function's charts (invocations, errors and latency over the last hour or day),
//! drawn on the server as inline SVG from [`Engine::function_history`]: no script, and
//! each bar carries its numbers in a `<title>` a pointer or a screen reader finds.

use super::functions::seconds;
use std::fmt::Write;
use wisp_core::wall::rfc3339_ms;
use wisp_engine::history::{Point, Window};

/// The drawing's size in SVG units; the page stretches it to its width.
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 100.0;

/// A bar of a chart: where it stands and what it says.
pub(crate) struct Bar {
    pub x: String,
    pub y: String,
    pub width: String,
    pub height: String,
    pub title: String,
}

/// A line of a chart, as the `points` of an SVG polyline (one per run of steps with
/// values: a step with none breaks the line).
pub(crate) struct Line {
    pub class: &'static str,
    pub label: &'static str,
    pub runs: Vec<String>,
}

/// One chart.
pub(crate) struct Chart {
    pub id: &'static str,
    pub title: &'static str,
    /// The value at the top of the drawing, and the text a reader gets instead of it.
    pub top: String,
    pub summary: String,
    /// The bars' class (`bad` for errors).
    pub class: &'static str,
    pub bars: Vec<Bar>,
    pub lines: Vec<Line>,
    pub from: String,
    pub to: String,
}

/// The window a chart's query names (`?window=day`); hour by default.
pub(crate) fn window(text: Option<&str>) -> Result<Window, String> {
    text.map_or(Ok(Window::Hour), str::parse)
}

/// `HH:MM` UTC of an instant.
fn clock(ms: i64) -> String {
    rfc3339_ms(ms).get(11..16).unwrap_or_default().to_owned()
}

/// The smallest of 1, 2 or 5 times a power of ten at least `max` (1 for nothing).
fn ceiling(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&c| c >= max)
        .unwrap_or(10.0 * power)
}

fn step_name(window: Window) -> &'static str {
    match window {
        Window::Hour => "minute",
        Window::Day => "15 min",
    }
}

fn bars(points: &[Point], value: impl Fn(&Point) -> u64, top: f64, what: &str) -> Vec<Bar> {
    let width = WIDTH / points.len().max(1) as f64;
    points
        .iter()
        .enumerate()
        .filter(|(_, p)| value(p) > 0)
        .map(|(i, p)| {
            let height = (value(p) as f64 / top * HEIGHT).max(1.0);
            Bar {
                x: format!("{:.2}", i as f64 * width + width * 0.1),
                y: format!("{:.2}", HEIGHT - height),
                width: format!("{:.2}", width * 0.8),
                height: format!("{height:.2}"),
                title: format!("{} UTC: {} {what}", clock(p.start_ms), value(p)),
            }
        })
        .collect()
}

fn bar_chart(
    id: &'static str,
    title: &'static str,
    class: &'static str,
    points: &[Point],
    window: Window,
    value: impl Fn(&Point) -> u64,
    what: &str,
) -> Chart {
    let total: u64 = points.iter().map(&value).sum();
    let peak = points.iter().max_by_key(|p| value(p));
    let top = ceiling(peak.map_or(0, &value) as f64);
    let summary = match peak {
        Some(p) if total > 0 => format!(
            "{total} {what} in all; at most {} a {} (at {} UTC)",
            value(p),
            step_name(window),
            clock(p.start_ms)
        ),
        _ => format!("No {what}."),
    };
    Chart {
        id,
        title,
        top: format!("{top} / {}", step_name(window)),
        summary,
        class,
        bars: bars(points, &value, top, what),
        lines: Vec::new(),
        from: clock(points.first().map_or(0, |p| p.start_ms)),
        to: clock(points.last().map_or(0, |p| p.start_ms)),
    }
}

/// The polyline runs of one percentile, scaled to `top` seconds: each step with a value
/// is a flat stroke across its width, joined to the next one's (a step with none breaks
/// the line), so even a lone minute shows.
fn runs(points: &[Point], value: impl Fn(&Point) -> Option<f64>, top: f64) -> Vec<String> {
    let width = WIDTH / points.len().max(1) as f64;
    let mut runs = Vec::new();
    let mut run = String::new();
    for (i, p) in points.iter().enumerate() {
        match value(p) {
            Some(v) => {
                let x = i as f64 * width;
                let y = HEIGHT - (v / top * HEIGHT).min(HEIGHT);
                let _ = write!(run, "{x:.2},{y:.2} {:.2},{y:.2} ", x + width);
            }
            None if !run.is_empty() => runs.push(std::mem::take(&mut run)),
            None => {}
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs.into_iter().map(|r| r.trim_end().to_owned()).collect()
}

/// The three charts of a function's `points` over `window`.
pub(crate) fn charts(points: &[Point], window: Window) -> Vec<Chart> {
    let invocations = bar_chart(
        "chart-invocations",
        "Invocations",
        "",
        points,
        window,
        |p| p.invocations,
        "invocations",
    );
    let errors = bar_chart(
        "chart-errors",
        "Errors",
        "bad",
        points,
        window,
        |p| p.errors,
        "errors",
    );
    let slowest = points.iter().filter_map(|p| p.p99_seconds).fold(0.0, f64::max);
    let top = if slowest > 0.0 {
        // A round number of milliseconds (or of microseconds below one).
        if slowest >= 0.001 {
            ceiling(slowest * 1e3) / 1e3
        } else {
            ceiling(slowest * 1e6) / 1e6
        }
    } else {
        0.001
    };
    let summary = match (
        points.iter().filter_map(|p| p.p50_seconds).reduce(f64::max),
        slowest,
    ) {
        (Some(p50), p99) => format!(
            "The slowest {} had p50 {} and p99 {}.",
            step_name(window),
            seconds(Some(p50)),
            seconds(Some(p99))
        ),
        (None, _) => "No invocation ended.".to_owned(),
    };
    let latency = Chart {
        id: "chart-latency",
        title: "Latency",
        top: seconds(Some(top)),
        summary,
        class: "",
        bars: Vec::new(),
        lines: vec![
            Line {
                class: "p50",
                label: "p50",
                runs: runs(points, |p| p.p50_seconds, top),
            },
            Line {
                class: "p99",
                label: "p99",
                runs: runs(points, |p| p.p99_seconds, top),
            },
        ],
        from: invocations.from.clone(),
        to: invocations.to.clone(),
    };
    vec![invocations, errors, latency]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(i: i64, invocations: u64, errors: u64, p99: Option<f64>) -> Point {
        Point {
            start_ms: 1_800_000_000_000 + i * 60_000,
            invocations,
            errors,
            throttles: 0,
            p50_seconds: p99.map(|s| s / 2.0),
            p99_seconds: p99,
        }
    }

    #[test]
    fn ceilings_are_round() {
        assert_eq!(ceiling(0.0), 1.0);
        assert_eq!(ceiling(7.0), 10.0);
        assert_eq!(ceiling(12.0), 20.0);
        assert_eq!(ceiling(50.0), 50.0);
        assert_eq!(ceiling(0.0031), 0.005);
    }

    #[test]
    fn bars_stand_where_their_step_is_and_say_their_numbers() {
        let mut points: Vec<Point> = (0..60).map(|i| point(i, 0, 0, None)).collect();
        points[59] = point(59, 12, 3, Some(0.004));
        points[30] = point(30, 6, 0, Some(0.002));
        let [invocations, errors, latency] = <[Chart; 3]>::try_from(charts(&points, Window::Hour))
            .ok()
            .unwrap();
        assert_eq!(invocations.bars.len(), 2);
        assert_eq!(invocations.top, "20 / minute");
        assert_eq!(invocations.bars[1].x, "591.00");
        assert_eq!(invocations.bars[1].height, "60.00");
        assert!(
            invocations.bars[1].title.ends_with(": 12 invocations"),
            "{}",
            invocations.bars[1].title
        );
        assert!(
            invocations
                .summary
                .starts_with("18 invocations in all; at most 12 a minute")
        );
        assert_eq!(errors.bars.len(), 1);
        assert_eq!(errors.class, "bad");
        // Two separate runs: the steps between have no duration.
        assert_eq!(latency.lines[1].runs.len(), 2);
        // p99 4 ms of a 5 ms top, across the last minute's width.
        assert_eq!(latency.lines[1].runs[1], "590.00,20.00 600.00,20.00");
        assert_eq!(latency.top, "5.0ms");
        assert!(latency.summary.contains("p99 4.0ms"), "{}", latency.summary);
    }

    #[test]
    fn an_idle_window_says_so() {
        let points: Vec<Point> = (0..96).map(|i| point(i, 0, 0, None)).collect();
        let charts = charts(&points, Window::Day);
        assert!(charts.iter().all(|c| c.bars.is_empty()));
        assert_eq!(charts[0].summary, "No invocations.");
        assert_eq!(charts[2].summary, "No invocation ended.");
        assert!(window(Some("week")).unwrap_err().contains("`week`"));
    }
}
