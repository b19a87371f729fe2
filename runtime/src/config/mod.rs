//! What users write: a function's settings ([`FunctionSpec`]), topics and
//! triggers, stores and secrets, the app manifest (`wisp.toml`), `[server]`
//! and `[server.pool]` settings, and the units they are written in. Nothing here depends on the rest of Wisp.

mod events;
mod manifest;
mod origins;
mod pool;
mod spec;
mod state;
mod units;

pub use events::{TopicSpec, TriggerSpec};
pub use manifest::{
    ADMIN_TOKEN_ENV, Manifest, ServerSettings, check_topic_names, default_max_connections,
};
pub use origins::{AllowedHosts, Grant};
pub use pool::PoolSettings;
pub use spec::{
    CPU_TICK, DEFAULT_IDLE_TIMEOUT, FunctionSpec, Isolation, normalize_route, validate_name,
};
pub use state::{
    BackendSpec, STORE_KINDS, SecretSpec, StateSpec, StoreSpec, check_state_names,
    validate_config_key,
};
pub use units::{ByteSize, Span};
