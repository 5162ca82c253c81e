//! sandboxctl against the real engines, the real image and the real supervisor: the
//! conformance suite (tests/conformance/) and the host-state suite for podman and docker,
//! then what only the container engines have (labels on engine objects, the engine's
//! client, a private dockerd) and the soak test.

mod conformance;
#[path = "sandboxctl/engine_failures.rs"]
mod engine_failures;
#[path = "sandboxctl/observe_order.rs"]
mod observe_order;
#[path = "sandboxctl/ownership.rs"]
mod ownership;
#[path = "sandboxctl/private_dockerd.rs"]
mod private_dockerd;
#[path = "sandboxctl/soak.rs"]
mod soak;

use conformance::engine::{DOCKER, PODMAN};

conformance::suite!(podman, &conformance::engine::PODMAN);
conformance::suite!(docker, &conformance::engine::DOCKER);
conformance::host_state_suite!(podman_host, &conformance::engine::PODMAN);
conformance::host_state_suite!(docker_host, &conformance::engine::DOCKER);

#[test]
fn podman_another_sandboxs_container_is_never_touched() {
    ownership::another_sandboxs_container_is_never_touched(&PODMAN);
}

#[test]
fn docker_another_sandboxs_container_is_never_touched() {
    ownership::another_sandboxs_container_is_never_touched(&DOCKER);
}

#[test]
fn podman_killed_by_a_signal_is_reported_as_such() {
    engine_failures::an_engine_killed_by_a_signal_is_reported_as_such(&PODMAN);
}

#[test]
fn docker_killed_by_a_signal_is_reported_as_such() {
    engine_failures::an_engine_killed_by_a_signal_is_reported_as_such(&DOCKER);
}

#[test]
fn podman_a_start_during_a_read_is_not_an_error() {
    observe_order::a_start_during_a_read_is_not_an_error(&PODMAN);
}

#[test]
fn docker_a_start_during_a_read_is_not_an_error() {
    observe_order::a_start_during_a_read_is_not_an_error(&DOCKER);
}

#[test]
fn podman_a_stop_and_start_during_a_read_are_not_an_error() {
    observe_order::a_stop_and_start_during_a_read_are_not_an_error(&PODMAN);
}

#[test]
fn docker_a_stop_and_start_during_a_read_are_not_an_error() {
    observe_order::a_stop_and_start_during_a_read_are_not_an_error(&DOCKER);
}

#[test]
fn docker_restart_reads_error_and_resume_restores() {
    private_dockerd::a_dockerd_restart_reads_error_and_resume_restores();
}

#[test]
fn podman_soak_200_stop_start_cycles() {
    soak::soak_stop_start(&PODMAN);
}

#[test]
fn docker_soak_200_stop_start_cycles() {
    soak::soak_stop_start(&DOCKER);
}
