//! The supervisor as real PID 1 of a new PID namespace (`unshare --pid --fork
//! --mount-proc`), the way it runs as a container ENTRYPOINT.

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::process::Command;
use std::time::Duration;

/// Runs the supervisor as PID 1 in a fresh PID namespace; `unshare` waits for it and exits
/// with its status.
fn spawn_pid1(s: &Scratch, args: &[&str]) -> (Sup, i32) {
    let mut c = Command::new("unshare");
    c.args([
        "--pid",
        "--fork",
        "--mount-proc",
        "--",
        SUPERVISOR,
        "--no-policy",
        "--status-dir",
    ])
    .arg(s.status_dir())
    .args(args)
    .current_dir(&s.path);
    let sup = spawn_cmd(s, c);
    // The supervisor is unshare's only child; its host pid is what we signal, as a container
    // engine does.
    let mut host_pid = 0;
    wait_for("the supervisor to start inside the namespace", LONG, || {
        host_pid = children_of(sup.pid()).first().map_or(0, |c| c.0);
        host_pid != 0 && s.status_dir().join("status.json").exists()
    });
    (sup, host_pid)
}

#[test]
fn as_pid1_it_reaps_orphans_and_stops_on_sigterm() {
    require_root();
    let s = Scratch::new("pid1");
    let child = s.child_script(
        "child.sh",
        "trap 'echo term > term.txt; exit 0' TERM\n\
         i=0; while [ $i -lt 30 ]; do (sleep 0.1 &) ; i=$((i+1)); done; echo spawned > spawned\n\
         while :; do sleep 0.05; done",
    );
    let (sup, host_pid) = spawn_pid1(
        &s,
        &[
            "--no-hook",
            "--ready-after",
            "0",
            "--log-level",
            "debug",
            "--",
            child.to_str().unwrap(),
        ],
    );
    wait_phase(&s, "Ready", LONG);
    assert_eq!(
        s.status()["supervisor"]["pid"],
        1,
        "the supervisor is PID 1 in its namespace"
    );
    wait_for("orphans to be spawned", LONG, || {
        s.read("spawned") == "spawned\n"
    });
    wait_for("30 orphans reaped by PID 1", LONG, || {
        named(&sup.events(), "reap.orphan").len() >= 30
    });
    wait_for("no zombie under PID 1", LONG, || {
        zombies_of(host_pid).is_empty()
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(host_pid), Signal::SIGTERM).unwrap();
    let (st, events) = sup.wait(LONG);
    assert_eq!(
        st.code(),
        Some(0),
        "PID 1 must exit 0 after a requested stop"
    );
    assert_eq!(
        s.read("term.txt"),
        "term\n",
        "the child received the SIGTERM"
    );
    assert_eq!(phases(&events).last().unwrap(), "Stopped");
    assert_eq!(s.status()["phase"], "Stopped");
}

#[test]
fn as_pid1_a_child_ignoring_sigterm_is_killed_after_the_grace() {
    require_root();
    let s = Scratch::new("pid1-grace");
    let child = s.child_script("child.sh", "trap '' TERM; while :; do sleep 0.05; done");
    let (sup, host_pid) = spawn_pid1(
        &s,
        &[
            "--no-hook",
            "--grace",
            "300ms",
            "--ready-after",
            "0",
            "--",
            child.to_str().unwrap(),
        ],
    );
    wait_phase(&s, "Ready", LONG);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(host_pid), Signal::SIGTERM).unwrap();
    let (st, events) = sup.wait(LONG);
    assert_eq!(st.code(), Some(0));
    assert_eq!(named(&events, "stop.kill").len(), 1);
    assert_eq!(s.status()["last_exit"]["signal"], 9);
}

#[test]
fn as_pid1_exit_codes_pass_through() {
    require_root();
    for (script, want) in [
        ("exit 0", 0),
        ("exit 3", 3),
        ("exit 255", 255),
        ("kill -TERM $$", 143),
    ] {
        let s = Scratch::new("pid1-exit");
        let (sup, _) = spawn_pid1(
            &s,
            &[
                "--no-hook",
                "--restart",
                "never",
                "--",
                "sh",
                "-c",
                &format!("sleep 0.2; {script}"),
            ],
        );
        let (st, _) = sup.wait(LONG);
        assert_eq!(st.code(), Some(want), "{script}");
    }
}

#[test]
fn as_pid1_the_hook_runs_and_restarts_work() {
    require_root();
    let s = Scratch::new("pid1-hook");
    let hook = s.script("boot.sh", "echo hook >> trace");
    let child = s.script("child.sh", "echo child >> trace; exit 1");
    let (sup, _) = spawn_pid1(
        &s,
        &[
            "--hook",
            hook.to_str().unwrap(),
            "--backoff-initial",
            "10ms",
            "--max-restarts",
            "1",
            "--",
            child.to_str().unwrap(),
        ],
    );
    let (st, _) = sup.wait(Duration::from_secs(20));
    assert_eq!(st.code(), Some(84));
    assert_eq!(s.read("trace"), "hook\nchild\nchild\n");
}

#[test]
fn as_pid1_fault_and_realtime_signals_from_outside_are_forwarded() {
    require_root();
    let s = Scratch::new("pid1-faults");
    let catch = format!("catch:{}", s.join("caught").display());
    let (sup, host_pid) = spawn_pid1(
        &s,
        &["--no-hook", "--ready-after", "0", "--", PROBE, &catch],
    );
    wait_phase(&s, "Ready", LONG);
    wait_for("the probe's handlers", LONG, || {
        sup.stdout().contains("ready")
    });
    // As PID 1, a signal it does not block with a default action is dropped by the kernel:
    // these vanished before.
    deliver_and_wait(&s, host_pid, &outside_signals());
    assert!(alive(host_pid));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(host_pid), Signal::SIGTERM).unwrap();
    let (st, events) = sup.wait(LONG);
    assert_eq!(st.code(), Some(0));
    assert_eq!(
        named(&events, "signal.forward").len(),
        outside_signals().len()
    );
    assert!(s.read("caught").ends_with("\n15\n"));
}
