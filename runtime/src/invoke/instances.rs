//! Making the instances of one revision, counting them, and keeping
//! `min_instances` of them instantiated ahead of traffic.
//!
//! Ready instances sit in a small stash: `ProxyHandler` starts a worker when
//! a request finds none available, and the worker takes a ready instance
//! from the stash (no cold start) before making a new one. Whenever the
//! revision has fewer than `min_instances` live, the stash is topped up in
//! the background. A retired revision (replaced, rolled back, deleted)
//! drops its stash and never refills it, whatever a top-up in progress was
//! doing at the time.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::handler::{Proxy, ProxyPre};

use crate::invoke::admission::Admission;
use crate::invoke::source::{Source, Start};
use crate::sandbox::host::{Host, HostConfig, new_store};
use crate::sandbox::tag::InstanceTag;
use crate::telemetry::ids::{InstanceId, random_seed};
use crate::telemetry::metrics::FunctionMetrics;

/// An instantiated instance with its store and live-count guard.
pub struct Ready {
    pub store: Store<Host>,
    pub proxy: Proxy,
    pub live: LiveGuard,
    /// Instantiated when taken, not ahead of traffic.
    pub cold: bool,
    /// Ran `wizer-initialize` when made (its snapshot was not compiled yet).
    pub initialized: bool,
}

/// How instances are reused in `isolation = "instance"`.
#[derive(Clone, Copy, Debug)]
pub struct Reuse {
    pub concurrency: usize,
    pub max_requests: Option<u64>,
    pub idle_timeout: Duration,
    pub min_instances: usize,
}

/// Process-wide instance ids.
static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(0);

/// A process-unique instance id (random start, so ids do not repeat across
/// restarts).
pub fn next_instance_id() -> InstanceId {
    if NEXT_INSTANCE.load(Ordering::Relaxed) == 0 {
        let _ = NEXT_INSTANCE.compare_exchange(
            0,
            random_seed() | 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
    InstanceId(NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed))
}

/// Creates the instances of one revision.
pub struct Instances {
    engine: Engine,
    /// What new instances are made from; replaced once, when a snapshot
    /// this deploy made is compiled.
    source: ArcSwap<Source>,
    pub host: HostConfig,
    pub timeout: Duration,
    pub admission: Admission,
    pub metrics: Arc<FunctionMetrics>,
    /// `None`: a fresh instance per invocation.
    pub reuse: Option<Reuse>,
    live: AtomicUsize,
    /// The stash; `None` once retired, so nothing can be put back.
    ready: Mutex<Option<Vec<Ready>>>,
    replenishing: AtomicBool,
    retired: CancellationToken,
}

impl Instances {
    pub fn new(
        engine: Engine,
        source: Source,
        host: HostConfig,
        timeout: Duration,
        admission: Admission,
        metrics: Arc<FunctionMetrics>,
        reuse: Option<Reuse>,
    ) -> Arc<Self> {
        let instances = Arc::new(Instances {
            engine,
            source: ArcSwap::from_pointee(source),
            host,
            timeout,
            admission,
            metrics,
            reuse,
            live: AtomicUsize::new(0),
            ready: Mutex::new(Some(Vec::new())),
            replenishing: AtomicBool::new(false),
            retired: CancellationToken::new(),
        });
        instances.replenish();
        instances
    }

    fn stash(&self) -> std::sync::MutexGuard<'_, Option<Vec<Ready>>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A ready instance from the stash, else a new one if an instance slot
    /// is free (an [`AtCapacity`](crate::invoke::admission::AtCapacity)
    /// error otherwise: the request is offered again once capacity changes).
    pub async fn take(self: &Arc<Self>) -> wasmtime::Result<Ready> {
        let ready = self.stash().as_mut().and_then(Vec::pop);
        let ready = match ready {
            Some(ready) => Ready {
                cold: false,
                ..ready
            },
            None => {
                let slot = self.admission.instance_slot()?;
                self.make(slot).await?
            }
        };
        self.replenish();
        Ok(ready)
    }

    async fn make(self: &Arc<Self>, slot: OwnedSemaphorePermit) -> wasmtime::Result<Ready> {
        let shared = self.reuse.is_some_and(|r| r.concurrency > 1);
        let tag = InstanceTag::new(self.host.function.clone(), next_instance_id(), shared);
        let mut store = new_store(
            &self.engine,
            Host::new(&self.host, tag, self.metrics.clone())?,
        );
        let source = self.source.load_full();
        let proxy = source.instantiate(&mut store, self.timeout).await?;
        self.live.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .instance_created(source.start() == Start::Snapshot);
        let live = LiveGuard {
            instances: self.clone(),
            slot: Some(slot),
        };
        Ok(Ready {
            store,
            proxy,
            live,
            cold: true,
            initialized: source.start() == Start::Init,
        })
    }

    /// How new instances start now.
    pub fn start(&self) -> Start {
        self.source.load().start()
    }

    /// New instances start from `pre`, the snapshot compiled after the
    /// deploy, from now on; instances already made (busy, ready or reused)
    /// keep what they were made from.
    pub fn start_from_snapshot(&self, pre: ProxyPre<Host>) -> anyhow::Result<()> {
        self.source
            .store(Arc::new(Source::new(pre, Start::Snapshot)?));
        Ok(())
    }

    /// Tops the revision up to `min_instances` live instances, in the
    /// background; at most one top-up runs at a time.
    fn replenish(self: &Arc<Self>) {
        let Some(min) = self.reuse.map(|r| r.min_instances).filter(|m| *m > 0) else {
            return;
        };
        if self.is_retired() || self.replenishing.swap(true, Ordering::AcqRel) {
            return;
        }
        let instances = self.clone();
        tokio::spawn(async move {
            loop {
                instances.top_up(min).await;
                instances.replenishing.store(false, Ordering::Release);
                // An instance that dropped after the top-up looked but before
                // the flag was cleared found it set and left the work to us.
                let short = !instances.is_retired() && instances.live.load(Ordering::Relaxed) < min;
                if !short || instances.replenishing.swap(true, Ordering::AcqRel) {
                    break;
                }
            }
        });
    }

    async fn top_up(self: &Arc<Self>, min: usize) {
        while !self.is_retired() && self.live.load(Ordering::Relaxed) < min {
            let Ok(slot) = self.admission.instance_slot() else {
                return;
            };
            match self.make(slot).await {
                // Put back only while not retired, checked under the stash's
                // lock that `retire` takes: an instance made while the
                // revision was being replaced is dropped here, not left
                // alive for a revision nobody serves.
                Ok(ready) => match self.stash().as_mut() {
                    Some(stash) => stash.push(ready),
                    None => return,
                },
                Err(e) => {
                    tracing::warn!(function = %self.host.function, "could not keep min_instances ready: {e:#}");
                    return;
                }
            }
        }
    }

    /// The revision no longer serves new work: drop its ready instances,
    /// never refill them, and let idle workers go.
    pub fn retire(&self) {
        let ready = self.stash().take();
        self.retired.cancel();
        drop(ready);
    }

    pub fn is_retired(&self) -> bool {
        self.retired.is_cancelled()
    }

    /// Resolves when the revision is retired.
    pub fn retired(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.retired.clone().cancelled_owned()
    }
}

/// Counts one live instance of a revision and holds its instance slot;
/// dropping it (with the store) returns the slot and may trigger a top-up.
pub struct LiveGuard {
    instances: Arc<Instances>,
    slot: Option<OwnedSemaphorePermit>,
}

impl LiveGuard {
    pub fn instances(&self) -> &Arc<Instances> {
        &self.instances
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let instances = &self.instances;
        instances.live.fetch_sub(1, Ordering::Relaxed);
        instances.metrics.instance_dropped();
        // Return the slot before telling waiting requests about it.
        drop(self.slot.take());
        instances.admission.capacity_changed();
        if !instances.is_retired() && tokio::runtime::Handle::try_current().is_ok() {
            instances.replenish();
        }
    }
}
