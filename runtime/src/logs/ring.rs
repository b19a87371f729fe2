//! The ring itself: one SQLite table in `STATE_DIR/logs.sqlite3` (in
//! memory without a state directory), trimmed per function to
//! [`Bounds`] as records are written.
//!
//! A record's size is its line's bytes plus [`RECORD_OVERHEAD`]; the
//! database thread keeps each function's total, and when one passes
//! `max_bytes` it deletes that function's oldest records down to 90 % of
//! it, so trims are rare and each is one range delete. Records older than
//! `max_age` go at most every [`AGE_TRIM_INTERVAL`] (or every `max_age`,
//! when that is shorter), at a write. A function may have bounds of its own
//! (`[function.logs]`, see [`LogStore::set_bounds`]).
//!
//! Guest lines are stored without revision and trigger; a query takes them
//! from the invocation's access record.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use rusqlite::ToSql;
use rusqlite::types::Value;
use rusqlite::{Connection, params, params_from_iter};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::logs::query::{Line, Page, Query};
use crate::logs::{Entry, now_ms, rfc3339};
use crate::store::sqlite::{Database, Durability};
use crate::telemetry::ids::InvocationId;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    function TEXT NOT NULL,
    revision INTEGER,
    invocation INTEGER,
    trigger TEXT,
    -- stdout | stderr | access
    stream TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    line TEXT NOT NULL,
    status INTEGER,
    duration_ms REAL,
    method TEXT,
    path TEXT,
    size INTEGER NOT NULL,
    cpu_ms REAL,
    peak_memory_bytes INTEGER,
    gb_s REAL
);
CREATE INDEX IF NOT EXISTS logs_function ON logs (function, id);
CREATE INDEX IF NOT EXISTS logs_invocation ON logs (function, invocation);
";

/// Columns added since the table was first made, added to older stores
/// when they are opened.
const ADDED_COLUMNS: [(&str, &str); 3] = [
    ("cpu_ms", "REAL"),
    ("peak_memory_bytes", "INTEGER"),
    ("gb_s", "REAL"),
];

fn add_missing_columns(conn: &Connection) -> rusqlite::Result<()> {
    for (column, kind) in ADDED_COLUMNS {
        let present: bool = conn.query_row(
            "SELECT count(*) > 0 FROM pragma_table_info('logs') WHERE name = ?1",
            [column],
            |r| r.get(0),
        )?;
        if !present {
            conn.execute(&format!("ALTER TABLE logs ADD COLUMN {column} {kind}"), [])?;
        }
    }
    Ok(())
}

/// Bytes counted per record beside its line and path: the other columns and
/// the indexes, roughly.
pub const RECORD_OVERHEAD: u64 = 64;

/// How often records past `max_age` are looked for.
const AGE_TRIM_INTERVAL: Duration = Duration::from_secs(60);

/// How often the records gathered are handed to the database thread: one
/// wake-up and one transaction per interval, not per record.
const WRITE_INTERVAL: Duration = Duration::from_millis(100);

/// Bytes of records waiting for the database thread; beyond it new ones
/// are dropped (and counted) rather than waited for.
const MAX_PENDING_BYTES: usize = 8 << 20;

/// How much log each function keeps.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub max_bytes: u64,
    pub max_age: Duration,
}

fn size(entry: &Entry) -> u64 {
    let path = entry.access.as_ref().and_then(|a| a.request.as_ref());
    entry.line_len() as u64 + path.map_or(0, |(_, p)| p.len() as u64) + RECORD_OVERHEAD
}

#[derive(Default)]
struct Pending {
    entries: Vec<Entry>,
    bytes: usize,
    /// A write taking `entries` is queued.
    scheduled: bool,
}

/// What the database thread keeps between writes.
#[derive(Default)]
struct Totals {
    /// Bytes of each function's records.
    bytes: HashMap<String, u64>,
    /// When records past `max_age` were last removed.
    age_trimmed_ms: u64,
}

struct Inner {
    db: Database,
    /// The server's bounds, for functions without their own.
    bounds: Bounds,
    /// Functions with bounds of their own.
    own: Mutex<HashMap<String, Bounds>>,
    pending: Mutex<Pending>,
    totals: Mutex<Totals>,
    /// The newest record's id, for followers.
    newest: watch::Sender<i64>,
    /// Records dropped because the database thread was far behind.
    dropped: AtomicU64,
    /// Ends every follow (at shutdown, so their connections close).
    stopping: CancellationToken,
}

/// A handle to the log store; cheap to clone.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

impl LogStore {
    pub fn open(state_dir: Option<&Path>, bounds: Bounds) -> Result<LogStore> {
        let path = state_dir.map(|d| d.join("logs.sqlite3"));
        let (db, (bytes, newest)) = Database::open_with(
            path.as_deref(),
            SCHEMA,
            "log store",
            Durability::BestEffort,
            |conn| {
                add_missing_columns(conn)?;
                let mut rows =
                    conn.prepare("SELECT function, sum(size) FROM logs GROUP BY function")?;
                let bytes = rows
                    .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
                    .collect::<rusqlite::Result<_>>()?;
                let newest =
                    conn.query_row("SELECT coalesce(max(id), 0) FROM logs", [], |r| r.get(0))?;
                Ok((bytes, newest))
            },
        )?;
        let inner = Arc::new(Inner {
            db,
            bounds,
            own: Mutex::default(),
            pending: Mutex::default(),
            totals: Mutex::new(Totals {
                bytes,
                age_trimmed_ms: 0,
            }),
            newest: watch::Sender::new(newest),
            dropped: AtomicU64::new(0),
            stopping: CancellationToken::new(),
        });
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(WRITE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(inner) => Inner::write_soon(&inner),
                    None => return,
                }
            }
        });
        Ok(LogStore { inner })
    }

    /// Keeps `entry` for the next write (within [`WRITE_INTERVAL`]); never
    /// waits.
    pub fn record(&self, entry: Entry) {
        let len = entry.line_len();
        let mut pending = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.bytes + len > MAX_PENDING_BYTES {
            drop(pending);
            if self.inner.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(
                    "the log store is more than {MAX_PENDING_BYTES} bytes behind; records are \
                     dropped from it (they still reach stderr)"
                );
            }
            return;
        }
        pending.bytes += len;
        pending.entries.push(entry);
    }

    /// One function's records as `query` asks, everything recorded before
    /// it included.
    pub async fn query(&self, function: &str, query: &Query) -> Result<Page> {
        Inner::write_soon(&self.inner);
        let function = function.to_string();
        let query = query.clone();
        self.inner
            .db
            .read(move |conn| select(conn, &function, &query))
            .await
    }

    /// Changes when records are written: its value is the newest id.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.inner.newest.subscribe()
    }

    /// Resolves when follows must end.
    pub async fn stopping(&self) {
        self.inner.stopping.cancelled().await
    }

    /// Ends every follow.
    pub fn stop_follows(&self) {
        self.inner.stopping.cancel();
    }

    /// Gives `function` its own bounds: `max_bytes` and `max_age` where
    /// given, the server's otherwise (both `None`: the server's).
    pub fn set_bounds(&self, function: &str, max_bytes: Option<u64>, max_age: Option<Duration>) {
        let mut own = self.inner.own.lock().unwrap_or_else(|e| e.into_inner());
        if max_bytes.is_none() && max_age.is_none() {
            own.remove(function);
            return;
        }
        let server = self.inner.bounds;
        own.insert(
            function.to_string(),
            Bounds {
                max_bytes: max_bytes.unwrap_or(server.max_bytes),
                max_age: max_age.unwrap_or(server.max_age),
            },
        );
    }

    /// Waits until everything recorded so far is written.
    pub async fn flush(&self) -> Result<()> {
        Inner::write_soon(&self.inner);
        self.inner.db.flush().await
    }
}

impl Inner {
    /// Hands the pending records to the database thread, unless there are
    /// none or a write taking them is already queued.
    fn write_soon(inner: &Arc<Inner>) {
        {
            let mut pending = inner.pending.lock().unwrap_or_else(|e| e.into_inner());
            if pending.entries.is_empty() || std::mem::replace(&mut pending.scheduled, true) {
                return;
            }
        }
        let this = inner.clone();
        inner.db.write_soon(move |conn| this.write(conn));
    }

    /// Writes the pending records and trims; on the database thread.
    fn write(&self, conn: &Connection) -> rusqlite::Result<()> {
        let entries = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.scheduled = false;
            pending.bytes = 0;
            std::mem::take(&mut pending.entries)
        };
        let mut added: HashMap<&str, u64> = HashMap::new();
        let mut rows = entries.chunks_exact(ROWS_PER_INSERT);
        let many = insert_sql(ROWS_PER_INSERT);
        for chunk in rows.by_ref() {
            insert(conn, &many, chunk, &mut added)?;
        }
        let one = insert_sql(1);
        for entry in rows.remainder() {
            insert(conn, &one, std::slice::from_ref(entry), &mut added)?;
        }
        let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        let mut bytes = totals.bytes.clone();
        for (function, size) in added {
            *bytes.entry(function.to_string()).or_default() += size;
        }
        let own = self.own.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let bounds = |function: &str| own.get(function).copied().unwrap_or(self.bounds);
        for (function, total) in bytes.iter_mut() {
            let max = bounds(function).max_bytes;
            if *total > max {
                *total -= trim(conn, function, *total, max / 10 * 9)?;
            }
        }
        let now = now_ms();
        let shortest = own
            .values()
            .map(|b| b.max_age)
            .fold(self.bounds.max_age.min(AGE_TRIM_INTERVAL), Duration::min);
        let age_trim = now.saturating_sub(totals.age_trimmed_ms) >= shortest.as_millis() as u64;
        if age_trim {
            let before = |age: Duration| now.saturating_sub(age.as_millis() as u64) as i64;
            let mut freed = expire(conn, None, before(self.bounds.max_age), &own)?;
            for (function, b) in &own {
                freed.extend(expire(conn, Some(function), before(b.max_age), &own)?);
            }
            for (function, size) in freed {
                if let Some(total) = bytes.get_mut(&function) {
                    *total = total.saturating_sub(size);
                }
            }
        }
        // Everything went in: the totals follow.
        bytes.retain(|_, total| *total > 0);
        totals.bytes = bytes;
        if age_trim {
            totals.age_trimmed_ms = now;
        }
        self.newest.send_replace(conn.last_insert_rowid());
        Ok(())
    }
}

/// Rows one `INSERT` statement writes. A statement per row paid, for every
/// row, a statement's step and reset and `AUTOINCREMENT`'s read and update
/// of its sequence: a batch goes in statements of this many rows and the
/// rest one by one (so only two statements are ever cached), which took a
/// quarter off the database thread's CPU per record.
const ROWS_PER_INSERT: usize = 32;

/// The columns an insert writes, in its parameters' order.
const INSERTED: &str = "function, revision, invocation, trigger, stream, at_ms, line, status, \
     duration_ms, method, path, size, cpu_ms, peak_memory_bytes, gb_s";

/// An `INSERT` of `rows` records.
fn insert_sql(rows: usize) -> String {
    let row = format!("({})", vec!["?"; INSERTED.split(',').count()].join(", "));
    format!(
        "INSERT INTO logs ({INSERTED}) VALUES {}",
        vec![row; rows].join(", ")
    )
}

/// Writes `entries` with `sql`, the [`insert_sql`] of as many rows, adding
/// each one's size to its function's in `added`.
fn insert<'a>(
    conn: &Connection,
    sql: &str,
    entries: &'a [Entry],
    added: &mut HashMap<&'a str, u64>,
) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(sql)?;
    // Parameters are numbered from 1, row after row.
    let mut bound = 0;
    for e in entries {
        let size = size(e);
        let access = e.access.as_ref();
        let request = access.and_then(|a| a.request.as_ref());
        let mut bind = |value: &dyn ToSql| {
            bound += 1;
            insert.raw_bind_parameter(bound, value)
        };
        bind(&&*e.function)?;
        bind(&e.revision.map(|r| r as i64))?;
        bind(&e.invocation.map(|i| i.0 as i64))?;
        bind(&e.trigger.map(|t| t.as_str()))?;
        bind(&e.stream)?;
        bind(&(e.at_ms as i64))?;
        bind(&e.line())?;
        bind(&access.map(|a| a.status))?;
        bind(&access.map(|a| a.duration_ms))?;
        bind(&request.map(|(m, _)| m.as_str()))?;
        bind(&request.map(|(_, p)| p))?;
        bind(&(size as i64))?;
        bind(&access.map(|a| a.cpu_ms))?;
        bind(&access.map(|a| a.peak_memory_bytes as i64))?;
        bind(&access.map(|a| a.gb_s))?;
        *added.entry(&e.function).or_default() += size;
    }
    debug_assert_eq!(bound, insert.parameter_count(), "{sql}");
    insert.raw_execute()?;
    Ok(())
}

/// Deletes the records written before `oldest_ms` (milliseconds since the
/// epoch) of `function`, or with `None` of every function without bounds
/// of its own (`own`); returns the function and size of each.
///
/// Records are written in time order, near enough: everything before the
/// first young record goes (found by walking from the oldest, cheaper than
/// a time index updated on every insert).
fn expire(
    conn: &Connection,
    function: Option<&str>,
    oldest_ms: i64,
    own: &HashMap<String, Bounds>,
) -> rusqlite::Result<Vec<(String, u64)>> {
    let mut args = vec![Value::Integer(oldest_ms)];
    let sql = match function {
        Some(function) => {
            args.push(Value::Text(function.to_string()));
            "DELETE FROM logs WHERE function = ?2 AND id < coalesce(
                (SELECT id FROM logs WHERE function = ?2 AND at_ms >= ?1 ORDER BY id LIMIT 1),
                (SELECT max(id) + 1 FROM logs))
             RETURNING function, size"
                .to_string()
        }
        None => {
            let mut sql = "DELETE FROM logs WHERE id < coalesce(
                (SELECT id FROM logs WHERE at_ms >= ?1 ORDER BY id LIMIT 1),
                (SELECT max(id) + 1 FROM logs))"
                .to_string();
            if !own.is_empty() {
                let marks: Vec<String> = (2..own.len() + 2).map(|i| format!("?{i}")).collect();
                sql.push_str(&format!(" AND function NOT IN ({})", marks.join(", ")));
                args.extend(own.keys().map(|f| Value::Text(f.clone())));
            }
            sql + " RETURNING function, size"
        }
    };
    let mut expired = conn.prepare_cached(&sql)?;
    let rows = expired.query_map(params_from_iter(args), |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
    })?;
    rows.collect()
}

/// Deletes `function`'s oldest records until at most `target` of its
/// `total` bytes remain; returns the bytes freed.
fn trim(conn: &Connection, function: &str, total: u64, target: u64) -> rusqlite::Result<u64> {
    let mut oldest =
        conn.prepare_cached("SELECT id, size FROM logs WHERE function = ?1 ORDER BY id")?;
    let mut rows = oldest.query([function])?;
    let (mut freed, mut last) = (0, None);
    while total - freed > target {
        let Some(row) = rows.next()? else { break };
        freed += row.get::<_, i64>(1)? as u64;
        last = Some(row.get::<_, i64>(0)?);
    }
    drop(rows);
    if let Some(last) = last {
        conn.prepare_cached("DELETE FROM logs WHERE function = ?1 AND id <= ?2")?
            .execute(params![function, last])?;
    }
    Ok(freed)
}

/// The columns of a [`Line`]; guest lines take revision and trigger from
/// their invocation's access record `a`.
const COLUMNS: &str = "l.id, l.at_ms, l.function, coalesce(l.revision, a.revision), l.invocation,
    coalesce(l.trigger, a.trigger), l.stream, l.line, l.status, l.duration_ms, l.method, l.path,
    l.cpu_ms, l.peak_memory_bytes, l.gb_s
    FROM logs l LEFT JOIN logs a ON l.stream != 'access' AND a.function = l.function
        AND a.invocation = l.invocation AND a.stream = 'access'";

fn line(r: &rusqlite::Row) -> rusqlite::Result<Line> {
    Ok(Line {
        id: r.get(0)?,
        time: rfc3339(r.get::<_, i64>(1)? as u64),
        function: r.get(2)?,
        revision: r.get::<_, Option<i64>>(3)?.map(|n| n as u64),
        invocation: r
            .get::<_, Option<i64>>(4)?
            .map(|i| InvocationId(i as u64).to_string()),
        trigger: r.get(5)?,
        stream: r.get(6)?,
        line: r.get(7)?,
        status: r.get(8)?,
        duration_ms: r.get(9)?,
        method: r.get(10)?,
        path: r.get(11)?,
        cpu_ms: r.get(12)?,
        peak_memory_bytes: r.get::<_, Option<i64>>(13)?.map(|b| b as u64),
        gb_s: r.get(14)?,
    })
}

fn select(conn: &Connection, function: &str, q: &Query) -> rusqlite::Result<Page> {
    let newest: i64 = conn.query_row("SELECT coalesce(max(id), 0) FROM logs", [], |r| r.get(0))?;
    let mut filter = String::from("l.function = ?1");
    let mut args = vec![Value::Text(function.to_string())];
    let mut arg = |filter: &mut String, sql: &str, value: Value| {
        args.push(value);
        filter.push_str(&sql.replace('?', &format!("?{}", args.len())));
    };
    if let Some(id) = q.invocation {
        arg(
            &mut filter,
            " AND l.invocation = ?",
            Value::Integer(id.0 as i64),
        );
    }
    if let Some(since) = q.since_ms {
        arg(
            &mut filter,
            " AND l.at_ms >= ?",
            Value::Integer(since as i64),
        );
    }
    if let Some(stream) = q.stream {
        arg(&mut filter, " AND l.stream = ?", Value::Text(stream.into()));
    }
    // The access records that select invocations by status; with `after`,
    // the cursor runs over them (a guest line comes before its access
    // record, so it is returned with it).
    let mut access = String::new();
    if let Some(status) = q.status {
        access = "SELECT invocation FROM logs WHERE function = ?1 AND stream = 'access'".into();
        arg(
            &mut access,
            " AND status >= ?",
            Value::Integer(status.low.into()),
        );
        arg(
            &mut access,
            " AND status <= ?",
            Value::Integer(status.high.into()),
        );
    }
    let limit = q.limit as i64;
    // Whether a page's cursor runs over the selecting access records
    // rather than over the lines.
    let (sql, runs_over_access) = match (q.after, q.status) {
        (None, _) => {
            if !access.is_empty() {
                filter.push_str(&format!(" AND l.invocation IN ({access})"));
            }
            let sql = format!("SELECT {COLUMNS} WHERE {filter} ORDER BY l.id DESC LIMIT {limit}");
            (sql, false)
        }
        (Some(after), None) => {
            arg(&mut filter, " AND l.id > ?", Value::Integer(after));
            let sql = format!("SELECT {COLUMNS} WHERE {filter} ORDER BY l.id LIMIT {limit}");
            (sql, false)
        }
        (Some(after), Some(_)) => {
            arg(&mut access, " AND id > ?", Value::Integer(after));
            let sql = format!(
                "SELECT {COLUMNS} WHERE {filter} AND l.invocation IN ({access} ORDER BY id LIMIT {limit})
                 ORDER BY l.id"
            );
            (sql, true)
        }
    };
    let mut rows = conn.prepare(&sql)?;
    let mut lines: Vec<Line> = rows
        .query_map(params_from_iter(args), line)?
        .collect::<rusqlite::Result<_>>()?;
    let next = match q.after {
        // The newest lines: what follows is what is written next.
        None => {
            lines.reverse();
            newest
        }
        // A full page may have more behind it: go on from its end.
        Some(_) if lines.len() >= q.limit => lines
            .iter()
            .filter(|l| !runs_over_access || l.stream == "access")
            .map(|l| l.id)
            .max()
            .unwrap_or(newest),
        Some(after) => newest.max(after),
    };
    Ok(Page { lines, next })
}

#[cfg(test)]
mod tests;
