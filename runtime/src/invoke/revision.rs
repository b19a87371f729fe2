//! A live revision: one deployed revision of a function, loaded and able to
//! serve — its settings, its instance factory and the `ProxyHandler` whose
//! workers run its instances, or for a command function, its command.

use std::sync::Arc;

use anyhow::{Result, bail};
use wasmtime::Engine;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::handler::{ProxyHandler, ProxyPre};

use crate::config::{DEFAULT_IDLE_TIMEOUT, FunctionSpec, Isolation};
use crate::invoke::admission::Admission;
use crate::invoke::cgi::Cgi;
use crate::invoke::instances::{Instances, Reuse};
use crate::invoke::source::{Source, Start};
use crate::invoke::worker::Workers;
use crate::sandbox::host::{Host, HostConfig};
use crate::telemetry::metrics::FunctionMetrics;

pub struct LiveRevision {
    pub function: Arc<str>,
    pub number: u64,
    pub spec: FunctionSpec,
    /// `wasi:http@0.2` or `wasi:http@0.3`.
    pub world: &'static str,
    /// The function's counters (shared by all its revisions).
    pub metrics: Arc<FunctionMetrics>,
    pub(crate) handler: Handler,
}

/// How a revision runs requests.
pub(crate) enum Handler {
    /// A wasi:http component's instances, through `ProxyHandler`.
    Proxy(ProxyHandler<Workers>),
    /// A command, once per request.
    Cgi(Box<Cgi>),
}

/// What a revision runs.
pub enum Entry {
    Proxy(ProxyPre<Host>),
    Command(CommandPre<Host>),
}

/// What a revision is loaded from.
pub struct Loaded {
    pub engine: Engine,
    pub pre: Entry,
    pub host: HostConfig,
    pub start: Start,
}

impl LiveRevision {
    pub fn new(
        spec: FunctionSpec,
        number: u64,
        loaded: Loaded,
        metrics: Arc<FunctionMetrics>,
    ) -> Result<Arc<Self>> {
        let pre = match loaded.pre {
            Entry::Proxy(pre) => pre,
            Entry::Command(pre) => {
                let admission = Admission::new(
                    spec.max_instances,
                    1,
                    spec.max_queue,
                    spec.queue_timeout.0,
                    metrics.clone(),
                );
                return Ok(Arc::new(LiveRevision {
                    function: loaded.host.function.clone(),
                    number,
                    world: "wasi:cli/run (cgi)",
                    metrics,
                    handler: Handler::Cgi(Box::new(Cgi {
                        engine: loaded.engine,
                        pre,
                        host: loaded.host,
                        admission,
                        snapshotted: loaded.start == Start::Snapshot,
                    })),
                    spec,
                }));
            }
        };
        let world = match pre {
            ProxyPre::P2(_) => "wasi:http@0.2",
            ProxyPre::P3(_) => "wasi:http@0.3",
        };
        if spec.concurrency > 1 && matches!(pre, ProxyPre::P2(_)) {
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
            metrics.clone(),
        );
        let instances = Instances::new(
            loaded.engine,
            Source::new(pre, loaded.start)?,
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
            metrics,
            handler: Handler::Proxy(ProxyHandler::new(Workers { instances })),
        }))
    }

    /// Its instance factory; none for a command function, whose every
    /// request is a new run.
    pub fn instances(&self) -> Option<&Arc<Instances>> {
        match &self.handler {
            Handler::Proxy(handler) => Some(&handler.state().instances),
            Handler::Cgi(_) => None,
        }
    }

    /// Whether new instances start from a pre-initialized snapshot (a
    /// snapshot this deploy made does once it is compiled).
    pub fn snapshotted(&self) -> bool {
        match &self.handler {
            Handler::Proxy(handler) => handler.state().instances.start() == Start::Snapshot,
            Handler::Cgi(cgi) => cgi.snapshotted,
        }
    }

    /// Stops taking new work (replaced, rolled back or deleted): ready
    /// instances go now, idle ones at once, busy ones when their requests
    /// are done. Requests already running finish on it.
    pub fn retire(&self) {
        if let Some(instances) = self.instances() {
            instances.retire();
        }
    }
}
