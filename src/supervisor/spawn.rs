//! Starting a process: `clone(CLONE_VM|CLONE_VFORK)` on a stack of our own, the child-side
//! set-up, then `execve`/`execveat`.
//!
//! `fork` copies the supervisor's page tables and then every page either side writes is
//! copied again; the child only makes raw syscalls before it execs, so it can just as well
//! run in our memory while we wait (what `posix_spawn` does). Everything the child touches
//! is prepared here, before the clone: argv, envp, the paths to try, the stdio fds, the
//! sandbox. The child writes nothing we read except its (stage, errno) record on the CLOEXEC
//! report pipe; a successful exec closes that pipe.
//!
//! With `CLONE_VFORK` we are suspended until the child execs or exits, so when `clone`
//! returns, the report pipe already holds the whole answer.

use crate::enforce::{self, Failure, ProcessSetup, ReportPipe, Sandbox, Sender, Stage};
use nix::unistd::Pid;
use std::ffi::{c_void, CStr, CString, OsStr};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;

/// Stack of the cloned child until it execs. It runs our set-up code only (no recursion, no
/// large frames); debug builds need more than release ones.
const STACK_SIZE: usize = 256 * 1024;

/// What to execute.
#[derive(Debug)]
pub enum Program {
    /// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: exactly the file that was checked.
    Fd(RawFd),
    /// `execve` of each path in turn, as `execvp` tries the `PATH` entries: a missing file
    /// (or directory) moves on to the next, `EACCES` is remembered and moves on, anything
    /// else stops the search.
    Search(Vec<CString>),
}

impl Program {
    /// `argv0` as `execvp` would find it: taken as is when it contains a slash, otherwise
    /// looked up in `path` (a `PATH` value). The search runs in the child, after the
    /// sandbox is applied, so it sees what the sandboxed program would.
    pub fn search(argv0: &OsStr, path: Option<&OsStr>) -> io::Result<Program> {
        if argv0.is_empty() {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        if argv0.as_bytes().contains(&b'/') {
            return Ok(Program::Search(vec![cstring(argv0.as_bytes())?]));
        }
        let path = path.unwrap_or(OsStr::new(DEFAULT_PATH));
        let mut candidates = Vec::new();
        for dir in path.as_bytes().split(|&b| b == b':') {
            // An empty entry means the current directory, as for execvp.
            let dir = if dir.is_empty() { b".".as_slice() } else { dir };
            let mut full = dir.to_vec();
            full.push(b'/');
            full.extend_from_slice(argv0.as_bytes());
            candidates.push(cstring(&full)?);
        }
        Ok(Program::Search(candidates))
    }
}

/// The search path when the child's environment has no `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A NUL-terminated vector of C strings (argv, envp) and the pointers to them.
#[derive(Debug)]
pub struct CVec {
    _strings: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl CVec {
    pub fn new<I, S>(items: I) -> io::Result<CVec>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let strings = items
            .into_iter()
            .map(|s| cstring(s.as_ref()))
            .collect::<io::Result<Vec<_>>>()?;
        let mut ptrs: Vec<_> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        Ok(CVec {
            _strings: strings,
            ptrs,
        })
    }

    fn as_ptr(&self) -> *const *const libc::c_char {
        self.ptrs.as_ptr()
    }
}

fn cstring(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a NUL byte in a command-line argument or environment variable",
        )
    })
}

/// One process to start.
pub struct Request<'a> {
    pub program: &'a Program,
    pub argv: &'a CVec,
    pub envp: &'a CVec,
    pub cwd: &'a CStr,
    /// New stdin, stdout, stderr; `None` keeps the supervisor's.
    pub stdio: [Option<RawFd>; 3],
    /// A descriptor the new program must inherit (the hook's script, run by its
    /// interpreter as `/proc/self/fd/N`); everything else above 2 is closed on exec.
    pub keep_fd: Option<RawFd>,
    pub sandbox: Option<&'a Sandbox>,
}

/// Why a spawn did not produce a running program.
#[derive(Debug)]
pub enum SpawnError {
    /// A set-up stage in the child failed, before exec.
    Setup(Failure),
    /// The exec itself failed (`ENOENT`, `EACCES`, `ENOEXEC`, …).
    Exec(io::Error),
    /// The supervisor could not create the process (pipe, clone).
    Os(io::Error),
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::Setup(fail) => write!(f, "set-up failed in the child at {fail}"),
            SpawnError::Exec(e) => write!(f, "exec failed: {e}"),
            SpawnError::Os(e) => write!(f, "cannot create the process: {e}"),
        }
    }
}

/// The reusable parts of spawning: the child's stack and the process set-up.
pub struct Spawner {
    stack: Stack,
    setup: ProcessSetup,
}

impl Spawner {
    /// Must run after the supervisor's signal mask and dispositions are final.
    pub fn new() -> io::Result<Spawner> {
        ensure_std_fds();
        Ok(Spawner {
            stack: Stack::new(STACK_SIZE)?,
            setup: ProcessSetup::capture(),
        })
    }

    /// Starts `req`. Returns the pid (also its process group and session id).
    pub fn spawn(&mut self, req: &Request<'_>) -> Result<Pid, SpawnError> {
        let report = ReportPipe::new().map_err(SpawnError::Os)?;
        let args = ChildArgs {
            req,
            setup: &self.setup,
            report: report.sender(),
        };
        // SAFETY: `child_main` only makes raw syscalls on `args`, which lives on our stack
        // until clone returns; with CLONE_VFORK that is after the child has exec'd or exited,
        // so nothing it borrows is freed or changed while it runs. The stack is ours, unused
        // by anything else, and only one child uses it at a time.
        let pid = unsafe {
            libc::clone(
                child_main,
                self.stack.top(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                (&args as *const ChildArgs<'_>).cast_mut().cast::<c_void>(),
            )
        };
        if pid < 0 {
            return Err(SpawnError::Os(io::Error::last_os_error()));
        }
        let pid = Pid::from_raw(pid);
        match report.receive() {
            None => Ok(pid),
            Some(f) => {
                // The child has already exited (it reported, then _exit); collect it here so
                // the event loop does not log it as an orphan.
                let _ = nix::sys::wait::waitpid(pid, None);
                Err(match f.stage {
                    Stage::Exec => SpawnError::Exec(io::Error::from_raw_os_error(f.errno)),
                    _ => SpawnError::Setup(f),
                })
            }
        }
    }
}

struct ChildArgs<'a> {
    req: &'a Request<'a>,
    setup: &'a ProcessSetup,
    report: Sender,
}

/// The cloned child. Never returns: it execs or `_exit`s.
extern "C" fn child_main(arg: *mut c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildArgs` the parent keeps alive while we run (CLONE_VFORK).
    let args = unsafe { &*(arg as *const ChildArgs<'_>) };
    let err = match child_setup(args.req, args.setup) {
        Ok(()) => exec(args.req),
        Err(f) => f,
    };
    args.report.send(err);
    // SAFETY: _exit ends this process without running anything of the parent's.
    unsafe { libc::_exit(127) }
}

fn child_setup(req: &Request<'_>, setup: &ProcessSetup) -> Result<(), Failure> {
    for (target, src) in req.stdio.iter().enumerate() {
        let Some(src) = *src else { continue };
        let target = target as RawFd;
        // SAFETY: dup2/fcntl on descriptors of our own (copied) table.
        let r = unsafe {
            if src == target {
                libc::fcntl(target, libc::F_SETFD, 0)
            } else {
                libc::dup2(src, target)
            }
        };
        if r < 0 {
            return Err(Failure::last(Stage::Stdio));
        }
    }
    // SAFETY: chdir to a NUL-terminated path prepared before the clone.
    if unsafe { libc::chdir(req.cwd.as_ptr()) } != 0 {
        return Err(Failure::last(Stage::Cwd));
    }
    enforce::in_child(setup, req.sandbox, req.keep_fd)
}

/// Execs the program; returns only on failure.
fn exec(req: &Request<'_>) -> Failure {
    let (argv, envp) = (req.argv.as_ptr(), req.envp.as_ptr());
    match req.program {
        Program::Fd(fd) => {
            // SAFETY: execveat with prepared, NUL-terminated vectors; returns only on failure.
            unsafe {
                libc::syscall(
                    libc::SYS_execveat,
                    *fd,
                    c"".as_ptr(),
                    argv,
                    envp,
                    libc::AT_EMPTY_PATH,
                );
            }
            Failure::last(Stage::Exec)
        }
        Program::Search(paths) => {
            let mut denied = false;
            let mut last = libc::ENOENT;
            for p in paths {
                // SAFETY: as above.
                unsafe { libc::execve(p.as_ptr(), argv, envp) };
                let e = nix::errno::Errno::last_raw();
                match e {
                    libc::EACCES => denied = true,
                    libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV => {}
                    _ => {
                        return Failure {
                            stage: Stage::Exec,
                            errno: e,
                        }
                    }
                }
                last = e;
            }
            Failure {
                stage: Stage::Exec,
                errno: if denied { libc::EACCES } else { last },
            }
        }
    }
}

/// An anonymous mapping used as the child's stack, with a guard page below it.
struct Stack {
    base: *mut c_void,
    len: usize,
}

impl Stack {
    fn new(size: usize) -> io::Result<Stack> {
        let page = 4096;
        let len = size + page;
        // SAFETY: a fresh private anonymous mapping; pages are only touched when used.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the lowest page of our own mapping becomes the guard.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            let e = io::Error::last_os_error();
            // SAFETY: unmapping what we just mapped.
            unsafe { libc::munmap(base, len) };
            return Err(e);
        }
        Ok(Stack { base, len })
    }

    /// The stack grows down from here (16-byte aligned: the mapping is page aligned).
    fn top(&self) -> *mut c_void {
        // SAFETY: one past the end of our own mapping.
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: our own mapping, not in use (no child runs on it once clone returned).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Opens /dev/null on any of fds 0-2 that is closed, so descriptors we create later never
/// land there (a pipe at fd 1 would be dup2'ed over by the child's own stdout set-up).
fn ensure_std_fds() {
    for fd in 0..3 {
        // SAFETY: F_GETFD only queries; open returns the lowest free fd, i.e. this one.
        unsafe {
            if libc::fcntl(fd, libc::F_GETFD) < 0 {
                libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_lists_path_entries_like_execvp() {
        let Program::Search(p) =
            Program::search(OsStr::new("sh"), Some(OsStr::new("/a::/b"))).unwrap()
        else {
            panic!()
        };
        assert_eq!(p, [c"/a/sh", c"./sh", c"/b/sh"]);
        let Program::Search(p) = Program::search(OsStr::new("./x"), None).unwrap() else {
            panic!()
        };
        assert_eq!(p, [c"./x"]);
        assert!(Program::search(OsStr::new(""), None).is_err());
    }
}
