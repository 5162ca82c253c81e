//! The compiled egress allow-list: what the proxy enforces, independent of how the policy
//! file spells it (the conversion from the OpenShell schema is in `schema.rs`).
//!
//! A request is allowed when some policy has an endpoint matching the host and port **and**
//! lists a binary matching every process that holds the client's socket (its executable or
//! one of its ancestors, as OpenShell does), and then every address the host resolves to
//! passes that endpoint's address rule. Policies are tried in key order, so the logged key
//! is deterministic (the smallest matching one, like OpenShell's).

use super::addr;
use crate::enforce::policy::network::{host_matches, path_matches, Cidr};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Ports of cluster control planes: never reachable through an endpoint that may reach
/// private addresses (OpenShell blocks them the same way).
pub const CONTROL_PLANE_PORTS: [u16; 5] = [2379, 2380, 6443, 10250, 10255];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// Sorted by key.
    pub policies: Vec<NetPolicy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetPolicy {
    /// The map key in `network_policies` (what the log's `policy` field names).
    pub key: String,
    /// Display name (`name`, defaults to the key).
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    /// Executable path patterns (`/`-delimited globs, or exact paths).
    pub binaries: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Lower-case host, IP literal or `.`-delimited glob; None: hostless (`allowed_ips` only).
    pub host: Option<String>,
    pub ports: Vec<u16>,
    pub allowed_ips: Vec<Cidr>,
    /// `enforcement: audit`: OpenShell would only log L7 violations here.
    pub audit: bool,
    /// What the policy asks of this endpoint that an L4 proxy does not do, in words.
    pub unenforced: Vec<String>,
    /// L7 rules under `enforcement: audit`: OpenShell would log violations, we do not.
    #[serde(default)]
    pub audit_only: Vec<String>,
}

/// The host a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    /// Parses a request's host: an IP literal (IPv6 possibly in brackets) or a DNS name,
    /// lower-cased, without a trailing dot. Anything else is refused.
    pub fn parse(s: &str) -> Result<Host, String> {
        let bare = s
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(s);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Host::Ip(addr::canonical(ip)));
        }
        let name = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
            return Err(format!("{s:?} is not a valid host name or IP address"));
        }
        Ok(Host::Name(name))
    }

    pub fn text(&self) -> String {
        match self {
            Host::Name(n) => n.clone(),
            Host::Ip(ip) => ip.to_string(),
        }
    }
}

/// The processes behind a client connection: for each one that holds the socket, its
/// executable and its ancestors' executables (nearest first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub processes: Vec<CallerProcess>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerProcess {
    pub pid: u32,
    pub exe: String,
    pub ancestors: Vec<String>,
}

impl Caller {
    /// The executable named in logs: the first holder's, or `unknown`.
    pub fn binary(&self) -> &str {
        self.processes.first().map_or("unknown", |p| p.exe.as_str())
    }
}

/// How the resolved addresses of a matched endpoint are judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressRule {
    /// Every address must be in `allowed_ips` (and never always-blocked).
    AllowedIps(Vec<Cidr>),
    /// The endpoint names this IP: only it.
    Literal(IpAddr),
    /// An exactly named host: anything but always-blocked addresses.
    Exact,
    /// A wildcard host: public addresses only.
    PublicOnly,
}

/// A (policy, endpoint) pair that matched host, port and binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub policy: String,
    pub endpoint: usize,
    pub audit: bool,
    pub unenforced: Vec<String>,
    pub rule: AddressRule,
}

/// Why a request was refused before any address was looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The policy whose endpoint matched but whose binaries did not, if any.
    pub policy: Option<String>,
    pub reason: String,
}

impl Rules {
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Every (policy, endpoint) that allows `host:port` for `caller`, in policy-key order.
    pub fn candidates(
        &self,
        host: &Host,
        port: u16,
        caller: &Caller,
    ) -> Result<Vec<Candidate>, Denial> {
        if self.policies.is_empty() {
            return Err(Denial {
                policy: None,
                reason: "the policy has no network_policies: no egress is allowed".into(),
            });
        }
        let mut out = Vec::new();
        let mut binary_miss: Option<String> = None;
        for p in &self.policies {
            for (i, ep) in p.endpoints.iter().enumerate() {
                let Some(rule) = ep.admits(host, port) else {
                    continue;
                };
                if !binaries_allow(&p.binaries, caller) {
                    binary_miss.get_or_insert_with(|| p.key.clone());
                    continue;
                }
                out.push(Candidate {
                    policy: p.key.clone(),
                    endpoint: i,
                    audit: ep.audit,
                    unenforced: ep.unenforced.clone(),
                    rule,
                });
            }
        }
        if !out.is_empty() {
            return Ok(out);
        }
        Err(match binary_miss {
            Some(key) => Denial {
                reason: if caller.processes.is_empty() {
                    format!("policy {key:?} lists {}:{port}, but the calling process could not be identified", host.text())
                } else {
                    format!(
                        "binary {} is not allowed by policy {key:?} for {}:{port}",
                        caller.binary(),
                        host.text()
                    )
                },
                policy: Some(key),
            },
            None => Denial {
                policy: None,
                reason: format!("no network policy allows {}:{port}", host.text()),
            },
        })
    }
}

impl Endpoint {
    /// The address rule when this endpoint covers `host:port`.
    fn admits(&self, host: &Host, port: u16) -> Option<AddressRule> {
        if !self.ports.contains(&port) {
            return None;
        }
        let rule = match (&self.host, host) {
            (None, _) => AddressRule::AllowedIps(self.allowed_ips.clone()),
            (Some(pat), Host::Ip(ip)) => {
                let lit = pat.parse::<IpAddr>().ok().map(addr::canonical)?;
                if lit != *ip {
                    return None;
                }
                AddressRule::Literal(lit)
            }
            (Some(pat), Host::Name(name)) => {
                if pat.parse::<IpAddr>().is_ok() {
                    return None;
                }
                if pat.contains('*') {
                    if !host_matches(pat, name) {
                        return None;
                    }
                    AddressRule::PublicOnly
                } else if pat == name {
                    AddressRule::Exact
                } else {
                    return None;
                }
            }
        };
        // An endpoint's own allowed_ips replace the default address rule.
        Some(match rule {
            AddressRule::Literal(_) | AddressRule::Exact | AddressRule::PublicOnly
                if !self.allowed_ips.is_empty() =>
            {
                AddressRule::AllowedIps(self.allowed_ips.clone())
            }
            r => r,
        })
    }
}

/// Every process holding the socket must match one of the patterns (itself or an ancestor):
/// a socket shared with, or handed to, an unlisted binary is refused.
fn binaries_allow(patterns: &[String], caller: &Caller) -> bool {
    !caller.processes.is_empty()
        && caller.processes.iter().all(|p| {
            std::iter::once(&p.exe)
                .chain(&p.ancestors)
                .any(|path| patterns.iter().any(|pat| binary_matches(pat, path)))
        })
}

/// A `binaries[].path` against an executable path (an exact path matches itself only).
pub fn binary_matches(pattern: &str, path: &str) -> bool {
    path_matches(pattern, path)
}

impl AddressRule {
    /// Checks one resolved address; Err is the reason it is refused.
    pub fn check(&self, host: &str, port: u16, ip: IpAddr) -> Result<(), String> {
        let ip = addr::canonical(ip);
        if !matches!(self, AddressRule::PublicOnly) && CONTROL_PLANE_PORTS.contains(&port) {
            return Err(format!(
                "port {port} is a cluster control-plane port; it is never reachable"
            ));
        }
        if addr::always_blocked(ip) {
            return Err(format!("{host} resolves to {ip}, a loopback/link-local/unspecified address, which is never reachable"));
        }
        match self {
            AddressRule::AllowedIps(nets) if !nets.iter().any(|n| n.contains(ip)) => {
                Err(format!("{host} resolves to {ip}, which is not in allowed_ips"))
            }
            AddressRule::Literal(want) if *want != ip => Err(format!("{host} is not {want}")),
            AddressRule::PublicOnly if addr::internal(ip) => Err(format!(
                "{host} resolves to the internal address {ip}; a wildcard host needs allowed_ips for it"
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(host: Option<&str>, ports: &[u16], ips: &[&str]) -> Endpoint {
        Endpoint {
            host: host.map(str::to_owned),
            ports: ports.to_vec(),
            allowed_ips: ips.iter().map(|s| Cidr::parse(s).unwrap()).collect(),
            audit: false,
            unenforced: vec![],
            audit_only: vec![],
        }
    }

    fn rules() -> Rules {
        Rules {
            policies: vec![
                NetPolicy {
                    key: "api".into(),
                    name: "api".into(),
                    endpoints: vec![
                        ep(Some("api.example.com"), &[443], &[]),
                        ep(Some("*.cdn.example.com"), &[443], &[]),
                    ],
                    binaries: vec!["/usr/bin/curl".into(), "/opt/agent/**".into()],
                },
                NetPolicy {
                    key: "db".into(),
                    name: "database".into(),
                    endpoints: vec![
                        ep(None, &[5432], &["10.0.5.0/24"]),
                        ep(Some("10.9.9.9"), &[80], &[]),
                    ],
                    binaries: vec!["/usr/bin/psql".into()],
                },
            ],
        }
    }

    fn caller(exe: &str, ancestors: &[&str]) -> Caller {
        Caller {
            processes: vec![CallerProcess {
                pid: 7,
                exe: exe.into(),
                ancestors: ancestors.iter().map(|s| s.to_string()).collect(),
            }],
        }
    }

    fn host(s: &str) -> Host {
        Host::parse(s).unwrap()
    }

    #[test]
    fn host_and_port_and_binary() {
        let r = rules();
        let c = r
            .candidates(
                &host("API.example.com."),
                443,
                &caller("/usr/bin/curl", &[]),
            )
            .unwrap();
        assert_eq!(c[0].policy, "api");
        assert_eq!(c[0].rule, AddressRule::Exact);
        let c = r
            .candidates(
                &host("x.cdn.example.com"),
                443,
                &caller("/bin/sh", &["/opt/agent/bin/node"]),
            )
            .unwrap();
        assert_eq!(
            c[0].rule,
            AddressRule::PublicOnly,
            "wildcard; allowed through an ancestor"
        );
        let d = r
            .candidates(&host("api.example.com"), 80, &caller("/usr/bin/curl", &[]))
            .unwrap_err();
        assert_eq!(d.policy, None);
        let d = r
            .candidates(
                &host("api.example.com"),
                443,
                &caller("/usr/bin/python3", &["/bin/sh"]),
            )
            .unwrap_err();
        assert_eq!(d.policy.as_deref(), Some("api"));
        assert!(d.reason.contains("/usr/bin/python3"), "{}", d.reason);
        // No holder could be identified: refused.
        let d = r
            .candidates(&host("api.example.com"), 443, &Caller::default())
            .unwrap_err();
        assert!(d.reason.contains("could not be identified"), "{}", d.reason);
        // A socket shared with an unlisted binary is refused.
        let mut shared = caller("/usr/bin/curl", &[]);
        shared.processes.push(CallerProcess {
            pid: 8,
            exe: "/tmp/evil".into(),
            ancestors: vec![],
        });
        assert!(r
            .candidates(&host("api.example.com"), 443, &shared)
            .is_err());
        assert!(Rules::default()
            .candidates(&host("api.example.com"), 443, &shared)
            .is_err());
    }

    #[test]
    fn addresses() {
        let r = rules();
        let psql = caller("/usr/bin/psql", &[]);
        let c = r.candidates(&host("db.internal"), 5432, &psql).unwrap();
        let rule = &c[0].rule;
        assert!(rule
            .check("db.internal", 5432, "10.0.5.7".parse().unwrap())
            .is_ok());
        assert!(rule
            .check("db.internal", 5432, "10.0.6.7".parse().unwrap())
            .is_err());
        assert!(rule
            .check("db.internal", 5432, "127.0.0.1".parse().unwrap())
            .is_err());
        let c = r.candidates(&host("10.9.9.9"), 80, &psql).unwrap();
        assert!(c[0]
            .rule
            .check("10.9.9.9", 80, "10.9.9.9".parse().unwrap())
            .is_ok());
        assert!(r.candidates(&host("10.9.9.8"), 80, &psql).is_err());
        assert!(AddressRule::Exact
            .check("h", 443, "10.0.0.1".parse().unwrap())
            .is_ok());
        assert!(AddressRule::Exact
            .check("h", 443, "169.254.169.254".parse().unwrap())
            .is_err());
        assert!(AddressRule::Exact
            .check("h", 6443, "10.0.0.1".parse().unwrap())
            .is_err());
        assert!(AddressRule::PublicOnly
            .check("h", 443, "192.168.1.1".parse().unwrap())
            .is_err());
        assert!(AddressRule::PublicOnly
            .check("h", 443, "::ffff:127.0.0.1".parse().unwrap())
            .is_err());
        assert!(AddressRule::PublicOnly
            .check("h", 443, "93.184.216.34".parse().unwrap())
            .is_ok());
    }

    #[test]
    fn host_parsing() {
        assert_eq!(host("[::1]"), Host::Ip("::1".parse().unwrap()));
        assert_eq!(
            host("::ffff:10.0.0.1"),
            Host::Ip("10.0.0.1".parse().unwrap())
        );
        for bad in ["", "a..b", "a b", "x/y", "ex%61mple.com", &"a".repeat(64)] {
            assert!(Host::parse(bad).is_err(), "{bad}");
        }
    }
}
