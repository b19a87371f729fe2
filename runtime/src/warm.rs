//! Making instances of one revision, counting them, and keeping
//! `min_instances` of them instantiated ahead of traffic.
//!
//! Ready instances sit in a small stash: `ProxyHandler` starts a worker when
//! a request finds none available, and the worker's `instantiate` takes a
//! ready instance from the stash (no cold start) before making a new one.
//! Whenever the revision has fewer than `min_instances` live, the stash is
//! topped up in the background.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::handler::{Proxy, ProxyPre};

use crate::admission::Admission;
use crate::host::{Host, HostConfig, new_store};
use crate::invoke::Reuse;
use crate::telemetry::FunctionMetrics;

/// An instantiated instance with its store and live-count guard.
pub type Ready = (Store<Host>, Proxy, LiveGuard);

/// Creates the instances of one revision.
pub struct Maker {
    pub engine: Engine,
    pub pre: ProxyPre<Host>,
    pub host: HostConfig,
    pub timeout: Duration,
    pub admission: Admission,
    pub metrics: Arc<FunctionMetrics>,
    /// `None`: a fresh instance per invocation.
    pub reuse: Option<Reuse>,
    live: AtomicUsize,
    ready: Mutex<Vec<Ready>>,
    replenishing: AtomicBool,
    retired: AtomicBool,
}

impl Maker {
    pub fn new(
        engine: Engine,
        pre: ProxyPre<Host>,
        host: HostConfig,
        timeout: Duration,
        admission: Admission,
        metrics: Arc<FunctionMetrics>,
        reuse: Option<Reuse>,
    ) -> Arc<Self> {
        let maker = Arc::new(Maker {
            engine,
            pre,
            host,
            timeout,
            admission,
            metrics,
            reuse,
            live: AtomicUsize::new(0),
            ready: Mutex::new(Vec::new()),
            replenishing: AtomicBool::new(false),
            retired: AtomicBool::new(false),
        });
        maker.replenish();
        maker
    }

    /// Makes a new instance. Fresh-per-invocation instances wait in the
    /// `max_instances` queue; reused ones fail fast so the gateway can hand
    /// the request to a busy instance that frees up first.
    pub async fn make(self: &Arc<Self>) -> wasmtime::Result<Ready> {
        let permit = match self.reuse {
            None => self.admission.acquire().await?,
            Some(_) => self.admission.try_acquire()?,
        };
        self.make_with(permit).await
    }

    async fn make_with(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> wasmtime::Result<Ready> {
        let mut store = new_store(&self.engine, Host::new(&self.host)?);
        let proxy = self.pre.instantiate_async(&mut store).await?;
        self.live.fetch_add(1, Ordering::Relaxed);
        self.metrics.instance_created();
        let guard = LiveGuard {
            maker: self.clone(),
            _permit: permit,
        };
        Ok((store, proxy, guard))
    }

    pub fn take_ready(&self) -> Option<Ready> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Tops the revision up to `min_instances` live instances, in the
    /// background; at most one top-up runs at a time.
    pub fn replenish(self: &Arc<Self>) {
        let Some(min) = self.reuse.map(|r| r.min_instances).filter(|m| *m > 0) else {
            return;
        };
        if self.retired.load(Ordering::Relaxed) || self.replenishing.swap(true, Ordering::AcqRel) {
            return;
        }
        let maker = self.clone();
        tokio::spawn(async move {
            while !maker.retired.load(Ordering::Relaxed) && maker.live.load(Ordering::Relaxed) < min
            {
                let Ok(permit) = maker.admission.try_acquire() else {
                    break;
                };
                match maker.make_with(permit).await {
                    Ok(ready) => maker
                        .ready
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(ready),
                    Err(e) => {
                        tracing::warn!(function = %maker.host.function, "could not keep min_instances ready: {e:#}");
                        break;
                    }
                }
            }
            maker.replenishing.store(false, Ordering::Release);
        });
    }

    /// The revision no longer serves: drop its ready instances (which also
    /// breaks their reference back to this maker).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
        let ready = std::mem::take(&mut *self.ready.lock().unwrap_or_else(|e| e.into_inner()));
        drop(ready);
    }
}

/// Counts one live instance of a revision and holds its `max_instances`
/// permit; dropping it (with the instance) may trigger a top-up.
pub struct LiveGuard {
    maker: Arc<Maker>,
    _permit: OwnedSemaphorePermit,
}

impl LiveGuard {
    pub fn maker(&self) -> &Arc<Maker> {
        &self.maker
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.maker.live.fetch_sub(1, Ordering::Relaxed);
        self.maker.metrics.instance_dropped();
        if !self.maker.retired.load(Ordering::Relaxed)
            && tokio::runtime::Handle::try_current().is_ok()
        {
            self.maker.replenish();
        }
    }
}
