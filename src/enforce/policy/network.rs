//! `network_policies`: OpenShell's egress allow-list, read and validated exactly as OpenShell
//! defines it (`crates/openshell-policy`, `docs/reference/policy-schema.mdx`), into typed data
//! the egress enforcement works from.
//!
//! Semantics the enforcement must keep (OpenShell's):
//! - no entry at all means **no egress**: OpenShell's proxy denies everything not listed;
//! - an endpoint allows its `host` (exact, or a wildcard in the first label: `*` matches one
//!   DNS label, `**` one or more; case-insensitive, see [`host_matches`]) on each of its
//!   `ports`; a hostless endpoint (only `allowed_ips`) allows any name on those ports whose
//!   resolved addresses are all inside `allowed_ips`;
//! - a connection is allowed only for a calling binary matching one of the entry's
//!   `binaries` (see [`path_matches`]); an entry without binaries allows nothing, since
//!   OpenShell requires the binary identity by default;
//! - `enforcement` empty means `audit` (violations are logged, traffic passes) for the L7
//!   rules of an endpoint; the L4 allow-list itself is always enforced.
//!
//! Where we are stricter than OpenShell (each one is also in the README table): wildcards
//! outside the first host label, a trailing dot in a host, protocol names in another case,
//! relative binary paths and `[`/`{` in binary globs are refused instead of being accepted
//! and never matching (or, for `foo.*`, matching every TLD).

use super::scalar::{str_enum, NonEmpty, Port};
use super::Invalid;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

pub use super::cidr::Cidr;
pub use super::glob::{host_matches, path_matches};

/// Default body limit for GraphQL, MCP and JSON-RPC inspection (OpenShell's).
pub const DEFAULT_MAX_BODY_BYTES: u32 = 65536;

str_enum! {
    /// How traffic to an endpoint is handled.
    pub enum Protocol ("protocol") {
        /// Field absent or empty: plain TCP through the CONNECT proxy (L4 only).
        "" => Plain,
        /// Explicit L4 TCP (OpenShell: transparent capture with policy DNS). No inspection.
        "tcp" => Tcp,
        "rest" => Rest,
        "websocket" => Websocket,
        "graphql" => Graphql,
        /// OpenShell accepts it for `enforcement: audit` only.
        "sql" => Sql,
        "json-rpc" => JsonRpc,
        "mcp" => Mcp,
    }
}

impl Protocol {
    /// An L7 inspection protocol (everything but plain and tcp).
    pub fn is_l7(self) -> bool {
        !matches!(self, Protocol::Plain | Protocol::Tcp)
    }
}

str_enum! {
    /// TLS handling (OpenShell's proxy auto-detects TLS by default).
    pub enum Tls ("tls mode") {
        "" => Auto,
        "skip" => Skip,
        /// Deprecated by OpenShell: accepted, no effect.
        "terminate" => Terminate,
        /// Deprecated by OpenShell: accepted, no effect.
        "passthrough" => Passthrough,
    }
}

str_enum! {
    /// What happens to a request the endpoint's L7 rules do not allow.
    pub enum Enforcement ("enforcement") {
        /// Empty or absent: OpenShell's default, audit.
        "" => Default,
        "audit" => Audit,
        "enforce" => Enforce,
    }
}

impl Enforcement {
    /// Empty means audit.
    pub fn is_enforce(self) -> bool {
        self == Enforcement::Enforce
    }
}

str_enum! {
    /// An L7 access preset (REST, WebSocket, GraphQL).
    pub enum Access ("access preset") {
        "read-only" => ReadOnly,
        "read-write" => ReadWrite,
        "full" => Full,
    }
}

str_enum! {
    /// Proxy-side AWS SigV4 re-signing.
    pub enum CredentialSigning ("credential_signing mode") {
        "sigv4" => Sigv4,
        "sigv4:body" => Sigv4Body,
        "sigv4:no_body" => Sigv4NoBody,
    }
}

str_enum! {
    /// GraphQL hash-only (persisted) query handling.
    pub enum PersistedQueries ("persisted_queries mode") {
        "deny" => Deny,
        "allow_registered" => AllowRegistered,
    }
}

/// One `network_policies` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkPolicy {
    /// Display name (`name`, defaulting to the map key).
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    pub binaries: Vec<Binary>,
}

/// A binary allowed to use an entry's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binary {
    /// An absolute path or glob (`*` within one component, `**` across components, `?`
    /// one character), matched with [`path_matches`] against the executable and, in
    /// OpenShell, its ancestors.
    pub path: String,
}

/// A reachable destination.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// Host name, wildcard or IP literal as written; `None` only for a hostless endpoint
    /// constrained by `allowed_ips`.
    pub host: Option<String>,
    /// At least one; `ports` when given, else `[port]`.
    pub ports: Vec<u16>,
    /// HTTP path glob selecting between L7 endpoints on one host and port.
    pub path: Option<String>,
    pub protocol: Protocol,
    pub tls: Tls,
    pub enforcement: Enforcement,
    pub access: Option<Access>,
    /// The `allow` bodies of `rules`.
    pub rules: Vec<RuleMatch>,
    pub deny_rules: Vec<RuleMatch>,
    /// Destination address ranges (SSRF override; the only constraint when `host` is None).
    pub allowed_ips: Vec<Cidr>,
    pub allow_encoded_slash: bool,
    pub websocket_credential_rewrite: bool,
    pub request_body_credential_rewrite: bool,
    pub allow_uninspected_credentials: bool,
    pub credential_signing: Option<CredentialSigning>,
    pub signing_service: Option<String>,
    pub signing_region: Option<String>,
    /// `credential_binding.provider`.
    pub credential_binding: Option<String>,
    pub persisted_queries: Option<PersistedQueries>,
    pub graphql_persisted_queries: BTreeMap<String, GraphqlOperation>,
    pub graphql_max_body_bytes: Option<u32>,
    pub mcp: Option<McpOptions>,
    /// `json_rpc.max_body_bytes`.
    pub json_rpc_max_body_bytes: Option<u32>,
}

impl Endpoint {
    /// The settings present on this endpoint that only an L7 (HTTP-inspecting) proxy can
    /// enforce, by their policy names. Empty for a plain host:port endpoint.
    pub fn l7_settings(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.protocol.is_l7() {
            v.push("protocol");
        }
        if self.path.is_some() {
            v.push("path");
        }
        if self.access.is_some() {
            v.push("access");
        }
        if !self.rules.is_empty() {
            v.push("rules");
        }
        if !self.deny_rules.is_empty() {
            v.push("deny_rules");
        }
        for (set, name) in [
            (self.allow_encoded_slash, "allow_encoded_slash"),
            (
                self.websocket_credential_rewrite,
                "websocket_credential_rewrite",
            ),
            (
                self.request_body_credential_rewrite,
                "request_body_credential_rewrite",
            ),
            (self.credential_signing.is_some(), "credential_signing"),
            (self.credential_binding.is_some(), "credential_binding"),
            (self.persisted_queries.is_some(), "persisted_queries"),
            (
                !self.graphql_persisted_queries.is_empty(),
                "graphql_persisted_queries",
            ),
            (
                self.graphql_max_body_bytes.is_some(),
                "graphql_max_body_bytes",
            ),
            (self.mcp.is_some(), "mcp"),
            (self.json_rpc_max_body_bytes.is_some(), "json_rpc"),
        ] {
            if set {
                v.push(name);
            }
        }
        v
    }
}

/// An L7 rule: the matcher inside `rules[].allow` or a `deny_rules[]` entry. Which fields
/// apply depends on the protocol (REST/WebSocket: method, path, query; GraphQL:
/// operation_type, operation_name, fields; MCP: method, tool, params; JSON-RPC: method).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleMatch {
    pub method: Option<String>,
    pub path: Option<String>,
    pub command: Option<String>,
    #[serde(default)]
    pub query: BTreeMap<String, Matcher>,
    pub operation_type: Option<String>,
    pub operation_name: Option<String>,
    #[serde(default)]
    pub fields: Vec<String>,
    pub tool: Option<Matcher>,
    #[serde(default)]
    pub params: BTreeMap<String, ParamMatcher>,
}

impl RuleMatch {
    fn is_empty(&self) -> bool {
        self.method.is_none()
            && self.path.is_none()
            && self.command.is_none()
            && self.operation_type.is_none()
            && self.operation_name.is_none()
            && self.fields.is_empty()
            && self.params.is_empty()
    }
}

/// A query/tool matcher: a glob, or `{any: [glob, ...]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    Glob(String),
    Any(Vec<String>),
}

/// An MCP `params` matcher: a matcher, or a map of nested ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamMatcher {
    Matcher(Matcher),
    Object(BTreeMap<String, ParamMatcher>),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphqlOperation {
    pub operation_type: String,
    pub operation_name: Option<String>,
    #[serde(default)]
    pub fields: Vec<String>,
}

/// `mcp:` options, with OpenShell's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpOptions {
    pub max_body_bytes: u32,
    pub strict_tool_names: bool,
    pub allow_all_known_mcp_methods: bool,
}

// ---- the YAML shape ------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetworkPolicy {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    endpoints: Vec<RawEndpoint>,
    #[serde(default)]
    binaries: Vec<RawBinary>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBinary {
    path: String,
    /// Deprecated by OpenShell and ignored; accepted so existing files load.
    #[serde(default)]
    harness: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    port: Option<Port>,
    #[serde(default)]
    ports: Option<Vec<Port>>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    protocol: Option<Protocol>,
    #[serde(default)]
    tls: Option<Tls>,
    #[serde(default)]
    enforcement: Option<Enforcement>,
    #[serde(default)]
    access: Option<Access>,
    #[serde(default)]
    rules: Option<Vec<RawRule>>,
    #[serde(default)]
    deny_rules: Option<Vec<RuleMatch>>,
    #[serde(default)]
    allowed_ips: Vec<Cidr>,
    #[serde(default)]
    allow_encoded_slash: bool,
    #[serde(default)]
    websocket_credential_rewrite: bool,
    #[serde(default)]
    request_body_credential_rewrite: bool,
    #[serde(default)]
    allow_uninspected_credentials: bool,
    #[serde(default)]
    credential_signing: Option<CredentialSigning>,
    #[serde(default)]
    signing_service: Option<NonEmpty>,
    #[serde(default)]
    signing_region: Option<NonEmpty>,
    #[serde(default)]
    credential_binding: Option<RawCredentialBinding>,
    #[serde(default)]
    persisted_queries: Option<PersistedQueries>,
    #[serde(default)]
    graphql_persisted_queries: BTreeMap<String, GraphqlOperation>,
    #[serde(default)]
    graphql_max_body_bytes: Option<u32>,
    #[serde(default)]
    json_rpc: Option<RawJsonRpc>,
    #[serde(default)]
    mcp: Option<RawMcp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    allow: RuleMatch,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentialBinding {
    provider: NonEmpty,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJsonRpc {
    #[serde(default)]
    max_body_bytes: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMcp {
    #[serde(default)]
    max_body_bytes: Option<u32>,
    #[serde(default)]
    strict_tool_names: Option<bool>,
    #[serde(default)]
    allow_all_known_mcp_methods: Option<bool>,
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Matcher, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Matcher;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a glob string or {any: [glob, ...]}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Matcher, E> {
                Ok(Matcher::Glob(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Matcher, A::Error> {
                let mut any = None;
                while let Some(k) = m.next_key::<String>()? {
                    if k != "any" || any.is_some() {
                        return Err(de::Error::custom(format!(
                            "unknown field {k:?}; a matcher is a glob string or {{any: [glob, ...]}}"
                        )));
                    }
                    any = Some(m.next_value::<Vec<String>>()?);
                }
                any.map(Matcher::Any)
                    .ok_or_else(|| de::Error::custom("an {any: [...]} matcher needs its list"))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for ParamMatcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ParamMatcher, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ParamMatcher;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a glob string, {any: [glob, ...]} or a map of parameter matchers")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ParamMatcher, E> {
                Ok(ParamMatcher::Matcher(Matcher::Glob(v.to_owned())))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<ParamMatcher, A::Error> {
                // `{any: [...]}` is a matcher (OpenShell tries that shape first); any other
                // map is a nested object of matchers.
                let mut out = BTreeMap::new();
                let mut any = None;
                while let Some(k) = m.next_key::<String>()? {
                    if k == "any" {
                        any = Some(m.next_value::<Vec<String>>()?);
                    } else {
                        let v = m.next_value::<ParamMatcher>()?;
                        out.insert(k, v);
                    }
                }
                match any {
                    Some(list) if out.is_empty() => Ok(ParamMatcher::Matcher(Matcher::Any(list))),
                    Some(_) => Err(de::Error::custom(
                        "`any` cannot sit beside other parameter names",
                    )),
                    None => Ok(ParamMatcher::Object(out)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

// ---- validation ----------------------------------------------------------------------

pub(super) use crate::yaml::key_seg;

/// Validates every entry; `notes` collects deprecations (field, message).
pub(super) fn validate(
    raw: BTreeMap<String, RawNetworkPolicy>,
    notes: &mut Vec<(String, String)>,
) -> Result<BTreeMap<String, NetworkPolicy>, Invalid> {
    let mut out = BTreeMap::new();
    for (key, rule) in raw {
        let at = format!("network_policies{}", key_seg(&key));
        if key.is_empty() {
            return Err(Invalid::new(
                "network_policies",
                "an entry has an empty key; name it",
            ));
        }
        let name = match rule.name {
            Some(n) if !n.is_empty() => n,
            _ => key.clone(),
        };
        let mut endpoints = Vec::new();
        for (i, e) in rule.endpoints.into_iter().enumerate() {
            endpoints.push(endpoint(e, &format!("{at}.endpoints[{i}]"), notes)?);
        }
        let mut binaries = Vec::new();
        for (i, b) in rule.binaries.into_iter().enumerate() {
            let field = format!("{at}.binaries[{i}]");
            if b.harness.is_some() {
                notes.push((
                    format!("{field}.harness"),
                    "deprecated by OpenShell and ignored".into(),
                ));
            }
            binary_glob(&b.path).map_err(|r| Invalid::new(format!("{field}.path"), r))?;
            binaries.push(Binary { path: b.path });
        }
        out.insert(
            key,
            NetworkPolicy {
                name,
                endpoints,
                binaries,
            },
        );
    }
    Ok(out)
}

fn endpoint(
    e: RawEndpoint,
    at: &str,
    notes: &mut Vec<(String, String)>,
) -> Result<Endpoint, Invalid> {
    let bad = |field: &str, reason: String| {
        Invalid::new(
            if field.is_empty() {
                at.to_string()
            } else {
                format!("{at}.{field}")
            },
            reason,
        )
    };
    let protocol = e.protocol.unwrap_or(Protocol::Plain);
    let tcp = protocol == Protocol::Tcp;
    let host = e.host.filter(|h| !h.is_empty());
    match &host {
        None if tcp => {
            return Err(bad(
                "host",
                "missing: protocol tcp needs a DNS host name (hostless allowed_ips endpoints \
                 work only through the proxy)"
                    .into(),
            ))
        }
        None if e.allowed_ips.is_empty() => {
            return Err(bad(
                "host",
                "missing: name the host, or constrain a hostless endpoint with allowed_ips".into(),
            ))
        }
        None => {}
        Some(h) => check_host(h, tcp).map_err(|r| bad("host", r))?,
    }
    let ports: Vec<u16> = match (e.ports, e.port) {
        // OpenShell: `ports` wins over `port`.
        (Some(ps), _) if !ps.is_empty() => ps.into_iter().map(|p| p.0).collect(),
        (_, Some(p)) => vec![p.0],
        _ => {
            return Err(bad(
                "port",
                "missing: an endpoint needs `port` or `ports`".into(),
            ))
        }
    };
    if let Some(p) = &e.path {
        if !p.starts_with('/') && p != "**" {
            return Err(bad(
                "path",
                format!("{p:?} must start with '/' or be \"**\""),
            ));
        }
    }
    let tls = e.tls.unwrap_or(Tls::Auto);
    if matches!(tls, Tls::Terminate | Tls::Passthrough) {
        notes.push((
            format!("{at}.tls"),
            format!(
                "tls: {} is deprecated by OpenShell and has no effect",
                tls.as_str()
            ),
        ));
    }
    if let Some(r) = &e.rules {
        if r.is_empty() {
            return Err(bad(
                "rules",
                "an empty list allows nothing; use access: full or remove rules".into(),
            ));
        }
    }
    if let Some(r) = &e.deny_rules {
        if r.is_empty() {
            return Err(bad(
                "deny_rules",
                "an empty list; remove it if nothing is denied".into(),
            ));
        }
    }
    let rules: Vec<RuleMatch> = e
        .rules
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.allow)
        .collect();
    let deny_rules = e.deny_rules.unwrap_or_default();
    let enforcement = e.enforcement.unwrap_or(Enforcement::Default);
    let mcp = e.mcp.map(|m| McpOptions {
        max_body_bytes: m.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
        strict_tool_names: m.strict_tool_names.unwrap_or(true),
        allow_all_known_mcp_methods: m.allow_all_known_mcp_methods.unwrap_or(false),
    });
    let ep = Endpoint {
        host,
        ports,
        path: e.path,
        protocol,
        tls,
        enforcement,
        access: e.access,
        rules,
        deny_rules,
        allowed_ips: e.allowed_ips,
        allow_encoded_slash: e.allow_encoded_slash,
        websocket_credential_rewrite: e.websocket_credential_rewrite,
        request_body_credential_rewrite: e.request_body_credential_rewrite,
        allow_uninspected_credentials: e.allow_uninspected_credentials,
        credential_signing: e.credential_signing,
        signing_service: e.signing_service.map(|s| s.0),
        signing_region: e.signing_region.map(|s| s.0),
        credential_binding: e.credential_binding.map(|b| b.provider.0),
        persisted_queries: e.persisted_queries,
        graphql_persisted_queries: e.graphql_persisted_queries,
        graphql_max_body_bytes: e.graphql_max_body_bytes,
        mcp,
        json_rpc_max_body_bytes: e
            .json_rpc
            .map(|j| j.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES)),
    };
    if ep.credential_signing.is_some() && ep.signing_service.is_none() {
        return Err(bad(
            "signing_service",
            "missing: credential_signing needs the AWS service name (e.g. bedrock, s3)".into(),
        ));
    }
    if ep.credential_signing.is_some() && ep.request_body_credential_rewrite {
        return Err(bad(
            "credential_signing",
            "cannot be combined with request_body_credential_rewrite".into(),
        ));
    }
    l7_semantics(&ep).map_err(|(f, r)| bad(f, r))?;
    Ok(ep)
}

/// OpenShell's L7 field-combination rules (`l7_validate.rs` and `validate_sandbox_policy`).
fn l7_semantics(ep: &Endpoint) -> Result<(), (&'static str, String)> {
    let p = ep.protocol;
    let has_rules = !ep.rules.is_empty();
    let has_deny = !ep.deny_rules.is_empty();
    let has_access = ep.access.is_some();
    let mcp_all = ep
        .mcp
        .as_ref()
        .is_some_and(|m| m.allow_all_known_mcp_methods);
    if p == Protocol::Tcp {
        if has_access || has_rules || has_deny {
            return Err((
                "protocol",
                "tcp does not support access, rules or deny_rules; remove those L7 fields".into(),
            ));
        }
        let l7: Vec<&str> = ep
            .l7_settings()
            .into_iter()
            .filter(|s| *s != "protocol")
            .chain((ep.enforcement != Enforcement::Default).then_some("enforcement"))
            .collect();
        if !l7.is_empty() {
            return Err((
                "protocol",
                format!(
                    "tcp does not support L7-only fields: {}; remove them",
                    l7.join(", ")
                ),
            ));
        }
    }
    if has_rules && has_access {
        return Err((
            "access",
            "access and rules cannot both be set; keep one".into(),
        ));
    }
    if matches!(p, Protocol::Mcp | Protocol::JsonRpc) && has_access {
        return Err((
            "access",
            format!(
                "protocol {} does not support access presets; use explicit rules{}",
                p.as_str(),
                if p == Protocol::Mcp {
                    " or mcp.allow_all_known_mcp_methods: true"
                } else {
                    " with allow.method"
                }
            ),
        ));
    }
    if p == Protocol::JsonRpc && !has_rules {
        return Err((
            "rules",
            "missing: protocol json-rpc requires explicit rules with allow.method".into(),
        ));
    }
    if p.is_l7() && !matches!(p, Protocol::Mcp | Protocol::JsonRpc) && !has_rules && !has_access {
        return Err((
            "access",
            format!(
                "missing: protocol {} requires rules or access to define the allowed traffic",
                p.as_str()
            ),
        ));
    }
    if p == Protocol::Mcp && !has_rules && !mcp_all {
        return Err((
            "rules",
            "missing: protocol mcp requires rules unless mcp.allow_all_known_mcp_methods is true"
                .into(),
        ));
    }
    if has_rules && ep.rules.iter().all(RuleMatch::is_empty) && !(p == Protocol::Mcp && mcp_all) {
        return Err((
            "rules",
            "no rule has an allow clause, so they would deny all traffic; use access: full or \
             add allow clauses"
                .into(),
        ));
    }
    if has_deny && !p.is_l7() {
        return Err((
            "deny_rules",
            "deny_rules need an L7 protocol (rest, websocket, graphql, mcp, json-rpc)".into(),
        ));
    }
    if has_deny && p != Protocol::Mcp && !has_rules && !has_access {
        return Err((
            "deny_rules",
            "deny_rules need rules or access to define the base allow set".into(),
        ));
    }
    if p == Protocol::Sql && ep.enforcement.is_enforce() {
        return Err((
            "enforcement",
            "protocol sql supports enforcement: audit only".into(),
        ));
    }
    if ep.mcp.is_some() && p != Protocol::Mcp {
        return Err(("mcp", "mcp options are only valid with protocol mcp".into()));
    }
    if p == Protocol::Graphql {
        let op_ok = |t: Option<&str>| matches!(t, Some("query" | "mutation" | "subscription"));
        if let Some(i) = ep
            .rules
            .iter()
            .position(|r| !op_ok(r.operation_type.as_deref()))
        {
            return Err((
                "rules",
                format!("rules[{i}].allow.operation_type must be query, mutation or subscription"),
            ));
        }
        if let Some(i) = ep
            .deny_rules
            .iter()
            .position(|r| !op_ok(r.operation_type.as_deref()))
        {
            return Err((
                "deny_rules",
                format!("deny_rules[{i}].operation_type must be query, mutation or subscription"),
            ));
        }
        if let Some((k, _)) = ep
            .graphql_persisted_queries
            .iter()
            .find(|(_, o)| !op_ok(Some(&o.operation_type)))
        {
            return Err((
                "graphql_persisted_queries",
                format!("{k:?}: operation_type must be query, mutation or subscription"),
            ));
        }
    }
    Ok(())
}

/// A host as an endpoint may name it: a DNS name with an optional wildcard in its first
/// label (`*.example.com`, `**.example.com`, `*-api.example.com`), or an IP literal (not
/// for `protocol: tcp`, which needs a name for its policy DNS).
pub(super) fn check_host(host: &str, tcp: bool) -> Result<(), String> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.parse::<IpAddr>().is_ok() {
        if tcp {
            return Err(format!(
                "{host:?} is an IP literal; protocol tcp needs a DNS host name"
            ));
        }
        return Ok(());
    }
    check_pattern(host, true)
}

/// Checks a DNS host pattern. `endpoint`: the stricter endpoint rules (no TLD wildcard).
fn check_pattern(host: &str, endpoint: bool) -> Result<(), String> {
    if host.is_empty() {
        return Err("must not be empty".into());
    }
    if host == "*" || host == "**" {
        return Err(format!(
            "{host:?} would allow every host; list the hosts (a wildcard may only replace the \
             first label, as in *.example.com)"
        ));
    }
    if host.chars().any(char::is_whitespace) {
        return Err(format!("{host:?} contains white space"));
    }
    if host.contains(['{', '}']) {
        return Err(format!(
            "{host:?}: brace alternates are not supported; list each host"
        ));
    }
    if host.ends_with('.') {
        return Err(format!("{host:?}: omit the trailing dot"));
    }
    if host.len() > 253 {
        return Err(format!("{host:?} is longer than 253 characters"));
    }
    let labels: Vec<&str> = host.split('.').collect();
    for (i, l) in labels.iter().enumerate() {
        if l.is_empty() {
            return Err(format!("{host:?} has an empty label"));
        }
        if l.len() > 63 {
            return Err(format!(
                "{host:?}: label {l:?} is longer than 63 characters"
            ));
        }
        if let Some(c) = l
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*')))
        {
            return Err(format!(
                "{host:?}: {c:?} is not allowed in a host name (use the xn-- form for \
                 international names)"
            ));
        }
        if l.contains('*') && i > 0 {
            return Err(format!(
                "{host:?}: a wildcard may only replace the first label (*.example.com)"
            ));
        }
        if l.contains("**") && *l != "**" {
            return Err(format!(
                "{host:?}: ** must be the whole first label (**.example.com)"
            ));
        }
    }
    if endpoint && labels[0].contains('*') && labels.len() <= 2 {
        return Err(format!(
            "{host:?} is a top-level-domain wildcard; use a wildcard under a domain such as \
             *.example.com"
        ));
    }
    Ok(())
}

/// A middleware selector pattern: OpenShell's host pattern rules (`*` one label, `**` one or
/// more, no braces, no empty labels).
pub(super) fn check_selector(p: &str) -> Result<(), String> {
    if p == "*" || p == "**" {
        return Ok(());
    }
    check_pattern(p, false)
}

fn binary_glob(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!(
            "{p:?} is not an absolute path; a binary is matched by its full path (e.g. \
             /usr/bin/curl)"
        ));
    }
    if p.contains(['[', ']', '{', '}']) {
        return Err(format!(
            "{p:?}: character classes and brace alternates are not supported; list each binary"
        ));
    }
    if p.contains('\0') {
        return Err(format!("{p:?} contains a NUL byte"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_checked() {
        for ok in [
            "api.github.com",
            "*.example.com",
            "**.example.com",
            "*-aiplatform.googleapis.com",
            "10.0.0.1",
            "[::1]",
            "localhost",
        ] {
            check_host(ok, false).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "*",
            "**",
            "*.com",
            "**.com",
            "foo.*",
            "a.*.example.com",
            "api..x",
            "api.x.",
            "a b.com",
            "{a,b}.com",
            "ex ample",
            "ä.com",
            "**x.example.com",
        ] {
            assert!(check_host(bad, false).is_err(), "{bad} accepted");
        }
        assert!(check_host("10.0.0.1", true).is_err());
        check_host("redis.internal", true).unwrap();
    }
}
