//! The connection to the API server: kube's `Config` (kubeconfig contexts, exec auth
//! plugins, in-cluster service accounts), a kube-rs `Client`, and the current-thread tokio
//! runtime its futures run on (sandboxctl is synchronous everywhere else). Also the one place
//! API errors become sandboxctl errors with their exit codes.

use crate::contract::CtlExit;
use crate::shim::error::CtlError;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::future::Future;
use std::sync::Arc;

/// Where to find the cluster: `--context` (a kubeconfig context) and `--namespace`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub context: Option<String>,
    pub namespace: Option<String>,
}

pub struct Conn {
    /// Shared with the Lease lock's guard, which releases the lock when dropped.
    pub rt: Arc<tokio::runtime::Runtime>,
    pub client: Client,
    /// `--namespace`, else the context's namespace, else `default`.
    pub namespace: String,
    /// The API server's URL, for messages.
    pub server: String,
}

impl Conn {
    /// Builds the configuration and the client; contacts nothing yet (the first request
    /// does, and its failure says which server could not be reached).
    pub fn open(target: &Target) -> Result<Conn, CtlError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                CtlError::new(
                    CtlExit::Internal,
                    format!("cannot start the async runtime: {e}"),
                )
            })?;
        let config = rt.block_on(load_config(target))?;
        let namespace = target
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let server = config.cluster_url.to_string();
        // hyper's connector wants to be built inside the runtime.
        let client = {
            let _guard = rt.enter();
            Client::try_from(config).map_err(|e| {
                CtlError::new(
                    CtlExit::BackendUnavailable,
                    format!("cannot set up the Kubernetes client for {server}: {e}"),
                )
            })?
        };
        Ok(Conn {
            rt: Arc::new(rt),
            client,
            namespace,
            server,
        })
    }

    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Maps an API error to a sandboxctl error about `what` ("create StatefulSet openshell-a").
    pub fn error(&self, what: &str, e: kube::Error) -> CtlError {
        api_error(&self.server, &self.namespace, what, e)
    }
}

async fn load_config(target: &Target) -> Result<Config, CtlError> {
    let unavailable = |m: String| CtlError::new(CtlExit::BackendUnavailable, m);
    match &target.context {
        Some(ctx) => {
            // A named context must exist: no silent fallback to another cluster.
            let opts = KubeConfigOptions {
                context: Some(ctx.clone()),
                ..KubeConfigOptions::default()
            };
            let kc = Kubeconfig::read().map_err(|e| {
                unavailable(format!(
                    "cannot read the kubeconfig ($KUBECONFIG or ~/.kube/config) for --context {ctx}: {e}"
                ))
            })?;
            Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(|e| unavailable(format!("kubeconfig context {ctx:?}: {e}")))
        }
        None => Config::infer().await.map_err(|e| {
            unavailable(format!(
                "no Kubernetes configuration: {e}; set KUBECONFIG, pass --context, or run inside a cluster"
            ))
        }),
    }
}

/// HTTP status of an API error, if the server answered.
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

pub fn is_not_found(e: &kube::Error) -> bool {
    status_code(e) == Some(404)
}

pub fn is_conflict(e: &kube::Error) -> bool {
    status_code(e) == Some(409)
}

fn api_error(server: &str, ns: &str, what: &str, e: kube::Error) -> CtlError {
    match &e {
        kube::Error::Api(s) => {
            let exit = match s.code {
                404 => CtlExit::UnknownSandbox,
                409 => CtlExit::Conflict,
                _ => CtlExit::EngineError,
            };
            let hint = match s.code {
                401 => "; the kubeconfig's credentials were refused (log in again)",
                403 => "; RBAC forbids it (README \"## Kubernetes\" lists the permissions sandboxctl needs)",
                _ => "",
            };
            CtlError::new(
                exit,
                format!(
                    "Kubernetes refused to {what} in namespace {ns} (HTTP {}, {}): {}{hint}",
                    s.code, s.reason, s.message
                ),
            )
        }
        kube::Error::Auth(_) | kube::Error::InferConfig(_) | kube::Error::InferKubeconfig(_) => {
            CtlError::new(
                CtlExit::BackendUnavailable,
                format!("cannot authenticate to the Kubernetes API at {server} to {what}: {e}"),
            )
        }
        kube::Error::SerdeError(_) => CtlError::new(
            CtlExit::EngineError,
            format!("unreadable answer from the Kubernetes API at {server} to {what}: {e}"),
        ),
        // Connection refused, DNS, TLS, timeouts: the cluster is not reachable.
        _ => CtlError::new(
            CtlExit::BackendUnavailable,
            format!(
                "cannot reach the Kubernetes API at {server} to {what}: {}; check the cluster and the kubeconfig (--context)",
                chain(&e)
            ),
        ),
    }
}

/// An error with its sources: hyper's "client error (Connect)" alone does not say why.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}
