//! IP networks in policies (`allowed_ips`) and the address classes the proxy refuses.
//!
//! The classes follow OpenShell's SSRF rules: loopback, link-local and unspecified are
//! never reachable through the proxy (they would reach the sandbox's own services, the
//! proxy itself, or a cloud metadata endpoint); private and other special-use ranges are
//! reachable only for an exactly named host, an IP-literal host, or an `allowed_ips` entry.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address and prefix length, e.g. `10.0.5.0/24`; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
        };
        Ok(Cidr { addr, prefix }.normalized())
    }

    /// Host bits cleared, so `10.1.2.3/8` reads back as `10.0.0.0/8`.
    fn normalized(self) -> Cidr {
        let addr = match self.addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(self.prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(self.prefix))),
        };
        Cidr {
            addr,
            prefix: self.prefix,
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => u32::from(a) & mask32(self.prefix) == u32::from(n),
            (IpAddr::V6(n), IpAddr::V6(a)) => u128::from(a) & mask128(self.prefix) == u128::from(n),
            _ => false,
        }
    }

    /// True when any address of the network is always blocked.
    pub fn overlaps_always_blocked(&self) -> bool {
        const V4: [(u32, u8); 3] = [(0x7f00_0000, 8), (0xa9fe_0000, 16), (0, 32)];
        match self.addr {
            IpAddr::V4(n) => V4
                .iter()
                .any(|&(b, p)| overlaps32(u32::from(n), self.prefix, b, p)),
            IpAddr::V6(n) => {
                let n = u128::from(n);
                let blocked: [(u128, u8); 5] = [
                    (1, 128),                                // ::1
                    (0, 128),                                // ::
                    (0xfe80u128 << 112, 10),                 // fe80::/10
                    ((0xffffu128 << 32) | 0x7f00_0000, 104), // ::ffff:127.0.0.0/8
                    ((0xffffu128 << 32) | 0xa9fe_0000, 112), // ::ffff:169.254.0.0/16
                ];
                blocked
                    .iter()
                    .any(|&(b, p)| overlaps128(n, self.prefix, b, p))
                    || overlaps128(n, self.prefix, 0xffffu128 << 32, 128) // ::ffff:0.0.0.0
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        Cidr::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - prefix as u32).unwrap_or(0)
}

fn overlaps32(a: u32, ap: u8, b: u32, bp: u8) -> bool {
    let p = ap.min(bp);
    a & mask32(p) == b & mask32(p)
}

fn overlaps128(a: u128, ap: u8, b: u128, bp: u8) -> bool {
    let p = ap.min(bp);
    a & mask128(p) == b & mask128(p)
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is the IPv4 address it carries: the
/// kernel connects it as IPv4, so it is judged as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Never reachable through the proxy, whatever the policy says.
pub fn always_blocked(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(a) => a.is_loopback() || a.is_link_local() || a.is_unspecified(),
        IpAddr::V6(a) => {
            a.is_loopback() || a.is_unspecified() || (a.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Private or special-use: reachable only for exact, IP-literal or `allowed_ips` endpoints.
pub fn internal(ip: IpAddr) -> bool {
    if always_blocked(ip) {
        return true;
    }
    match canonical(ip) {
        IpAddr::V4(a) => {
            let n = u32::from(a);
            const NETS: [(u32, u8); 10] = [
                (0x0a00_0000, 8),  // 10/8
                (0xac10_0000, 12), // 172.16/12
                (0xc0a8_0000, 16), // 192.168/16
                (0x6440_0000, 10), // 100.64/10 CGNAT
                (0xc000_0000, 24), // 192.0.0/24
                (0xc000_0200, 24), // TEST-NET-1
                (0xc612_0000, 15), // 198.18/15 benchmarking
                (0xc633_6400, 24), // TEST-NET-2
                (0xcb00_7100, 24), // TEST-NET-3
                (0xffff_ffff, 32), // broadcast
            ];
            NETS.iter().any(|&(b, p)| n & mask32(p) == b) || a.is_multicast()
        }
        IpAddr::V6(a) => (a.segments()[0] & 0xfe00) == 0xfc00 || a.is_multicast(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_contain() {
        let c = Cidr::parse("10.1.2.3/8").unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(ip("10.200.0.1")));
        assert!(
            c.contains(ip("::ffff:10.0.0.1")),
            "mapped addresses are IPv4"
        );
        assert!(!c.contains(ip("11.0.0.1")));
        assert_eq!(
            Cidr::parse("192.0.2.7").unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert!(Cidr::parse("2001:db8::/32")
            .unwrap()
            .contains(ip("2001:db8::1")));
        for bad in ["10.0.0.0/33", "x", "10.0.0.0/", "::/129", ""] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn classes() {
        for s in [
            "127.0.0.1",
            "127.9.9.9",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(always_blocked(ip(s)), "{s}");
            assert!(internal(ip(s)), "{s}");
        }
        for s in [
            "10.0.0.1",
            "172.20.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "fd00::1",
            "198.18.0.1",
        ] {
            assert!(!always_blocked(ip(s)), "{s}");
            assert!(internal(ip(s)), "{s}");
        }
        for s in ["93.184.216.34", "2606:2800::1", "172.32.0.1"] {
            assert!(!internal(ip(s)), "{s}");
        }
    }

    #[test]
    fn blocked_overlap() {
        for s in [
            "0.0.0.0/0",
            "127.0.0.0/8",
            "127.0.0.1",
            "169.254.0.0/16",
            "169.0.0.0/8",
            "::/0",
            "::1",
            "fe80::/10",
            "::ffff:0:0/96",
            "::ffff:127.0.0.1",
        ] {
            assert!(Cidr::parse(s).unwrap().overlaps_always_blocked(), "{s}");
        }
        for s in ["10.0.0.0/8", "192.0.0.0/2", "2001:db8::/32", "fd00::/8"] {
            assert!(!Cidr::parse(s).unwrap().overlaps_always_blocked(), "{s}");
        }
    }
}
