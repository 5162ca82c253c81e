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
    let root = StateRoot::new(cli.state_root());
    match &cli.verb {
        Verb::Create(a) => verbs::create::create(&root, a),
        Verb::Start(a) => verbs::lifecycle::start(&root, a),
        Verb::Stop(a) => verbs::lifecycle::stop(&root, a),
        Verb::Resume(a) => verbs::lifecycle::resume(&root, a),
        Verb::Delete(a) => verbs::delete::delete(&root, a),
        Verb::Status(a) => verbs::read::status(&root, a),
        Verb::List(a) => verbs::read::list(&root, a),
        Verb::Watch(a) => verbs::read::watch(&root, a),
    }
}
