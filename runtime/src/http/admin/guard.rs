//! What every admin request passes before it is routed: a `Host` that is
//! the admin API's own address (DNS rebinding), no foreign browser `Origin`
//! (cross-site requests), and the bearer token (all but `/healthz` and the
//! dashboard page's files, which hold no data).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::{HeaderMap, StatusCode, header};

use crate::http::admin::token::AdminToken;
use crate::http::dashboard;

pub struct Guard {
    token: AdminToken,
    /// The bound address (the real port, also when 0 was asked for).
    bound: SocketAddr,
}

/// A refused request: its status and what to do about it.
pub type Refusal = (StatusCode, String);

impl Guard {
    pub fn new(token: AdminToken, bound: SocketAddr) -> Self {
        Guard { token, bound }
    }

    /// Checks `headers` of a request for `path`.
    pub fn check(&self, headers: &HeaderMap, path: &str) -> Result<(), Refusal> {
        let host = headers
            .get(header::HOST)
            .map(|h| h.to_str().unwrap_or("(not text)"))
            .unwrap_or("");
        if !self.host_allowed(host) {
            return Err((
                StatusCode::FORBIDDEN,
                format!(
                    "Host `{host}` is not this admin API's address; call it as {} (other host \
                     names are refused so that web pages cannot reach it through DNS rebinding)",
                    self.own_origin()
                ),
            ));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("(not text)");
            if !origin
                .strip_prefix("http://")
                .is_some_and(|host| self.host_allowed(host))
            {
                return Err((
                    StatusCode::FORBIDDEN,
                    format!(
                        "cross-origin request from `{origin}` refused: browsers may call the \
                         admin API only from its own origin, {}",
                        self.own_origin()
                    ),
                ));
            }
        }
        if path.trim_matches('/') == "healthz" || dashboard::is_public(path) {
            return Ok(());
        }
        let send = format!(
            "send `Authorization: Bearer <token>` with {}; the wisp CLI finds the token through \
             --admin-token-file, WISP_ADMIN_TOKEN or --state-dir (default .wisp/admin-token)",
            self.token.hint()
        );
        match headers.get(header::AUTHORIZATION).map(|v| v.to_str()) {
            None => Err((
                StatusCode::UNAUTHORIZED,
                format!("missing admin token: {send}"),
            )),
            Some(value) => {
                let presented = value.ok().and_then(|v| {
                    let (scheme, token) = v.trim().split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
                });
                match presented {
                    Some(token) if self.token.matches(token) => Ok(()),
                    Some(_) => Err((
                        StatusCode::UNAUTHORIZED,
                        format!("wrong admin token: {send}"),
                    )),
                    None => Err((
                        StatusCode::UNAUTHORIZED,
                        format!("the Authorization header is not a bearer token: {send}"),
                    )),
                }
            }
        }
    }

    /// `http://` and the address to call the admin API by.
    fn own_origin(&self) -> String {
        let port = self.bound.port();
        match self.bound.ip() {
            ip if ip.is_loopback() || ip.is_unspecified() => format!("http://127.0.0.1:{port}"),
            _ => format!("http://{}", self.bound),
        }
    }

    /// Loopback listeners answer to `127.0.0.1`, `localhost` and `[::1]`;
    /// others to their own IP; one on every interface (`0.0.0.0`, `[::]`) to
    /// any IP or `localhost`: always with the bound port. A DNS-rebinding
    /// page can only send its own host name, which none of these is.
    fn host_allowed(&self, host: &str) -> bool {
        let Some((name, port)) = split_host(host) else {
            return false;
        };
        if port != self.bound.port() {
            return false;
        }
        let bound = self.bound.ip();
        match name {
            Name::Localhost => bound.is_loopback() || bound.is_unspecified(),
            Name::Ip(ip) => {
                ip == bound
                    || bound.is_unspecified()
                    || (bound.is_loopback()
                        && (ip == IpAddr::V4(Ipv4Addr::LOCALHOST)
                            || ip == IpAddr::V6(Ipv6Addr::LOCALHOST)))
            }
        }
    }
}

enum Name {
    Localhost,
    Ip(IpAddr),
}

/// `name[:port]` of a Host header (port 80 when absent); `None` for names
/// other than `localhost` and IP literals.
fn split_host(host: &str) -> Option<(Name, u16)> {
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => {
            let (inside, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':')?),
            };
            (Name::Ip(IpAddr::V6(inside.parse().ok()?)), port)
        }
        None => {
            let (name, port) = match host.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (host, None),
            };
            let name = if name.eq_ignore_ascii_case("localhost") {
                Name::Localhost
            } else {
                Name::Ip(IpAddr::V4(name.parse().ok()?))
            };
            (name, port)
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => 80,
    };
    Some((name, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(bound: &str) -> Guard {
        let dir = tempfile::tempdir().unwrap();
        let settings = crate::config::ServerSettings {
            admin_token_file: Some(dir.path().join("token")),
            ..Default::default()
        };
        std::fs::write(dir.path().join("token"), "0123456789abcdef\n").unwrap();
        Guard::new(
            AdminToken::resolve(&settings).unwrap(),
            bound.parse().unwrap(),
        )
    }

    #[test]
    fn hosts_must_name_the_listener() {
        let loopback = guard("127.0.0.1:3001");
        for ok in [
            "127.0.0.1:3001",
            "localhost:3001",
            "LocalHost:3001",
            "[::1]:3001",
        ] {
            assert!(loopback.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example:3001",
            "127.0.0.1:3002",
            "127.0.0.1",
            "10.0.0.1:3001",
            "[::1]3001",
            "",
            "127.0.0.1:3001@evil",
        ] {
            assert!(!loopback.host_allowed(bad), "{bad}");
        }
        let lan = guard("10.0.0.5:3001");
        assert!(lan.host_allowed("10.0.0.5:3001"));
        assert!(!lan.host_allowed("localhost:3001"));
        assert!(!lan.host_allowed("10.0.0.6:3001"));
        let everywhere = guard("0.0.0.0:80");
        assert!(everywhere.host_allowed("10.0.0.6"));
        assert!(everywhere.host_allowed("localhost:80"));
        assert!(!everywhere.host_allowed("evil.example"));
    }
}
