//! The log store: every invocation's guest output and access record, kept
//! per function in a bounded ring (`[server] logs_max_bytes`,
//! `logs_max_age`, or the function's own `[function.logs]`) and queried by `wisp logs` and the admin API.
//!
//! Records reach it without ever waiting: guest lines from the guest log
//! thread ([`crate::sandbox::guestlog`]), access records where each trigger
//! writes its access line. They gather in a bounded buffer that the
//! database thread takes whole in its next group commit ([`ring`]); the
//! database commits without fsync ([`Durability::BestEffort`]), so logs
//! survive a restart or a crash of the process, and the last moments' may
//! be lost with the machine.
//!
//! [`Durability::BestEffort`]: crate::store::sqlite::Durability::BestEffort

mod query;
mod ring;

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

pub use query::{Page, Query, StatusFilter};
pub use ring::{Bounds, LogStore};

use chrono::{DateTime, SecondsFormat, Utc};
use http::Method;

use crate::telemetry::ids::{InvocationId, Trigger};

/// Milliseconds since the epoch. (Its own clock, as the modules below it
/// in the map have none: `events` and `tasks` depend on this one.)
fn now_ms() -> u64 {
    Utc::now().timestamp_millis().max(0) as u64
}

/// Milliseconds since the epoch as RFC 3339, to the millisecond.
fn rfc3339(ms: u64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What an access record adds to its line.
pub struct Access {
    pub status: u16,
    pub duration_ms: f64,
    /// HTTP invocations: the request's method and path.
    pub request: Option<(Method, String)>,
    /// Cost metering (see `invoke::cost`): guest CPU time, the most memory
    /// the instance held, and memory limit × wall time in GB-seconds.
    pub cpu_ms: f64,
    pub peak_memory_bytes: u64,
    pub gb_s: f64,
}

/// One record on its way to the store.
pub struct Entry {
    pub function: Arc<str>,
    /// Guest lines leave it out: they get their invocation's (see
    /// [`ring`]).
    pub revision: Option<u64>,
    /// `None` for a line of an instance shared by concurrent invocations.
    pub invocation: Option<InvocationId>,
    pub trigger: Option<Trigger>,
    /// `stdout`, `stderr` or `access`.
    pub stream: &'static str,
    pub at_ms: u64,
    pub line: RecordLine,
    pub access: Option<Access>,
}

/// What a record's line says.
pub enum RecordLine {
    Text(String),
    /// An HTTP access record's `METHOD PATH STATUS`, spelled out from its
    /// [`Access`] by the database thread rather than on the request's path.
    Request,
}

impl Entry {
    /// The record's line as stored and shown.
    pub fn line(&self) -> Cow<'_, str> {
        match (&self.line, &self.access) {
            (RecordLine::Text(text), _) => Cow::Borrowed(text),
            (
                RecordLine::Request,
                Some(Access {
                    status,
                    request: Some((method, path)),
                    ..
                }),
            ) => Cow::Owned(format!("{method} {path} {status}")),
            (RecordLine::Request, _) => Cow::Borrowed(""),
        }
    }

    /// Bytes of the line, without spelling it out.
    pub fn line_len(&self) -> usize {
        match (&self.line, &self.access) {
            (RecordLine::Text(text), _) => text.len(),
            (
                RecordLine::Request,
                Some(Access {
                    request: Some((method, path)),
                    ..
                }),
            ) => {
                // Two spaces and a three-digit status.
                method.as_str().len() + path.len() + 5
            }
            (RecordLine::Request, _) => 0,
        }
    }
}

impl Entry {
    /// A line the guest printed.
    pub fn guest(
        function: Arc<str>,
        invocation: Option<InvocationId>,
        stream: &'static str,
        line: String,
    ) -> Entry {
        Entry {
            function,
            revision: None,
            invocation,
            trigger: None,
            stream,
            at_ms: now_ms(),
            line: RecordLine::Text(line),
            access: None,
        }
    }

    /// An invocation's access record: `line` as the access log says it
    /// ([`RecordLine::Request`] for an HTTP request's); `revision` is `None`
    /// for a job's task, which has none.
    pub fn access(
        function: Arc<str>,
        revision: Option<u64>,
        invocation: InvocationId,
        trigger: Trigger,
        access: Access,
        line: RecordLine,
    ) -> Entry {
        Entry {
            function,
            revision,
            invocation: Some(invocation),
            trigger: Some(trigger),
            stream: "access",
            at_ms: now_ms(),
            line,
            access: Some(access),
        }
    }
}

static STORE: OnceLock<LogStore> = OnceLock::new();

/// Makes `store` the one [`record`] writes to (the server's, once per
/// process).
pub fn install(store: LogStore) {
    if STORE.set(store).is_err() {
        tracing::warn!("a log store was already installed; keeping the first");
    }
}

/// Gives `function` its own bounds in the installed store, if any (see
/// [`LogStore::set_bounds`]).
pub fn set_bounds(function: &str, max_bytes: Option<u64>, max_age: Option<std::time::Duration>) {
    if let Some(store) = STORE.get() {
        store.set_bounds(function, max_bytes, max_age);
    }
}

/// Keeps `entry` in the installed store, if any; never waits.
pub fn record(entry: Entry) {
    if let Some(store) = STORE.get() {
        store.record(entry);
    }
}
