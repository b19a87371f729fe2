//! A task as producers write it — an HTTP request for the queue's function,
//! with an optional name (for dedup) and `schedule_time` — and as it is
//! stored and delivered.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::validate_name;

/// The enqueue body: `{"name", "schedule_time", "method", "path",
/// "headers", "body" | "body_base64"}`, every member optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    pub name: Option<String>,
    /// RFC 3339; deliver not before. In the past: deliver now.
    pub schedule_time: Option<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    pub body_base64: Option<String>,
}

/// The request a task delivers, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub method: String,
    /// `None`: the function's route.
    pub path: Option<String>,
    pub headers: Vec<(String, String)>,
}

/// A checked task, ready to store.
#[derive(Debug)]
pub struct Checked {
    pub name: Option<String>,
    /// Milliseconds since the Unix epoch; `None` = now.
    pub due_ms: Option<u64>,
    pub request: Request,
    pub body: Bytes,
}

impl NewTask {
    /// Checks every member; the error names the one at fault.
    pub fn check(self, max_size: usize) -> Result<Checked, String> {
        if let Some(name) = &self.name {
            validate_name(name)
                .map_err(|e| format!("`name`: {}", e.replace("function", "task")))?;
        }
        let due_ms = match &self.schedule_time {
            None => None,
            Some(t) => Some(
                DateTime::parse_from_rfc3339(t)
                    .map_err(|e| {
                        format!("`schedule_time`: `{t}` is not an RFC 3339 time like 2026-11-28T10:00:00Z: {e}")
                    })?
                    .with_timezone(&Utc)
                    .timestamp_millis()
                    .max(0) as u64,
            ),
        };
        let method = self.method.unwrap_or_else(|| "POST".into());
        if http::Method::from_bytes(method.as_bytes()).is_err() {
            return Err(format!("`method`: `{method}` is not an HTTP method"));
        }
        if let Some(path) = &self.path
            && (!path.starts_with('/') || path.parse::<http::uri::PathAndQuery>().is_err())
        {
            return Err(format!("`path`: `{path}` is not a path starting with `/`"));
        }
        for (name, value) in &self.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                || http::HeaderValue::from_str(value).is_err()
            {
                return Err(format!(
                    "`headers`: `{name}: {value}` is not a valid header"
                ));
            }
        }
        let body = match (self.body, self.body_base64) {
            (Some(_), Some(_)) => {
                return Err("give `body` or `body_base64`, not both".into());
            }
            (Some(text), None) => Bytes::from(text),
            (None, Some(b64)) => Bytes::from(
                BASE64
                    .decode(b64.as_bytes())
                    .map_err(|e| format!("`body_base64`: not base64: {e}"))?,
            ),
            (None, None) => Bytes::new(),
        };
        if body.len() > max_size {
            return Err(format!(
                "`body`: {} bytes is more than the queue's max_task_size of {max_size} bytes",
                body.len()
            ));
        }
        Ok(Checked {
            name: self.name,
            due_ms,
            request: Request {
                method,
                path: self.path,
                headers: self.headers.into_iter().collect(),
            },
            body,
        })
    }
}

/// A name for a task its producer did not name.
pub fn generated_name() -> String {
    let mut bytes = [0u8; 12];
    let _ = getrandom::fill(&mut bytes);
    format!("t{}", hex::encode(bytes))
}

/// Milliseconds since the epoch as RFC 3339 UTC.
pub fn rfc3339(ms: u64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(json: &str) -> Result<Checked, String> {
        serde_json::from_str::<NewTask>(json).unwrap().check(10)
    }

    #[test]
    fn checks_name_the_member() {
        let ok = task(r#"{"name": "welcome-42", "schedule_time": "2026-11-28T10:00:00Z", "path": "/send", "body": "{}"}"#).unwrap();
        assert_eq!(ok.due_ms, Some(1_795_860_000_000));
        assert_eq!(ok.request.method, "POST");
        for (json, member) in [
            (r#"{"name": "a b"}"#, "`name`"),
            (r#"{"schedule_time": "tomorrow"}"#, "`schedule_time`"),
            (r#"{"method": "G E T"}"#, "`method`"),
            (r#"{"path": "send"}"#, "`path`"),
            (r#"{"body": "far too long a body"}"#, "max_task_size"),
            (r#"{"body_base64": "***"}"#, "`body_base64`"),
        ] {
            let err = task(json).unwrap_err();
            assert!(err.contains(member), "{json}: {err}");
        }
        assert_eq!(
            task(r#"{"body_base64": "AAE="}"#).unwrap().body.as_ref(),
            &[0, 1]
        );
    }
}
