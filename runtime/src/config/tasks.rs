//! What users write for task queues (`[[queue]]`, Cloud Tasks built in)
//! and schedules (`[[schedule]]`, Cloud Scheduler built in). Defaults follow
//! Cloud Tasks and Cloud Scheduler where Wisp imitates them (docs/tasks.md,
//! docs/schedules.md).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Span, validate_name};

/// A queue of HTTP requests to one function, dispatched at a bounded rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSpec {
    pub name: String,
    /// The function tasks are delivered to.
    pub function: String,
    /// Token bucket refill rate.
    #[serde(default = "default_rate")]
    pub max_dispatches_per_second: f64,
    /// Token bucket size: dispatches allowed at once after a quiet spell.
    #[serde(default = "default_burst")]
    pub max_burst: u32,
    /// Tasks in flight at once.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: u32,
    /// Attempts before a task is marked failed; -1 = unlimited.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: i64,
    #[serde(default = "default_min_backoff")]
    pub min_backoff: Span,
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Span,
    /// Times the backoff doubles before it grows linearly.
    #[serde(default = "default_max_doublings")]
    pub max_doublings: u32,
    /// The time limit of one attempt.
    #[serde(default = "default_dispatch_deadline")]
    pub dispatch_deadline: Span,
    /// Largest task (request body) accepted.
    #[serde(default = "default_max_task_size")]
    pub max_task_size: crate::config::ByteSize,
}

// Cloud Tasks' defaults, except max_concurrent (1000 there: one machine
// serves fewer) and max_attempts (100 there).
fn default_rate() -> f64 {
    500.0
}
fn default_burst() -> u32 {
    100
}
fn default_max_concurrent() -> u32 {
    100
}
fn default_max_attempts() -> i64 {
    10
}
fn default_min_backoff() -> Span {
    Span(Duration::from_millis(100))
}
fn default_max_backoff() -> Span {
    Span(Duration::from_secs(3600))
}
fn default_max_doublings() -> u32 {
    16
}
fn default_dispatch_deadline() -> Span {
    Span(Duration::from_secs(600))
}
fn default_max_task_size() -> crate::config::ByteSize {
    crate::config::ByteSize::mib(1)
}

/// Dispatch rates accepted at most, per second.
const MAX_RATE: f64 = 10_000.0;

/// How an attempt's failure delays the next one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retry {
    pub max_attempts: Option<u32>,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub max_doublings: u32,
}

impl Retry {
    /// The delay after `attempts` failed attempts, as Cloud Tasks computes
    /// it: `min_backoff` doubling `max_doublings` times, then growing by
    /// the last doubled interval each attempt, capped at `max_backoff`.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let n = attempts.saturating_sub(1);
        let doublings = n.min(self.max_doublings).min(30);
        let doubled = self.min_backoff.saturating_mul(1 << doublings);
        let linear = n.saturating_sub(self.max_doublings);
        doubled
            .saturating_add(doubled.saturating_mul(linear))
            .min(self.max_backoff)
    }

    /// Whether a task that failed `attempts` times is done for good.
    pub fn exhausted(&self, attempts: u32) -> bool {
        self.max_attempts.is_some_and(|max| attempts >= max)
    }
}

impl QueueSpec {
    pub fn retry(&self) -> Retry {
        Retry {
            max_attempts: u32::try_from(self.max_attempts).ok(),
            min_backoff: self.min_backoff.0,
            max_backoff: self.max_backoff.0,
            max_doublings: self.max_doublings,
        }
    }

    /// Each problem as `(key, message)`; the function's existence is the
    /// manifest's to check.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        validate_name(&self.name).map_err(|e| ("name", e.replace("function", "queue")))?;
        if !(self.max_dispatches_per_second > 0.0 && self.max_dispatches_per_second <= MAX_RATE) {
            return Err((
                "max_dispatches_per_second",
                format!(
                    "{} is not a rate above 0 and at most {MAX_RATE}; a queue that dispatches nothing is paused with `wisp queues pause`",
                    self.max_dispatches_per_second
                ),
            ));
        }
        if self.max_burst == 0 {
            return Err(("max_burst", "must be at least 1".into()));
        }
        if self.max_concurrent == 0 {
            return Err(("max_concurrent", "must be at least 1".into()));
        }
        if self.max_attempts == 0 || self.max_attempts < -1 {
            return Err((
                "max_attempts",
                format!(
                    "{} is not at least 1, or -1 for unlimited",
                    self.max_attempts
                ),
            ));
        }
        check_backoff(self.min_backoff, self.max_backoff)?;
        if self.dispatch_deadline.0.is_zero() {
            return Err(("dispatch_deadline", "must be greater than zero".into()));
        }
        Ok(())
    }
}

fn check_backoff(min: Span, max: Span) -> Result<(), (&'static str, String)> {
    if min.0.is_zero() {
        return Err(("min_backoff", "must be greater than zero".into()));
    }
    if max.0 < min.0 {
        return Err((
            "max_backoff",
            format!("{max} is less than min_backoff = {min}"),
        ));
    }
    Ok(())
}

/// What happens to firings that fell due while the server was down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Missed {
    /// None of them run.
    Skip,
    /// One run for all of them.
    #[default]
    RunOnce,
    /// Each runs (at most [`MAX_MISSED_RUNS`], the latest).
    RunAll,
}

/// Missed firings `run-all` catches up at most.
pub const MAX_MISSED_RUNS: usize = 100;

/// A firing while the previous one still runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overlap {
    #[default]
    Skip,
    Allow,
}

/// The request a schedule sends instead of its CloudEvent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub function: String,
    #[serde(default = "default_method")]
    pub method: String,
    /// Default: the function's route.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_method() -> String {
    "POST".into()
}

/// A cron schedule that invokes a function.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    pub name: String,
    /// 5 fields (minute …), 6 (with seconds first), or `@hourly` and kin.
    pub cron: String,
    /// An IANA time zone name.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Invoked with a `dev.wisp.schedule.fired` CloudEvent.
    #[serde(default)]
    pub function: Option<String>,
    /// Or invoked with this request.
    #[serde(default)]
    pub target: Option<Target>,
    /// Or: start an execution of this `[[job]]`.
    #[serde(default)]
    pub job: Option<String>,
    #[serde(default = "default_schedule_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_schedule_min_backoff")]
    pub min_backoff: Span,
    #[serde(default = "default_schedule_max_backoff")]
    pub max_backoff: Span,
    #[serde(default)]
    pub missed: Missed,
    #[serde(default)]
    pub overlap: Overlap,
    /// The time limit of one run [default: the function's `timeout`].
    #[serde(default)]
    pub deadline: Option<Span>,
}

fn default_time_zone() -> String {
    "UTC".into()
}
// Cloud Scheduler retries none by default; a scheduled report that hit a
// passing failure is worth two more tries.
fn default_schedule_attempts() -> u32 {
    3
}
fn default_schedule_min_backoff() -> Span {
    Span(Duration::from_secs(1))
}
fn default_schedule_max_backoff() -> Span {
    Span(Duration::from_secs(60))
}

impl ScheduleSpec {
    /// The function it invokes.
    pub fn function(&self) -> &str {
        self.target
            .as_ref()
            .map(|t| t.function.as_str())
            .or(self.function.as_deref())
            .unwrap_or_default()
    }

    pub fn retry(&self) -> Retry {
        Retry {
            max_attempts: Some(self.max_attempts),
            min_backoff: self.min_backoff.0,
            max_backoff: self.max_backoff.0,
            max_doublings: 16,
        }
    }

    /// Each problem as `(key, message)`; cron and time zone are checked by
    /// the scheduler that parses them.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        validate_name(&self.name).map_err(|e| ("name", e.replace("function", "schedule")))?;
        let given = [
            self.function.is_some(),
            self.target.is_some(),
            self.job.is_some(),
        ];
        match given.iter().filter(|given| **given).count() {
            0 => {
                return Err((
                    "function",
                    "missing: name the function to invoke, a `target` request, or a `job` to run"
                        .into(),
                ));
            }
            1 => {}
            _ => {
                return Err((
                    "target",
                    "give one of `function` (a CloudEvent), `target` (a request) or `job`".into(),
                ));
            }
        }
        if let Some(target) = &self.target {
            if http::Method::from_bytes(target.method.as_bytes()).is_err() {
                return Err((
                    "method",
                    format!("`{}` is not an HTTP method", target.method),
                ));
            }
            if target.path.as_deref().is_some_and(|p| !p.starts_with('/')) {
                return Err(("path", "must start with `/`".into()));
            }
        }
        if self.max_attempts == 0 {
            return Err(("max_attempts", "must be at least 1".into()));
        }
        check_backoff(self.min_backoff, self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_grows_linearly_then_caps_as_cloud_tasks() {
        let retry = Retry {
            max_attempts: Some(10),
            min_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(300),
            max_doublings: 3,
        };
        let secs: Vec<u64> = (1..=8).map(|a| retry.backoff(a).as_secs()).collect();
        assert_eq!(secs, vec![10, 20, 40, 80, 160, 240, 300, 300]);
        assert!(retry.exhausted(10) && !retry.exhausted(9));
    }

    #[test]
    fn bad_values_name_their_key() {
        let queue: QueueSpec =
            toml::from_str("name = \"q\"\nfunction = \"f\"\nmax_dispatches_per_second = 0\n")
                .unwrap();
        assert_eq!(queue.validate().unwrap_err().0, "max_dispatches_per_second");
        let schedule: ScheduleSpec =
            toml::from_str("name = \"s\"\ncron = \"* * * * *\"\n").unwrap();
        assert_eq!(schedule.validate().unwrap_err().0, "function");
    }
}
