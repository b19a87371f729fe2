//! What a `Store` carries for one instance: its WASI and wasi:http contexts,
//! its resource table, its memory limiter and in-memory `/tmp`, and where
//! its stdout/stderr go.

use std::sync::{Arc, Mutex};

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store};
use wasmtime_wasi::filesystem::WasiFilesystemCtxView;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::config::AllowedHosts;
use crate::sandbox::command::Stdio;
use crate::sandbox::cpu::{CpuLanes, CpuMeter};
use crate::sandbox::guestlog::GuestLog;
use crate::sandbox::memory::{MemoryBudget, MemoryLimiter};
use crate::sandbox::outbound::policy::OwnPorts;
use crate::sandbox::outbound::{OutboundHooks, internal};
use crate::sandbox::tag::InstanceTag;
use crate::sandbox::tmpfs::{self, WispFsView};
use crate::state::blobstore::BlobView;
use crate::state::config::{ConfigValues, ConfigView};
use crate::state::keyvalue::KeyValueView;
use crate::state::{Grants, StateView};
use crate::telemetry::metrics::FunctionMetrics;

/// Resources (streams, fields, pollables, …) one instance may hold at once.
/// Far above what a request needs; low enough that a guest leaking handles
/// in a loop hits a trap instead of the host's memory.
pub const MAX_RESOURCES: usize = 10_000;

/// The `T` of every `Store<T>` Wisp creates.
pub struct Host {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    limiter: MemoryLimiter,
    /// `/tmp`, charged to the same budget as the limiter's memories.
    tmp: tmpfs::Tree,
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
    /// The WASI every instance (and every init run) starts from: the
    /// environment, stdout and stderr to the log (and to `sink`), sockets
    /// closed, `dirs` preopened read-only.
    pub fn wasi(
        &self,
        tag: Arc<InstanceTag>,
        metrics: Option<Arc<FunctionMetrics>>,
        sink: Option<Arc<Mutex<String>>>,
        state: &Grants,
    ) -> wasmtime::Result<WasiCtxBuilder> {
        let (stdout, stderr) = GuestLog::pair(tag, metrics, sink, state.redact.clone());
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&self.env).stdout(stdout).stderr(stderr);
        // Sockets stay closed: outbound traffic goes through wasi:http, where
        // allowed_outbound_hosts is enforced.
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        for (host_dir, guest_path) in &self.dirs {
            wasi.preopened_dir(host_dir, guest_path, FsPerms::ReadOnly)?;
        }
        Ok(wasi)
    }

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
        let mut wasi = config.wasi(tag.clone(), metrics, sink, &state)?;
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
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let budget = MemoryBudget::new(config.memory_limit);
        let tmp = tmpfs::Tree::new(budget.clone()).map_err(|_| {
            wasmtime::format_err!(
                "`memory` = {} bytes leaves no room for /tmp",
                config.memory_limit
            )
        })?;
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
                tag: tag.clone(),
            },
            limiter: MemoryLimiter::new(budget, tag.clone()),
            tmp,
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

impl Host {
    /// The instance's filesystem: wasmtime-wasi's preopens and `/tmp`.
    pub fn filesystem(&mut self) -> WispFsView<'_> {
        WispFsView {
            wasi: WasiFilesystemCtxView {
                ctx: self.wasi.filesystem(),
                table: &mut self.table,
            },
            tree: &self.tmp,
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
