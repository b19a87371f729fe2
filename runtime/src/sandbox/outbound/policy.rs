//! What a granted request may connect to, address by address. An origin
//! that names the host allows whatever that host resolves to; a wildcard
//! origin allows public addresses only, and never Wisp's own ports.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use crate::config::Grant;
use crate::sandbox::outbound::address::Range;

/// The ports Wisp itself listens on, on whatever address. Known only once
/// the listeners are bound, which is after the manifest's functions are
/// deployed: every function shares this one set, filled in by the server
/// after binding and read at request time.
#[derive(Debug, Default)]
pub struct OwnPorts {
    ports: RwLock<Vec<(u16, &'static str)>>,
}

impl OwnPorts {
    /// Records that Wisp's `listener` (e.g. "admin API") is on `port`.
    pub fn add(&self, port: u16, listener: &'static str) {
        self.ports
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push((port, listener));
    }

    /// The listener on `port`, if it is one of Wisp's own.
    fn listener(&self, port: u16) -> Option<&'static str> {
        self.ports
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(p, _)| *p == port)
            .map(|&(_, listener)| listener)
    }
}

/// Where one granted request may connect.
pub struct Reach {
    grant: Grant,
    own_ports: Arc<OwnPorts>,
}

impl Reach {
    pub fn new(grant: Grant, own_ports: Arc<OwnPorts>) -> Self {
        Reach { grant, own_ports }
    }

    /// Whether the request may connect to `addr` (a resolved address).
    pub fn check(&self, addr: SocketAddr) -> Result<(), Denial> {
        if self.grant == Grant::Literal {
            return Ok(());
        }
        let why = if let Some(listener) = self.own_ports.listener(addr.port()) {
            Why::OwnPort(listener)
        } else if let Some(range) = Range::of(addr.ip()) {
            Why::Range(range)
        } else {
            return Ok(());
        };
        Err(Denial { addr, why })
    }
}

/// Why a wildcard origin may not reach an address; says so in the log.
#[derive(Debug, PartialEq)]
pub struct Denial {
    addr: SocketAddr,
    why: Why,
}

#[derive(Debug, PartialEq)]
enum Why {
    OwnPort(&'static str),
    Range(Range),
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.why {
            Why::OwnPort(listener) => write!(
                f,
                "{} is on Wisp's own {listener} port, and only origins naming it literally may reach it",
                self.addr
            ),
            Why::Range(range) => write!(
                f,
                "{} is {range}, and only origins naming it literally may reach it",
                self.addr.ip()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(ports: &[(u16, &'static str)]) -> Arc<OwnPorts> {
        let own = Arc::new(OwnPorts::default());
        for &(port, listener) in ports {
            own.add(port, listener);
        }
        own
    }

    fn check(grant: Grant, own_ports: &Arc<OwnPorts>, addr: &str) -> Result<(), String> {
        Reach::new(grant, own_ports.clone())
            .check(addr.parse().unwrap())
            .map_err(|d| d.to_string())
    }

    #[test]
    fn wildcards_reach_public_addresses_only() {
        let none = own(&[]);
        for addr in [
            "93.184.216.34:80",
            "[2606:4700::1111]:443",
            "[::ffff:8.8.8.8]:53",
        ] {
            assert_eq!(check(Grant::Wildcard, &none, addr), Ok(()), "{addr}");
        }
        assert_eq!(
            check(Grant::Wildcard, &none, "127.0.0.1:9000"),
            Err("127.0.0.1 is a loopback address, and only origins naming it literally may reach it".into())
        );
        assert_eq!(
            check(Grant::Wildcard, &none, "[::ffff:127.0.0.1]:9000"),
            Err("::ffff:127.0.0.1 is a loopback address, and only origins naming it literally may reach it".into())
        );
        for (addr, kind) in [
            ("[::1]:80", "a loopback"),
            ("10.0.0.1:80", "a private"),
            ("[fd00::1]:80", "a private"),
            ("169.254.169.254:80", "a link-local"),
            ("[fe80::1]:80", "a link-local"),
            ("0.0.0.0:80", "an unspecified"),
            ("[::]:80", "an unspecified"),
        ] {
            let denied = check(Grant::Wildcard, &none, addr).unwrap_err();
            assert!(
                denied.contains(&format!("is {kind} address")),
                "{addr}: {denied}"
            );
        }
    }

    #[test]
    fn literal_origins_reach_what_they_name() {
        let own = own(&[(8080, "functions"), (8081, "admin API")]);
        for addr in [
            "127.0.0.1:9000",
            "[::1]:9000",
            "10.0.0.1:80",
            "169.254.169.254:80",
            "127.0.0.1:8081",
            "93.184.216.34:8080",
        ] {
            assert_eq!(check(Grant::Literal, &own, addr), Ok(()), "{addr}");
        }
    }

    #[test]
    fn wildcards_never_reach_wisps_own_ports_on_any_address() {
        let own_ports = own(&[(8080, "functions")]);
        assert_eq!(
            check(Grant::Wildcard, &own_ports, "93.184.216.34:8080"),
            Err("93.184.216.34:8080 is on Wisp's own functions port, and only origins naming it literally may reach it".into())
        );
        assert_eq!(
            check(Grant::Wildcard, &own_ports, "93.184.216.34:8081"),
            Ok(())
        );
        // Ports bound after the policy was handed out count too.
        own_ports.add(8081, "admin API");
        let denied = check(Grant::Wildcard, &own_ports, "127.0.0.1:8081").unwrap_err();
        assert!(
            denied.contains("127.0.0.1:8081 is on Wisp's own admin API port"),
            "{denied}"
        );
    }
}
