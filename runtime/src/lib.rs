//! Wisp: a self-hosted WebAssembly functions platform.
//!
//! Functions are wasi:http components. Every invocation runs in its own
//! instance, created from a per-revision `InstancePre` on wasmtime's pooling,
//! copy-on-write allocator, inside a `Store` with a memory limit, an epoch
//! deadline that yields, and a wall-clock timeout enforced from outside.
//!
//! The path of a request: [`server`] accepts → [`gateway`] routes
//! ([`route`]) to the function's current revision ([`registry`]) →
//! [`admission`] (`max_instances`, queue, 429) → [`invoke`] (fresh store and
//! instance, [`host`] context) → response streamed back, access log and
//! [`telemetry`] counters.
//!
//! The path of a deployment: bytes → [`component`] checks → [`artifact`]
//! cache (compiled code by content hash and engine fingerprint) →
//! [`snapshot`] (pre-initialization, cached likewise) → `InstancePre` →
//! the function's current revision is swapped ([`registry`]).

pub mod admin;
pub mod admission;
pub mod artifact;
pub mod cli;
pub mod client;
pub mod component;
pub mod engine;
pub mod gateway;
pub mod guestlog;
pub mod host;
pub mod invoke;
pub mod manifest;
pub mod outbound;
pub mod registry;
pub mod route;
pub mod server;
pub mod snapshot;
pub mod spec;
pub mod state;
pub mod telemetry;
pub mod units;
pub mod warm;
