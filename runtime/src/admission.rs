//! `max_instances` with a bounded wait: a request that finds every instance
//! of its function busy waits in a short queue, then gets 429.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a request was not given an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// `max_queue` requests were already waiting.
    QueueFull,
    /// Waited `queue_timeout` without an instance coming free.
    QueueTimeout,
    /// Every instance slot is taken right now (reused instances: the
    /// gateway retries while the request waits in the queue).
    AtCapacity,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rejected::QueueFull => "max_instances reached and max_queue requests already waiting",
            Rejected::QueueTimeout => {
                "max_instances reached and no instance came free within queue_timeout"
            }
            Rejected::AtCapacity => "max_instances reached",
        })
    }
}

impl std::error::Error for Rejected {}

/// Gate on a function's live instances. The permit travels with the
/// instance and is released when its store is dropped.
pub struct Admission {
    slots: Arc<Semaphore>,
    waiting: AtomicU32,
    max_queue: u32,
    queue_timeout: Duration,
}

impl Admission {
    pub fn new(max_instances: u32, max_queue: u32, queue_timeout: Duration) -> Self {
        Admission {
            slots: Arc::new(Semaphore::new(max_instances as usize)),
            waiting: AtomicU32::new(0),
            max_queue,
            queue_timeout,
        }
    }

    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, Rejected> {
        if let Ok(permit) = self.try_acquire() {
            return Ok(permit);
        }
        let _waiting = self.enter_queue()?;
        match tokio::time::timeout(self.queue_timeout, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it like a timeout anyway.
            Ok(Err(_)) | Err(_) => Err(Rejected::QueueTimeout),
        }
    }

    pub fn try_acquire(&self) -> Result<OwnedSemaphorePermit, Rejected> {
        self.slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Rejected::AtCapacity)
    }

    /// Takes a place in the bounded queue, released when the guard drops
    /// (also when the waiting request is abandoned).
    pub fn enter_queue(&self) -> Result<QueuePlace<'_>, Rejected> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Rejected::QueueFull);
        }
        Ok(QueuePlace(&self.waiting))
    }

    pub fn queue_timeout(&self) -> Duration {
        self.queue_timeout
    }
}

/// A place in an [`Admission`] queue.
pub struct QueuePlace<'a>(&'a AtomicU32);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queue_is_bounded_and_times_out() {
        let gate = Admission::new(1, 1, Duration::from_millis(50));
        let held = gate.acquire().await.unwrap();
        let waiter = gate.acquire();
        let (waited, rejected) = tokio::join!(waiter, async {
            tokio::task::yield_now().await;
            gate.acquire().await
        });
        assert_eq!(rejected.unwrap_err(), Rejected::QueueFull);
        assert_eq!(waited.unwrap_err(), Rejected::QueueTimeout);
        drop(held);
        let _permit = gate.acquire().await.unwrap();
    }
}
