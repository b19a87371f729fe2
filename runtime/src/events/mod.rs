//! Event-driven functions: topics, CloudEvents published to them, and
//! delivery to subscribed functions at least once.
//!
//! A publish is acknowledged once the event is in the [`store`] (durable),
//! fanned out to one delivery per matching subscription. Each
//! subscription's [`dispatch`]er works through its deliveries ([`queue`]),
//! each attempt a binary-mode POST through the invocation core
//! ([`deliver`]); a 2xx settles it, anything else retries with backoff until
//! `max_attempts`, then the event moves to the dead-letter topic. After a
//! restart every unsettled delivery is resumed from the store.

pub mod cloudevent;
pub mod deliver;
pub mod dispatch;
pub mod metrics;
pub mod publish;
pub mod queue;
pub mod sqlite;
pub mod store;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{FunctionSpec, TopicSpec, TriggerSpec};
use crate::deploy::registry::{Registry, Status};
use crate::events::cloudevent::CloudEvent;
use crate::events::dispatch::{DEAD_LETTER_REASON, DELIVERY_ATTEMPT, ORIGIN_TOPIC, Subscription};
use crate::events::queue::Entry;
use crate::events::store::{Change, EventStore, NewEvent, Seq};
use crate::invoke::BodyLimits;

/// The CloudEvents extension that orders events of `ordered` subscriptions
/// (the spec's Partitioning extension).
pub const PARTITION_KEY: &str = "partitionkey";

/// How often kept events past their topic's retention are removed.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(600);

/// Kept events one replay moves at most.
const REPLAY_LIMIT: usize = 10_000;

/// Waits for a wake-up, or until `until_ms` (forever without one);
/// `false` once `stop` is cancelled. The idle wait of every dispatcher.
pub async fn idle(
    stop: &CancellationToken,
    wake: &tokio::sync::Notify,
    now_ms: u64,
    until_ms: Option<u64>,
) -> bool {
    let sleep = until_ms.map(|t| Duration::from_millis(t.saturating_sub(now_ms)));
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = wake.notified() => true,
        _ = async {
            match sleep {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        } => true,
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Why a publish or an inspection was refused.
#[derive(Debug)]
pub enum EventsError {
    UnknownTopic(String),
    Invalid(String),
    Store(anyhow::Error),
}

impl std::fmt::Display for EventsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventsError::UnknownTopic(t) => write!(
                f,
                "no topic `{t}`; topics are declared with [[topic]] tables in wisp.toml"
            ),
            EventsError::Invalid(e) => f.write_str(e),
            EventsError::Store(e) => write!(f, "{e:#}"),
        }
    }
}

struct Topic {
    spec: TopicSpec,
    published: AtomicU64,
}

/// What dispatchers share: the store, the functions, the topics, the
/// subscriptions.
pub struct Core {
    pub store: Arc<dyn EventStore>,
    pub registry: Arc<Registry>,
    pub bodies: Arc<BodyLimits>,
    topics: HashMap<String, Topic>,
    subscriptions: RwLock<HashMap<String, Arc<Subscription>>>,
}

impl Core {
    fn topic(&self, name: &str) -> Result<&Topic, EventsError> {
        self.topics
            .get(name)
            .ok_or_else(|| EventsError::UnknownTopic(name.to_string()))
    }

    /// Whether an event of `topic` published at `published_ms` is past the
    /// topic's retention.
    pub fn expired(&self, topic: &str, published_ms: u64) -> bool {
        self.topics.get(topic).is_some_and(|t| {
            now_ms().saturating_sub(published_ms) > t.spec.retention.0.as_millis() as u64
        })
    }

    fn subscribers(&self, topic: &str) -> Vec<Arc<Subscription>> {
        self.subscriptions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|s| s.trigger.topic == topic)
            .cloned()
            .collect()
    }

    /// Appends `events` to `topic`, fanned out to its matching
    /// subscriptions, together with `change`; once durable, hands each
    /// delivery to its dispatcher.
    pub async fn append(
        &self,
        topic: &str,
        events: Vec<CloudEvent>,
        settle: Vec<(String, Seq)>,
    ) -> Result<Vec<Seq>, EventsError> {
        self.commit(
            topic,
            events,
            Change {
                settle,
                ..Change::default()
            },
        )
        .await
    }

    async fn commit(
        &self,
        topic: &str,
        events: Vec<CloudEvent>,
        mut change: Change,
    ) -> Result<Vec<Seq>, EventsError> {
        let counter = &self.topic(topic)?.published;
        let subscribers = self.subscribers(topic);
        let published = events.len() as u64;
        let mut targets = Vec::with_capacity(events.len());
        for event in events {
            let event = Arc::new(event);
            let key = event.attribute(PARTITION_KEY);
            let to: Vec<(Arc<Subscription>, Option<String>)> = subscribers
                .iter()
                .filter(|s| s.trigger.matches(|name| event.attribute(name)))
                .map(|s| (s.clone(), s.key_of(key).map(str::to_string)))
                .collect();
            // Kept only where nobody subscribes at all (dead-letter topics);
            // an event every subscription's filter turns down is done.
            if to.is_empty() && !subscribers.is_empty() {
                continue;
            }
            change.append.push(NewEvent {
                topic: topic.to_string(),
                event: event.clone(),
                deliveries: to
                    .iter()
                    .map(|(s, key)| (s.function.clone(), key.clone()))
                    .collect(),
            });
            targets.push((event, to));
        }
        let seqs = if change.is_empty() {
            Vec::new()
        } else {
            self.store
                .commit(change)
                .await
                .map_err(EventsError::Store)?
        };
        let now = now_ms();
        counter.fetch_add(published, Relaxed);
        for (&seq, (event, to)) in seqs.iter().zip(targets) {
            for (subscription, key) in to {
                let entry = Entry {
                    attempts: 0,
                    published_ms: now,
                    key,
                    event: Some(event.clone()),
                };
                subscription.add(seq, entry, now);
            }
        }
        Ok(seqs)
    }
}

/// A subscription's counters and backlog, as `wisp topics list` shows them.
#[derive(Serialize)]
pub struct SubscriptionStats {
    pub function: String,
    #[serde(flatten)]
    pub counters: dispatch::CountersSnapshot,
    pub backlog: usize,
    pub in_flight: usize,
    /// Age of the oldest event not yet acknowledged, in milliseconds.
    pub oldest_unacked_age_ms: Option<u64>,
}

#[derive(Serialize)]
pub struct TopicStats {
    pub name: String,
    /// Events published since the server started.
    pub published: u64,
    pub subscriptions: Vec<SubscriptionStats>,
}

/// The events machinery of one server.
pub struct Events {
    core: Arc<Core>,
    stop: CancellationToken,
}

impl Events {
    /// The event store under `state_dir` (in memory without one): opened
    /// apart from [`Events::new`] so a start can do it while the engine is
    /// still being made.
    pub fn open_store(state_dir: Option<&Path>) -> Result<sqlite::SqliteStore> {
        sqlite::SqliteStore::open(state_dir.map(|d| d.join("events.sqlite3")).as_deref())
    }

    /// The events machinery over `store` (from [`Events::open_store`]).
    pub fn new(
        store: sqlite::SqliteStore,
        topics: Vec<TopicSpec>,
        registry: Arc<Registry>,
        bodies: Arc<BodyLimits>,
    ) -> Arc<Self> {
        let topics = topics
            .into_iter()
            .map(|spec| {
                (
                    spec.name.clone(),
                    Topic {
                        spec,
                        published: AtomicU64::new(0),
                    },
                )
            })
            .collect();
        Arc::new(Events {
            core: Arc::new(Core {
                store: Arc::new(store),
                registry,
                bodies,
                topics,
                subscriptions: RwLock::default(),
            }),
            stop: CancellationToken::new(),
        })
    }

    /// Starts the subscriptions of the functions deployed now, and keeps
    /// them in step with deploys and deletes.
    pub async fn start(self: &Arc<Self>) -> Result<()> {
        let mut changes = self.core.registry.watch();
        let keep = self.subscribe().await?;
        let events = self.clone();
        tokio::spawn(async move {
            // Off the start's path (it waits for the store's thread), and
            // before any later change is reconciled.
            if let Err(e) = events.forget_others(keep).await {
                tracing::error!("event subscriptions: {e:#}");
            }
            loop {
                tokio::select! {
                    _ = events.stop.cancelled() => return,
                    changed = changes.changed() => if changed.is_err() { return },
                }
                if let Err(e) = events.reconcile().await {
                    tracing::error!("event subscriptions: {e:#}");
                }
            }
        });
        let events = self.clone();
        tokio::spawn(async move {
            loop {
                events.expire().await;
                tokio::select! {
                    _ = events.stop.cancelled() => return,
                    _ = tokio::time::sleep(EXPIRY_INTERVAL) => {}
                }
            }
        });
        Ok(())
    }

    /// Stops starting deliveries and waits for settled ones to be on disk;
    /// those still in flight are delivered again after a restart.
    pub async fn stop(&self) {
        self.stop.cancel();
        for subscription in self.subscriptions() {
            subscription.stop();
        }
        if let Err(e) = self.core.store.flush().await {
            tracing::warn!("event store: {e:#}");
        }
    }

    fn subscriptions(&self) -> Vec<Arc<Subscription>> {
        self.core
            .subscriptions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Matches the running subscriptions to the deployed functions.
    async fn reconcile(&self) -> Result<()> {
        let keep = self.subscribe().await?;
        self.forget_others(keep).await
    }

    /// Starts a subscription for every ready function with a trigger that
    /// has none and stops those whose function or trigger went away;
    /// returns the functions whose deliveries are kept.
    async fn subscribe(&self) -> Result<Vec<String>> {
        let mut wanted: HashMap<String, TriggerSpec> = HashMap::new();
        let mut keep = Vec::new();
        for info in self.core.registry.list() {
            let Some(trigger) = info.spec.and_then(|s| s.trigger) else {
                continue;
            };
            // A function that failed to load keeps its deliveries for when
            // it is fixed.
            keep.push(info.name.clone());
            if info.status != Status::Ready {
                continue;
            }
            if !self.core.topics.contains_key(&trigger.topic) {
                tracing::warn!(
                    function = %info.name,
                    "subscribes to topic `{}`, which this server does not declare: not delivering",
                    trigger.topic
                );
                continue;
            }
            wanted.insert(info.name, trigger);
        }
        let started: Vec<Arc<Subscription>> = {
            let mut subscriptions = self
                .core
                .subscriptions
                .write()
                .unwrap_or_else(|e| e.into_inner());
            subscriptions.retain(|name, s| {
                let same = wanted.get(name) == Some(&s.trigger);
                if !same {
                    s.stop();
                }
                same
            });
            let mut started = Vec::new();
            for (name, trigger) in wanted {
                if let std::collections::hash_map::Entry::Vacant(slot) =
                    subscriptions.entry(name.clone())
                {
                    let s = Subscription::new(name, trigger);
                    slot.insert(s.clone());
                    started.push(s);
                }
            }
            started
        };
        for subscription in started {
            for pending in self.core.store.pending(&subscription.function).await? {
                let entry = Entry {
                    attempts: pending.attempts,
                    published_ms: pending.published_ms,
                    key: pending.key,
                    event: None,
                };
                subscription.add(pending.seq, entry, pending.due_ms);
            }
            tracing::info!(
                function = %subscription.function,
                topic = %subscription.trigger.topic,
                backlog = subscription.backlog().0,
                "subscription started"
            );
            tokio::spawn(subscription.clone().run(self.core.clone()));
        }
        Ok(keep)
    }

    /// Drops the deliveries of functions not in `keep` (deleted ones).
    async fn forget_others(&self, keep: Vec<String>) -> Result<()> {
        let forgotten = self.core.store.forget_subscriptions(keep).await?;
        if forgotten > 0 {
            tracing::info!("forgot {forgotten} deliveries of deleted functions");
        }
        Ok(())
    }

    async fn expire(&self) {
        for topic in self.core.topics.values() {
            let before = now_ms().saturating_sub(topic.spec.retention.0.as_millis() as u64);
            match self.core.store.expire(&topic.spec.name, before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(topic = %topic.spec.name, "{n} kept events expired"),
                Err(e) => {
                    tracing::warn!(topic = %topic.spec.name, "could not expire events: {e:#}")
                }
            }
        }
    }

    /// Refuses settings that name topics this server does not declare.
    pub fn check_spec(&self, spec: &FunctionSpec) -> Result<(), String> {
        let topics: Vec<TopicSpec> = self.core.topics.values().map(|t| t.spec.clone()).collect();
        crate::config::check_topic_names(spec, &topics)
            .map_err(|(key, msg)| format!("`{key}`: {msg}"))
    }

    pub fn topic_spec(&self, name: &str) -> Result<&TopicSpec, EventsError> {
        self.core.topic(name).map(|t| &t.spec)
    }

    /// Publishes `events` to `topic`; on return they are durable.
    pub async fn publish(
        &self,
        topic: &str,
        events: Vec<CloudEvent>,
    ) -> Result<Vec<String>, EventsError> {
        let ids = events.iter().map(|e| e.id().to_string()).collect();
        self.core.append(topic, events, Vec::new()).await?;
        Ok(ids)
    }

    pub fn stats(&self) -> Vec<TopicStats> {
        let subscriptions = self.subscriptions();
        let now = now_ms();
        let mut topics: Vec<TopicStats> = self
            .core
            .topics
            .values()
            .map(|t| TopicStats {
                name: t.spec.name.clone(),
                published: t.published.load(Relaxed),
                subscriptions: subscriptions
                    .iter()
                    .filter(|s| s.trigger.topic == t.spec.name)
                    .map(|s| {
                        let (backlog, in_flight, oldest) = s.backlog();
                        SubscriptionStats {
                            function: s.function.clone(),
                            counters: s.counters.snapshot(),
                            backlog,
                            in_flight,
                            oldest_unacked_age_ms: oldest.map(|p| now.saturating_sub(p)),
                        }
                    })
                    .collect(),
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    /// Events kept in `topic` — published while nobody subscribed, such as
    /// dead letters — in structured JSON, oldest first.
    pub async fn kept(
        &self,
        topic: &str,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>, EventsError> {
        self.core.topic(topic)?;
        let kept = self
            .core
            .store
            .kept(topic, limit)
            .await
            .map_err(EventsError::Store)?;
        Ok(kept.iter().map(|s| s.event.to_json()).collect())
    }

    /// Moves the dead letters kept in `topic` back to the topics they came
    /// from, without their dead-letter attributes; returns how many.
    pub async fn replay(&self, topic: &str) -> Result<usize, EventsError> {
        self.core.topic(topic)?;
        let kept = self
            .core
            .store
            .kept(topic, REPLAY_LIMIT)
            .await
            .map_err(EventsError::Store)?;
        let mut by_origin: HashMap<String, (Vec<CloudEvent>, Vec<Seq>)> = HashMap::new();
        for stored in kept {
            let mut event = (*stored.event).clone();
            let Some(origin) = event.attributes.remove(ORIGIN_TOPIC) else {
                continue;
            };
            event.attributes.remove(DEAD_LETTER_REASON);
            event.attributes.remove(DELIVERY_ATTEMPT);
            let group = by_origin.entry(origin).or_default();
            group.0.push(event);
            group.1.push(stored.seq);
        }
        let mut replayed = 0;
        for (origin, (events, seqs)) in by_origin {
            if self.core.topic(&origin).is_err() {
                tracing::warn!(
                    "cannot replay {} events to `{origin}`: no such topic",
                    events.len()
                );
                continue;
            }
            replayed += events.len();
            let change = Change {
                remove: seqs,
                ..Change::default()
            };
            self.core.commit(&origin, events, change).await?;
        }
        Ok(replayed)
    }
}
