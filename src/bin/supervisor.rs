//! The `supervisor` binary, entered without std's runtime start-up.
//!
//! std's `lang_start` would, before our code runs: install SIGSEGV/SIGBUS handlers for its
//! stack-overflow message (for the main thread glibc's `pthread_getattr_np` reads
//! `/proc/self/maps` to find the stack), poll fds 0-2, ignore SIGPIPE and name the main
//! thread. PID 1 starts on every container start, so we do only what we need, here:
//! fds 0-2 are made valid and SIGPIPE is ignored. Without std's handlers a genuine fault
//! keeps the default action and ends the process (PID 1 included: the kernel forces a
//! fault's default action even on init); a stack overflow is a plain SIGSEGV instead of
//! std's "has overflowed its stack" line before the same abort. `std::env::args_os` still
//! works: on glibc std captures argv from `.init_array`, not from `lang_start`.
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    valid_standard_fds();
    // SIGPIPE concerns our own output (EPIPE is handled where we write); the children get
    // the default back (std's Command resets it between fork and exec).
    // SAFETY: setting a signal disposition to SIG_IGN, before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    std::process::exit(openshell_supervisor::supervisor::main())
}

/// A closed fd 0, 1 or 2 would be taken by the next open (the status directory, the log
/// fd) and handed to the child as its stdin or stderr: point it at /dev/null instead, as
/// std's start-up does.
#[cfg(not(test))]
fn valid_standard_fds() {
    for fd in 0..3 {
        // SAFETY: F_GETFD only inspects the descriptor; open returns the lowest free fd,
        // which is `fd` when it is the one that is closed.
        unsafe {
            if libc::fcntl(fd, libc::F_GETFD) == -1 {
                let flags = if fd == 0 {
                    libc::O_RDONLY
                } else {
                    libc::O_WRONLY
                };
                libc::open(c"/dev/null".as_ptr(), flags);
            }
        }
    }
}

#[cfg(test)]
fn main() {}
