//! One invocation's identity and fate, shared by the trigger that started it
//! and the instance serving it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use futures::task::AtomicWaker;
use tokio::sync::OwnedSemaphorePermit;

use crate::sandbox::tag::InstanceTag;
use crate::telemetry::ids::{InvocationId, Trigger};

pub struct Invocation {
    pub id: InvocationId,
    pub trigger: Trigger,
    /// Set when it ran past `timeout`, so the outcome is "timed out" even
    /// though the guest never produced an error.
    timed_out: AtomicBool,
    /// Set when the instance serving it trapped or was killed, so a response
    /// whose headers are already out ends in an error, not a clean EOF.
    failed: AtomicBool,
    /// Set when whoever waited for it went away (an HTTP client
    /// disconnected): the instance stops working for nobody.
    cancelled: AtomicBool,
    /// Set when the client stalled sending the request body past
    /// `request_body_timeout`, so a guest that failed on it is not blamed.
    body_timed_out: AtomicBool,
    /// The instance serving it, once it started.
    instance: OnceLock<Arc<InstanceTag>>,
    /// Wakes the serving instance's expiration when it is cancelled.
    waker: AtomicWaker,
    /// With a fresh instance per invocation, the admission place is held
    /// until both the response and the instance are gone, so the next
    /// request is admitted only once the instance slot is free too.
    place: OnceLock<OwnedSemaphorePermit>,
    /// Its span's context when traces are on: the parent of the spans made
    /// on the instance serving it.
    trace: OnceLock<opentelemetry::Context>,
}

impl Invocation {
    pub fn new(id: InvocationId, trigger: Trigger) -> Arc<Self> {
        Arc::new(Invocation {
            id,
            trigger,
            timed_out: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            body_timed_out: AtomicBool::new(false),
            instance: OnceLock::new(),
            waker: AtomicWaker::new(),
            place: OnceLock::new(),
            trace: OnceLock::new(),
        })
    }

    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }

    pub fn set_timed_out(&self) {
        self.timed_out.store(true, Ordering::Relaxed);
    }

    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    pub fn set_failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    pub fn body_timed_out(&self) -> bool {
        self.body_timed_out.load(Ordering::Relaxed)
    }

    pub fn set_body_timed_out(&self) {
        self.body_timed_out.store(true, Ordering::Relaxed);
    }

    pub fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Gives up on the invocation: its instance is told at once.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Registers the serving instance's waker for [`Invocation::cancel`].
    pub fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    /// Keeps `place` until the invocation is dropped by everyone.
    pub fn hold(&self, place: OwnedSemaphorePermit) {
        let _ = self.place.set(place);
    }

    /// Records its span's context (see [`traces`](crate::telemetry::traces)).
    pub fn set_trace(&self, cx: opentelemetry::Context) {
        let _ = self.trace.set(cx);
    }

    /// Its span's context; `None` when traces are off.
    pub fn trace(&self) -> Option<&opentelemetry::Context> {
        self.trace.get()
    }

    /// Records which instance serves it.
    pub fn started_on(&self, tag: &Arc<InstanceTag>) {
        let _ = self.instance.set(tag.clone());
    }

    /// Whether its instance hit the `memory` limit.
    pub fn memory_exceeded(&self) -> bool {
        self.instance.get().is_some_and(|t| t.memory_exceeded())
    }

    /// Whether its instance was stopped at the `cpu_time` limit.
    pub fn cpu_exceeded(&self) -> bool {
        self.instance.get().is_some_and(|t| t.cpu_exceeded())
    }
}
