//! sandboxctl against the real engines, the real image and the real supervisor: the
//! conformance suite (tests/conformance/) for podman and docker.

mod conformance;

conformance::suite!(podman, &conformance::engine::PODMAN);
conformance::suite!(docker, &conformance::engine::DOCKER);
conformance::host_state_suite!(podman_host, &conformance::engine::PODMAN);
conformance::host_state_suite!(docker_host, &conformance::engine::DOCKER);
