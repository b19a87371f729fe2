//! The embedded key-value backend: one SQLite database in `state_dir`
//! (`keyvalue.sqlite3`), WAL mode with `synchronous = FULL`, so a write
//! acknowledged to a guest survives `kill -9` and power loss. Every store
//! is a slice of one table keyed by `(store, key)`.
//!
//! One thread owns the writing connection and commits whatever queued up
//! while the previous commit was on its way to disk in one transaction
//! (group commit): a thousand concurrent increments share a handful of
//! fsyncs instead of taking one each. Each write runs in its own savepoint,
//! so one that fails (a counter that is not a number) leaves the others in
//! its group alone, and read-modify-writes (increment, compare-and-swap)
//! are atomic because that thread is the only writer. Reads run on a small
//! pool of read-only connections beside it (WAL lets them), never behind a
//! commit.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use anyhow::Context;
use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::state::keyvalue::backend::{
    Error, KeyPage, KeyValue, PAGE, Result, check_key, check_value, parse_counter,
};

/// The database file, in `state_dir`.
pub const FILE: &str = "keyvalue.sqlite3";

/// Writes merged into one transaction at most.
const MAX_GROUP: usize = 1024;

/// Read connections kept open between reads.
const MAX_IDLE_READERS: usize = 8;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    store TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (store, key)
) WITHOUT ROWID;
";

/// Runs inside the writer's transaction, in a savepoint of its own; says
/// whether it succeeded (else the savepoint is rolled back) and what to do
/// once the group's commit is known.
type Write = Box<dyn FnOnce(&Connection) -> (bool, Done) + Send>;
/// Told the group's commit outcome; answers the waiting guest.
type Done = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;

/// The database every embedded store shares.
pub struct Database {
    writes: mpsc::Sender<Write>,
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
}

impl Database {
    /// Opens (creating) the database at `path` and starts its writer thread.
    pub fn open(path: &Path) -> anyhow::Result<Arc<Self>> {
        let conn = Connection::open(path)
            .with_context(|| format!("could not open the key-value store `{}`", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)
            .context("could not create the key-value store's table")?;
        let (writes, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("wisp-kv-store".into())
            .spawn(move || writer(conn, rx))
            .context("could not start the key-value store's thread")?;
        Ok(Arc::new(Database {
            writes,
            path: path.to_path_buf(),
            readers: Mutex::default(),
        }))
    }

    /// The store `name` inside this database.
    pub fn store(self: &Arc<Self>, name: &str) -> Arc<dyn KeyValue> {
        Arc::new(SqliteStore {
            db: self.clone(),
            store: name.into(),
        })
    }

    async fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let job: Write = Box::new(move |conn| {
            let outcome = op(conn);
            let ok = outcome.is_ok();
            let done: Done = Box::new(move |committed| {
                let _ = tx.send(committed.map_err(Error).and(outcome));
            });
            (ok, done)
        });
        self.writes.send(job).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        op: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let idle = db.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let conn = match idle {
                Some(conn) => conn,
                None => Connection::open_with_flags(
                    &db.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(failed)?,
            };
            let outcome = op(&conn);
            let mut idle = db.readers.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
            outcome
        })
        .await
        .map_err(|_| stopped())?
    }
}

fn stopped() -> Error {
    Error("the key-value store has stopped".into())
}

/// SQLite's own errors are the operator's business; the guest learns that
/// the store failed, the log says why.
fn failed(e: rusqlite::Error) -> Error {
    tracing::error!("key-value store (SQLite): {e}");
    Error(format!("the key-value store failed: {e}"))
}

/// The writer thread: runs queued writes in groups, one transaction each,
/// until the database is dropped.
fn writer(mut conn: Connection, writes: mpsc::Receiver<Write>) {
    let mut group = Vec::new();
    while let Ok(first) = writes.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match writes.try_recv() {
                Ok(write) => group.push(write),
                Err(_) => break,
            }
        }
        commit_group(&mut conn, &mut group);
    }
}

fn commit_group(conn: &mut Connection, group: &mut Vec<Write>) {
    let mut dones = Vec::with_capacity(group.len());
    let outcome = (|| -> rusqlite::Result<()> {
        let mut tx = conn.transaction()?;
        for write in group.drain(..) {
            let savepoint = tx.savepoint()?;
            let (ok, done) = write(&savepoint);
            dones.push(done);
            if ok {
                savepoint.commit()?;
            }
            // Dropped uncommitted: rolled back.
        }
        tx.commit()
    })();
    // A write whose savepoint could not even start is answered too.
    group.clear();
    let outcome = outcome.map_err(|e| failed(e).0);
    for done in dones {
        done(outcome.clone());
    }
}

/// One store: a `store` column value in the shared table.
struct SqliteStore {
    db: Arc<Database>,
    store: Arc<str>,
}

fn get(conn: &Connection, store: &str, key: &str) -> Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT value FROM kv WHERE store = ?1 AND key = ?2")
        .and_then(|mut s| s.query_row(params![store, key], |r| r.get(0)).optional())
        .map_err(failed)
}

fn put(conn: &Connection, store: &str, key: &str, value: &[u8]) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO kv (store, key, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
    )
    .and_then(|mut s| s.execute(params![store, key, value]))
    .map(drop)
    .map_err(failed)
}

fn remove(conn: &Connection, store: &str, key: &str) -> Result<()> {
    conn.prepare_cached("DELETE FROM kv WHERE store = ?1 AND key = ?2")
        .and_then(|mut s| s.execute(params![store, key]))
        .map(drop)
        .map_err(failed)
}

#[async_trait]
impl KeyValue for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        let (store, key) = (self.store.clone(), key.to_string());
        self.db.read(move |conn| get(conn, &store, &key)).await
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<()> {
        check_key(key)?;
        check_value(&value)?;
        let (store, key) = (self.store.clone(), key.to_string());
        self.db
            .write(move |conn| put(conn, &store, &key, &value))
            .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        let (store, key) = (self.store.clone(), key.to_string());
        self.db.write(move |conn| remove(conn, &store, &key)).await
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        let (store, key) = (self.store.clone(), key.to_string());
        self.db
            .read(move |conn| {
                conn.prepare_cached("SELECT 1 FROM kv WHERE store = ?1 AND key = ?2")
                    .and_then(|mut s| s.exists(params![store, key]))
                    .map_err(failed)
            })
            .await
    }

    async fn list_keys(&self, cursor: Option<u64>) -> Result<KeyPage> {
        let store = self.store.clone();
        let offset = i64::try_from(cursor.unwrap_or(0)).unwrap_or(i64::MAX);
        self.db
            .read(move |conn| {
                let mut keys = conn
                    .prepare_cached(
                        "SELECT key FROM kv WHERE store = ?1 ORDER BY key LIMIT ?2 OFFSET ?3",
                    )
                    .and_then(|mut s| {
                        s.query_map(params![store, PAGE as i64 + 1, offset], |r| r.get(0))?
                            .collect::<rusqlite::Result<Vec<String>>>()
                    })
                    .map_err(failed)?;
                let more = keys.len() > PAGE;
                keys.truncate(PAGE);
                let next = offset.saturating_add(keys.len() as i64);
                Ok(KeyPage {
                    keys,
                    cursor: more.then_some(next as u64),
                })
            })
            .await
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        check_key(key)?;
        let (store, key) = (self.store.clone(), key.to_string());
        self.db
            .write(move |conn| {
                let current = match get(conn, &store, &key)? {
                    Some(value) => parse_counter(&key, &value)?,
                    None => 0,
                };
                let next = current
                    .checked_add(delta)
                    .ok_or_else(|| Error(format!("incrementing `{key}` by {delta} overflows")))?;
                put(conn, &store, &key, next.to_string().as_bytes())?;
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
        let (store, key) = (self.store.clone(), key.to_string());
        self.db
            .write(move |conn| {
                if get(conn, &store, &key)? != expected {
                    return Ok(false);
                }
                put(conn, &store, &key, &value)?;
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
    }

    async fn set_many(&self, pairs: Vec<(String, Vec<u8>)>) -> Result<()> {
        for (key, value) in &pairs {
            check_key(key)?;
            check_value(value)?;
        }
        let store = self.store.clone();
        self.db
            .write(move |conn| {
                pairs
                    .iter()
                    .try_for_each(|(key, value)| put(conn, &store, key, value))
            })
            .await
    }

    async fn delete_many(&self, keys: Vec<String>) -> Result<()> {
        keys.iter().try_for_each(|k| check_key(k))?;
        let store = self.store.clone();
        self.db
            .write(move |conn| keys.iter().try_for_each(|key| remove(conn, &store, key)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stores_are_separate_and_increments_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join(FILE)).unwrap();
        let (a, b) = (db.store("a"), db.store("b"));
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
        assert!(a.increment("text", 1).await.is_err());
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
}
