//! `[server]`: where Wisp listens, where it keeps its state, and the limits
//! of its front door.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use serde::Deserialize;

use crate::config::{ByteSize, PoolSettings, Span, TelemetrySettings};

/// The environment variable that sets the admin API's bearer token, for the
/// server and the CLI alike; it wins over `admin_token_file`.
pub const ADMIN_TOKEN_ENV: &str = "WISP_ADMIN_TOKEN";

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
    /// Guest output and access records kept per function for `wisp logs`;
    /// the oldest go first.
    #[serde(default = "default_logs_max_bytes")]
    pub logs_max_bytes: ByteSize,
    /// How long a function's log records are kept at most.
    #[serde(default = "default_logs_max_age")]
    pub logs_max_age: Span,
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
    /// `[server.telemetry]`: trace export.
    #[serde(default)]
    pub telemetry: TelemetrySettings,
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

fn default_logs_max_bytes() -> ByteSize {
    ByteSize::mib(16)
}

fn default_logs_max_age() -> Span {
    Span(Duration::from_secs(24 * 3600))
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
            logs_max_bytes: default_logs_max_bytes(),
            logs_max_age: default_logs_max_age(),
            shutdown_grace: default_shutdown_grace(),
            max_connections: None,
            request_body_timeout: default_request_body_timeout(),
            max_buffered_body: default_max_buffered_body(),
            idle_timeout: default_idle_timeout(),
            pool: PoolSettings::default(),
            telemetry: TelemetrySettings::default(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_connections_follows_the_file_limit() {
        assert_eq!(default_max_connections(1024), 256);
        assert_eq!(default_max_connections(20_000), 9488);
        assert_eq!(default_max_connections(1 << 20), 523_776);
        assert_eq!(default_max_connections(1), 1);
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
}
