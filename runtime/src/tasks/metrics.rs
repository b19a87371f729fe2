//! The task queues' counters, read at every scrape, per queue.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};

use crate::tasks::Tasks;
use crate::tasks::dispatch::Dispatcher;
use crate::telemetry::metrics::{Kind, encode_series};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
    function: String,
}

fn count(c: &AtomicU64) -> u64 {
    c.load(Relaxed)
}

/// A series per queue: name, help, kind, and how to read it.
type Series = (&'static str, &'static str, Kind, fn(&Dispatcher) -> u64);

const PER_QUEUE: [Series; 6] = [
    (
        "tasks_dispatched",
        "Task attempts started",
        Kind::Counter,
        |d| count(&d.counters.dispatched),
    ),
    (
        "tasks_completed",
        "Tasks the function completed (2xx)",
        Kind::Counter,
        |d| count(&d.counters.completed),
    ),
    (
        "tasks_retried",
        "Failed attempts to be tried again",
        Kind::Counter,
        |d| count(&d.counters.retried),
    ),
    (
        "tasks_failed",
        "Tasks given up after their last attempt",
        Kind::Counter,
        |d| count(&d.counters.failed),
    ),
    (
        "tasks_waiting",
        "Tasks not yet dispatched",
        Kind::Gauge,
        |d| d.backlog().0 as u64,
    ),
    (
        "tasks_in_flight",
        "Task attempts in progress",
        Kind::Gauge,
        |d| d.backlog().1 as u64,
    ),
];

/// Registered with the process's metrics once the queues exist.
pub struct TasksCollector(pub Arc<Tasks>);

impl fmt::Debug for TasksCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TasksCollector").finish_non_exhaustive()
    }
}

impl Collector for TasksCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let mut queues: Vec<_> = self.0.queues.values().collect();
        queues.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        for (name, help, kind, get) in PER_QUEUE {
            let rows = queues.iter().map(|q| {
                let labels = QueueLabels {
                    queue: q.spec.name.clone(),
                    function: q.spec.function.clone(),
                };
                (labels, get(&q.dispatcher))
            });
            encode_series(&mut encoder, name, help, kind, rows)?;
        }
        Ok(())
    }
}
