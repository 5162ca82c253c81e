//! sandboxctl against real docker: the same scenarios as every other engine
//! (tests/sandboxctl_common/mod.rs).

mod sandboxctl_common;

engine_matrix!("docker");
