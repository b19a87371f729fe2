//! `allowed_outbound_hosts`: the origins a function's guest may call. Parsed
//! once per deploy; enforced by [`crate::sandbox::outbound`].

use http::Uri;

/// The parsed `allowed_outbound_hosts` list of one function.
#[derive(Clone, Debug, Default)]
pub struct AllowedHosts {
    origins: Vec<Origin>,
}

#[derive(Clone, Debug, PartialEq)]
struct Origin {
    /// `None` allows both http and https (from a bare `*`).
    scheme: Option<&'static str>,
    /// `*` matches any host.
    host: String,
    /// `None` matches any port.
    port: Option<u16>,
}

impl AllowedHosts {
    /// Parses entries like `http://127.0.0.1:9000`, `https://api.example.com`,
    /// `https://*` (any host over https) or `*` (anything).
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let origins = entries
            .iter()
            .map(|e| parse_origin(e))
            .collect::<Result<_, _>>()?;
        Ok(AllowedHosts { origins })
    }

    /// Whether a request to `uri` may leave the host.
    pub fn permits(&self, uri: &Uri) -> bool {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return false;
        };
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let host = host.to_ascii_lowercase();
        self.origins.iter().any(|o| {
            o.scheme.is_none_or(|s| s == scheme)
                && (o.host == "*" || o.host == host)
                && o.port.is_none_or(|p| p == port)
        })
    }
}

fn parse_origin(entry: &str) -> Result<Origin, String> {
    let bad = |why: &str| {
        format!(
            "`{entry}` {why}; write origins like `http://127.0.0.1:9000`, `https://api.example.com` or `*`"
        )
    };
    if entry == "*" {
        return Ok(Origin {
            scheme: None,
            host: "*".into(),
            port: None,
        });
    }
    let (scheme, rest) = entry
        .split_once("://")
        .ok_or_else(|| bad("has no scheme"))?;
    let scheme = match scheme {
        "http" => "http",
        "https" => "https",
        _ => return Err(bad("uses a scheme other than http or https")),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains('/') {
        return Err(bad("must be an origin without a path"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, "*")) if !host.ends_with(']') || rest.starts_with('[') => (host, None),
        Some((host, port)) if !port.contains(']') => (
            host,
            Some(
                port.parse::<u16>()
                    .map_err(|_| bad("has an invalid port"))?,
            ),
        ),
        _ => (rest, Some(if scheme == "https" { 443 } else { 80 })),
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    Ok(Origin {
        scheme: Some(scheme),
        host: host.to_ascii_lowercase(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn empty_list_denies_everything() {
        assert!(!allowed(&[]).permits(&"http://127.0.0.1:9000/x".parse().unwrap()));
    }

    #[test]
    fn origin_matches_scheme_host_and_port() {
        let a = allowed(&["http://127.0.0.1:9000", "https://api.example.com"]);
        assert!(a.permits(&"http://127.0.0.1:9000/x".parse().unwrap()));
        assert!(!a.permits(&"http://127.0.0.1:9001/x".parse().unwrap()));
        assert!(!a.permits(&"https://127.0.0.1:9000/x".parse().unwrap()));
        assert!(a.permits(&"https://API.example.com/v1".parse().unwrap()));
        assert!(!a.permits(&"http://api.example.com/v1".parse().unwrap()));
    }

    #[test]
    fn wildcards() {
        assert!(allowed(&["*"]).permits(&"http://x:1/".parse().unwrap()));
        let a = allowed(&["http://127.0.0.1:*"]);
        assert!(a.permits(&"http://127.0.0.1:5/".parse().unwrap()));
        assert!(!a.permits(&"http://127.0.0.2:5/".parse().unwrap()));
    }

    #[test]
    fn rejects_non_origins() {
        for bad in [
            "127.0.0.1:80",
            "ftp://x",
            "http://x/path",
            "http://x:99999",
            "http://",
        ] {
            assert!(AllowedHosts::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
