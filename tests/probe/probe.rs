//! sandbox-probe: run inside the sandbox by tests/enforcement.rs. Each argument is an
//! operation to *attempt*; each prints one JSON line, `{"op":NAME,"errno":E}` (0 = it
//! worked), so the test sees what the kernel actually allowed.
//!
//! Operations: `read:PATH`, `write:PATH`, `exec:PATH` (runs PATH with the `ids` op),
//! `ids`, `status`, `fds`, `kill-parent`, `tcp-bind:PORT`, `tcp-connect:PORT`,
//! `abstract-connect:NAME`, `syscalls` (the whole battery), `crash-once:MARKER` (exit 3
//! the first time, creating MARKER; carry on when it exists), `parent-status`,
//! `sleep:MS`, `catch:FILE` (handle every
//! catchable signal, append each one's number to FILE, exit 0 on SIGTERM; never returns),
//! `environ` (the process's environment as /proc/self/environ shows it), `plant:PATH=TARGET`
//! (replaces PATH, a file or a whole tree, by a symlink to TARGET: what a hostile workload
//! does to a policy path inside its workspace between two runs); for measurements only:
//! `bench:N` (ns per syscall), `seccomp:SRC` (enter a seccomp program: `ours`, the
//! supervisor's default one, or a file of raw `struct sock_filter`), `seccomp-load:SRC:N`
//! (its load time, in N forked children).

use std::ffi::CString;
use std::io::Write;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// 0 when `r` is not negative, else errno.
fn e(r: i64) -> i32 {
    if r < 0 {
        errno()
    } else {
        0
    }
}

fn line(op: &str, errno: i32) {
    println!("{{\"op\":\"{op}\",\"errno\":{errno}}}");
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL in probe arguments")
}

/// Runs `f` in a forked child and returns what it returned (its exit code). Used for
/// operations that would change the probe itself when they succeed (unconfined runs).
fn in_fork(f: impl FnOnce() -> i32) -> i32 {
    let _ = std::io::stdout().flush();
    // SAFETY: the probe is single-threaded when it forks; the child only makes syscalls
    // and _exits.
    unsafe {
        match libc::fork() {
            0 => {
                let code = f();
                libc::_exit(code & 0xff);
            }
            -1 => errno(),
            pid => {
                let mut status = 0;
                libc::waitpid(pid, &mut status, 0);
                if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    1000 + libc::WTERMSIG(status)
                }
            }
        }
    }
}

fn main() {
    for arg in std::env::args().skip(1) {
        let (op, val) = arg.split_once(':').unwrap_or((arg.as_str(), ""));
        match op {
            "read" => line("read", read(val)),
            "write" => line("write", write(val)),
            "exec" => line("exec", exec(val)),
            "ids" => ids(),
            "status" => status("status", "self"),
            // The supervisor's own confinement, as the child sees it in /proc.
            "parent-status" => {
                // SAFETY: no arguments.
                let ppid = unsafe { libc::getppid() };
                status("parent-status", &ppid.to_string())
            }
            "sleep" => std::thread::sleep(std::time::Duration::from_millis(
                val.parse().expect("milliseconds"),
            )),
            "bench" => bench(val.parse().expect("iterations")),
            "seccomp" => seccomp(val),
            "seccomp-load" => {
                let (src, n) = val.rsplit_once(':').expect("seccomp-load:SRC:N");
                seccomp_load(src, n.parse().expect("runs"));
            }
            "fds" => fds(),
            "env" => println!(
                "{{\"op\":\"env\",\"name\":\"{val}\",\"value\":\"{}\"}}",
                std::env::var(val).unwrap_or_default()
            ),
            // SAFETY: signalling our parent (the supervisor) is exactly what we test.
            "kill-parent" => line(
                "kill-parent",
                e(unsafe { libc::kill(libc::getppid(), libc::SIGTERM) } as i64),
            ),
            "tcp-bind" => line("tcp-bind", tcp(val, true)),
            "tcp-connect" => line("tcp-connect", tcp(val, false)),
            "abstract-connect" => line("abstract-connect", abstract_connect(val)),
            "syscalls" => syscalls(),
            "plant" => line("plant", plant(val)),
            "crash-once" => {
                if std::fs::metadata(val).is_err() {
                    let created = std::fs::write(val, b"1").is_ok();
                    println!("{{\"op\":\"crash-once\",\"first\":true,\"marker\":{created}}}");
                    let _ = std::io::stdout().flush();
                    std::process::exit(3);
                }
                println!("{{\"op\":\"crash-once\",\"first\":false}}");
            }
            "catch" => catch(val),
            "environ" => environ(),
            _ => {
                eprintln!("sandbox-probe: unknown operation {arg:?}");
                std::process::exit(2);
            }
        }
    }
}

/// Where the `catch` handler appends; set once before any handler is installed.
static CATCH_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn record(sig: libc::c_int) {
    // Async-signal-safe: format into a stack buffer, one write.
    let mut buf = [0u8; 4];
    let mut n = 0;
    let mut d = [0u8; 3];
    let mut v = sig as u32;
    let mut k = 0;
    loop {
        d[k] = b'0' + (v % 10) as u8;
        k += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while k > 0 {
        k -= 1;
        buf[n] = d[k];
        n += 1;
    }
    buf[n] = b'\n';
    n += 1;
    let fd = CATCH_FD.load(std::sync::atomic::Ordering::Relaxed);
    // SAFETY: write and _exit are async-signal-safe.
    unsafe {
        libc::write(fd, buf.as_ptr().cast(), n);
        if sig == libc::SIGTERM {
            libc::_exit(0);
        }
    }
}

fn catch(path: &str) -> ! {
    let p = cstr(path);
    // SAFETY: open, sigaction with a handler that only writes, pause.
    unsafe {
        let fd = libc::open(
            p.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC,
            0o644,
        );
        assert!(fd >= 0, "catch: cannot open {path}");
        CATCH_FD.store(fd, std::sync::atomic::Ordering::Relaxed);
        for sig in 1..=libc::SIGRTMAX() {
            if matches!(sig, libc::SIGKILL | libc::SIGSTOP | libc::SIGCHLD) {
                continue;
            }
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = record as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut()); // glibc's own 32/33 refuse
        }
        println!("{{\"op\":\"catch\",\"ready\":true}}");
        let _ = std::io::stdout().flush();
        loop {
            libc::pause();
        }
    }
}

fn environ() {
    let raw = std::fs::read("/proc/self/environ").unwrap_or_default();
    let vars: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| format!("{:?}", String::from_utf8_lossy(v)))
        .collect();
    println!("{{\"op\":\"environ\",\"vars\":[{}]}}", vars.join(","));
}

fn plant(spec: &str) -> i32 {
    let (path, target) = spec.split_once('=').expect("plant:PATH=TARGET");
    let gone = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => Ok(()),
    };
    let r = gone.and_then(|()| std::os::unix::fs::symlink(target, path));
    match r {
        Ok(()) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

fn read(path: &str) -> i32 {
    let p = cstr(path);
    // SAFETY: plain syscalls on a buffer we own.
    unsafe {
        let fd = libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return errno();
        }
        let mut b = [0u8; 1];
        let r = e(libc::read(fd, b.as_mut_ptr().cast(), 1) as i64);
        libc::close(fd);
        r
    }
}

fn write(path: &str) -> i32 {
    let p = cstr(path);
    // SAFETY: plain syscalls on a buffer we own.
    unsafe {
        let fd = libc::open(
            p.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644,
        );
        if fd < 0 {
            return errno();
        }
        let r = e(libc::write(fd, b"probe\n".as_ptr().cast(), 6) as i64);
        libc::close(fd);
        r
    }
}

/// Runs `path ids` and waits: its own output lands on our stdout.
fn exec(path: &str) -> i32 {
    let p = cstr(path);
    let a = cstr("ids");
    in_fork(|| {
        let argv = [p.as_ptr(), a.as_ptr(), std::ptr::null()];
        // SAFETY: NUL-terminated argv of live CStrings.
        unsafe { libc::execv(p.as_ptr(), argv.as_ptr()) };
        errno()
    })
}

fn ids() {
    let (mut r, mut ef, mut s) = (0, 0, 0);
    // SAFETY: writes three ints.
    unsafe { libc::getresuid(&mut r, &mut ef, &mut s) };
    let caps = proc_status()
        .into_iter()
        .filter(|(k, _)| k == "CapEff" || k == "CapPrm")
        .map(|(k, v)| format!(",\"{k}\":\"{v}\""))
        .collect::<String>();
    println!("{{\"op\":\"ids\",\"ruid\":{r},\"euid\":{ef},\"suid\":{s}{caps}}}");
}

fn proc_status() -> Vec<(String, String)> {
    proc_status_of("self")
}

fn proc_status_of(pid: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().replace('\t', " ")))
        .collect()
}

fn status(op: &str, pid: &str) {
    let keep = [
        "Uid",
        "Gid",
        "Groups",
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
        "Seccomp_filters",
    ];
    let mut s = format!("{{\"op\":\"{op}\"");
    for (k, v) in proc_status_of(pid) {
        if keep.contains(&k.as_str()) {
            s.push_str(&format!(",\"{k}\":\"{v}\""));
        }
    }
    // SAFETY: no arguments.
    s.push_str(&format!(",\"ppid\":{}", unsafe { libc::getppid() }));
    s.push('}');
    println!("{s}");
}

/// Cost of syscalls under the filter: one the kernel's seccomp cache allows without
/// running the program (getppid), ioctl, which the program must inspect, and one it denies
/// (bpf, denied by ours and by Docker's default profile; without a filter the kernel
/// refuses the unknown command at once).
fn bench(n: u32) {
    let mut pipe = [0i32; 2];
    let mut avail = 0i32;
    // SAFETY: pipe2 writes two fds; the loops make harmless queries.
    unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) };
    let time = |f: &dyn Fn()| {
        let t = std::time::Instant::now();
        for _ in 0..n {
            f();
        }
        t.elapsed().as_nanos() as f64 / f64::from(n)
    };
    let getppid = time(&|| unsafe {
        libc::syscall(libc::SYS_getppid);
    });
    let ioctl = time(&|| unsafe {
        libc::ioctl(pipe[0], libc::FIONREAD, &avail as *const i32 as *mut i32);
    });
    // An unknown command with no attribute: EINVAL (or EPERM) unfiltered.
    let denied = time(&|| unsafe {
        libc::syscall(libc::SYS_bpf, 0xffff, 0usize, 0);
    });
    // SAFETY: the same call once more, for its errno.
    let denied_errno = e(unsafe { libc::syscall(libc::SYS_bpf, 0xffff, 0usize, 0) });
    let _ = &mut avail;
    println!(
        "{{\"op\":\"bench\",\"n\":{n},\"getppid_ns\":{getppid:.1},\"ioctl_ns\":{ioctl:.1},\"denied_ns\":{denied:.1},\"denied_errno\":{denied_errno}}}"
    );
}

/// The program named by `src`: `ours` (the supervisor's default), or a file of raw
/// `struct sock_filter` (8 bytes each, native byte order).
fn seccomp_program(src: &str) -> Vec<libc::sock_filter> {
    let bytes = if src == "ours" {
        openshell_supervisor::enforce::seccomp_program(&[], &[]).expect("default program")
    } else {
        std::fs::read(src).unwrap_or_else(|e| panic!("cannot read {src}: {e}"))
    };
    assert!(
        !bytes.is_empty() && bytes.len() % 8 == 0,
        "{src}: not a sock_filter array"
    );
    bytes
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect()
}

/// no_new_privs, then one seccomp(2) call, as the supervisor's child makes it; returns
/// (ns the call took, errno).
fn enter(prog: &[libc::sock_filter]) -> (u64, i32) {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl and seccomp read only the live program above.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return (0, errno());
        }
        let t = std::time::Instant::now();
        let r = libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        );
        (t.elapsed().as_nanos() as u64, e(r))
    }
}

fn seccomp(src: &str) {
    let prog = seccomp_program(src);
    let (ns, err) = enter(&prog);
    println!(
        "{{\"op\":\"seccomp\",\"source\":\"{src}\",\"instructions\":{},\"load_ns\":{ns},\"errno\":{err}}}",
        prog.len()
    );
    if err != 0 {
        std::process::exit(1);
    }
}

/// Load time of `src` in `n` fresh children (a filter cannot be removed once entered).
fn seccomp_load(src: &str, n: usize) {
    let prog = seccomp_program(src);
    let mut ns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut fds = [0i32; 2];
        let _ = std::io::stdout().flush();
        // SAFETY: the probe is single-threaded; the child makes only raw syscalls on
        // memory prepared before the fork, then _exits.
        unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
            match libc::fork() {
                0 => {
                    let (t, err) = enter(&prog);
                    let v: i64 = if err == 0 { t as i64 } else { -i64::from(err) };
                    libc::write(fds[1], (&v as *const i64).cast(), 8);
                    libc::_exit(0);
                }
                pid => {
                    libc::close(fds[1]);
                    let mut v = 0i64;
                    libc::read(fds[0], (&mut v as *mut i64).cast(), 8);
                    libc::close(fds[0]);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                    assert!(v > 0, "seccomp failed in the child: errno {}", -v);
                    ns.push(v as u64);
                }
            }
        }
    }
    ns.sort_unstable();
    let median = ns[ns.len() / 2];
    println!(
        "{{\"op\":\"seccomp-load\",\"source\":\"{src}\",\"instructions\":{},\"runs\":{n},\"median_ns\":{median},\"min_ns\":{}}}",
        prog.len(),
        ns[0]
    );
}

/// Every open fd above 2, found with F_GETFD (listing /proc/self/fd may be refused to a
/// freshly dropped process).
fn fds() {
    let mut open = Vec::new();
    for fd in 3..4096 {
        // SAFETY: F_GETFD only queries.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
            open.push(fd.to_string());
        }
    }
    println!("{{\"op\":\"fds\",\"open\":[{}]}}", open.join(","));
}

fn tcp(port: &str, bind: bool) -> i32 {
    let port: u16 = port.parse().expect("port");
    // SAFETY: plain socket calls on a stack sockaddr.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return errno();
        }
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_port = port.to_be();
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        let p = &sa as *const libc::sockaddr_in as *const libc::sockaddr;
        let r = if bind {
            libc::bind(fd, p, len)
        } else {
            libc::connect(fd, p, len)
        };
        let r = e(r as i64);
        libc::close(fd);
        r
    }
}

fn abstract_connect(name: &str) -> i32 {
    // SAFETY: plain socket calls on a stack sockaddr.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return errno();
        }
        let mut sa: libc::sockaddr_un = std::mem::zeroed();
        sa.sun_family = libc::AF_UNIX as u16;
        // Abstract: a leading NUL, then the name (not NUL-terminated).
        for (i, b) in name.bytes().enumerate() {
            sa.sun_path[i + 1] = b as libc::c_char;
        }
        let len = (std::mem::size_of::<libc::sa_family_t>() + 1 + name.len()) as u32;
        let r = e(libc::connect(fd, &sa as *const _ as *const libc::sockaddr, len) as i64);
        libc::close(fd);
        r
    }
}

fn sys(nr: i64, a: [u64; 5]) -> i32 {
    sys6(nr, [a[0], a[1], a[2], a[3], a[4], 0])
}

fn sys6(nr: i64, a: [u64; 6]) -> i32 {
    // SAFETY: the battery passes harmless arguments (bad fds, null or stack pointers);
    // anything that could change the probe runs in a fork.
    e(unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) })
}

const X32: i64 = 0x4000_0000;

/// Every denied family and its allowed neighbours, one line each.
fn syscalls() {
    let root = cstr("/");
    let none = cstr("none");
    let tmpfs = cstr("tmpfs");
    let empty = cstr("");
    let nothere = cstr("/nonexistent-probe");
    let dot = cstr(".");
    let p = |c: &CString| c.as_ptr() as u64;
    let mut buf = [0u8; 256];
    let b = buf.as_mut_ptr() as u64;
    let neg1 = -1i64 as u64;
    let at_cwd = libc::AT_FDCWD as i64 as u64;

    // The mount family and namespaces.
    line(
        "mount",
        sys(libc::SYS_mount, [p(&none), p(&root), p(&tmpfs), 0, 0]),
    );
    line("umount2", sys(libc::SYS_umount2, [p(&nothere), 0, 0, 0, 0]));
    line(
        "pivot_root",
        sys(libc::SYS_pivot_root, [p(&dot), p(&dot), 0, 0, 0]),
    );
    line("chroot", sys(libc::SYS_chroot, [p(&root), 0, 0, 0, 0]));
    line("fsopen", sys(libc::SYS_fsopen, [p(&tmpfs), 0, 0, 0, 0]));
    line(
        "open_tree",
        sys(libc::SYS_open_tree, [at_cwd, p(&root), 0, 0, 0]),
    );
    line(
        "move_mount",
        sys(libc::SYS_move_mount, [neg1, p(&empty), neg1, p(&empty), 0]),
    );
    line(
        "mount_setattr",
        sys(libc::SYS_mount_setattr, [neg1, p(&empty), 0, 0, 0]),
    );
    line("setns", sys(libc::SYS_setns, [neg1, 0, 0, 0, 0]));
    for (name, flag) in [
        ("unshare_user", libc::CLONE_NEWUSER),
        ("unshare_net", libc::CLONE_NEWNET),
        ("unshare_ns", libc::CLONE_NEWNS),
        ("unshare_time", 0x80),
    ] {
        line(
            name,
            in_fork(|| sys(libc::SYS_unshare, [flag as u64, 0, 0, 0, 0])),
        );
    }
    line(
        "clone_newuser",
        in_fork(|| {
            let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as u64;
            // SAFETY: fork-like clone; the new child exits at once.
            let r = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
            if r == 0 {
                unsafe { libc::_exit(0) };
            }
            e(r)
        }),
    );
    line(
        "clone3",
        in_fork(|| {
            // struct clone_args v0 (64 bytes): only exit_signal set.
            let mut args = [0u64; 8];
            args[4] = libc::SIGCHLD as u64;
            // SAFETY: fork-like clone3; the new child exits at once.
            let r = unsafe { libc::syscall(libc::SYS_clone3, args.as_mut_ptr(), 64usize) };
            if r == 0 {
                unsafe { libc::_exit(0) };
            }
            e(r)
        }),
    );

    // Cross-process access.
    line(
        "ptrace",
        in_fork(|| sys(libc::SYS_ptrace, [libc::PTRACE_TRACEME as u64, 0, 0, 0, 0])),
    );
    let mut dst = [0u8; 8];
    let src = [7u8; 8];
    let liov = libc::iovec {
        iov_base: dst.as_mut_ptr().cast(),
        iov_len: 8,
    };
    let riov = libc::iovec {
        iov_base: src.as_ptr() as *mut _,
        iov_len: 8,
    };
    let me = std::process::id() as u64;
    line(
        "process_vm_readv",
        sys6(
            libc::SYS_process_vm_readv,
            [
                me,
                &liov as *const _ as u64,
                1,
                &riov as *const _ as u64,
                1,
                0,
            ],
        ),
    );
    line(
        "process_vm_writev",
        sys6(
            libc::SYS_process_vm_writev,
            [
                me,
                &riov as *const _ as u64,
                1,
                &liov as *const _ as u64,
                1,
                0,
            ],
        ),
    );
    // SAFETY: pidfd_open on ourselves.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, me, 0) };
    line(
        "pidfd_getfd",
        sys(libc::SYS_pidfd_getfd, [pidfd as u64, 1, 0, 0, 0]),
    );

    // Kernel attack surface.
    let mut attr = [0u8; 128];
    line(
        "bpf",
        sys(libc::SYS_bpf, [0, attr.as_mut_ptr() as u64, 128, 0, 0]),
    );
    let mut perf = [0u8; 128];
    perf[0..4].copy_from_slice(&1u32.to_ne_bytes()); // PERF_TYPE_SOFTWARE
    perf[4..8].copy_from_slice(&128u32.to_ne_bytes()); // size
    perf[40..48].copy_from_slice(&0x60u64.to_ne_bytes()); // exclude_kernel | exclude_hv
    line(
        "perf_event_open",
        sys(
            libc::SYS_perf_event_open,
            [perf.as_mut_ptr() as u64, 0, neg1, neg1, 0],
        ),
    );
    // UFFD_USER_MODE_ONLY: allowed to unprivileged users by default.
    line(
        "userfaultfd",
        sys(
            libc::SYS_userfaultfd,
            [(libc::O_CLOEXEC | 1) as u64, 0, 0, 0, 0],
        ),
    );
    let mut params = [0u8; 120];
    line(
        "io_uring_setup",
        sys(
            libc::SYS_io_uring_setup,
            [1, params.as_mut_ptr() as u64, 0, 0, 0],
        ),
    );
    line(
        "io_uring_enter",
        sys(libc::SYS_io_uring_enter, [neg1, 0, 0, 0, 0]),
    );
    line(
        "io_uring_register",
        sys(libc::SYS_io_uring_register, [neg1, 0, 0, 0, 0]),
    );
    // KEYCTL_GET_KEYRING_ID of the session keyring (-3).
    line("keyctl", sys(libc::SYS_keyctl, [0, -3i64 as u64, 0, 0, 0]));
    let user = cstr("user");
    let desc = cstr("probe");
    line(
        "add_key",
        sys(libc::SYS_add_key, [p(&user), p(&desc), b, 1, -2i64 as u64]),
    );
    line(
        "request_key",
        sys(libc::SYS_request_key, [p(&user), p(&desc), 0, 0, 0]),
    );
    line(
        "finit_module",
        sys(libc::SYS_finit_module, [neg1, p(&empty), 0, 0, 0]),
    );
    line(
        "init_module",
        sys(libc::SYS_init_module, [0, 0, p(&empty), 0, 0]),
    );
    line(
        "delete_module",
        sys(libc::SYS_delete_module, [p(&desc), 0, 0, 0, 0]),
    );
    line("kexec_load", sys(libc::SYS_kexec_load, [0, 0, 0, 0, 0]));
    line(
        "kexec_file_load",
        sys(libc::SYS_kexec_file_load, [neg1, neg1, 0, 0, 0]),
    );
    // Wrong magic numbers: even with CAP_SYS_BOOT this only returns EINVAL.
    line("reboot", sys(libc::SYS_reboot, [0, 0, 0, 0, 0]));
    line("swapon", sys(libc::SYS_swapon, [p(&nothere), 0, 0, 0, 0]));
    line("swapoff", sys(libc::SYS_swapoff, [p(&nothere), 0, 0, 0, 0]));
    // modes = 0: a read-only query, allowed to anyone outside the sandbox.
    line("adjtimex", sys(libc::SYS_adjtimex, [b, 0, 0, 0, 0]));
    line(
        "clock_adjtime",
        sys(libc::SYS_clock_adjtime, [0, b, 0, 0, 0]),
    );
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: reads the clock into a stack timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    line(
        "clock_settime",
        sys(
            libc::SYS_clock_settime,
            [0, &ts as *const _ as u64, 0, 0, 0],
        ),
    );
    line("settimeofday", sys(libc::SYS_settimeofday, [b, 0, 0, 0, 0]));
    line(
        "open_by_handle_at",
        sys(libc::SYS_open_by_handle_at, [at_cwd, b, 0, 0, 0]),
    );
    line("iopl", sys(libc::SYS_iopl, [0, 0, 0, 0, 0]));
    line("ioperm", sys(libc::SYS_ioperm, [0, 1, 0, 0, 0]));
    line("acct", sys(libc::SYS_acct, [0, 0, 0, 0, 0]));

    // Terminal injection, also with garbage in the high 32 bits of the request.
    line("ioctl_tiocsti", sys(libc::SYS_ioctl, [0, 0x5412, b, 0, 0]));
    line(
        "ioctl_tiocsti_highbits",
        sys(libc::SYS_ioctl, [0, 0xdead_beef_0000_5412, b, 0, 0]),
    );
    line(
        "ioctl_tioclinux",
        sys(libc::SYS_ioctl, [0, 0x541C, b, 0, 0]),
    );
    line(
        "ioctl_tioclinux_highbits",
        sys(libc::SYS_ioctl, [0, 0x1_0000_541C, b, 0, 0]),
    );

    // Socket families.
    let sock = |dom: i32, ty: i32, proto: i32| -> i32 {
        // SAFETY: socket creation; the fd is closed right away.
        let fd = unsafe { libc::socket(dom, ty | libc::SOCK_CLOEXEC, proto) };
        if fd < 0 {
            return errno();
        }
        unsafe { libc::close(fd) };
        0
    };
    line("socket_packet", sock(libc::AF_PACKET, libc::SOCK_RAW, 0));
    line("socket_vsock", sock(libc::AF_VSOCK, libc::SOCK_STREAM, 0));
    line("socket_alg", sock(libc::AF_ALG, libc::SOCK_SEQPACKET, 0));
    line("socket_bluetooth", sock(31, libc::SOCK_STREAM, 0));
    line(
        "socket_netlink_uevent",
        sock(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM,
            libc::NETLINK_KOBJECT_UEVENT,
        ),
    );
    line(
        "socket_netlink_audit",
        sock(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_AUDIT),
    );
    let mut sv = [0i32; 2];
    line(
        "socketpair_packet",
        e(
            unsafe { libc::socketpair(libc::AF_PACKET, libc::SOCK_DGRAM, 0, sv.as_mut_ptr()) }
                as i64,
        ),
    );
    // personality: ADDR_NO_RANDOMIZE would weaken ASLR for everything the child execs.
    line(
        "personality_addr_no_randomize",
        in_fork(|| sys(libc::SYS_personality, [0x0040000, 0, 0, 0, 0])),
    );
    // The x32 ABI: same syscalls, numbers with bit 30 set.
    line("x32_getpid", sys(X32 | libc::SYS_getpid, [0; 5]));
    line(
        "x32_mount",
        sys(X32 | libc::SYS_mount, [p(&none), p(&root), p(&tmpfs), 0, 0]),
    );
    line(
        "x32_unshare",
        in_fork(|| sys(X32 | 272, [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0])),
    );

    // Allowed neighbours: the list must not be broader than it says.
    let memfd = cstr("probe");
    line(
        "memfd_create",
        sys(
            libc::SYS_memfd_create,
            [p(&memfd), libc::MFD_CLOEXEC as u64, 0, 0, 0],
        ),
    );
    line("socket_unix", sock(libc::AF_UNIX, libc::SOCK_STREAM, 0));
    line("socket_inet", sock(libc::AF_INET, libc::SOCK_DGRAM, 0));
    line("socket_inet6", sock(libc::AF_INET6, libc::SOCK_STREAM, 0));
    line(
        "socket_netlink_route",
        sock(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE),
    );
    line(
        "socketpair_unix",
        e(
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr()) }
                as i64,
        ),
    );
    // stdin is not a terminal in the tests: ENOTTY, not EPERM.
    line(
        "ioctl_tiocgwinsz",
        sys(libc::SYS_ioctl, [0, libc::TIOCGWINSZ, b, 0, 0]),
    );
    let mut pipe = [0i32; 2];
    // SAFETY: pipe2 writes two fds.
    unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) };
    line(
        "ioctl_fionread",
        sys(libc::SYS_ioctl, [pipe[0] as u64, libc::FIONREAD, b, 0, 0]),
    );
    line("fork", in_fork(|| 0));
    // std's thread spawn goes through glibc's clone3, then clone on ENOSYS.
    line(
        "thread",
        match std::thread::spawn(|| 0).join() {
            Ok(_) => 0,
            Err(_) => -1,
        },
    );
    line(
        "unshare_files",
        in_fork(|| sys(libc::SYS_unshare, [libc::CLONE_FILES as u64, 0, 0, 0, 0])),
    );
    line(
        "personality_query",
        sys(libc::SYS_personality, [0xffff_ffff, 0, 0, 0, 0]),
    );
    line(
        "personality_linux",
        sys(libc::SYS_personality, [0, 0, 0, 0, 0]),
    );
    line("getpid", sys(libc::SYS_getpid, [0; 5]));
    let _ = (attr, params);
}
