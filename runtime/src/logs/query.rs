//! What a log query asks (`invocation`, `since`, `status`, `stream`,
//! `limit`, `after`), read from the admin API's query string with an error naming
//! each bad value, and what it answers.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::logs::now_ms;
use crate::telemetry::ids::InvocationId;

/// Lines a query returns when it names no `limit`.
pub const DEFAULT_LIMIT: usize = 1000;
/// Most lines one query returns.
pub const MAX_LIMIT: usize = 10_000;

/// Status codes an access record must have, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusFilter {
    pub low: u16,
    pub high: u16,
}

impl std::str::FromStr for StatusFilter {
    type Err = String;

    /// `5xx` (a class) or `404` (one code).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`status` = `{s}`: write a status class like `5xx` or `4xx`, or one code like `404`"
            )
        };
        let lower = s.to_ascii_lowercase();
        if let Some(class) = lower.strip_suffix("xx") {
            let class: u16 = class.parse().map_err(|_| bad())?;
            if !(1..=5).contains(&class) {
                return Err(bad());
            }
            return Ok(StatusFilter {
                low: class * 100,
                high: class * 100 + 99,
            });
        }
        let code: u16 = s.parse().map_err(|_| bad())?;
        if !(100..=599).contains(&code) {
            return Err(bad());
        }
        Ok(StatusFilter {
            low: code,
            high: code,
        })
    }
}

/// A query of one function's log.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub invocation: Option<InvocationId>,
    /// Lines at or after this time (milliseconds since the epoch).
    pub since_ms: Option<u64>,
    /// Only the lines of invocations whose access record has such a status.
    pub status: Option<StatusFilter>,
    /// Only the lines of this stream (`stdout`, `stderr` or `access`).
    pub stream: Option<&'static str>,
    pub limit: usize,
    /// Without it, the newest `limit` lines; with it, the first `limit`
    /// lines after this cursor (a [`Page::next`]).
    pub after: Option<i64>,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            invocation: None,
            since_ms: None,
            status: None,
            stream: None,
            limit: DEFAULT_LIMIT,
            after: None,
        }
    }
}

/// `since`: a duration back from now (`10m`) or an RFC 3339 time.
fn since(value: &str) -> Result<u64, String> {
    if let Ok(d) = humantime::parse_duration(value) {
        return Ok(now_ms().saturating_sub(d.as_millis() as u64));
    }
    let at = humantime::parse_rfc3339_weak(value).map_err(|_| {
        format!(
            "`since` = `{value}`: write a duration back from now like `10m` or `2h`, or a time \
             like `2026-01-02T15:04:05Z`"
        )
    })?;
    Ok(at
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64)
}

impl Query {
    /// Reads `invocation`, `since`, `status`, `stream`, `limit` and `after` from a
    /// URL query string (percent-encoded); other keys are left to the
    /// caller.
    pub fn parse(query: Option<&str>) -> Result<Query, String> {
        let mut q = Query::default();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| format!("`{key}`: the value is not UTF-8"))?;
            let value = value.as_ref();
            match key {
                "invocation" => {
                    let id = u64::from_str_radix(value, 16)
                        .ok()
                        .filter(|_| value.len() == 16)
                        .ok_or_else(|| {
                            format!(
                                "`invocation` = `{value}`: an invocation id is 16 hex digits, \
                                 as the x-wisp-invocation-id header and every log line show it"
                            )
                        })?;
                    q.invocation = Some(InvocationId(id));
                }
                "since" => q.since_ms = Some(since(value)?),
                "status" => q.status = Some(value.parse()?),
                "stream" => {
                    q.stream = Some(match value {
                        "stdout" => "stdout",
                        "stderr" => "stderr",
                        "access" => "access",
                        _ => {
                            return Err(format!(
                                "`stream` = `{value}`: write stdout, stderr or access"
                            ));
                        }
                    });
                }
                "limit" => {
                    q.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            format!("`limit` = `{value}`: write a number from 1 to {MAX_LIMIT}")
                        })?;
                }
                "after" => {
                    q.after = Some(value.parse().map_err(|_| {
                        format!("`after` = `{value}`: write the `next` of an earlier answer")
                    })?);
                }
                _ => {}
            }
        }
        Ok(q)
    }
}

/// One stored record as queries return it.
#[derive(Clone, Debug, Serialize)]
pub struct Line {
    /// Its place in the function's log, for `after`.
    pub id: i64,
    /// RFC 3339, milliseconds.
    pub time: String,
    pub function: String,
    pub revision: Option<u64>,
    pub invocation: Option<String>,
    pub trigger: Option<String>,
    /// `stdout`, `stderr` or `access`.
    pub stream: String,
    pub line: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Access records: cost metering (see `invoke::cost`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gb_s: Option<f64>,
}

/// A query's answer.
#[derive(Debug, Serialize)]
pub struct Page {
    pub lines: Vec<Line>,
    /// Pass as `after` to get what came since.
    pub next: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classes_or_codes() {
        assert_eq!(
            "5xx".parse::<StatusFilter>().unwrap(),
            StatusFilter {
                low: 500,
                high: 599
            }
        );
        assert_eq!(
            "404".parse::<StatusFilter>().unwrap(),
            StatusFilter {
                low: 404,
                high: 404
            }
        );
        for bad in ["6xx", "5x", "abc", "42", "0xx"] {
            let e = bad.parse::<StatusFilter>().unwrap_err();
            assert!(e.contains(bad) && e.contains("5xx"), "{e}");
        }
    }

    #[test]
    fn queries_name_their_bad_values() {
        let q = Query::parse(Some(
            "invocation=00000000000000ff&since=2026-01-02T15%3A04%3A05Z&status=4xx&stream=access&limit=5&after=7",
        ))
        .unwrap();
        assert_eq!(q.invocation, Some(InvocationId(255)));
        assert_eq!(q.since_ms, Some(1_767_366_245_000));
        assert_eq!((q.stream, q.limit, q.after), (Some("access"), 5, Some(7)));
        let recent = Query::parse(Some("since=10m")).unwrap().since_ms.unwrap();
        assert!(now_ms() - recent >= 600_000);
        for (query, named) in [
            ("since=yesterday", "`since` = `yesterday`"),
            ("invocation=xyz", "`invocation` = `xyz`"),
            ("limit=0", "`limit` = `0`"),
            ("status=9xx", "`status` = `9xx`"),
            ("stream=stdin", "`stream` = `stdin`"),
        ] {
            let e = Query::parse(Some(query)).unwrap_err();
            assert!(e.contains(named), "{e}");
        }
    }
}
