//! What the load generator reads back from Wisp: event counters from
//! `/metrics` and a queue's counters from `/v1/queues`.

/// What the benchmark reads from `GET /metrics`.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// `None` until the subscription exists.
    pub acked: Option<u64>,
    pub delivered: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub dropped: u64,
    pub published: u64,
    pub commits: u64,
}

impl Metrics {
    pub fn parse(text: &str, topic: &str, function: &str) -> Metrics {
        let labels = format!("{{topic=\"{topic}\",function=\"{function}\"}} ");
        let per_sub = |name: &str| -> Option<u64> {
            let prefix = format!("{name}{labels}");
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .and_then(|v| v.trim().parse().ok())
        };
        let published = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "wisp_events_published_total{{topic=\"{topic}\"}} "
                ))
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let commits = text
            .lines()
            .find_map(|l| l.strip_prefix("wisp_event_store_commits_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        Metrics {
            acked: per_sub("wisp_events_acked_total"),
            delivered: per_sub("wisp_events_delivered_total").unwrap_or(0),
            retried: per_sub("wisp_events_retried_total").unwrap_or(0),
            dead_lettered: per_sub("wisp_events_dead_lettered_total").unwrap_or(0),
            dropped: per_sub("wisp_events_dropped_total").unwrap_or(0),
            published,
            commits,
        }
    }

    pub fn acked(&self) -> u64 {
        self.acked.unwrap_or(0)
    }
}

/// What the benchmark reads from a queue in `GET /v1/queues`.
#[derive(Clone, Debug, Default)]
pub struct QueueCounters {
    /// False until the queue shows.
    pub listed: bool,
    pub dispatched: u64,
    pub completed: u64,
    pub retried: u64,
    pub failed: u64,
    pub waiting: u64,
    pub in_flight: u64,
}

impl QueueCounters {
    pub fn of(queue: &serde_json::Value) -> QueueCounters {
        let n = |key: &str| queue[key].as_u64().unwrap_or(0);
        QueueCounters {
            listed: true,
            dispatched: n("dispatched"),
            completed: n("completed"),
            retried: n("retried"),
            failed: n("failed"),
            waiting: n("waiting"),
            in_flight: n("in_flight"),
        }
    }
}
