//! Measures the sandbox's two costs without a tracer in the way: `Sandbox::prepare`
//! (once per supervisor start) and the child side (`in_child`, every generation), timed
//! inside forked children with the vDSO clock. Needs root (it drops to `nobody`).
//!
//!     cargo bench --bench enforce_timing -- [ITERATIONS]

use openshell_supervisor::enforce::{in_child, ProcessSetup, Sandbox};
use std::path::Path;
use std::time::Instant;

fn main() {
    // `cargo bench` appends its own `--bench` flag: take the first number given.
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let dir = std::env::temp_dir().join(format!("enforce-timing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "version: 1
filesystem_policy:
  include_workdir: true
  read_only: [/usr, /lib, /etc, /proc, /dev/urandom]
  read_write: [/tmp, /dev/null]
process:
  run_as_user: nobody
  run_as_group: nogroup
",
    )
    .unwrap();

    let mut prepare = Vec::new();
    let mut sandbox = None;
    for _ in 0..20 {
        let t = Instant::now();
        sandbox = Some(Sandbox::prepare(&policy, Path::new("/sandbox")).expect("prepare"));
        prepare.push(t.elapsed().as_micros() as f64);
    }
    let sandbox = sandbox.unwrap();

    let apply = time_children(n, Some(&sandbox));
    // The process set-up alone (session, signals, fds), for comparison.
    let bare = time_children(n, None);
    let _ = std::fs::remove_dir_all(&dir);
    report("prepare (us)", &mut prepare);
    report("in_child (us)", &mut { apply });
    report("no sandbox (us)", &mut { bare });
}

/// Runs `in_child` in `n` forked children, each timing itself.
fn time_children(n: usize, sandbox: Option<&Sandbox>) -> Vec<f64> {
    let setup = ProcessSetup::capture();
    let mut apply = Vec::new();
    for _ in 0..n {
        let mut fds = [0i32; 2];
        // SAFETY: pipe, fork, then only async-signal-safe calls in the child.
        unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
            match libc::fork() {
                0 => {
                    let mut t0 = std::mem::zeroed::<libc::timespec>();
                    let mut t1 = std::mem::zeroed::<libc::timespec>();
                    libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t0);
                    let ok = in_child(&setup, sandbox, None).is_ok();
                    libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t1);
                    let ns: i64 = if ok {
                        (t1.tv_sec - t0.tv_sec) * 1_000_000_000 + (t1.tv_nsec - t0.tv_nsec)
                    } else {
                        -1
                    };
                    libc::write(fds[1], (&ns as *const i64).cast(), 8);
                    libc::_exit(0);
                }
                pid => {
                    libc::close(fds[1]);
                    let mut ns = 0i64;
                    libc::read(fds[0], (&mut ns as *mut i64).cast(), 8);
                    libc::close(fds[0]);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                    assert!(ns > 0, "in_child failed (run as root)");
                    apply.push(ns as f64 / 1000.0);
                }
            }
        }
    }
    apply
}

fn report(what: &str, v: &mut [f64]) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
    println!(
        "{what:16} n={:4}  min {:8.1}  median {:8.1}  p90 {:8.1}  max {:8.1}",
        v.len(),
        v[0],
        pct(0.5),
        pct(0.9),
        v[v.len() - 1]
    );
}
