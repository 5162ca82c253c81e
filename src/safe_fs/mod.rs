//! Filesystem access that judges descriptors, not names.
//!
//! The sandboxed workload owns parts of the filesystem (its workspace, `/tmp`, sometimes
//! directories on the way to a file root reads) and may plant symlinks, FIFOs and huge files
//! there, or swap them between a check and a use. Everything in this module opens one
//! component at a time with `O_NOFOLLOW`, checks what the descriptor *is* with `fstat`, and
//! hands back the descriptor it checked, so a caller acts on exactly that object.
//!
//! - [`walk`]: resolves a path from `/` component by component, following a symlink only when
//!   nobody but a trusted user (root, or the supervisor's own uid) could have planted or
//!   changed it, and reports the first directory an untrusted user could modify.
//! - [`read`]: bounded reads of files in directories others control (status.json on the
//!   host, a policy file): regular files only, never a FIFO or a device, never a symlink,
//!   never more than a cap.

pub mod read;
pub mod walk;

pub use read::{read_regular_at, read_regular_fd, ReadError};
pub use walk::{resolve, Final, Resolved, Trust, WalkError};
