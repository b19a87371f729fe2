//! What users write for run-to-completion jobs (`[[job]]`, Cloud Run Jobs
//! built in): a command run as N indexed tasks, P at a time, each retried.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ByteSize, Span, validate_name};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub name: String,
    /// A command: a `wasi:cli/run` component or a preview-1 `_start` module.
    pub component: String,
    /// `argv[1..]` of every task.
    #[serde(default)]
    pub args: Vec<String>,
    /// Tasks per execution, indexed 0..tasks.
    #[serde(default = "default_tasks")]
    pub tasks: u32,
    /// Tasks running at once [default: all].
    #[serde(default)]
    pub parallelism: Option<u32>,
    /// Retries per task after its first attempt.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// The time limit of one attempt.
    #[serde(default = "default_task_timeout")]
    pub task_timeout: Span,
    #[serde(default = "default_memory")]
    pub memory: ByteSize,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Host directories the tasks may read, by guest path.
    #[serde(default)]
    pub dirs: BTreeMap<String, String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Pre-initialize the command at start when it exports
    /// `wizer-initialize`; off runs it as it is.
    #[serde(default = "default_snapshot")]
    pub snapshot: bool,
}

fn default_snapshot() -> bool {
    true
}
fn default_tasks() -> u32 {
    1
}
// Cloud Run Jobs' defaults.
fn default_max_retries() -> u32 {
    3
}
fn default_task_timeout() -> Span {
    Span(Duration::from_secs(600))
}
fn default_memory() -> ByteSize {
    ByteSize::mib(128)
}

/// Tasks one execution may have, as Cloud Run Jobs allows.
pub const MAX_TASKS: u32 = 10_000;
/// Retries per task at most, as Cloud Run Jobs allows.
const MAX_RETRIES: u32 = 10;

impl JobSpec {
    /// Each problem as `(key, message)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        validate_name(&self.name).map_err(|e| ("name", e.replace("function", "job")))?;
        if self.component.is_empty() {
            return Err((
                "component",
                "missing: give the path of a command .wasm".into(),
            ));
        }
        check_tasks(self.tasks).map_err(|e| ("tasks", e))?;
        if self.parallelism == Some(0) {
            return Err((
                "parallelism",
                "must be at least 1 (leave it out to run every task at once)".into(),
            ));
        }
        if self.max_retries > MAX_RETRIES {
            return Err((
                "max_retries",
                format!("{} is more than {MAX_RETRIES}", self.max_retries),
            ));
        }
        if self.task_timeout.0.is_zero() {
            return Err(("task_timeout", "must be greater than zero".into()));
        }
        if self.memory.bytes() < 64 * 1024 {
            return Err((
                "memory",
                format!("{} is below one Wasm page (64Ki)", self.memory),
            ));
        }
        crate::config::spec::validate_dirs(&self.dirs)
    }
}

/// A task count, from the manifest or `wisp jobs run --tasks`.
pub fn check_tasks(tasks: u32) -> Result<(), String> {
    if (1..=MAX_TASKS).contains(&tasks) {
        Ok(())
    } else {
        Err(format!("{tasks} is not between 1 and {MAX_TASKS}"))
    }
}
