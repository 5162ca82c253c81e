//! Reading the policy file itself. A root supervisor's policy decides what its child may
//! do, so it must be as trustworthy as the supervisor: reached through a trusted chain
//! (every directory root-owned and not group/world-writable, or sticky; no symlink anyone
//! else could have planted), root-owned and not group/world-writable. Whoever could change
//! it otherwise could widen the sandbox of the next start. It is read from the descriptor
//! that was checked, regular files only, at most [`MAX_BYTES`].

use super::error::PolicyError;
use crate::safe_fs::{self, Final, ReadError, Trust, WalkError};
use std::path::Path;

/// A policy is a few KiB; anything this large is not one.
pub const MAX_BYTES: u64 = 1 << 20;

/// Reads the policy at `path`. `trust_required`: the supervisor runs as root.
pub fn read(path: &Path, trust_required: bool) -> Result<String, PolicyError> {
    let unreadable = |why: String| {
        PolicyError::file(
            path,
            format!("cannot read the policy: {why}; pass --policy PATH, or --no-policy to run unconfined"),
        )
    };
    let trust = Trust::root_and_self();
    // A relative --policy means the directory we were started in.
    let abs = if path.is_relative() {
        std::env::current_dir()
            .map_err(|e| unreadable(format!("the working directory: {e}")))?
            .join(path)
    } else {
        path.to_path_buf()
    };
    let r = match safe_fs::resolve(&abs, &trust, Final::Read) {
        Ok(r) => r,
        Err(e @ WalkError::NotFound { .. }) => return Err(unreadable(e.to_string())),
        Err(e @ (WalkError::UntrustedSymlink { .. } | WalkError::ProcLink { .. })) => {
            return Err(PolicyError::untrusted(path, e.to_string()))
        }
        Err(e) => return Err(unreadable(e.to_string())),
    };
    if trust_required {
        r.require_trusted_file(&trust, "the policy file")
            .map_err(|why| PolicyError::untrusted(path, why))?;
    }
    let body = safe_fs::read_regular_fd(r.fd, MAX_BYTES).map_err(|e| match e {
        ReadError::TooLarge { .. } => {
            PolicyError::file(path, format!("the policy {e}; a policy is a few KiB"))
        }
        e => unreadable(format!("{} {e}", r.real.display())),
    })?;
    String::from_utf8(body).map_err(|e| {
        PolicyError::file(
            path,
            format!(
                "the policy is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}
