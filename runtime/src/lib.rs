//! Wisp: a self-hosted WebAssembly functions platform.
//!
//! Functions are wasi:http components, invoked by HTTP requests and by
//! events published to topics. Every invocation runs in its own
//! instance, created from a per-revision `InstancePre` on wasmtime's pooling,
//! copy-on-write allocator, inside a `Store` with a memory limit, an epoch
//! deadline that yields, and a wall-clock timeout enforced from outside.
//!
//! The map, one folder per subsystem, in the order a request travels:
//!
//! - [`cli`]: the `wisp` command line and its admin API client.
//! - [`config`]: what users write: function settings, `wisp.toml`, units.
//! - [`devloop`]: `wisp new`, `wisp build` and `wisp up --watch`: projects
//!   from templates, build commands, rebuild and redeploy on change.
//! - [`http`]: listeners, the gateway (route → invoke → status), access log,
//!   admin API.
//! - [`invoke`]: the invocation core every trigger uses: admission, instance
//!   factory, workers, and the typed ways an invocation fails.
//! - [`events`]: topics and event-driven functions: CloudEvents codec,
//!   durable store (SQLite), per-subscription dispatchers, publishing over
//!   the admin API and `http://wisp.internal`.
//! - [`tasks`]: task queues and cron schedules on the durable store.
//! - [`jobs`]: run-to-completion jobs: commands run as indexed, retried
//!   tasks, executions durable across restarts.
//! - [`sandbox`]: where guest code runs: engine, store state, guest logs,
//!   outbound policy.
//! - [`deploy`]: component checks, artifact cache, snapshots, the registry of
//!   live revisions and routes.
//! - [`state`]: state for guests through WASI: wasi:keyvalue stores
//!   (SQLite embedded, Redis), wasi:config values and secrets.
//! - [`logs`]: the per-function log store (guest output and access records)
//!   behind `wisp logs`.
//! - [`store`]: the state directory (components, revision histories).
//! - [`telemetry`]: ids and trigger kinds, logging, metrics.

pub mod cli;
pub mod config;
pub mod deploy;
pub mod devloop;
pub mod events;
pub mod http;
pub mod invoke;
pub mod jobs;
pub mod logs;
pub mod sandbox;
pub mod state;
pub mod store;
pub mod tasks;
pub mod telemetry;
