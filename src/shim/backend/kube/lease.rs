//! The per-sandbox lock of the kube backend: a Lease `openshell-NAME` (coordination.k8s.io/v1),
//! the API's own object for "who holds this". Kubernetes sandboxes are driven from many
//! machines, so a host flock would serialize nothing; the Lease does, for every sandboxctl
//! that talks to the cluster.
//!
//! Taking it is creating it (the API refuses a second create with 409); letting go is
//! deleting it with a resourceVersion precondition, so a holder never deletes a Lease that
//! someone took over. A holder that dies leaves the Lease behind until it expires
//! (`leaseDurationSeconds` from `renewTime`, sized to the longest a verb holds it: the
//! sandbox's stop plus the wait for its pod); a waiter then takes it over with a
//! resourceVersion-checked patch. A waiter says whom it waits for and gives up with exit
//! `busy`, as on the host backends.

use super::client::{is_conflict, is_not_found, Conn};
use crate::contract::time::{now_rfc3339, parse_rfc3339};
use crate::contract::CtlExit;
use crate::shim::error::CtlError;
use crate::shim::names::{self, Name};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, info};

/// How often a waiter asks again.
const RETRY: Duration = Duration::from_millis(100);

/// A held Lease: deleted (if still ours) when dropped.
pub struct LeaseLock {
    rt: Arc<tokio::runtime::Runtime>,
    api: Api<Lease>,
    name: String,
    resource_version: String,
}

impl Drop for LeaseLock {
    fn drop(&mut self) {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(self.resource_version.clone()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        // Gone already (the sandbox was deleted with it) or taken over after expiring:
        // nothing of ours is left to release.
        if let Err(e) = self.rt.block_on(self.api.delete(&self.name, &dp)) {
            if !is_not_found(&e) {
                debug!(event = "kube.lease_release_failed", lease = %self.name, error = %e,
                    "could not release the Lease; it expires by itself");
            }
        }
    }
}

/// Who holds a Lease and until when it counts.
struct Holder {
    identity: String,
    since: String,
    expires: Option<SystemTime>,
}

fn holder_of(l: &Lease) -> Holder {
    let spec = l.spec.as_ref();
    let renew = spec
        .and_then(|s| s.renew_time.as_ref().or(s.acquire_time.as_ref()))
        .and_then(|t| parse_rfc3339(&t.0.to_string()));
    let secs = spec.and_then(|s| s.lease_duration_seconds).unwrap_or(0);
    Holder {
        identity: spec
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_else(|| "another sandboxctl".into()),
        since: spec
            .and_then(|s| s.acquire_time.as_ref())
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
        expires: renew.map(|r| r + Duration::from_secs(u64::try_from(secs).unwrap_or(0))),
    }
}

/// `stop (pid 42 on host-a)`.
fn identity(verb: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{verb} (pid {} on {})", std::process::id(), host.trim())
}

/// Takes sandbox `name`'s Lease for `verb`, waiting up to `wait` for another holder; `hold`
/// is how long it may be held before others may take it over.
pub fn acquire(
    conn: &Conn,
    name: &Name,
    verb: &str,
    wait: Duration,
    hold: Duration,
) -> Result<LeaseLock, CtlError> {
    let api: Api<Lease> = Api::namespaced(conn.client.clone(), &conn.namespace);
    let lease = name.container();
    let me = identity(verb);
    let secs = i32::try_from(hold.as_secs().max(1)).unwrap_or(i32::MAX);
    let t0 = Instant::now();
    let mut told = false;
    let about = |e: CtlError| e.about(name.as_str());
    let held = |l: Lease| LeaseLock {
        rt: conn.rt.clone(),
        api: api.clone(),
        name: lease.clone(),
        resource_version: l.metadata.resource_version.unwrap_or_default(),
    };
    loop {
        let now = now_rfc3339();
        let spec = json!({
            "holderIdentity": me,
            "leaseDurationSeconds": secs,
            "acquireTime": now,
            "renewTime": now,
        });
        let fresh: Lease = serde_json::from_value(json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": lease, "labels": {
                names::LABEL_SANDBOX: name.as_str(),
                super::LABEL_MANAGED_BY: names::MANAGED_BY,
            }},
            "spec": spec,
        }))
        .expect("a Lease deserializes");
        match conn.block_on(api.create(&PostParams::default(), &fresh)) {
            Ok(l) => return Ok(held(l)),
            Err(e) if is_conflict(&e) => {}
            Err(e) => return Err(about(conn.error(&format!("create Lease {lease}"), e))),
        }
        let Some(current) = conn
            .block_on(api.get_opt(&lease))
            .map_err(|e| about(conn.error(&format!("read Lease {lease}"), e)))?
        else {
            // Released between our create and our read: try again at once.
            continue;
        };
        let h = holder_of(&current);
        if h.expires.is_some_and(|x| x < SystemTime::now()) {
            // Its holder died: take it over, unless someone else does first.
            let patch = json!({
                "metadata": {"resourceVersion": current.metadata.resource_version},
                "spec": spec,
            });
            match conn.block_on(api.patch(&lease, &PatchParams::default(), &Patch::Merge(&patch))) {
                Ok(l) => {
                    info!(event = "lock.taken_over", sandbox = %name, verb, previous = %h.identity,
                        "took over the Lease of a holder that did not let go in time");
                    return Ok(held(l));
                }
                Err(e) if is_conflict(&e) || is_not_found(&e) => continue,
                Err(e) => return Err(about(conn.error(&format!("take over Lease {lease}"), e))),
            }
        }
        if !told {
            told = true;
            info!(event = "lock.wait", sandbox = %name, verb, holder = %h.identity,
                holder_since = %h.since, wait_ms = wait.as_millis() as u64,
                "waiting for {} (Lease {lease})", h.identity);
        }
        let waited = t0.elapsed();
        if waited >= wait {
            return Err(about(CtlError::new(
                CtlExit::Busy,
                format!(
                    "busy: `{}` holds its lock (Lease {lease} in namespace {}) since {}; waited {:.1}s for it (--lock-timeout); try again once it is done",
                    h.identity,
                    conn.namespace,
                    h.since,
                    waited.as_secs_f64()
                ),
            )));
        }
        std::thread::sleep(RETRY.min(wait - waited));
    }
}
