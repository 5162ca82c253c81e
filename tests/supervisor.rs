//! The supervisor core, end to end: the real binary, real processes, real signals.

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

#[test]
fn hook_runs_before_the_child_and_once_across_restarts() {
    require_root();
    let s = Scratch::new("hook-once");
    let trace = s.join("trace");
    let hook = s.script(
        "boot.sh",
        &format!(
            "echo hook >> {}; echo from-hook; echo oops >&2",
            trace.display()
        ),
    );
    let child = s.script(
        "child.sh",
        &format!("echo child >> {}; exit 1", trace.display()),
    );
    let sup = spawn(
        &s,
        &[
            "--hook",
            hook.to_str().unwrap(),
            "--restart",
            "on-failure",
            "--backoff-initial",
            "10ms",
            "--max-restarts",
            "2",
            "--",
            child.to_str().unwrap(),
        ],
    );
    let (st, events) = sup.wait(LONG);
    assert_eq!(st.code(), Some(84), "crash loop exit code");
    assert_eq!(s.read("trace"), "hook\nchild\nchild\nchild\n");
    // Hook output became events with the stream named.
    let out: Vec<_> = named(&events, "hook.output")
        .iter()
        .map(|e| {
            (
                e["stream"].as_str().unwrap().to_owned(),
                e["line"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        out.contains(&("stdout".into(), "from-hook".into())),
        "{out:?}"
    );
    assert!(out.contains(&("stderr".into(), "oops".into())), "{out:?}");
    assert_eq!(named(&events, "hook.start").len(), 1);
    let status = s.status();
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["reason"], "crash_loop");
    assert_eq!(status["restarts"], 2);
    assert_eq!(status["hook"]["result"], "succeeded");
    assert_eq!(status["hook"]["exit_code"], 0);
}

#[test]
fn failing_hook_fails_startup_and_never_starts_the_child() {
    require_root();
    let s = Scratch::new("hook-fail");
    let hook = s.script("boot.sh", "echo failing; exit 3");
    let marker = s.join("child-ran");
    let sup = spawn(
        &s,
        &[
            "--hook",
            hook.to_str().unwrap(),
            "--",
            "touch",
            marker.to_str().unwrap(),
        ],
    );
    let (st, events) = sup.wait(LONG);
    assert_eq!(st.code(), Some(80));
    assert!(
        !marker.exists(),
        "the child must not run after a failed hook"
    );
    assert!(named(&events, "child.spawn").is_empty());
    let status = s.status();
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["reason"], "hook_failed");
    assert_eq!(status["hook"]["result"], "failed");
    assert_eq!(status["hook"]["exit_code"], 3);
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("exited with code 3"));
    assert_eq!(phases(&events), ["Booting", "Failed"]);
}

#[test]
fn hook_killed_by_a_signal_fails_startup() {
    require_root();
    let s = Scratch::new("hook-sig");
    let hook = s.script("boot.sh", "kill -KILL $$");
    let (st, _) = spawn(&s, &["--hook", hook.to_str().unwrap(), "--", "true"]).wait(LONG);
    assert_eq!(st.code(), Some(80));
    assert_eq!(s.status()["hook"]["signal"], 9);
}

#[test]
fn non_executable_hook_runs_through_sh() {
    require_root();
    let s = Scratch::new("hook-sh");
    let hook = s.join("boot.sh");
    fs::write(&hook, "echo via-sh > marker\n").unwrap();
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o644)).unwrap();
    let (st, _) = spawn(
        &s,
        &[
            "--hook",
            hook.to_str().unwrap(),
            "--restart",
            "never",
            "--",
            "true",
        ],
    )
    .wait(LONG);
    assert_eq!(st.code(), Some(0));
    assert_eq!(s.read("marker"), "via-sh\n");
}

#[test]
fn relative_paths_mean_the_start_directory() {
    require_root();
    let s = Scratch::new("relative");
    s.script("boot.sh", "echo hook > hook.txt");
    s.child_script("child.sh", "echo child > child.txt");
    let mut c = std::process::Command::new(SUPERVISOR);
    c.args([
        "--no-policy",
        "--status-dir",
        "st",
        "--hook",
        "boot.sh",
        "--restart",
        "never",
        "--",
        "./child.sh",
    ])
    .current_dir(&s.path);
    let (st, _) = spawn_cmd(&s, c).wait(LONG);
    assert_eq!(st.code(), Some(0));
    assert_eq!(s.read("hook.txt"), "hook\n");
    assert_eq!(s.read("child.txt"), "child\n");
    assert!(s.join("st/status.json").exists());
}

#[test]
fn missing_hook_is_skipped() {
    require_root();
    let s = Scratch::new("hook-missing");
    let missing = s.join("nope.sh");
    let (st, events) = spawn(
        &s,
        &[
            "--hook",
            missing.to_str().unwrap(),
            "--restart",
            "never",
            "--",
            "true",
        ],
    )
    .wait(LONG);
    assert_eq!(st.code(), Some(0));
    let skipped = named(&events, "hook.skipped");
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["path"], missing.to_str().unwrap());
    let status = s.status();
    assert_eq!(status["phase"], "Completed");
    assert_eq!(status["hook"]["result"], "skipped");
}

#[test]
fn untrusted_hooks_are_refused_as_root() {
    require_root();
    let s = Scratch::new("hook-untrusted");
    let marker = s.join("ran");
    let body = format!("touch {}", marker.display());

    // World-writable file.
    let writable = s.script("writable.sh", &body);
    fs::set_permissions(&writable, fs::Permissions::from_mode(0o757)).unwrap();
    let good = s.script("good.sh", &body);
    // A symlink to a trusted file, planted in a directory others can write to.
    let open_links = s.join("open-links");
    fs::create_dir(&open_links).unwrap();
    fs::set_permissions(&open_links, fs::Permissions::from_mode(0o777)).unwrap();
    let link = open_links.join("link.sh");
    std::os::unix::fs::symlink(&good, &link).unwrap();
    // Not owned by root.
    let foreign = s.script("foreign.sh", &body);
    nix::unistd::chown(&foreign, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    // Trusted file in a directory others can write to.
    let open_dir = s.join("open");
    fs::create_dir(&open_dir).unwrap();
    fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o777)).unwrap();
    let in_open = open_dir.join("boot.sh");
    fs::write(&in_open, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&in_open, fs::Permissions::from_mode(0o755)).unwrap();

    for (hook, expect) in [
        (&writable, "writable by group or others"),
        (&link, "symlink"),
        (&foreign, "not root"),
        (&in_open, "a user other than root can modify"),
    ] {
        let (st, events) = spawn(&s, &["--hook", hook.to_str().unwrap(), "--", "true"]).wait(LONG);
        assert_eq!(st.code(), Some(82), "{}", hook.display());
        let refused = named(&events, "hook.untrusted");
        assert_eq!(refused.len(), 1, "{}", hook.display());
        let err = refused[0]["error"].as_str().unwrap();
        assert!(err.contains(expect), "{}: {err}", hook.display());
        let status = s.status();
        assert_eq!(status["reason"], "hook_untrusted");
        assert_eq!(status["hook"]["result"], "untrusted");
    }
    assert!(!marker.exists(), "no untrusted hook may run");
    // The same file runs when it is trusted, also through a symlink only root could have
    // planted (a root-owned link in a root-owned directory).
    let root_link = s.join("root-link.sh");
    std::os::unix::fs::symlink(&good, &root_link).unwrap();
    for hook in [&good, &root_link] {
        let _ = fs::remove_file(&marker);
        let (st, _) = spawn(
            &s,
            &[
                "--hook",
                hook.to_str().unwrap(),
                "--restart",
                "never",
                "--",
                "true",
            ],
        )
        .wait(LONG);
        assert_eq!(st.code(), Some(0), "{}", hook.display());
        assert!(marker.exists(), "{}", hook.display());
    }
}

#[test]
fn hook_timeout_kills_the_hooks_process_group() {
    require_root();
    let s = Scratch::new("hook-timeout");
    let bg = s.join("bg.pid");
    let hook = s.script(
        "boot.sh",
        &format!("sleep 1000 & echo $! > {}; sleep 1000", bg.display()),
    );
    let started = Instant::now();
    let (st, events) = spawn(
        &s,
        &[
            "--hook",
            hook.to_str().unwrap(),
            "--hook-timeout",
            "300ms",
            "--",
            "true",
        ],
    )
    .wait(LONG);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(st.code(), Some(81));
    assert_eq!(named(&events, "hook.timeout").len(), 1);
    let pid: i32 = s.read("bg.pid").trim().parse().unwrap();
    wait_for("the hook's background process to die", LONG, || !alive(pid));
    let status = s.status();
    assert_eq!(status["reason"], "hook_timeout");
    assert_eq!(status["hook"]["result"], "timed_out");
    assert!(named(&events, "child.spawn").is_empty());
}

#[test]
fn processes_left_by_the_hook_are_terminated_before_the_child() {
    require_root();
    let s = Scratch::new("hook-leftover");
    let hook = s.script("boot.sh", "sleep 1000 > /dev/null 2>&1 & echo $! > bg.pid");
    let (st, events) = spawn(
        &s,
        &[
            "--hook",
            hook.to_str().unwrap(),
            "--restart",
            "never",
            "--",
            "true",
        ],
    )
    .wait(LONG);
    assert_eq!(st.code(), Some(0));
    let pid: i32 = s.read("bg.pid").trim().parse().unwrap();
    assert!(!alive(pid), "an unsandboxed leftover of the hook survived");
    let cleanup = named(&events, "group.cleanup");
    assert_eq!(cleanup.len(), 1);
    assert_eq!(cleanup[0]["of"], "hook");
}

#[test]
fn crashes_restart_with_exponential_backoff() {
    require_root();
    let s = Scratch::new("backoff");
    let (st, events) = spawn(
        &s,
        &[
            "--no-hook",
            "--backoff-initial",
            "20ms",
            "--backoff-max",
            "80ms",
            "--max-restarts",
            "5",
            "--",
            "sh",
            "-c",
            "exit 7",
        ],
    )
    .wait(LONG);
    assert_eq!(st.code(), Some(84));
    let delays: Vec<u64> = named(&events, "child.restart_scheduled")
        .iter()
        .map(|e| e["delay_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(delays, [20, 40, 80, 80, 80]);
    let spawns = named(&events, "child.spawn");
    let generations: Vec<u64> = spawns
        .iter()
        .map(|e| e["generation"].as_u64().unwrap())
        .collect();
    assert_eq!(generations, [1, 2, 3, 4, 5, 6]);
    let status = s.status();
    assert_eq!(status["restarts"], 5);
    assert_eq!(status["last_exit"]["code"], 7);
    assert_eq!(status["reason"], "crash_loop");
    let msg = status["message"].as_str().unwrap();
    assert!(
        msg.starts_with("child exited with code 7 after 5 restarts"),
        "{msg}"
    );
    let crash = named(&events, "crash_loop");
    assert_eq!(crash[0]["msg"], msg);
    let p = phases(&events);
    assert_eq!(p.iter().filter(|p| *p == "BackOff").count(), 5);
    assert_eq!(p.last().unwrap(), "Failed");
}

#[test]
fn long_running_child_becomes_ready_and_stops_on_sigterm() {
    require_root();
    let s = Scratch::new("sigterm");
    let child = s.child_script(
        "child.sh",
        "trap 'echo got-term > term.txt; exit 0' TERM; echo started; while :; do sleep 0.05; done",
    );
    let sup = spawn(
        &s,
        &[
            "--no-hook",
            "--ready-after",
            "100ms",
            "--",
            child.to_str().unwrap(),
        ],
    );
    wait_phase(&s, "Ready", LONG);
    // status --ready is the health check: 0 while Ready.
    let ready = std::process::Command::new(SUPERVISOR)
        .args(["status", "--ready", "--status-dir"])
        .arg(s.status_dir())
        .output()
        .unwrap();
    assert_eq!(ready.status.code(), Some(0), "{ready:?}");
    assert_eq!(String::from_utf8_lossy(&ready.stdout).trim(), "Ready");
    sup.signal(Signal::SIGTERM);
    let out = sup.stdout();
    let (st, events) = sup.wait(LONG);
    assert_eq!(st.code(), Some(0));
    assert_eq!(s.read("term.txt"), "got-term\n");
    assert_eq!(out, "started\n", "child output passes through untouched");
    assert_eq!(
        phases(&events),
        ["Booting", "Starting", "Ready", "Stopping", "Stopped"]
    );
    assert!(named(&events, "stop.kill").is_empty());
    let status = s.status();
    assert_eq!(status["phase"], "Stopped");
    assert_eq!(status["reason"], serde_json::Value::Null);
    // A stopped supervisor is not ready.
    let not_ready = std::process::Command::new(SUPERVISOR)
        .args(["status", "--ready", "--status-dir"])
        .arg(s.status_dir())
        .output()
        .unwrap();
    assert_eq!(not_ready.status.code(), Some(1));
}

#[test]
fn sigint_stops_too_and_is_forwarded_as_sigint() {
    require_root();
    let s = Scratch::new("sigint");
    let child = s.child_script("child.sh", "trap 'echo int > sig.txt; exit 0' INT; trap 'echo term > sig.txt; exit 0' TERM; while :; do sleep 0.05; done");
    let sup = spawn_ready(&s, &[], &child);
    sup.signal(Signal::SIGINT);
    let (st, _) = sup.wait(LONG);
    assert_eq!(st.code(), Some(0));
    assert_eq!(s.read("sig.txt"), "int\n");
}

#[test]
fn child_ignoring_sigterm_is_killed_after_the_grace() {
    require_root();
    let s = Scratch::new("grace");
    let child = s.child_script("child.sh", "trap '' TERM; while :; do sleep 0.05; done");
    let sup = spawn_ready(&s, &["--grace", "300ms"], &child);
    let sent = Instant::now();
    sup.signal(Signal::SIGTERM);
    let (st, events) = sup.wait(LONG);
    assert!(
        sent.elapsed() >= Duration::from_millis(300),
        "SIGKILL came before the grace"
    );
    assert_eq!(st.code(), Some(0));
    assert_eq!(named(&events, "stop.kill").len(), 1);
    let status = s.status();
    assert_eq!(status["phase"], "Stopped");
    assert_eq!(status["last_exit"]["signal"], 9);
}

#[test]
fn other_signals_are_forwarded_to_the_child_group() {
    require_root();
    let s = Scratch::new("forward");
    let child = s.child_script(
        "child.sh",
        "trap 'echo usr1 >> sig.txt' USR1; trap 'echo hup >> sig.txt' HUP; while :; do sleep 0.05; done",
    );
    let sup = spawn_ready(&s, &[], &child);
    sup.signal(Signal::SIGUSR1);
    wait_for("USR1 to reach the child", LONG, || {
        s.read("sig.txt").contains("usr1")
    });
    sup.signal(Signal::SIGHUP);
    wait_for("HUP to reach the child", LONG, || {
        s.read("sig.txt").contains("hup")
    });
    sup.signal(Signal::SIGTERM);
    let (st, events) = sup.wait(LONG);
    assert_eq!(st.code(), Some(0));
    let fwd: Vec<_> = named(&events, "signal.forward")
        .iter()
        .map(|e| e["signal"].clone())
        .collect();
    assert_eq!(fwd, ["SIGUSR1", "SIGHUP"]);
}

#[test]
fn sigterm_during_the_hook_stops_it_and_never_starts_the_child() {
    require_root();
    let s = Scratch::new("stop-hook");
    let hook = s.script("boot.sh", "echo running > hook.txt; trap 'echo term >> hook.txt; exit 5' TERM; while :; do sleep 0.05; done");
    let marker = s.join("child-ran");
    let sup = spawn(
        &s,
        &[
            "--hook",
            hook.to_str().unwrap(),
            "--",
            "touch",
            marker.to_str().unwrap(),
        ],
    );
    wait_for("the hook to start", LONG, || {
        s.read("hook.txt").contains("running")
    });
    sup.signal(Signal::SIGTERM);
    let (st, events) = sup.wait(LONG);
    assert_eq!(st.code(), Some(0));
    assert_eq!(s.read("hook.txt"), "running\nterm\n");
    assert!(!marker.exists());
    assert_eq!(phases(&events), ["Booting", "Stopping", "Stopped"]);
    let status = s.status();
    assert_eq!(status["phase"], "Stopped");
    assert_eq!(status["hook"]["result"], "stopped");
}

#[test]
fn exit_codes_pass_through_under_restart_never() {
    require_root();
    for (script, want) in [
        ("exit 0", 0),
        ("exit 1", 1),
        ("exit 2", 2),
        ("exit 127", 127),
        ("exit 255", 255),
        ("kill -TERM $$", 128 + 15),
        ("kill -KILL $$", 128 + 9),
        ("kill -SEGV $$", 128 + 11),
    ] {
        let s = Scratch::new("passthrough");
        let (st, _) = spawn(
            &s,
            &["--no-hook", "--restart", "never", "--", "sh", "-c", script],
        )
        .wait(LONG);
        assert_eq!(st.code(), Some(want), "{script}");
        let status = s.status();
        let phase = if want == 0 { "Completed" } else { "Failed" };
        assert_eq!(status["phase"], phase, "{script}");
        if want != 0 {
            assert_eq!(status["reason"], "child_failed");
        }
    }
}

#[test]
fn commands_that_cannot_run_are_clear_errors() {
    require_root();
    let s = Scratch::new("spawn-fail");
    let (st, events) = spawn(&s, &["--no-hook", "--", "/definitely/not/here"]).wait(LONG);
    assert_eq!(st.code(), Some(127));
    let failed = named(&events, "child.spawn_failed");
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["error"]
        .as_str()
        .unwrap()
        .contains("No such file"));
    assert_eq!(s.status()["reason"], "spawn_failed");

    let not_exec = s.join("data.txt");
    fs::write(&not_exec, "not a program").unwrap();
    fs::set_permissions(&not_exec, fs::Permissions::from_mode(0o644)).unwrap();
    let (st, _) = spawn(&s, &["--no-hook", "--", not_exec.to_str().unwrap()]).wait(LONG);
    assert_eq!(st.code(), Some(126));
}

#[test]
fn on_failure_completes_on_exit_zero() {
    require_root();
    let s = Scratch::new("on-failure");
    let (st, events) =
        spawn(&s, &["--no-hook", "--restart", "on-failure", "--", "true"]).wait(LONG);
    assert_eq!(st.code(), Some(0));
    assert_eq!(s.status()["phase"], "Completed");
    assert!(named(&events, "child.restart_scheduled").is_empty());
}

#[test]
fn leftovers_of_a_generation_are_killed_before_the_next_one() {
    require_root();
    let s = Scratch::new("leftovers");
    // Each generation leaves a background sleep in its group and records its pid; the next
    // generation records whether the previous one's sleep is still alive.
    let child = s.child_script(
        "child.sh",
        "if [ -f bg.pid ]; then if kill -0 $(cat bg.pid) 2>/dev/null; then echo alive >> seen; else echo gone >> seen; fi; fi\n\
         sleep 1000 > /dev/null 2>&1 & echo $! > bg.pid; exit 1",
    );
    let (st, events) = spawn(
        &s,
        &[
            "--no-hook",
            "--backoff-initial",
            "10ms",
            "--max-restarts",
            "2",
            "--grace",
            "2s",
            "--",
            child.to_str().unwrap(),
        ],
    )
    .wait(LONG);
    assert_eq!(st.code(), Some(84));
    assert_eq!(s.read("seen"), "gone\ngone\n");
    assert_eq!(named(&events, "group.cleanup").len(), 3);
    let last: i32 = s.read("bg.pid").trim().parse().unwrap();
    assert!(!alive(last));
}

#[test]
fn orphans_and_zombies_are_reaped_as_subreaper() {
    require_root();
    let s = Scratch::new("reap");
    // The child double-forks 50 short-lived orphans, which are re-parented to us.
    let child = s.child_script(
        "child.sh",
        "i=0; while [ $i -lt 50 ]; do (sleep 0.1 &) ; i=$((i+1)); done; echo spawned > spawned; while :; do sleep 0.05; done",
    );
    let sup = spawn(
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
    wait_for("orphans to be spawned", LONG, || {
        s.read("spawned") == "spawned\n"
    });
    let pid = sup.pid();
    wait_for("50 orphans to be reaped", LONG, || {
        named(&sup.events(), "reap.orphan").len() >= 50
    });
    wait_for("no zombie under the supervisor", LONG, || {
        zombies_of(pid).is_empty()
    });
    assert_eq!(named(&sup.events(), "reap.orphan").len(), 50);
    sup.signal(Signal::SIGTERM);
    let (st, _) = sup.wait(LONG);
    assert_eq!(st.code(), Some(0));
}

#[test]
fn daemons_that_left_the_group_are_killed_on_stop() {
    require_root();
    let s = Scratch::new("escapee");
    // setsid puts the daemon in a session of its own: only the descendant sweep finds it.
    let child = s.child_script(
        "child.sh",
        "setsid sh -c 'trap \"\" TERM; echo $$ > daemon.pid; while :; do sleep 0.05; done' & while :; do sleep 0.05; done",
    );
    let sup = spawn(
        &s,
        &[
            "--no-hook",
            "--grace",
            "200ms",
            "--ready-after",
            "0",
            "--",
            child.to_str().unwrap(),
        ],
    );
    wait_for("the daemon to start", LONG, || {
        !s.read("daemon.pid").is_empty()
    });
    let daemon: i32 = s.read("daemon.pid").trim().parse().unwrap();
    assert!(alive(daemon));
    sup.signal(Signal::SIGTERM);
    let (st, events) = sup.wait(LONG);
    assert_eq!(st.code(), Some(0));
    assert!(
        !alive(daemon),
        "a descendant outside the group survived the stop"
    );
    assert!(!named(&events, "stop.kill_descendants").is_empty());
}

#[test]
fn child_starts_in_the_start_directory_and_the_supervisor_moves_to_root() {
    require_root();
    let s = Scratch::new("cwd");
    let child = s.child_script("child.sh", "pwd > cwd.txt; while :; do sleep 0.05; done");
    let sup = spawn(
        &s,
        &[
            "--no-hook",
            "--ready-after",
            "0",
            "--",
            child.to_str().unwrap(),
        ],
    );
    wait_for("the child to write its cwd", LONG, || {
        !s.read("cwd.txt").is_empty()
    });
    assert_eq!(s.read("cwd.txt").trim(), s.path.to_str().unwrap());
    let sup_cwd = fs::read_link(format!("/proc/{}/cwd", sup.pid())).unwrap();
    assert_eq!(sup_cwd, std::path::Path::new("/"));
    sup.signal(Signal::SIGTERM);
    assert_eq!(sup.wait(LONG).0.code(), Some(0));
}

#[test]
fn status_command_reports_phases_and_missing_status() {
    require_root();
    let s = Scratch::new("status-cmd");
    let status = |args: &[&str]| {
        std::process::Command::new(SUPERVISOR)
            .arg("status")
            .args(args)
            .arg("--status-dir")
            .arg(s.status_dir())
            .output()
            .unwrap()
    };
    let missing = status(&["--ready"]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("status.json"));

    let sup = spawn(
        &s,
        &["--no-hook", "--ready-after", "30s", "--", "sleep", "1000"],
    );
    wait_phase(&s, "Starting", LONG);
    let starting = status(&["--ready"]);
    assert_eq!(starting.status.code(), Some(1), "Starting is not ready");
    assert_eq!(String::from_utf8_lossy(&starting.stdout).trim(), "Starting");
    let json = status(&["--json"]);
    assert_eq!(json.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["phase"], "Starting");
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["supervisor"]["pid"], sup.pid());
    assert!(v["child"]["pid"].as_u64().unwrap() > 0);
    sup.signal(Signal::SIGTERM);
    assert_eq!(sup.wait(LONG).0.code(), Some(0));
}

#[test]
fn stale_status_of_a_killed_supervisor_is_not_ready() {
    require_root();
    let s = Scratch::new("stale");
    let mut sup = spawn(
        &s,
        &["--no-hook", "--ready-after", "0", "--", "sleep", "1000"],
    );
    wait_phase(&s, "Ready", LONG);
    sup.child.kill().unwrap(); // a power cut: no chance to write anything
    sup.child.wait().unwrap();
    assert_eq!(s.status()["phase"], "Ready");
    let out = std::process::Command::new(SUPERVISOR)
        .args(["status", "--ready", "--status-dir"])
        .arg(s.status_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("stale"));
    // The orphaned child (re-parented away from the dead supervisor) is cleaned up here.
    let child = s.status()["child"]["pid"].as_i64().unwrap() as i32;
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child), Signal::SIGKILL);
}

#[test]
fn usage_errors_exit_64_and_help_is_complete() {
    let out = std::process::Command::new(SUPERVISOR).output().unwrap();
    assert_eq!(out.status.code(), Some(64), "no command");
    let out = std::process::Command::new(SUPERVISOR)
        .args(["--restart", "sometimes", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let help = std::process::Command::new(SUPERVISOR)
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--hook",
        "--no-hook",
        "--hook-timeout",
        "--policy",
        "--no-policy",
        "--restart",
        "--backoff-initial",
        "--backoff-max",
        "--backoff-reset-after",
        "--max-restarts",
        "--restart-window",
        "--grace",
        "--ready-after",
        "--status-dir",
        "--log-format",
        "--log-level",
        "--child-env",
        "--hook-env-file",
        "Exit codes",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn unwritable_status_dir_fails_startup() {
    require_root();
    let s = Scratch::new("status-dir");
    let file = s.join("not-a-dir");
    fs::write(&file, "").unwrap();
    let out = std::process::Command::new(SUPERVISOR)
        .args(["--no-policy", "--no-hook", "--status-dir"])
        .arg(&file)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(71));
    assert!(String::from_utf8_lossy(&out.stderr).contains("supervisor.setup_failed"));
    let _ = out.status.signal();
}

#[test]
fn unconfined_child_and_hook_die_with_a_killed_supervisor() {
    require_root();
    // The child under --no-policy.
    let s = Scratch::new("pdeath-child");
    let child = s.child_script("child.sh", "echo $$ > child.pid; exec sleep 1000");
    let mut sup = spawn_ready(&s, &[], &child);
    wait_for("the child to record its pid", LONG, || {
        !s.read("child.pid").is_empty()
    });
    let pid: i32 = s.read("child.pid").trim().parse().unwrap();
    assert!(alive(pid));
    sup.child.kill().unwrap(); // SIGKILL: no chance to clean up
    sup.child.wait().unwrap();
    let gone = (0..500).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        !alive(pid)
    });
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    assert!(gone, "the unconfined child outlived its killed supervisor");

    // The hook, which runs unconfined too.
    let s = Scratch::new("pdeath-hook");
    let hook = s.script("boot.sh", "echo $$ > hook.pid; exec sleep 1000");
    let mut sup = spawn(&s, &["--hook", hook.to_str().unwrap(), "--", "true"]);
    wait_for("the hook to record its pid", LONG, || {
        !s.read("hook.pid").is_empty()
    });
    let pid: i32 = s.read("hook.pid").trim().parse().unwrap();
    sup.child.kill().unwrap();
    sup.child.wait().unwrap();
    let gone = (0..500).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        !alive(pid)
    });
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    assert!(gone, "the hook outlived its killed supervisor");
}

#[test]
fn fault_and_realtime_signals_from_outside_are_forwarded_and_the_supervisor_survives() {
    require_root();
    let s = Scratch::new("fault-signals");
    let catch = format!("catch:{}", s.join("caught").display());
    let sup = spawn(
        &s,
        &["--no-hook", "--ready-after", "0", "--", PROBE, &catch],
    );
    wait_phase(&s, "Ready", LONG);
    wait_for("the probe's handlers", LONG, || {
        sup.stdout().contains("ready")
    });
    deliver_and_wait(&s, sup.pid(), &outside_signals());
    assert!(
        alive(sup.pid()),
        "a signal from outside killed the supervisor"
    );
    assert_eq!(s.status()["phase"], "Ready");
    sup.signal(Signal::SIGTERM);
    let (st, events) = sup.wait(LONG);
    assert_eq!(st.code(), Some(0));
    let forwarded: Vec<_> = named(&events, "signal.forward")
        .iter()
        .map(|e| e["signal"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        forwarded,
        [
            "SIGSEGV",
            "SIGBUS",
            "SIGILL",
            "SIGFPE",
            "SIGTRAP",
            "SIGABRT",
            "SIGSYS",
            "SIGRTMIN+3"
        ]
    );
    assert!(
        s.read("caught").ends_with("\n15\n"),
        "the stop reached the child too"
    );
}

#[test]
fn unprivileged_supervisor_runs_its_own_hook_by_descriptor() {
    require_root();
    let s = Scratch::new("unpriv-hook");
    let nb = s.join("nb");
    fs::create_dir(&nb).unwrap();
    let nobody = Some(nix::unistd::Uid::from_raw(65534));
    nix::unistd::chown(&nb, nobody, Some(nix::unistd::Gid::from_raw(65534))).unwrap();
    let hook = nb.join("boot.sh");
    fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$0 $OPENSHELL_HOOK\" > {}/ran\n",
            nb.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).unwrap();
    nix::unistd::chown(&hook, nobody, None).unwrap();
    // Lenient without root: the user's own files, even through its own symlink.
    let link = nb.join("link.sh");
    std::os::unix::fs::symlink(&hook, &link).unwrap();
    let mut c = std::process::Command::new("setpriv");
    c.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        SUPERVISOR,
    ])
    .args(["--no-policy", "--status-dir"])
    .arg(nb.join("status"))
    .arg("--hook")
    .arg(&link)
    .args(["--restart", "never", "--", "true"])
    .current_dir(&nb);
    let (st, events) = spawn_cmd(&s, c).wait(LONG);
    assert_eq!(st.code(), Some(0), "{events:?}");
    let ran = fs::read_to_string(nb.join("ran")).unwrap();
    assert!(ran.starts_with("/proc/self/fd/"), "{ran}");
    assert!(ran.trim_end().ends_with(link.to_str().unwrap()), "{ran}");
}
