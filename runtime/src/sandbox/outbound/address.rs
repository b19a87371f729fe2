//! Which addresses are not the public internet: loopback, private, link-local
//! and unspecified ones. An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`)
//! counts as the IPv4 address it carries, since that is where it connects.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A range of addresses that wildcard origins never reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    /// 127.0.0.0/8, ::1: this machine.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, 100.64/10 (shared, carrier-grade NAT),
    /// fc00::/7 (unique local), fec0::/10 (site-local, deprecated but still
    /// routed by some networks): the networks around this machine.
    Private,
    /// 169.254/16 (where cloud metadata services answer, 169.254.169.254),
    /// fe80::/10.
    LinkLocal,
    /// 0.0.0.0/8 and ::, which a connect sends to this machine.
    Unspecified,
}

impl Range {
    /// The range `ip` is in; `None` for a public address.
    pub fn of(ip: IpAddr) -> Option<Range> {
        match ip {
            IpAddr::V4(v4) => of_v4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => of_v4(v4),
                None => of_v6(v6),
            },
        }
    }
}

fn of_v4(ip: Ipv4Addr) -> Option<Range> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some(Range::Loopback)
    } else if ip.is_private() || (a == 100 && b & 0xc0 == 64) {
        Some(Range::Private)
    } else if ip.is_link_local() {
        Some(Range::LinkLocal)
    } else if a == 0 {
        Some(Range::Unspecified)
    } else {
        None
    }
}

fn of_v6(ip: Ipv6Addr) -> Option<Range> {
    if ip.is_loopback() {
        Some(Range::Loopback)
    } else if ip.is_unique_local() || ip.segments()[0] & 0xffc0 == 0xfec0 {
        Some(Range::Private)
    } else if ip.is_unicast_link_local() {
        Some(Range::LinkLocal)
    } else if ip.is_unspecified() {
        Some(Range::Unspecified)
    } else {
        None
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Range::Loopback => "a loopback address",
            Range::Private => "a private address",
            Range::LinkLocal => "a link-local address",
            Range::Unspecified => "an unspecified address",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(ip: &str) -> Option<Range> {
        Range::of(ip.parse().unwrap())
    }

    #[test]
    fn classifies_ipv4() {
        for (ip, expected) in [
            ("127.0.0.1", Some(Range::Loopback)),
            ("127.255.0.9", Some(Range::Loopback)),
            ("10.1.2.3", Some(Range::Private)),
            ("172.16.0.1", Some(Range::Private)),
            ("172.31.255.255", Some(Range::Private)),
            ("192.168.1.1", Some(Range::Private)),
            ("100.64.0.1", Some(Range::Private)),
            ("100.127.255.255", Some(Range::Private)),
            ("169.254.169.254", Some(Range::LinkLocal)),
            ("0.0.0.0", Some(Range::Unspecified)),
            ("0.1.2.3", Some(Range::Unspecified)),
            ("172.32.0.1", None),
            ("100.128.0.1", None),
            ("100.63.255.255", None),
            ("93.184.216.34", None),
            ("8.8.8.8", None),
        ] {
            assert_eq!(range(ip), expected, "{ip}");
        }
    }

    #[test]
    fn classifies_ipv6() {
        for (ip, expected) in [
            ("::1", Some(Range::Loopback)),
            ("::", Some(Range::Unspecified)),
            ("fc00::1", Some(Range::Private)),
            ("fd12:3456::1", Some(Range::Private)),
            ("fe80::1", Some(Range::LinkLocal)),
            ("febf::1", Some(Range::LinkLocal)),
            ("fec0::1", Some(Range::Private)),
            ("2606:4700::1111", None),
            ("fe00::1", None),
        ] {
            assert_eq!(range(ip), expected, "{ip}");
        }
    }

    #[test]
    fn mapped_ipv6_counts_as_its_ipv4_address() {
        assert_eq!(range("::ffff:127.0.0.1"), Some(Range::Loopback));
        assert_eq!(range("::ffff:10.0.0.1"), Some(Range::Private));
        assert_eq!(range("::ffff:169.254.169.254"), Some(Range::LinkLocal));
        assert_eq!(range("::ffff:0.0.0.0"), Some(Range::Unspecified));
        assert_eq!(range("::ffff:8.8.8.8"), None);
    }
}
