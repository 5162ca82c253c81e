//! The address classes the proxy refuses (`allowed_ips` ranges are `enforce::policy::network::Cidr`).
//!
//! The classes follow OpenShell's SSRF rules: loopback, link-local and unspecified are
//! never reachable through the proxy (they would reach the sandbox's own services, the
//! proxy itself, or a cloud metadata endpoint); private and other special-use ranges are
//! reachable only for an exactly named host, an IP-literal host, or an `allowed_ips` entry.

use std::net::IpAddr;

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0)
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
}
