//! How a revision's instances serve requests: the state that
//! `wasmtime_wasi_http::handler::ProxyHandler` drives for each worker (one
//! worker per instance).
//!
//! With `isolation = "invocation"` (the default) a worker serves one request
//! on a fresh instance and ends. With `isolation = "instance"` it serves up
//! to `concurrency` requests at once (wasi:http@0.3 guests) and
//! `max_requests_per_instance` in all, and ends after `idle_timeout`
//! without work or when its revision is retired.
//!
//! A worker ends its instance from outside the store (see [`Expiration`]):
//! when a request outlives `timeout`, even while the guest loops between
//! epoch yields, and when every request it was serving was cancelled.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::WaitForCancellationFutureOwned;
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};

use crate::config::{ByteSize, Span};
use crate::invoke::instances::{Instances, LiveGuard, Ready};
use crate::invoke::invocation::Invocation;
use crate::sandbox::cpu::Activity;
use crate::sandbox::host::Host;
use crate::sandbox::tag::{InstanceTag, InvocationField};
use crate::telemetry::traces;

/// The invocations an instance has served. The invoker holds each one until
/// its response is done, so an entry only the instance still holds is no
/// longer awaited by anyone; those are pruned as new requests start.
#[derive(Clone, Default)]
struct Current(Arc<Mutex<Vec<Arc<Invocation>>>>);

impl Current {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Invocation>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, invocation: Arc<Invocation>) {
        let mut current = self.lock();
        current.retain(|i| Arc::strong_count(i) > 1);
        current.push(invocation);
    }

    /// Marks every invocation still awaited.
    fn mark_awaited(&self, mark: impl Fn(&Invocation)) {
        for inv in self.lock().iter().filter(|i| Arc::strong_count(i) > 1) {
            mark(inv);
        }
    }

    fn any_awaited(&self) -> bool {
        self.lock()
            .iter()
            .any(|i| Arc::strong_count(i) > 1 && !i.cancelled())
    }

    fn any_timed_out(&self) -> bool {
        self.lock().iter().any(|i| i.timed_out())
    }

    /// Nobody awaits any of its requests any more, and at least one was
    /// cancelled (rather than answered): the instance works for nobody.
    /// Registers `cx` to be woken by a later cancellation.
    fn abandoned(&self, cx: &Context<'_>) -> bool {
        let (mut cancelled, mut awaited) = (false, false);
        for inv in self.lock().iter() {
            // A cancelled invocation may still be referenced for a moment
            // by the caller that is going away; it is not awaited.
            if inv.cancelled() {
                cancelled = true;
            } else if Arc::strong_count(inv) > 1 {
                inv.register(cx.waker());
                awaited = true;
            }
        }
        cancelled && !awaited
    }
}

/// A revision's `ProxyHandler` state: makes one worker per instance.
pub struct Workers {
    pub instances: Arc<Instances>,
}

impl HandlerState for Workers {
    type StoreData = Host;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<Host, Expiration, Worker>> {
        let instances = &self.instances;
        let started = traces::on().then(SystemTime::now);
        let Ready {
            store,
            proxy,
            live,
            cold,
            initialized,
        } = instances.take().await?;
        let made = started.map(|started| Instantiated {
            started,
            ended: SystemTime::now(),
            cold,
            initialized,
        });
        let current = Current::default();
        let rearm = Arc::new(AtomicBool::new(false));
        let activity = store.data().cpu.activity();
        Ok(Instance {
            store,
            proxy,
            view: WasiHttpView::http,
            expiration: Expiration {
                instances: instances.clone(),
                timeout: instances.timeout,
                idle: instances.reuse.map_or(Duration::ZERO, |r| r.idle_timeout),
                reused: instances.reuse.is_some(),
                sleep: Box::pin(tokio::time::sleep(instances.timeout)),
                retired: Box::pin(instances.retired()),
                current: current.clone(),
                rearm: rearm.clone(),
                activity,
            },
            state: Worker {
                live,
                current,
                served: AtomicU64::new(0),
                rearm,
                made: Mutex::new(made),
            },
        })
    }
}

/// One instance's worker.
pub struct Worker {
    /// Counts the instance as live (and holds its instance slot).
    live: LiveGuard,
    current: Current,
    served: AtomicU64,
    /// Asks [`Expiration`] for one more poll; see there.
    rearm: Arc<AtomicBool>,
    /// When traces are on: how the instance was made, told as a span of
    /// the first invocation it serves.
    made: Mutex<Option<Instantiated>>,
}

/// When an instance was taken for its worker.
struct Instantiated {
    started: SystemTime,
    ended: SystemTime,
    cold: bool,
    /// Ran `wizer-initialize` when made.
    initialized: bool,
}

impl WorkerState for Worker {
    type StoreData = Host;
    type RequestData = Arc<Invocation>;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        let instances = self.live.instances();
        match instances.reuse {
            None if total >= 1 => ShouldAccept::Never,
            None => ShouldAccept::Yes,
            Some(_) if instances.is_retired() => ShouldAccept::Never,
            Some(r) if r.max_requests.is_some_and(|max| total as u64 >= max) => ShouldAccept::Never,
            Some(r) if concurrent >= r.concurrency => ShouldAccept::No,
            Some(_) => ShouldAccept::Yes,
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, Host>,
        invocation: Arc<Invocation>,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync + 'static>> {
        // `cpu_time` counts from the start of the work: this request's, or
        // for a shared instance, since it last had nothing to do.
        let instances = self.live.instances();
        let shared = instances.reuse.is_some_and(|r| r.concurrency > 1);
        if !shared || !self.current.any_awaited() {
            store.data_mut().cpu.reset();
            store.set_epoch_deadline(1);
        }
        let tag = &store.data().tag;
        tag.set_invocation(invocation.id);
        invocation.started_on(tag);
        tracing::debug!(
            function = %tag.function, invocation = %invocation.id, instance = %tag.instance,
            trigger = %invocation.trigger, "instance started"
        );
        if self.served.fetch_add(1, Ordering::Relaxed) > 0 {
            instances.metrics.instance_reused();
        } else {
            instances.metrics.instance_first_use();
        }
        if shared {
            self.rearm.store(true, Ordering::Relaxed);
        }
        self.current.push(invocation.clone());
        // Ends when the request does (this future is dropped then).
        let guest_run = invocation.trace().and_then(|cx| {
            tag.set_trace(cx.clone());
            let made = self.made.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(made) = made {
                traces::instantiation(cx, made.started, made.ended, made.cold, made.initialized);
            }
            traces::guest_run(cx, tag.instance)
        });
        let timeout = instances.timeout;
        Box::pin(async move {
            let _guest_run = guest_run;
            tokio::time::sleep(timeout).await;
            invocation.set_timed_out();
        })
    }

    fn drop(&self, store: Store<Host>, result: wasmtime::Result<()>) {
        let tag: &InstanceTag = &store.data().tag;
        let instances = self.live.instances();
        let (function, invocation) = (&tag.function, InvocationField(tag.invocation()));
        let instance = tag.instance;
        instances.metrics.cpu_used(store.data().cpu.total());
        if tag.cpu_exceeded() {
            instances.metrics.cpu_limit_reached();
            tracing::warn!(
                %function, %invocation, %instance,
                "cpu time limit reached: the guest computed for more than cpu_time = {}; instance killed",
                instances.host.cpu_time.map_or_else(|| "-".to_string(), |t| Span(t).to_string())
            );
        }
        if tag.memory_exceeded() {
            tracing::warn!(
                %function, %invocation, %instance,
                "memory limit reached: the guest asked for more than memory = {} and its allocation failed",
                ByteSize(instances.host.memory_limit)
            );
        }
        if let Err(error) = result {
            let awaited = self.current.any_awaited();
            // Before the store (and with it the response bodies' senders) goes.
            self.current.mark_awaited(Invocation::set_failed);
            if !awaited && error.to_string() == WORKER_DROPPED {
                tracing::debug!(%function, %instance, "idle instance dropped");
            } else if tag.cpu_exceeded() {
                // Said above.
            } else if self.current.any_timed_out() {
                tracing::warn!(
                    %function, %invocation, %instance,
                    "timeout reached: an invocation ran longer than timeout = {}; instance killed",
                    Span(instances.timeout)
                );
            } else if self.current.lock().iter().any(|i| i.cancelled()) {
                tracing::info!(
                    %function, %invocation, %instance,
                    "cancelled: nobody waits for the response any more (client went away); instance dropped"
                );
            } else {
                tracing::warn!(%function, %invocation, %instance, "instance failed: {error:#}");
            }
        }
        drop(store);
    }
}

/// The error `ProxyHandler` hands [`Worker::drop`] when the worker's future
/// was dropped rather than finished: a reused instance still alive when the
/// server stops (its runtime drops every task) ends that way, and so would
/// a panic in the worker. Without a request waiting on the instance it is
/// no failure of anyone's.
const WORKER_DROPPED: &str = "worker panicked";

/// Decides, from outside the store, when a worker's instance ends.
pub struct Expiration {
    instances: Arc<Instances>,
    timeout: Duration,
    idle: Duration,
    /// Reused instances let their other requests finish after one times out.
    reused: bool,
    sleep: Pin<Box<tokio::time::Sleep>>,
    retired: Pin<Box<WaitForCancellationFutureOwned>>,
    current: Current,
    /// Set when a request starts on an instance with `concurrency > 1`.
    /// `ProxyHandler` polls this right *before* the poll in which such a
    /// worker turns ready for more requests; one extra poll afterwards
    /// lets the capacity change below reach requests waiting for it.
    rearm: Arc<AtomicBool>,
    /// Told that the worker ran out of work (see `sandbox::cpu`).
    activity: Arc<Activity>,
}

impl WorkerExpiration for Expiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        // Called whenever the worker's future is pending: nothing of the
        // instance runs until it is woken.
        self.activity.idle();
        // Called after each turn of the worker, once it may have become
        // ready for another request: tell requests waiting for capacity.
        // (A fresh instance never takes another request; its slot coming
        // free is told when it is dropped.)
        if self.reused {
            self.instances.admission.capacity_changed();
        }
        // The extra poll is a self-wake, which tokio answers by waking an
        // idle worker thread to steal the task: only worth it when a
        // request can be handed back at all.
        if self.rearm.swap(false, Ordering::Relaxed) && self.instances.admission.may_hand_back() {
            cx.waker().wake_by_ref();
        }
        if status == WorkerStatus::Idle {
            if self.retired.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        } else if self.current.abandoned(cx) {
            return Poll::Ready(());
        }
        let limit = match status {
            WorkerStatus::Idle => self.idle,
            // A fresh instance whose one request timed out has nothing left to do.
            _ if !self.reused && self.current.any_timed_out() => Duration::ZERO,
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
            self.current.mark_awaited(Invocation::set_timed_out);
        }
        fired
    }
}
