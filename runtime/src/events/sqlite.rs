//! The embedded event store: tables in the group-committing SQLite
//! [`Database`], so under load many publishes and acknowledgements share
//! an fsync.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};

use crate::events::cloudevent::CloudEvent;
use crate::events::store::{Change, EventStore, Pending, Seq, Stored};
use crate::store::sqlite::Database;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    published_ms INTEGER NOT NULL,
    -- 1: published with no subscription to deliver it to; kept until it
    -- expires or is replayed (dead-letter topics).
    kept INTEGER NOT NULL,
    attributes BLOB NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_kept ON events (topic, kept, seq);
CREATE TABLE IF NOT EXISTS deliveries (
    subscription TEXT NOT NULL,
    seq INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    due_ms INTEGER NOT NULL,
    key TEXT,
    PRIMARY KEY (subscription, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deliveries_seq ON deliveries (seq);
";

pub struct SqliteStore {
    db: Database,
}

impl SqliteStore {
    /// Opens (creating) the store at `path`; `None` keeps it in memory (a
    /// server without a state directory, which cannot declare topics).
    pub fn open(path: Option<&Path>) -> Result<Self> {
        Ok(SqliteStore {
            db: Database::open(path, SCHEMA, "event store")?,
        })
    }
}

fn now_ms() -> u64 {
    crate::events::now_ms()
}

fn apply(conn: &Connection, change: &Change) -> rusqlite::Result<Vec<Seq>> {
    let now = now_ms();
    let mut seqs = Vec::with_capacity(change.append.len());
    {
        let mut insert = conn.prepare_cached(
            "INSERT INTO events (topic, published_ms, kept, attributes, data) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut deliver = conn.prepare_cached(
            "INSERT INTO deliveries (subscription, seq, attempts, due_ms, key) VALUES (?1, ?2, 0, ?3, ?4)",
        )?;
        for new in &change.append {
            let attributes = serde_json::to_vec(&new.event.attributes)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            insert.execute(params![
                new.topic,
                now as i64,
                new.deliveries.is_empty(),
                attributes,
                &new.event.data[..]
            ])?;
            let seq = conn.last_insert_rowid() as Seq;
            for (subscription, key) in &new.deliveries {
                deliver.execute(params![subscription, seq as i64, now as i64, key])?;
            }
            seqs.push(seq);
        }
    }
    if !change.retry.is_empty() {
        let mut retry = conn.prepare_cached(
            "UPDATE deliveries SET attempts = ?3, due_ms = ?4 WHERE subscription = ?1 AND seq = ?2",
        )?;
        for (subscription, seq, attempts, due) in &change.retry {
            retry.execute(params![subscription, *seq as i64, attempts, *due as i64])?;
        }
    }
    if !change.settle.is_empty() {
        let mut settle =
            conn.prepare_cached("DELETE FROM deliveries WHERE subscription = ?1 AND seq = ?2")?;
        let mut collect = conn.prepare_cached(
            "DELETE FROM events WHERE seq = ?1 AND kept = 0
             AND NOT EXISTS (SELECT 1 FROM deliveries WHERE seq = ?1)",
        )?;
        for (subscription, seq) in &change.settle {
            settle.execute(params![subscription, *seq as i64])?;
            collect.execute(params![*seq as i64])?;
        }
    }
    if !change.remove.is_empty() {
        let mut remove = conn.prepare_cached("DELETE FROM events WHERE seq = ?1 AND kept = 1")?;
        for seq in &change.remove {
            remove.execute(params![*seq as i64])?;
        }
    }
    Ok(seqs)
}

fn stored(row: &rusqlite::Row) -> rusqlite::Result<Stored> {
    let attributes: Vec<u8> = row.get(3)?;
    let data: Vec<u8> = row.get(4)?;
    let attributes = serde_json::from_slice(&attributes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Blob, Box::new(e))
    })?;
    Ok(Stored {
        seq: row.get::<_, i64>(0)? as Seq,
        topic: row.get(1)?,
        published_ms: row.get::<_, i64>(2)? as u64,
        event: Arc::new(CloudEvent {
            attributes,
            data: Bytes::from(data),
        }),
    })
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn commit(&self, change: Change) -> Result<Vec<Seq>> {
        self.db.write(move |conn| apply(conn, &change)).await
    }

    fn commit_soon(&self, change: Change) {
        self.db
            .write_soon(move |conn| apply(conn, &change).map(drop));
    }

    async fn flush(&self) -> Result<()> {
        self.db.flush().await
    }

    async fn pending(&self, subscription: &str) -> Result<Vec<Pending>> {
        let subscription = subscription.to_string();
        self.db
            .read(move |conn| {
                let mut rows = conn.prepare(
                    "SELECT d.seq, d.attempts, d.due_ms, e.published_ms, d.key
                 FROM deliveries d JOIN events e ON e.seq = d.seq
                 WHERE d.subscription = ?1 ORDER BY d.seq",
                )?;
                let pending = rows
                    .query_map([subscription], |row| {
                        Ok(Pending {
                            seq: row.get::<_, i64>(0)? as Seq,
                            attempts: row.get(1)?,
                            due_ms: row.get::<_, i64>(2)? as u64,
                            published_ms: row.get::<_, i64>(3)? as u64,
                            key: row.get(4)?,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(pending)
            })
            .await
    }

    async fn load(&self, seq: Seq) -> Result<Option<Stored>> {
        self.db
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT seq, topic, published_ms, attributes, data FROM events WHERE seq = ?1",
                )?
                .query_row([seq as i64], stored)
                .optional()
            })
            .await
    }

    async fn kept(&self, topic: &str, limit: usize) -> Result<Vec<Stored>> {
        let topic = topic.to_string();
        self.db
            .read(move |conn| {
                let mut rows = conn.prepare(
                    "SELECT seq, topic, published_ms, attributes, data FROM events
                 WHERE topic = ?1 AND kept = 1 ORDER BY seq LIMIT ?2",
                )?;
                let kept = rows
                    .query_map(params![topic, limit as i64], stored)?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(kept)
            })
            .await
    }

    async fn forget_subscriptions(&self, keep: Vec<String>) -> Result<u64> {
        self.db
            .read(move |conn| {
                let tx = conn.unchecked_transaction()?;
                tx.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS keep (name TEXT PRIMARY KEY); DELETE FROM keep;",
            )?;
                for name in &keep {
                    tx.execute("INSERT OR IGNORE INTO keep (name) VALUES (?1)", [name])?;
                }
                let forgotten = tx.execute(
                    "DELETE FROM deliveries WHERE subscription NOT IN (SELECT name FROM keep)",
                    [],
                )?;
                tx.execute(
                    "DELETE FROM events WHERE kept = 0
                 AND NOT EXISTS (SELECT 1 FROM deliveries WHERE deliveries.seq = events.seq)",
                    [],
                )?;
                tx.commit()?;
                Ok(forgotten as u64)
            })
            .await
    }

    async fn expire(&self, topic: &str, before_ms: u64) -> Result<u64> {
        let topic = topic.to_string();
        self.db
            .read(move |conn| {
                Ok(conn.execute(
                    "DELETE FROM events WHERE topic = ?1 AND kept = 1 AND published_ms < ?2",
                    params![topic, before_ms.min(i64::MAX as u64) as i64],
                )? as u64)
            })
            .await
    }

    fn commits(&self) -> u64 {
        self.db.commits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::store::NewEvent;

    fn event(id: &str) -> Arc<CloudEvent> {
        let mut attributes = std::collections::BTreeMap::new();
        attributes.insert("id".to_string(), id.to_string());
        Arc::new(CloudEvent {
            attributes,
            data: Bytes::from_static(b"{}"),
        })
    }

    fn append(topic: &str, id: &str, subs: &[&str]) -> NewEvent {
        NewEvent {
            topic: topic.into(),
            event: event(id),
            deliveries: subs.iter().map(|s| (s.to_string(), None)).collect(),
        }
    }

    #[tokio::test]
    async fn deliveries_survive_reopening_until_settled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite3");
        let store = SqliteStore::open(Some(&path)).unwrap();
        let seqs = store
            .commit(Change {
                append: vec![append("t", "a", &["f", "g"]), append("t", "b", &["f"])],
                ..Change::default()
            })
            .await
            .unwrap();
        assert_eq!(seqs.len(), 2);
        store.commit_soon(Change {
            settle: vec![("f".into(), seqs[0])],
            retry: vec![("f".into(), seqs[1], 2, 99)],
            ..Change::default()
        });
        store.flush().await.unwrap();
        drop(store);

        let store = SqliteStore::open(Some(&path)).unwrap();
        let f = store.pending("f").await.unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].seq, f[0].attempts, f[0].due_ms), (seqs[1], 2, 99));
        assert_eq!(store.pending("g").await.unwrap().len(), 1);
        // `a` is still needed by `g`; once `g` is forgotten it goes.
        assert!(store.load(seqs[0]).await.unwrap().is_some());
        store.forget_subscriptions(vec!["f".into()]).await.unwrap();
        assert!(store.load(seqs[0]).await.unwrap().is_none());
        assert_eq!(
            store.load(seqs[1]).await.unwrap().unwrap().event.attributes["id"],
            "b"
        );
    }

    #[tokio::test]
    async fn events_without_subscribers_are_kept_until_removed_or_expired() {
        let store = SqliteStore::open(None).unwrap();
        let seqs = store
            .commit(Change {
                append: vec![append("dlq", "x", &[]), append("dlq", "y", &[])],
                ..Change::default()
            })
            .await
            .unwrap();
        assert_eq!(store.kept("dlq", 10).await.unwrap().len(), 2);
        store
            .commit(Change {
                remove: vec![seqs[0]],
                ..Change::default()
            })
            .await
            .unwrap();
        let kept = store.kept("dlq", 10).await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].event.attributes["id"], "y");
        assert_eq!(store.expire("dlq", u64::MAX).await.unwrap(), 1);
        assert!(store.kept("dlq", 10).await.unwrap().is_empty());
        assert!(store.commits() >= 2);
    }
}
