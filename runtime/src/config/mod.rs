//! What users write: a function's settings ([`FunctionSpec`]), the app
//! manifest (`wisp.toml`), `[server]` and `[server.pool]` settings, and the
//! units they are written in. Nothing here depends on the rest of Wisp.

mod manifest;
mod origins;
mod pool;
mod spec;
mod units;

pub use manifest::{ADMIN_TOKEN_ENV, Manifest, ServerSettings, default_max_connections};
pub use origins::{AllowedHosts, Grant};
pub use pool::PoolSettings;
pub use spec::{
    CPU_TICK, DEFAULT_IDLE_TIMEOUT, FunctionSpec, Isolation, normalize_route, validate_name,
};
pub use units::{ByteSize, Span};
