//! `network_middlewares`: OpenShell's ordered HTTP/WebSocket middleware stages, selected by
//! destination host. Read and validated with OpenShell's rules; running them needs an L7
//! proxy, which this supervisor does not have (the egress enforcement says so).

use super::glob::host_matches;
use super::network::{check_selector, key_seg, NetworkPolicy, Tls};
use super::scalar::str_enum;
use super::Invalid;
use serde::Deserialize;
use std::collections::BTreeMap;

/// OpenShell's limits.
pub const MAX_MIDDLEWARES: usize = 10;
pub const MAX_SELECTOR_PATTERNS: usize = 32;

str_enum! {
    /// What a failing stage does.
    pub enum OnError ("on_error mode") {
        /// The default: deny the request (close the WebSocket).
        "fail_closed" => FailClosed,
        /// Skip the failed stage.
        "fail_open" => FailOpen,
    }
}

/// One `network_middlewares` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Middleware {
    /// `name`, defaulting to the map key (the key stays the stable identity).
    pub name: String,
    /// Built-in (`openshell/…`) or operator-registered implementation name.
    pub middleware: String,
    /// Lower runs first; unique across the policy.
    pub order: i32,
    /// Implementation-owned configuration, kept as data.
    pub config: BTreeMap<String, serde_json::Value>,
    pub on_error: OnError,
    /// Host patterns the stage applies to (non-empty) and those it skips (exclusions win).
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMiddleware {
    #[serde(default)]
    name: Option<String>,
    middleware: String,
    #[serde(default)]
    order: i32,
    #[serde(default)]
    config: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    on_error: Option<OnError>,
    endpoints: RawSelector,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSelector {
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

/// Validates the middlewares against OpenShell's rules, including that a fail-closed stage
/// cannot select an endpoint whose traffic is never inspected (`tls: skip`).
pub(super) fn validate(
    raw: BTreeMap<String, RawMiddleware>,
    policies: &BTreeMap<String, NetworkPolicy>,
) -> Result<BTreeMap<String, Middleware>, Invalid> {
    if raw.len() > MAX_MIDDLEWARES {
        return Err(Invalid::new(
            "network_middlewares",
            format!(
                "{} middlewares; at most {MAX_MIDDLEWARES} are allowed",
                raw.len()
            ),
        ));
    }
    let mut orders: BTreeMap<i32, String> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (key, m) in raw {
        let at = format!("network_middlewares{}", key_seg(&key));
        if key.is_empty() {
            return Err(Invalid::new(
                "network_middlewares",
                "an entry has an empty key; name it",
            ));
        }
        if m.middleware.is_empty() {
            return Err(Invalid::new(
                format!("{at}.middleware"),
                "must not be empty",
            ));
        }
        if let Some(first) = orders.insert(m.order, key.clone()) {
            return Err(Invalid::new(
                format!("{at}.order"),
                format!(
                    "order {} is already used by {first:?}; orders must be unique",
                    m.order
                ),
            ));
        }
        let sel = m.endpoints;
        if sel.include.is_empty() {
            return Err(Invalid::new(
                format!("{at}.endpoints.include"),
                "missing: name at least one host pattern",
            ));
        }
        let n = sel.include.len() + sel.exclude.len();
        if n > MAX_SELECTOR_PATTERNS {
            return Err(Invalid::new(
                format!("{at}.endpoints"),
                format!("{n} patterns; at most {MAX_SELECTOR_PATTERNS} are allowed"),
            ));
        }
        for (list, pats) in [("include", &sel.include), ("exclude", &sel.exclude)] {
            for (i, p) in pats.iter().enumerate() {
                check_selector(p)
                    .map_err(|r| Invalid::new(format!("{at}.endpoints.{list}[{i}]"), r))?;
            }
        }
        let on_error = m.on_error.unwrap_or(OnError::FailClosed);
        let mw = Middleware {
            name: m
                .name
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| key.clone()),
            middleware: m.middleware,
            order: m.order,
            config: m.config,
            on_error,
            include: sel.include,
            exclude: sel.exclude,
        };
        if on_error == OnError::FailClosed {
            for (pkey, p) in policies {
                for e in &p.endpoints {
                    let Some(host) = &e.host else { continue };
                    if e.tls == Tls::Skip && mw.may_select(host) {
                        return Err(Invalid::new(
                            format!("{at}.endpoints"),
                            format!(
                                "fail_closed middleware selects {host:?} of network policy \
                                 {pkey:?}, which has tls: skip and can never be inspected; \
                                 exclude it or use on_error: fail_open"
                            ),
                        ));
                    }
                }
            }
        }
        out.insert(key, mw);
    }
    Ok(out)
}

impl Middleware {
    /// Whether this stage applies to traffic for `host` (a concrete name).
    pub fn selects(&self, host: &str) -> bool {
        self.include.iter().any(|p| host_matches(p, host))
            && !self.exclude.iter().any(|p| host_matches(p, host))
    }

    /// Whether it could apply to some host an endpoint pattern allows. Conservative for a
    /// wildcard endpoint: an include that matches the endpoint's pattern read literally, or
    /// whose fixed suffix overlaps it, counts; exclusions are not credited.
    fn may_select(&self, endpoint_host: &str) -> bool {
        if !endpoint_host.contains('*') {
            return self.selects(endpoint_host);
        }
        let suffix = |p: &str| -> String {
            p.split_once('.')
                .filter(|(first, _)| first.contains('*'))
                .map(|(_, rest)| rest.to_ascii_lowercase())
                .unwrap_or_else(|| p.to_ascii_lowercase())
        };
        let es = suffix(endpoint_host);
        self.include.iter().any(|p| {
            let ps = suffix(p);
            host_matches(p, endpoint_host)
                || p == "*"
                || p == "**"
                || es.ends_with(&ps)
                || ps.ends_with(&es)
        })
    }
}
