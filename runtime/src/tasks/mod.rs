//! Task queues (Cloud Tasks, built in) and schedules (Cloud Scheduler,
//! built in), on one durable [`store`].
//!
//! A task is an HTTP request for a queue's function, stored before the
//! producer hears 201, delivered by the queue's [`dispatch`]er at a bounded
//! rate and concurrency, retried until it succeeds or runs out of attempts.
//! A [`schedule`] fires on its cron in its time zone; each firing is stored
//! as a task of the schedule's own queue, so runs, retries and restarts work
//! the same way.

pub mod dispatch;
pub mod internal;
pub mod metrics;
pub mod schedule;
pub mod store;
pub mod task;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{CronSchedule, QueueSpec, ScheduleSpec};
use crate::deploy::registry::Registry;
use crate::events::now_ms;
use crate::invoke::BodyLimits;
use crate::jobs::Jobs;
use crate::tasks::dispatch::{Dispatcher, Lane};
use crate::tasks::schedule::{Schedule, ScheduleInfo};
use crate::tasks::store::{AddError, Listed, Pending, TaskStore};
use crate::tasks::task::NewTask;
use crate::telemetry::ids::Trigger;

/// How often dedup names and old failed tasks are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// The queue a schedule's firings go through; `:` keeps it apart from
/// user queues, whose names cannot contain one.
pub fn schedule_queue(schedule: &str) -> String {
    format!("schedule:{schedule}")
}

/// Why a task operation was refused.
#[derive(Debug)]
pub enum TasksError {
    NotFound(String),
    Invalid(String),
    /// The task name was used within the last hour.
    Taken(String),
    Store(anyhow::Error),
}

impl std::fmt::Display for TasksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TasksError::NotFound(what) => f.write_str(what),
            TasksError::Invalid(e) => f.write_str(e),
            TasksError::Taken(name) => write!(
                f,
                "a task named `{name}` was added to this queue within the last hour; a retried add is safe to ignore"
            ),
            TasksError::Store(e) => write!(f, "{e:#}"),
        }
    }
}

/// A queue's settings, counters and backlog, as `wisp queues list` shows.
#[derive(Serialize)]
pub struct QueueStats {
    pub name: String,
    pub function: String,
    pub paused: bool,
    pub max_dispatches_per_second: f64,
    pub max_concurrent: u32,
    #[serde(flatten)]
    pub counters: serde_json::Value,
    pub waiting: usize,
    pub in_flight: usize,
}

struct Queue {
    spec: QueueSpec,
    dispatcher: Arc<Dispatcher>,
}

/// The task queues and schedules of one server.
pub struct Tasks {
    queues: HashMap<String, Queue>,
    schedules: HashMap<String, Arc<Schedule>>,
    store: TaskStore,
    stop: CancellationToken,
}

impl Tasks {
    /// Loads every queue's unfinished tasks from `store` (opened with
    /// `TaskStore::open` before, while the engine was being made).
    pub async fn open(
        store: TaskStore,
        queues: Vec<QueueSpec>,
        schedules: Vec<ScheduleSpec>,
        registry: Arc<Registry>,
        bodies: Arc<BodyLimits>,
        jobs: Arc<Jobs>,
    ) -> Result<Arc<Self>> {
        let dispatcher =
            |lane| Dispatcher::new(lane, store.clone(), registry.clone(), bodies.clone());
        let mut by_name = HashMap::new();
        for spec in queues {
            let lane = Lane {
                queue: spec.name.clone(),
                function: spec.function.clone(),
                trigger: Trigger::Task,
                rate: Some((spec.max_dispatches_per_second, spec.max_burst)),
                max_concurrent: spec.max_concurrent as usize,
                retry: spec.retry(),
                deadline: Some((spec.dispatch_deadline.0, "dispatch_deadline")),
                on_settled: None,
                job: None,
            };
            let queue = Queue {
                dispatcher: dispatcher(lane),
                spec,
            };
            queue
                .dispatcher
                .set_paused(store.paused(&queue.spec.name).await?);
            by_name.insert(queue.spec.name.clone(), queue);
        }
        let mut fired = HashMap::new();
        for spec in schedules {
            let cron = CronSchedule::parse(&spec.cron, &spec.time_zone).map_err(|(key, msg)| {
                anyhow::anyhow!("schedule `{}`: `{key}`: {msg}", spec.name)
            })?;
            let results = store.clone();
            let name = spec.name.clone();
            let lane = Lane {
                queue: schedule_queue(&spec.name),
                function: spec.function().to_string(),
                trigger: Trigger::Schedule,
                rate: None,
                max_concurrent: usize::MAX,
                retry: spec.retry(),
                deadline: spec.deadline.map(|d| (d.0, "deadline")),
                on_settled: Some(Box::new(move |status, error| {
                    results.schedule_result(&name, status, error);
                })),
                job: spec.job.clone().map(|job| (jobs.clone(), job)),
            };
            fired.insert(
                spec.name.clone(),
                Schedule::new(spec, cron, dispatcher(lane), store.clone()),
            );
        }
        let tasks = Tasks {
            queues: by_name,
            schedules: fired,
            store,
            stop: CancellationToken::new(),
        };
        for dispatcher in tasks.dispatchers() {
            for pending in tasks.store.pending(&dispatcher.lane.queue).await? {
                dispatcher.add(pending);
            }
        }
        Ok(Arc::new(tasks))
    }

    fn dispatchers(&self) -> impl Iterator<Item = &Arc<Dispatcher>> {
        self.queues
            .values()
            .map(|q| &q.dispatcher)
            .chain(self.schedules.values().map(|s| &s.dispatcher))
    }

    /// Starts dispatching and firing.
    pub fn start(self: &Arc<Self>) {
        for dispatcher in self.dispatchers() {
            tokio::spawn(dispatcher.clone().run());
        }
        for schedule in self.schedules.values() {
            tokio::spawn(schedule.clone().run());
        }
        let tasks = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = tasks.store.sweep().await {
                    tracing::warn!("task store: {e:#}");
                }
                tokio::select! {
                    _ = tasks.stop.cancelled() => return,
                    _ = tokio::time::sleep(SWEEP_INTERVAL) => {}
                }
            }
        });
    }

    /// Stops starting tasks and firings; what is in flight is delivered
    /// again after a restart unless it finishes first.
    pub async fn stop(&self) {
        self.stop.cancel();
        for dispatcher in self.dispatchers() {
            dispatcher.stop();
        }
        for schedule in self.schedules.values() {
            schedule.stop();
        }
        if let Err(e) = self.store.flush().await {
            tracing::warn!("task store: {e:#}");
        }
    }

    /// Refuses settings that name queues this server does not declare.
    pub fn check_spec(&self, spec: &crate::config::FunctionSpec) -> Result<(), String> {
        let queues: Vec<QueueSpec> = self.queues.values().map(|q| q.spec.clone()).collect();
        crate::config::check_queue_names(spec, &queues)
            .map_err(|(key, msg)| format!("`{key}`: {msg}"))
    }

    fn queue(&self, name: &str) -> Result<&Queue, TasksError> {
        self.queues.get(name).ok_or_else(|| {
            TasksError::NotFound(format!(
                "no queue `{name}`; queues are declared with [[queue]] tables in wisp.toml"
            ))
        })
    }

    fn schedule(&self, name: &str) -> Result<&Arc<Schedule>, TasksError> {
        self.schedules.get(name).ok_or_else(|| {
            TasksError::NotFound(format!(
                "no schedule `{name}`; schedules are declared with [[schedule]] tables in wisp.toml"
            ))
        })
    }

    /// Adds a task to `queue`; once this returns it is durable. Returns its
    /// name.
    pub async fn enqueue(&self, queue: &str, task: NewTask) -> Result<String, TasksError> {
        let q = self.queue(queue)?;
        let checked = task
            .check(q.spec.max_task_size.bytes() as usize)
            .map_err(TasksError::Invalid)?;
        let due_ms = checked.due_ms.unwrap_or(0).max(now_ms());
        let (seq, name) = self.store.add(queue, checked).await.map_err(|e| match e {
            AddError::Taken(name) => TasksError::Taken(name),
            AddError::Store(e) => TasksError::Store(e),
        })?;
        q.dispatcher.add(Pending {
            seq,
            name: name.clone(),
            due_ms,
            attempts: 0,
            first_attempt_ms: None,
        });
        Ok(name)
    }

    pub async fn list(&self, queue: &str, limit: usize) -> Result<Vec<Listed>, TasksError> {
        let q = self.queue(queue)?;
        let mut listed = self
            .store
            .list(queue, limit)
            .await
            .map_err(TasksError::Store)?;
        for task in &mut listed {
            if task.state != "failed" && q.dispatcher.in_flight(task.seq) {
                task.state = "in_flight";
            }
        }
        Ok(listed)
    }

    pub async fn delete(&self, queue: &str, name: &str) -> Result<(), TasksError> {
        let q = self.queue(queue)?;
        match self
            .store
            .delete(queue, name)
            .await
            .map_err(TasksError::Store)?
        {
            Some(seq) => {
                q.dispatcher.remove(seq);
                Ok(())
            }
            None => Err(TasksError::NotFound(format!(
                "no task `{name}` in queue `{queue}`"
            ))),
        }
    }

    pub async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), TasksError> {
        let q = self.queue(queue)?;
        self.store
            .set_paused(queue, paused)
            .await
            .map_err(TasksError::Store)?;
        q.dispatcher.set_paused(paused);
        Ok(())
    }

    /// Deletes every task of `queue`; returns how many.
    pub async fn purge(&self, queue: &str) -> Result<usize, TasksError> {
        let q = self.queue(queue)?;
        q.dispatcher.clear();
        self.store.purge(queue).await.map_err(TasksError::Store)
    }

    pub fn stats(&self) -> Vec<QueueStats> {
        let mut stats: Vec<QueueStats> = self
            .queues
            .values()
            .map(|q| {
                let (waiting, in_flight) = q.dispatcher.backlog();
                let c = &q.dispatcher.counters;
                QueueStats {
                    name: q.spec.name.clone(),
                    function: q.spec.function.clone(),
                    paused: q.dispatcher.paused(),
                    max_dispatches_per_second: q.spec.max_dispatches_per_second,
                    max_concurrent: q.spec.max_concurrent,
                    counters: serde_json::json!({
                        "dispatched": c.dispatched.load(Relaxed),
                        "completed": c.completed.load(Relaxed),
                        "retried": c.retried.load(Relaxed),
                        "failed": c.failed.load(Relaxed),
                    }),
                    waiting,
                    in_flight,
                }
            })
            .collect();
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        stats
    }

    pub async fn schedules(&self) -> Vec<ScheduleInfo> {
        let mut infos = Vec::new();
        for schedule in self.schedules.values() {
            infos.push(schedule.info().await);
        }
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        infos
    }

    /// Fires `name` now, whatever its cron and overlap say.
    pub async fn run_schedule(&self, name: &str) -> Result<(), TasksError> {
        self.schedule(name)?.fire(now_ms(), true).await;
        Ok(())
    }

    pub async fn pause_schedule(&self, name: &str, paused: bool) -> Result<(), TasksError> {
        self.schedule(name)?
            .set_paused(paused)
            .await
            .map_err(TasksError::Store)
    }
}
