//! A subscription's dispatcher: takes due deliveries from its [`Queue`],
//! runs each through [`deliver`], and records the outcome — ack, retry
//! after a backoff, or dead letter — in the store and the queue.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::TriggerSpec;
use crate::events::deliver::deliver;
use crate::events::queue::{Entry, Queue, Settled};
use crate::events::store::{Change, Seq};
use crate::events::{Core, idle, now_ms};
use crate::invoke::call::Outcome;

/// Extension attribute naming why an event was dead-lettered.
pub const DEAD_LETTER_REASON: &str = "deadletterreason";
/// Extension attribute with the attempts made before it was dead-lettered.
pub const DELIVERY_ATTEMPT: &str = "deliveryattempt";
/// Extension attribute naming the topic a dead-lettered event came from,
/// where `wisp topics replay` sends it back.
pub const ORIGIN_TOPIC: &str = "wisporigintopic";

/// Counts since the server started.
#[derive(Default)]
pub struct Counters {
    delivered: AtomicU64,
    acked: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    dropped: AtomicU64,
}

/// A copy of [`Counters`].
#[derive(Serialize)]
pub struct CountersSnapshot {
    /// Attempts started.
    pub delivered: u64,
    pub acked: u64,
    /// Failed attempts to be tried again.
    pub retried: u64,
    pub dead_lettered: u64,
    /// Exhausted with no dead-letter topic, or past the topic's retention.
    pub dropped: u64,
}

impl Counters {
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            delivered: self.delivered.load(Relaxed),
            acked: self.acked.load(Relaxed),
            retried: self.retried.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
        }
    }
}

/// One function's subscription to a topic.
pub struct Subscription {
    pub function: String,
    pub trigger: TriggerSpec,
    pub counters: Counters,
    queue: Mutex<Queue>,
    wake: Notify,
    stop: CancellationToken,
}

impl Subscription {
    pub fn new(function: String, trigger: TriggerSpec) -> Arc<Self> {
        let queue = Queue::new(trigger.max_in_flight);
        Arc::new(Subscription {
            function,
            trigger,
            counters: Counters::default(),
            queue: Mutex::new(queue),
            wake: Notify::new(),
            stop: CancellationToken::new(),
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new (or resumed) delivery, due at `due_ms`.
    pub fn add(&self, seq: Seq, entry: Entry, due_ms: u64) {
        self.queue().add(seq, entry, due_ms);
        self.wake.notify_one();
    }

    /// The ordering key of an event with this `partitionkey`: none unless
    /// the subscription is `ordered`.
    pub fn key_of<'a>(&self, partition_key: Option<&'a str>) -> Option<&'a str> {
        if self.trigger.ordered {
            partition_key
        } else {
            None
        }
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// `(backlog, in flight, oldest unsettled publish time)`.
    pub fn backlog(&self) -> (usize, usize, Option<u64>) {
        let q = self.queue();
        (q.backlog(), q.in_flight(), q.oldest_published_ms())
    }

    /// Starts deliveries as they fall due and the window allows, until
    /// stopped.
    pub async fn run(self: Arc<Self>, core: Arc<Core>) {
        loop {
            let now = now_ms();
            let next = self.queue().next(now);
            if let Some((seq, entry)) = next {
                tokio::spawn(self.clone().attempt(core.clone(), seq, entry));
                continue;
            }
            let due = self.queue().next_due();
            if !idle(&self.stop, &self.wake, now, due).await {
                return;
            }
        }
    }

    async fn attempt(self: Arc<Self>, core: Arc<Core>, seq: Seq, entry: Entry) {
        let settled = self.try_once(&core, seq, entry).await;
        self.queue().settle(seq, settled);
        self.wake.notify_one();
    }

    async fn try_once(&self, core: &Core, seq: Seq, entry: Entry) -> Settled {
        let event = match entry.event.clone() {
            Some(event) => event,
            None => match core.store.load(seq).await {
                Ok(Some(stored)) => stored.event,
                Ok(None) => return Settled::Done { acked: false },
                Err(e) => {
                    tracing::error!(subscription = %self.function, "{e:#}");
                    return self.later(entry.attempts, false);
                }
            },
        };
        if core.expired(&self.trigger.topic, entry.published_ms) {
            tracing::warn!(
                function = %self.function, topic = %self.trigger.topic, event = %event.id(),
                "event dropped undelivered: older than the topic's retention"
            );
            self.counters.dropped.fetch_add(1, Relaxed);
            self.settle_soon(core, seq);
            return Settled::Done { acked: false };
        }
        let Some(live) = core.registry.live(&self.function) else {
            return self.later(entry.attempts, false);
        };
        let attempt = entry.attempts + 1;
        let deadline = self.trigger.ack_deadline.unwrap_or(live.spec.timeout).0;
        self.counters.delivered.fetch_add(1, Relaxed);
        match deliver(&live, &core.bodies, &event, attempt, deadline).await {
            Outcome::Done => {
                self.counters.acked.fetch_add(1, Relaxed);
                self.settle_soon(core, seq);
                Settled::Done { acked: true }
            }
            Outcome::BackPressure(_) => self.later(entry.attempts, false),
            Outcome::Failed(reason) if attempt >= self.trigger.max_attempts => {
                self.dead_letter(core, seq, &event, attempt, &reason).await
            }
            Outcome::Failed(_) => {
                self.counters.retried.fetch_add(1, Relaxed);
                let settled = self.later(attempt, true);
                if let Settled::Retry { due_ms, .. } = settled {
                    core.store.commit_soon(Change {
                        retry: vec![(self.function.clone(), seq, attempt, due_ms)],
                        ..Change::default()
                    });
                }
                settled
            }
        }
    }

    fn settle_soon(&self, core: &Core, seq: Seq) {
        core.store.commit_soon(Change {
            settle: vec![(self.function.clone(), seq)],
            ..Change::default()
        });
    }

    /// A retry after the backoff for `attempts` counted attempts.
    fn later(&self, attempts: u32, failed: bool) -> Settled {
        let delay = backoff(
            self.trigger.min_backoff.0,
            self.trigger.max_backoff.0,
            attempts.max(1),
        );
        Settled::Retry {
            attempts,
            due_ms: now_ms() + delay.as_millis() as u64,
            failed,
        }
    }

    async fn dead_letter(
        &self,
        core: &Core,
        seq: Seq,
        event: &crate::events::cloudevent::CloudEvent,
        attempt: u32,
        reason: &str,
    ) -> Settled {
        let settle = vec![(self.function.clone(), seq)];
        let Some(topic) = self.trigger.dead_letter_topic.clone() else {
            tracing::warn!(
                function = %self.function, topic = %self.trigger.topic, event = %event.id(),
                "event dropped after {attempt} attempts (no dead_letter_topic): {reason}"
            );
            self.counters.dropped.fetch_add(1, Relaxed);
            core.store.commit_soon(Change {
                settle,
                ..Change::default()
            });
            return Settled::Done { acked: false };
        };
        let mut dead = event.clone();
        dead.set_attribute(DEAD_LETTER_REASON, reason);
        dead.set_attribute(DELIVERY_ATTEMPT, attempt.to_string());
        dead.set_attribute(ORIGIN_TOPIC, self.trigger.topic.clone());
        match core.append(&topic, vec![dead], settle).await {
            Ok(_) => {
                tracing::warn!(
                    function = %self.function, topic = %self.trigger.topic, event = %event.id(),
                    "event dead-lettered to `{topic}` after {attempt} attempts: {reason}"
                );
                self.counters.dead_lettered.fetch_add(1, Relaxed);
                Settled::Done { acked: false }
            }
            Err(e) => {
                tracing::error!(function = %self.function, "could not dead-letter: {e:#}");
                self.later(attempt - 1, true)
            }
        }
    }
}

/// Exponential from `min` (doubling per attempt), capped at `max`, with up
/// to a fifth more at random so retries of many events spread out; never
/// below `min`.
pub fn backoff(min: Duration, max: Duration, attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(30);
    let base = min.saturating_mul(1 << doublings).min(max);
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    let jitter = base.mul_f64(f64::from(byte[0]) / 255.0 / 5.0);
    (base + jitter).min(max).max(min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_bounds() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(60));
        for attempts in 1..40 {
            let d = backoff(min, max, attempts);
            assert!(d >= min && d <= max, "{attempts}: {d:?}");
        }
        assert!(backoff(min, max, 3) >= Duration::from_secs(4));
        assert_eq!(backoff(min, max, 20), max);
    }
}
