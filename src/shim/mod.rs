//! sandboxctl: the host-side control shim. Non-destructive stop/start of sandboxes on
//! podman, docker or Kubernetes, with phases derived from what the backend observes, the
//! recorded intent and the supervisor's own report. The verbs talk to backends only through
//! `backend::Backend`.

pub mod backend;
pub mod cli;
pub mod error;
pub mod lock;
pub mod names;
pub mod observe;
pub mod output;
pub mod phase;
pub mod state;
pub mod verbs;

use crate::contract::CtlExit;
use backend::{BackendKind, Context};
use cli::{Cli, Verb};
use observe::Backends;
use state::StateRoot;

/// Entry point of the `sandboxctl` binary; returns the process exit code.
pub fn main() -> i32 {
    let cli: Cli = match crate::cli_support::parse(cli::long_help_tail(), CtlExit::Usage.code()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    crate::log::init(cli.log_format, cli.log_level);
    let kube = cli.kube_target();
    let ctx = Context {
        state_root: StateRoot::new(cli.state_root()),
        listed: cli.listed(&kube),
        kube,
    };
    let bs = Backends::new(ctx, cli.lock_timeout);
    match &cli.verb {
        Verb::Create(a) => {
            verbs::create::create(&bs, cli.backend.unwrap_or(BackendKind::Podman), a)
        }
        Verb::Start(a) => verbs::lifecycle::start(&bs, a),
        Verb::Stop(a) => verbs::lifecycle::stop(&bs, a),
        Verb::Resume(a) => verbs::lifecycle::resume(&bs, a),
        Verb::Delete(a) => verbs::delete::delete(&bs, a),
        Verb::Status(a) => verbs::read::status(&bs, a),
        Verb::List(a) => verbs::read::list(&bs, a),
        Verb::Watch(a) => verbs::read::watch(&bs, a),
        Verb::VmKeeper(a) => backend::vm::keeper::main(&a.state_dir),
    }
}
