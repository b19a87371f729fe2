//! The storage seam of the events machinery: what dispatchers and
//! publishers need from a durable log, and nothing about how it is kept.
//! The embedded backend is [`super::sqlite`]; a cluster backend (NATS
//! JetStream streams and consumers) would implement the same trait.

use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;

use crate::events::cloudevent::CloudEvent;

/// An event's position in the log: unique, increasing in publish order.
pub type Seq = u64;

/// One event to append, with the subscriptions it is to be delivered to.
pub struct NewEvent {
    pub topic: String,
    pub event: Arc<CloudEvent>,
    /// `(subscription, ordering key)` for each subscription it matches.
    /// Without any, the event is kept in its topic until it expires or is
    /// taken out (a dead-letter topic nobody subscribes to).
    pub deliveries: Vec<(String, Option<String>)>,
}

/// A set of changes committed together, all or nothing.
#[derive(Default)]
pub struct Change {
    pub append: Vec<NewEvent>,
    /// Deliveries that are over: acknowledged, dead-lettered, expired.
    pub settle: Vec<(String, Seq)>,
    /// Deliveries to try again: `(subscription, seq, attempts so far, due)`
    /// with `due` in milliseconds since the Unix epoch.
    pub retry: Vec<(String, Seq, u32, u64)>,
    /// Kept events taken out of their topic (replayed elsewhere).
    pub remove: Vec<Seq>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.append.is_empty()
            && self.settle.is_empty()
            && self.retry.is_empty()
            && self.remove.is_empty()
    }
}

/// A delivery not yet settled, as a dispatcher resumes it after a restart.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    pub seq: Seq,
    pub attempts: u32,
    pub due_ms: u64,
    pub published_ms: u64,
    pub key: Option<String>,
}

/// An event as stored.
#[derive(Clone, Debug)]
pub struct Stored {
    pub seq: Seq,
    pub topic: String,
    pub published_ms: u64,
    pub event: Arc<CloudEvent>,
}

#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Commits `change`; on return it is on disk. Returns the sequence
    /// numbers of `change.append`, in order.
    async fn commit(&self, change: Change) -> Result<Vec<Seq>>;

    /// Commits `change` with the next commit, without waiting: for
    /// acknowledgements, whose loss in a crash only means a redelivery.
    fn commit_soon(&self, change: Change);

    /// Waits until everything handed to [`EventStore::commit_soon`] so far
    /// is on disk.
    async fn flush(&self) -> Result<()>;

    /// Every unsettled delivery of `subscription`, in sequence order.
    async fn pending(&self, subscription: &str) -> Result<Vec<Pending>>;

    async fn load(&self, seq: Seq) -> Result<Option<Stored>>;

    /// Events kept in `topic` (those published with no subscription to
    /// deliver them to), oldest first, at most `limit`.
    async fn kept(&self, topic: &str, limit: usize) -> Result<Vec<Stored>>;

    /// Forgets the deliveries of every subscription not in `keep` (deleted
    /// functions) and the events only they still needed.
    async fn forget_subscriptions(&self, keep: Vec<String>) -> Result<u64>;

    /// Drops kept events of `topic` published before `before_ms`; returns
    /// how many.
    async fn expire(&self, topic: &str, before_ms: u64) -> Result<u64>;

    /// Transactions committed since start: each costs one fsync of the log.
    fn commits(&self) -> u64;
}
