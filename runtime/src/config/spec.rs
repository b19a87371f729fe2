//! A function's settings: what the manifest's `[[function]]` tables, the
//! `wisp serve` flags and the admin API's deploy body all describe.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{AllowedHosts, BuildSpec, ByteSize, Span, TriggerSpec};

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
    /// Absent: `/`, unless the function has a `trigger` (then it takes no
    /// HTTP traffic); see [`FunctionSpec::http_route`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
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
    /// `invocation`: a fresh instance per request. `instance`: instances are
    /// reused, like Cloud Run instances.
    #[serde(default)]
    pub isolation: Isolation,
    /// Requests one instance serves at once (`instance` isolation; above 1
    /// only for wasi:http@0.3 components).
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Requests after which a reused instance is replaced [default: no limit].
    #[serde(default)]
    pub max_requests_per_instance: Option<u64>,
    /// How long a reused instance may sit idle before it is dropped
    /// (scale to zero) [default: 60s].
    #[serde(default)]
    pub idle_timeout: Option<Span>,
    /// Instances kept instantiated ahead of traffic (`instance` isolation).
    #[serde(default)]
    pub min_instances: u32,
    /// Pre-initialize at deploy when the component exports
    /// `wizer-initialize`; off runs the component as it is.
    #[serde(default = "default_snapshot")]
    pub snapshot: bool,
    /// CPU time one invocation may use (measured, not wall time); past it
    /// the invocation is stopped [default: no limit beyond `timeout`].
    #[serde(default)]
    pub cpu_time: Option<Span>,
    /// Share of the cores among functions computing for long at once: a
    /// function with weight 2 gets two turns for every one of weight 1.
    #[serde(default = "default_cpu_weight")]
    pub cpu_weight: u32,
    /// GB-seconds (`memory` in GiB × wall time) the function may use in
    /// any trailing hour; past it new invocations get 429 until enough of
    /// the hour's use has aged out [default: no budget].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<f64>,
    /// This function's own log bounds (`[function.logs]`); each defaults
    /// to `[server] logs_max_bytes` / `logs_max_age`.
    #[serde(default, skip_serializing_if = "LogLimits::is_default")]
    pub logs: LogLimits,
    /// The topic subscription that makes this an event-driven function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<TriggerSpec>,
    /// Topics the guest may publish to through `http://wisp.internal`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<String>,
    /// `http` (a wasi:http component) or `cgi` (a command run once per
    /// request, CGI/1.1).
    #[serde(default, skip_serializing_if = "Handler::is_http")]
    pub handler: Handler,
    /// `argv[1..]` of a `cgi` command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Queues the guest may add tasks to through `http://wisp.internal`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enqueue: Vec<String>,
    /// Key-value stores (`[[store]]` names) the guest may open through
    /// wasi:keyvalue; opening any other bucket is refused as access-denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keyvalue: Vec<String>,
    /// Blob stores (`[[store]]` names of kind `blobstore`) the guest may get
    /// as wasi:blobstore containers; any other container is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blobstore: Vec<String>,
    /// Values the guest reads through wasi:config.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Secrets (`[[secret]]` names) the guest reads through wasi:config under
    /// their names. Only names: values never enter a spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// `[function.build]`: how `wisp build` makes the component. Manifest
    /// only: [`crate::config::Manifest`] takes it out, and a deploy refuses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildSpec>,
}

/// `[function.logs]`: how much of a function's log its ring keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<ByteSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Span>,
}

impl LogLimits {
    fn is_default(&self) -> bool {
        *self == LogLimits::default()
    }
}

fn default_cpu_weight() -> u32 {
    1
}

/// The unit CPU time is measured in; see `sandbox::cpu`.
pub const CPU_TICK: Duration = Duration::from_millis(10);

fn default_snapshot() -> bool {
    true
}

fn default_concurrency() -> u32 {
    1
}

/// What the admin API shows instead of an `env` value.
const HIDDEN_ENV_VALUE: &str = "(set)";

/// Default `idle_timeout` of reused instances.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl std::str::FromStr for Isolation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "invocation" => Ok(Isolation::Invocation),
            "instance" => Ok(Isolation::Instance),
            _ => Err(format!(
                "`{s}` is not an isolation mode: use `invocation` or `instance`"
            )),
        }
    }
}

/// How a function takes requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Handler {
    /// Its `wasi:http` handler.
    #[default]
    Http,
    /// Its `wasi:cli/run` command, once per request, as CGI/1.1.
    Cgi,
}

impl Handler {
    fn is_http(&self) -> bool {
        *self == Handler::Http
    }
}

/// Whether requests share instances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// A fresh instance per request, dropped with its response.
    #[default]
    Invocation,
    /// Instances are reused across requests.
    Instance,
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
            route: None,
            memory: default_memory(),
            timeout: default_timeout(),
            max_instances: default_max_instances(),
            max_queue: default_max_queue(),
            queue_timeout: default_queue_timeout(),
            max_request_body: default_max_request_body(),
            env: BTreeMap::new(),
            allowed_outbound_hosts: Vec::new(),
            dirs: BTreeMap::new(),
            isolation: Isolation::Invocation,
            concurrency: default_concurrency(),
            max_requests_per_instance: None,
            idle_timeout: None,
            min_instances: 0,
            snapshot: default_snapshot(),
            cpu_time: None,
            cpu_weight: default_cpu_weight(),
            budget: None,
            logs: LogLimits::default(),
            trigger: None,
            publish: Vec::new(),
            enqueue: Vec::new(),
            handler: Handler::Http,
            args: Vec::new(),
            keyvalue: Vec::new(),
            blobstore: Vec::new(),
            config: BTreeMap::new(),
            secrets: Vec::new(),
            build: None,
        }
    }

    /// The route HTTP requests reach it on, if any: `route`, else `/` for
    /// functions without a trigger.
    pub fn http_route(&self) -> Option<&str> {
        match (&self.route, &self.trigger) {
            (Some(route), _) => Some(normalize_route(route)),
            (None, None) => Some("/"),
            (None, Some(_)) => None,
        }
    }

    /// The path event deliveries are posted to.
    pub fn delivery_path(&self) -> &str {
        self.http_route().unwrap_or("/")
    }

    /// Replaces each `env` value with [`HIDDEN_ENV_VALUE`]: what the admin
    /// API shows, since values may be secrets.
    pub fn hide_env_values(&mut self) {
        for value in self.env.values_mut() {
            *value = HIDDEN_ENV_VALUE.into();
        }
    }

    /// Checks what can be checked without the engine and returns the parsed
    /// allow list, so a deploy parses it once; each problem is reported as
    /// `(key, message)` so callers can point at the right line.
    pub fn validate(&self) -> Result<AllowedHosts, (&'static str, String)> {
        validate_name(&self.name).map_err(|e| ("name", e))?;
        if self.build.is_some() {
            return Err((
                "build",
                "only a manifest's functions have one (`wisp build`, `wisp up`); deploy the built component".into(),
            ));
        }
        if self.component.is_empty() {
            return Err((
                "component",
                "missing: give the path of a .wasm component".into(),
            ));
        }
        if let Some(route) = &self.route {
            validate_route(route).map_err(|e| ("route", e))?;
        }
        if let Some(trigger) = &self.trigger {
            trigger.validate()?;
        }
        for topic in &self.publish {
            validate_name(topic).map_err(|e| ("publish", e.replace("function", "topic")))?;
        }
        for queue in &self.enqueue {
            validate_name(queue).map_err(|e| ("enqueue", e.replace("function", "queue")))?;
        }
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
        self.validate_isolation()?;
        if self.handler == Handler::Cgi {
            if self.isolation == Isolation::Instance {
                return Err((
                    "isolation",
                    "a cgi function runs its command once per request: leave isolation out".into(),
                ));
            }
            if self.trigger.is_some() {
                return Err((
                    "trigger",
                    "event triggers need a wasi:http function, not handler = \"cgi\"".into(),
                ));
            }
        } else if !self.args.is_empty() {
            return Err(("args", "only a handler = \"cgi\" command takes args".into()));
        }
        if let Some(cpu) = self.cpu_time
            && cpu.0 < CPU_TICK
        {
            return Err((
                "cpu_time",
                format!("{cpu} is below 10ms, the tick CPU time is measured in"),
            ));
        }
        if !(1..=100).contains(&self.cpu_weight) {
            return Err((
                "cpu_weight",
                format!("{} is not between 1 and 100", self.cpu_weight),
            ));
        }
        if let Some(budget) = self.budget
            && !(budget.is_finite() && budget > 0.0)
        {
            return Err((
                "budget",
                format!(
                    "{budget} is not a positive number of GB-seconds per hour; write e.g. \
                     `budget = 50.0`, or leave it out for no budget"
                ),
            ));
        }
        if self.logs.max_bytes.is_some_and(|b| b.bytes() == 0) {
            return Err((
                "logs.max_bytes",
                "must be more than 0; leave it out for [server] logs_max_bytes".into(),
            ));
        }
        if self.logs.max_age.is_some_and(|a| a.0.is_zero()) {
            return Err((
                "logs.max_age",
                "must be more than 0; leave it out for [server] logs_max_age".into(),
            ));
        }
        for store in &self.keyvalue {
            validate_name(store).map_err(|e| ("keyvalue", e.replace("function", "store")))?;
        }
        for store in &self.blobstore {
            validate_name(store).map_err(|e| ("blobstore", e.replace("function", "store")))?;
        }
        for key in self.config.keys() {
            crate::config::validate_config_key(key).map_err(|e| ("config", e))?;
        }
        for name in &self.secrets {
            crate::config::validate_config_key(name).map_err(|e| ("secrets", e))?;
        }
        for key in self.env.keys() {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(("env", format!("invalid variable name `{key}`")));
            }
        }
        validate_dirs(&self.dirs)?;
        AllowedHosts::parse(&self.allowed_outbound_hosts).map_err(|e| ("allowed_outbound_hosts", e))
    }
}

/// `dirs` of a function or a job: absolute guest paths to host directories,
/// none of them in `/tmp`, which is each instance's own (`sandbox::tmpfs`).
pub fn validate_dirs(dirs: &BTreeMap<String, String>) -> Result<(), (&'static str, String)> {
    for (guest, host) in dirs {
        if !guest.starts_with('/') || host.is_empty() {
            return Err((
                "dirs",
                format!(
                    "`{guest}` = `{host}`: map an absolute guest path to a host directory, like {{ \"/static\" = \"public\" }}"
                ),
            ));
        }
        let mut parts: Vec<&str> = Vec::new();
        for part in guest.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                part => parts.push(part),
            }
        }
        if parts.first() == Some(&"tmp") {
            return Err((
                "dirs",
                format!(
                    "`{guest}` = `{host}`: /tmp is each instance's own in-memory directory; map the host directory elsewhere, like {{ \"/data\" = \"{host}\" }}"
                ),
            ));
        }
    }
    Ok(())
}

impl FunctionSpec {
    fn validate_isolation(&self) -> Result<(), (&'static str, String)> {
        if self.concurrency == 0 {
            return Err(("concurrency", "must be at least 1".into()));
        }
        if self.isolation == Isolation::Invocation {
            let only_reused = "applies to isolation = \"instance\" only; with a fresh instance per request there is nothing to";
            if self.concurrency > 1 {
                return Err(("concurrency", format!("{only_reused} share")));
            }
            if self.min_instances > 0 {
                return Err(("min_instances", format!("{only_reused} keep warm")));
            }
            if self.max_requests_per_instance.is_some() {
                return Err(("max_requests_per_instance", format!("{only_reused} reuse")));
            }
            if self.idle_timeout.is_some() {
                return Err(("idle_timeout", format!("{only_reused} keep idle")));
            }
        }
        if self.min_instances > self.max_instances {
            return Err((
                "min_instances",
                format!(
                    "{} is more than max_instances = {}",
                    self.min_instances, self.max_instances
                ),
            ));
        }
        if self.max_requests_per_instance == Some(0) {
            return Err(("max_requests_per_instance", "must be at least 1".into()));
        }
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

/// `/api/` and `/api` are the same route.
pub fn normalize_route(route: &str) -> &str {
    match route.trim_end_matches('/') {
        "" => "/",
        r => r,
    }
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
        spec.route = Some("hello".into());
        assert_eq!(spec.validate().unwrap_err().0, "route");
        let mut spec = FunctionSpec::new("he llo", "hello.wasm");
        assert_eq!(spec.validate().unwrap_err().0, "name");
        spec.name = "ok".into();
        spec.max_instances = 0;
        assert_eq!(spec.validate().unwrap_err().0, "max_instances");
        spec.max_instances = 1;
        spec.allowed_outbound_hosts = vec!["ftp://x".into()];
        assert_eq!(spec.validate().unwrap_err().0, "allowed_outbound_hosts");
        spec.allowed_outbound_hosts.clear();
        spec.cpu_time = Some(Span(Duration::from_millis(5)));
        assert_eq!(spec.validate().unwrap_err().0, "cpu_time");
        spec.cpu_time = Some(Span(Duration::from_millis(100)));
        spec.cpu_weight = 0;
        assert_eq!(spec.validate().unwrap_err().0, "cpu_weight");
        spec.cpu_weight = 1;
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            spec.budget = Some(bad);
            let (key, message) = spec.validate().unwrap_err();
            assert_eq!(key, "budget");
            assert!(message.contains("positive"), "{message}");
        }
        spec.budget = Some(0.5);
        spec.logs.max_age = Some(Span(Duration::ZERO));
        assert_eq!(spec.validate().unwrap_err().0, "logs.max_age");
        spec.build = Some(crate::config::BuildSpec {
            command: "make".into(),
            watch: Vec::new(),
            toolchain: None,
        });
        assert_eq!(spec.validate().unwrap_err().0, "build");
    }

    #[test]
    fn reuse_settings_need_instance_isolation() {
        let mut spec = FunctionSpec::new("f", "f.wasm");
        spec.concurrency = 4;
        assert_eq!(spec.validate().unwrap_err().0, "concurrency");
        spec.isolation = Isolation::Instance;
        spec.validate().unwrap();
        spec.min_instances = 101;
        assert_eq!(spec.validate().unwrap_err().0, "min_instances");
        spec.min_instances = 2;
        spec.validate().unwrap();
        spec.isolation = Isolation::Invocation;
        spec.concurrency = 1;
        assert_eq!(spec.validate().unwrap_err().0, "min_instances");
    }
}
