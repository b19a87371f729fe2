//! Executions, their tasks' states and their logs in the shared
//! group-committing SQLite [`Database`]: after a restart an execution
//! resumes where it was — finished tasks stay finished, the others run.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::events::now_ms;
use crate::store::sqlite::Database;
use crate::tasks::task::rfc3339;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    finished_ms INTEGER,
    tasks INTEGER NOT NULL,
    parallelism INTEGER NOT NULL,
    -- running | succeeded | failed | cancelled
    state TEXT NOT NULL,
    env TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_job ON executions (job, created_ms);
CREATE TABLE IF NOT EXISTS job_tasks (
    execution TEXT NOT NULL,
    idx INTEGER NOT NULL,
    -- pending | running | succeeded | failed | cancelled
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    exit TEXT,
    started_ms INTEGER,
    ended_ms INTEGER,
    PRIMARY KEY (execution, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS job_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    execution TEXT NOT NULL,
    idx INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    stream TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_logs_execution ON job_logs (execution, id);
";

/// An execution as listed.
#[derive(Clone, Debug, Serialize)]
pub struct Execution {
    pub id: String,
    pub job: String,
    pub state: String,
    pub tasks: u32,
    pub parallelism: u32,
    pub created: String,
    pub finished: Option<String>,
    #[serde(skip)]
    pub env: BTreeMap<String, String>,
}

/// A task of an execution as `wisp jobs describe` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct TaskState {
    pub index: u32,
    pub state: String,
    pub attempts: u32,
    /// How its last attempt ended (`exit code 0`, `timed out`, …).
    pub exit: Option<String>,
    /// Milliseconds of its last attempt.
    pub duration_ms: Option<u64>,
}

/// One line a task printed.
#[derive(Clone, Debug, Serialize)]
pub struct LogLine {
    pub id: i64,
    pub task: u32,
    pub attempt: u32,
    pub stream: String,
    pub at: String,
    pub line: String,
}

#[derive(Clone)]
pub struct JobStore {
    db: Database,
}

fn execution(row: &rusqlite::Row) -> rusqlite::Result<Execution> {
    let env: String = row.get(7)?;
    Ok(Execution {
        id: row.get(0)?,
        job: row.get(1)?,
        created: rfc3339(row.get::<_, i64>(2)? as u64),
        finished: row.get::<_, Option<i64>>(3)?.map(|ms| rfc3339(ms as u64)),
        tasks: row.get(4)?,
        parallelism: row.get(5)?,
        state: row.get(6)?,
        env: serde_json::from_str(&env).unwrap_or_default(),
    })
}

const EXECUTION_COLUMNS: &str = "id, job, created_ms, finished_ms, tasks, parallelism, state, env";

impl JobStore {
    pub fn open(state_dir: Option<&Path>) -> Result<Self> {
        let path = state_dir.map(|d| d.join("jobs.sqlite3"));
        Ok(JobStore {
            db: Database::open(path.as_deref(), SCHEMA, "job store")?,
        })
    }

    /// Records a new execution and its pending tasks.
    pub async fn create(&self, exec: &Execution) -> Result<()> {
        let exec = exec.clone();
        self.db
            .write(move |conn| {
                let env = serde_json::to_string(&exec.env).unwrap_or_default();
                conn.execute(
                    "INSERT INTO executions (id, job, created_ms, tasks, parallelism, state, env)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6)",
                    params![
                        exec.id,
                        exec.job,
                        now_ms() as i64,
                        exec.tasks,
                        exec.parallelism,
                        env
                    ],
                )?;
                let mut insert = conn.prepare_cached(
                    "INSERT INTO job_tasks (execution, idx, state) VALUES (?1, ?2, 'pending')",
                )?;
                for idx in 0..exec.tasks {
                    insert.execute(params![exec.id, idx])?;
                }
                Ok(())
            })
            .await
    }

    /// Executions still running (to resume after a restart).
    pub async fn running(&self) -> Result<Vec<Execution>> {
        self.db
            .read(|conn| {
                let mut rows = conn.prepare(&format!(
                    "SELECT {EXECUTION_COLUMNS} FROM executions WHERE state = 'running' ORDER BY created_ms"
                ))?;
                let running = rows.query_map([], execution)?.collect::<rusqlite::Result<_>>()?;
                Ok(running)
            })
            .await
    }

    pub async fn executions(&self, job: &str, limit: usize) -> Result<Vec<Execution>> {
        let job = job.to_string();
        self.db
            .read(move |conn| {
                let mut rows = conn.prepare(&format!(
                    "SELECT {EXECUTION_COLUMNS} FROM executions WHERE job = ?1 ORDER BY created_ms DESC LIMIT ?2"
                ))?;
                let list = rows
                    .query_map(params![job, limit as i64], execution)?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(list)
            })
            .await
    }

    pub async fn execution(&self, id: &str) -> Result<Option<(Execution, Vec<TaskState>)>> {
        let id = id.to_string();
        self.db
            .read(move |conn| {
                let Some(exec) = conn
                    .query_row(
                        &format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?1"),
                        [&id],
                        execution,
                    )
                    .optional()?
                else {
                    return Ok(None);
                };
                let mut rows = conn.prepare(
                    "SELECT idx, state, attempts, exit, started_ms, ended_ms FROM job_tasks
                     WHERE execution = ?1 ORDER BY idx",
                )?;
                let tasks = rows
                    .query_map([&id], |r| {
                        let started: Option<i64> = r.get(4)?;
                        let ended: Option<i64> = r.get(5)?;
                        Ok(TaskState {
                            index: r.get(0)?,
                            state: r.get(1)?,
                            attempts: r.get(2)?,
                            exit: r.get(3)?,
                            duration_ms: started
                                .zip(ended)
                                .map(|(s, e)| e.saturating_sub(s) as u64),
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(Some((exec, tasks)))
            })
            .await
    }

    /// A task's attempt starts: running, `attempts` attempts made.
    pub async fn start_task(&self, exec: &str, idx: u32, attempts: u32) -> Result<()> {
        let exec = exec.to_string();
        self.db
            .write(move |conn| {
                conn.execute(
                    "UPDATE job_tasks SET state = 'running', attempts = ?3, started_ms = ?4, ended_ms = NULL
                     WHERE execution = ?1 AND idx = ?2",
                    params![exec, idx, attempts, now_ms() as i64],
                )
                .map(drop)
            })
            .await
    }

    /// A task's attempt ended; `state` is where the task now is.
    pub async fn end_task(
        &self,
        exec: &str,
        idx: u32,
        state: &'static str,
        exit: String,
    ) -> Result<()> {
        let exec = exec.to_string();
        self.db
            .write(move |conn| {
                conn.execute(
                    "UPDATE job_tasks SET state = ?3, exit = ?4, ended_ms = ?5 WHERE execution = ?1 AND idx = ?2",
                    params![exec, idx, state, exit, now_ms() as i64],
                )
                .map(drop)
            })
            .await
    }

    pub async fn finish(&self, exec: &str, state: &'static str) -> Result<()> {
        let exec = exec.to_string();
        self.db
            .write(move |conn| {
                conn.execute(
                    "UPDATE executions SET state = ?2, finished_ms = ?3 WHERE id = ?1",
                    params![exec, state, now_ms() as i64],
                )?;
                conn.execute(
                    "UPDATE job_tasks SET state = 'cancelled' WHERE execution = ?1
                     AND state IN ('pending', 'running') AND ?2 = 'cancelled'",
                    params![exec, state],
                )
                .map(drop)
            })
            .await
    }

    /// Lines a task printed, with the next group commit.
    pub fn log(
        &self,
        exec: &str,
        idx: u32,
        attempt: u32,
        stream: &'static str,
        lines: Vec<String>,
    ) {
        let exec = exec.to_string();
        self.db.write_soon(move |conn| {
            let mut insert = conn.prepare_cached(
                "INSERT INTO job_logs (execution, idx, attempt, stream, at_ms, line) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let now = now_ms() as i64;
            for line in lines {
                insert.execute(params![exec, idx, attempt, stream, now, line])?;
            }
            Ok(())
        });
    }

    /// Log lines of `exec` after line id `after`, optionally of one task.
    pub async fn logs(
        &self,
        exec: &str,
        task: Option<u32>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<LogLine>> {
        let exec = exec.to_string();
        self.db
            .read(move |conn| {
                let mut rows = conn.prepare(
                    "SELECT id, idx, attempt, stream, at_ms, line FROM job_logs
                     WHERE execution = ?1 AND id > ?2 AND (?3 IS NULL OR idx = ?3) ORDER BY id LIMIT ?4",
                )?;
                let lines = rows
                    .query_map(params![exec, after, task, limit as i64], |r| {
                        Ok(LogLine {
                            id: r.get(0)?,
                            task: r.get(1)?,
                            attempt: r.get(2)?,
                            stream: r.get(3)?,
                            at: rfc3339(r.get::<_, i64>(4)? as u64),
                            line: r.get(5)?,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(lines)
            })
            .await
    }

    pub async fn flush(&self) -> Result<()> {
        self.db.flush().await
    }
}
