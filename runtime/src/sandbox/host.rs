//! What a `Store` carries for one instance: its WASI and wasi:http contexts,
//! its resource table, its memory limiter, and where its stdout/stderr go.

use std::sync::{Arc, Mutex};

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::config::AllowedHosts;
use crate::sandbox::command::Stdio;
use crate::sandbox::cpu::{CpuLanes, CpuMeter};
use crate::sandbox::guestlog::GuestLog;
use crate::sandbox::outbound::policy::OwnPorts;
use crate::sandbox::outbound::{OutboundHooks, internal};
use crate::sandbox::tag::InstanceTag;
use crate::state::blobstore::BlobView;
use crate::state::config::{ConfigValues, ConfigView};
use crate::state::keyvalue::KeyValueView;
use crate::state::{Grants, StateView};
use crate::telemetry::metrics::FunctionMetrics;

/// Resources (streams, fields, pollables, …) one instance may hold at once.
/// Far above what a request needs; low enough that a guest leaking handles
/// in a loop hits a trap instead of the host's memory.
pub const MAX_RESOURCES: usize = 10_000;

/// Caps the sum of an instance's linear memories. Growth past the cap fails
/// inside the guest (`memory.grow` returns -1), which Rust and C guests turn
/// into an abort: a trap, then 500, never harm to the host.
pub struct MemoryLimiter {
    limit: usize,
    used: usize,
    /// Told when a growth is refused, so the failure can be named (the
    /// guest's own trap that follows says only `unreachable`).
    tag: Arc<InstanceTag>,
}

impl MemoryLimiter {
    pub fn new(limit: u64, tag: Arc<InstanceTag>) -> Self {
        MemoryLimiter {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            used: 0,
            tag,
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
            self.tag.set_memory_exceeded();
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
    limiter: MemoryLimiter,
    /// The stores, config values and secrets it may reach.
    state: Arc<Grants>,
    /// CPU time charged and the instance's turns on the cores.
    pub cpu: CpuMeter,
    pub tag: Arc<InstanceTag>,
}

/// What a function's instances are given, prepared once per revision so
/// building a store costs only a few allocations.
pub struct HostConfig {
    pub function: Arc<str>,
    pub env: Vec<(String, String)>,
    pub allowed: Arc<AllowedHosts>,
    /// Wisp's own listening ports, which wildcard origins never reach.
    pub own_ports: Arc<OwnPorts>,
    /// Wisp's own services at `http://wisp.internal`, and what this
    /// function may do there.
    pub internal: Arc<internal::Slot>,
    pub grants: Arc<internal::Grants>,
    pub memory_limit: u64,
    /// `(host directory, guest path)` pairs, preopened read-only.
    pub dirs: Vec<(std::path::PathBuf, String)>,
    /// `cpu_time`: CPU one invocation may use.
    pub cpu_time: Option<std::time::Duration>,
    pub cpu_weight: u32,
    pub lanes: Arc<CpuLanes>,
    /// Key-value stores, config values and secrets, resolved at deploy.
    pub state: Arc<Grants>,
}

/// `dirs` (guest path → host directory) as preopens; every host directory
/// must exist.
pub fn preopens(
    dirs: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<Vec<(std::path::PathBuf, String)>> {
    dirs.iter()
        .map(|(guest, host)| {
            let dir = std::path::PathBuf::from(host);
            if dir.is_dir() {
                Ok((dir, guest.clone()))
            } else {
                Err(anyhow::anyhow!(
                    "`dirs`: `{guest}` = `{host}`: no such directory on the host"
                ))
            }
        })
        .collect()
}

impl HostConfig {
    /// No grants, no environment, no directories: what pre-initialization
    /// and benchmarks run with.
    pub fn bare(
        function: &str,
        engine: &crate::sandbox::engine::WispEngine,
        memory_limit: u64,
    ) -> Self {
        HostConfig {
            function: function.into(),
            env: Vec::new(),
            allowed: Arc::new(AllowedHosts::default()),
            own_ports: engine.own_ports.clone(),
            internal: engine.internal.clone(),
            grants: Arc::default(),
            memory_limit,
            dirs: Vec::new(),
            cpu_time: None,
            cpu_weight: 1,
            lanes: engine.lanes.clone(),
            state: Arc::default(),
        }
    }
}

/// Component handles (resources, futures, streams) one instance may hold.
const MAX_COMPONENT_HANDLES: usize = 10_000;

/// A store with every per-instance guard Wisp applies.
pub fn new_store(engine: &Engine, host: Host) -> Store<Host> {
    let mut store = Store::new(engine, host);
    store.limiter(|host| &mut host.limiter);
    // At every epoch tick a running guest is charged CPU time and yields
    // to tokio (a busy guest never pins a worker thread, and timeouts
    // outside the store get their chance to fire); see `sandbox::cpu`.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut store| store.data_mut().cpu.on_tick());
    store.set_max_component_handles(MAX_COMPONENT_HANDLES);
    store
}

impl Host {
    /// An instance's host state; guest output it drops counts in `metrics`.
    pub fn new(
        config: &HostConfig,
        tag: Arc<InstanceTag>,
        metrics: Arc<FunctionMetrics>,
    ) -> wasmtime::Result<Self> {
        Self::build(config, tag, Some(metrics), None, None)
    }

    /// A command's host state: [`Host::new`] with `stdio`'s arguments,
    /// environment, stdin and stdout.
    pub fn command(
        config: &HostConfig,
        tag: Arc<InstanceTag>,
        metrics: Arc<FunctionMetrics>,
        stdio: Stdio,
    ) -> wasmtime::Result<Self> {
        Self::build(config, tag, Some(metrics), None, Some(stdio))
    }

    /// Like [`Host::new`], also copying guest output into `sink` (for init
    /// runs, whose output belongs in the deploy error). Init gets no state:
    /// a snapshot must not bake in stored data, config or secrets, which
    /// change without the component changing.
    pub fn capturing(
        config: &HostConfig,
        tag: Arc<InstanceTag>,
        sink: Arc<Mutex<String>>,
    ) -> wasmtime::Result<Self> {
        Self::build(config, tag, None, Some(sink), None)
    }

    fn build(
        config: &HostConfig,
        tag: Arc<InstanceTag>,
        metrics: Option<Arc<FunctionMetrics>>,
        sink: Option<Arc<Mutex<String>>>,
        stdio: Option<Stdio>,
    ) -> wasmtime::Result<Self> {
        let state = if sink.is_some() {
            Arc::default()
        } else {
            config.state.clone()
        };
        let (stdout, stderr) = GuestLog::pair(tag.clone(), metrics, sink, state.redact.clone());
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&config.env).stdout(stdout).stderr(stderr);
        if let Some(stdio) = stdio {
            wasi.args(&[config.function.as_ref()])
                .args(&stdio.args)
                .envs(&stdio.env)
                .stdin(MemoryInputPipe::new(stdio.stdin));
            if let Some(out) = stdio.stdout {
                wasi.stdout(out);
            }
            if let Some(err) = stdio.stderr {
                wasi.stderr(err);
            }
        }
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
                own_ports: config.own_ports.clone(),
                function: config.function.clone(),
                internal: config.internal.clone(),
                grants: config.grants.clone(),
            },
            limiter: MemoryLimiter::new(config.memory_limit, tag.clone()),
            state,
            cpu: CpuMeter::new(
                config.lanes.clone(),
                tag.clone(),
                config.cpu_time,
                config.cpu_weight,
            ),
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

impl ConfigView for Host {
    fn config_values(&mut self) -> &ConfigValues {
        &self.state.config
    }
}

impl StateView for Host {
    fn keyvalue(&mut self) -> KeyValueView<'_> {
        KeyValueView {
            table: &mut self.table,
            granted: &self.state.keyvalue,
        }
    }

    fn blobstore(&mut self) -> BlobView<'_> {
        BlobView {
            table: &mut self.table,
            granted: &self.state.blobstore,
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
        let tag = InstanceTag::new("f".into(), crate::telemetry::ids::InstanceId(1), false);
        let mut l = MemoryLimiter::new(100, tag.clone());
        assert!(l.memory_growing(0, 60, None).unwrap());
        assert!(l.memory_growing(0, 30, None).unwrap());
        assert!(!tag.memory_exceeded());
        assert!(!l.memory_growing(60, 80, None).unwrap());
        assert!(tag.memory_exceeded());
        assert!(l.memory_growing(30, 40, None).unwrap());
    }
}
