//! One subscription's deliveries in memory: which are due, which wait for
//! their retry time, which wait behind an earlier event of the same
//! ordering key, and how many may be in flight (slow start). The store is
//! the record; this is the schedule a dispatcher works from.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::events::cloudevent::CloudEvent;
use crate::events::store::Seq;

/// An unsettled delivery.
#[derive(Clone)]
pub struct Entry {
    /// Counted attempts so far (back-pressure refusals do not count).
    pub attempts: u32,
    pub published_ms: u64,
    pub key: Option<String>,
    /// The event, when at hand; loaded from the store otherwise.
    pub event: Option<Arc<CloudEvent>>,
}

/// How a delivery attempt ended, for the schedule.
pub enum Settled {
    /// Acknowledged, dead-lettered, dropped or expired: gone.
    Done { acked: bool },
    /// To try again at `due_ms` after `attempts` counted attempts.
    Retry {
        attempts: u32,
        due_ms: u64,
        /// A failure (the window closes to one) or back-pressure (halves).
        failed: bool,
    },
}

pub struct Queue {
    entries: HashMap<Seq, Entry>,
    ready: BTreeSet<Seq>,
    delayed: BTreeSet<(u64, Seq)>,
    /// Ordering keys with an event ready, delayed or in flight.
    active_keys: HashSet<String>,
    /// Events waiting for the one ahead of them with the same key.
    blocked: HashMap<String, VecDeque<(Seq, u64)>>,
    in_flight: usize,
    /// Deliveries allowed in flight now: starts at one, doubles on each
    /// success up to `max`, drops to one on failure (Pub/Sub push's slow
    /// start), halves on back-pressure.
    window: usize,
    max: usize,
}

impl Queue {
    pub fn new(max_in_flight: u32) -> Self {
        Queue {
            entries: HashMap::new(),
            ready: BTreeSet::new(),
            delayed: BTreeSet::new(),
            active_keys: HashSet::new(),
            blocked: HashMap::new(),
            in_flight: 0,
            window: 1,
            max: max_in_flight.max(1) as usize,
        }
    }

    /// Adds a delivery due at `due_ms`; with a key, behind any earlier
    /// event of that key.
    pub fn add(&mut self, seq: Seq, entry: Entry, due_ms: u64) {
        if self.entries.contains_key(&seq) {
            return;
        }
        if let Some(key) = &entry.key
            && !self.active_keys.insert(key.clone())
        {
            self.blocked
                .entry(key.clone())
                .or_default()
                .push_back((seq, due_ms));
            self.entries.insert(seq, entry);
            return;
        }
        self.entries.insert(seq, entry);
        self.schedule(seq, due_ms);
    }

    fn schedule(&mut self, seq: Seq, due_ms: u64) {
        self.delayed.insert((due_ms, seq));
    }

    /// The next delivery to start at `now_ms`, if the window has room.
    pub fn next(&mut self, now_ms: u64) -> Option<(Seq, Entry)> {
        while let Some(&(due, seq)) = self.delayed.first()
            && due <= now_ms
        {
            self.delayed.pop_first();
            self.ready.insert(seq);
        }
        if self.in_flight >= self.window {
            return None;
        }
        let seq = self.ready.pop_first()?;
        self.in_flight += 1;
        self.entries.get(&seq).map(|e| (seq, e.clone()))
    }

    /// When the next delayed delivery falls due, if any.
    pub fn next_due(&self) -> Option<u64> {
        self.delayed.first().map(|&(due, _)| due)
    }

    /// Records how the delivery of `seq` ended.
    pub fn settle(&mut self, seq: Seq, settled: Settled) {
        self.in_flight = self.in_flight.saturating_sub(1);
        match settled {
            Settled::Done { acked } => {
                if acked {
                    self.window = (self.window * 2).min(self.max);
                }
                let Some(entry) = self.entries.remove(&seq) else {
                    return;
                };
                if let Some(key) = entry.key {
                    self.release(key);
                }
            }
            Settled::Retry {
                attempts,
                due_ms,
                failed,
            } => {
                self.window = if failed { 1 } else { (self.window / 2).max(1) };
                if let Some(entry) = self.entries.get_mut(&seq) {
                    entry.attempts = attempts;
                    self.schedule(seq, due_ms);
                }
            }
        }
    }

    /// The event ahead of the others of `key` is done: the next one goes.
    fn release(&mut self, key: String) {
        let next = self.blocked.get_mut(&key).and_then(VecDeque::pop_front);
        match next {
            Some((seq, due)) => self.schedule(seq, due),
            None => {
                self.blocked.remove(&key);
                self.active_keys.remove(&key);
            }
        }
    }

    /// Unsettled deliveries, in flight included.
    pub fn backlog(&self) -> usize {
        self.entries.len()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// When the oldest unsettled event was published.
    pub fn oldest_published_ms(&self) -> Option<u64> {
        self.entries.values().map(|e| e.published_ms).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: Option<&str>) -> Entry {
        Entry {
            attempts: 0,
            published_ms: 0,
            key: key.map(str::to_string),
            event: None,
        }
    }

    #[test]
    fn slow_start_opens_on_success_and_closes_on_failure() {
        let mut q = Queue::new(4);
        for seq in 1..=10 {
            q.add(seq, entry(None), 0);
        }
        let (first, _) = q.next(0).unwrap();
        assert!(q.next(0).is_none(), "one in flight to start with");
        q.settle(first, Settled::Done { acked: true });
        let a = q.next(0).unwrap().0;
        let b = q.next(0).unwrap().0;
        assert!(q.next(0).is_none(), "two after one success");
        q.settle(
            a,
            Settled::Retry {
                attempts: 1,
                due_ms: 50,
                failed: true,
            },
        );
        q.settle(b, Settled::Done { acked: true });
        // The failure closed the window to one; the success doubled it.
        assert_eq!(q.window, 2);
        assert_eq!(q.next(10).unwrap().0, 4);
        assert_eq!(q.next_due(), Some(50));
        assert_eq!(q.backlog(), 8);
    }

    #[test]
    fn a_key_goes_one_at_a_time_in_order_and_holds_back_only_itself() {
        let mut q = Queue::new(10);
        q.window = 10;
        q.add(1, entry(Some("k")), 0);
        q.add(2, entry(Some("k")), 0);
        q.add(3, entry(Some("other")), 0);
        q.add(4, entry(None), 0);
        let mut started: Vec<Seq> = std::iter::from_fn(|| q.next(0).map(|(s, _)| s)).collect();
        started.sort();
        assert_eq!(started, vec![1, 3, 4]);
        // 1 fails: 2 stays behind it, while the others finish.
        q.settle(
            1,
            Settled::Retry {
                attempts: 1,
                due_ms: 100,
                failed: true,
            },
        );
        q.settle(3, Settled::Done { acked: true });
        q.settle(4, Settled::Done { acked: true });
        assert!(q.next(50).is_none());
        assert_eq!(q.next(100).unwrap().0, 1);
        q.settle(1, Settled::Done { acked: true });
        assert_eq!(q.next(100).unwrap().0, 2);
    }
}
