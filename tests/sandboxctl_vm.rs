//! sandboxctl --backend vm against real QEMU, the VM image and the real supervisor as the
//! guest's init: the conformance suite (tests/conformance/) plus what only a VM has.

mod conformance;

use conformance::vm::{tool, Vm, VM};
use conformance::{Ctx, Harness, WAIT};
use openshell_supervisor::contract::CtlExit;
use std::time::Duration;

conformance::suite!(vm, &conformance::vm::VM);
conformance::host_state_suite!(vm_host, &conformance::vm::VM);

/// The agent inside the VM, as the guest kernel reports it from /proc/self/status, and
/// what Landlock lets it do: read outside the policy, write a read-only tree.
const PROBE: &str = "{ grep -E '^(Uid|Gid|CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status; \
echo \"hostname $(hostname)\"; \
if cat /run/openshell/status.json >/dev/null 2>&1; then echo 'landlock read /run: allowed'; else echo 'landlock read /run: denied'; fi; \
if echo x > /etc/probe 2>/dev/null; then echo 'landlock write /etc: allowed'; else echo 'landlock write /etc: denied'; fi; \
if echo x > /sandbox/probe 2>/dev/null; then echo 'write /sandbox: allowed'; else echo 'write /sandbox: denied'; fi; \
} > /sandbox/.probe; sync; exec /bin/httpd -f -p 8080 -h /sandbox";

#[test]
fn vm_agent_is_confined_and_the_workspace_seeded() {
    let ctx = Ctx::new(&VM, "conf");
    let a = ctx.name("a");
    ctx.create(&a, &["--", "sh", "-c", PROBE]).ok();
    let snap = Vm::snapshot(&ctx, &a).expect("the workspace disk exists");
    let probe = Vm::read_disk(&snap, ".probe").expect("the agent wrote its report");
    for want in [
        "Uid:\t1000\t1000\t1000\t1000",
        "Gid:\t1000\t1000\t1000\t1000",
        "CapEff:\t0000000000000000",
        "CapPrm:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
        &format!("hostname {a}"),
        "landlock read /run: denied",
        "landlock write /etc: denied",
        "write /sandbox: allowed",
    ] {
        assert!(probe.contains(want), "{want:?} missing from:\n{probe}");
    }
    // Seeded from /opt/openshell/seed on the first boot, owned by the sandbox user.
    let profile = Vm::read_disk(&snap, ".profile").expect("seeded .profile");
    assert!(profile.contains("PS1"), "{profile}");
    assert!(Vm::read_disk(&snap, "index.html").is_some());
    let marker = Vm::read_disk(&snap, ".openshell-seeded").expect("seed marker");
    assert!(marker.contains("\"files\":2"), "{marker}");
    let ls = tool("debugfs", &["-R", "stat /.profile", snap.to_str().unwrap()]);
    assert!(ls.stdout.contains("User:  1000"), "{}", ls.stdout);
    let _ = std::fs::remove_file(&snap);
    // The guest's init said what it did, on the serial console kept in the state dir.
    let console =
        std::fs::read_to_string(Vm::vm_dir(&ctx, &a).join("console.log")).unwrap_or_default();
    for event in ["\"init.ready\"", "\"seed.done\"", "\"init.mount\""] {
        assert!(
            console.contains(event),
            "{event} not on the console:\n{console}"
        );
    }
}

#[test]
fn vm_outlives_sandboxctl_in_a_session_of_its_own() {
    let ctx = Ctx::new(&VM, "detach");
    let a = ctx.name("a");
    ctx.create(&a, &["--no-wait"]).ok();
    let run = Vm::run_record(&ctx, &a).expect("run.json");
    let keeper = run["keeper_pid"].as_i64().unwrap() as i32;
    let qemu = run["qemu_pid"].as_i64().unwrap() as i32;
    // sandboxctl has exited; the keeper leads its own session (no terminal, no SIGHUP from
    // ours) and QEMU is its child.
    let sid = nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(keeper))).unwrap();
    assert_eq!(sid.as_raw(), keeper, "the keeper is a session leader");
    assert_ne!(sid, nix::unistd::getsid(None).unwrap());
    let stat = std::fs::read_to_string(format!("/proc/{qemu}/stat")).unwrap();
    let ppid: i32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ppid, keeper, "QEMU is the keeper's child");
    let cmdline = std::fs::read(format!("/proc/{qemu}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    for want in [
        "-nic none",
        "panic=exit-failure",
        "pvpanic-pci",
        "-no-reboot",
    ] {
        assert!(cmdline.contains(want), "{want:?} not in {cmdline}");
    }
    ctx.ctl(&["start", &a, "--timeout", WAIT]).ok();
    let accel = ctx.status(&a);
    assert_eq!(accel["phase"], "Ready", "{accel:#}");
}

/// Ten stop/start cycles, two of them power cuts: the workspace's ext4 is clean
/// (`e2fsck -fn`) and every start's line survived.
#[test]
fn vm_disk_is_clean_after_ten_cycles_with_two_hard_kills() {
    let ctx = Ctx::new(&VM, "fsck");
    let a = ctx.name("a");
    ctx.create_agent(&a, &[]).ok();
    for cycle in 1..=10 {
        if cycle == 3 || cycle == 7 {
            VM.power_cut(&ctx, &a);
            let s = ctx.status(&a);
            assert_eq!(s["phase"], "Error", "cycle {cycle}: {s:#}");
        } else {
            ctx.ctl(&["stop", &a]).ok();
            assert_eq!(ctx.phase(&a), "Stopped", "cycle {cycle}");
        }
        ctx.ctl(&["start", &a, "--timeout", WAIT]).ok();
    }
    ctx.ctl(&["stop", &a]).ok();
    let disk = Vm::vm_dir(&ctx, &a).join("workspace.raw");
    let fsck = tool("e2fsck", &["-fn", disk.to_str().unwrap()]);
    assert_eq!(fsck.code, 0, "e2fsck -fn: {}\n{}", fsck.stdout, fsck.stderr);
    let runs = ctx.workspace_lines(&a, "agent.log");
    assert_eq!(runs.len(), 11, "one line per start: {runs:?}");
    assert_eq!(ctx.workspace_lines(&a, ".boot.log").len(), 11);
}

#[test]
fn vm_failing_boot_hook_reads_failed_on_the_host() {
    let ctx = Ctx::new(&VM, "hook");
    let a = ctx.name("a");
    // The image's own hook chowns the workspace to $OPENSHELL_AGENT_USER: a user that does
    // not exist makes it fail, inside the VM.
    let r = ctx
        .create(&a, &["-e", "OPENSHELL_AGENT_USER=nosuchuser"])
        .fails_with(CtlExit::SandboxFailed);
    assert!(
        r.stderr.contains("hook_failed"),
        "{}\nconsole:\n{}",
        r.stderr,
        Vm::console(&ctx, &a)
    );
    let s = ctx.status(&a);
    assert_eq!(s["phase"], "Failed", "{s:#}");
    assert_eq!(s["reason"], "hook_failed");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("/etc/openshell/boot.sh"),
        "{s:#}"
    );
    assert_eq!(
        s["exit_code"], 80,
        "the supervisor's own exit code, from poweroff.json"
    );
    assert!(!Vm::keeper_running(&ctx, &a), "the VM powered off");
}

#[test]
fn vm_init_failure_reads_failed_on_the_host() {
    let ctx = Ctx::new(&VM, "init");
    let a = ctx.name("a");
    ctx.create(&a, &["--no-start"]).ok();
    // Settings the init refuses (an unknown field): the VM's set-up fails in the guest.
    let cfg = Vm::vm_dir(&ctx, &a).join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["comand"] = serde_json::json!(["typo"]);
    std::fs::write(&cfg, v.to_string()).unwrap();
    let r = ctx
        .ctl(&["start", &a, "--timeout", WAIT])
        .fails_with(CtlExit::SandboxFailed);
    assert!(
        r.stderr.contains("init_failed"),
        "{}\nconsole:\n{}",
        r.stderr,
        Vm::console(&ctx, &a)
    );
    let s = ctx.status(&a);
    assert_eq!(s["phase"], "Failed", "{s:#}");
    assert_eq!(s["reason"], "init_failed");
    let msg = s["message"].as_str().unwrap();
    assert!(msg.contains("config") && msg.contains("comand"), "{msg}");
    assert_eq!(s["exit_code"], 86);
}

#[test]
fn vm_stop_right_after_start_is_still_graceful() {
    let ctx = Ctx::new(&VM, "early");
    let a = ctx.name("a");
    ctx.create_agent(&a, &[]).ok();
    ctx.ctl(&["stop", &a]).ok();
    // A start without waiting, then a stop while the guest kernel boots: Ctrl-Alt-Del is
    // pressed until the supervisor takes it.
    ctx.ctl(&["start", &a, "--no-wait"]).ok();
    std::thread::sleep(Duration::from_millis(300));
    let r = ctx.ctl(&["stop", &a]).ok();
    assert!(r.stdout.contains(&format!("{a}: Stopped")), "{}", r.stdout);
    assert!(
        !r.stderr.contains("vm.stop_forced"),
        "the stop had to quit QEMU hard: {}",
        r.stderr
    );
    assert!(!Vm::keeper_running(&ctx, &a));
    let fsck = tool(
        "e2fsck",
        &[
            "-fn",
            Vm::vm_dir(&ctx, &a).join("workspace.raw").to_str().unwrap(),
        ],
    );
    assert_eq!(fsck.code, 0, "{}", fsck.stdout);
}
