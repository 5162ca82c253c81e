//! The fake node's kubelet: it runs every pod bound to the node **for real**, as a podman
//! container, the way a kubelet runs it through its container runtime, and reports what
//! happened in the pod's status. So the sandbox's supervisor really is PID 1, its boot hook
//! really runs, the agent is really confined by this kernel, a stop really sends SIGTERM and
//! waits `terminationGracePeriodSeconds`, and the termination message really is what the
//! supervisor wrote to `terminationMessagePath`.
//!
//! One worker thread per pod (as the kubelet's pod workers), following the pod object:
//! - volumes: a `persistentVolumeClaim` is the host directory the fake's provisioner made for
//!   the claim (`<node>/pv/<namespace>/<claim>`, like the local-path provisioners of kind and
//!   k3s), an `emptyDir` a fresh host directory per pod (mode 0777, as the kubelet makes it),
//!   and `terminationMessagePath` a fresh host file per container;
//! - the container: `podman run` with the pod's command, args, env, workingDir and
//!   securityContext (user, capabilities, no_new_privs, read-only root, seccomp), the pod's
//!   name as hostname, no network;
//! - readiness: the pod's exec probe, run with `podman exec` (every 300 ms until the first
//!   success, then every `periodSeconds`; the real kubelet waits `periodSeconds` between
//!   tries from the start);
//! - restarts (`restartPolicy: Always`): at once after the first exit, then after the
//!   kubelet's back-off (10 s, doubling to 5 min), `waiting: CrashLoopBackOff` meanwhile;
//! - an image that is not in podman's store is never pulled: `ErrImagePull`, then
//!   `ImagePullBackOff`;
//! - deletion: `podman stop -t <grace>` (the pod's deletionGracePeriodSeconds or its
//!   terminationGracePeriodSeconds), the terminated state is published, then the pod object
//!   goes.
//!
//! The one liberty taken: a "power cut" ([`super::Fake::power_cut`]) SIGKILLs the container
//! and this kubelet then leaves the pod as it is, reporting the container terminated with
//! 137 and restarting nothing, until the pod is replaced. A real node that loses power and
//! boots again restarts the pod by itself, which would leave nothing for `resume --all` to
//! do; one that stays down leaves the API showing a stale status until the node controller
//! gives up on it. Holding the pod down makes the scenario test what sandboxctl reads and
//! does (Error with exit 137, then a fresh pod where the hook runs again).

use super::{now, Key, Kind, World};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How often a pod worker looks at its pod.
const TICK: Duration = Duration::from_millis(100);
/// Readiness probe interval until the first success.
const FIRST_PROBES: Duration = Duration::from_millis(300);
/// The kubelet's crash back-off: first delay and cap.
const BACKOFF_FIRST: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Label on every container this kubelet runs (value: the node's id).
pub const NODE_LABEL: &str = "io.openshell.fake-kubelet";

pub(super) type State = Arc<(Mutex<World>, Condvar)>;

/// Runs podman; (exit code, stdout, stderr).
pub fn podman(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("podman")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("podman is installed (tests/run.sh installs it)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The node: spawns a worker for every pod that has none.
pub(super) fn run(state: State, stop: Arc<AtomicBool>, node: PathBuf, node_id: String) {
    let mut started: BTreeSet<String> = BTreeSet::new();
    while !stop.load(Ordering::Relaxed) {
        let pods: Vec<(Key, String)> = {
            let w = state.0.lock().unwrap();
            w.objects
                .iter()
                .filter(|(k, _)| k.0 == Kind::Pod)
                .filter_map(|(k, p)| Some((k.clone(), p["metadata"]["uid"].as_str()?.to_owned())))
                .collect()
        };
        for (key, uid) in pods {
            if started.insert(uid.clone()) {
                let worker = Worker {
                    key,
                    uid,
                    state: state.clone(),
                    stop: stop.clone(),
                    node: node.clone(),
                    node_id: node_id.clone(),
                };
                thread::spawn(move || worker.run());
            }
        }
        thread::sleep(TICK);
    }
}

/// The host directory the provisioner made for a claim.
pub fn pv_dir(node: &Path, ns: &str, claim: &str) -> PathBuf {
    node.join("pv").join(ns).join(claim)
}

/// The container the pod's current attempt runs in, by name.
pub fn container_name(ns: &str, pod: &str, attempt: i64) -> String {
    format!("fakek-{ns}-{pod}-{attempt}")
}

struct Worker {
    key: Key,
    uid: String,
    state: State,
    stop: Arc<AtomicBool>,
    node: PathBuf,
    node_id: String,
}

/// One attempt's container.
struct Ctr {
    name: String,
    term_log: PathBuf,
    started_at: String,
    /// Set by the waiter thread when the container has exited: its exit code.
    exited: Arc<Mutex<Option<i32>>>,
    done: bool,
}

#[derive(Default)]
struct Pod {
    restarts: i64,
    ctr: Option<Ctr>,
    /// The container's state and last state, as the API shows them.
    state: Value,
    last: Value,
    /// The last attempt's terminated state.
    ended: Value,
    ready: bool,
    ever_started: bool,
    next_probe: Option<Instant>,
    backoff: Duration,
    retry_at: Option<Instant>,
    next_pull: Option<Instant>,
    pull_failures: u32,
    /// When SIGTERM was sent to a deleted pod's container, and whether SIGKILL followed.
    term_sent: Option<Instant>,
    killed: bool,
    /// The terminated state of a deleted pod was published: next, the pod goes.
    published_end: bool,
}

impl Worker {
    fn pod_dir(&self) -> PathBuf {
        self.node.join("pods").join(&self.uid)
    }

    fn current(&self) -> Option<Value> {
        let w = self.state.0.lock().unwrap();
        w.objects
            .get(&self.key)
            .filter(|p| p["metadata"]["uid"].as_str() == Some(self.uid.as_str()))
            .cloned()
    }

    fn run(self) {
        let mut p = Pod {
            state: json!({"waiting": {"reason": "ContainerCreating"}}),
            last: json!({}),
            ..Pod::default()
        };
        loop {
            let Some(obj) = self.current() else {
                self.clean_up(&p);
                return;
            };
            if self.stop.load(Ordering::Relaxed) {
                self.clean_up(&p);
                return;
            }
            let powered_off = self.state.0.lock().unwrap().powered_off.contains(&self.uid);
            let finalize = self.step(&mut p, &obj, powered_off);
            self.publish(&p, &obj, finalize);
            if finalize {
                self.clean_up(&p);
                return;
            }
            thread::sleep(TICK);
        }
    }

    fn clean_up(&self, p: &Pod) {
        if let Some(c) = &p.ctr {
            let _ = podman(&["rm", "-f", "-t", "0", &c.name]);
        }
        {
            let mut w = self.state.0.lock().unwrap();
            w.containers.remove(&self.uid);
            w.powered_off.remove(&self.uid);
        }
        let _ = std::fs::remove_dir_all(self.pod_dir());
    }

    /// One sync of the pod; true when a deleted pod may now go.
    fn step(&self, p: &mut Pod, obj: &Value, powered_off: bool) -> bool {
        let deleting = !obj["metadata"]["deletionTimestamp"].is_null();
        // An exit is published before anything follows it (as the kubelet's status sync
        // reports a terminated container before it restarts it).
        let just_ended = self.notice_exit(p);
        let running = p.ctr.as_ref().is_some_and(|c| !c.done);
        if deleting {
            if running {
                // SIGTERM (the image's STOPSIGNAL), SIGKILL once the grace period is over
                // (it is read again on every look: a delete may shorten it).
                let name = p.ctr.as_ref().unwrap().name.clone();
                let term_at = *p.term_sent.get_or_insert_with(|| {
                    let _ = podman(&["kill", "--signal", "TERM", &name]);
                    Instant::now()
                });
                let grace = obj["metadata"]["deletionGracePeriodSeconds"]
                    .as_u64()
                    .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_u64())
                    .unwrap_or(30);
                if !p.killed && term_at.elapsed() >= Duration::from_secs(grace) {
                    p.killed = true;
                    let _ = podman(&["kill", "--signal", "KILL", &name]);
                }
                return false;
            }
            // Nothing runs: publish the end once, then let the pod go.
            if p.published_end {
                return true;
            }
            p.published_end = true;
            p.ready = false;
            return false;
        }
        if powered_off || just_ended {
            return false;
        }
        if running {
            self.probe(p, obj);
            return false;
        }
        // Nothing runs: start (or restart after the back-off).
        let now = Instant::now();
        if p.ctr.is_some() {
            let retry_at = *p.retry_at.get_or_insert_with(|| {
                if p.restarts == 0 && p.backoff.is_zero() {
                    p.backoff = BACKOFF_FIRST;
                    now
                } else {
                    let at = now + p.backoff;
                    p.backoff = (p.backoff * 2).min(BACKOFF_MAX);
                    at
                }
            });
            if now < retry_at {
                p.last = p.ended.clone();
                p.state = json!({"waiting": {"reason": "CrashLoopBackOff",
                    "message": format!("back-off {}s restarting failed container=sandbox pod={}",
                        (retry_at - now).as_secs().max(1), self.key.2)}});
                return false;
            }
        }
        let container = &obj["spec"]["containers"][0];
        let image = container["image"].as_str().unwrap_or_default();
        if p.next_pull.is_some_and(|t| now < t) {
            return false;
        }
        if podman(&["image", "exists", image]).0 != 0 {
            p.pull_failures += 1;
            let reason = if p.pull_failures < 3 {
                "ErrImagePull"
            } else {
                "ImagePullBackOff"
            };
            p.state = json!({"waiting": {"reason": reason,
                "message": format!("failed to pull image \"{image}\": not found (this node pulls nothing)")}});
            p.next_pull = Some(now + Duration::from_secs(1));
            return false;
        }
        match self.start_container(p, obj) {
            Ok(c) => {
                if let Some(old) = p.ctr.take() {
                    p.last = p.ended.clone();
                    p.restarts += 1;
                    let _ = podman(&["rm", "-f", "-t", "0", &old.name]);
                }
                p.state = json!({"running": {"startedAt": c.started_at}});
                p.ready = false;
                p.ever_started = true;
                p.retry_at = None;
                p.next_probe = Some(Instant::now());
                self.state
                    .0
                    .lock()
                    .unwrap()
                    .containers
                    .insert(self.uid.clone(), c.name.clone());
                p.ctr = Some(c);
            }
            Err(e) => {
                p.state = json!({"waiting": {"reason": "CreateContainerError", "message": e}});
                p.next_pull = Some(now + Duration::from_secs(1));
            }
        }
        false
    }

    /// Picks up the waiter's report that the container ended; true if it just did.
    fn notice_exit(&self, p: &mut Pod) -> bool {
        let Some(c) = p.ctr.as_mut() else {
            return false;
        };
        if c.done {
            return false;
        }
        let Some(code) = c.exited.lock().unwrap().take() else {
            return false;
        };
        c.done = true;
        // The kubelet reads at most 4096 bytes; an empty file is no message.
        let message = std::fs::read(&c.term_log)
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(4096)]).into_owned())
            .unwrap_or_default();
        let mut t = json!({"exitCode": code,
            "reason": if code == 0 { "Completed" } else { "Error" },
            "startedAt": c.started_at, "finishedAt": now(), "containerID": format!("podman://{}", c.name)});
        if !message.is_empty() {
            t["message"] = json!(message);
        }
        p.state = json!({"terminated": t});
        p.ended = p.state.clone();
        p.ready = false;
        true
    }

    fn probe(&self, p: &mut Pod, obj: &Value) {
        let now = Instant::now();
        if p.next_probe.is_some_and(|t| now < t) {
            return;
        }
        let Some(cmd) =
            obj["spec"]["containers"][0]["readinessProbe"]["exec"]["command"].as_array()
        else {
            p.ready = true;
            return;
        };
        let name = p.ctr.as_ref().unwrap().name.clone();
        let mut args = vec!["exec".to_owned(), name.clone()];
        args.extend(cmd.iter().filter_map(|v| v.as_str().map(str::to_owned)));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ok = podman(&args).0 == 0;
        if !ok {
            // A probe that failed because the container is dying says nothing about
            // readiness: its exit is reported instead, on the next look.
            thread::sleep(Duration::from_millis(200));
            self.notice_exit(p);
            if p.ctr.as_ref().is_some_and(|c| c.done) {
                return;
            }
        }
        p.ready = ok;
        let period = obj["spec"]["containers"][0]["readinessProbe"]["periodSeconds"]
            .as_u64()
            .unwrap_or(10);
        p.next_probe = Some(
            Instant::now()
                + if ok {
                    Duration::from_secs(period)
                } else {
                    FIRST_PROBES
                },
        );
    }

    /// `podman run` of the pod's container; a waiter thread reports its exit.
    fn start_container(&self, p: &Pod, obj: &Value) -> Result<Ctr, String> {
        let (ns, pod) = (&self.key.1, &self.key.2);
        let attempt = p.restarts + i64::from(p.ctr.is_some());
        let name = container_name(ns, pod, attempt);
        let spec = &obj["spec"];
        let c = &spec["containers"][0];
        let dir = self.pod_dir();
        let mut args: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--name".into(),
            name.clone(),
            "--label".into(),
            format!("{NODE_LABEL}={}", self.node_id),
            "--hostname".into(),
            spec["hostname"].as_str().unwrap_or(pod).to_owned(),
            "--network".into(),
            "none".into(),
            "--pull".into(),
            "never".into(),
        ];
        // securityContext: the container's, over the pod's.
        let sc = |k: &str| {
            let v = &c["securityContext"][k];
            if v.is_null() {
                spec["securityContext"][k].clone()
            } else {
                v.clone()
            }
        };
        if let Some(u) = sc("runAsUser").as_i64() {
            let g = sc("runAsGroup").as_i64().unwrap_or(u);
            args.extend(["--user".into(), format!("{u}:{g}")]);
        }
        let caps = sc("capabilities");
        for d in caps["drop"].as_array().into_iter().flatten() {
            args.extend(["--cap-drop".into(), d.as_str().unwrap().to_lowercase()]);
        }
        for a in caps["add"].as_array().into_iter().flatten() {
            args.extend(["--cap-add".into(), a.as_str().unwrap().to_lowercase()]);
        }
        if sc("allowPrivilegeEscalation") == json!(false) {
            args.extend(["--security-opt".into(), "no-new-privileges".into()]);
        }
        if sc("privileged") == json!(true) {
            args.push("--privileged".into());
        }
        if sc("readOnlyRootFilesystem") == json!(true) {
            // Kubernetes mounts nothing writable by itself; podman would add tmpfs mounts.
            args.extend(["--read-only".into(), "--read-only-tmpfs=false".into()]);
        }
        match sc("seccompProfile")["type"].as_str() {
            None | Some("RuntimeDefault") => {}
            Some("Unconfined") => {
                args.extend(["--security-opt".into(), "seccomp=unconfined".into()])
            }
            Some(other) => {
                return Err(format!(
                    "seccompProfile {other} is not supported by this node"
                ))
            }
        }
        // Volumes.
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            let vname = m["name"].as_str().unwrap();
            let target = m["mountPath"].as_str().unwrap();
            let vol = spec["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["name"] == vname)
                .ok_or_else(|| format!("volume {vname} is not in the pod"))?;
            let host = if let Some(claim) = vol["persistentVolumeClaim"]["claimName"].as_str() {
                let d = pv_dir(&self.node, ns, claim);
                if !d.is_dir() {
                    return Err(format!("persistentvolumeclaim \"{claim}\" is not bound"));
                }
                d
            } else if !vol["emptyDir"].is_null() {
                let d = dir.join("volumes").join(vname);
                std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
                set_mode(&d, 0o777);
                d
            } else {
                return Err(format!(
                    "volume {vname}: only PVCs and emptyDirs on this node"
                ));
            };
            let ro = if m["readOnly"] == json!(true) {
                ":ro"
            } else {
                ""
            };
            args.extend([
                "--volume".into(),
                format!("{}:{target}{ro}", host.display()),
            ]);
        }
        let term_path = c["terminationMessagePath"]
            .as_str()
            .unwrap_or("/dev/termination-log");
        let cdir = dir.join("containers").join(attempt.to_string());
        std::fs::create_dir_all(&cdir).map_err(|e| e.to_string())?;
        let term_log = cdir.join("termination-log");
        std::fs::write(&term_log, b"").map_err(|e| e.to_string())?;
        args.extend([
            "--volume".into(),
            format!("{}:{term_path}", term_log.display()),
        ]);
        for e in c["env"].as_array().into_iter().flatten() {
            args.extend([
                "--env".into(),
                format!(
                    "{}={}",
                    e["name"].as_str().unwrap(),
                    e["value"].as_str().unwrap_or("")
                ),
            ]);
        }
        if let Some(wd) = c["workingDir"].as_str() {
            args.extend(["--workdir".into(), wd.to_owned()]);
        }
        if let Some(cmd) = c["command"].as_array() {
            args.extend(["--entrypoint".into(), Value::Array(cmd.clone()).to_string()]);
        }
        args.push(c["image"].as_str().unwrap().to_owned());
        for a in c["args"].as_array().into_iter().flatten() {
            args.push(a.as_str().unwrap().to_owned());
        }
        let _ = podman(&["rm", "-f", "-t", "0", &name]);
        let started_at = now();
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = podman(&argv);
        if code != 0 {
            return Err(format!("podman run failed: {}", err.trim()));
        }
        let exited = Arc::new(Mutex::new(None));
        {
            let (exited, name, state) = (exited.clone(), name.clone(), self.state.clone());
            thread::spawn(move || {
                let (c, out, _) = podman(&["wait", &name]);
                let code = if c == 0 {
                    out.trim().parse().unwrap_or(-1)
                } else {
                    -1
                };
                *exited.lock().unwrap() = Some(code);
                state.1.notify_all();
            });
        }
        Ok(Ctr {
            name,
            term_log,
            started_at,
            exited,
            done: false,
        })
    }

    /// Writes the pod's status from what this worker knows; on `finalize`, removes the pod.
    fn publish(&self, p: &Pod, obj: &Value, finalize: bool) {
        let c = &obj["spec"]["containers"][0];
        let running = p.state.get("running").is_some();
        let status = json!({
            "phase": if p.ever_started { "Running" } else { "Pending" },
            "hostIP": "127.0.0.1",
            "startTime": obj["metadata"]["creationTimestamp"],
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": if p.ready { "True" } else { "False" }},
                {"type": "Ready", "status": if p.ready { "True" } else { "False" }},
            ],
            "containerStatuses": [{
                "name": c["name"],
                "image": c["image"],
                "imageID": "",
                "containerID": p.ctr.as_ref().map(|c| format!("podman://{}", c.name)),
                "ready": p.ready && running,
                "started": running,
                "restartCount": p.restarts,
                "state": p.state,
                "lastState": p.last,
            }],
        });
        let (m, cv) = &*self.state;
        let mut w = m.lock().unwrap();
        let Some(cur) = w
            .objects
            .get(&self.key)
            .filter(|o| o["metadata"]["uid"].as_str() == Some(self.uid.as_str()))
            .cloned()
        else {
            return;
        };
        if finalize {
            w.remove(&self.key);
        } else if cur["status"] != status {
            let mut next = cur;
            next["status"] = status;
            w.put(self.key.clone(), next, "MODIFIED");
        }
        cv.notify_all();
    }
}

pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
}
