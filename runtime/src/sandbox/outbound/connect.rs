//! Where an outbound request connects. Wisp resolves the host itself, keeps
//! only the addresses the request's [`Reach`] permits, and connects to one of
//! those: the address checked is the address connected to, so a name cannot
//! resolve to a public address for the check and to loopback for the
//! connect (DNS rebinding). For https, TLS follows, verified against the
//! host name the guest asked for.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use http::Uri;
use http::uri::Scheme;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;
use wasmtime_wasi_http::Error;

use crate::sandbox::outbound::policy::{Denial, Reach};

/// A connection to the origin, plain or TLS.
pub type Connection = Either<TcpStream, TlsStream<TcpStream>>;

/// Why no connection was made.
pub enum Failure {
    /// Every address the host resolved to is out of the request's reach;
    /// the first one says why.
    Denied(Denial),
    /// Resolving, connecting or TLS failed, as wasi:http names it.
    Http(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Http(e)
    }
}

/// Opens a connection for a request to `uri` (scheme, host and port are
/// used), to an address `reach` permits.
pub async fn connect(uri: &Uri, reach: &Reach) -> Result<Connection, Failure> {
    let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?;
    // IPv6 literals come bracketed in URIs (`[::1]`); resolving and TLS
    // want the bare address.
    let name = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let tls = uri.scheme() == Some(&Scheme::HTTPS);
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addrs = tokio::net::lookup_host((name, port))
        .await
        .map_err(Error::Connect)?;
    let tcp = dial(name, addrs, reach).await?;
    if !tls {
        return Ok(Either::Left(tcp));
    }
    let server_name = ServerName::try_from(name).map_err(Error::from)?.to_owned();
    let connector = TLS
        .as_ref()
        .map_err(|e| Error::Tls(io::Error::other(e.clone())))?;
    let stream = connector
        .connect(server_name, tcp)
        .await
        .map_err(Error::Tls)?;
    Ok(Either::Right(stream))
}

/// Connects to the first of `addrs` that `reach` permits and that accepts,
/// in the resolver's order.
async fn dial(
    name: &str,
    addrs: impl Iterator<Item = SocketAddr>,
    reach: &Reach,
) -> Result<TcpStream, Failure> {
    let mut denied = None;
    let mut failed = None;
    for addr in addrs {
        if let Err(denial) = reach.check(addr) {
            denied.get_or_insert(denial);
            continue;
        }
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => failed = Some(e),
        }
    }
    Err(match (failed, denied) {
        (Some(e), _) => Failure::Http(Error::Connect(e)),
        (None, Some(denial)) => Failure::Denied(denial),
        (None, None) => Failure::Http(Error::DnsError {
            rcode: Some(format!("{name} has no addresses")),
            info_code: None,
        }),
    })
}

/// TLS with the Mozilla roots (webpki-roots) and the ring provider, as
/// wasi:http's default client has it; built once per process.
static TLS: LazyLock<Result<TlsConnector, rustls::Error>> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Grant;
    use crate::sandbox::outbound::policy::OwnPorts;

    async fn try_connect(grant: Grant, uri: &str) -> Result<(), String> {
        let reach = Reach::new(grant, Arc::new(OwnPorts::default()));
        match connect(&uri.parse().unwrap(), &reach).await {
            Ok(_) => Ok(()),
            Err(Failure::Denied(denial)) => Err(denial.to_string()),
            Err(Failure::Http(e)) => panic!("{uri}: not denied but failed: {e}"),
        }
    }

    #[tokio::test]
    async fn checks_the_resolved_address_it_connects_to() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        for host in ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "127.1"] {
            let uri = format!("http://{host}:{port}/");
            let denied = try_connect(Grant::Wildcard, &uri).await.unwrap_err();
            assert!(denied.contains("is a loopback address"), "{uri}: {denied}");
        }
        let uri = format!("http://127.0.0.1:{port}/");
        assert_eq!(try_connect(Grant::Literal, &uri).await, Ok(()));
    }
}
