//! A live revision: one deployed revision of a function, loaded and able to
//! serve — its settings, its instance factory and the `ProxyHandler` whose
//! workers run its instances.

use std::sync::Arc;

use anyhow::{Result, bail};
use wasmtime::Engine;
use wasmtime_wasi_http::handler::{ProxyHandler, ProxyPre};

use crate::config::{DEFAULT_IDLE_TIMEOUT, FunctionSpec, Isolation};
use crate::invoke::admission::Admission;
use crate::invoke::instances::{Instances, Reuse};
use crate::invoke::worker::Workers;
use crate::sandbox::host::{Host, HostConfig};
use crate::telemetry::metrics::FunctionMetrics;

pub struct LiveRevision {
    pub function: Arc<str>,
    pub number: u64,
    pub spec: FunctionSpec,
    /// `wasi:http@0.2` or `wasi:http@0.3`.
    pub world: &'static str,
    /// Instances start from a pre-initialized snapshot.
    pub snapshotted: bool,
    /// The function's counters (shared by all its revisions).
    pub metrics: Arc<FunctionMetrics>,
    pub(crate) handler: ProxyHandler<Workers>,
}

/// What a revision is loaded from.
pub struct Loaded {
    pub engine: Engine,
    pub pre: ProxyPre<Host>,
    pub host: HostConfig,
    pub snapshotted: bool,
}

impl LiveRevision {
    pub fn new(
        spec: FunctionSpec,
        number: u64,
        loaded: Loaded,
        metrics: Arc<FunctionMetrics>,
    ) -> Result<Arc<Self>> {
        let world = match loaded.pre {
            ProxyPre::P2(_) => "wasi:http@0.2",
            ProxyPre::P3(_) => "wasi:http@0.3",
        };
        if spec.concurrency > 1 && matches!(loaded.pre, ProxyPre::P2(_)) {
            bail!(
                "concurrency = {} needs a wasi:http@0.3 component, but this one is wasi:http@0.2, \
                 whose handler serves one request at a time per instance; use concurrency = 1 \
                 or build it for wasi:http@0.3",
                spec.concurrency
            );
        }
        let reuse = (spec.isolation == Isolation::Instance).then(|| Reuse {
            concurrency: spec.concurrency as usize,
            max_requests: spec.max_requests_per_instance,
            idle_timeout: spec.idle_timeout.map_or(DEFAULT_IDLE_TIMEOUT, |t| t.0),
            min_instances: spec.min_instances as usize,
        });
        let function = loaded.host.function.clone();
        let admission = Admission::new(
            spec.max_instances,
            reuse.map_or(1, |r| r.concurrency as u32),
            spec.max_queue,
            spec.queue_timeout.0,
        );
        let instances = Instances::new(
            loaded.engine,
            loaded.pre,
            loaded.host,
            spec.timeout.0,
            admission,
            metrics.clone(),
            reuse,
        );
        Ok(Arc::new(LiveRevision {
            function,
            number,
            spec,
            world,
            snapshotted: loaded.snapshotted,
            metrics,
            handler: ProxyHandler::new(Workers { instances }),
        }))
    }

    pub fn instances(&self) -> &Arc<Instances> {
        &self.handler.state().instances
    }

    /// Stops taking new work (replaced, rolled back or deleted): ready
    /// instances go now, idle ones at once, busy ones when their requests
    /// are done. Requests already running finish on it.
    pub fn retire(&self) {
        self.instances().retire();
    }
}
