//! CPU time: what each invocation uses, its `cpu_time` limit, and a fair
//! share of the cores for functions that compute for long.
//!
//! **Measuring.** The epoch ticker advances every [`EPOCH_TICK`]; a guest
//! that is *executing* when a tick passes enters the store's epoch callback.
//! Such a callback charges one tick: CPU time is sampled at the tick, like a
//! profiler samples. A guest that waited (a timer, I/O, its turn) across
//! ticks also enters the callback when it next runs Wasm, but then the
//! ticks since its last callback show it was not executing, and nothing is
//! charged. A guest computing without pause is charged to within
//! one tick (10 ms); short bursts are charged a tick with the probability
//! that a tick falls inside them, so the sum over many is unbiased.
//!
//! **Sharing.** An invocation charged [`HEAVY_AFTER`] ticks is *heavy*: from
//! then on, at every tick it gives its core back and waits for a turn in the
//! [`CpuLanes`] — at most `slots` heavy invocations run at once (one core
//! fewer than the machine has, at least one). An invocation's first turn is
//! served before all others (a short request that happened to see a tick
//! waits one slice at most); after that, turns go round-robin between
//! *functions*, each taking `cpu_weight` turns in a row. A turn not handed back within two
//! ticks (its guest started waiting, or finished while its instance lives
//! on) is taken back by the ticker. So a function with many spinning
//! invocations gets the same share as a function with one heavy request,
//! and at least one core is always left for short requests and for
//! accepting connections.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use wasmtime::UpdateDeadline;

use crate::sandbox::tag::InstanceTag;

/// How often the epoch advances: the unit of CPU accounting, and the
/// longest a guest runs before it yields to the async runtime, so one
/// looping guest never holds a worker thread. The ticker costs one atomic
/// increment per tick.
pub const EPOCH_TICK: Duration = crate::config::CPU_TICK;

/// Ticks an invocation may be charged before it counts as heavy. One: a
/// guest seen executing at a tick waits for a turn at that tick. A short
/// request (0.1–5 ms) sees a tick only now and then, and its first wait is
/// served before every long computation's turn, so it waits one slice at
/// most; waiting for two ticks instead let eight 50 ms computations take
/// both cores for their first 20 ms each (hello fell to 323 req/s beside
/// them, against 2,182 with one).
pub const HEAVY_AFTER: u32 = 1;

/// The guest used more than its `cpu_time`.
#[derive(Debug)]
pub struct CpuLimitReached;

impl std::fmt::Display for CpuLimitReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cpu time limit reached")
    }
}

impl std::error::Error for CpuLimitReached {}

/// The ticker's work at every tick, after advancing the engine's epoch.
pub fn tick(lanes: &Arc<CpuLanes>) {
    let now = lanes.ticks.fetch_add(1, Ordering::AcqRel) + 1;
    lanes.expire(now);
}

/// A turn not handed back within this many ticks is taken back: its guest
/// stopped executing (it waits on I/O, or finished and its instance lives
/// on) without reaching another tick.
const LEASE: u64 = 2;

/// Turns to run heavy invocations, shared fairly between functions.
pub struct CpuLanes {
    slots: usize,
    /// Epoch ticks so far, counted beside the engine's epoch by the ticker:
    /// what tells a tick that passed while a guest executed from ticks that
    /// passed while it waited.
    ticks: AtomicU64,
    state: Mutex<Lanes>,
}

#[derive(Default)]
struct Lanes {
    /// Turns out now: lease id → tick it was granted at.
    running: HashMap<u64, u64>,
    next_lease: u64,
    /// Invocations waiting for their first turn: served before the
    /// round-robin, so a short request that happened to see a tick waits
    /// for one slice at most, not for every long computation's turn.
    first: VecDeque<oneshot::Sender<Turn>>,
    /// Functions with waiting invocations, in round-robin order.
    order: VecDeque<Arc<str>>,
    waiting: HashMap<Arc<str>, Waiting>,
}

struct Waiting {
    weight: u32,
    /// Turns the function at the head of `order` has left this round.
    turns: u32,
    queue: VecDeque<oneshot::Sender<Turn>>,
}

/// The right to run heavy guest code until the next tick; dropping it hands
/// the turn on.
pub struct Turn {
    /// `None` once taken back without handing on.
    lanes: Option<Arc<CpuLanes>>,
    lease: u64,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(lanes) = self.lanes.take() {
            lanes.release(self.lease);
        }
    }
}

impl Lanes {
    fn lease(&mut self, now: u64) -> u64 {
        self.next_lease += 1;
        self.running.insert(self.next_lease, now);
        self.next_lease
    }

    /// The next waiting invocation: first turns first, then round-robin
    /// between functions.
    fn next_waiter(&mut self) -> Option<oneshot::Sender<Turn>> {
        if let Some(tx) = self.first.pop_front() {
            return Some(tx);
        }
        loop {
            let function = self.order.front().cloned()?;
            let Some(waiting) = self.waiting.get_mut(&function) else {
                self.order.pop_front();
                continue;
            };
            let Some(tx) = waiting.queue.pop_front() else {
                self.waiting.remove(&function);
                self.order.pop_front();
                continue;
            };
            waiting.turns -= 1;
            if waiting.queue.is_empty() {
                self.waiting.remove(&function);
                self.order.pop_front();
            } else if waiting.turns == 0 {
                waiting.turns = waiting.weight;
                self.order.rotate_left(1);
            }
            return Some(tx);
        }
    }
}

impl CpuLanes {
    /// Lanes for `cores` cores: one fewer heavy slot, at least one.
    pub fn new(cores: usize) -> Arc<Self> {
        Arc::new(CpuLanes {
            slots: cores.saturating_sub(1).max(1),
            ticks: AtomicU64::new(0),
            state: Mutex::default(),
        })
    }

    fn now(&self) -> u64 {
        self.ticks.load(Ordering::Acquire)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lanes> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a turn for one of `function`'s invocations; `first` when
    /// it has not had one yet.
    pub async fn turn(self: &Arc<Self>, function: &Arc<str>, weight: u32, first: bool) -> Turn {
        let rx = {
            let mut lanes = self.lock();
            if lanes.running.len() < self.slots && lanes.order.is_empty() && lanes.first.is_empty()
            {
                let lease = lanes.lease(self.now());
                return Turn {
                    lanes: Some(self.clone()),
                    lease,
                };
            }
            let (tx, rx) = oneshot::channel();
            if first {
                lanes.first.push_back(tx);
                rx
            } else {
                let lanes = &mut *lanes;
                let waiting = lanes.waiting.entry(function.clone()).or_insert_with(|| {
                    lanes.order.push_back(function.clone());
                    Waiting {
                        weight: weight.max(1),
                        turns: weight.max(1),
                        queue: VecDeque::new(),
                    }
                });
                waiting.queue.push_back(tx);
                rx
            }
        };
        self.wait(rx).await
    }

    async fn wait(self: &Arc<Self>, rx: oneshot::Receiver<Turn>) -> Turn {
        match rx.await {
            Ok(turn) => turn,
            // The lanes never drop a waiter without a turn; if they did,
            // running without one is the safe side.
            Err(_) => {
                let lease = self.lock().lease(self.now());
                Turn {
                    lanes: Some(self.clone()),
                    lease,
                }
            }
        }
    }

    fn release(self: &Arc<Self>, lease: u64) {
        let mut lanes = self.lock();
        // A lease taken back by `expire` was handed on then.
        if lanes.running.remove(&lease).is_some() {
            self.grant(&mut lanes);
        }
    }

    /// Takes back turns held past their lease, and hands them on.
    fn expire(self: &Arc<Self>, now: u64) {
        let mut lanes = self.lock();
        let before = lanes.running.len();
        lanes
            .running
            .retain(|_, granted| now.saturating_sub(*granted) <= LEASE);
        if lanes.running.len() < before {
            self.grant(&mut lanes);
        }
    }

    /// Gives free slots to waiting invocations.
    fn grant(self: &Arc<Self>, lanes: &mut Lanes) {
        while lanes.running.len() < self.slots {
            let Some(tx) = lanes.next_waiter() else {
                return;
            };
            let lease = lanes.lease(self.now());
            let turn = Turn {
                lanes: Some(self.clone()),
                lease,
            };
            if let Err(mut turn) = tx.send(turn) {
                // The waiter went away (its instance was dropped): take the
                // lease back here, not from `Drop` (this lock is held).
                lanes.running.remove(&turn.lease);
                turn.lanes = None;
            }
        }
    }
}

/// One instance's CPU account and its place in the lanes.
pub struct CpuMeter {
    function: Arc<str>,
    weight: u32,
    /// `cpu_time` in ticks (rounded up); `None` for no limit.
    limit: Option<u32>,
    /// Ticks charged since the current work started.
    ticks: u32,
    /// The tick of the last callback (or of the start of the work): a
    /// callback one tick later means the guest executed across that tick;
    /// one many ticks later means it re-entered after waiting.
    last: u64,
    lanes: Arc<CpuLanes>,
    /// The turn held until the next tick (heavy invocations only).
    turn: Arc<Mutex<Option<Turn>>>,
    /// Turns waited for since the current work started.
    turns: u32,
    tag: Arc<InstanceTag>,
}

impl CpuMeter {
    pub fn new(
        lanes: Arc<CpuLanes>,
        tag: Arc<InstanceTag>,
        cpu_time: Option<Duration>,
        weight: u32,
    ) -> Self {
        let limit = cpu_time.map(|t| {
            let ticks = t.as_nanos().div_ceil(EPOCH_TICK.as_nanos());
            u32::try_from(ticks).unwrap_or(u32::MAX).max(1)
        });
        CpuMeter {
            function: tag.function.clone(),
            weight,
            limit,
            ticks: 0,
            last: lanes.now(),
            turns: 0,
            lanes,
            turn: Arc::default(),
            tag,
        }
    }

    /// New work starts on the instance: its charge starts from zero, and a
    /// turn the previous work still held is handed on.
    pub fn reset(&mut self) {
        drop(self.take_turn());
        self.ticks = 0;
        self.turns = 0;
        self.last = self.lanes.now();
    }

    /// CPU time charged since the current work started.
    pub fn used(&self) -> Duration {
        EPOCH_TICK * self.ticks
    }

    /// CPU time charged over the instance's life.
    pub fn total(&self) -> Duration {
        crate::sandbox::tag::ticks_to_time(self.tag.cpu_ticks())
    }

    /// The epoch callback: charge a tick, stop the guest past its limit,
    /// and make a heavy guest wait for its next turn.
    pub fn on_tick(&mut self) -> wasmtime::Result<UpdateDeadline> {
        let now = self.lanes.now();
        let executing = now <= self.last + 1;
        self.last = now;
        if executing {
            self.ticks = self.ticks.saturating_add(1);
            self.tag.charge_tick();
        }
        if self.limit.is_some_and(|limit| self.ticks > limit) {
            self.tag.set_cpu_exceeded();
            return Err(CpuLimitReached.into());
        }
        if self.ticks < HEAVY_AFTER {
            return Ok(UpdateDeadline::Yield(1));
        }
        // Give the core back before queueing for the next turn.
        drop(self.take_turn());
        let first = self.turns == 0;
        self.turns = self.turns.saturating_add(1);
        let (lanes, function, weight, slot) = (
            self.lanes.clone(),
            self.function.clone(),
            self.weight,
            self.turn.clone(),
        );
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(async move {
                // Always give the thread back once, even when a turn is free
                // at once: this is where timeouts outside the store fire.
                tokio::task::yield_now().await;
                let turn = lanes.turn(&function, weight, first).await;
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(turn);
            }),
        ))
    }

    fn take_turn(&self) -> Option<Turn> {
        self.turn.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Arc<str> {
        s.into()
    }

    /// Queues `waiters` (function, weight, first turn?) one after the other
    /// behind a held turn, releases it, and returns the order they ran in.
    async fn order_of_turns(
        lanes: &Arc<CpuLanes>,
        waiters: &[(&'static str, u32, bool)],
    ) -> Vec<&'static str> {
        let held = lanes.turn(&name("first"), 1, false).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for &(who, weight, first) in waiters {
            let (lanes, order) = (lanes.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let turn = lanes.turn(&name(who), weight, first).await;
                order.lock().unwrap().push(who);
                drop(turn);
            }));
            // Each is queued before the next arrives.
            tokio::task::yield_now().await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        order.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn turns_alternate_between_functions_not_invocations() {
        let lanes = CpuLanes::new(2);
        assert_eq!(lanes.slots, 1);
        let waiters = [
            ("busy", 1, false),
            ("busy", 1, false),
            ("busy", 1, false),
            ("busy", 1, false),
            ("other", 1, false),
        ];
        assert_eq!(
            order_of_turns(&lanes, &waiters).await,
            ["busy", "other", "busy", "busy", "busy"]
        );
        assert!(lanes.lock().running.is_empty());
    }

    #[tokio::test]
    async fn weight_gives_consecutive_turns() {
        let lanes = CpuLanes::new(1);
        let waiters = [
            ("heavy", 2, false),
            ("heavy", 2, false),
            ("light", 1, false),
            ("heavy", 2, false),
        ];
        assert_eq!(
            order_of_turns(&lanes, &waiters).await,
            ["heavy", "heavy", "light", "heavy"]
        );
    }

    #[tokio::test]
    async fn a_first_turn_goes_before_long_computations() {
        let lanes = CpuLanes::new(1);
        let waiters = [("long", 1, false), ("long", 1, false), ("short", 1, true)];
        assert_eq!(
            order_of_turns(&lanes, &waiters).await,
            ["short", "long", "long"]
        );
    }

    #[tokio::test]
    async fn abandoned_waiters_do_not_lose_the_slot() {
        let lanes = CpuLanes::new(1);
        let held = lanes.turn(&name("a"), 1, false).await;
        let gone = {
            let lanes = lanes.clone();
            tokio::spawn(async move { lanes.turn(&name("b"), 1, false).await })
        };
        tokio::task::yield_now().await;
        gone.abort();
        let _ = gone.await;
        drop(held);
        // The slot is free again: a new turn is granted at once.
        let again =
            tokio::time::timeout(Duration::from_secs(5), lanes.turn(&name("c"), 1, false)).await;
        assert!(again.is_ok());
    }

    #[tokio::test]
    async fn a_turn_kept_past_its_lease_is_taken_back() {
        let lanes = CpuLanes::new(1);
        // Held by a guest that stopped executing without handing it back.
        let idle = lanes.turn(&name("idle"), 1, false).await;
        let waiter = {
            let lanes = lanes.clone();
            tokio::spawn(async move { lanes.turn(&name("busy"), 1, false).await })
        };
        tokio::task::yield_now().await;
        for _ in 0..=LEASE {
            tick(&lanes);
        }
        let turn = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter got the slot back")
            .unwrap();
        // The late hand-back of the expired turn frees nothing twice.
        drop(idle);
        assert_eq!(lanes.lock().running.len(), 1);
        drop(turn);
        assert!(lanes.lock().running.is_empty());
    }

    #[test]
    fn waiting_across_ticks_is_not_charged() {
        let lanes = CpuLanes::new(2);
        let tag = InstanceTag::new("f".into(), crate::telemetry::ids::InstanceId(2), false);
        let mut meter = CpuMeter::new(lanes.clone(), tag, None, 1);
        // Re-entering Wasm after waiting five ticks.
        for _ in 0..5 {
            tick(&lanes);
        }
        meter.on_tick().unwrap();
        assert_eq!(meter.used(), Duration::ZERO);
        // Executing across the next tick.
        tick(&lanes);
        meter.on_tick().unwrap();
        assert_eq!(meter.used(), EPOCH_TICK);
    }

    #[test]
    fn limits_round_up_to_ticks_and_trap_past_them() {
        let lanes = CpuLanes::new(2);
        let tag = InstanceTag::new("f".into(), crate::telemetry::ids::InstanceId(1), false);
        let mut meter = CpuMeter::new(lanes, tag.clone(), Some(Duration::from_millis(15)), 1);
        assert!(meter.on_tick().is_ok());
        // Two ticks fit in 15 ms rounded up; the third is over.
        assert!(meter.on_tick().is_ok());
        assert!(meter.on_tick().is_err());
        assert!(tag.cpu_exceeded());
        assert_eq!(meter.used(), Duration::from_millis(30));
        meter.reset();
        assert_eq!(meter.used(), Duration::ZERO);
        assert_eq!(meter.total(), Duration::from_millis(30));
    }
}
