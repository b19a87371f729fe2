//! The embedded key-value store's outbox: the change events of its stores
//! that have `events = "TOPIC"`, written in the same transaction as the
//! change itself, then moved to the event store by a [`relay`].
//!
//! Key-value data (`keyvalue.sqlite3`) and events (`events.sqlite3`) are
//! separate databases, each with its own writer thread and group commit,
//! so a write and its event cannot share a transaction across them. The
//! outbox makes them share one anyway: a committed write always has its
//! event in the same database, and the relay publishes it (durably) before
//! deleting it. A crash after the publish and before the delete publishes
//! it again after the restart, with the same `id`: at least once, and a
//! consumer can tell the duplicate by its id.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use rusqlite::{Connection, params};
use tokio::sync::Notify;

use crate::events::cloudevent::CloudEvent;
use crate::state::events::{Change, EventsLink, StoreEvents};
use crate::store::sqlite::Database;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    -- The CloudEvent as JSON, id and time included, so a republished event
    -- is the same event.
    event BLOB NOT NULL
);
";

/// Events the relay moves in one publish at most.
const BATCH: usize = 500;

/// How long the relay waits before trying again after the event store
/// failed.
const RETRY: Duration = Duration::from_secs(1);

/// One store's side of the outbox: records its changes' events inside
/// their write, and wakes the relay once they are committed.
#[derive(Clone)]
pub struct Outbox {
    events: Arc<StoreEvents>,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(events: Arc<StoreEvents>, wake: Arc<Notify>) -> Self {
        Outbox { events, wake }
    }

    /// Adds the event of `change` to the write `conn` is in.
    pub fn record(&self, conn: &Connection, change: Change) -> rusqlite::Result<()> {
        let event = serde_json::to_vec(&self.events.event(change))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        conn.prepare_cached("INSERT INTO kv_events (topic, event) VALUES (?1, ?2)")?
            .execute(params![self.events.topic(), event])
            .map(drop)
    }

    /// Tells the relay there is something to move (call after the commit).
    pub fn committed(&self) {
        self.wake.notify_one();
    }
}

/// Moves the outbox's events to the events machinery, oldest first, for
/// as long as the server runs: at once when woken, and at start for what
/// a crash left.
pub fn relay(db: Database, link: EventsLink, wake: Arc<Notify>) {
    tokio::spawn(async move {
        loop {
            match relay_batch(&db, &link).await {
                Ok(0) => wake.notified().await,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("storage events: {e:#}; trying again in {RETRY:?}");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    });
}

/// Publishes up to [`BATCH`] outbox events and deletes them; returns how
/// many it took.
async fn relay_batch(db: &Database, link: &EventsLink) -> Result<usize> {
    let rows: Vec<(i64, String, Vec<u8>)> = db
        .read(move |conn| {
            conn.prepare_cached("SELECT seq, topic, event FROM kv_events ORDER BY seq LIMIT ?1")?
                .query_map([BATCH as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let publisher = link.get().map_err(|e| anyhow::anyhow!(e.message))?;
    // Runs of one topic, in order, one publish each: (topic, events, last seq).
    let mut runs: Vec<(String, Vec<CloudEvent>, i64)> = Vec::new();
    for (seq, topic, event) in &rows {
        let event: CloudEvent = match serde_json::from_slice(event) {
            Ok(event) => event,
            Err(e) => {
                tracing::error!("storage events: outbox entry {seq} is unreadable ({e}); dropped");
                continue;
            }
        };
        match runs.last_mut() {
            Some((t, events, last)) if t == topic => {
                events.push(event);
                *last = *seq;
            }
            _ => runs.push((topic.clone(), vec![event], *seq)),
        }
    }
    // Everything up to `moved` is published (or can never be).
    let mut moved = 0;
    let mut failed = None;
    for (topic, events, last) in runs {
        let n = events.len();
        match publisher.publish(&topic, events).await {
            Ok(()) => {}
            Err(e) if e.lasting => tracing::error!(
                "storage events: {n} event(s) for topic `{topic}` dropped: {}",
                e.message
            ),
            Err(e) => {
                failed = Some(anyhow::anyhow!(
                    "could not publish to topic `{topic}`: {}",
                    e.message
                ));
                break;
            }
        }
        moved = last;
    }
    if failed.is_none() {
        moved = rows.last().map_or(moved, |r| r.0);
    }
    db.write_soon(move |conn| {
        conn.prepare_cached("DELETE FROM kv_events WHERE seq <= ?1")?
            .execute([moved])
            .map(drop)
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(rows.len()),
    }
}
