//! What users write: a function's settings ([`FunctionSpec`]), topics and
//! triggers, queues and schedules, the app manifest (`wisp.toml`), `[server]` and `[server.pool]` settings, and the
//! units they are written in. Nothing here depends on the rest of Wisp.

mod cron;
mod events;
mod manifest;
mod origins;
mod pool;
mod spec;
mod tasks;
mod units;

pub use cron::CronSchedule;
pub use events::{TopicSpec, TriggerSpec};
pub use manifest::{
    ADMIN_TOKEN_ENV, Manifest, ServerSettings, check_queue_names, check_topic_names,
    default_max_connections,
};
pub use origins::{AllowedHosts, Grant};
pub use pool::PoolSettings;
pub use spec::{
    CPU_TICK, DEFAULT_IDLE_TIMEOUT, FunctionSpec, Isolation, normalize_route, validate_name,
};
pub use tasks::{MAX_MISSED_RUNS, Missed, Overlap, QueueSpec, Retry, ScheduleSpec, Target};
pub use units::{ByteSize, Span};
