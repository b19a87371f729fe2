//! The process's metrics, on one `prometheus-client` registry that
//! `GET /metrics` encodes (OpenMetrics text, which Prometheus scrapes):
//! per function and trigger ([`function`]), per topic, queue and job (their
//! subsystems register [`Collector`]s that read their counters at scrape
//! time), and process-wide: the instance pool ([`pool`]) and the artifact
//! cache ([`CacheMetrics`]). `docs/observability.md` lists every series.

pub mod function;
pub mod minutes;
pub mod outcome;
pub mod pool;

use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

pub use function::{FunctionMetrics, MetricsSnapshot, Usage};
pub use outcome::Outcome;

use function::FunctionFamilies;

/// The media type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric of the process.
pub struct Metrics {
    registry: Mutex<Registry>,
    functions: FunctionFamilies,
    pub artifact_cache: CacheMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("wisp");
        let functions = FunctionFamilies::default();
        functions.register(&mut registry);
        let artifact_cache = CacheMetrics::register(&mut registry);
        Metrics {
            registry: Mutex::new(registry),
            functions,
            artifact_cache,
        }
    }

    /// The series of `function`, resolved once: keep the handle.
    pub fn function(&self, function: &str) -> FunctionMetrics {
        FunctionMetrics::new(&self.functions, function)
    }

    /// Adds series that `collector` reads at every scrape.
    pub fn register_collector(&self, collector: impl Collector) {
        self.registry().register_collector(Box::new(collector));
    }

    /// Everything, in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail; a collector's error would be ours.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry()) {
            tracing::error!("could not encode the metrics: {e}");
        }
        text
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// Artifact-cache lookups, by what was looked up: `compiled` code or a
/// pre-initialized `snapshot`.
#[derive(Clone, Debug)]
pub struct CacheMetrics {
    pub compiled_hits: Counter,
    pub compiled_misses: Counter,
    pub snapshot_hits: Counter,
    pub snapshot_misses: Counter,
}

impl CacheMetrics {
    fn register(registry: &mut Registry) -> Self {
        let hits = Family::<KindLabel, Counter>::default();
        let misses = Family::<KindLabel, Counter>::default();
        registry.register(
            "artifact_cache_hits",
            "Compiled code or snapshots found in the artifact cache (memory or disk)",
            hits.clone(),
        );
        registry.register(
            "artifact_cache_misses",
            "Compiled code or snapshots not in the artifact cache: compiled or made anew",
            misses.clone(),
        );
        let get = |family: &Family<KindLabel, Counter>, kind| {
            family.get_or_create_owned(&KindLabel { kind })
        };
        CacheMetrics {
            compiled_hits: get(&hits, "compiled"),
            compiled_misses: get(&misses, "compiled"),
            snapshot_hits: get(&hits, "snapshot"),
            snapshot_misses: get(&misses, "snapshot"),
        }
    }
}

/// How a [`Collector`] series reads.
#[derive(Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
}

/// Encodes one series of a [`Collector`]: `name` (a counter gets `_total`
/// appended), and a value per label set.
pub fn encode_series<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: Kind,
    rows: impl IntoIterator<Item = (L, u64)>,
) -> std::fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, kind.metric_type())?;
    for (labels, value) in rows {
        kind.encode(value, metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Encodes one unlabelled value of a [`Collector`] (`name` as in
/// [`encode_series`]).
pub fn encode_value(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: Kind,
    value: u64,
) -> std::fmt::Result {
    let metric = encoder.encode_descriptor(name, help, None, kind.metric_type())?;
    kind.encode(value, metric)
}

impl Kind {
    fn metric_type(self) -> MetricType {
        match self {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
        }
    }

    fn encode(self, value: u64, encoder: MetricEncoder) -> std::fmt::Result {
        match self {
            Kind::Counter => ConstCounter::new(value).encode(encoder),
            Kind::Gauge => {
                ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(encoder)
            }
        }
    }
}
