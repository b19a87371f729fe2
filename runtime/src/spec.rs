//! A function's settings: what the manifest's `[[function]]` tables, the
//! `wisp serve` flags and the admin API's deploy body all describe.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::outbound::AllowedHosts;
use crate::units::{ByteSize, Span};

/// One function's name, component and limits. Field names are the manifest
/// keys; every limit has a default chosen to match what Cloud Run users expect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// Unique name: letters, digits, `-` and `_`.
    #[serde(default)]
    pub name: String,
    /// In a manifest: a path relative to the manifest. In the admin API and in
    /// stored revisions: `sha256:<hex>` of an uploaded component.
    #[serde(default)]
    pub component: String,
    /// Path prefix on whole segments; the longest matching prefix wins.
    #[serde(default = "default_route")]
    pub route: String,
    /// Linear-memory limit per instance, summed over the instance's memories.
    #[serde(default = "default_memory")]
    pub memory: ByteSize,
    /// Wall-clock limit per invocation, response body included.
    #[serde(default = "default_timeout")]
    pub timeout: Span,
    /// Instances of this function alive at once.
    #[serde(default = "default_max_instances")]
    pub max_instances: u32,
    /// Requests allowed to wait for an instance once `max_instances` are busy;
    /// beyond it they get 429 at once.
    #[serde(default = "default_max_queue")]
    pub max_queue: u32,
    /// How long a queued request waits for an instance before 429.
    #[serde(default = "default_queue_timeout")]
    pub queue_timeout: Span,
    /// Largest request body accepted, chunked or not; larger ones get 413.
    #[serde(default = "default_max_request_body")]
    pub max_request_body: ByteSize,
    /// Environment variables the guest sees (and nothing else of the host's).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Origins (`http://host:port`, `https://host`, `*`) the guest may call.
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Host directories the guest may read, by guest path:
    /// `{ "/static" = "public" }`. None by default.
    #[serde(default)]
    pub dirs: BTreeMap<String, String>,
    /// Pre-initialize at deploy when the component exports
    /// `wizer-initialize`; off runs the component as it is.
    #[serde(default = "default_snapshot")]
    pub snapshot: bool,
}

fn default_snapshot() -> bool {
    true
}

fn default_route() -> String {
    "/".into()
}
// 128 MiB fits Rust and C guests with room, and the 13-18 MB JS/Python
// components (which want ~40-60 MiB at runtime).
fn default_memory() -> ByteSize {
    ByteSize::mib(128)
}
fn default_timeout() -> Span {
    Span(Duration::from_secs(60))
}
// Cloud Run's default max instances.
fn default_max_instances() -> u32 {
    100
}
fn default_max_queue() -> u32 {
    100
}
fn default_queue_timeout() -> Span {
    Span(Duration::from_secs(10))
}
// Cloud Run's HTTP/1 request size limit.
fn default_max_request_body() -> ByteSize {
    ByteSize::mib(32)
}

impl FunctionSpec {
    /// A spec with every default, for `name` running `component`.
    pub fn new(name: impl Into<String>, component: impl Into<String>) -> Self {
        FunctionSpec {
            name: name.into(),
            component: component.into(),
            route: default_route(),
            memory: default_memory(),
            timeout: default_timeout(),
            max_instances: default_max_instances(),
            max_queue: default_max_queue(),
            queue_timeout: default_queue_timeout(),
            max_request_body: default_max_request_body(),
            env: BTreeMap::new(),
            allowed_outbound_hosts: Vec::new(),
            dirs: BTreeMap::new(),
            snapshot: default_snapshot(),
        }
    }

    /// Checks what can be checked without the engine; each problem is
    /// reported as `(key, message)` so callers can point at the right line.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        validate_name(&self.name).map_err(|e| ("name", e))?;
        if self.component.is_empty() {
            return Err((
                "component",
                "missing: give the path of a .wasm component".into(),
            ));
        }
        validate_route(&self.route).map_err(|e| ("route", e))?;
        if self.memory.bytes() < 64 * 1024 {
            return Err((
                "memory",
                format!("{} is below one Wasm page (64Ki)", self.memory),
            ));
        }
        if self.timeout.0.is_zero() {
            return Err(("timeout", "must be greater than zero".into()));
        }
        if self.max_instances == 0 {
            return Err(("max_instances", "must be at least 1".into()));
        }
        for key in self.env.keys() {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(("env", format!("invalid variable name `{key}`")));
            }
        }
        for (guest, host) in &self.dirs {
            if !guest.starts_with('/') || host.is_empty() {
                return Err((
                    "dirs",
                    format!(
                        "`{guest}` = `{host}`: map an absolute guest path to a host directory, like {{ \"/static\" = \"public\" }}"
                    ),
                ));
            }
        }
        AllowedHosts::parse(&self.allowed_outbound_hosts)
            .map_err(|e| ("allowed_outbound_hosts", e))?;
        Ok(())
    }
}

/// Function names end up in file names, URLs and log fields.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("missing: every function needs a name".into());
    }
    if name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "`{name}` is not a valid name: use up to 64 letters, digits, `-` and `_`"
        ));
    }
    Ok(())
}

fn validate_route(route: &str) -> Result<(), String> {
    if !route.starts_with('/') {
        return Err(format!("`{route}` must start with `/`"));
    }
    if route.contains(['?', '#', ' ']) || route.contains("//") {
        return Err(format!(
            "`{route}` must be a plain path prefix like `/api/users` (no query, fragment, spaces or empty segments)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        FunctionSpec::new("hello", "hello.wasm").validate().unwrap();
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut spec = FunctionSpec::new("hello", "hello.wasm");
        spec.route = "hello".into();
        assert_eq!(spec.validate().unwrap_err().0, "route");
        let mut spec = FunctionSpec::new("he llo", "hello.wasm");
        assert_eq!(spec.validate().unwrap_err().0, "name");
        spec.name = "ok".into();
        spec.max_instances = 0;
        assert_eq!(spec.validate().unwrap_err().0, "max_instances");
        spec.max_instances = 1;
        spec.allowed_outbound_hosts = vec!["ftp://x".into()];
        assert_eq!(spec.validate().unwrap_err().0, "allowed_outbound_hosts");
    }
}
