//! Metrics as Prometheus reads them: the text exposition format (version 0.0.4, what
//! `promtool check metrics` and a plain `curl` expect) and OpenMetrics 1.0 (what a
//! Prometheus server asks for first), one writer for both.
//!
//! Written here rather than with a crate: `prometheus-client` writes only OpenMetrics
//! (its counters' `# TYPE` lines name the family without `_total`, which the 0.0.4
//! format reads as an untyped sample), and `metrics-exporter-prometheus` keeps every
//! histogram observation until a scrape drains it. The two formats differ in three
//! places: a counter family's name in `# HELP`/`# TYPE` (`_total` in 0.0.4, without it
//! in OpenMetrics), the form of an integral `le` bound (`1` or `1.0`), and the `# EOF`
//! that ends OpenMetrics.
//!
//! Samples of one family must be written together, after its [`Exposition::family`].

use std::fmt::Write as _;

/// Which format to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus' text format, version 0.0.4.
    Text,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

impl Format {
    /// The format a request's `Accept` header asks for: OpenMetrics when it names it
    /// (Prometheus lists it first), else the text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A metric family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One label: name and value.
pub type Label<'a> = (&'a str, &'a str);

/// A histogram's buckets as observed: counts per bucket (not cumulative), the last
/// being the `+Inf` bucket, and the sum of the observations.
#[derive(Clone, Copy, Debug)]
pub struct Buckets<'a> {
    /// The upper bounds, in the metric's unit, ascending; one fewer than `counts`.
    pub bounds: &'a [f64],
    pub counts: &'a [u64],
    pub sum: f64,
}

/// An exposition being written.
pub struct Exposition {
    format: Format,
    out: String,
}

impl Exposition {
    pub fn new(format: Format) -> Exposition {
        Exposition {
            format,
            out: String::with_capacity(64 * 1024),
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Starts a family: its `# HELP` and `# TYPE`. `name` is the family's base name
    /// (a counter's without `_total`: [`Exposition::counter`] adds it).
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let total = if kind == Kind::Counter && self.format == Format::Text {
            "_total"
        } else {
            ""
        };
        let help = escape_help(help);
        let kind = kind.as_str();
        let _ = write!(
            self.out,
            "# HELP {name}{total} {help}\n# TYPE {name}{total} {kind}\n"
        );
    }

    /// A counter's sample (`name` as given to [`Exposition::family`]).
    pub fn counter(&mut self, name: &str, labels: &[Label<'_>], value: u64) {
        self.sample_start(name, "_total", labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// A gauge's sample.
    pub fn gauge(&mut self, name: &str, labels: &[Label<'_>], value: f64) {
        self.sample_start(name, "", labels, None);
        self.out.push(' ');
        push_float(&mut self.out, value, false);
        self.out.push('\n');
    }

    /// A histogram's samples: a cumulative `_bucket` per bound and `+Inf`, `_sum` and
    /// `_count`.
    pub fn histogram(&mut self, name: &str, labels: &[Label<'_>], buckets: Buckets<'_>) {
        let mut cumulative = 0u64;
        let mut bound = String::new();
        for (i, count) in buckets.counts.iter().enumerate() {
            cumulative += count;
            bound.clear();
            match buckets.bounds.get(i) {
                Some(b) => push_float(&mut bound, *b, self.format == Format::OpenMetrics),
                None => bound.push_str("+Inf"),
            }
            self.sample_start(name, "_bucket", labels, Some(&bound));
            let _ = writeln!(self.out, " {cumulative}");
        }
        self.sample_start(name, "_sum", labels, None);
        self.out.push(' ');
        push_float(&mut self.out, buckets.sum, false);
        self.out.push('\n');
        self.sample_start(name, "_count", labels, None);
        let _ = writeln!(self.out, " {cumulative}");
    }

    /// The exposition, ended as its format requires.
    pub fn finish(mut self) -> String {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.out
    }

    fn sample_start(&mut self, name: &str, suffix: &str, labels: &[Label<'_>], le: Option<&str>) {
        self.out.push_str(name);
        self.out.push_str(suffix);
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let mut first = true;
        for (key, value) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
            if !first {
                self.out.push(',');
            }
            first = false;
            self.out.push_str(key);
            self.out.push_str("=\"");
            push_label_value(&mut self.out, value);
            self.out.push('"');
        }
        self.out.push('}');
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn push_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Help text with `\` and newlines escaped.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A float as both formats read it; `point` writes an integral value with `.0`
/// (OpenMetrics' canonical `le`).
fn push_float(out: &mut String, value: f64, point: bool) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else if point && value.fract() == 0.0 {
        let _ = write!(out, "{value:.1}");
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(format: Format) -> String {
        let mut e = Exposition::new(format);
        e.family("wisp_invocations", Kind::Counter, "Invocations.\nBy outcome.");
        e.counter("wisp_invocations", &[("function", "a\"b\\c\nd")], 3);
        e.family("wisp_up", Kind::Gauge, "Up.");
        e.gauge("wisp_up", &[], 1.0);
        e.family("wisp_run_seconds", Kind::Histogram, "Run time.");
        e.histogram(
            "wisp_run_seconds",
            &[("function", "f")],
            Buckets {
                bounds: &[0.5, 1.0],
                counts: &[1, 0, 2],
                sum: 7.25,
            },
        );
        e.finish()
    }

    #[test]
    fn the_text_format_names_counters_with_total_and_has_no_eof() {
        let text = sample(Format::Text);
        assert_eq!(
            text,
            "# HELP wisp_invocations_total Invocations.\\nBy outcome.\n\
             # TYPE wisp_invocations_total counter\n\
             wisp_invocations_total{function=\"a\\\"b\\\\c\\nd\"} 3\n\
             # HELP wisp_up Up.\n# TYPE wisp_up gauge\nwisp_up 1\n\
             # HELP wisp_run_seconds Run time.\n# TYPE wisp_run_seconds histogram\n\
             wisp_run_seconds_bucket{function=\"f\",le=\"0.5\"} 1\n\
             wisp_run_seconds_bucket{function=\"f\",le=\"1\"} 1\n\
             wisp_run_seconds_bucket{function=\"f\",le=\"+Inf\"} 3\n\
             wisp_run_seconds_sum{function=\"f\"} 7.25\n\
             wisp_run_seconds_count{function=\"f\"} 3\n"
        );
    }

    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
        let text = sample(Format::OpenMetrics);
        assert!(text.starts_with("# HELP wisp_invocations Invocations.\\nBy outcome.\n# TYPE wisp_invocations counter\nwisp_invocations_total{"));
        assert!(text.contains("wisp_run_seconds_bucket{function=\"f\",le=\"1.0\"} 1\n"));
        assert!(text.ends_with("wisp_run_seconds_count{function=\"f\"} 3\n# EOF\n"));
    }

    #[test]
    fn negotiation_prefers_openmetrics_only_when_asked() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
    }
}
