//! The app manifest (`wisp.toml`) that `wisp up` serves: server settings and
//! a list of functions. Every error names the file, the line and the key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};
use serde::Deserialize;

use crate::config::{
    ByteSize, FunctionSpec, PoolSettings, SecretSpec, Span, StateSpec, StoreSpec, TopicSpec,
    check_state_names,
};

/// The environment variable that sets the admin API's bearer token, for the
/// server and the CLI alike; it wins over `admin_token_file`.
pub const ADMIN_TOKEN_ENV: &str = "WISP_ADMIN_TOKEN";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    server: ServerSettings,
    #[serde(default, rename = "topic")]
    topics: Vec<TopicSpec>,
    #[serde(default, rename = "store")]
    stores: Vec<StoreSpec>,
    #[serde(default, rename = "secret")]
    secrets: Vec<SecretSpec>,
    #[serde(default, rename = "function")]
    functions: Vec<FunctionSpec>,
}

/// `[server]`: where to listen and how big the shared pool is.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Admin API address; off when absent. Beyond loopback only with an
    /// explicitly configured token (`admin_token_file` or `WISP_ADMIN_TOKEN`).
    #[serde(default)]
    pub admin: Option<SocketAddr>,
    /// File holding the admin API's bearer token; relative to the manifest.
    /// Without it (and without `WISP_ADMIN_TOKEN`) a token is generated into
    /// `state_dir/admin-token`.
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
    /// The directory under which admin deploys may preopen host directories
    /// (`dirs`); relative to the manifest. Absent: admin deploys may not use
    /// `dirs`. Manifest functions are not limited by it.
    #[serde(default)]
    pub files_root: Option<PathBuf>,
    /// Where deployed functions are kept; relative to the manifest.
    /// Defaults to `.wisp/` beside the manifest.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Artifact cache (compiled code, snapshots); relative to the manifest.
    /// Defaults to `$WISP_CACHE_DIR`, else `~/.cache/wisp/artifacts`.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Revisions kept per function, the current one always among them; older
    /// ones, and the components only they used, are removed.
    #[serde(default = "default_keep_revisions")]
    pub keep_revisions: NonZeroUsize,
    /// Disk space the artifact cache may take; the least recently used
    /// entries are evicted first.
    #[serde(default = "default_cache_max_size")]
    pub cache_max_size: ByteSize,
    /// How long in-flight requests may run after SIGTERM/SIGINT.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: Span,
    /// Connections served at once; beyond it new ones wait in the accept
    /// backlog until one closes. Defaults to [`default_max_connections`]
    /// of the open file limit.
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// How long Wisp waits for the next piece of a request body (the first
    /// included) before answering 408.
    #[serde(default = "default_request_body_timeout")]
    pub request_body_timeout: Span,
    /// Request bodies Wisp holds in memory at once, server-wide (chunked
    /// bodies read ahead of the guest); beyond it requests get 503.
    #[serde(default = "default_max_buffered_body")]
    pub max_buffered_body: ByteSize,
    /// How long a connection may go without a complete request head: the
    /// wait for a new connection's first request and for the next request
    /// on a keep-alive connection, header transmission included.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Span,
    #[serde(default)]
    pub pool: PoolSettings,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_keep_revisions() -> NonZeroUsize {
    const TEN: NonZeroUsize = NonZeroUsize::new(10).unwrap();
    TEN
}

fn default_cache_max_size() -> ByteSize {
    ByteSize(2 << 30)
}

fn default_shutdown_grace() -> Span {
    Span(Duration::from_secs(30))
}

fn default_request_body_timeout() -> Span {
    Span(Duration::from_secs(30))
}

fn default_max_buffered_body() -> ByteSize {
    ByteSize::mib(256)
}

fn default_idle_timeout() -> Span {
    Span(Duration::from_secs(30))
}

/// `max_connections` when unset, from the open file limit `nofile`: keep
/// `min(1024, nofile / 2)` descriptors for everything but client
/// connections (listeners, the state dir and cache, instances' files), and
/// count two descriptors per connection (its socket, and about one more for
/// the work it starts, such as a guest's outbound request).
pub fn default_max_connections(nofile: u64) -> u32 {
    let reserve = (nofile / 2).min(1024);
    u32::try_from((nofile - reserve) / 2)
        .unwrap_or(u32::MAX)
        .max(1)
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: default_listen(),
            admin: None,
            admin_token_file: None,
            files_root: None,
            state_dir: None,
            cache_dir: None,
            keep_revisions: default_keep_revisions(),
            cache_max_size: default_cache_max_size(),
            shutdown_grace: default_shutdown_grace(),
            max_connections: None,
            request_body_timeout: default_request_body_timeout(),
            max_buffered_body: default_max_buffered_body(),
            idle_timeout: default_idle_timeout(),
            pool: PoolSettings::default(),
        }
    }
}

impl ServerSettings {
    /// The artifact cache to use: the setting, `$WISP_CACHE_DIR`, or
    /// `~/.cache/wisp/artifacts`; `None` (memory only) without a home.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        self.cache_dir
            .clone()
            .or_else(|| std::env::var_os("WISP_CACHE_DIR").map(PathBuf::from))
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/wisp/artifacts"))
            })
    }

    /// Refuses an admin API beyond loopback unless its token is configured
    /// explicitly: a generated token sits in a file only this host can read,
    /// so remote callers would have been handed nothing to authenticate with.
    pub fn check_admin(&self) -> Result<()> {
        self.check_admin_with(std::env::var_os(ADMIN_TOKEN_ENV).is_some())
    }

    fn check_admin_with(&self, env_token: bool) -> Result<()> {
        if let Some(admin) = self.admin
            && !admin.ip().is_loopback()
            && self.admin_token_file.is_none()
            && !env_token
        {
            bail!(
                "admin = \"{admin}\" is not a loopback address: the admin API listens beyond \
                 loopback only with an explicitly configured token; set [server] \
                 admin_token_file (wisp serve: --admin-token-file) or the {ADMIN_TOKEN_ENV} \
                 environment variable, or use a loopback address like 127.0.0.1:3001"
            );
        }
        Ok(())
    }

    /// Refuses front-door limits that would let nothing through.
    pub fn check_limits(&self) -> Result<()> {
        if self.max_connections == Some(0) {
            bail!("max_connections = 0 would serve no connection; use at least 1 or leave it out");
        }
        for (key, span) in [
            ("request_body_timeout", self.request_body_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if span.0.is_zero() {
                bail!("{key} = {span} would cut every request off; use a duration like \"30s\"");
            }
        }
        if self.max_buffered_body.bytes() == 0 {
            bail!(
                "max_buffered_body = 0 would refuse every chunked request body; use a size like \"256Mi\""
            );
        }
        Ok(())
    }
}

/// A parsed, checked manifest. Function `component`s are absolute paths.
#[derive(Debug)]
pub struct Manifest {
    pub server: ServerSettings,
    pub topics: Vec<TopicSpec>,
    /// Stores and secrets; secret files are absolute paths.
    pub state: StateSpec,
    pub functions: Vec<FunctionSpec>,
}

/// Spans of each array-of-tables entry, to point errors at lines.
#[derive(Deserialize)]
struct Locate {
    #[serde(default)]
    function: Vec<toml::Spanned<toml::Table>>,
    #[serde(default)]
    topic: Vec<toml::Spanned<toml::Table>>,
    #[serde(default)]
    store: Vec<toml::Spanned<toml::Table>>,
    #[serde(default)]
    secret: Vec<toml::Spanned<toml::Table>>,
}

/// Which array of tables an error is about.
#[derive(Clone, Copy)]
enum Kind {
    Function,
    Topic,
    Store,
    Secret,
}

struct Source<'a> {
    path: &'a Path,
    text: &'a str,
    functions: Vec<std::ops::Range<usize>>,
    topics: Vec<std::ops::Range<usize>>,
    stores: Vec<std::ops::Range<usize>>,
    secrets: Vec<std::ops::Range<usize>>,
}

impl Source<'_> {
    fn line_at(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    /// `file:line: function `name`: key: message`
    fn error(&self, index: usize, key: &str, name: &str, message: &str) -> anyhow::Error {
        self.error_in(Kind::Function, index, key, name, message)
    }

    fn error_in(
        &self,
        kind: Kind,
        index: usize,
        key: &str,
        name: &str,
        message: &str,
    ) -> anyhow::Error {
        let (tables, noun) = match kind {
            Kind::Function => (&self.functions, "function"),
            Kind::Topic => (&self.topics, "topic"),
            Kind::Store => (&self.stores, "store"),
            Kind::Secret => (&self.secrets, "secret"),
        };
        let span = tables.get(index).cloned().unwrap_or(0..0);
        let body = &self.text[span.clone()];
        let offset = body
            .lines()
            .scan(0, |pos, line| {
                let start = *pos;
                *pos += line.len() + 1;
                Some((start, line))
            })
            .find(|(_, line)| {
                line.trim_start()
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
            .map(|(start, _)| span.start + start)
            .unwrap_or(span.start);
        let who = if name.is_empty() {
            format!("{noun} #{}", index + 1)
        } else {
            format!("{noun} `{name}`")
        };
        anyhow::anyhow!(
            "{}:{}: {who}: `{key}`: {message}",
            self.path.display(),
            self.line_at(offset)
        )
    }
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "could not read manifest `{}`: {e}; pass the right file with -f",
                path.display()
            )
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Manifest> {
        let doc: Document =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        doc.server
            .check_admin()
            .and_then(|()| doc.server.check_limits())
            .map_err(|e| anyhow::anyhow!("{}: [server] {e}", path.display()))?;
        let locate: Locate =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let src = Source {
            path,
            text,
            functions: locate.function.iter().map(|t| t.span()).collect(),
            topics: locate.topic.iter().map(|t| t.span()).collect(),
            stores: locate.store.iter().map(|t| t.span()).collect(),
            secrets: locate.secret.iter().map(|t| t.span()).collect(),
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let topics = check_topics(&src, doc.topics)?;
        let state = check_state(&src, base, doc.stores, doc.secrets)?;

        let mut names = HashMap::new();
        let mut routes = HashMap::new();
        let mut functions = Vec::with_capacity(doc.functions.len());
        for (i, mut spec) in doc.functions.into_iter().enumerate() {
            spec.validate()
                .and_then(|_| check_topic_names(&spec, &topics))
                .and_then(|()| check_state_names(&spec, &state))
                .map_err(|(key, msg)| src.error(i, key, &spec.name, &msg))?;
            if let Some(first) = names.insert(spec.name.clone(), i) {
                return Err(src.error(
                    i,
                    "name",
                    &spec.name,
                    &format!("duplicate name; function #{} already uses it", first + 1),
                ));
            }
            if let Some(route) = spec.http_route().map(str::to_string)
                && let Some(first) = routes.insert(route.clone(), spec.name.clone())
            {
                return Err(src.error(
                    i,
                    "route",
                    &spec.name,
                    &format!("route `{route}` is already served by function `{first}`"),
                ));
            }
            let component = base.join(&spec.component);
            if !component.is_file() {
                return Err(src.error(
                    i,
                    "component",
                    &spec.name,
                    &format!("no file at `{}` (paths are relative to the manifest); build the guests with scripts/build-guests", component.display()),
                ));
            }
            spec.component = component.to_string_lossy().into_owned();
            for host in spec.dirs.values_mut() {
                *host = base.join(&*host).to_string_lossy().into_owned();
            }
            functions.push(spec);
        }
        let mut server = doc.server;
        server.state_dir =
            Some(base.join(server.state_dir.as_deref().unwrap_or(Path::new(".wisp"))));
        server.admin_token_file = server.admin_token_file.map(|f| base.join(f));
        server.files_root = server.files_root.map(|f| base.join(f));
        Ok(Manifest {
            server,
            topics,
            state,
            functions,
        })
    }
}

fn check_topics(src: &Source, topics: Vec<TopicSpec>) -> Result<Vec<TopicSpec>> {
    let mut names = HashMap::new();
    for (i, topic) in topics.iter().enumerate() {
        topic
            .validate()
            .map_err(|(key, msg)| src.error_in(Kind::Topic, i, key, &topic.name, &msg))?;
        if let Some(first) = names.insert(topic.name.as_str(), i) {
            return Err(src.error_in(
                Kind::Topic,
                i,
                "name",
                &topic.name,
                &format!("duplicate name; topic #{} already uses it", first + 1),
            ));
        }
    }
    Ok(topics)
}

fn check_state(
    src: &Source,
    base: &Path,
    stores: Vec<StoreSpec>,
    mut secrets: Vec<SecretSpec>,
) -> Result<StateSpec> {
    let mut names = HashMap::new();
    for (i, store) in stores.iter().enumerate() {
        store
            .validate()
            .map_err(|(key, msg)| src.error_in(Kind::Store, i, key, &store.name, &msg))?;
        if let Some(first) = names.insert(store.name.as_str(), i) {
            return Err(src.error_in(
                Kind::Store,
                i,
                "name",
                &store.name,
                &format!("duplicate name; store #{} already uses it", first + 1),
            ));
        }
    }
    let mut names = HashMap::new();
    for (i, secret) in secrets.iter_mut().enumerate() {
        secret
            .validate()
            .map_err(|(key, msg)| src.error_in(Kind::Secret, i, key, &secret.name, &msg))?;
        if let Some(first) = names.insert(secret.name.clone(), i) {
            return Err(src.error_in(
                Kind::Secret,
                i,
                "name",
                &secret.name,
                &format!("duplicate name; secret #{} already uses it", first + 1),
            ));
        }
        secret.file = secret.file.as_ref().map(|f| base.join(f));
    }
    Ok(StateSpec { stores, secrets })
}

/// Every topic a function names (subscribes to, dead-letters to, publishes
/// to) must be declared.
pub fn check_topic_names(
    spec: &FunctionSpec,
    topics: &[TopicSpec],
) -> Result<(), (&'static str, String)> {
    let known = |name: &str| topics.iter().any(|t| t.name == name);
    let missing = |name: &str| {
        let declared: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
        format!(
            "no topic `{name}`; declare it with a [[topic]] table (declared: {})",
            if declared.is_empty() {
                "none".to_string()
            } else {
                declared.join(", ")
            }
        )
    };
    if let Some(trigger) = &spec.trigger {
        if !known(&trigger.topic) {
            return Err(("topic", missing(&trigger.topic)));
        }
        if let Some(dead) = &trigger.dead_letter_topic
            && !known(dead)
        {
            return Err(("dead_letter_topic", missing(dead)));
        }
    }
    match spec.publish.iter().find(|t| !known(t)) {
        Some(topic) => Err(("publish", missing(topic))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.wasm"), b"x").unwrap();
        std::fs::write(dir.path().join("b.wasm"), b"x").unwrap();
        Manifest::parse(&dir.path().join("wisp.toml"), text)
    }

    #[test]
    fn parses_a_full_manifest() {
        let m = parse(
            r#"
[server]
listen = "127.0.0.1:3000"
admin = "127.0.0.1:3001"

[[function]]
name = "hello"
component = "a.wasm"
route = "/hello"
memory = "64Mi"
timeout = "5s"
max_instances = 100
env = { GREETING = "hi" }
allowed_outbound_hosts = ["http://127.0.0.1:9000"]
"#,
        )
        .unwrap();
        assert_eq!(m.server.listen.port(), 3000);
        assert_eq!(m.functions[0].memory.bytes(), 64 << 20);
        assert!(m.functions[0].component.ends_with("a.wasm"));
        assert_eq!(m.server.max_connections, None);
        assert_eq!(m.server.request_body_timeout.0, Duration::from_secs(30));
        assert_eq!(m.server.max_buffered_body, ByteSize::mib(256));
    }

    #[test]
    fn max_connections_follows_the_file_limit() {
        assert_eq!(default_max_connections(1024), 256);
        assert_eq!(default_max_connections(20_000), 9488);
        assert_eq!(default_max_connections(1 << 20), 523_776);
        assert_eq!(default_max_connections(1), 1);
    }

    #[test]
    fn errors_name_line_and_key() {
        let cases = [
            (
                "[[function]]\nname = \"a\"\ncomponent = \"a.wasm\"\nmemroy = \"1Mi\"\n",
                "memroy",
            ),
            (
                "[[function]]\nname = \"a\"\ncomponent = \"a.wasm\"\nmemory = \"64Q\"\n",
                "line 4",
            ),
            (
                "[[function]]\nname = \"a\"\ncomponent = \"a.wasm\"\ntimeout = \"soon\"\n",
                "line 4",
            ),
            (
                "[[function]]\nname = \"a\"\ncomponent = \"missing.wasm\"\n",
                ":3: function `a`: `component`: no file",
            ),
            (
                "[[function]]\nname = \"a\"\ncomponent = \"a.wasm\"\n\n[[function]]\nname = \"a\"\ncomponent = \"b.wasm\"\nroute = \"/b\"\n",
                ":6: function `a`: `name`: duplicate name",
            ),
            (
                "[[function]]\nname = \"a\"\ncomponent = \"a.wasm\"\nroute = \"/x\"\n[[function]]\nname = \"b\"\ncomponent = \"b.wasm\"\nroute = \"/x/\"\n",
                ":8: function `b`: `route`: route `/x` is already served by function `a`",
            ),
            ("[server]\nkeep_revisions = 0\n", "nonzero"),
            ("[server]\ncache_max_size = \"lots\"\n", "invalid size"),
            ("[server]\nmax_connections = 0\n", "max_connections = 0"),
            ("[server]\nidle_timeout = \"0s\"\n", "idle_timeout"),
            (
                "[[store]]\nname = \"photos\"\nkind = \"blobstore\"\n",
                ":3: store `photos`: `kind`: `blobstore` is not a store kind Wisp serves; supported: keyvalue",
            ),
            (
                "[[store]]\nname = \"cache\"\nkind = \"keyvalue\"\n[[function]]\nname = \"a\"\ncomponent = \"a.wasm\"\nkeyvalue = [\"cach\"]\n",
                ":7: function `a`: `keyvalue`: no key-value store `cach`",
            ),
            (
                "[[secret]]\nname = \"k\"\nenv = \"K\"\n[[function]]\nname = \"a\"\ncomponent = \"a.wasm\"\nsecrets = [\"j\"]\n",
                ":7: function `a`: `secrets`: no secret `j`",
            ),
        ];
        for (text, expected) in cases {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(err.contains(expected), "expected `{expected}` in: {err}");
            assert!(err.contains("wisp.toml"), "no file name in: {err}");
        }
    }

    #[test]
    fn admin_beyond_loopback_needs_a_configured_token() {
        let mut server = ServerSettings {
            admin: Some("0.0.0.0:3001".parse().unwrap()),
            ..ServerSettings::default()
        };
        let err = server.check_admin_with(false).unwrap_err().to_string();
        assert!(
            err.contains("not a loopback address")
                && err.contains("admin_token_file")
                && err.contains(ADMIN_TOKEN_ENV),
            "{err}"
        );
        server.check_admin_with(true).unwrap();
        server.admin_token_file = Some("token".into());
        server.check_admin_with(false).unwrap();
        server.admin_token_file = None;
        server.admin = Some("127.0.0.1:3001".parse().unwrap());
        server.check_admin_with(false).unwrap();
    }

    #[test]
    fn token_file_and_files_root_are_relative_to_the_manifest() {
        let m =
            parse("[server]\nadmin_token_file = \"secret/token\"\nfiles_root = \"www\"\n").unwrap();
        let base = m.server.state_dir.unwrap().parent().unwrap().to_path_buf();
        assert_eq!(m.server.admin_token_file, Some(base.join("secret/token")));
        assert_eq!(m.server.files_root, Some(base.join("www")));
    }
}
