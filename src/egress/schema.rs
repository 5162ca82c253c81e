//! From the policy's `network_policies` (read and validated by `enforce::policy::network`,
//! OpenShell's schema) to the [`Rules`] the proxy enforces, and what an L4 proxy cannot do.

use super::rules::{Endpoint, NetPolicy, Rules};
use crate::enforce::policy::network::{
    Access, Endpoint as PolicyEndpoint, NetworkPolicy, Protocol,
};
use crate::enforce::{Compatibility, PolicyError};
use std::collections::BTreeMap;
use std::path::Path;

/// Compiles the network section. An L7 restriction on an `enforce` endpoint cannot be
/// enforced by an L4 proxy: refused under `hard_requirement`, kept as an L4 allow (with
/// `unenforced` filled in, logged loudly at start-up) under `best_effort`.
pub fn compile(
    policies: &BTreeMap<String, NetworkPolicy>,
    compatibility: Compatibility,
    file: &Path,
) -> Result<Rules, PolicyError> {
    let mut out = Vec::new();
    for (key, p) in policies {
        let mut endpoints = Vec::new();
        for (i, e) in p.endpoints.iter().enumerate() {
            let ep = endpoint(e);
            if !ep.unenforced.is_empty() && compatibility == Compatibility::HardRequirement {
                return Err(PolicyError::unenforceable(
                    file,
                    Some(&format!("network_policies.{key}.endpoints[{i}]")),
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
        out.push(NetPolicy {
            key: key.clone(),
            name: p.name.clone(),
            endpoints,
            binaries: p.binaries.iter().map(|b| b.path.clone()).collect(),
        });
    }
    Ok(Rules { policies: out })
}

/// What restricts requests beyond host:port, in words. `access: full` restricts nothing.
pub fn l7_restrictions(e: &PolicyEndpoint) -> Vec<String> {
    let mut l7 = Vec::new();
    if !e.rules.is_empty() {
        l7.push(format!("{} allow rule(s)", e.rules.len()));
    }
    if !e.deny_rules.is_empty() {
        l7.push(format!("{} deny rule(s)", e.deny_rules.len()));
    }
    match e.access {
        Some(Access::ReadOnly) => l7.push("access: read-only".into()),
        Some(Access::ReadWrite) => l7.push("access: read-write".into()),
        Some(Access::Full) | None => {}
    }
    if let Some(p) = e
        .path
        .as_deref()
        .filter(|p| !p.is_empty() && *p != "**" && *p != "/**")
    {
        l7.push(format!("path {p}"));
    }
    // MCP and JSON-RPC always restrict methods (a profile or explicit rules).
    if matches!(e.protocol, Protocol::Mcp | Protocol::JsonRpc) && e.rules.is_empty() {
        l7.push(format!(
            "protocol {} method inspection",
            e.protocol.as_str()
        ));
    }
    l7
}

fn endpoint(e: &PolicyEndpoint) -> Endpoint {
    let l7 = l7_restrictions(e);
    // Under audit OpenShell would allow the request anyway; only its L7 log is missing.
    let audit = !e.enforcement.is_enforce();
    let (unenforced, audit_only) = if audit {
        (Vec::new(), l7)
    } else {
        (l7, Vec::new())
    };
    Endpoint {
        host: e.host.as_ref().map(|h| h.to_ascii_lowercase()),
        ports: e.ports.clone(),
        allowed_ips: e.allowed_ips.clone(),
        audit,
        unenforced,
        audit_only,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(network: &str, compat: &str) -> Result<Rules, PolicyError> {
        let text = format!(
            "version: 1\nlandlock: {{compatibility: {compat}}}\nprocess: {{run_as_user: sandbox}}\nnetwork_policies:\n{network}"
        );
        let p = crate::enforce::policy::parse(&text, Path::new("/p.yaml"), Path::new("/sandbox"))?;
        compile(&p.network_policies, p.compatibility, Path::new("/p.yaml"))
    }

    const REST: &str = "  api:
    endpoints:
      - host: API.example.com
        port: 443
        protocol: rest
        enforcement: ENFORCEMENT
        access: ACCESS
    binaries: [{path: /usr/bin/curl}]
";

    fn rest(enforcement: &str, access: &str) -> String {
        REST.replace("ENFORCEMENT", enforcement)
            .replace("ACCESS", access)
    }

    #[test]
    fn l7_under_each_compatibility() {
        let r = rules(&rest("enforce", "read-only"), "best_effort").unwrap();
        let ep = &r.policies[0].endpoints[0];
        assert_eq!(ep.unenforced, ["access: read-only"]);
        assert_eq!(ep.host.as_deref(), Some("api.example.com"));
        let e = rules(&rest("enforce", "read-only"), "hard_requirement").unwrap_err();
        assert_eq!(e.kind, crate::enforce::ErrorKind::Unenforceable);
        assert_eq!(
            e.field.as_deref(),
            Some("network_policies.api.endpoints[0]")
        );
        // access: full restricts nothing; audit only logs.
        assert!(rules(&rest("enforce", "full"), "hard_requirement").is_ok());
        let r = rules(&rest("audit", "read-only"), "hard_requirement").unwrap();
        let ep = &r.policies[0].endpoints[0];
        assert!(ep.audit && ep.unenforced.is_empty());
        assert_eq!(ep.audit_only, ["access: read-only"]);
    }

    #[test]
    fn plain_endpoints_and_names() {
        let r = rules(
            "  db:\n    name: database\n    endpoints: [{ports: [5432, 5433], allowed_ips: [10.0.5.0/24]}]\n    binaries: [{path: /usr/bin/psql}]\n",
            "hard_requirement",
        )
        .unwrap();
        let p = &r.policies[0];
        assert_eq!((p.key.as_str(), p.name.as_str()), ("db", "database"));
        assert_eq!(p.endpoints[0].host, None);
        assert_eq!(p.endpoints[0].ports, [5432, 5433]);
        assert_eq!(p.endpoints[0].allowed_ips[0].to_string(), "10.0.5.0/24");
        assert!(p.endpoints[0].unenforced.is_empty());
    }
}
