//! `allowed_outbound_hosts`: the origins a function's guest may call. Parsed
//! once per deploy; enforced by [`crate::sandbox::outbound`], which also
//! keeps wildcard grants away from loopback, private and link-local
//! addresses and from Wisp's own ports.

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

    /// Whether a request to `uri` may leave the host, and on what grounds:
    /// `None` when no origin matches. An origin naming the host outright
    /// wins over a wildcard one, since it allows more.
    pub fn grant(&self, uri: &Uri) -> Option<Grant> {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return None;
        };
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let host = host.to_ascii_lowercase();
        self.origins
            .iter()
            .filter(|o| {
                o.scheme.is_none_or(|s| s == scheme)
                    && (o.host == "*" || o.host == host)
                    && o.port.is_none_or(|p| p == port)
            })
            .map(|o| {
                if o.host == "*" {
                    Grant::Wildcard
                } else {
                    Grant::Literal
                }
            })
            .min()
    }
}

/// Why a request is allowed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grant {
    /// An origin names the request's host (`http://127.0.0.1:9000`,
    /// `http://localhost:*`): whatever that host resolves to may be reached.
    Literal,
    /// Only an origin with a wildcard host (`*`, `https://*`, `http://*:*`)
    /// matches: public addresses only, never Wisp's own ports.
    Wildcard,
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

    fn grant(a: &AllowedHosts, uri: &str) -> Option<Grant> {
        a.grant(&uri.parse().unwrap())
    }

    #[test]
    fn empty_list_denies_everything() {
        assert_eq!(grant(&allowed(&[]), "http://127.0.0.1:9000/x"), None);
    }

    #[test]
    fn origin_matches_scheme_host_and_port() {
        let a = allowed(&["http://127.0.0.1:9000", "https://api.example.com"]);
        assert_eq!(grant(&a, "http://127.0.0.1:9000/x"), Some(Grant::Literal));
        assert_eq!(grant(&a, "http://127.0.0.1:9001/x"), None);
        assert_eq!(grant(&a, "https://127.0.0.1:9000/x"), None);
        assert_eq!(
            grant(&a, "https://API.example.com/v1"),
            Some(Grant::Literal)
        );
        assert_eq!(grant(&a, "http://api.example.com/v1"), None);
    }

    #[test]
    fn wildcard_hosts_grant_less_than_named_ones() {
        for any in ["*", "http://*:*", "http://*"] {
            assert_eq!(
                grant(&allowed(&[any]), "http://127.0.0.1/"),
                Some(Grant::Wildcard),
                "{any}"
            );
        }
        assert_eq!(
            grant(&allowed(&["*"]), "https://x:1/"),
            Some(Grant::Wildcard)
        );
        assert_eq!(grant(&allowed(&["https://*"]), "http://x/"), None);
        // A port wildcard on a named host still names the host.
        let a = allowed(&["http://127.0.0.1:*"]);
        assert_eq!(grant(&a, "http://127.0.0.1:5/"), Some(Grant::Literal));
        assert_eq!(grant(&a, "http://127.0.0.2:5/"), None);
        // Named wins over a wildcard that also matches.
        let a = allowed(&["*", "http://localhost:8080"]);
        assert_eq!(grant(&a, "http://localhost:8080/"), Some(Grant::Literal));
        assert_eq!(grant(&a, "http://localhost:8081/"), Some(Grant::Wildcard));
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
