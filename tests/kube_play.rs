//! The pod sandboxctl renders for Kubernetes, run for real with `podman kube play`: no
//! cluster can run here, and podman plays Pods and PVCs but not StatefulSets, so the test
//! turns the StatefulSet into what its controller would make (pod `openshell-NAME-0` from the
//! template, PVC `workspace-openshell-NAME-0` from the volumeClaimTemplates entry) and plays
//! those. Checked for real: the supervisor is PID 1 with exactly the pod's capabilities and a
//! read-only root, the readiness command answers (podman ignores readinessProbe, so the test
//! execs it), the fresh PVC is seeded from the image, the agent is confined, the supervisor
//! writes its final phase to the terminationMessagePath on a stop, and the workspace (with
//! the hook's boot log) survives `kube down` + `kube play`. Stop/start times are printed.

mod conformance;

use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SANDBOXCTL: &str = env!("CARGO_BIN_EXE_sandboxctl");

fn run(prog: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn ok(prog: &str, args: &[&str]) -> String {
    let (code, out, err) = run(prog, args);
    assert_eq!(code, 0, "{prog} {args:?} failed:\n{out}\n{err}");
    out
}

/// Pod and PVC from the StatefulSet, as the StatefulSet controller makes them.
fn pod_and_pvc(sts: &Value) -> (Value, Value) {
    let name = sts["metadata"]["name"].as_str().unwrap();
    let pod_name = format!("{name}-0");
    let claim_tpl = &sts["spec"]["volumeClaimTemplates"][0];
    let claim = format!(
        "{}-{pod_name}",
        claim_tpl["metadata"]["name"].as_str().unwrap()
    );
    let tpl = &sts["spec"]["template"];
    let mut spec = tpl["spec"].clone();
    spec["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": claim_tpl["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim}}));
    spec["hostname"] = json!(pod_name);
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod_name, "labels": tpl["metadata"]["labels"]}, "spec": spec});
    let mut pvc = claim_tpl.clone();
    pvc["metadata"]["name"] = json!(claim);
    (pod, pvc)
}

struct Cleanup {
    pod_file: String,
    volume: String,
    dir: std::path::PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = run("podman", &["kube", "down", &self.pod_file]);
        let _ = run("podman", &["volume", "rm", "-f", &self.volume]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Execs the readiness probe until it passes; returns how long that took.
fn until_ready(container: &str, probe: &[String], t0: Instant) -> Duration {
    let deadline = t0 + Duration::from_secs(90);
    let mut args = vec!["exec", container];
    args.extend(probe.iter().map(String::as_str));
    loop {
        if run("podman", &args).0 == 0 {
            return t0.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "readiness never passed: {:?}\nlogs: {}",
            run("podman", &args),
            run("podman", &["logs", container]).2
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_rendered_pod_runs_for_real_under_podman_kube_play() {
    let image = conformance::engine::PODMAN.image();
    let name = format!("play{}", std::process::id());
    let out = ok(
        SANDBOXCTL,
        &[
            "--backend",
            "kube",
            "create",
            "--dry-run",
            "-o",
            "json",
            &name,
            "--image",
            image,
        ],
    );
    let list: Value = serde_json::from_str(&out).unwrap();
    let sts = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "StatefulSet")
        .unwrap();
    let (pod, pvc) = pod_and_pvc(sts);
    let container = &pod["spec"]["containers"][0];
    let probe: Vec<String> =
        serde_json::from_value(container["readinessProbe"]["exec"]["command"].clone()).unwrap();
    let pod_name = pod["metadata"]["name"].as_str().unwrap().to_owned();
    let ctr = format!("{pod_name}-{}", container["name"].as_str().unwrap());

    let dir = std::env::temp_dir().join(format!("kube-play-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let pod_file = dir.join("pod.json").display().to_string();
    let pvc_file = dir.join("pvc.json").display().to_string();
    std::fs::write(&pod_file, pod.to_string()).unwrap();
    std::fs::write(&pvc_file, pvc.to_string()).unwrap();
    let volume = pvc["metadata"]["name"].as_str().unwrap().to_owned();
    let _cleanup = Cleanup {
        pod_file: pod_file.clone(),
        volume: volume.clone(),
        dir: dir.clone(),
    };

    // The PVC once (playing it again fails with "volume already exists"), then the pod.
    ok("podman", &["kube", "play", &pvc_file]);
    let t0 = Instant::now();
    ok("podman", &["kube", "play", &pod_file]);
    let first_ready = until_ready(&ctr, &probe, t0);

    let sh = |script: &str| ok("podman", &["exec", &ctr, "/bin/sh", "-c", script]);
    // The supervisor is PID 1 with the pod's command line.
    let cmdline = sh("tr '\\0' ' ' < /proc/1/cmdline");
    assert!(
        cmdline.starts_with("/usr/bin/supervisor --hook"),
        "{cmdline}"
    );
    assert!(
        cmdline.contains("--termination-message /dev/termination-log"),
        "{cmdline}"
    );
    // With exactly the capabilities the pod asks for: CHOWN DAC_OVERRIDE FOWNER KILL
    // SETGID SETPCAP SETUID = bits 0 1 3 5 6 8 7 = 0x1eb; no privilege escalation.
    let status1 = sh("cat /proc/1/status");
    assert!(
        status1.lines().any(|l| l == "CapEff:\t00000000000001eb"),
        "{status1}"
    );
    assert!(status1.lines().any(|l| l == "NoNewPrivs:\t1"), "{status1}");
    // A read-only root.
    let (code, _, err) = run(
        "podman",
        &["exec", &ctr, "/bin/sh", "-c", "echo x > /etc/x"],
    );
    assert_ne!(code, 0, "the root filesystem is writable");
    assert!(err.contains("Read-only"), "{err}");
    // The fresh PVC was seeded from the image (vm branch's supervisor seeding).
    let ls = sh("ls -a /sandbox");
    assert!(
        ls.contains(".openshell-seeded") && ls.contains("index.html"),
        "{ls}"
    );
    // The agent is confined: not root, no capabilities, no_new_privs, seccomp filter, and
    // Landlock: it cannot write outside its trees.
    let agent = sh(
        "for p in /proc/[0-9]*; do [ \"$(cat $p/comm)\" = httpd ] && echo ${p#/proc/}; done; true",
    )
    .trim()
    .to_owned();
    assert!(!agent.is_empty(), "no agent process");
    let st = sh(&format!("cat /proc/{agent}/status"));
    for want in [
        "Uid:\t1000\t1000\t1000\t1000",
        "CapEff:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
    ] {
        assert!(st.lines().any(|l| l == want), "agent lacks {want:?}:\n{st}");
    }
    ok(
        "podman",
        &[
            "exec",
            &ctr,
            "/bin/sh",
            "-c",
            "echo kept > /sandbox/mine.txt",
        ],
    );

    // Stop: SIGTERM to PID 1, which stops the agent and writes its last word.
    let t1 = Instant::now();
    ok("podman", &["pod", "stop", "-t", "20", &pod_name]);
    let stop_time = t1.elapsed();
    let logs = run("podman", &["logs", &ctr]).2;
    assert!(
        logs.lines()
            .any(|l| l.contains("\"event\":\"termination.written\"")
                && l.contains("\"line\":\"Stopped\"")),
        "no termination message written:\n{logs}"
    );
    let (state, _, _) = (
        ok(
            "podman",
            &["inspect", "--format", "{{.State.ExitCode}}", &ctr],
        ),
        0,
        0,
    );
    assert_eq!(state.trim(), "0", "a requested stop exits 0");
    ok("podman", &["kube", "down", &pod_file]);

    // Start again on the same PVC.
    let t2 = Instant::now();
    ok("podman", &["kube", "play", &pod_file]);
    let second_ready = until_ready(&ctr, &probe, t2);
    let sh = |script: &str| ok("podman", &["exec", &ctr, "/bin/sh", "-c", script]);
    assert_eq!(
        sh("cat /sandbox/mine.txt").trim(),
        "kept",
        "the workspace survived kube down + play"
    );
    let boots = sh("grep -c '^boot ' /sandbox/.boot.log")
        .trim()
        .parse::<u32>()
        .unwrap();
    assert_eq!(boots, 2, "the boot hook ran on each start");
    eprintln!(
        "kube play timings: first start to Ready {first_ready:?}; pod stop {stop_time:?}; start to Ready after kube down {second_ready:?}"
    );
}
