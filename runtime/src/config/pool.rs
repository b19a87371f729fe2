//! `[server.pool]`: the process-wide ceilings of wasmtime's pooling allocator.

use serde::{Deserialize, Serialize};

use crate::config::{ByteSize, FunctionSpec};

/// Server-wide sizing of the instance pool (`[server.pool]` in the manifest).
/// The pool reserves address space for every slot up front, so these are the
/// hard ceilings of the whole process, shared by all functions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolSettings {
    /// Component instances alive at once across all functions. Each
    /// in-flight invocation holds one; beyond this requests get 503.
    pub instances: u32,
    /// Core module instances. A Rust component instantiates ~3 (main module,
    /// adapter shims), JS and Python ones more, hence 5x `instances`.
    pub core_instances: u32,
    /// Linear memories. Most components have one; the adapter may add one.
    pub memories: u32,
    /// Tables: the main module's plus the shim modules' indirect-call tables.
    pub tables: u32,
    /// Largest linear memory any instance may grow to. A function whose
    /// `memory` limit exceeds it is refused at load rather than failing later.
    pub max_memory: ByteSize,
    /// Fiber stacks: one per instance unless [`PoolSettings::fit_to`] set
    /// fewer. Not a manifest setting.
    #[serde(skip)]
    pub stacks: Option<u32>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            instances: 1000,
            core_instances: 5000,
            memories: 2000,
            tables: 4000,
            max_memory: ByteSize::mib(1024),
            stacks: None,
        }
    }
}

impl PoolSettings {
    /// Fiber stacks in the pool.
    pub fn stack_slots(&self) -> u32 {
        self.stacks.unwrap_or(self.instances)
    }

    /// Sizes the stacks for a server that serves `functions` and nothing
    /// else for its whole life (no admin API, no state directory to restore
    /// deployments from, no jobs, no redeploys). Every invocation that runs
    /// holds a stack, and admission lets at most `max_instances ×
    /// concurrency` of a function's run at once; twice that covers instances
    /// whose stacks are still being returned while their successors start,
    /// plus one per function for pre-initialization at deploy. Reserving a
    /// stack costs one `mprotect` of its guard page at start, ~5 µs each:
    /// 4.6 ms for the default 1,000, the largest part of a warm start.
    pub fn fit_to(&mut self, functions: &[FunctionSpec]) {
        let running: u64 = functions
            .iter()
            .map(|f| u64::from(f.max_instances) * u64::from(f.concurrency.max(1)))
            .sum();
        let needed = running
            .saturating_mul(2)
            .saturating_add(functions.len() as u64);
        self.stacks = Some(
            u32::try_from(needed)
                .unwrap_or(u32::MAX)
                .min(self.instances),
        );
    }
}
