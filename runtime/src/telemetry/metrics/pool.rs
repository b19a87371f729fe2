//! The instance pool's slots, read at every scrape from wasmtime's pooling
//! allocator (`Engine::pooling_allocator_metrics`) beside the sizes
//! `[server.pool]` gave it.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use wasmtime::PoolingAllocatorMetrics;

use crate::config::PoolSettings;
use crate::telemetry::metrics::{Kind, encode_series};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SlotLabel {
    kind: &'static str,
}

/// `wisp_pool_slots_in_use{kind}` and `wisp_pool_slots{kind}`.
pub struct PoolCollector {
    allocator: PoolingAllocatorMetrics,
    sizes: PoolSettings,
}

impl PoolCollector {
    /// `None` unless `engine` uses the pooling allocator.
    pub fn new(engine: &wasmtime::Engine, sizes: &PoolSettings) -> Option<Self> {
        Some(PoolCollector {
            allocator: engine.pooling_allocator_metrics()?,
            sizes: sizes.clone(),
        })
    }
}

impl fmt::Debug for PoolCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolCollector").finish_non_exhaustive()
    }
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let a = &self.allocator;
        let s = &self.sizes;
        // Every instance executing on a fiber holds a stack slot.
        let slots = [
            ("component_instances", a.component_instances(), s.instances),
            ("core_instances", a.core_instances(), s.core_instances),
            ("memories", a.memories() as u64, s.memories),
            ("tables", a.tables() as u64, s.tables),
            ("stacks", a.stacks() as u64, s.stack_slots()),
        ];
        encode_series(
            &mut encoder,
            "pool_slots_in_use",
            "Slots of the pooling allocator in use now, by kind",
            Kind::Gauge,
            slots.map(|(kind, used, _)| (SlotLabel { kind }, used)),
        )?;
        encode_series(
            &mut encoder,
            "pool_slots",
            "Slots of the pooling allocator, by kind ([server.pool])",
            Kind::Gauge,
            slots.map(|(kind, _, total)| (SlotLabel { kind }, u64::from(total))),
        )
    }
}
