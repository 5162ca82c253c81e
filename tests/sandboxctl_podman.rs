//! sandboxctl against real podman: the same scenarios as every other engine
//! (tests/sandboxctl_common/mod.rs).

mod sandboxctl_common;

engine_matrix!("podman");
