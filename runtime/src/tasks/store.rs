//! Tasks, task names (dedup), queue and schedule state in the shared
//! group-committing SQLite [`Database`]. A schedule's firing is stored as a
//! task of the schedule's own queue together with the schedule's last due
//! time, in one transaction: a restart neither repeats a recorded firing
//! nor loses a due one.

use std::path::Path;

use anyhow::Result;
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::events::now_ms;
use crate::store::sqlite::Database;
use crate::tasks::task::{Checked, Request, generated_name};

pub type Seq = u64;

/// How long a task's name stays taken after it was added.
pub const DEDUP_WINDOW_MS: u64 = 3600 * 1000;
/// How long failed tasks stay listed.
const FAILED_KEPT_MS: u64 = 7 * 24 * 3600 * 1000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    name TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    due_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    first_attempt_ms INTEGER,
    failed INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    request BLOB NOT NULL,
    body BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_name ON tasks (queue, name);
CREATE TABLE IF NOT EXISTS task_names (
    queue TEXT NOT NULL,
    name TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (queue, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queue_state (
    queue TEXT PRIMARY KEY,
    paused INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS schedule_state (
    name TEXT PRIMARY KEY,
    last_due_ms INTEGER,
    paused INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    last_run_ms INTEGER
);
";

/// A task not yet done, as a dispatcher resumes it.
#[derive(Clone, Debug)]
pub struct Pending {
    pub seq: Seq,
    pub name: String,
    pub due_ms: u64,
    pub attempts: u32,
    pub first_attempt_ms: Option<u64>,
}

/// A task as `wisp tasks list` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Listed {
    pub name: String,
    /// `pending`, `scheduled`, `in_flight` or `failed`.
    pub state: &'static str,
    pub schedule_time: String,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    #[serde(skip)]
    pub seq: Seq,
}

/// What a schedule's firing loop resumes from.
#[derive(Clone, Debug, Default)]
pub struct ScheduleState {
    pub last_due_ms: Option<u64>,
    pub paused: bool,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_run_ms: Option<u64>,
}

/// Why an enqueue was refused.
#[derive(Debug)]
pub enum AddError {
    /// The name was used within the dedup window.
    Taken(String),
    Store(anyhow::Error),
}

/// The outcome of an attempt, as recorded.
pub enum Record {
    Done,
    Retry {
        attempts: u32,
        due_ms: u64,
        first_attempt_ms: u64,
        status: u16,
        error: String,
    },
    Failed {
        attempts: u32,
        first_attempt_ms: u64,
        status: u16,
        error: String,
    },
}

#[derive(Clone)]
pub struct TaskStore {
    db: Database,
}

fn insert(
    conn: &Connection,
    queue: &str,
    task: &Checked,
    now: u64,
) -> rusqlite::Result<Result<(Seq, String), String>> {
    let name = task.name.clone().unwrap_or_else(generated_name);
    let taken: Option<i64> = conn
        .query_row(
            "SELECT created_ms FROM task_names WHERE queue = ?1 AND name = ?2 AND created_ms > ?3",
            params![queue, name, now.saturating_sub(DEDUP_WINDOW_MS) as i64],
            |r| r.get(0),
        )
        .optional()?;
    let pending: bool = conn
        .query_row(
            "SELECT 1 FROM tasks WHERE queue = ?1 AND name = ?2",
            params![queue, name],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if taken.is_some() || pending {
        return Ok(Err(name));
    }
    let request = serde_json::to_vec(&task.request)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.prepare_cached(
        "INSERT INTO tasks (queue, name, created_ms, due_ms, request, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        queue,
        name,
        now as i64,
        task.due_ms.unwrap_or(now) as i64,
        request,
        &task.body[..]
    ])?;
    let seq = conn.last_insert_rowid() as Seq;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO task_names (queue, name, created_ms) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![queue, name, now as i64])?;
    Ok(Ok((seq, name)))
}

impl TaskStore {
    pub fn open(state_dir: Option<&Path>) -> Result<Self> {
        let path = state_dir.map(|d| d.join("tasks.sqlite3"));
        Ok(TaskStore {
            db: Database::open(path.as_deref(), SCHEMA, "task store")?,
        })
    }

    /// Adds a task durably; returns its sequence number and name.
    pub async fn add(&self, queue: &str, task: Checked) -> Result<(Seq, String), AddError> {
        let queue = queue.to_string();
        match self
            .db
            .write(move |conn| insert(conn, &queue, &task, now_ms()))
            .await
        {
            Ok(Ok(added)) => Ok(added),
            Ok(Err(name)) => Err(AddError::Taken(name)),
            Err(e) => Err(AddError::Store(e)),
        }
    }

    /// Records a schedule's firing at `due_ms` as a task of its queue, and
    /// the schedule's last due time, together.
    pub async fn fire(&self, schedule: &str, due_ms: u64, task: Checked) -> Result<Option<Seq>> {
        let schedule = schedule.to_string();
        self.db
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO schedule_state (name, last_due_ms) VALUES (?1, ?2)
                     ON CONFLICT (name) DO UPDATE SET last_due_ms = max(coalesce(last_due_ms, 0), ?2)",
                    params![schedule, due_ms as i64],
                )?;
                Ok(insert(conn, &crate::tasks::schedule_queue(&schedule), &task, now_ms())?
                    .ok()
                    .map(|(seq, _)| seq))
            })
            .await
    }

    /// Records how an attempt of `seq` ended, with the next group commit.
    pub fn record(&self, seq: Seq, record: Record) {
        self.db.write_soon(move |conn| {
            match record {
                Record::Done => {
                    conn.execute("DELETE FROM tasks WHERE seq = ?1", [seq as i64])?;
                }
                Record::Retry {
                    attempts,
                    due_ms,
                    first_attempt_ms,
                    status,
                    error,
                } => {
                    conn.execute(
                        "UPDATE tasks SET attempts = ?2, due_ms = ?3, first_attempt_ms = ?4,
                         last_status = ?5, last_error = ?6 WHERE seq = ?1",
                        params![
                            seq as i64,
                            attempts,
                            due_ms as i64,
                            first_attempt_ms as i64,
                            status,
                            error
                        ],
                    )?;
                }
                Record::Failed {
                    attempts,
                    first_attempt_ms,
                    status,
                    error,
                } => {
                    conn.execute(
                        "UPDATE tasks SET attempts = ?2, first_attempt_ms = ?3, failed = 1,
                         last_status = ?4, last_error = ?5, due_ms = ?6 WHERE seq = ?1",
                        params![
                            seq as i64,
                            attempts,
                            first_attempt_ms as i64,
                            status,
                            error,
                            now_ms() as i64
                        ],
                    )?;
                }
            }
            Ok(())
        });
    }

    /// The request and body of `seq`, if it still exists.
    pub async fn load(&self, seq: Seq) -> Result<Option<(Request, Bytes)>> {
        self.db
            .read(move |conn| {
                let row: Option<(Vec<u8>, Vec<u8>)> = conn
                    .query_row(
                        "SELECT request, body FROM tasks WHERE seq = ?1",
                        [seq as i64],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                Ok(row.and_then(|(request, body)| {
                    Some((serde_json::from_slice(&request).ok()?, Bytes::from(body)))
                }))
            })
            .await
    }

    /// The tasks of `queue` still to deliver, oldest first.
    pub async fn pending(&self, queue: &str) -> Result<Vec<Pending>> {
        let queue = queue.to_string();
        self.db
            .read(move |conn| {
                let mut rows = conn.prepare(
                    "SELECT seq, name, due_ms, attempts, first_attempt_ms FROM tasks
                     WHERE queue = ?1 AND failed = 0 ORDER BY seq",
                )?;
                let pending = rows
                    .query_map([queue], |r| {
                        Ok(Pending {
                            seq: r.get::<_, i64>(0)? as Seq,
                            name: r.get(1)?,
                            due_ms: r.get::<_, i64>(2)? as u64,
                            attempts: r.get(3)?,
                            first_attempt_ms: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(pending)
            })
            .await
    }

    /// Every task of `queue` (failed ones included), at most `limit`.
    pub async fn list(&self, queue: &str, limit: usize) -> Result<Vec<Listed>> {
        let queue = queue.to_string();
        self.db
            .read(move |conn| {
                let now = now_ms();
                let mut rows = conn.prepare(
                    "SELECT seq, name, due_ms, attempts, failed, last_status, last_error FROM tasks
                     WHERE queue = ?1 ORDER BY failed, due_ms, seq LIMIT ?2",
                )?;
                let listed = rows
                    .query_map(params![queue, limit as i64], |r| {
                        let due = r.get::<_, i64>(2)? as u64;
                        let failed: bool = r.get(4)?;
                        Ok(Listed {
                            seq: r.get::<_, i64>(0)? as Seq,
                            name: r.get(1)?,
                            state: if failed {
                                "failed"
                            } else if due > now {
                                "scheduled"
                            } else {
                                "pending"
                            },
                            schedule_time: crate::tasks::task::rfc3339(due),
                            attempts: r.get(3)?,
                            last_status: r.get(5)?,
                            last_error: r.get(6)?,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(listed)
            })
            .await
    }

    /// Deletes the task `name` of `queue`; returns its sequence number.
    pub async fn delete(&self, queue: &str, name: &str) -> Result<Option<Seq>> {
        let (queue, name) = (queue.to_string(), name.to_string());
        self.db
            .write(move |conn| {
                let seq: Option<i64> = conn
                    .query_row(
                        "DELETE FROM tasks WHERE queue = ?1 AND name = ?2 RETURNING seq",
                        params![queue, name],
                        |r| r.get(0),
                    )
                    .optional()?;
                Ok(seq.map(|s| s as Seq))
            })
            .await
    }

    /// Deletes every task of `queue`; returns how many.
    pub async fn purge(&self, queue: &str) -> Result<usize> {
        let queue = queue.to_string();
        self.db
            .write(move |conn| conn.execute("DELETE FROM tasks WHERE queue = ?1", [queue]))
            .await
    }

    pub async fn paused(&self, queue: &str) -> Result<bool> {
        let queue = queue.to_string();
        self.db
            .read(move |conn| {
                Ok(conn
                    .query_row(
                        "SELECT paused FROM queue_state WHERE queue = ?1",
                        [queue],
                        |r| r.get(0),
                    )
                    .optional()?
                    .unwrap_or(false))
            })
            .await
    }

    pub async fn set_paused(&self, queue: &str, paused: bool) -> Result<()> {
        let queue = queue.to_string();
        self.db
            .write(move |conn| {
                conn.execute(
                    "INSERT OR REPLACE INTO queue_state (queue, paused) VALUES (?1, ?2)",
                    params![queue, paused],
                )
                .map(drop)
            })
            .await
    }

    pub async fn schedule_state(&self, name: &str) -> Result<ScheduleState> {
        let name = name.to_string();
        self.db
            .read(move |conn| {
                Ok(conn
                    .query_row(
                        "SELECT last_due_ms, paused, last_status, last_error, last_run_ms
                         FROM schedule_state WHERE name = ?1",
                        [name],
                        |r| {
                            Ok(ScheduleState {
                                last_due_ms: r.get::<_, Option<i64>>(0)?.map(|v| v as u64),
                                paused: r.get(1)?,
                                last_status: r.get(2)?,
                                last_error: r.get(3)?,
                                last_run_ms: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
                            })
                        },
                    )
                    .optional()?
                    .unwrap_or_default())
            })
            .await
    }

    /// Pauses or resumes a schedule; resuming starts from now, so what fell
    /// due while paused does not run.
    pub async fn set_schedule_paused(&self, name: &str, paused: bool) -> Result<()> {
        let name = name.to_string();
        self.db
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO schedule_state (name, paused, last_due_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO UPDATE SET paused = ?2,
                     last_due_ms = CASE WHEN ?2 THEN last_due_ms ELSE ?3 END",
                    params![name, paused, now_ms() as i64],
                )
                .map(drop)
            })
            .await
    }

    /// Records how a schedule's run ended, for `wisp schedules list`.
    pub fn schedule_result(&self, name: &str, status: u16, error: Option<String>) {
        let name = name.to_string();
        self.db.write_soon(move |conn| {
            conn.execute(
                "INSERT INTO schedule_state (name, last_status, last_error, last_run_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET last_status = ?2, last_error = ?3, last_run_ms = ?4",
                params![name, status, error, now_ms() as i64],
            )
            .map(drop)
        });
    }

    /// Forgets names past the dedup window and failed tasks past their
    /// listing time.
    pub async fn sweep(&self) -> Result<()> {
        self.db
            .write(|conn| {
                let now = now_ms();
                conn.execute(
                    "DELETE FROM task_names WHERE created_ms <= ?1",
                    [now.saturating_sub(DEDUP_WINDOW_MS) as i64],
                )?;
                conn.execute(
                    "DELETE FROM tasks WHERE failed = 1 AND due_ms <= ?1",
                    [now.saturating_sub(FAILED_KEPT_MS) as i64],
                )?;
                Ok(())
            })
            .await
    }

    pub async fn flush(&self) -> Result<()> {
        self.db.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(name: Option<&str>) -> Checked {
        Checked {
            name: name.map(str::to_string),
            due_ms: None,
            request: Request {
                method: "POST".into(),
                path: None,
                headers: Vec::new(),
            },
            body: Bytes::from_static(b"hi"),
        }
    }

    #[tokio::test]
    async fn names_are_taken_for_the_dedup_window_even_after_completion() {
        let store = TaskStore::open(None).unwrap();
        let (seq, name) = store.add("q", checked(Some("welcome-42"))).await.unwrap();
        assert_eq!(name, "welcome-42");
        assert!(matches!(
            store.add("q", checked(Some("welcome-42"))).await,
            Err(AddError::Taken(_))
        ));
        store.record(seq, Record::Done);
        assert!(store.pending("q").await.unwrap().is_empty());
        assert!(matches!(
            store.add("q", checked(Some("welcome-42"))).await,
            Err(AddError::Taken(_))
        ));
        // Another queue has its own names; unnamed tasks get fresh ones.
        store
            .add("other", checked(Some("welcome-42")))
            .await
            .unwrap();
        let (_, a) = store.add("q", checked(None)).await.unwrap();
        let (_, b) = store.add("q", checked(None)).await.unwrap();
        assert_ne!(a, b);
        let (request, body) = store.load(seq + 2).await.unwrap().unwrap();
        assert_eq!(
            (request.method.as_str(), body.as_ref()),
            ("POST", &b"hi"[..])
        );
    }

    #[tokio::test]
    async fn a_firing_and_the_schedules_last_due_time_are_recorded_together() {
        let store = TaskStore::open(None).unwrap();
        assert_eq!(store.schedule_state("s").await.unwrap().last_due_ms, None);
        store
            .fire("s", 1000, checked(Some("s-1000")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            store.schedule_state("s").await.unwrap().last_due_ms,
            Some(1000)
        );
        // The same firing twice is one task.
        assert_eq!(
            store
                .fire("s", 1000, checked(Some("s-1000")))
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .pending(&crate::tasks::schedule_queue("s"))
                .await
                .unwrap()
                .len(),
            1
        );
    }
}
