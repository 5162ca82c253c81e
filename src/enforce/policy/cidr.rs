//! `allowed_ips` entries: IPv4/IPv6 CIDRs (or bare addresses) with containment, and
//! OpenShell's refusal of ranges its SSRF hardening blocks anyway.

use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address range of `allowed_ips`: a CIDR, or a bare address (/32, /128). Host bits are
/// cleared (`10.1.2.3/8` is `10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
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
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => return Err(format!("{s:?}: prefix length must be 0..{max}")),
            },
        };
        let c = Cidr { addr, prefix };
        Ok(Cidr {
            addr: c.first(),
            prefix,
        })
    }

    fn bits(&self) -> (u128, u32) {
        match self.addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
            IpAddr::V6(a) => (u128::from(a), 128),
        }
    }

    fn range(&self) -> (u128, u128) {
        let (v, width) = self.bits();
        let host = u32::from(self.prefix).min(width);
        let span = if width - host >= 128 {
            u128::MAX
        } else {
            (1u128 << (width - host)) - 1
        };
        (v & !span, v | span)
    }

    fn first(&self) -> IpAddr {
        let (lo, _) = self.range();
        match self.addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(lo as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(lo)),
        }
    }

    /// Whether `ip` is in the range (an IPv4 address is never in an IPv6 range, and the
    /// reverse; map them first).
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.addr.is_ipv4() != ip.is_ipv4() {
            return false;
        }
        let v = match ip {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        let (lo, hi) = self.range();
        lo <= v && v <= hi
    }

    /// Overlaps loopback, link-local or the unspecified address: OpenShell refuses these
    /// (its SSRF hardening blocks them whatever the policy says).
    pub(super) fn always_blocked(&self) -> bool {
        let (lo, hi) = self.range();
        let overlaps = |a: u128, b: u128| lo <= b && a <= hi;
        match self.addr {
            IpAddr::V4(_) => {
                overlaps(0x7f00_0000, 0x7fff_ffff) || overlaps(0xa9fe_0000, 0xa9fe_ffff) || lo == 0
            }
            IpAddr::V6(_) => {
                let mapped = 0xffff_0000_0000u128;
                overlaps(1, 1)
                    || lo == 0
                    || overlaps(0xfe80u128 << 112, (0xfec0u128 << 112) - 1)
                    || overlaps(mapped | 0x7f00_0000, mapped | 0x7fff_ffff)
                    || overlaps(mapped | 0xa9fe_0000, mapped | 0xa9fe_ffff)
                    || overlaps(mapped, mapped)
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// As written back (`10.0.0.0/8`): the egress proxy receives its rules as JSON.
impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        let c = Cidr::parse(&s).map_err(de::Error::custom)?;
        if c.always_blocked() {
            return Err(de::Error::custom(format!(
                "{s} overlaps loopback, link-local or the unspecified address, which egress \
                 never reaches whatever the policy says; remove it"
            )));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.1.2.3/8").unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains("10.255.0.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(!c.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert_eq!(Cidr::parse("192.168.1.1").unwrap().prefix, 32);
        assert_eq!(Cidr::parse("2001:db8::/32").unwrap().prefix, 32);
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        for bad in [
            "10.0.0.0/33",
            "x",
            "10.0.0/8",
            "10.0.0.0/",
            "::/129",
            "10.0.0.0/+8",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        for blocked in [
            "127.0.0.1",
            "126.0.0.0/7",
            "169.254.1.1",
            "0.0.0.0/0",
            "0.0.0.0",
            "::1",
            "::/0",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:168.0.0.0/103",
        ] {
            assert!(Cidr::parse(blocked).unwrap().always_blocked(), "{blocked}");
        }
        for fine in [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "2001:db8::/32",
            "128.0.0.0/8",
        ] {
            assert!(!Cidr::parse(fine).unwrap().always_blocked(), "{fine}");
        }
    }
}
