//! Prometheus metrics on `GET /metrics`: requests, latency, error codes,
//! transactions and DataLoader batch sizes.
//!
//! Everything is a plain atomic or a small bounded map, recorded once per
//! request or per batch (never per field), and rendered in the Prometheus
//! text format on demand. Operation names come from clients, so at most
//! [`MAX_OPERATION_NAMES`] distinct names are tracked; later ones count as
//! `__other__`, which keeps a client from growing the map (and the scrape)
//! without bound. `--metrics false` turns recording and the route off.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::code::Code;

/// Distinct operation names tracked before the rest are counted as `__other__`.
pub const MAX_OPERATION_NAMES: usize = 256;

/// Error-code series: every [`Code`], then `OTHER` for anything else.
const CODE_SERIES: usize = Code::ALL.len() + 1;

/// The label of error-code series `i`.
fn code_label(i: usize) -> &'static str {
    Code::ALL.get(i).map_or("OTHER", |c| c.as_str())
}

/// Upper bounds of the request latency buckets, in seconds.
const LATENCY_BOUNDS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// Upper bounds of the DataLoader batch size buckets, in keys.
const BATCH_BOUNDS: [f64; 9] = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0];

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Executed without errors.
    Ok,
    /// Executed, with errors in the response.
    Error,
    /// Refused before execution (parse, validation, limits, APQ).
    Rejected,
}

impl Outcome {
    /// The outcome as metrics and spans name it.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Rejected => "rejected",
        }
    }
}

/// A fixed-bucket histogram over atomics.
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum of observations in millionths, so it stays an integer.
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((value * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// The process's metrics.
pub struct Metrics {
    requests: Mutex<HashMap<(String, Outcome), u64>>,
    latency: Histogram,
    errors: [AtomicU64; CODE_SERIES],
    /// DataLoader batch sizes, in keys; every request's loaders record here.
    pub batch_sizes: Histogram,
    /// Subscription sockets and what they carry.
    pub subscriptions: Subscriptions,
    /// Untrusted documents served under `--trusted-documents-log-only`.
    pub untrusted_documents: AtomicU64,
    /// Connection edge lists (not empty) answered directly (`[0]`) and
    /// through the executor (`[1]`); see `graphql::plain`.
    pub edge_lists: [AtomicU64; 2],
}

/// The subscription root fields counted by name; any other counts as `other`.
pub const SUBSCRIPTION_FIELDS: [&str; 3] = ["commentAdded", "postChanged", "feedPostAdded"];

/// Subscription sockets and what they carry, recorded once per socket,
/// subscription or message (never per field).
#[derive(Default)]
pub struct Subscriptions {
    /// Open subscription sockets (WebSocket).
    pub sockets: std::sync::atomic::AtomicI64,
    /// Open subscription event streams (SSE).
    pub streams: std::sync::atomic::AtomicI64,
    /// Running subscriptions by root field ([`SUBSCRIPTION_FIELDS`], then `other`).
    pub running: [std::sync::atomic::AtomicI64; SUBSCRIPTION_FIELDS.len() + 1],
    /// Distinct subscription runs, each shared by its subscribers (or run alone).
    pub runs: std::sync::atomic::AtomicI64,
    /// Subscription answers resolved (once per fan, however many share it).
    pub resolved: AtomicU64,
    /// `next` messages handed to sockets.
    pub delivered: AtomicU64,
    /// Sockets and streams closed because their peer did not read.
    pub slow_consumers: AtomicU64,
}

impl Subscriptions {
    /// The series index of subscription root field `field`.
    pub fn field_index(field: &str) -> usize {
        SUBSCRIPTION_FIELDS.iter().position(|f| *f == field).unwrap_or(SUBSCRIPTION_FIELDS.len())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::new(HashMap::new()),
            latency: Histogram::new(&LATENCY_BOUNDS),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            batch_sizes: Histogram::new(&BATCH_BOUNDS),
            subscriptions: Subscriptions::default(),
            untrusted_documents: AtomicU64::new(0),
            edge_lists: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }
}

impl Metrics {
    /// Records one GraphQL request: its operation, outcome, latency and error codes.
    pub fn request<'a>(&self, operation: &str, outcome: Outcome, took: Duration, codes: impl Iterator<Item = &'a str>) {
        if let Ok(mut requests) = self.requests.lock() {
            let operation = if is_label(operation) { operation } else { "__other__" };
            let mut key = (operation.to_owned(), outcome);
            if requests.len() >= MAX_OPERATION_NAMES * 3 && !requests.contains_key(&key) {
                key.0 = "__other__".to_owned();
            }
            *requests.entry(key).or_default() += 1;
        }
        self.latency.observe(took.as_secs_f64());
        for code in codes {
            let i = Code::parse(code).map_or(CODE_SERIES - 1, Code::index);
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition, with the store's transaction counts,
    /// the staged deletions this process knows to be in progress, and the
    /// events its writes published.
    pub fn render(&self, transactions: crate::store::TxCounts, staged_deletions: usize, published: u64) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP blogql_requests_total GraphQL requests by operation name and outcome.\n");
        out.push_str("# TYPE blogql_requests_total counter\n");
        if let Ok(requests) = self.requests.lock() {
            let mut rows: Vec<_> = requests.iter().collect();
            rows.sort();
            for ((operation, outcome), n) in rows {
                let _ = writeln!(
                    out,
                    "blogql_requests_total{{operation=\"{}\",outcome=\"{}\"}} {n}",
                    escape(operation),
                    outcome.label()
                );
            }
        }
        self.latency.render(&mut out, "blogql_request_duration_seconds", "Time to answer a GraphQL request.");
        out.push_str("# HELP blogql_errors_total Errors in GraphQL responses by extensions.code.\n");
        out.push_str("# TYPE blogql_errors_total counter\n");
        for (i, n) in self.errors.iter().enumerate() {
            let code = code_label(i);
            let _ = writeln!(out, "blogql_errors_total{{code=\"{code}\"}} {}", n.load(Ordering::Relaxed));
        }
        out.push_str("# HELP blogql_edge_lists_total Connection edge lists by how they were answered: plain (from memory, no future per field) or executor.\n");
        out.push_str("# TYPE blogql_edge_lists_total counter\n");
        for (path, n) in ["plain", "executor"].iter().zip(&self.edge_lists) {
            let _ = writeln!(out, "blogql_edge_lists_total{{path=\"{path}\"}} {}", n.load(Ordering::Relaxed));
        }
        out.push_str("# HELP blogql_transactions_total Write transactions by result; retried counts re-runs after transient conflicts.\n");
        out.push_str("# TYPE blogql_transactions_total counter\n");
        let _ = writeln!(out, "blogql_transactions_total{{result=\"committed\"}} {}", transactions.committed);
        let _ = writeln!(out, "blogql_transactions_total{{result=\"rolled_back\"}} {}", transactions.rolled_back);
        let _ = writeln!(out, "blogql_transactions_total{{result=\"retried\"}} {}", transactions.retried);
        series(
            &mut out,
            "blogql_staged_deletions",
            "gauge",
            "Staged deletions in progress: hidden, and not yet reaped.",
            staged_deletions,
        );
        self.batch_sizes.render(
            &mut out,
            "blogql_dataloader_batch_size",
            "Keys per DataLoader batch (one store round trip each).",
        );
        series(
            &mut out,
            "blogql_untrusted_documents_total",
            "counter",
            "Documents not in the trusted manifest, served because it only logs.",
            self.untrusted_documents.load(Ordering::Relaxed),
        );
        series(
            &mut out,
            "blogql_otlp_spans_dropped_total",
            "counter",
            "Spans not exported because the exporter's queue was full.",
            crate::telemetry::otlp::DROPPED.load(Ordering::Relaxed),
        );
        series(
            &mut out,
            "blogql_store_durable_commits_total",
            "counter",
            "Durable commits of the embedded store, each covering a group of writes.",
            crate::store::embedded::DURABLE_COMMITS.load(Ordering::Relaxed),
        );
        series(
            &mut out,
            "blogql_store_grouped_writes_total",
            "counter",
            "Writes of the embedded store answered after a durable commit.",
            crate::store::embedded::GROUPED_JOBS.load(Ordering::Relaxed),
        );
        series(
            &mut out,
            "blogql_store_redo_checkpoints_total",
            "counter",
            "Checkpoints of the embedded store's redo log: syncs of the store file that let a log be reused.",
            crate::store::embedded::REDO_CHECKPOINTS.load(Ordering::Relaxed),
        );
        series(
            &mut out,
            "blogql_store_redo_replayed_frames_total",
            "counter",
            "Redo log frames replayed into the embedded store's file when it was opened (after an unclean stop).",
            crate::store::embedded::REDO_REPLAYED_FRAMES.load(Ordering::Relaxed),
        );
        self.render_subscriptions(&mut out, published);
        out
    }

    fn render_subscriptions(&self, out: &mut String, published: u64) {
        let subs = &self.subscriptions;
        series(
            out,
            "blogql_subscription_sockets",
            "gauge",
            "Open subscription sockets.",
            subs.sockets.load(Ordering::Relaxed),
        );
        series(
            out,
            "blogql_subscription_streams",
            "gauge",
            "Open subscription event streams (SSE).",
            subs.streams.load(Ordering::Relaxed),
        );
        out.push_str("# HELP blogql_subscriptions Running subscriptions by root field.\n");
        out.push_str("# TYPE blogql_subscriptions gauge\n");
        for (i, n) in subs.running.iter().enumerate() {
            let field = SUBSCRIPTION_FIELDS.get(i).copied().unwrap_or("other");
            let _ = writeln!(out, "blogql_subscriptions{{field=\"{field}\"}} {}", n.load(Ordering::Relaxed));
        }
        series(
            out,
            "blogql_subscription_events_published_total",
            "counter",
            "Events of committed writes that reached a listener.",
            published,
        );
        series(
            out,
            "blogql_subscription_runs",
            "gauge",
            "Distinct subscription runs, each shared by its subscribers.",
            subs.runs.load(Ordering::Relaxed),
        );
        series(
            out,
            "blogql_subscription_answers_resolved_total",
            "counter",
            "Subscription answers resolved, once for every subscriber who shares them.",
            subs.resolved.load(Ordering::Relaxed),
        );
        series(
            out,
            "blogql_subscription_messages_delivered_total",
            "counter",
            "Subscription answers handed to sockets and streams.",
            subs.delivered.load(Ordering::Relaxed),
        );
        series(
            out,
            "blogql_subscription_slow_consumers_total",
            "counter",
            "Sockets and streams closed because their peer did not read.",
            subs.slow_consumers.load(Ordering::Relaxed),
        );
    }
}

/// Longest operation name kept as a label; longer ones count as `__other__`.
pub const MAX_OPERATION_NAME_BYTES: usize = 64;

/// Whether `name` may be a label value: a GraphQL name of at most
/// [`MAX_OPERATION_NAME_BYTES`]. Anything else a client sends (a megabyte,
/// quotes, newlines) is counted as `__other__`, so one series costs at most
/// a line of the scrape.
fn is_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_OPERATION_NAME_BYTES
        && name.bytes().all(|b| b == b'_' || b.is_ascii_alphanumeric())
}

/// Writes one unlabelled series: its `HELP` and `TYPE` lines, then its value.
pub fn series(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
}

/// Escapes a label value for the text format.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Histograms are cumulative with a `+Inf` bucket equal to the count.
    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::new(&BATCH_BOUNDS);
        for v in [1.0, 3.0, 3.0, 1000.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"5\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"500\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 4\nx_sum 1007\nx_count 4\n"), "{out}");
    }

    /// Operation names beyond the cap are counted as `__other__`, so the map stays bounded.
    #[test]
    fn operation_names_are_bounded() {
        let m = Metrics::default();
        for i in 0..MAX_OPERATION_NAMES * 5 {
            m.request(&format!("Op{i}"), Outcome::Ok, Duration::from_millis(1), std::iter::empty());
        }
        let n = m.requests.lock().map(|r| r.len()).unwrap_or(usize::MAX);
        assert!(n <= MAX_OPERATION_NAMES * 3 + 3, "{n}");
        let text = m.render(crate::store::TxCounts::default(), 0, 0);
        assert!(text.contains("operation=\"__other__\""));
        assert!(text.contains("operation=\"Op0\""));
    }

    /// Unknown codes count as `OTHER`; a name that is not a short GraphQL
    /// name (quotes, 65 bytes) counts as `__other__`, and 64 bytes is kept.
    #[test]
    fn codes_and_labels() {
        let m = Metrics::default();
        m.request("a\"b", Outcome::Error, Duration::ZERO, ["NOT_FOUND", "WHATEVER"].into_iter());
        m.request(&"x".repeat(65), Outcome::Ok, Duration::ZERO, std::iter::empty());
        m.request(&"y".repeat(64), Outcome::Ok, Duration::ZERO, std::iter::empty());
        let text = m.render(crate::store::TxCounts::default(), 0, 0);
        assert!(text.contains("blogql_errors_total{code=\"NOT_FOUND\"} 1"));
        assert!(text.contains("blogql_errors_total{code=\"OTHER\"} 1"));
        assert!(text.contains("operation=\"__other__\",outcome=\"error\"} 1"), "{text}");
        assert!(text.contains("operation=\"__other__\",outcome=\"ok\"} 1"), "{text}");
        assert!(text.contains(&format!("operation=\"{}\"", "y".repeat(64))), "{text}");
        assert!(!text.contains(&"x".repeat(65)));
    }
}
