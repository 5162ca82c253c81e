//! `network_policies` as the policy file spells it, and its conversion into [`Rules`].
//!
//! INTERIM: the policy branch models the whole OpenShell schema; until it lands this is the
//! minimal strict reader for the network section (every OpenShell endpoint field is known,
//! so real policies parse; unknown fields are refused). [`compile`] is the part that stays:
//! it turns the schema into what an L4 proxy can enforce and says what it cannot.

use super::cidr::Cidr;
use super::glob::{self, Glob};
use super::rules::{Endpoint, NetPolicy, Rules};
use crate::enforce::{Compatibility, PolicyError};
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetworkPolicy {
    pub name: Option<String>,
    pub endpoints: Vec<RawEndpoint>,
    pub binaries: Vec<RawBinary>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBinary {
    pub path: String,
    /// Deprecated in OpenShell and ignored.
    pub harness: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    pub host: Option<String>,
    pub port: Option<u32>,
    pub ports: Option<Vec<u32>>,
    pub path: Option<String>,
    pub protocol: Option<String>,
    pub tls: Option<String>,
    pub enforcement: Option<String>,
    pub access: Option<String>,
    pub rules: Option<Vec<IgnoredAny>>,
    pub deny_rules: Option<Vec<IgnoredAny>>,
    pub allowed_ips: Option<Vec<String>>,
    pub allow_encoded_slash: Option<bool>,
    pub websocket_credential_rewrite: Option<bool>,
    pub request_body_credential_rewrite: Option<bool>,
    pub allow_uninspected_credentials: Option<bool>,
    pub credential_signing: Option<String>,
    pub signing_service: Option<String>,
    pub signing_region: Option<String>,
    pub credential_binding: Option<IgnoredAny>,
    pub persisted_queries: Option<String>,
    pub graphql_persisted_queries: Option<IgnoredAny>,
    pub graphql_max_body_bytes: Option<u64>,
    pub mcp: Option<IgnoredAny>,
    pub json_rpc: Option<IgnoredAny>,
}

/// What an endpoint asks for, in the terms the compiler judges (so the policy branch's
/// types convert into it in one place).
#[derive(Debug, Default, Clone)]
pub struct EndpointSpec {
    pub host: Option<String>,
    pub ports: Vec<u32>,
    pub path: Option<String>,
    pub protocol: Option<String>,
    pub tls: Option<String>,
    pub enforcement: Option<String>,
    pub access: Option<String>,
    pub rules: usize,
    pub deny_rules: usize,
    pub allowed_ips: Vec<String>,
    /// Credential features set on the endpoint (rewrite, signing, binding).
    pub credentials: Vec<&'static str>,
}

impl RawEndpoint {
    pub fn spec(&self) -> EndpointSpec {
        let mut credentials = Vec::new();
        if self.websocket_credential_rewrite == Some(true) {
            credentials.push("websocket_credential_rewrite");
        }
        if self.request_body_credential_rewrite == Some(true) {
            credentials.push("request_body_credential_rewrite");
        }
        if self.credential_signing.is_some() {
            credentials.push("credential_signing");
        }
        if self.credential_binding.is_some() {
            credentials.push("credential_binding");
        }
        EndpointSpec {
            host: self.host.clone(),
            // `ports` wins over `port`, as in OpenShell.
            ports: match (&self.ports, self.port) {
                (Some(p), _) if !p.is_empty() => p.clone(),
                (_, Some(p)) => vec![p],
                _ => vec![],
            },
            path: self.path.clone(),
            protocol: self.protocol.clone(),
            tls: self.tls.clone(),
            enforcement: self.enforcement.clone(),
            access: self.access.clone(),
            rules: self.rules.as_ref().map_or(0, Vec::len),
            deny_rules: self.deny_rules.as_ref().map_or(0, Vec::len),
            allowed_ips: self.allowed_ips.clone().unwrap_or_default(),
            credentials,
        }
    }
}

/// Reads the interim raw section into the compiler's input.
pub fn specs(raw: &BTreeMap<String, RawNetworkPolicy>) -> Vec<PolicySpec> {
    raw.iter()
        .map(|(key, p)| PolicySpec {
            key: key.clone(),
            name: p.name.clone(),
            endpoints: p.endpoints.iter().map(RawEndpoint::spec).collect(),
            binaries: p.binaries.iter().map(|b| b.path.clone()).collect(),
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct PolicySpec {
    pub key: String,
    pub name: Option<String>,
    pub endpoints: Vec<EndpointSpec>,
    pub binaries: Vec<String>,
}

/// Compiles the network section. An L7 restriction on an `enforce` endpoint cannot be
/// enforced by an L4 proxy: refused under `hard_requirement`, kept as an L4 allow (with
/// `unenforced` filled in, logged loudly at start-up) under `best_effort`.
pub fn compile(
    specs: &[PolicySpec],
    compatibility: Compatibility,
    file: &Path,
) -> Result<Rules, PolicyError> {
    let mut policies = Vec::new();
    for p in specs {
        let at = format!("network_policies.{}", p.key);
        let bad = |field: String, why: String| PolicyError::invalid(file, field, why);
        if p.endpoints.is_empty() {
            return Err(bad(
                format!("{at}.endpoints"),
                "empty: list at least one endpoint".into(),
            ));
        }
        let mut binaries = Vec::new();
        for (i, b) in p.binaries.iter().enumerate() {
            let field = format!("{at}.binaries[{i}].path");
            if !b.starts_with('/') {
                return Err(bad(field, format!("{b:?} is not an absolute path")));
            }
            if glob::has_meta(b) {
                Glob::new(b, b'/').map_err(|e| bad(field.clone(), e))?;
            }
            binaries.push(b.clone());
        }
        let mut endpoints = Vec::new();
        for (i, e) in p.endpoints.iter().enumerate() {
            let field = format!("{at}.endpoints[{i}]");
            let ep = endpoint(e, &field, file)?;
            if !ep.unenforced.is_empty() && compatibility == Compatibility::HardRequirement {
                return Err(PolicyError::unenforceable(
                    file,
                    Some(&field),
                    format!(
                        "enforcement: enforce with L7 rules ({}), which this supervisor cannot \
                         enforce (it filters at L4: host, port, binary); under hard_requirement \
                         that is refused. Remove the L7 part, set enforcement: audit, or use \
                         compatibility: best_effort to enforce only the L4 allow-list",
                        ep.unenforced.join("; ")
                    ),
                ));
            }
            endpoints.push(ep);
        }
        policies.push(NetPolicy {
            key: p.key.clone(),
            name: p.name.clone().unwrap_or_else(|| p.key.clone()),
            endpoints,
            binaries,
        });
    }
    policies.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Rules { policies })
}

fn endpoint(e: &EndpointSpec, field: &str, file: &Path) -> Result<Endpoint, PolicyError> {
    let bad = |sub: &str, why: String| PolicyError::invalid(file, format!("{field}{sub}"), why);
    let host = match e.host.as_deref() {
        None | Some("") => None,
        Some(h) => Some(host_pattern(h).map_err(|why| bad(".host", why))?),
    };
    if e.ports.is_empty() {
        return Err(bad(".port", "missing: give port or ports".into()));
    }
    let mut ports = Vec::new();
    for (i, p) in e.ports.iter().enumerate() {
        match u16::try_from(*p) {
            Ok(p) if p != 0 => ports.push(p),
            _ => {
                return Err(bad(
                    &format!(".ports[{i}]"),
                    format!("{p} is not a TCP port (1..65535)"),
                ))
            }
        }
    }
    let mut allowed_ips = Vec::new();
    for (i, s) in e.allowed_ips.iter().enumerate() {
        let c = Cidr::parse(s).map_err(|why| bad(&format!(".allowed_ips[{i}]"), why))?;
        if c.overlaps_always_blocked() {
            return Err(bad(
                &format!(".allowed_ips[{i}]"),
                format!("{s} overlaps loopback, link-local or unspecified addresses, which are never reachable"),
            ));
        }
        allowed_ips.push(c);
    }
    if host.is_none() && allowed_ips.is_empty() {
        return Err(bad(
            ".host",
            "missing: an endpoint without host needs allowed_ips".into(),
        ));
    }
    let audit = match e.enforcement.as_deref() {
        None | Some("") | Some("audit") => true,
        Some("enforce") => false,
        Some(other) => {
            return Err(bad(
                ".enforcement",
                format!("{other:?} is not one of enforce, audit"),
            ))
        }
    };
    let protocol = e.protocol.as_deref().unwrap_or("");
    if !matches!(
        protocol,
        "" | "tcp" | "rest" | "websocket" | "graphql" | "mcp" | "json-rpc" | "sql"
    ) {
        return Err(bad(
            ".protocol",
            format!("{protocol:?} is not a known protocol"),
        ));
    }
    if let Some(a) = e.access.as_deref() {
        if !matches!(a, "read-only" | "read-write" | "full") {
            return Err(bad(
                ".access",
                format!("{a:?} is not one of read-only, read-write, full"),
            ));
        }
    }
    // What restricts requests beyond host:port. access: full restricts nothing.
    let mut l7 = Vec::new();
    if e.rules > 0 {
        l7.push(format!("{} allow rule(s)", e.rules));
    }
    if e.deny_rules > 0 {
        l7.push(format!("{} deny rule(s)", e.deny_rules));
    }
    if let Some(a @ ("read-only" | "read-write")) = e.access.as_deref() {
        l7.push(format!("access: {a}"));
    }
    if let Some(p) = e
        .path
        .as_deref()
        .filter(|p| !p.is_empty() && *p != "**" && *p != "/**")
    {
        l7.push(format!("path {p}"));
    }
    if matches!(protocol, "mcp" | "json-rpc") && e.rules == 0 {
        l7.push(format!("protocol {protocol} method inspection"));
    }
    // Under audit OpenShell would allow the request anyway; only its L7 log is missing.
    let (unenforced, audit_only) = if audit {
        (Vec::new(), l7)
    } else {
        (l7, Vec::new())
    };
    Ok(Endpoint {
        host,
        ports,
        allowed_ips,
        audit,
        unenforced,
        audit_only,
    })
}

/// Lower-cased host; a wildcard only inside the first label, never bare or on a TLD.
fn host_pattern(h: &str) -> Result<String, String> {
    let lower = h.to_ascii_lowercase();
    if lower.parse::<std::net::IpAddr>().is_ok() {
        return Ok(lower);
    }
    if lower.ends_with('.') {
        return Err(format!("{h:?}: write the name without a trailing dot"));
    }
    let labels: Vec<&str> = lower.split('.').collect();
    for (i, l) in labels.iter().enumerate() {
        if l.is_empty() || l.len() > 63 {
            return Err(format!("{h:?} is not a valid host name"));
        }
        let wild = l.contains('*');
        if wild && i > 0 {
            return Err(format!(
                "{h:?}: a wildcard is allowed only in the first label"
            ));
        }
        if !l
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*')
        {
            return Err(format!("{h:?} is not a valid host name"));
        }
    }
    if labels[0].contains('*') && labels.len() < 3 {
        return Err(format!(
            "{h:?}: a wildcard over a whole top-level domain (or everything) is refused"
        ));
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(host: &str, ports: &[u32]) -> EndpointSpec {
        EndpointSpec {
            host: Some(host.into()),
            ports: ports.to_vec(),
            ..Default::default()
        }
    }

    fn one(e: EndpointSpec, c: Compatibility) -> Result<Rules, PolicyError> {
        compile(
            &[PolicySpec {
                key: "k".into(),
                name: None,
                endpoints: vec![e],
                binaries: vec!["/usr/bin/curl".into()],
            }],
            c,
            Path::new("/p.yaml"),
        )
    }

    #[test]
    fn hosts_and_ports() {
        let r = one(
            spec("API.Example.com", &[443, 8443]),
            Compatibility::BestEffort,
        )
        .unwrap();
        assert_eq!(
            r.policies[0].endpoints[0].host.as_deref(),
            Some("api.example.com")
        );
        assert_eq!(r.policies[0].name, "k");
        for bad in [
            "*",
            "**",
            "*.com",
            "a.*.com",
            "ex ample.com",
            "example.com.",
        ] {
            let e = one(spec(bad, &[443]), Compatibility::BestEffort).unwrap_err();
            assert_eq!(
                e.field.as_deref(),
                Some("network_policies.k.endpoints[0].host"),
                "{bad}"
            );
        }
        for p in [0, 65536] {
            let e = one(spec("a.example.com", &[p]), Compatibility::BestEffort).unwrap_err();
            assert_eq!(
                e.field.as_deref(),
                Some("network_policies.k.endpoints[0].ports[0]")
            );
        }
        let e = one(
            EndpointSpec {
                ports: vec![443],
                ..Default::default()
            },
            Compatibility::BestEffort,
        )
        .unwrap_err();
        assert!(e.reason.contains("allowed_ips"), "{e}");
        let mut s = spec("a.example.com", &[443]);
        s.allowed_ips = vec!["10.0.0.0/0".into()];
        assert!(one(s, Compatibility::BestEffort).is_err());
    }

    #[test]
    fn l7_under_each_compatibility() {
        let mut s = spec("api.example.com", &[443]);
        s.protocol = Some("rest".into());
        s.enforcement = Some("enforce".into());
        s.access = Some("read-only".into());
        let r = one(s.clone(), Compatibility::BestEffort).unwrap();
        assert_eq!(r.policies[0].endpoints[0].unenforced, ["access: read-only"]);
        let e = one(s.clone(), Compatibility::HardRequirement).unwrap_err();
        assert_eq!(e.kind, crate::enforce::ErrorKind::Unenforceable);
        // access: full restricts nothing; audit only logs.
        s.access = Some("full".into());
        assert!(one(s.clone(), Compatibility::HardRequirement).is_ok());
        s.access = Some("read-only".into());
        s.enforcement = Some("audit".into());
        let r = one(s, Compatibility::HardRequirement).unwrap();
        assert!(r.policies[0].endpoints[0].audit);
    }
}
