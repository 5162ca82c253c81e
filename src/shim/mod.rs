//! sandboxctl: the host-side control shim. Non-destructive stop/start of sandboxes on
//! podman or docker, with phases derived from the engine, the recorded intent and the
//! supervisor's status.json.

pub mod backend;
pub mod cli;
pub mod engine;
pub mod error;
pub mod names;
pub mod observe;
pub mod output;
pub mod phase;
pub mod state;
pub mod verbs;

use crate::contract::CtlExit;
use cli::{Cli, Verb};
use state::StateRoot;

/// Entry point of the `sandboxctl` binary; returns the process exit code.
pub fn main() -> i32 {
    let cli: Cli = match crate::cli_support::parse(cli::long_help_tail(), CtlExit::Usage.code()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    crate::log::init(cli.log_format, cli.log_level);
    if cli.backend == Some(cli::BackendArg::Kube) {
        return kube_verb(&cli);
    }
    let root = StateRoot::new(cli.state_root());
    match &cli.verb {
        Verb::Create(a) => {
            let backend = cli.backend.and_then(cli::BackendArg::engine);
            verbs::create::create(&root, backend.unwrap_or(engine::Backend::Podman), a)
        }
        Verb::Start(a) => verbs::lifecycle::start(&root, a),
        Verb::Stop(a) => verbs::lifecycle::stop(&root, a),
        Verb::Resume(a) => verbs::lifecycle::resume(&root, a),
        Verb::Delete(a) => verbs::delete::delete(&root, a),
        Verb::Status(a) => verbs::read::status(&root, a),
        Verb::List(a) => verbs::read::list(&root, a),
        Verb::Watch(a) => verbs::read::watch(&root, a),
    }
}

/// `--backend kube`: the cluster holds everything, the state root is not used.
fn kube_verb(cli: &Cli) -> i32 {
    use backend::kube::verbs as k;
    let target = backend::kube::client::Target {
        context: cli.context.clone(),
        namespace: cli.namespace.clone(),
    };
    match &cli.verb {
        Verb::Create(a) => k::create(&target, a),
        Verb::Start(a) => k::start(&target, a),
        Verb::Stop(a) => k::stop(&target, a),
        Verb::Resume(a) => k::resume(&target, a),
        Verb::Delete(a) => k::delete(&target, a),
        Verb::Status(a) => k::status(&target, a),
        Verb::List(a) => k::list(&target, a),
        Verb::Watch(a) => k::watch(&target, a),
    }
}
