//! Attacks on the supervisor (issue 8), each performed for real against the real binary,
//! asserting the safe outcome. Grouped by what is attacked: `duration_` (command-line
//! bounds), `log_` (a log reader that stops reading), `status_` (the status directory),
//! `ready_` (the readiness probe).

mod common;

use common::*;

// ----- durations (issue 8 item 6) ----------------------------------------------------

/// A duration so large that `Instant + d` overflows used to panic PID 1 after the child had
/// started (exit 134, status left at Starting, the child orphaned). Every duration flag is
/// bounded when parsed: a usage error (64) naming the flag, and nothing runs.
fn assert_duration_refused(flag: &str, value: &str) {
    // Both spellings: `--flag value` and `--flag=value`.
    let joined = format!("{flag}={value}");
    for spelling in [vec![flag, value], vec![joined.as_str()]] {
        let s = Scratch::new("duration");
        let marker = s.join("child-ran");
        let mut args = vec!["--no-hook"];
        args.extend(&spelling);
        args.extend(["--", "touch", marker.to_str().unwrap()]);
        let out = command(&s, &args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{spelling:?}: {err}");
        assert!(
            err.contains(flag) && err.contains("maximum"),
            "{spelling:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(!marker.exists(), "{spelling:?}: the child must not start");
        assert!(
            !s.status_dir().join("status.json").exists(),
            "{spelling:?}: nothing may run before the command line is valid"
        );
    }
}

#[test]
fn duration_ready_after_is_bounded() {
    assert_duration_refused("--ready-after", "10000000000000000000");
    assert_duration_refused("--ready-after", "721h");
}

#[test]
fn duration_grace_is_bounded() {
    assert_duration_refused("--grace", "10000000000000000000");
    assert_duration_refused("--grace", "9999999999999999999999h");
}

#[test]
fn duration_hook_timeout_is_bounded() {
    assert_duration_refused("--hook-timeout", "10000000000000000000");
    assert_duration_refused("--hook-timeout", "43201m");
}

#[test]
fn duration_backoff_flags_are_bounded() {
    for flag in [
        "--backoff-initial",
        "--backoff-max",
        "--backoff-reset-after",
        "--restart-window",
    ] {
        assert_duration_refused(flag, "10000000000000000000");
        assert_duration_refused(flag, &"9".repeat(400));
    }
}

#[test]
fn duration_at_the_bound_is_accepted_and_never_panics() {
    // 720h is accepted; with it as --ready-after the child runs and a stop still works.
    require_root();
    let s = Scratch::new("duration-max");
    let sup = spawn(
        &s,
        &[
            "--no-hook",
            "--ready-after",
            "720h",
            "--grace",
            "720h",
            "--backoff-max",
            "720h",
            "--",
            "sleep",
            "1000",
        ],
    );
    wait_phase(&s, "Starting", LONG);
    sup.signal(nix::sys::signal::Signal::SIGTERM);
    let (st, _) = sup.wait(LONG);
    assert_eq!(st.code(), Some(0));
    assert_eq!(s.status()["phase"], "Stopped");
}
