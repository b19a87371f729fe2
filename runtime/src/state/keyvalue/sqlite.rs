//! The embedded key-value backend: one SQLite database in `state_dir`
//! (`keyvalue.sqlite3`) on [`crate::store::sqlite::Database`]: WAL mode
//! with `synchronous = FULL`, group commit, each write in a savepoint of
//! its own. A write is acknowledged to the guest only once its group is on
//! disk, so it survives `kill -9` and power loss; a thousand concurrent
//! increments share a handful of fsyncs. Read-modify-writes (increment,
//! compare-and-swap) are atomic because the database's thread is the only
//! writer. Every store is a slice of one table keyed by `(store, key)`.
//!
//! A store with `events = "TOPIC"` records each change's event in the
//! change's own savepoint ([`Outbox`]): a write commits with its event or
//! not at all.

use std::path::Path;

use anyhow::Context;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use crate::state::events::Change;
use crate::state::keyvalue::backend::{
    Error, KeyPage, KeyValue, PAGE, Result, check_key, check_value, parse_counter,
};
use crate::state::keyvalue::outbox::{self, Outbox};
use crate::store::sqlite::Database;

/// The database file, in `state_dir`.
pub const FILE: &str = "keyvalue.sqlite3";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    store TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (store, key)
) WITHOUT ROWID;
";

/// Opens (creating) the database every embedded store shares.
pub fn open(path: &Path) -> anyhow::Result<Database> {
    Database::open(
        Some(path),
        &[SCHEMA, outbox::SCHEMA].concat(),
        "key-value store",
    )
    .with_context(|| format!("key-value store `{}`", path.display()))
}

/// The store `name` inside `db`; its changes' events go to `outbox`.
pub fn store(db: &Database, name: &str, outbox: Option<Outbox>) -> std::sync::Arc<dyn KeyValue> {
    std::sync::Arc::new(SqliteStore {
        db: db.clone(),
        store: name.into(),
        outbox,
    })
}

/// The guest is told what went wrong, prefixed with "key-value store:".
fn failed(e: anyhow::Error) -> Error {
    Error(format!("{e:#}"))
}

/// Carries one of our refusals (not a counter, overflow) out of a write
/// as a rusqlite error, so the write is rolled back alone.
fn refuse(e: Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

/// One store: a `store` column value in the shared table.
struct SqliteStore {
    db: Database,
    store: std::sync::Arc<str>,
    outbox: Option<Outbox>,
}

impl SqliteStore {
    /// Runs `write` in the next group commit, with what records its
    /// changes' events (a no-op without `events`); wakes the relay once
    /// committed.
    async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection, &str, &Recorder) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let (store, recorder) = (self.store.clone(), Recorder(self.outbox.clone()));
        let value = self
            .db
            .write(move |conn| write(conn, &store, &recorder))
            .await
            .map_err(failed)?;
        if let Some(outbox) = &self.outbox {
            outbox.committed();
        }
        Ok(value)
    }
}

/// Records a store's changes in the outbox, inside the write.
struct Recorder(Option<Outbox>);

impl Recorder {
    fn written(&self, conn: &Connection, key: &str, size: usize) -> rusqlite::Result<()> {
        match &self.0 {
            Some(outbox) => outbox.record(
                conn,
                Change::Written {
                    key,
                    size: size as u64,
                    etag: None,
                },
            ),
            None => Ok(()),
        }
    }

    fn deleted(&self, conn: &Connection, key: &str) -> rusqlite::Result<()> {
        match &self.0 {
            Some(outbox) => outbox.record(conn, Change::Deleted { key }),
            None => Ok(()),
        }
    }
}

fn get(conn: &Connection, store: &str, key: &str) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT value FROM kv WHERE store = ?1 AND key = ?2")?
        .query_row(params![store, key], |r| r.get(0))
        .optional()
}

fn put(conn: &Connection, store: &str, key: &str, value: &[u8]) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO kv (store, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![store, key, value])
    .map(drop)
}

fn remove(conn: &Connection, store: &str, key: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM kv WHERE store = ?1 AND key = ?2")?
        .execute(params![store, key])
        .map(drop)
}

#[async_trait]
impl KeyValue for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        let (store, key) = (self.store.clone(), key.to_string());
        self.db
            .read(move |conn| get(conn, &store, &key))
            .await
            .map_err(failed)
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<()> {
        check_key(key)?;
        check_value(&value)?;
        let key = key.to_string();
        self.write(move |conn, store, events| {
            put(conn, store, &key, &value)?;
            events.written(conn, &key, value.len())
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        let key = key.to_string();
        self.write(move |conn, store, events| {
            remove(conn, store, &key)?;
            events.deleted(conn, &key)
        })
        .await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        let (store, key) = (self.store.clone(), key.to_string());
        self.db
            .read(move |conn| {
                conn.prepare_cached("SELECT 1 FROM kv WHERE store = ?1 AND key = ?2")?
                    .exists(params![store, key])
            })
            .await
            .map_err(failed)
    }

    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage> {
        let store = self.store.clone();
        let offset = i64::try_from(cursor.unwrap_or(0)).unwrap_or(i64::MAX);
        self.db
            .read(move |conn| {
                let mut keys = conn
                    .prepare_cached(
                        "SELECT key FROM kv WHERE store = ?1 ORDER BY key LIMIT ?2 OFFSET ?3",
                    )?
                    .query_map(params![store, PAGE as i64 + 1, offset], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                let more = keys.len() > PAGE;
                keys.truncate(PAGE);
                let next = offset.saturating_add(keys.len() as i64);
                Ok(KeyPage {
                    keys,
                    cursor: more.then_some(next as u64),
                })
            })
            .await
            .map_err(failed)
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        check_key(key)?;
        let key = key.to_string();
        self.write(move |conn, store, events| {
            let current = match get(conn, store, &key)? {
                Some(value) => parse_counter(&key, &value).map_err(refuse)?,
                None => 0,
            };
            let next = current.checked_add(delta).ok_or_else(|| {
                refuse(Error(format!("incrementing `{key}` by {delta} overflows")))
            })?;
            let value = next.to_string();
            put(conn, store, &key, value.as_bytes())?;
            events.written(conn, &key, value.len())?;
            Ok(next)
        })
        .await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool> {
        check_key(key)?;
        check_value(&value)?;
        let key = key.to_string();
        self.write(move |conn, store, events| {
            if get(conn, store, &key)? != expected {
                return Ok(false);
            }
            put(conn, store, &key, &value)?;
            events.written(conn, &key, value.len())?;
            Ok(true)
        })
        .await
    }

    async fn get_many(&self, keys: Vec<String>) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        keys.iter().try_for_each(|k| check_key(k))?;
        let store = self.store.clone();
        self.db
            .read(move |conn| {
                keys.into_iter()
                    .map(|key| {
                        let value = get(conn, &store, &key)?;
                        Ok((key, value))
                    })
                    .collect()
            })
            .await
            .map_err(failed)
    }

    async fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<()> {
        for (key, value) in &pairs {
            check_key(key)?;
            check_value(value)?;
        }
        self.write(move |conn, store, events| {
            pairs.iter().try_for_each(|(key, value)| {
                put(conn, store, key, value)?;
                events.written(conn, key, value.len())
            })
        })
        .await
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<()> {
        keys.iter().try_for_each(|k| check_key(k))?;
        self.write(move |conn, store, events| {
            keys.iter().try_for_each(|key| {
                remove(conn, store, key)?;
                events.deleted(conn, key)
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stores_are_separate_and_increments_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir.path().join(FILE)).unwrap();
        let (a, b) = (store(&db, "a", None), store(&db, "b", None));
        a.set("k", b"1".to_vec()).await.unwrap();
        assert_eq!(b.get("k").await.unwrap(), None);
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let a = a.clone();
                tokio::spawn(async move { a.increment("n", 1).await.unwrap() })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(a.get("n").await.unwrap(), Some(b"200".to_vec()));
        // A failing write leaves the rest of its group alone.
        assert!(a.increment("k2", 1).await.is_ok());
        a.set("text", b"hello".to_vec()).await.unwrap();
        let refused = a.increment("text", 1).await.unwrap_err();
        assert!(
            refused.0.contains("`text` does not hold a counter"),
            "{refused}"
        );
        assert_eq!(a.get("text").await.unwrap(), Some(b"hello".to_vec()));
        assert!(!a.compare_and_swap("k", None, b"x".to_vec()).await.unwrap());
        assert!(
            a.compare_and_swap("k", Some(b"1".to_vec()), b"2".to_vec())
                .await
                .unwrap()
        );
        let page = a.list_keys(None).await.unwrap();
        assert_eq!(page.keys, ["k", "k2", "n", "text"]);
        assert_eq!(page.cursor, None);
    }

    #[tokio::test]
    async fn changes_commit_with_their_events_and_failures_without() {
        use crate::state::events::{EventsLink, StoreEvents, StoreKind};
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir.path().join(FILE)).unwrap();
        let events = StoreEvents::new("a", "t", StoreKind::KeyValue, EventsLink::default());
        let wake = std::sync::Arc::new(tokio::sync::Notify::new());
        let a = store(&db, "a", Some(Outbox::new(events, wake.clone())));
        a.set("k", b"hello".to_vec()).await.unwrap();
        a.increment("n", 7).await.unwrap();
        assert!(a.increment("k", 1).await.is_err(), "not a counter");
        assert!(!a.compare_and_swap("k", None, b"x".to_vec()).await.unwrap());
        a.delete_many(vec!["k".into(), "n".into()]).await.unwrap();
        // The relay was told.
        wake.notified().await;
        let recorded: Vec<(String, Vec<u8>)> = db
            .read(|c| {
                c.prepare("SELECT topic, event FROM kv_events ORDER BY seq")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .await
            .unwrap();
        let seen: Vec<(String, String, String)> = recorded
            .iter()
            .map(|(topic, event)| {
                let e: crate::events::cloudevent::CloudEvent =
                    serde_json::from_slice(event).unwrap();
                let data: serde_json::Value = serde_json::from_slice(&e.data).unwrap();
                assert_eq!(topic, "t");
                (
                    e.attribute("type")
                        .unwrap()
                        .rsplit('.')
                        .next()
                        .unwrap()
                        .to_string(),
                    e.attribute("subject").unwrap().to_string(),
                    data["size"].to_string(),
                )
            })
            .collect();
        let expected = [
            ("updated", "k", "5"),
            ("updated", "n", "1"),
            ("deleted", "k", "null"),
            ("deleted", "n", "null"),
        ];
        assert_eq!(
            seen,
            expected.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        );
    }
}
