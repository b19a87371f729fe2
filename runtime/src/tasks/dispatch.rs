//! A queue's dispatcher: delivers its tasks when they fall due, at most
//! `max_concurrent` at once and no faster than its token bucket allows,
//! retrying failures with Cloud Tasks' backoff and slowing the whole queue
//! down when the function answers 429 or 503.

use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::{HeaderName, HeaderValue, Method};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Retry;
use crate::deploy::registry::Registry;
use crate::events::deliver::internal_uri;
use crate::events::{idle, now_ms};
use crate::invoke::call::{Deadline, Outcome, call};
use crate::invoke::{self, BodyLimits};
use crate::jobs::{Jobs, JobsError, RunRequest};
use crate::tasks::store::{Pending, Record, Seq, TaskStore};
use crate::tasks::task::rfc3339;
use crate::telemetry::ids::Trigger;

/// Told the final status of a run, and its failure if it failed.
pub type OnSettled = Box<dyn Fn(u16, Option<String>) + Send + Sync>;

/// How a queue dispatches.
pub struct Lane {
    /// The queue's name (`schedule:NAME` for a schedule's own queue).
    pub queue: String,
    pub function: String,
    pub trigger: Trigger,
    /// `(per second, burst)`; `None` = no limit.
    pub rate: Option<(f64, u32)>,
    pub max_concurrent: usize,
    pub retry: Retry,
    /// The time limit of one attempt, and the setting it comes from;
    /// `None` = the function's `timeout`.
    pub deadline: Option<(Duration, &'static str)>,
    /// Told how each run ended (schedules record their last result).
    pub on_settled: Option<OnSettled>,
    /// Instead of a request to `function`: start an execution of this job
    /// (a schedule that runs a job).
    pub job: Option<(Arc<Jobs>, String)>,
}

/// Counts since the server started.
#[derive(Default, Serialize)]
pub struct Counters {
    pub dispatched: AtomicU64,
    pub completed: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
}

#[derive(Default)]
struct State {
    tasks: HashMap<Seq, Pending>,
    delayed: BTreeSet<(u64, Seq)>,
    in_flight: usize,
    paused: bool,
    /// No dispatch before this (back-pressure from the function).
    cooldown_until: u64,
}

pub struct Dispatcher {
    pub lane: Lane,
    pub counters: Counters,
    state: Mutex<State>,
    limiter: Option<DefaultDirectRateLimiter>,
    wake: Notify,
    stop: CancellationToken,
    store: TaskStore,
    registry: Arc<Registry>,
    bodies: Arc<BodyLimits>,
}

/// What the dispatcher loop does next.
enum Next {
    Start(Pending),
    Wait(Option<u64>),
}

impl Dispatcher {
    pub fn new(
        lane: Lane,
        store: TaskStore,
        registry: Arc<Registry>,
        bodies: Arc<BodyLimits>,
    ) -> Arc<Self> {
        let limiter = lane.rate.and_then(|(rate, burst)| {
            let period = Duration::from_secs_f64(1.0 / rate);
            let quota = Quota::with_period(period)?.allow_burst(NonZeroU32::new(burst)?);
            Some(RateLimiter::direct(quota))
        });
        Arc::new(Dispatcher {
            lane,
            counters: Counters::default(),
            state: Mutex::default(),
            limiter,
            wake: Notify::new(),
            stop: CancellationToken::new(),
            store,
            registry,
            bodies,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A task to deliver at its `due_ms`.
    pub fn add(&self, task: Pending) {
        let mut state = self.state();
        state.delayed.insert((task.due_ms, task.seq));
        state.tasks.insert(task.seq, task);
        drop(state);
        self.wake.notify_one();
    }

    /// Forgets a deleted task (one in flight finishes).
    pub fn remove(&self, seq: Seq) {
        let mut state = self.state();
        if let Some(task) = state.tasks.remove(&seq) {
            state.delayed.remove(&(task.due_ms, seq));
        }
    }

    /// Forgets every task not in flight.
    pub fn clear(&self) {
        let mut state = self.state();
        let waiting: Vec<(u64, Seq)> = std::mem::take(&mut state.delayed).into_iter().collect();
        for (_, seq) in waiting {
            state.tasks.remove(&seq);
        }
    }

    pub fn set_paused(&self, paused: bool) {
        self.state().paused = paused;
        self.wake.notify_one();
    }

    pub fn paused(&self) -> bool {
        self.state().paused
    }

    /// `(waiting, in flight)`.
    pub fn backlog(&self) -> (usize, usize) {
        let state = self.state();
        (state.delayed.len(), state.in_flight)
    }

    /// Whether task `seq` is being delivered now.
    pub fn in_flight(&self, seq: Seq) -> bool {
        let state = self.state();
        state
            .tasks
            .get(&seq)
            .is_some_and(|t| !state.delayed.contains(&(t.due_ms, seq)))
    }

    /// Whether a task is waiting or in flight.
    pub fn busy(&self) -> bool {
        let state = self.state();
        !state.tasks.is_empty()
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Whether the task is still stored (not deleted while it waited).
    async fn store_has(&self, task: &Pending) -> bool {
        self.store.load(task.seq).await.ok().flatten().is_some()
    }

    fn next(&self, now: u64) -> Next {
        let mut state = self.state();
        if state.paused {
            return Next::Wait(None);
        }
        if state.cooldown_until > now {
            return Next::Wait(Some(state.cooldown_until));
        }
        let due = state.delayed.first().map(|&(due, _)| due);
        match due {
            Some(due) if due <= now && state.in_flight < self.lane.max_concurrent => {
                let Some((_, seq)) = state.delayed.pop_first() else {
                    return Next::Wait(None);
                };
                state.in_flight += 1;
                match state.tasks.get(&seq) {
                    Some(task) => Next::Start(task.clone()),
                    None => {
                        state.in_flight -= 1;
                        Next::Wait(Some(now))
                    }
                }
            }
            // At max_concurrent: a finishing attempt wakes the loop.
            Some(due) if due <= now => Next::Wait(None),
            other => Next::Wait(other),
        }
    }

    /// Starts deliveries as they fall due and the bucket and the
    /// concurrency limit allow, until stopped.
    pub async fn run(self: Arc<Self>) {
        loop {
            let now = now_ms();
            match self.next(now) {
                Next::Start(task) => {
                    if let Some(limiter) = &self.limiter {
                        tokio::select! {
                            _ = self.stop.cancelled() => return,
                            _ = limiter.until_ready() => {}
                        }
                    }
                    tokio::spawn(self.clone().attempt(task));
                }
                Next::Wait(until) => {
                    if !idle(&self.stop, &self.wake, now, until).await {
                        return;
                    }
                }
            }
        }
    }

    async fn attempt(self: Arc<Self>, task: Pending) {
        let settled = self.try_once(&task).await;
        let mut state = self.state();
        state.in_flight = state.in_flight.saturating_sub(1);
        match (settled, state.tasks.get_mut(&task.seq)) {
            (Some(due_ms), Some(waiting)) => {
                waiting.due_ms = due_ms;
                state.delayed.insert((due_ms, task.seq));
            }
            _ => {
                state.tasks.remove(&task.seq);
            }
        }
        drop(state);
        self.wake.notify_one();
    }

    /// One attempt; the next due time when the task stays.
    /// Delivers `task` to the lane's function as an HTTP request.
    async fn request(
        &self,
        task: &Pending,
        attempt: u32,
        first_attempt_ms: u64,
    ) -> Option<(u16, Outcome)> {
        let lane = &self.lane;
        let (request, body) = self.store.load(task.seq).await.ok().flatten()?;
        let live = self.registry.live(&lane.function)?;
        let mut http = http::Request::new(invoke::full(body));
        *http.method_mut() = Method::from_bytes(request.method.as_bytes()).unwrap_or(Method::POST);
        *http.uri_mut() =
            internal_uri(request.path.as_deref().unwrap_or(live.spec.delivery_path()));
        let headers = http.headers_mut();
        for (name, value) in &request.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.append(name, value);
            }
        }
        let wisp_headers = [
            ("x-wisp-queue", lane.queue.clone()),
            ("x-wisp-task", task.name.clone()),
            ("x-wisp-task-attempt", attempt.to_string()),
            ("x-wisp-task-eta", rfc3339(task.due_ms)),
            ("x-wisp-task-first-attempt", rfc3339(first_attempt_ms)),
        ];
        for (name, value) in wisp_headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        let (limit, setting) = lane.deadline.unwrap_or((live.spec.timeout.0, "timeout"));
        let what = format!("task {}/{} attempt {attempt}", lane.queue, task.name);
        Some(
            call(
                &live,
                &self.bodies,
                lane.trigger,
                http,
                Deadline { limit, setting },
                &what,
            )
            .await,
        )
    }

    /// Starts an execution of the lane's job (a schedule that runs a job).
    async fn start_job(&self, jobs: &Arc<Jobs>, job: &str) -> (u16, Outcome) {
        match jobs.run(job, RunRequest::default()).await {
            Ok(execution) => {
                tracing::info!(queue = %self.lane.queue, %job, %execution, "started a job execution");
                (201, Outcome::Done)
            }
            Err(JobsError::Store(e)) => (503, Outcome::BackPressure(format!("{e:#}"))),
            Err(e) => (400, Outcome::Failed(e.to_string())),
        }
    }

    async fn try_once(&self, task: &Pending) -> Option<u64> {
        let lane = &self.lane;
        let now = now_ms();
        // From the end of the attempt, so attempts are at least the backoff
        // apart whatever each one took.
        let later =
            |attempts: u32| now_ms() + lane.retry.backoff(attempts.max(1)).as_millis() as u64;
        let attempt = task.attempts + 1;
        let first_attempt_ms = task.first_attempt_ms.unwrap_or(now);
        let attempted = match &lane.job {
            Some((jobs, job)) => Some(self.start_job(jobs, job).await),
            None => self.request(task, attempt, first_attempt_ms).await,
        };
        // Gone (deleted meanwhile) or its function not deployed: later.
        let Some((status, outcome)) = attempted else {
            return self.store_has(task).await.then(|| later(task.attempts));
        };
        self.counters.dispatched.fetch_add(1, Relaxed);
        let report = |error: Option<String>| {
            if let Some(on_settled) = &lane.on_settled {
                on_settled(status, error);
            }
        };
        match outcome {
            Outcome::Done => {
                self.counters.completed.fetch_add(1, Relaxed);
                self.store.record(task.seq, Record::Done);
                report(None);
                None
            }
            Outcome::BackPressure(reason) => {
                // Not the task's failure: the whole queue waits.
                let due = later(task.attempts);
                self.state().cooldown_until = due;
                tracing::info!(queue = %lane.queue, "slowing down: {reason}");
                Some(due)
            }
            Outcome::Failed(reason) if lane.retry.exhausted(attempt) => {
                self.counters.failed.fetch_add(1, Relaxed);
                tracing::warn!(
                    queue = %lane.queue, task = %task.name,
                    "task failed after {attempt} attempts: {reason}"
                );
                self.store.record(
                    task.seq,
                    Record::Failed {
                        attempts: attempt,
                        first_attempt_ms,
                        status,
                        error: reason.clone(),
                    },
                );
                report(Some(reason));
                None
            }
            Outcome::Failed(reason) => {
                self.counters.retried.fetch_add(1, Relaxed);
                let due_ms = later(attempt);
                self.store.record(
                    task.seq,
                    Record::Retry {
                        attempts: attempt,
                        due_ms,
                        first_attempt_ms,
                        status,
                        error: reason,
                    },
                );
                if let Some(t) = self.state().tasks.get_mut(&task.seq) {
                    t.attempts = attempt;
                    t.first_attempt_ms = Some(first_attempt_ms);
                }
                Some(due_ms)
            }
        }
    }
}
