//! The one wasmtime `Engine` of the process: pooling allocator with
//! copy-on-write memory images, epoch interruption from a single ticker, and
//! the linker every function shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use wasmtime::component::Linker;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::PoolSettings;
use crate::sandbox::cpu::{self, CpuLanes, EPOCH_TICK};
use crate::sandbox::host::Host;
use crate::sandbox::outbound::internal;
use crate::sandbox::outbound::policy::OwnPorts;

/// Slots returned to the pool per batch of `madvise` calls.
const DECOMMIT_BATCH: usize = 16;

/// The engine, the shared linker, and the epoch ticker that keeps deadlines.
pub struct WispEngine {
    pub engine: Engine,
    pub linker: Linker<Host>,
    pub pool: PoolSettings,
    /// Turns for guests that compute for long, shared by every function.
    pub lanes: Arc<CpuLanes>,
    /// The ports Wisp listens on, filled in once the listeners are bound;
    /// every function's outbound policy reads them.
    pub own_ports: Arc<OwnPorts>,
    /// Wisp's services at `http://wisp.internal`, set once they exist.
    pub internal: Arc<internal::Slot>,
    ticker_stop: Arc<AtomicBool>,
}

impl WispEngine {
    pub fn new(pool: &PoolSettings) -> Result<Arc<Self>> {
        let mut pooling = PoolingAllocationConfig::new();
        pooling
            .total_component_instances(pool.instances)
            .total_core_instances(pool.core_instances)
            .total_memories(pool.memories)
            .total_tables(pool.tables)
            // Every instance executing on a fiber needs a stack slot.
            .total_stacks(pool.stack_slots())
            .max_memory_size(usize::try_from(pool.max_memory.bytes()).unwrap_or(usize::MAX))
            // JS/Python components (StarlingMonkey, CPython) carry a dozen or
            // more core modules, memories and tables per component.
            .max_core_instances_per_component(50)
            .max_memories_per_component(10)
            .max_tables_per_component(50)
            // Keeping the first pages of each slot resident avoids a
            // madvise+page-fault round trip on every instantiation of small
            // guests, which dominates per-request cost otherwise.
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(64 << 10)
            // With PAGEMAP_SCAN (Linux 6.7+) only the pages an instance
            // actually dirtied are reset, instead of memsetting the whole
            // resident megabyte on every drop; older kernels fall back.
            .pagemap_scan(Enabled::Auto)
            // Batch the madvise calls that return the rest of a slot: each
            // one is a TLB shootdown across every core running the process.
            .decommit_batch_size(DECOMMIT_BATCH);

        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling))
            .memory_init_cow(true)
            .epoch_interruption(true)
            .wasm_component_model(true)
            .wasm_component_model_async(true);
        let engine = Engine::new(&config).map_err(anyhow::Error::from).context(
            "could not create the Wasm engine; if the pool is too large for this machine's \
             address space, lower [server.pool] instances/memories",
        )?;

        let mut linker = Linker::new(&engine);
        // Real guests (Rust std, JS, Python) import filesystem, cli and
        // sockets beyond the proxy world, so link all of WASI; capabilities
        // stay closed through the per-store WasiCtx (no preopens, no network).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
        // wasi:filesystem@0.2 and @0.3 again, over wasmtime-wasi's: `dirs`
        // as before, plus each instance's in-memory /tmp.
        crate::sandbox::tmpfs::add_to_linker(&mut linker, Host::filesystem)?;
        // wasi:keyvalue and wasi:config, every version; what an instance
        // reaches is its function's grants.
        crate::state::add_to_linker(&mut linker)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let lanes = CpuLanes::new(cores);
        spawn_epoch_ticker(engine.clone(), lanes.clone(), ticker_stop.clone())?;
        Ok(Arc::new(WispEngine {
            engine,
            linker,
            pool: pool.clone(),
            lanes,
            own_ports: Arc::default(),
            internal: Arc::default(),
            ticker_stop,
        }))
    }
}

#[cfg(test)]
impl WispEngine {
    /// A small engine for unit tests: a pool of a few instances.
    pub fn for_tests() -> Arc<Self> {
        WispEngine::new(&PoolSettings {
            instances: 4,
            core_instances: 8,
            memories: 4,
            tables: 8,
            ..Default::default()
        })
        .expect("a small test engine")
    }
}

impl Drop for WispEngine {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// A plain thread rather than a tokio task: it must tick even when every
/// tokio worker is busy, which is exactly when deadlines matter.
fn spawn_epoch_ticker(engine: Engine, lanes: Arc<CpuLanes>, stop: Arc<AtomicBool>) -> Result<()> {
    std::thread::Builder::new()
        .name("wisp-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
                cpu::tick(&lanes);
            }
        })
        .context("could not start the epoch ticker thread")?;
    Ok(())
}
