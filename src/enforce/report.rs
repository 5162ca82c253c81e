//! The child's failure report: one fixed-size (stage, errno) record on a CLOEXEC pipe.
//! A successful exec closes the write end, so an empty pipe means "no set-up failure".

use super::stage::{Failure, Stage};
use nix::fcntl::OFlag;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

pub struct ReportPipe {
    read: std::fs::File,
    write: OwnedFd,
}

impl ReportPipe {
    pub fn new() -> io::Result<ReportPipe> {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        Ok(ReportPipe {
            read: std::fs::File::from(r),
            write: w,
        })
    }

    /// The child's end, as a plain fd the `'static` pre_exec closure can own.
    pub fn sender(&self) -> Sender {
        Sender(self.write.as_raw_fd())
    }

    /// Supervisor side, after `spawn` returned: the child's record, if it sent one.
    pub fn receive(self) -> Option<Failure> {
        let ReportPipe { mut read, write } = self;
        drop(write);
        let mut rec = [0u8; 8];
        read.read_exact(&mut rec).ok()?;
        let stage = Stage::from_u32(u32::from_ne_bytes(rec[..4].try_into().ok()?))?;
        let errno = i32::from_ne_bytes(rec[4..].try_into().ok()?);
        Some(Failure { stage, errno })
    }
}

/// The write end of a [`ReportPipe`], valid while the pipe lives (the child holds a copy
/// from fork until exec closes it).
#[derive(Clone, Copy)]
pub struct Sender(RawFd);

impl Sender {
    /// Child side: writes the record with one raw `write(2)`. Async-signal-safe.
    pub fn send(self, f: Failure) {
        let mut rec = [0u8; 8];
        rec[..4].copy_from_slice(&(f.stage as u32).to_ne_bytes());
        rec[4..].copy_from_slice(&f.errno.to_ne_bytes());
        // SAFETY: writing a stack buffer to an fd we own. 8 bytes < PIPE_BUF: atomic.
        unsafe { libc::write(self.0, rec.as_ptr().cast(), rec.len()) };
    }
}
