//! Admission: `max_instances`, `max_queue` and `queue_timeout` as one fair
//! wait with a deadline, the same for both isolation modes.
//!
//! Two semaphores, both FIFO:
//! - the **gate** admits requests: `max_instances × concurrency` may be in
//!   flight (one per instance with `isolation = "invocation"`); the rest
//!   wait in arrival order, at most `max_queue` of them, each until its
//!   deadline. No request overtakes an earlier one at the gate.
//! - **instance slots** (`max_instances`) are taken by instances when they
//!   are made and returned when their store is dropped.
//!
//! An admitted request can still find every instance slot taken for a
//! moment: its instance is dropping after the previous response, or (reused
//! instances) every live instance is busy running guest code at the instant
//! the request arrives, so `ProxyHandler` asks for a new one. Such a request
//! is handed back and waits for a *capacity change* — an instance slot
//! returned, or a worker ready for more work — then is offered again. No
//! timer polls, and nothing is offered again until something changed.

use std::fmt;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::telemetry::metrics::FunctionMetrics;

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// `max_queue` requests were already waiting.
    QueueFull,
    /// Waited `queue_timeout` without being served.
    QueueTimeout,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rejected::QueueFull => "max_instances reached and max_queue requests already waiting",
            Rejected::QueueTimeout => {
                "max_instances reached and no instance came free within queue_timeout"
            }
        })
    }
}

/// Every instance slot of the function is taken right now.
#[derive(Debug)]
pub struct AtCapacity;

impl fmt::Display for AtCapacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("max_instances instances are live")
    }
}

impl std::error::Error for AtCapacity {}

pub struct Admission {
    gate: Arc<Semaphore>,
    instances: Arc<Semaphore>,
    waiting: AtomicU32,
    /// Counts the waiting requests in the function's `queue_depth`.
    metrics: Arc<FunctionMetrics>,
    max_queue: u32,
    queue_timeout: Duration,
    /// Bumped on every capacity change; see [`Admission::wait_for_capacity`].
    generation: AtomicU64,
    /// Requests handed back and waiting for a capacity change.
    bounced: AtomicUsize,
    changed: Notify,
}

impl Admission {
    pub fn new(
        max_instances: u32,
        concurrency: u32,
        max_queue: u32,
        queue_timeout: Duration,
        metrics: Arc<FunctionMetrics>,
    ) -> Self {
        let in_flight = max_instances as usize * concurrency.max(1) as usize;
        Admission {
            gate: Arc::new(Semaphore::new(in_flight)),
            instances: Arc::new(Semaphore::new(max_instances as usize)),
            waiting: AtomicU32::new(0),
            metrics,
            max_queue,
            queue_timeout,
            generation: AtomicU64::new(0),
            bounced: AtomicUsize::new(0),
            changed: Notify::new(),
        }
    }

    pub fn queue_timeout(&self) -> Duration {
        self.queue_timeout
    }

    /// Waits in FIFO order for a place among the requests in flight, until
    /// `deadline`. The permit is the request's place; drop it when the
    /// response is done.
    pub async fn admit(&self, deadline: Instant) -> Result<OwnedSemaphorePermit, Rejected> {
        // Permits only stay free while nobody waits (tokio's semaphore hands
        // a released permit to the oldest waiter), so this cannot overtake.
        if let Ok(permit) = self.gate.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Rejected::QueueFull);
        }
        self.metrics.queued(true);
        let waited = tokio::time::timeout_at(deadline, self.gate.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        self.metrics.queued(false);
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it like a timeout anyway.
            Ok(Err(_)) | Err(_) => Err(Rejected::QueueTimeout),
        }
    }

    /// An instance slot, if one is free now.
    pub fn instance_slot(&self) -> Result<OwnedSemaphorePermit, AtCapacity> {
        self.instances
            .clone()
            .try_acquire_owned()
            .map_err(|_| AtCapacity)
    }

    /// The current capacity generation; take it before offering a request,
    /// and pass it to [`Admission::wait_for_capacity`] if it comes back.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Tells handed-back requests that an instance slot came free or a
    /// worker is ready for work. Cheap when nobody waits.
    pub fn capacity_changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if self.bounced.load(Ordering::SeqCst) > 0 {
            self.changed.notify_waiters();
        }
    }

    /// Whether a request may be handed back now or soon: every instance
    /// slot is taken, or one already waits for a capacity change. While
    /// slots are free a request that finds no worker ready makes a new
    /// instance, and the worker that takes the last slot sees this true.
    pub fn may_hand_back(&self) -> bool {
        self.instances.available_permits() == 0 || self.bounced.load(Ordering::SeqCst) > 0
    }

    /// Waits until capacity changed after `since`, or `deadline`.
    pub async fn wait_for_capacity(&self, since: u64, deadline: Instant) -> Result<(), Rejected> {
        struct Bounced<'a>(&'a AtomicUsize);
        impl Drop for Bounced<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.bounced.fetch_add(1, Ordering::SeqCst);
        let _bounced = Bounced(&self.bounced);
        let mut changed = pin!(self.changed.notified());
        changed.as_mut().enable();
        // A change between `since` and `enable` was either counted in the
        // generation (seen here) or saw `bounced > 0` and notifies us.
        if self.generation.load(Ordering::SeqCst) != since {
            return Ok(());
        }
        tokio::time::timeout_at(deadline, changed)
            .await
            .map_err(|_| Rejected::QueueTimeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn queue_is_bounded_and_times_out() {
        let gate = Admission::new(1, 1, 1, Duration::from_millis(50), Arc::default());
        let held = gate.admit(soon(50)).await.unwrap();
        let waiter = gate.admit(soon(50));
        let (waited, rejected) = tokio::join!(waiter, async {
            tokio::task::yield_now().await;
            // The first waiter counts in the queue depth while it waits.
            assert_eq!(gate.metrics.snapshot().queue_depth, 1);
            gate.admit(soon(50)).await
        });
        assert_eq!(gate.metrics.snapshot().queue_depth, 0);
        assert_eq!(rejected.unwrap_err(), Rejected::QueueFull);
        assert_eq!(waited.unwrap_err(), Rejected::QueueTimeout);
        drop(held);
        let _permit = gate.admit(soon(50)).await.unwrap();
    }

    #[tokio::test]
    async fn waiters_are_served_in_arrival_order() {
        let gate = Arc::new(Admission::new(
            1,
            1,
            10,
            Duration::from_secs(10),
            Arc::default(),
        ));
        let held = gate.admit(soon(1000)).await.unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (waiter, order) = (gate.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let permit = waiter.admit(soon(10_000)).await.unwrap();
                order.lock().unwrap().push(i);
                drop(permit);
            }));
            // Each waiter is queued before the next one arrives.
            while gate.waiting.load(Ordering::Acquire) < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test]
    async fn concurrency_multiplies_the_gate_not_the_instances() {
        let gate = Admission::new(2, 3, 0, Duration::from_millis(10), Arc::default());
        let admitted: Vec<_> = futures::future::join_all((0..6).map(|_| gate.admit(soon(10))))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(gate.admit(soon(10)).await.unwrap_err(), Rejected::QueueFull);
        let slots = (gate.instance_slot().unwrap(), gate.instance_slot().unwrap());
        assert!(gate.instance_slot().is_err());
        drop((admitted, slots));
    }

    #[tokio::test]
    async fn a_change_wakes_bounced_requests_and_none_is_missed() {
        let gate = Arc::new(Admission::new(
            1,
            1,
            0,
            Duration::from_secs(1),
            Arc::default(),
        ));
        // A change after the generation was read returns at once.
        let since = gate.generation();
        gate.capacity_changed();
        gate.wait_for_capacity(since, soon(10_000)).await.unwrap();
        // A change while waiting wakes the waiter.
        let since = gate.generation();
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.wait_for_capacity(since, soon(10_000)).await })
        };
        while gate.bounced.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        gate.capacity_changed();
        waiter.await.unwrap().unwrap();
        // No change: the deadline answers.
        let since = gate.generation();
        assert_eq!(
            gate.wait_for_capacity(since, soon(20)).await.unwrap_err(),
            Rejected::QueueTimeout
        );
    }
}
