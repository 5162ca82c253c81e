//! Where log lines go: stderr, without ever blocking the supervisor's event loop.
//!
//! A log reader that stops reading (a full pipe, a stopped terminal, a stuck socket peer)
//! used to freeze PID 1 in `pipe_write`: no reaping, no `--hook-timeout`, no SIGTERM
//! (issue 8 item 5). What stderr *is* decides how it is written ([`init_nonblocking`]):
//!
//! - pipe, FIFO or terminal: `/proc/self/fd/2` is opened again with `O_NONBLOCK`. That is a
//!   private open file description of the same pipe or tty, so fd 2 itself, which the child
//!   and the hook share, stays blocking (setting `O_NONBLOCK` on it would hand them EAGAIN).
//! - socket: `send(MSG_DONTWAIT)` on fd 2 (a socket cannot be reopened through /proc).
//! - regular file, `/dev/null`, another device: a plain `write(2)`; they do not wait for a
//!   reader.
//! - the reopen is impossible (no /proc, a FIFO with no reader at that moment): a helper
//!   thread does the blocking writes, so it is the thread that waits for the reader, never
//!   the event loop. Logged once as `log.fallback`.
//!
//! A line that cannot be written now waits in a bounded queue ([`QUEUE_MAX`]); beyond it
//! lines are dropped and counted. The event loop polls [`pending_fd`] for `POLLOUT` while
//! the queue is not empty and calls [`flush`]; once a write succeeds again after drops, a
//! `log.dropped` line with the count is written. Every line is written with one `write(2)`
//! (at most `PIPE_BUF` bytes are atomic), so lines never interleave with the child's output
//! on the same pipe; the queue is written line by line for the same reason.

use super::Format;
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Lines waiting for a slow reader: 256 KiB, about 1500 typical lines, on top of what the
/// pipe itself holds (64 KiB by default).
pub const QUEUE_MAX: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Blocking `write(2)` on fd 2: files, devices, and the command-line tools, which
    /// should wait for their terminal like any other.
    Plain,
    /// Non-blocking `write(2)` on the private description in [`PRIVATE`].
    Private,
    /// `send(2)` with `MSG_DONTWAIT` on fd 2.
    Socket,
    /// Blocking writes on fd 2 from the helper thread.
    Thread,
    /// fd 2 is not open: lines go nowhere.
    Closed,
}

struct Sink {
    mode: Mode,
    format: Format,
    queue: VecDeque<Vec<u8>>,
    /// Bytes of `queue[0]` already written (only a line longer than the pipe's free space).
    head: usize,
    queued: usize,
    /// Lines lost since the last `log.dropped`.
    dropped: u64,
    /// The helper thread is writing lines it took from the queue.
    busy: bool,
}

static SINK: Mutex<Sink> = Mutex::new(Sink {
    mode: Mode::Plain,
    format: Format::Json,
    queue: VecDeque::new(),
    head: 0,
    queued: 0,
    dropped: 0,
    busy: false,
});
/// Wakes the helper thread (lines queued) and [`shutdown`] (queue drained).
static WAKE: Condvar = Condvar::new();
/// The private non-blocking description of stderr, for [`Mode::Private`].
static PRIVATE: OnceLock<OwnedFd> = OnceLock::new();

fn sink() -> MutexGuard<'static, Sink> {
    // A panic while holding the lock must not silence every later line.
    SINK.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a write attempt did.
enum Wrote {
    All,
    Part(usize),
    WouldBlock,
    /// The reader is gone or stderr is broken (EPIPE, EBADF, EIO, ENOSPC…).
    Failed,
}

/// Blocking writes, for `sandboxctl` and `supervisor check`.
pub fn init_plain(format: Format) {
    let mut s = sink();
    s.format = format;
    s.mode = Mode::Plain;
}

/// Chooses how stderr is written by what fd 2 is (see the module documentation). Returns a
/// sentence for `log.fallback` when the helper thread had to be used.
pub fn init_nonblocking(format: Format) -> Option<String> {
    let (mode, fallback) = match classify_stderr() {
        Ok(m) => (m, None),
        Err(why) => {
            start_thread();
            (Mode::Thread, Some(why))
        }
    };
    let mut s = sink();
    s.format = format;
    // start_thread leaves Closed behind when no thread could be started.
    if s.mode != Mode::Closed {
        s.mode = mode;
    }
    fallback
}

/// Ok(mode) when fd 2 can be written without blocking (or never blocks), Err(why) when
/// only a helper thread can keep the event loop from waiting on it.
fn classify_stderr() -> Result<Mode, String> {
    // SAFETY: fstat into a zeroed stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return Ok(Mode::Closed);
    }
    let kind = st.st_mode & libc::S_IFMT;
    // SAFETY: isatty only inspects the descriptor.
    let tty = kind == libc::S_IFCHR && unsafe { libc::isatty(2) } == 1;
    match kind {
        libc::S_IFSOCK => Ok(Mode::Socket),
        libc::S_IFIFO => reopen(&st),
        _ if tty => reopen(&st),
        _ => Ok(Mode::Plain),
    }
}

fn reopen(st: &libc::stat) -> Result<Mode, String> {
    let flags = libc::O_WRONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: open of a NUL-terminated literal path.
    let fd = unsafe { libc::open(c"/proc/self/fd/2".as_ptr(), flags) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!(
            "cannot reopen stderr non-blocking through /proc/self/fd/2: {e}"
        ));
    }
    // SAFETY: a descriptor we just opened and own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut again: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat of our own descriptor.
    let same = unsafe { libc::fstat(fd.as_raw_fd(), &mut again) } == 0
        && again.st_dev == st.st_dev
        && again.st_ino == st.st_ino;
    if !same {
        return Err("/proc/self/fd/2 reopened something other than stderr".into());
    }
    PRIVATE
        .set(fd)
        .map_err(|_| "stderr was already reopened".to_owned())?;
    Ok(Mode::Private)
}

/// Writes one rendered line (with its newline), or queues it.
pub fn push(line: Vec<u8>) {
    let mut s = sink();
    match s.mode {
        Mode::Closed => {}
        Mode::Plain => {
            if !write_all_blocking(&line) {
                s.dropped += 1;
            }
        }
        Mode::Thread => {
            s.enqueue(line);
            WAKE.notify_all();
        }
        Mode::Private | Mode::Socket => {
            // Older lines first: a direct write would overtake the queue.
            s.flush();
            if !s.queue.is_empty() {
                s.enqueue(line);
                return;
            }
            match s.write(&line) {
                Wrote::All => s.report_drops(),
                Wrote::Part(n) => {
                    s.enqueue(line);
                    s.head = n;
                }
                Wrote::WouldBlock => s.enqueue(line),
                Wrote::Failed => s.dropped += 1,
            }
        }
    }
}

/// The descriptor the event loop should poll for `POLLOUT`: only while lines are queued
/// for a non-blocking mode.
pub fn pending_fd() -> Option<BorrowedFd<'static>> {
    let s = sink();
    if s.queue.is_empty() {
        return None;
    }
    match s.mode {
        Mode::Private => PRIVATE.get().map(|fd| {
            use std::os::fd::AsFd;
            fd.as_fd()
        }),
        // SAFETY: fd 2 is never closed by this process.
        Mode::Socket => Some(unsafe { BorrowedFd::borrow_raw(2) }),
        _ => None,
    }
}

/// Writes what the reader will take now; called by the event loop when [`pending_fd`]
/// polls writable (or hung up).
pub fn flush() {
    sink().flush();
}

/// Gives queued lines up to `limit` to get out before the process exits: the last lines
/// (`supervisor.exit`) matter, but a reader that never comes back must not hold up the exit.
pub fn shutdown(limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut s = sink();
    loop {
        s.flush();
        if s.queue.is_empty() && !s.busy {
            return;
        }
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        match s.mode {
            Mode::Thread => {
                s = WAKE
                    .wait_timeout(s, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            Mode::Private | Mode::Socket => {
                let fd = s.fd();
                drop(s);
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
                // SAFETY: poll on one pollfd of ours.
                unsafe { libc::poll(&mut p, 1, ms) };
                s = sink();
            }
            _ => return,
        }
    }
}

impl Sink {
    fn fd(&self) -> RawFd {
        match self.mode {
            Mode::Private => PRIVATE.get().map_or(2, |fd| fd.as_raw_fd()),
            _ => 2,
        }
    }

    fn write(&self, buf: &[u8]) -> Wrote {
        loop {
            // SAFETY: writing our own buffer to a descriptor we hold open.
            let n = unsafe {
                match self.mode {
                    Mode::Socket => libc::send(
                        2,
                        buf.as_ptr().cast(),
                        buf.len(),
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    ),
                    _ => libc::write(self.fd(), buf.as_ptr().cast(), buf.len()),
                }
            };
            if n >= 0 {
                let n = n as usize;
                return if n == buf.len() {
                    Wrote::All
                } else {
                    Wrote::Part(n)
                };
            }
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Wrote::WouldBlock,
                _ => return Wrote::Failed,
            }
        }
    }

    fn enqueue(&mut self, line: Vec<u8>) {
        if self.queued + line.len() > QUEUE_MAX {
            self.dropped += 1;
            return;
        }
        self.queued += line.len();
        self.queue.push_back(line);
    }

    fn pop(&mut self) {
        if let Some(l) = self.queue.pop_front() {
            self.queued -= l.len();
        }
        self.head = 0;
    }

    /// Writes queued lines until the reader stops taking them.
    fn flush(&mut self) {
        if !matches!(self.mode, Mode::Private | Mode::Socket) {
            return;
        }
        let mut wrote = false;
        while let Some(line) = self.queue.front() {
            match self.write(&line[self.head..]) {
                Wrote::All => {
                    self.pop();
                    wrote = true;
                }
                Wrote::Part(n) => {
                    self.head += n;
                    return;
                }
                Wrote::WouldBlock => return,
                Wrote::Failed => {
                    // Nobody will read these: count them and stop holding them.
                    self.dropped += self.queue.len() as u64;
                    while !self.queue.is_empty() {
                        self.pop();
                    }
                    return;
                }
            }
        }
        if wrote {
            self.report_drops();
        }
    }

    /// After a successful write: tell the reader how many lines it missed.
    fn report_drops(&mut self) {
        if self.dropped == 0 {
            return;
        }
        let count = self.dropped;
        let line = super::dropped_line(self.format, count);
        self.dropped = 0;
        match self.mode {
            Mode::Thread => self.enqueue(line),
            _ => match self.write(&line) {
                Wrote::All => {}
                Wrote::Part(n) => {
                    self.enqueue(line);
                    self.head = n;
                }
                Wrote::WouldBlock => self.enqueue(line),
                Wrote::Failed => self.dropped = count,
            },
        }
    }
}

/// The fallback writer: takes every queued line and writes it to fd 2, blocking as long as
/// the reader makes it wait. Only this thread ever waits for the reader.
fn start_thread() {
    // Created with every signal blocked, so a process-directed signal is never delivered to
    // it (that would run the default action, e.g. end PID 1): signals stay for the event
    // loop's signalfd. A fault of its own is still fatal (the kernel forces it).
    // SAFETY: plain sigset manipulation on local sets.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
    }
    // A bare pthread rather than std::thread: std's thread machinery (names, the spawn
    // closure's Arc, join packets) added ~75 KB to the binary for a fallback.
    // SAFETY: the attribute object is initialised before use and destroyed after; the entry
    // point takes no argument and never returns.
    let spawned = unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setstacksize(&mut attr, 64 * 1024);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        let mut tid: libc::pthread_t = 0;
        let rc = libc::pthread_create(&mut tid, &attr, writer_entry, std::ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
        rc == 0
    };
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    if !spawned {
        // No thread: lines are dropped and counted rather than risk blocking.
        sink().mode = Mode::Closed;
    }
}

extern "C" fn writer_entry(_: *mut libc::c_void) -> *mut libc::c_void {
    writer_thread()
}

fn writer_thread() -> ! {
    let mut s = sink();
    loop {
        while s.queue.is_empty() {
            s.busy = false;
            WAKE.notify_all();
            s = WAKE.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.busy = true;
        let lines: Vec<Vec<u8>> = s.queue.drain(..).collect();
        s.queued = 0;
        s.head = 0;
        drop(s);
        let mut ok = 0u64;
        let mut failed = 0u64;
        for line in &lines {
            if write_all_blocking(line) {
                ok += 1;
            } else {
                failed += 1;
            }
        }
        s = sink();
        s.dropped += failed;
        if ok > 0 {
            s.report_drops();
        }
    }
}

fn write_all_blocking(mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        // SAFETY: writing our own buffer to fd 2.
        let n = unsafe { libc::write(2, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return false;
        }
        buf = &buf[n as usize..];
    }
    true
}
