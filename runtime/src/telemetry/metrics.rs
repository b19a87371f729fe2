//! Per-function counters, exposed on the admin API as JSON and in the
//! Prometheus text format. Invocation counters are kept per trigger; instance
//! counters belong to the function as a whole.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

use crate::telemetry::ids::Trigger;

/// How the invocations of one trigger ended.
#[derive(Default, Debug)]
struct TriggerCounters {
    invocations: AtomicU64,
    responses_2xx: AtomicU64,
    responses_4xx: AtomicU64,
    responses_5xx: AtomicU64,
    in_flight: AtomicU64,
}

/// Counters of one function, kept across its revisions.
#[derive(Default, Debug)]
pub struct FunctionMetrics {
    triggers: [TriggerCounters; Trigger::ALL.len()],
    instances_created: AtomicU64,
    instances_live: AtomicU64,
    instances_reused: AtomicU64,
    cpu_ms: AtomicU64,
    cpu_limit_reached: AtomicU64,
    guest_log_dropped: AtomicU64,
}

/// A point-in-time copy of [`FunctionMetrics`], summed over triggers.
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
    /// Guest CPU time charged, in milliseconds (sampled at 10 ms ticks).
    pub cpu_time_ms: u64,
    /// Invocations stopped at their `cpu_time` limit.
    pub cpu_limit_reached: u64,
    /// Lines of guest output not logged: past the per-invocation caps, or
    /// with the log pipeline full.
    pub guest_log_dropped: u64,
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

    pub fn cpu_used(&self, cpu: std::time::Duration) {
        let ms = u64::try_from(cpu.as_millis()).unwrap_or(u64::MAX);
        self.cpu_ms.fetch_add(ms, Relaxed);
    }

    pub fn cpu_limit_reached(&self) {
        self.cpu_limit_reached.fetch_add(1, Relaxed);
    }

    pub fn guest_log_dropped(&self, lines: u64) {
        self.guest_log_dropped.fetch_add(lines, Relaxed);
    }

    pub fn invocation_started(&self, trigger: Trigger) {
        let c = &self.triggers[trigger.index()];
        c.invocations.fetch_add(1, Relaxed);
        c.in_flight.fetch_add(1, Relaxed);
    }

    pub fn invocation_finished(&self, trigger: Trigger, status: u16) {
        let c = &self.triggers[trigger.index()];
        c.in_flight.fetch_sub(1, Relaxed);
        let counter = match status {
            200..=399 => &c.responses_2xx,
            400..=499 => &c.responses_4xx,
            _ => &c.responses_5xx,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// The counters of one trigger (instance counters are the function's).
    pub fn of_trigger(&self, trigger: Trigger) -> MetricsSnapshot {
        let c = &self.triggers[trigger.index()];
        MetricsSnapshot {
            invocations: c.invocations.load(Relaxed),
            responses_2xx: c.responses_2xx.load(Relaxed),
            responses_4xx: c.responses_4xx.load(Relaxed),
            responses_5xx: c.responses_5xx.load(Relaxed),
            in_flight: c.in_flight.load(Relaxed),
            ..self.instances()
        }
    }

    fn instances(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            instances_created: self.instances_created.load(Relaxed),
            instances_live: self.instances_live.load(Relaxed),
            instances_reused: self.instances_reused.load(Relaxed),
            cpu_time_ms: self.cpu_ms.load(Relaxed),
            cpu_limit_reached: self.cpu_limit_reached.load(Relaxed),
            guest_log_dropped: self.guest_log_dropped.load(Relaxed),
            ..MetricsSnapshot::default()
        }
    }

    /// Every counter, invocations summed over triggers.
    pub fn snapshot(&self) -> MetricsSnapshot {
        Trigger::ALL
            .iter()
            .map(|t| self.of_trigger(*t))
            .fold(self.instances(), |mut sum, t| {
                sum.invocations += t.invocations;
                sum.responses_2xx += t.responses_2xx;
                sum.responses_4xx += t.responses_4xx;
                sum.responses_5xx += t.responses_5xx;
                sum.in_flight += t.in_flight;
                sum
            })
    }
}

type Series = (&'static str, &'static str, fn(&MetricsSnapshot) -> u64);

/// Invocation series, labelled with function and trigger.
const PER_TRIGGER: [Series; 5] = [
    ("wisp_invocations_total", "counter", |m| m.invocations),
    ("wisp_responses_2xx_total", "counter", |m| m.responses_2xx),
    ("wisp_responses_4xx_total", "counter", |m| m.responses_4xx),
    ("wisp_responses_5xx_total", "counter", |m| m.responses_5xx),
    ("wisp_in_flight", "gauge", |m| m.in_flight),
];

/// Instance series, labelled with function.
const PER_FUNCTION: [Series; 6] = [
    ("wisp_instances_created_total", "counter", |m| {
        m.instances_created
    }),
    ("wisp_instances_live", "gauge", |m| m.instances_live),
    ("wisp_instances_reused_total", "counter", |m| {
        m.instances_reused
    }),
    ("wisp_guest_cpu_milliseconds_total", "counter", |m| {
        m.cpu_time_ms
    }),
    ("wisp_cpu_limit_reached_total", "counter", |m| {
        m.cpu_limit_reached
    }),
    ("wisp_guest_log_dropped_total", "counter", |m| {
        m.guest_log_dropped
    }),
];

/// Renders `(function, metrics)` pairs in the Prometheus text format.
pub fn prometheus<'a>(
    functions: impl IntoIterator<Item = (&'a str, &'a FunctionMetrics)>,
) -> String {
    let rows: Vec<_> = functions.into_iter().collect();
    let mut out = String::new();
    for (name, kind, get) in PER_TRIGGER {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (function, m) in &rows {
            for trigger in Trigger::ALL {
                let value = get(&m.of_trigger(trigger));
                let _ = writeln!(
                    out,
                    "{name}{{function=\"{function}\",trigger=\"{trigger}\"}} {value}"
                );
            }
        }
    }
    for (name, kind, get) in PER_FUNCTION {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (function, m) in &rows {
            let _ = writeln!(
                out,
                "{name}{{function=\"{function}\"}} {}",
                get(&m.snapshot())
            );
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
        m.invocation_started(Trigger::Http);
        m.instance_created();
        m.invocation_finished(Trigger::Http, 504);
        m.instance_dropped();
        m.guest_log_dropped(3);
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
        let text = prometheus([("hello", &m)]);
        assert!(text.contains("wisp_responses_5xx_total{function=\"hello\",trigger=\"http\"} 1"));
        assert!(text.contains("wisp_instances_live{function=\"hello\"} 0"));
        assert!(text.contains("wisp_guest_log_dropped_total{function=\"hello\"} 3"));
    }
}
