//! How a revision turns requests into instances: the `HandlerState` that
//! `wasmtime_wasi_http::handler::ProxyHandler` drives. By default every
//! invocation gets a fresh instance from the revision's `InstancePre`, in a
//! fresh `Store`, dropped when the response is finished.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::component::GuestTaskId;
use wasmtime::{Engine, Store, StoreContextMut};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};

use crate::admission::Admission;
use crate::host::{Host, HostConfig, InvocationId, new_store};
use crate::telemetry::FunctionMetrics;

/// One request's identity and fate, shared by the gateway and the instance
/// serving it.
pub struct Invocation {
    pub id: InvocationId,
    /// Set by the instance's expiration before it kills the instance, so the
    /// gateway can answer 504 even though the guest never produced an error.
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

/// The invocation an instance is serving, seen by its worker and expiration.
type Current = Arc<Mutex<Option<Arc<Invocation>>>>;

/// Everything needed to create instances of one revision.
pub struct RevisionState {
    pub engine: Engine,
    pub pre: ProxyPre<Host>,
    pub host: HostConfig,
    pub timeout: Duration,
    pub admission: Admission,
    pub metrics: Arc<FunctionMetrics>,
}

impl HandlerState for RevisionState {
    type StoreData = Host;
    type WorkerExpiration = Expiration;
    type WorkerState = InvocationWorker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<Host, Expiration, InvocationWorker>> {
        let permit = self.admission.acquire().await?;
        let mut store = new_store(&self.engine, Host::new(&self.host)?);
        let proxy = self.pre.instantiate_async(&mut store).await?;
        self.metrics.instance_created();
        let current = Current::default();
        Ok(Instance {
            store,
            proxy,
            view: WasiHttpView::http,
            expiration: Expiration::new(self.timeout, current.clone()),
            state: InvocationWorker {
                _permit: permit,
                current,
                timeout: self.timeout,
                memory_limit: self.host.memory_limit,
                metrics: self.metrics.clone(),
            },
        })
    }
}

/// One instance's worker: it serves one request, then the instance goes.
pub struct InvocationWorker {
    _permit: OwnedSemaphorePermit,
    current: Current,
    timeout: Duration,
    memory_limit: u64,
    metrics: Arc<FunctionMetrics>,
}

impl WorkerState for InvocationWorker {
    type StoreData = Host;
    type RequestData = Arc<Invocation>;

    fn should_accept_request(&self, _concurrent: usize, total: usize) -> ShouldAccept {
        if total >= 1 {
            ShouldAccept::Never
        } else {
            ShouldAccept::Yes
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
        *lock(&self.current) = Some(invocation.clone());
        let timeout = self.timeout;
        Box::pin(async move {
            tokio::time::sleep(timeout).await;
            invocation.timed_out.store(true, Ordering::Relaxed);
        })
    }

    fn drop(&self, store: Store<Host>, result: wasmtime::Result<()>) {
        let host = store.data();
        let (function, invocation) = (&host.tag.function, host.tag.invocation());
        if host.limiter.exceeded {
            tracing::warn!(
                %function, %invocation,
                "memory limit reached: the guest asked for more than memory = {} and its allocation failed",
                crate::units::ByteSize(self.memory_limit)
            );
        }
        let current = lock(&self.current).clone();
        let timed_out = current
            .as_ref()
            .is_some_and(|inv| inv.timed_out.load(Ordering::Relaxed));
        if let Err(error) = result {
            // Before the store (and with it the response body's sender) goes.
            if let Some(inv) = &current {
                inv.failed.store(true, Ordering::Relaxed);
            }
            if timed_out {
                tracing::warn!(
                    %function, %invocation,
                    "timeout reached: the invocation ran longer than timeout = {}; instance killed",
                    crate::units::Span(self.timeout)
                );
            } else {
                tracing::warn!(%function, %invocation, "instance failed: {error:#}");
            }
        }
        self.metrics.instance_dropped();
        drop(store);
    }
}

/// Ends an instance whose request outlived `timeout`, from outside the store:
/// this fires even while the guest is looping between epoch yields.
pub struct Expiration {
    timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    current: Current,
}

impl Expiration {
    fn new(timeout: Duration, current: Current) -> Self {
        Expiration {
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            current,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl WorkerExpiration for Expiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let timed_out = lock(&self.current)
            .as_ref()
            .is_some_and(|inv| inv.timed_out.load(Ordering::Relaxed));
        let limit = match status {
            // An idle invocation-mode instance has served its one request,
            // and one whose request timed out has nothing left to do.
            WorkerStatus::Idle => Duration::ZERO,
            _ if timed_out => Duration::ZERO,
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
        if fired.is_ready()
            && status != WorkerStatus::Idle
            && let Some(inv) = lock(&self.current).as_ref()
        {
            inv.timed_out.store(true, Ordering::Relaxed);
        }
        fired
    }
}
