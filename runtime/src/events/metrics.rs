//! The events counters in the Prometheus text format, appended to the admin
//! API's `/metrics`.

use std::fmt::Write;

use crate::events::{Events, SubscriptionStats};

/// A series per subscription: name, type, and how to read it.
type Series = (&'static str, &'static str, fn(&SubscriptionStats) -> u64);

impl Events {
    /// The events counters in the Prometheus text format: per topic and
    /// subscription, and the store's commits (one fsync of its log each).
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let stats = self.stats();
        let _ = writeln!(out, "# TYPE wisp_events_published_total counter");
        for t in &stats {
            let _ = writeln!(
                out,
                "wisp_events_published_total{{topic=\"{}\"}} {}",
                t.name, t.published
            );
        }
        let per_subscription: [Series; 7] = [
            ("wisp_events_delivered_total", "counter", |s| {
                s.counters.delivered
            }),
            ("wisp_events_acked_total", "counter", |s| s.counters.acked),
            ("wisp_events_retried_total", "counter", |s| {
                s.counters.retried
            }),
            ("wisp_events_dead_lettered_total", "counter", |s| {
                s.counters.dead_lettered
            }),
            ("wisp_events_dropped_total", "counter", |s| {
                s.counters.dropped
            }),
            ("wisp_events_backlog", "gauge", |s| s.backlog as u64),
            ("wisp_events_in_flight", "gauge", |s| s.in_flight as u64),
        ];
        for (name, kind, get) in per_subscription {
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for t in &stats {
                for s in &t.subscriptions {
                    let _ = writeln!(
                        out,
                        "{name}{{topic=\"{}\",function=\"{}\"}} {}",
                        t.name,
                        s.function,
                        get(s)
                    );
                }
            }
        }
        let _ = writeln!(out, "# TYPE wisp_event_store_commits_total counter");
        let _ = writeln!(out, "wisp_event_store_commits_total {}", self.commits());
        out
    }

    /// Transactions the store committed (one fsync of its log each).
    fn commits(&self) -> u64 {
        self.core.store.commits()
    }
}
