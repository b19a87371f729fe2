//! Per-function metrics: the families every function's series live in, and
//! [`FunctionMetrics`], one function's handles into them, resolved once
//! when the function is first deployed so that counting on the hot path is
//! an atomic add (a short mutex for histograms), never a label lookup.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use serde::Serialize;

use crate::telemetry::ids::Trigger;
use crate::telemetry::metrics::Outcome;
use crate::telemetry::metrics::minutes::{Minutes, Window};

/// Latency buckets, in seconds: 100 µs to 60 s, about ×2.5 apart.
pub const LATENCY_BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Peak-memory buckets, in bytes: 1 MiB to 4 GiB, ×2 apart.
fn memory_buckets() -> Histogram {
    Histogram::new((20..=32).map(|shift| (1u64 << shift) as f64))
}

/// A counter of fractional amounts (seconds, GB-seconds).
pub type Amount = Counter<f64, AtomicU64>;

/// What one invocation used, as cost metering measures it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub wall: Duration,
    /// Guest CPU time, sampled at epoch ticks (see `sandbox::cpu`).
    pub cpu: Duration,
    /// The most memory its instance held, in bytes.
    pub peak_memory: u64,
    /// The function's `memory` limit × wall time, in GiB-seconds.
    pub gb_s: f64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabel {
    pub function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TriggerLabels {
    pub function: String,
    pub trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub function: String,
    pub trigger: &'static str,
    pub outcome: &'static str,
}

type Latency = Family<TriggerLabels, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The families of every function's series (cheap to clone: each is an
/// `Arc` inside).
#[derive(Clone)]
pub struct FunctionFamilies {
    invocations: Family<TriggerLabels, Counter>,
    outcomes: Family<OutcomeLabels, Counter>,
    in_flight: Family<TriggerLabels, Gauge>,
    time_to_first_byte: Latency,
    duration: Latency,
    instances_created: Family<FunctionLabel, Counter>,
    instances_reused: Family<FunctionLabel, Counter>,
    instances_live: Family<FunctionLabel, Gauge>,
    instances_from_snapshot: Family<FunctionLabel, Counter>,
    queued: Family<FunctionLabel, Gauge>,
    cpu_ms: Family<FunctionLabel, Counter>,
    cpu_limit_reached: Family<FunctionLabel, Counter>,
    guest_log_dropped: Family<FunctionLabel, Counter>,
    cpu_seconds: Family<TriggerLabels, Amount>,
    gb_seconds: Family<TriggerLabels, Amount>,
    peak_memory: Family<TriggerLabels, Histogram, fn() -> Histogram>,
}

impl Default for FunctionFamilies {
    fn default() -> Self {
        FunctionFamilies {
            invocations: Family::default(),
            outcomes: Family::default(),
            in_flight: Family::default(),
            time_to_first_byte: Family::new_with_constructor(latency),
            duration: Family::new_with_constructor(latency),
            instances_created: Family::default(),
            instances_reused: Family::default(),
            instances_live: Family::default(),
            instances_from_snapshot: Family::default(),
            queued: Family::default(),
            cpu_ms: Family::default(),
            cpu_limit_reached: Family::default(),
            guest_log_dropped: Family::default(),
            cpu_seconds: Family::default(),
            gb_seconds: Family::default(),
            peak_memory: Family::new_with_constructor(memory_buckets),
        }
    }
}

impl FunctionFamilies {
    /// Adds every family to `registry` (names get its `wisp_` prefix, and
    /// counters a `_total` suffix).
    pub fn register(&self, registry: &mut Registry) {
        let f = self.clone();
        registry.register(
            "invocations",
            "Invocations started, by function and trigger",
            f.invocations,
        );
        registry.register(
            "invocation_outcomes",
            "Invocations finished, by how they ended: the class of the function's status \
             (1xx..5xx) or Wisp's refusal or kill (413, 429, 503, 504, memory, trap, cpu_time, \
             client_closed)",
            f.outcomes,
        );
        registry.register(
            "in_flight",
            "Invocations started and not finished",
            f.in_flight,
        );
        registry.register_with_unit(
            "time_to_first_byte",
            "From the invocation's start to its response head (or its end, without one)",
            Unit::Seconds,
            f.time_to_first_byte,
        );
        registry.register_with_unit(
            "invocation_duration",
            "From the invocation's start to the end of its response body",
            Unit::Seconds,
            f.duration,
        );
        registry.register(
            "instances_created",
            "Instances made (cold starts, and instances kept ready for min_instances)",
            f.instances_created,
        );
        registry.register(
            "instances_reused",
            "Invocations served by an instance that had served one before (warm)",
            f.instances_reused,
        );
        registry.register("instances_live", "Instances alive now", f.instances_live);
        registry.register(
            "instances_from_snapshot",
            "Instances made from a pre-initialized snapshot",
            f.instances_from_snapshot,
        );
        registry.register(
            "queue_depth",
            "Requests waiting for a place (max_instances reached), at most max_queue",
            f.queued,
        );
        registry.register(
            "guest_cpu_milliseconds",
            "Guest CPU time charged, in milliseconds (10 ms epoch ticks)",
            f.cpu_ms,
        );
        registry.register(
            "cpu_limit_reached",
            "Invocations stopped at their cpu_time limit",
            f.cpu_limit_reached,
        );
        registry.register(
            "guest_log_dropped",
            "Lines of guest output not logged (past the per-invocation caps, or the log \
             pipeline full)",
            f.guest_log_dropped,
        );
        registry.register_with_unit(
            "invocation_cpu",
            "Guest CPU time of invocations (cost metering; sampled at 10 ms epoch ticks, \
             unbiased in sum)",
            Unit::Seconds,
            f.cpu_seconds,
        );
        registry.register(
            "invocation_gb_seconds",
            "GB-seconds of invocations: the function's memory limit in GiB × wall time, as \
             serverless billing counts",
            f.gb_seconds,
        );
        registry.register_with_unit(
            "invocation_peak_memory",
            "The most memory (linear memories and /tmp) an invocation's instance held",
            Unit::Bytes,
            f.peak_memory,
        );
    }
}

/// One trigger's series of one function.
#[derive(Debug)]
struct TriggerMetrics {
    invocations: Counter,
    outcomes: [Counter; Outcome::ALL.len()],
    in_flight: Gauge,
    time_to_first_byte: Histogram,
    duration: Histogram,
    cpu_seconds: Amount,
    gb_seconds: Amount,
    peak_memory: Histogram,
}

/// One function's series, kept across its revisions.
#[derive(Debug)]
pub struct FunctionMetrics {
    triggers: [TriggerMetrics; Trigger::ALL.len()],
    instances_created: Counter,
    instances_reused: Counter,
    instances_live: Gauge,
    instances_from_snapshot: Counter,
    queued: Gauge,
    cpu_ms: Counter,
    cpu_limit_reached: Counter,
    guest_log_dropped: Counter,
    /// Wall time of metered invocations (the duration histograms' sums
    /// by trigger), for the totals of `wisp functions describe`.
    wall_seconds: Amount,
    /// The most memory any invocation's instance held.
    peak_memory: AtomicU64,
    /// The last hour by minute, for the dashboard and `budget`.
    pub minutes: Minutes,
}

/// A point-in-time copy of [`FunctionMetrics`], summed over triggers (the
/// admin API's `metrics` of a function).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct MetricsSnapshot {
    pub invocations: u64,
    /// Finished invocations by outcome label (`2xx`, `3xx`, `429`, `trap`
    /// …); outcomes that never happened are left out.
    pub outcomes: std::collections::BTreeMap<&'static str, u64>,
    pub instances_created: u64,
    pub instances_live: u64,
    /// Invocations served by an instance that had served one before.
    pub instances_reused: u64,
    pub instances_from_snapshot: u64,
    pub queue_depth: u64,
    pub in_flight: u64,
    /// Guest CPU time charged, in milliseconds (sampled at 10 ms ticks).
    pub cpu_time_ms: u64,
    /// Invocations stopped at their `cpu_time` limit.
    pub cpu_limit_reached: u64,
    /// Lines of guest output not logged: past the per-invocation caps, or
    /// with the log pipeline full.
    pub guest_log_dropped: u64,
    /// Cost metering totals: wall time, guest CPU time and GB-seconds of
    /// every invocation, and the most memory one held.
    pub wall_seconds: f64,
    pub cpu_seconds: f64,
    pub gb_seconds: f64,
    pub peak_memory_bytes: u64,
    /// GB-seconds used in the trailing hour (what `budget` limits).
    pub gb_seconds_last_hour: f64,
}

impl Default for FunctionMetrics {
    /// Handles registered nowhere: for embedders and tests that count
    /// without serving `/metrics`.
    fn default() -> Self {
        FunctionMetrics::new(&FunctionFamilies::default(), "")
    }
}

fn gauge_value(g: &Gauge) -> u64 {
    u64::try_from(g.get()).unwrap_or(0)
}

impl FunctionMetrics {
    /// Resolves every series of `function` in `families` (creating them at
    /// zero, so they show before anything happened).
    pub fn new(families: &FunctionFamilies, function: &str) -> Self {
        let triggers = Trigger::ALL.map(|trigger| {
            let labels = TriggerLabels {
                function: function.to_string(),
                trigger: trigger.as_str(),
            };
            TriggerMetrics {
                invocations: families.invocations.get_or_create_owned(&labels),
                outcomes: Outcome::ALL.map(|outcome| {
                    families.outcomes.get_or_create_owned(&OutcomeLabels {
                        function: function.to_string(),
                        trigger: trigger.as_str(),
                        outcome: outcome.as_str(),
                    })
                }),
                in_flight: families.in_flight.get_or_create_owned(&labels),
                time_to_first_byte: families.time_to_first_byte.get_or_create_owned(&labels),
                duration: families.duration.get_or_create_owned(&labels),
                cpu_seconds: families.cpu_seconds.get_or_create_owned(&labels),
                gb_seconds: families.gb_seconds.get_or_create_owned(&labels),
                peak_memory: families.peak_memory.get_or_create_owned(&labels),
            }
        });
        let label = FunctionLabel {
            function: function.to_string(),
        };
        FunctionMetrics {
            triggers,
            instances_created: families.instances_created.get_or_create_owned(&label),
            instances_reused: families.instances_reused.get_or_create_owned(&label),
            instances_live: families.instances_live.get_or_create_owned(&label),
            instances_from_snapshot: families.instances_from_snapshot.get_or_create_owned(&label),
            queued: families.queued.get_or_create_owned(&label),
            cpu_ms: families.cpu_ms.get_or_create_owned(&label),
            cpu_limit_reached: families.cpu_limit_reached.get_or_create_owned(&label),
            guest_log_dropped: families.guest_log_dropped.get_or_create_owned(&label),
            wall_seconds: Amount::default(),
            peak_memory: AtomicU64::new(0),
            minutes: Minutes::default(),
        }
    }

    pub fn instance_created(&self, from_snapshot: bool) {
        self.instances_created.inc();
        self.instances_live.inc();
        if from_snapshot {
            self.instances_from_snapshot.inc();
        }
    }

    pub fn instance_dropped(&self) {
        self.instances_live.dec();
    }

    /// An invocation started on an instance that had served one before.
    pub fn instance_reused(&self) {
        self.instances_reused.inc();
        self.minutes.started(false);
    }

    /// An invocation started on an instance that had served none before
    /// (a cold start, in the dashboard's cold-start share).
    pub fn instance_first_use(&self) {
        self.minutes.started(true);
    }

    /// A request started waiting for a place, or stopped waiting.
    pub fn queued(&self, waiting: bool) {
        if waiting {
            self.queued.inc();
        } else {
            self.queued.dec();
        }
    }

    pub fn cpu_used(&self, cpu: Duration) {
        self.cpu_ms
            .inc_by(u64::try_from(cpu.as_millis()).unwrap_or(u64::MAX));
    }

    pub fn cpu_limit_reached(&self) {
        self.cpu_limit_reached.inc();
    }

    pub fn guest_log_dropped(&self, lines: u64) {
        self.guest_log_dropped.inc_by(lines);
    }

    pub fn invocation_started(&self, trigger: Trigger) {
        let t = &self.triggers[trigger.index()];
        t.invocations.inc();
        t.in_flight.inc();
    }

    /// `first_byte`: when the response head was ready (the whole
    /// `duration` when there was none).
    pub fn invocation_finished(
        &self,
        trigger: Trigger,
        outcome: Outcome,
        first_byte: Duration,
        duration: Duration,
    ) {
        let t = &self.triggers[trigger.index()];
        t.in_flight.dec();
        t.outcomes[outcome.index()].inc();
        t.time_to_first_byte.observe(first_byte.as_secs_f64());
        t.duration.observe(duration.as_secs_f64());
        self.minutes.finished(outcome, duration);
    }

    /// The `minutes` minutes up to and including minute `now` (see
    /// [`minutes::current_minute`](super::minutes::current_minute)).
    pub fn last_minutes(&self, now: u64, minutes: usize) -> Window {
        self.minutes.window(now, minutes)
    }

    /// What an invocation of `trigger` used; `now` (since the epoch) is
    /// when its GB-seconds count against `budget`.
    pub fn invocation_metered(&self, trigger: Trigger, usage: &Usage, now: Duration) {
        let t = &self.triggers[trigger.index()];
        t.cpu_seconds.inc_by(usage.cpu.as_secs_f64());
        t.gb_seconds.inc_by(usage.gb_s);
        t.peak_memory.observe(usage.peak_memory as f64);
        self.wall_seconds.inc_by(usage.wall.as_secs_f64());
        self.peak_memory
            .fetch_max(usage.peak_memory, Ordering::Relaxed);
        self.minutes.spend(now, usage.gb_s);
    }

    /// Every counter, invocations summed over triggers.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let mut s = MetricsSnapshot {
            instances_created: self.instances_created.get(),
            instances_live: gauge_value(&self.instances_live),
            instances_reused: self.instances_reused.get(),
            instances_from_snapshot: self.instances_from_snapshot.get(),
            queue_depth: gauge_value(&self.queued),
            cpu_time_ms: self.cpu_ms.get(),
            cpu_limit_reached: self.cpu_limit_reached.get(),
            guest_log_dropped: self.guest_log_dropped.get(),
            wall_seconds: self.wall_seconds.get(),
            peak_memory_bytes: self.peak_memory.load(Ordering::Relaxed),
            gb_seconds_last_hour: self.minutes.spent(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default(),
            ),
            ..MetricsSnapshot::default()
        };
        for t in &self.triggers {
            s.invocations += t.invocations.get();
            s.cpu_seconds += t.cpu_seconds.get();
            s.gb_seconds += t.gb_seconds.get();
            s.in_flight += gauge_value(&t.in_flight);
            for (outcome, counter) in Outcome::ALL.iter().zip(&t.outcomes) {
                let n = counter.get();
                if n > 0 {
                    *s.outcomes.entry(outcome.as_str()).or_default() += n;
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let families = FunctionFamilies::default();
        let mut registry = Registry::with_prefix("wisp");
        families.register(&mut registry);
        let m = FunctionMetrics::new(&families, "hello");
        m.invocation_started(Trigger::Http);
        m.instance_created(true);
        let ms = Duration::from_millis(1);
        m.invocation_finished(Trigger::Http, Outcome::TimedOut, ms, 2 * ms);
        m.instance_dropped();
        m.guest_log_dropped(3);
        let s = m.snapshot();
        assert_eq!(
            (
                s.invocations,
                s.in_flight,
                s.instances_live,
                s.instances_from_snapshot
            ),
            (1, 0, 0, 1)
        );
        assert_eq!(s.outcomes.get("504"), Some(&1));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "wisp_invocation_outcomes_total{function=\"hello\",trigger=\"http\",outcome=\"504\"} 1",
            "wisp_invocation_outcomes_total{function=\"hello\",trigger=\"event\",outcome=\"2xx\"} 0",
            "wisp_instances_live{function=\"hello\"} 0",
            "wisp_guest_log_dropped_total{function=\"hello\"} 3",
            "wisp_invocation_duration_seconds_count{function=\"hello\",trigger=\"http\"} 1",
            "wisp_time_to_first_byte_seconds_bucket{le=\"0.001\",function=\"hello\",trigger=\"http\"} 1",
        ] {
            assert!(text.contains(line), "no `{line}` in\n{text}");
        }
    }
}
