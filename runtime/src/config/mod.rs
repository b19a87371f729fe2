//! What users write: a function's settings ([`FunctionSpec`]), topics and
//! triggers, queues, schedules and jobs, stores and secrets, the app manifest
//! (`wisp.toml`), `[server]`, `[server.pool]` and `[server.telemetry]` settings, and the units
//! they are written in. Nothing here depends on the rest of Wisp.

mod cron;
mod events;
mod jobs;
mod manifest;
mod origins;
mod pool;
mod server;
mod spec;
mod state;
mod tasks;
mod telemetry;
mod units;

pub use cron::CronSchedule;
pub use events::{TopicSpec, TriggerSpec};
pub use jobs::{JobSpec, MAX_TASKS, check_tasks};
pub use manifest::{Manifest, check_queue_names, check_topic_names};
pub use origins::{AllowedHosts, Grant};
pub use pool::PoolSettings;
pub use server::{ADMIN_TOKEN_ENV, ServerSettings, default_max_connections};
pub use spec::{
    CPU_TICK, DEFAULT_IDLE_TIMEOUT, FunctionSpec, Handler, Isolation, normalize_route,
    validate_name,
};
pub use state::{
    BackendSpec, STORE_KINDS, SecretSpec, StateSpec, StoreSpec, check_state_names,
    validate_config_key,
};
pub use tasks::{MAX_MISSED_RUNS, Missed, Overlap, QueueSpec, Retry, ScheduleSpec, Target};
pub use telemetry::{OtlpEndpoint, TelemetrySettings};
pub use units::{ByteSize, Span};
