//! An embedded SQLite database with group commit, for the durable queues
//! (events, tasks, schedules): WAL mode with `synchronous = FULL`, so a
//! committed transaction survives `kill -9` and power loss. One thread owns
//! the connection and commits whatever writes queued up while the previous
//! commit was on its way to disk in one transaction: under load many
//! publishes and acknowledgements share an fsync.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use anyhow::{Context, Result, anyhow};
use rusqlite::Connection;
use tokio::sync::oneshot;

/// Writes merged into one transaction at most.
const MAX_GROUP: usize = 4096;

/// Told how the group's commit went, after it: only then is a write
/// acknowledged.
type Done = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A write, run inside the group's transaction (in a savepoint of its own,
/// so a failing write fails alone).
type Write = Box<dyn FnOnce(&Connection) -> (rusqlite::Result<()>, Done) + Send>;
/// A read (or a write needing its own transaction), run between groups.
type Read = Box<dyn FnOnce(&mut Connection) + Send>;

enum Job {
    Write(Write),
    Read(Read),
}

/// How a commit reaches the disk.
#[derive(Clone, Copy)]
pub enum Durability {
    /// `synchronous = FULL`: a commit survives power loss.
    Full,
    /// `synchronous = NORMAL`: commits write the WAL without an fsync (it
    /// happens at checkpoints), so a commit survives the process dying but
    /// the last ones may be lost with the machine.
    BestEffort,
}

/// A handle to the database thread; cheap to clone.
#[derive(Clone)]
pub struct Database {
    jobs: mpsc::Sender<Job>,
    commits: Arc<AtomicU64>,
    what: &'static str,
}

impl Database {
    /// Opens (creating) the database at `path` — in memory without one —
    /// and runs `schema` on it. `what` names it in errors ("event store").
    pub fn open(path: Option<&Path>, schema: &str, what: &'static str) -> Result<Self> {
        Self::open_with(path, schema, what, Durability::Full, |_| Ok(())).map(|(db, ())| db)
    }

    /// [`Database::open`] with commits as durable as `durability` says, and
    /// `prepare` run on the connection before the database's thread takes
    /// it: migrations and the reads a store starts from, without a round
    /// trip to that thread (each wakes a sleeping thread, which costs a
    /// start ~0.5 ms on a virtual machine).
    pub fn open_with<T>(
        path: Option<&Path>,
        schema: &str,
        what: &'static str,
        durability: Durability,
        prepare: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<(Self, T)> {
        let conn = match path {
            Some(path) => Connection::open(path)
                .with_context(|| format!("could not open the {what} `{}`", path.display()))?,
            None => Connection::open_in_memory()?,
        };
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let synchronous = match durability {
            Durability::Full => "FULL",
            Durability::BestEffort => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous)?;
        conn.execute_batch(schema)
            .with_context(|| format!("could not create the {what}'s tables"))?;
        let prepared = prepare(&conn).with_context(|| format!("could not read the {what}"))?;
        let (jobs, rx) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = commits.clone();
        std::thread::Builder::new()
            .name(format!("wisp-{}", what.replace(' ', "-")))
            .spawn(move || run(conn, rx, &counter, what))
            .with_context(|| format!("could not start the {what}'s thread"))?;
        Ok((
            Database {
                jobs,
                commits,
                what,
            },
            prepared,
        ))
    }

    fn send(&self, job: Job) -> Result<()> {
        self.jobs
            .send(job)
            .map_err(|_| anyhow!("the {} has stopped", self.what))
    }

    /// Runs `write` in the next group commit; on return it is on disk.
    pub async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let what = self.what;
        self.send(Job::Write(Box::new(move |conn| {
            let (outcome, value) = match write(conn) {
                Ok(value) => (Ok(()), Ok(value)),
                Err(e) => (Err(e), Err(())),
            };
            let error = outcome.as_ref().err().map(|e| e.to_string());
            let done: Done = Box::new(move |committed| {
                let reply = match (value, committed) {
                    (Ok(value), Ok(())) => Ok(value),
                    (Ok(_), Err(e)) => Err(anyhow!("{what}: could not commit: {e}")),
                    (Err(()), _) => Err(anyhow!("{what}: {}", error.unwrap_or_default())),
                };
                let _ = tx.send(reply);
            });
            (outcome, done)
        })))?;
        rx.await.map_err(|_| anyhow!("the {what} has stopped"))?
    }

    /// Runs `write` in the next group commit without waiting: for
    /// acknowledgements, whose loss in a crash only means a redelivery.
    pub fn write_soon(
        &self,
        write: impl FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static,
    ) {
        let what = self.what;
        let job = Job::Write(Box::new(move |conn| {
            let outcome = write(conn);
            if let Err(e) = &outcome {
                tracing::error!("{what}: {e}");
            }
            let done: Done = Box::new(|_| {});
            (outcome, done)
        }));
        if self.send(job).is_err() {
            tracing::warn!("the {what} has stopped: a change will be redone after a restart");
        }
    }

    /// Runs `read` on the connection once everything queued before it is
    /// committed (it may also write, in a transaction of its own).
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let what = self.what;
        self.send(Job::Read(Box::new(move |conn| {
            let _ = tx.send(read(conn).map_err(|e| anyhow!("{what}: {e}")));
        })))?;
        rx.await.map_err(|_| anyhow!("the {what} has stopped"))?
    }

    /// Waits until every write queued so far is on disk.
    pub async fn flush(&self) -> Result<()> {
        self.write(|_| Ok(())).await
    }

    /// Transactions committed since start: each costs one fsync of the log.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

/// The database's thread: commits queued writes in groups, runs reads in
/// between, until every handle is gone.
fn run(mut conn: Connection, jobs: mpsc::Receiver<Job>, commits: &AtomicU64, what: &str) {
    let mut queued = Vec::new();
    while let Ok(first) = jobs.recv() {
        queued.push(first);
        while queued.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => queued.push(job),
                Err(_) => break,
            }
        }
        let mut group = Vec::new();
        for job in queued.drain(..) {
            match job {
                Job::Write(write) => group.push(write),
                Job::Read(read) => {
                    // Reads see every write queued before them.
                    commit(&mut conn, std::mem::take(&mut group), commits, what);
                    read(&mut conn);
                }
            }
        }
        commit(&mut conn, group, commits, what);
    }
}

fn commit(conn: &mut Connection, group: Vec<Write>, commits: &AtomicU64, what: &str) {
    if group.is_empty() {
        return;
    }
    let mut dones = Vec::with_capacity(group.len());
    let outcome = (|| -> rusqlite::Result<()> {
        let mut tx = conn.transaction()?;
        for write in group {
            let mut sp = tx.savepoint()?;
            let (result, done) = write(&sp);
            dones.push(done);
            match result {
                Ok(()) => sp.commit()?,
                // A failing write is rolled back alone; its caller hears why.
                Err(_) => sp.rollback()?,
            }
        }
        tx.commit()
    })();
    commits.fetch_add(1, Ordering::Relaxed);
    let outcome = outcome.map_err(|e| {
        tracing::error!("{what}: could not commit: {e}");
        e.to_string()
    });
    for done in dones {
        done(outcome.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_commit_in_groups_and_a_failing_one_fails_alone() {
        let db = Database::open(None, "CREATE TABLE t (k TEXT PRIMARY KEY)", "test store").unwrap();
        let a = db.write(|c| c.execute("INSERT INTO t VALUES ('a')", []));
        let dup = db.write(|c| c.execute("INSERT INTO t VALUES ('a')", []));
        let b = db.write(|c| c.execute("INSERT INTO t VALUES ('b')", []));
        let (a, dup, b) = tokio::join!(a, dup, b);
        assert_eq!((a.unwrap(), b.unwrap()), (1, 1));
        assert!(dup.unwrap_err().to_string().contains("test store"));
        let n: i64 = db
            .read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(n, 2);
        assert!(db.commits() >= 1);
    }
}
