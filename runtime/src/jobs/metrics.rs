//! The jobs' counters, read at every scrape, per job. Each task attempt is
//! also an invocation of trigger `job`, counted (and metered) in the
//! per-function series under the job's name.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};

use crate::jobs::Jobs;
use crate::telemetry::metrics::{Kind, encode_series};

/// One job's counters, since the process started.
#[derive(Debug, Default)]
pub struct Counters {
    pub executions_started: AtomicU64,
    pub executions_succeeded: AtomicU64,
    pub executions_failed: AtomicU64,
    pub executions_cancelled: AtomicU64,
    pub attempts: AtomicU64,
    pub tasks_succeeded: AtomicU64,
    pub tasks_retried: AtomicU64,
    pub tasks_failed: AtomicU64,
}

impl Counters {
    /// An execution ended in `state` (`succeeded`, `failed`, `cancelled`).
    pub fn execution_ended(&self, state: &str) {
        let counter = match state {
            "succeeded" => &self.executions_succeeded,
            "cancelled" => &self.executions_cancelled,
            _ => &self.executions_failed,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// A task attempt ended leaving the task `state` (`succeeded`,
    /// `pending` for a retry, `failed`).
    pub fn attempt_ended(&self, state: &str) {
        let counter = match state {
            "succeeded" => &self.tasks_succeeded,
            "pending" => &self.tasks_retried,
            _ => &self.tasks_failed,
        };
        counter.fetch_add(1, Relaxed);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabel {
    job: String,
}

/// A series per job: name, help, and which counter.
type Series = (&'static str, &'static str, fn(&Counters) -> &AtomicU64);

const PER_JOB: [Series; 8] = [
    (
        "job_executions_started",
        "Executions started (resumed ones not counted again)",
        |c| &c.executions_started,
    ),
    (
        "job_executions_succeeded",
        "Executions whose every task succeeded",
        |c| &c.executions_succeeded,
    ),
    (
        "job_executions_failed",
        "Executions with a task that failed its last attempt",
        |c| &c.executions_failed,
    ),
    ("job_executions_cancelled", "Executions cancelled", |c| {
        &c.executions_cancelled
    }),
    ("job_task_attempts", "Task attempts started", |c| {
        &c.attempts
    }),
    ("job_tasks_succeeded", "Tasks that exited 0", |c| {
        &c.tasks_succeeded
    }),
    (
        "job_tasks_retried",
        "Failed attempts to be tried again",
        |c| &c.tasks_retried,
    ),
    (
        "job_tasks_failed",
        "Tasks given up after their last attempt",
        |c| &c.tasks_failed,
    ),
];

/// Registered with the process's metrics once the jobs are loaded.
pub struct JobsCollector(pub Arc<Jobs>);

impl fmt::Debug for JobsCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobsCollector").finish_non_exhaustive()
    }
}

impl Collector for JobsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let mut jobs: Vec<_> = self.0.jobs.values().collect();
        jobs.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        for (name, help, get) in PER_JOB {
            let rows = jobs.iter().map(|j| {
                let labels = JobLabel {
                    job: j.spec.name.clone(),
                };
                (labels, get(&j.counters).load(Relaxed))
            });
            encode_series(&mut encoder, name, help, Kind::Counter, rows)?;
        }
        Ok(())
    }
}
