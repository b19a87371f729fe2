//! The events counters, read at every scrape: per topic, per subscription
//! (topic and function), and the store's commits.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};

use crate::events::{Events, SubscriptionStats};
use crate::telemetry::metrics::{Kind, encode_series, encode_value};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabel {
    topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubscriptionLabels {
    topic: String,
    function: String,
}

/// A series per subscription: name, help, kind, and how to read it.
type Series = (
    &'static str,
    &'static str,
    Kind,
    fn(&SubscriptionStats) -> u64,
);

const PER_SUBSCRIPTION: [Series; 7] = [
    (
        "events_delivered",
        "Delivery attempts started",
        Kind::Counter,
        |s| s.counters.delivered,
    ),
    (
        "events_acked",
        "Events the function acknowledged",
        Kind::Counter,
        |s| s.counters.acked,
    ),
    (
        "events_retried",
        "Failed attempts to be tried again",
        Kind::Counter,
        |s| s.counters.retried,
    ),
    (
        "events_dead_lettered",
        "Events moved to the dead-letter topic",
        Kind::Counter,
        |s| s.counters.dead_lettered,
    ),
    (
        "events_dropped",
        "Events given up with no dead-letter topic, or past retention",
        Kind::Counter,
        |s| s.counters.dropped,
    ),
    (
        "events_backlog",
        "Events not yet acknowledged",
        Kind::Gauge,
        |s| s.backlog as u64,
    ),
    (
        "events_in_flight",
        "Deliveries in progress",
        Kind::Gauge,
        |s| s.in_flight as u64,
    ),
];

/// Registered with the process's metrics once the events machinery exists.
pub struct EventsCollector(pub Arc<Events>);

impl fmt::Debug for EventsCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventsCollector").finish_non_exhaustive()
    }
}

impl Collector for EventsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let stats = self.0.stats();
        encode_series(
            &mut encoder,
            "events_published",
            "Events published since the server started",
            Kind::Counter,
            stats.iter().map(|t| {
                let topic = t.name.clone();
                (TopicLabel { topic }, t.published)
            }),
        )?;
        for (name, help, kind, get) in PER_SUBSCRIPTION {
            let rows = stats.iter().flat_map(|t| {
                t.subscriptions.iter().map(|s| {
                    let labels = SubscriptionLabels {
                        topic: t.name.clone(),
                        function: s.function.clone(),
                    };
                    (labels, get(s))
                })
            });
            encode_series(&mut encoder, name, help, kind, rows)?;
        }
        encode_value(
            &mut encoder,
            "event_store_commits",
            "Transactions the event store committed (one fsync of its log each)",
            Kind::Counter,
            self.0.core.store.commits(),
        )
    }
}
