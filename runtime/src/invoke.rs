//! How a revision turns requests into instances: the `HandlerState` that
//! `wasmtime_wasi_http::handler::ProxyHandler` drives.
//!
//! With `isolation = "invocation"` (the default) every invocation gets a
//! fresh instance from the revision's `InstancePre`, in a fresh `Store`,
//! dropped when the response is finished. With `isolation = "instance"`
//! instances are reused like Cloud Run instances: up to `concurrency`
//! requests at once (wasi:http@0.3 guests), `max_requests_per_instance` in
//! all, dropped after `idle_timeout` without work, with `min_instances` kept
//! ready ahead of traffic ([`crate::warm`]).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};

use crate::host::{Host, InvocationId};
use crate::warm::{LiveGuard, Maker};

/// One request's identity and fate, shared by the gateway and the instance
/// serving it.
pub struct Invocation {
    pub id: InvocationId,
    /// Set when the request ran past `timeout`, so the gateway can answer
    /// 504 even though the guest never produced an error.
    pub timed_out: AtomicBool,
    /// Set when the instance serving it trapped or was killed, so a response
    /// whose headers are already out ends in an error, not a clean EOF.
    pub failed: AtomicBool,
}

impl Invocation {
    pub fn new(id: InvocationId) -> Arc<Self> {
        Arc::new(Invocation {
            id,
            timed_out: AtomicBool::new(false),
            failed: AtomicBool::new(false),
        })
    }
}

/// How instances are reused in `isolation = "instance"`.
#[derive(Clone, Copy, Debug)]
pub struct Reuse {
    pub concurrency: usize,
    pub max_requests: Option<u64>,
    pub idle_timeout: Duration,
    pub min_instances: usize,
}

/// The invocations an instance is serving. The gateway holds each one until
/// its response body is done, so an entry only the instance still holds is
/// finished and can be pruned.
type Current = Arc<Mutex<Vec<Arc<Invocation>>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Marks every still-running invocation of an instance.
fn mark_in_flight(current: &Current, flag: impl Fn(&Invocation) -> &AtomicBool) {
    for inv in lock(current).iter().filter(|i| Arc::strong_count(i) > 1) {
        flag(inv).store(true, Ordering::Relaxed);
    }
}

fn any_timed_out(current: &Current) -> bool {
    lock(current)
        .iter()
        .any(|i| i.timed_out.load(Ordering::Relaxed))
}

/// Everything needed to create instances of one revision.
pub struct RevisionState {
    pub maker: Arc<Maker>,
}

impl Drop for RevisionState {
    /// A replaced or deleted revision lets its ready instances go.
    fn drop(&mut self) {
        self.maker.retire();
    }
}

impl HandlerState for RevisionState {
    type StoreData = Host;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<Host, Expiration, Worker>> {
        let maker = &self.maker;
        let (store, proxy, live) = match maker.take_ready() {
            Some(ready) => ready,
            None => maker.make().await?,
        };
        maker.replenish();
        let current = Current::default();
        Ok(Instance {
            store,
            proxy,
            view: WasiHttpView::http,
            expiration: Expiration {
                timeout: maker.timeout,
                idle: maker.reuse.map_or(Duration::ZERO, |r| r.idle_timeout),
                reused: maker.reuse.is_some(),
                sleep: Box::pin(tokio::time::sleep(maker.timeout)),
                current: current.clone(),
            },
            state: Worker {
                live,
                current,
                served: AtomicU64::new(0),
            },
        })
    }
}

/// One instance's worker.
pub struct Worker {
    /// Counts the instance as live (and holds its `max_instances` permit).
    live: LiveGuard,
    current: Current,
    served: AtomicU64,
}

impl WorkerState for Worker {
    type StoreData = Host;
    type RequestData = Arc<Invocation>;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        match self.live.maker().reuse {
            None if total >= 1 => ShouldAccept::Never,
            None => ShouldAccept::Yes,
            Some(r) if r.max_requests.is_some_and(|max| total as u64 >= max) => ShouldAccept::Never,
            Some(r) if concurrent >= r.concurrency => ShouldAccept::No,
            Some(_) => ShouldAccept::Yes,
        }
    }

    fn on_request_start(
        &self,
        store: StoreContextMut<'_, Host>,
        invocation: Arc<Invocation>,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync + 'static>> {
        let tag = &store.data().tag;
        tag.set_invocation(invocation.id);
        tracing::debug!(function = %tag.function, invocation = %invocation.id, "instance started");
        if self.served.fetch_add(1, Ordering::Relaxed) > 0 {
            self.live.maker().metrics.instance_reused();
        }
        {
            let mut current = lock(&self.current);
            current.retain(|i| Arc::strong_count(i) > 1);
            current.push(invocation.clone());
        }
        let timeout = self.live.maker().timeout;
        Box::pin(async move {
            tokio::time::sleep(timeout).await;
            invocation.timed_out.store(true, Ordering::Relaxed);
        })
    }

    fn drop(&self, store: Store<Host>, result: wasmtime::Result<()>) {
        let host = store.data();
        let maker = self.live.maker();
        let (function, invocation) = (&host.tag.function, host.tag.invocation());
        if host.limiter.exceeded {
            tracing::warn!(
                %function, %invocation,
                "memory limit reached: the guest asked for more than memory = {} and its allocation failed",
                crate::units::ByteSize(maker.host.memory_limit)
            );
        }
        if let Err(error) = result {
            // Before the store (and with it the response bodies' senders) goes.
            mark_in_flight(&self.current, |i| &i.failed);
            if any_timed_out(&self.current) {
                tracing::warn!(
                    %function, %invocation,
                    "timeout reached: an invocation ran longer than timeout = {}; instance killed",
                    crate::units::Span(maker.timeout)
                );
            } else {
                tracing::warn!(%function, %invocation, "instance failed: {error:#}");
            }
        }
        drop(store);
    }
}

/// Ends an instance from outside its store: when a request outlives
/// `timeout` (this fires even while the guest loops between epoch yields),
/// or when it has been idle for `idle`.
pub struct Expiration {
    timeout: Duration,
    idle: Duration,
    /// Reused instances let their other requests finish after one times out.
    reused: bool,
    sleep: Pin<Box<tokio::time::Sleep>>,
    current: Current,
}

impl WorkerExpiration for Expiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let limit = match status {
            WorkerStatus::Idle => self.idle,
            // A fresh instance whose one request timed out has nothing left to do.
            _ if !self.reused && any_timed_out(&self.current) => Duration::ZERO,
            WorkerStatus::Requests | WorkerStatus::PostReturn => self.timeout,
        };
        let Some(deadline) = start.checked_add(limit) else {
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        let fired = self.sleep.as_mut().poll(cx);
        if fired.is_ready() && status != WorkerStatus::Idle {
            mark_in_flight(&self.current, |i| &i.timed_out);
        }
        fired
    }
}
