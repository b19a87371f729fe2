//! Logging setup and per-function counters, exposed on the admin API as JSON
//! and in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;
use tracing_subscriber::EnvFilter;

/// Logs go to stderr; `WISP_LOG` (tracing's filter syntax) sets the level.
pub fn init_logging() {
    let filter = EnvFilter::try_from_env("WISP_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // A second init (tests calling into the library) is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Counters of one function, kept across its revisions.
#[derive(Default, Debug)]
pub struct FunctionMetrics {
    invocations: AtomicU64,
    responses_2xx: AtomicU64,
    responses_4xx: AtomicU64,
    responses_5xx: AtomicU64,
    instances_created: AtomicU64,
    instances_live: AtomicU64,
    instances_reused: AtomicU64,
    in_flight: AtomicU64,
}

/// A point-in-time copy of [`FunctionMetrics`].
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub invocations: u64,
    pub responses_2xx: u64,
    pub responses_4xx: u64,
    pub responses_5xx: u64,
    pub instances_created: u64,
    pub instances_live: u64,
    /// Requests served by an instance that had served one before.
    pub instances_reused: u64,
    pub in_flight: u64,
}

impl FunctionMetrics {
    pub fn instance_created(&self) {
        self.instances_created.fetch_add(1, Relaxed);
        self.instances_live.fetch_add(1, Relaxed);
    }

    pub fn instance_dropped(&self) {
        self.instances_live.fetch_sub(1, Relaxed);
    }

    pub fn instance_reused(&self) {
        self.instances_reused.fetch_add(1, Relaxed);
    }

    pub fn invocation_started(&self) {
        self.invocations.fetch_add(1, Relaxed);
        self.in_flight.fetch_add(1, Relaxed);
    }

    pub fn invocation_finished(&self, status: u16) {
        self.in_flight.fetch_sub(1, Relaxed);
        let counter = match status {
            200..=399 => &self.responses_2xx,
            400..=499 => &self.responses_4xx,
            _ => &self.responses_5xx,
        };
        counter.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            invocations: self.invocations.load(Relaxed),
            responses_2xx: self.responses_2xx.load(Relaxed),
            responses_4xx: self.responses_4xx.load(Relaxed),
            responses_5xx: self.responses_5xx.load(Relaxed),
            instances_created: self.instances_created.load(Relaxed),
            instances_live: self.instances_live.load(Relaxed),
            instances_reused: self.instances_reused.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
        }
    }
}

/// Renders `(function, snapshot)` pairs in the Prometheus text format.
pub fn prometheus<'a>(functions: impl IntoIterator<Item = (&'a str, MetricsSnapshot)>) -> String {
    let rows: Vec<_> = functions.into_iter().collect();
    let mut out = String::new();
    type Series = (&'static str, &'static str, fn(&MetricsSnapshot) -> u64);
    let series: [Series; 8] = [
        ("wisp_invocations_total", "counter", |m| m.invocations),
        ("wisp_responses_2xx_total", "counter", |m| m.responses_2xx),
        ("wisp_responses_4xx_total", "counter", |m| m.responses_4xx),
        ("wisp_responses_5xx_total", "counter", |m| m.responses_5xx),
        ("wisp_instances_created_total", "counter", |m| {
            m.instances_created
        }),
        ("wisp_instances_live", "gauge", |m| m.instances_live),
        ("wisp_instances_reused_total", "counter", |m| {
            m.instances_reused
        }),
        ("wisp_in_flight", "gauge", |m| m.in_flight),
    ];
    for (name, kind, get) in series {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (function, m) in &rows {
            let _ = writeln!(out, "{name}{{function=\"{function}\"}} {}", get(m));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let m = FunctionMetrics::default();
        m.invocation_started();
        m.instance_created();
        m.invocation_finished(504);
        m.instance_dropped();
        let s = m.snapshot();
        assert_eq!(
            (
                s.invocations,
                s.responses_5xx,
                s.in_flight,
                s.instances_live
            ),
            (1, 1, 0, 0)
        );
        let text = prometheus([("hello", s)]);
        assert!(text.contains("wisp_responses_5xx_total{function=\"hello\"} 1"));
    }
}
