//! What a `Store` carries for one instance: its WASI and wasi:http contexts,
//! its resource table, its memory limiter, and where its stdout/stderr go.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::guestlog::{GuestLog, Stream};
use crate::outbound::{AllowedHosts, OutboundHooks};

/// Resources (streams, fields, pollables, …) one instance may hold at once.
/// Far above what a request needs; low enough that a guest leaking handles
/// in a loop hits a trap instead of the host's memory.
pub const MAX_RESOURCES: usize = 10_000;

/// Identifies one invocation in logs, metrics and the response header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvocationId(pub u64);

impl fmt::Display for InvocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Which function and invocation an instance is serving right now; guest
/// output is tagged with it. Set when a request starts on the instance.
pub struct InstanceTag {
    pub function: Arc<str>,
    invocation: AtomicU64,
}

impl InstanceTag {
    pub fn new(function: Arc<str>) -> Arc<Self> {
        Arc::new(InstanceTag {
            function,
            invocation: AtomicU64::new(0),
        })
    }

    pub fn set_invocation(&self, id: InvocationId) {
        self.invocation.store(id.0, Ordering::Relaxed);
    }

    pub fn invocation(&self) -> InvocationId {
        InvocationId(self.invocation.load(Ordering::Relaxed))
    }
}

/// Caps the sum of an instance's linear memories. Growth past the cap fails
/// inside the guest (`memory.grow` returns -1), which Rust and C guests turn
/// into an abort: a trap, then 500, never harm to the host.
pub struct MemoryLimiter {
    limit: usize,
    used: usize,
    /// Set when a growth was refused, so the failure can be named in the log.
    pub exceeded: bool,
}

impl MemoryLimiter {
    pub fn new(limit: u64) -> Self {
        MemoryLimiter {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            used: 0,
            exceeded: false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let after = self.used - current.min(self.used) + desired;
        if after > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        self.used = after;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The `T` of every `Store<T>` Wisp creates.
pub struct Host {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    pub limiter: MemoryLimiter,
    pub tag: Arc<InstanceTag>,
}

/// What a function's instances are given, prepared once per revision so
/// building a store costs only a few allocations.
pub struct HostConfig {
    pub function: Arc<str>,
    pub env: Vec<(String, String)>,
    pub allowed: Arc<AllowedHosts>,
    pub memory_limit: u64,
    /// `(host directory, guest path)` pairs, preopened read-only.
    pub dirs: Vec<(std::path::PathBuf, String)>,
}

/// Component handles (resources, futures, streams) one instance may hold.
const MAX_COMPONENT_HANDLES: usize = 10_000;

/// A store with every per-instance guard Wisp applies.
pub fn new_store(engine: &Engine, host: Host) -> Store<Host> {
    let mut store = Store::new(engine, host);
    store.limiter(|host| &mut host.limiter);
    // Yield to tokio at every epoch tick: a busy guest never pins a worker
    // thread, and timeouts outside the store get their chance to fire.
    store.set_epoch_deadline(1);
    store.epoch_deadline_async_yield_and_update(1);
    store.set_max_component_handles(MAX_COMPONENT_HANDLES);
    store
}

impl Host {
    pub fn new(config: &HostConfig) -> wasmtime::Result<Self> {
        Self::build(config, None)
    }

    /// Like [`Host::new`], also copying guest output into `sink` (for init
    /// runs, whose output belongs in the deploy error).
    pub fn capturing(config: &HostConfig, sink: Arc<Mutex<String>>) -> wasmtime::Result<Self> {
        Self::build(config, Some(sink))
    }

    fn build(config: &HostConfig, sink: Option<Arc<Mutex<String>>>) -> wasmtime::Result<Self> {
        let tag = InstanceTag::new(config.function.clone());
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&config.env)
            .stdout(GuestLog::new(tag.clone(), Stream::Stdout, sink.clone()))
            .stderr(GuestLog::new(tag.clone(), Stream::Stderr, sink));
        // Sockets stay closed: outbound traffic goes through wasi:http, where
        // allowed_outbound_hosts is enforced.
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        for (host_dir, guest_path) in &config.dirs {
            wasi.preopened_dir(host_dir, guest_path, FsPerms::ReadOnly)?;
        }
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        Ok(Host {
            table,
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundHooks {
                allowed: config.allowed.clone(),
                function: config.function.clone(),
            },
            limiter: MemoryLimiter::new(config.memory_limit),
            tag,
        })
    }
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_sums_memories_and_flags_refusals() {
        let mut l = MemoryLimiter::new(100);
        assert!(l.memory_growing(0, 60, None).unwrap());
        assert!(l.memory_growing(0, 30, None).unwrap());
        assert!(!l.exceeded);
        assert!(!l.memory_growing(60, 80, None).unwrap());
        assert!(l.exceeded);
        assert!(l.memory_growing(30, 40, None).unwrap());
    }

    #[test]
    fn invocation_ids_are_fixed_width_hex() {
        assert_eq!(InvocationId(255).to_string(), "00000000000000ff");
    }
}
