//! Backends of sandboxctl.

pub mod kube;
